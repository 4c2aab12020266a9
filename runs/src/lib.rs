//! # sqlflight-runs
//!
//! The run directory on disk: `manifest.json` (engines and their versions, corpus
//! hash, config, partition, times, counts) and `outcomes.jsonl` (one outcome per
//! query, appended as each completes). [`Journal`] writes a run crash-safely and
//! resumes an interrupted one; [`read_run`] reads any run for reports.
//!
//! Main types: [`Journal`], [`JournalError`].
//!
//! It must never decide anything about outcomes: it stores and reads what the
//! drivers produced. It is separate from `diffing` so that `diffing` stays free of
//! I/O, and from the drivers so that reports can read runs without linking an
//! engine.

pub mod journal;

pub use journal::{Interrupted, Journal, JournalError, read_manifest, read_run};
