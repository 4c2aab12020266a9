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
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, DurationMicrosecondBuilder, Float32Builder,
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value};

use crate::server::{self, ServerSpec};
use crate::server_engine::{ColumnBuilder, Columns, Dialect, Failure, LoadTable, ResultWriter, ServerEngine};
use crate::{EngineError, ErrorClass};
/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

/// MySQL and MariaDB as a [`Dialect`] of the server engine.
pub struct Mysql {
    opts: Opts,
    /// `user@host:port/database`, for messages.
    target: String,
    /// MariaDB (its own statement-timeout variable), learnt from the server.
    mariadb: bool,
}

/// A MySQL or MariaDB server, configured by one profile.
pub type MysqlEngine = ServerEngine<Mysql>;

impl Dialect for Mysql {
    type Conn = Conn;
    type Error = mysql::Error;

    const ENGINE: &'static str = "mysql";
    const SETTING: &'static str = "variable";
    const READ_ONLY: &'static str = "SET SESSION TRANSACTION READ ONLY";

    fn open(spec: &ServerSpec) -> Result<Mysql, String> {
        let opts = Opts::from_url(&spec.url)
            .map_err(|e| format!("`url` is not a MySQL URL ({e}); write `mysql://user@host:port/database`"))?;
        let mut builder = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)));
        if let Some(var) = &spec.password_env {
            builder = builder.pass(Some(server::password_from_env(var)?));
        }
        let opts: Opts = builder.into();
        let target = format!(
            "{}@{}:{}/{}",
            opts.get_user().unwrap_or("?"),
            opts.get_ip_or_hostname(),
            opts.get_tcp_port(),
            opts.get_db_name().unwrap_or("")
        );
        Ok(Mysql {
            opts,
            target,
            mariadb: false,
        })
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn connect(&self) -> Result<Conn, mysql::Error> {
        Conn::new(self.opts.clone())
    }

    fn run(conn: &mut Conn, sql: &str) -> Result<(), mysql::Error> {
        conn.query_drop(sql)
    }

    fn message(e: &mysql::Error) -> String {
        mysql_message(e)
    }

    fn server_class(e: &mysql::Error) -> Option<ErrorClass> {
        match e {
            mysql::Error::MySqlError(m) => Some(classify_code(m.code)),
            _ => None,
        }
    }

    fn set_statement(key: &str, value: &str) -> String {
        format!("SET SESSION {key} = {}", setting_value(value))
    }

    fn identify(&mut self, conn: &mut Conn) -> Result<(String, String), String> {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .map_err(|e| format!("cannot read the server version: {}", mysql_message(&e)))?;
        let version = version.unwrap_or_default();
        self.mariadb = version.contains("MariaDB");
        let engine = if self.mariadb { "mariadb" } else { Self::ENGINE };
        Ok((engine.into(), version.split('-').next().unwrap_or(&version).to_string()))
    }

    fn alive(conn: &mut Conn) -> bool {
        conn.ping().is_ok()
    }

    fn set_timeout(&self, conn: &mut Conn, ms: u64) -> Result<(), mysql::Error> {
        conn.query_drop(if self.mariadb {
            format!("SET SESSION max_statement_time = {:.3}", ms as f64 / 1000.0)
        } else {
            format!("SET SESSION max_execution_time = {ms}")
        })
    }

    fn canceller(&self, conn: &mut Conn) -> Box<dyn FnOnce() + Send> {
        let id = conn.connection_id();
        let opts = self.opts.clone();
        Box::new(move || {
            if let Ok(mut c) = Conn::new(opts) {
                let _ = c.query_drop(format!("KILL QUERY {id}"));
            }
        })
    }

    fn explain(conn: &mut Conn, sql: &str) -> Result<String, Failure<mysql::Error>> {
        let text: Option<String> = conn.exec_first(format!("EXPLAIN FORMAT=JSON {sql}"), ())?;
        Ok(text.unwrap_or_else(|| "null".into()))
    }

    fn plan_node(key: &str, node: &serde_json::Value) -> Option<String> {
        if key.is_empty() {
            return None;
        }
        if key == "table" {
            let access = node["access_type"].as_str().unwrap_or("?");
            return Some(format!("table {access}"));
        }
        Some(key.to_string())
    }

    fn execute(conn: &mut Conn, sql: &str, out: &mut ResultWriter<'_>) -> Result<(), Failure<mysql::Error>> {
        let mut result = conn.exec_iter(sql, ())?;
        let schema = arrow_schema(result.columns().as_ref());
        out.start(schema.clone());
        let mut cols = Columns::new(&schema);
        for row in result.by_ref() {
            push(&mut cols, row?.unwrap()).map_err(Failure::Engine)?;
            out.row_added(&mut cols).map_err(Failure::Engine)?;
        }
        out.end(&mut cols).map_err(Failure::Engine)
    }

    fn quote_ident(name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    fn column_type(t: &DataType) -> String {
        mysql_type(t)
    }

    fn table_stamp(conn: &mut Conn, name: &str) -> Result<Option<String>, mysql::Error> {
        conn.exec_first(
            "SELECT table_comment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
            (name,),
        )
    }

    fn fill_table(conn: &mut Conn, table: &LoadTable<'_>) -> Result<(), String> {
        fill_table(conn, table)
    }
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

crate::column_builders! {
    /// One result column's builder.
    Builder {
        I32(Int32Builder),
        I64(Int64Builder),
        U64(UInt64Builder),
        F32(Float32Builder),
        F64(Float64Builder),
        Dec(Decimal128Builder),
        Date(Date32Builder),
        Ts(TimestampMicrosecondBuilder),
        Dur(DurationMicrosecondBuilder),
        Text(StringBuilder),
        Bin(BinaryBuilder),
    }
}

impl ColumnBuilder for Builder {
    fn for_type(t: &DataType, n: usize) -> Builder {
        match t {
            DataType::Int32 => Builder::I32(Int32Builder::with_capacity(n)),
            DataType::Int64 => Builder::I64(Int64Builder::with_capacity(n)),
            DataType::UInt64 => Builder::U64(UInt64Builder::with_capacity(n)),
            DataType::Float32 => Builder::F32(Float32Builder::with_capacity(n)),
            DataType::Float64 => Builder::F64(Float64Builder::with_capacity(n)),
            DataType::Decimal128(p, s) => {
                Builder::Dec(Decimal128Builder::with_capacity(n).with_data_type(DataType::Decimal128(*p, *s)))
            }
            DataType::Date32 => Builder::Date(Date32Builder::with_capacity(n)),
            DataType::Timestamp(..) => Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n)),
            DataType::Duration(_) => Builder::Dur(DurationMicrosecondBuilder::with_capacity(n)),
            DataType::Utf8 => Builder::Text(StringBuilder::with_capacity(n, n * 16)),
            _ => Builder::Bin(BinaryBuilder::with_capacity(n, n * 16)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.finish_array()
    }
}

/// Appends one row of values.
fn push(cols: &mut Columns<Builder>, values: Vec<Value>) -> Result<(), EngineError> {
    let mut values = values.into_iter();
    cols.push_row(|i, t, b| {
        append(b, t, values.next().unwrap_or(Value::NULL)).map_err(|m| {
            EngineError::new(
                ErrorClass::Internal,
                format!("cannot convert the value of column {i}: {m}"),
            )
        })
    })
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

fn append(b: &mut Builder, t: &DataType, v: Value) -> Result<(), String> {
    if v == Value::NULL {
        b.append_null();
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
        Builder::Dec(b) => match v {
            Value::Bytes(text) => {
                let scale = match t {
                    DataType::Decimal128(_, s) => *s,
                    _ => 0,
                };
                b.append_value(parse_decimal(&String::from_utf8_lossy(&text), scale)?)
            }
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

/// The table created, filled with multi-row INSERTs of 1,000 rows, analyzed
/// and stamped.
fn fill_table(conn: &mut Conn, t: &LoadTable<'_>) -> Result<(), String> {
    let (qname, cols, schema) = (&t.qname, &t.columns, &t.schema);
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
    server::read_table(t.name, t.source, &mut |batch| {
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
        server::quote_literal(&t.stamp, true)
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
