//! # sqlflight-flighting
//!
//! The shadow-execution driver. [`run_flight`] executes every read query of a
//! corpus on live data with the baseline and the candidate engine, digests the
//! result batches as they stream (no row is kept), times each query until its
//! performance verdict is decided ([`perf`]: warm-up, then sequential ABBA blocks
//! judged by a randomization test, slowdowns confirmed by a second sequence),
//! re-runs the baseline when results differ to tell nondeterminism from
//! regressions, and journals one outcome per query (`match`,
//! `match_within_tolerance`, `wrong_result(...)`, `perf_regression(...)`,
//! `new_failure`, `resource_limit`, `nondeterministic(...)`, `skipped(...)`, ...)
//! with per-side median time, peak memory and the performance verdict.
//!
//! Main types: [`FlightOptions`], [`PerfPolicy`], [`AcceptedDifference`],
//! [`FlightSummary`].
//!
//! It must never write a raw result value to any file, log or report: results
//! become [`sqlflight_diffing::ResultDigest`]s inside the sink and are dropped;
//! float sums (which for one row would be the value) stay in memory; error
//! messages are rebuilt from an allow-list (`sqlflight_corpora::redact`) before they are journaled. It must never
//! run a statement it cannot prove is a read (writes, DDL, SET, transactions are
//! `skipped(write_statement)`, unparseable text is `skipped(unsupported)`).

#![warn(missing_docs)]

pub mod perf;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlflight_corpora::analysis::{OrderKey, StatementKind, analyze, dialect};
use sqlflight_corpora::{Corpus, QueryRecord};
use sqlflight_diffing::digest::{DigestBuilder, DigestComparison, FloatTolerance, ResultDigest, compare_digests};
use sqlflight_diffing::judge;
use sqlflight_diffing::{
    ErrorClass, FlightDetail, FlightSide, OutcomeClass, OutcomeRecord, PartitionSpec, PerfComparison, SideResult,
    StopReason,
};
use sqlflight_engines::arrow::datatypes::SchemaRef;
use sqlflight_engines::{Engine, EngineError, ExecLimits};
use sqlflight_runs::{Progress, RunError, RunSetup, RunSummary, Strategy, drive, panic_message};

/// When a timing difference is a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerfPolicy {
    /// Differences of medians below this many milliseconds are `same`.
    pub floor_ms: f64,
    /// Relative change below this (0.1 = 10%) is `same`.
    pub min_effect: f64,
    /// False-alarm rate of a query's verdict (split over its looks), and the
    /// false discovery rate reported across the corpus.
    pub alpha: f64,
    /// A significant slowdown at or beyond this ratio is a regression.
    pub regression_ratio: f64,
    /// Most ABBA blocks (two runs per side each) measured per query.
    pub max_pairs: usize,
    /// Most milliseconds of timed runs per query before the procedure stops.
    pub max_measure_ms: f64,
    /// Queries whose sides both run faster than this are `too_short`, not judged.
    pub min_time_ms: f64,
    /// Undecided queries whose timings vary more than this (coefficient of
    /// variation) are reported as unstable.
    pub max_cv: f64,
    /// Re-measure a slowdown beyond `regression_ratio` before calling it one.
    pub confirm: bool,
    /// The candidate's peak memory is a regression when every run of it is at
    /// least this many times every baseline run's ...
    pub memory_ratio: f64,
    /// ... and at least this many MiB above it.
    pub memory_floor_mb: f64,
}

impl Default for PerfPolicy {
    fn default() -> Self {
        PerfPolicy {
            floor_ms: 5.0,
            min_effect: 0.1,
            alpha: 0.05,
            regression_ratio: 1.5,
            max_pairs: 20,
            max_measure_ms: 60_000.0,
            min_time_ms: 0.5,
            max_cv: 0.5,
            confirm: true,
            memory_ratio: 1.5,
            memory_floor_mb: 8.0,
        }
    }
}

/// A known, intended difference: turns a matching outcome into `accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedDifference {
    /// The query it applies to ...
    #[serde(default)]
    pub query_id: Option<String>,
    /// ... or every query of a template.
    #[serde(default)]
    pub template_id: Option<String>,
    /// The outcome class being accepted (e.g. `wrong_result`).
    pub class: OutcomeClass,
    /// Why it is accepted (shown in reports).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Options of one flight.
