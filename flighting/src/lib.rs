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
use sqlflight_diffing::{
    ErrorClass, FlightDetail, FlightSide, OutcomeClass, OutcomeRecord, PartitionSpec, PerfComparison, SideResult,
};
use sqlflight_engines::arrow::datatypes::SchemaRef;
use sqlflight_engines::{Engine, EngineError, ExecLimits};

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
            max_pairs: 10,
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
    #[serde(default)]
    pub query_id: Option<String>,
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
    pub out: PathBuf,
    /// Queries in flight at once (default 1: timings are cleanest alone).
    pub jobs: usize,
    pub partition: Option<PartitionSpec>,
    pub resume: bool,
    /// Timed runs per side after the warm-up.
    pub repeat: usize,
    /// `false`: a results-only flight. Each side runs each query once, the
    /// results are compared, and no timed runs or performance verdicts are
    /// made (e.g. batch against streaming, where speed is not the question).
    pub timing: bool,
    pub limits: ExecLimits,
    /// Stop taking new queries after this long (at least one query runs); the run
    /// can be resumed.
    pub budget: Option<Duration>,
    /// Extra baseline runs when results differ.
    pub reruns: usize,
    pub tolerance: FloatTolerance,
    pub perf: PerfPolicy,
    pub accepted: Vec<AcceptedDifference>,
    /// sqlparser dialect name for the read-only check.
    pub dialect: String,
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
    pub baseline: sqlflight_diffing::EngineInfo,
    pub corpus_hash: String,
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
            repeat: 5,
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

/// Errors of a flight are those of the shared driver.
pub type FlightError = sqlflight_playback::PlaybackError;

/// What a flight holds at its end (the same shape as a playback's).
pub type FlightSummary = sqlflight_playback::PlaybackSummary;

/// Receives progress (same contract as playback's).
pub use sqlflight_playback::Progress;

