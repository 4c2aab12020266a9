//! `sqlflight bench spark`: what running Spark as a sqlflight worker costs per
//! query. The same TPC-H queries on the same data, timed two ways side by side in
//! one run: a bare pyspark loop in one Python process (`spark.sql(q)` collected
//! as Arrow, what a hand-written harness does), and the `kind: spark` engine
//! (the worker protocol, plan-independent bookkeeping, Arrow IPC back to the
//! host). The per-query difference of the medians is sqlflight's overhead.

use std::collections::BTreeMap;
use std::time::Instant;

use sqlflight_corpora::bundled::Workload;
use sqlflight_engines::EngineSpec;

use crate::worker::{VsBareLoop, run_bare_loop};
use crate::{Ctx, EXIT_OK};
use crate::{emit, tpch_catalog};

/// `bench spark`.
#[derive(Debug, clap::Args)]
pub struct SparkBenchArgs {
    /// The pyspark release to measure.
    #[arg(long, default_value = "4.0.5")]
    pub version: String,
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 0.01)]
    pub scale: f64,
    /// Timed runs of each query per side (the median is used).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

/// The bare loop: one local session configured like the worker's, the same
/// views, each query warmed once then timed `repeat` times; prints JSON
/// `{query id: [ms, ...]}` into the file named second.
const BARE_LOOP: &str = r#"
import json, os, sys, time, tempfile
from pyspark.sql import SparkSession
spec = json.load(open(sys.argv[1]))
scratch = tempfile.mkdtemp(prefix="sqlflight-bench-spark-")
s = (SparkSession.builder.master("local[2]").appName("bare-loop")
     .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
     .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
     .config("spark.sql.warehouse.dir", os.path.join(scratch, "warehouse"))
     .config("spark.local.dir", os.path.join(scratch, "local"))
     .config("spark.sql.catalogImplementation", "in-memory").getOrCreate())
s.sparkContext.setLogLevel("ERROR")
for name, path in spec["tables"].items():
    s.read.parquet(path).createOrReplaceTempView(name)
out = {}
for qid, sql in spec["queries"]:
    s.sql(sql)._collect_as_arrow()
    times = []
    for _ in range(spec["repeat"]):
        t = time.perf_counter()
        s.sql(sql)._collect_as_arrow()
        times.append((time.perf_counter() - t) * 1e3)
    out[qid] = times
s.stop()
open(sys.argv[2], "w").write(json.dumps(out))
"#;

/// Runs `bench spark`; returns the exit code.
pub fn bench_spark(args: &SparkBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let catalog = tpch_catalog(cli, args.scale)?;
    let corpus = Workload::Tpch.corpus()?;
    let repeat = args.repeat.max(1);
    let queries: Vec<(String, String)> = corpus.records.iter().map(|r| (r.id.clone(), r.sql.clone())).collect();
    let tables: BTreeMap<&String, String> = catalog
        .tables
        .iter()
        .map(|(t, s)| (t, s.path.display().to_string()))
        .collect();

    // The bare loop, in the same environment as the engine's workers.
    let python = sqlflight_engines::python::ensure_venv(
        "pyspark",
        &args.version,
        &sqlflight_engines::spark::extras(&args.version),
    )?;
    let dir = tempfile::tempdir()?;
    let bare = run_bare_loop(
        &python,
        dir.path(),
        BARE_LOOP,
        &serde_json::json!({"tables": tables, "queries": queries, "repeat": repeat}),
        &[("SPARK_LOCAL_IP", "127.0.0.1")],
        "pyspark",
    )?;

    // The engine, as playback and flight use it.
    let spec = EngineSpec::Spark {
        version: args.version.clone(),
        settings: Default::default(),
        setup: Vec::new(),
        cores: None,
    };
    let started = Instant::now();
    let engine = sqlflight_engines::build_engine("spark", &spec, &catalog)?;
    let startup = started.elapsed();
    let mut vs = VsBareLoop::default();
    for (id, sql) in &queries {
        vs.query(
            engine.as_ref(),
            sql,
            bare.get(id).map_or(&[][..], Vec::as_slice),
            repeat,
        )?;
    }
    let mut v = serde_json::json!({
        "spark_version": args.version,
        "scale_factor": args.scale,
        "queries": queries.len(),
    });
    vs.add_figures(startup, &mut v);
    emit(
        cli,
        &format!(
            "Spark {} as a sqlflight worker vs a bare pyspark loop, TPC-H SF {}, median of {repeat} per query:",
            args.version, args.scale
        ),
        &v,
    )?;
    Ok(EXIT_OK)
}
