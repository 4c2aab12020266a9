//! # sqlflight-bench
//!
//! Every benchmark of sqlflight, run as `sqlflight bench <what>`: each capability
//! measured side by side, in one run, against a peer or the physical limit
//! (playback against DataFusion's bare planner loop, digests against the raw hash
//! and a sort-based comparison, flight against the engine's own execution, report
//! generation against reading the run, rollout lookups against the bare hash and
//! HTTP stack, workers against embedded engines, log ingest against
//! pt-query-digest). BENCHMARKS.md records the numbers and the commands.
//!
//! Main types: [`BenchCmd`] (the subcommands), [`Ctx`] (what the binary hands in).
//!
//! It must never be linked into a library's normal code paths: the hooks it uses
//! (`DataFusionEngine::plan_bare`, `corpora::synth`, `DigestBuilder::portable`)
//! exist only with the libraries' `bench` feature. It must never assert a time:
//! it reports ratios for people. The benchmarks that spawn processes spawn the
//! running executable, so they run from the `sqlflight` binary.

#![warn(missing_docs)]

pub mod corpus;
pub mod flink;
pub mod rollout;
pub mod spark;
pub mod verdicts;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sqlflight_corpora::bundled::Workload;
use sqlflight_corpora::{Catalog, Corpus, QueryRecord};
use sqlflight_diffing::{NormalizedPlan, plan_facts};
use sqlflight_engines::datafusion_engine::DataFusionEngine;
use sqlflight_engines::{Engine, EngineSpec};
use sqlflight_playback::{PlaybackOptions, run_playback};
use sqlflight_runs::NoProgress;

/// The exit code of a benchmark that ran.
pub const EXIT_OK: u8 = 0;

/// What the binary hands to the benchmarks.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Print one JSON object per benchmark instead of text.
    pub json: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// Where generated data (TPC-H tables) is cached.
    pub cache_dir: std::path::PathBuf,
    /// The demo's baseline and candidate profiles of the embedded DataFusion.
    pub demo_engines: [EngineSpec; 2],
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Playback of the bundled TPC-H and TPC-DS corpora vs a bare planner loop.
    Playback(BenchArgs),
    /// Result digests vs the raw hash over the same buffers vs a sort-based comparison.
    Digest(DigestBenchArgs),
    /// A TPC-H flight vs the engine's own execution of the same queries.
    Flight(FlightBenchArgs),
    /// Adaptive performance verdicts vs a fixed number of timed runs: wall time
    /// and decisions on an A/A and on the demo's profiles.
    Verdicts(crate::verdicts::VerdictsBenchArgs),
    /// Report generation for a large generated run vs simply reading the run.
    Report(ReportBenchArgs),
    /// Route lookups in process and over HTTP vs the bare hash and HTTP stack;
    /// rollback latency.
    Rollout(crate::rollout::RolloutBenchArgs),
    /// An engine as a worker process vs embedded: per-query protocol overhead and
    /// result transfer throughput vs in-process Arrow IPC.
    Worker(crate::worker::WorkerBenchArgs),
    /// Spark as a worker vs a bare pyspark loop: per-query overhead.
    Spark(crate::spark::SparkBenchArgs),
    /// Flink as a worker vs a bare pyflink loop; catalog conversion vs copying.
    Flink(crate::flink::FlinkBenchArgs),
    /// Log ingest + fingerprinting vs pt-query-digest on the same slow log; peak
    /// memory of ingesting and sampling a long log.
    Ingest(crate::corpus::IngestBenchArgs),
}

/// `bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportBenchArgs {
    /// Outcomes in the generated run.
    #[arg(long, default_value_t = 1_000_000)]
    pub outcomes: usize,
}

/// `bench digest`.
#[derive(Debug, clap::Args)]
pub struct DigestBenchArgs {
    /// Rows in the generated result.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: usize,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Digest with the portable build even where the AVX-512 build would run
    /// (what CPUs without AVX-512 get; the per-value-hash line keeps the detected build).
    #[arg(long)]
    pub portable: bool,
}

