//! "What changed in the optimizer": plan facts ([`sqlflight_diffing::facts`])
//! counted across a run, ranked by the number of queries they touch, with their
//! queries and an example; and, when a flight run of the same corpus is given,
//! their measured impact (queries slower, regressions, median time ratio among the
//! queries that carry the fact).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::Serialize;
use sqlflight_diffing::{FactKind, OutcomeClass, OutcomeRecord, PerfVerdict, PlanFact};

/// How many top facts the coverage figure counts.
pub const TOP: usize = 8;

/// One fact across a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactRow {
    /// The fact.
    #[serde(flatten)]
    pub fact: PlanFact,
    /// Query ids carrying the fact, sorted.
    pub queries: Vec<String>,
    /// Where an inserted or removed operator sits, with how many queries show
    /// it there, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<FactContext>,
    /// What a flight of the same corpus measured on its queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<FactImpact>,
    /// The plan diff of its first query (`queries[0]`), for the reports' examples.
    #[serde(skip)]
    pub example: Option<String>,
}

impl FactRow {
    /// The most frequent contexts: `in HashJoinExec, over DataSourceExec (12); …`.
    pub fn where_text(&self, most: usize) -> String {
        let mut parts: Vec<String> = self
            .contexts
            .iter()
            .take(most)
            .map(|c| format!("{} ({})", c.context, c.queries))
            .collect();
        if self.contexts.len() > most {
            parts.push(format!("{} more", self.contexts.len() - most));
        }
        parts.join("; ")
    }
}

/// One context of an inserted or removed operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactContext {
    /// The parent operator it sits under.
    pub context: String,
    /// Queries that show it there.
    pub queries: usize,
}

/// What a flight measured on the queries that carry a fact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactImpact {
    /// Queries with a performance comparison.
    pub timed: usize,
    /// Of them, significantly slower.
    pub slower: usize,
    /// Regressions of any class (wrong results, failures, confirmed slowdowns).
    pub regressions: usize,
    /// Median candidate/baseline time ratio of the timed ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ratio: Option<f64>,
}

/// The facts of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FactTable {
    /// Real facts first (by queries touched, then text), cosmetic facts after.
    pub facts: Vec<FactRow>,
    /// Plan changes in the run.
    pub changed: usize,
    /// Plan changes whose facts are all cosmetic.
    pub cosmetic_only: usize,
    /// Plan changes carrying at least one of the top [`TOP`] real facts (cosmetic-only
    /// changes count as covered: they are explained).
    pub covered_by_top: usize,
    /// The fewest facts (greedy set cover, at most [`TOP`]) that together touch
    /// every plan change that is not only cosmetic, each with the changes it adds:
    /// the upgrade in a few sentences.
    pub explanation: Vec<(String, usize)>,
    /// Plan changes where a scan became an empty result (`SEQ_SCAN -> EMPTY_RESULT`,
    /// `+ EmptyExec`): an engine folding tables it sees as empty. Planning over a
    /// catalog without data produces them; production, with data, would not.
    pub empty_folds: usize,
}

/// What a flight measured on one query, as [`FactTable`] joins it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flown {
    /// The query is a regression in the flight.
    pub regression: bool,
    /// Its time ratio and whether it was significantly slower.
    pub perf: Option<(f64, bool)>,
}

impl Flown {
    /// What the flight outcome `o` measured.
    pub fn of(o: &OutcomeRecord) -> Flown {
        Flown {
            regression: o.is_regression(),
            perf: o
                .flight
                .as_ref()
                .and_then(|f| f.perf.as_ref())
                .map(|p| (p.ratio, p.verdict == PerfVerdict::Slower)),
        }
    }
}

#[derive(Debug, Default)]
struct FactAccRow {
    queries: Vec<String>,
    contexts: BTreeMap<String, usize>,
    /// The smallest query id carrying the fact, with its diff.
    example: Option<(String, Option<String>)>,
}

/// One plan change, as the coverage and the explanation need it.
#[derive(Debug)]
struct Change {
    cosmetic_only: bool,
    /// Its real (not cosmetic) facts, interned.
    real: Vec<u32>,
    empty_fold: bool,
}

