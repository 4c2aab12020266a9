//! `sqlflight bench rollout`: route lookups in process and over HTTP, and rollback
//! latency, each beside its physical reference measured in the same run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use sqlflight_rollout::policy::{Phase, Policy, VersionSpec};
use sqlflight_rollout::serve::Router;
use sqlflight_rollout::{Side, Store};

use crate::{Ctx, EXIT_OK};

/// `bench rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutBenchArgs {
    /// Tenant ids looked up in process.
    #[arg(long, default_value_t = 2_000_000)]
    pub lookups: usize,
    /// Seconds of HTTP load per server.
    #[arg(long, default_value_t = 3.0)]
    pub http_seconds: f64,
    /// Concurrent keep-alive HTTP connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Rollbacks timed.
    #[arg(long, default_value_t = 7)]
    pub rollbacks: usize,
}

fn policy() -> Policy {
    let v = |s: &str| VersionSpec {
        version: s.into(),
        engine: Some("bench".into()),
        profile: None,
    };
    let phase = |name: &str, tenants: Vec<String>, percent_bp: u32| Phase {
        name: name.into(),
        tenants,
        tiers: vec!["low".into()],
        percent_bp,
        require: vec![],
        gate: None,
        bake_ms: 0,
        approvals: 0,
    };
    Policy {
        signers: None,
        gateways: Default::default(),
        name: "bench".into(),
        baseline: v("1.0"),
        candidate: v("2.0"),
        gates: Default::default(),
        phases: vec![
            phase(
                "internal",
                (0..100)
                    .map(|i| format!("internal-{i}"))
                    .chain(["probe".into()])
                    .collect(),
                0,
            ),
            phase("ten", vec![], 1_000),
        ],
    }
}

/// A fresh rollout at phase 2 (probe, 100 listed tenants, tier `low`, 10%).
fn start(st: &mut Store) -> anyhow::Result<()> {
    let p = policy();
    st.init(&p, "bench", sqlflight_rollout::now_ms())?;
    st.advance("bench", sqlflight_rollout::now_ms())?;
    st.advance("bench", sqlflight_rollout::now_ms())?;
    Ok(())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Keep-alive HTTP/1.1 GETs on one connection; returns the body of each.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
    req: Vec<u8>,
    body: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<Client> {
        let w = TcpStream::connect(addr)?;
        w.set_nodelay(true)?;
        let r = BufReader::new(w.try_clone()?);
        Ok(Client {
            w,
            r,
            req: format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes(),
            body: Vec::new(),
        })
    }

    fn get(&mut self) -> anyhow::Result<&[u8]> {
        self.w.write_all(&self.req)?;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                anyhow::bail!("the server closed the connection");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse()?;
            }
        }
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body)?;
        Ok(&self.body)
    }
}

