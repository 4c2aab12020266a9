//! `sqlflight rollout`: phased rollout of a candidate version with evidence,
//! approvals, audit and instant rollback (state in a SQLite store).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlflight_rollout::store::EvidenceRun;
use sqlflight_rollout::{PolicyFile, Store, StoreError, Verdict, now_ms};

use crate::config::{Config, ConfigError};
use crate::{Cli, EXIT_ERROR, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The rollout store (SQLite). Default: $SQLFLIGHT_ROLLOUT_STORE, else
    /// ./sqlflight-rollout.db.
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
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
    /// Print the statement an approval of the next phase signs (sign it with
    /// `ssh-keygen -Y sign -f KEY -n sqlflight-rollout FILE`).
    Statement {
        /// Write it to FILE instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Approve the next phase: with the policy's allowed signers, a signed
    /// statement; otherwise (unsigned policies) as the OS account running this.
    Approve {
        #[arg(long)]
        note: Option<String>,
        /// The `ssh-keygen -Y sign` signature (FILE.sig) of a statement.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The signed statement. Default: the signature's path without `.sig`.
        #[arg(long)]
        statement: Option<PathBuf>,
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
    /// Check the audit log's hash chain (the store's, or an export's), or
    /// export it as JSON lines for verification elsewhere.
    Audit {
        /// Check the chain and report the first broken link.
        #[arg(long)]
        verify: bool,
        /// Write every entry with its hash to FILE (JSON lines).
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// Verify this export instead of the store.
        #[arg(long, value_name = "FILE", requires = "verify")]
        file: Option<PathBuf>,
    },
    /// Answer routes over HTTP for gateways: GET /v1/route?tenant=T[&tier=P],
    /// POST /v1/trino-gateway/route, GET /v1/kyuubi/conf?user=U; and GET
    /// /v1/status (bearer token from --token-file or $SQLFLIGHT_STATUS_TOKEN).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8086")]
        listen: SocketAddr,
        /// A file holding the bearer token `/v1/status` requires.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

fn store_path(args: &RolloutArgs) -> PathBuf {
    args.store
        .clone()
        .or_else(|| std::env::var_os("SQLFLIGHT_ROLLOUT_STORE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("sqlflight-rollout.db"))
}

/// The status token: `--token-file`, else `$SQLFLIGHT_STATUS_TOKEN`; never printed.
fn status_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let token = match file {
        Some(f) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("reading the status token from {}", f.display()))?)
        }
        None => std::env::var("SQLFLIGHT_STATUS_TOKEN").ok(),
    };
    let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    if let Some(t) = &token {
        anyhow::ensure!(
            t.len() >= 16,
            "the status token is {} characters; use at least 16 (e.g. `openssl rand -hex 32`)",
            t.len()
        );
    }
    Ok(token)
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
    let config_at = |near: &str, message: String, fix: &str| {
        Config {
            path: Some(path.to_path_buf()),
            text: text.clone(),
            ..Default::default()
        }
        .error_at(near, message, fix.to_string())
    };
    let signers = match file.approvers.as_ref().and_then(|a| a.allowed_signers.as_ref()) {
        None => None,
        Some(f) => {
            let p = base.join(f);
            let list = std::fs::read_to_string(&p).map_err(|e| {
                config_at(
                    f,
                    format!("cannot read the allowed signers {}: {e}", p.display()),
                    "name a file of `principal keytype base64` lines (git's allowed_signers format)",
                )
            })?;
            let origin = p.display().to_string();
            sqlflight_rollout::trust::parse_allowed_signers(&list, &origin).map_err(|e| {
                config_at(
                    f,
                    e,
                    "each line is `alice@example.com ssh-ed25519 AAAA...` (the contents of the signer's .pub file after the principal)",
                )
            })?;
            Some(sqlflight_rollout::trust::Signers {
                namespace: file
                    .approvers
                    .as_ref()
                    .and_then(|a| a.namespace.clone())
                    .unwrap_or_else(|| sqlflight_rollout::trust::DEFAULT_NAMESPACE.into()),
                allowed_signers: list,
                origin,
            })
        }
    };
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
    let mut policy = resolved.map_err(|issue| config_at(&issue.near, issue.message, &issue.fix))?;
    policy.signers = signers;
    Ok(policy)
}

// Long by design: one arm per `rollout` subcommand, each a few lines of wiring.
pub fn run(args: &RolloutArgs, cli: &Cli) -> anyhow::Result<u8> {
    let path = store_path(args);
    let who = sqlflight_rollout::trust::os_account();
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
        RolloutCmd::Statement { out } => {
            let st = Store::open(&path, false)?;
            let text = st.statement(now)?;
            match out {
                Some(f) => {
                    std::fs::write(f, &text).with_context(|| format!("writing {}", f.display()))?;
                    say(cli, &format!("statement written to {}", f.display()));
                }
                None => print!("{text}"),
            }
            Ok(EXIT_OK)
        }
        RolloutCmd::Approve {
            note,
            signature,
            statement,
        } => {
            let approval = match signature {
                Some(sig) => {
                    let stmt = statement.clone().unwrap_or_else(|| sig.with_extension(""));
                    sqlflight_rollout::Approval::Signed {
                        statement: std::fs::read_to_string(&stmt)
                            .with_context(|| format!("reading the statement {}", stmt.display()))?,
                        signature: std::fs::read_to_string(sig)
                            .with_context(|| format!("reading the signature {}", sig.display()))?,
                    }
                }
                None => sqlflight_rollout::Approval::Unsigned { account: who.clone() },
            };
            let mut st = Store::open(&path, false)?;
            let r = st.approve(&approval, note.as_deref(), now)?;
            say(cli, &format!("approval of phase {} recorded", r.state.phase + 1));
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
            let (r, done) = st.rollback(&who, reason, now)?;
            if done {
                say(
                    cli,
                    &format!(
                        "rolled back: every tenant is on the baseline {}",
                        r.policy.baseline.label()
                    ),
                );
            } else {
                let when = st
                    .rolled_back_at()?
                    .map(|(at, by)| format!(" at {at} by {by}"))
                    .unwrap_or_default();
                say(
                    cli,
                    &format!("already rolled back{when}: nothing changed, nothing recorded"),
                );
            }
            print_status(&st, cli, false)
        }
        RolloutCmd::Audit { verify, export, file } => audit(&path, *verify, export.as_deref(), file.as_deref(), cli),
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
        RolloutCmd::Serve { listen, token_file } => {
            let quiet = cli.quiet;
            let opts = sqlflight_rollout::serve::ServeOptions {
                status_token: status_token(token_file.as_deref())?,
            };
            let guarded = if opts.status_token.is_some() {
                "bearer token required"
            } else {
                "open: set --token-file or $SQLFLIGHT_STATUS_TOKEN to guard it"
            };
            sqlflight_rollout::serve::run_blocking(&path, *listen, opts, |addr| {
                if !quiet {
                    use std::io::Write;
                    println!(
                        "listening on http://{addr} (GET /v1/route?tenant=T, POST /v1/trino-gateway/route, GET /v1/kyuubi/conf?user=U, GET /v1/status: {guarded})"
                    );
                    let _ = std::io::stdout().flush();
                }
            })?;
            Ok(EXIT_OK)
        }
    })();
    match result {
        Err(e) => match e.downcast_ref::<StoreError>() {
            Some(StoreError::Unmet(_) | StoreError::Refused(_) | StoreError::Approval(_)) => {
                eprintln!("{e}");
                Ok(EXIT_REGRESSION)
            }
            _ => Err(e),
        },
        ok => ok,
    }
}

