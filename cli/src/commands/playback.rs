//! `sqlflight playback`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlflight_corpora::{Catalog, Corpus};
use sqlflight_diffing::PartitionSpec;
use sqlflight_engines::{BuildError, Engine, EngineSpec, build_engine};
use sqlflight_playback::{PlaybackOptions, PlaybackSummary, run_playback};
use sqlflight_reports::summary::Summary;
use sqlflight_reports::{RunView, write_markdown};

use crate::config::{Config, build_catalog, load_corpus};
use crate::progress::{RunProgress, UiMode};
use crate::{Cli, EXIT_OK, EXIT_REGRESSION};

/// Default per-compile time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags shared by `playback` and `flight`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Config file (corpus, catalog, engines).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Corpus directory, or bundled:tpch / bundled:tpcds (overrides the config).
    #[arg(long)]
    pub corpus: Option<String>,
    /// Baseline engine profile name from the config [default: baseline].
    #[arg(long)]
    pub baseline: Option<String>,
    /// Candidate engine profile name from the config [default: candidate].
    #[arg(long)]
    pub candidate: Option<String>,
    /// Run directory [default: sqlflight-runs/<corpus>-<kind>-<time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only the templates in partition K of N (by template hash), e.g. 1/4.
    #[arg(long)]
    pub partition: Option<PartitionSpec>,
    /// Worker threads [playback default: all cores; flight default: 1].
    #[arg(long, short = 'j', value_parser = crate::config::flags::positive_count)]
    pub jobs: Option<usize>,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlaybackArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Per-compile time limit, e.g. 30s [default: 60s].
    #[arg(long, value_parser = crate::config::flags::positive_duration)]
    pub timeout: Option<Duration>,
}

/// The parts of a run both drivers need, resolved from flags and config.
pub struct Resolved {
    pub corpus: Corpus,
    pub catalog: Catalog,
    pub baseline: (String, EngineSpec),
    pub candidate: (String, EngineSpec),
    pub out: PathBuf,
    pub config: Config,
    /// The configuration as stored in the run manifest.
    pub config_json: serde_json::Value,
}

/// Resolves the shared flags and the config.
pub fn resolve_run(args: &RunArgs, kind: &str) -> anyhow::Result<Resolved> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let corpus = match (&args.corpus, &cfg.file.corpus) {
        (Some(c), _) => load_corpus(c, &Config::default())?,
        (None, Some(c)) => load_corpus(c, &cfg).map_err(|e| {
            anyhow::Error::new(cfg.error_at(
                c,
                format!("{e:#}"),
                "point `corpus:` at a corpus directory or bundled:tpch / bundled:tpcds",
            ))
        })?,
        (None, None) => anyhow::bail!("no corpus: pass --corpus DIR (or bundled:tpch) or set `corpus:` in the config"),
    };
    let catalog = build_catalog(&cfg, &corpus)?;
    let baseline = pick_engine(&cfg, args.baseline.as_ref(), cfg.file.baseline.as_ref(), "baseline")?;
    let candidate = pick_engine(&cfg, args.candidate.as_ref(), cfg.file.candidate.as_ref(), "candidate")?;
    if args.resume && args.out.is_none() && !crate::supervise::restarted() {
        anyhow::bail!("--resume needs --out: the run directory to continue");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("sqlflight-runs").join(format!("{}-{kind}-{}", corpus.manifest.name, super::stamp()))
    });
    crate::supervise::note_run_dir(&out);
    let mut config_json = serde_json::to_value(&cfg.file)?;
    if let Some(obj) = config_json.as_object_mut() {
        obj.insert(
            "config_file".into(),
            serde_json::json!(cfg.path.as_ref().map(|p| p.display().to_string())),
        );
        obj.insert("baseline".into(), serde_json::json!(baseline.0));
        obj.insert("candidate".into(), serde_json::json!(candidate.0));
    }
    Ok(Resolved {
        corpus,
        catalog,
        baseline,
        candidate,
        out,
        config: cfg,
        config_json,
    })
}

impl RunArgs {
    /// Whether to continue the run in `--out`: asked for, or a supervised restart
    /// after the run process died.
    pub fn resumes(&self) -> bool {
        self.resume || crate::supervise::restarted()
    }
}

/// Everything a playback needs, resolved.
pub struct PlaybackJob {
    pub corpus: Corpus,
    pub catalog: Catalog,
    pub baseline: (String, EngineSpec),
    pub candidate: (String, EngineSpec),
    pub options: PlaybackOptions,
    /// The config, to locate engine errors in it.
    pub config: Config,
}

/// Builds both engines, runs the playback with progress, writes `report.md`.
pub fn execute(job: &PlaybackJob, ui: UiMode) -> anyhow::Result<(PlaybackSummary, PathBuf)> {
    let (baseline, candidate) = make_engines(&job.config, &job.baseline, &job.candidate, &job.catalog)?;
    let progress = RunProgress::new(ui, job.corpus.manifest.name.clone());
    let summary = run_playback(&job.corpus, baseline, candidate, &job.options, &progress)
        .with_context(|| format!("playback into {}", job.options.out.display()))?;
    let view = RunView {
        manifest: summary.manifest.clone(),
        outcomes: summary.outcomes.clone(),
    };
    let report = write_markdown(&summary.dir, &view)?;
    Ok((summary, report))
}

