//! Corpus-level performance figures of a flight.

use sqlflight_diffing::{OutcomeRecord, PerfVerdict};

/// Timing figures over all queries with timings on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfSummary {
    /// Queries timed on both sides.
    pub queries: usize,
    /// Geometric mean of candidate/baseline median ratios.
    pub geomean_ratio: f64,
    /// Sum of the baseline's medians.
    pub total_baseline_ms: f64,
    /// Sum of the candidate's medians.
    pub total_candidate_ms: f64,
    /// Significantly faster.
    pub faster: usize,
    /// Significantly slower.
    pub slower: usize,
    /// Within the policy's limits of equal.
    pub same: usize,
    /// Not decided.
    pub inconclusive: usize,
    /// Queries too short to time on the machine (not judged).
    pub too_short: usize,
    /// Undecided at the cap but observed beyond the regression factor (counted
    /// among `regressions`).
    pub undecided_slowdowns: usize,
    /// Slowdowns and speedups whose Benjamini-Hochberg q-value across the corpus
    /// is at most 0.05.
    pub discoveries_fdr05: usize,
    /// Slowdowns that count as regressions under the policy.
    pub regressions: usize,
}

impl PerfSummary {
    /// Total candidate time over total baseline time.
    pub fn total_ratio(&self) -> f64 {
        if self.total_baseline_ms > 0.0 {
            self.total_candidate_ms / self.total_baseline_ms
        } else {
            1.0
        }
    }

    /// One line for people: `geomean ×1.432, total ×1.617 (0 faster, 12 slower, 10 same, 0 inconclusive)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "geomean ×{:.3}, total ×{:.3} ({} faster, {} slower, {} same, {} inconclusive",
            self.geomean_ratio,
            self.total_ratio(),
            self.faster,
            self.slower,
            self.same,
            self.inconclusive
        );
        if self.too_short > 0 {
            s.push_str(&format!(", {} too short to time", self.too_short));
        }
        if self.undecided_slowdowns > 0 {
            s.push_str(&format!(", {} undecided slowdowns", self.undecided_slowdowns));
        }
        s.push(')');
        s
    }

    /// The figures as JSON, for `--json` summaries and the JSON report.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "queries": self.queries, "geomean_ratio": self.geomean_ratio, "total_ratio": self.total_ratio(),
            "faster": self.faster, "slower": self.slower, "same": self.same, "inconclusive": self.inconclusive,
            "too_short": self.too_short, "undecided_slowdowns": self.undecided_slowdowns,
            "discoveries_fdr05": self.discoveries_fdr05, "regressions": self.regressions,
        })
    }
}

/// Figures of a flight's outcomes; None when no query has timings on both sides.
pub fn perf_summary<'a>(outcomes: impl IntoIterator<Item = &'a OutcomeRecord>) -> Option<PerfSummary> {
    let mut s = PerfSummary {
        queries: 0,
        geomean_ratio: 1.0,
        total_baseline_ms: 0.0,
        total_candidate_ms: 0.0,
        faster: 0,
        slower: 0,
        same: 0,
        inconclusive: 0,
        too_short: 0,
        undecided_slowdowns: 0,
        discoveries_fdr05: 0,
        regressions: 0,
    };
    let mut p_values = Vec::new();
    let mut log_sum = 0.0;
    for o in outcomes {
        let Some(f) = &o.flight else { continue };
        let (Some(b), Some(c), Some(p)) = (f.baseline.median_ms, f.candidate.median_ms, &f.perf) else {
            continue;
        };
        if b <= 0.0 || c <= 0.0 {
            continue;
        }
        s.queries += 1;
        log_sum += (c / b).ln();
        s.total_baseline_ms += b;
        s.total_candidate_ms += c;
        match p.verdict {
            PerfVerdict::Faster => s.faster += 1,
            PerfVerdict::Slower => s.slower += 1,
            PerfVerdict::Same => s.same += 1,
            PerfVerdict::Inconclusive => s.inconclusive += 1,
            PerfVerdict::TooShort => s.too_short += 1,
        }
        if p.undecided_slowdown {
            s.undecided_slowdowns += 1;
        }
        if p.counts() {
            s.regressions += 1;
        }
        if let Some(pv) = p.p_value
            && p.verdict != PerfVerdict::TooShort
        {
            p_values.push((pv, matches!(p.verdict, PerfVerdict::Slower | PerfVerdict::Faster)));
        }
    }
    if s.queries == 0 {
        return None;
    }
    s.geomean_ratio = (log_sum / s.queries as f64).exp();
    let q = bh_qvalues(&p_values.iter().map(|x| x.0).collect::<Vec<_>>());
    s.discoveries_fdr05 = q
        .iter()
        .zip(&p_values)
        .filter(|(q, (_, decided))| **q <= 0.05 && *decided)
        .count();
    Some(s)
}

/// Queries with timings, slowest ratio first.
pub fn by_ratio(outcomes: &[OutcomeRecord]) -> Vec<(&OutcomeRecord, f64)> {
    let mut v: Vec<(&OutcomeRecord, f64)> = outcomes
        .iter()
        .filter_map(|o| Some((o, o.flight.as_ref()?.perf.as_ref()?.ratio)))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// Benjamini-Hochberg q-values of `p` (same order): the smallest false discovery
/// rate at which each test would be called a discovery.
pub fn bh_qvalues(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// q-values of every query with a judged p-value, by query id.
pub fn qvalues<'a>(outcomes: impl IntoIterator<Item = &'a OutcomeRecord>) -> std::collections::BTreeMap<String, f64> {
    let judged: Vec<(&str, f64)> = outcomes
        .into_iter()
        .filter_map(|o| {
            let p = o.flight.as_ref()?.perf.as_ref()?;
            (p.verdict != PerfVerdict::TooShort).then_some((o.query_id.as_str(), p.p_value?))
        })
        .collect();
    let q = bh_qvalues(&judged.iter().map(|x| x.1).collect::<Vec<_>>());
    judged.iter().zip(q).map(|((id, _), q)| (id.to_string(), q)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benjamini_hochberg_matches_the_textbook_example() {
        // Benjamini & Hochberg (1995): 15 p-values, q at FDR 0.05 rejects the first 4.
        let p = [
            0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528,
            0.7590, 1.0,
        ];
        let q = bh_qvalues(&p);
        assert_eq!(q.iter().filter(|q| **q <= 0.05).count(), 4, "{q:?}");
        assert!((q[0] - 0.0015).abs() < 1e-9);
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "monotone for sorted p: {q:?}");
    }
}
