//! Plan changes as atomic, named facts: what the candidate's optimizer does
//! differently from the baseline's, in terms a reviewer can group across a corpus.
//!
//! The baseline and candidate plans are parsed into operator trees
//! ([`crate::plan_tree`]) and aligned with the Zhang–Shasha tree edit distance
//! (costs: inserting or deleting an operator 6, an enforcer or projection 2;
//! aligning different kinds 8, two join algorithms or two scans of one table 4,
//! two enforcers 3; one kind with other details 1), so an operator slipped
//! between two others is one insertion, not a cascade of replacements, and the
//! sorts and repartitions a join change brings are insertions, not real
//! operators relabelled; operators reading different tables
//! never align, and children are put in a canonical order first (by the tables
//! below them), so swapped join inputs align and become one `inputs reordered`
//! fact. The alignment becomes facts:
//! - `inserted` / `removed`: an operator (with the table it reads, if any),
//!   `+ RepartitionExec`, `- DataSourceExec on orders`, and its context
//!   (`in HashJoinExec, over DataSourceExec`) kept apart so that one optimizer
//!   change seen in many places is one fact; an operator inside a wholly inserted
//!   or removed subtree is part of its top operator's fact;
//! - `replaced`: an aligned operator of another kind, `HashJoinExec -> SortMergeJoinExec`;
//! - `attribute`: a detail of an aligned operator changed
//!   (`HashJoinExec.join_type: Inner -> LeftSemi`, or `HashJoinExec.on changed`
//!   when values are expressions), appeared (`DataSourceExec + dynamic_rg_pruning=eligible`)
//!   or disappeared.
//!
//! A fact that changes no operator, no tree shape and no existing detail value (a
//! detail that appeared or disappeared, outside [`SEMANTIC_KEYS`]) is
//! **cosmetic**, and so is a change seen only in the logical plan while the
//! physical plan is the same. A plan change whose facts are all cosmetic is
//! reported apart; gates can ignore it.
//!
//! Facts do not depend on which side is called baseline: the pair is aligned in
//! a canonical order and the facts inverted when needed, so swapping the sides
//! inverts every fact exactly.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::plan::{NormalizedPlan, SECONDARY_KINDS};
use crate::plan_tree::{PlanNode, PlanTree};

/// What kind of change a fact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// An operator the candidate's plan has and the baseline's does not.
    Inserted,
    /// An operator the baseline's plan has and the candidate's does not.
    Removed,
    /// An operator replaced by another at the same place.
    Replaced,
    /// An attribute of an operator changed (join type, sort keys, ...).
    Attribute,
}

impl FactKind {
    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Inserted => "inserted",
            FactKind::Removed => "removed",
            FactKind::Replaced => "replaced",
            FactKind::Attribute => "attribute",
        }
    }
}

/// One named plan change. `fact` is the text people read and the key facts are
/// grouped by across a corpus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlanFact {
    /// The fact in words (`HashJoinExec -> SortMergeJoinExec`).
    pub fact: String,
    /// Its kind.
    pub kind: FactKind,
    /// The operator kind the fact is about (`A -> B` for a replacement).
    pub operator: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    /// Display-only: changes no behaviour (gates can ignore it).
    pub cosmetic: bool,
    /// Where an inserted or removed operator sits: `in HashJoinExec, over
    /// DataSourceExec` (its parent's and children's kinds). Not part of the
    /// fact's identity: reports group by `fact` and list the contexts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Detail keys whose appearance or disappearance changes what an operator does
/// (lower case; DataFusion, PostgreSQL, MariaDB and DuckDB spellings). Any other
/// detail that appears or disappears is display-only.
pub const SEMANTIC_KEYS: [&str; 36] = [
    "fetch",
    "limit",
    "skip",
    "offset",
    "predicate",
    "pruning_predicate",
    "filter",
    "filters",
    "join_filter",
    "join_type",
    "on",
    "mode",
    "partitioning",
    "expr",
    "aggr",
    "gby",
    "sort_exprs",
    "output_ordering",
    "projection",
    "join type",
    "hash cond",
    "merge cond",
    "join filter",
    "index cond",
    "recheck cond",
    "sort key",
    "group key",
    "strategy",
    "conditions",
    "attached_condition",
    "access_type",
    "key",
    "used_key_parts",
    "index name",
    "aggregates",
    "groups",
];

/// Above this many forest-distance cells (Zhang–Shasha's work: the sum of the
/// keyroot subtree sizes of one tree times that of the other, which also bounds
/// the n × m tables), alignment falls back to counting operator kinds. A deep
/// left-deep join of a thousand tables would otherwise take hours; ordinary
/// plans of a few hundred operators stay far below.
const MAX_WORK: usize = 50_000_000;

