//! # sqlflight-playback
//!
//! The compile-only replay driver. [`run_playback`] compiles every selected query
//! of a corpus with a baseline and a candidate [`Engine`], classifies each pair of
//! results, and appends one outcome line per query to the run directory's
//! `outcomes.jsonl` as soon as it completes. Work is spread over a rayon pool
//! (`jobs`); `--partition K/N` selects templates by hash; a run interrupted at any
//! point is resumed with nothing lost or duplicated (`sqlflight_runs::Journal`).
//!
//! It is a [`sqlflight_runs::Strategy`] of the shared run driver, which owns
//! selection, the pool, the journal and resume.
//!
//! Main types: [`PlaybackOptions`], [`PlaybackSummary`], [`PlaybackError`].
//!
//! It must never let one query end the run: a panic in an engine becomes a `crash`
//! outcome, a compile that does not finish within the timeout becomes `timeout`
//! (the stuck compile is abandoned on its own thread). It never writes a plan or
//! error of a query anywhere but the run directory.

#![warn(missing_docs)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sqlflight_corpora::{Corpus, QueryRecord};
use sqlflight_diffing::outcome::playback_outcome;
use sqlflight_diffing::{ErrorClass, NormalizedPlan, OutcomeClass, OutcomeRecord, PartitionSpec, SideResult};
use sqlflight_engines::{Engine, EngineError};
use sqlflight_runs::{Progress, RunError, RunSetup, RunSummary, Strategy, drive, panic_message};

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
    /// The share of the corpus to replay (`K/N` by template hash).
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

/// Why a playback could not be driven to its end (a query never is the reason).
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    /// The shared driver failed (run directory, journal, worker pool).
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What a finished playback holds (the shared run summary).
pub type PlaybackSummary = RunSummary;

/// Playback as a strategy of the shared driver: compile both sides.
struct Compile<'a> {
    baseline: &'a Arc<dyn Engine>,
    candidate: &'a Arc<dyn Engine>,
    timeout: Duration,
    rechecks: usize,
}

impl Strategy for Compile<'_> {
    fn outcome(&self, rec: &QueryRecord) -> OutcomeRecord {
        play_one(rec, self.baseline, self.candidate, self.timeout, self.rechecks)
    }
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
        baseline: baseline.info().clone(),
        candidate: candidate.info().clone(),
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
    let strategy = Compile {
        baseline: &baseline,
        candidate: &candidate,
        timeout: opts.timeout,
        rechecks: opts.plan_rechecks,
    };
    Ok(drive(setup, progress, &strategy)?)
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
