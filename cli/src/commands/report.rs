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
    if args.format == Format::Json {
        // Streamed: large runs never sit in memory as one document.
        let regressions = views
            .iter()
            .flat_map(|v| &v.outcomes)
            .filter(|o| o.is_regression())
            .count();
        match &args.out {
            Some(p) => {
                let f = std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?;
                let mut w = std::io::BufWriter::new(f);
                json::write_json_report(&views, &mut w).with_context(|| format!("writing {}", p.display()))?;
                std::io::Write::flush(&mut w).with_context(|| format!("writing {}", p.display()))?;
            }
            None => {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                json::write_json_report(&views, &mut w)?;
                std::io::Write::flush(&mut w)?;
            }
        }
        if std::env::var_os("SQLFLIGHT_PRINT_PEAK_RSS").is_some() {
            eprintln!("peak_rss_kib={}", peak_rss_kib().unwrap_or(0));
        }
        return Ok(if regressions > 0 { EXIT_REGRESSION } else { EXIT_OK });
    }
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
        Format::Json => unreachable!("streamed above"),
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
    if std::env::var_os("SQLFLIGHT_PRINT_PEAK_RSS").is_some() {
        // For `sqlflight bench report`: this process's peak resident memory.
        eprintln!("peak_rss_kib={}", peak_rss_kib().unwrap_or(0));
    }
    let regressions = views
        .iter()
        .flat_map(|v| &v.outcomes)
        .filter(|o| o.is_regression())
        .count();
    Ok(if regressions > 0 { EXIT_REGRESSION } else { EXIT_OK })
}

/// Peak resident set size of this process (Linux `VmHWM`), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