/// The fact table, accumulated one outcome at a time in memory proportional to
/// the plan changes (their ids and interned facts), never to the run.
#[derive(Debug, Default)]
pub struct FactAcc {
    by: BTreeMap<PlanFact, FactAccRow>,
    changes: Vec<Change>,
    names: Vec<(String, (bool, u8))>,
    ix: HashMap<String, u32>,
}

impl FactAcc {
    /// Counts one outcome (only plan changes count).
    pub fn add(&mut self, o: &OutcomeRecord) {
        if o.class != OutcomeClass::PlanChanged {
            return;
        }
        let empty = |f: &PlanFact| f.kind != FactKind::Attribute && f.operator.to_ascii_lowercase().contains("empty");
        let mut change = Change {
            cosmetic_only: o.is_cosmetic_plan_change(),
            real: Vec::new(),
            empty_fold: o.plan_facts.iter().any(|f| !f.cosmetic && empty(f)),
        };
        for f in &o.plan_facts {
            let key = PlanFact {
                context: None,
                ..f.clone()
            };
            let e = self.by.entry(key).or_default();
            if e.queries.last() != Some(&o.query_id) {
                e.queries.push(o.query_id.clone());
            }
            if let Some(c) = &f.context {
                match e.contexts.get_mut(c.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        e.contexts.insert(c.clone(), 1);
                    }
                }
            }
            if e.example.as_ref().is_none_or(|(id, _)| o.query_id < *id) {
                e.example = Some((o.query_id.clone(), o.diff.clone()));
            }
            if !f.cosmetic {
                let i = match self.ix.get(f.fact.as_str()) {
                    Some(i) => *i,
                    None => {
                        let i = self.names.len() as u32;
                        self.names.push((f.fact.clone(), rank(f)));
                        self.ix.insert(f.fact.clone(), i);
                        i
                    }
                };
                if !change.real.contains(&i) {
                    change.real.push(i);
                }
            }
        }
        self.changes.push(change);
    }

    /// The table; `flight` (a flight of the same corpus, by query id) adds each
    /// fact's measured impact.
    pub fn finish(self, flight: Option<&HashMap<String, Flown>>) -> FactTable {
        let mut facts: Vec<FactRow> = self
            .by
            .into_iter()
            .map(|(fact, row)| {
                let mut q = row.queries;
                q.sort_unstable();
                q.dedup();
                let impact = flight.map(|fl| impact(q.iter().filter_map(|id| fl.get(id))));
                let mut contexts: Vec<FactContext> = row
                    .contexts
                    .into_iter()
                    .map(|(context, queries)| FactContext { context, queries })
                    .collect();
                contexts.sort_by(|a, b| b.queries.cmp(&a.queries).then(a.context.cmp(&b.context)));
                FactRow {
                    fact,
                    queries: q,
                    contexts,
                    impact,
                    example: row.example.and_then(|e| e.1),
                }
            })
            .collect();
        facts.sort_by(|a, b| {
            a.fact
                .cosmetic
                .cmp(&b.fact.cosmetic)
                .then(b.queries.len().cmp(&a.queries.len()))
                .then(rank(&a.fact).cmp(&rank(&b.fact)))
                .then(a.fact.fact.cmp(&b.fact.fact))
        });
        let top: std::collections::HashSet<u32> = facts
            .iter()
            .filter(|r| !r.fact.cosmetic)
            .take(TOP)
            .filter_map(|r| self.ix.get(r.fact.fact.as_str()).copied())
            .collect();
        let changes = &self.changes;
        FactTable {
            changed: changes.len(),
            cosmetic_only: changes.iter().filter(|c| c.cosmetic_only).count(),
            covered_by_top: changes
                .iter()
                .filter(|c| c.cosmetic_only || c.real.iter().any(|i| top.contains(i)))
                .count(),
            explanation: explain(changes, &self.names),
            empty_folds: changes.iter().filter(|c| c.empty_fold).count(),
            facts,
        }
    }
}

