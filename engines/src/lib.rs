//! # sqlflight-engines
//!
//! The one place that knows engine APIs. It defines the [`Engine`] trait (compile a
//! statement to logical and physical plan text; execute it to a stream of Arrow
//! record batches; report name and version), the classified [`EngineError`], the
//! engine profile specification read from YAML ([`EngineSpec`]), and the embedded
//! DataFusion implementation ([`datafusion_engine::DataFusionEngine`]) whose
//! profiles set config keys and disable optimizer rules by name.
//!
//! Main types: [`Engine`], [`EngineInfo`], [`CompiledPlan`], [`EngineError`],
//! [`EngineSpec`], [`BuildError`], [`ExecLimits`], [`ExecStats`].
//!
//! It must never compare or judge results (that is `diffing`), and must never let an
//! engine's failure escape as anything but a classified [`EngineError`]: callers
//! additionally catch panics, which become `crash`.

pub mod datafusion_engine;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use datafusion::arrow;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use sqlflight_corpora::Catalog;
pub use sqlflight_diffing::{EngineInfo, ErrorClass};

/// Plan texts of one compiled statement, as the engine displays them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPlan {
    pub logical: String,
    /// None for statements without a physical plan (DDL, SET, ...).
    pub physical: Option<String>,
}

/// A classified engine error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class} error: {message}")]
pub struct EngineError {
    pub class: ErrorClass,
    pub message: String,
}

impl EngineError {
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
    pub rows: u64,
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
    fn info(&self) -> &EngineInfo;

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
        #[serde(default)]
        setup: Vec<String>,
    },
}

/// Why an engine could not be built from its profile.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    #[error("engine `{profile}`: setting `{key}`: {message}")]
    Setting {
        profile: String,
        key: String,
        message: String,
    },
    #[error("engine `{profile}`: unknown optimizer rule `{rule}`; known rules: {known}")]
    UnknownRule {
        profile: String,
        rule: String,
        known: String,
    },
    #[error("engine `{profile}`: catalog {origin}: {message}")]
    Catalog {
        profile: String,
        origin: String,
        message: String,
    },
    #[error("engine `{profile}`: setup statement `{statement}`: {message}")]
    Setup {
        profile: String,
        statement: String,
        message: String,
    },
    #[error("engine `{profile}`: {message}")]
    Other { profile: String, message: String },
}

/// Builds the engine a profile describes, with the catalog loaded.
pub fn build_engine(profile: &str, spec: &EngineSpec, catalog: &Catalog) -> Result<Arc<dyn Engine>, BuildError> {
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
    }
}