/// Builds the two engines at once: a worker engine's start (a JVM, a session,
/// its tables) takes seconds, and the two are independent (venvs and converted
/// files are written to a temporary name and renamed into place). The
/// baseline's error is reported first. Server profiles (PostgreSQL, MySQL)
/// are built one after the other: both may load the catalog into one database.
pub fn make_engines(
    cfg: &Config,
    baseline: &(String, EngineSpec),
    candidate: &(String, EngineSpec),
    catalog: &Catalog,
) -> anyhow::Result<(Arc<dyn Engine>, Arc<dyn Engine>)> {
    // Server profiles load the catalog into a database both sides may share:
    // one after the other.
    let server = |spec: &EngineSpec| matches!(spec, EngineSpec::Postgres(_) | EngineSpec::Mysql(_));
    if server(&baseline.1) || server(&candidate.1) {
        return Ok((
            make_engine(cfg, baseline, catalog)?,
            make_engine(cfg, candidate, catalog)?,
        ));
    }
    std::thread::scope(|s| {
        let c = s.spawn(|| make_engine(cfg, candidate, catalog));
        let b = make_engine(cfg, baseline, catalog);
        let c = c
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("building the candidate engine panicked")));
        Ok((b?, c?))
    })
}

pub fn make_engine(
    cfg: &Config,
    (name, spec): &(String, EngineSpec),
    catalog: &Catalog,
) -> anyhow::Result<Arc<dyn Engine>> {
    build_engine(name, spec, catalog).map_err(|e| {
        let (needle, fix) = match &e {
            BuildError::Setting { key, .. } => (
                key.clone(),
                "use a DataFusion config key and a value of its type (see DataFusion's configuration docs)",
            ),
            BuildError::UnknownRule { rule, .. } => (rule.clone(), "use one of the rule names the message lists"),
            BuildError::Catalog { .. } => ("catalog".to_string(), "fix the DDL or the table path the message names"),
            BuildError::Setup { statement, .. } => (statement.clone(), "fix or remove the setup statement"),
            BuildError::Other { .. } => (name.clone(), "see the message"),
            BuildError::Worker { .. } => (
                name.clone(),
                "see the message; docs/worker-protocol.md describes what a worker must do",
            ),
            BuildError::Provision { .. } => ("version".to_string(), "see the message"),
        };
        if cfg.path.is_some() {
            anyhow::Error::new(cfg.error_at(&needle, e.to_string(), fix))
        } else {
            anyhow::Error::new(e)
        }
    })
}

fn pick_engine(
    cfg: &Config,
    flag: Option<&String>,
    key: Option<&String>,
    default: &str,
) -> anyhow::Result<(String, EngineSpec)> {
    let name = flag.or(key).cloned().unwrap_or_else(|| default.to_string());
    match cfg.file.engines.get(&name) {
        Some(spec) => Ok((name, spec.clone())),
        None => {
            let known: Vec<&str> = cfg.file.engines.keys().map(String::as_str).collect();
            let fix = if known.is_empty() {
                "define engine profiles under `engines:` in a config passed with -c (see the README)".to_string()
            } else {
                format!("define it under `engines:`, or pick one of: {}", known.join(", "))
            };
            Err(cfg
                .error_at(
                    &name,
                    format!("engine profile `{name}` ({default}) is not defined"),
                    fix,
                )
                .into())
        }
    }
}

/// Resolves command-line arguments and config into a job.
pub fn resolve(args: &PlaybackArgs) -> anyhow::Result<PlaybackJob> {
    let r = resolve_run(&args.run, "playback")?;
    let pb = r.config.file.playback.clone().unwrap_or_default();
    let jobs = args.run.jobs.or(pb.jobs).unwrap_or_else(super::default_jobs).max(1);
    let timeout = match args.timeout {
        Some(t) => t,
        None => r.config.timeout()?.unwrap_or(DEFAULT_TIMEOUT),
    };
    Ok(PlaybackJob {
        corpus: r.corpus,
        catalog: r.catalog,
        baseline: r.baseline,
        candidate: r.candidate,
        options: PlaybackOptions {
            out: r.out,
            jobs,
            partition: args.run.partition,
            resume: args.run.resumes(),
            timeout,
            dialect_failures: r.config.file.dialect_failures,
            plan_rechecks: r
                .config
                .file
                .playback
                .as_ref()
                .and_then(|p| p.plan_rechecks)
                .unwrap_or(sqlflight_playback::DEFAULT_PLAN_RECHECKS),
            config: r.config_json,
        },
        config: r.config,
    })
}

pub fn run(args: &PlaybackArgs, cli: &Cli) -> anyhow::Result<u8> {
    let job = resolve(args)?;
    let (summary, report) = execute(&job, UiMode::detect(cli.quiet, cli.json))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&summary, &report))?);
    } else if !cli.quiet {
        print_summary(&summary, &report);
    }
    Ok(exit_code(&summary))
}

pub fn exit_code(s: &PlaybackSummary) -> u8 {
    if s.regressions() > 0 { EXIT_REGRESSION } else { EXIT_OK }
}

/// The human summary of one run.
pub fn print_summary(s: &PlaybackSummary, report: &Path) {
    print!("{}", Summary::of(s, report).text());
}

/// The `--json` summary of one run.
pub fn summary_json(s: &PlaybackSummary, report: &Path) -> serde_json::Value {
    serde_json::to_value(Summary::of(s, report)).unwrap_or_default()
}
