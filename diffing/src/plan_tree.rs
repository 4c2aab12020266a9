//! Plans as operator trees: every engine's plan text, as sqlflight renders it (one
//! operator per line, children indented below their parent, `Kind: key=value, ...`
//! details), parsed into a tree of operators with attributes and a table.
//!
//! One parser serves every engine because every engine's plan reaches it in the
//! same shape: DataFusion prints its plans that way; the PostgreSQL, MariaDB and
//! DuckDB engines render their JSON plans that way (`engines/src/server.rs`,
//! `workers/sqlflight_worker.py`); Flight SQL servers answering DataFusion-style
//! `EXPLAIN` do too. A plan drawn with boxes (DuckDB releases without JSON
//! `EXPLAIN`) cannot be read as a tree: each line becomes one operator of a flat
//! list, which still aligns line by line.
//!
//! What differs between runs without meaning is normalized here, per attribute
//! value: expression ids (`#123L`, Spark), column positions (`a@3`, DataFusion),
//! plan ids (`plan_id=7`), and estimates are dropped (`rows=`, `cost=`,
//! `Estimated Cardinality=`, ...). Partition counts stay (see [`crate::plan`]).

use std::sync::LazyLock;

use regex::Regex;

/// One operator of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNode {
    /// Operator kind: `HashJoinExec`, `Hash Join`, `SEQ_SCAN`.
    pub kind: String,
    /// `key=value` details in plan order; positional details get keys `#0`, `#1`.
    /// Values are normalized (ids and column positions removed).
    pub attrs: Vec<(String, String)>,
    /// The table or file the operator reads, when it names one.
    pub table: Option<String>,
    /// Index of the parent node, if any.
    pub parent: Option<usize>,
    /// Indices of the children, in plan order.
    pub children: Vec<usize>,
}

impl PlanNode {
    /// The value of attribute `key`, if the node has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Plans with more operators than this are not put in canonical order (see
/// [`PlanTree::canonical`]).
pub const CANONICAL_MAX_NODES: usize = 2000;

/// A plan as a forest of operators, in pre-order (a parent before its children,
/// children in plan order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanTree {
    /// The operators, in pre-order.
    pub nodes: Vec<PlanNode>,
}

/// Detail keys that are estimates, never plan facts (lower case).
const ESTIMATE_KEYS: [&str; 12] = [
    "rows",
    "cost",
    "width",
    "estimated cardinality",
    "plan rows",
    "plan width",
    "startup cost",
    "total cost",
    "statistics",
    "rows_examined_per_scan",
    "rows_produced_per_join",
    "filtered",
];

/// Detail keys that name the table an operator reads (lower case).
const TABLE_KEYS: [&str; 5] = ["table", "table_name", "table name", "relation name", "relation"];

static COLUMN_POSITION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"@\d+").expect("static regex"));
static EXPR_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#\d+L?\b").expect("static regex"));
static PLAN_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"plan_id=\d+").expect("static regex"));
static DATA_FILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[/\\\[ ,{…])([A-Za-z_][\w-]*)(?:\.[\w-]+)*\.(?:parquet|csv|json|jsonl|avro|arrow|orc|tbl)\b")
        .expect("static regex")
});

/// A detail value with what changes between runs without meaning removed.
pub fn normalize_value(v: &str) -> String {
    let mut s = std::borrow::Cow::Borrowed(v.trim());
    if s.contains('@') {
        s = COLUMN_POSITION.replace_all(&s, "").into_owned().into();
    }
    if s.contains('#') {
        s = EXPR_ID.replace_all(&s, "#").into_owned().into();
    }
    if s.contains("plan_id=") {
        s = PLAN_ID.replace_all(&s, "plan_id").into_owned().into();
    }
    s.into_owned()
}

