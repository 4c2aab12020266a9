//! # sqlflight-reports
//!
//! Turns runs into something a person reads. Today: the Markdown summary of a
//! playback or flight run ([`markdown::run_markdown`]): verdict, counts per outcome
//! class, what changed in the optimizer as named plan facts ranked by queries
//! touched and, with a flight run, by measured impact ([`facts`]), every
//! regression with its error or mismatch, and a flight's performance
//! figures ([`perf`]); JSON ([`json`]) and JUnit ([`junit`]) renderings; gate
//! policies ([`gate`]); run comparison ([`compare`]) and merge of partitioned runs
//! ([`merge`]); a self-contained HTML page with charts ([`html`]); analyses
//! per template and tenant, ratio percentiles and top regressions by impact
//! ([`analysis`]). Every rendering is made from a [`tally::Tally`], gathered in
//! one scan of a run ([`tally::Outcomes`]: an in-memory [`RunView`] or a
//! [`tally::RunFile`] streamed from disk), so reports of runs of millions of
//! outcomes run in bounded memory.
//!
//! Main types: [`tally::Tally`], [`tally::RunFile`], [`facts::FactTable`],
//! [`markdown::ChangeGroup`], [`RunView`].
//!
//! It must never run an engine, and never print anything that is not already in
//! the run directory (a report adds no data, so it cannot leak any).

#![warn(missing_docs)]

pub mod analysis;
pub mod compare;
pub mod facts;
pub mod gate;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod perf;
pub mod summary;
pub mod tally;

use std::path::Path;

use sqlflight_diffing::{OutcomeRecord, RunManifest};

/// A run as the reports see it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run's manifest.
    pub manifest: RunManifest,
    /// Its outcomes, sorted by query id.
    pub outcomes: Vec<OutcomeRecord>,
}

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run directory could not be read.
    #[error(transparent)]
    Run(#[from] sqlflight_runs::JournalError),
    /// The report could not be written to its output.
    #[error("writing the report: {0}")]
    Write(#[from] std::io::Error),
    /// A report file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

impl RunView {
    /// Reads a run directory.
    pub fn read(dir: &Path) -> Result<RunView, ReportError> {
        let (manifest, outcomes) = sqlflight_runs::read_run(dir)?;
        Ok(RunView { manifest, outcomes })
    }
}

/// The first flight run among `runs`: its measurements rank the plan facts of
/// the playback runs reported with it.
pub fn flight_run<R: tally::Outcomes>(runs: &[R]) -> Option<&R> {
    runs.iter().find(|r| r.manifest().kind == "flight")
}

/// Writes `report.md` into the run directory and returns its path.
pub fn write_markdown(dir: &Path, run: &RunView) -> Result<std::path::PathBuf, ReportError> {
    let path = dir.join("report.md");
    std::fs::write(&path, markdown::run_markdown(run)).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
