//! A PostgreSQL server as an engine (the `postgres` crate, i.e. tokio-postgres).
//!
//! - **compile** = `EXPLAIN (COSTS OFF, FORMAT JSON)`, rendered as one
//!   `Node Type: key=value, ...` line per plan node (no estimates), so plan diffs and
//!   change signatures show shape (`Hash Join -> Merge Join`).
//! - **execute** = the statement through the extended protocol (one statement only;
//!   a string with several is refused by the server), rows streamed into Arrow
//!   batches of 8,192 rows with the type mapping below.
//! - **profiles** set planner settings per session (`SET enable_hashjoin = 'off'`),
//!   so two profiles of one server are a real optimizer A/B. Sessions are read-only
//!   (`default_transaction_read_only`) unless the profile says `read_only: false`.
//! - **timeouts**: `statement_timeout` per statement; a server that does not answer
//!   2 s after that is sent a cancel request.
//!
//! Type mapping (result column type → Arrow):
//!
//! | PostgreSQL | Arrow |
//! |---|---|
//! | boolean | Boolean |
//! | smallint, integer, bigint | Int16, Int32, Int64 |
//! | real, double precision | Float32, Float64 |
//! | numeric | Utf8, the exact decimal text PostgreSQL prints (numeric has a per-value scale that a fixed-scale Arrow decimal could only round) |
//! | text, varchar, char(n), name, "char" | Utf8 |
//! | json, jsonb | Utf8 (the JSON text) |
//! | uuid | Utf8 (`8-4-4-4-12` hex) |
//! | bytea | Binary |
//! | date | Date32 |
//! | timestamp, timestamptz | Timestamp(µs), Timestamp(µs, "UTC") |
//! | time | Time64(µs) |
//! | interval | Interval(MonthDayNano) |
//! | oid | Int64 |
//! | anything else (arrays, ranges, enums, ...) | Binary: the value's binary wire form |

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, IntervalMonthDayNanoBuilder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano, IntervalUnit, Schema, SchemaRef, TimeUnit};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, Type};
use postgres::{Client, NoTls};
use sqlflight_corpora::Catalog;

use crate::server::{self, Pool, ServerSpec};
use crate::{BuildError, CompiledPlan, Engine, EngineError, EngineInfo, ErrorClass, ExecLimits, ExecStats};

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8192;

struct Session {
    client: Client,
    /// The `statement_timeout` last set, in milliseconds.
    timeout_ms: u64,
    last_used: Instant,
}

/// Pooled sessions idle longer than this are checked before use.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A PostgreSQL server, configured by one profile.
pub struct PostgresEngine {
    info: EngineInfo,
    config: postgres::Config,
    /// `user@host:port/dbname`, for messages.
    target: String,
    session_setup: Vec<String>,
    pool: Pool<Session>,
}

impl PostgresEngine {
    /// Connects once to check the profile (settings, setup), loads the catalog
    /// when asked, and records the server version.
    pub fn new(profile: &str, spec: &ServerSpec, catalog: &Catalog) -> Result<PostgresEngine, BuildError> {
        let other = |message: String| BuildError::Other {
            profile: profile.into(),
            message,
        };
        let mut config = postgres::Config::from_str(&spec.url).map_err(|e| {
            other(format!(
                "`url` is not a PostgreSQL connection string ({e}); write `host=... port=... user=... dbname=...` or `postgresql://user@host:port/db`"
            ))
        })?;
        if let Some(var) = &spec.password_env {
            config.password(server::password_from_env(var).map_err(other)?);
        }
        if config.get_application_name().is_none() {
            config.application_name("sqlflight");
        }
        let target = target_of(&config);
        let mut session_setup = Vec::new();
        for (k, v) in &spec.settings {
            if !server::valid_setting_name(k) {
                return Err(BuildError::Setting {
                    profile: profile.into(),
                    key: k.clone(),
                    message: "not a setting name (letters, digits, `_` and `.` only)".into(),
                });
            }
            session_setup.push(format!("SET {k} = {}", server::quote_literal(v, false)));
        }
        let mut engine = PostgresEngine {
            info: EngineInfo {
                engine: "postgresql".into(),
                version: String::new(),
                profile: profile.into(),
                settings: spec.settings.clone(),
                disabled_rules: Vec::new(),
            },
            config,
            target,
            session_setup,
            pool: Pool::new(),
        };
        let mut first = engine.connect_plain().map_err(|e| other(e.message))?;
        // Settings one by one, so a bad one is named.
        for (stmt, (k, _)) in engine.session_setup.iter().zip(&spec.settings) {
            first.batch_execute(stmt).map_err(|e| BuildError::Setting {
                profile: profile.into(),
                key: k.clone(),
                message: db_message(&e),
            })?;
        }
        if spec.load_catalog {
            for (name, source) in &catalog.tables {
                load_table(&mut first, name, source).map_err(|m| BuildError::Catalog {
                    profile: profile.into(),
                    origin: source.path.display().to_string(),
                    message: m,
                })?;
            }
        }
        for stmt in &spec.setup {
            first.batch_execute(stmt).map_err(|e| BuildError::Setup {
                profile: profile.into(),
                statement: stmt.clone(),
                message: db_message(&e),
            })?;
        }
        engine.session_setup.extend(spec.setup.iter().cloned());
        if spec.read_only {
            engine
                .session_setup
                .push("SET default_transaction_read_only = on".into());
        }
        let version = first
            .query_one("SHOW server_version", &[])
            .and_then(|r| r.try_get::<_, String>(0))
            .map_err(|e| {
                other(format!(
                    "cannot read the server version from {}: {}",
                    engine.target,
                    db_message(&e)
                ))
            })?;
        engine.info.version = version.split_whitespace().next().unwrap_or(&version).to_string();
        drop(first);
        Ok(engine)
    }

