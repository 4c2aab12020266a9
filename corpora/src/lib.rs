//! # sqlflight-corpora
//!
//! Everything about *what* sqlflight replays: the [`QueryRecord`] (one captured
//! statement and where it came from), the [`Corpus`] (a directory holding a
//! `manifest.json` and `queries.jsonl`, plus optionally the schema DDL), ingest of
//! server query logs, `.sql` files and JSON Lines ([`ingest`], [`logs`], [`input`]),
//! statement splitting ([`split`]), fingerprints that group equivalent statements
//! into templates ([`fingerprint`]), corpus figures ([`stats`]), sampling
//! ([`sample`]) and masking ([`mask`]), the bundled TPC-H and TPC-DS workloads
//! ([`bundled`]), TPC-H and TPC-DS data generation ([`tpch`], [`tpcds`]), generated logs for benchmarks
//! ([`synth`]), and the [`Catalog`] a corpus runs against.
//!
//! Main types: [`QueryRecord`], [`Corpus`], [`CorpusManifest`], [`CorpusWriter`],
//! [`IngestReport`], [`TemplateId`], [`Fingerprinter`], [`mask::Masker`].
//!
//! This crate must never talk to an engine, must never drop a statement silently
//! (input it cannot use is counted and reported with file and line, then skipped),
//! must keep memory independent of the length of a log, and must never let an
//! original literal into a masked corpus.

#![warn(missing_docs)]

pub mod analysis;
pub mod bundled;
pub mod catalog;
pub mod corpus;
pub mod fingerprint;
pub mod ingest;
pub mod input;
mod lex;
pub mod logs;
pub mod mask;
pub mod record;
pub mod redact;
pub mod sample;
pub mod split;
pub mod stats;
#[cfg(feature = "bench")]
pub mod synth;
pub mod tpcds;
pub mod tpch;

pub use catalog::{Catalog, DdlSource, TableFormat, TableSource};
pub use corpus::{Corpus, CorpusError, CorpusManifest, CorpusWriter};
pub use fingerprint::{Fingerprinter, TemplateId, fingerprint};
pub use ingest::{IngestFormat, IngestOptions, IngestReport, SkippedInput};
pub use record::{QueryRecord, Source};
