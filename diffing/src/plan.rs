//! Plan normalization, unified diffs and change signatures.
//!
//! Normalization removes what changes between runs without meaning, and nothing
//! else:
//! - memory addresses (`0x7f3a...`) become `0x?`;
//! - file paths become their file name (`/tmp/x/lineitem.parquet` → `…/lineitem.parquet`):
//!   data directories differ between machines and temp dirs, file names do not;
//! - trailing whitespace and blank lines are dropped.
//!
//! Partition counts are *kept*: baseline and candidate always run on one machine
//! with their own profile, so a partition count differs only when a profile setting
//! (e.g. `target_partitions`) changed it, and that is a real plan change a reviewer
//! should see. Pin `datafusion.execution.target_partitions` in profiles whose plans
//! are compared across machines (golden snapshots do).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use similar::TextDiff;

static HEX_ADDR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"0x[0-9a-fA-F]{6,}").expect("static regex"));
static PATH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:[A-Za-z]:)?/?(?:[\w.~+-]+/){2,}([\w.+-]+\.[A-Za-z0-9]+)").expect("static regex"));

/// A plan's text after normalization, logical and (when the engine produced one)
/// physical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizedPlan {
    /// The logical plan, normalized.
    pub logical: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The physical plan, normalized (engines that have one).
    pub physical: Option<String>,
}

impl NormalizedPlan {
    /// Normalizes the plan texts (see [`normalize_plan`]).
    pub fn new(logical: &str, physical: Option<&str>) -> Self {
        NormalizedPlan {
            logical: normalize_plan(logical),
            physical: physical.map(normalize_plan),
        }
    }

    /// Short stable hash of the plan, for outcome records.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.logical.as_bytes());
        h.update(b"\0");
        if let Some(p) = &self.physical {
            h.update(p.as_bytes());
        }
        h.finalize().to_hex()[..16].to_string()
    }
}

