//! # sqlflight-runs
//!
//! The run directory on disk: `manifest.json` (engines and their versions, corpus
//! hash, config, partition, times, counts) and `outcomes.jsonl` (one outcome per
//! query, appended as each completes). [`Journal`] writes a run crash-safely and
//! resumes an interrupted one; [`read_run`] reads any run for reports.
//! [`drive`] is the one run driver of playback and flight: partition selection,
//! the worker pool, the journal, resume, progress and the stop check; a run kind
//! plugs in as a [`Strategy`] (what one query's outcome is).
//!
//! Main types: [`Journal`], [`JournalError`], [`RunSetup`], [`Strategy`],
//! [`Progress`], [`RunSummary`], [`RunError`].
//!
//! It must never decide anything about outcomes: it stores and reads what the
//! strategies produced (the one exception, by design: engine error messages are
//! rebuilt from the redaction allow-list before they are journaled). It is
//! separate from `diffing` so that `diffing` stays free of I/O, and it never links
//! an engine, so that reports can read runs without one.

#![warn(missing_docs)]

pub mod driver;
pub mod journal;
pub mod sorted;

pub use driver::{
    NoProgress, Progress, RunError, RunSetup, RunSummary, Strategy, drive, panic_message, process_crash_outcome,
    redact_outcome, select,
};
pub use journal::{Interrupted, Journal, JournalError, read_manifest, read_run};
pub use sorted::OutcomeFile;
