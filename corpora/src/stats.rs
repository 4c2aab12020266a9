//! `corpus stats`: what a corpus holds, per template and overall, read in one
//! streaming pass (memory grows with the number of templates, not statements).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::analysis::{StatementKind, analyze};
use crate::corpus::{Corpus, CorpusError};
use crate::fingerprint::{Fingerprinter, TemplateId};

/// One template's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TemplateStats {
    /// The template's id.
    pub template_id: TemplateId,
    /// The normalized text (no literals).
    pub template: String,
    /// Read, write, DDL or other.
    pub kind: StatementKind,
    /// Statements of this template.
    pub count: u64,
    /// Statements that reported a duration.
    pub timed: u64,
    /// Their summed duration.
    pub total_ms: f64,
    /// Their mean duration (none when none was timed).
    pub mean_ms: Option<f64>,
    /// Earliest capture time seen.
    pub first_seen: Option<String>,
    /// Latest capture time seen.
    pub last_seen: Option<String>,
    /// Distinct users.
    pub users: u64,
    /// Distinct tenants.
    pub tenants: u64,
    /// One record of this template (its id), for finding an example.
    pub example_id: String,
}

/// The whole corpus's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorpusStats {
    /// The corpus's name.
    pub name: String,
    /// Its dialect.
    pub dialect: String,
    /// Statements in it.
    pub statements: u64,
    /// Distinct templates.
    pub templates: u64,
    /// Statements by kind (read, write, ddl, other).
    pub kinds: BTreeMap<String, u64>,
    /// Statements that reported a duration.
    pub timed: u64,
    /// Their summed duration.
    pub total_ms: f64,
    /// Earliest capture time seen.
    pub first_seen: Option<String>,
    /// Latest capture time seen.
    pub last_seen: Option<String>,
    /// Distinct users.
    pub users: u64,
    /// Distinct tenants.
    pub tenants: u64,
    /// Templates by statement count, largest first.
    pub per_template: Vec<TemplateStats>,
}

struct Acc {
    stats: TemplateStats,
    users: HashSet<String>,
    tenants: HashSet<String>,
}

/// The kind of a statement: from the AST; by the first keyword when it does not
/// parse.
pub fn kind_of(sql: &str, dialect: &dyn sqlparser::dialect::Dialect) -> StatementKind {
    if let Ok(a) = analyze(sql, dialect) {
        return a.kind;
    }
    let first: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    match first.as_str() {
        "select" | "with" | "values" | "table" | "show" => StatementKind::Read,
        "insert" | "update" | "delete" | "replace" | "merge" | "copy" | "load" | "truncate" | "upsert" => {
            StatementKind::Write
        }
        "create" | "drop" | "alter" | "rename" | "comment" => StatementKind::Ddl,
        _ => StatementKind::Other,
    }
}

/// Inserts `s` unless present (no allocation for names already seen).
fn insert_new(set: &mut HashSet<String>, s: &str) {
    if !set.contains(s) {
        set.insert(s.to_string());
    }
}

fn min_max(first: &mut Option<String>, last: &mut Option<String>, t: &str) {
    if first.as_deref().is_none_or(|f| t < f) {
        *first = Some(t.to_string());
    }
    if last.as_deref().is_none_or(|l| t > l) {
        *last = Some(t.to_string());
    }
}

/// Computes the figures of the corpus at `dir`.
pub fn corpus_stats(dir: &Path) -> Result<CorpusStats, CorpusError> {
    let (manifest, records) = Corpus::stream(dir)?;
    let dialect = crate::analysis::dialect(&manifest.dialect);
    let mut fp = Fingerprinter::new(&manifest.dialect);
    let mut acc: HashMap<TemplateId, Acc> = HashMap::new();
    let mut all_users = HashSet::new();
    let mut all_tenants = HashSet::new();
    let mut out = CorpusStats {
        name: manifest.name.clone(),
        dialect: manifest.dialect.clone(),
        statements: 0,
        templates: 0,
        kinds: BTreeMap::new(),
        timed: 0,
        total_ms: 0.0,
        first_seen: None,
        last_seen: None,
        users: 0,
        tenants: 0,
        per_template: Vec::new(),
    };
    for rec in records {
        let (_, r) = rec?;
        let id = r.template();
        let a = acc.entry(id).or_insert_with(|| Acc {
            stats: TemplateStats {
                template_id: id,
                template: fp.fingerprint(&r.sql).normalized.clone(),
                kind: kind_of(&r.sql, &*dialect),
                count: 0,
                timed: 0,
                total_ms: 0.0,
                mean_ms: None,
                first_seen: None,
                last_seen: None,
                users: 0,
                tenants: 0,
                example_id: r.id.clone(),
            },
            users: HashSet::new(),
            tenants: HashSet::new(),
        });
        let s = &mut a.stats;
        s.count += 1;
        out.statements += 1;
        if let Some(d) = r.duration_ms {
            s.timed += 1;
            s.total_ms += d;
            out.timed += 1;
            out.total_ms += d;
        }
        if let Some(t) = &r.captured_at {
            min_max(&mut s.first_seen, &mut s.last_seen, t);
            min_max(&mut out.first_seen, &mut out.last_seen, t);
        }
        if let Some(u) = &r.user {
            insert_new(&mut a.users, u);
            insert_new(&mut all_users, u);
        }
        if let Some(t) = &r.tenant {
            insert_new(&mut a.tenants, t);
            insert_new(&mut all_tenants, t);
        }
    }
    out.users = all_users.len() as u64;
    out.tenants = all_tenants.len() as u64;
    out.templates = acc.len() as u64;
    for (_, a) in acc {
        let mut s = a.stats;
        s.users = a.users.len() as u64;
        s.tenants = a.tenants.len() as u64;
        s.mean_ms = (s.timed > 0).then(|| s.total_ms / s.timed as f64);
        let kind = serde_json::to_value(s.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *out.kinds.entry(kind).or_insert(0) += s.count;
        out.per_template.push(s);
    }
    out.per_template
        .sort_by(|a, b| b.count.cmp(&a.count).then(a.template_id.cmp(&b.template_id)));
    Ok(out)
}