/// `bench flight`.
#[derive(Debug, clap::Args)]
pub struct FlightBenchArgs {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

/// `bench playback`.
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
    } = spec
    else {
        anyhow::bail!("engine `{name}`: this benchmark measures the embedded DataFusion");
    };
    Ok(DataFusionEngine::new(name, settings, disable_rules, setup, catalog)?)
}

/// A catalog of the TPC-H tables at `scale` (generated once into the cache).
fn tpch_catalog(cli: &Ctx, scale: f64) -> anyhow::Result<Catalog> {
    let data = sqlflight_corpora::tpch::ensure_tpch_data(&cli.cache_dir.join("data"), scale)?;
    let mut catalog = Catalog::default();
    for (t, p) in data.tables {
        catalog.tables.insert(
            t,
            sqlflight_corpora::TableSource {
                path: p,
                format: sqlflight_corpora::TableFormat::Parquet,
            },
        );
    }
    Ok(catalog)
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
            dialect_failures: false,
            // The peer compiles each side once: so does the measured driver
            // (rechecks of changed plans are extra compiles, not overhead).
            plan_rechecks: 0,
        };
        let b: Arc<dyn Engine> = l.base.clone();
        let c: Arc<dyn Engine> = l.cand.clone();
        run_playback(&l.corpus, b, c, &opts, &NoProgress)?;
    }
    Ok(t.elapsed())
}

/// Runs one benchmark; returns the exit code.
pub fn run(cmd: &BenchCmd, cli: &Ctx) -> anyhow::Result<u8> {
    match cmd {
        BenchCmd::Playback(a) => bench_playback(a, cli),
        BenchCmd::Digest(a) => bench_digest(a, cli),
        BenchCmd::Flight(a) => bench_flight(a, cli),
        BenchCmd::Verdicts(a) => crate::verdicts::bench_verdicts(a, cli),
        BenchCmd::Report(a) => bench_report(a, cli),
        BenchCmd::Rollout(a) => crate::rollout::bench_rollout(a, cli),
        BenchCmd::Worker(a) => crate::worker::bench_worker(a, cli),
        BenchCmd::Ingest(a) => crate::corpus::bench_ingest(a, cli),
        BenchCmd::Spark(a) => crate::spark::bench_spark(a, cli),
        BenchCmd::Flink(a) => crate::flink::bench_flink(a, cli),
    }
}

fn emit(cli: &Ctx, title: &str, v: &serde_json::Value) -> anyhow::Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{title}");
        print_fields(v, 1);
    }
    Ok(())
}

/// A bench's figures as indented `name value` lines; nested objects as sections.
fn print_fields(v: &serde_json::Value, depth: usize) {
    let Some(obj) = v.as_object() else { return };
    let pad = "  ".repeat(depth);
    for (k, x) in obj {
        if x.is_object() {
            println!("{pad}{k}:");
            print_fields(x, depth + 1);
        } else {
            println!("{pad}{k:<width$} {x}", width = 36 - 2 * depth);
        }
    }
}

/// One generated batch of the digest bench: id, a 16-byte string, a float, a
/// decimal, a date, for rows `start..start + n`.
fn bench_batch(start: usize, n: usize) -> anyhow::Result<sqlflight_engines::arrow::record_batch::RecordBatch> {
    use sqlflight_engines::arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
    };
    use sqlflight_engines::arrow::record_batch::RecordBatch;
    let ids: Int64Array = (start..start + n)
        .map(|i| (i as i64).wrapping_mul(2654435761))
        .collect();
    let names: StringArray = (start..start + n).map(|i| Some(format!("customer#{i:07}"))).collect();
    let xs: Float64Array = (start..start + n).map(|i| i as f64 * 0.25).collect();
    let ds: Decimal128Array = Decimal128Array::from_iter_values((start..start + n).map(|i| i as i128 * 100 + 7))
        .with_precision_and_scale(15, 2)?;
    let dates = Date32Array::from_iter_values((start..start + n).map(|i| (i % 3650) as i32));
    Ok(RecordBatch::try_from_iter(vec![
        ("id", Arc::new(ids) as ArrayRef),
        ("name", Arc::new(names) as ArrayRef),
        ("x", Arc::new(xs) as ArrayRef),
        ("amount", Arc::new(ds) as ArrayRef),
        ("day", Arc::new(dates) as ArrayRef),
    ])?)
}

