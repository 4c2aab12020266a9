//! # sqlflight-playback
//!
//! The compile-only replay driver. [`run_playback`] compiles every selected query
//! of a corpus with a baseline and a candidate [`Engine`], classifies each pair of
//! results, and appends one outcome line per query to the run directory's
//! `outcomes.jsonl` as soon as it completes. Work is spread over a rayon pool
//! (`jobs`); `--partition K/N` selects templates by hash; a run interrupted at any
//! point is resumed with nothing lost or duplicated (`sqlflight_runs::Journal`).
//!
//! Main types: [`PlaybackOptions`], [`PlaybackSummary`], [`Progress`],
//! [`PlaybackError`].
//!
//! It must never let one query end the run: a panic in an engine becomes a `crash`
//! outcome, a compile that does not finish within the timeout becomes `timeout`
//! (the stuck compile is abandoned on its own thread). It never writes a plan or
//! error of a query anywhere but the run directory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sqlflight_corpora::{Corpus, QueryRecord};
use sqlflight_diffing::outcome::playback_outcome;
use sqlflight_diffing::{
    CorpusInfo, ErrorClass, NormalizedPlan, OutcomeClass, OutcomeRecord, PartitionSpec, RunManifest, RunStatus,
    SideResult,
};
use sqlflight_engines::{Engine, EngineError};

pub use sqlflight_runs::{Journal, JournalError};

/// Stack of a compile thread. Parsers, planners and the `Drop` of expression trees
/// recurse once per nesting level, so a statement of 20,000 `+` terms needs far
/// more than a default stack. The size is reserved address space: only the pages a
/// compile touches are ever backed by memory. `SQLFLIGHT_COMPILE_STACK` (bytes,
/// at least 64 KiB) overrides it.
pub const COMPILE_STACK: usize = 256 << 20;

/// The compile thread's stack size: [`COMPILE_STACK`] or `SQLFLIGHT_COMPILE_STACK`.
pub fn compile_stack() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("SQLFLIGHT_COMPILE_STACK")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= 64 << 10)
            .unwrap_or(COMPILE_STACK)
    })
}

/// Name prefix of the threads that run compiles; a panic hook can recognise them.
pub const COMPILE_THREAD_PREFIX: &str = "sqlflight-compile";

/// Options of one playback run.
#[derive(Debug, Clone)]
pub struct PlaybackOptions {
    /// Run directory.
    pub out: PathBuf,
    /// Worker threads (at least 1).
    pub jobs: usize,
    pub partition: Option<PartitionSpec>,
    /// Continue the run in `out` instead of starting a new one.
    pub resume: bool,
    /// Per-compile time limit.
    pub timeout: Duration,
    /// The resolved configuration, stored in the manifest.
    pub config: serde_json::Value,
    /// Parse/plan failures on one side are dialect failures, not regressions.
    pub dialect_failures: bool,
    /// More compiles per side of a changed plan ([`DEFAULT_PLAN_RECHECKS`]).
    pub plan_rechecks: usize,
}

/// Receives progress; implementations draw bars, print lines, or nothing.
pub trait Progress: Sync {
    /// `total` queries selected, `done` of them already in the journal (resume).
    fn start(&self, total: u64, done: u64);
    fn completed(&self, outcome: &OutcomeRecord);
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: u64, _: u64) {}
    fn completed(&self, _: &OutcomeRecord) {}
    fn finish(&self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot start {jobs} worker threads: {message}")]
    Pool { jobs: usize, message: String },
}

/// What a finished run holds.
#[derive(Debug, Clone)]
pub struct PlaybackSummary {
    pub dir: PathBuf,
    pub manifest: RunManifest,
    /// Every outcome of the run (resumed ones included), sorted by query id.
    pub outcomes: Vec<OutcomeRecord>,
}

impl PlaybackSummary {
    pub fn regressions(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_regression()).count()
    }
}

/// The queries of `corpus` that partition `p` selects.
pub fn select(corpus: &Corpus, p: Option<PartitionSpec>) -> Vec<&QueryRecord> {
    corpus
        .records
        .iter()
        .filter(|r| p.is_none_or(|p| r.template().partition(p.n) == p.k))
        .collect()
}

