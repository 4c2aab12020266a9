//! The one judge of sqlflight: what a query's outcome class is, from plain data
//! about what both sides did.
//!
//! Playback and flight measure (compile, execute, time, digest, re-run) and hand
//! what they observed to this module; nothing here does I/O or knows an engine.
//! [`error_pair`] is the one table for a query where a side failed, used by both
//! playback ([`crate::classify_playback`]) and flight ([`flight`]);
//! [`flight`] judges a flown query from its [`FlightEvidence`], and
//! [`wants_baseline_reruns`] says when the evidence is not yet enough (results
//! differ and nothing explains it: re-run the baseline to test it against itself).

use crate::digest::{DigestComparison, FloatTolerance, ResultDigest, compare_digests};
use crate::outcome::{ErrorClass, MemoryComparison, OutcomeClass, PerfComparison};

/// What the sides did with the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Playback: parse and plan only.
    Compile,
    /// Flight: executed on data (memory and other limits apply).
    Execute,
}

/// The outcome of a query where at least one side failed (`None`: the side
/// succeeded); `None` when both succeeded (then the plans or results decide).
///
/// The table (DESIGN.md section 6): a candidate that fails where the baseline
/// succeeded is a `new_failure`, or `crash` / `timeout` / (executing)
/// `resource_limit` by how it failed; a baseline failure the candidate does not
/// have is `fixed`; two failures of one class are `both_fail_same`; of different
/// classes, a candidate crash or timeout is named as such, a candidate internal
/// error after a clean error is `new_internal_error`, anything else
/// `both_fail_changed`.
pub fn error_pair(stage: Stage, baseline: Option<ErrorClass>, candidate: Option<ErrorClass>) -> Option<OutcomeClass> {
    use ErrorClass as E;
    use OutcomeClass as O;
    Some(match (baseline, candidate) {
        (None, None) => return None,
        (None, Some(E::Crash)) => O::Crash,
        (None, Some(E::Timeout)) => O::Timeout,
        (None, Some(E::Resource)) if stage == Stage::Execute => O::ResourceLimit,
        (None, Some(_)) => O::NewFailure,
        (Some(_), None) => O::Fixed,
        (Some(b), Some(c)) if b == c => O::BothFailSame,
        (Some(_), Some(E::Crash)) => O::Crash,
        (Some(_), Some(E::Timeout)) => O::Timeout,
        (Some(b), Some(E::Internal)) if b != E::Crash && b != E::Timeout => O::NewInternalError,
        (Some(_), Some(_)) => O::BothFailChanged,
    })
}

/// Everything a flight observed about one query, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct FlightEvidence<'a> {
    /// The baseline's first (compared) result, or the class of its error.
    pub baseline: Result<&'a ResultDigest, ErrorClass>,
    /// The candidate's first (compared) result, or the class of its error.
    pub candidate: Result<&'a ResultDigest, ErrorClass>,
    /// How far float columns may differ and still match.
    pub tolerance: FloatTolerance,
    /// Why the statement's text makes its result nondeterministic (LIMIT without
    /// ORDER BY, random(), now(), ...), found before running it.
    pub static_nondeterminism: &'a [String],
    /// A later (timed) run of the baseline disagreed with its first.
    pub baseline_unstable: bool,
    /// A later (timed) run of the candidate disagreed with its first.
    pub candidate_unstable: bool,
    /// Baseline re-runs made because the results differed.
    pub reruns: u32,
    /// One of those re-runs disagreed with the baseline's first result.
    pub rerun_disagreed: bool,
    /// The baseline is a recorded snapshot (query-bank mode), not a live run.
    pub against_snapshot: bool,
    /// The timing verdict, when timed.
    pub perf: Option<&'a PerfComparison>,
    /// The peak-memory verdict, when the engines account for memory.
    pub memory: Option<&'a MemoryComparison>,
}

/// A query's class and what explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The outcome class.
    pub class: OutcomeClass,
    /// Why, for people and reports (which part differs, what regressed).
    pub detail: Option<String>,
}

