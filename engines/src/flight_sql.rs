//! Any Arrow Flight SQL server as an engine (arrow-flight's Flight SQL messages
//! over tonic, the arrow version DataFusion uses). This is how distributed and
//! remote engines are reached: Ballista, Dremio, InfluxDB 3, a DataFusion build of
//! your own behind Flight SQL.
//!
//! - **execute** = `GetFlightInfo(CommandStatementQuery)`, then `DoGet` on each
//!   endpoint's ticket (on the endpoint's location when it names another server);
//!   batches arrive as Arrow IPC and go to the sink as they stream. At the timeout
//!   the request is dropped, which cancels the gRPC stream on the server.
//! - **compile** = the server's `EXPLAIN` (configurable prefix) executed the same
//!   way; a DataFusion-style answer (`plan_type`, `plan` columns) is split into the
//!   logical and physical plan, anything else is the plan text row by row.
//! - **version** = `GetSqlInfo` (server name and version), or `version:` in the
//!   profile for servers that do not answer it.
//! - **errors** are classified by gRPC status code and message (a parser error is
//!   `parse`; `InvalidArgument`, `NotFound`, `Unimplemented` are `plan`;
//!   `ResourceExhausted` is `resource`; `Internal` is `internal`, or `crash` when the
//!   server says it panicked; `Unavailable` is `crash`).
//!
//! The bearer token (`token_env`) and any header values are sent, never written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandGetSqlInfo, CommandStatementQuery, ProstMessageExt, SqlInfo};
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, UnionArray};
use datafusion::arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::{BuildError, CompiledPlan, Engine, EngineError, EngineInfo, ErrorClass, ExecLimits, ExecStats};

/// The `flight-sql` profile of the config's `engines:` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightSqlSpec {
    /// `http://host:port` (plain gRPC; TLS is not built in).
    pub url: String,
    /// Environment variable holding a bearer token (`authorization: Bearer ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// gRPC headers sent with every request (server-specific session options);
    /// their values are never written to runs or reports.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "redact_values"
    )]
    pub headers: BTreeMap<String, String>,
    /// What compiles a statement: this prefix and the statement.
    #[serde(default = "default_explain")]
    pub explain: String,
    /// The engine's version when the server does not answer `GetSqlInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn default_explain() -> String {
    "EXPLAIN".into()
}

fn redact_values<S: serde::Serializer>(h: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(h.len()))?;
    for k in h.keys() {
        m.serialize_entry(k, "***")?;
    }
    m.end()
}

/// A Flight SQL server, configured by one profile.
pub struct FlightSqlEngine {
    info: EngineInfo,
    rt: tokio::runtime::Runtime,
    channel: Channel,
    url: String,
    /// Metadata for every request (authorization and profile headers).
    metadata: Vec<(tonic::metadata::AsciiMetadataKey, tonic::metadata::AsciiMetadataValue)>,
    explain: String,
}

/// Classifies a gRPC status from a Flight SQL server.
pub fn classify_status(code: Code, message: &str) -> ErrorClass {
    let m = message.to_ascii_lowercase();
    if m.contains("parsererror") || m.contains("syntax error") || m.contains("sql error: parser") {
        return ErrorClass::Parse;
    }
    match code {
        Code::InvalidArgument | Code::NotFound | Code::Unimplemented | Code::FailedPrecondition => ErrorClass::Plan,
        Code::ResourceExhausted => ErrorClass::Resource,
        Code::DeadlineExceeded | Code::Cancelled => ErrorClass::Timeout,
        Code::Internal if m.contains("panicked") => ErrorClass::Crash,
        Code::Internal => ErrorClass::Internal,
        Code::Unavailable => ErrorClass::Crash,
        _ => ErrorClass::Execution,
    }
}

fn status_error(s: &Status) -> EngineError {
    EngineError::new(
        classify_status(s.code(), s.message()),
        format!("{}: {}", s.code().description(), s.message()),
    )
}

fn flight_error(e: FlightError) -> EngineError {
    match e {
        FlightError::Tonic(s) => status_error(&s),
        e => EngineError::new(ErrorClass::Crash, format!("protocol error: {e}")),
    }
}

