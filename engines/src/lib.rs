//! # sqlflight-engines
//!
//! The one place that knows engine APIs. It defines the [`Engine`] trait (compile a
//! statement to logical and physical plan text; execute it to a stream of Arrow
//! record batches; report name and version), the classified [`EngineError`], the
//! engine profile specification read from YAML ([`EngineSpec`]), and every
//! implementation: the embedded DataFusion ([`datafusion_engine::DataFusionEngine`],
//! whose profiles set config keys and disable optimizer rules by name); worker
//! processes speaking docs/worker-protocol.md ([`worker`]) for DuckDB,
//! datafusion-python, Spark ([`spark`]), Flink ([`flink`]) and any other program;
//! database servers as one [`server_engine::ServerEngine`] over a small
//! [`server_engine::Dialect`] trait, with PostgreSQL ([`postgres`]) and
//! MySQL/MariaDB ([`mysql`]) as dialects; and Arrow Flight SQL servers
//! ([`flight_sql`]).
//!
//! Main types: [`Engine`], [`EngineInfo`], [`CompiledPlan`], [`EngineError`],
//! [`EngineSpec`], [`BuildError`], [`ExecLimits`], [`ExecStats`].
//!
//! Compile a query with the embedded DataFusion, its plan text is what playback
//! compares:
//!
//! ```
//! use std::collections::BTreeMap;
//! use sqlflight_corpora::Catalog;
//! use sqlflight_engines::Engine;
//! use sqlflight_engines::datafusion_engine::DataFusionEngine;
//!
//! let catalog = Catalog::from_ddl("<example>", "CREATE TABLE t (a INT, b VARCHAR);");
//! let engine = DataFusionEngine::new("baseline", &BTreeMap::new(), &[], &[], &catalog)?;
//! let plan = engine.compile("SELECT b, count(*) FROM t WHERE a > 1 GROUP BY b")?;
//! assert!(plan.logical.contains("Aggregate"), "{}", plan.logical);
//! assert!(plan.physical.is_some_and(|p| p.contains("AggregateExec")));
//! assert_eq!(engine.info().engine, "datafusion");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It must never compare or judge results (that is `diffing`), and must never let an
//! engine's failure escape as anything but a classified [`EngineError`]: callers
//! additionally catch panics, which become `crash`.

#![warn(missing_docs)]

pub mod datafusion_engine;
pub mod flight_sql;
pub mod flink;
pub mod mysql;
pub mod postgres;
pub mod python;
mod server;
pub mod server_engine;
pub mod spark;

pub use server::{ServerSpec, redact_connection_string};
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use datafusion::arrow;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use sqlflight_corpora::Catalog;
use sqlflight_corpora::redact::Redactor;
pub use sqlflight_diffing::{EngineInfo, ErrorClass};

/// Plan texts of one compiled statement, as the engine displays them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPlan {
    /// The logical (optimized) plan.
    pub logical: String,
    /// None for statements without a physical plan (DDL, SET, ...).
    pub physical: Option<String>,
}

/// A classified engine error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class} error: {message}")]
pub struct EngineError {
    /// How it failed.
    pub class: ErrorClass,
    /// The engine's message (redacted before it reaches a run).
    pub message: String,
}

impl EngineError {
    /// An error of `class` with `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        EngineError {
            class,
            message: message.into(),
        }
    }
}

/// Figures of one execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// The result's schema (also when it has no rows).
    pub schema: Option<datafusion::arrow::datatypes::SchemaRef>,
    /// Rows returned.
    pub rows: u64,
    /// Batches returned.
    pub batches: u64,
    /// Peak memory the engine accounted for this query, when it tracks memory.
    pub peak_memory: Option<u64>,
}

/// Limits of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Cancel the query after this long (the engine stops working on it).
    pub timeout: std::time::Duration,
    /// Fail the query with a `resource` error past this many bytes.
    pub memory_limit: Option<usize>,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            timeout: std::time::Duration::from_secs(300),
            memory_limit: None,
        }
    }
}