#[derive(Debug, Clone)]
pub struct FlightOptions {
    /// Run directory.
    pub out: PathBuf,
    /// Queries in flight at once (default 1: timings are cleanest alone).
    pub jobs: usize,
    /// The share of the corpus to fly (`K/N` by template hash).
    pub partition: Option<PartitionSpec>,
    /// Continue the run in `out` instead of starting a new one.
    pub resume: bool,
    /// Timed runs per side after the warm-up.
    pub repeat: usize,
    /// `false`: a results-only flight. Each side runs each query once, the
    /// results are compared, and no timed runs or performance verdicts are
    /// made (e.g. batch against streaming, where speed is not the question).
    pub timing: bool,
    /// Per-execution time and memory limits.
    pub limits: ExecLimits,
    /// Stop taking new queries after this long (at least one query runs); the run
    /// can be resumed.
    pub budget: Option<Duration>,
    /// Extra baseline runs when results differ.
    pub reruns: usize,
    /// How far float results may differ and still match.
    pub tolerance: FloatTolerance,
    /// When a timing or memory difference is a verdict.
    pub perf: PerfPolicy,
    /// Known, intended differences.
    pub accepted: Vec<AcceptedDifference>,
    /// sqlparser dialect name for the read-only check.
    pub dialect: String,
    /// The resolved configuration, stored in the manifest.
    pub config: serde_json::Value,
    /// Set to stop cleanly (Ctrl-C): in-flight queries finish, no new ones start.
    pub stop: Arc<AtomicBool>,
    /// Query-bank mode: baseline results from an earlier flight; the baseline is
    /// not executed.
    pub snapshot: Option<Arc<Snapshot>>,
    /// Parse/plan failures on one side are dialect failures, not regressions.
    pub dialect_failures: bool,
    /// Seals the digests (see `sqlflight_diffing::digest`); `None`: unkeyed.
    pub digest_key: Option<sqlflight_diffing::DigestKey>,
}

/// Baseline digests and timings kept from an earlier flight (query-bank mode): a
/// later candidate is compared against them without running the baseline again.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The engine that produced the snapshot.
    pub baseline: sqlflight_diffing::EngineInfo,
    /// The corpus it was recorded on.
    pub corpus_hash: String,
    /// Its outcomes by query id.
    pub outcomes: std::collections::HashMap<String, OutcomeRecord>,
}

impl Snapshot {
    /// A snapshot from a flight run's manifest and outcomes.
    /// `key_id`: the id of the key this flight seals its digests with.
    pub fn from_run(
        manifest: &sqlflight_diffing::RunManifest,
        outcomes: Vec<OutcomeRecord>,
        key_id: Option<&str>,
    ) -> Result<Snapshot, String> {
        if manifest.kind != "flight" {
            return Err(format!("a snapshot must be a flight run, not a {} run", manifest.kind));
        }
        let current = sqlflight_diffing::digest::DIGEST_VERSION;
        if let Some(v) = manifest.digest_version()
            && v != current
        {
            return Err(format!(
                "its result digests are version {v} and this sqlflight computes version {current}; \
                 digests of different versions cannot be compared: record the baseline again \
                 with this sqlflight (`sqlflight flight`) and use that run as the snapshot"
            ));
        }
        if manifest.digest_key_id.as_deref() != key_id {
            return Err(match &manifest.digest_key_id {
                Some(theirs) => format!(
                    "its result digests are sealed with digest key {theirs} and this flight's key is {}; \
                     set the key the snapshot was recorded with (SQLFLIGHT_DIGEST_KEY or flight.digest_key_file)",
                    key_id.unwrap_or("not set")
                ),
                None => "its result digests are unkeyed and this flight has a digest key; \
                     run without SQLFLIGHT_DIGEST_KEY / flight.digest_key_file, or record the snapshot again with the key"
                    .to_string(),
            });
        }
        Ok(Snapshot {
            baseline: manifest.baseline.clone(),
            corpus_hash: manifest.corpus.hash.clone(),
            outcomes: outcomes.into_iter().map(|o| (o.query_id.clone(), o)).collect(),
        })
    }

    /// The engine that stands for the snapshot's baseline: it reports the
    /// snapshot's engine and version, and refuses to run anything.
    pub fn baseline_engine(&self) -> Arc<dyn Engine> {
        Arc::new(SnapshotBaseline {
            info: self.baseline.clone(),
        })
    }
}

/// The baseline of a query-bank flight: known by its recorded results only.
struct SnapshotBaseline {
    info: sqlflight_diffing::EngineInfo,
}

