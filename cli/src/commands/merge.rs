//! `sqlflight merge` and `sqlflight compare`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sqlflight_reports::{RunView, compare, merge, write_markdown};

use crate::{Cli, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Runs of `--partition K/N` to merge.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The merged run directory (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The older run.
    pub old: PathBuf,
    /// The newer run.
    pub new: PathBuf,
    /// Relative change of a query's time ratio reported as drift.
    #[arg(long, default_value_t = 0.2)]
    pub drift: f64,
}

pub fn run_merge(args: &MergeArgs, cli: &Cli) -> anyhow::Result<u8> {
    let inputs: Vec<&Path> = args.runs.iter().map(PathBuf::as_path).collect();
    let (view, report) = merge::merge_runs(&inputs, &args.out)?;
    let md = write_markdown(&args.out, &view)?;
    if !cli.quiet {
        if !report.missing_partitions.is_empty() {
            eprintln!(
                "warning: partitions {:?} are missing; the merged run is marked stopped",
                report.missing_partitions
            );
        }
        for r in &report.incomplete {
            eprintln!("warning: {r} is not complete");
        }
        println!(
            "merged {} runs: {} queries into {}",
            args.runs.len(),
            view.outcomes.len(),
            args.out.display()
        );
        println!("report: {}", md.display());
    }
    let regressions = view.outcomes.iter().filter(|o| o.is_regression()).count();
    Ok(if regressions > 0 { EXIT_REGRESSION } else { EXIT_OK })
}

pub fn run_compare(args: &CompareArgs, cli: &Cli) -> anyhow::Result<u8> {
    let old = RunView::read(&args.old).with_context(|| format!("reading {}", args.old.display()))?;
    let new = RunView::read(&args.new).with_context(|| format!("reading {}", args.new.display()))?;
    let c = compare::compare_runs(&old, &new, args.drift);
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else if !cli.quiet {
        let cls = |x: Option<sqlflight_diffing::OutcomeClass>| x.map_or("-".to_string(), |c| c.to_string());
        println!("new regressions: {}", c.new_regressions.len());
        for x in &c.new_regressions {
            println!("  {:<24} {} -> {}", x.query_id, cls(x.old), cls(x.new));
        }
        println!("resolved: {}", c.resolved.len());
        for x in &c.resolved {
            println!("  {:<24} {} -> {}", x.query_id, cls(x.old), cls(x.new));
        }
        println!("other changes: {}", c.changed.len());
        for x in c.changed.iter().take(20) {
            println!("  {:<24} {} -> {}", x.query_id, cls(x.old), cls(x.new));
        }
        println!("perf drift over {:.0}%: {}", args.drift * 100.0, c.perf_drift.len());
        for d in c.perf_drift.iter().take(20) {
            println!("  {:<24} ×{:.2} -> ×{:.2}", d.query_id, d.old_ratio, d.new_ratio);
        }
        println!("only in old: {}, only in new: {}", c.only_in_old, c.only_in_new);
    }
    Ok(if c.new_regressions.is_empty() {
        EXIT_OK
    } else {
        EXIT_REGRESSION
    })
}
