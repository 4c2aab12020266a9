//! The end-of-run summary of a playback or a flight: one typed value, [`Summary`],
//! that renders both the terminal text ([`Summary::text`]) and the versioned
//! `--json` object (its `Serialize`: `format: sqlflight-summary`, `version: 1`).
//!
//! Schema, version 1 (fields are only ever added within a version):
//! `format`, `version`, `kind` (`playback` | `flight`), `run` and `report` (paths),
//! `corpus`, `baseline`, `candidate` (as in the run manifest), `partition` (or
//! null), `status`, `stopped_reason` (or null), `queries`, `counts` (per outcome
//! class that occurs), `regressions` (`query_id`, `template_id`, `class`,
//! `error_class`, `error`, `detail`); playback adds `plan_changed`,
//! `change_groups` and `plan_changes` (the fact table); flight adds
//! `performance` (or null).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use sqlflight_diffing::{
    CorpusInfo, EngineInfo, ErrorClass, OutcomeClass, OutcomeRecord, PartitionSpec, RunStatus, SideResult, StopReason,
};
use sqlflight_runs::RunSummary;

use crate::facts::FactTable;
use crate::markdown;

/// `format` of the summary object.
pub const SUMMARY_FORMAT: &str = "sqlflight-summary";
/// `version` of the summary object.
pub const SUMMARY_VERSION: u32 = 1;

/// One regression as the summary lists it.
#[derive(Debug, Serialize)]
pub struct Regression<'a> {
    /// The query.
    pub query_id: &'a str,
    /// Its template.
    pub template_id: &'a str,
    /// Its outcome class.
    pub class: OutcomeClass,
    /// The candidate's error class, when it failed.
    pub error_class: Option<ErrorClass>,
    /// The candidate's error (redacted as journaled), when it failed.
    pub error: Option<&'a str>,
    /// What regressed, as the outcome explains it.
    pub detail: Option<&'a str>,
}

/// A group of plan changes with one change signature.
#[derive(Debug, Serialize)]
pub struct Group {
    /// The change signature.
    pub signature: String,
    /// How many queries.
    pub count: usize,
    /// Their ids.
    pub queries: Vec<String>,
}

/// The summary of one finished (or stopped) run.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// Always [`SUMMARY_FORMAT`].
    pub format: &'static str,
    /// Always [`SUMMARY_VERSION`].
    pub version: u32,
    /// `playback` or `flight`.
    pub kind: &'a str,
    /// The run directory.
    pub run: &'a Path,
    /// The Markdown report.
    pub report: &'a Path,
    /// The corpus replayed.
    pub corpus: &'a CorpusInfo,
    /// The baseline engine.
    pub baseline: &'a EngineInfo,
    /// The candidate engine.
    pub candidate: &'a EngineInfo,
    /// The share of the corpus the run covers.
    pub partition: Option<PartitionSpec>,
    /// Complete or stopped.
    pub status: RunStatus,
    /// Why the run stopped early.
    pub stopped_reason: Option<&'a StopReason>,
    /// Outcomes in the run.
    pub queries: usize,
    /// Outcomes per class.
    pub counts: BTreeMap<&'static str, usize>,
    /// The regressions, in query order.
    pub regressions: Vec<Regression<'a>>,
    /// Playback: changed plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_changed: Option<usize>,
    /// Playback: plan changes grouped by change signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_groups: Option<Vec<Group>>,
    /// Playback: what changed in the optimizer, as named facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_changes: Option<FactTable>,
    /// Flight: the corpus-wide performance figures (null when nothing was timed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<serde_json::Value>,
    #[serde(skip)]
    outcomes: &'a [OutcomeRecord],
    #[serde(skip)]
    selected: u64,
}

