//! Engines as worker processes: the host side of the sqlflight worker protocol
//! (docs/worker-protocol.md) and a pool of workers per engine.
//!
//! Each request goes to an idle worker (a new one is started when none is idle, so
//! a side has as many workers as queries in flight). A worker that dies, hangs past
//! the timeout (it is killed), or writes something that is not a frame is dropped
//! and the query gets an outcome (`crash`, `timeout`, or `crash` with "protocol
//! error"), carrying the tail of the worker's stderr; the next request starts a
//! fresh worker, so the run goes on.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use sqlflight_corpora::Catalog;
use sqlflight_corpora::split::{SplitOptions, split_statements};
use sqlflight_diffing::{EngineInfo, ErrorClass};

use crate::{BuildError, CompiledPlan, Engine, EngineError, ExecLimits, ExecStats};

/// The protocol version this host speaks.
pub const PROTOCOL: u64 = 1;
/// Largest JSON header accepted; anything larger is garbage, not a frame.
const MAX_HEADER: u32 = 64 << 20;
/// Bytes of a worker's stderr kept for outcomes.
const STDERR_TAIL: usize = 4096;

/// How to start a worker process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// Why a request got no answer.
#[derive(Debug)]
enum Failure {
    Timeout(Duration),
    Died(String),
    Protocol(String),
}

/// Writes one frame: u32 LE length, JSON header, optional payload (its length is
/// in the header's `payload_len`).
pub fn write_frame(w: &mut impl Write, header: &Value, payload: Option<&[u8]>) -> std::io::Result<()> {
    let mut header = header.clone();
    if let Some(p) = payload {
        header["payload_len"] = json!(p.len());
    }
    let body = serde_json::to_vec(&header)?;
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&body)?;
    if let Some(p) = payload {
        w.write_all(p)?;
    }
    w.flush()
}

/// A frame: the JSON header and the payload, if the header announced one.
pub type Frame = (Value, Option<Vec<u8>>);

/// Reads one frame. `Ok(None)` = end of stream before a frame started.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, String> {
    let mut payload = None;
    let header = read_frame_streaming(r, &mut |p| buffer_payload(p, &mut payload))?;
    Ok(header.map(|h| (h, payload)))
}

/// Reads a whole payload into memory.
fn buffer_payload(r: &mut dyn Read, into: &mut Option<Vec<u8>>) -> Result<(), String> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|e| format!("truncated payload: {e}"))?;
    *into = Some(buf);
    Ok(())
}

/// Reads one frame whose payload is handed to `on_payload` as a reader limited
/// to the payload (whatever it leaves unread is drained), instead of being
/// buffered. `Ok(None)` = end of stream before a frame started.
fn read_frame_streaming(
    r: &mut impl Read,
    on_payload: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
) -> Result<Option<Value>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let n = u32::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(format!(
            "frame header of {n} bytes (bytes {:02x?}): not a frame; is the worker printing to stdout?",
            len
        ));
    }
    let mut body = vec![0u8; n as usize];
    r.read_exact(&mut body)
        .map_err(|e| format!("truncated frame header: {e}"))?;
    let header: Value = serde_json::from_slice(&body).map_err(|e| {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        format!("frame header is not JSON ({e}): {shown:?}")
    })?;
    if let Some(p) = header.get("payload_len").and_then(Value::as_u64) {
        let mut limited = r.take(p);
        on_payload(&mut limited)?;
        std::io::copy(&mut limited, &mut std::io::sink()).map_err(|e| format!("truncated payload: {e}"))?;
        if limited.limit() > 0 {
            return Err(format!("truncated payload: {} bytes missing", limited.limit()));
        }
    }
    Ok(Some(header))
}

/// One worker process.
struct Worker {
    child: Arc<Mutex<Child>>,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
}

