//! The status answer (`rollout status`, `GET /v1/status`): phase, who is on which
//! version, what the next phase still needs, recent audit entries.

use serde::Serialize;
use serde_json::Value;

use crate::machine::{self, Unmet};
use crate::policy::{Phase, VersionSpec};
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

/// How approvals are made, as the status shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ApprovalMode {
    /// SSH signatures checked against the policy's allowed signers.
    Signed {
        /// The signature namespace.
        namespace: String,
        /// Where the allowed signers were read from.
        allowed_signers: String,
    },
    /// An approver is the OS account running the command.
    Unsigned,
}

/// One phase of the policy, and where the rollout is relative to it.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseView {
    /// 1-based.
    pub number: usize,
    /// Its name.
    pub name: String,
    /// What it admits, in words ([`selects`]).
    pub selects: String,
    /// Evidence kinds it requires.
    pub require: Vec<String>,
    /// The gate the evidence must pass.
    pub gate: Option<String>,
    /// How long the previous phase must bake before it.
    pub bake_ms: u64,
    /// Approvals it needs.
    pub approvals: u32,
    /// Entered (now or before).
    pub entered: bool,
    /// The current phase.
    pub current: bool,
}

/// Who is on the candidate now.
#[derive(Debug, Clone, Serialize)]
pub struct OnCandidate {
    /// Tenants named by the entered phases.
    pub tenants: Vec<String>,
    /// Tiers named by the entered phases.
    pub tiers: Vec<String>,
    /// Percent of everyone else, by hash.
    pub percent: f64,
    /// Always `baseline`.
    pub everyone_else: &'static str,
}

/// The next phase and what it still needs.
#[derive(Debug, Clone, Serialize)]
pub struct NextPhase {
    /// 1-based.
    pub number: usize,
    /// Its name.
    pub name: String,
    /// Nothing is missing: `rollout advance` enters it.
    pub ready: bool,
    /// What is missing, each as data and in words.
    pub unmet: Vec<UnmetView>,
    /// Approvals given for it so far.
    pub approved_by: std::collections::BTreeSet<String>,
    /// Evidence recorded for it so far (kind → runs).
    pub evidence: std::collections::BTreeMap<String, Vec<String>>,
}

/// One missing condition.
#[derive(Debug, Clone, Serialize)]
pub struct UnmetView {
    /// The condition as data.
    pub detail: Unmet,
    /// The condition in words.
    pub text: String,
}

/// The status answer: `rollout status` prints it as text ([`StatusView::text`])
/// or JSON (its `Serialize`), `GET /v1/status` serves the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The policy's name.
    pub rollout: String,
    /// The rollout's id in the store.
    pub id: i64,
    /// The digest of the frozen policy.
    pub policy_digest: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Who created it.
    pub created_by: String,
    /// The version everyone starts on.
    pub baseline: VersionSpec,
    /// The version being rolled out.
    pub candidate: VersionSpec,
    /// Running, paused, rolled back.
    pub status: machine::Status,
    /// The current phase (0: none entered).
    pub phase: usize,
    /// Its name.
    pub phase_name: Option<String>,
    /// When it was entered (RFC 3339).
    pub phase_entered: String,
    /// The last phase is entered and the rollout was not rolled back.
    pub complete: bool,
    /// How approvals are made.
    pub approvals: ApprovalMode,
    /// Every phase.
    pub phases: Vec<PhaseView>,
    /// Who is on the candidate.
    pub on_candidate: OnCandidate,
    /// The next phase, unless the last is entered.
    pub next: Option<NextPhase>,
    /// Recent audit entries, newest first.
    pub audit: Vec<AuditEntry>,
    /// `rollout verify`: what is wrong with the store (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_problems: Option<Vec<String>>,
}

impl StatusView {
    /// The status of `r` at `now`.
    pub fn of(r: &Rollout, audit: &[AuditEntry], now: i64) -> StatusView {
        let p = &r.policy;
        let s = &r.state;
        let live = if s.candidate_live() { s.phase } else { 0 };
        let phases = p
            .phases
            .iter()
            .enumerate()
            .map(|(i, ph)| PhaseView {
                number: i + 1,
                name: ph.name.clone(),
                selects: selects(ph),
                require: ph.require.clone(),
                gate: ph.gate.clone(),
                bake_ms: ph.bake_ms,
                approvals: ph.approvals,
                entered: i < s.phase,
                current: i + 1 == s.phase,
            })
            .collect();
        let live_phases = &p.phases[..live.min(p.phases.len())];
        let sorted = |f: &dyn Fn(&Phase) -> &Vec<String>| {
            let mut v: Vec<String> = live_phases.iter().flat_map(f).cloned().collect();
            v.sort();
            v.dedup();
            v
        };
        let unmet: Vec<Unmet> = machine::unmet(p, s, now);
        StatusView {
            rollout: p.name.clone(),
            id: r.id,
            policy_digest: r.policy_digest.clone(),
            created: rfc3339(r.created_ms),
            created_by: r.created_by.clone(),
            baseline: p.baseline.clone(),
            candidate: p.candidate.clone(),
            status: s.status,
            phase: s.phase,
            phase_name: s
                .phase
                .checked_sub(1)
                .and_then(|i| p.phases.get(i))
                .map(|x| x.name.clone()),
            phase_entered: rfc3339(s.phase_entered_ms),
            complete: s.phase == p.phases.len() && s.status != machine::Status::RolledBack,
            approvals: match &p.signers {
                Some(sg) => ApprovalMode::Signed {
                    namespace: sg.namespace.clone(),
                    allowed_signers: sg.origin.clone(),
                },
                None => ApprovalMode::Unsigned,
            },
            phases,
            on_candidate: OnCandidate {
                tenants: sorted(&|x| &x.tenants),
                tiers: sorted(&|x| &x.tiers),
                percent: live_phases.iter().map(|x| x.percent_bp).max().unwrap_or(0) as f64 / 100.0,
                everyone_else: "baseline",
            },
            next: p.phases.get(s.phase).map(|n| NextPhase {
                number: s.phase + 1,
                name: n.name.clone(),
                ready: unmet.is_empty(),
                unmet: unmet
                    .iter()
                    .map(|u| UnmetView {
                        detail: u.clone(),
                        text: u.to_string(),
                    })
                    .collect(),
                approved_by: s.approvals.clone(),
                evidence: s.evidence.clone(),
            }),
            audit: audit.to_vec(),
            store_problems: None,
        }
    }