/// Above this many bytes, a changed value's shape is not diffed word by word
/// (the diff is quadratic in the worst case): it is only `changed`.
const MAX_DELTA_BYTES: usize = 4096;

/// Inserting or deleting an operator.
const INSERT: u32 = 6;
/// Inserting or deleting an enforcer or projection ([`SECONDARY_KINDS`]):
/// optimizers add and drop them as consequences, so the alignment prefers
/// explaining a change with them over relabelling real operators into them.
const INSERT_SECONDARY: u32 = 2;
/// Aligning operators of different kinds.
const RELABEL: u32 = 8;
/// Aligning two joins of different algorithms, or two scans of one table.
const RELABEL_SIBLING: u32 = 4;
/// Aligning two enforcers of different kinds.
const RELABEL_SECONDARY: u32 = 3;
/// Aligning operators of one kind whose details differ.
const RETUNE: u32 = 1;

/// A fact before rendering: structured, so that it can be inverted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Raw {
    Inserted {
        op: String,
        context: String,
    },
    Removed {
        op: String,
        context: String,
    },

    Replaced {
        from: String,
        to: String,
    },
    Changed {
        op: String,
        key: String,
        from: String,
        to: String,
    },
    Added {
        op: String,
        key: String,
        value: String,
    },
    /// The same inputs in another order (a join's sides swapped).
    Reordered {
        op: String,
    },
    Dropped {
        op: String,
        key: String,
        value: String,
    },
    /// The plans differ only in what normalization removes (ids, estimates).
    Trivial,
    /// One side has a physical plan, the other not.
    Presence,
}

impl Raw {
    fn invert(self) -> Raw {
        match self {
            Raw::Inserted { op, context } => Raw::Removed { op, context },
            Raw::Removed { op, context } => Raw::Inserted { op, context },
            Raw::Replaced { from, to } => Raw::Replaced { from: to, to: from },
            Raw::Changed { op, key, from, to } => Raw::Changed {
                op,
                key,
                from: to,
                to: from,
            },
            Raw::Added { op, key, value } => Raw::Dropped { op, key, value },
            Raw::Dropped { op, key, value } => Raw::Added { op, key, value },
            r @ (Raw::Trivial | Raw::Presence | Raw::Reordered { .. }) => r,
        }
    }

    fn render(&self, logical_only: bool) -> PlanFact {
        let context = match self {
            Raw::Inserted { context, .. } | Raw::Removed { context, .. } => Some(context.clone()),
            _ => None,
        };
        let (fact, kind, operator, cosmetic) = match self {
            Raw::Inserted { op, .. } => (format!("+ {op}"), FactKind::Inserted, kind_of(op), false),
            Raw::Removed { op, .. } => (format!("- {op}"), FactKind::Removed, kind_of(op), false),
            Raw::Replaced { from, to } => (
                format!("{from} -> {to}"),
                FactKind::Replaced,
                format!("{from} -> {to}"),
                false,
            ),
            Raw::Changed { op, key, from, to } => {
                let text = match (summary(from, true), summary(to, true)) {
                    (Some(a), Some(b)) if a != b => format!("{op}.{}: {a} -> {b}", key_name(key)),
                    _ => format!("{op}.{} {}", key_name(key), value_delta(from, to)),
                };
                (text, FactKind::Attribute, op.clone(), false)
            }
            Raw::Added { op, key, value } | Raw::Dropped { op, key, value } => {
                let sign = if matches!(self, Raw::Added { .. }) { '+' } else { '-' };
                let text = match summary(value, false) {
                    Some(v) => format!("{op} {sign} {}={v}", key_name(key)),
                    None => format!("{op} {sign} {}", key_name(key)),
                };
                let semantic = key.starts_with('#') || SEMANTIC_KEYS.contains(&key.to_ascii_lowercase().as_str());
                (text, FactKind::Attribute, op.clone(), !semantic)
            }
            Raw::Reordered { op } => (
                format!("{op}: inputs reordered"),
                FactKind::Attribute,
                op.clone(),
                false,
            ),
            Raw::Trivial => (
                "ids or estimates only".to_string(),
                FactKind::Attribute,
                String::new(),
                true,
            ),
            Raw::Presence => (
                "physical plan present on one side only".to_string(),
                FactKind::Replaced,
                String::new(),
                false,
            ),
        };
        if logical_only {
            PlanFact {
                fact: format!("logical: {fact}"),
                kind,
                operator,
                cosmetic: true,
                context,
            }
        } else {
            PlanFact {
                fact,
                kind,
                operator,
                cosmetic,
                context,
            }
        }
    }
}