impl Engine for SnapshotBaseline {
    fn info(&self) -> &sqlflight_diffing::EngineInfo {
        &self.info
    }
    fn compile(&self, _: &str) -> Result<sqlflight_engines::CompiledPlan, EngineError> {
        Err(EngineError::new(
            ErrorClass::Plan,
            "the baseline is a snapshot of recorded results; it cannot compile",
        ))
    }
    fn execute(
        &self,
        _: &str,
        _: &ExecLimits,
        _: &mut dyn FnMut(&sqlflight_engines::arrow::record_batch::RecordBatch) -> Result<(), EngineError>,
    ) -> Result<sqlflight_engines::ExecStats, EngineError> {
        Err(EngineError::new(
            ErrorClass::Plan,
            "the baseline is a snapshot of recorded results; it cannot execute",
        ))
    }
}

impl Default for FlightOptions {
    fn default() -> Self {
        FlightOptions {
            out: PathBuf::from("flight"),
            jobs: 1,
            partition: None,
            resume: false,
            repeat: 2,
            timing: true,
            limits: ExecLimits::default(),
            budget: None,
            reruns: 2,
            tolerance: FloatTolerance::default(),
            perf: PerfPolicy::default(),
            accepted: Vec::new(),
            dialect: "generic".into(),
            config: serde_json::Value::Null,
            stop: Arc::new(AtomicBool::new(false)),
            snapshot: None,
            dialect_failures: false,
            digest_key: None,
        }
    }
}

/// Why a flight could not be driven to its end (a query never is the reason).
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// The shared driver failed (run directory, journal, worker pool).
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What a finished flight holds (the shared run summary).
pub type FlightSummary = RunSummary;

/// Flight as a strategy of the shared driver: execute, measure, judge.
struct Fly<'a> {
    baseline: &'a Arc<dyn Engine>,
    candidate: &'a Arc<dyn Engine>,
    opts: &'a FlightOptions,
    started: Instant,
    /// The budget never stops a run before its first query: a run that verifies
    /// nothing helps no one.
    began: AtomicBool,
}

impl Strategy for Fly<'_> {
    fn outcome(&self, rec: &QueryRecord) -> OutcomeRecord {
        self.began.store(true, Ordering::Relaxed);
        fly_one(rec, self.baseline, self.candidate, self.opts)
    }

    fn should_stop(&self) -> Option<StopReason> {
        if self.opts.stop.load(Ordering::Relaxed) {
            return Some(StopReason::Interrupted);
        }
        self.opts
            .budget
            .filter(|b| self.started.elapsed() >= *b && self.began.load(Ordering::Relaxed))
            .map(StopReason::budget)
    }
}

/// Runs the flight of `corpus` into `opts.out`.
pub fn run_flight(
    corpus: &Corpus,
    baseline: Arc<dyn Engine>,
    candidate: Arc<dyn Engine>,
    opts: &FlightOptions,
    progress: &dyn Progress,
) -> Result<FlightSummary, FlightError> {
    let setup = RunSetup {
        kind: "flight",
        corpus,
        baseline: baseline.info().clone(),
        candidate: candidate.info().clone(),
        out: &opts.out,
        partition: opts.partition,
        jobs: opts.jobs,
        timeout: opts.limits.timeout,
        resume: opts.resume,
        config: opts.config.clone(),
        dialect_failures: opts.dialect_failures,
        digest_version: Some(sqlflight_diffing::digest::DIGEST_VERSION),
        digest_key_id: opts.digest_key.as_ref().map(|k| k.id()),
        results_only: !opts.timing,
    };
    let strategy = Fly {
        baseline: &baseline,
        candidate: &candidate,
        opts,
        started: Instant::now(),
        began: AtomicBool::new(false),
    };
    Ok(drive(setup, progress, &strategy)?)
}

/// An error message as it may be journaled: only words on the allow-list of
/// [`sqlflight_corpora::redact`] survive (the driver applies the same to every
/// outcome; this is for messages used before that).
pub fn scrub(message: &str, sql: &str) -> String {
    sqlflight_corpora::redact::Redactor::for_query(sql).redact(message)
}

/// One execution of one side: its digest, time and memory, or its error.
struct Exec {
    result: Result<ResultDigest, EngineError>,
    ms: f64,
    peak: Option<u64>,
}