/// The bench's batch boundaries: 8,192-row batches (DataFusion's default) covering `rows`.
fn bench_spans(rows: usize) -> impl Iterator<Item = (usize, usize)> {
    const BATCH: usize = 8192;
    (0..rows).step_by(BATCH).map(move |s| (s, BATCH.min(rows - s)))
}

/// The digest bench's consumers of a result, each timed on its own:
/// 0 the digest as flight computes it, 1 xxh3 over every buffer in bulk (the raw
/// hash speed over the same bytes), 2 the digest's per-value hash alone, 3 and 4
/// the sort-based comparison encoding the baseline's and the candidate's rows.
struct DigestConsumers {
    digest: sqlflight_diffing::DigestBuilder,
    xxh3: u64,
    values: Vec<u64>,
    values_acc: u64,
    conv: sqlflight_engines::arrow::row::RowConverter,
    encoded: [sqlflight_engines::arrow::row::Rows; 2],
    times: [Duration; 5],
}

impl DigestConsumers {
    const DIGEST: usize = 0;
    const XXH3: usize = 1;
    const VALUES: usize = 2;
    const ENCODE: [usize; 2] = [3, 4];

    fn new(
        schema: &sqlflight_engines::arrow::datatypes::Schema,
        portable: bool,
        rows: usize,
        bytes: usize,
    ) -> anyhow::Result<Self> {
        use sqlflight_engines::arrow::row::{RowConverter, SortField};
        let mut digest = sqlflight_diffing::DigestBuilder::new(schema, None);
        if portable {
            digest = digest.portable();
        }
        let conv = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let encoded = [conv.empty_rows(rows, bytes), conv.empty_rows(rows, bytes)];
        Ok(DigestConsumers {
            digest,
            xxh3: 0,
            values: Vec::new(),
            values_acc: 0,
            conv,
            encoded,
            times: [Duration::ZERO; 5],
        })
    }

    fn feed(&mut self, consumer: usize, b: &sqlflight_engines::arrow::record_batch::RecordBatch) -> anyhow::Result<()> {
        let t = Instant::now();
        match consumer {
            Self::DIGEST => self.digest.update(b),
            Self::XXH3 => {
                for c in b.columns() {
                    for buf in c.to_data().buffers() {
                        self.xxh3 ^= xxhash_rust::xxh3::xxh3_64(buf.as_slice());
                    }
                }
            }
            Self::VALUES => {
                for c in b.columns() {
                    sqlflight_diffing::digest::value_hashes(c.as_ref(), &mut self.values);
                    self.values_acc = self.values.iter().fold(self.values_acc, |a, v| a ^ v);
                }
            }
            side => self
                .conv
                .append(&mut self.encoded[side - Self::ENCODE[0]], b.columns())?,
        }
        self.times[consumer] += t.elapsed();
        Ok(())
    }
}

/// One repetition's times.
#[derive(Clone, Copy)]
struct DigestRun {
    digest: Duration,
    raw: Duration,
    values: Duration,
    encode: Duration,
    sorting: Duration,
    walk: Duration,
}

impl DigestRun {
    fn sort_based(&self) -> Duration {
        self.encode + self.sorting + self.walk
    }
}

