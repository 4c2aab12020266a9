//! `sqlflight demo`: the zero-config tour on the embedded DataFusion.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlflight_corpora::bundled::Workload;
use sqlflight_corpora::tpch::ensure_tpch_data;
use sqlflight_diffing::OutcomeClass;
use sqlflight_playback::{PlaybackOptions, PlaybackSummary};
use sqlflight_reports::markdown;

use super::playback::{DEFAULT_TIMEOUT, PlaybackJob, execute, summary_json};
use crate::config::{Config, build_catalog};
use crate::progress::UiMode;
use crate::{Cli, EXIT_OK};

/// The demo's two profiles. The candidate prefers sort-merge joins over hash joins
/// and drops the logical limit push-down: both change plans in explainable ways.
/// Partitions are pinned so the plans are the same on every machine.
pub const DEMO_ENGINES: &str = r#"# Two profiles of the embedded DataFusion.
engines:
  baseline:
    kind: datafusion
    settings:
      datafusion.execution.target_partitions: "4"
  candidate:
    kind: datafusion
    settings:
      datafusion.execution.target_partitions: "4"
      datafusion.optimizer.prefer_hash_join: "false"
    disable_rules: [ push_down_limit ]
baseline: baseline
candidate: candidate
"#;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's runs and report [default: sqlflight-runs/demo-<time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TPC-H scale factor of the generated data.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Worker threads [default: all cores].
    #[arg(long, short = 'j', value_parser = crate::config::flags::positive_count)]
    pub jobs: Option<usize>,
    /// Cache for generated data [default: $SQLFLIGHT_CACHE or ~/.cache/sqlflight].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Timed runs per side in the TPC-H flight.
    #[arg(long, default_value_t = super::flight::DEFAULT_REPEAT, value_parser = crate::config::flags::positive_count)]
    pub repeat: usize,
    /// Playback only: skip the flight.
    #[arg(long)]
    pub no_flight: bool,
}

/// The demo config for one workload, as YAML a user can rerun with
/// `sqlflight playback -c`.
fn workload_config(w: Workload, tables: &[(String, PathBuf)]) -> String {
    let mut y = format!(
        "# Written by `sqlflight demo`; rerun with: sqlflight playback -c <this file>\ncorpus: bundled:{}\n",
        w.name()
    );
    if !tables.is_empty() {
        y.push_str("catalog:\n  tables:\n");
        for (t, p) in tables {
            y.push_str(&format!(
                "    {t}: {}\n",
                serde_json::to_string(&p.display().to_string()).unwrap_or_default()
            ));
        }
    }
    y.push_str(DEMO_ENGINES);
    y.push_str("playback: { timeout: 60s }\n");
    y
}

pub fn run(args: &DemoArgs, cli: &Cli) -> anyhow::Result<u8> {
    let ui = UiMode::detect(cli.quiet, cli.json);
    let say = |s: String| {
        if ui != UiMode::Quiet {
            eprintln!("{s}");
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("sqlflight-runs").join(format!("demo-{}", super::stamp())));
    let cache = args.cache_dir.clone().unwrap_or_else(super::cache_dir);
    say(format!(
        "TPC-H data at scale factor {} (cache: {})",
        args.scale,
        cache.display()
    ));
    let data = ensure_tpch_data(&cache.join("data"), args.scale).context("generating TPC-H data")?;
    say(format!(
        "  {} {}",
        if data.generated { "generated" } else { "reused" },
        data.dir.display()
    ));
    let jobs = args.jobs.unwrap_or_else(super::default_jobs).max(1);
    let (summaries, tpch) = play_workloads(&out, &data.tables, jobs, ui)?;
    // Flight: TPC-H on the generated data (TPC-DS has no data generator here).
    let flight = match tpch {
        Some((cfg, catalog)) if !args.no_flight => Some(fly_tpch(&out, cfg, catalog, args.repeat, ui)?),
        _ => None,
    };
    let report = out.join("report.md");
    let md = demo_markdown(&out, &summaries, flight.as_ref());
    std::fs::write(&report, md).with_context(|| format!("writing {}", report.display()))?;

    if cli.json {
        let runs: Vec<serde_json::Value> = summaries.iter().map(|(s, r)| summary_json(s, r)).collect();
        let flight_json = flight.as_ref().map(|(f, r)| super::flight::summary_json(f, r));
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"report": report, "runs": runs, "flight": flight_json}))?
        );
    } else if !cli.quiet {
        print_table(&summaries, flight.as_ref());
        println!("report: {}", report.display());
    }
    // The demo's findings are its point, not a failure: it exits 0 when it ran to
    // the end. `playback` and `flight` are the commands that gate (0/1/2).
    Ok(EXIT_OK)
}

