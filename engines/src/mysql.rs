//! A MySQL or MariaDB server as an engine (the `mysql` crate).
//!
//! - **compile** = `EXPLAIN FORMAT=JSON`, rendered as one `name: key=value, ...`
//!   line per JSON object (`query_block`, `nested_loop`, `table`, `filesort`, ...;
//!   a table line is named after its access type, `table ALL`, `table ref`), without
//!   row, cost and filter estimates, so plan diffs show shape.
//! - **execute** = the statement as a prepared statement (one statement only), rows
//!   streamed into Arrow batches of 8,192 rows with the type mapping below.
//! - **profiles** set session variables (`optimizer_switch`, `join_cache_level`,
//!   ...); sessions are read-only transactions unless `read_only: false`.
//! - **timeouts**: `max_statement_time` (MariaDB) or `max_execution_time` (MySQL)
//!   per session; a statement still running 2 s after that gets `KILL QUERY` from a
//!   second connection.
//!
//! Type mapping (result column type → Arrow):
//!
//! | MySQL / MariaDB | Arrow |
//! |---|---|
//! | TINYINT, SMALLINT, MEDIUMINT, INT, YEAR | Int32 (Int64 for INT UNSIGNED) |
//! | BIGINT | Int64 (UInt64 when UNSIGNED) |
//! | FLOAT, DOUBLE | Float32, Float64 |
//! | DECIMAL(p, s) | Decimal128(38, s) |
//! | DATE | Date32 |
//! | DATETIME, TIMESTAMP | Timestamp(µs) |
//! | TIME | Duration(µs) (TIME spans ±838 hours) |
//! | CHAR, VARCHAR, TEXT, ENUM, SET, JSON | Utf8 |
//! | BINARY, VARBINARY, BLOB, BIT, anything else | Binary |

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, DurationMicrosecondBuilder, Float32Builder,
    Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value};
use sqlflight_corpora::Catalog;

use crate::server::{self, Pool, ServerSpec};
use crate::{BuildError, CompiledPlan, Engine, EngineError, EngineInfo, ErrorClass, ExecLimits, ExecStats};

const BATCH_ROWS: usize = 8192;
/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

struct Session {
    conn: Conn,
    timeout_ms: u64,
    last_used: Instant,
}

/// Pooled sessions idle longer than this are pinged before use.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A MySQL or MariaDB server, configured by one profile.
pub struct MysqlEngine {
    info: EngineInfo,
    opts: Opts,
    target: String,
    mariadb: bool,
    session_setup: Vec<String>,
    pool: Pool<Session>,
}

/// A setting's value as SQL: numbers and bare words as they are, anything else
/// quoted.
fn setting_value(v: &str) -> String {
    if v.parse::<f64>().is_ok() || (!v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        v.to_string()
    } else {
        server::quote_literal(v, true)
    }
}

fn mysql_message(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("{} (error {}, SQLSTATE {})", m.message, m.code, m.state),
        e => e.to_string(),
    }
}

/// Classifies a server error code.
pub fn classify_code(code: u16) -> ErrorClass {
    match code {
        1064 | 1149 => ErrorClass::Parse,
        1969 | 3024 | 1317 => ErrorClass::Timeout,
        1037 | 1038 | 1041 | 1114 | 1135 | 3170 => ErrorClass::Resource,
        1046 | 1049 | 1051 | 1052 | 1054 | 1055 | 1056 | 1060 | 1066 | 1109 | 1111 | 1140 | 1146 | 1235 | 1247
        | 1248 | 1305 | 1582 | 1583 | 1584 | 1630 | 3065 | 4078 => ErrorClass::Plan,
        1030 | 1105 => ErrorClass::Internal,
        1927 | 2006 | 2013 => ErrorClass::Crash,
        _ => ErrorClass::Execution,
    }
}

fn classify(e: &mysql::Error, target: &str) -> EngineError {
    match e {
        mysql::Error::MySqlError(m) => EngineError::new(classify_code(m.code), mysql_message(e)),
        e => server::connection_error(target, e),
    }
}

