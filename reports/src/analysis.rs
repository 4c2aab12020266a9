//! Analyses over a run's outcome records with polars: counts per class, per
//! template and per tenant, percentiles of candidate/baseline time ratios, and the
//! templates (or tenants) with the most impact, impact = regressions × slowdown.
//!
//! polars is used without its `lazy` engine (which would add minutes to every
//! cold build for the handful of group-bys here), so the eager group-by
//! aggregations are used; polars marks them deprecated in favour of `lazy`, hence
//! the `allow(deprecated)` below.

use std::collections::BTreeMap;

use polars::prelude::*;
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

/// Builds the frame: one row per outcome.
fn frame(outcomes: &[OutcomeRecord]) -> PolarsResult<DataFrame> {
    let n = outcomes.len();
    let mut template = Vec::with_capacity(n);
    let mut tenant = Vec::with_capacity(n);
    let mut reg = Vec::with_capacity(n);
    let mut slow = Vec::with_capacity(n);
    let mut ratio = Vec::with_capacity(n);
    let mut reg_ratio = Vec::with_capacity(n);
    for o in outcomes {
        let perf = o.flight.as_ref().and_then(|f| f.perf.as_ref());
        let r = perf.map(|p| p.ratio).filter(|r| r.is_finite() && *r > 0.0);
        let is_reg = o.is_regression();
        template.push(o.template_id.as_str());
        tenant.push(o.tenant.as_deref());
        reg.push(is_reg as u32);
        slow.push(perf.is_some_and(|p| p.verdict == PerfVerdict::Slower) as u32);
        ratio.push(r);
        reg_ratio.push(if is_reg { r } else { None });
    }
    DataFrame::new_infer_height(vec![
        Column::new("template".into(), template),
        Column::new("tenant".into(), tenant),
        Column::new("one".into(), vec![1u32; n]),
        Column::new("reg".into(), reg),
        Column::new("slow".into(), slow),
        Column::new("ratio".into(), ratio),
        Column::new("reg_ratio".into(), reg_ratio),
    ])
}

fn f64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    let ca = c.f64()?;
    Ok((0..ca.len()).map(|i| ca.get(i)).collect())
}

fn keys(df: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    let ca = df.column(name)?.str()?;
    Ok((0..ca.len())
        .map(|i| ca.get(i).unwrap_or_default().to_string())
        .collect())
}

/// Per-group figures of `df` grouped by `key`.
#[allow(deprecated)] // eager group-by aggregations: see the module docs
fn groups(df: &DataFrame, key: &str) -> PolarsResult<Vec<GroupStats>> {
    let mut by: BTreeMap<String, GroupStats> = BTreeMap::new();
    let sums = df.group_by([key])?.select(["one", "reg", "slow"]).sum()?;
    let (k, q, r, s) = (
        keys(&sums, key)?,
        f64s(&sums, "one_sum")?,
        f64s(&sums, "reg_sum")?,
        f64s(&sums, "slow_sum")?,
    );
    for i in 0..k.len() {
        by.insert(
            k[i].clone(),
            GroupStats {
                key: k[i].clone(),
                queries: q[i].unwrap_or(0.0) as u64,
                regressions: r[i].unwrap_or(0.0) as u64,
                slower: s[i].unwrap_or(0.0) as u64,
                p50_ratio: None,
                p90_ratio: None,
                regression_slowdown: None,
                impact: 0.0,
            },
        );
    }
    for (p, col) in [(0.5, "ratio_quantile_0.50"), (0.9, "ratio_quantile_0.90")] {
        let qs = df
            .group_by([key])?
            .select(["ratio"])
            .quantile(p, QuantileMethod::Linear)?;
        for (k, v) in keys(&qs, key)?.into_iter().zip(f64s(&qs, col)?) {
            if let Some(g) = by.get_mut(&k) {
                if p == 0.5 {
                    g.p50_ratio = v;
                } else {
                    g.p90_ratio = v;
                }
            }
        }
    }
    let means = df.group_by([key])?.select(["reg_ratio"]).mean()?;
    for (k, v) in keys(&means, key)?.into_iter().zip(f64s(&means, "reg_ratio_mean")?) {
        if let Some(g) = by.get_mut(&k) {
            g.regression_slowdown = v;
        }
    }
    let mut out: Vec<GroupStats> = by
        .into_values()
        .map(|mut g| {
            g.impact = g.regressions as f64 * g.regression_slowdown.unwrap_or(1.0).max(1.0);
            g
        })
        .collect();
    out.sort_by(|a, b| {
        b.impact
            .total_cmp(&a.impact)
            .then(b.regressions.cmp(&a.regressions))
            .then(a.key.cmp(&b.key))
    });
    Ok(out)
}

/// Analyses a run's outcomes.
pub fn analyze(outcomes: &[OutcomeRecord]) -> PolarsResult<Analysis> {
    let df = frame(outcomes)?;
    let ratio = df.column("ratio")?.as_materialized_series().drop_nulls();
    let ratios = if ratio.is_empty() {
        None
    } else {
        let q = |p: f64| -> PolarsResult<f64> {
            Ok(ratio
                .quantile_reduce(p, QuantileMethod::Linear)?
                .value()
                .extract::<f64>()
                .unwrap_or(f64::NAN))
        };
        Some(RatioPercentiles {
            queries: ratio.len() as u64,
            p50: q(0.5)?,
            p90: q(0.9)?,
            p99: q(0.99)?,
            max: q(1.0)?,
        })
    };
    let by_template = groups(&df, "template")?;
    let with_tenant = df.drop_nulls(Some(&["tenant".to_string()]))?;
    let by_tenant = if with_tenant.height() == 0 {
        Vec::new()
    } else {
        groups(&with_tenant, "tenant")?
    };
    Ok(Analysis {
        queries: outcomes.len() as u64,
        ratios,
        by_template,
        by_tenant,
    })
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
        let a = analyze(&o).unwrap();
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
        assert!(analyze(&[]).unwrap().ratios.is_none());
        assert!(analyze(&o[3..5]).unwrap().by_tenant.is_empty());
    }
}
