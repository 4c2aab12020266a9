//! Statistics for performance verdicts.
//!
//! The verdict of a query is decided by [`randomization_p`]: a two-sided
//! randomization (permutation) test of the difference of mean log times, exact
//! over every split of the pooled sample when there are at most
//! [`EXACT_SPLITS`] splits, otherwise over [`MC_ROUNDS`] seeded random splits. It
//! assumes only that, without a difference, the labels of the timings are
//! exchangeable (which interleaved ABBA blocks make true for drift); no normal
//! approximation. Where that test cannot reach a look's level at all (one or two
//! blocks: [`randomization_min_p`]), [`welch_p`] decides: Welch's t test of mean
//! log times, exact under log-normal timings. [`ratio_ci`] is Welch's t interval
//! of the ratio of geometric means; [`hodges_lehmann_ratio`] and
//! [`hodges_lehmann_ci`] (Moses' distribution-free interval) are the robust
//! estimate and interval of the ratio (the futility stop; whether a slowdown is
//! past the regression ratio). The Benjamini-Hochberg adjustment across a corpus
//! is `sqlflight_reports::perf::bh_qvalues`; [`cv`] is the coefficient of
//! variation. [`mann_whitney_p`] (normal
//! approximation) is kept for the run-to-run comparison of medians.

/// Median of a non-empty sample.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Two-sided p-value of the Mann-Whitney U test of `a` against `b`. None when a
/// side has fewer than 2 values or all values are tied.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n1, n2) = (a.len(), b.len());
    if n1 < 2 || n2 < 2 {
        return None;
    }
    let mut all: Vec<(f64, usize)> = a.iter().map(|&x| (x, 0)).chain(b.iter().map(|&x| (x, 1))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for rank in ranks.iter_mut().take(j + 1).skip(i) {
            *rank = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all.iter().zip(&ranks).filter(|(x, _)| x.1 == 0).map(|(_, r)| r).sum();
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let mu = n1f * n2f / 2.0;
    let sigma2 = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if sigma2 <= 0.0 {
        return None;
    }
    // Continuity correction.
    let z = ((u1 - mu).abs() - 0.5).max(0.0) / sigma2.sqrt();
    Some((libm::erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0))
}

/// Most splits [`randomization_p`] enumerates exactly (8 + 8 timings: 12,870).
pub const EXACT_SPLITS: u64 = 13_000;
/// Random splits when there are more (p-values resolve to 1/5,001).
pub const MC_ROUNDS: u32 = 5_000;

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut r: u64 = 1;
    for i in 0..k {
        r = r.saturating_mul(n - i) / (i + 1);
        if r > EXACT_SPLITS * 1000 {
            return u64::MAX;
        }
    }
    r
}

/// Two-sided p-value of the randomization test of mean(`a`) against mean(`b`):
/// the share of splits of the pooled values into groups of the same sizes whose
/// difference of means is at least as large as the observed one. None when a
/// side is empty.
pub fn randomization_p(a: &[f64], b: &[f64]) -> Option<f64> {
    randomization_p_tail(a, b, false)
}

/// One-sided p-value of the same test for mean(`b`) > mean(`a`): the share of
/// splits whose mean(b) - mean(a) is at least the observed one.
pub fn randomization_p_greater(a: &[f64], b: &[f64]) -> Option<f64> {
    randomization_p_tail(a, b, true)
}

