//! What the database-server engines (PostgreSQL, MySQL/MariaDB) share: a pool of
//! sessions, a watchdog that cancels a statement the server does not stop in time,
//! rendering a JSON `EXPLAIN` as `Operator: details` lines, redacting connection
//! targets, and reading the catalog's data files to load them into a scratch
//! database.
//!
//! Connection strings and passwords stay inside this module's callers: errors and
//! engine descriptions name only `user@host:port/database`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlflight_corpora::{TableFormat, TableSource};

use crate::{EngineError, ErrorClass};

/// Idle sessions of one engine; a session is taken for one statement and given
/// back when it is still healthy.
pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
}

impl<C> Pool<C> {
    pub(crate) fn new() -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take(&self) -> Option<C> {
        self.idle.lock().ok().and_then(|mut v| v.pop())
    }

    pub(crate) fn give(&self, c: C) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(c);
        }
    }
}

/// Runs `cancel` if `work` has not finished `grace` after `deadline`: the server's
/// own statement timeout should stop a statement first; this catches a server that
/// does not answer at all.
pub(crate) fn with_watchdog<T>(deadline: Duration, cancel: impl FnOnce() + Send, work: impl FnOnce() -> T) -> T {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(deadline + Duration::from_secs(2)) {
                cancel();
            }
        });
        let out = work();
        let _ = done.send(());
        out
    })
}

/// Keys whose values are estimates or run-time figures, not plan shape.
const ESTIMATE_KEYS: &[&str] = &[
    "Startup Cost",
    "Total Cost",
    "Plan Rows",
    "Plan Width",
    "rows",
    "filtered",
    "cost",
    "query_cost",
    "loops",
    "rowid_filter_cost",
];

/// Renders an `EXPLAIN (FORMAT JSON)` tree as one `Operator: key=value, ...` line
/// per node, children indented, estimates left out so that plan diffs show shape.
///
/// `node(key, object)` names a JSON object that is a plan node, or says it is
/// not one (PostgreSQL: the value of `Node Type`; MariaDB: the key it sits
/// under). Nested objects and arrays of objects are children.
pub(crate) fn render_plan(v: &Value, out: &mut String, depth: usize, node: &dyn Fn(&str, &Value) -> Option<String>) {
    render_node(None, v, out, depth, node);
}

