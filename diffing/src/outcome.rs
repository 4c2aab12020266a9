//! Outcome classes and the outcome record.

use serde::{Deserialize, Serialize};

use crate::facts::{PlanFact, plan_facts};
use crate::plan::{NormalizedPlan, change_signature, plan_diff};

/// What kind of error an engine returned. Classified, not just stored as text, so
/// that a change of class (a clean plan error turning into an internal error) is
/// itself a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The SQL text could not be parsed.
    Parse,
    /// Semantic or unsupported: unknown table or column, type errors, not implemented.
    Plan,
    /// Failed while running.
    Execution,
    /// Ran out of memory, disk or another limit.
    Resource,
    /// An engine bug: internal error, failed assertion, an optimizer rule failure.
    Internal,
    /// Did not finish in the allotted time.
    Timeout,
    /// Panicked, or its process died.
    Crash,
}

impl ErrorClass {
    /// The class's name in runs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Parse => "parse",
            ErrorClass::Plan => "plan",
            ErrorClass::Execution => "execution",
            ErrorClass::Resource => "resource",
            ErrorClass::Internal => "internal",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Crash => "crash",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome classes of playback and flight (DESIGN.md section 6), written as
/// snake_case. Playback produces the first ten; flight produces the shared failure
/// classes and the result classes from `Match` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// Both sides compiled to the same plan.
    SamePlan,
    /// The plans differ.
    PlanChanged,
    /// The baseline compiles or runs it, the candidate fails.
    NewFailure,
    /// The baseline fails, the candidate compiles or runs it.
    Fixed,
    /// Both fail with the same error class.
    BothFailSame,
    /// Both fail, with different error classes.
    BothFailChanged,
    /// Both fail, the candidate with an internal error where the baseline's was clean.
    NewInternalError,
    /// The candidate panicked or its process died.
    Crash,
    /// The candidate did not finish in time.
    Timeout,
    /// Not run (the reason says why).
    Skipped,
    /// Flight: results equal.
    Match,
    /// Flight: results equal within the float tolerance.
    MatchWithinTolerance,
    /// Flight: results differ; `detail` says which part (schema, row_count, columns, order).
    WrongResult,
    /// Flight: the candidate hit the memory limit where the baseline did not.
    ResourceLimit,
    /// Flight: the query's results are not determined (`detail` says why).
    Nondeterministic,
    /// A difference listed in the known-differences file.
    Accepted,
    /// Flight: results equal, but the candidate is significantly slower beyond
    /// the policy's factor, confirmed by a second block.
    PerfRegression,
}

impl OutcomeClass {
    /// Every class, in report order.
    pub const ALL: [OutcomeClass; 17] = [
        OutcomeClass::WrongResult,
        OutcomeClass::NewFailure,
        OutcomeClass::NewInternalError,
        OutcomeClass::Crash,
        OutcomeClass::Timeout,
        OutcomeClass::ResourceLimit,
        OutcomeClass::PerfRegression,
        OutcomeClass::PlanChanged,
        OutcomeClass::Nondeterministic,
        OutcomeClass::Accepted,
        OutcomeClass::MatchWithinTolerance,
        OutcomeClass::Match,
        OutcomeClass::BothFailChanged,
        OutcomeClass::Fixed,
        OutcomeClass::BothFailSame,
        OutcomeClass::SamePlan,
        OutcomeClass::Skipped,
    ];