impl Worker {
    fn start(launch: &Launch) -> std::io::Result<Worker> {
        let mut child = Command::new(&launch.program)
            .args(&launch.args)
            .envs(&launch.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = BufWriter::new(child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?);
        let stdout = BufReader::with_capacity(
            1 << 16,
            child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?,
        );
        let mut err = child.stderr.take().ok_or_else(|| std::io::Error::other("no stderr"))?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let tail = stderr.clone();
        std::thread::Builder::new()
            .name("sqlflight-worker-stderr".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.extend(&buf[..n]);
                        let excess = t.len().saturating_sub(STDERR_TAIL);
                        t.drain(..excess);
                    }
                }
            })?;
        Ok(Worker {
            child: Arc::new(Mutex::new(child)),
            stdin,
            stdout,
            stderr,
        })
    }

    fn stderr_tail(&self) -> String {
        // Give the reader thread a moment to drain what a dying process wrote.
        std::thread::sleep(Duration::from_millis(20));
        let t = self
            .stderr
            .lock()
            .map(|t| t.iter().copied().collect::<Vec<u8>>())
            .unwrap_or_default();
        String::from_utf8_lossy(&t).trim().to_string()
    }

    fn request(&mut self, msg: &Value, timeout: Duration) -> Result<Frame, Failure> {
        let mut payload = None;
        let header = self.request_streaming(msg, timeout, &mut |r| buffer_payload(r, &mut payload))?;
        Ok((header, payload))
    }

    /// Sends `msg` and reads the answer, handing its payload to `on_payload` as
    /// it arrives; the deadline covers the whole exchange.
    fn request_streaming(
        &mut self,
        msg: &Value,
        timeout: Duration,
        on_payload: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<Value, Failure> {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let child = self.child.clone();
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fired2 = fired.clone();
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                fired2.store(true, std::sync::atomic::Ordering::SeqCst);
                if let Ok(mut c) = child.lock() {
                    let _ = c.kill();
                }
            }
        });
        let result = write_frame(&mut self.stdin, msg, None)
            .map_err(|e| format!("cannot write to the worker: {e}"))
            .and_then(|()| read_frame_streaming(&mut self.stdout, on_payload));
        let _ = done_tx.send(());
        let _ = watchdog.join();
        if fired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Failure::Timeout(timeout));
        }
        match result {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(Failure::Died(self.death())),
            Err(e) if e.starts_with("cannot write") => Err(Failure::Died(self.death())),
            Err(e) => Err(Failure::Protocol(e)),
        }
    }

    fn death(&self) -> String {
        let status = self
            .child
            .lock()
            .ok()
            .and_then(|mut c| {
                // The process closed stdout; it is exiting or gone.
                for _ in 0..50 {
                    if let Ok(Some(s)) = c.try_wait() {
                        return Some(s.to_string());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                None
            })
            .unwrap_or_else(|| "closed its output".into());
        let tail = self.stderr_tail();
        if tail.is_empty() {
            format!("worker process died ({status})")
        } else {
            format!(
                "worker process died ({status}); stderr: {}",
                crate::python::last_lines(&tail, 12)
            )
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = write_frame(&mut self.stdin, &json!({"op": "shutdown"}), None);
            // A worker that does not leave promptly is killed.
            for _ in 0..20 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

/// What the host asks a worker to set up: the profile's settings, the data
/// tables, and the statements to run first (DDL, catalog and profile setup).
#[derive(Debug, Clone, Default)]
pub struct SetupRequest {
    pub settings: BTreeMap<String, String>,
    pub tables: BTreeMap<String, sqlflight_corpora::TableSource>,
    pub statements: Vec<String>,
}

/// The worker side of the protocol for any Rust [`Engine`]: answers requests on
/// `input`/`output` (a process's stdin/stdout) until `shutdown` or end of input.
/// `build` makes the engine from the host's `setup` request; a panic in the
/// engine is answered as a `crash` marked `fatal`, so the host starts a fresh
/// worker. Making a Rust engine build a worker is a `main` that calls this.
// Long by design: the request loop of docs/worker-protocol.md, one arm per message kind.
pub fn serve(
    input: impl Read,
    output: impl Write,
    name: &str,
    version: &str,
    mut build: impl FnMut(SetupRequest) -> Result<Arc<dyn Engine>, EngineError>,
) -> std::io::Result<()> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut output = BufWriter::with_capacity(1 << 16, output);
    let mut engine: Option<Arc<dyn Engine>> = None;
    let refuse = |e: &EngineError| json!({"ok": false, "error": {"class": e.class, "message": e.message}, "fatal": e.class == ErrorClass::Crash});
    let panicked = |p: Box<dyn std::any::Any + Send>| {
        let m = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        EngineError::new(ErrorClass::Crash, format!("the engine panicked: {m}"))
    };
    loop {
        let (msg, _) = match read_frame(&mut input) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let op = msg["op"].as_str().unwrap_or_default();
        let (answer, payload): (Value, Option<Vec<u8>>) = match (op, &engine) {
            ("hello", _) => (
                json!({"ok": true, "protocol": PROTOCOL, "engine": name, "version": version}),
                None,
            ),
            ("setup", _) => {
                let settings = serde_json::from_value(msg["settings"].clone()).unwrap_or_default();
                let mut tables = BTreeMap::new();
                for t in msg["tables"].as_array().into_iter().flatten() {
                    let format = match t["format"].as_str() {
                        Some("csv") => sqlflight_corpora::TableFormat::Csv,
                        _ => sqlflight_corpora::TableFormat::Parquet,
                    };
                    tables.insert(
                        t["name"].as_str().unwrap_or_default().to_string(),
                        sqlflight_corpora::TableSource {
                            path: PathBuf::from(t["path"].as_str().unwrap_or_default()),
                            format,
                        },
                    );
                }
                let statements = serde_json::from_value(msg["statements"].clone()).unwrap_or_default();
                match build(SetupRequest {
                    settings,
                    tables,
                    statements,
                }) {
                    Ok(e) => {
                        engine = Some(e);
                        (json!({"ok": true}), None)
                    }
                    Err(e) => (refuse(&e), None),
                }
            }
            ("compile", Some(e)) => {
                let sql = msg["sql"].as_str().unwrap_or_default();
                match catch_unwind(AssertUnwindSafe(|| e.compile(sql))).unwrap_or_else(|p| Err(panicked(p))) {
                    Ok(p) => (json!({"ok": true, "logical": p.logical, "physical": p.physical}), None),
                    Err(e) => (refuse(&e), None),
                }
            }
            ("execute", Some(e)) => {
                let sql = msg["sql"].as_str().unwrap_or_default();
                let limits = ExecLimits {
                    // The host enforces the time limit (it kills a late worker).
                    timeout: Duration::from_secs(365 * 24 * 3600),
                    memory_limit: msg["memory_limit"].as_u64().map(|m| m as usize),
                };
                let run = || -> Result<Vec<u8>, EngineError> {
                    use datafusion::arrow::ipc::writer::StreamWriter;
                    let ipc = |e: datafusion::arrow::error::ArrowError| {
                        EngineError::new(ErrorClass::Internal, format!("Arrow IPC: {e}"))
                    };
                    let mut writer: Option<StreamWriter<Vec<u8>>> = None;
                    let stats = e.execute(sql, &limits, &mut |b| {
                        if writer.is_none() {
                            writer = Some(StreamWriter::try_new(Vec::new(), &b.schema()).map_err(ipc)?);
                        }
                        writer.as_mut().map_or(Ok(()), |w| w.write(b).map_err(ipc))
                    })?;
                    let mut w = match writer {
                        Some(w) => w,
                        None => {
                            let schema = stats
                                .schema
                                .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
                            StreamWriter::try_new(Vec::new(), &schema).map_err(ipc)?
                        }
                    };
                    w.finish().map_err(ipc)?;
                    w.into_inner().map_err(ipc)
                };
                match catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|p| Err(panicked(p))) {
                    Ok(buf) => (json!({"ok": true}), Some(buf)),
                    Err(e) => (refuse(&e), None),
                }
            }
            ("shutdown", _) => {
                write_frame(&mut output, &json!({"ok": true}), None)?;
                return Ok(());
            }
            (_, None) if op == "compile" || op == "execute" => (
                refuse(&EngineError::new(
                    ErrorClass::Internal,
                    "`setup` must come before statements",
                )),
                None,
            ),
            _ => (
                refuse(&EngineError::new(ErrorClass::Internal, format!("unknown op `{op}`"))),
                None,
            ),
        };
        write_frame(&mut output, &answer, payload.as_deref())?;
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_frame(header: &Value, payload: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, header, payload).unwrap();
        out
    }

    proptest! {
        /// The host's frame decoder takes any bytes a broken worker may write: an
        /// error or a frame, never a panic, and never more than the bytes given.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut r = &bytes[..];
            while let Ok(Some(_)) = read_frame(&mut r) {}
        }

        /// Structure-aware: valid frames with bytes flipped, cut, or lengths lied.
        #[test]
        fn mutated_frames_decode_or_fail_cleanly(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            at in 0usize..4096, b in any::<u8>(), cut in proptest::option::of(0usize..4096)
        ) {
            let mut bytes = valid_frame(&json!({"ok": true, "kind": "batches"}), Some(&payload));
            bytes.extend(valid_frame(&json!({"ok": false, "error_class": "plan", "message": "x"}), None));
            let i = at % bytes.len();
            bytes[i] = b;
            if let Some(c) = cut { bytes.truncate(c % (bytes.len() + 1)); }
            let mut r = &bytes[..];
            let mut frames = 0;
            while let Ok(Some(_)) = read_frame(&mut r) { frames += 1; }
            prop_assert!(frames <= 2);
        }
    }

    #[test]
    fn a_valid_frame_round_trips() {
        let bytes = valid_frame(&json!({"id": 7}), Some(b"abc"));
        let (h, p) = read_frame(&mut &bytes[..]).unwrap().unwrap();
        assert_eq!(h["id"], 7);
        assert_eq!(p.as_deref(), Some(&b"abc"[..]));
    }
}