/// Output column indices of the ORDER BY keys, when every key is an output column.
fn order_columns(keys: &[OrderKey], schema: &SchemaRef) -> Option<Vec<usize>> {
    keys.iter()
        .map(|k| match k {
            OrderKey::Ordinal(n) if *n >= 1 && *n <= schema.fields().len() => Some(n - 1),
            OrderKey::Name(name) => schema
                .fields()
                .iter()
                .position(|f| f.name() == name)
                .or_else(|| schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name))),
            _ => None,
        })
        .collect()
}

fn run_side(
    engine: &Arc<dyn Engine>,
    sql: &str,
    order: Option<&[OrderKey]>,
    limits: &ExecLimits,
    key: Option<&sqlflight_diffing::DigestKey>,
) -> Exec {
    let start = Instant::now();
    let order = order.filter(|_| engine.results_ordered());
    let new_builder =
        |schema: &SchemaRef| DigestBuilder::new(schema, order.and_then(|k| order_columns(k, schema))).keyed(key);
    let mut builder: Option<DigestBuilder> = None;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.execute(sql, limits, &mut |batch| {
            let b = builder.get_or_insert_with(|| new_builder(&batch.schema()));
            b.update(batch);
            Ok(())
        })
    }));
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let result = match caught {
        Ok(Ok(stats)) => {
            let b = match builder {
                Some(b) => b,
                None => match &stats.schema {
                    Some(s) => new_builder(s),
                    None => DigestBuilder::new(&sqlflight_engines::arrow::datatypes::Schema::empty(), None).keyed(key),
                },
            };
            return Exec {
                result: Ok(b.finish()),
                ms,
                peak: stats.peak_memory,
            };
        }
        Ok(Err(e)) => Err(e),
        Err(payload) => Err(EngineError::new(ErrorClass::Crash, panic_message(payload.as_ref()))),
    };
    Exec { result, ms, peak: None }
}

/// The baseline's recorded result, as if it had just run.
fn from_snapshot(r: &OutcomeRecord) -> Exec {
    let side = r.flight.as_ref().map(|f| &f.baseline);
    let ms = side.and_then(|s| s.median_ms).unwrap_or(0.0);
    let result = match (&r.baseline, side.and_then(|s| s.digest.clone())) {
        (Some(SideResult::Error { error_class, error, .. }), _) => Err(EngineError::new(*error_class, error.clone())),
        (_, Some(d)) => Ok(d),
        _ => Err(EngineError::new(
            ErrorClass::Internal,
            "the snapshot holds no baseline digest for this query",
        )),
    };
    Exec {
        result,
        ms,
        peak: side.and_then(|s| s.peak_memory),
    }
}

fn side_result(e: &Result<ResultDigest, EngineError>, ms: f64) -> SideResult {
    match e {
        Ok(d) => SideResult::Ok {
            plan_hash: d.short(),
            plan: None,
            elapsed_us: (ms * 1000.0) as u64,
        },
        Err(err) => SideResult::Error {
            error_class: err.class,
            error: err.message.clone(),
            elapsed_us: (ms * 1000.0) as u64,
        },
    }
}

fn record(rec: &QueryRecord, class: OutcomeClass) -> OutcomeRecord {
    let mut o = OutcomeRecord::skipped(rec.id.clone(), rec.template().to_string(), "");
    o.class = class;
    o.skip_reason = None;
    o
}

