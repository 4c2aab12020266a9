//! The rollout state machine, free of I/O: what the next phase still needs, and
//! the transitions. The store applies these inside one transaction each.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, VersionSpec};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Phases are entered as their conditions are met.
    Active,
    /// Held by a human (or an inconclusive check): traffic stays as it is, nothing
    /// advances until `resume`.
    Paused,
    /// Every tenant is on the baseline. Final: a new attempt is a new rollout.
    RolledBack,
}

impl Status {
    /// The name stored and printed (`active`, `paused`, `rolled_back`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::RolledBack => "rolled_back",
        }
    }

    /// The status named `s` ([`Status::as_str`]).
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Active, Status::Paused, Status::RolledBack]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The mutable part of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Active, paused or rolled back.
    pub status: Status,
    /// Phases entered: 0 = none (every tenant on the baseline), `phases.len()` =
    /// the last one.
    pub phase: usize,
    /// When the current phase was entered (ms since the Unix epoch).
    pub phase_entered_ms: i64,
    /// Distinct approvers of the next phase, given during the current one.
    pub approvals: BTreeSet<String>,
    /// Run kinds with passing evidence recorded during the current phase, with
    /// the evidence ids.
    pub evidence: BTreeMap<String, Vec<String>>,
}

impl State {
    /// A new rollout's state: active, before its first phase.
    pub fn new(now_ms: i64) -> State {
        State {
            status: Status::Active,
            phase: 0,
            phase_entered_ms: now_ms,
            approvals: BTreeSet::new(),
            evidence: BTreeMap::new(),
        }
    }

    /// Some tenants may be on the candidate.
    pub fn candidate_live(&self) -> bool {
        self.status != Status::RolledBack && self.phase > 0
    }
}

/// One condition the next phase still lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "missing", rename_all = "snake_case")]
pub enum Unmet {
    /// The rollout was rolled back.
    RolledBack,
    /// The rollout is paused.
    Paused,
    /// The last phase is entered; there is nothing to advance to.
    Complete,
    /// No passing evidence of this run kind was recorded during this phase.
    Evidence {
        /// The run kind (`playback`, `flight`).
        kind: String,
        /// The gate it must pass.
        gate: String,
    },
    /// The phase has not baked long enough.
    Bake {
        /// Time left.
        left_ms: u64,
    },
    /// Too few distinct approvers.
    Approvals {
        /// Approvers so far.
        have: u32,
        /// Approvers needed.
        need: u32,
    },
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmet::RolledBack => write!(f, "the rollout was rolled back; start a new one with `rollout init`"),
            Unmet::Paused => write!(f, "the rollout is paused; `rollout resume` first"),
            Unmet::Complete => write!(f, "the last phase is entered; nothing to advance to"),
            Unmet::Evidence { kind, gate } => write!(
                f,
                "evidence: no passing {kind} run of the candidate recorded in this phase (gate `{gate}`); `rollout check <RUN>`"
            ),
            Unmet::Bake { left_ms } => write!(
                f,
                "bake time: {} left in this phase",
                humantime::format_duration(std::time::Duration::from_secs(left_ms.div_ceil(1000)))
            ),
            Unmet::Approvals { have, need } => {
                write!(
                    f,
                    "approvals: {have} of {need} distinct approvers; `rollout approve --as NAME`"
                )
            }
        }
    }
}

/// What entering the next phase still needs; empty = it may be entered now.
pub fn unmet(policy: &Policy, state: &State, now_ms: i64) -> Vec<Unmet> {
    match state.status {
        Status::RolledBack => return vec![Unmet::RolledBack],
        Status::Paused => return vec![Unmet::Paused],
        Status::Active => {}
    }
    let Some(next) = policy.phases.get(state.phase) else {
        return vec![Unmet::Complete];
    };
    let mut out = Vec::new();
    for kind in &next.require {
        if state.evidence.get(kind).is_none_or(|v| v.is_empty()) {
            out.push(Unmet::Evidence {
                kind: kind.clone(),
                gate: next.gate.clone().unwrap_or_default(),
            });
        }
    }
    let bake = policy.bake(state.phase).as_millis() as i64;
    let baked = now_ms.saturating_sub(state.phase_entered_ms);
    if baked < bake {
        out.push(Unmet::Bake {
            left_ms: (bake - baked) as u64,
        });
    }
    let have = state.approvals.len() as u32;
    if have < next.approvals {
        out.push(Unmet::Approvals {
            have,
            need: next.approvals,
        });
    }
    out
}

/// Enters the next phase if nothing is unmet.
pub fn advance(policy: &Policy, state: &mut State, now_ms: i64) -> Result<(), Vec<Unmet>> {
    let missing = unmet(policy, state, now_ms);
    if !missing.is_empty() {
        return Err(missing);
    }
    state.phase += 1;
    state.phase_entered_ms = now_ms;
    state.approvals.clear();
    state.evidence.clear();
    Ok(())
}

/// Routes everyone to the baseline. Allowed from every state; needs nothing.
pub fn rollback(state: &mut State) {
    state.status = Status::RolledBack;
}