impl FactTable {
    /// Builds the table from a run's outcomes and, optionally, a flight run's
    /// outcomes of the same corpus (joined by query id).
    pub fn build<'a>(outcomes: impl IntoIterator<Item = &'a OutcomeRecord>, flight: Option<&[OutcomeRecord]>) -> Self {
        let mut acc = FactAcc::default();
        for o in outcomes {
            acc.add(o);
        }
        let flown: Option<HashMap<String, Flown>> =
            flight.map(|f| f.iter().map(|o| (o.query_id.clone(), Flown::of(o))).collect());
        acc.finish(flown.as_ref())
    }

    /// Real facts ranked by measured impact: regressions, then slower queries,
    /// then median ratio (only with a flight run).
    pub fn by_impact(&self) -> Vec<&FactRow> {
        let mut rows: Vec<&FactRow> = self
            .facts
            .iter()
            .filter(|r| !r.fact.cosmetic && r.impact.as_ref().is_some_and(|i| i.timed > 0 || i.regressions > 0))
            .collect();
        let key = |r: &FactRow| {
            let i = r.impact.as_ref();
            (
                i.map_or(0, |i| i.regressions),
                i.map_or(0, |i| i.slower),
                i.and_then(|i| i.median_ratio).unwrap_or(0.0),
            )
        };
        rows.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            kb.0.cmp(&ka.0)
                .then(kb.1.cmp(&ka.1))
                .then(kb.2.total_cmp(&ka.2))
                .then(a.fact.fact.cmp(&b.fact.fact))
        });
        rows
    }

    /// The Markdown section, its heading at `level` (empty when the run has no
    /// plan change).
    // Long by design: the section's tables in reading order.
    pub fn markdown(&self, out: &mut String, level: usize) {
        if self.changed == 0 {
            return;
        }
        let (h1, h2) = (crate::markdown::heading(level), crate::markdown::heading(level + 1));
        let real: Vec<&FactRow> = self.facts.iter().filter(|r| !r.fact.cosmetic).collect();
        let cosmetic: Vec<&FactRow> = self.facts.iter().filter(|r| r.fact.cosmetic).collect();
        let _ = writeln!(
            out,
            "\n{h1} What changed in the optimizer\n\n{} plan change{}: {} named fact{} ({} cosmetic); {} change{} only cosmetic; the top {} facts explain {} of {} changed plans.\n",
            self.changed,
            if self.changed == 1 { "" } else { "s" },
            real.len(),
            if real.len() == 1 { "" } else { "s" },
            cosmetic.len(),
            self.cosmetic_only,
            if self.cosmetic_only == 1 { " is" } else { "s are" },
            TOP.min(real.len()),
            self.covered_by_top,
            self.changed
        );
        if self.empty_folds > 0 {
            let _ = writeln!(
                out,
                "> **{} plan {} a scan with an empty result**: the engine folds tables it sees as empty. If the catalog has no data (DDL only), these are artifacts of planning without data; give the tables data (`catalog.tables`) to see the plans production will run.\n",
                self.empty_folds,
                if self.empty_folds == 1 {
                    "change replaces"
                } else {
                    "changes replace"
                }
            );
        }
        if !self.explanation.is_empty() {
            let parts: Vec<String> = self
                .explanation
                .iter()
                .enumerate()
                .map(|(i, (f, n))| {
                    if i == 0 {
                        format!("`{f}` ({n})")
                    } else {
                        format!("`{f}` (+{n})")
                    }
                })
                .collect();
            let _ = writeln!(out, "Explained by: {}.\n", parts.join(", "));
        }
        if !real.is_empty() {
            let _ = writeln!(
                out,
                "| fact | kind | queries | where | examples |\n|---|---|---:|---|---|"
            );
            for r in &real {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    r.fact.fact.replace('|', "\\|"),
                    r.fact.kind.as_str(),
                    r.queries.len(),
                    r.where_text(3),
                    examples(&r.queries)
                );
            }
        }
        if !cosmetic.is_empty() {
            let _ = writeln!(
                out,
                "\n<details><summary>{} cosmetic fact{} (display-only details, ids, logical-only changes)</summary>\n\n| fact | queries | examples |\n|---|---:|---|",
                cosmetic.len(),
                if cosmetic.len() == 1 { "" } else { "s" }
            );
            for r in &cosmetic {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    r.fact.fact.replace('|', "\\|"),
                    r.queries.len(),
                    examples(&r.queries)
                );
            }
            let _ = writeln!(out, "\n</details>");
        }
        let ranked = self.by_impact();
        if !ranked.is_empty() {
            let _ = writeln!(
                out,
                "\n{h2} Facts by measured impact (flight)\n\n| fact | queries timed | slower | regressions | median ratio |\n|---|---:|---:|---:|---:|"
            );
            for r in ranked.iter().take(20) {
                let Some(i) = r.impact.as_ref() else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    r.fact.fact.replace('|', "\\|"),
                    i.timed,
                    i.slower,
                    i.regressions,
                    i.median_ratio.map_or("-".into(), |x| format!("×{x:.2}"))
                );
            }
        }
        for r in real.iter().take(20) {
            let Some(id) = r.queries.first() else {
                continue;
            };
            let _ = writeln!(
                out,
                "\n<details><summary><code>{}</code>: example {id}</summary>\n",
                crate::html::esc(&r.fact.fact),
            );
            crate::markdown::fenced(out, "diff", r.example.as_deref().unwrap_or(""));
            let _ = writeln!(out, "\n</details>");
        }
    }
}

