//! Evidence, judged without the store: a run offered as evidence ([`EvidenceRun`],
//! digested so the audit names exactly what was judged), its binding to the
//! policy (exactly the policy's baseline and candidate, finished), and the gate
//! that judges it at a phase ([`judge`]). [`crate::store::Store::check`] decides
//! what a finding means for the rollout (record, pause, roll back) inside its
//! transaction; everything it needs to know about the runs comes from here.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlflight_reports::RunView;
use sqlflight_reports::gate::{RuleResult, evaluate};

use crate::machine::Status;
use crate::policy::{Gate, Policy};
use crate::store::Rollout;

/// A run offered as evidence.
#[derive(Debug, Clone)]
pub struct EvidenceRun {
    /// The run directory.
    pub path: PathBuf,
    /// blake3 of the run's manifest and outcomes, as hex.
    pub digest: String,
    /// The run as read.
    pub view: RunView,
}

impl EvidenceRun {
    /// Reads a run directory and digests its files.
    pub fn read(dir: &Path) -> std::result::Result<EvidenceRun, sqlflight_reports::ReportError> {
        let view = RunView::read(dir)?;
        let mut h = blake3::Hasher::new();
        for f in [sqlflight_runs::journal::MANIFEST, sqlflight_runs::journal::OUTCOMES] {
            let p = dir.join(f);
            let bytes = std::fs::read(&p).map_err(|source| sqlflight_reports::ReportError::Io { path: p, source })?;
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(EvidenceRun {
            path: dir.to_path_buf(),
            digest: h.finalize().to_hex().to_string(),
            view,
        })
    }

    /// The run's id: the first 16 hex digits of its digest.
    pub fn id(&self) -> &str {
        &self.digest[..16]
    }
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Bound to this rollout and passing: recorded as evidence.
    Pass,
    /// Not evidence for this rollout (another version, or an unfinished run).
    Refused,
    /// A critical rule failed while nobody was on the candidate: not recorded.
    Fail,
    /// A critical rule failed while tenants were on the candidate: rolled back.
    RolledBack,
    /// A non-critical rule failed: paused for a human (if tenants were on the
    /// candidate), not recorded.
    Inconclusive,
    /// The rollout is rolled back or past its last phase: nothing is judged,
    /// recorded or audited.
    NotRecorded,
}

impl CheckOutcome {
    /// A check that judged and recorded nothing, and why.
    pub(crate) fn not_recorded(why: String) -> CheckOutcome {
        CheckOutcome {
            verdict: Verdict::NotRecorded,
            gate: None,
            reasons: vec![why],
            rules: Vec::new(),
            runs: Vec::new(),
            paused: false,
        }
    }
}

/// Why a rollout takes no more evidence, if it does not.
pub(crate) fn idle(r: &Rollout) -> Option<String> {
    if r.state.status == Status::RolledBack {
        return Some(
            "the rollout is rolled back: evidence counts for no phase; start a new rollout with `rollout init`".into(),
        );
    }
    if r.state.phase >= r.policy.phases.len() {
        return Some(format!(
            "the rollout is complete (all {} phases entered): there is no next phase to gather evidence for",
            r.policy.phases.len()
        ));
    }
    None
}

/// The result of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// Pass, inconclusive or fail.
    pub verdict: Verdict,
    /// The gate that judged (none when the phase has none).
    pub gate: Option<String>,
    /// Why, one line each (binding problems, failing rules).
    pub reasons: Vec<String>,
    /// Every rule of the gate with its result.
    pub rules: Vec<JudgedRule>,
    /// The runs judged (path, digest, kind, engines).
    pub runs: Vec<serde_json::Value>,
    /// Whether the check paused the rollout.
    pub paused: bool,
}

/// A gate rule's result and whether it is critical (failing it rolls back).
#[derive(Debug, Clone, Serialize)]
pub struct JudgedRule {
    /// The rule's result.
    #[serde(flatten)]
    pub rule: RuleResult,
    /// Whether failing it rolls back at once.
    pub critical: bool,
}

/// What runs show against a policy at a phase, before the state decides what
/// it means (a critical failure rolls back only if tenants are on the candidate).
pub(crate) struct Assessment {
    pub(crate) gate: Option<Gate>,
    /// Why runs are not bound to this rollout (empty when they all are).
    pub(crate) reasons: Vec<String>,
    pub(crate) judged: Vec<JudgedRule>,
    pub(crate) run_json: Vec<serde_json::Value>,
    pub(crate) finding: Finding,
}

pub(crate) enum Finding {
    Unbound,
    CriticalFail,
    OtherFail,
    Pass,
}

/// Binding (exactly the policy's baseline and candidate, finished), then the
/// gate that judges evidence at `phase`.
pub(crate) fn assess(policy: &Policy, phase: usize, runs: &[EvidenceRun]) -> Assessment {
    let gate = policy.judging_gate(phase).cloned();
    let mut reasons = Vec::new();
    let mut run_json = Vec::new();
    for run in runs {
        let m = &run.view.manifest;
        let mut why = Vec::new();
        if let Some(x) = policy.candidate.mismatch(&m.candidate) {
            why.push(format!("candidate {x}"));
        }
        if let Some(x) = policy.baseline.mismatch(&m.baseline) {
            why.push(format!("baseline {x}"));
        }
        if m.status != sqlflight_diffing::RunStatus::Complete {
            why.push(format!(
                "the run is not complete ({})",
                m.stopped_reason
                    .as_ref()
                    .map_or_else(|| "status running".to_string(), ToString::to_string)
            ));
        }
        for w in &why {
            reasons.push(format!("{}: {w}", run.path.display()));
        }
        run_json.push(serde_json::json!({
            "id": run.id(),
            "digest": run.digest,
            "kind": m.kind,
            "path": run.path.display().to_string(),
            "candidate": m.candidate.version,
            "baseline": m.baseline.version,
            "bound": why.is_empty(),
        }));
    }
    if !reasons.is_empty() {
        return Assessment {
            gate,
            reasons,
            judged: Vec::new(),
            run_json,
            finding: Finding::Unbound,
        };
    }
    let views: Vec<&RunView> = runs.iter().map(|r| &r.view).collect();
    let judged = judge(gate.as_ref(), &views);
    let finding = if judged.iter().any(|j| j.critical && !j.rule.pass) {
        Finding::CriticalFail
    } else if judged.iter().any(|j| !j.rule.pass) {
        Finding::OtherFail
    } else {
        Finding::Pass
    };
    Assessment {
        gate,
        reasons,
        judged,
        run_json,
        finding,
    }
}

/// Judges runs with a gate; no gate = no rules (binding alone decides).
pub fn judge<R: std::borrow::Borrow<RunView>>(gate: Option<&Gate>, runs: &[R]) -> Vec<JudgedRule> {
    let Some(gate) = gate else { return Vec::new() };
    let critical: Vec<String> = gate.critical.iter().map(|c| format!("max {c}")).collect();
    evaluate(&gate.policy, runs)
        .into_iter()
        .map(|rule| JudgedRule {
            critical: critical.contains(&rule.rule),
            rule,
        })
        .collect()
}