/// Why a transition cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The rollout was rolled back (final).
    #[error("the rollout was rolled back; start a new one with `rollout init`")]
    RolledBack,
    /// `pause` on a paused rollout.
    #[error("the rollout is already paused")]
    AlreadyPaused,
    /// `resume` on a rollout that is not paused.
    #[error("the rollout is not paused")]
    NotPaused,
    /// The same approver twice for one phase.
    #[error("{0} already approved this phase")]
    AlreadyApproved(String),
    /// Nothing is left to approve.
    #[error("the last phase is entered; there is nothing left to approve")]
    Complete,
}

/// Holds an active rollout (refused when it is not active).
pub fn pause(state: &mut State) -> Result<(), Refusal> {
    match state.status {
        Status::RolledBack => Err(Refusal::RolledBack),
        Status::Paused => Err(Refusal::AlreadyPaused),
        Status::Active => {
            state.status = Status::Paused;
            Ok(())
        }
    }
}

/// Lets a paused rollout go on (refused when it is not paused).
pub fn resume(state: &mut State) -> Result<(), Refusal> {
    match state.status {
        Status::RolledBack => Err(Refusal::RolledBack),
        Status::Active => Err(Refusal::NotPaused),
        Status::Paused => {
            state.status = Status::Active;
            Ok(())
        }
    }
}

/// Records `who` as an approver of the next phase (refused when rolled back or
/// after the last phase).
pub fn approve(policy: &Policy, state: &mut State, who: &str) -> Result<(), Refusal> {
    if state.status == Status::RolledBack {
        return Err(Refusal::RolledBack);
    }
    if state.phase >= policy.phases.len() {
        return Err(Refusal::Complete);
    }
    if !state.approvals.insert(who.to_string()) {
        return Err(Refusal::AlreadyApproved(who.to_string()));
    }
    Ok(())
}

/// Which side serves a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The version in production.
    Baseline,
    /// The version being rolled out.
    Candidate,
}

/// The routing answer for the current state, precomputed so a lookup is a hash
/// and two set probes.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// The rollout's name.
    pub rollout: String,
    /// The version in production.
    pub baseline: VersionSpec,
    /// The version being rolled out.
    pub candidate: VersionSpec,
    /// The rollout's status.
    pub status: Status,
    /// Phases entered.
    pub phase: usize,
    /// The current phase's name (none before the first).
    pub phase_name: Option<String>,
    seed: u64,
    tenants: HashSet<String>,
    tiers: HashSet<String>,
    percent_bp: u32,
    /// The gateway contracts of the policy.
    pub gateways: crate::policy::Gateways,
}

/// A tenant's bucket in 0..10,000: xxh3 of the tenant id seeded by the rollout
/// name. Admission by percent is `bucket < percent × 100`, so raising the
/// percent never drops anyone.
pub fn bucket(seed: u64, tenant: &str) -> u32 {
    (xxhash_rust::xxh3::xxh3_64_with_seed(tenant.as_bytes(), seed) % 10_000) as u32
}

/// The hashing seed of a rollout.
pub fn seed(rollout: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(rollout.as_bytes())
}

impl RouteTable {
    /// The table for `state` under `policy`.
    pub fn new(policy: &Policy, state: &State) -> RouteTable {
        let live = if state.status == Status::RolledBack {
            &[][..]
        } else {
            &policy.phases[..state.phase.min(policy.phases.len())]
        };
        RouteTable {
            rollout: policy.name.clone(),
            baseline: policy.baseline.clone(),
            candidate: policy.candidate.clone(),
            status: state.status,
            phase: state.phase,
            phase_name: state.phase.checked_sub(1).map(|i| policy.phases[i].name.clone()),
            seed: seed(&policy.name),
            tenants: live.iter().flat_map(|p| p.tenants.iter().cloned()).collect(),
            tiers: live.iter().flat_map(|p| p.tiers.iter().cloned()).collect(),
            percent_bp: live.iter().map(|p| p.percent_bp).max().unwrap_or(0),
            gateways: policy.gateways.clone(),
        }
    }

    /// The side serving `tenant` (of priority tier `tier`, if the caller knows it).
    pub fn side(&self, tenant: &str, tier: Option<&str>) -> Side {
        let admitted = (self.percent_bp > 0 && bucket(self.seed, tenant) < self.percent_bp)
            || (!self.tenants.is_empty() && self.tenants.contains(tenant))
            || tier.is_some_and(|t| self.tiers.contains(t));
        if admitted { Side::Candidate } else { Side::Baseline }
    }

    /// The version serving `side`.
    pub fn version(&self, side: Side) -> &VersionSpec {
        match side {
            Side::Baseline => &self.baseline,
            Side::Candidate => &self.candidate,
        }
    }

    /// The routing answer as JSON (what `rollout route --json` and
    /// `GET /v1/route` print).
    pub fn answer(&self, tenant: &str, tier: Option<&str>) -> serde_json::Value {
        let side = self.side(tenant, tier);
        let v = self.version(side);
        serde_json::json!({
            "tenant": tenant,
            "tier": tier,
            "side": side,
            "version": v.version,
            "engine": v.engine,
            "profile": v.profile,
            "rollout": self.rollout,
            "status": self.status,
            "phase": self.phase,
            "phase_name": self.phase_name,
        })
    }
}