    /// The class's name in runs and reports (snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::SamePlan => "same_plan",
            OutcomeClass::PlanChanged => "plan_changed",
            OutcomeClass::NewFailure => "new_failure",
            OutcomeClass::Fixed => "fixed",
            OutcomeClass::BothFailSame => "both_fail_same",
            OutcomeClass::BothFailChanged => "both_fail_changed",
            OutcomeClass::NewInternalError => "new_internal_error",
            OutcomeClass::Crash => "crash",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::Skipped => "skipped",
            OutcomeClass::Match => "match",
            OutcomeClass::MatchWithinTolerance => "match_within_tolerance",
            OutcomeClass::WrongResult => "wrong_result",
            OutcomeClass::ResourceLimit => "resource_limit",
            OutcomeClass::Nondeterministic => "nondeterministic",
            OutcomeClass::Accepted => "accepted",
            OutcomeClass::PerfRegression => "perf_regression",
        }
    }

    /// Whether this class is a regression (makes the exit code 1).
    pub fn is_regression(self) -> bool {
        matches!(
            self,
            OutcomeClass::NewFailure
                | OutcomeClass::NewInternalError
                | OutcomeClass::Crash
                | OutcomeClass::Timeout
                | OutcomeClass::WrongResult
                | OutcomeClass::ResourceLimit
                | OutcomeClass::PerfRegression
        )
    }
}

impl std::fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side's result for one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SideResult {
    /// The side compiled (playback) or ran (flight).
    Ok {
        /// Plan hash (playback) or result digest hash (flight).
        plan_hash: String,
        #[serde(skip)]
        /// The normalized plan (playback; kept in memory for diffs and facts, not stored).
        plan: Option<NormalizedPlan>,
        /// Compile or run time, microseconds.
        elapsed_us: u64,
    },
    /// The side failed.
    Error {
        /// How it failed.
        error_class: ErrorClass,
        /// The engine's message, redacted before it is journaled.
        error: String,
        /// Time until the failure, microseconds.
        elapsed_us: u64,
    },
}

impl SideResult {
    /// A compiled side whose plan hash is taken from `plan`.
    pub fn ok(plan: NormalizedPlan, elapsed_us: u64) -> Self {
        SideResult::Ok {
            plan_hash: plan.hash(),
            plan: Some(plan),
            elapsed_us,
        }
    }

    /// The error class of a failed side.
    pub fn error_class(&self) -> Option<ErrorClass> {
        match self {
            SideResult::Ok { .. } => None,
            SideResult::Error { error_class, .. } => Some(*error_class),
        }
    }
}

/// One line of `outcomes.jsonl`. `query_id`, `template_id` and `class` are the
/// stable keys scripts rely on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// The query's id in the corpus.
    pub query_id: String,
    /// The query's template (fingerprint).
    pub template_id: String,
    /// The tenant the query came from (from the corpus record), for per-tenant
    /// analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The outcome class.
    pub class: OutcomeClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Why the query was skipped (class `skipped`).
    pub skip_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What the baseline did.
    pub baseline: Option<SideResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What the candidate did.
    pub candidate: Option<SideResult>,
    /// Root-cause group of a plan change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_signature: Option<String>,
    /// What the candidate's plan does differently, as named facts (plan changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_facts: Vec<PlanFact>,
    /// Unified diff of the normalized plans, for plan changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Which part of a result differs (`wrong_result`), why a result is not
    /// determined (`nondeterministic`), what was accepted (`accepted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Flight figures: digests, timings, memory, performance verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flight: Option<FlightDetail>,
}

/// One side of a flight.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FlightSide {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The digest of the first run's result.
    pub digest: Option<crate::digest::ResultDigest>,
    /// Wall time of each timed run, milliseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times_ms: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Median of the timed runs, milliseconds.
    pub median_ms: Option<f64>,
    /// Peak memory the engine accounted for, bytes (max over runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory: Option<u64>,
    /// The peak memory of each run (warm-up and timed runs), bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peaks: Vec<u64>,
}

/// Peak memory of the candidate against the baseline, where the engine accounts
/// for it. Accounting is far steadier than wall time, so the test is strict
/// instead of statistical: the candidate grew only when **every** one of its
/// runs peaked at least `ratio_limit` times (and `floor` bytes) above **every**
/// baseline run, over at least two runs a side (the warm-up and the timed runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryComparison {
    /// Median candidate peak over median baseline peak.
    pub ratio: f64,
    /// Median peaks, bytes.
    pub baseline: u64,
    /// Median candidate peak, bytes.
    pub candidate: u64,
    /// Runs per side.
    pub runs: [u32; 2],
    /// The candidate needs more memory on every run, beyond the limits.
    pub regression: bool,
}

