//! `sqlflight flight`: shadow execution on live data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use sqlflight_corpora::{Catalog, Corpus};
use sqlflight_engines::{EngineSpec, ExecLimits};
use sqlflight_flighting::{FlightOptions, FlightSummary, run_flight};
use sqlflight_reports::summary::Summary;
use sqlflight_reports::{RunView, write_markdown};

use super::playback::{RunArgs, make_engine, make_engines, resolve_run};
use crate::config::{Config, load_accepted};
use crate::progress::{RunProgress, UiMode};
use crate::{Cli, EXIT_ERROR, EXIT_OK, EXIT_REGRESSION};

pub const DEFAULT_REPEAT: usize = 2;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct FlightArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Fewest timed runs per side before the first performance verdict; runs come in ABBA blocks (two per side) until the verdict is decided or `perf.max_pairs` blocks [default: 2].
    #[arg(long, value_parser = crate::config::flags::positive_count)]
    pub repeat: Option<usize>,
    /// Compare results only: each query runs once per side, no timed runs and no performance verdicts (same as `flight.timing: false`; e.g. batch against streaming).
    #[arg(long, conflicts_with = "repeat")]
    pub results_only: bool,
    /// Per-query time limit; the query is cancelled [default: 30s].
    #[arg(long, value_parser = crate::config::flags::positive_duration)]
    pub timeout: Option<Duration>,
    /// Per-query memory limit, e.g. 2GiB [default: none].
    #[arg(long, value_parser = crate::config::flags::memory_limit)]
    pub memory_limit: Option<usize>,
    /// Stop taking new queries after this long, e.g. 10m (resume later).
    #[arg(long, value_parser = crate::config::flags::positive_duration)]
    pub budget: Option<Duration>,
    /// Extra baseline runs when results differ [default: 2].
    #[arg(long)]
    pub reruns: Option<usize>,
    /// Known differences (YAML list of {query_id|template_id, class, reason}).
    #[arg(long)]
    pub accepted: Option<PathBuf>,
    /// Query-bank mode: take the baseline's digests and timings from this earlier
    /// flight run instead of running the baseline.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
}

/// Everything a flight needs, resolved.
pub struct FlightJob {
    pub corpus: Corpus,
    pub catalog: Catalog,
    pub baseline: (String, EngineSpec),
    pub candidate: (String, EngineSpec),
    pub options: FlightOptions,
    pub config: Config,
}

/// The process-wide stop flag, raised by Ctrl-C.
fn stop_flag() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // Without a handler (another one is installed) Ctrl-C simply ends the
        // process; the journal is intact either way.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

/// The key that seals the run's digests: `SQLFLIGHT_DIGEST_KEY`, else the
/// config's `flight.digest_key_file` (relative to the config); none: unkeyed.
fn digest_key(cfg: &Config, file: Option<&str>) -> anyhow::Result<Option<sqlflight_diffing::DigestKey>> {
    if let Some(v) = std::env::var_os("SQLFLIGHT_DIGEST_KEY").filter(|v| !v.is_empty()) {
        return Ok(Some(sqlflight_diffing::DigestKey::derive(v.as_encoded_bytes())));
    }
    let Some(f) = file else { return Ok(None) };
    let path = cfg.resolve(f);
    let secret =
        std::fs::read(&path).with_context(|| format!("flight.digest_key_file: cannot read {}", path.display()))?;
    let secret = secret.trim_ascii();
    if secret.is_empty() {
        anyhow::bail!(
            "flight.digest_key_file: {} is empty; put a secret in it (e.g. `openssl rand -hex 32`)",
            path.display()
        );
    }
    Ok(Some(sqlflight_diffing::DigestKey::derive(secret)))
}

