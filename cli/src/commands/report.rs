//! `sqlflight report`: the Markdown report of a run, written again or printed.

use std::path::PathBuf;

use anyhow::Context;
use sqlflight_reports::{RunView, markdown};

use crate::{Cli, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run directory.
    pub run: PathBuf,
    /// Write the report here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs, cli: &Cli) -> anyhow::Result<u8> {
    let view = RunView::read(&args.run)?;
    let md = markdown::run_markdown(&view);
    match &args.out {
        Some(p) => {
            std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
            if !cli.quiet {
                eprintln!("report: {}", p.display());
            }
        }
        None => print!("{md}"),
    }
    let regressions = view.outcomes.iter().filter(|o| o.is_regression()).count();
    Ok(if regressions > 0 { EXIT_REGRESSION } else { EXIT_OK })
}
