//! `bench verdicts`: the adaptive performance procedure against a fixed number
//! of timed runs, on the same machine in one run, with the decisions of each.
//!
//! Two flights of TPC-H on the embedded DataFusion, each measured both ways:
//! A/A (the demo's baseline profile on both sides: every `slower`/`faster` is a
//! false alarm) and the demo's two profiles (its sort-merge joins are real
//! slowdowns: a regression the fixed procedure finds and the adaptive one does
//! not is a miss). Fixed: three ABBA blocks (six timed runs a side, the old
//! `--repeat 5` rounded up to whole blocks) judged at one look by the same test;
//! adaptive: the defaults (`repeat: 2`, looks until decided, cap `max_pairs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use sqlflight_corpora::bundled::Workload;
use sqlflight_engines::Engine;
use sqlflight_runs::NoProgress;

use crate::{Ctx, EXIT_OK, emit, engine, tpch_catalog};

/// `bench verdicts`.
#[derive(Debug, clap::Args)]
pub struct VerdictsBenchArgs {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
}

/// What one flight decided and what it cost.
struct Decisions {
    wall_s: f64,
    timed_runs: usize,
    verdicts: BTreeMap<String, usize>,
    regressions: BTreeSet<String>,
}

fn fly(
    corpus: &sqlflight_corpora::Corpus,
    b: &Arc<dyn Engine>,
    c: &Arc<dyn Engine>,
    fixed: bool,
) -> anyhow::Result<Decisions> {
    let tmp = tempfile::tempdir()?;
    let mut opts = sqlflight_flighting::FlightOptions {
        out: tmp.path().join("run"),
        ..Default::default()
    };
    if fixed {
        // One look after exactly three blocks.
        opts.repeat = 6;
        opts.perf.max_pairs = 3;
    }
    let t = Instant::now();
    let run = sqlflight_flighting::run_flight(corpus, b.clone(), c.clone(), &opts, &NoProgress)?;
    let wall_s = t.elapsed().as_secs_f64();
    let mut d = Decisions {
        wall_s,
        timed_runs: 0,
        verdicts: BTreeMap::new(),
        regressions: BTreeSet::new(),
    };
    for o in &run.outcomes {
        let Some(f) = &o.flight else { continue };
        d.timed_runs += f.baseline.times_ms.len() + f.candidate.times_ms.len();
        if let Some(p) = &f.perf {
            // The verdict's name as outcome JSON writes it (`too_short`, ...).
            let name = serde_json::to_value(p.verdict)?
                .as_str()
                .unwrap_or("unknown")
                .to_string();
            *d.verdicts.entry(name).or_default() += 1;
            if p.counts() {
                d.regressions.insert(o.query_id.clone());
            }
        }
    }
    Ok(d)
}

/// Runs the benchmark.
pub fn bench_verdicts(args: &VerdictsBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let [bspec, cspec] = &cli.demo_engines;
    let catalog = tpch_catalog(cli, args.scale)?;
    let corpus = Workload::Tpch.corpus()?;
    let mut out = serde_json::Map::new();
    for (name, cand_spec) in [("a_a", bspec), ("demo", cspec)] {
        let b: Arc<dyn Engine> = Arc::new(engine("baseline", bspec, &catalog)?);
        let c: Arc<dyn Engine> = Arc::new(engine("candidate", cand_spec, &catalog)?);
        if !cli.quiet {
            eprintln!("{name}: adaptive, then fixed");
        }
        let adaptive = fly(&corpus, &b, &c, false)?;
        let fixed = fly(&corpus, &b, &c, true)?;
        let alarms = |d: &Decisions| {
            if name == "a_a" {
                d.verdicts.get("slower").copied().unwrap_or(0) + d.verdicts.get("faster").copied().unwrap_or(0)
            } else {
                0
            }
        };
        let missed: Vec<&String> = fixed.regressions.difference(&adaptive.regressions).collect();
        let side = |d: &Decisions| {
            serde_json::json!({
                "wall_s": d.wall_s,
                "timed_runs": d.timed_runs,
                "verdicts": d.verdicts,
                "regressions": d.regressions,
                "false_alarms": alarms(d),
            })
        };
        out.insert(
            name.into(),
            serde_json::json!({
                "adaptive": side(&adaptive),
                "fixed_6_runs_a_side": side(&fixed),
                "wall_time_saved": 1.0 - adaptive.wall_s / fixed.wall_s,
                "regressions_missed_by_adaptive": missed,
            }),
        );
    }
    let v = serde_json::Value::Object(out);
    emit(
        cli,
        &format!(
            "TPC-H SF {} flights: adaptive verdicts vs a fixed 3 ABBA blocks (6 timed runs a side), same machine, one run:",
            args.scale
        ),
        &v,
    )?;
    Ok(EXIT_OK)
}