/// What identifies a run, for its manifest.
pub struct RunSetup<'a> {
    pub kind: &'a str,
    pub corpus: &'a Corpus,
    pub baseline: &'a dyn Engine,
    pub candidate: &'a dyn Engine,
    pub out: &'a std::path::Path,
    pub partition: Option<PartitionSpec>,
    pub jobs: usize,
    pub timeout: Duration,
    pub resume: bool,
    pub config: serde_json::Value,
    /// Cross-engine runs: parse/plan failures on one side are dialect failures
    /// (`skipped`), not regressions.
    pub dialect_failures: bool,
    /// The result-digest version of the outcomes (flight), recorded in the manifest.
    pub digest_version: Option<u32>,
    /// The id of the key the digests are sealed with (flight), recorded in the manifest.
    pub digest_key_id: Option<String>,
    /// A results-only flight (no timed runs), recorded in the manifest.
    pub results_only: bool,
}

/// The shared driver of playback and flight: opens (or resumes) the run's
/// journal, spreads the queries still to do over `jobs` rayon workers, appends
/// each outcome as it completes, and closes the run. `should_stop` is asked before
/// each query; when it names a reason, no new query starts and the run is closed as
/// stopped (resumable).
pub fn drive(
    setup: RunSetup<'_>,
    progress: &dyn Progress,
    should_stop: &(dyn Fn() -> Option<String> + Sync),
    work: &(dyn Fn(&QueryRecord) -> OutcomeRecord + Sync),
) -> Result<(RunManifest, Vec<OutcomeRecord>), PlaybackError> {
    let selected = select(setup.corpus, setup.partition);
    let corpus = setup.corpus;
    let manifest = RunManifest {
        format: sqlflight_diffing::run::RUN_FORMAT.into(),
        version: sqlflight_diffing::run::RUN_VERSION,
        kind: setup.kind.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        corpus: CorpusInfo {
            name: corpus.manifest.name.clone(),
            path: corpus.dir.as_ref().map(|d| d.display().to_string()),
            hash: corpus.hash.clone(),
            queries: corpus.records.len() as u64,
        },
        baseline: setup.baseline.info().clone(),
        candidate: setup.candidate.info().clone(),
        config: setup.config,
        partition: setup.partition,
        selected: selected.len() as u64,
        jobs: setup.jobs.max(1),
        timeout_ms: setup.timeout.as_millis() as u64,
        started_at: now(),
        finished_at: None,
        status: RunStatus::Running,
        resumed: 0,
        stopped_reason: None,
        digest_version: setup.digest_version,
        digest_key_id: setup.digest_key_id,
        results_only: setup.results_only,
        counts: Default::default(),
    };
    let journal = Journal::open(setup.out, manifest, setup.resume)?;
    let interrupted = journal.interrupted().clone();
    progress.start(journal.manifest().selected, journal.done_count() as u64);
    let kind = setup.kind.to_string();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(setup.jobs.max(1))
        .thread_name(move |i| format!("sqlflight-{kind}-{i}"))
        .build()
        .map_err(|e| PlaybackError::Pool {
            jobs: setup.jobs,
            message: e.to_string(),
        })?;
    let stopped = Mutex::new(None::<String>);
    let write_err = Mutex::new(None::<JournalError>);
    let record = |outcome: &OutcomeRecord| match journal.append(outcome) {
        Ok(()) => progress.completed(outcome),
        Err(e) => {
            if let Ok(mut slot) = write_err.lock() {
                slot.get_or_insert(e);
            }
        }
    };
    // Runs one query: stop checks, the start marker, the work, the outcome line.
    let run_one = |rec: &QueryRecord, solo: bool| {
        if write_err.lock().is_ok_and(|e| e.is_some()) {
            return; // the journal failed: stop taking work
        }
        if let Some(reason) = should_stop() {
            if let Ok(mut s) = stopped.lock() {
                s.get_or_insert(reason);
            }
            return;
        }
        if let Err(e) = journal.mark_started(&rec.id, solo) {
            if let Ok(mut slot) = write_err.lock() {
                slot.get_or_insert(e);
            }
            return;
        }
        let mut outcome = work(rec);
        if setup.dialect_failures {
            sqlflight_diffing::outcome::mark_dialect_failure(&mut outcome);
        }
        if outcome.tenant.is_none() {
            outcome.tenant = rec.tenant.clone();
        }
        redact_outcome(&mut outcome, &rec.sql);
        record(&outcome);
    };
    let todo: Vec<&QueryRecord> = selected.into_iter().filter(|r| !journal.is_done(&r.id)).collect();
    // A query that took an earlier process down when it ran alone: `crash`, never again.
    for rec in todo.iter().filter(|r| interrupted.crashed.contains(&r.id)) {
        let mut outcome = process_crash_outcome(rec);
        outcome.tenant = rec.tenant.clone();
        record(&outcome);
    }
    // Queries in flight when an earlier process died: again, one at a time, first,
    // so that a second death names its one culprit.
    pool.install(|| {
        for rec in todo.iter().filter(|r| interrupted.retry.contains(&r.id)) {
            run_one(rec, true);
        }
    });
    let rest: Vec<&QueryRecord> = todo
        .into_iter()
        .filter(|r| !interrupted.crashed.contains(&r.id) && !interrupted.retry.contains(&r.id))
        .collect();
    pool.install(|| rest.par_iter().with_max_len(1).for_each(|rec| run_one(rec, false)));
    progress.finish();
    if let Some(e) = write_err.into_inner().ok().flatten() {
        return Err(e.into());
    }
    Ok(match stopped.into_inner().ok().flatten() {
        Some(reason) => journal.stop(now(), reason)?,
        None => journal.complete(now())?,
    })
}

