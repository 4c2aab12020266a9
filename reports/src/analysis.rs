//! Analyses over a run's outcome records: counts per template and per tenant,
//! percentiles of candidate/baseline time ratios, and the templates (or tenants)
//! with the most impact, impact = regressions × slowdown.
//!
//! Computed in one pass ([`AnalysisAcc::add`]) in memory proportional to the
//! groups and the timed queries (one `f64` per timed query), never to the run's
//! records: a report of ten million outcomes cannot hold a data frame of them
//! (this module used polars' eager frames until reports had to stream). The
//! quantiles are exact, with linear interpolation between order statistics
//! (numpy's and polars' default).

use std::collections::HashMap;

use serde::Serialize;
use sqlflight_diffing::{OutcomeRecord, PerfVerdict};

/// Percentiles of the candidate/baseline time ratio over the timed queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioPercentiles {
    /// Timed queries.
    pub queries: u64,
    /// Median ratio.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest ratio.
    pub max: f64,
}

/// One template's (or tenant's) figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// The template id or tenant.
    pub key: String,
    /// Queries in the group.
    pub queries: u64,
    /// Queries that are regressions (class, or a significant slowdown beyond the policy).
    pub regressions: u64,
    /// Queries significantly slower (any size).
    pub slower: u64,
    /// Median time ratio of its timed queries.
    pub p50_ratio: Option<f64>,
    /// 90th percentile time ratio of its timed queries.
    pub p90_ratio: Option<f64>,
    /// Mean time ratio of the regressions that were timed.
    pub regression_slowdown: Option<f64>,
    /// regressions × max(1, regression_slowdown): what to look at first.
    pub impact: f64,
}

/// All analyses of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Outcomes analysed.
    pub queries: u64,
    /// Time ratio percentiles (flights with timings).
    pub ratios: Option<RatioPercentiles>,
    /// Sorted by impact, then regressions, then key.
    pub by_template: Vec<GroupStats>,
    /// Empty when no outcome names a tenant. Sorted like `by_template`.
    pub by_tenant: Vec<GroupStats>,
}

