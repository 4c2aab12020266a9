//! `sqlflight corpus ...`.

use std::path::PathBuf;

use anyhow::Context;
use sqlflight_corpora::ingest::{IngestFormat, IngestOptions, ingest};
use sqlflight_corpora::mask::mask_corpus;
use sqlflight_corpora::sample::{SampleOptions, Weight, sample_corpus};
use sqlflight_corpora::split::SplitOptions;
use sqlflight_corpora::stats::corpus_stats;
use sqlflight_corpora::{CorpusManifest, CorpusWriter};

use crate::{Cli, EXIT_OK};

#[derive(Debug, clap::Subcommand)]
pub enum CorpusCmd {
    /// Build a corpus from query logs, .sql files and JSON Lines (files or
    /// directories; gzip and zstd read transparently).
    Ingest(IngestArgs),
    /// Templates, statements, durations, users and statement kinds of a corpus.
    Stats(StatsArgs),
    /// A smaller corpus keeping every template (reservoir sampling, reproducible).
    Sample(SampleArgs),
    /// A shareable corpus whose literals are replaced by keyed pseudonyms.
    Mask(MaskArgs),
    /// Generate the data of a bundled workload (TPC-H or TPC-DS) as Parquet,
    /// cached by scale factor, and print the `catalog:` block that uses it.
    Data(DataArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataWorkload {
    Tpch,
    Tpcds,
}

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Which workload's tables.
    #[arg(value_enum)]
    pub workload: DataWorkload,
    /// Scale factor (1 = the benchmark's base size; 0.01 is a few MB).
    #[arg(long, default_value_t = 0.01, value_parser = crate::config::flags::positive_scale)]
    pub scale: f64,
    /// Directory to cache the data under (default: the sqlflight cache directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Corpus directory.
    pub corpus: PathBuf,
    /// Templates listed in the text output (all are in --json).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// Corpus directory to sample.
    pub corpus: PathBuf,
    /// Output corpus directory (must not exist yet).
    #[arg(long)]
    pub out: PathBuf,
    /// At most N records per template.
    #[arg(long)]
    pub per_template: Option<usize>,
    /// At most N records in all (every template gets one first, then by weight).
    #[arg(long)]
    pub max: Option<usize>,
    /// What a template's share is proportional to: count or duration.
    #[arg(long, default_value = "count")]
    pub weight: Weight,
    /// Random seed: the same corpus and seed give the same sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct MaskArgs {
    /// Corpus directory to mask.
    pub corpus: PathBuf,
    /// Output corpus directory (must not exist yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Secret key file (at least 16 bytes). Created with a random key when it does
    /// not exist; keep it to mask other corpora consistently. Without it, a random
    /// key is used and forgotten.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Input files or directories (searched recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Input format: auto (detected from the content), sql, jsonl, pg-csvlog,
    /// pg-jsonlog, mysql-slow, mysql-general, trino-events, spark-events.
    #[arg(long, default_value = "auto")]
    pub format: IngestFormat,
    /// SQL dialect for fingerprints and the corpus (generic, postgres, mysql, ansi,
    /// hive, duckdb, ...) [default: from the format].
    #[arg(long)]
    pub dialect: Option<String>,
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
    /// Largest record read (a log line, a statement), e.g. 64MiB; longer ones are
    /// skipped and counted [default: 8MiB].
    #[arg(long, value_parser = crate::config::flags::record_size)]
    pub max_record_size: Option<usize>,
}

pub fn run(cmd: &CorpusCmd, cli: &Cli) -> anyhow::Result<u8> {
    match cmd {
        CorpusCmd::Ingest(a) => run_ingest(a, cli),
        CorpusCmd::Stats(a) => run_stats(a, cli),
        CorpusCmd::Sample(a) => run_sample(a, cli),
        CorpusCmd::Mask(a) => run_mask(a, cli),
        CorpusCmd::Data(a) => run_data(a, cli),
    }
}

fn run_data(a: &DataArgs, cli: &Cli) -> anyhow::Result<u8> {
    let root = a
        .dir
        .clone()
        .unwrap_or_else(|| sqlflight_engines::python::cache_dir().join("data"));
    if !cli.quiet && !cli.json {
        eprintln!(
            "generating (or reusing) {:?} data at scale {} under {}",
            a.workload,
            a.scale,
            root.display()
        );
    }
    let (corpus, tables, dir, generated) = match a.workload {
        DataWorkload::Tpch => {
            let d = sqlflight_corpora::tpch::ensure_tpch_data(&root, a.scale)?;
            ("bundled:tpch", d.tables, d.dir, d.generated)
        }
        DataWorkload::Tpcds => {
            let d = sqlflight_corpora::tpcds::ensure_tpcds_data(&root, a.scale)?;
            ("bundled:tpcds", d.tables, d.dir, d.generated)
        }
    };
    if cli.json {
        let t: serde_json::Map<String, serde_json::Value> = tables
            .iter()
            .map(|(n, p)| (n.clone(), p.display().to_string().into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({"version": 1, "corpus": corpus, "dir": dir, "generated": generated, "tables": t})
        );
        return Ok(EXIT_OK);
    }
    println!(
        "# {} data at scale {} ({}); paste into a config:",
        corpus,
        a.scale,
        if generated { "generated" } else { "cached" }
    );
    println!("corpus: {corpus}\ncatalog:\n  tables:");
    for (n, p) in &tables {
        println!("    {n}: {:?}", p.display().to_string());
    }
    Ok(EXIT_OK)
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
        dialect: a.dialect.clone(),
        max_record: a
            .max_record_size
            .unwrap_or(sqlflight_corpora::input::DEFAULT_MAX_RECORD),
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
            serde_json::to_string_pretty(&serde_json::json!({ "corpus": dir, "report": report }))?
        );
    } else if !cli.quiet {
        for s in report.skipped.iter().take(50) {
            eprintln!("skipped {}:{}: {}", s.file, s.line, s.reason);
        }
        if report.skipped_total > 50 {
            eprintln!(
                "... {} more skipped records (all in {})",
                report.skipped_total - 50,
                dir.join("skipped.jsonl").display()
            );
        }
        for f in &report.unrecognized_files {
            eprintln!("not read: {f}: format not recognized (pass --format to read it)");
        }
        let formats: Vec<String> = report.formats.iter().map(|(f, n)| format!("{n} {f}")).collect();
        println!(
            "corpus {}: {} files ({}), {} records read, {} kept ({} templates, dialect {}), {} skipped",
            dir.display(),
            report.files,
            formats.join(", "),
            report.records_read,
            report.kept,
            report.templates,
            report.dialect,
            report.skipped_total
        );
        for (reason, n) in report.skipped_by_reason() {
            println!("  skipped {n:>8}  {reason}");
        }
        for (what, n) in &report.ignored {
            println!("  not a statement {n:>8}  {what}");
        }
        for (what, n) in &report.dropped_attributes {
            println!("  attribute dropped {n:>6}  {what} (statements kept)");
        }
        for d in report.dropped.iter().take(10) {
            eprintln!("attribute dropped {}:{}: {}", d.file, d.line, d.reason);
        }
    }
    Ok(EXIT_OK)
}

