//! `sqlflight report`: a run (or several) as Markdown, HTML, JSON or JUnit XML.

use std::path::PathBuf;

use anyhow::Context;
use sqlflight_reports::{RunView, json, junit, markdown};

use crate::{Cli, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Html,
    Json,
    Junit,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run directories.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    pub format: Format,
    /// Write the report here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs, cli: &Cli) -> anyhow::Result<u8> {
    let views: Vec<RunView> = args
        .runs
        .iter()
        .map(|p| RunView::read(p).with_context(|| format!("reading run {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    let text = match args.format {
        Format::Md => views
            .iter()
            .map(markdown::run_markdown)
            .collect::<Vec<_>>()
            .join("\n---\n\n"),
        Format::Html => views
            .iter()
            .map(sqlflight_reports::html::html_report)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => serde_json::to_string_pretty(&json::json_report(&views))? + "\n",
        Format::Junit => junit::junit(&views),
    };
    match &args.out {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
            if !cli.quiet {
                eprintln!("report: {}", p.display());
            }
        }
        None => print!("{text}"),
    }
    let regressions = views
        .iter()
        .flat_map(|v| &v.outcomes)
        .filter(|o| o.is_regression())
        .count();
    Ok(if regressions > 0 { EXIT_REGRESSION } else { EXIT_OK })
}