impl MysqlEngine {
    pub fn new(profile: &str, spec: &ServerSpec, catalog: &Catalog) -> Result<MysqlEngine, BuildError> {
        let other = |message: String| BuildError::Other {
            profile: profile.into(),
            message,
        };
        let opts = Opts::from_url(&spec.url).map_err(|e| {
            other(format!(
                "`url` is not a MySQL URL ({e}); write `mysql://user@host:port/database`"
            ))
        })?;
        let mut builder = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)));
        if let Some(var) = &spec.password_env {
            builder = builder.pass(Some(server::password_from_env(var).map_err(other)?));
        }
        let opts: Opts = builder.into();
        let target = format!(
            "{}@{}:{}/{}",
            opts.get_user().unwrap_or("?"),
            opts.get_ip_or_hostname(),
            opts.get_tcp_port(),
            opts.get_db_name().unwrap_or("")
        );
        for k in spec.settings.keys() {
            if !server::valid_setting_name(k) {
                return Err(BuildError::Setting {
                    profile: profile.into(),
                    key: k.clone(),
                    message: "not a variable name (letters, digits, `_` and `.` only)".into(),
                });
            }
        }
        let mut engine = MysqlEngine {
            info: EngineInfo {
                engine: "mysql".into(),
                version: String::new(),
                profile: profile.into(),
                settings: spec.settings.clone(),
                disabled_rules: Vec::new(),
            },
            opts,
            target,
            mariadb: false,
            session_setup: Vec::new(),
            pool: Pool::new(),
        };
        let mut first = engine.connect_plain().map_err(|e| other(e.message))?;
        for (k, v) in &spec.settings {
            first
                .query_drop(format!("SET SESSION {k} = {}", setting_value(v)))
                .map_err(|e| BuildError::Setting {
                    profile: profile.into(),
                    key: k.clone(),
                    message: mysql_message(&e),
                })?;
            engine
                .session_setup
                .push(format!("SET SESSION {k} = {}", setting_value(v)));
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
            first.query_drop(stmt).map_err(|e| BuildError::Setup {
                profile: profile.into(),
                statement: stmt.clone(),
                message: mysql_message(&e),
            })?;
        }
        engine.session_setup.extend(spec.setup.iter().cloned());
        if spec.read_only {
            engine.session_setup.push("SET SESSION TRANSACTION READ ONLY".into());
        }
        let version: Option<String> = first
            .query_first("SELECT VERSION()")
            .map_err(|e| other(format!("cannot read the server version: {}", mysql_message(&e))))?;
        let version = version.unwrap_or_default();
        engine.mariadb = version.contains("MariaDB");
        engine.info.engine = if engine.mariadb { "mariadb" } else { "mysql" }.into();
        engine.info.version = version.split('-').next().unwrap_or(&version).to_string();
        Ok(engine)
    }

    fn connect_plain(&self) -> Result<Conn, EngineError> {
        Conn::new(self.opts.clone()).map_err(|e| server::connection_error(&self.target, mysql_message(&e)))
    }

    fn session(&self) -> Result<Session, EngineError> {
        // A session idle for a while is checked first (the server may have
        // closed it); a lost session is never retried mid-statement.
        while let Some(mut s) = self.pool.take() {
            if s.last_used.elapsed() < IDLE_CHECK || s.conn.ping().is_ok() {
                return Ok(s);
            }
        }
        let mut conn = self.connect_plain()?;
        for stmt in &self.session_setup {
            conn.query_drop(stmt).map_err(|e| {
                server::connection_error(&self.target, format!("session setup `{stmt}`: {}", mysql_message(&e)))
            })?;
        }
        Ok(Session {
            conn,
            timeout_ms: 0,
            last_used: Instant::now(),
        })
    }

    fn with_session<T>(
        &self,
        timeout: Duration,
        work: impl FnOnce(&mut Conn) -> Result<T, mysql::Error>,
    ) -> Result<T, EngineError> {
        let mut s = self.session()?;
        let ms = timeout.as_millis().clamp(1, u32::MAX as u128) as u64;
        if s.timeout_ms != ms {
            let set = if self.mariadb {
                format!("SET SESSION max_statement_time = {:.3}", ms as f64 / 1000.0)
            } else {
                format!("SET SESSION max_execution_time = {ms}")
            };
            s.conn.query_drop(set).map_err(|e| classify(&e, &self.target))?;
            s.timeout_ms = ms;
        }
        let id = s.conn.connection_id();
        let opts = self.opts.clone();
        let cancel = move || {
            if let Ok(mut c) = Conn::new(opts) {
                let _ = c.query_drop(format!("KILL QUERY {id}"));
            }
        };
        let out = server::with_watchdog(timeout, cancel, || work(&mut s.conn));
        let lost = matches!(&out, Err(e) if !matches!(e, mysql::Error::MySqlError(_)));
        let out = out.map_err(|e| classify(&e, &self.target));
        if !lost {
            s.last_used = Instant::now();
            self.pool.give(s);
        }
        out
    }
}