/// Something that can compile and execute SQL.
///
/// Implementations are shared across threads; each call is independent.
pub trait Engine: Send + Sync {
    /// The engine, its version and the profile it was built from.
    fn info(&self) -> &EngineInfo;

    /// Whether a result's row order means anything. A streaming engine's result
    /// is a table folded from a changelog, in no defined order: ORDER BY is then
    /// not compared (the rows still are).
    fn results_ordered(&self) -> bool {
        true
    }

    /// Parses, plans and optimizes `sql` without running it.
    fn compile(&self, sql: &str) -> Result<CompiledPlan, EngineError>;

    /// Runs `sql` within `limits`, handing each result batch to `sink` as it
    /// streams. The batches are not kept.
    fn execute(
        &self,
        sql: &str,
        limits: &ExecLimits,
        sink: &mut dyn FnMut(&RecordBatch) -> Result<(), EngineError>,
    ) -> Result<ExecStats, EngineError>;
}

/// An engine profile as written in the config's `engines:` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EngineSpec {
    /// The embedded DataFusion (this build's version).
    Datafusion {
        /// DataFusion config keys, e.g. `datafusion.optimizer.prefer_hash_join: "false"`.
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Optimizer, analyzer or physical optimizer rules to remove, by name.
        #[serde(default)]
        disable_rules: Vec<String>,
        /// Statements run on this engine's session after the catalog's setup.
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
    },
    /// A DuckDB release from PyPI, run as a worker process in its own virtual
    /// environment (provisioned on first use under the cache directory).
    Duckdb {
        /// The release, from PyPI (`1.1.3`).
        version: String,
        /// `SET key = 'value'` per key.
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
    },
    /// A datafusion-python release from PyPI, run as a worker process.
    DatafusionPython {
        /// The release, from PyPI (`1.1.3`).
        version: String,
        /// DataFusion config keys for the session.
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
    },
    /// An Apache Spark release from PyPI (`pyspark`, 3.4 or newer) in local mode,
    /// run as a worker process: one local session per worker, on loopback, with
    /// the UI off and nothing downloaded at run time (see [`spark`]).
    Spark {
        /// The release, from PyPI (`1.1.3`).
        version: String,
        /// Spark session configuration (`spark.sql.ansi.enabled: "false"`, ...).
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
        /// Worker threads of each local session (`local[N]`); 2 unless given.
        #[serde(default)]
        cores: Option<u32>,
    },
    /// A Spark Connect server (a Spark cluster, a gateway such as Kyuubi, Sail),
    /// through the `pyspark-client` package in a worker (see [`spark`]).
    SparkConnect {
        /// `sc://host:port`, without a token.
        url: String,
        /// The `pyspark-client` release that talks to the server (4.0 on).
        #[serde(default)]
        client_version: Option<String>,
        /// Name of the environment variable holding the server's token; the
        /// token is never written anywhere.
        #[serde(default)]
        token_env: Option<String>,
        /// Spark session configuration set on the remote session.
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
    },
    /// An Apache Flink release from PyPI (`apache-flink`, 1.18 or newer) as a
    /// local mini-cluster in batch or streaming mode, run as a worker process
    /// (see [`flink`]).
    Flink {
        /// The release, from PyPI (`1.1.3`).
        version: String,
        /// `batch` (the default) or `streaming`.
        #[serde(default)]
        mode: flink::FlinkMode,
        /// Flink configuration options (`table.exec.mini-batch.enabled: "true"`, ...).
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
        /// Default parallelism of the mini-cluster; 2 unless given.
        #[serde(default)]
        parallelism: Option<u32>,
    },
    /// A PostgreSQL server (see [`postgres`] for what compile and execute do and
    /// the type mapping).
    Postgres(ServerSpec),
    /// An Arrow Flight SQL server (see [`flight_sql`]).
    FlightSql(flight_sql::FlightSqlSpec),
    /// A MySQL or MariaDB server (see [`mysql`]).
    #[serde(alias = "mariadb")]
    Mysql(ServerSpec),
    /// Any program that speaks the worker protocol (docs/worker-protocol.md).
    Worker {
        /// Program and arguments.
        command: Vec<String>,
        /// Environment variables of the worker process.
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Settings passed to the worker's `setup`.
        #[serde(default)]
        settings: BTreeMap<String, String>,
        /// Statements run on each session after the catalog's setup.
        #[serde(default)]
        setup: Vec<String>,
    },
}

