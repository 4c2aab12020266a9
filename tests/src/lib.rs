//! # sqlflight-tests
//!
//! Helpers for the end-to-end tests in `tests/e2e.rs`: engine profiles built the
//! way the CLI builds them, playback runs into temp directories, outcome
//! comparison without timings, and a test double engine for faults that a real
//! engine cannot be made to produce on demand (a panic, a hang).
//!
//! Nothing here is used outside tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlflight_corpora::{Catalog, Corpus};
pub mod flight_sql_server;
pub mod servers;

use sqlflight_diffing::{OutcomeClass, OutcomeRecord};
use sqlflight_engines::arrow::record_batch::RecordBatch;
use sqlflight_engines::{
    CompiledPlan, Engine, EngineError, EngineInfo, EngineSpec, ExecLimits, ExecStats, build_engine,
};
use sqlflight_playback::{PlaybackOptions, PlaybackSummary, run_playback};
use sqlflight_runs::NoProgress;

/// A DataFusion profile from settings and disabled rules.
pub fn datafusion(settings: &[(&str, &str)], rules: &[&str]) -> EngineSpec {
    EngineSpec::Datafusion {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        disable_rules: rules.iter().map(|s| s.to_string()).collect(),
        setup: Vec::new(),
    }
}

/// The demo's baseline and candidate profiles (as `sqlflight demo` uses them).
pub fn demo_profiles() -> (EngineSpec, EngineSpec) {
    let cfg = sqlflight::config::Config::parse(Path::new("demo.yaml"), sqlflight::commands::demo::DEMO_ENGINES)
        .expect("demo profiles parse");
    (
        cfg.file.engines["baseline"].clone(),
        cfg.file.engines["candidate"].clone(),
    )
}

pub fn engine(name: &str, spec: &EngineSpec, catalog: &Catalog) -> Arc<dyn Engine> {
    build_engine(name, spec, catalog).expect("engine builds")
}

/// Options for a run into `out`.
pub fn options(out: &Path, jobs: usize) -> PlaybackOptions {
    PlaybackOptions {
        out: out.to_path_buf(),
        jobs,
        partition: None,
        resume: false,
        timeout: Duration::from_secs(60),
        config: serde_json::Value::Null,
        dialect_failures: false,
        plan_rechecks: sqlflight_playback::DEFAULT_PLAN_RECHECKS,
    }
}

pub fn playback(corpus: &Corpus, b: Arc<dyn Engine>, c: Arc<dyn Engine>, opts: &PlaybackOptions) -> PlaybackSummary {
    run_playback(corpus, b, c, opts, &NoProgress).expect("playback runs")
}

/// Outcomes keyed by query id, timings removed: what two equivalent runs share.
pub fn comparable(outcomes: &[OutcomeRecord]) -> BTreeMap<String, OutcomeRecord> {
    outcomes
        .iter()
        .map(|o| (o.query_id.clone(), o.without_timings()))
        .collect()
}

/// A test double around a real engine: compiling a statement that contains
/// `sqlflight_test_panic` panics, and one containing `sqlflight_test_hang` sleeps
/// far past any timeout. Everything else goes to the real engine.
pub struct FaultyEngine {
    pub inner: Arc<dyn Engine>,
    pub info: EngineInfo,
}

impl FaultyEngine {
    pub fn wrap(inner: Arc<dyn Engine>) -> Arc<dyn Engine> {
        let mut info = inner.info().clone();
        info.profile = format!("{}+faults", info.profile);
        Arc::new(FaultyEngine { inner, info })
    }
}

impl Engine for FaultyEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }
    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        if sql.contains("sqlflight_test_panic") {
            panic!("deliberate test panic");
        }
        if sql.contains("sqlflight_test_hang") {
            std::thread::sleep(Duration::from_secs(3600));
        }
        self.inner.compile(sql)
    }
    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        if sql.contains("sqlflight_test_panic") {
            panic!("deliberate test panic");
        }
        self.inner.execute(sql, limits, sink)
    }
}

/// A test double around a real engine that plans a statement containing
/// `sqlflight_test_unstable_plan` two ways, alternating from call to call
/// (starting with the second way when `start` is odd): what datafusion-python 52
/// does with TPC-DS q70 at random, on demand.
pub struct UnstablePlanEngine {
    pub inner: Arc<dyn Engine>,
    pub info: EngineInfo,
    calls: std::sync::atomic::AtomicU64,
}