/// `DataSourceExec on orders` -> `DataSourceExec`.
fn kind_of(named: &str) -> String {
    named.split(" on ").next().unwrap_or(named).to_string()
}

fn key_name(key: &str) -> &str {
    if key.starts_with('#') { "details" } else { key }
}

static SIMPLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\w.+:-]{1,40}$").expect("static regex"));
static CALL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([A-Za-z_]\w*)\s*[(\[{]").expect("static regex"));

/// A value short enough to name a group: a word (`Inner`, `CollectLeft`), or the
/// function an expression starts with (`Hash(…)`). Numbers only where asked
/// (a changed partition count groups well; a new `fetch=10` does not).
fn summary(v: &str, numbers: bool) -> Option<String> {
    if SIMPLE.is_match(v) {
        if !numbers && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        return Some(v.to_string());
    }
    CALL.captures(v).map(|c| format!("{}(…)", &c[1]))
}

/// An expression's shape: names and literals masked as `_`, keywords and
/// operators kept (`l_shipdate<='1998-09-02'::DATE AND l_shipdate IS NOT NULL` ->
/// `_<=_::DATE AND _ IS NOT NULL`).
fn shape(v: &str) -> String {
    static WORD: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"'(?:[^']|'')*'|[A-Za-z_][\w.$]*|\d[\w.]*").expect("static regex"));
    WORD.replace_all(v, |c: &regex::Captures| {
        let w = &c[0];
        let keyword = w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !w.starts_with('_');
        if keyword { w.to_string() } else { "_".to_string() }
    })
    .into_owned()
}

/// How a changed value changed, in a few words that group across queries:
/// what its shape lost and gained (`changed: - "AND _ IS NOT NULL"`), or `names
/// changed` when only names and literals differ.
fn value_delta(from: &str, to: &str) -> String {
    let (a, b) = (shape(from), shape(to));
    if a == b {
        return "changed (names or literals)".into();
    }
    if a.len() + b.len() > MAX_DELTA_BYTES {
        return "changed".into();
    }
    let diff = similar::TextDiff::from_words(a.as_str(), b.as_str());
    // Contiguous runs of deleted and inserted words, runs joined by ` … `.
    let (mut gone, mut came) = (Vec::<String>::new(), Vec::<String>::new());
    let (mut in_gone, mut in_came) = (false, false);
    for c in diff.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Delete => {
                if !in_gone {
                    gone.push(String::new());
                }
                if let Some(r) = gone.last_mut() {
                    r.push_str(c.value());
                }
                in_gone = true;
            }
            similar::ChangeTag::Insert => {
                if !in_came {
                    came.push(String::new());
                }
                if let Some(r) = came.last_mut() {
                    r.push_str(c.value());
                }
                in_came = true;
            }
            similar::ChangeTag::Equal => {
                if !c.value().trim().is_empty() {
                    (in_gone, in_came) = (false, false);
                }
            }
        }
    }
    let runs = |v: Vec<String>| {
        v.iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
            .join(" … ")
    };
    let (gone, came) = (runs(gone), runs(came));
    if gone.len() + came.len() > 48 {
        return "changed".into();
    }
    match (gone.is_empty(), came.is_empty()) {
        (false, true) => format!("lost \"{gone}\""),
        (true, false) => format!("gained \"{came}\""),
        _ => format!("\"{gone}\" -> \"{came}\""),
    }
}

/// The facts of one plan change (empty when the plans are equal). See the module docs.
pub fn plan_facts(baseline: &NormalizedPlan, candidate: &NormalizedPlan) -> Vec<PlanFact> {
    let (a, b, logical_only) = match (&baseline.physical, &candidate.physical) {
        (Some(a), Some(b)) if a != b => (a.as_str(), b.as_str(), false),
        (Some(_), Some(_)) | (None, None) => {
            if baseline.logical == candidate.logical {
                return Vec::new();
            }
            let logical_only = baseline.physical.is_some();
            (baseline.logical.as_str(), candidate.logical.as_str(), logical_only)
        }
        _ => return vec![Raw::Presence.render(false)],
    };
    let raw = if a <= b {
        raw_facts(a, b)
    } else {
        raw_facts(b, a).into_iter().map(Raw::invert).collect()
    };
    let mut facts: BTreeSet<PlanFact> = raw.iter().map(|r| r.render(logical_only)).collect();
    if facts.is_empty() {
        facts.insert(Raw::Trivial.render(logical_only));
    }
    facts.into_iter().collect()
}