fn render_node(
    key: Option<&str>,
    v: &Value,
    out: &mut String,
    depth: usize,
    node: &dyn Fn(&str, &Value) -> Option<String>,
) {
    match v {
        Value::Array(items) => {
            for i in items {
                render_node(key, i, out, depth, node);
            }
        }
        Value::Object(map) => {
            let kind = node(key.unwrap_or(""), v);
            let depth_children = if let Some(kind) = &kind {
                let mut details = Vec::new();
                for (k, x) in map {
                    if ESTIMATE_KEYS.contains(&k.as_str()) || k.starts_with("r_") || k == "Node Type" {
                        continue;
                    }
                    match x {
                        Value::Object(_) => {}
                        Value::Array(a) if a.iter().any(|e| e.is_object()) => {}
                        Value::Array(a) => {
                            details.push(format!("{k}=[{}]", a.iter().map(scalar).collect::<Vec<_>>().join(", ")))
                        }
                        x => details.push(format!("{k}={}", scalar(x))),
                    }
                }
                out.push_str(&"  ".repeat(depth));
                out.push_str(kind);
                if !details.is_empty() {
                    out.push_str(": ");
                    out.push_str(&details.join(", "));
                }
                out.push('\n');
                depth + 1
            } else {
                depth
            };
            for (k, x) in map {
                if x.is_object() || x.as_array().is_some_and(|a| a.iter().any(|e| e.is_object())) {
                    render_node(Some(k), x, out, depth_children, node);
                }
            }
        }
        _ => {}
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// Receives the batches of a data file.
pub(crate) type BatchSink<'a> = dyn FnMut(&RecordBatch) -> Result<(), String> + 'a;

/// The Arrow schema of a catalog data file.
pub(crate) fn table_schema(name: &str, source: &TableSource) -> Result<SchemaRef, String> {
    scan(name, source, None)
}

/// Reads a catalog data file batch by batch (with the embedded DataFusion) and
/// hands each batch to `sink`.
pub(crate) fn read_table(name: &str, source: &TableSource, sink: &mut BatchSink<'_>) -> Result<SchemaRef, String> {
    scan(name, source, Some(sink))
}

fn scan(name: &str, source: &TableSource, sink: Option<&mut BatchSink<'_>>) -> Result<SchemaRef, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let ctx = SessionContext::new();
    let path = source.path.display().to_string();
    let fail = |e: datafusion::error::DataFusionError| format!("cannot read {path}: {e}");
    let (schema, stream) = rt.block_on(async {
        match source.format {
            TableFormat::Parquet => ctx.register_parquet(name, &path, ParquetReadOptions::default()).await,
            TableFormat::Csv => ctx.register_csv(name, &path, CsvReadOptions::default()).await,
        }
        .map_err(fail)?;
        let df = ctx.table(name).await.map_err(fail)?;
        let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
        let stream = match sink {
            Some(_) => Some(df.execute_stream().await.map_err(fail)?),
            None => None,
        };
        Ok::<_, String>((schema, stream))
    })?;
    // The sink runs outside the runtime: it may block on a client of its own.
    if let (Some(sink), Some(mut stream)) = (sink, stream) {
        while let Some(b) = rt.block_on(stream.next()) {
            sink(&b.map_err(fail)?)?;
        }
    }
    Ok(schema)
}

/// A fingerprint of a data file (path, size, modification time), stored in the
/// loaded table's comment so an unchanged file is not loaded twice.
pub(crate) fn source_stamp(source: &TableSource) -> String {
    let meta = std::fs::metadata(&source.path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!("{}|{size}|{mtime}", source.path.display());
    format!("sqlflight:{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// Formats every value of a batch as text (`None` for NULL), row by row.
pub(crate) fn batch_rows(
    batch: &RecordBatch,
    row: impl FnMut(&[Option<String>]) -> Result<(), String>,
) -> Result<(), String> {
    batch_rows_with(batch, &FormatOptions::default(), row)
}

/// [`batch_rows`] with the given value formats.
pub(crate) fn batch_rows_with(
    batch: &RecordBatch,
    opts: &FormatOptions<'_>,
    mut row: impl FnMut(&[Option<String>]) -> Result<(), String>,
) -> Result<(), String> {
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut values = Vec::with_capacity(batch.num_columns());
    for i in 0..batch.num_rows() {
        values.clear();
        for (c, f) in batch.columns().iter().zip(&formatters) {
            values.push(if c.is_null(i) {
                None
            } else {
                Some(f.value(i).to_string())
            });
        }
        row(&values)?;
    }
    Ok(())
}

/// Whether `key` is a plain setting name (letters, digits, `_`, `.`), so it can be
/// put into a `SET` statement as is.
pub(crate) fn valid_setting_name(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A quoted SQL string literal (standard quoting; backslashes are doubled for
/// MySQL when `backslash` is set).
pub(crate) fn quote_literal(s: &str, backslash: bool) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        match c {
            '\'' => q.push_str("''"),
            '\\' if backslash => q.push_str("\\\\"),
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// An error for a lost or unusable connection.
pub(crate) fn connection_error(target: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::new(ErrorClass::Crash, format!("connection to {target}: {e}"))
}

/// Reads a password from the environment variable a profile names.
pub(crate) fn password_from_env(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("`password_env: {var}` names an environment variable that is not set"))
}

/// The profile of a database server (`kind: postgres` or `kind: mariadb`/`mysql`)
/// in the config's `engines:` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// PostgreSQL: libpq-style `host=... port=... user=... dbname=...` or
    /// `postgresql://user@host:port/db`; MySQL: `mysql://user@host:port/db`. A
    /// password in it is used but never written anywhere; prefer `password_env`.
    #[serde(serialize_with = "redact_url")]
    pub url: String,
    /// Environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Session settings: PostgreSQL `SET key = 'value'` (`enable_hashjoin: "off"`),
    /// MySQL `SET SESSION key = value` (`optimizer_switch: "semijoin=off"`).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Statements run on each new session after the settings.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Create and fill the catalog's data tables in the database (for scratch
    /// databases: an existing table of the same name is replaced unless it was
    /// loaded from the same file).
    #[serde(default)]
    pub load_catalog: bool,
    /// Sessions are read-only (the default).
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

/// Serializes a connection string with its password replaced by `***`.
fn redact_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_connection_string(url))
}

/// `url` with any password replaced by `***` (URL userinfo, `password=` pairs).
pub fn redact_connection_string(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let mut out = format!("{scheme}://");
        if let Some((userinfo, host)) = auth.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                let _ = write!(out, "{user}:***@{host}");
            } else {
                let _ = write!(out, "{userinfo}@{host}");
            }
        } else {
            out.push_str(auth);
        }
        // Query parameters may carry a password too.
        let tail = tail
            .split('&')
            .map(|p| {
                let (k, _) = p.split_once('=').unwrap_or((p, ""));
                if k.trim_start_matches(['?', '/']).ends_with("password") {
                    format!("{k}=***")
                } else {
                    p.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        out.push_str(&tail);
        return out;
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_render_without_estimates() {
        let pg: Value = serde_json::json!([{"Plan": {
        "Node Type": "Hash Join", "Join Type": "Inner", "Plan Rows": 10, "Total Cost": 1.5,
        "Hash Cond": "(a.x = b.x)",
        "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "a", "Parent Relationship": "Outer"},
            {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "b"}]}
        ]}}]);
        let mut out = String::new();
        render_plan(&pg, &mut out, 0, &|_, v| v["Node Type"].as_str().map(str::to_string));
        assert_eq!(
            out,
            "Hash Join: Hash Cond=(a.x = b.x), Join Type=Inner\n  Seq Scan: Parent Relationship=Outer, Relation Name=a\n  Hash\n    Seq Scan: Relation Name=b\n"
        );
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("it's", false), "'it''s'");
        assert_eq!(quote_literal(r"a\b'", true), r"'a\\b'''");
        assert!(valid_setting_name("enable_hashjoin"));
        assert!(!valid_setting_name("x; DROP TABLE t"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_connection_string("postgresql://bob:s3cret@db:5432/x?sslmode=disable&password=p2"),
            "postgresql://bob:***@db:5432/x?sslmode=disable&password=***"
        );
        assert_eq!(
            redact_connection_string("host=db user=bob password=s3cret dbname=x"),
            "host=db user=bob password=*** dbname=x"
        );
        assert_eq!(redact_connection_string("mysql://bob@db/x"), "mysql://bob@db/x");
    }
}
