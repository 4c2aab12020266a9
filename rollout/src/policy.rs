//! The rollout policy: versions, named gates, phases. Parsed from YAML by the CLI
//! (which points at file:line:col), validated here, then frozen into the store at
//! `init` so later commands never depend on the file again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlflight_diffing::{EngineInfo, OutcomeClass};
use sqlflight_reports::gate::GatePolicy;

/// The policy file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Names the rollout; also salts the percent hashing, so two rollouts admit
    /// different cohorts.
    pub name: String,
    /// The version in production.
    pub baseline: VersionSpec,
    /// The version being rolled out.
    pub candidate: VersionSpec,
    /// Named gates, referenced by phases.
    #[serde(default)]
    pub gates: BTreeMap<String, GateRef>,
    /// The phases, in order; each admits more tenants.
    pub phases: Vec<PhaseFile>,
    /// Who may approve: `allowed_signers: FILE` (signed approvals) or
    /// `unsigned: true`. Omitted: unsigned, marked as such everywhere.
    #[serde(default)]
    pub approvers: Option<ApproversFile>,
    /// How gateways ask which version serves a session.
    #[serde(default)]
    pub gateways: Gateways,
}

/// `approvers:` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproversFile {
    /// git's / OpenSSH's `allowed_signers` file (relative to the policy).
    #[serde(default)]
    pub allowed_signers: Option<String>,
    /// The signature namespace (`ssh-keygen -Y sign -n`); default `sqlflight-rollout`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Approvals without signatures: the approver is the OS account running
    /// the command.
    #[serde(default)]
    pub unsigned: bool,
}

/// Gateway contracts `serve` answers besides `/v1/route`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateways {
    /// Trino Gateway's external routing rules (`POST /v1/trino-gateway/route`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trino: Option<TrinoGateway>,
    /// A Kyuubi session conf overlay (`GET /v1/kyuubi/conf?user=U`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyuubi: Option<KyuubiGateway>,
}

/// Trino Gateway: where the tenant is in the request, and the routing group of
/// each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrinoGateway {
    /// `user` (the Trino user: `X-Trino-User`, else the analyzed request
    /// user, else `remoteUser`), `header:NAME`, `source` (`X-Trino-Source`) or
    /// `client_tag:KEY` (`KEY=value` in `X-Trino-Client-Tags`).
    #[serde(default = "default_tenant_field")]
    pub tenant: String,
    /// Where the tenant's tier is, in the same syntax (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The Trino Gateway routing group of the baseline's clusters.
    pub baseline_group: String,
    /// The routing group of the candidate's clusters.
    pub candidate_group: String,
}

fn default_tenant_field() -> String {
    "user".into()
}

/// Kyuubi: the engine home per side, and the subdomain that keeps sessions of
/// different versions on different shared engines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KyuubiGateway {
    /// The conf key that picks the engine's installation.
    #[serde(default = "default_home_key")]
    pub home_key: String,
    /// The engine home of the baseline (the value set at `home_key`).
    pub baseline_home: String,
    /// The engine home of the candidate.
    pub candidate_home: String,
}

fn default_home_key() -> String {
    "kyuubi.engineEnv.SPARK_HOME".into()
}

impl TrinoGateway {
    /// Checks a field spec (`user`, `header:NAME`, `source`, `client_tag:KEY`).
    pub fn valid_field(spec: &str) -> bool {
        match spec.split_once(':') {
            None => matches!(spec, "user" | "source"),
            Some(("header" | "client_tag", v)) => !v.trim().is_empty(),
            _ => false,
        }
    }
}

/// Which engine build a side is. `version` must match the run manifests exactly;
/// `engine` and `profile`, when given, must match too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// The engine version, exactly as run manifests record it.
    pub version: String,
    /// The engine kind (`datafusion`, `spark`, ...), when it must match too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The engine profile, when it must match too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl VersionSpec {
    /// Why `info` is not this version, if it is not.
    pub fn mismatch(&self, info: &EngineInfo) -> Option<String> {
        if info.version != self.version {
            return Some(format!("version {} is not {}", info.version, self.version));
        }
        if let Some(e) = &self.engine
            && *e != info.engine
        {
            return Some(format!("engine {} is not {e}", info.engine));
        }
        if let Some(p) = &self.profile
            && *p != info.profile
        {
            return Some(format!("profile {} is not {p}", info.profile));
        }
        None
    }

    /// A short label: `datafusion 55.2.0 (candidate)`.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.engine {
            s.push_str(e);
            s.push(' ');
        }
        s.push_str(&self.version);
        if let Some(p) = &self.profile {
            s.push_str(&format!(" ({p})"));
        }
        s
    }
}

/// A gate as written: a gate policy file (relative to the rollout policy) and the
/// outcome classes whose rules are critical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRef {
    /// The gate policy file, relative to the rollout policy.
    pub policy: String,
    /// Outcome classes whose `max` rules are critical: failing one during a phase
    /// rolls back at once. Default: wrong_result, new_failure, new_internal_error,
    /// crash. Every other failing rule (performance, coverage) is inconclusive and
    /// pauses for a human.
    #[serde(default)]
    pub critical: Option<Vec<OutcomeClass>>,
}