/// Flies one query: the read-only check, then [`measure`] (warm-up, timed runs,
/// re-runs: all the I/O), then the pure judge of `sqlflight_diffing::judge`.
pub fn fly_one(rec: &QueryRecord, b: &Arc<dyn Engine>, c: &Arc<dyn Engine>, opts: &FlightOptions) -> OutcomeRecord {
    let skipped = |why: String| OutcomeRecord::skipped(rec.id.clone(), rec.template().to_string(), why);
    let analysis = match read_only(rec, &opts.dialect) {
        Ok(a) => a,
        Err(why) => return skipped(why),
    };
    let snapped = match opts.snapshot.as_deref().map(|snap| snapshot_of(snap, rec)) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(why)) => return skipped(why),
    };
    let m = measure(rec, [b, c], opts, analysis.order_by.as_deref(), snapped);
    let mut evidence = judge::FlightEvidence {
        baseline: m.baseline.first.result.as_ref().map_err(|e| e.class),
        candidate: m.candidate.first.result.as_ref().map_err(|e| e.class),
        tolerance: opts.tolerance,
        static_nondeterminism: &analysis.nondeterminism,
        baseline_unstable: m.baseline.unstable,
        candidate_unstable: m.candidate.unstable,
        reruns: 0,
        rerun_disagreed: false,
        against_snapshot: snapped.is_some(),
        perf: m.perf.as_ref(),
        memory: m.memory.as_ref(),
    };
    if judge::wants_baseline_reruns(&evidence)
        && let Ok(first) = &m.baseline.first.result
    {
        // Does the baseline agree with itself?
        for _ in 0..opts.reruns {
            evidence.reruns += 1;
            let again = run_side(
                b,
                &rec.sql,
                analysis.order_by.as_deref(),
                &opts.limits,
                opts.digest_key.as_ref(),
            );
            if !again.result.as_ref().is_ok_and(|d| agrees(first, d, opts.tolerance)) {
                evidence.rerun_disagreed = true;
                break;
            }
        }
    }
    let verdict = judge::flight(&evidence);
    let reruns = evidence.reruns;
    let mut out = record(rec, verdict.class);
    out.detail = verdict.detail;
    out.baseline = Some(side_result(&m.baseline.first.result, m.baseline.median_or_first()));
    out.candidate = Some(side_result(&m.candidate.first.result, m.candidate.median_or_first()));
    out.flight = Some(FlightDetail {
        nondeterminism: analysis.nondeterminism,
        reruns,
        perf: m.perf,
        memory: m.memory,
        baseline: m.baseline.into_side(),
        candidate: m.candidate.into_side(),
    });
    apply_accepted(&mut out, &opts.accepted);
    out
}

/// The statement's analysis when it is provably a read; otherwise the skip
/// reason saying why it is not run.
fn read_only(rec: &QueryRecord, dialect_name: &str) -> Result<sqlflight_corpora::analysis::Analysis, String> {
    let analysis = analyze(&rec.sql, dialect(dialect_name).as_ref()).map_err(|e| {
        format!(
            "unsupported: cannot prove the statement is read-only ({})",
            scrub(&e, &rec.sql)
        )
    })?;
    match analysis.kind {
        StatementKind::Read => Ok(analysis),
        StatementKind::Write | StatementKind::Ddl => {
            Err(format!("write_statement: {}", analysis.kind_detail.unwrap_or_default()))
        }
        StatementKind::Other => Err(format!("unsupported: {}", analysis.kind_detail.unwrap_or_default())),
    }
}

/// Query-bank mode: the snapshot's record of the query, or the skip reason when
/// it holds none to compare with.
fn snapshot_of<'s>(snap: &'s Snapshot, rec: &QueryRecord) -> Result<&'s OutcomeRecord, String> {
    match snap.outcomes.get(&rec.id) {
        None => Err("not_in_snapshot: the snapshot run has no result for this query".into()),
        Some(r) if r.class == OutcomeClass::Skipped => Err(r.skip_reason.clone().unwrap_or_default()),
        Some(r) => Ok(r),
    }
}

/// What one side's runs of a query measured.
struct SideRuns {
    /// The warm-up run: its digest is the one compared.
    first: Exec,
    times_ms: Vec<f64>,
    /// The peak memory of every run (engines that account for it).
    peaks: Vec<u64>,
    /// A later run's result disagreed with the first's.
    unstable: bool,
}

impl SideRuns {
    fn new(first: Exec) -> SideRuns {
        SideRuns {
            peaks: first.peak.into_iter().collect(),
            first,
            times_ms: Vec::new(),
            unstable: false,
        }
    }

    fn median_or_first(&self) -> f64 {
        stats::median(&self.times_ms).unwrap_or(self.first.ms)
    }

    fn into_side(self) -> FlightSide {
        FlightSide {
            digest: self.first.result.ok(),
            median_ms: stats::median(&self.times_ms),
            times_ms: self.times_ms,
            peak_memory: self.peaks.iter().copied().max(),
            peaks: self.peaks,
        }
    }
}

/// What [`measure`] hands to the judge.
struct Measured {
    baseline: SideRuns,
    candidate: SideRuns,
    perf: Option<PerfComparison>,
    memory: Option<sqlflight_diffing::MemoryComparison>,
}