impl MemoryComparison {
    /// Judges per-run peaks `b` and `c` (bytes); `None` with fewer than two runs
    /// a side or no peak at all.
    pub fn judge(b: &[u64], c: &[u64], ratio_limit: f64, floor: u64) -> Option<MemoryComparison> {
        if b.len() < 2 || c.len() < 2 {
            return None;
        }
        let median = |v: &[u64]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let (mb, mc) = (median(b), median(c));
        if mb == 0 && mc == 0 {
            return None;
        }
        let b_max = b.iter().copied().max().unwrap_or(0);
        let c_min = c.iter().copied().min().unwrap_or(0);
        let regression = c_min as f64 >= ratio_limit * b_max as f64 && c_min.saturating_sub(b_max) >= floor;
        Some(MemoryComparison {
            ratio: mc as f64 / (mb.max(1)) as f64,
            baseline: mb,
            candidate: mc,
            runs: [b.len() as u32, c.len() as u32],
            regression,
        })
    }

    /// One line for people: `peak memory 3.10x (2.1 MiB -> 6.5 MiB, every run of 3 and 3)`.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        format!(
            "peak memory {:.2}x ({:.1} MiB -> {:.1} MiB{}, {} and {} runs)",
            self.ratio,
            mib(self.baseline),
            mib(self.candidate),
            if self.regression { ", every run" } else { "" },
            self.runs[0],
            self.runs[1]
        )
    }
}

/// Performance verdict of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerfVerdict {
    /// Significantly faster.
    Faster,
    /// Significantly slower.
    Slower,
    /// Within the policy's limits of equal.
    Same,
    /// Not decided within the measuring budget.
    Inconclusive,
    /// Both sides run faster than this machine can time reliably: not judged.
    TooShort,
}

/// Candidate against baseline timings of one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfComparison {
    /// Candidate median / baseline median.
    pub ratio: f64,
    /// Two-sided p-value of the randomization test of mean log times at the
    /// deciding look (None: too few runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The verdict.
    pub verdict: PerfVerdict,
    /// A significant slowdown beyond the policy's factor, confirmed by a second
    /// block: counts as a regression.
    #[serde(default)]
    pub regression: bool,
    /// Confidence interval of the ratio of geometric means (bootstrap, 1 - alpha).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
    /// Interleaved ABBA blocks measured (each: two runs per side).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pairs: u32,
    /// Why the procedure stopped where it did (decided, cap, unstable, too short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A slowdown re-measured in a fresh block: whether it reproduced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Still undecided at the cap, but observed beyond the regression factor:
    /// counts as a regression (no silent pass).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undecided_slowdown: bool,
    /// Coefficient of variation of the baseline's and the candidate's times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<[f64; 2]>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PerfComparison {
    /// A comparison with only a ratio, verdict and p-value (older runs, tests).
    pub fn simple(ratio: f64, p_value: Option<f64>, verdict: PerfVerdict, regression: bool) -> Self {
        PerfComparison {
            ratio,
            p_value,
            verdict,
            regression,
            ci: None,
            pairs: 0,
            reason: None,
            confirmed: None,
            undecided_slowdown: false,
            cv: None,
        }
    }

    /// Whether this counts as a performance regression: a confirmed significant
    /// slowdown beyond the policy, or an undecided one observed beyond it.
    pub fn counts(&self) -> bool {
        self.regression || self.undecided_slowdown
    }

    /// One line for people: `2.31x slower (95% CI 2.10-2.52x, 6 pairs, p=0.002, confirmed)`.
    pub fn describe(&self) -> String {
        let what = match self.verdict {
            PerfVerdict::Slower => format!("{:.2}x slower", self.ratio),
            PerfVerdict::Faster => format!("{:.2}x faster", 1.0 / self.ratio.max(f64::MIN_POSITIVE)),
            PerfVerdict::Same => format!("same ({:.2}x)", self.ratio),
            PerfVerdict::TooShort => "too short to time".to_string(),
            PerfVerdict::Inconclusive if self.undecided_slowdown => {
                format!("undecided slowdown {:.2}x", self.ratio)
            }
            PerfVerdict::Inconclusive => format!("undecided ({:.2}x)", self.ratio),
        };
        let mut parts = Vec::new();
        if let Some([lo, hi]) = self.ci {
            parts.push(format!("CI {lo:.2}-{hi:.2}x"));
        }
        if self.pairs > 0 {
            parts.push(format!("{} pairs", self.pairs));
        }
        if let Some(p) = self.p_value {
            parts.push(format!("p={p:.3}"));
        }
        match self.confirmed {
            Some(true) => parts.push("confirmed".into()),
            Some(false) => parts.push("not confirmed".into()),
            None => {}
        }
        if let Some(r) = &self.reason
            && self.verdict == PerfVerdict::Inconclusive
        {
            parts.push(r.clone());
        }
        if parts.is_empty() {
            what
        } else {
            format!("{what} ({})", parts.join(", "))
        }
    }
}

