//! One engine for every database server: [`ServerEngine`] is written once against
//! the small [`Dialect`] trait, and PostgreSQL ([`crate::postgres`]) and MySQL /
//! MariaDB ([`crate::mysql`]) are dialects: how to connect and ping, how to set the
//! statement timeout and cancel a statement, what `EXPLAIN` returns and how its
//! nodes are named, how result columns map to Arrow, how a table is bulk-loaded,
//! and how errors classify. A third server is one file implementing [`Dialect`].
//!
//! The engine owns what every server shares: checking a profile once at build
//! time (settings one by one so a bad one is named, catalog load, setup
//! statements, the server's version), a pool of sessions (re-checked after idling,
//! never reused after a lost connection), the statement timeout plus a watchdog
//! that cancels a statement the server does not stop, rendering a JSON `EXPLAIN`
//! without estimates, and streaming rows into Arrow batches of [`BATCH_ROWS`].
//!
//! Connection strings and passwords never leave the dialect: errors and engine
//! descriptions name only `user@host:port/database` ([`Dialect::target`]).

use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use serde_json::Value;
use sqlflight_corpora::{Catalog, TableSource};

use crate::server::{self, Pool, ServerSpec};
use crate::{BuildError, CompiledPlan, Engine, EngineError, EngineInfo, ErrorClass, ExecLimits, ExecStats};

/// Rows per Arrow batch of a result.
pub const BATCH_ROWS: usize = 8192;

/// Pooled sessions idle longer than this are checked before use.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// A failure while a session works: the server's (or the client library's) own
/// error, or one sqlflight raised (a value it cannot convert, a sink that refused
/// a batch), which leaves the session usable.
#[derive(Debug)]
pub enum Failure<E> {
    /// The client library's error: classified by [`Dialect::server_class`].
    Server(E),
    /// An error sqlflight raised on a healthy session.
    Engine(EngineError),
}

impl<E> From<E> for Failure<E> {
    fn from(e: E) -> Self {
        Failure::Server(e)
    }
}

/// What one database server's client and SQL dialect are.
pub trait Dialect: Sized + Send + Sync + 'static {
    /// One session (connection).
    type Conn: Send;
    /// The client library's error.
    type Error: std::fmt::Display;

    /// The engine's name until the server names itself ([`Dialect::identify`]).
    const ENGINE: &'static str;
    /// What the server calls a session setting, for messages (`setting`, `variable`).
    const SETTING: &'static str;
    /// The session statement that makes every transaction read-only.
    const READ_ONLY: &'static str;

    /// The connection options of a profile (URL, password from the environment);
    /// the error says what to write instead.
    fn open(spec: &ServerSpec) -> Result<Self, String>;
    /// `user@host:port/database`, for messages: never a password.
    fn target(&self) -> &str;
    /// A new session.
    fn connect(&self) -> Result<Self::Conn, Self::Error>;
    /// Runs a statement that returns no rows (settings, setup).
    fn run(conn: &mut Self::Conn, sql: &str) -> Result<(), Self::Error>;
    /// The error as people read it, with the server's error code.
    fn message(e: &Self::Error) -> String;
    /// The class of an error the server reported; `None` for a client-side error
    /// (connection refused or lost: the engine calls it a `crash`).
    fn server_class(e: &Self::Error) -> Option<ErrorClass>;
    /// The statement that sets session setting `key` to `value`.
    fn set_statement(key: &str, value: &str) -> String;
    /// The engine name and version the server reports (the first session);
    /// the dialect may remember what it learns (MariaDB or MySQL).
    fn identify(&mut self, conn: &mut Self::Conn) -> Result<(String, String), String>;
    /// Whether a pooled session that idled for a while still answers.
    fn alive(conn: &mut Self::Conn) -> bool;
    /// Whether the client already knows the session is gone.
    fn closed(_conn: &Self::Conn) -> bool {
        false
    }
    /// Sets the server's per-statement time limit of the session.
    fn set_timeout(&self, conn: &mut Self::Conn, ms: u64) -> Result<(), Self::Error>;
    /// Cancels the session's running statement from another thread.
    fn canceller(&self, conn: &mut Self::Conn) -> Box<dyn FnOnce() + Send>;
    /// The JSON text of the statement's `EXPLAIN`, without estimates where the
    /// server can leave them out.
    fn explain(conn: &mut Self::Conn, sql: &str) -> Result<String, Failure<Self::Error>>;
    /// The name of a plan node of the `EXPLAIN` JSON, or `None` when the object
    /// under `key` is not a node (see [`server::render_plan`]).
    fn plan_node(key: &str, object: &Value) -> Option<String>;
    /// Executes one statement, streaming its rows into `out`.
    fn execute(conn: &mut Self::Conn, sql: &str, out: &mut ResultWriter<'_>) -> Result<(), Failure<Self::Error>>;
    /// An identifier, quoted.
    fn quote_ident(name: &str) -> String;
    /// The column type a loaded table gets for an Arrow type.
    fn column_type(t: &DataType) -> String;
    /// The stamp of the file table `name` was loaded from, if it exists.
    fn table_stamp(conn: &mut Self::Conn, name: &str) -> Result<Option<String>, Self::Error>;
    /// Creates the table (dropping an older one), fills it from its file, analyzes
    /// it and stamps it last, so that a load that fails halfway is redone.
    fn fill_table(conn: &mut Self::Conn, table: &LoadTable<'_>) -> Result<(), String>;
}

/// A catalog table to load into a server: what [`Dialect::fill_table`] needs.
pub struct LoadTable<'a> {
    /// The catalog's name of the table.
    pub name: &'a str,
    /// The name quoted for the server.
    pub qname: String,
    /// `"col" type, ...` for `CREATE TABLE`.
    pub columns: String,
    /// The file's schema.
    pub schema: SchemaRef,
    /// The file.
    pub source: &'a TableSource,
    /// Identifies the file's version (path, size, modification time).
    pub stamp: String,
}