fn run_stats(a: &StatsArgs, cli: &Cli) -> anyhow::Result<u8> {
    let st = corpus_stats(&a.corpus)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(EXIT_OK);
    }
    if cli.quiet {
        return Ok(EXIT_OK);
    }
    let ms = |x: f64| format!("{x:.1}");
    println!(
        "corpus {} ({}): {} statements, {} templates, {} users, {} tenants",
        st.name, st.dialect, st.statements, st.templates, st.users, st.tenants
    );
    let kinds: Vec<String> = st.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("kinds: {}", kinds.join(", "));
    if st.timed > 0 {
        println!(
            "observed time: {} ms over {} timed statements (mean {} ms)",
            ms(st.total_ms),
            st.timed,
            ms(st.total_ms / st.timed as f64)
        );
    }
    if let (Some(f), Some(l)) = (&st.first_seen, &st.last_seen) {
        println!("seen: {f} .. {l}");
    }
    println!();
    println!(
        "{:<16} {:>9} {:>6} {:>12} {:>10} {:>5} {:<5}  template",
        "template", "count", "share", "total ms", "mean ms", "users", "kind"
    );
    for t in st.per_template.iter().take(a.top) {
        let text: String = t.template.chars().take(70).collect();
        let kind = serde_json::to_value(t.kind)?.as_str().unwrap_or("").to_string();
        println!(
            "{:<16} {:>9} {:>5.1}% {:>12} {:>10} {:>5} {:<5}  {}{}",
            t.template_id,
            t.count,
            100.0 * t.count as f64 / st.statements.max(1) as f64,
            ms(t.total_ms),
            t.mean_ms.map_or_else(|| "-".into(), ms),
            t.users,
            kind,
            text,
            if t.template.chars().count() > 70 { "..." } else { "" }
        );
    }
    if st.per_template.len() > a.top {
        println!(
            "... {} more templates (--top N, or --json)",
            st.per_template.len() - a.top
        );
    }
    Ok(EXIT_OK)
}

