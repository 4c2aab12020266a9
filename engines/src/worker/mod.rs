//! Engines as worker processes: the host side of the sqlflight worker protocol
//! (docs/worker-protocol.md) and a pool of workers per engine.
//!
//! Each request goes to an idle worker (a new one is started when none is idle, so
//! a side has as many workers as queries in flight). A worker that dies, hangs past
//! the timeout (it is killed), or writes something that is not a frame is dropped
//! and the query gets an outcome (`crash`, `timeout`, or `crash` with "protocol
//! error"), carrying the tail of the worker's stderr; the next request starts a
//! fresh worker, so the run goes on.
//!
//! Modules: [`protocol`] (frames), `process` (one worker process), the pool and
//! [`WorkerEngine`] here, and [`serve`](serve()) (the worker side for a Rust engine).

mod process;
pub mod protocol;
mod serve;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use sqlflight_corpora::Catalog;
use sqlflight_corpora::split::{SplitOptions, split_statements};
use sqlflight_diffing::{EngineInfo, ErrorClass};

use crate::{BuildError, CompiledPlan, Engine, EngineError, ExecLimits, ExecStats};

use process::{Failure, Worker};
use protocol::buffer_payload;
pub use protocol::{Frame, PROTOCOL, read_frame, write_frame};
pub use serve::{SetupRequest, serve};

/// How to start a worker process.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables added to its environment.
    pub env: BTreeMap<String, String>,
}

/// An engine served by worker processes.
pub struct WorkerEngine {
    info: EngineInfo,
    launch: Launch,
    setup: Value,
    compile_timeout: Duration,
    idle: Mutex<Vec<Worker>>,
    /// Desensitizes what a worker says when its setup fails.
    redactor: sqlflight_corpora::redact::Redactor,
    /// False when the worker says its results come in no defined order
    /// (capability `unordered_results`, a streaming engine).
    ordered: bool,
}

fn class_of(v: &Value) -> ErrorClass {
    serde_json::from_value(v.clone()).unwrap_or(ErrorClass::Internal)
}

fn refused(header: &Value) -> EngineError {
    let e = &header["error"];
    EngineError::new(
        class_of(&e["class"]),
        e["message"].as_str().unwrap_or("the worker refused without a message"),
    )
}