/// Normalizes one plan text (see the module docs).
pub fn normalize_plan(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        // The regexes run only on lines that can match (most plan lines cannot).
        let line = if line.contains("0x") {
            HEX_ADDR.replace_all(line, "0x?")
        } else {
            line.into()
        };
        let line = if line.contains('/') {
            PATH.replace_all(&line, "…/$1")
        } else {
            line.as_ref().into()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Unified diff of baseline and candidate plans: the physical plan's diff first (it
/// is what runs), then the logical plan's when it changed too. Empty when the plans are equal.
pub fn plan_diff(baseline: &NormalizedPlan, candidate: &NormalizedPlan) -> String {
    let mut out = String::new();
    let mut section = |name: &str, a: &str, b: &str| {
        if a != b {
            let d = TextDiff::from_lines(a, b);
            let u = d
                .unified_diff()
                .context_radius(3)
                .header(&format!("baseline/{name}"), &format!("candidate/{name}"))
                .to_string();
            out.push_str(&u);
        }
    };
    match (&baseline.physical, &candidate.physical) {
        (Some(a), Some(b)) => section("physical", a, b),
        (Some(a), None) => section("physical", a, ""),
        (None, Some(b)) => section("physical", "", b),
        (None, None) => {}
    }
    section("logical", &baseline.logical, &candidate.logical);
    out
}

/// The operator kind of one plan line: the text before the first `:` (or the
/// first word), indentation removed. `HashJoinExec: mode=Partitioned` →
/// `HashJoinExec`; `Inner Join: a = b` → `Inner Join`.
pub fn operator_kind(line: &str) -> &str {
    let t = line.trim_start();
    let end = t.find(':').unwrap_or_else(|| t.find(' ').unwrap_or(t.len()));
    t[..end].trim_end()
}

fn kind_counts(plan: &str) -> BTreeMap<&str, i64> {
    let mut m = BTreeMap::new();
    for l in plan.lines() {
        *m.entry(operator_kind(l)).or_insert(0) += 1;
    }
    m
}

/// Groups a plan change by root cause: which operator kinds disappeared and which
/// appeared (`HashJoinExec -> SortMergeJoinExec`), leaving out the
/// [`SECONDARY_KINDS`] when other kinds changed. When the same kinds
/// remain and only their details changed, the changed kinds prefixed with `~`
/// (`~ FilterExec`). Physical plans are compared when both sides have one; a change
/// visible only in the logical plan is prefixed `logical: `.
pub fn change_signature(baseline: &NormalizedPlan, candidate: &NormalizedPlan) -> String {
    if let (Some(a), Some(b)) = (&baseline.physical, &candidate.physical)
        && a != b
    {
        return signature_of(a, b);
    }
    if baseline.logical != candidate.logical {
        return format!("logical: {}", signature_of(&baseline.logical, &candidate.logical));
    }
    if baseline.physical != candidate.physical {
        return "physical plan presence changed".into();
    }
    String::new()
}

/// Operator kinds that optimizers insert as a consequence of another change
/// (distribution and ordering enforcers, projections), in DataFusion's and
/// PostgreSQL's naming. A change signature names them only when nothing else
/// changed, so that e.g. every plan whose hash joins became sort-merge joins falls
/// in one group whatever sorts and repartitions came with it.
pub const SECONDARY_KINDS: [&str; 14] = [
    "SortExec",
    "RepartitionExec",
    "CoalescePartitionsExec",
    "CoalesceBatchesExec",
    "SortPreservingMergeExec",
    "ProjectionExec",
    "Projection",
    "SubqueryAlias",
    "Sort",
    "Materialize",
    "Gather",
    "Gather Merge",
    "Hash",
    "Result",
];

fn signature_of(a: &str, b: &str) -> String {
    let ca = kind_counts(a);
    let cb = kind_counts(b);
    let kinds: std::collections::BTreeSet<&str> = ca.keys().chain(cb.keys()).copied().collect();
    let delta = |k: &str| cb.get(k).copied().unwrap_or(0) - ca.get(k).copied().unwrap_or(0);
    let changed: Vec<&str> = kinds.into_iter().filter(|k| delta(k) != 0).collect();
    let primary: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|k| !SECONDARY_KINDS.contains(k))
        .collect();
    let pick = if primary.is_empty() { changed } else { primary };
    if pick.is_empty() {
        // Same operators: name the kinds whose lines changed.
        let la: std::collections::BTreeSet<&str> = a.lines().collect();
        let lb: std::collections::BTreeSet<&str> = b.lines().collect();
        let changed: std::collections::BTreeSet<&str> =
            la.symmetric_difference(&lb).map(|l| operator_kind(l)).collect();
        return format!("~ {}", changed.into_iter().collect::<Vec<_>>().join(", "));
    }
    let removed: Vec<&str> = pick.iter().copied().filter(|k| delta(k) < 0).collect();
    let added: Vec<&str> = pick.iter().copied().filter(|k| delta(k) > 0).collect();
    let side = |v: Vec<&str>| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    format!("{} -> {}", side(removed), side(added))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_addresses_and_paths_only() {
        let p = "  DataSourceExec: file_groups={1 group: [[tmp/.tmpAbC/data/lineitem.parquet:0..100]]}, projection=[a]   \n\n\
                 ProjectionExec: expr=[a@0 / b@1 as c], ptr=0x7ffdeadbeef0\n";
        assert_eq!(
            normalize_plan(p),
            "  DataSourceExec: file_groups={1 group: [[…/lineitem.parquet:0..100]]}, projection=[a]\nProjectionExec: expr=[a@0 / b@1 as c], ptr=0x?\n"
        );
        // Partition counts are signal.
        assert_ne!(
            normalize_plan("RepartitionExec: partitioning=Hash([a@0], 4), input_partitions=4"),
            normalize_plan("RepartitionExec: partitioning=Hash([a@0], 8), input_partitions=8")
        );
    }

    #[test]
    fn signatures() {
        let a = NormalizedPlan::new(
            "Projection: a",
            Some("ProjectionExec: x\n  HashJoinExec: on=a\n    A\n    B"),
        );
        let b = NormalizedPlan::new(
            "Projection: a",
            Some("ProjectionExec: x\n  SortMergeJoinExec: on=a\n    SortExec: a\n      A\n    SortExec: b\n      B"),
        );
        // Enforcers that came with the join change do not split the group.
        assert_eq!(change_signature(&a, &b), "HashJoinExec -> SortMergeJoinExec");
        let only_sort = NormalizedPlan::new(
            "Projection: a",
            Some("ProjectionExec: x\n  SortExec: a\n    HashJoinExec: on=a\n      A\n      B"),
        );
        assert_eq!(change_signature(&a, &only_sort), "(none) -> SortExec");
        let c = NormalizedPlan::new(
            "Projection: a",
            Some("ProjectionExec: y\n  HashJoinExec: on=a\n    A\n    B"),
        );
        assert_eq!(change_signature(&a, &c), "~ ProjectionExec");
        let d = NormalizedPlan::new(
            "Projection: b",
            Some("ProjectionExec: x\n  HashJoinExec: on=a\n    A\n    B"),
        );
        assert_eq!(change_signature(&a, &d), "logical: ~ Projection");
        assert_eq!(change_signature(&a, &a), "");
        assert!(plan_diff(&a, &a).is_empty());
        let diff = plan_diff(&a, &b);
        assert!(
            diff.starts_with("--- baseline/physical\n+++ candidate/physical\n"),
            "{diff}"
        );
        assert!(diff.contains("\n-  HashJoinExec: on=a\n"), "{diff}");
        assert!(diff.contains("\n+  SortMergeJoinExec: on=a\n"), "{diff}");
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent(s in "[ a-zA-Z0-9_/.:=\\[\\]\n]{0,200}") {
            let once = normalize_plan(&s);
            prop_assert_eq!(normalize_plan(&once), once.clone());
        }

        #[test]
        fn plan_hash_tracks_equality(a in "[a-z\n]{0,40}", b in "[a-z\n]{0,40}") {
            let pa = NormalizedPlan::new(&a, None);
            let pb = NormalizedPlan::new(&b, None);
            prop_assert_eq!(pa == pb, pa.hash() == pb.hash());
        }
    }
}