/// Greedy set cover of the real plan changes by their non-cosmetic facts; among
/// facts covering as many changes, root causes first ([`rank`]), then by text.
fn explain(changes: &[Change], names: &[(String, (bool, u8))]) -> Vec<(String, usize)> {
    let mut open: Vec<&[u32]> = changes
        .iter()
        .filter(|c| !c.cosmetic_only)
        .map(|c| c.real.as_slice())
        .collect();
    let mut out = Vec::new();
    let mut counts = vec![0usize; names.len()];
    while !open.is_empty() && out.len() < TOP {
        counts.iter_mut().for_each(|c| *c = 0);
        for set in &open {
            for &f in *set {
                counts[f as usize] += 1;
            }
        }
        let Some((best, n)) = counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .min_by(|a, b| {
                let (na, nb) = (&names[a.0], &names[b.0]);
                b.1.cmp(a.1).then(na.1.cmp(&nb.1)).then(na.0.cmp(&nb.0))
            })
            .map(|(i, n)| (i as u32, *n))
        else {
            break;
        };
        out.push((names[best as usize].0.clone(), n));
        open.retain(|set| !set.contains(&best));
    }
    out
}

/// Among facts touching as many queries, root causes first: replacements, then
/// detail changes, removals, insertions; facts about enforcers and projections
/// (operators optimizers add as a consequence) after the others.
fn rank(f: &PlanFact) -> (bool, u8) {
    let secondary = sqlflight_diffing::plan::SECONDARY_KINDS.contains(&f.operator.as_str());
    let kind = match f.kind {
        FactKind::Replaced => 0,
        FactKind::Attribute => 1,
        FactKind::Removed => 2,
        FactKind::Inserted => 3,
    };
    (secondary, kind)
}

fn examples(q: &[String]) -> String {
    let shown: Vec<&str> = q.iter().take(8).map(String::as_str).collect();
    if q.len() > shown.len() {
        format!("{}, … {} more", shown.join(", "), q.len() - shown.len())
    } else {
        shown.join(", ")
    }
}