/// Playback of the bundled TPC-H and TPC-DS corpora; returns their summaries with
/// report paths, and TPC-H's config and catalog for the flight.
#[allow(clippy::type_complexity)]
fn play_workloads(
    out: &Path,
    tpch_tables: &[(String, PathBuf)],
    jobs: usize,
    ui: UiMode,
) -> anyhow::Result<(
    Vec<(PlaybackSummary, PathBuf)>,
    Option<(Config, sqlflight_corpora::Catalog)>,
)> {
    let mut summaries: Vec<(PlaybackSummary, PathBuf)> = Vec::new();
    // TPC-H's config and catalog, reused by the flight.
    let mut tpch: Option<(Config, sqlflight_corpora::Catalog)> = None;
    for w in Workload::ALL {
        let corpus = w.corpus()?;
        let tables = if w == Workload::Tpch {
            tpch_tables.to_vec()
        } else {
            Vec::new()
        };
        let dir = out.join(w.name());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cfg_path = out.join(format!("{}.yaml", w.name()));
        let yaml = workload_config(w, &tables);
        std::fs::write(&cfg_path, &yaml).with_context(|| format!("writing {}", cfg_path.display()))?;
        let cfg = Config::parse(&cfg_path, &yaml)?;
        let catalog = build_catalog(&cfg, &corpus)?;
        if w == Workload::Tpch {
            tpch = Some((cfg.clone(), catalog.clone()));
        }
        let job = PlaybackJob {
            corpus,
            catalog,
            baseline: profile(&cfg, "baseline")?,
            candidate: profile(&cfg, "candidate")?,
            options: PlaybackOptions {
                out: dir,
                jobs,
                partition: None,
                resume: false,
                timeout: cfg.timeout()?.unwrap_or(DEFAULT_TIMEOUT).max(Duration::from_secs(1)),
                config: serde_json::to_value(&cfg.file)?,
                dialect_failures: false,
                plan_rechecks: sqlflight_playback::DEFAULT_PLAN_RECHECKS,
            },
            config: cfg,
        };
        summaries.push(execute(&job, ui)?);
    }
    Ok((summaries, tpch))
}

/// The TPC-H flight on the generated data.
fn fly_tpch(
    out: &Path,
    cfg: Config,
    catalog: sqlflight_corpora::Catalog,
    repeat: usize,
    ui: UiMode,
) -> anyhow::Result<(sqlflight_flighting::FlightSummary, PathBuf)> {
    let corpus = Workload::Tpch.corpus()?;
    let job = super::flight::FlightJob {
        options: sqlflight_flighting::FlightOptions {
            out: out.join("tpch-flight"),
            repeat: repeat.max(1),
            limits: sqlflight_engines::ExecLimits {
                timeout: super::flight::DEFAULT_TIMEOUT,
                memory_limit: None,
            },
            dialect: corpus.manifest.dialect.clone(),
            config: serde_json::to_value(&cfg.file)?,
            ..Default::default()
        },
        corpus,
        catalog,
        baseline: profile(&cfg, "baseline")?,
        candidate: profile(&cfg, "candidate")?,
        config: cfg,
    };
    super::flight::execute(&job, ui)
}

