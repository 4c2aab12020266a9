//! `sqlflight bench worker`: what running an engine as a worker process costs.
//! The same engine (this build's DataFusion) embedded and behind the worker
//! protocol (`sqlflight worker` as a child process), on the same TPC-H queries:
//! the per-query difference is the protocol + Arrow IPC overhead. Result transfer
//! throughput is measured on `SELECT * FROM lineitem` and set beside the
//! in-process Arrow IPC encode + decode of the same batches (the physical limit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlflight_corpora::bundled::Workload;
use sqlflight_engines::arrow::ipc::reader::StreamReader;
use sqlflight_engines::arrow::ipc::writer::StreamWriter;
use sqlflight_engines::arrow::record_batch::RecordBatch;
use sqlflight_engines::datafusion_engine::DataFusionEngine;
use sqlflight_engines::{Engine, EngineSpec, ExecLimits};

use crate::{Ctx, EXIT_OK};
use crate::{emit, median, tpch_catalog};

/// `bench worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerBenchArgs {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Timed runs of each query per engine (the median is used).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

/// One execution of `sql`, results dropped.
pub(crate) fn time(e: &dyn Engine, sql: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    e.execute(sql, &ExecLimits::default(), &mut |_| Ok(()))
        .map_err(|e| anyhow::anyhow!("{sql}: {e}"))?;
    Ok(t.elapsed())
}

/// A worker engine against a bare loop of the same engine release, query by
/// query (Spark, Flink): the median of each side per query, their differences.
#[derive(Default)]
pub(crate) struct VsBareLoop {
    overheads_ms: Vec<f64>,
    total_bare_ms: f64,
    total_worker_ms: f64,
}

impl VsBareLoop {
    /// Times `sql` on `engine` (a warm-up, then `repeat` runs) against the bare
    /// loop's times of the same query.
    pub(crate) fn query(
        &mut self,
        engine: &dyn Engine,
        sql: &str,
        bare_ms: &[f64],
        repeat: usize,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(!bare_ms.is_empty(), "the bare loop did not time `{sql}`");
        time(engine, sql)?;
        let mut tw = Vec::new();
        for _ in 0..repeat {
            tw.push(time(engine, sql)?);
        }
        let worker = median(tw).as_secs_f64() * 1e3;
        let mut tb = bare_ms.to_vec();
        tb.sort_by(f64::total_cmp);
        let bare = tb[tb.len() / 2];
        self.total_bare_ms += bare;
        self.total_worker_ms += worker;
        self.overheads_ms.push(worker - bare);
        Ok(())
    }

    /// Queries timed so far.
    pub(crate) fn timed(&self) -> usize {
        self.overheads_ms.len()
    }

    /// The figures, with the worker's start-up time, added to `into`.
    pub(crate) fn add_figures(&self, startup: Duration, into: &mut serde_json::Value) {
        let mut sorted = self.overheads_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let figures = serde_json::json!({
            "worker_startup_s": startup.as_secs_f64(),
            "overhead_ms_median": sorted.get(sorted.len() / 2),
            "overhead_ms_max": sorted.last(),
            "bare_loop_total_ms": self.total_bare_ms,
            "worker_total_ms": self.total_worker_ms,
            "worker_vs_bare_loop": self.total_worker_ms / self.total_bare_ms,
        });
        if let (Some(into), Some(figures)) = (into.as_object_mut(), figures.as_object()) {
            into.extend(figures.clone());
        }
    }
}

/// Runs a bare-loop Python script (`script`, given `spec` as JSON) with the
/// engine's own virtual environment and reads the per-query times (ms) it
/// writes to a file (so the engine's console output cannot mix in).
pub(crate) fn run_bare_loop(
    python: &std::path::Path,
    dir: &std::path::Path,
    script: &str,
    spec: &serde_json::Value,
    env: &[(&str, &str)],
    what: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<f64>>> {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(spec)?)?;
    let script_path = dir.join("bare_loop.py");
    std::fs::write(&script_path, script)?;
    let result_path = dir.join("bare.json");
    let status = std::process::Command::new(python)
        .arg(&script_path)
        .arg(&spec_path)
        .arg(&result_path)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the bare {what} loop failed ({status})");
    Ok(serde_json::from_slice(&std::fs::read(&result_path)?)?)
}