/// Requests per second of `connections` keep-alive clients for `secs`.
fn load(addr: SocketAddr, connections: usize, secs: f64, tenants: usize) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..connections {
        let mut cl = Client::connect(addr, &format!("/v1/route?tenant=tenant-{}", c % tenants.max(1)))?;
        let (stop, done) = (stop.clone(), done.clone());
        clients.push(std::thread::spawn(move || -> anyhow::Result<()> {
            while !stop.load(Ordering::Relaxed) {
                cl.get()?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let t = Instant::now();
    let start = done.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let n = done.load(Ordering::Relaxed) - start;
    let el = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().map_err(|_| anyhow::anyhow!("a load client panicked"))??;
    }
    Ok(n as f64 / el.as_secs_f64())
}

fn spawn_server(f: impl FnOnce(mpsc::Sender<SocketAddr>) + Send + 'static) -> anyhow::Result<SocketAddr> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || f(tx));
    Ok(rx.recv_timeout(Duration::from_secs(30))?)
}

fn median(v: &[f64]) -> f64 {
    sqlflight_flighting::stats::median(v).unwrap_or_default()
}

/// Runs `bench rollout`; returns the exit code.
// Long by design: a measurement script, its steps in the order they are timed.
pub fn bench_rollout(args: &RolloutBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("rollout.db");
    let mut st = Store::open(&path, true)?;
    start(&mut st)?;
    let tenants: Vec<String> = (0..args.lookups.max(1)).map(|i| format!("tenant-{i}")).collect();

    // In process: the precomputed table, the same with a freshness check per
    // lookup, and the tenant hash alone (the work no lookup can skip).
    let mut router = Router::new(Store::open_read_only(&path)?)?;
    let table = router.fresh()?.ok_or_else(|| anyhow::anyhow!("no rollout"))?;
    let seed = sqlflight_rollout::machine::seed("bench");
    let t = Instant::now();
    let mut h = 0u64;
    for x in &tenants {
        h = h.wrapping_add(xxhash_rust::xxh3::xxh3_64_with_seed(x.as_bytes(), seed));
    }
    let hash_rate = rate(tenants.len(), t.elapsed());
    std::hint::black_box(h);
    let t = Instant::now();
    let mut on = 0usize;
    for x in &tenants {
        on += (table.side(x, None) == Side::Candidate) as usize;
    }
    let table_rate = rate(tenants.len(), t.elapsed());
    let fresh_n = tenants.len().min(500_000);
    let t = Instant::now();
    for x in &tenants[..fresh_n] {
        let tb = router.fresh()?.ok_or_else(|| anyhow::anyhow!("no rollout"))?;
        std::hint::black_box(tb.side(x, None));
    }
    let fresh_rate = rate(fresh_n, t.elapsed());

    // Over HTTP: the endpoint vs the same HTTP stack answering a constant.
    let p2 = path.clone();
    let route_addr = spawn_server(move |tx| {
        let _ = sqlflight_rollout::serve::run_blocking(
            &p2,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            Default::default(),
            |a| {
                let _ = tx.send(a);
            },
        );
    })?;
    let fixed_addr = spawn_server(move |tx| {
        let _ =
            sqlflight_rollout::serve::run_fixed_blocking(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), "ok", |a| {
                let _ = tx.send(a);
            });
    })?;
    let http_route = load(route_addr, args.connections, args.http_seconds, 1000)?;
    let http_fixed = load(fixed_addr, args.connections, args.http_seconds, 1000)?;

    // Rollback latency: from starting `sqlflight rollout rollback` (a new process,
    // as an operator would) to the first HTTP lookup that answers the baseline;
    // and in process, from the call to the first fresh lookup.
    let exe = std::env::current_exe()?;
    let mut process_ms = Vec::new();
    let mut command_ms = Vec::new();
    let mut inproc_ms = Vec::new();
    let mut probe = Client::connect(route_addr, "/v1/route?tenant=probe")?;
    for i in 0..args.rollbacks.max(1) {
        if i > 0 {
            start(&mut st)?;
        }
        let side = |c: &mut Client| -> anyhow::Result<bool> {
            let v: serde_json::Value = serde_json::from_slice(c.get()?)?;
            Ok(v["side"] == "baseline")
        };
        anyhow::ensure!(!side(&mut probe)?, "probe not on the candidate before the rollback");
        let t = Instant::now();
        let mut child = std::process::Command::new(&exe)
            .args(["rollout", "--store"])
            .arg(&path)
            .args(["-q", "rollback", "--reason", "bench"])
            .spawn()?;
        let mut polls = 0u64;
        while !side(&mut probe)? {
            polls += 1;
            anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "rollback never became visible");
        }
        process_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let status = child.wait()?;
        command_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(status.success(), "rollback failed");
        std::hint::black_box(polls);

        start(&mut st)?;
        let t = Instant::now();
        st.rollback("bench", "bench", sqlflight_rollout::now_ms())?;
        let tb = router.fresh()?.ok_or_else(|| anyhow::anyhow!("no rollout"))?;
        anyhow::ensure!(
            tb.side("probe", None) == Side::Baseline,
            "in-process rollback not visible"
        );
        inproc_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (chain_rate, hash_only_rate) = audit_chain_rates(200_000)?;
    let v = serde_json::json!({
        "audit_chain_verify_entries_per_s": chain_rate.round(),
        "audit_blake3_only_entries_per_s": hash_only_rate.round(),
        "audit_chain_vs_blake3_only": chain_rate / hash_only_rate,
        "in_process_lookups_per_s": table_rate.round(),
        "in_process_fresh_lookups_per_s": fresh_rate.round(),
        "tenant_hash_only_per_s": hash_rate.round(),
        "lookup_vs_hash_only": table_rate / hash_rate,
        "admitted_share": on as f64 / tenants.len() as f64,
        "http_route_requests_per_s": http_route.round(),
        "http_constant_requests_per_s": http_fixed.round(),
        "http_route_vs_constant": http_route / http_fixed,
        "http_connections": args.connections,
        "rollback_to_first_baseline_lookup_ms_median": median(&process_ms),
        "rollback_to_first_baseline_lookup_ms_max": process_ms.iter().cloned().fold(0.0, f64::max),
        "rollback_command_exit_ms_median": median(&command_ms),
        "rollback_in_process_ms_median": median(&inproc_ms),
        "rollback_in_process_ms_max": inproc_ms.iter().cloned().fold(0.0, f64::max),
        "rollbacks": args.rollbacks.max(1),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    emit_rollout(cli, &v)?;
    Ok(EXIT_OK)
}

/// Verifying an audit chain of `n` entries (serialize, hash, compare links)
/// against hashing the same serialized bytes alone (the chain's floor).
fn audit_chain_rates(n: usize) -> anyhow::Result<(f64, f64)> {
    use sqlflight_rollout::store::{ChainEntry, ChainRow, GENESIS, verify_chain};
    let mut prev = GENESIS.to_string();
    let entries: Vec<ChainEntry> = (0..n)
        .map(|i| {
            let row = ChainRow {
                id: i as i64 + 1,
                rollout_id: 1,
                at_ms: 1_700_000_000_000 + i as i64,
                actor: "release-manager@example.com (SHA256:3bq1qvE1mGSb2sZ0n2bQwT6Lr1m1Gdl7y1bP1mWf3cA)".into(),
                action: "check".into(),
                from_phase: 1,
                to_phase: 1,
                status: "active".into(),
                reason: Some("pass: gate release".into()),
                evidence: Some(r#"[{"id":"0123456789abcdef","kind":"flight"}]"#.into()),
                prev_hash: prev.clone(),
            };
            let hash = row.hash();
            prev = hash.clone();
            ChainEntry { row, hash }
        })
        .collect();
    let t = Instant::now();
    let report = verify_chain(&entries);
    let chain = t.elapsed().as_secs_f64();
    anyhow::ensure!(report.first_break.is_none(), "the generated chain does not verify");
    let bytes: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| serde_json::to_vec(&e.row).unwrap_or_default())
        .collect();
    let t = Instant::now();
    let mut x = 0u8;
    for b in &bytes {
        x ^= blake3::hash(b).as_bytes()[0];
    }
    std::hint::black_box(x);
    let hash_only = t.elapsed().as_secs_f64();
    Ok((n as f64 / chain, n as f64 / hash_only))
}

fn emit_rollout(cli: &Ctx, v: &serde_json::Value) -> anyhow::Result<()> {
    crate::emit(
        cli,
        "rollout: route lookups (in process, HTTP) and rollback latency, each beside its reference:",
        v,
    )
}
