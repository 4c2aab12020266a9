//! Gate policies: thresholds that turn runs into pass or fail, rule by rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlflight_diffing::{OutcomeClass, OutcomeRecord, PerfVerdict};

use crate::RunView;

/// A gate policy (YAML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatePolicy {
    /// Highest allowed count per outcome class, e.g. `new_failure: 0`.
    #[serde(default)]
    pub max: BTreeMap<OutcomeClass, u64>,
    /// Performance rules.
    #[serde(default)]
    pub perf: Option<PerfRules>,
    /// Coverage rules.
    #[serde(default)]
    pub coverage: Option<CoverageRules>,
    /// Whether `max: {plan_changed: N}` counts plan changes whose facts are all
    /// cosmetic (display-only details, ids, logical-only changes). Default: no.
    #[serde(default)]
    pub count_cosmetic_plan_changes: bool,
    /// Known differences file (relative to the policy): matching outcomes count as
    /// `accepted` before the rules are evaluated.
    #[serde(default)]
    pub accepted: Option<String>,
}

/// Performance rules of a gate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfRules {
    /// Highest allowed geometric mean of candidate/baseline time ratios.
    #[serde(default)]
    pub max_geomean_ratio: Option<f64>,
    /// Highest allowed ratio of total candidate time to total baseline time.
    #[serde(default)]
    pub max_total_ratio: Option<f64>,
    /// Highest allowed number of significant slowdowns beyond `slowdown_over`.
    #[serde(default)]
    pub max_slowdowns: Option<u64>,
    /// A slowdown counts when its ratio exceeds 1 + this (0.2 = 20% slower).
    #[serde(default)]
    pub slowdown_over: Option<f64>,
    /// Highest allowed ratio of candidate to baseline peak memory, per query.
    #[serde(default)]
    pub max_memory_ratio: Option<f64>,
    /// Highest allowed number of queries whose verdict stayed undecided
    /// (`inconclusive`: too noisy or too few runs within the caps).
    #[serde(default)]
    pub max_inconclusive: Option<u64>,
    /// Highest allowed number of undecided slowdowns (observed beyond the
    /// regression factor, not significant within the caps).
    #[serde(default)]
    pub max_undecided_slowdowns: Option<u64>,
    /// Highest allowed share (0 to 1) of timed queries too short to time.
    #[serde(default)]
    pub max_too_short_fraction: Option<f64>,
}

/// Coverage rules of a gate: how much must have been verified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageRules {
    /// Fewest queries with an outcome other than `skipped`.
    #[serde(default)]
    pub min_queries: Option<u64>,
    /// Smallest share of selected queries with an outcome other than `skipped`.
    #[serde(default)]
    pub min_fraction: Option<f64>,
}

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    /// The rule, as the report names it (`max new_failure`).
    pub rule: String,
    /// What the runs show.
    pub measured: f64,
    /// What the rule allows.
    pub limit: f64,
    /// Whether the rule holds.
    pub pass: bool,
}

/// A setting of a gate policy out of its range.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyProblem {
    /// The key path, e.g. `["coverage", "min_fraction"]` (empty: the whole file).
    pub path: Vec<&'static str>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl GatePolicy {
    /// Whether any performance rule is set.
    pub fn has_perf_rules(&self) -> bool {
        self.perf.as_ref().is_some_and(|p| {
            p.max_geomean_ratio.is_some()
                || p.max_total_ratio.is_some()
                || p.max_slowdowns.is_some()
                || p.max_memory_ratio.is_some()
                || p.max_inconclusive.is_some()
                || p.max_undecided_slowdowns.is_some()
                || p.max_too_short_fraction.is_some()
        })
    }

    /// The first setting out of range, if any. A policy without any rule is a
    /// mistake (it would pass everything), not a policy.
    pub fn problem(&self) -> Option<PolicyProblem> {
        let no_perf = !self.has_perf_rules();
        let no_coverage = self
            .coverage
            .as_ref()
            .is_none_or(|c| c.min_queries.is_none() && c.min_fraction.is_none());
        if self.max.is_empty() && no_perf && no_coverage {
            return Some(PolicyProblem {
                path: Vec::new(),
                message: "the gate policy has no rules, so it would pass any run".into(),
                fix: "add rules, e.g. `max: {wrong_result: 0, new_failure: 0, crash: 0}`".into(),
            });
        }
        let range = |path: Vec<&'static str>, v: Option<f64>, ok: fn(f64) -> bool, want: &str| {
            v.filter(|x| !ok(*x)).map(|x| PolicyProblem {
                message: format!("{} is {x}; it must be {want}", path.join(".")),
                path,
                fix: format!("write a number {want}"),
            })
        };
        let ratio = |x: f64| x.is_finite() && x > 0.0;
        let p = self.perf.clone().unwrap_or_default();
        let c = self.coverage.clone().unwrap_or_default();
        range(
            vec!["perf", "max_geomean_ratio"],
            p.max_geomean_ratio,
            ratio,
            "above 0 (1.1 = 10% slower)",
        )
        .or_else(|| range(vec!["perf", "max_total_ratio"], p.max_total_ratio, ratio, "above 0"))
        .or_else(|| range(vec!["perf", "max_memory_ratio"], p.max_memory_ratio, ratio, "above 0"))
        .or_else(|| {
            range(
                vec!["perf", "slowdown_over"],
                p.slowdown_over,
                |x| x.is_finite() && x >= 0.0,
                "0 or more (0.2 = 20% slower)",
            )
        })
        .or_else(|| {
            range(
                vec!["perf", "max_too_short_fraction"],
                p.max_too_short_fraction,
                |x| (0.0..=1.0).contains(&x),
                "from 0 to 1",
            )
        })
        .or_else(|| {
            range(
                vec!["coverage", "min_fraction"],
                c.min_fraction,
                |x| (0.0..=1.0).contains(&x),
                "from 0 to 1 (a share of the selected queries)",
            )
        })
    }
}

