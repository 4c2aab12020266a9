//! # sqlflight-rollout
//!
//! The phased-rollout gate. A [`policy::Policy`] (parsed from YAML, frozen into the
//! store at `init`) lists phases that admit tenants by explicit list, priority
//! tier or a monotonic percentage (consistent hashing: a tenant admitted at 5% is
//! still admitted at 10%); each phase needs evidence (playback/flight runs made
//! with exactly the candidate version that pass a named gate), a bake time and a
//! number of distinct approvers. [`machine`] is the pure state machine,
//! [`store::Store`] keeps it in SQLite (WAL, one immediate transaction per
//! command, append-only audit log, versioned migrations), [`machine::RouteTable`]
//! answers "which version serves tenant T", and [`serve`] answers the same over
//! read-only HTTP.
//!
//! Main types: [`policy::PolicyFile`], [`policy::Policy`], [`machine::State`],
//! [`machine::RouteTable`], [`store::Store`], [`store::EvidenceRun`].
//!
//! It must never advance a rollout without the evidence, bake time and approvals
//! its policy requires, never make rollback wait on any of them, and never change
//! or delete an audit entry.

pub mod machine;
pub mod policy;
pub mod serve;
pub mod status;
pub mod store;

#[cfg(test)]
mod tests;

pub use machine::{RouteTable, Side, State, Status, Unmet};
pub use policy::{Policy, PolicyFile, PolicyIssue, VersionSpec};
pub use store::{CheckOutcome, EvidenceRun, Rollout, Store, StoreError, Verdict, now_ms};
