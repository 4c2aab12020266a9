//! Corpus-level performance figures of a flight.

use sqlflight_diffing::{OutcomeRecord, PerfVerdict};

/// Timing figures over all queries with timings on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfSummary {
    pub queries: usize,
    /// Geometric mean of candidate/baseline median ratios.
    pub geomean_ratio: f64,
    pub total_baseline_ms: f64,
    pub total_candidate_ms: f64,
    pub faster: usize,
    pub slower: usize,
    pub same: usize,
    pub inconclusive: usize,
    /// Slowdowns that count as regressions under the policy.
    pub regressions: usize,
}

impl PerfSummary {
    pub fn total_ratio(&self) -> f64 {
        if self.total_baseline_ms > 0.0 {
            self.total_candidate_ms / self.total_baseline_ms
        } else {
            1.0
        }
    }

    /// One line for people: `geomean ×1.432, total ×1.617 (0 faster, 12 slower, 10 same, 0 inconclusive)`.
    pub fn describe(&self) -> String {
        format!(
            "geomean ×{:.3}, total ×{:.3} ({} faster, {} slower, {} same, {} inconclusive)",
            self.geomean_ratio,
            self.total_ratio(),
            self.faster,
            self.slower,
            self.same,
            self.inconclusive
        )
    }

    /// The figures as JSON, for `--json` summaries and the JSON report.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "queries": self.queries, "geomean_ratio": self.geomean_ratio, "total_ratio": self.total_ratio(),
            "faster": self.faster, "slower": self.slower, "same": self.same, "inconclusive": self.inconclusive,
            "regressions": self.regressions,
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
        regressions: 0,
    };
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
        }
        if p.regression {
            s.regressions += 1;
        }
    }
    if s.queries == 0 {
        return None;
    }
    s.geomean_ratio = (log_sum / s.queries as f64).exp();
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