/// Flight figures of one query.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FlightDetail {
    /// The baseline's figures.
    pub baseline: FlightSide,
    /// The candidate's figures.
    pub candidate: FlightSide,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The timing verdict (timed flights).
    pub perf: Option<PerfComparison>,
    /// Peak memory verdict, where the engine accounts for memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryComparison>,
    /// Extra baseline runs made to check a mismatch for nondeterminism.
    #[serde(default)]
    pub reruns: u32,
    /// Static reasons the result may not be determined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nondeterminism: Vec<String>,
}

impl OutcomeRecord {
    /// A plan change whose facts are all cosmetic (display-only details, ids,
    /// a logical-only difference): reported apart, and gates can ignore it.
    pub fn is_cosmetic_plan_change(&self) -> bool {
        self.class == OutcomeClass::PlanChanged
            && !self.plan_facts.is_empty()
            && self.plan_facts.iter().all(|f| f.cosmetic)
    }

    /// A skipped query.
    pub fn skipped(query_id: String, template_id: String, reason: impl Into<String>) -> Self {
        OutcomeRecord {
            query_id,
            template_id,
            tenant: None,
            class: OutcomeClass::Skipped,
            skip_reason: Some(reason.into()),
            baseline: None,
            candidate: None,
            change_signature: None,
            plan_facts: Vec::new(),
            diff: None,
            detail: None,
            flight: None,
        }
    }

    /// Whether this outcome is a regression: its class is one, or the flight found
    /// a significant slowdown beyond the policy.
    pub fn is_regression(&self) -> bool {
        self.class.is_regression()
            || self.flight.as_ref().is_some_and(|f| {
                f.perf.as_ref().is_some_and(PerfComparison::counts) || f.memory.as_ref().is_some_and(|m| m.regression)
            })
    }

    /// The record without timings: what must be identical between two runs of the
    /// same corpus and profiles (used by resume and partition checks).
    pub fn without_timings(&self) -> OutcomeRecord {
        let strip = |s: &Option<SideResult>| {
            s.as_ref().map(|s| match s {
                SideResult::Ok { plan_hash, plan, .. } => SideResult::Ok {
                    plan_hash: plan_hash.clone(),
                    plan: plan.clone(),
                    elapsed_us: 0,
                },
                SideResult::Error { error_class, error, .. } => SideResult::Error {
                    error_class: *error_class,
                    error: error.clone(),
                    elapsed_us: 0,
                },
            })
        };
        let flight = self.flight.as_ref().map(|f| {
            let side = |s: &FlightSide| FlightSide {
                digest: s.digest.clone(),
                ..Default::default()
            };
            FlightDetail {
                baseline: side(&f.baseline),
                candidate: side(&f.candidate),
                perf: None,
                memory: None,
                ..f.clone()
            }
        });
        OutcomeRecord {
            baseline: strip(&self.baseline),
            candidate: strip(&self.candidate),
            flight,
            ..self.clone()
        }
    }
}

