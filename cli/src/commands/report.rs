//! `sqlflight report`: a run (or several) as Markdown, HTML, JSON or JUnit XML.

use std::path::PathBuf;

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use sqlflight_reports::{RunView, json, junit, markdown};

use crate::{Cli, EXIT_OK, EXIT_REGRESSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown (the default).
    Md,
    /// One self-contained HTML page (no network at view time).
    Html,
    /// The versioned JSON report.
    Json,
    /// JUnit XML, one test case per query.
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
    let target = args
        .out
        .as_ref()
        .map_or("standard output".to_string(), |p| p.display().to_string());
    let mut w: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("writing {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let written = match args.format {
        // Streamed: large runs never sit in memory as one document.
        Format::Json => json::write_json_report(&views, &mut w),
        Format::Md => {
            let flight = sqlflight_reports::flight_run(&views);
            let md: Vec<String> = views.iter().map(|v| markdown::run_markdown_with(v, flight)).collect();
            w.write_all(md.join("\n---\n\n").as_bytes())
        }
        Format::Html => {
            let flight = sqlflight_reports::flight_run(&views);
            let pages: Vec<String> = views
                .iter()
                .map(|v| sqlflight_reports::html::html_report_with(v, flight))
                .collect();
            w.write_all(pages.join("\n").as_bytes())
        }
        Format::Junit => w.write_all(junit::junit(&views).as_bytes()),
    };
    written
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {target}"))?;
    if args.out.is_some() && !cli.quiet {
        eprintln!("report: {target}");
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