impl<'a> Summary<'a> {
    /// The summary of `run`, whose Markdown report is at `report`.
    pub fn of(run: &'a RunSummary, report: &'a Path) -> Summary<'a> {
        let m = &run.manifest;
        let o = run.outcomes.as_slice();
        let playback = m.kind != "flight";
        let regressions = o
            .iter()
            .filter(|x| x.is_regression())
            .map(|x| {
                let (error_class, error) = match &x.candidate {
                    Some(SideResult::Error { error_class, error, .. }) => (Some(*error_class), Some(error.as_str())),
                    _ => (None, None),
                };
                Regression {
                    query_id: &x.query_id,
                    template_id: &x.template_id,
                    class: x.class,
                    error_class,
                    error,
                    detail: x.detail.as_deref(),
                }
            })
            .collect();
        Summary {
            format: SUMMARY_FORMAT,
            version: SUMMARY_VERSION,
            kind: &m.kind,
            run: &run.dir,
            report,
            corpus: &m.corpus,
            baseline: &m.baseline,
            candidate: &m.candidate,
            partition: m.partition,
            status: m.status,
            stopped_reason: m.stopped_reason.as_ref(),
            queries: o.len(),
            counts: markdown::counts(o).into_iter().map(|(c, n)| (c.as_str(), n)).collect(),
            regressions,
            plan_changed: playback.then(|| o.iter().filter(|x| x.class == OutcomeClass::PlanChanged).count()),
            change_groups: playback.then(|| {
                markdown::change_groups(o)
                    .into_iter()
                    .map(|g| Group {
                        signature: g.signature,
                        count: g.queries.len(),
                        queries: g.queries,
                    })
                    .collect()
            }),
            plan_changes: playback.then(|| FactTable::build(o, None)),
            performance: (!playback)
                .then(|| crate::perf::perf_summary(o).map_or(serde_json::Value::Null, |p| p.to_json())),
            outcomes: o,
            selected: m.selected,
        }
    }

    /// The summary for people, as `sqlflight playback` / `flight` print it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let o = self.outcomes;
        let playback = self.kind != "flight";
        let _ = writeln!(
            out,
            "{} {}: {} queries{}",
            self.kind,
            self.corpus.name,
            self.queries,
            self.partition.map_or(String::new(), |p| format!(" (partition {p})"))
        );
        let _ = writeln!(out, "  baseline:  {}", self.baseline.describe());
        let _ = writeln!(out, "  candidate: {}", self.candidate.describe());
        if o.is_empty() {
            let _ = writeln!(out, "  warning: nothing was verified (0 queries selected)");
        }
        if let Some(r) = self.stopped_reason {
            let _ = writeln!(
                out,
                "  stopped early: {r} ({} of {} queries done; --resume continues)",
                self.queries, self.selected
            );
        }
        let width = if playback { 20 } else { 24 };
        for (class, n) in markdown::counts(o) {
            let mark = if class.is_regression() { "  <- regression" } else { "" };
            let _ = writeln!(out, "  {:<width$} {n:>6}{mark}", class.as_str());
        }
        if playback {
            out.push_str(&facts_text(o, ""));
        } else if let Some(p) = crate::perf::perf_summary(o) {
            let _ = writeln!(out, "performance: {}", p.describe());
        }
        self.regressions_text(&mut out);
        if !playback {
            for x in o.iter().filter(|x| x.class == OutcomeClass::Nondeterministic).take(5) {
                let _ = writeln!(
                    out,
                    "  nondeterministic {}: {}",
                    x.query_id,
                    x.detail.as_deref().unwrap_or("")
                );
            }
        }
        let _ = writeln!(out, "run:    {}", self.run.display());
        let _ = writeln!(out, "report: {}", self.report.display());
        out
    }

    /// The first 20 regressions, one line each: class, query, what regressed.
    fn regressions_text(&self, out: &mut String) {
        if self.regressions.is_empty() {
            return;
        }
        let _ = writeln!(out, "regressions:");
        let first_line = |s: &str| s.lines().next().unwrap_or("").chars().take(120).collect::<String>();
        for (r, x) in self
            .regressions
            .iter()
            .zip(self.outcomes.iter().filter(|x| x.is_regression()))
            .take(20)
        {
            let perf = x.flight.as_ref().and_then(|f| f.perf.as_ref());
            let what = match (self.kind, r.detail, r.error) {
                ("flight", Some(d), _) => d.to_string(),
                (_, _, Some(e)) => first_line(e),
                ("flight", None, None) => perf.map_or(String::new(), |p| p.describe()),
                _ => String::new(),
            };
            let label = match perf {
                Some(p) if p.undecided_slowdown && !x.class.is_regression() => "undecided_slowdown",
                _ => x.class.as_str(),
            };
            let _ = writeln!(out, "  {label:<18} {}  {what}", r.query_id);
        }
        if self.regressions.len() > 20 {
            let _ = writeln!(out, "  ... {} more in the report", self.regressions.len() - 20);
        }
    }
}

