//! `sqlflight bench ingest`: log ingest + fingerprinting throughput against
//! `pt-query-digest` (Percona Toolkit) on the same slow log, and the peak memory
//! of ingesting and sampling a long generated log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use sqlflight_corpora::ingest::{IngestFormat, IngestOptions, ingest};
use sqlflight_corpora::synth;
use sqlflight_corpora::{CorpusManifest, CorpusWriter};
use sqlflight_flighting::stats::median;

use crate::{Ctx, EXIT_OK};

/// `bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestBenchArgs {
    /// A slow query log to measure on (e.g. one a real MariaDB wrote; see
    /// scripts/bench-ingest.sh). Without it, a log of --generate entries is made.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Entries of the generated log when no --log is given.
    #[arg(long, default_value_t = 200_000)]
    pub generate: u64,
    /// Print N generated statements as SQL (after the schema) and exit: the
    /// workload scripts/bench-ingest.sh replays through a real MariaDB.
    #[arg(long)]
    pub workload: Option<u64>,
    /// Skip the pt-query-digest comparison.
    #[arg(long)]
    pub no_peer: bool,
    /// Also ingest and sample a generated log of this many lines in child
    /// processes and report their peak memory (e.g. 10000000).
    #[arg(long)]
    pub memory_lines: Option<u64>,
    /// Runs of each side; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
}

/// Peak resident set of a child process, from `wait4`.
fn run_measured(cmd: &mut Command) -> anyhow::Result<(f64, u64)> {
    let start = Instant::now();
    let child = cmd.stdout(Stdio::null()).spawn().context("starting a child process")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and usage point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        anyhow::bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        anyhow::bail!("{cmd:?} failed (status {status})");
    }
    // ru_maxrss is in KiB on Linux.
    Ok((start.elapsed().as_secs_f64(), usage.ru_maxrss as u64 * 1024))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Runs `bench ingest`; returns the exit code.