/// `rollout audit`: verify the chain (store or export) and/or export it.
fn audit(path: &Path, verify: bool, export: Option<&Path>, file: Option<&Path>, cli: &Cli) -> anyhow::Result<u8> {
    use sqlflight_rollout::store::{ChainEntry, verify_chain};
    let mut problems = Vec::new();
    let entries: Vec<ChainEntry> = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let mut v = Vec::new();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                v.push(
                    serde_json::from_str(line)
                        .with_context(|| format!("{}:{}: not an exported audit entry", f.display(), i + 1))?,
                );
            }
            v
        }
        None => {
            let st = Store::open_read_only(path)?;
            if verify {
                problems = st.verify()?;
            }
            st.audit_entries()?
        }
    };
    if let Some(out) = export {
        let mut text = String::new();
        for e in &entries {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        say(
            cli,
            &format!("{} audit entries written to {}", entries.len(), out.display()),
        );
    }
    if !verify {
        return Ok(EXIT_OK);
    }
    let report = verify_chain(&entries);
    if let Some((_, what)) = &report.first_break {
        let line = format!("audit chain broken: {what}");
        if !problems.contains(&line) {
            problems.insert(0, line);
        }
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": "sqlflight.rollout.audit/v1",
                "entries": report.entries,
                "head": report.head,
                "first_break": report.first_break.as_ref().map(|(pos, what)| serde_json::json!({"position": pos, "problem": what})),
                "problems": problems,
            }))?
        );
    } else if !cli.quiet {
        if problems.is_empty() {
            println!(
                "audit chain intact: {} entries, head {}",
                report.entries,
                report.head.as_deref().unwrap_or("(empty)")
            );
        } else {
            for p in &problems {
                println!("{p}");
            }
        }
    }
    Ok(if problems.is_empty() { EXIT_OK } else { EXIT_ERROR })
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
                Verdict::NotRecorded => "check: nothing recorded".into(),
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
    let mut view = sqlflight_rollout::status::StatusView::of(&r, &audit, now_ms());
    if with_verify {
        view.store_problems = Some(problems.clone());
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else if !cli.quiet {
        print!("{}", view.text());
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
