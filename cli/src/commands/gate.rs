//! `sqlflight gate`: runs + policy → pass (0) / fail (1) / error (2).

use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlflight_reports::RunView;
use sqlflight_reports::gate::{GatePolicy, evaluate};

use crate::config::{Config, ConfigError};
use crate::{Cli, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// Run directories, judged together.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Gate policy (YAML).
    #[arg(long)]
    pub policy: PathBuf,
    /// Known differences (YAML list of {query_id|template_id, class, reason});
    /// overrides the policy's `accepted`.
    #[arg(long)]
    pub accepted: Option<PathBuf>,
}

/// Reads a policy with located errors.
pub fn load_policy(path: &Path) -> Result<GatePolicy, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the gate policy: {e}"),
        fix: "check the path given to --policy".into(),
    })?;
    let policy: GatePolicy = crate::config::parse_yaml(path, &text, |_| {
        "a policy has `max: {class: n}`, `perf: {max_geomean_ratio, max_total_ratio, max_slowdowns, slowdown_over, max_memory_ratio}`, `coverage: {min_queries, min_fraction}` and `accepted: file`".into()
    })?;
    let located = Config {
        path: Some(path.to_path_buf()),
        text,
        ..Default::default()
    };
    if let Some(p) = policy.problem() {
        return Err(if p.path.is_empty() {
            ConfigError {
                file: path.display().to_string(),
                line: 1,
                column: 1,
                message: p.message,
                fix: p.fix,
            }
        } else {
            located.error_at_key(&p.path, p.message, p.fix)
        });
    }
    if let Some(a) = &policy.accepted {
        let file = path.parent().unwrap_or(Path::new(".")).join(a);
        if !file.is_file() {
            return Err(located.error_at_key(
                &["accepted"],
                format!("accepted: {} does not exist", file.display()),
                "fix the path (relative to the policy) or remove the key",
            ));
        }
    }
    Ok(policy)
}

pub fn run(args: &GateArgs, cli: &Cli) -> anyhow::Result<u8> {
    let policy = load_policy(&args.policy)?;
    let mut views: Vec<RunView> = args
        .runs
        .iter()
        .map(|p| RunView::read(p).with_context(|| format!("reading run {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    let accepted_file = match (&args.accepted, &policy.accepted) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) => Some(args.policy.parent().unwrap_or(Path::new(".")).join(p)),
        (None, None) => None,
    };
    if let Some(f) = accepted_file {
        let accepted = crate::config::load_accepted(&f)?;
        for v in &mut views {
            for o in &mut v.outcomes {
                sqlflight_flighting::apply_accepted(o, &accepted);
            }
        }
    }
    let results = evaluate(&policy, &views);
    let pass = results.iter().all(|r| r.pass);
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"pass": pass, "rules": results}))?
        );
    } else if !cli.quiet {
        for r in &results {
            println!(
                "{}  {:<44} measured {:>10.4}  limit {:>10.4}",
                if r.pass { "PASS" } else { "FAIL" },
                r.rule,
                r.measured,
                r.limit
            );
        }
        if results.is_empty() {
            println!("warning: the policy has no rules; nothing was checked");
        }
        println!("gate: {}", if pass { "pass" } else { "fail" });
    }
    Ok(if pass { EXIT_OK } else { EXIT_REGRESSION })
}