/// One repetition of the digest bench. Materialized: the result is in memory and
/// each consumer reads all of it in turn (every consumer streams it from DRAM).
/// Streamed: each batch is produced just before it is consumed, as an engine's
/// output reaches flight, and every consumer reads it while it is still in cache
/// (the consumers take turns going first). The sort-based comparison must then
/// still hold all encoded rows, sort them and walk them.
fn digest_repetition(
    batches: Option<&[sqlflight_engines::arrow::record_batch::RecordBatch]>,
    args: &DigestBenchArgs,
    schema: &sqlflight_engines::arrow::datatypes::Schema,
    bytes: usize,
) -> anyhow::Result<(DigestRun, String)> {
    let mut c = DigestConsumers::new(schema, args.portable, args.rows, bytes)?;
    match batches {
        Some(batches) => {
            for consumer in 0..5 {
                for b in batches {
                    c.feed(consumer, b)?;
                }
            }
        }
        None => {
            for (i, (start, n)) in bench_spans(args.rows).enumerate() {
                let b = bench_batch(start, n)?;
                for k in 0..5 {
                    c.feed((i + k) % 5, &b)?;
                }
            }
        }
    }
    let t = Instant::now();
    let digest = c.digest.finish();
    let t_digest = c.times[DigestConsumers::DIGEST] + t.elapsed();
    let t = Instant::now();
    let mut sorted: Vec<Vec<_>> = c.encoded.iter().map(|rows| rows.iter().collect()).collect();
    for v in &mut sorted {
        v.sort_unstable();
    }
    let sorting = t.elapsed();
    let t = Instant::now();
    let differing =
        sorted[0].iter().zip(&sorted[1]).filter(|(a, b)| a != b).count() + sorted[0].len().abs_diff(sorted[1].len());
    let sides: Vec<usize> = sorted
        .iter()
        .map(|v| v.iter().map(|r| r.as_ref().len()).sum::<usize>())
        .collect();
    drop(sorted);
    drop(c.encoded);
    let walk = t.elapsed();
    let run = DigestRun {
        digest: t_digest,
        raw: c.times[DigestConsumers::XXH3],
        values: c.times[DigestConsumers::VALUES],
        encode: DigestConsumers::ENCODE.iter().map(|&k| c.times[k]).sum(),
        sorting,
        walk,
    };
    let checks = format!(
        "{} rows digested, xor {:x} / {:x}, sorted {} + {} bytes, {differing} rows differ",
        digest.rows, c.xxh3, c.values_acc, sides[0], sides[1]
    );
    Ok((run, checks))
}

/// The digest bench's figures over the repetitions of one mode.
fn digest_figures(runs: &[DigestRun], rows: usize, bytes: usize, checks: &str) -> serde_json::Value {
    let med = |f: fn(&DigestRun) -> Duration| median(runs.iter().map(f).collect());
    // Ratios are taken per repetition (the measurements of one repetition run
    // back to back, so host noise hits them alike), then their median.
    let ratio = |f: fn(&DigestRun) -> f64| sqlflight_flighting::stats::median(&runs.iter().map(f).collect::<Vec<_>>());
    let secs = |f: fn(&DigestRun) -> Duration| runs.iter().map(|r| f(r).as_secs_f64()).collect::<Vec<_>>();
    let (t_digest, t_raw, t_values) = (med(|r| r.digest), med(|r| r.raw), med(|r| r.values));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    serde_json::json!({
        "digest_s": t_digest.as_secs_f64(),
        "digest_runs_s": secs(|r| r.digest),
        "digest_rows_per_s": rate(t_digest),
        "digest_gb_per_s": gbps(t_digest),
        "raw_xxh3_s": t_raw.as_secs_f64(),
        "raw_xxh3_runs_s": secs(|r| r.raw),
        "raw_xxh3_gb_per_s": gbps(t_raw),
        "digest_share_of_raw_hash_speed": ratio(|r| r.raw.as_secs_f64() / r.digest.as_secs_f64()),
        "per_value_hash_only_s": t_values.as_secs_f64(),
        "per_value_hash_only_gb_per_s": gbps(t_values),
        "digest_share_of_per_value_hash_speed": ratio(|r| r.values.as_secs_f64() / r.digest.as_secs_f64()),
        "sort_based_compare_s": med(|r| r.sort_based()).as_secs_f64(),
        "sort_based_runs_s": secs(|r| r.sort_based()),
        "sort_based_encode_both_s": med(|r| r.encode).as_secs_f64(),
        "sort_based_sort_both_s": med(|r| r.sorting).as_secs_f64(),
        "sort_based_walk_rows_s": med(|r| r.walk).as_secs_f64(),
        "digest_speedup_vs_sort_based": ratio(|r| r.sort_based().as_secs_f64() / (2.0 * r.digest.as_secs_f64())),
        "checks": checks,
    })
}