/// Runs `bench worker`; returns the exit code.
// Long by design: a measurement script, its steps in the order they are timed.
pub fn bench_worker(args: &WorkerBenchArgs, cli: &Ctx) -> anyhow::Result<u8> {
    let catalog = tpch_catalog(cli, args.scale)?;
    let embedded: Arc<dyn Engine> = Arc::new(DataFusionEngine::new(
        "embedded",
        &Default::default(),
        &[],
        &[],
        &catalog,
    )?);
    let exe = std::env::current_exe()?;
    let spec = EngineSpec::Worker {
        command: vec![exe.display().to_string(), "worker".into()],
        env: Default::default(),
        settings: Default::default(),
        setup: Vec::new(),
    };
    let worker = sqlflight_engines::build_engine("worker", &spec, &catalog)?;
    let corpus = Workload::Tpch.corpus()?;
    let repeat = args.repeat.max(1);
    // Per query: warm both, then alternate embedded and worker runs.
    let mut overheads_ms = Vec::new();
    let (mut total_e, mut total_w) = (Duration::ZERO, Duration::ZERO);
    for r in &corpus.records {
        time(embedded.as_ref(), &r.sql)?;
        time(worker.as_ref(), &r.sql)?;
        let (mut te, mut tw) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            te.push(time(embedded.as_ref(), &r.sql)?);
            tw.push(time(worker.as_ref(), &r.sql)?);
        }
        let (me, mw) = (median(te), median(tw));
        total_e += me;
        total_w += mw;
        overheads_ms.push((mw.as_secs_f64() - me.as_secs_f64()) * 1e3);
    }
    let mut sorted = overheads_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = overheads_ms.iter().sum::<f64>() / overheads_ms.len() as f64;

    // Transfer: a large result through the worker vs embedded, and the same
    // batches through Arrow IPC in process.
    let big = "SELECT * FROM lineitem";
    let mut batches: Vec<RecordBatch> = Vec::new();
    embedded.execute(big, &ExecLimits::default(), &mut |b| {
        batches.push(b.clone());
        Ok(())
    })?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| anyhow::anyhow!("lineitem is empty"))?;
    let ipc_round = || -> anyhow::Result<(usize, Duration)> {
        let t = Instant::now();
        let mut w = StreamWriter::try_new(Vec::new(), &schema)?;
        for b in &batches {
            w.write(b)?;
        }
        w.finish()?;
        let bytes = w.into_inner()?;
        let n = bytes.len();
        let mut rows = 0;
        for b in StreamReader::try_new(std::io::Cursor::new(bytes), None)? {
            rows += b?.num_rows();
        }
        anyhow::ensure!(rows == batches.iter().map(|b| b.num_rows()).sum::<usize>());
        Ok((n, t.elapsed()))
    };
    ipc_round()?;
    time(worker.as_ref(), big)?;
    let (mut te, mut tw, mut ti) = (Vec::new(), Vec::new(), Vec::new());
    let mut ipc_bytes = 0;
    for _ in 0..repeat {
        te.push(time(embedded.as_ref(), big)?);
        tw.push(time(worker.as_ref(), big)?);
        let (n, t) = ipc_round()?;
        ipc_bytes = n;
        ti.push(t);
    }
    let (me, mw, mi) = (median(te), median(tw), median(ti));
    let mb = ipc_bytes as f64 / 1e6;
    let extra = (mw.as_secs_f64() - me.as_secs_f64()).max(1e-9);
    let v = serde_json::json!({
        "scale_factor": args.scale,
        "queries": corpus.records.len(),
        "overhead_ms_median": sorted[sorted.len() / 2],
        "overhead_ms_mean": mean,
        "overhead_ms_max": sorted[sorted.len() - 1],
        "embedded_total_s": total_e.as_secs_f64(),
        "worker_total_s": total_w.as_secs_f64(),
        "transfer_result_mb": mb,
        "transfer_embedded_s": me.as_secs_f64(),
        "transfer_worker_s": mw.as_secs_f64(),
        "transfer_mb_per_s": mb / extra,
        "ipc_in_process_mb_per_s": mb / mi.as_secs_f64(),
        "transfer_vs_in_process_ipc": (mb / extra) / (mb / mi.as_secs_f64()),
    });
    emit(
        cli,
        &format!(
            "Worker (protocol + Arrow IPC) vs embedded, TPC-H SF {}, median of {repeat} per query:",
            args.scale
        ),
        &v,
    )?;
    Ok(EXIT_OK)
}