fn randomization_p_tail(a: &[f64], b: &[f64], greater: bool) -> Option<f64> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let total: f64 = pooled.iter().sum();
    let stat = |sum_a: f64| {
        let d = (total - sum_a) / n2 as f64 - sum_a / n1 as f64;
        if greater { d } else { d.abs() }
    };
    let observed = stat(a.iter().sum());
    // Splits with a difference equal to the observed one (up to rounding) count.
    let eps = 1e-9 * (1.0 + observed.abs());
    let n = pooled.len();
    if binomial(n as u64, n1 as u64) <= EXACT_SPLITS {
        let (mut hits, mut splits) = (0u64, 0u64);
        let mut idx: Vec<usize> = (0..n1).collect();
        loop {
            let sum: f64 = idx.iter().map(|&i| pooled[i]).sum();
            splits += 1;
            if stat(sum) >= observed - eps {
                hits += 1;
            }
            // Next combination in lexicographic order.
            let mut i = n1;
            while i > 0 && idx[i - 1] == n - n1 + i - 1 {
                i -= 1;
            }
            if i == 0 {
                break;
            }
            idx[i - 1] += 1;
            for j in i..n1 {
                idx[j] = idx[j - 1] + 1;
            }
        }
        return Some(hits as f64 / splits as f64);
    }
    // Seeded by the data, so the same timings always give the same p-value.
    let seed = pooled.iter().fold(0u64, |h, x| h.rotate_left(5) ^ x.to_bits());
    let mut rng = SplitMix(seed);
    let mut work = pooled.clone();
    let mut hits = 0u32;
    for _ in 0..MC_ROUNDS {
        // Partial Fisher-Yates: the first n1 positions are a uniform random group.
        for i in 0..n1 {
            let j = i + (rng.next() % (n - i) as u64) as usize;
            work.swap(i, j);
        }
        let sum: f64 = work[..n1].iter().sum();
        if stat(sum) >= observed - eps {
            hits += 1;
        }
    }
    Some((f64::from(hits) + 1.0) / (f64::from(MC_ROUNDS) + 1.0))
}

/// A small, seedable generator for resampling (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Welch's statistic of mean(`log_c`) - mean(`log_b`).
struct Welch {
    /// The difference of mean log times.
    diff: f64,
    /// Its standard error and the Student t distribution with the
    /// Welch–Satterthwaite degrees of freedom; None when neither side varies.
    spread: Option<(f64, statrs::distribution::StudentsT)>,
}

/// None when a side has fewer than two timings.
fn welch(log_b: &[f64], log_c: &[f64]) -> Option<Welch> {
    let (nb, nc) = (log_b.len() as f64, log_c.len() as f64);
    if nb < 2.0 || nc < 2.0 {
        return None;
    }
    let var = |xs: &[f64]| {
        let m = mean(xs);
        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64
    };
    let (vb, vc) = (var(log_b) / nb, var(log_c) / nc);
    let diff = mean(log_c) - mean(log_b);
    let se = (vb + vc).sqrt();
    if se.is_nan() || se <= 0.0 {
        return Some(Welch { diff, spread: None });
    }
    let df = (vb + vc).powi(2) / (vb * vb / (nb - 1.0) + vc * vc / (nc - 1.0));
    let t = statrs::distribution::StudentsT::new(0.0, 1.0, df.max(1.0)).ok()?;
    Some(Welch {
        diff,
        spread: Some((se, t)),
    })
}

/// Welch's t confidence interval (`level`, e.g. 0.95) of
/// exp(mean(`log_c`) - mean(`log_b`)), the ratio of geometric means: the
/// difference of mean log times ± t(df) standard errors, with the
/// Welch–Satterthwaite degrees of freedom. Exact under log-normal timings and
/// honest at small samples (two runs a side give t(2) = 4.3 standard errors, where
/// a bootstrap of two values would claim a near-zero width). None when a side has
/// fewer than two timings.
pub fn ratio_ci(log_b: &[f64], log_c: &[f64], level: f64) -> Option<(f64, f64)> {
    use statrs::distribution::ContinuousCDF;
    let Welch { diff, spread } = welch(log_b, log_c)?;
    let Some((se, t)) = spread else {
        return Some((diff.exp(), diff.exp()));
    };
    let q = t.inverse_cdf(0.5 + level.clamp(0.0, 0.999_999) / 2.0);
    Some(((diff - q * se).exp(), (diff + q * se).exp()))
}

