//! # sqlflight-diffing
//!
//! Pure comparison logic, shared by every driver: the [`ErrorClass`] vocabulary,
//! result digests computed from streaming Arrow batches ([`digest`]),
//! plan normalization and unified plan diffs ([`plan`]), change signatures that
//! group plan changes by root cause, plans as operator trees ([`plan_tree`]) and
//! plan changes as named facts from aligning them ([`facts`]), the outcome
//! classes and the outcome record written to `outcomes.jsonl` ([`outcome`]), the
//! one judge that turns what playback and flight observed into an outcome class
//! ([`judge`]), and the run directory's manifest ([`run`]).
//!
//! Main types: [`ErrorClass`], [`OutcomeClass`], [`SideResult`], [`OutcomeRecord`],
//! [`plan::NormalizedPlan`], [`plan_tree::PlanTree`], [`facts::PlanFact`].
//!
//! Digest two results and compare them (the same rows in another order match;
//! a changed value names its column):
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Int64Array, StringArray};
//! use arrow::record_batch::RecordBatch;
//! use sqlflight_diffing::{DigestBuilder, DigestComparison, FloatTolerance, compare_digests};
//!
//! let batch = |ids: Vec<i64>, names: Vec<&str>| {
//!     RecordBatch::try_from_iter(vec![
//!         ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
//!         ("name", Arc::new(StringArray::from(names)) as ArrayRef),
//!     ])
//!     .unwrap()
//! };
//! let digest = |b: &RecordBatch| {
//!     let mut d = DigestBuilder::new(&b.schema(), None); // None: no ORDER BY
//!     d.update(b);
//!     d.finish()
//! };
//! let baseline = digest(&batch(vec![1, 2], vec!["a", "b"]));
//! let reordered = digest(&batch(vec![2, 1], vec!["b", "a"]));
//! let changed = digest(&batch(vec![1, 2], vec!["a", "c"]));
//! let tol = FloatTolerance::default();
//! assert_eq!(compare_digests(&baseline, &reordered, tol), DigestComparison::Match);
//! assert_eq!(
//!     compare_digests(&baseline, &changed, tol),
//!     DigestComparison::Mismatch("columns:[name]".into())
//! );
//! ```
//!
//! This crate must never do I/O and never know an engine: everything it compares
//! arrives as data, so its verdicts do not depend on the engine being judged. It
//! must never change a digest value without bumping
//! [`digest::DIGEST_VERSION`] (digests of different versions are never compared).

#![warn(missing_docs)]

pub mod digest;
pub mod facts;
pub mod judge;
pub mod outcome;
pub mod plan;
pub mod plan_tree;
pub mod run;

pub use digest::{DigestBuilder, DigestComparison, DigestKey, FloatTolerance, ResultDigest, compare_digests};
pub use facts::{FactKind, PlanFact, plan_facts};
pub use outcome::{
    ErrorClass, FlightDetail, FlightSide, MemoryComparison, OutcomeClass, OutcomeRecord, PerfComparison, PerfVerdict,
    SideResult, classify_playback, playback_outcome,
};
pub use plan::{NormalizedPlan, change_signature, normalize_plan, plan_diff};
pub use run::{CorpusInfo, EngineInfo, PartitionSpec, RunManifest, RunStatus, StopReason};
