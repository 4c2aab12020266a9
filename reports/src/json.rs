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

use crate::tally::{Outcomes, Tally};
use crate::{ReportError, RunView};

/// `format` of the JSON report.
pub const JSON_FORMAT: &str = "sqlflight-report";
/// `version` of the JSON report (fields are only added within a version).
pub const JSON_VERSION: u32 = 1;

/// The report as a JSON value (small runs, tests).
pub fn json_report(runs: &[RunView]) -> Value {
    let mut buf = Vec::new();
    // Writing into memory cannot fail, nor can reading in-memory runs.
    let _ = write_json_report(runs, &mut buf);
    serde_json::from_slice(&buf).unwrap_or(Value::Null)
}

/// Streams the report as JSON: the summaries from one scan of each run, then its
/// regressions and its outcomes from two more, serialized one by one, so a run of
/// millions of outcomes never sits in memory. Returns the regressions.
pub fn write_json_report<R: Outcomes>(runs: &[R], w: &mut dyn Write) -> Result<usize, ReportError> {
    let flight = crate::flight_run(runs);
    let mut regressions = 0;
    write!(
        w,
        "{{\"format\":\"{JSON_FORMAT}\",\"version\":{JSON_VERSION},\"runs\":["
    )?;
    for (i, r) in runs.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let t = Tally::read(r, flight)?;
        regressions += t.regressions;
        let counts: serde_json::Map<String, Value> = t
            .counts
            .iter()
            .map(|(c, n)| (c.as_str().to_string(), (*n).into()))
            .collect();
        let groups: Vec<Value> = t
            .change_groups
            .iter()
            .map(|g| json!({"signature": g.signature, "queries": g.queries}))
            .collect();
        let p = t.perf.summary.as_ref().map(|p| p.to_json());
        w.write_all(b"{\"manifest\":")?;
        serde_json::to_writer(&mut *w, r.manifest()).map_err(std::io::Error::from)?;
        w.write_all(b",\"counts\":")?;
        serde_json::to_writer(&mut *w, &counts).map_err(std::io::Error::from)?;
        w.write_all(b",\"change_groups\":")?;
        serde_json::to_writer(&mut *w, &groups).map_err(std::io::Error::from)?;
        w.write_all(b",\"plan_changes\":")?;
        serde_json::to_writer(&mut *w, &t.facts).map_err(std::io::Error::from)?;
        w.write_all(b",\"performance\":")?;
        serde_json::to_writer(&mut *w, &p).map_err(std::io::Error::from)?;
        w.write_all(b",\"analysis\":")?;
        serde_json::to_writer(&mut *w, &t.analysis).map_err(std::io::Error::from)?;
        drop(t);
        w.write_all(b",\"regressions\":[")?;
        let mut first = true;
        r.scan(&mut |o| {
            if o.is_regression() {
                if !first {
                    w.write_all(b",")?;
                }
                first = false;
                serde_json::to_writer(&mut *w, o).map_err(std::io::Error::from)?;
            }
            Ok(())
        })?;
        w.write_all(b"],\"outcomes\":[")?;
        let mut first = true;
        r.scan(&mut |o| {
            if !first {
                w.write_all(b",\n")?;
            }
            first = false;
            serde_json::to_writer(&mut *w, o).map_err(std::io::Error::from)?;
            Ok(())
        })?;
        w.write_all(b"]}")?;
    }
    w.write_all(b"]}\n")?;
    Ok(regressions)
}
