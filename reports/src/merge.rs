//! Merging the runs of `--partition K/N` into the run one machine would have made.

use std::collections::BTreeSet;
use std::path::Path;

use sqlflight_diffing::RunManifest;
use sqlflight_runs::Journal;

use crate::{ReportError, RunView};

/// Why runs cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No run was given.
    #[error("nothing to merge")]
    Empty,
    /// Two runs of different corpora, engines or partition counts.
    #[error("{a} and {b} cannot be merged: {why}")]
    Mismatch {
        /// One run.
        a: String,
        /// The other.
        b: String,
        /// What differs.
        why: String,
    },
    /// A query with an outcome in two runs.
    #[error("query `{query_id}` is in more than one run ({a} and {b})")]
    Duplicate {
        /// The query.
        query_id: String,
        /// One run.
        a: String,
        /// The other.
        b: String,
    },
    /// A run could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The merged run could not be written.
    #[error(transparent)]
    Journal(#[from] sqlflight_runs::JournalError),
}

fn same_run(a: &RunManifest, b: &RunManifest) -> Option<String> {
    if a.kind != b.kind {
        return Some(format!("one is a {} run, the other a {} run", a.kind, b.kind));
    }
    if a.corpus.hash != b.corpus.hash {
        return Some(format!("different corpora ({} vs {})", a.corpus.name, b.corpus.name));
    }
    if a.baseline != b.baseline {
        return Some(format!(
            "different baselines ({} vs {})",
            a.baseline.describe(),
            b.baseline.describe()
        ));
    }
    if a.candidate != b.candidate {
        return Some(format!(
            "different candidates ({} vs {})",
            a.candidate.describe(),
            b.candidate.describe()
        ));
    }
    if a.partition.map(|p| p.n) != b.partition.map(|p| p.n) {
        return Some("different partition counts".into());
    }
    None
}

/// What a merge found missing (the merge still happens).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeReport {
    /// Partitions of 1..=N that no input covered.
    pub missing_partitions: Vec<u32>,
    /// Inputs that were not complete.
    pub incomplete: Vec<String>,
}

/// Merges the runs in `inputs` into a new run directory `out`.
pub fn merge_runs(inputs: &[&Path], out: &Path) -> Result<(RunView, MergeReport), MergeError> {
    let views: Vec<(String, RunView)> = inputs
        .iter()
        .map(|p| Ok((p.display().to_string(), RunView::read(p)?)))
        .collect::<Result<_, ReportError>>()?;
    let (first_name, first) = views.first().ok_or(MergeError::Empty)?;
    let mut report = MergeReport::default();
    let mut seen = std::collections::HashMap::new();
    let mut parts = BTreeSet::new();
    for (name, v) in &views {
        if let Some(why) = same_run(&first.manifest, &v.manifest) {
            return Err(MergeError::Mismatch {
                a: first_name.clone(),
                b: name.clone(),
                why,
            });
        }
        if let Some(p) = v.manifest.partition {
            parts.insert(p.k);
        }
        if v.manifest.status != sqlflight_diffing::RunStatus::Complete {
            report.incomplete.push(name.clone());
        }
        for o in &v.outcomes {
            if let Some(prev) = seen.insert(o.query_id.clone(), name.clone()) {
                return Err(MergeError::Duplicate {
                    query_id: o.query_id.clone(),
                    a: prev,
                    b: name.clone(),
                });
            }
        }
    }
    if let Some(p) = first.manifest.partition {
        report.missing_partitions = (1..=p.n).filter(|k| !parts.contains(k)).collect();
    }
    let mut m = first.manifest.clone();
    m.partition = None;
    m.selected = views.iter().map(|(_, v)| v.manifest.selected).sum();
    m.started_at = views
        .iter()
        .map(|(_, v)| v.manifest.started_at.clone())
        .min()
        .unwrap_or_default();
    m.resumed = 0;
    m.counts.clear();
    let finished = views
        .iter()
        .filter_map(|(_, v)| v.manifest.finished_at.clone())
        .max()
        .unwrap_or_default();
    let journal = Journal::open(out, m, false)?;
    for (_, v) in &views {
        for o in &v.outcomes {
            journal.append(o)?;
        }
    }
    let (manifest, outcomes) = if report.incomplete.is_empty() && report.missing_partitions.is_empty() {
        journal.complete(finished)?
    } else {
        journal.stop(
            finished,
            sqlflight_diffing::StopReason::Other("merged from incomplete runs or missing partitions".into()),
        )?
    };
    Ok((RunView { manifest, outcomes }, report))
}
