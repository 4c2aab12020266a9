//! The worker side of the protocol for any Rust [`Engine`](crate::Engine):
//! `sqlflight worker` serves this build's embedded DataFusion with it.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlflight_diffing::ErrorClass;

use crate::{Engine, EngineError, ExecLimits};

use super::protocol::*;

/// What the host asks a worker to set up: the profile's settings, the data
/// tables, and the statements to run first (DDL, catalog and profile setup).
#[derive(Debug, Clone, Default)]
pub struct SetupRequest {
    /// The profile's settings.
    pub settings: BTreeMap<String, String>,
    /// Data tables by name.
    pub tables: BTreeMap<String, sqlflight_corpora::TableSource>,
    /// Statements to run first, in order.
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