fn run_sample(a: &SampleArgs, cli: &Cli) -> anyhow::Result<u8> {
    let opts = SampleOptions {
        per_template: a.per_template,
        max: a.max,
        weight: a.weight,
        seed: a.seed,
    };
    let r = sample_corpus(&a.corpus, &a.out, &opts)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "corpus": a.out, "report": r }))?
        );
    } else if !cli.quiet {
        println!(
            "corpus {}: {} of {} records, {} of {} templates",
            a.out.display(),
            r.selected,
            r.records_read,
            r.templates_selected,
            r.templates
        );
    }
    Ok(EXIT_OK)
}

/// Reads the masking key, creating the file with a fresh random key if needed.
fn masking_key(path: Option<&std::path::Path>) -> anyhow::Result<(Vec<u8>, &'static str)> {
    use rand::RngCore;
    let fresh = || {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        k.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let Some(path) = path else {
        return Ok((fresh().into_bytes(), "a random key that was not kept"));
    };
    if path.exists() {
        let key = std::fs::read(path).with_context(|| format!("reading the key file {}", path.display()))?;
        let key = key.trim_ascii().to_vec();
        if key.len() < 16 {
            anyhow::bail!(
                "{}: the masking key has {} bytes; use at least 16 (e.g. `head -c 32 /dev/urandom | xxd -p -c 64 > {}`)",
                path.display(),
                key.len(),
                path.display()
            );
        }
        return Ok((key, "the key file"));
    }
    let key = fresh();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{key}\n").as_bytes())
        .with_context(|| format!("writing the key file {}", path.display()))?;
    Ok((key.into_bytes(), "a new random key, saved to the key file"))
}

fn run_mask(a: &MaskArgs, cli: &Cli) -> anyhow::Result<u8> {
    let (key, origin) = masking_key(a.key_file.as_deref())?;
    let r = match mask_corpus(&a.corpus, &a.out, &key) {
        Ok(r) => r,
        Err(e) => {
            // Never leave a partial masked corpus that looks shareable.
            let _ = std::fs::remove_dir_all(&a.out);
            return Err(e).context("mask stopped; nothing was written");
        }
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "corpus": a.out, "key": origin, "report": r }))?
        );
    } else if !cli.quiet {
        println!(
            "corpus {}: {} of {} records masked ({} literals) with {origin}",
            a.out.display(),
            r.masked,
            r.records,
            r.literals
        );
        if !r.left_out.is_empty() {
            println!(
                "  left out {} records whose text could not be tokenized (ids in --json)",
                r.left_out.len()
            );
        }
    }
    Ok(EXIT_OK)
}
