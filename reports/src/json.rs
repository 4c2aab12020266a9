//! The JSON report: a stable, versioned document for scripts.
//!
//! Schema `sqlflight-report` version 1:
//! `{format, version, runs: [{manifest, counts: {class: n}, regressions: [outcome],
//! change_groups: [{signature, queries}], plan_changes: {changed, cosmetic_only,
//! covered_by_top, empty_folds, explanation: [[fact, changes]], facts: [{fact, kind, operator,
//! cosmetic, queries, contexts: [{context, queries}], impact}]},
//! performance: {...} | null,
//! analysis: {queries, ratios: {queries, p50, p90, p99, max} | null, by_template:
//! [group], by_tenant: [group]} | null, outcomes: [outcome]}]}` where `manifest` and
//! `outcome` are the run directory's `manifest.json` and `outcomes.jsonl` objects and
//! `group` is `{key, queries, regressions, slower, p50_ratio, p90_ratio,
//! regression_slowdown, impact}` ([`crate::analysis::GroupStats`], sorted by impact).
//! A fact's `kind` is `inserted`, `removed`, `replaced` or `attribute`; `cosmetic`
//! is present and true for display-only facts; `impact` (`{timed, slower,
//! regressions, median_ratio}`) is present when a flight run was given alongside.
//! Keys are only ever added within a version.

use std::io::Write;

use serde_json::{Value, json};

use crate::{RunView, markdown, perf};

/// `format` of the JSON report.
pub const JSON_FORMAT: &str = "sqlflight-report";
/// `version` of the JSON report (fields are only added within a version).
pub const JSON_VERSION: u32 = 1;

/// The report as a JSON value (small runs, tests).
pub fn json_report(runs: &[RunView]) -> Value {
    let mut buf = Vec::new();
    // Writing into memory cannot fail.
    let _ = write_json_report(runs, &mut buf);
    serde_json::from_slice(&buf).unwrap_or(Value::Null)
}

/// Streams the report as JSON: outcomes are serialized one by one, so a run of a
/// million outcomes never sits in memory as a document tree.
pub fn write_json_report(runs: &[RunView], w: &mut dyn Write) -> std::io::Result<()> {
    let flight = crate::flight_run(runs);
    write!(
        w,
        "{{\"format\":\"{JSON_FORMAT}\",\"version\":{JSON_VERSION},\"runs\":["
    )?;
    for (i, r) in runs.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let counts: serde_json::Map<String, Value> = markdown::counts(&r.outcomes)
            .into_iter()
            .map(|(c, n)| (c.as_str().to_string(), n.into()))
            .collect();
        let groups: Vec<Value> = markdown::change_groups(&r.outcomes)
            .into_iter()
            .map(|g| json!({"signature": g.signature, "queries": g.queries}))
            .collect();
        let p = perf::perf_summary(&r.outcomes).map(|p| p.to_json());
        w.write_all(b"{\"manifest\":")?;
        serde_json::to_writer(&mut *w, &r.manifest)?;
        w.write_all(b",\"counts\":")?;
        serde_json::to_writer(&mut *w, &counts)?;
        w.write_all(b",\"change_groups\":")?;
        serde_json::to_writer(&mut *w, &groups)?;
        w.write_all(b",\"plan_changes\":")?;
        let facts = crate::facts::FactTable::build(&r.outcomes, flight.map(|f| f.outcomes.as_slice()));
        serde_json::to_writer(&mut *w, &facts)?;
        w.write_all(b",\"performance\":")?;
        serde_json::to_writer(&mut *w, &p)?;
        w.write_all(b",\"analysis\":")?;
        serde_json::to_writer(&mut *w, &crate::analysis::analyze(&r.outcomes).ok())?;
        w.write_all(b",\"regressions\":[")?;
        let mut first = true;
        for o in r.outcomes.iter().filter(|o| o.is_regression()) {
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut *w, o)?;
        }
        w.write_all(b"],\"outcomes\":[")?;
        for (k, o) in r.outcomes.iter().enumerate() {
            if k > 0 {
                w.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut *w, o)?;
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"]}\n")
}