/// The facts of two plan texts, baseline `a` and candidate `b`.
fn raw_facts(a: &str, b: &str) -> Vec<Raw> {
    let ta = PlanTree::parse(a);
    let tb = PlanTree::parse(b);
    let Some((map_a, map_b)) = align(&ta.canonical(), &tb.canonical()) else {
        return kind_count_facts(&ta, &tb);
    };
    let mut out = Vec::new();
    for (i, n) in ta.nodes.iter().enumerate() {
        match map_a[i] {
            None if reported(&ta, &map_a, i) => out.push(Raw::Removed {
                op: named(n),
                context: context(&ta, i),
            }),
            None => {}
            Some(j) => {
                let m = &tb.nodes[j];
                if n.kind != m.kind {
                    out.push(Raw::Replaced {
                        from: n.kind.clone(),
                        to: m.kind.clone(),
                    });
                    continue;
                }
                for (k, v) in &n.attrs {
                    match m.attr(k) {
                        Some(w) if w != v => out.push(Raw::Changed {
                            op: n.kind.clone(),
                            key: k.clone(),
                            from: v.clone(),
                            to: w.to_string(),
                        }),
                        Some(_) => {}
                        None => out.push(Raw::Dropped {
                            op: n.kind.clone(),
                            key: k.clone(),
                            value: v.clone(),
                        }),
                    }
                }
                for (k, w) in &m.attrs {
                    if n.attr(k).is_none() {
                        out.push(Raw::Added {
                            op: n.kind.clone(),
                            key: k.clone(),
                            value: w.clone(),
                        });
                    }
                }
                if n.table != m.table && n.table.is_some() && m.table.is_some() {
                    out.push(Raw::Changed {
                        op: n.kind.clone(),
                        key: "table".into(),
                        from: n.table.clone().unwrap_or_default(),
                        to: m.table.clone().unwrap_or_default(),
                    });
                }
                // Inputs aligned with each other but in another plan order.
                let order: Vec<usize> = n
                    .children
                    .iter()
                    .filter_map(|&c| map_a[c])
                    .filter_map(|d| m.children.iter().position(|&x| x == d))
                    .collect();
                if order.windows(2).any(|w| w[0] > w[1]) {
                    out.push(Raw::Reordered { op: n.kind.clone() });
                }
            }
        }
    }
    for (j, m) in tb.nodes.iter().enumerate() {
        if map_b[j].is_none() && reported(&tb, &map_b, j) {
            out.push(Raw::Inserted {
                op: named(m),
                context: context(&tb, j),
            });
        }
    }
    out
}

/// An operator with the table it reads: `DataSourceExec on orders`.
fn named(n: &crate::plan_tree::PlanNode) -> String {
    match &n.table {
        Some(t) => format!("{} on {t}", n.kind),
        None => n.kind.clone(),
    }
}

/// An unaligned operator is its own fact unless it lies inside a subtree that
/// was inserted or removed whole below another unaligned operator.
fn reported(t: &PlanTree, map: &[Option<usize>], i: usize) -> bool {
    let Some(p) = t.nodes[i].parent else {
        return true;
    };
    if map[p].is_some() {
        return true;
    }
    // Parent unaligned too: a fact of its own only if something below is aligned.
    let mut stack = t.nodes[i].children.clone();
    while let Some(c) = stack.pop() {
        if map[c].is_some() {
            return true;
        }
        stack.extend(t.nodes[c].children.iter().copied());
    }
    false
}

/// `in HashJoinExec, over DataSourceExec, RepartitionExec`.
fn context(t: &PlanTree, i: usize) -> String {
    let n = &t.nodes[i];
    let parent = n.parent.map_or("root", |p| t.nodes[p].kind.as_str());
    let mut kids: Vec<&str> = Vec::new();
    for &c in &n.children {
        let k = t.nodes[c].kind.as_str();
        if !kids.contains(&k) {
            kids.push(k);
        }
    }
    if kids.is_empty() {
        format!("in {parent}")
    } else {
        format!("in {parent}, over {}", kids.join(", "))
    }
}

/// Facts for plans too large to align: operator kinds whose count changed.
fn kind_count_facts(a: &PlanTree, b: &PlanTree) -> Vec<Raw> {
    let mut counts: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for n in &a.nodes {
        *counts.entry(n.kind.as_str()).or_default() -= 1;
    }
    for n in &b.nodes {
        *counts.entry(n.kind.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, d)| *d != 0)
        .map(|(k, d)| {
            let context = "plan too large to align".to_string();
            if d > 0 {
                Raw::Inserted { op: k.into(), context }
            } else {
                Raw::Removed { op: k.into(), context }
            }
        })
        .collect()
}

