//! What changed between two runs of the same corpus (nightly trend tracking).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlflight_diffing::{OutcomeClass, OutcomeRecord};

use crate::RunView;

/// One query whose outcome differs between the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The query.
    pub query_id: String,
    /// Its class in the old run (none: not in it).
    pub old: Option<OutcomeClass>,
    /// Its class in the new run (none: not in it).
    pub new: Option<OutcomeClass>,
}

/// A query whose candidate/baseline time ratio moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// The query.
    pub query_id: String,
    /// Its candidate/baseline ratio in the old run.
    pub old_ratio: f64,
    /// Its ratio in the new run.
    pub new_ratio: f64,
}

/// The differences between an old and a new run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Regressions in the new run that the old run did not have.
    pub new_regressions: Vec<Change>,
    /// Regressions of the old run that are gone.
    pub resolved: Vec<Change>,
    /// Other class changes.
    pub changed: Vec<Change>,
    /// Queries whose time ratio moved by more than the threshold (relative).
    pub perf_drift: Vec<Drift>,
    /// Queries only the old run has.
    pub only_in_old: usize,
    /// Queries only the new run has.
    pub only_in_new: usize,
}

fn ratio(o: &OutcomeRecord) -> Option<f64> {
    Some(o.flight.as_ref()?.perf.as_ref()?.ratio)
}

/// Compares two runs query by query. `drift` is the relative change of a query's
/// time ratio that counts as drift (0.2 = 20%).
pub fn compare_runs(old: &RunView, new: &RunView, drift: f64) -> Comparison {
    let o: BTreeMap<&str, &OutcomeRecord> = old.outcomes.iter().map(|x| (x.query_id.as_str(), x)).collect();
    let n: BTreeMap<&str, &OutcomeRecord> = new.outcomes.iter().map(|x| (x.query_id.as_str(), x)).collect();
    let mut c = Comparison::default();
    for (id, b) in &n {
        let Some(a) = o.get(id) else {
            c.only_in_new += 1;
            if b.is_regression() {
                c.new_regressions.push(Change {
                    query_id: id.to_string(),
                    old: None,
                    new: Some(b.class),
                });
            }
            continue;
        };
        let ch = Change {
            query_id: id.to_string(),
            old: Some(a.class),
            new: Some(b.class),
        };
        match (a.is_regression(), b.is_regression()) {
            (false, true) => c.new_regressions.push(ch),
            (true, false) => c.resolved.push(ch),
            _ if a.class != b.class => c.changed.push(ch),
            _ => {}
        }
        if let (Some(ra), Some(rb)) = (ratio(a), ratio(b))
            && ra > 0.0
            && ((rb - ra) / ra).abs() > drift
        {
            c.perf_drift.push(Drift {
                query_id: id.to_string(),
                old_ratio: ra,
                new_ratio: rb,
            });
        }
    }
    c.only_in_old = o.keys().filter(|k| !n.contains_key(*k)).count();
    c
}