impl Engine for MysqlEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        let explain = format!("EXPLAIN FORMAT=JSON {}", sql.trim().trim_end_matches(';'));
        let text: Option<String> = self.with_session(crate::WORKER_COMPILE_TIMEOUT, |c| c.exec_first(&explain, ()))?;
        let json: serde_json::Value = serde_json::from_str(text.as_deref().unwrap_or("null"))
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("EXPLAIN output is not JSON: {e}")))?;
        let mut plan = String::new();
        server::render_plan(&json, &mut plan, 0, &|key, v| {
            if key.is_empty() {
                return None;
            }
            if key == "table" {
                let access = v["access_type"].as_str().unwrap_or("?");
                return Some(format!("table {access}"));
            }
            Some(key.to_string())
        });
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
        let mut stats = ExecStats::default();
        let mut sink_error = None;
        self.with_session(limits.timeout, |c| {
            let mut result = c.exec_iter(sql, ())?;
            let schema = arrow_schema(result.columns().as_ref());
            stats.schema = Some(schema.clone());
            let mut cols = Columns::new(&schema);
            let mut flush = |cols: &mut Columns, stats: &mut ExecStats| -> Result<(), EngineError> {
                let b = cols.finish(&schema)?;
                stats.rows += b.num_rows() as u64;
                stats.batches += 1;
                sink(&b)
            };
            for row in result.by_ref() {
                let row = row?;
                if let Err(e) = cols.push(row.unwrap()) {
                    sink_error = Some(e);
                    break;
                }
                if cols.len == BATCH_ROWS
                    && let Err(e) = flush(&mut cols, &mut stats)
                {
                    sink_error = Some(e);
                    break;
                }
            }
            if sink_error.is_none()
                && (cols.len > 0 || stats.batches == 0)
                && let Err(e) = flush(&mut cols, &mut stats)
            {
                sink_error = Some(e);
            }
            Ok(())
        })?;
        if let Some(e) = sink_error {
            return Err(e);
        }
        Ok(stats)
    }
}

/// The Arrow type of a result column.
fn arrow_type(c: &mysql::Column) -> DataType {
    let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = c.character_set() == BINARY_CHARSET;
    use ColumnType::*;
    match c.column_type() {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => DataType::Int32,
        MYSQL_TYPE_LONG if unsigned => DataType::Int64,
        MYSQL_TYPE_LONG => DataType::Int32,
        MYSQL_TYPE_LONGLONG if unsigned => DataType::UInt64,
        MYSQL_TYPE_LONGLONG => DataType::Int64,
        MYSQL_TYPE_FLOAT => DataType::Float32,
        MYSQL_TYPE_DOUBLE => DataType::Float64,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => DataType::Decimal128(38, c.decimals().min(38) as i8),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => DataType::Date32,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => DataType::Duration(TimeUnit::Microsecond),
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_JSON
            if !binary =>
        {
            DataType::Utf8
        }
        MYSQL_TYPE_NULL => DataType::Utf8,
        _ => DataType::Binary,
    }
}

fn arrow_schema(columns: &[mysql::Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name_str(), arrow_type(c), true))
            .collect::<Vec<_>>(),
    ))
}

