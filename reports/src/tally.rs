//! One pass over a run's outcomes: everything the reports show, gathered into a
//! [`Tally`] in memory proportional to what the reports list (regressions,
//! failures, plan changes, one number per timed query), never to the run.
//!
//! A run is anything that can be scanned in query-id order ([`Outcomes`]): an
//! in-memory [`crate::RunView`] (the end of a playback, the demo, tests) or a
//! [`RunFile`] streamed from a run directory, so `sqlflight report` on a run of
//! ten million outcomes never holds the run. Renderers only ever see a `Tally`
//! (and, for the formats that list every outcome, a second scan).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use sqlflight_diffing::{OutcomeClass, OutcomeRecord, RunManifest, SideResult};
use sqlflight_runs::OutcomeFile;

use crate::analysis::{Analysis, AnalysisAcc};
use crate::facts::{FactAcc, FactTable, Flown};
use crate::markdown::ChangeGroup;
use crate::perf::{PerfAcc, PerfFigures};
use crate::{ReportError, RunView};

/// Most rows of each kind (regressions, others) in [`Tally::table`].
pub const TABLE_ROWS: usize = 5000;

/// Most points in [`Tally::scatter`].
pub const SCATTER_POINTS: usize = 5000;

/// Skipped queries named per reason.
const SKIP_EXAMPLES: usize = 10;

/// A run whose outcomes can be read in query-id order, as often as needed.
pub trait Outcomes {
    /// The run's manifest.
    fn manifest(&self) -> &RunManifest;
    /// Outcomes in the run.
    fn len(&self) -> usize;
    /// True when the run has no outcome.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Calls `f` with each outcome in query-id order; stops at `f`'s first error.
    fn scan(&self, f: &mut dyn FnMut(&OutcomeRecord) -> Result<(), ReportError>) -> Result<(), ReportError>;
}

impl Outcomes for RunView {
    fn manifest(&self) -> &RunManifest {
        &self.manifest
    }

    fn len(&self) -> usize {
        self.outcomes.len()
    }

    fn scan(&self, f: &mut dyn FnMut(&OutcomeRecord) -> Result<(), ReportError>) -> Result<(), ReportError> {
        self.outcomes.iter().try_for_each(f)
    }
}

/// A run directory read as a stream ([`OutcomeFile`]): its manifest in memory,
/// its outcomes on disk.
#[derive(Debug)]
pub struct RunFile {
    /// The run's manifest.
    pub manifest: RunManifest,
    /// Its outcomes, in query-id order.
    pub outcomes: OutcomeFile,
}

impl RunFile {
    /// Opens the run in `dir`.
    pub fn open(dir: &Path) -> Result<RunFile, ReportError> {
        Ok(RunFile {
            manifest: sqlflight_runs::read_manifest(dir)?,
            outcomes: OutcomeFile::open(dir)?,
        })
    }
}

impl Outcomes for RunFile {
    fn manifest(&self) -> &RunManifest {
        &self.manifest
    }

    fn len(&self) -> usize {
        self.outcomes.len()
    }

    fn scan(&self, f: &mut dyn FnMut(&OutcomeRecord) -> Result<(), ReportError>) -> Result<(), ReportError> {
        self.outcomes.for_each(|o| f(&o))
    }
}

/// One regression as the Markdown report lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionRow {
    /// The query.
    pub query_id: String,
    /// Its template.
    pub template_id: String,
    /// Its class.
    pub class: OutcomeClass,
    /// What the baseline did, in words.
    pub baseline: String,
    /// What the candidate did, in words.
    pub candidate: String,
    /// The candidate's error (as journaled: redacted).
    pub error: Option<String>,
}

/// One listed outcome: query, class, and the text that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRow {
    /// The query.
    pub query_id: String,
    /// Its class.
    pub class: OutcomeClass,
    /// Why (nondeterministic, accepted, tolerated), or the baseline's side.
    pub why: String,
    /// The candidate's side (other failures).
    pub candidate: String,
}