/// Creates and fills table `name` from its file, unless the server already holds
/// a table of that name loaded from the same file.
fn load_table<D: Dialect>(conn: &mut D::Conn, name: &str, source: &TableSource) -> Result<(), String> {
    let stamp = server::source_stamp(source);
    if D::table_stamp(conn, name).map_err(|e| D::message(&e))?.as_deref() == Some(stamp.as_str()) {
        return Ok(());
    }
    let schema = server::table_schema(name, source)?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", D::quote_ident(f.name()), D::column_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ");
    D::fill_table(
        conn,
        &LoadTable {
            name,
            qname: D::quote_ident(name),
            columns,
            schema,
            source,
            stamp,
        },
    )
}

/// One column's builder of a dialect: one variant per Arrow type the dialect
/// produces (declared with [`column_builders!`](crate::column_builders)).
pub trait ColumnBuilder: Sized {
    /// The builder for a result column of type `t`, with room for `rows` values.
    fn for_type(t: &DataType, rows: usize) -> Self;
    /// The values appended so far as an array; the builder starts again empty.
    fn finish(&mut self) -> ArrayRef;
}

/// Declares a dialect's column-builder enum (one variant per Arrow builder) with
/// `finish_array` and `append_null` over every variant.
#[macro_export]
#[doc(hidden)]
macro_rules! column_builders {
    ($(#[$meta:meta])* $name:ident { $($variant:ident($builder:ty)),+ $(,)? }) => {
        $(#[$meta])*
        enum $name {
            $($variant($builder)),+
        }

        impl $name {
            fn finish_array(&mut self) -> datafusion::arrow::array::ArrayRef {
                match self {
                    $($name::$variant(b) => std::sync::Arc::new(b.finish())),+
                }
            }

            fn append_null(&mut self) {
                match self {
                    $($name::$variant(b) => b.append_null()),+
                }
            }
        }
    };
}

/// The builders of one batch of a result, filled row by row by a dialect.
pub struct Columns<B> {
    builders: Vec<B>,
    types: Vec<DataType>,
    len: usize,
}

impl<B: ColumnBuilder> Columns<B> {
    /// Empty builders for a result of `schema`, each with room for a batch.
    pub fn new(schema: &SchemaRef) -> Self {
        let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        Columns {
            builders: types.iter().map(|t| B::for_type(t, BATCH_ROWS)).collect(),
            types,
            len: 0,
        }
    }

    /// Appends one row: `append(column index, column type, builder)` per column.
    pub fn push_row(
        &mut self,
        mut append: impl FnMut(usize, &DataType, &mut B) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        for (i, (b, t)) in self.builders.iter_mut().zip(&self.types).enumerate() {
            append(i, t, b)?;
        }
        self.len += 1;
        Ok(())
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, EngineError> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(B::finish).collect();
        self.len = 0;
        RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("cannot build a result batch: {e}")))
    }
}