// Long by design: a measurement script, its steps in the order they are timed.
pub fn bench_ingest(a: &IngestBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    if let Some(n) = a.workload {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        out.write_all(synth::SCHEMA.as_bytes())?;
        for (_, sql, _) in synth::Statements::new(1).take(n as usize) {
            writeln!(out, "{sql};")?;
        }
        out.flush()?;
        return Ok(EXIT_OK);
    }
    let tmp = tempfile::tempdir().context("temp dir")?;
    let log = match &a.log {
        Some(l) => l.clone(),
        None => {
            let p = tmp.path().join("slow.log");
            let mut f = std::fs::File::create(&p)?;
            synth::write_slow_log(&mut f, a.generate, 1)?;
            p
        }
    };
    let size = std::fs::metadata(&log)
        .with_context(|| log.display().to_string())?
        .len();
    // sqlflight: ingest (parse, fingerprint, write the corpus) on one thread.
    let mut times = Vec::new();
    let mut report = None;
    for run in 0..a.runs {
        let out = tmp.path().join(format!("corpus-{run}"));
        let start = Instant::now();
        let mut w = CorpusWriter::create(&out, CorpusManifest::new("bench"))?;
        let opts = IngestOptions {
            format: IngestFormat::MysqlSlow,
            ..IngestOptions::default()
        };
        let r = ingest(std::slice::from_ref(&log), &opts, &mut w)?;
        w.finish()?;
        times.push(start.elapsed().as_secs_f64());
        std::fs::remove_dir_all(&out).with_context(|| out.display().to_string())?;
        report = Some(r);
    }
    let report = report.context("no run")?;
    let ours = median(&times).unwrap_or_default();
    let statements = report.kept;
    let mut result = serde_json::json!({
        "log": log, "log_bytes": size, "statements": statements, "templates": report.templates,
        "runs": a.runs, "sqlflight_s": ours, "sqlflight_runs_s": times, "sqlflight_statements_per_s": statements as f64 / ours,
        "sqlflight_mb_per_s": size as f64 / 1e6 / ours,
    });
    if !cli.quiet && !cli.json {
        println!(
            "input: {} ({}), {} statements, {} templates",
            log.display(),
            mib(size),
            statements,
            report.templates
        );
        println!(
            "sqlflight ingest:   {:>8.2} s  {:>10.0} statements/s  {:>7.1} MB/s (one thread, median of {})",
            ours,
            statements as f64 / ours,
            size as f64 / 1e6 / ours,
            a.runs
        );
    }
    if !a.no_peer {
        let mut peer_times = Vec::new();
        for _ in 0..a.runs {
            let start = Instant::now();
            let st = Command::new("pt-query-digest")
                .args(["--type", "slowlog"])
                .arg(&log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("running pt-query-digest (apt-get install percona-toolkit), or pass --no-peer")?;
            if !st.success() {
                anyhow::bail!("pt-query-digest failed: {st}");
            }
            peer_times.push(start.elapsed().as_secs_f64());
        }
        let peer = median(&peer_times).unwrap_or_default();
        result["pt_query_digest_runs_s"] = peer_times.into();
        result["pt_query_digest_s"] = peer.into();
        result["ratio"] = (peer / ours).into();
        if !cli.quiet && !cli.json {
            println!(
                "pt-query-digest:    {:>8.2} s  {:>10.0} statements/s  (median of {})",
                peer,
                statements as f64 / peer,
                a.runs
            );
            println!("ratio: sqlflight is {:.1}x pt-query-digest", peer / ours);
        }
    }
    if let Some(lines) = a.memory_lines {
        memory(cli, lines, tmp.path(), &mut result)?;
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(EXIT_OK)
}

/// Ingest and sample a long generated log in child processes; peak RSS of each.
fn memory(cli: &Ctx, lines: u64, dir: &Path, result: &mut serde_json::Value) -> anyhow::Result<()> {
    // Each generated entry is 7 lines.
    let entries = lines.div_ceil(7);
    let log = dir.join("long.log");
    let mut f = std::fs::File::create(&log)?;
    let size = synth::write_slow_log(&mut f, entries, 2)?;
    drop(f);
    let exe = std::env::current_exe()?;
    let corpus = dir.join("long-corpus");
    let (t_ingest, rss_ingest) = run_measured(
        Command::new(&exe)
            .args(["corpus", "ingest", "-q", "--format", "mysql-slow", "--out"])
            .arg(&corpus)
            .arg(&log),
    )?;
    let sample = dir.join("long-sample");
    let (t_sample, rss_sample) = run_measured(
        Command::new(&exe)
            .args([
                "corpus",
                "sample",
                "-q",
                "--per-template",
                "100",
                "--max",
                "1000",
                "--out",
            ])
            .arg(&sample)
            .arg(&corpus),
    )?;
    let corpus_size = std::fs::metadata(corpus.join("queries.jsonl"))?.len();
    result["memory"] = serde_json::json!({
        "lines": lines, "entries": entries, "log_bytes": size, "corpus_bytes": corpus_size,
        "ingest_s": t_ingest, "ingest_peak_rss_bytes": rss_ingest,
        "sample_s": t_sample, "sample_peak_rss_bytes": rss_sample,
    });
    if !cli.quiet && !cli.json {
        println!(
            "long log: {lines} lines ({entries} statements, {}), corpus {}",
            mib(size),
            mib(corpus_size)
        );
        println!(
            "  ingest: {t_ingest:.1} s, peak RSS {} ({:.1}% of the log)",
            mib(rss_ingest),
            100.0 * rss_ingest as f64 / size as f64
        );
        println!(
            "  sample: {t_sample:.1} s, peak RSS {} ({:.1}% of the corpus)",
            mib(rss_sample),
            100.0 * rss_sample as f64 / corpus_size as f64
        );
    }
    Ok(())
}