    fn connect_plain(&self) -> Result<Client, EngineError> {
        self.config
            .connect(NoTls)
            .map_err(|e| server::connection_error(&self.target, db_message(&e)))
    }

    /// A pooled session, or a new one. A session idle for a while is checked
    /// first (the server may have restarted or closed it).
    fn session(&self) -> Result<Session, EngineError> {
        while let Some(mut s) = self.pool.take() {
            if s.client.is_closed() {
                continue;
            }
            if s.last_used.elapsed() < IDLE_CHECK || s.client.is_valid(Duration::from_secs(5)).is_ok() {
                return Ok(s);
            }
        }
        let mut client = self.connect_plain()?;
        for stmt in &self.session_setup {
            client.batch_execute(stmt).map_err(|e| {
                server::connection_error(&self.target, format!("session setup `{stmt}`: {}", db_message(&e)))
            })?;
        }
        Ok(Session {
            client,
            timeout_ms: 0,
            last_used: Instant::now(),
        })
    }

    /// Runs `work` on a pooled session with `statement_timeout` set to `timeout`,
    /// a watchdog cancel past it, and the session returned to the pool if healthy.
    /// A session lost during `work` is never retried: a backend that dies under a
    /// statement is the `crash` outcome the tool exists to find.
    fn with_session<T>(
        &self,
        timeout: Duration,
        mut work: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, EngineError> {
        let mut s = self.session()?;
        let out = self.run_on(&mut s, timeout, &mut work);
        let healthy = !s.client.is_closed()
            && match &out {
                Ok(_) => true,
                Err(e) => e
                    .as_db_error()
                    .is_some_and(|db| classify_sqlstate(db.code().code()) != ErrorClass::Crash),
            };
        if healthy {
            // A failed statement leaves no transaction open (autocommit).
            s.last_used = Instant::now();
            self.pool.give(s);
        }
        out.map_err(|e| classify(&e, &self.target))
    }

    fn run_on<T>(
        &self,
        s: &mut Session,
        timeout: Duration,
        work: &mut impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as u64;
        if s.timeout_ms != ms {
            s.client.batch_execute(&format!("SET statement_timeout = {ms}"))?;
            s.timeout_ms = ms;
        }
        let token = s.client.cancel_token();
        server::with_watchdog(timeout, move || drop(token.cancel_query(NoTls)), || work(&mut s.client))
    }
}

fn target_of(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().unwrap_or("")
    )
}

/// The server's message with its SQLSTATE, or the client error.
fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Classifies an error by its SQLSTATE; a lost connection is a `crash`.
pub fn classify_sqlstate(code: &str) -> ErrorClass {
    match code {
        "42601" | "42602" | "42622" | "42939" => ErrorClass::Parse,
        "57014" => ErrorClass::Timeout,
        "0A000" => ErrorClass::Plan,
        c if c.starts_with("42") => ErrorClass::Plan,
        c if c.starts_with("53") || c.starts_with("54") => ErrorClass::Resource,
        c if c.starts_with("XX") => ErrorClass::Internal,
        c if c.starts_with("57P") || c.starts_with("08") => ErrorClass::Crash,
        _ => ErrorClass::Execution,
    }
}

