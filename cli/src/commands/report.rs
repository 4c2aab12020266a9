//! `sqlflight report`: a run (or several) as Markdown, HTML, JSON or JUnit XML.

use std::path::PathBuf;

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use sqlflight_reports::tally::{RunFile, Tally};
use sqlflight_reports::{json, junit, markdown};

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
    // Streamed: each run is scanned from disk (sorted aside when its journal is
    // out of order), so the report's memory does not grow with the run.
    let views: Vec<RunFile> = args
        .runs
        .iter()
        .map(|p| RunFile::open(p).with_context(|| format!("reading run {}", p.display())))
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
    let flight = sqlflight_reports::flight_run(&views);
    let tallies = |views: &[RunFile]| -> anyhow::Result<Vec<Tally>> {
        views
            .iter()
            .zip(&args.runs)
            .map(|(v, p)| Tally::read(v, flight).with_context(|| format!("reading run {}", p.display())))
            .collect()
    };
    let regressions = match args.format {
        Format::Json => json::write_json_report(&views, &mut w).with_context(|| format!("writing {target}"))?,
        Format::Junit => junit::write_junit(&views, &mut w).with_context(|| format!("writing {target}"))?,
        Format::Md => {
            let t = tallies(&views)?;
            let md: Vec<String> = views
                .iter()
                .zip(&t)
                .map(|(v, t)| markdown::markdown_of(&v.manifest, t, 1))
                .collect();
            w.write_all(md.join("\n---\n\n").as_bytes())
                .with_context(|| format!("writing {target}"))?;
            t.iter().map(|t| t.regressions).sum()
        }
        Format::Html => {
            let t = tallies(&views)?;
            let pages: Vec<String> = views
                .iter()
                .zip(&t)
                .map(|(v, t)| sqlflight_reports::html::html_of(&v.manifest, t, flight.is_some()))
                .collect();
            w.write_all(pages.join("\n").as_bytes())
                .with_context(|| format!("writing {target}"))?;
            t.iter().map(|t| t.regressions).sum()
        }
    };
    w.flush().with_context(|| format!("writing {target}"))?;
    if args.out.is_some() && !cli.quiet {
        eprintln!("report: {target}");
    }
    if std::env::var_os("SQLFLIGHT_PRINT_PEAK_RSS").is_some() {
        // For `sqlflight bench report`: this process's peak resident memory.
        eprintln!("peak_rss_kib={}", peak_rss_kib().unwrap_or(0));
    }
    Ok(if regressions > 0 { EXIT_REGRESSION } else { EXIT_OK })
}

/// Peak resident set size of this process (Linux `VmHWM`), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
