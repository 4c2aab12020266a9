//! `sqlflight bench flink`: what running Flink through sqlflight costs. Two
//! measurements side by side in one run:
//! - converting the catalog's Parquet files to the CSV Flink reads, against
//!   copying the converted bytes (the disk's own limit for writing them);
//! - each TPC-H query through the `kind: flink` worker, against a bare pyflink
//!   loop in one Python process over the same converted tables (what a
//!   hand-written harness does: pyflink's defaults, a mini-cluster per job and
//!   one py4j call per row). The per-query difference of the medians is what
//!   sqlflight adds or saves (the worker runs its jobs on one long-lived
//!   mini-cluster and collects results as Arrow in the JVM).

use std::time::Instant;

use sqlflight_corpora::bundled::Workload;
use sqlflight_engines::EngineSpec;
use sqlflight_engines::flink::FlinkMode;

use crate::worker::{VsBareLoop, run_bare_loop};
use crate::{Ctx, EXIT_OK};
use crate::{emit, tpch_catalog};

/// `bench flink`.
#[derive(Debug, clap::Args)]
pub struct FlinkBenchArgs {
    /// The apache-flink release to measure.
    #[arg(long, default_value = "2.2.1")]
    pub version: String,
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 0.01)]
    pub scale: f64,
    /// Timed runs of each query per side (the median is used).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Execution mode of both sides (`streaming`: results arrive as changelogs).
    #[arg(long, default_value = "batch", value_parser = ["batch", "streaming"])]
    pub mode: String,
}

/// The bare loop: one table environment in pyflink's defaults (a mini-cluster
/// per job, rows fetched one by one; a streaming changelog is fetched, not
/// folded, so the loop does less than a correct comparison needs),
/// the same table declarations, each query warmed once then timed `repeat`
/// times (queries Flink refuses are left out); prints JSON `{query id: [ms,
/// ...]}` into the file named second.
const BARE_LOOP: &str = r#"
import json, sys, time
from pyflink.common import Configuration
from pyflink.table import EnvironmentSettings, TableEnvironment
spec = json.load(open(sys.argv[1]))
c = Configuration()
c.set_string("parallelism.default", "2")
c.set_string("rest.bind-address", "127.0.0.1")
c.set_string("rest.address", "127.0.0.1")
b = EnvironmentSettings.new_instance()
b = b.in_streaming_mode() if spec["mode"] == "streaming" else b.in_batch_mode()
env = TableEnvironment.create(b.with_configuration(c).build())
for s in spec["setup"]:
    env.execute_sql(s)
def run(sql):
    with env.execute_sql(sql).collect() as it:
        list(it)
out = {}
for qid, sql in spec["queries"]:
    try:
        run(sql)
    except Exception:
        continue
    times = []
    for _ in range(spec["repeat"]):
        t = time.perf_counter()
        run(sql)
        times.append((time.perf_counter() - t) * 1e3)
    out[qid] = times
open(sys.argv[2], "w").write(json.dumps(out))
"#;

/// Bytes of the files directly under `dir`.
fn files(dir: &std::path::Path) -> anyhow::Result<Vec<(std::path::PathBuf, u64)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        v.push((e.path(), e.metadata()?.len()));
    }
    Ok(v)
}

/// Runs `bench flink`; returns the exit code.
// Long by design: a measurement script, its steps in the order they are timed.
pub fn bench_flink(args: &FlinkBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let catalog = tpch_catalog(cli, args.scale)?;
    let corpus = Workload::Tpch.corpus()?;
    let repeat = args.repeat.max(1);
    let queries: Vec<(String, String)> = corpus.records.iter().map(|r| (r.id.clone(), r.sql.clone())).collect();

    // Conversion, cold, into a scratch directory; then the same bytes copied.
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("csv");
    let t = Instant::now();
    let converted = sqlflight_engines::flink::catalog_in("bench", &catalog, &csv)?;
    let convert = t.elapsed();
    let written = files(&csv)?;
    let bytes: u64 = written.iter().map(|(_, n)| n).sum();
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies)?;
    let t = Instant::now();
    for (i, (p, _)) in written.iter().enumerate() {
        std::fs::copy(p, copies.join(i.to_string()))?;
    }
    let copy = t.elapsed();

    // The bare loop, in the same environment as the engine's workers.
    let python = sqlflight_engines::python::ensure_venv("apache-flink", &args.version, &[])?;
    sqlflight_engines::python::java().map_err(anyhow::Error::msg)?;
    let bare = run_bare_loop(
        &python,
        dir.path(),
        BARE_LOOP,
        &serde_json::json!({"setup": converted.setup, "queries": queries, "repeat": repeat, "mode": args.mode}),
        &[],
        "pyflink",
    )?;

    // The engine, as playback and flight use it.
    let spec = EngineSpec::Flink {
        version: args.version.clone(),
        mode: if args.mode == "streaming" {
            FlinkMode::Streaming
        } else {
            FlinkMode::Batch
        },
        settings: Default::default(),
        setup: Vec::new(),
        parallelism: None,
    };
    let started = Instant::now();
    let engine = sqlflight_engines::build_engine("flink", &spec, &catalog)?;
    let startup = started.elapsed();
    let mut vs = VsBareLoop::default();
    for (id, sql) in &queries {
        let Some(tb) = bare.get(id) else { continue };
        vs.query(engine.as_ref(), sql, tb, repeat)?;
    }
    anyhow::ensure!(vs.timed() > 0, "Flink ran none of the TPC-H queries");
    let mb = bytes as f64 / 1e6;
    let mut v = serde_json::json!({
        "flink_version": args.version,
        "mode": args.mode,
        "scale_factor": args.scale,
        "csv_mb": mb,
        "convert_s": convert.as_secs_f64(),
        "convert_mb_per_s": mb / convert.as_secs_f64(),
        "copy_mb_per_s": mb / copy.as_secs_f64(),
        "convert_vs_copy": convert.as_secs_f64() / copy.as_secs_f64(),
        "queries_timed": vs.timed(),
        "queries": queries.len(),
    });
    vs.add_figures(startup, &mut v);
    emit(
        cli,
        &format!(
            "Flink {} ({}) through sqlflight vs a bare pyflink loop, TPC-H SF {}, median of {repeat} per query:",
            args.version, args.mode, args.scale
        ),
        &v,
    )?;
    Ok(EXIT_OK)
}
