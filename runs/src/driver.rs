//! The one run driver of playback and flight: corpus selection by partition, a
//! pool of `jobs` workers, the journal (start markers, outcome lines, resume),
//! progress, the stop check (interrupt, time budget) and the closing of the run.
//!
//! A run kind plugs in as a [`Strategy`]: what one query's outcome is (compile
//! both sides, or execute and measure them) and when to stop taking work. The
//! driver owns everything else, so a new kind of run gets resume, partitions,
//! crash isolation and redaction without writing any of it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rayon::prelude::*;
use sqlflight_corpora::{Corpus, QueryRecord};
use sqlflight_diffing::{
    CorpusInfo, EngineInfo, OutcomeClass, OutcomeRecord, PartitionSpec, RunManifest, RunStatus, SideResult, StopReason,
};

use crate::{Journal, JournalError};

/// Receives progress; implementations draw bars, print lines, or nothing.
pub trait Progress: Sync {
    /// `total` queries selected, `done` of them already in the journal (resume).
    fn start(&self, total: u64, done: u64);
    /// One query's outcome was journaled.
    fn completed(&self, outcome: &OutcomeRecord);
    /// The run ended (completed, stopped or failed).
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: u64, _: u64) {}
    fn completed(&self, _: &OutcomeRecord) {}
    fn finish(&self) {}
}

/// What a run kind contributes to the shared driver.
pub trait Strategy: Sync {
    /// The outcome of one query (called on a pool thread; must not panic past
    /// its own guards: engines are called under `catch_unwind` by the kinds).
    fn outcome(&self, rec: &QueryRecord) -> OutcomeRecord;
    /// Asked before each query: a reason ends the run (resumably) before it.
    fn should_stop(&self) -> Option<StopReason> {
        None
    }
}

/// Why a run could not be driven to its end (a query never is the reason).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run directory or its journal could not be written or read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The worker pool could not be started.
    #[error("cannot start {jobs} worker threads: {message}")]
    Pool {
        /// Workers asked for.
        jobs: usize,
        /// What the thread pool said.
        message: String,
    },
}

/// What a finished (completed or stopped) run holds.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// The manifest as closed.
    pub manifest: RunManifest,
    /// Every outcome of the run (resumed ones included), sorted by query id.
    pub outcomes: Vec<OutcomeRecord>,
}

impl RunSummary {
    /// Outcomes that are regressions ([`OutcomeRecord::is_regression`]).
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
    /// `playback` or `flight`.
    pub kind: &'a str,
    /// The corpus replayed.
    pub corpus: &'a Corpus,
    /// The baseline engine, as the manifest records it.
    pub baseline: EngineInfo,
    /// The candidate engine, as the manifest records it.
    pub candidate: EngineInfo,
    /// The run directory.
    pub out: &'a Path,
    /// The share of the corpus this run covers.
    pub partition: Option<PartitionSpec>,
    /// Workers (at least 1).
    pub jobs: usize,
    /// The per-query time limit, recorded in the manifest.
    pub timeout: Duration,
    /// Continue the run in `out` instead of starting a new one.
    pub resume: bool,
    /// The resolved configuration, recorded in the manifest.
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

impl RunSetup<'_> {
    fn manifest(&self, selected: u64) -> RunManifest {
        let corpus = self.corpus;
        RunManifest {
            format: sqlflight_diffing::run::RUN_FORMAT.into(),
            version: sqlflight_diffing::run::RUN_VERSION,
            kind: self.kind.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            corpus: CorpusInfo {
                name: corpus.manifest.name.clone(),
                path: corpus.dir.as_ref().map(|d| d.display().to_string()),
                hash: corpus.hash.clone(),
                queries: corpus.records.len() as u64,
            },
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            config: self.config.clone(),
            partition: self.partition,
            selected,
            jobs: self.jobs.max(1),
            timeout_ms: self.timeout.as_millis() as u64,
            started_at: now(),
            finished_at: None,
            status: RunStatus::Running,
            resumed: 0,
            stopped_reason: None,
            digest_version: self.digest_version,
            digest_key_id: self.digest_key_id.clone(),
            results_only: self.results_only,
            counts: Default::default(),
        }
    }
}

/// The shared driver of playback and flight: opens (or resumes) the run's
/// journal, spreads the queries still to do over `jobs` rayon workers, appends
/// each outcome as it completes, and closes the run. The strategy's
/// `should_stop` is asked before each query; when it names a reason, no new
/// query starts and the run is closed as stopped (resumable).
pub fn drive(setup: RunSetup<'_>, progress: &dyn Progress, strategy: &dyn Strategy) -> Result<RunSummary, RunError> {
    let selected = select(setup.corpus, setup.partition);
    let manifest = setup.manifest(selected.len() as u64);
    let journal = Journal::open(setup.out, manifest, setup.resume)?;
    let interrupted = journal.interrupted().clone();
    progress.start(journal.manifest().selected, journal.done_count() as u64);
    let kind = setup.kind.to_string();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(setup.jobs.max(1))
        .thread_name(move |i| format!("sqlflight-{kind}-{i}"))
        .build()
        .map_err(|e| RunError::Pool {
            jobs: setup.jobs,
            message: e.to_string(),
        })?;
    let stopped = Mutex::new(None::<StopReason>);
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
        if let Some(reason) = strategy.should_stop() {
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
        let mut outcome = strategy.outcome(rec);
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
    let (manifest, outcomes) = match stopped.into_inner().ok().flatten() {
        Some(reason) => journal.stop(now(), reason)?,
        None => journal.complete(now())?,
    };
    Ok(RunSummary {
        dir: setup.out.to_path_buf(),
        manifest,
        outcomes,
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

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into());
    format!("panicked: {msg}")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