impl Verdict {
    fn new(class: OutcomeClass, detail: Option<String>) -> Verdict {
        Verdict { class, detail }
    }
}

const BASELINE_UNSTABLE: &str = "the baseline's results differ between its own runs";

/// Whether the evidence needs baseline re-runs before it can be judged: both
/// sides ran, their results differ, and nothing seen so far (the statement's
/// text, a disagreeing timed run of the baseline) explains it.
pub fn wants_baseline_reruns(e: &FlightEvidence<'_>) -> bool {
    let differ = match (e.baseline, e.candidate) {
        (Ok(b), Ok(c)) => matches!(compare_digests(b, c, e.tolerance), DigestComparison::Mismatch(_)),
        _ => false,
    };
    differ && e.static_nondeterminism.is_empty() && !e.baseline_unstable && !e.against_snapshot
}

/// The outcome of a flown query.
pub fn flight(e: &FlightEvidence<'_>) -> Verdict {
    match (e.baseline, e.candidate) {
        (Ok(b), Ok(c)) => both_ran(e, b, c),
        (b, c) => match error_pair(Stage::Execute, b.err(), c.err()) {
            Some(class) => Verdict::new(class, None),
            None => Verdict::new(OutcomeClass::Match, None), // unreachable: a side failed
        },
    }
}

fn both_ran(e: &FlightEvidence<'_>, b: &ResultDigest, c: &ResultDigest) -> Verdict {
    use OutcomeClass as O;
    let mut v = match compare_digests(b, c, e.tolerance) {
        DigestComparison::Match => Verdict::new(O::Match, None),
        DigestComparison::MatchWithinTolerance(cols) => {
            Verdict::new(O::MatchWithinTolerance, Some(format!("columns:[{}]", cols.join(","))))
        }
        DigestComparison::Mismatch(part) => results_differ(e, part),
    };
    let matched = |v: &Verdict| matches!(v.class, O::Match | O::MatchWithinTolerance);
    if matched(&v) {
        // Equal first results, but a side disagreed with itself later.
        if e.baseline_unstable {
            v = Verdict::new(O::Nondeterministic, Some(BASELINE_UNSTABLE.into()));
        } else if e.candidate_unstable {
            v = Verdict::new(
                O::WrongResult,
                Some("the candidate's results differ between its own runs".into()),
            );
        }
    }
    if matched(&v) {
        // Slower, or needing more memory on every run: a performance regression,
        // with what regressed in the detail.
        let slower = e.perf.filter(|p| p.regression).map(PerfComparison::describe);
        let bigger = e.memory.filter(|m| m.regression).map(MemoryComparison::describe);
        let said: Vec<String> = slower.into_iter().chain(bigger).collect();
        if !said.is_empty() {
            v = Verdict::new(O::PerfRegression, Some(said.join("; ")));
        }
    }
    v
}