/// One row of the HTML table of queries.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// The query.
    pub query_id: String,
    /// Its template.
    pub template_id: String,
    /// Counts as a regression.
    pub regression: bool,
    /// Its class, with "undecided slowdown" when that is what failed it.
    pub class: String,
    /// One line of detail.
    pub detail: String,
    /// Median times and ratio.
    pub baseline_ms: Option<f64>,
    /// Candidate median, milliseconds.
    pub candidate_ms: Option<f64>,
    /// Candidate/baseline time ratio.
    pub ratio: Option<f64>,
}

/// One point of the latency scatter.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The query.
    pub query_id: String,
    /// Baseline median, ms.
    pub baseline_ms: f64,
    /// Candidate median, ms.
    pub candidate_ms: f64,
    /// Counts as a regression.
    pub regression: bool,
}

/// Everything the reports show about one run.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Outcomes.
    pub total: usize,
    /// Per class, in report order, zero counts left out.
    pub counts: Vec<(OutcomeClass, usize)>,
    /// Outcomes that are regressions.
    pub regressions: usize,
    /// Outcomes not skipped.
    pub verified: usize,
    /// Templates among all outcomes.
    pub templates: usize,
    /// Templates among the verified outcomes.
    pub templates_verified: usize,
    /// Plan changes by change signature, largest group first.
    pub change_groups: Vec<ChangeGroup>,
    /// What changed in the optimizer.
    pub facts: FactTable,
    /// Timing figures (flights).
    pub perf: PerfFigures,
    /// Per template and tenant, ratio percentiles.
    pub analysis: Analysis,
    /// Every regression, in query order.
    pub regression_rows: Vec<RegressionRow>,
    /// Nondeterministic, accepted and tolerated outcomes, with why.
    pub explained: Vec<ListedRow>,
    /// Failures that are not regressions (fixed, both failing).
    pub other_failures: Vec<ListedRow>,
    /// Skipped queries by reason (the part before `:`): count and the first ids.
    pub skipped: BTreeMap<String, (usize, Vec<String>)>,
    /// The HTML table: up to [`TABLE_ROWS`] regressions, then as many others.
    pub table: Vec<TableRow>,
    /// The latency scatter: every regression up to half of [`SCATTER_POINTS`],
    /// then an even sample of the rest.
    pub scatter: Vec<Point>,
    /// Queries with both medians (what the scatter samples from).
    pub timed: usize,
}

/// The [`Tally`], accumulated one outcome at a time.
#[derive(Debug, Default)]
pub struct TallyAcc {
    total: usize,
    counts: BTreeMap<OutcomeClass, usize>,
    regressions: usize,
    verified: usize,
    templates_verified: HashSet<u64>,
    groups: BTreeMap<String, Vec<String>>,
    facts: FactAcc,
    perf: PerfAcc,
    analysis: AnalysisAcc,
    regression_rows: Vec<RegressionRow>,
    explained: Vec<ListedRow>,
    other_failures: Vec<ListedRow>,
    skipped: BTreeMap<String, (usize, Vec<String>)>,
    table_regressions: Vec<TableRow>,
    table_others: Vec<TableRow>,
    scatter_regressions: Vec<Point>,
    /// The other timed queries, every `stride`-th kept.
    scatter_rest: Vec<Point>,
    stride: usize,
    rest_seen: usize,
    timed: usize,
    /// The flight's figures of plan changes, when the run is its own flight.
    flown: Option<HashMap<String, Flown>>,
}

/// What a side did, in words: `compiled (plan …)`, `plan error`, `not run`.
pub fn side_text(s: &Option<SideResult>) -> String {
    match s {
        None => "not run".into(),
        Some(SideResult::Ok { plan_hash, .. }) => format!("compiled (plan {plan_hash})"),
        Some(SideResult::Error { error_class, .. }) => format!("{error_class} error"),
    }
}

fn error_text(s: &Option<SideResult>) -> Option<&str> {
    match s {
        Some(SideResult::Error { error, .. }) => Some(error),
        _ => None,
    }
}