/// Runs both sides: the warm-up (whose results are compared), then timed runs in
/// interleaved ABBA blocks as many as the sequential procedure of [`perf`] needs,
/// each also checking its side's result against the warm-up's. Against a
/// snapshot, the baseline's recorded result, times and peaks stand in for its runs.
fn measure(
    rec: &QueryRecord,
    [b, c]: [&Arc<dyn Engine>; 2],
    opts: &FlightOptions,
    order: Option<&[OrderKey]>,
    snapped: Option<&OutcomeRecord>,
) -> Measured {
    let key = opts.digest_key.as_ref();
    let limits = &opts.limits;
    let mut baseline = SideRuns::new(match snapped {
        Some(r) => from_snapshot(r),
        None => run_side(b, &rec.sql, order, limits, key),
    });
    let mut candidate = SideRuns::new(run_side(c, &rec.sql, order, limits, key));
    let mut perf = None;
    if opts.timing && baseline.first.result.is_ok() && candidate.first.result.is_ok() {
        let fixed: Option<Vec<f64>> = snapped
            .and_then(|r| r.flight.as_ref())
            .map(|f| f.baseline.times_ms.clone());
        let mut run = |side: perf::Side| {
            let (eng, runs) = match side {
                perf::Side::Baseline => (b, &mut baseline),
                perf::Side::Candidate => (c, &mut candidate),
            };
            let x = run_side(eng, &rec.sql, order, limits, key);
            runs.peaks.extend(x.peak);
            match (&x.result, &runs.first.result) {
                (Ok(d), Ok(f)) if !agrees(f, d, opts.tolerance) => runs.unstable = true,
                // A timed run past the time or memory limit says nothing about the
                // result: it only ends the measuring (no verdict from a partial sample).
                (Err(e), _) if matches!(e.class, ErrorClass::Timeout | ErrorClass::Resource) => {}
                (Err(_), _) => runs.unstable = true,
                _ => {}
            }
            // A run that fails gives no timing: stop measuring this query.
            x.result.is_ok().then_some(x.ms)
        };
        let measured = perf::measure(&opts.perf, opts.repeat.div_ceil(2), fixed.as_deref(), &mut run);
        baseline.times_ms = measured.baseline_ms;
        candidate.times_ms = measured.candidate_ms;
        perf = measured.perf;
    }
    if let Some(f) = snapped.and_then(|r| r.flight.as_ref()) {
        baseline.peaks = f.baseline.peaks.clone();
        if baseline.peaks.is_empty() {
            baseline.peaks.extend(f.baseline.peak_memory);
        }
    }
    let memory = opts
        .timing
        .then(|| {
            sqlflight_diffing::MemoryComparison::judge(
                &baseline.peaks,
                &candidate.peaks,
                opts.perf.memory_ratio,
                (opts.perf.memory_floor_mb * (1u64 << 20) as f64) as u64,
            )
        })
        .flatten()
        .map(|mut m| {
            // Against a snapshot, like its timings: it informs, it never counts.
            m.regression &= snapped.is_none();
            m
        });
    Measured {
        baseline,
        candidate,
        perf,
        memory,
    }
}

/// Whether two runs' results are the same result (within the float tolerance).
fn agrees(a: &ResultDigest, b: &ResultDigest, tol: FloatTolerance) -> bool {
    matches!(
        compare_digests(a, b, tol),
        DigestComparison::Match | DigestComparison::MatchWithinTolerance(_)
    )
}

/// The performance verdict of candidate timings `c` against baseline timings `b`
/// in one look at fixed samples (the run-to-run comparison and tests; flights use
/// the sequential procedure of [`perf`]).
pub fn perf_verdict(b: &[f64], c: &[f64], policy: &PerfPolicy) -> Option<PerfComparison> {
    match perf::look(b, c, policy, policy.alpha, 0, true, false) {
        perf::Look::Verdict(p) => Some(p),
        perf::Look::Next | perf::Look::Straddles => None,
    }
}

/// Turns an outcome listed in the known differences into `accepted`.
pub fn apply_accepted(out: &mut OutcomeRecord, accepted: &[AcceptedDifference]) {
    let hit = accepted.iter().find(|a| {
        a.class == out.class
            && (a.query_id.as_deref() == Some(out.query_id.as_str())
                || a.template_id.as_deref() == Some(out.template_id.as_str()))
    });
    if let Some(a) = hit {
        let was = match &out.detail {
            Some(d) => format!("{}({d})", out.class),
            None => out.class.to_string(),
        };
        out.detail = Some(match &a.reason {
            Some(r) => format!("{was}: {r}"),
            None => was,
        });
        out.class = OutcomeClass::Accepted;
    }
}