/// p-value of Welch's t test of mean(`log_c`) against mean(`log_b`) (log times, so
/// a test of the ratio of geometric means): two-sided, or one-sided for
/// mean(`log_c`) > mean(`log_b`) when `greater`. Exact under log-normal timings; it
/// decides where the randomization test cannot (two runs a side have 6 splits,
/// so no exact p-value below 1/3), which is what lets an overwhelming slowdown be
/// decided from one or two blocks. None when a side has fewer than two timings
/// or neither side varies (the timer's resolution: no t statistic).
pub fn welch_p(log_b: &[f64], log_c: &[f64], greater: bool) -> Option<f64> {
    use statrs::distribution::ContinuousCDF;
    let Welch { diff, spread } = welch(log_b, log_c)?;
    let (se, t) = spread?;
    let z = diff / se;
    let p = if greater {
        1.0 - t.cdf(z)
    } else {
        2.0 * (1.0 - t.cdf(z.abs()))
    };
    Some(p.clamp(0.0, 1.0))
}

/// The smallest p-value the randomization test can give for samples of `n1` and
/// `n2` timings: one split in all (one-sided), two when the sizes are equal (a
/// two-sided split and its mirror). Below the level of a look, that test can
/// decide; above it, it cannot, whatever the timings.
pub fn randomization_min_p(n1: usize, n2: usize, one_sided: bool) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let splits = binomial((n1 + n2) as u64, n1 as u64) as f64;
    let extremes = if !one_sided && n1 == n2 { 2.0 } else { 1.0 };
    (extremes / splits).max(1.0 / (f64::from(MC_ROUNDS) + 1.0))
}

/// The Hodges-Lehmann ratio: exp of the median of every difference `log_c[j] -
/// log_b[i]`. A robust estimate of the ratio: a few disturbed runs (a neighbour's
/// burst) barely move it, where they pull the ratio of geometric means.
pub fn hodges_lehmann_ratio(log_b: &[f64], log_c: &[f64]) -> Option<f64> {
    median(&pairwise_diffs(log_b, log_c)).map(f64::exp)
}

/// Every difference `log_c[j] - log_b[i]`, sorted.
fn pairwise_diffs(log_b: &[f64], log_c: &[f64]) -> Vec<f64> {
    let mut diffs: Vec<f64> = log_b.iter().flat_map(|b| log_c.iter().map(move |c| c - b)).collect();
    diffs.sort_by(f64::total_cmp);
    diffs
}

/// Moses' distribution-free confidence interval (`level`, e.g. 0.9) of the
/// Hodges-Lehmann ratio: from the k-th smallest to the k-th largest of the
/// pairwise differences `log_c[j] - log_b[i]`, with k from the exact null
/// distribution of the Mann-Whitney statistic (up to [`MOSES_EXACT_RUNS`] runs in
/// all; its normal approximation beyond). It assumes only that the candidate's
/// times are the baseline's shifted by a factor, so a neighbour's burst in a few
/// runs widens it by a few pairs, where it inflates a t interval's standard
/// error. None when the sides are too small to reach `level` at all (2 + 2 runs
/// reach 67%, 3 + 3 reach 90%).
pub fn hodges_lehmann_ci(log_b: &[f64], log_c: &[f64], level: f64) -> Option<(f64, f64)> {
    let (m, n) = (log_b.len(), log_c.len());
    if m == 0 || n == 0 {
        return None;
    }
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    // k: how many pairwise differences each end may drop, P(U <= k - 1) <= tail.
    let k = if m + n <= MOSES_EXACT_RUNS {
        let counts = mann_whitney_counts(m, n);
        let total: f64 = counts.iter().sum();
        let mut cum = 0.0;
        counts
            .iter()
            .position(|c| {
                cum += c;
                // (1 - 0.9) / 2 is a hair under 1/20: compare with a tolerance.
                cum / total > tail + 1e-12
            })
            .unwrap_or(0)
    } else {
        use statrs::distribution::ContinuousCDF;
        let z = statrs::distribution::Normal::standard().inverse_cdf(1.0 - tail);
        let (mf, nf) = (m as f64, n as f64);
        let k = mf * nf / 2.0 - z * (mf * nf * (mf + nf + 1.0) / 12.0).sqrt();
        k.floor().max(0.0) as usize
    };
    if k == 0 {
        return None;
    }
    let diffs = pairwise_diffs(log_b, log_c);
    Some((diffs[k - 1].exp(), diffs[diffs.len() - k].exp()))
}

