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
//! read-only HTTP, also in the shapes Trino Gateway and Kyuubi ask in
//! ([`gateways`]). Approvals are SSH signatures over a canonical statement, or
//! explicitly unsigned by OS account ([`trust`]); the audit log is a hash chain.
//!
//! Main types: [`policy::PolicyFile`], [`policy::Policy`], [`machine::State`],
//! [`machine::RouteTable`], [`store::Store`], [`store::EvidenceRun`].
//!
//! It must never advance a rollout without the evidence, bake time and approvals
//! its policy requires, never count one signing key twice for a phase, never make
//! rollback wait on any of them, never change or delete an audit entry, and never
//! write or serve the status token.

#![warn(missing_docs)]

pub mod chain;
pub mod evidence;
pub mod gateways;
pub mod machine;
pub mod policy;
pub mod serve;
pub mod status;
pub mod store;
pub mod trust;

#[cfg(test)]
mod tests;

pub use machine::{RouteTable, Side, State, Status, Unmet};
pub use policy::{Policy, PolicyFile, PolicyIssue, VersionSpec};
pub use store::{Approval, CheckOutcome, EvidenceRun, Rollout, Store, StoreError, Verdict, now_ms};