fn medians(o: &OutcomeRecord) -> (Option<f64>, Option<f64>) {
    o.flight
        .as_ref()
        .map_or((None, None), |f| (f.baseline.median_ms, f.candidate.median_ms))
}

fn table_row(x: &OutcomeRecord) -> TableRow {
    let perf = x.flight.as_ref().and_then(|f| f.perf.as_ref());
    let detail = x
        .detail
        .clone()
        .or_else(|| x.change_signature.clone())
        .or_else(|| x.skip_reason.clone())
        .or_else(|| error_text(&x.candidate).map(|e| e.lines().next().unwrap_or("").to_string()))
        .or_else(|| perf.filter(|p| p.counts()).map(|p| p.describe()));
    let class = if perf.is_some_and(|p| p.undecided_slowdown) {
        format!("{} · undecided slowdown", x.class)
    } else {
        x.class.to_string()
    };
    let (baseline_ms, candidate_ms) = medians(x);
    TableRow {
        query_id: x.query_id.clone(),
        template_id: x.template_id.clone(),
        regression: x.is_regression(),
        class,
        detail: detail.unwrap_or_default(),
        baseline_ms,
        candidate_ms,
        ratio: perf.map(|p| p.ratio),
    }
}

impl TallyAcc {
    /// An accumulator; `self_flight`: the run is also the flight whose
    /// measurements rank its plan facts.
    pub fn new(self_flight: bool) -> TallyAcc {
        TallyAcc {
            stride: 1,
            flown: self_flight.then(HashMap::new),
            ..TallyAcc::default()
        }
    }

    /// Counts one outcome.
    pub fn add(&mut self, o: &OutcomeRecord) {
        self.total += 1;
        *self.counts.entry(o.class).or_default() += 1;
        let regression = o.is_regression();
        self.regressions += regression as usize;
        if o.class != OutcomeClass::Skipped {
            self.verified += 1;
            let mut h = std::hash::DefaultHasher::new();
            o.template_id.hash(&mut h);
            self.templates_verified.insert(h.finish());
        }
        if o.class == OutcomeClass::PlanChanged {
            let sig = o.change_signature.as_deref().unwrap_or("");
            match self.groups.get_mut(sig) {
                Some(v) => v.push(o.query_id.clone()),
                None => {
                    self.groups.insert(sig.to_string(), vec![o.query_id.clone()]);
                }
            }
            if let Some(f) = &mut self.flown {
                f.insert(o.query_id.clone(), Flown::of(o));
            }
        }
        self.facts.add(o);
        self.perf.add(o);
        self.analysis.add(o);
        if regression {
            self.regression_rows.push(RegressionRow {
                query_id: o.query_id.clone(),
                template_id: o.template_id.clone(),
                class: o.class,
                baseline: side_text(&o.baseline),
                candidate: side_text(&o.candidate),
                error: error_text(&o.candidate).map(str::to_string),
            });
            if self.table_regressions.len() < TABLE_ROWS {
                self.table_regressions.push(table_row(o));
            }
        } else if self.table_others.len() < TABLE_ROWS {
            self.table_others.push(table_row(o));
        }
        match o.class {
            OutcomeClass::Nondeterministic | OutcomeClass::Accepted | OutcomeClass::MatchWithinTolerance => {
                self.explained.push(ListedRow {
                    query_id: o.query_id.clone(),
                    class: o.class,
                    why: o.detail.clone().unwrap_or_default(),
                    candidate: String::new(),
                })
            }
            OutcomeClass::Fixed | OutcomeClass::BothFailChanged | OutcomeClass::BothFailSame => {
                self.other_failures.push(ListedRow {
                    query_id: o.query_id.clone(),
                    class: o.class,
                    why: side_text(&o.baseline),
                    candidate: side_text(&o.candidate),
                })
            }
            OutcomeClass::Skipped => {
                let r = o.skip_reason.as_deref().unwrap_or("no reason given");
                let reason = r.split(':').next().unwrap_or(r);
                let e = match self.skipped.get_mut(reason) {
                    Some(e) => e,
                    None => self.skipped.entry(reason.to_string()).or_default(),
                };
                e.0 += 1;
                if e.1.len() < SKIP_EXAMPLES {
                    e.1.push(o.query_id.clone());
                }
            }
            _ => {}
        }
        if let (Some(b), Some(c)) = medians(o)
            && b > 0.0
            && c > 0.0
        {
            self.timed += 1;
            let p = Point {
                query_id: o.query_id.clone(),
                baseline_ms: b,
                candidate_ms: c,
                regression,
            };
            if regression {
                if self.scatter_regressions.len() < SCATTER_POINTS / 2 {
                    self.scatter_regressions.push(p);
                }
            } else {
                // An even sample in bounded memory: keep every stride-th point;
                // when the sample is full, double the stride and halve it.
                if self.rest_seen.is_multiple_of(self.stride) {
                    self.scatter_rest.push(p);
                    if self.scatter_rest.len() >= 2 * SCATTER_POINTS {
                        self.stride *= 2;
                        let mut k = 0;
                        self.scatter_rest.retain(|_| {
                            k += 1;
                            k % 2 == 1
                        });
                    }
                }
                self.rest_seen += 1;
            }
        }
    }