enum Builder {
    I32(Int32Builder),
    I64(Int64Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, i8),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
    Dur(DurationMicrosecondBuilder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
}

struct Columns {
    builders: Vec<Builder>,
    len: usize,
}

impl Columns {
    fn new(schema: &Schema) -> Columns {
        let n = BATCH_ROWS;
        let builders = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int32 => Builder::I32(Int32Builder::with_capacity(n)),
                DataType::Int64 => Builder::I64(Int64Builder::with_capacity(n)),
                DataType::UInt64 => Builder::U64(UInt64Builder::with_capacity(n)),
                DataType::Float32 => Builder::F32(Float32Builder::with_capacity(n)),
                DataType::Float64 => Builder::F64(Float64Builder::with_capacity(n)),
                DataType::Decimal128(p, s) => Builder::Dec(
                    Decimal128Builder::with_capacity(n).with_data_type(DataType::Decimal128(*p, *s)),
                    *s,
                ),
                DataType::Date32 => Builder::Date(Date32Builder::with_capacity(n)),
                DataType::Timestamp(..) => Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n)),
                DataType::Duration(_) => Builder::Dur(DurationMicrosecondBuilder::with_capacity(n)),
                DataType::Utf8 => Builder::Text(StringBuilder::with_capacity(n, n * 16)),
                _ => Builder::Bin(BinaryBuilder::with_capacity(n, n * 16)),
            })
            .collect();
        Columns { builders, len: 0 }
    }

    fn push(&mut self, values: Vec<Value>) -> Result<(), EngineError> {
        for (i, (b, v)) in self.builders.iter_mut().zip(values).enumerate() {
            append(b, v).map_err(|m| {
                EngineError::new(
                    ErrorClass::Internal,
                    format!("cannot convert the value of column {i}: {m}"),
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
                    Builder::I32(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::U64(b) => Arc::new(b.finish()),
                    Builder::F32(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Dec(b, _) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                    Builder::Dur(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Bin(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.len = 0;
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("cannot build a result batch: {e}")))
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A decimal's text at `scale` as an unscaled integer (extra digits truncated).
pub fn parse_decimal(text: &str, scale: i8) -> Result<i128, String> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err(format!("`{text}` is not a decimal"));
    }
    let scale = scale.max(0) as usize;
    let mut v: i128 = 0;
    let digits = int
        .chars()
        .chain(frac.chars().chain(std::iter::repeat('0')).take(scale));
    for c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(c as u8 - b'0')))
            .ok_or_else(|| format!("`{text}` overflows a 38-digit decimal"))?;
    }
    Ok(if neg { -v } else { v })
}

fn append(b: &mut Builder, v: Value) -> Result<(), String> {
    if v == Value::NULL {
        match b {
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::U64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Dec(b, _) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Dur(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bin(b) => b.append_null(),
        }
        return Ok(());
    }
    let int = |v: &Value| -> Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::UInt(u) => i64::try_from(*u).map_err(|e| e.to_string()),
            Value::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| "not an integer".to_string()),
            v => Err(format!("unexpected {v:?}")),
        }
    };
    let float = |v: &Value| -> Result<f64, String> {
        match v {
            Value::Float(f) => Ok(f64::from(*f)),
            Value::Double(d) => Ok(*d),
            Value::Int(i) => Ok(*i as f64),
            Value::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| "not a number".to_string()),
            v => Err(format!("unexpected {v:?}")),
        }
    };
    match b {
        Builder::I32(b) => b.append_value(i32::try_from(int(&v)?).map_err(|e| e.to_string())?),
        Builder::I64(b) => b.append_value(int(&v)?),
        Builder::U64(b) => b.append_value(match v {
            Value::UInt(u) => u,
            v => u64::try_from(int(&v)?).map_err(|e| e.to_string())?,
        }),
        Builder::F32(b) => b.append_value(float(&v)? as f32),
        Builder::F64(b) => b.append_value(float(&v)?),
        Builder::Dec(b, scale) => match v {
            Value::Bytes(t) => b.append_value(parse_decimal(&String::from_utf8_lossy(&t), *scale)?),
            v => return Err(format!("unexpected decimal {v:?}")),
        },
        Builder::Date(b) => match v {
            Value::Date(y, m, d, ..) => {
                b.append_value(days_from_civil(i64::from(y), i64::from(m), i64::from(d)) as i32)
            }
            v => return Err(format!("unexpected date {v:?}")),
        },
        Builder::Ts(b) => match v {
            Value::Date(y, m, d, h, mi, s, us) => {
                let days = days_from_civil(i64::from(y), i64::from(m), i64::from(d));
                let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
                b.append_value(secs * 1_000_000 + i64::from(us));
            }
            v => return Err(format!("unexpected datetime {v:?}")),
        },
        Builder::Dur(b) => match v {
            Value::Time(neg, days, h, m, s, us) => {
                let micros = ((i64::from(days) * 24 + i64::from(h)) * 3600 + i64::from(m) * 60 + i64::from(s))
                    * 1_000_000
                    + i64::from(us);
                b.append_value(if neg { -micros } else { micros });
            }
            v => return Err(format!("unexpected time {v:?}")),
        },
        Builder::Text(b) => match v {
            Value::Bytes(t) => b.append_value(String::from_utf8_lossy(&t)),
            v => b.append_value(v.as_sql(true)),
        },
        Builder::Bin(b) => match v {
            Value::Bytes(t) => b.append_value(t),
            v => b.append_value(v.as_sql(true).as_bytes()),
        },
    }
    Ok(())
}