impl UnstablePlanEngine {
    pub fn wrap(inner: Arc<dyn Engine>, start: u64) -> Arc<dyn Engine> {
        let info = inner.info().clone();
        Arc::new(UnstablePlanEngine {
            inner,
            info,
            calls: std::sync::atomic::AtomicU64::new(start),
        })
    }
}

impl Engine for UnstablePlanEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }
    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        let mut plan = self.inner.compile(sql)?;
        if sql.contains("sqlflight_test_unstable_plan") {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            plan.logical.push_str(if call.is_multiple_of(2) {
                "\n  Hidden: x, y"
            } else {
                "\n  Hidden: y, x"
            });
        }
        Ok(plan)
    }
    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        self.inner.execute(sql, limits, sink)
    }
}

/// A process of this machine, from `/proc`.
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Its arguments joined by spaces.
    pub cmdline: String,
}

/// The processes of this machine (those that exit while being read are left out).
pub fn processes() -> Vec<ProcessInfo> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            Some(ProcessInfo {
                pid,
                ppid,
                cmdline: String::from_utf8_lossy(&cmd).replace('\0', " "),
            })
        })
        .collect()
}

/// How [`WrongEngine`] corrupts results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Adds 1 to every value of the named Int64 column.
    BumpColumn(&'static str),
    /// Drops the first row of the first batch.
    DropRow,
    /// Bumps the named column on every other execution (a flaky engine).
    Flaky(&'static str),
}

/// A test double around a real engine that returns wrong results, the fault a
/// correct engine cannot be made to produce on demand.
pub struct WrongEngine {
    pub inner: Arc<dyn Engine>,
    pub info: EngineInfo,
    pub corruption: Corruption,
    calls: std::sync::atomic::AtomicU64,
}

impl WrongEngine {
    pub fn wrap(inner: Arc<dyn Engine>, corruption: Corruption) -> Arc<dyn Engine> {
        let mut info = inner.info().clone();
        info.profile = format!("{}+wrong", info.profile);
        Arc::new(WrongEngine {
            inner,
            info,
            corruption,
            calls: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

fn bump(batch: &RecordBatch, column: &str) -> RecordBatch {
    use sqlflight_engines::arrow::array::{Array, ArrayRef, Int64Array};
    let Ok(idx) = batch.schema().index_of(column) else {
        return batch.clone();
    };
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    if let Some(a) = cols[idx].as_any().downcast_ref::<Int64Array>() {
        let bumped: Int64Array = a.iter().map(|v| v.map(|v| v + 1)).collect();
        cols[idx] = Arc::new(bumped);
    }
    RecordBatch::try_new(batch.schema(), cols).expect("same schema")
}

impl Engine for WrongEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }
    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        self.inner.compile(sql)
    }
    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut first = true;
        self.inner.execute(sql, limits, &mut |b| {
            let out = match self.corruption {
                Corruption::BumpColumn(c) => bump(b, c),
                Corruption::Flaky(c) if call % 2 == 1 => bump(b, c),
                Corruption::Flaky(_) => b.clone(),
                Corruption::DropRow if first && b.num_rows() > 0 => b.slice(1, b.num_rows() - 1),
                Corruption::DropRow => b.clone(),
            };
            first = false;
            sink(&out)
        })
    }
}

/// `GET path` from an HTTP server at `addr` (`host:port`), without keep-alive:
/// the status code and the body parsed as JSON.
pub fn http_get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    http_request(addr, "GET", path, &[], "")
}

