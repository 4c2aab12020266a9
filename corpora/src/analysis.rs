//! What a statement is, read from its AST (sqlparser): read, write, DDL or other;
//! the top-level ORDER BY keys; and the reasons its result may not be determined
//! (random/now/uuid-like functions, LIMIT without ORDER BY, approximate aggregates,
//! TABLESAMPLE). Flighting runs only statements this proves to be reads.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, LimitClause, OrderByKind, Query, Statement, TableFactor, Value, Visit, Visitor};
use sqlparser::dialect::{Dialect, GenericDialect, dialect_from_str};
use sqlparser::parser::Parser;

/// The kind of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// A query that only reads (no data-modifying CTE, no `FOR UPDATE`).
    Read,
    /// INSERT, UPDATE, DELETE, MERGE, COPY, TRUNCATE, ...
    Write,
    /// CREATE, DROP, ALTER, ...
    Ddl,
    /// SET, transaction control, EXPLAIN, several statements in one, ...
    Other,
}

/// A top-level ORDER BY key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    /// An output column by name (unquoted names lowercased).
    Name(String),
    /// An output column by 1-based position.
    Ordinal(usize),
    /// An expression that is not an output column by itself.
    Expr,
}

/// What the AST says about one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Read, write, DDL or other.
    pub kind: StatementKind,
    /// Why `kind` is not `Read`, in words (`INSERT`, `FOR UPDATE`, ...).
    pub kind_detail: Option<String>,
    /// Top-level ORDER BY keys, when the statement fixes the order of its result.
    pub order_by: Option<Vec<OrderKey>>,
    /// Why the result may not be determined; empty when it is.
    pub nondeterminism: Vec<String>,
}

/// Functions whose result changes between runs.
const VOLATILE: [&str; 16] = [
    "random",
    "rand",
    "now",
    "current_timestamp",
    "current_time",
    "current_date",
    "localtime",
    "localtimestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "sysdate",
    "uuid",
    "gen_random_uuid",
    "uuid_generate_v4",
    "random_uuid",
];

/// The sqlparser dialect for a corpus dialect name (`generic` when unknown).
pub fn dialect(name: &str) -> Box<dyn Dialect> {
    dialect_from_str(name).unwrap_or_else(|| Box::new(GenericDialect {}))
}

/// Analyzes one statement. Err: the text does not parse in this dialect.
pub fn analyze(sql: &str, dialect: &dyn Dialect) -> Result<Analysis, String> {
    let stmts = Parser::parse_sql(dialect, sql).map_err(|e| e.to_string())?;
    if stmts.len() != 1 {
        return Ok(Analysis {
            kind: StatementKind::Other,
            kind_detail: Some(format!("{} statements in one record", stmts.len())),
            order_by: None,
            nondeterminism: Vec::new(),
        });
    }
    let stmt = &stmts[0];
    let mut v = Walk::default();
    let _ = stmt.visit(&mut v);
    let (mut kind, mut detail) = top_kind(stmt);
    if kind == StatementKind::Read {
        if let Some(w) = v.nested_write {
            kind = StatementKind::Write;
            detail = Some(format!("data-modifying {w} inside the query"));
        } else if v.locks {
            kind = StatementKind::Write;
            detail = Some("row locks (FOR UPDATE/SHARE)".into());
        }
    }
    let order_by = match stmt {
        Statement::Query(q) => order_keys(q),
        _ => None,
    };
    Ok(Analysis {
        kind,
        kind_detail: detail,
        order_by,
        nondeterminism: v.reasons.into_iter().collect(),
    })
}

fn variant_name(s: &Statement) -> String {
    let dbg = format!("{s:?}");
    dbg.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

fn top_kind(s: &Statement) -> (StatementKind, Option<String>) {
    if matches!(s, Statement::Query(_)) {
        return (StatementKind::Read, None);
    }
    let name = variant_name(s);
    let kind =
        if name.starts_with("Create") || name.starts_with("Drop") || name.starts_with("Alter") || name == "Comment" {
            StatementKind::Ddl
        } else if matches!(
            name.as_str(),
            "Insert"
                | "Update"
                | "Delete"
                | "Merge"
                | "Copy"
                | "CopyIntoSnowflake"
                | "Truncate"
                | "LoadData"
                | "Unload"
                | "Call"
                | "Execute"
                | "Grant"
                | "Revoke"
                | "Vacuum"
                | "Analyze"
        ) {
            StatementKind::Write
        } else {
            StatementKind::Other
        };
    (kind, Some(name.to_uppercase()))
}

fn order_keys(q: &Query) -> Option<Vec<OrderKey>> {
    let ob = q.order_by.as_ref()?;
    let OrderByKind::Expressions(exprs) = &ob.kind else {
        return None;
    };
    if exprs.is_empty() {
        return None;
    }
    Some(
        exprs
            .iter()
            .map(|e| match &e.expr {
                Expr::Identifier(i) => OrderKey::Name(if i.quote_style.is_some() {
                    i.value.clone()
                } else {
                    i.value.to_lowercase()
                }),
                Expr::CompoundIdentifier(parts) => parts.last().map_or(OrderKey::Expr, |i| {
                    OrderKey::Name(if i.quote_style.is_some() {
                        i.value.clone()
                    } else {
                        i.value.to_lowercase()
                    })
                }),
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n.parse().map_or(OrderKey::Expr, OrderKey::Ordinal),
                    _ => OrderKey::Expr,
                },
                _ => OrderKey::Expr,
            })
            .collect(),
    )
}