/// Where a dialect streams a result: counts rows and batches and hands each full
/// batch of [`BATCH_ROWS`] to the caller's sink.
pub struct ResultWriter<'a> {
    schema: Option<SchemaRef>,
    stats: ExecStats,
    sink: &'a mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
}

impl<'a> ResultWriter<'a> {
    fn new(sink: &'a mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>) -> Self {
        ResultWriter {
            schema: None,
            stats: ExecStats::default(),
            sink,
        }
    }

    /// The result's schema, known before its first row.
    pub fn start(&mut self, schema: SchemaRef) {
        self.stats.schema = Some(schema.clone());
        self.schema = Some(schema);
    }

    /// Call after each row pushed into `cols`: passes a full batch on.
    pub fn row_added<B: ColumnBuilder>(&mut self, cols: &mut Columns<B>) -> Result<(), EngineError> {
        if cols.len >= BATCH_ROWS {
            self.flush(cols)
        } else {
            Ok(())
        }
    }

    /// Call after the last row: passes the rest on (an empty result still sends
    /// one empty batch, so the sink sees the schema).
    pub fn end<B: ColumnBuilder>(&mut self, cols: &mut Columns<B>) -> Result<(), EngineError> {
        if cols.len > 0 || self.stats.batches == 0 {
            self.flush(cols)
        } else {
            Ok(())
        }
    }

    fn flush<B: ColumnBuilder>(&mut self, cols: &mut Columns<B>) -> Result<(), EngineError> {
        let Some(schema) = &self.schema else {
            return Err(EngineError::new(ErrorClass::Internal, "result rows before its schema"));
        };
        let batch = cols.finish(schema)?;
        self.stats.rows += batch.num_rows() as u64;
        self.stats.batches += 1;
        (self.sink)(&batch)
    }
}

struct Session<C> {
    conn: C,
    /// The statement timeout last set, in milliseconds.
    timeout_ms: u64,
    last_used: Instant,
}

/// A database server as an engine, configured by one profile.
pub struct ServerEngine<D: Dialect> {
    info: EngineInfo,
    dialect: D,
    /// Settings, setup statements and read-only mode, run on each new session.
    session_setup: Vec<String>,
    pool: Pool<Session<D::Conn>>,
}

impl<D: Dialect> ServerEngine<D> {
    /// Connects once to check the profile (settings, setup), loads the catalog
    /// when asked, and records the server's name and version.
    pub fn new(profile: &str, spec: &ServerSpec, catalog: &Catalog) -> Result<Self, BuildError> {
        let other = |message: String| BuildError::Other {
            profile: profile.into(),
            message,
        };
        let mut dialect = D::open(spec).map_err(other)?;
        if let Some(k) = spec.settings.keys().find(|k| !server::valid_setting_name(k)) {
            return Err(BuildError::Setting {
                profile: profile.into(),
                key: k.clone(),
                message: format!("not a {} name (letters, digits, `_` and `.` only)", D::SETTING),
            });
        }
        let mut first = dialect
            .connect()
            .map_err(|e| other(server::connection_error(dialect.target(), D::message(&e)).message))?;
        let mut session_setup = Vec::new();
        // Settings one by one, so a bad one is named.
        for (k, v) in &spec.settings {
            let stmt = D::set_statement(k, v);
            D::run(&mut first, &stmt).map_err(|e| BuildError::Setting {
                profile: profile.into(),
                key: k.clone(),
                message: D::message(&e),
            })?;
            session_setup.push(stmt);
        }
        if spec.load_catalog {
            for (name, source) in &catalog.tables {
                load_table::<D>(&mut first, name, source).map_err(|m| BuildError::Catalog {
                    profile: profile.into(),
                    origin: source.path.display().to_string(),
                    message: m,
                })?;
            }
        }
        for stmt in &spec.setup {
            D::run(&mut first, stmt).map_err(|e| BuildError::Setup {
                profile: profile.into(),
                statement: stmt.clone(),
                message: D::message(&e),
            })?;
        }
        session_setup.extend(spec.setup.iter().cloned());
        if spec.read_only {
            session_setup.push(D::READ_ONLY.into());
        }
        let (engine, version) = dialect.identify(&mut first).map_err(other)?;
        drop(first);
        Ok(ServerEngine {
            info: EngineInfo {
                engine,
                version,
                profile: profile.into(),
                settings: spec.settings.clone(),
                disabled_rules: Vec::new(),
            },
            dialect,
            session_setup,
            pool: Pool::new(),
        })
    }

