//! `sqlflight rollout`: phased rollout of a candidate version with evidence,
//! approvals, audit and instant rollback (state in a SQLite store).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlflight_rollout::store::{AuditEntry, EvidenceRun, Rollout};
use sqlflight_rollout::{PolicyFile, Store, StoreError, Verdict, now_ms};

use crate::config::{Config, ConfigError};
use crate::{Cli, EXIT_ERROR, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The rollout store (SQLite). Default: $SQLFLIGHT_ROLLOUT_STORE, else
    /// ./sqlflight-rollout.db.
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    /// Who acts, as recorded in the audit log. Default: $SQLFLIGHT_USER, else $USER.
    /// `approve` needs it given explicitly.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub cmd: RolloutCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum RolloutCmd {
    /// Start a rollout from a policy file (versions, gates, phases).
    Init {
        #[arg(long)]
        policy: PathBuf,
    },
    /// Phase, who is on which version, what the next phase still needs, recent audit.
    Status,
    /// Approve the next phase.
    Approve {
        #[arg(long)]
        note: Option<String>,
    },
    /// Enter the next phase; refused with every unmet condition listed.
    Advance,
    /// Hold the rollout where it is.
    Pause {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Continue a paused rollout.
    Resume {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Route every tenant to the baseline now (no evidence, no approval needed).
    Rollback {
        #[arg(long)]
        reason: String,
    },
    /// Judge runs as evidence: passing runs count for the next phase; a failing
    /// critical rule rolls back; an inconclusive result pauses.
    Check {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
    /// Print the version serving a tenant now.
    Route {
        #[arg(long)]
        tenant: String,
        /// The tenant's priority tier, if phases select by tier.
        #[arg(long)]
        tier: Option<String>,
    },
    /// Answer routes and status over read-only HTTP: GET /v1/route?tenant=T[&tier=P],
    /// GET /v1/status.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8086")]
        listen: SocketAddr,
    },
}

fn store_path(args: &RolloutArgs) -> PathBuf {
    args.store
        .clone()
        .or_else(|| std::env::var_os("SQLFLIGHT_ROLLOUT_STORE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("sqlflight-rollout.db"))
}

fn actor(args: &RolloutArgs) -> String {
    args.actor
        .clone()
        .or_else(|| std::env::var("SQLFLIGHT_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Reads a rollout policy and the gate files it names; every error names file,
/// line and column.
pub fn load_policy(path: &Path) -> Result<sqlflight_rollout::Policy, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the rollout policy: {e}"),
        fix: "check the path given to --policy".into(),
    })?;
    let file: PolicyFile = crate::config::parse_yaml(path, &text, |_| {
        "a rollout policy has `name`, `baseline: {version, engine?, profile?}`, `candidate: {...}`, `gates: {NAME: {policy: FILE, critical: [classes]}}` and `phases: [{name, tenants|tiers|percent, require, gate, bake, approvals}]`".into()
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolved = file.resolve(|gate_file| {
        let gp = base.join(gate_file);
        let policy = super::gate::load_policy(&gp)?;
        let accepted = match &policy.accepted {
            Some(a) => {
                let list = crate::config::load_accepted(&gp.parent().unwrap_or(Path::new(".")).join(a))?;
                serde_json::to_value(list).unwrap_or_default()
            }
            None => serde_json::Value::Null,
        };
        Ok::<_, ConfigError>((policy, accepted))
    })?;
    resolved.map_err(|issue| {
        Config {
            path: Some(path.to_path_buf()),
            text,
            ..Default::default()
        }
        .error_at(&issue.near, issue.message, issue.fix)
    })
}

pub fn run(args: &RolloutArgs, cli: &Cli) -> anyhow::Result<u8> {
    let path = store_path(args);
    let who = actor(args);
    let now = now_ms();
    let result = (|| match &args.cmd {
        RolloutCmd::Init { policy } => {
            let policy = load_policy(policy)?;
            let mut st = Store::open(&path, true)?;
            let r = st.init(&policy, &who, now)?;
            if !cli.json && !cli.quiet {
                println!(
                    "rollout `{}` started: {} → {}, {} phases (store {})",
                    r.policy.name,
                    r.policy.baseline.label(),
                    r.policy.candidate.label(),
                    r.policy.phases.len(),
                    path.display()
                );
            }
            print_status(&st, cli, false)
        }
        RolloutCmd::Status => print_status(&Store::open(&path, false)?, cli, true),
        RolloutCmd::Approve { note } => {
            let Some(name) = args.actor.as_deref().filter(|s| !s.trim().is_empty()) else {
                anyhow::bail!("approve needs the approver: `sqlflight rollout approve --as NAME`");
            };
            let mut st = Store::open(&path, false)?;
            let r = st.approve(name, note.as_deref(), now)?;
            say(cli, &format!("{name} approved phase {}", r.state.phase + 1));
            print_status(&st, cli, false)
        }
        RolloutCmd::Advance => {
            let mut st = Store::open(&path, false)?;
            let r = st.advance(&who, now)?;
            say(
                cli,
                &format!(
                    "entered phase {} `{}`",
                    r.state.phase,
                    r.policy.phases[r.state.phase - 1].name
                ),
            );
            print_status(&st, cli, false)
        }
        RolloutCmd::Pause { reason } => {
            let mut st = Store::open(&path, false)?;
            st.pause(&who, reason.as_deref(), now)?;
            say(cli, "paused");
            print_status(&st, cli, false)
        }
        RolloutCmd::Resume { reason } => {
            let mut st = Store::open(&path, false)?;
            st.resume(&who, reason.as_deref(), now)?;
            say(cli, "resumed");
            print_status(&st, cli, false)
        }
        RolloutCmd::Rollback { reason } => {
            let mut st = Store::open(&path, false)?;
            let r = st.rollback(&who, reason, now)?;
            say(
                cli,
                &format!(
                    "rolled back: every tenant is on the baseline {}",
                    r.policy.baseline.label()
                ),
            );
            print_status(&st, cli, false)
        }
        RolloutCmd::Check { runs } => check(&path, &who, runs, cli),
        RolloutCmd::Route { tenant, tier } => {
            let st = Store::open_read_only(&path)?;
            let table = st.route_table()?.ok_or(StoreError::NoRollout)?;
            if cli.json {
                println!("{}", table.answer(tenant, tier.as_deref()));
            } else {
                println!("{}", table.version(table.side(tenant, tier.as_deref())).label());
            }
            Ok(EXIT_OK)
        }
        RolloutCmd::Serve { listen } => {
            let quiet = cli.quiet;
            sqlflight_rollout::serve::run_blocking(&path, *listen, |addr| {
                if !quiet {
                    use std::io::Write;
                    println!("listening on http://{addr} (GET /v1/route?tenant=T, GET /v1/status)");
                    let _ = std::io::stdout().flush();
                }
            })?;
            Ok(EXIT_OK)
        }
    })();
    match result {
        Err(e) => match e.downcast_ref::<StoreError>() {
            Some(StoreError::Unmet(_) | StoreError::Refused(_)) => {
                eprintln!("{e}");
                Ok(EXIT_REGRESSION)
            }
            _ => Err(e),
        },
        ok => ok,
    }
}

fn say(cli: &Cli, line: &str) {
    if !cli.json && !cli.quiet {
        println!("{line}");
    }
}

fn check(path: &Path, who: &str, runs: &[PathBuf], cli: &Cli) -> anyhow::Result<u8> {
    let mut st = Store::open(path, false)?;
    let current = st.current()?.ok_or(StoreError::NoRollout)?;
    let accepted: Vec<sqlflight_flighting::AcceptedDifference> = current
        .policy
        .judging_gate(current.state.phase)
        .filter(|g| !g.accepted.is_null())
        .map(|g| serde_json::from_value(g.accepted.clone()))
        .transpose()
        .context("the stored gate's known differences are unreadable")?
        .unwrap_or_default();
    let mut evidence = Vec::new();
    for p in runs {
        let mut e = EvidenceRun::read(p).with_context(|| format!("reading run {}", p.display()))?;
        for o in &mut e.view.outcomes {
            sqlflight_flighting::apply_accepted(o, &accepted);
        }
        evidence.push(e);
    }
    let out = st.check(who, &evidence, now_ms())?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if !cli.quiet {
        for r in &out.rules {
            println!(
                "{}  {:<44} measured {:>10.4}  limit {:>10.4}{}",
                if r.rule.pass { "PASS" } else { "FAIL" },
                r.rule.rule,
                r.rule.measured,
                r.rule.limit,
                if r.critical { "  (critical)" } else { "" }
            );
        }
        for reason in &out.reasons {
            println!("  - {reason}");
        }
        let gate = out.gate.as_deref().unwrap_or("(none: binding only)");
        println!(
            "{}",
            match out.verdict {
                Verdict::Pass => format!("check: pass (gate {gate}); recorded as evidence for the next phase"),
                Verdict::Refused => "check: refused; these runs are not evidence for this rollout".into(),
                Verdict::Fail =>
                    format!("check: fail (gate {gate}); not recorded; nobody is on the candidate, nothing to roll back"),
                Verdict::RolledBack =>
                    format!("check: critical rule failed (gate {gate}); ROLLED BACK: every tenant is on the baseline"),
                Verdict::Inconclusive if out.paused => format!(
                    "check: inconclusive (gate {gate}); rollout PAUSED for a human (`rollout resume` to continue)"
                ),
                Verdict::Inconclusive => format!("check: inconclusive (gate {gate}); not recorded"),
            }
        );
    }
    Ok(if out.verdict == Verdict::Pass {
        EXIT_OK
    } else {
        EXIT_REGRESSION
    })
}

fn print_status(st: &Store, cli: &Cli, with_verify: bool) -> anyhow::Result<u8> {
    let r = st.current()?.ok_or(StoreError::NoRollout)?;
    let audit = st.audit(10)?;
    let problems = if with_verify { st.verify()? } else { Vec::new() };
    let mut json = sqlflight_rollout::status::status_json(&r, &audit, now_ms());
    if with_verify {
        json["store_problems"] = serde_json::json!(problems);
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !cli.quiet {
        print!("{}", status_text(&r, &json, &audit));
        if with_verify {
            if problems.is_empty() {
                println!("store: {} (consistent)", st.path().display());
            } else {
                println!("store: {} has problems:", st.path().display());
                for p in &problems {
                    println!("  - {p}");
                }
            }
        }
    }
    Ok(if problems.is_empty() { EXIT_OK } else { EXIT_ERROR })
}

fn status_text(r: &Rollout, j: &serde_json::Value, audit: &[AuditEntry]) -> String {
    use std::fmt::Write;
    let p = &r.policy;
    let s = &r.state;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rollout `{}` (#{}): {} → {}",
        p.name,
        r.id,
        p.baseline.label(),
        p.candidate.label()
    );
    let _ = writeln!(
        out,
        "status: {}, phase {} of {}{} since {}",
        s.status.as_str(),
        s.phase,
        p.phases.len(),
        j["phase_name"].as_str().map(|n| format!(" `{n}`")).unwrap_or_default(),
        j["phase_entered"].as_str().unwrap_or("")
    );
    let _ = writeln!(out, "phases:");
    for (i, ph) in p.phases.iter().enumerate() {
        let mark = if i + 1 == s.phase {
            "▶"
        } else if i < s.phase {
            "✓"
        } else {
            " "
        };
        let mut needs = Vec::new();
        if !ph.require.is_empty() {
            needs.push(format!(
                "{} passing gate `{}`",
                ph.require.join(" + "),
                ph.gate.as_deref().unwrap_or("")
            ));
        }
        if ph.approvals > 0 {
            needs.push(format!("{} approvals", ph.approvals));
        }
        if ph.bake_ms > 0 {
            needs.push(format!(
                "bakes {}",
                humantime::format_duration(std::time::Duration::from_millis(ph.bake_ms))
            ));
        }
        let _ = writeln!(
            out,
            "  {mark} {} {:<16} {:<40} {}",
            i + 1,
            ph.name,
            sqlflight_rollout::status::selects(ph),
            needs.join(", ")
        );
    }
    let oc = &j["on_candidate"];
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    if s.candidate_live() {
        let _ = writeln!(
            out,
            "on the candidate {}: tenants [{}], tiers [{}], {}% of the rest by hash; everyone else on the baseline {}",
            p.candidate.label(),
            list(&oc["tenants"]),
            list(&oc["tiers"]),
            oc["percent"],
            p.baseline.label()
        );
    } else {
        let _ = writeln!(out, "every tenant is on the baseline {}", p.baseline.label());
    }
    match &j["next"] {
        serde_json::Value::Null => {
            if s.status.as_str() != "rolled_back" {
                let _ = writeln!(out, "complete: the last phase is entered");
            }
        }
        next => {
            let unmet = next["unmet"].as_array().cloned().unwrap_or_default();
            if unmet.is_empty() {
                let _ = writeln!(
                    out,
                    "next: phase {} `{}` is ready: `rollout advance`",
                    next["number"],
                    next["name"].as_str().unwrap_or("")
                );
            } else {
                let _ = writeln!(
                    out,
                    "next: phase {} `{}` still needs:",
                    next["number"],
                    next["name"].as_str().unwrap_or("")
                );
                for u in unmet {
                    let _ = writeln!(out, "  - {}", u["text"].as_str().unwrap_or(""));
                }
            }
            if !s.approvals.is_empty() {
                let _ = writeln!(
                    out,
                    "  approved by: {}",
                    s.approvals.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    if !audit.is_empty() {
        let _ = writeln!(out, "recent audit:");
        for a in audit {
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
