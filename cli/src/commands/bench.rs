//! `sqlflight bench playback`: sqlflight's playback against the physical limit,
//! DataFusion's own planner called in a bare loop on the same queries, measured
//! side by side in one process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sqlflight_corpora::bundled::Workload;
use sqlflight_corpora::{Catalog, Corpus, QueryRecord};
use sqlflight_engines::datafusion_engine::DataFusionEngine;
use sqlflight_engines::{Engine, EngineSpec};
use sqlflight_playback::{NoProgress, PlaybackOptions, run_playback};

use super::demo::DEMO_ENGINES;
use crate::config::Config;
use crate::{Cli, EXIT_OK};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Playback of the bundled TPC-H and TPC-DS corpora vs a bare planner loop.
    Playback(BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Job counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub jobs: Vec<usize>,
}

fn engine(name: &str, spec: &EngineSpec, catalog: &Catalog) -> anyhow::Result<DataFusionEngine> {
    let EngineSpec::Datafusion {
        settings,
        disable_rules,
        setup,
    } = spec;
    Ok(DataFusionEngine::new(name, settings, disable_rules, setup, catalog)?)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One workload's queries and catalog.
struct Load {
    corpus: Corpus,
    base: Arc<DataFusionEngine>,
    cand: Arc<DataFusionEngine>,
}

fn bare(loads: &[Load], threads: usize) -> anyhow::Result<Duration> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let work: Vec<(&Load, &QueryRecord)> = loads
        .iter()
        .flat_map(|l| l.corpus.records.iter().map(move |r| (l, r)))
        .collect();
    let t = Instant::now();
    pool.install(|| {
        work.par_iter().with_max_len(1).for_each(|(l, r)| {
            // Errors are part of the workload (the same ones playback records).
            let _ = l.base.plan_bare(&r.sql);
            let _ = l.cand.plan_bare(&r.sql);
        })
    });
    Ok(t.elapsed())
}

fn sqlflight(loads: &[Load], jobs: usize) -> anyhow::Result<Duration> {
    let tmp = tempfile::tempdir()?;
    let t = Instant::now();
    for (i, l) in loads.iter().enumerate() {
        let opts = PlaybackOptions {
            out: tmp.path().join(format!("run{i}")),
            jobs,
            partition: None,
            resume: false,
            timeout: Duration::from_secs(60),
            config: serde_json::Value::Null,
        };
        let b: Arc<dyn Engine> = l.base.clone();
        let c: Arc<dyn Engine> = l.cand.clone();
        run_playback(&l.corpus, b, c, &opts, &NoProgress)?;
    }
    Ok(t.elapsed())
}

pub fn run(cmd: &BenchCmd, cli: &Cli) -> anyhow::Result<u8> {
    let BenchCmd::Playback(args) = cmd;
    let cfg = Config::parse(std::path::Path::new("<demo profiles>"), DEMO_ENGINES)?;
    let (Some(bspec), Some(cspec)) = (cfg.file.engines.get("baseline"), cfg.file.engines.get("candidate")) else {
        anyhow::bail!("demo profiles are missing baseline/candidate");
    };
    let mut loads = Vec::new();
    for w in Workload::ALL {
        let corpus = w.corpus()?;
        let catalog = Catalog::from_ddl(
            format!("<bundled:{}>", w.name()),
            corpus.schema.clone().unwrap_or_default(),
        );
        loads.push(Load {
            base: Arc::new(engine("baseline", bspec, &catalog)?),
            cand: Arc::new(engine("candidate", cspec, &catalog)?),
            corpus,
        });
    }
    let queries: usize = loads.iter().map(|l| l.corpus.records.len()).sum();
    let repeat = args.repeat.max(1);
    if !cli.quiet && !cli.json {
        eprintln!("warming up ({queries} queries, 2 profiles)...");
    }
    bare(&loads, 1)?;
    sqlflight(&loads, 1)?;
    let mut rows = Vec::new();
    for &jobs in &args.jobs {
        let jobs = jobs.max(1);
        let mut tb = Vec::new();
        let mut ts = Vec::new();
        // Interleave the two so drift in machine load hits both alike.
        for _ in 0..repeat {
            tb.push(bare(&loads, jobs)?);
            ts.push(sqlflight(&loads, jobs)?);
        }
        let (b, s) = (median(tb), median(ts));
        rows.push((jobs, b, s));
    }
    let s1 = rows.iter().find(|r| r.0 == 1).map(|r| r.2);
    let out: Vec<serde_json::Value> = rows
        .iter()
        .map(|(jobs, b, s)| {
            serde_json::json!({
                "jobs": jobs,
                "queries": queries,
                "bare_planner_s": b.as_secs_f64(),
                "sqlflight_s": s.as_secs_f64(),
                "sqlflight_queries_per_s": queries as f64 / s.as_secs_f64(),
                "ratio_to_bare": s.as_secs_f64() / b.as_secs_f64(),
                "speedup_vs_1_job": s1.map(|s1| s1.as_secs_f64() / s.as_secs_f64()),
            })
        })
        .collect();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("playback of {queries} queries (TPC-H + TPC-DS), baseline + candidate profiles, median of {repeat}:");
        println!(
            "{:>5} {:>14} {:>14} {:>10} {:>16} {:>12}",
            "jobs", "bare planner", "sqlflight", "queries/s", "ratio to bare", "speed-up"
        );
        for v in &out {
            println!(
                "{:>5} {:>13.3}s {:>13.3}s {:>10.1} {:>16.3} {:>12}",
                v["jobs"],
                v["bare_planner_s"].as_f64().unwrap_or(0.0),
                v["sqlflight_s"].as_f64().unwrap_or(0.0),
                v["sqlflight_queries_per_s"].as_f64().unwrap_or(0.0),
                v["ratio_to_bare"].as_f64().unwrap_or(0.0),
                v["speedup_vs_1_job"]
                    .as_f64()
                    .map_or("-".into(), |x| format!("{x:.2}x")),
            );
        }
    }
    Ok(EXIT_OK)
}