/// The column type for an Arrow type when loading a table.
fn mysql_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            format!("DECIMAL({},{s})", (*p).min(65))
        }
        DataType::Decimal256(p, s) => format!("DECIMAL({},{s})", (*p).min(65)),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(..) => "DATETIME(6)".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME(6)".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            "LONGBLOB".into()
        }
        _ => "LONGTEXT".into(),
    }
}

fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Creates `name` from the file's schema and fills it with multi-row INSERTs,
/// unless a table of that name was loaded from the same file before.
fn load_table(conn: &mut Conn, name: &str, source: &sqlflight_corpora::TableSource) -> Result<(), String> {
    let stamp = server::source_stamp(source);
    let current: Option<String> = conn
        .exec_first(
            "SELECT table_comment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
            (name,),
        )
        .map_err(|e| mysql_message(&e))?;
    if current.as_deref() == Some(stamp.as_str()) {
        return Ok(());
    }
    let schema = server::table_schema(name, source)?;
    let qname = quote_ident(name);
    let cols = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", quote_ident(f.name()), mysql_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ");
    conn.query_drop(format!("DROP TABLE IF EXISTS {qname}"))
        .map_err(|e| mysql_message(&e))?;
    // The stamp goes on last, so a load that fails halfway is redone next time.
    conn.query_drop(format!("CREATE TABLE {qname} ({cols})"))
        .map_err(|e| mysql_message(&e))?;
    let head = format!("INSERT INTO {qname} VALUES ");
    let mut stmt = String::new();
    let mut rows = 0usize;
    let numeric: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric() || matches!(f.data_type(), DataType::Boolean))
        .collect();
    server::read_table(name, source, &mut |batch| {
        server::batch_rows(batch, |values| {
            stmt.push_str(if rows == 0 { &head } else { "," });
            stmt.push('(');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    stmt.push(',');
                }
                match v {
                    None => stmt.push_str("NULL"),
                    Some(v) if numeric[i] => stmt.push_str(v),
                    Some(v) => stmt.push_str(&server::quote_literal(v, true)),
                }
            }
            stmt.push(')');
            rows += 1;
            if rows == 1000 {
                conn.query_drop(&stmt).map_err(|e| mysql_message(&e))?;
                stmt.clear();
                rows = 0;
            }
            Ok(())
        })
    })?;
    if rows > 0 {
        conn.query_drop(&stmt).map_err(|e| mysql_message(&e))?;
    }
    conn.query_drop(format!("ANALYZE TABLE {qname}"))
        .map_err(|e| mysql_message(&e))?;
    conn.query_drop(format!(
        "ALTER TABLE {qname} COMMENT = {}",
        server::quote_literal(&stamp, true)
    ))
    .map_err(|e| mysql_message(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_at_the_column_scale() {
        assert_eq!(parse_decimal("123.45", 2), Ok(12345));
        assert_eq!(parse_decimal("-0.5", 3), Ok(-500));
        assert_eq!(parse_decimal("7", 2), Ok(700));
        assert_eq!(parse_decimal("1.239", 2), Ok(123));
        assert!(parse_decimal("abc", 2).is_err());
        assert!(parse_decimal("", 2).is_err());
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(1998, 12, 1), 10_561);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn codes_classify_and_values_quote() {
        assert_eq!(classify_code(1064), ErrorClass::Parse);
        assert_eq!(classify_code(1146), ErrorClass::Plan);
        assert_eq!(classify_code(1969), ErrorClass::Timeout);
        assert_eq!(classify_code(1365), ErrorClass::Execution);
        assert_eq!(setting_value("off"), "off");
        assert_eq!(setting_value("2"), "2");
        assert_eq!(setting_value("index_merge=off,mrr=on"), "'index_merge=off,mrr=on'");
    }
}