/// A tree in post-order with a virtual root over its roots (1-based positions,
/// as in Zhang and Shasha's paper).
struct Post {
    /// Position -> node id (`None`: the virtual root).
    node: Vec<Option<usize>>,
    /// Position -> position of its leftmost leaf.
    lml: Vec<usize>,
    keyroots: Vec<usize>,
}

impl Post {
    fn new(t: &PlanTree) -> Post {
        let mut node = vec![None]; // position 0 is unused
        let mut lml = vec![0];
        // Iterative post-order: (node or virtual root, next child index).
        let roots: Vec<usize> = t.roots().collect();
        let children = |n: Option<usize>| -> &[usize] {
            match n {
                Some(i) => &t.nodes[i].children,
                None => &roots,
            }
        };
        let mut stack: Vec<(Option<usize>, usize, usize)> = vec![(None, 0, 0)];
        while let Some((n, next, first_leaf)) = stack.pop() {
            let kids = children(n);
            if next < kids.len() {
                stack.push((n, next + 1, first_leaf));
                stack.push((Some(kids[next]), 0, 0));
                continue;
            }
            let pos = node.len();
            node.push(n);
            // The leftmost leaf: self for a leaf, else the first child's.
            let l = if kids.is_empty() { pos } else { first_leaf };
            lml.push(l);
            // Tell the parent its first child's leftmost leaf.
            if let Some(parent) = stack.last_mut()
                && parent.1 == 1
            {
                parent.2 = l;
            }
        }
        let n = node.len() - 1;
        let mut keyroots = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pos in (1..=n).rev() {
            if seen.insert(lml[pos]) {
                keyroots.push(pos);
            }
        }
        keyroots.sort_unstable();
        Post { node, lml, keyroots }
    }

    /// The sum of the keyroots' subtree sizes: this tree's factor of the work.
    fn work(&self) -> usize {
        self.keyroots.iter().map(|&k| k + 1 - self.lml[k]).sum()
    }

    fn len(&self) -> usize {
        self.node.len() - 1
    }
}

fn is_join(kind: &str) -> bool {
    kind.to_ascii_lowercase().contains("join") || kind == "Nested Loop" || kind == "nested_loop"
}

/// The cost of inserting or deleting one operator.
fn indel(n: &PlanNode) -> u32 {
    if SECONDARY_KINDS.contains(&n.kind.as_str()) {
        INSERT_SECONDARY
    } else {
        INSERT
    }
}

/// The cost of aligning operator `x` with operator `y`.
fn relabel_cost(x: &PlanNode, y: &PlanNode) -> u32 {
    if x.table.is_some() && y.table.is_some() && x.table != y.table {
        // Never worth it: reading another table is another operator.
        return indel(x) + indel(y) + 1;
    }
    if x.kind == y.kind {
        return if x.attrs == y.attrs && x.table == y.table {
            0
        } else {
            RETUNE
        };
    }
    let secondary = |n: &PlanNode| SECONDARY_KINDS.contains(&n.kind.as_str());
    if secondary(x) && secondary(y) {
        RELABEL_SECONDARY
    } else if (is_join(&x.kind) && is_join(&y.kind)) || (x.table.is_some() && x.table == y.table) {
        RELABEL_SIBLING
    } else {
        RELABEL
    }
}