impl PlanTree {
    /// Parses one normalized plan text (see the module docs). Never fails: any
    /// text is some forest of operators.
    pub fn parse(text: &str) -> PlanTree {
        let boxed = text.contains('┌') || text.contains('│');
        let mut nodes: Vec<PlanNode> = Vec::new();
        // (indentation, node) of the open ancestors.
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for raw in text.lines() {
            if boxed {
                let line = raw.trim_matches(|c: char| c.is_whitespace() || "┌┐└┘─│├┤┬┴┼".contains(c));
                if !line.is_empty() {
                    nodes.push(node_of(line, None));
                }
                continue;
            }
            let trimmed = raw.trim_start();
            if trimmed.trim().is_empty() {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            // PostgreSQL's text format marks operators with `->`.
            let line = trimmed.strip_prefix("->").map_or(trimmed, str::trim_start);
            while stack.last().is_some_and(|(d, _)| *d >= indent) {
                stack.pop();
            }
            let parent = stack.last().map(|(_, i)| *i);
            let id = nodes.len();
            nodes.push(node_of(line.trim_end(), parent));
            if let Some(p) = parent {
                nodes[p].children.push(id);
            }
            stack.push((indent, id));
        }
        PlanTree { nodes }
    }

    /// Nodes without a parent, in plan order.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parent.is_none())
            .map(|(i, _)| i)
    }

    /// Operators in the plan.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The same tree with every operator's children in a canonical order: by the
    /// tables their subtrees read, then by kind (plan order breaks ties). Inputs an
    /// optimizer merely swapped (a join's build and probe side) then align. The
    /// table lists grow with depth (quadratic at worst), so plans above
    /// [`CANONICAL_MAX_NODES`] operators keep their plan order.
    pub fn canonical(&self) -> PlanTree {
        if self.nodes.len() > CANONICAL_MAX_NODES {
            return self.clone();
        }
        // Tables under each node, children first (pre-order: children come later).
        let mut under: Vec<Vec<&str>> = vec![Vec::new(); self.nodes.len()];
        for i in (0..self.nodes.len()).rev() {
            let mut t: Vec<&str> = self.nodes[i].table.as_deref().into_iter().collect();
            for &c in &self.nodes[i].children {
                t.extend(under[c].iter().copied());
            }
            t.sort_unstable();
            t.dedup();
            under[i] = t;
        }
        let mut out = self.clone();
        for n in &mut out.nodes {
            n.children
                .sort_by(|&a, &b| (&under[a], &self.nodes[a].kind, a).cmp(&(&under[b], &self.nodes[b].kind, b)));
        }
        out
    }

    /// Whether the plan has no operator.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The kind of a plan line: the text before the first `:` (or before the first
/// space when there is no `:`). Same as [`crate::plan::operator_kind`].
fn split_kind(line: &str) -> (&str, &str) {
    match line.find(':') {
        Some(i) => (line[..i].trim_end(), line[i + 1..].trim()),
        None => match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line, ""),
        },
    }
}

fn node_of(line: &str, parent: Option<usize>) -> PlanNode {
    let (kind, mut rest) = split_kind(line);
    let mut table = None;
    // DataFusion's logical scan: `TableScan: nation projection=[...]`.
    if kind == "TableScan" {
        let (t, r) = rest.split_once(' ').unwrap_or((rest, ""));
        table = Some(t.trim_end_matches(',').to_string());
        rest = r;
    }
    let mut attrs = Vec::new();
    let mut positional = 0;
    for part in split_top_level(rest) {
        match key_of(part) {
            Some((k, v)) => {
                if ESTIMATE_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    continue;
                }
                attrs.push((k.to_string(), normalize_value(v)));
            }
            // A list value continues after a comma (`Projections=a, b, c`, as
            // DuckDB's renderer joins lists).
            None if attrs.last().is_some_and(|(k, _)| !k.starts_with('#')) => {
                if let Some((_, v)) = attrs.last_mut() {
                    v.push_str(", ");
                    v.push_str(&normalize_value(part));
                }
            }
            None => {
                attrs.push((format!("#{positional}"), normalize_value(part)));
                positional += 1;
            }
        }
    }
    if table.is_none() {
        table = attrs
            .iter()
            .find(|(k, _)| TABLE_KEYS.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(_, v)| v.trim_matches(|c| c == '"' || c == '`').to_string());
    }
    if table.is_none() {
        table = attrs
            .iter()
            .find_map(|(_, v)| DATA_FILE.captures(v).map(|c| c[1].to_string()));
    }
    PlanNode {
        kind: kind.to_string(),
        attrs,
        table,
        parent,
        children: Vec::new(),
    }
}