#[derive(Default)]
struct Walk {
    reasons: BTreeSet<String>,
    nested_write: Option<String>,
    locks: bool,
    depth: usize,
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > 1 && !matches!(s, Statement::Query(_)) && self.nested_write.is_none() {
            self.nested_write = Some(variant_name(s).to_uppercase());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let has_limit = match &q.limit_clause {
            Some(LimitClause::LimitOffset { limit, .. }) => limit.is_some(),
            Some(LimitClause::OffsetCommaLimit { .. }) => true,
            None => false,
        } || q.fetch.is_some();
        if has_limit && q.order_by.is_none() && !ordered_by_one_window(q) {
            self.reasons.insert("LIMIT without ORDER BY".into());
        }
        if !q.locks.is_empty() {
            self.locks = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { sample: Some(_), .. } = t {
            self.reasons.insert("TABLESAMPLE".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            let name = f
                .name
                .0
                .last()
                .map(|p| p.to_string().to_lowercase())
                .unwrap_or_default();
            let name = name.trim_matches('"');
            if VOLATILE.contains(&name) {
                self.reasons.insert(format!("volatile function {name}()"));
            } else if name.starts_with("approx_") || name == "approx_count_distinct" {
                self.reasons.insert(format!("approximate aggregate {name}()"));
            }
        }
        ControlFlow::Continue(())
    }
}

/// A SELECT whose window functions all share one `OVER (ORDER BY ...)` without
/// PARTITION BY: engines must sort by that order to compute them and emit rows in
/// it, so a LIMIT over it picks determined rows (a LIMIT there is how such
/// queries are written, and a regression in it is a wrong result, e.g.
/// apache/datafusion#18028).
fn ordered_by_one_window(q: &Query) -> bool {
    use sqlparser::ast::{SelectItem, SetExpr, WindowType};
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return false;
    };
    let mut specs = Vec::new();
    for item in &sel.projection {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        if let Expr::Function(f) = e
            && let Some(WindowType::WindowSpec(spec)) = &f.over
        {
            specs.push(spec);
        }
    }
    let Some(first) = specs.first() else {
        return false;
    };
    sel.named_window.is_empty()
        && first.partition_by.is_empty()
        && !first.order_by.is_empty()
        && specs
            .iter()
            .all(|s| s.partition_by.is_empty() && s.order_by == first.order_by)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(sql: &str) -> Analysis {
        analyze(sql, &GenericDialect {}).unwrap()
    }

    #[test]
    fn kinds_from_the_ast() {
        assert_eq!(a("select 1").kind, StatementKind::Read);
        assert_eq!(a("with x as (select 1) select * from x").kind, StatementKind::Read);
        assert_eq!(a("insert into t values (1)").kind, StatementKind::Write);
        assert_eq!(a("update t set a = 1").kind, StatementKind::Write);
        assert_eq!(a("delete from t").kind, StatementKind::Write);
        assert_eq!(a("create table t(a int)").kind, StatementKind::Ddl);
        assert_eq!(a("drop table t").kind, StatementKind::Ddl);
        assert_eq!(a("set x = 1").kind, StatementKind::Other);
        assert_eq!(a("begin").kind, StatementKind::Other);
        assert_eq!(a("select * from t for update").kind, StatementKind::Write);
        let pg = dialect("postgres");
        let cte = analyze("with d as (delete from t returning *) select * from d", pg.as_ref());
        if let Ok(x) = cte {
            assert_eq!(x.kind, StatementKind::Write, "{x:?}");
        }
        // A comment that looks like a write does not fool it.
        assert_eq!(a("select 1 /* delete from t */").kind, StatementKind::Read);
        assert!(analyze("selec 1", &GenericDialect {}).is_err());
    }

    #[test]
    fn order_keys_and_nondeterminism() {
        let x = a("select a, b as bee, count(*) from t group by a, b order by bee desc, 1, T.\"Mixed\", a + 1");
        assert_eq!(
            x.order_by,
            Some(vec![
                OrderKey::Name("bee".into()),
                OrderKey::Ordinal(1),
                OrderKey::Name("Mixed".into()),
                OrderKey::Expr
            ])
        );
        assert!(a("select a from t order by a limit 5").nondeterminism.is_empty());
        assert_eq!(
            a("select a from t limit 5").nondeterminism,
            vec!["LIMIT without ORDER BY"]
        );
        assert_eq!(
            a("select random() from t").nondeterminism,
            vec!["volatile function random()"]
        );
        assert_eq!(a("select now(), 1").nondeterminism, vec!["volatile function now()"]);
        assert_eq!(
            a("select approx_distinct(a) from t").nondeterminism,
            vec!["approximate aggregate approx_distinct()"]
        );
        assert_eq!(
            a("select * from t tablesample system (10)").nondeterminism,
            vec!["TABLESAMPLE"]
        );
        assert_eq!(
            a("select * from (select a from t limit 3) s order by a").nondeterminism,
            vec!["LIMIT without ORDER BY"]
        );
        // One window order and no partitions: the rows a LIMIT takes are determined.
        assert!(
            a("select lead(a) over (order by a) from t limit 3")
                .nondeterminism
                .is_empty(),
            "window order"
        );
        assert_eq!(
            a("select lead(a) over (partition by b order by a) from t limit 3").nondeterminism,
            vec!["LIMIT without ORDER BY"]
        );
        assert_eq!(
            a("select lead(a) over (order by a), lag(a) over (order by b) from t limit 3").nondeterminism,
            vec!["LIMIT without ORDER BY"]
        );
    }
}