impl EngineSpec {
    /// The profile's own setup statements (run after the catalog's).
    pub fn setup(&self) -> &[String] {
        match self {
            EngineSpec::Datafusion { setup, .. }
            | EngineSpec::Duckdb { setup, .. }
            | EngineSpec::DatafusionPython { setup, .. }
            | EngineSpec::Spark { setup, .. }
            | EngineSpec::SparkConnect { setup, .. }
            | EngineSpec::Flink { setup, .. }
            | EngineSpec::Worker { setup, .. } => setup,
            EngineSpec::Postgres(s) | EngineSpec::Mysql(s) => &s.setup,
            EngineSpec::FlightSql(_) => &[],
        }
    }
}

/// Why an engine could not be built from its profile.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    /// A setting the engine refused (or one that is not a setting name).
    #[error("engine `{profile}`: setting `{key}`: {message}")]
    Setting {
        /// The profile.
        profile: String,
        /// The setting.
        key: String,
        /// What the engine said (redacted).
        message: String,
    },
    /// `disable_rules` names a rule the engine does not have.
    #[error("engine `{profile}`: unknown optimizer rule `{rule}`; known rules: {known}")]
    UnknownRule {
        /// The profile.
        profile: String,
        /// The unknown rule.
        rule: String,
        /// The rules it has.
        known: String,
    },
    /// A catalog file or DDL could not be loaded.
    #[error("engine `{profile}`: catalog {origin}: {message}")]
    Catalog {
        /// The profile.
        profile: String,
        /// The file or DDL source.
        origin: String,
        /// What the engine said (redacted).
        message: String,
    },
    /// A setup statement failed.
    #[error("engine `{profile}`: setup statement `{statement}`: {message}")]
    Setup {
        /// The profile.
        profile: String,
        /// The statement.
        statement: String,
        /// What the engine said (redacted).
        message: String,
    },
    /// Anything else (a bad URL, an unreachable server, ...).
    #[error("engine `{profile}`: {message}")]
    Other {
        /// The profile.
        profile: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The worker process could not be started or refused its setup.
    #[error("engine `{profile}`: worker: {message}")]
    Worker {
        /// The profile.
        profile: String,
        /// What went wrong.
        message: String,
    },
    /// Installing the engine version failed (the message says why and what to do).
    #[error("engine `{profile}`: {message}")]
    Provision {
        /// The profile.
        profile: String,
        /// Why, and what to do.
        message: String,
    },
}

/// Builds the engine a profile describes, with the catalog loaded.
///
/// What an engine says while it loads the catalog or runs setup statements is
/// desensitized ([`sqlflight_corpora::redact::Redactor::for_catalog`]): a table
/// value an engine echoes (a CSV cell it cannot parse) never reaches a message.
pub fn build_engine(profile: &str, spec: &EngineSpec, catalog: &Catalog) -> Result<Arc<dyn Engine>, BuildError> {
    build_unredacted(profile, spec, catalog).map_err(|e| match e {
        BuildError::Catalog {
            profile,
            origin,
            message,
        } => BuildError::Catalog {
            profile,
            origin,
            message: Redactor::for_catalog(catalog, spec.setup()).redact(&message),
        },
        BuildError::Setup {
            profile,
            statement,
            message,
        } => BuildError::Setup {
            profile,
            statement,
            message: Redactor::for_catalog(catalog, spec.setup()).redact(&message),
        },
        other => other,
    })
}

