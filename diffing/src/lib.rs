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
//! This crate must never do I/O and never know an engine: everything it compares
//! arrives as data, so its verdicts do not depend on the engine being judged. It
//! must never change a digest value without bumping
//! [`digest::DIGEST_VERSION`] (digests of different versions are never compared).

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