/// Rebuilds the engine messages of an outcome (the sides' errors) from the
/// allow-list of [`sqlflight_corpora::redact`]: engines echo table values and the
/// query's literals in their errors, in any quoting, and neither may reach the run.
/// (Skip reasons are sqlflight's own words; where one quotes a parser's message,
/// its maker redacts it.)
pub fn redact_outcome(outcome: &mut OutcomeRecord, sql: &str) {
    let redactor = sqlflight_corpora::redact::Redactor::for_query(sql);
    for side in [&mut outcome.baseline, &mut outcome.candidate].into_iter().flatten() {
        if let SideResult::Error { error, .. } = side {
            *error = redactor.redact(error);
        }
    }
}

/// The outcome of a query that ended an earlier process of the run while it ran
/// alone (stack overflow, abort, killed for memory): `crash`, with the reason.
pub fn process_crash_outcome(rec: &QueryRecord) -> OutcomeRecord {
    let mut o = OutcomeRecord::skipped(rec.id.clone(), rec.template().to_string(), "");
    o.class = OutcomeClass::Crash;
    o.skip_reason = None;
    o.detail = Some(
        "the sqlflight process died while this query ran alone (stack overflow, abort or out of memory); \
         recorded as crash on resume and not run again"
            .into(),
    );
    o
}

