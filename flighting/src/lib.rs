//! # sqlflight-flighting
//!
//! The shadow-execution driver: runs each read query of a corpus on live data with
//! the baseline and the candidate, digests the result batches as they stream
//! (never keeping a row), repeats for timing statistics, re-runs the baseline on a
//! mismatch to detect nondeterminism, and journals one outcome per query.
//!
//! Status: not implemented yet; it is built by the Flighting issue on top of
//! `sqlflight_engines::Engine::execute` (already streaming batches to a sink) and
//! the `sqlflight-runs` journal. This crate holds no code until then, so nothing
//! can mistake it for a working feature, and the CLI has no `flight` command.
//!
//! It must never write a raw result value to any file, log or report.