/// Evaluates `policy` over the outcomes of all `runs` together (owned or
/// borrowed run views).
// Long by design: one block per rule kind, in the order the gate reports them.
pub fn evaluate<R: std::borrow::Borrow<RunView>>(policy: &GatePolicy, runs: &[R]) -> Vec<RuleResult> {
    let all: Vec<&OutcomeRecord> = runs.iter().flat_map(|r| &r.borrow().outcomes).collect();
    let mut out = Vec::new();
    for (class, limit) in &policy.max {
        let n = all
            .iter()
            .filter(|o| o.class == *class && (policy.count_cosmetic_plan_changes || !o.is_cosmetic_plan_change()))
            .count() as f64;
        out.push(RuleResult {
            rule: format!("max {class}"),
            measured: n,
            limit: *limit as f64,
            pass: n <= *limit as f64,
        });
    }
    if policy.has_perf_rules() {
        // A results-only flight measured no timings: performance rules cannot
        // pass on it (no silent pass), whatever its outcomes say.
        let unmeasured = runs.iter().filter(|r| r.borrow().manifest.results_only).count() as f64;
        if unmeasured > 0.0 {
            out.push(RuleResult {
                rule: "runs without timings (results-only flights) under performance rules".into(),
                measured: unmeasured,
                limit: 0.0,
                pass: false,
            });
        }
    }
    if let Some(p) = &policy.perf {
        let summary = crate::perf::perf_summary(all.iter().copied());
        if let Some(limit) = p.max_geomean_ratio {
            let m = summary.as_ref().map_or(1.0, |s| s.geomean_ratio);
            out.push(RuleResult {
                rule: "max geomean time ratio".into(),
                measured: m,
                limit,
                pass: m <= limit,
            });
        }
        if let Some(limit) = p.max_total_ratio {
            let m = summary.as_ref().map_or(1.0, |s| s.total_ratio());
            out.push(RuleResult {
                rule: "max total time ratio".into(),
                measured: m,
                limit,
                pass: m <= limit,
            });
        }
        if let Some(limit) = p.max_slowdowns {
            let over = 1.0 + p.slowdown_over.unwrap_or(0.0);
            let n = all
                .iter()
                .filter_map(|o| o.flight.as_ref()?.perf.as_ref())
                .filter(|p| p.verdict == PerfVerdict::Slower && p.ratio > over)
                .count() as f64;
            out.push(RuleResult {
                rule: format!("max significant slowdowns over ×{over:.2}"),
                measured: n,
                limit: limit as f64,
                pass: n <= limit as f64,
            });
        }
        let counted = |f: &dyn Fn(&sqlflight_diffing::PerfComparison) -> bool| {
            all.iter()
                .filter_map(|o| o.flight.as_ref()?.perf.as_ref())
                .filter(|p| f(p))
                .count() as f64
        };
        if let Some(limit) = p.max_inconclusive {
            let n = counted(&|p| p.verdict == PerfVerdict::Inconclusive);
            out.push(RuleResult {
                rule: "max undecided performance verdicts".into(),
                measured: n,
                limit: limit as f64,
                pass: n <= limit as f64,
            });
        }
        if let Some(limit) = p.max_undecided_slowdowns {
            let n = counted(&|p| p.undecided_slowdown);
            out.push(RuleResult {
                rule: "max undecided slowdowns".into(),
                measured: n,
                limit: limit as f64,
                pass: n <= limit as f64,
            });
        }
        if let Some(limit) = p.max_too_short_fraction {
            let timed = counted(&|_| true);
            let short = counted(&|p| p.verdict == PerfVerdict::TooShort);
            let f = if timed > 0.0 { short / timed } else { 0.0 };
            out.push(RuleResult {
                rule: "max share of queries too short to time".into(),
                measured: f,
                limit,
                pass: f <= limit,
            });
        }
        if let Some(limit) = p.max_memory_ratio {
            let worst = all
                .iter()
                .filter_map(|o| {
                    let f = o.flight.as_ref()?;
                    let (b, c) = (f.baseline.peak_memory?, f.candidate.peak_memory?);
                    (b > 0).then(|| c as f64 / b as f64)
                })
                .fold(0.0f64, f64::max);
            out.push(RuleResult {
                rule: "max peak memory ratio".into(),
                measured: worst,
                limit,
                pass: worst <= limit,
            });
        }
    }
    if let Some(c) = &policy.coverage {
        let covered = all.iter().filter(|o| o.class != OutcomeClass::Skipped).count() as f64;
        let selected: u64 = runs.iter().map(|r| r.borrow().manifest.selected).sum();
        if let Some(limit) = c.min_queries {
            out.push(RuleResult {
                rule: "min queries verified".into(),
                measured: covered,
                limit: limit as f64,
                pass: covered >= limit as f64,
            });
        }
        if let Some(limit) = c.min_fraction {
            let f = if selected == 0 { 0.0 } else { covered / selected as f64 };
            out.push(RuleResult {
                rule: "min share of queries verified".into(),
                measured: f,
                limit,
                pass: f >= limit,
            });
        }
    }
    out
}
