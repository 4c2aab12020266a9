//! Comparing two digests: which part differs (schema, row count, columns,
//! order), with float columns compared within a tolerance.

use serde::{Deserialize, Serialize};

use super::{FloatStats, ResultDigest};

/// Tolerances for float columns (defaults as Presto Verifier).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloatTolerance {
    /// Relative difference of float sums still within tolerance.
    pub relative: f64,
    /// Absolute difference of float sums still within tolerance.
    pub absolute: f64,
}

impl Default for FloatTolerance {
    fn default() -> Self {
        FloatTolerance {
            relative: 1e-4,
            absolute: 1e-12,
        }
    }
}

/// How two digests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestComparison {
    /// The same result.
    Match,
    /// Equal but for float columns whose sums differ within the tolerance.
    MatchWithinTolerance(Vec<String>),
    /// Which part differs: `schema`, `row_count`, `columns:[a,b]`, `rows` (the rows
    /// differ but no single column does), or `order`.
    Mismatch(String),
}

/// Compares two digests (baseline, candidate).
pub fn compare_digests(b: &ResultDigest, c: &ResultDigest, tol: FloatTolerance) -> DigestComparison {
    if b.schema.len() != c.schema.len()
        || b.schema
            .iter()
            .zip(&c.schema)
            .any(|(x, y)| x.logical_type != y.logical_type || !x.name.eq_ignore_ascii_case(&y.name))
    {
        return DigestComparison::Mismatch("schema".into());
    }
    if b.rows != c.rows {
        return DigestComparison::Mismatch("row_count".into());
    }
    let mut differing = Vec::new();
    let mut tolerated = Vec::new();
    for ((x, y), s) in b.columns.iter().zip(&c.columns).zip(&b.schema) {
        let same = x.nulls == y.nulls
            && x.values == y.values
            && match (&x.float, &y.float) {
                (Some(fx), Some(fy)) => {
                    if fx.exact == fy.exact {
                        true
                    } else if floats_close(fx, fy, tol) {
                        tolerated.push(s.name.clone());
                        true
                    } else {
                        false
                    }
                }
                (None, None) => true,
                _ => false,
            };
        if !same {
            differing.push(s.name.clone());
        }
    }
    if !differing.is_empty() {
        return DigestComparison::Mismatch(format!("columns:[{}]", differing.join(",")));
    }
    if b.multiset != c.multiset {
        return DigestComparison::Mismatch("rows".into());
    }
    if let (Some(x), Some(y)) = (&b.ordered, &c.ordered)
        && x != y
    {
        return DigestComparison::Mismatch("order".into());
    }
    if tolerated.is_empty() {
        DigestComparison::Match
    } else {
        DigestComparison::MatchWithinTolerance(tolerated)
    }
}

fn floats_close(a: &FloatStats, b: &FloatStats, tol: FloatTolerance) -> bool {
    if (a.finite, a.nan, a.pos_inf, a.neg_inf) != (b.finite, b.nan, b.pos_inf, b.neg_inf) {
        return false;
    }
    let n = a.finite.max(1) as f64;
    let (x, y) = (a.sum, b.sum);
    if (x / n).abs() < tol.absolute && (y / n).abs() < tol.absolute {
        return true;
    }
    let denom = (x.abs() + y.abs()) / 2.0;
    denom == 0.0 || (x - y).abs() / denom < tol.relative
}