/// Most runs (both sides) for which [`hodges_lehmann_ci`] uses the exact
/// distribution (a table of at most 30 x 900 counts per run).
pub const MOSES_EXACT_RUNS: usize = 60;

/// How many of the C(m + n, m) splits give each value 0..=m*n of the
/// Mann-Whitney statistic (the rank sum of the first side minus its least).
fn mann_whitney_counts(m: usize, n: usize) -> Vec<f64> {
    let total = m + n;
    let max_sum = total * (total + 1) / 2;
    // ways[j][s]: subsets of size j of the ranks seen so far with rank sum s.
    let mut ways = vec![vec![0.0f64; max_sum + 1]; m + 1];
    ways[0][0] = 1.0;
    for rank in 1..=total {
        for j in (1..=m.min(rank)).rev() {
            let (lower, upper) = ways.split_at_mut(j);
            for s in (rank..=max_sum).rev() {
                upper[0][s] += lower[j - 1][s - rank];
            }
        }
    }
    let least = m * (m + 1) / 2;
    ways[m][least..=least + m * n].to_vec()
}

/// Coefficient of variation (sample standard deviation / mean); None below 2 values.
pub fn cv(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs);
    if m <= 0.0 {
        return None;
    }
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64;
    Some(var.sqrt() / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mann_whitney_counts_are_the_exact_distribution() {
        assert_eq!(mann_whitney_counts(2, 2), vec![1.0, 1.0, 2.0, 1.0, 1.0]);
        assert_eq!(
            mann_whitney_counts(3, 3),
            vec![1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0, 1.0, 1.0]
        );
        let c = mann_whitney_counts(10, 12);
        assert_eq!(c.iter().sum::<f64>(), 646_646.0, "C(22, 10) splits");
        assert!(c.iter().zip(c.iter().rev()).all(|(a, b)| a == b), "symmetric");
    }

    #[test]
    fn moses_interval_ends_where_the_exact_level_says() {
        let b = [0.0, 0.1, 0.2];
        let c = [1.0, 1.1, 1.3];
        // 3 + 3 runs at 90%: one difference off each end, the extremes.
        let (lo, hi) = hodges_lehmann_ci(&b, &c, 0.9).unwrap();
        assert!(
            (lo.ln() - 0.8).abs() < 1e-12 && (hi.ln() - 1.3).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(
            hodges_lehmann_ci(&b[..2], &c[..2], 0.9),
            None,
            "2 + 2 reach 67% at most"
        );
        assert!(hodges_lehmann_ci(&b[..2], &c[..2], 0.6).is_some());
    }

    #[test]
    fn moses_interval_covers_the_true_ratio_with_outliers() {
        // Log-normal 5% noise, 10% of runs disturbed (x1.5-3), true ratio 1.6, 90%
        // intervals from 6 + 6 and 20 + 20 runs, exact and normal quantiles.
        let mut state = 7u64;
        let mut u = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for n in [6, 20, 40] {
            let trials = 2000;
            let mut covered = 0;
            for _ in 0..trials {
                let mut draw = |shift: f64| {
                    let z = (-2.0 * u().max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
                    let burst = if u() < 0.1 { (1.5 + 1.5 * u()).ln() } else { 0.0 };
                    shift + 0.05 * z + burst
                };
                let b: Vec<f64> = (0..n).map(|_| draw(0.0)).collect();
                let c: Vec<f64> = (0..n).map(|_| draw(1.6f64.ln())).collect();
                let (lo, hi) = hodges_lehmann_ci(&b, &c, 0.9).unwrap();
                if lo <= 1.6 && 1.6 <= hi {
                    covered += 1;
                }
            }
            let rate = f64::from(covered) / f64::from(trials);
            assert!((0.88..=0.99).contains(&rate), "{n} + {n} runs: coverage {rate}");
        }
    }
}
