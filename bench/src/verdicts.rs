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
//! Each of `--rounds` rounds flies both procedures, in ABBA order over the rounds
//! (adaptive first, then fixed first, ...), so neither always meets the warmer or
//! the busier machine; the figures are the sums over the rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use sqlflight_corpora::bundled::Workload;
use sqlflight_diffing::PerfVerdict;
use sqlflight_engines::Engine;
use sqlflight_runs::NoProgress;

use crate::{Ctx, EXIT_OK, emit, engine, tpch_catalog};

/// `bench verdicts`.
#[derive(Debug, clap::Args)]
pub struct VerdictsBenchArgs {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Rounds of both procedures (sums over them; alternating which goes first).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
}

/// What flights decided and what they cost (summed over rounds).
#[derive(Default)]
struct Decisions {
    wall_s: f64,
    timed_runs: usize,
    verdicts: BTreeMap<String, usize>,
    regressions: BTreeSet<String>,
    /// Blocks each query took (with its confirmation), for the queries past three.
    long: BTreeMap<String, u32>,
    /// `slower`/`faster` verdicts with their ratio and reason (false alarms in A/A).
    changes: BTreeMap<String, String>,
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
        ..Decisions::default()
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
            if p.pairs > 3 {
                d.long.insert(o.query_id.clone(), p.pairs);
            }
            if p.counts() {
                d.regressions.insert(o.query_id.clone());
            }
            if matches!(p.verdict, PerfVerdict::Slower | PerfVerdict::Faster) {
                d.changes.insert(
                    o.query_id.clone(),
                    format!("{:.2}x: {}", p.ratio, p.reason.as_deref().unwrap_or("")),
                );
            }
        }
    }
    Ok(d)
}

impl Decisions {
    /// Adds another round's flight.
    fn add(&mut self, other: Decisions) {
        self.wall_s += other.wall_s;
        self.timed_runs += other.timed_runs;
        for (k, v) in other.verdicts {
            *self.verdicts.entry(k).or_default() += v;
        }
        self.regressions.extend(other.regressions);
        self.changes.extend(other.changes);
        for (k, v) in other.long {
            let blocks = self.long.entry(k).or_default();
            *blocks = (*blocks).max(v);
        }
    }
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
            eprintln!("{name}: {} rounds of adaptive and fixed", args.rounds);
        }
        let (mut adaptive, mut fixed) = (Decisions::default(), Decisions::default());
        let mut missed = BTreeSet::new();
        for round in 0..args.rounds {
            let (a, f) = if round % 2 == 0 {
                let a = fly(&corpus, &b, &c, false)?;
                (a, fly(&corpus, &b, &c, true)?)
            } else {
                let f = fly(&corpus, &b, &c, true)?;
                (fly(&corpus, &b, &c, false)?, f)
            };
            // A miss: a regression the fixed procedure found in a round and the
            // adaptive one did not, in the same round.
            missed.extend(f.regressions.difference(&a.regressions).cloned());
            adaptive.add(a);
            fixed.add(f);
        }
        let alarms = |d: &Decisions| {
            if name == "a_a" {
                d.verdicts.get("slower").copied().unwrap_or(0) + d.verdicts.get("faster").copied().unwrap_or(0)
            } else {
                0
            }
        };
        let alarm_list = |d: &Decisions| {
            if name == "a_a" {
                d.changes.clone()
            } else {
                BTreeMap::new()
            }
        };
        let side = |d: &Decisions| {
            serde_json::json!({
                "wall_s": d.wall_s,
                "timed_runs": d.timed_runs,
                "verdicts": d.verdicts,
                "regressions": d.regressions,
                "false_alarms": alarms(d),
                "false_alarm_queries": alarm_list(d),
                "queries_past_three_blocks": d.long,
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
            "TPC-H SF {} flights: adaptive verdicts vs a fixed 3 ABBA blocks (6 timed runs a side), same machine, one run of {} rounds (sums):",
            args.scale, args.rounds
        ),
        &v,
    )?;
    Ok(EXIT_OK)
}