/// Replays `corpus` through both engines into the run directory `opts.out`.
pub fn run_playback(
    corpus: &Corpus,
    baseline: Arc<dyn Engine>,
    candidate: Arc<dyn Engine>,
    opts: &PlaybackOptions,
    progress: &dyn Progress,
) -> Result<PlaybackSummary, PlaybackError> {
    let setup = RunSetup {
        kind: "playback",
        corpus,
        baseline: baseline.as_ref(),
        candidate: candidate.as_ref(),
        out: &opts.out,
        partition: opts.partition,
        jobs: opts.jobs,
        timeout: opts.timeout,
        resume: opts.resume,
        config: opts.config.clone(),
        dialect_failures: opts.dialect_failures,
        digest_version: None,
        digest_key_id: None,
        results_only: false,
    };
    let (manifest, outcomes) = drive(setup, progress, &|| None, &|rec| {
        play_one(rec, &baseline, &candidate, opts.timeout, opts.plan_rechecks)
    })?;
    Ok(PlaybackSummary {
        dir: opts.out.clone(),
        manifest,
        outcomes,
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How many more times each side compiles a query whose two plans differ
/// (default of [`PlaybackOptions::plan_rechecks`]). Some engines plan one query
/// in more than one way from call to call (datafusion-python 52's hidden
/// `grouping()` columns of TPC-DS q70 and q86 come out in hash-set order: two
/// plans, each about half the time); a recheck tells that apart from a plan
/// change. With two equally likely plans on each side, two rechecks miss such
/// a query in 1 of 32 cases (eight: 1 in 130,000); a stable plan change costs
/// four more compiles. `playback.plan_rechecks` sets it (0 to 20).
pub const DEFAULT_PLAN_RECHECKS: usize = 2;

/// Compiles one query on both sides and classifies it; a plan change is
/// rechecked (`rechecks` more compiles per side, see [`DEFAULT_PLAN_RECHECKS`]).
pub fn play_one(
    rec: &QueryRecord,
    baseline: &Arc<dyn Engine>,
    candidate: &Arc<dyn Engine>,
    timeout: Duration,
    rechecks: usize,
) -> OutcomeRecord {
    let template = rec.template().to_string();
    if rec.sql.trim().is_empty() {
        return OutcomeRecord::skipped(rec.id.clone(), template, "empty statement");
    }
    let b = compile_guarded(baseline, &rec.sql, timeout);
    let c = compile_guarded(candidate, &rec.sql, timeout);
    let mut out = playback_outcome(rec.id.clone(), template, b, c);
    if out.class == OutcomeClass::PlanChanged && rechecks > 0 {
        recheck_plans(&mut out, &rec.sql, [baseline, candidate], timeout, rechecks);
    }
    out
}

/// Compiles both sides of a changed plan again: a side that compiles to more
/// than one plan makes the outcome `nondeterministic` when the two sides can
/// produce the same plan, and notes it on a plan change when they cannot.
fn recheck_plans(out: &mut OutcomeRecord, sql: &str, sides: [&Arc<dyn Engine>; 2], timeout: Duration, rechecks: usize) {
    let hash = |r: &Option<SideResult>| match r {
        Some(SideResult::Ok { plan_hash, .. }) => Some(plan_hash.clone()),
        _ => None,
    };
    let (Some(b0), Some(c0)) = (hash(&out.baseline), hash(&out.candidate)) else {
        return;
    };
    let mut plans = [
        std::collections::BTreeSet::from([b0]),
        std::collections::BTreeSet::from([c0]),
    ];
    let mut compiles = 1;
    for _ in 0..rechecks {
        compiles += 1;
        for (engine, seen) in sides.iter().zip(plans.iter_mut()) {
            if let SideResult::Ok { plan_hash, .. } = compile_guarded(engine, sql, timeout) {
                seen.insert(plan_hash);
            }
        }
        if !plans[0].is_disjoint(&plans[1]) {
            break;
        }
    }
    let [b, c] = &plans;
    if b.len() == 1 && c.len() == 1 {
        return;
    }
    let said = format!(
        "plan not determined: in {compiles} compiles the baseline planned it {} way(s), the candidate {}",
        b.len(),
        c.len()
    );
    if b.is_disjoint(c) {
        out.detail = Some(format!("{said}; no plan of one side is the other's"));
    } else {
        out.class = OutcomeClass::Nondeterministic;
        out.detail = Some(format!("{said}; both sides can plan it the same way"));
        out.change_signature = None;
        out.plan_facts.clear();
        out.diff = None;
    }
}

/// Compiles on a thread of its own, so a panic becomes `crash` and a compile that
/// hangs becomes `timeout` while the run goes on (the hung thread is abandoned and
/// keeps its engine handle alive until it ends).
pub fn compile_guarded(engine: &Arc<dyn Engine>, sql: &str, timeout: Duration) -> SideResult {
    let start = Instant::now();
    let elapsed = |s: Instant| s.elapsed().as_micros() as u64;
    let (tx, rx) = mpsc::sync_channel(1);
    let thread_engine = Arc::clone(engine);
    let thread_sql = sql.to_string();
    let spawned = std::thread::Builder::new()
        .name(format!("{COMPILE_THREAD_PREFIX}-{}", engine.info().profile))
        .stack_size(compile_stack())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| thread_engine.compile(&thread_sql)));
            let _ = tx.send(r); // the receiver is gone only after a timeout
        });
    let result = match spawned {
        Err(e) => Err(EngineError::new(
            ErrorClass::Internal,
            format!("cannot start a compile thread: {e}"),
        )),
        Ok(_) => match rx.recv_timeout(timeout) {
            Ok(Ok(r)) => r,
            Ok(Err(payload)) => Err(EngineError::new(ErrorClass::Crash, panic_message(payload.as_ref()))),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(EngineError::new(
                ErrorClass::Timeout,
                format!("did not compile within {timeout:?}"),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(EngineError::new(
                ErrorClass::Crash,
                "the compile thread ended without a result",
            )),
        },
    };
    match result {
        Ok(plan) => SideResult::ok(
            NormalizedPlan::new(&plan.logical, plan.physical.as_deref()),
            elapsed(start),
        ),
        Err(e) => SideResult::Error {
            error_class: e.class,
            error: e.message,
            elapsed_us: elapsed(start),
        },
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into());
    format!("panicked: {msg}")
}

/// Classes in report order with their counts (zero counts included).
pub fn class_counts(outcomes: &[OutcomeRecord]) -> Vec<(OutcomeClass, u64)> {
    OutcomeClass::ALL
        .iter()
        .map(|c| (*c, outcomes.iter().filter(|o| o.class == *c).count() as u64))
        .collect()
}
