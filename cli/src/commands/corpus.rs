//! `sqlflight corpus ...`.

use std::path::PathBuf;

use anyhow::Context;
use sqlflight_corpora::ingest::{IngestFormat, IngestOptions, ingest};
use sqlflight_corpora::split::SplitOptions;
use sqlflight_corpora::{CorpusManifest, CorpusWriter};

use crate::{Cli, EXIT_OK};

#[derive(Debug, clap::Subcommand)]
pub enum CorpusCmd {
    /// Build a corpus from .sql files and JSON Lines (files or directories).
    Ingest(IngestArgs),
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Input files or directories (searched recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Input format: auto (by extension), sql, jsonl.
    #[arg(long, default_value = "auto")]
    pub format: IngestFormat,
    /// Output corpus directory (must not exist yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Corpus name [default: the output directory's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Schema DDL to store with the corpus (playback uses it as the catalog).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Treat backslash as an escape in every string (MySQL dumps).
    #[arg(long)]
    pub backslash_escapes: bool,
    /// Tag added to every record (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

pub fn run(cmd: &CorpusCmd, cli: &Cli) -> anyhow::Result<u8> {
    match cmd {
        CorpusCmd::Ingest(a) => run_ingest(a, cli),
    }
}

fn run_ingest(a: &IngestArgs, cli: &Cli) -> anyhow::Result<u8> {
    let name = a.name.clone().unwrap_or_else(|| {
        a.out
            .file_name()
            .map_or("corpus".into(), |n| n.to_string_lossy().into_owned())
    });
    let schema = match &a.schema {
        Some(p) => Some(sqlflight_corpora::ingest::read_utf8(p)?),
        None => None,
    };
    let mut writer = CorpusWriter::create(&a.out, CorpusManifest::new(name))?;
    if let Some(s) = &schema {
        writer.set_schema(s)?;
    }
    let opts = IngestOptions {
        format: a.format,
        split: SplitOptions {
            backslash_escapes: a.backslash_escapes,
        },
        tags: a.tags.clone(),
    };
    let report = match ingest(&a.inputs, &opts, &mut writer) {
        Ok(r) => r,
        Err(e) => {
            // Leave no half-written corpus behind: without a manifest it is not one,
            // but remove the partial records too.
            drop(writer);
            let _ = std::fs::remove_dir_all(&a.out);
            return Err(e).context("ingest stopped; nothing was written");
        }
    };
    let dir = writer.finish()?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "corpus": dir,
                "files": report.files,
                "records_read": report.records_read,
                "kept": report.kept,
                "skipped": report.skipped.len(),
                "skipped_by_reason": report.skipped_by_reason(),
                "skipped_records": report.skipped,
            }))?
        );
    } else if !cli.quiet {
        for s in report.skipped.iter().take(50) {
            eprintln!("skipped {}:{}: {}", s.file, s.line, s.reason);
        }
        if report.skipped.len() > 50 {
            eprintln!("... {} more skipped records (see --json)", report.skipped.len() - 50);
        }
        println!(
            "corpus {}: {} files, {} records read, {} kept, {} skipped",
            dir.display(),
            report.files,
            report.records_read,
            report.kept,
            report.skipped.len()
        );
        for (reason, n) in report.skipped_by_reason() {
            println!("  skipped {n:>6}  {reason}");
        }
    }
    Ok(EXIT_OK)
}