/// Different results: nondeterminism when anything shows the baseline does not
/// agree with itself, else a wrong result naming the part that differs.
fn results_differ(e: &FlightEvidence<'_>, part: String) -> Verdict {
    use OutcomeClass as O;
    if !e.static_nondeterminism.is_empty() {
        Verdict::new(O::Nondeterministic, Some(e.static_nondeterminism.join("; ")))
    } else if e.baseline_unstable {
        Verdict::new(O::Nondeterministic, Some(BASELINE_UNSTABLE.into()))
    } else if e.rerun_disagreed {
        Verdict::new(
            O::Nondeterministic,
            Some(format!("{BASELINE_UNSTABLE} (re-run {} time(s))", e.reruns)),
        )
    } else if e.against_snapshot {
        Verdict::new(O::WrongResult, Some(format!("{part} (against a snapshot)")))
    } else {
        Verdict::new(O::WrongResult, Some(part))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};
    use arrow::record_batch::RecordBatch;
    use proptest::prelude::*;

    use super::*;
    use crate::DigestBuilder;
    use crate::outcome::PerfVerdict;

    const CLASSES: [Option<ErrorClass>; 8] = [
        None,
        Some(ErrorClass::Parse),
        Some(ErrorClass::Plan),
        Some(ErrorClass::Execution),
        Some(ErrorClass::Resource),
        Some(ErrorClass::Internal),
        Some(ErrorClass::Timeout),
        Some(ErrorClass::Crash),
    ];

    /// The table, written out: rows are the baseline (ok, parse, plan, execution,
    /// resource, internal, timeout, crash), columns the candidate, in that order.
    /// `RL` differs by stage: `resource_limit` executing, `new_failure` compiling.
    #[test]
    fn the_error_table_for_every_pair_of_side_results() {
        use OutcomeClass::*;
        const OK: Option<OutcomeClass> = None;
        let (nf, fx, bs, bc, ni, cr, to) = (
            Some(NewFailure),
            Some(Fixed),
            Some(BothFailSame),
            Some(BothFailChanged),
            Some(NewInternalError),
            Some(Crash),
            Some(Timeout),
        );
        for stage in [Stage::Compile, Stage::Execute] {
            let rl = if stage == Stage::Execute {
                Some(ResourceLimit)
            } else {
                nf
            };
            #[rustfmt::skip]
            let table = [
                //        ok  parse plan exec res internal timeout crash
                /* ok */ [OK, nf, nf, nf, rl, nf, to, cr],
                /* parse */ [fx, bs, bc, bc, bc, ni, to, cr],
                /* plan */ [fx, bc, bs, bc, bc, ni, to, cr],
                /* exec */ [fx, bc, bc, bs, bc, ni, to, cr],
                /* res */ [fx, bc, bc, bc, bs, ni, to, cr],
                /* internal */ [fx, bc, bc, bc, bc, bs, to, cr],
                /* timeout */ [fx, bc, bc, bc, bc, bc, bs, cr],
                /* crash */ [fx, bc, bc, bc, bc, bc, to, bs],
            ];
            for (i, b) in CLASSES.iter().enumerate() {
                for (j, c) in CLASSES.iter().enumerate() {
                    assert_eq!(
                        error_pair(stage, *b, *c),
                        table[i][j],
                        "{stage:?} baseline {b:?} candidate {c:?}"
                    );
                }
            }
        }
    }

    fn digest(values: &[i64]) -> ResultDigest {
        let batch = RecordBatch::try_from_iter(vec![("x", Arc::new(Int64Array::from(values.to_vec())) as ArrayRef)])
            .expect("a valid batch");
        let mut b = DigestBuilder::new(&batch.schema(), None);
        b.update(&batch);
        b.finish()
    }

    fn slower(regression: bool) -> PerfComparison {
        PerfComparison::simple(2.0, Some(0.001), PerfVerdict::Slower, regression)
    }

    fn evidence<'a>(b: &'a ResultDigest, c: &'a ResultDigest) -> FlightEvidence<'a> {
        FlightEvidence {
            baseline: Ok(b),
            candidate: Ok(c),
            tolerance: FloatTolerance::default(),
            static_nondeterminism: &[],
            baseline_unstable: false,
            candidate_unstable: false,
            reruns: 0,
            rerun_disagreed: false,
            against_snapshot: false,
            perf: None,
            memory: None,
        }
    }

    #[test]
    fn results_then_stability_then_performance() {
        let (one, two) = (digest(&[1, 2, 3]), digest(&[1, 2, 4]));
        let same = evidence(&one, &one);
        assert_eq!(flight(&same).class, OutcomeClass::Match);
        assert!(!wants_baseline_reruns(&same));
        let differ = evidence(&one, &two);
        assert!(wants_baseline_reruns(&differ));
        let v = flight(&differ);
        assert_eq!(v.class, OutcomeClass::WrongResult);
        assert!(v.detail.is_some_and(|d| d.contains('x')), "names the column");
        let flaky = FlightEvidence {
            reruns: 1,
            rerun_disagreed: true,
            ..differ
        };
        assert_eq!(flight(&flaky).class, OutcomeClass::Nondeterministic);
        assert_eq!(
            flight(&flaky).detail.as_deref(),
            Some("the baseline's results differ between its own runs (re-run 1 time(s))")
        );
        let limit = ["LIMIT without ORDER BY".to_string()];
        let stated = FlightEvidence {
            static_nondeterminism: &limit,
            ..differ
        };
        assert!(!wants_baseline_reruns(&stated));
        assert_eq!(flight(&stated).detail.as_deref(), Some("LIMIT without ORDER BY"));
        let snapshot = FlightEvidence {
            against_snapshot: true,
            ..differ
        };
        assert!(!wants_baseline_reruns(&snapshot), "a snapshot cannot be re-run");
        assert!(
            flight(&snapshot)
                .detail
                .is_some_and(|d| d.ends_with("(against a snapshot)"))
        );
        let candidate_flaky = FlightEvidence {
            candidate_unstable: true,
            ..same
        };
        assert_eq!(flight(&candidate_flaky).class, OutcomeClass::WrongResult);
        let p = slower(true);
        let slow = FlightEvidence { perf: Some(&p), ..same };
        let v = flight(&slow);
        assert_eq!(v.class, OutcomeClass::PerfRegression);
        assert_eq!(v.detail, Some(p.describe()));
        // A wrong result stays one however slow it is.
        assert_eq!(
            flight(&FlightEvidence {
                perf: Some(&p),
                ..differ
            })
            .class,
            OutcomeClass::WrongResult
        );
    }

    fn any_class() -> impl Strategy<Value = Option<ErrorClass>> {
        proptest::sample::select(CLASSES.to_vec())
    }

    proptest! {
        /// Whatever the evidence, the judge's class follows from its parts: a failed
        /// side decides by the error table alone; a baseline that disagrees with
        /// itself never yields a wrong result or a performance regression; a
        /// performance verdict never hides a wrong result.
        #[test]
        fn flight_verdicts_follow_from_the_evidence(
            b_err in any_class(), c_err in any_class(),
            same_result in any::<bool>(), stat in any::<bool>(), b_unstable in any::<bool>(),
            c_unstable in any::<bool>(), rerun_disagreed in any::<bool>(), snap in any::<bool>(),
            regression in proptest::option::of(any::<bool>()),
        ) {
            let (one, two) = (digest(&[1, 2, 3]), digest(&[7]));
            let other = if same_result { &one } else { &two };
            let reasons = if stat { vec!["random()".to_string()] } else { vec![] };
            let p = regression.map(slower);
            let e = FlightEvidence {
                baseline: b_err.map_or(Ok(&one), Err),
                candidate: c_err.map_or(Ok(other), Err),
                tolerance: FloatTolerance::default(),
                static_nondeterminism: &reasons,
                baseline_unstable: b_unstable,
                candidate_unstable: c_unstable,
                reruns: u32::from(rerun_disagreed),
                rerun_disagreed,
                against_snapshot: snap,
                perf: p.as_ref(),
                memory: None,
            };
            let v = flight(&e);
            if b_err.is_some() || c_err.is_some() {
                prop_assert_eq!(Some(v.class), error_pair(Stage::Execute, b_err, c_err));
                prop_assert!(!wants_baseline_reruns(&e));
            } else {
                if b_unstable || (!same_result && (stat || rerun_disagreed)) {
                    prop_assert_eq!(v.class, OutcomeClass::Nondeterministic);
                }
                if v.class == OutcomeClass::PerfRegression {
                    prop_assert!(same_result && !b_unstable && !c_unstable && regression == Some(true));
                }
                if same_result && !b_unstable && !c_unstable {
                    let expect = if regression == Some(true) { OutcomeClass::PerfRegression } else { OutcomeClass::Match };
                    prop_assert_eq!(v.class, expect);
                }
                prop_assert_eq!(
                    wants_baseline_reruns(&e),
                    !same_result && !stat && !b_unstable && !snap
                );
            }
        }
    }
}