impl FlightSqlEngine {
    /// Connects to the server the profile names and records its name and version.
    pub fn new(profile: &str, spec: &FlightSqlSpec) -> Result<FlightSqlEngine, BuildError> {
        let other = |message: String| BuildError::Other {
            profile: profile.into(),
            message,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sqlflight-flight-sql")
            .enable_all()
            .build()
            .map_err(|e| other(format!("cannot start a runtime: {e}")))?;
        let endpoint = Endpoint::from_shared(spec.url.clone())
            .map_err(|e| other(format!("`url` {}: {e}; write `http://host:port`", spec.url)))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let channel = rt
            .block_on(endpoint.connect())
            .map_err(|e| other(format!("cannot connect to the Flight SQL server at {}: {e}", spec.url)))?;
        let mut metadata = Vec::new();
        let header = |k: &str, v: String| -> Result<_, BuildError> {
            Ok((
                k.parse()
                    .map_err(|_| other(format!("`{k}` is not a valid header name")))?,
                v.parse()
                    .map_err(|_| other(format!("the value of header `{k}` is not valid ASCII")))?,
            ))
        };
        if let Some(var) = &spec.token_env {
            let token = crate::server::password_from_env(var).map_err(other)?;
            metadata.push(header("authorization", format!("Bearer {token}"))?);
        }
        for (k, v) in &spec.headers {
            metadata.push(header(k, v.clone())?);
        }
        let mut engine = FlightSqlEngine {
            info: EngineInfo {
                engine: "flight-sql".into(),
                version: String::new(),
                profile: profile.into(),
                settings: spec.headers.keys().map(|k| (k.clone(), "***".into())).collect(),
                disabled_rules: Vec::new(),
            },
            rt,
            channel,
            url: spec.url.clone(),
            metadata,
            explain: spec.explain.clone(),
        };
        let (name, version) = match (engine.sql_info(), &spec.version) {
            (Ok(info), _) => info,
            (Err(_), Some(_)) => Default::default(),
            (Err(e), None) => {
                return Err(other(format!(
                    "the Flight SQL server at {} did not answer GetSqlInfo: {}; if it does not implement \
                     GetSqlInfo, give the engine's `version:` in the profile",
                    spec.url, e.message
                )));
            }
        };
        if !name.is_empty() {
            engine.info.engine = name;
        }
        engine.info.version = match (&spec.version, version.is_empty()) {
            (Some(v), _) => v.clone(),
            (None, false) => version,
            (None, true) => {
                return Err(other(format!(
                    "the Flight SQL server at {} does not report its version; give `version:` in the profile",
                    spec.url
                )));
            }
        };
        Ok(engine)
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        for (k, v) in &self.metadata {
            r.metadata_mut().insert(k.clone(), v.clone());
        }
        r
    }

    /// Runs `fut` on this engine's runtime until `deadline`.
    fn block<F: std::future::Future>(&self, deadline: Instant, fut: F) -> Result<F::Output, EngineError> {
        self.rt
            .block_on(async move { tokio::time::timeout_at(deadline.into(), fut).await })
            .map_err(|_| {
                EngineError::new(
                    ErrorClass::Timeout,
                    "the Flight SQL server did not answer in time; the request was cancelled",
                )
            })
    }

    /// The server's name and version from `GetSqlInfo`.
    fn sql_info(&self) -> Result<(String, String), EngineError> {
        let cmd = CommandGetSqlInfo {
            info: vec![
                SqlInfo::FlightSqlServerName as u32,
                SqlInfo::FlightSqlServerVersion as u32,
            ],
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut name, mut version) = (String::new(), String::new());
        self.stream_command(cmd.as_any().encode_to_vec(), deadline, &mut |b| {
            let ids = b
                .column(0)
                .as_primitive_opt::<datafusion::arrow::datatypes::UInt32Type>();
            let values = b.column(1).as_any().downcast_ref::<UnionArray>();
            if let (Some(ids), Some(values)) = (ids, values) {
                for i in 0..b.num_rows() {
                    let child = values.child(values.type_id(i));
                    let Some(s) = child.as_string_opt::<i32>() else {
                        continue;
                    };
                    let text = s.value(values.value_offset(i)).to_string();
                    match ids.value(i) {
                        x if x == SqlInfo::FlightSqlServerName as u32 => name = text,
                        x if x == SqlInfo::FlightSqlServerVersion as u32 => version = text,
                        _ => {}
                    }
                }
            }
            Ok(())
        })?;
        Ok((name, version))
    }

    /// `GetFlightInfo` for a command, then `DoGet` of every endpoint, each batch
    /// handed to `sink`. Returns the schema.
    fn stream_command(
        &self,
        cmd: Vec<u8>,
        deadline: Instant,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<Option<SchemaRef>, EngineError> {
        let mut client = FlightServiceClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX);
        let descriptor = FlightDescriptor::new_cmd(cmd);
        let info: FlightInfo = self
            .block(deadline, client.get_flight_info(self.request(descriptor)))?
            .map_err(|s| status_error(&s))?
            .into_inner();
        let mut schema: Option<SchemaRef> = info.clone().try_decode_schema().ok().map(std::sync::Arc::new);
        for ep in info.endpoint {
            let ticket: Ticket = ep
                .ticket
                .ok_or_else(|| EngineError::new(ErrorClass::Crash, "protocol error: an endpoint without a ticket"))?;
            // An endpoint on another server is fetched there.
            let mut c = match ep.location.first().map(|l| l.uri.as_str()) {
                Some(uri)
                    if !uri.is_empty() && uri != self.url && !uri.starts_with("arrow-flight-reuse-connection") =>
                {
                    let unreachable = |e: &dyn std::fmt::Display| {
                        EngineError::new(ErrorClass::Crash, format!("cannot reach endpoint {uri}: {e}"))
                    };
                    let ep = Endpoint::from_shared(uri.to_string()).map_err(|e| unreachable(&e))?;
                    let ch = self.block(deadline, ep.connect())?.map_err(|e| unreachable(&e))?;
                    FlightServiceClient::new(ch).max_decoding_message_size(usize::MAX)
                }
                _ => client.clone(),
            };
            let response = self
                .block(deadline, c.do_get(self.request(ticket)))?
                .map_err(|s| status_error(&s))?;
            let mut stream = FlightRecordBatchStream::new_from_flight_data(
                response.into_inner().map_err(|s| FlightError::Tonic(Box::new(s))),
            );
            // Batches go to the sink outside the runtime.
            while let Some(b) = self.block(deadline, stream.next())? {
                let b = b.map_err(flight_error)?;
                sink(&b)?;
            }
            if let Some(s) = stream.schema() {
                schema = Some(s.clone());
            }
        }
        Ok(schema)
    }

    fn statement(&self, sql: &str) -> Vec<u8> {
        CommandStatementQuery {
            query: sql.to_string(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec()
    }
}

impl Engine for FlightSqlEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        let deadline = Instant::now() + crate::WORKER_COMPILE_TIMEOUT;
        let explain = format!("{} {}", self.explain, sql.trim().trim_end_matches(';'));
        let mut logical = String::new();
        let mut physical = String::new();
        let mut other = String::new();
        self.stream_command(self.statement(&explain), deadline, &mut |b| {
            let schema = b.schema();
            let col = |name: &str| {
                schema
                    .index_of(name)
                    .ok()
                    .and_then(|i| b.column(i).as_string_opt::<i32>())
            };
            if let (Some(kind), Some(plan)) = (col("plan_type"), col("plan")) {
                for i in 0..b.num_rows() {
                    match kind.value(i) {
                        "logical_plan" => logical.push_str(plan.value(i)),
                        "physical_plan" => physical.push_str(plan.value(i)),
                        _ => {}
                    }
                }
                return Ok(());
            }
            let formatters: Vec<_> = b
                .columns()
                .iter()
                .filter_map(|c| {
                    datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).ok()
                })
                .collect();
            for i in 0..b.num_rows() {
                let row: Vec<String> = formatters.iter().map(|f| f.value(i).to_string()).collect();
                other.push_str(&row.join(" "));
                other.push('\n');
            }
            Ok(())
        })?;
        if logical.is_empty() && physical.is_empty() {
            return Ok(CompiledPlan {
                logical: other.clone(),
                physical: Some(other),
            });
        }
        Ok(CompiledPlan {
            logical,
            physical: (!physical.is_empty()).then_some(physical),
        })
    }

    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        let deadline = Instant::now() + limits.timeout;
        let (mut rows, mut batches) = (0u64, 0u64);
        let schema = self.stream_command(self.statement(sql), deadline, &mut |b| {
            rows += b.num_rows() as u64;
            batches += 1;
            sink(b)
        })?;
        Ok(ExecStats {
            schema,
            rows,
            batches,
            peak_memory: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        assert_eq!(
            classify_status(Code::InvalidArgument, "SQL error: ParserError(\"x\")"),
            ErrorClass::Parse
        );
        assert_eq!(
            classify_status(Code::InvalidArgument, "table not found"),
            ErrorClass::Plan
        );
        assert_eq!(
            classify_status(Code::Internal, "thread panicked at x"),
            ErrorClass::Crash
        );
        assert_eq!(
            classify_status(Code::Unavailable, "connection refused"),
            ErrorClass::Crash
        );
        assert_eq!(classify_status(Code::ResourceExhausted, "memory"), ErrorClass::Resource);
        assert_eq!(classify_status(Code::Unknown, "divide by zero"), ErrorClass::Execution);
    }

    #[test]
    fn header_values_are_not_serialized() {
        let spec = FlightSqlSpec {
            url: "http://127.0.0.1:1".into(),
            token_env: Some("TOKEN".into()),
            headers: [("x-session".to_string(), "s3cret".to_string())].into(),
            explain: default_explain(),
            version: None,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(!json.contains("s3cret") && json.contains("***"), "{json}");
    }
}