/// Classifies one compiled query from both sides' results (DESIGN.md section 6):
/// the error table of [`crate::judge::error_pair`], else the same or a changed plan.
pub fn classify_playback(baseline: &SideResult, candidate: &SideResult) -> OutcomeClass {
    let stage = crate::judge::Stage::Compile;
    if let Some(class) = crate::judge::error_pair(stage, baseline.error_class(), candidate.error_class()) {
        return class;
    }
    match (baseline, candidate) {
        (SideResult::Ok { plan_hash: a, .. }, SideResult::Ok { plan_hash: b, .. }) if a == b => OutcomeClass::SamePlan,
        _ => OutcomeClass::PlanChanged,
    }
}

/// For cross-engine runs (`dialect_failures: true`): a query that one engine
/// cannot parse or plan while the other can is a dialect difference, not a
/// regression. It becomes `skipped` with the reason
/// `dialect_failure: <side> <class> error`, so reports group it apart and gates
/// do not count it. Crashes, timeouts, internal and execution errors stay what
/// they are.
pub fn mark_dialect_failure(o: &mut OutcomeRecord) {
    use ErrorClass as E;
    let class = |s: &Option<SideResult>| s.as_ref().and_then(|s| s.error_class());
    let dialect = |c: Option<E>| matches!(c, Some(E::Parse | E::Plan));
    let (b, c) = (class(&o.baseline), class(&o.candidate));
    let side = match o.class {
        OutcomeClass::NewFailure if dialect(c) => "candidate",
        OutcomeClass::Fixed if dialect(b) => "baseline",
        OutcomeClass::BothFailChanged if dialect(b) || dialect(c) => "both",
        _ => return,
    };
    let which = if side == "baseline" { b } else { c.or(b) };
    o.skip_reason = Some(format!(
        "dialect_failure: {side} {} error",
        which.map_or("unknown", |c| c.as_str())
    ));
    o.class = OutcomeClass::Skipped;
}

