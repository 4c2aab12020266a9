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
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano, IntervalUnit, Schema, SchemaRef, TimeUnit};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, Type};
use postgres::{Client, NoTls};

use crate::server::{self, ServerSpec};
use crate::server_engine::{ColumnBuilder, Columns, Dialect, Failure, LoadTable, ResultWriter, ServerEngine};
use crate::{EngineError, ErrorClass};

/// PostgreSQL as a [`Dialect`] of the server engine.
pub struct Postgres {
    config: postgres::Config,
    /// `user@host:port/dbname`, for messages.
    target: String,
}

/// A PostgreSQL server, configured by one profile.
pub type PostgresEngine = ServerEngine<Postgres>;

impl Dialect for Postgres {
    type Conn = Client;
    type Error = postgres::Error;

    const ENGINE: &'static str = "postgresql";
    const SETTING: &'static str = "setting";
    const READ_ONLY: &'static str = "SET default_transaction_read_only = on";

    fn open(spec: &ServerSpec) -> Result<Postgres, String> {
        let mut config = postgres::Config::from_str(&spec.url).map_err(|e| {
            format!(
                "`url` is not a PostgreSQL connection string ({e}); write `host=... port=... user=... dbname=...` or `postgresql://user@host:port/db`"
            )
        })?;
        if let Some(var) = &spec.password_env {
            config.password(server::password_from_env(var)?);
        }
        if config.get_application_name().is_none() {
            config.application_name("sqlflight");
        }
        let target = target_of(&config);
        Ok(Postgres { config, target })
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        self.config.connect(NoTls)
    }

    fn run(conn: &mut Client, sql: &str) -> Result<(), postgres::Error> {
        conn.batch_execute(sql)
    }

    fn message(e: &postgres::Error) -> String {
        db_message(e)
    }

    fn server_class(e: &postgres::Error) -> Option<ErrorClass> {
        e.as_db_error().map(|db| classify_sqlstate(db.code().code()))
    }

    fn set_statement(key: &str, value: &str) -> String {
        format!("SET {key} = {}", server::quote_literal(value, false))
    }

    fn identify(&mut self, conn: &mut Client) -> Result<(String, String), String> {
        let version = conn
            .query_one("SHOW server_version", &[])
            .and_then(|r| r.try_get::<_, String>(0))
            .map_err(|e| {
                format!(
                    "cannot read the server version from {}: {}",
                    self.target,
                    db_message(&e)
                )
            })?;
        let version = version.split_whitespace().next().unwrap_or(&version).to_string();
        Ok((Self::ENGINE.into(), version))
    }

    fn alive(conn: &mut Client) -> bool {
        conn.is_valid(Duration::from_secs(5)).is_ok()
    }

    fn closed(conn: &Client) -> bool {
        conn.is_closed()
    }

    fn set_timeout(&self, conn: &mut Client, ms: u64) -> Result<(), postgres::Error> {
        conn.batch_execute(&format!("SET statement_timeout = {ms}"))
    }

    fn canceller(&self, conn: &mut Client) -> Box<dyn FnOnce() + Send> {
        let token = conn.cancel_token();
        Box::new(move || drop(token.cancel_query(NoTls)))
    }

    fn explain(conn: &mut Client, sql: &str) -> Result<String, Failure<postgres::Error>> {
        let rows = conn.query(&format!("EXPLAIN (COSTS OFF, FORMAT JSON) {sql}"), &[])?;
        let mut text = String::new();
        for r in &rows {
            let raw: Raw = r
                .try_get(0)
                .map_err(|e| Failure::Engine(EngineError::new(ErrorClass::Internal, format!("EXPLAIN output: {e}"))))?;
            text.push_str(&String::from_utf8_lossy(raw.0.unwrap_or_default()));
        }
        Ok(text)
    }

    fn plan_node(_key: &str, node: &serde_json::Value) -> Option<String> {
        node["Node Type"].as_str().map(str::to_string)
    }

    fn execute(conn: &mut Client, sql: &str, out: &mut ResultWriter<'_>) -> Result<(), Failure<postgres::Error>> {
        let stmt = conn.prepare(sql)?;
        let schema = arrow_schema(stmt.columns());
        out.start(schema.clone());
        let mut rows = conn.query_raw(&stmt, Vec::<String>::new())?;
        let mut cols = Columns::new(&schema);
        while let Some(row) = rows.next()? {
            push(&mut cols, &row).map_err(Failure::Engine)?;
            out.row_added(&mut cols).map_err(Failure::Engine)?;
        }
        out.end(&mut cols).map_err(Failure::Engine)
    }

    fn quote_ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn column_type(t: &DataType) -> String {
        pg_type(t)
    }

    fn table_stamp(conn: &mut Client, name: &str) -> Result<Option<String>, postgres::Error> {
        Ok(conn
            .query_opt(
                "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c \
                 WHERE c.relname = $1 AND c.relkind = 'r' AND pg_table_is_visible(c.oid)",
                &[&name],
            )?
            .and_then(|r| r.get::<_, Option<String>>(0)))
    }

    fn fill_table(conn: &mut Client, table: &LoadTable<'_>) -> Result<(), String> {
        fill_table(conn, table)
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

crate::column_builders! {
    /// One result column's builder.
    Builder {
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

impl ColumnBuilder for Builder {
    fn for_type(t: &DataType, n: usize) -> Builder {
        match t {
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
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.finish_array()
    }
}

/// Appends one row, each value decoded from its binary wire form.
fn push(cols: &mut Columns<Builder>, row: &postgres::Row) -> Result<(), EngineError> {
    cols.push_row(|i, _, b| {
        let ty = row.columns()[i].type_();
        let raw: Raw = row
            .try_get(i)
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("column {i}: {e}")))?;
        decode(b, ty, raw.0).map_err(|e| {
            EngineError::new(
                ErrorClass::Internal,
                format!("cannot decode column `{}` of type {ty}: {e}", row.columns()[i].name()),
            )
        })
    })
}

fn decode(b: &mut Builder, ty: &Type, raw: Option<&[u8]>) -> Result<(), DecodeError> {
    let Some(raw) = raw else {
        b.append_null();
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

/// One transaction: the table created, filled with `COPY ... FROM STDIN`,
/// analyzed and stamped.
fn fill_table(client: &mut Client, t: &LoadTable<'_>) -> Result<(), String> {
    let (qname, cols) = (&t.qname, &t.columns);
    let mut tx = client.transaction().map_err(|e| db_message(&e))?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {qname}; CREATE TABLE {qname} ({cols})"))
        .map_err(|e| db_message(&e))?;
    let mut writer = tx
        .copy_in(&format!("COPY {qname} FROM STDIN"))
        .map_err(|e| db_message(&e))?;
    let mut line = String::new();
    server::read_table(t.name, t.source, &mut |batch| {
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
        server::quote_literal(&t.stamp, false)
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