/// A phase as written. Selectors add up: entering phase N admits the tenants of
/// phases 1..=N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseFile {
    /// The phase's name, shown in status and audit.
    pub name: String,
    /// Tenants admitted by name.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Priority tiers admitted (a tenant's tier comes from the gateway request).
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Share of all tenants (0 to 100, two decimals), by consistent hashing.
    #[serde(default)]
    pub percent: Option<f64>,
    /// Run kinds (`playback`, `flight`) that must each have passing evidence,
    /// recorded during the previous phase, before this phase is entered.
    #[serde(default)]
    pub require: Vec<String>,
    /// The gate the evidence must pass (a key of `gates`).
    #[serde(default)]
    pub gate: Option<String>,
    /// Minimum time this phase runs before the next one may start, e.g. `2h`.
    #[serde(default)]
    pub bake: Option<String>,
    /// Distinct approvers needed to enter this phase (omitted: none; when written,
    /// at least 1).
    #[serde(default)]
    pub approvals: Option<u32>,
}

/// Most approvers a phase may require.
pub const MAX_APPROVALS: u32 = 64;

/// A gate frozen into the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// The gate's key in the policy's `gates`.
    pub name: String,
    /// The gate policy, as read at init.
    pub policy: GatePolicy,
    /// Outcome classes whose failing rules roll back at once.
    pub critical: Vec<OutcomeClass>,
    /// The gate's known differences (`accepted:` file), as loaded at init.
    #[serde(default)]
    pub accepted: serde_json::Value,
}

/// A phase frozen into the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The phase's name.
    pub name: String,
    /// Tenants admitted by name.
    pub tenants: Vec<String>,
    /// Priority tiers admitted.
    pub tiers: Vec<String>,
    /// Basis points (1/100 of a percent) of tenants admitted by hash.
    pub percent_bp: u32,
    /// Run kinds that need passing evidence before this phase is entered.
    pub require: Vec<String>,
    /// The gate that evidence must pass (a key of `gates`).
    pub gate: Option<String>,
    /// Bake time in milliseconds before the next phase may start.
    pub bake_ms: u64,
    /// Distinct approvers needed to enter this phase.
    pub approvals: u32,
}

/// The policy as the store keeps it: validated, durations and percents resolved,
/// gate files read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The rollout's name (salts the percent hashing).
    pub name: String,
    /// The version in production.
    pub baseline: VersionSpec,
    /// The version being rolled out.
    pub candidate: VersionSpec,
    /// The gates, by name.
    pub gates: BTreeMap<String, Gate>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// The allowed signers of approvals; `None` = unsigned approvals.
    #[serde(default)]
    pub signers: Option<crate::trust::Signers>,
    /// How gateways ask which version serves a session.
    #[serde(default)]
    pub gateways: Gateways,
}

/// A policy mistake: what, where (a text to find in the file), how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyIssue {
    /// Text near the mistake, for the caller to turn into line:column.
    pub near: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// The run kinds evidence can be.
pub const RUN_KINDS: [&str; 2] = ["playback", "flight"];

/// The default critical classes.
pub const DEFAULT_CRITICAL: [OutcomeClass; 4] = [
    OutcomeClass::WrongResult,
    OutcomeClass::NewFailure,
    OutcomeClass::NewInternalError,
    OutcomeClass::Crash,
];

