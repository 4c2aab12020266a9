//! # sqlflight-rollout
//!
//! The phased-rollout gate: rollout policy (phases selecting tenants by list,
//! priority tier or monotonic percentage), state in SQLite with approvals and an
//! append-only audit log, evidence bound to runs, instant rollback, and the routing
//! answer "which version serves tenant T".
//!
//! Status: not implemented yet; it is built by the Rollout issue. This crate holds
//! no code until then, and the CLI has no `rollout` command.
//!
//! It must never advance a rollout without the evidence and approvals its policy
//! requires, and never make rollback wait on either.
