//! The query record: one captured statement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fingerprint::{TemplateId, fingerprint};

/// Where a statement was captured from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// File the statement was read from (as given to ingest).
    pub file: String,
    /// 1-based line of the statement's first character.
    pub line: u64,
}

/// One captured statement and what is known about it.
///
/// `id` is stable: the same input ingested twice gives the same ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRecord {
    /// Stable id: `q-` and a hash of the statement (`-2`, `-3` for repeats), or the input's own id.
    pub id: String,
    /// The statement's text.
    pub sql: String,
    /// Template (fingerprint) id; computed from `sql` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<TemplateId>,
    /// Where it was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The user that ran it, as the log named them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The tenant it belongs to (rollouts admit tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The database (schema) it ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Capture time (RFC 3339), as the source reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    /// Observed duration in milliseconds, when the source reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Free-form tags (`--tag`, selection by `--only-tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Session (connection, thread, application) the log attributes it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The source engine's own id of the statement (PostgreSQL `query_id`, Trino
    /// `queryId`, Spark `executionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// Other facts the source reported (`rows_examined`, `state`, `cpu_ms`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl QueryRecord {
    /// A record with only id and SQL; the template id is computed.
    pub fn new(id: impl Into<String>, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        let template = fingerprint(&sql).id;
        QueryRecord::with_template(id, sql, template)
    }

    /// A record with id, SQL and an already computed template id.
    pub fn with_template(id: impl Into<String>, sql: impl Into<String>, template: TemplateId) -> Self {
        let sql = sql.into();
        let template_id = Some(template);
        QueryRecord {
            id: id.into(),
            sql,
            template_id,
            source: None,
            user: None,
            tenant: None,
            database: None,
            captured_at: None,
            duration_ms: None,
            tags: Vec::new(),
            session: None,
            query_id: None,
            attrs: BTreeMap::new(),
        }
    }

    /// The template id, computing it if the record did not carry one.
    pub fn template(&self) -> TemplateId {
        self.template_id.unwrap_or_else(|| fingerprint(&self.sql).id)
    }
}