/// Builds the full outcome record of one compiled query.
pub fn playback_outcome(
    query_id: String,
    template_id: String,
    baseline: SideResult,
    candidate: SideResult,
) -> OutcomeRecord {
    let class = classify_playback(&baseline, &candidate);
    let (mut change_signature_, mut diff, mut facts) = (None, None, Vec::new());
    if class == OutcomeClass::PlanChanged
        && let (SideResult::Ok { plan: Some(a), .. }, SideResult::Ok { plan: Some(b), .. }) = (&baseline, &candidate)
    {
        change_signature_ = Some(change_signature(a, b));
        diff = Some(plan_diff(a, b));
        facts = plan_facts(a, b);
    }
    OutcomeRecord {
        query_id,
        template_id,
        tenant: None,
        class,
        skip_reason: None,
        baseline: Some(baseline),
        candidate: Some(candidate),
        change_signature: change_signature_,
        plan_facts: facts,
        diff,
        detail: None,
        flight: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_grows_only_when_every_candidate_run_is_beyond_every_baseline_run() {
        const MIB: u64 = 1 << 20;
        let judge = |b: &[u64], c: &[u64]| MemoryComparison::judge(b, c, 1.5, 8 * MIB);
        let grew = judge(&[6 * MIB, 7 * MIB], &[40 * MIB, 46 * MIB]).unwrap();
        assert!(grew.regression);
        assert!((grew.ratio - 43.0 / 7.0).abs() < 0.5, "{grew:?}");
        assert!(grew.describe().contains("every run"), "{}", grew.describe());
        // One candidate run within reach of the baseline: not a regression.
        assert!(!judge(&[6 * MIB, 30 * MIB], &[40 * MIB, 46 * MIB]).unwrap().regression);
        // Twice as much, but only 2 MiB more: under the floor.
        assert!(!judge(&[2 * MIB, 2 * MIB], &[4 * MIB, 4 * MIB]).unwrap().regression);
        // One run a side, or nothing accounted: no verdict.
        assert!(judge(&[MIB], &[40 * MIB]).is_none());
        assert!(judge(&[0, 0], &[0, 0]).is_none());
        // Less memory is never a regression.
        assert!(!judge(&[40 * MIB, 46 * MIB], &[6 * MIB, 7 * MIB]).unwrap().regression);
    }

    fn ok(p: &str) -> SideResult {
        SideResult::ok(NormalizedPlan::new(p, Some(p)), 1)
    }
    fn err(c: ErrorClass) -> SideResult {
        SideResult::Error {
            error_class: c,
            error: "boom".into(),
            elapsed_us: 1,
        }
    }

    #[test]
    fn dialect_failures_are_skipped_not_regressions() {
        use ErrorClass::*;
        let mark = |b: SideResult, c: SideResult| {
            let mut o = playback_outcome("q".into(), "t".into(), b, c);
            mark_dialect_failure(&mut o);
            (o.class, o.skip_reason)
        };
        assert_eq!(
            mark(ok("a"), err(Parse)),
            (
                OutcomeClass::Skipped,
                Some("dialect_failure: candidate parse error".into())
            )
        );
        assert_eq!(
            mark(err(Plan), ok("a")),
            (
                OutcomeClass::Skipped,
                Some("dialect_failure: baseline plan error".into())
            )
        );
        // Real failures stay what they are.
        assert_eq!(mark(ok("a"), err(Execution)).0, OutcomeClass::NewFailure);
        assert_eq!(mark(ok("a"), err(Internal)).0, OutcomeClass::NewFailure);
        assert_eq!(mark(ok("a"), err(Crash)).0, OutcomeClass::Crash);
        assert_eq!(mark(ok("a"), ok("b")).0, OutcomeClass::PlanChanged);
    }

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        use OutcomeClass as P;
        assert_eq!(classify_playback(&ok("a"), &ok("a")), P::SamePlan);
        assert_eq!(classify_playback(&ok("a"), &ok("b")), P::PlanChanged);
        assert_eq!(classify_playback(&ok("a"), &err(Plan)), P::NewFailure);
        assert_eq!(classify_playback(&ok("a"), &err(Crash)), P::Crash);
        assert_eq!(classify_playback(&ok("a"), &err(Timeout)), P::Timeout);
        assert_eq!(classify_playback(&err(Plan), &ok("a")), P::Fixed);
        assert_eq!(classify_playback(&err(Parse), &err(Parse)), P::BothFailSame);
        assert_eq!(classify_playback(&err(Crash), &err(Crash)), P::BothFailSame);
        assert_eq!(classify_playback(&err(Plan), &err(Internal)), P::NewInternalError);
        assert_eq!(classify_playback(&err(Plan), &err(Execution)), P::BothFailChanged);
        assert_eq!(classify_playback(&err(Internal), &err(Plan)), P::BothFailChanged);
        assert_eq!(classify_playback(&err(Plan), &err(Crash)), P::Crash);
        assert_eq!(classify_playback(&err(Timeout), &err(Internal)), P::BothFailChanged);
    }

    #[test]
    fn record_json_has_stable_keys() {
        let r = playback_outcome("q1".into(), "00000000000000ff".into(), ok("A: x"), ok("B: y"));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["query_id"], "q1");
        assert_eq!(v["template_id"], "00000000000000ff");
        assert_eq!(v["class"], "plan_changed");
        assert_eq!(v["baseline"]["status"], "ok");
        assert_eq!(v["change_signature"], "A -> B");
        let back: OutcomeRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.class, OutcomeClass::PlanChanged);
    }
}