impl PolicyFile {
    /// Validates and resolves the policy; `load_gate` reads a gate policy file
    /// named in `gates` (the caller resolves paths and reports its own errors).
    // Long by design: every field of the policy is checked in file order, each with its own located error and fix; a split would thread the error sink and the positions through every piece.
    pub fn resolve<E>(
        &self,
        mut load_gate: impl FnMut(&str) -> Result<(GatePolicy, serde_json::Value), E>,
    ) -> Result<Result<Policy, PolicyIssue>, E> {
        let issue = |near: &str, message: String, fix: &str| PolicyIssue {
            near: near.to_string(),
            message,
            fix: fix.to_string(),
        };
        if self.name.trim().is_empty() {
            return Ok(Err(issue(
                "name",
                "the rollout needs a name".into(),
                "set `name: <rollout name>`",
            )));
        }
        if self.phases.is_empty() {
            return Ok(Err(issue(
                "phases",
                "the policy has no phases".into(),
                "list at least one phase under `phases:`",
            )));
        }
        let mut gates = BTreeMap::new();
        for (name, g) in &self.gates {
            let (policy, accepted) = load_gate(&g.policy)?;
            gates.insert(
                name.clone(),
                Gate {
                    name: name.clone(),
                    policy,
                    critical: g.critical.clone().unwrap_or_else(|| DEFAULT_CRITICAL.to_vec()),
                    accepted,
                },
            );
        }
        let mut phases = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut last_bp = 0u32;
        for p in &self.phases {
            let near = format!("name: {}", p.name);
            if !seen.insert(p.name.clone()) {
                return Ok(Err(issue(
                    &near,
                    format!("phase `{}` appears twice", p.name),
                    "give each phase its own name",
                )));
            }
            if p.tenants.is_empty() && p.tiers.is_empty() && p.percent.is_none() {
                return Ok(Err(issue(
                    &near,
                    format!("phase `{}` selects no tenants", p.name),
                    "give the phase `tenants: [..]`, `tiers: [..]` or `percent: N`",
                )));
            }
            let percent_bp = match p.percent {
                None => last_bp,
                Some(x) if !(0.0..=100.0).contains(&x) || !x.is_finite() => {
                    return Ok(Err(issue(
                        &format!("percent: {x}"),
                        format!("phase `{}`: percent {x} is outside 0..100", p.name),
                        "use a share between 0 and 100",
                    )));
                }
                Some(x) => {
                    let bp = (x * 100.0).round() as u32;
                    if bp < last_bp {
                        return Ok(Err(issue(
                            &format!("percent: {x}"),
                            format!(
                                "phase `{}` selects {x}% after an earlier phase selected {}%",
                                p.name,
                                last_bp as f64 / 100.0
                            ),
                            "percent phases must not shrink (tenants already admitted stay admitted); raise it or drop it",
                        )));
                    }
                    bp
                }
            };
            last_bp = percent_bp;
            for k in &p.require {
                if !RUN_KINDS.contains(&k.as_str()) {
                    return Ok(Err(issue(
                        k,
                        format!("phase `{}` requires evidence of kind `{k}`", p.name),
                        "evidence kinds are `playback` and `flight`",
                    )));
                }
            }
            match &p.gate {
                Some(g) if !gates.contains_key(g) => {
                    return Ok(Err(issue(
                        &format!("gate: {g}"),
                        format!("phase `{}` names gate `{g}`, which `gates:` does not define", p.name),
                        &format!(
                            "define `{g}` under `gates:` or use one of: {}",
                            gates.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )));
                }
                None if !p.require.is_empty() => {
                    return Ok(Err(issue(
                        &near,
                        format!("phase `{}` requires evidence but names no gate to judge it", p.name),
                        "add `gate: <name of a gate under gates:>`",
                    )));
                }
                _ => {}
            }
            let approvals = match p.approvals {
                None => 0,
                Some(n @ 1..=MAX_APPROVALS) => n,
                Some(n) => {
                    return Ok(Err(issue(
                        &format!("approvals: {n}"),
                        format!(
                            "phase `{}`: approvals is {n}; it must be from 1 to {MAX_APPROVALS}",
                            p.name
                        ),
                        "write how many distinct approvers must approve, or remove the key when the phase needs none",
                    )));
                }
            };
            let bake_ms = match &p.bake {
                None => 0,
                Some(b) => match humantime::parse_duration(b) {
                    Ok(d) => d.as_millis() as u64,
                    Err(e) => {
                        return Ok(Err(issue(
                            &format!("bake: {b}"),
                            format!("phase `{}`: bake `{b}` is not a duration ({e})", p.name),
                            "write a duration like `30m`, `2h` or `1d`",
                        )));
                    }
                },
            };
            phases.push(Phase {
                name: p.name.clone(),
                tenants: p.tenants.clone(),
                tiers: p.tiers.clone(),
                percent_bp,
                require: p.require.clone(),
                gate: p.gate.clone(),
                bake_ms,
                approvals,
            });
        }
        if let Some(a) = &self.approvers
            && a.unsigned == a.allowed_signers.is_some()
        {
            return Ok(Err(issue(
                "approvers",
                "`approvers:` must name `allowed_signers: FILE` or say `unsigned: true` (one of the two)".into(),
                "list the release managers' SSH keys in an allowed_signers file (`alice@example.com ssh-ed25519 AAAA...`) and name it, or write `unsigned: true`",
            )));
        }
        if let Some(t) = &self.gateways.trino {
            for f in std::iter::once(&t.tenant).chain(t.tier.as_ref()) {
                if !TrinoGateway::valid_field(f) {
                    return Ok(Err(issue(
                        f,
                        format!("gateways.trino: `{f}` is not a request field"),
                        "use `user`, `source`, `header:NAME` or `client_tag:KEY`",
                    )));
                }
            }
        }
        Ok(Ok(Policy {
            name: self.name.clone(),
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            gates,
            phases,
            signers: None,
            gateways: self.gateways.clone(),
        }))
    }
}

impl Policy {
    /// The gate that judges evidence while `phase` phases have been entered: the
    /// next phase's gate, else (at the last phase) the last gate named.
    pub fn judging_gate(&self, phase: usize) -> Option<&Gate> {
        let name = self.phases.get(phase).and_then(|p| p.gate.as_ref()).or_else(|| {
            self.phases[..phase.min(self.phases.len())]
                .iter()
                .rev()
                .find_map(|p| p.gate.as_ref())
        })?;
        self.gates.get(name)
    }

    /// The bake time of `phase` (1-based; phase 0, before the first, bakes for nothing).
    pub fn bake(&self, phase: usize) -> Duration {
        Duration::from_millis(phase.checked_sub(1).map_or(0, |i| self.phases[i].bake_ms))
    }
}