/// "What changed in the optimizer", for the terminal: the top real facts with
/// their query counts, and how many changes are only cosmetic (`label` prefixes
/// the heading line).
pub fn facts_text(outcomes: &[OutcomeRecord], label: &str) -> String {
    let mut out = String::new();
    let t = FactTable::build(outcomes, None);
    if t.changed == 0 {
        return out;
    }
    let real: Vec<_> = t.facts.iter().filter(|r| !r.fact.cosmetic).collect();
    let _ = writeln!(
        out,
        "{label}what changed in the optimizer ({} plan changes, {} facts, {} only cosmetic):",
        t.changed,
        real.len(),
        t.cosmetic_only
    );
    if !t.explanation.is_empty() {
        let parts: Vec<String> = t.explanation.iter().map(|(f, n)| format!("{f} ({n})")).collect();
        let _ = writeln!(out, "  explained by: {}", parts.join("; "));
    }
    if t.empty_folds > 0 {
        let _ = writeln!(
            out,
            "  warning: {} plan changes replace a scan with an empty result (tables without data are folded); give the catalog data files to see production plans",
            t.empty_folds
        );
    }
    for r in real.iter().take(10) {
        let _ = writeln!(out, "  {:>5}  {}", r.queries.len(), r.fact.fact);
    }
    if real.len() > 10 {
        let _ = writeln!(out, "  ... {} more facts in the report", real.len() - 10);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: &str) -> RunSummary {
        let manifest: sqlflight_diffing::RunManifest = serde_json::from_value(serde_json::json!({
            "format": "sqlflight-run", "version": 1, "kind": kind, "tool_version": "0",
            "corpus": {"name": "c", "hash": "h", "queries": 2},
            "baseline": {"engine": "datafusion", "version": "1", "profile": "b"},
            "candidate": {"engine": "datafusion", "version": "2", "profile": "c"},
            "selected": 2, "jobs": 1, "timeout_ms": 1, "started_at": "t", "status": "stopped",
            "stopped_reason": "interrupted"
        }))
        .expect("a manifest");
        let mut failed = OutcomeRecord::skipped("q1".into(), "t1".into(), "");
        failed.skip_reason = None;
        failed.class = OutcomeClass::NewFailure;
        failed.candidate = Some(SideResult::Error {
            error_class: ErrorClass::Plan,
            error: "no such table\nsecond line".into(),
            elapsed_us: 1,
        });
        let skipped = OutcomeRecord::skipped("q2".into(), "t2".into(), "write_statement: INSERT");
        RunSummary {
            dir: "run".into(),
            manifest,
            outcomes: vec![failed, skipped],
        }
    }

    #[test]
    fn one_summary_renders_text_and_versioned_json_per_kind() {
        let p = run("playback");
        let s = Summary::of(&p, Path::new("run/report.md"));
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(
            (&v["format"], &v["version"], &v["kind"]),
            (&"sqlflight-summary".into(), &1.into(), &"playback".into())
        );
        assert_eq!(v["counts"]["new_failure"], 1);
        assert_eq!(
            v["counts"].as_object().map(|c| c.len()),
            Some(2),
            "the classes that occur"
        );
        assert_eq!(v["regressions"][0]["error_class"], "plan");
        assert_eq!(v["stopped_reason"], "interrupted");
        assert_eq!(v["plan_changed"], 0);
        assert!(v.get("performance").is_none());
        let text = s.text();
        assert!(text.starts_with("playback c: 2 queries\n"), "{text}");
        assert!(text.contains("  new_failure        q1  no such table\n"), "{text}");
        assert!(
            text.contains("stopped early: interrupted (2 of 2 queries done"),
            "{text}"
        );

        let f = run("flight");
        let v = serde_json::to_value(Summary::of(&f, Path::new("r"))).expect("serializes");
        assert_eq!(v["kind"], "flight");
        assert!(v.get("plan_changes").is_none() && v.get("change_groups").is_none());
        assert_eq!(v["performance"], serde_json::Value::Null);
    }
}
