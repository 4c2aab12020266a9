//! The status answer (`rollout status`, `GET /v1/status`): phase, who is on which
//! version, what the next phase still needs, recent audit entries.

use serde_json::{Value, json};

use crate::machine::{self, Unmet};
use crate::policy::Phase;
use crate::store::{AuditEntry, Rollout, rfc3339};

/// What a phase admits, in words.
pub fn selects(p: &Phase) -> String {
    let mut parts = Vec::new();
    if !p.tenants.is_empty() {
        parts.push(format!("tenants {}", p.tenants.join(", ")));
    }
    if !p.tiers.is_empty() {
        parts.push(format!("tiers {}", p.tiers.join(", ")));
    }
    if p.percent_bp > 0 {
        parts.push(format!("{}% by hash", p.percent_bp as f64 / 100.0));
    }
    parts.join("; ")
}

/// The status of `r` at `now` as JSON.
pub fn status_json(r: &Rollout, audit: &[AuditEntry], now: i64) -> Value {
    let p = &r.policy;
    let s = &r.state;
    let live = if s.candidate_live() { s.phase } else { 0 };
    let phases: Vec<Value> = p
        .phases
        .iter()
        .enumerate()
        .map(|(i, ph)| {
            json!({
                "number": i + 1,
                "name": ph.name,
                "selects": selects(ph),
                "require": ph.require,
                "gate": ph.gate,
                "bake_ms": ph.bake_ms,
                "approvals": ph.approvals,
                "entered": i < s.phase,
                "current": i + 1 == s.phase,
            })
        })
        .collect();
    let live_phases = &p.phases[..live];
    let mut tenants: Vec<&String> = live_phases.iter().flat_map(|x| &x.tenants).collect();
    tenants.sort();
    tenants.dedup();
    let mut tiers: Vec<&String> = live_phases.iter().flat_map(|x| &x.tiers).collect();
    tiers.sort();
    tiers.dedup();
    let percent = live_phases.iter().map(|x| x.percent_bp).max().unwrap_or(0) as f64 / 100.0;
    let unmet: Vec<Unmet> = machine::unmet(p, s, now);
    let next = p.phases.get(s.phase).map(|n| {
        json!({
            "number": s.phase + 1,
            "name": n.name,
            "ready": unmet.is_empty(),
            "unmet": unmet.iter().map(|u| json!({"detail": u, "text": u.to_string()})).collect::<Vec<_>>(),
            "approved_by": s.approvals,
            "evidence": s.evidence,
        })
    });
    json!({
        "rollout": p.name,
        "id": r.id,
        "policy_digest": r.policy_digest,
        "created": rfc3339(r.created_ms),
        "created_by": r.created_by,
        "baseline": p.baseline,
        "candidate": p.candidate,
        "status": s.status,
        "phase": s.phase,
        "phase_name": s.phase.checked_sub(1).map(|i| p.phases[i].name.clone()),
        "phase_entered": rfc3339(s.phase_entered_ms),
        "complete": s.phase == p.phases.len() && s.status != machine::Status::RolledBack,
        "approvals": match &p.signers {
            Some(sg) => json!({"mode": "signed", "namespace": sg.namespace, "allowed_signers": sg.origin}),
            None => json!({"mode": "unsigned"}),
        },
        "phases": phases,
        "on_candidate": {
            "tenants": tenants,
            "tiers": tiers,
            "percent": percent,
            "everyone_else": "baseline",
        },
        "next": next,
        "audit": audit,
    })
}