/// The demo's report: what was run, then each run's report as a section.
fn demo_markdown(
    out: &Path,
    summaries: &[(PlaybackSummary, PathBuf)],
    flight: Option<&(sqlflight_flighting::FlightSummary, PathBuf)>,
) -> String {
    let mut md = String::from(
        "# sqlflight demo\n\nTwo profiles of the embedded DataFusion: the candidate prefers sort-merge joins (`prefer_hash_join=false`) and drops the `push_down_limit` optimizer rule. Playback compiles TPC-H and TPC-DS; flight runs TPC-H on generated data and compares result digests and timings. Rerun with `sqlflight playback -c <out>/tpch.yaml --out <dir>` or `sqlflight flight -c <out>/tpch.yaml --out <dir>`.\n\n",
    );
    for (s, r) in summaries {
        md.push_str(&format!(
            "- {}: [{}]({})\n",
            s.manifest.corpus.name,
            r.display(),
            r.strip_prefix(out).unwrap_or(r).display()
        ));
    }
    let mut views: Vec<sqlflight_reports::RunView> = summaries
        .iter()
        .map(|(s, _)| sqlflight_reports::RunView {
            manifest: s.manifest.clone(),
            outcomes: s.outcomes.clone(),
        })
        .collect();
    if let Some((f, r)) = flight {
        md.push_str(&format!(
            "- tpch flight: [{}]({})\n",
            r.display(),
            r.strip_prefix(out).unwrap_or(r).display()
        ));
        views.push(sqlflight_reports::RunView {
            manifest: f.manifest.clone(),
            outcomes: f.outcomes.clone(),
        });
    }
    for view in &views {
        md.push_str("\n---\n\n");
        md.push_str(&markdown::run_markdown_at(view, None, 2));
    }
    md
}

/// A demo profile by name.
fn profile(cfg: &Config, name: &str) -> anyhow::Result<(String, sqlflight_engines::EngineSpec)> {
    let spec = cfg.file.engines.get(name).cloned().context("demo profile missing")?;
    Ok((name.to_string(), spec))
}

fn print_table(
    summaries: &[(PlaybackSummary, PathBuf)],
    flight: Option<&(sqlflight_flighting::FlightSummary, PathBuf)>,
) {
    println!();
    println!("baseline:  {}", summaries[0].0.manifest.baseline.describe());
    println!("candidate: {}", summaries[0].0.manifest.candidate.describe());
    println!();
    let mut columns: Vec<(String, &[sqlflight_diffing::OutcomeRecord])> = summaries
        .iter()
        .map(|(s, _)| (format!("{} playback", s.manifest.corpus.name), s.outcomes.as_slice()))
        .collect();
    if let Some((f, _)) = flight {
        columns.push((format!("{} flight", f.manifest.corpus.name), f.outcomes.as_slice()));
    }
    print!("{:<24}", "outcome");
    for (name, _) in &columns {
        print!(" {name:>15}");
    }
    println!();
    for class in OutcomeClass::ALL {
        let counts: Vec<usize> = columns
            .iter()
            .map(|(_, o)| o.iter().filter(|o| o.class == class).count())
            .collect();
        if counts.iter().all(|&n| n == 0) {
            continue;
        }
        print!("{:<24}", class.as_str());
        for n in counts {
            print!(" {n:>15}");
        }
        println!("{}", if class.is_regression() { "  <- regression" } else { "" });
    }
    for (s, r) in summaries {
        println!();
        print!(
            "{}",
            sqlflight_reports::summary::facts_text(&s.outcomes, &format!("{}: ", s.manifest.corpus.name))
        );
        for o in s.outcomes.iter().filter(|o| o.is_regression()).take(10) {
            println!("  regression: {} {}", o.class, o.query_id);
        }
        println!("  run report: {}", r.display());
    }
    if let Some((f, r)) = flight {
        println!(
            "\n{} flight: results compared by digest, timings over repeated runs",
            f.manifest.corpus.name
        );
        if let Some(p) = sqlflight_reports::perf::perf_summary(&f.outcomes) {
            println!("  candidate/baseline time: {}", p.describe());
        }
        for o in f.outcomes.iter().filter(|o| o.is_regression()).take(10) {
            let what = match (&o.detail, o.flight.as_ref().and_then(|f| f.perf.as_ref())) {
                (Some(d), _) => format!("{}({d})", o.class),
                (None, Some(p)) if p.counts() => p.describe(),
                _ => o.class.to_string(),
            };
            println!("  regression: {} {what}", o.query_id);
        }
        println!("  run report: {}", r.display());
    }
    println!();
}