    /// A pooled session, or a new one. A session idle for a while is checked
    /// first (the server may have restarted or closed it).
    fn session(&self) -> Result<Session<D::Conn>, EngineError> {
        while let Some(mut s) = self.pool.take() {
            if D::closed(&s.conn) {
                continue;
            }
            if s.last_used.elapsed() < IDLE_CHECK || D::alive(&mut s.conn) {
                return Ok(s);
            }
        }
        let target = self.dialect.target();
        let mut conn = self
            .dialect
            .connect()
            .map_err(|e| server::connection_error(target, D::message(&e)))?;
        for stmt in &self.session_setup {
            D::run(&mut conn, stmt)
                .map_err(|e| server::connection_error(target, format!("session setup `{stmt}`: {}", D::message(&e))))?;
        }
        Ok(Session {
            conn,
            timeout_ms: 0,
            last_used: Instant::now(),
        })
    }

    /// Runs `work` on a pooled session with the server's statement timeout set to
    /// `timeout`, a watchdog cancel past it, and the session returned to the pool
    /// if healthy. A session lost during `work` is never retried: a backend that
    /// dies under a statement is the `crash` outcome the tool exists to find.
    fn with_session<T>(
        &self,
        timeout: Duration,
        work: impl FnOnce(&mut D::Conn) -> Result<T, Failure<D::Error>>,
    ) -> Result<T, EngineError> {
        let mut s = self.session()?;
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as u64;
        let out = if s.timeout_ms == ms {
            Ok(())
        } else {
            self.dialect.set_timeout(&mut s.conn, ms).map_err(Failure::Server)
        }
        .and_then(|()| {
            s.timeout_ms = ms;
            let cancel = self.dialect.canceller(&mut s.conn);
            server::with_watchdog(timeout, cancel, || work(&mut s.conn))
        });
        let healthy = !D::closed(&s.conn)
            && match &out {
                Ok(_) | Err(Failure::Engine(_)) => true,
                Err(Failure::Server(e)) => D::server_class(e).is_some_and(|c| c != ErrorClass::Crash),
            };
        if healthy {
            // A failed statement leaves no transaction open (autocommit).
            s.last_used = Instant::now();
            self.pool.give(s);
        }
        out.map_err(|f| match f {
            Failure::Engine(e) => e,
            Failure::Server(e) => match D::server_class(&e) {
                Some(class) => EngineError::new(class, D::message(&e)),
                None => server::connection_error(self.dialect.target(), D::message(&e)),
            },
        })
    }
}

impl<D: Dialect> Engine for ServerEngine<D> {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError> {
        let sql = sql.trim().trim_end_matches(';');
        let text = self.with_session(crate::WORKER_COMPILE_TIMEOUT, |c| D::explain(c, sql))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::new(ErrorClass::Internal, format!("EXPLAIN output is not JSON: {e}")))?;
        let mut plan = String::new();
        server::render_plan(&json, &mut plan, 0, &D::plan_node);
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
        let mut out = ResultWriter::new(sink);
        self.with_session(limits.timeout, |c| D::execute(c, sql, &mut out))?;
        Ok(out.stats)
    }
}