/// Runs the flight of `corpus` into `opts.out`.
pub fn run_flight(
    corpus: &Corpus,
    baseline: Arc<dyn Engine>,
    candidate: Arc<dyn Engine>,
    opts: &FlightOptions,
    progress: &dyn Progress,
) -> Result<FlightSummary, FlightError> {
    let setup = sqlflight_playback::RunSetup {
        kind: "flight",
        corpus,
        baseline: baseline.as_ref(),
        candidate: candidate.as_ref(),
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
    let started = Instant::now();
    // The budget never stops a run before its first query: a run that verifies
    // nothing helps no one.
    let began = AtomicBool::new(false);
    let should_stop = || {
        if opts.stop.load(Ordering::Relaxed) {
            return Some("interrupted".to_string());
        }
        opts.budget
            .filter(|b| started.elapsed() >= *b && began.load(Ordering::Relaxed))
            .map(|b| format!("time budget of {b:?} used up"))
    };
    let work = |rec: &QueryRecord| {
        began.store(true, Ordering::Relaxed);
        fly_one(rec, &baseline, &candidate, opts)
    };
    let (manifest, outcomes) = sqlflight_playback::drive(setup, progress, &should_stop, &work)?;
    Ok(FlightSummary {
        dir: opts.out.clone(),
        manifest,
        outcomes,
    })
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
        Err(payload) => Err(EngineError::new(
            ErrorClass::Crash,
            sqlflight_playback::panic_message(payload.as_ref()),
        )),
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

/// Flies one query: analysis, warm-up, timed runs, comparison, re-runs.
pub fn fly_one(rec: &QueryRecord, b: &Arc<dyn Engine>, c: &Arc<dyn Engine>, opts: &FlightOptions) -> OutcomeRecord {
    let template = rec.template().to_string();
    let analysis = match analyze(&rec.sql, dialect(&opts.dialect).as_ref()) {
        Ok(a) => a,
        Err(e) => {
            return OutcomeRecord::skipped(
                rec.id.clone(),
                template,
                format!(
                    "unsupported: cannot prove the statement is read-only ({})",
                    scrub(&e, &rec.sql)
                ),
            );
        }
    };
    match analysis.kind {
        StatementKind::Read => {}
        StatementKind::Write | StatementKind::Ddl => {
            let what = analysis.kind_detail.unwrap_or_default();
            return OutcomeRecord::skipped(rec.id.clone(), template, format!("write_statement: {what}"));
        }
        StatementKind::Other => {
            let what = analysis.kind_detail.unwrap_or_default();
            return OutcomeRecord::skipped(rec.id.clone(), template, format!("unsupported: {what}"));
        }
    }
    let order = analysis.order_by.as_deref();
    let limits = &opts.limits;
    // Query-bank mode: the baseline's recorded result stands in for its runs.
    let snapped = match &opts.snapshot {
        None => None,
        Some(snap) => match snap.outcomes.get(&rec.id) {
            None => {
                return OutcomeRecord::skipped(
                    rec.id.clone(),
                    template,
                    "not_in_snapshot: the snapshot run has no result for this query",
                );
            }
            Some(r) if r.class == OutcomeClass::Skipped => {
                return OutcomeRecord::skipped(rec.id.clone(), template, r.skip_reason.clone().unwrap_or_default());
            }
            Some(r) => Some(r),
        },
    };
    // Warm-up: the first run of each side; its digest is the one compared.
    let wb = match snapped {
        Some(r) => from_snapshot(r),
        None => run_side(b, &rec.sql, order, limits, opts.digest_key.as_ref()),
    };
    let wc = run_side(c, &rec.sql, order, limits, opts.digest_key.as_ref());
    let mut detail = FlightDetail {
        nondeterminism: analysis.nondeterminism.clone(),
        ..Default::default()
    };
    // The peak memory of every run of each side (engines that account for it).
    let mut peaks_b: Vec<u64> = wb.peak.into_iter().collect();
    let mut peaks_c: Vec<u64> = wc.peak.into_iter().collect();
    let mut times_b = Vec::new();
    let mut times_c = Vec::new();
    let mut b_unstable = false;
    let mut c_unstable = false;
    let mut perf_outcome = None;
    if opts.timing && wb.result.is_ok() && wc.result.is_ok() {
        // Timed runs in interleaved ABBA blocks, as many as the sequential
        // procedure needs (see `perf`); each run also checks its side's result.
        let fixed: Option<Vec<f64>> = snapped
            .and_then(|r| r.flight.as_ref())
            .map(|f| f.baseline.times_ms.clone());
        let mut run = |side: perf::Side| {
            let (eng, first, peaks, unstable) = match side {
                perf::Side::Baseline => (b, &wb, &mut peaks_b, &mut b_unstable),
                perf::Side::Candidate => (c, &wc, &mut peaks_c, &mut c_unstable),
            };
            let x = run_side(eng, &rec.sql, order, limits, opts.digest_key.as_ref());
            peaks.extend(x.peak);
            match (&x.result, &first.result) {
                (Ok(d), Ok(f)) if !agrees(f, d, opts.tolerance) => *unstable = true,
                // A timed run past the time or memory limit says nothing about the
                // result: it only ends the measuring (no verdict from a partial sample).
                (Err(e), _) if matches!(e.class, ErrorClass::Timeout | ErrorClass::Resource) => {}
                (Err(_), _) => *unstable = true,
                _ => {}
            }
            // A run that fails gives no timing: stop measuring this query.
            x.result.is_ok().then_some(x.ms)
        };
        let measured = perf::measure(&opts.perf, opts.repeat.div_ceil(2), fixed.as_deref(), &mut run);
        times_b = measured.baseline_ms;
        times_c = measured.candidate_ms;
        perf_outcome = measured.perf;
    }
    if let Some(f) = snapped.and_then(|r| r.flight.as_ref()) {
        peaks_b = f.baseline.peaks.clone();
        if peaks_b.is_empty() {
            peaks_b.extend(f.baseline.peak_memory);
        }
    }
    if opts.timing {
        detail.memory = sqlflight_diffing::MemoryComparison::judge(
            &peaks_b,
            &peaks_c,
            opts.perf.memory_ratio,
            (opts.perf.memory_floor_mb * (1u64 << 20) as f64) as u64,
        )
        .map(|mut m| {
            // Against a snapshot, like its timings: it informs, it never counts.
            m.regression &= snapped.is_none();
            m
        });
    }
    let med_b = stats::median(&times_b);
    let med_c = stats::median(&times_c);
    detail.baseline = FlightSide {
        digest: wb.result.as_ref().ok().cloned(),
        median_ms: med_b,
        times_ms: times_b.clone(),
        peak_memory: peaks_b.iter().copied().max(),
        peaks: peaks_b,
    };
    detail.candidate = FlightSide {
        digest: wc.result.as_ref().ok().cloned(),
        median_ms: med_c,
        times_ms: times_c.clone(),
        peak_memory: peaks_c.iter().copied().max(),
        peaks: peaks_c,
    };
    let mut out = record(rec, OutcomeClass::Match);
    out.baseline = Some(side_result(&wb.result, med_b.unwrap_or(wb.ms)));
    out.candidate = Some(side_result(&wc.result, med_c.unwrap_or(wc.ms)));
    match (&wb.result, &wc.result) {
        (Ok(db), Ok(dc)) => {
            match compare_digests(db, dc, opts.tolerance) {
                DigestComparison::Match => out.class = OutcomeClass::Match,
                DigestComparison::MatchWithinTolerance(cols) => {
                    out.class = OutcomeClass::MatchWithinTolerance;
                    out.detail = Some(format!("columns:[{}]", cols.join(",")));
                }
                DigestComparison::Mismatch(part) => {
                    if !analysis.nondeterminism.is_empty() {
                        out.class = OutcomeClass::Nondeterministic;
                        out.detail = Some(analysis.nondeterminism.join("; "));
                    } else if b_unstable {
                        out.class = OutcomeClass::Nondeterministic;
                        out.detail = Some("the baseline's results differ between its own runs".into());
                    } else {
                        // Dynamic check: does the baseline agree with itself?
                        let mut disagrees = false;
                        // A snapshot's baseline cannot be re-run.
                        let reruns = if snapped.is_some() { 0 } else { opts.reruns };
                        for _ in 0..reruns {
                            detail.reruns += 1;
                            let again = run_side(b, &rec.sql, order, limits, opts.digest_key.as_ref());
                            if !again.result.as_ref().is_ok_and(|d| agrees(db, d, opts.tolerance)) {
                                disagrees = true;
                                break;
                            }
                        }
                        if disagrees {
                            out.class = OutcomeClass::Nondeterministic;
                            out.detail = Some(format!(
                                "the baseline's results differ between its own runs (re-run {} time(s))",
                                detail.reruns
                            ));
                        } else {
                            out.class = OutcomeClass::WrongResult;
                            out.detail = Some(if snapped.is_some() {
                                format!("{part} (against a snapshot)")
                            } else {
                                part
                            });
                        }
                    }
                }
            }
            if matches!(out.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance) {
                // Equal first results, but a side disagreed with itself later.
                if b_unstable {
                    out.class = OutcomeClass::Nondeterministic;
                    out.detail = Some("the baseline's results differ between its own runs".into());
                } else if c_unstable {
                    out.class = OutcomeClass::WrongResult;
                    out.detail = Some("the candidate's results differ between its own runs".into());
                }
            }
            detail.perf = perf_outcome;
            if matches!(out.class, OutcomeClass::Match | OutcomeClass::MatchWithinTolerance) {
                // Slower, or needing more memory on every run: a performance
                // regression, with what regressed in the detail.
                let slower = detail
                    .perf
                    .as_ref()
                    .filter(|p| p.regression)
                    .map(PerfComparison::describe);
                let bigger = detail
                    .memory
                    .as_ref()
                    .filter(|m| m.regression)
                    .map(sqlflight_diffing::MemoryComparison::describe);
                let said: Vec<String> = slower.into_iter().chain(bigger).collect();
                if !said.is_empty() {
                    out.class = OutcomeClass::PerfRegression;
                    out.detail = Some(said.join("; "));
                }
            }
        }
        (Ok(_), Err(e)) => {
            out.class = match e.class {
                ErrorClass::Crash => OutcomeClass::Crash,
                ErrorClass::Timeout => OutcomeClass::Timeout,
                ErrorClass::Resource => OutcomeClass::ResourceLimit,
                _ => OutcomeClass::NewFailure,
            };
        }
        (Err(_), Ok(_)) => out.class = OutcomeClass::Fixed,
        (Err(eb), Err(ec)) => {
            out.class = if eb.class == ec.class {
                OutcomeClass::BothFailSame
            } else {
                match ec.class {
                    ErrorClass::Crash => OutcomeClass::Crash,
                    ErrorClass::Timeout => OutcomeClass::Timeout,
                    ErrorClass::Internal if !matches!(eb.class, ErrorClass::Crash | ErrorClass::Timeout) => {
                        OutcomeClass::NewInternalError
                    }
                    _ => OutcomeClass::BothFailChanged,
                }
            };
        }
    }
    out.flight = Some(detail);
    apply_accepted(&mut out, &opts.accepted);
    out
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
    perf::judge(b, c, policy, policy.alpha, 0, true)
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