fn classify(e: &postgres::Error, target: &str) -> EngineError {
    match e.as_db_error() {
        Some(db) => EngineError::new(classify_sqlstate(db.code().code()), db_message(e)),
        None => server::connection_error(target, e),
    }
}

impl Engine for PostgresEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        let explain = format!("EXPLAIN (COSTS OFF, FORMAT JSON) {}", sql.trim().trim_end_matches(';'));
        let rows = self.with_session(crate::WORKER_COMPILE_TIMEOUT, |c| c.query(&explain, &[]))?;
        let mut text = String::new();
        for r in &rows {
            let raw: Raw = r
                .try_get(0)
                .map_err(|e| EngineError::new(ErrorClass::Internal, format!("EXPLAIN output: {e}")))?;
            text.push_str(&String::from_utf8_lossy(raw.0.unwrap_or_default()));
        }
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("EXPLAIN output is not JSON: {e}")))?;
        let mut plan = String::new();
        server::render_plan(&json, &mut plan, 0, &|_, v| v["Node Type"].as_str().map(str::to_string));
        Ok(CompiledPlan {
            logical: plan.clone(),
            physical: Some(plan),
        })
    }

    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError> {
        let mut sink_error = None;
        let mut stats = ExecStats::default();
        let result = self.with_session(limits.timeout, |c| {
            let stmt = c.prepare(sql)?;
            let schema = arrow_schema(stmt.columns());
            stats.schema = Some(schema.clone());
            let mut rows = c.query_raw(&stmt, Vec::<String>::new())?;
            let mut batch = Columns::new(&schema);
            let mut flush = |batch: &mut Columns, stats: &mut ExecStats| -> Result<(), EngineError> {
                let b = batch.finish(&schema)?;
                stats.rows += b.num_rows() as u64;
                stats.batches += 1;
                sink(&b)
            };
            while let Some(row) = rows.next()? {
                if let Err(e) = batch.push(&row) {
                    sink_error = Some(e);
                    return Ok(());
                }
                if batch.len == BATCH_ROWS
                    && let Err(e) = flush(&mut batch, &mut stats)
                {
                    sink_error = Some(e);
                    return Ok(());
                }
            }
            if (batch.len > 0 || stats.batches == 0)
                && let Err(e) = flush(&mut batch, &mut stats)
            {
                sink_error = Some(e);
            }
            Ok(())
        });
        result?;
        if let Some(e) = sink_error {
            return Err(e);
        }
        Ok(stats)
    }
}

/// Any value's raw binary wire form.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The Arrow type of a PostgreSQL result column type.
pub fn arrow_type(t: &Type) -> DataType {
    match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC
        | Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::CHAR
        | Type::JSON
        | Type::JSONB
        | Type::UUID
        | Type::UNKNOWN => DataType::Utf8,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => DataType::Binary,
    }
}

fn arrow_schema(columns: &[postgres::Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name(), arrow_type(c.type_()), true))
            .collect::<Vec<_>>(),
    ))
}

enum Builder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
}

struct Columns {
    builders: Vec<Builder>,
    len: usize,
}

/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

type DecodeError = Box<dyn std::error::Error + Sync + Send>;

fn be_i32(raw: &[u8]) -> Result<i32, DecodeError> {
    Ok(i32::from_be_bytes(raw.try_into().map_err(|_| "bad length")?))
}
fn be_i64(raw: &[u8]) -> Result<i64, DecodeError> {
    Ok(i64::from_be_bytes(raw.try_into().map_err(|_| "bad length")?))
}