/// The linear-interpolation quantile `p` of sorted `v` (not empty).
pub fn quantile(v: &[f64], p: f64) -> f64 {
    let pos = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[derive(Debug, Default)]
struct GroupAcc {
    queries: u64,
    regressions: u64,
    slower: u64,
    ratios: Vec<f64>,
    reg_ratio_sum: f64,
    reg_ratios: u64,
}

impl GroupAcc {
    fn finish(mut self, key: String) -> GroupStats {
        self.ratios.sort_by(f64::total_cmp);
        let q = |p| (!self.ratios.is_empty()).then(|| quantile(&self.ratios, p));
        let regression_slowdown = (self.reg_ratios > 0).then(|| self.reg_ratio_sum / self.reg_ratios as f64);
        GroupStats {
            key,
            queries: self.queries,
            regressions: self.regressions,
            slower: self.slower,
            p50_ratio: q(0.5),
            p90_ratio: q(0.9),
            regression_slowdown,
            impact: self.regressions as f64 * regression_slowdown.unwrap_or(1.0).max(1.0),
        }
    }
}

/// The analyses, accumulated one outcome at a time.
#[derive(Debug, Default)]
pub struct AnalysisAcc {
    queries: u64,
    by_template: HashMap<String, GroupAcc>,
    by_tenant: HashMap<String, GroupAcc>,
}

impl AnalysisAcc {
    /// Counts one outcome.
    pub fn add(&mut self, o: &OutcomeRecord) {
        let perf = o.flight.as_ref().and_then(|f| f.perf.as_ref());
        let r = perf.map(|p| p.ratio).filter(|r| r.is_finite() && *r > 0.0);
        let is_reg = o.is_regression();
        let slow = perf.is_some_and(|p| p.verdict == PerfVerdict::Slower);
        self.queries += 1;
        let add = |g: &mut GroupAcc| {
            g.queries += 1;
            g.regressions += is_reg as u64;
            g.slower += slow as u64;
            if let Some(r) = r {
                g.ratios.push(r);
                if is_reg {
                    g.reg_ratio_sum += r;
                    g.reg_ratios += 1;
                }
            }
        };
        match self.by_template.get_mut(o.template_id.as_str()) {
            Some(g) => add(g),
            None => add(self.by_template.entry(o.template_id.clone()).or_default()),
        }
        if let Some(t) = &o.tenant {
            match self.by_tenant.get_mut(t.as_str()) {
                Some(g) => add(g),
                None => add(self.by_tenant.entry(t.clone()).or_default()),
            }
        }
    }

    /// The analyses.
    pub fn finish(self) -> Analysis {
        let mut all: Vec<f64> = self
            .by_template
            .values()
            .flat_map(|g| g.ratios.iter().copied())
            .collect();
        all.sort_by(f64::total_cmp);
        let ratios = (!all.is_empty()).then(|| RatioPercentiles {
            queries: all.len() as u64,
            p50: quantile(&all, 0.5),
            p90: quantile(&all, 0.9),
            p99: quantile(&all, 0.99),
            max: quantile(&all, 1.0),
        });
        drop(all);
        let groups = |m: HashMap<String, GroupAcc>| {
            let mut out: Vec<GroupStats> = m.into_iter().map(|(k, g)| g.finish(k)).collect();
            out.sort_by(|a, b| {
                b.impact
                    .total_cmp(&a.impact)
                    .then(b.regressions.cmp(&a.regressions))
                    .then(a.key.cmp(&b.key))
            });
            out
        };
        Analysis {
            queries: self.queries,
            ratios,
            by_template: groups(self.by_template),
            by_tenant: groups(self.by_tenant),
        }
    }
}

/// Analyses a run's outcomes.
pub fn analyze<'a>(outcomes: impl IntoIterator<Item = &'a OutcomeRecord>) -> Analysis {
    let mut a = AnalysisAcc::default();
    for o in outcomes {
        a.add(o);
    }
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlflight_diffing::OutcomeClass;

    fn outcome(
        q: &str,
        t: &str,
        tenant: Option<&str>,
        class: OutcomeClass,
        ratio: Option<(f64, bool)>,
    ) -> OutcomeRecord {
        let mut o: OutcomeRecord = serde_json::from_value(serde_json::json!({
            "query_id": q, "template_id": t, "class": class
        }))
        .unwrap();
        o.tenant = tenant.map(str::to_string);
        if let Some((r, regression)) = ratio {
            o.flight = Some(
                serde_json::from_value(serde_json::json!({
                    "baseline": {}, "candidate": {},
                    "perf": {"ratio": r, "verdict": if r > 1.0 { "slower" } else { "same" }, "regression": regression}
                }))
                .unwrap(),
            );
        }
        o
    }

    #[test]
    fn impact_percentiles_and_tenants() {
        use OutcomeClass::*;
        let o = vec![
            outcome("a1", "A", Some("acme"), Match, Some((3.0, true))),
            outcome("a2", "A", Some("acme"), Match, Some((5.0, true))),
            outcome("b1", "B", Some("zeta"), WrongResult, Some((1.0, false))),
            outcome("b2", "B", None, WrongResult, None),
            outcome("b3", "B", None, WrongResult, None),
            outcome("c1", "C", Some("zeta"), Match, Some((1.5, false))),
            outcome("c2", "C", None, PlanChanged, None),
        ];
        let a = analyze(&o);
        assert_eq!(a.queries, 7);
        let r = a.ratios.unwrap();
        assert_eq!((r.queries, r.p50, r.max), (4, 2.25, 5.0));
        // A: 2 regressions × mean slowdown 4 = 8; B: 3 × 1 = 3; C: none.
        let t: Vec<(&str, u64, f64)> = a
            .by_template
            .iter()
            .map(|g| (g.key.as_str(), g.regressions, g.impact))
            .collect();
        assert_eq!(t, [("A", 2, 8.0), ("B", 3, 3.0), ("C", 0, 0.0)]);
        assert_eq!(a.by_template[0].p90_ratio, Some(4.8));
        assert_eq!(a.by_template[0].slower, 2);
        let n: Vec<(&str, u64)> = a.by_tenant.iter().map(|g| (g.key.as_str(), g.queries)).collect();
        assert_eq!(n, [("acme", 2), ("zeta", 2)]);
        assert!(analyze(&[]).ratios.is_none());
        assert!(analyze(&o[3..5]).by_tenant.is_empty());
    }
}