fn build_unredacted(profile: &str, spec: &EngineSpec, catalog: &Catalog) -> Result<Arc<dyn Engine>, BuildError> {
    match spec {
        EngineSpec::Datafusion {
            settings,
            disable_rules,
            setup,
        } => Ok(Arc::new(datafusion_engine::DataFusionEngine::new(
            profile,
            settings,
            disable_rules,
            setup,
            catalog,
        )?)),
        EngineSpec::Duckdb {
            version,
            settings,
            setup,
        } => {
            let launch = python_launch(profile, "duckdb", version, &["pyarrow"], "duckdb")?;
            worker_engine(profile, launch, settings, setup, catalog)
        }
        EngineSpec::DatafusionPython {
            version,
            settings,
            setup,
        } => {
            let launch = python_launch(profile, "datafusion", version, &[], "datafusion")?;
            worker_engine(profile, launch, settings, setup, catalog)
        }
        EngineSpec::Spark {
            version,
            settings,
            setup,
            cores,
        } => {
            let (python, script) = spark::provision(profile, version, settings, *cores)?;
            let launch = worker::Launch {
                program: python,
                args: vec![
                    script.display().to_string(),
                    "spark".into(),
                    format!("local[{}]", cores.unwrap_or(spark::DEFAULT_CORES)),
                ],
                env: spark::worker_env(),
            };
            worker_engine(profile, launch, settings, setup, catalog)
        }
        EngineSpec::SparkConnect {
            url,
            client_version,
            token_env,
            settings,
            setup,
        } => {
            let launch =
                spark::connect_launch(profile, url, client_version.as_deref(), token_env.as_deref(), settings)?;
            worker_engine(profile, launch, settings, setup, catalog)
        }
        EngineSpec::Flink {
            version,
            mode,
            settings,
            setup,
            parallelism,
        } => {
            let launch = flink::launch(profile, version, *mode, *parallelism)?;
            let catalog = flink::catalog(profile, catalog)?;
            worker_engine(profile, launch, settings, setup, &catalog)
        }
        EngineSpec::Postgres(spec) => Ok(Arc::new(postgres::PostgresEngine::new(profile, spec, catalog)?)),
        EngineSpec::FlightSql(spec) => Ok(Arc::new(flight_sql::FlightSqlEngine::new(profile, spec)?)),
        EngineSpec::Mysql(spec) => Ok(Arc::new(mysql::MysqlEngine::new(profile, spec, catalog)?)),
        EngineSpec::Worker {
            command,
            env,
            settings,
            setup,
        } => {
            let (program, args) = command.split_first().ok_or_else(|| BuildError::Worker {
                profile: profile.into(),
                message: "`command` is empty; give the program and its arguments".into(),
            })?;
            let launch = worker::Launch {
                program: program.into(),
                args: args.to_vec(),
                env: env.clone(),
            };
            worker_engine(profile, launch, settings, setup, catalog)
        }
    }
}

fn worker_engine(
    profile: &str,
    launch: worker::Launch,
    settings: &BTreeMap<String, String>,
    setup: &[String],
    catalog: &Catalog,
) -> Result<Arc<dyn Engine>, BuildError> {
    Ok(Arc::new(worker::WorkerEngine::new(
        profile,
        launch,
        settings,
        setup,
        catalog,
        WORKER_COMPILE_TIMEOUT,
    )?))
}

/// How long a worker may take to compile one statement before it is killed.
pub const WORKER_COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How to run the shipped Python worker for `package==version` (provisioned on
/// first use) with engine `backend`.
fn python_launch(
    profile: &str,
    package: &str,
    version: &str,
    extra: &[&str],
    backend: &str,
) -> Result<worker::Launch, BuildError> {
    let provision = |e: python::ProvisionError| BuildError::Provision {
        profile: profile.into(),
        message: e.to_string(),
    };
    let python = python::ensure_venv(package, version, extra).map_err(provision)?;
    let script = python::worker_script().map_err(provision)?;
    Ok(worker::Launch {
        program: python,
        args: vec![script.display().to_string(), backend.to_string()],
        env: BTreeMap::new(),
    })
}