impl Columns {
    fn new(schema: &Schema) -> Columns {
        let n = BATCH_ROWS;
        let builders = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(n)),
                DataType::Int16 => Builder::I16(Int16Builder::with_capacity(n)),
                DataType::Int32 => Builder::I32(Int32Builder::with_capacity(n)),
                DataType::Int64 => Builder::I64(Int64Builder::with_capacity(n)),
                DataType::Float32 => Builder::F32(Float32Builder::with_capacity(n)),
                DataType::Float64 => Builder::F64(Float64Builder::with_capacity(n)),
                DataType::Utf8 => Builder::Text(StringBuilder::with_capacity(n, n * 16)),
                DataType::Date32 => Builder::Date(Date32Builder::with_capacity(n)),
                DataType::Timestamp(_, tz) => {
                    Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n).with_timezone_opt(tz.clone()))
                }
                DataType::Time64(_) => Builder::Time(Time64MicrosecondBuilder::with_capacity(n)),
                DataType::Interval(_) => Builder::Interval(IntervalMonthDayNanoBuilder::with_capacity(n)),
                _ => Builder::Bin(BinaryBuilder::with_capacity(n, n * 16)),
            })
            .collect();
        Columns { builders, len: 0 }
    }

    fn push(&mut self, row: &postgres::Row) -> Result<(), EngineError> {
        for (i, b) in self.builders.iter_mut().enumerate() {
            let ty = row.columns()[i].type_();
            let raw: Raw = row
                .try_get(i)
                .map_err(|e| EngineError::new(ErrorClass::Internal, format!("column {i}: {e}")))?;
            decode(b, ty, raw.0).map_err(|e| {
                EngineError::new(
                    ErrorClass::Internal,
                    format!("cannot decode column `{}` of type {ty}: {e}", row.columns()[i].name()),
                )
            })?;
        }
        self.len += 1;
        Ok(())
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, EngineError> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::I16(b) => Arc::new(b.finish()),
                    Builder::I32(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::F32(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Bin(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                    Builder::Interval(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.len = 0;
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("cannot build a result batch: {e}")))
    }
}

fn decode(b: &mut Builder, ty: &Type, raw: Option<&[u8]>) -> Result<(), DecodeError> {
    let Some(raw) = raw else {
        match b {
            Builder::Bool(b) => b.append_null(),
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bin(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Interval(b) => b.append_null(),
        }
        return Ok(());
    };
    match b {
        Builder::Bool(b) => b.append_value(bool::from_sql(ty, raw)?),
        Builder::I16(b) => b.append_value(i16::from_sql(ty, raw)?),
        Builder::I32(b) => b.append_value(i32::from_sql(ty, raw)?),
        Builder::I64(b) => b.append_value(if *ty == Type::OID {
            i64::from(u32::from_sql(ty, raw)?)
        } else {
            i64::from_sql(ty, raw)?
        }),
        Builder::F32(b) => b.append_value(f32::from_sql(ty, raw)?),
        Builder::F64(b) => b.append_value(f64::from_sql(ty, raw)?),
        Builder::Text(b) => match *ty {
            Type::NUMERIC => b.append_value(numeric_text(raw)?),
            Type::UUID => b.append_value(uuid_text(raw)?),
            Type::JSONB => b.append_value(std::str::from_utf8(raw.get(1..).unwrap_or_default())?),
            Type::CHAR => b.append_value(char::from(raw.first().copied().unwrap_or(0)).to_string()),
            _ => b.append_value(std::str::from_utf8(raw)?),
        },
        Builder::Bin(b) => b.append_value(raw),
        Builder::Date(b) => b.append_value(be_i32(raw)?.saturating_add(PG_EPOCH_DAYS)),
        Builder::Ts(b) => b.append_value(be_i64(raw)?.saturating_add(PG_EPOCH_MICROS)),
        Builder::Time(b) => b.append_value(be_i64(raw)?),
        Builder::Interval(b) => {
            if raw.len() != 16 {
                return Err("bad interval length".into());
            }
            let micros = be_i64(&raw[0..8])?;
            let days = be_i32(&raw[8..12])?;
            let months = be_i32(&raw[12..16])?;
            b.append_value(IntervalMonthDayNano::new(months, days, micros.saturating_mul(1000)))
        }
    }
    Ok(())
}

fn uuid_text(raw: &[u8]) -> Result<String, DecodeError> {
    if raw.len() != 16 {
        return Err("bad uuid length".into());
    }
    let mut s = String::with_capacity(36);
    for (i, byte) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    Ok(s)
}

/// The text PostgreSQL prints for a `numeric` in binary wire form (base-10000
/// digits, weight, sign, display scale).
pub fn numeric_text(raw: &[u8]) -> Result<String, DecodeError> {
    let word = |i: usize| -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes([
            *raw.get(i).ok_or("short numeric")?,
            *raw.get(i + 1).ok_or("short numeric")?,
        ]))
    };
    let ndigits = word(0)? as usize;
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err("bad numeric sign".into()),
    }
    if raw.len() != 8 + 2 * ndigits {
        return Err("bad numeric length".into());
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(8 + 2 * i)).collect::<Result<_, _>>()?;
    let digit = |i: i32| -> u16 {
        if i >= 0 {
            digits.get(i as usize).copied().unwrap_or(0)
        } else {
            0
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", digit(i));
            } else {
                let _ = write!(s, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(i));
            i += 1;
        }
        frac.truncate(dscale);
        s.push_str(&frac);
    }
    Ok(s)
}