    /// The status for people, as `rollout status` prints it.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let (base, cand) = (self.baseline.label(), self.candidate.label());
        let _ = writeln!(out, "rollout `{}` (#{}): {base} → {cand}", self.rollout, self.id);
        let _ = writeln!(
            out,
            "status: {}, phase {} of {}{} since {}",
            self.status.as_str(),
            self.phase,
            self.phases.len(),
            self.phase_name.as_ref().map(|n| format!(" `{n}`")).unwrap_or_default(),
            self.phase_entered
        );
        let approvals = match &self.approvals {
            ApprovalMode::Signed {
                namespace,
                allowed_signers,
            } => format!("signed (SSH signatures, namespace `{namespace}`, allowed signers from {allowed_signers})"),
            ApprovalMode::Unsigned => {
                "UNSIGNED (an approver is the OS account running the command; nothing is verified)".into()
            }
        };
        let _ = writeln!(out, "approvals: {approvals}");
        let _ = writeln!(out, "phases:");
        for ph in &self.phases {
            let _ = writeln!(out, "{}", ph.line());
        }
        let oc = &self.on_candidate;
        if self.status != machine::Status::RolledBack && self.phase > 0 {
            let _ = writeln!(
                out,
                "on the candidate {cand}: tenants [{}], tiers [{}], {}% of the rest by hash; everyone else on the baseline {base}",
                oc.tenants.join(", "),
                oc.tiers.join(", "),
                Value::from(oc.percent),
            );
        } else {
            let _ = writeln!(out, "every tenant is on the baseline {base}");
        }
        match &self.next {
            None if self.status != machine::Status::RolledBack => {
                let _ = writeln!(out, "complete: the last phase is entered");
            }
            None => {}
            Some(next) => {
                if next.unmet.is_empty() {
                    let _ = writeln!(
                        out,
                        "next: phase {} `{}` is ready: `rollout advance`",
                        next.number, next.name
                    );
                } else {
                    let _ = writeln!(out, "next: phase {} `{}` still needs:", next.number, next.name);
                    for u in &next.unmet {
                        let _ = writeln!(out, "  - {}", u.text);
                    }
                }
                if !next.approved_by.is_empty() {
                    let by: Vec<&str> = next.approved_by.iter().map(String::as_str).collect();
                    let _ = writeln!(out, "  approved by: {}", by.join(", "));
                }
            }
        }
        if !self.audit.is_empty() {
            let _ = writeln!(out, "recent audit:");
            for a in &self.audit {
                let _ = writeln!(
                    out,
                    "  {}  {:<14} {:<14} {}→{}  {}",
                    a.at,
                    a.actor,
                    a.action,
                    a.from_phase,
                    a.to_phase,
                    a.reason.as_deref().unwrap_or("")
                );
            }
        }
        out
    }
}

impl PhaseView {
    /// `  ▶ 2 canary   tenants acme   1 passing gate ...`: the phase's status line.
    fn line(&self) -> String {
        let mark = if self.current {
            "▶"
        } else if self.entered {
            "✓"
        } else {
            " "
        };
        let mut needs = Vec::new();
        if !self.require.is_empty() {
            needs.push(format!(
                "{} passing gate `{}`",
                self.require.join(" + "),
                self.gate.as_deref().unwrap_or("")
            ));
        }
        if self.approvals > 0 {
            needs.push(format!("{} approvals", self.approvals));
        }
        if self.bake_ms > 0 {
            needs.push(format!(
                "bakes {}",
                humantime::format_duration(std::time::Duration::from_millis(self.bake_ms))
            ));
        }
        format!(
            "  {mark} {} {:<16} {:<40} {}",
            self.number,
            self.name,
            self.selects,
            needs.join(", ")
        )
    }
}

/// The status of `r` at `now` as JSON (the serialized [`StatusView`]).
pub fn status_json(r: &Rollout, audit: &[AuditEntry], now: i64) -> Value {
    serde_json::to_value(StatusView::of(r, audit, now)).unwrap_or(Value::Null)
}