fn bench_digest(args: &DigestBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let rows = args.rows.max(1);
    let args = &DigestBenchArgs { rows, ..*args };
    let batches = bench_spans(rows)
        .map(|(start, n)| bench_batch(start, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes: usize = batches
        .iter()
        .flat_map(|b| b.columns())
        .map(|c| c.get_buffer_memory_size())
        .sum();
    let schema = batches[0].schema();
    let build = if args.portable {
        "portable"
    } else {
        sqlflight_diffing::DigestBuilder::new(&schema, None).build_name()
    };
    let mut modes = serde_json::Map::new();
    for (mode, held) in [("materialized", Some(&batches[..])), ("streamed", None)] {
        let mut runs = Vec::new();
        let mut checks = String::new();
        for _ in 0..args.repeat.max(1) {
            let (run, c) = digest_repetition(held, args, &schema, bytes)?;
            runs.push(run);
            checks = c;
        }
        modes.insert(mode.into(), digest_figures(&runs, rows, bytes, &checks));
    }
    let v = serde_json::json!({
        "rows": rows,
        "arrow_bytes": bytes,
        "digest_build": build,
        "materialized": modes["materialized"],
        "streamed": modes["streamed"],
    });
    emit(
        cli,
        "digest throughput (one result; the sort-based comparison handles both sides, so digests count twice):",
        &v,
    )?;
    Ok(EXIT_OK)
}

fn bench_flight(args: &FlightBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    use sqlflight_engines::ExecLimits;
    let [bspec, cspec] = &cli.demo_engines;
    let catalog = tpch_catalog(cli, args.scale)?;
    let corpus = Workload::Tpch.corpus()?;
    let b: Arc<dyn Engine> = Arc::new(engine("baseline", bspec, &catalog)?);
    let c: Arc<dyn Engine> = Arc::new(engine("candidate", cspec, &catalog)?);
    let limits = ExecLimits::default();
    // Flight decides per query how many timed runs it needs (sequential ABBA
    // blocks, see flighting::perf), so the engine alone repeats exactly the
    // executions that flight made: per query, the warm-up plus the timed runs of
    // each side (and any baseline re-runs), in flight's order, results discarded.
    let flight = || -> anyhow::Result<(Duration, Vec<[usize; 2]>)> {
        let tmp = tempfile::tempdir()?;
        let opts = sqlflight_flighting::FlightOptions {
            out: tmp.path().join("run"),
            repeat: 1,
            reruns: 0,
            limits,
            ..Default::default()
        };
        let t = Instant::now();
        let run = sqlflight_flighting::run_flight(&corpus, b.clone(), c.clone(), &opts, &NoProgress)?;
        let took = t.elapsed();
        let by_id: std::collections::HashMap<&str, [usize; 2]> = run
            .outcomes
            .iter()
            .map(|o| {
                let runs = o.flight.as_ref().map_or([1, 1], |f| {
                    [
                        1 + f.baseline.times_ms.len() + f.reruns as usize,
                        1 + f.candidate.times_ms.len(),
                    ]
                });
                (o.query_id.as_str(), runs)
            })
            .collect();
        let counts = corpus
            .records
            .iter()
            .map(|r| by_id.get(r.id.as_str()).copied().unwrap_or([1, 1]))
            .collect();
        Ok((took, counts))
    };
    let bare = |counts: &[[usize; 2]]| -> Duration {
        let t = Instant::now();
        for (r, [nb, nc]) in corpus.records.iter().zip(counts) {
            for i in 0..*nb.max(nc) {
                for (e, n) in [(&b, nb), (&c, nc)] {
                    if i < *n {
                        let _ = e.execute(&r.sql, &limits, &mut |_| Ok(()));
                    }
                }
            }
        }
        t.elapsed()
    };
    let (_, warm) = flight()?;
    bare(&warm);
    let mut tb = Vec::new();
    let mut tf = Vec::new();
    let mut executions = 0;
    for _ in 0..args.repeat.max(1) {
        let (took, counts) = flight()?;
        tf.push(took);
        tb.push(bare(&counts));
        executions = counts.iter().map(|[x, y]| x + y).sum::<usize>();
    }
    let (tb, tf) = (median(tb), median(tf));
    let v = serde_json::json!({
        "scale_factor": args.scale,
        "queries": corpus.records.len(),
        "executions_per_flight": executions,
        "engine_alone_s": tb.as_secs_f64(),
        "flight_s": tf.as_secs_f64(),
        "flight_overhead_ratio": tf.as_secs_f64() / tb.as_secs_f64(),
    });
    emit(
        cli,
        &format!(
            "TPC-H SF {} flight (--repeat 1, adaptive timing) vs the engine alone making the same executions, median of {}:",
            args.scale, args.repeat
        ),
        &v,
    )?;
    Ok(EXIT_OK)
}

/// A generated run: mostly matches, some plan changes with diffs, wrong results,
/// failures and skips, flight figures on every other query.
// Long by design: writes the synthetic run (manifest, then outcomes of each shape the report renders).
fn generate_run(dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    use sqlflight_diffing::*;
    let engine = |p: &str| EngineInfo {
        engine: "datafusion".into(),
        version: "55.2.0".into(),
        profile: p.into(),
        settings: Default::default(),
        disabled_rules: vec![],
    };
    let manifest = RunManifest {
        format: run::RUN_FORMAT.into(),
        version: run::RUN_VERSION,
        kind: "flight".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        corpus: CorpusInfo {
            name: "generated".into(),
            path: None,
            hash: "00".repeat(32),
            queries: n as u64,
        },
        baseline: engine("baseline"),
        candidate: engine("candidate"),
        config: serde_json::Value::Null,
        partition: None,
        selected: n as u64,
        jobs: 1,
        timeout_ms: 30_000,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: None,
        status: RunStatus::Running,
        resumed: 0,
        stopped_reason: None,
        digest_version: Some(sqlflight_diffing::digest::DIGEST_VERSION),
        digest_key_id: None,
        results_only: false,
        counts: Default::default(),
    };
    let journal = sqlflight_runs::Journal::open(dir, manifest, false)?;
    let diff = "--- baseline/physical\n+++ candidate/physical\n@@ -1,2 +1,2 @@\n-HashJoinExec: on=a\n+SortMergeJoinExec: on=a\n   A\n";
    // Real plan facts (what playback records), so the report's fact table is measured.
    let plan = |join: &str, sort: bool| {
        let s = if sort { "  SortExec: expr=[a@0 ASC]\n" } else { "" };
        format!(
            "ProjectionExec: expr=[a@0 as a]\n{s}  {join}: mode=Partitioned, join_type=Inner, on=[(a@0, b@0)]\n    DataSourceExec: file_groups={{1 group: [[…/nation.parquet]]}}, file_type=parquet\n    DataSourceExec: file_groups={{1 group: [[…/region.parquet]]}}, file_type=parquet\n"
        )
    };
    let facts = |sort: bool| {
        plan_facts(
            &NormalizedPlan::new("physical", Some(&plan("HashJoinExec", false))),
            &NormalizedPlan::new("physical", Some(&plan("SortMergeJoinExec", sort))),
        )
    };
    let (facts_join, facts_join_sort) = (facts(false), facts(true));
    // Outcomes are written out of query order, as concurrent workers append them,
    // so the report's external sort is part of what is measured: a stride coprime
    // with n visits every index once.
    let stride = (1_000_003..).find(|s| gcd(*s, n) == 1).unwrap_or(1);
    for k in 0..n {
        let i = (k * stride) % n;
        let template = format!("{:016x}", (i as u64 % 5000).wrapping_mul(0x9e37_79b9));
        let mut o = OutcomeRecord::skipped(format!("q{i:07}"), template, "");
        o.skip_reason = None;
        o.class = match i % 100 {
            0..=89 => OutcomeClass::Match,
            90..=94 => OutcomeClass::PlanChanged,
            95..=96 => OutcomeClass::WrongResult,
            97 => OutcomeClass::NewFailure,
            _ => OutcomeClass::Skipped,
        };
        match o.class {
            OutcomeClass::PlanChanged => {
                let extra = if i.is_multiple_of(7) { ", SortExec" } else { "" };
                o.change_signature = Some(format!("HashJoinExec -> SortMergeJoinExec{extra}"));
                o.diff = Some(diff.into());
                o.plan_facts = if extra.is_empty() {
                    facts_join.clone()
                } else {
                    facts_join_sort.clone()
                };
            }
            OutcomeClass::WrongResult => o.detail = Some("columns:[amount]".into()),
            OutcomeClass::NewFailure => {
                o.baseline = Some(SideResult::Ok {
                    plan_hash: "ab".into(),
                    plan: None,
                    elapsed_us: 900,
                });
                o.candidate = Some(SideResult::Error {
                    error_class: ErrorClass::Execution,
                    error: "Execution error: boom".into(),
                    elapsed_us: 800,
                });
            }
            OutcomeClass::Skipped => o.skip_reason = Some("write_statement: INSERT".into()),
            _ => {}
        }
        if i.is_multiple_of(2) && o.class != OutcomeClass::Skipped {
            let b = 5.0 + (i % 97) as f64;
            let c = b * (0.8 + (i % 13) as f64 / 20.0);
            let verdict = if c > b * 1.1 {
                PerfVerdict::Slower
            } else {
                PerfVerdict::Same
            };
            o.flight = Some(FlightDetail {
                baseline: FlightSide {
                    median_ms: Some(b),
                    times_ms: vec![b; 3],
                    ..Default::default()
                },
                candidate: FlightSide {
                    median_ms: Some(c),
                    times_ms: vec![c; 3],
                    ..Default::default()
                },
                perf: Some(PerfComparison::simple(c / b, Some(0.01), verdict, false)),
                memory: None,
                reruns: 0,
                nondeterminism: vec![],
            });
        }
        journal.append(&o)?;
    }
    journal.complete_streamed("2026-01-01T00:10:00.000Z".into())?;
    Ok(())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn bench_report(args: &ReportBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let tmp = tempfile::tempdir()?;
    let run = tmp.path().join("run");
    let t = Instant::now();
    generate_run(&run, args.outcomes.max(1))?;
    let t_gen = t.elapsed();
    // The reader every format uses: the id-order check and the external sort.
    let t = Instant::now();
    let sorted = sqlflight_runs::OutcomeFile::open(&run)?;
    let t_sort = t.elapsed();
    let was_sorted = sorted.was_sorted();
    drop(sorted);
    let exe = std::env::current_exe()?;
    let run_s = run.display().to_string();
    let mut formats = serde_json::Map::new();
    for f in ["md", "html", "json", "junit"] {
        let out = tmp.path().join(format!("report.{f}"));
        let out_s = out.display().to_string();
        let t = Instant::now();
        let o = std::process::Command::new(&exe)
            .args(["report", run_s.as_str(), "--format", f, "--out", out_s.as_str(), "-q"])
            .env("SQLFLIGHT_PRINT_PEAK_RSS", "1")
            .output()?;
        let wall = t.elapsed();
        let stderr = String::from_utf8_lossy(&o.stderr);
        if !matches!(o.status.code(), Some(0 | 1)) {
            anyhow::bail!("report --format {f} failed: {stderr}");
        }
        let peak: u64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak_rss_kib=")?.parse().ok())
            .unwrap_or(0);
        formats.insert(
            f.into(),
            serde_json::json!({
                "wall_s_including_read": wall.as_secs_f64(),
                "peak_rss_mib": peak as f64 / 1024.0,
                "output_mib": std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0,
            }),
        );
    }
    let v = serde_json::json!({
        "outcomes": args.outcomes,
        "run_mib": std::fs::metadata(run.join("outcomes.jsonl")).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0,
        "generate_s": t_gen.as_secs_f64(),
        "sort_s": t_sort.as_secs_f64(),
        "written_in_query_order": !was_sorted,
        "formats": formats,
    });
    let title = format!(
        "report generation for a generated run of {} outcomes (each format in its own process):",
        args.outcomes
    );
    emit(cli, &title, &v)?;
    Ok(EXIT_OK)
}

/// The changed plans of the workloads, normalized (what fact extraction reads).
fn changed_plans(loads: &[Load]) -> Vec<(NormalizedPlan, NormalizedPlan)> {
    let mut out = Vec::new();
    for l in loads {
        for r in &l.corpus.records {
            let (Ok(a), Ok(b)) = (l.base.compile(&r.sql), l.cand.compile(&r.sql)) else {
                continue;
            };
            let a = NormalizedPlan::new(&a.logical, a.physical.as_deref());
            let b = NormalizedPlan::new(&b.logical, b.physical.as_deref());
            if a != b {
                out.push((a, b));
            }
        }
    }
    out
}

/// Time to extract the plan facts of every changed plan once.
fn fact_extraction(plans: &[(NormalizedPlan, NormalizedPlan)]) -> (Duration, usize) {
    let t = Instant::now();
    let facts: usize = plans.iter().map(|(a, b)| plan_facts(a, b).len()).sum();
    (t.elapsed(), facts)
}

fn bench_playback(args: &BenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let [bspec, cspec] = &cli.demo_engines;
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
    let changed = changed_plans(&loads);
    let mut tf = Vec::new();
    let mut fact_count = 0;
    for _ in 0..repeat {
        let (t, n) = fact_extraction(&changed);
        tf.push(t);
        fact_count = n;
    }
    let facts_time = median(tf);
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
                "changed_plans": changed.len(),
                "plan_facts": fact_count,
                "fact_extraction_s": facts_time.as_secs_f64(),
                "fact_extraction_share": facts_time.as_secs_f64() / (s.as_secs_f64() * *jobs as f64),
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
        if let Some(v) = out.first() {
            println!(
                "plan facts: {} changed plans -> {} facts in {:.1} ms, {:.2}% of playback's CPU time at {} job(s)",
                changed.len(),
                fact_count,
                facts_time.as_secs_f64() * 1e3,
                v["fact_extraction_share"].as_f64().unwrap_or(0.0) * 100.0,
                v["jobs"]
            );
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated run is written out of order (so the report benchmark times the
    /// sort) and closed by the streaming count, which must agree with a full read.
    #[test]
    fn a_generated_run_is_out_of_order_and_its_streamed_counts_are_exact() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        generate_run(dir.path(), 211).unwrap_or_else(|e| panic!("{e:#}"));
        let (manifest, outcomes) = sqlflight_runs::read_run(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manifest.status, sqlflight_diffing::run::RunStatus::Complete);
        let mut counts = std::collections::BTreeMap::new();
        for o in &outcomes {
            *counts.entry(o.class.as_str().to_string()).or_insert(0u64) += 1;
        }
        assert_eq!(manifest.counts, counts);
        assert_eq!(counts.values().sum::<u64>(), 211);
        assert!(counts.len() >= 4, "the generator covers the classes: {counts:?}");
        let file = sqlflight_runs::OutcomeFile::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(file.was_sorted(), "the journal must be written out of query-id order");
        assert_eq!(file.len(), 211);
    }
}
