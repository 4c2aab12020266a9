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

/// Most rows of [`PerfAcc::finish`]'s `slowest`.
pub const SLOWEST: usize = 10;

/// Bins of the ratio histogram: log2(ratio) from 1/8 to 8 in quarter steps.
pub const HISTOGRAM_BINS: usize = 24;

/// One of the slowest queries, as the reports list them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowRow {
    /// The query.
    pub query_id: String,
    /// Candidate/baseline time ratio.
    pub ratio: f64,
    /// Baseline median, milliseconds.
    pub baseline_ms: Option<f64>,
    /// Candidate median, milliseconds.
    pub candidate_ms: Option<f64>,
    /// p-value of the comparison.
    pub p_value: Option<f64>,
    /// Benjamini-Hochberg q-value across the run (judged queries).
    pub q_value: Option<f64>,
    /// The verdict in words.
    pub verdict: String,
    /// Baseline peak memory, bytes.
    pub baseline_peak: Option<u64>,
    /// Candidate peak memory, bytes.
    pub candidate_peak: Option<u64>,
}

/// The performance figures of a flight, accumulated one outcome at a time in
/// memory of one `f64` per judged query (for the false discovery rate).
#[derive(Debug, Default)]
pub struct PerfAcc {
    s: Option<PerfSummary>,
    log_sum: f64,
    /// p-values of the judged queries (perf with a p-value, not too short).
    judged: Vec<f64>,
    /// Of them, the decided ones (slower or faster).
    decided: Vec<f64>,
    slowest: Vec<SlowRow>,
    histogram: [usize; HISTOGRAM_BINS],
}

impl PerfAcc {
    /// Counts one outcome.
    pub fn add(&mut self, o: &OutcomeRecord) {
        let Some(f) = &o.flight else { return };
        let Some(p) = &f.perf else { return };
        if let Some(pv) = p.p_value
            && p.verdict != PerfVerdict::TooShort
        {
            self.judged.push(pv);
            if matches!(p.verdict, PerfVerdict::Slower | PerfVerdict::Faster) {
                self.decided.push(pv);
            }
        }
        if p.ratio > 0.0 {
            let i = ((p.ratio.log2() + 3.0) * 4.0)
                .floor()
                .clamp(0.0, (HISTOGRAM_BINS - 1) as f64) as usize;
            self.histogram[i] += 1;
        }
        // The slowest rows: ratio descending, ties in query order.
        let full = self.slowest.len() >= SLOWEST;
        if !full || self.slowest.last().is_some_and(|l| p.ratio.total_cmp(&l.ratio).is_gt()) {
            let row = SlowRow {
                query_id: o.query_id.clone(),
                ratio: p.ratio,
                baseline_ms: f.baseline.median_ms,
                candidate_ms: f.candidate.median_ms,
                p_value: p.p_value,
                q_value: None,
                verdict: p.describe(),
                baseline_peak: f.baseline.peak_memory,
                candidate_peak: f.candidate.peak_memory,
            };
            let at = self.slowest.partition_point(|r| r.ratio.total_cmp(&row.ratio).is_ge());
            self.slowest.insert(at, row);
            self.slowest.truncate(SLOWEST);
        }
        let (Some(b), Some(c)) = (f.baseline.median_ms, f.candidate.median_ms) else {
            return;
        };
        if b <= 0.0 || c <= 0.0 {
            return;
        }
        let s = self.s.get_or_insert(PerfSummary {
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
        });
        s.queries += 1;
        self.log_sum += (c / b).ln();
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
    }

    /// The summary, the slowest queries with their q-values, and the ratio
    /// histogram.
    pub fn finish(mut self) -> PerfFigures {
        self.judged.sort_by(f64::total_cmp);
        let m = self.judged.len();
        let judged = &self.judged;
        // BH: q(p) = min over ranks k >= rank(p) of p_(k) m / k; tied p-values
        // share the q-value of the last of them.
        let q_of = |p: f64| {
            let r = judged.partition_point(|x| x.total_cmp(&p).is_le()).max(1);
            (r..=m).fold(1.0f64, |q, k| q.min(judged[k - 1] * m as f64 / k as f64))
        };
        for row in &mut self.slowest {
            row.q_value = row.p_value.filter(|_| m > 0).map(q_of);
        }
        // q <= 0.05 exactly for the p-values up to the largest p_(k) <= 0.05 k / m.
        let cut = (1..=m)
            .rev()
            .find(|&k| judged[k - 1] <= 0.05 * k as f64 / m as f64)
            .map(|k| judged[k - 1]);
        let summary = self.s.map(|mut s| {
            s.geomean_ratio = (self.log_sum / s.queries as f64).exp();
            s.discoveries_fdr05 = cut.map_or(0, |t| self.decided.iter().filter(|p| **p <= t).count());
            s
        });
        PerfFigures {
            summary,
            slowest: self.slowest,
            histogram: self.histogram,
        }
    }
}

/// What [`PerfAcc`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfFigures {
    /// The corpus-wide figures; None when no query has timings on both sides.
    pub summary: Option<PerfSummary>,
    /// The [`SLOWEST`] largest ratios, largest first.
    pub slowest: Vec<SlowRow>,
    /// Queries per ratio bin (see [`HISTOGRAM_BINS`]).
    pub histogram: [usize; HISTOGRAM_BINS],
}

/// Figures of a flight's outcomes; None when no query has timings on both sides.
pub fn perf_summary<'a>(outcomes: impl IntoIterator<Item = &'a OutcomeRecord>) -> Option<PerfSummary> {
    let mut a = PerfAcc::default();
    for o in outcomes {
        a.add(o);
    }
    a.finish().summary
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