impl WorkerEngine {
    /// Starts one worker, checks the handshake and runs the setup (settings,
    /// catalog tables, DDL, setup statements) to fail early on a bad profile.
    pub fn new(
        profile: &str,
        launch: Launch,
        settings: &BTreeMap<String, String>,
        setup: &[String],
        catalog: &Catalog,
        compile_timeout: Duration,
    ) -> Result<WorkerEngine, BuildError> {
        let fail = |message: String| BuildError::Worker {
            profile: profile.to_string(),
            message,
        };
        let mut statements = Vec::new();
        for ddl in &catalog.ddl {
            for st in split_statements(&ddl.text, SplitOptions::default()) {
                if !defines_data_table(&st.text, catalog) {
                    statements.push(st.text);
                }
            }
        }
        statements.extend(catalog.setup.iter().cloned());
        statements.extend(setup.iter().cloned());
        let tables: Vec<Value> = catalog
            .tables
            .iter()
            .map(|(name, t)| {
                json!({
                    "name": name,
                    "path": t.path.display().to_string(),
                    "format": match t.format { sqlflight_corpora::TableFormat::Parquet => "parquet", sqlflight_corpora::TableFormat::Csv => "csv" },
                })
            })
            .collect();
        let setup_msg = json!({"op": "setup", "settings": settings, "tables": tables, "statements": statements});
        let mut engine = WorkerEngine {
            info: EngineInfo {
                engine: String::new(),
                version: String::new(),
                profile: profile.to_string(),
                settings: settings.clone(),
                disabled_rules: Vec::new(),
            },
            launch,
            setup: setup_msg,
            redactor: sqlflight_corpora::redact::Redactor::for_catalog(catalog, setup),
            compile_timeout,
            idle: Mutex::new(Vec::new()),
            ordered: true,
        };
        let (w, hello) = engine.spawn().map_err(|e| fail(e.message))?;
        engine.info.engine = hello["engine"].as_str().unwrap_or("worker").to_string();
        engine.info.version = hello["version"].as_str().unwrap_or("unknown").to_string();
        engine.ordered = !hello["capabilities"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == "unordered_results"));
        if let Ok(mut idle) = engine.idle.lock() {
            idle.push(w);
        }
        Ok(engine)
    }

    /// Starts a worker: handshake, then setup.
    fn spawn(&self) -> Result<(Worker, Value), EngineError> {
        let l = &self.launch;
        let mut w = Worker::start(l).map_err(|e| {
            EngineError::new(
                ErrorClass::Crash,
                format!("cannot start worker `{}`: {e}", l.program.display()),
            )
        })?;
        let startup = Duration::from_secs(120);
        let (hello, _) = w
            .request(&json!({"op": "hello", "protocol": PROTOCOL}), startup)
            .map_err(|f| failure(f, "handshake"))?;
        if hello["ok"] != json!(true) {
            return Err(refused(&hello));
        }
        if hello["protocol"].as_u64() != Some(PROTOCOL) {
            return Err(EngineError::new(
                ErrorClass::Crash,
                format!(
                    "protocol error: the worker speaks protocol {}, this sqlflight {PROTOCOL}",
                    hello["protocol"]
                ),
            ));
        }
        let (ok, _) = w.request(&self.setup, startup).map_err(|f| failure(f, "setup"))?;
        if ok["ok"] != json!(true) {
            let e = refused(&ok);
            // Loading a table may echo its values: desensitized like query errors.
            let said = self.redactor.redact(&e.message);
            return Err(EngineError::new(e.class, format!("setup failed: {said}")));
        }
        Ok((w, hello))
    }

    /// Runs one request on an idle (or new) worker; healthy workers go back to
    /// the pool, failed ones are dropped (and killed).
    fn call(&self, msg: &Value, timeout: Duration) -> Result<Frame, EngineError> {
        let mut payload = None;
        let header = self.call_streaming(msg, timeout, &mut |r| buffer_payload(r, &mut payload))?;
        Ok((header, payload))
    }

    /// [`call`](Self::call) with the payload streamed to `on_payload`.
    fn call_streaming(
        &self,
        msg: &Value,
        timeout: Duration,
        on_payload: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<Value, EngineError> {
        let w = self.idle.lock().ok().and_then(|mut i| i.pop());
        let mut w = match w {
            Some(w) => w,
            None => self.spawn()?.0,
        };
        match w.request_streaming(msg, timeout, on_payload) {
            Ok(header) => {
                // A worker that reports itself unusable (`fatal`) is not reused.
                if header["fatal"] != json!(true)
                    && let Ok(mut i) = self.idle.lock()
                {
                    i.push(w);
                }
                Ok(header)
            }
            Err(f) => Err(failure(f, msg["op"].as_str().unwrap_or("request"))),
        }
    }

    /// Workers started and idle now (for tests).
    pub fn idle_workers(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

fn failure(f: Failure, during: &str) -> EngineError {
    match f {
        Failure::Timeout(t) => EngineError::new(
            ErrorClass::Timeout,
            format!("the worker did not answer {during} within {t:?}; it was killed"),
        ),
        Failure::Died(m) => EngineError::new(ErrorClass::Crash, format!("{m} (during {during})")),
        Failure::Protocol(m) => EngineError::new(ErrorClass::Crash, format!("protocol error during {during}: {m}")),
    }
}

/// Whether a DDL statement creates a table that a data file provides.
pub(crate) fn defines_data_table(sql: &str, catalog: &Catalog) -> bool {
    use datafusion::sql::sqlparser::{ast::Statement, dialect::GenericDialect, parser::Parser};
    if catalog.tables.is_empty() {
        return false;
    }
    match Parser::parse_sql(&GenericDialect {}, sql).ok().as_deref() {
        Some([Statement::CreateTable(ct)]) => ct
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|id| catalog.tables.contains_key(&id.value)),
        _ => false,
    }
}

impl Engine for WorkerEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn results_ordered(&self) -> bool {
        self.ordered
    }

    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        let (h, _) = self.call(&json!({"op": "compile", "sql": sql}), self.compile_timeout)?;
        if h["ok"] != json!(true) {
            return Err(refused(&h));
        }
        Ok(CompiledPlan {
            logical: h["logical"].as_str().unwrap_or_default().to_string(),
            physical: h["physical"].as_str().map(str::to_string),
        })
    }

    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        // `timeout_ms` lets a worker cancel the query itself shortly before the
        // deadline (and stay alive); past the deadline the host kills it.
        let msg = json!({
            "op": "execute",
            "sql": sql,
            "memory_limit": limits.memory_limit,
            "timeout_ms": u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
        });
        // The result is decoded straight from the pipe as it arrives: no copy of
        // the whole payload, and batches reach the sink while the rest streams.
        let mut schema = None;
        let (mut rows, mut batches) = (0u64, 0u64);
        let mut sink_error: Option<EngineError> = None;
        let h = self.call_streaming(&msg, limits.timeout, &mut |r| {
            let reader =
                StreamReader::try_new(r, None).map_err(|e| format!("the result is not an Arrow IPC stream: {e}"))?;
            schema = Some(reader.schema());
            for b in reader {
                let b = b.map_err(|e| format!("bad Arrow IPC batch: {e}"))?;
                // After a sink error the rest is read and dropped, so the worker
                // stays in step.
                if sink_error.is_none() {
                    rows += b.num_rows() as u64;
                    batches += 1;
                    if let Err(e) = sink(&b) {
                        sink_error = Some(e);
                    }
                }
            }
            Ok(())
        })?;
        if h["ok"] != json!(true) {
            return Err(refused(&h));
        }
        if let Some(e) = sink_error {
            return Err(e);
        }
        Ok(ExecStats {
            schema,
            rows,
            batches,
            peak_memory: None,
        })
    }
}