/// Zhang–Shasha alignment: for each node of `a` its aligned node of `b`, and back;
/// `None` when the plans are too large to align within [`MAX_WORK`].
#[allow(clippy::type_complexity)]
fn align(a: &PlanTree, b: &PlanTree) -> Option<(Vec<Option<usize>>, Vec<Option<usize>>)> {
    let pa = Post::new(a);
    let pb = Post::new(b);
    if pa.work().saturating_mul(pb.work()) > MAX_WORK {
        return None;
    }
    let (n, m) = (pa.len(), pb.len());
    let relabel = |i: usize, j: usize| -> u32 {
        match (pa.node[i], pb.node[j]) {
            (None, None) => 0,
            (Some(x), Some(y)) => relabel_cost(&a.nodes[x], &b.nodes[y]),
            _ => 4 * RELABEL,
        }
    };
    let indel_a: Vec<u32> = pa
        .node
        .iter()
        .map(|n| n.map_or(4 * RELABEL, |x| indel(&a.nodes[x])))
        .collect();
    let indel_b: Vec<u32> = pb
        .node
        .iter()
        .map(|n| n.map_or(4 * RELABEL, |y| indel(&b.nodes[y])))
        .collect();
    let w = m + 1;
    let mut td = vec![0u32; (n + 1) * w];
    let mut fd = vec![0u32; (n + 1) * w];
    let forest = |i: usize, j: usize, td: &mut Vec<u32>, fd: &mut Vec<u32>| {
        let (li, lj) = (pa.lml[i], pb.lml[j]);
        fd[(li - 1) * w + (lj - 1)] = 0;
        for x in li..=i {
            fd[x * w + (lj - 1)] = fd[(x - 1) * w + (lj - 1)] + indel_a[x];
        }
        for y in lj..=j {
            fd[(li - 1) * w + y] = fd[(li - 1) * w + (y - 1)] + indel_b[y];
        }
        for x in li..=i {
            for y in lj..=j {
                let del = fd[(x - 1) * w + y] + indel_a[x];
                let ins = fd[x * w + (y - 1)] + indel_b[y];
                if pa.lml[x] == li && pb.lml[y] == lj {
                    let v = del.min(ins).min(fd[(x - 1) * w + (y - 1)] + relabel(x, y));
                    fd[x * w + y] = v;
                    td[x * w + y] = v;
                } else {
                    let sub = fd[(pa.lml[x] - 1) * w + (pb.lml[y] - 1)] + td[x * w + y];
                    fd[x * w + y] = del.min(ins).min(sub);
                }
            }
        }
    };
    for &i in &pa.keyroots {
        for &j in &pb.keyroots {
            forest(i, j, &mut td, &mut fd);
        }
    }
    // Backtrace from the roots; each matched subtree pair is traced on its own forest.
    let mut map_a = vec![None; a.len()];
    let mut map_b = vec![None; b.len()];
    let mut pending = vec![(n, m)];
    while let Some((i, j)) = pending.pop() {
        forest(i, j, &mut td, &mut fd);
        let (li, lj) = (pa.lml[i], pb.lml[j]);
        let (mut x, mut y) = (i, j);
        while x >= li || y >= lj {
            let here = fd[x * w + y];
            if x >= li && here == fd[(x - 1) * w + y] + indel_a[x] {
                x -= 1;
            } else if y >= lj && here == fd[x * w + (y - 1)] + indel_b[y] {
                y -= 1;
            } else if pa.lml[x] == li && pb.lml[y] == lj {
                if let (Some(u), Some(v)) = (pa.node[x], pb.node[y]) {
                    map_a[u] = Some(v);
                    map_b[v] = Some(u);
                }
                x -= 1;
                y -= 1;
            } else {
                pending.push((x, y));
                x = pa.lml[x] - 1;
                y = pb.lml[y] - 1;
            }
        }
    }
    Some((map_a, map_b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(a: &str, b: &str) -> Vec<String> {
        plan_facts(&NormalizedPlan::new("L", Some(a)), &NormalizedPlan::new("L", Some(b)))
            .into_iter()
            .map(|f| {
                let ctx = f.context.map_or(String::new(), |c| format!(" ({c})"));
                format!("{}{ctx}{}", f.fact, if f.cosmetic { " [cosmetic]" } else { "" })
            })
            .collect()
    }

    const BASE: &str = "ProjectionExec: expr=[a@0 as a]\n  HashJoinExec: mode=Partitioned, join_type=Inner, on=[(a@0, b@0)]\n    DataSourceExec: file_groups={1 group: [[…/nation.parquet]]}, file_type=parquet\n    DataSourceExec: file_groups={1 group: [[…/region.parquet]]}, file_type=parquet\n";

    #[test]
    fn swapped_join_inputs_are_one_fact_and_other_tables_never_align() {
        let swapped = "ProjectionExec: expr=[a@0 as a]\n  HashJoinExec: mode=Partitioned, join_type=Inner, on=[(a@0, b@0)]\n    DataSourceExec: file_groups={1 group: [[…/region.parquet]]}, file_type=parquet\n    DataSourceExec: file_groups={1 group: [[…/nation.parquet]]}, file_type=parquet\n";
        assert_eq!(facts(BASE, swapped), vec!["HashJoinExec: inputs reordered"]);
        let other = BASE.replace("region.parquet", "orders.parquet");
        assert_eq!(
            facts(BASE, &other),
            vec![
                "+ DataSourceExec on orders (in HashJoinExec)",
                "- DataSourceExec on region (in HashJoinExec)"
            ]
        );
    }

    #[test]
    fn join_type_change_is_a_named_fact() {
        let cand = BASE.replace("join_type=Inner", "join_type=LeftSemi");
        assert_eq!(facts(BASE, &cand), vec!["HashJoinExec.join_type: Inner -> LeftSemi"]);
    }

    #[test]
    fn inserted_operator_is_one_fact_with_context() {
        let cand = "ProjectionExec: expr=[a@0 as a]\n  HashJoinExec: mode=Partitioned, join_type=Inner, on=[(a@0, b@0)]\n    RepartitionExec: partitioning=Hash([a@0], 2), input_partitions=1\n      DataSourceExec: file_groups={1 group: [[…/nation.parquet]]}, file_type=parquet\n    DataSourceExec: file_groups={1 group: [[…/region.parquet]]}, file_type=parquet\n";
        assert_eq!(
            facts(BASE, cand),
            vec!["+ RepartitionExec (in HashJoinExec, over DataSourceExec)"]
        );
        assert_eq!(
            facts(cand, BASE),
            vec!["- RepartitionExec (in HashJoinExec, over DataSourceExec)"]
        );
    }

    #[test]
    fn replaced_operator_and_display_only_attribute() {
        let cand = BASE
            .replace("HashJoinExec: mode=Partitioned, ", "SortMergeJoinExec: ")
            .replace("file_type=parquet", "file_type=parquet, dynamic_rg_pruning=eligible");
        assert_eq!(
            facts(BASE, &cand),
            vec![
                "DataSourceExec + dynamic_rg_pruning=eligible [cosmetic]",
                "HashJoinExec -> SortMergeJoinExec"
            ]
        );
    }

    #[test]
    fn ids_only_and_logical_only_changes_are_cosmetic() {
        let cand = BASE.replace("a@0 as a", "a@3 as a");
        assert_eq!(facts(BASE, &cand), vec!["ids or estimates only [cosmetic]"]);
        let f = plan_facts(
            &NormalizedPlan::new("Filter: a = 1", Some(BASE)),
            &NormalizedPlan::new("Filter: a = 2", Some(BASE)),
        );
        assert_eq!(f.len(), 1);
        assert!(
            f[0].cosmetic && f[0].fact == "logical: Filter.details changed (names or literals)",
            "{f:?}"
        );
    }

    #[test]
    fn changed_expressions_say_what_their_shape_lost_or_gained() {
        let a =
            "READ_PARQUET: Function=READ_PARQUET, Filters=l_shipdate<='1998-09-02'::DATE AND l_shipdate IS NOT NULL\n";
        let b = "READ_PARQUET: Function=READ_PARQUET, Filters=l_shipdate<='1998-09-02'::DATE\n";
        assert_eq!(facts(a, b), vec!["READ_PARQUET.Filters lost \"AND _ IS NOT NULL\""]);
        assert_eq!(facts(b, a), vec!["READ_PARQUET.Filters gained \"AND _ IS NOT NULL\""]);
        let q = "ORDER_BY: Order By=memory.main.lineitem.l_returnflag ASC\n";
        assert_eq!(
            facts("ORDER_BY: Order By=lineitem.l_returnflag ASC\n", q),
            vec!["ORDER_BY.Order By changed (names or literals)"]
        );
    }

    #[test]
    fn a_huge_left_deep_join_falls_back_to_kind_counts() {
        // 1,500 joins deep, one scan on each: Zhang–Shasha's work would be
        // quadratic in both sizes and depths; the bound makes it counts.
        let deep = |kind: &str| {
            let mut s = String::new();
            for i in 0..1500 {
                s.push_str(&format!("{}{kind}: on=x\n", "  ".repeat(i)));
                s.push_str(&format!(
                    "{}DataSourceExec: file_groups={{[[…/t{i}.parquet]]}}\n",
                    "  ".repeat(i + 1)
                ));
            }
            s
        };
        let f = facts(&deep("HashJoinExec"), &deep("SortMergeJoinExec"));
        assert_eq!(
            f,
            vec![
                "+ SortMergeJoinExec (plan too large to align)",
                "- HashJoinExec (plan too large to align)"
            ]
        );
    }

    #[test]
    fn empty_scan_folding_is_a_replacement() {
        let a = "PROJECTION: __projections=x\n  SEQ_SCAN: Table=lineitem, Type=Sequential Scan\n";
        let b = "PROJECTION: __projections=x\n  EMPTY_RESULT\n";
        assert_eq!(facts(a, b), vec!["SEQ_SCAN -> EMPTY_RESULT"]);
    }

    use proptest::prelude::*;

    /// A random plan: operators with details, column positions, ids and estimates.
    fn plan() -> impl Strategy<Value = String> {
        let leaf = ("(Scan|SEQ_SCAN|DataSourceExec)", "[a-c]", 0u8..9, 0u32..1000).prop_map(|(k, t, id, rows)| {
            vec![format!(
                "{k}: file_groups={{1 group: [[…/{t}.parquet]]}}, projection=[x@{id}, y#{id}L], rows={rows}"
            )]
        });
        leaf.prop_recursive(4, 24, 3, |inner| {
            (
                "(HashJoinExec|SortExec|RepartitionExec|FilterExec|Hash Join)",
                "(Inner|LeftSemi|Full)",
                0u8..9,
                prop::collection::vec(inner, 1..3),
            )
                .prop_map(|(k, jt, id, kids)| {
                    let mut lines = vec![format!("{k}: join_type={jt}, on=[(a@{id}, b@1)], cost=1.5")];
                    for kid in kids {
                        lines.extend(kid.into_iter().map(|l| format!("  {l}")));
                    }
                    lines
                })
        })
        .prop_map(|l| l.join("\n") + "\n")
    }

    fn texts(a: &str, b: &str) -> Vec<(String, Option<String>)> {
        plan_facts(&NormalizedPlan::new("L", Some(a)), &NormalizedPlan::new("L", Some(b)))
            .into_iter()
            .map(|f| (f.fact, f.context))
            .collect()
    }

    /// A fact's text read from the other side.
    fn inverted(f: &str) -> String {
        if let Some((head, rest)) = f.split_once(" lost \"") {
            return format!("{head} gained \"{rest}");
        }
        if let Some((head, rest)) = f.split_once(" gained \"") {
            return format!("{head} lost \"{rest}");
        }
        if let Some(c) = Regex::new(r#"^(.*?) "(.*)" -> "(.*)"$"#).unwrap().captures(f) {
            return format!("{} \"{}\" -> \"{}\"", &c[1], &c[3], &c[2]);
        }
        if let Some(r) = f.strip_prefix("+ ") {
            return format!("- {r}");
        }
        if let Some(r) = f.strip_prefix("- ") {
            return format!("+ {r}");
        }
        if let Some((op, rest)) = f.split_once(" + ") {
            return format!("{op} - {rest}");
        }
        if let Some((op, rest)) = f.split_once(" - ") {
            return format!("{op} + {rest}");
        }
        if let Some((head, tail)) = f.rsplit_once(": ")
            && let Some((x, y)) = tail.split_once(" -> ")
        {
            return format!("{head}: {y} -> {x}");
        }
        if let Some((x, y)) = f.split_once(" -> ") {
            return format!("{y} -> {x}");
        }
        f.to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn identical_plans_have_no_facts(a in plan()) {
            prop_assert!(texts(&a, &a).is_empty());
        }

        #[test]
        fn swapping_sides_inverts_every_fact(a in plan(), b in plan()) {
            let forward = texts(&a, &b);
            let mut back: Vec<(String, Option<String>)> =
                texts(&b, &a).into_iter().map(|(f, c)| (inverted(&f), c)).collect();
            back.sort();
            let mut fwd = forward.clone();
            fwd.sort();
            prop_assert_eq!(fwd, back);
            prop_assert_eq!(forward.is_empty(), a == b);
        }

        #[test]
        fn ids_and_estimates_give_no_fact(a in plan(), shift in 1u32..50) {
            let renamed = Regex::new(r"(@|#|rows=)(\d+)").unwrap().replace_all(&a, |c: &regex::Captures| {
                format!("{}{}", &c[1], c[2].parse::<u32>().unwrap() + shift)
            });
            let f = texts(&a, &renamed);
            prop_assert!(f.is_empty() || f == vec![("ids or estimates only".to_string(), None)], "{:?}", f);
        }

        #[test]
        fn one_inserted_operator_is_one_fact(a in plan()) {
            // Wrap the whole plan in a new root.
            let b = format!("CoalescePartitionsExec\n{}", a.lines().map(|l| format!("  {l}\n")).collect::<String>());
            let f = texts(&a, &b);
            prop_assert_eq!(f.len(), 1, "{:?}", f);
            prop_assert_eq!(f[0].0.as_str(), "+ CoalescePartitionsExec");
            prop_assert!(f[0].1.as_ref().is_some_and(|c| c.starts_with("in root, over ")), "{:?}", f);
        }
    }
}