/// The PostgreSQL column type for an Arrow type when loading a table.
fn pg_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            format!("numeric({p},{s})")
        }
        DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            "bytea".into()
        }
        _ => "text".into(),
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Creates `name` from the file's schema and fills it with `COPY ... FROM STDIN`,
/// unless a table of that name was loaded from the same file before.
fn load_table(client: &mut Client, name: &str, source: &sqlflight_corpora::TableSource) -> Result<(), String> {
    let stamp = server::source_stamp(source);
    let current: Option<String> = client
        .query_opt(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c \
             WHERE c.relname = $1 AND c.relkind = 'r' AND pg_table_is_visible(c.oid)",
            &[&name],
        )
        .map_err(|e| db_message(&e))?
        .and_then(|r| r.get::<_, Option<String>>(0));
    if current.as_deref() == Some(stamp.as_str()) {
        return Ok(());
    }
    let schema = server::table_schema(name, source)?;
    let qname = quote_ident(name);
    let cols = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", quote_ident(f.name()), pg_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tx = client.transaction().map_err(|e| db_message(&e))?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {qname}; CREATE TABLE {qname} ({cols})"))
        .map_err(|e| db_message(&e))?;
    let mut writer = tx
        .copy_in(&format!("COPY {qname} FROM STDIN"))
        .map_err(|e| db_message(&e))?;
    let mut line = String::new();
    server::read_table(name, source, &mut |batch| {
        use std::io::Write;
        server::batch_rows(batch, |values| {
            line.clear();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    line.push('\t');
                }
                match v {
                    None => line.push_str("\\N"),
                    Some(v) => {
                        for c in v.chars() {
                            match c {
                                '\\' => line.push_str("\\\\"),
                                '\t' => line.push_str("\\t"),
                                '\n' => line.push_str("\\n"),
                                '\r' => line.push_str("\\r"),
                                c => line.push(c),
                            }
                        }
                    }
                }
            }
            line.push('\n');
            writer.write_all(line.as_bytes()).map_err(|e| e.to_string())
        })
    })?;
    writer.finish().map_err(|e| db_message(&e))?;
    tx.batch_execute(&format!(
        "COMMENT ON TABLE {qname} IS {}; ANALYZE {qname}",
        server::quote_literal(&stamp, false)
    ))
    .map_err(|e| db_message(&e))?;
    tx.commit().map_err(|e| db_message(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_print_like_postgres() {
        assert_eq!(numeric_text(&numeric(2, 0, 0, 2, &[123, 4500])).unwrap(), "123.45");
        assert_eq!(numeric_text(&numeric(1, -1, 0x4000, 4, &[5])).unwrap(), "-0.0005");
        assert_eq!(numeric_text(&numeric(2, 1, 0, 0, &[1, 0])).unwrap(), "10000");
        assert_eq!(numeric_text(&numeric(1, 1, 0, 0, &[1])).unwrap(), "10000");
        assert_eq!(numeric_text(&numeric(0, 0, 0, 3, &[])).unwrap(), "0.000");
        assert_eq!(numeric_text(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn sqlstates_classify() {
        assert_eq!(classify_sqlstate("42601"), ErrorClass::Parse);
        assert_eq!(classify_sqlstate("42P01"), ErrorClass::Plan);
        assert_eq!(classify_sqlstate("22012"), ErrorClass::Execution);
        assert_eq!(classify_sqlstate("57014"), ErrorClass::Timeout);
        assert_eq!(classify_sqlstate("53200"), ErrorClass::Resource);
        assert_eq!(classify_sqlstate("XX000"), ErrorClass::Internal);
        assert_eq!(classify_sqlstate("57P02"), ErrorClass::Crash);
    }
}