fn impact<'a>(flown: impl Iterator<Item = &'a Flown>) -> FactImpact {
    let (mut timed, mut slower, mut regressions) = (0, 0, 0);
    let mut ratios = Vec::new();
    for o in flown {
        if o.regression {
            regressions += 1;
        }
        if let Some((ratio, slow)) = o.perf {
            timed += 1;
            if slow {
                slower += 1;
            }
            if ratio.is_finite() {
                ratios.push(ratio);
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    let median_ratio = (!ratios.is_empty()).then(|| {
        let n = ratios.len();
        if n % 2 == 1 {
            ratios[n / 2]
        } else {
            (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
        }
    });
    FactImpact {
        timed,
        slower,
        regressions,
        median_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlflight_diffing::{FlightDetail, NormalizedPlan, PerfComparison, SideResult, playback_outcome};

    fn changed(id: &str, a: &str, b: &str) -> OutcomeRecord {
        playback_outcome(
            id.into(),
            "t".into(),
            SideResult::ok(NormalizedPlan::new("L", Some(a)), 1),
            SideResult::ok(NormalizedPlan::new("L", Some(b)), 1),
        )
    }

    fn flown(id: &str, ratio: f64, verdict: PerfVerdict) -> OutcomeRecord {
        let mut o = OutcomeRecord::skipped(id.into(), "t".into(), "x");
        o.class = OutcomeClass::Match;
        o.skip_reason = None;
        o.flight = Some(FlightDetail {
            perf: Some(PerfComparison::simple(ratio, Some(0.01), verdict, false)),
            ..Default::default()
        });
        o
    }

    const HJ: &str = "HashJoinExec: join_type=Inner\n  DataSourceExec: file_groups={[[…/a.parquet]]}\n  DataSourceExec: file_groups={[[…/b.parquet]]}\n";

    #[test]
    fn facts_rank_explain_and_join_a_flight() {
        let smj = HJ.replace("HashJoinExec", "SortMergeJoinExec");
        let semi = HJ.replace("Inner", "LeftSemi");
        let cosmetic = HJ.replace("b.parquet]]}", "b.parquet]]}, dynamic_rg_pruning=eligible");
        let run = vec![
            changed("q1", HJ, &smj),
            changed("q2", HJ, &smj),
            changed("q3", HJ, &semi),
            changed("q4", HJ, &cosmetic),
        ];
        let flight = vec![
            flown("q1", 1.0, PerfVerdict::Same),
            flown("q2", 1.1, PerfVerdict::Same),
            flown("q3", 3.0, PerfVerdict::Slower),
        ];
        let t = FactTable::build(&run, Some(&flight));
        assert_eq!(t.changed, 4);
        assert_eq!(t.cosmetic_only, 1);
        assert_eq!(t.covered_by_top, 4);
        let texts: Vec<&str> = t.facts.iter().map(|r| r.fact.fact.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "HashJoinExec -> SortMergeJoinExec",
                "HashJoinExec.join_type: Inner -> LeftSemi",
                "DataSourceExec + dynamic_rg_pruning=eligible"
            ]
        );
        assert_eq!(
            t.explanation,
            vec![
                ("HashJoinExec -> SortMergeJoinExec".to_string(), 2),
                ("HashJoinExec.join_type: Inner -> LeftSemi".to_string(), 1)
            ]
        );
        // By measured impact, the join-type change (one 3x slower query) comes first.
        let ranked: Vec<&str> = t.by_impact().iter().map(|r| r.fact.fact.as_str()).collect();
        assert_eq!(ranked[0], "HashJoinExec.join_type: Inner -> LeftSemi");
        let i = t.facts[0].impact.as_ref().unwrap();
        assert_eq!((i.timed, i.slower, i.median_ratio), (2, 0, Some(1.05)));
        let mut md = String::new();
        t.markdown(&mut md, 2);
        assert!(
            md.contains("Explained by: `HashJoinExec -> SortMergeJoinExec` (2)"),
            "{md}"
        );
        assert!(md.contains("1 cosmetic fact"), "{md}");
        assert!(md.contains("### Facts by measured impact"), "{md}");
    }

    #[test]
    fn scans_folded_to_empty_results_are_counted_and_warned() {
        let a = "PROJECTION: x=1\n  SEQ_SCAN: Table=lineitem\n";
        let b = "PROJECTION: x=1\n  EMPTY_RESULT\n";
        let run = vec![changed("q1", a, b), changed("q2", HJ, &HJ.replace("Inner", "Left"))];
        let t = FactTable::build(&run, None);
        assert_eq!(t.empty_folds, 1);
        let mut md = String::new();
        t.markdown(&mut md, 2);
        assert!(
            md.contains("1 plan change replaces a scan with an empty result"),
            "{md}"
        );
    }
}
