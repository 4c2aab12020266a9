//! The JSON report: a stable, versioned document for scripts.
//!
//! Schema `sqlflight-report` version 1:
//! `{format, version, runs: [{manifest, counts: {class: n}, regressions: [outcome],
//! change_groups: [{signature, queries}], performance: {...} | null,
//! outcomes: [outcome]}]}` where `manifest` and `outcome` are the run directory's
//! `manifest.json` and `outcomes.jsonl` objects.

use serde_json::{Value, json};

use crate::{RunView, markdown, perf};

pub const JSON_FORMAT: &str = "sqlflight-report";
pub const JSON_VERSION: u32 = 1;

pub fn json_report(runs: &[RunView]) -> Value {
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| {
            let counts: serde_json::Map<String, Value> = markdown::counts(&r.outcomes)
                .into_iter()
                .map(|(c, n)| (c.as_str().to_string(), n.into()))
                .collect();
            let groups: Vec<Value> = markdown::change_groups(&r.outcomes)
                .into_iter()
                .map(|g| json!({"signature": g.signature, "queries": g.queries}))
                .collect();
            let regressions: Vec<&sqlflight_diffing::OutcomeRecord> =
                r.outcomes.iter().filter(|o| o.is_regression()).collect();
            let p = perf::perf_summary(&r.outcomes).map(|p| {
                json!({"queries": p.queries, "geomean_ratio": p.geomean_ratio, "total_ratio": p.total_ratio(),
                       "faster": p.faster, "slower": p.slower, "same": p.same, "inconclusive": p.inconclusive,
                       "regressions": p.regressions})
            });
            json!({
                "manifest": r.manifest,
                "counts": counts,
                "regressions": regressions,
                "change_groups": groups,
                "performance": p,
                "outcomes": r.outcomes,
            })
        })
        .collect();
    json!({"format": JSON_FORMAT, "version": JSON_VERSION, "runs": runs})
}