/// `key=value` when the part starts with a key: letters, digits, `_`, `.`, `-`
/// and inner spaces (`Join Type=Inner`), immediately followed by `=` (not `==`,
/// `<=`, `>=`, `!=`; `a = b` is an expression, not a detail).
fn key_of(part: &str) -> Option<(&str, &str)> {
    let eq = part.find('=')?;
    let key = &part[..eq];
    let after = part[eq + 1..].chars().next();
    if key.is_empty()
        || key.ends_with(' ')
        || after == Some('=')
        || !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ' '))
    {
        return None;
    }
    Some((key, &part[eq + 1..]))
}

/// Splits details at the commas outside brackets and quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth <= 0 => {
                let p = s[start..i].trim();
                if !p.is_empty() {
                    out.push(p);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let p = s[start..].trim();
    if !p.is_empty() {
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datafusion_physical_plan() {
        let t = PlanTree::parse(
            "ProjectionExec: expr=[a@0 as a]\n  HashJoinExec: mode=Partitioned, join_type=Inner, on=[(a@0, b@1)]\n    DataSourceExec: file_groups={1 group: [[…/lineitem.parquet:0..10]]}, projection=[a], file_type=parquet\n    RepartitionExec: partitioning=Hash([b@1], 2), input_partitions=1\n      DataSourceExec: file_groups={1 group: [[…/orders.parquet]]}, file_type=parquet\n",
        );
        assert_eq!(t.len(), 5);
        assert_eq!(t.roots().collect::<Vec<_>>(), vec![0]);
        let j = &t.nodes[1];
        assert_eq!(j.kind, "HashJoinExec");
        assert_eq!(j.attr("join_type"), Some("Inner"));
        assert_eq!(j.attr("on"), Some("[(a, b)]"));
        assert_eq!(j.children, vec![2, 3]);
        assert_eq!(t.nodes[2].table.as_deref(), Some("lineitem"));
        assert_eq!(t.nodes[4].table.as_deref(), Some("orders"));
        assert_eq!(t.nodes[4].parent, Some(3));
        assert_eq!(t.nodes[3].attr("partitioning"), Some("Hash([b], 2)"));
        let d = PlanTree::parse("PROJECTION: Projections=a, b, #3, Filters=x > 1");
        assert_eq!(d.nodes[0].attr("Projections"), Some("a, b, #"));
        assert_eq!(d.nodes[0].attr("Filters"), Some("x > 1"));
    }

    #[test]
    fn rendered_server_plans_and_logical_scans() {
        let t = PlanTree::parse(
            "Hash Join: Join Type=Inner, Hash Cond=(a = b)\n  Seq Scan: Relation Name=nation, Plan Rows=25\n  Hash\n    Seq Scan: Relation Name=region",
        );
        assert_eq!(t.nodes[0].kind, "Hash Join");
        assert_eq!(t.nodes[0].attr("Join Type"), Some("Inner"));
        assert_eq!(t.nodes[1].table.as_deref(), Some("nation"));
        assert_eq!(t.nodes[1].attr("Plan Rows"), None, "estimates are dropped");
        assert_eq!(t.nodes[3].parent, Some(2));
        let l = PlanTree::parse("Filter: a = 1\n  TableScan: nation projection=[a, b]");
        assert_eq!(l.nodes[0].attr("#0"), Some("a = 1"));
        assert_eq!(l.nodes[1].table.as_deref(), Some("nation"));
        assert_eq!(l.nodes[1].attr("projection"), Some("[a, b]"));
    }

    #[test]
    fn boxes_become_a_flat_list() {
        let t = PlanTree::parse("┌───────────┐\n│ SEQ_SCAN  │\n└───────────┘\n");
        assert_eq!(t.len(), 1);
        assert_eq!(t.nodes[0].kind, "SEQ_SCAN");
    }

    #[test]
    fn ids_are_normalized() {
        assert_eq!(normalize_value("[a#12L, b#3]"), "[a#, b#]");
        assert_eq!(normalize_value("plan_id=42"), "plan_id");
    }
}