pub fn resolve(args: &FlightArgs) -> anyhow::Result<FlightJob> {
    let r = resolve_run(&args.run, "flight")?;
    let spec = r.config.file.flight.clone().unwrap_or_default();
    let cfg = &r.config;
    let timeout = match args.timeout {
        Some(t) => t,
        None => cfg
            .duration("timeout", spec.timeout.as_deref())?
            .unwrap_or(DEFAULT_TIMEOUT),
    };
    let memory_limit = match args.memory_limit {
        Some(m) => Some(m),
        None => cfg.size("memory_limit", spec.memory_limit.as_deref())?,
    };
    let budget = match args.budget {
        Some(b) => Some(b),
        None => cfg.duration("budget", spec.budget.as_deref())?,
    };
    let accepted = match (&args.accepted, &spec.accepted) {
        (Some(p), _) => load_accepted(p)?,
        (None, Some(p)) => {
            load_accepted(&cfg.resolve(p)).map_err(|e| cfg.locate_unplaced(e, &["flight", "accepted"]))?
        }
        (None, None) => Vec::new(),
    };
    let digest_key = digest_key(cfg, spec.digest_key_file.as_deref())?;
    let snapshot = match &args.snapshot {
        None => None,
        Some(p) => {
            let (m, o) =
                sqlflight_runs::read_run(p).with_context(|| format!("reading the snapshot {}", p.display()))?;
            let snap = sqlflight_flighting::Snapshot::from_run(&m, o, digest_key.as_ref().map(|k| k.id()).as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            if snap.corpus_hash != r.corpus.hash {
                anyhow::bail!(
                    "{}: the snapshot was made with a different corpus (its content hash differs)",
                    p.display()
                );
            }
            Some(Arc::new(snap))
        }
    };
    let stop = stop_flag();
    stop.store(false, Ordering::SeqCst);
    let options = FlightOptions {
        out: r.out,
        jobs: args.run.jobs.or(spec.max_concurrency).unwrap_or(1).max(1),
        partition: args.run.partition,
        resume: args.run.resumes(),
        repeat: args.repeat.or(spec.repeat).unwrap_or(DEFAULT_REPEAT).max(1),
        timing: !args.results_only && spec.timing.unwrap_or(true),
        limits: ExecLimits { timeout, memory_limit },
        budget,
        reruns: args.reruns.or(spec.reruns).unwrap_or(2),
        tolerance: spec.tolerance.unwrap_or_default(),
        perf: spec.perf.unwrap_or_default(),
        accepted,
        dialect: r.corpus.manifest.dialect.clone(),
        config: r.config_json,
        stop,
        snapshot,
        dialect_failures: r.config.file.dialect_failures,
        digest_key,
    };
    Ok(FlightJob {
        corpus: r.corpus,
        catalog: r.catalog,
        baseline: r.baseline,
        candidate: r.candidate,
        options,
        config: r.config,
    })
}

/// Builds both engines, runs the flight with progress, writes `report.md`.
pub fn execute(job: &FlightJob, ui: UiMode) -> anyhow::Result<(FlightSummary, PathBuf)> {
    let (baseline, candidate) = match &job.options.snapshot {
        Some(snap) => (
            snap.baseline_engine(),
            make_engine(&job.config, &job.candidate, &job.catalog)?,
        ),
        None => make_engines(&job.config, &job.baseline, &job.candidate, &job.catalog)?,
    };
    let progress = RunProgress::new(ui, format!("{} flight", job.corpus.manifest.name));
    let summary = run_flight(&job.corpus, baseline, candidate, &job.options, &progress)
        .with_context(|| format!("flight into {}", job.options.out.display()))?;
    let view = RunView {
        manifest: summary.manifest.clone(),
        outcomes: summary.outcomes.clone(),
    };
    let report = write_markdown(&summary.dir, &view)?;
    Ok((summary, report))
}

pub fn run(args: &FlightArgs, cli: &Cli) -> anyhow::Result<u8> {
    let job = resolve(args)?;
    let (summary, report) = execute(&job, UiMode::detect(cli.quiet, cli.json))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&summary, &report))?);
    } else if !cli.quiet {
        print_summary(&summary, &report);
    }
    Ok(exit_code(&summary))
}

pub fn exit_code(s: &FlightSummary) -> u8 {
    if s.manifest.stopped_reason == Some(sqlflight_diffing::StopReason::Interrupted) {
        EXIT_ERROR
    } else if s.regressions() > 0 {
        EXIT_REGRESSION
    } else {
        EXIT_OK
    }
}

/// The human summary of one flight.
pub fn print_summary(s: &FlightSummary, report: &Path) {
    print!("{}", Summary::of(s, report).text());
}

/// The `--json` summary of one flight.
pub fn summary_json(s: &FlightSummary, report: &Path) -> serde_json::Value {
    serde_json::to_value(Summary::of(s, report)).unwrap_or_default()
}