    /// Query ids whose flight figures the fact table wants from a separate
    /// flight run.
    pub fn wanted(&self) -> HashSet<String> {
        self.groups.values().flatten().cloned().collect()
    }

    /// The tally; `flight`: the figures of a separate flight run, by query id.
    pub fn finish(self, flight: Option<&HashMap<String, Flown>>) -> Tally {
        let flight = self.flown.as_ref().or(flight);
        let counts = OutcomeClass::ALL
            .iter()
            .filter_map(|c| self.counts.get(c).map(|n| (*c, *n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut change_groups: Vec<ChangeGroup> = self
            .groups
            .into_iter()
            .map(|(signature, mut queries)| {
                queries.sort();
                ChangeGroup { signature, queries }
            })
            .collect();
        change_groups.sort_by(|a, b| {
            b.queries
                .len()
                .cmp(&a.queries.len())
                .then(a.signature.cmp(&b.signature))
        });
        let mut table = self.table_regressions;
        table.extend(self.table_others);
        let mut scatter = self.scatter_regressions;
        let room = SCATTER_POINTS - scatter.len();
        let step = self.scatter_rest.len().div_ceil(room).max(1);
        scatter.extend(self.scatter_rest.into_iter().step_by(step));
        let analysis = self.analysis.finish();
        Tally {
            total: self.total,
            counts,
            regressions: self.regressions,
            verified: self.verified,
            templates: analysis.by_template.len(),
            templates_verified: self.templates_verified.len(),
            change_groups,
            facts: self.facts.finish(flight),
            perf: self.perf.finish(),
            analysis,
            regression_rows: self.regression_rows,
            explained: self.explained,
            other_failures: self.other_failures,
            skipped: self.skipped,
            table,
            scatter,
            timed: self.timed,
        }
    }
}

impl Tally {
    /// The tally of an in-memory run; `flight` is a flight run of the same
    /// corpus (possibly `run` itself) whose measurements rank the plan facts.
    pub fn of(run: &RunView, flight: Option<&RunView>) -> Tally {
        let same = flight.is_some_and(|f| std::ptr::eq(f, run));
        let mut acc = TallyAcc::new(same);
        run.outcomes.iter().for_each(|o| acc.add(o));
        let flown = flight.filter(|_| !same).map(|f| {
            let wanted = acc.wanted();
            f.outcomes
                .iter()
                .filter(|o| wanted.contains(&o.query_id))
                .map(|o| (o.query_id.clone(), Flown::of(o)))
                .collect::<HashMap<_, _>>()
        });
        acc.finish(flown.as_ref())
    }

    /// The tally of any run, streamed (one scan of `run`, and one of `flight`
    /// when it is another run).
    pub fn read<R: Outcomes>(run: &R, flight: Option<&R>) -> Result<Tally, ReportError> {
        let same = flight.is_some_and(|f| std::ptr::eq(f, run));
        let mut acc = TallyAcc::new(same);
        run.scan(&mut |o| {
            acc.add(o);
            Ok(())
        })?;
        let flown = match flight.filter(|_| !same) {
            Some(f) => {
                let wanted = acc.wanted();
                let mut m = HashMap::new();
                f.scan(&mut |o| {
                    if wanted.contains(&o.query_id) {
                        m.insert(o.query_id.clone(), Flown::of(o));
                    }
                    Ok(())
                })?;
                Some(m)
            }
            None => None,
        };
        Ok(acc.finish(flown.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sqlflight_diffing::{FlightDetail, FlightSide, PerfComparison, PerfVerdict};

    fn timed(i: usize, ratio: f64, p: f64, verdict: PerfVerdict) -> OutcomeRecord {
        let mut o = OutcomeRecord::skipped(format!("q{i:05}"), format!("t{}", i % 3), "x");
        o.class = OutcomeClass::Match;
        o.skip_reason = None;
        o.flight = Some(FlightDetail {
            baseline: FlightSide {
                median_ms: Some(10.0),
                ..Default::default()
            },
            candidate: FlightSide {
                median_ms: Some(10.0 * ratio),
                ..Default::default()
            },
            perf: Some(PerfComparison::simple(ratio, Some(p), verdict, false)),
            ..Default::default()
        });
        o
    }

    proptest! {
        /// The streamed false-discovery figures equal the textbook
        /// Benjamini-Hochberg q-values over the same p-values.
        #[test]
        fn streamed_fdr_equals_benjamini_hochberg(ps in proptest::collection::vec((0u32..1000, 0u8..3), 1..200)) {
            let verdict = |k| match k { 0 => PerfVerdict::Slower, 1 => PerfVerdict::Faster, _ => PerfVerdict::Same };
            let o: Vec<OutcomeRecord> = ps
                .iter()
                .enumerate()
                .map(|(i, (p, k))| timed(i, 1.0 + i as f64 / 100.0, *p as f64 / 1000.0, verdict(*k)))
                .collect();
            let mut acc = PerfAcc::default();
            o.iter().for_each(|x| acc.add(x));
            let figures = acc.finish();
            let p: Vec<f64> = ps.iter().map(|x| x.0 as f64 / 1000.0).collect();
            let q = crate::perf::bh_qvalues(&p);
            let want = q.iter().zip(&ps).filter(|(q, (_, k))| **q <= 0.05 && *k < 2).count();
            prop_assert_eq!(figures.summary.map(|s| s.discoveries_fdr05), Some(want));
            for row in &figures.slowest {
                let i: usize = row.query_id[1..].parse().unwrap_or(0);
                prop_assert!((row.q_value.unwrap_or(-1.0) - q[i]).abs() < 1e-12, "{:?} vs {}", row, q[i]);
            }
            // The slowest rows are the largest ratios, largest first.
            let mut ratios: Vec<f64> = o.iter().map(|x| x.flight.as_ref().and_then(|f| f.perf.as_ref()).map_or(0.0, |p| p.ratio)).collect();
            ratios.sort_by(|a, b| b.total_cmp(a));
            let got: Vec<f64> = figures.slowest.iter().map(|r| r.ratio).collect();
            prop_assert_eq!(got, ratios.into_iter().take(crate::perf::SLOWEST).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_scatter_sample_is_bounded_and_even() {
        let mut acc = TallyAcc::new(false);
        for i in 0..(7 * SCATTER_POINTS + 3) {
            acc.add(&timed(i, 1.0, 0.5, PerfVerdict::Same));
        }
        let t = acc.finish(None);
        assert_eq!(t.timed, 7 * SCATTER_POINTS + 3);
        assert!(
            t.scatter.len() <= SCATTER_POINTS && t.scatter.len() > SCATTER_POINTS / 3,
            "{}",
            t.scatter.len()
        );
        let ids: Vec<usize> = t.scatter.iter().map(|p| p.query_id[1..].parse().unwrap_or(0)).collect();
        let gaps: HashSet<usize> = ids.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps.len(), 1, "even spacing: {gaps:?}");
    }
}