/// One HTTP/1.1 request with `headers` and `body`; the status and the JSON body.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP endpoint");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// A child process killed when dropped (also when a test fails).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `sqlflight` binary next to the test binary (`cargo test --workspace`
/// builds it).
pub fn sqlflight_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is under target/<profile>/deps")
        .join("sqlflight");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p sqlflight` first",
        bin.display()
    );
    bin
}

/// Every file under `dir` (recursively), read as bytes: what secret scans search.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap_or_else(|e| panic!("{}: {e}", d.display())).path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.push((p, bytes));
            }
        }
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The plan facts of a playback, one line per fact (`queries  kind  fact`, cosmetic
/// facts marked), then the coverage line: what snapshot tests of real version
/// pairs compare.
pub fn fact_lines(outcomes: &[OutcomeRecord]) -> String {
    fact_lines_above(outcomes, 1)
}

/// [`fact_lines`] keeping only the facts that touch at least `min_queries`
/// queries: the structure of a large corpus's changes, without the long tail of
/// one-query facts (where a single plan whose display varies between processes
/// would make a snapshot flaky).
pub fn fact_lines_above(outcomes: &[OutcomeRecord], min_queries: usize) -> String {
    let t = sqlflight_reports::facts::FactTable::build(outcomes, None);
    let mut out = format!(
        "{} plan changes, {} only cosmetic, top {} facts cover {}\n",
        t.changed,
        t.cosmetic_only,
        sqlflight_reports::facts::TOP,
        t.covered_by_top
    );
    for r in t.facts.iter().filter(|r| r.queries.len() >= min_queries) {
        out.push_str(&format!(
            "{:>4}  {:<9}  {}{}\n",
            r.queries.len(),
            r.fact.kind.as_str(),
            r.fact.fact,
            if r.fact.cosmetic { "  [cosmetic]" } else { "" }
        ));
    }
    out
}

/// Checks the promises of plan facts on a run: every change of operator kind or
/// join type visible in a diff is a named fact of that query, and the top facts
/// explain at least `min_coverage` of the changed plans.
pub fn assert_facts_explain(outcomes: &[OutcomeRecord], min_coverage: f64) {
    let t = sqlflight_reports::facts::FactTable::build(outcomes, None);
    assert!(
        t.changed == 0 || t.covered_by_top as f64 >= min_coverage * t.changed as f64,
        "the top facts explain {} of {} changed plans:\n{}",
        t.covered_by_top,
        t.changed,
        fact_lines(outcomes)
    );
    for o in outcomes.iter().filter(|o| o.class == OutcomeClass::PlanChanged) {
        let diff = o.diff.as_deref().unwrap_or("");
        let physical = diff.split("--- baseline/logical").next().unwrap_or("");
        let changed_join_type = physical
            .lines()
            .any(|l| (l.starts_with('-') || l.starts_with('+')) && l.contains("join_type="));
        if changed_join_type {
            let before: Vec<&str> = physical
                .lines()
                .filter(|l| l.starts_with('-') && !l.starts_with("---"))
                .filter_map(|l| l.split("join_type=").nth(1))
                .collect();
            let after: Vec<&str> = physical
                .lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .filter_map(|l| l.split("join_type=").nth(1))
                .collect();
            let word = |s: &str| s.split([',', ' ']).next().unwrap_or("").to_string();
            let mut b: Vec<String> = before.iter().map(|s| word(s)).collect();
            let mut a: Vec<String> = after.iter().map(|s| word(s)).collect();
            b.sort();
            a.sort();
            if a != b {
                // Named as a join_type change, or explained by a join inserted,
                // removed or replaced.
                let join = |op: &str| op.to_ascii_lowercase().contains("join");
                assert!(
                    o.plan_facts.iter().any(|f| f.fact.contains(".join_type")
                        || (f.kind != sqlflight_diffing::FactKind::Attribute && join(&f.operator))),
                    "{}: a join type changed ({b:?} -> {a:?}) but no fact names it: {:#?}",
                    o.query_id,
                    o.plan_facts
                );
            }
        }
    }
}

/// Whether the full test tier runs: real database servers, engine releases from
/// PyPI, Chromium. `scripts/test.sh` (and so CI) sets `SQLFLIGHT_FULL_TIER=1`;
/// without it `cargo test --workspace` is hermetic and fast, and the tests that
/// need those say so and return.
pub fn full_tier() -> bool {
    std::env::var_os("SQLFLIGHT_FULL_TIER").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Returns from the calling test unless the full tier runs ([`full_tier`]).
#[macro_export]
macro_rules! full_tier_only {
    () => {
        if !$crate::full_tier() {
            eprintln!("full tier only (servers, PyPI or Chromium): set SQLFLIGHT_FULL_TIER=1 or run scripts/test.sh");
            return;
        }
    };
}
