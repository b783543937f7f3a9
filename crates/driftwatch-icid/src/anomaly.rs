//! The streaming anomaly score: one number per point in `[0, 1]`, calibrated on the series' own
//! history, so that a value near 1 is rare and means "unlike anything normal here, and new".
//!
//! # How a point is scored
//! 1. **Rarity against a long reference.** Each channel measures how far the point lies from the
//!    series' normal behaviour: the mean distance to its `k` nearest neighbours among the last
//!    `reference` points (strictly before it). Three channels: the values, their first
//!    differences (a jump is rare in the differences before the level it reaches is rare) and the
//!    mean of the last `smooth` points (a small lasting shift). The reference spans many windows
//!    (2,000 points by default), so a clean seasonal series finds its own earlier cycles there
//!    and ordinary seasonal change does not look new.
//! 2. **Calibration.** Each channel's raw distance becomes a tail probability: the share of the
//!    last `calibration` raw distances at least as large (`(1 + count) / (1 + size)`), and past
//!    their maximum an exponential tail fitted to their top tenth (so a point far beyond every
//!    earlier one is rarer than one just beyond). The channels' probabilities are combined by
//!    Fisher's method into `q`.
//! 3. **A log scale.** The score is `ln q / ln q_floor`, clamped to `[0, 1]`, where `q_floor` is
//!    the combined probability of a point at every channel's floor (rarer than everything in the
//!    calibration). Ordinary points score near 0 (on a clean periodic series fewer than 1 in
//!    100 reach 0.2, tested); 1 means "unlike anything in this series' recent history".
//! 4. **Repeat suppression.** A score is reported as it is only when it beats every score of the
//!    last `refractory` points; otherwise it is halved. An incident is reported once, at its
//!    onset, instead of on every point it lasts; a higher peak inside it is still reported. A
//!    repeat of an earlier incident scores lower: the calibration has seen it.
//!
//! The first `warmup` points get no score (marked as warming up): the reference and the
//! calibration need a history first.
//!
//! # Why nearest neighbours and not the isolation kernel here
//! Measured on the five NAB development categories (a lab prototype, docs/experiments.md, 2026-12-07):
//! with the same calibration and suppression, isolation-kernel rarity (iNNE radius ratio with
//! `psi` centres drawn from the reference) scored 18 to 38 against 56 for the nearest-neighbour distance: the
//! kernel's resolution is one cell of about `1/psi` of the reference's mass, while an alarm must
//! resolve about one point in a thousand. The change-interval detector, which needs distribution
//! comparisons, keeps the kernel.

use std::collections::VecDeque;

/// Configuration of an [`AnomalyScorer`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AnomalyConfig {
    /// Points kept as the reference of normal behaviour.
    pub reference: usize,
    /// Neighbours averaged per distance.
    pub neighbours: usize,
    /// Raw distances kept per channel for calibration.
    pub calibration: usize,
    /// Points a high score suppresses lower ones for.
    pub refractory: usize,
    /// Points before the first score.
    pub warmup: usize,
    /// Score the first differences as a second channel.
    pub differences: bool,
    /// Score the mean of the last `smooth` points as a third channel (0: off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub smooth: usize,
    /// Interval onsets feed the score (used by the streaming detector): when a window opens a
    /// change interval, the point that completes it scores at least `ln p / ln p_min`, where `p`
    /// is the window score's tail probability among the detector's recent window scores. Off by
    /// default: leave-one-category-out on NAB's development data chose it off in 4 of 5 folds
    /// (held-out mean 47.6 off against 43.5 with the choice open; docs/experiments.md): windows
    /// flagged on noise add false alarms faster than real onsets add early detections.
    #[cfg_attr(feature = "serde", serde(default))]
    pub onsets: bool,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            reference: 2000,
            neighbours: 5,
            calibration: 1000,
            refractory: 200,
            warmup: 500,
            differences: true,
            smooth: 10,
            onsets: false,
        }
    }
}

impl AnomalyConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), crate::IcidError> {
        if self.neighbours == 0 || self.reference <= self.neighbours {
            return Err(crate::IcidError::param("anomaly.reference", "must exceed anomaly.neighbours (at least 1)"));
        }
        if self.neighbours > MAX_NEIGHBOURS {
            return Err(crate::IcidError::param("anomaly.neighbours", "must be at most 32"));
        }
        if self.calibration < 2 {
            return Err(crate::IcidError::param("anomaly.calibration", "must be at least 2"));
        }
        if self.warmup < self.neighbours + 1 {
            return Err(crate::IcidError::param("anomaly.warmup", "must exceed anomaly.neighbours"));
        }
        Ok(())
    }
}

/// One scored point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointScore {
    /// The score in `[0, 1]` (0 while warming up).
    pub score: f32,
    /// Whether the scorer was still warming up (the score carries no information).
    pub warming_up: bool,
}

/// Values entering a sorted run in batches of this many: between merges they wait, unsorted, in
/// `pending`. Measured with `bench engine` (service defaults): a sorted insert and remove per point
/// spent about 40 % of the time in `memmove`; batching turns that into one merge per 32 points.
const BATCH: usize = 64;

/// Most neighbours a distance may average.
pub const MAX_NEIGHBOURS: usize = 32;

/// A sliding window of the last `cap` to `cap + BATCH` values, kept in arrival order and as a
/// sorted run plus a short unsorted tail of the newest values (neighbour and rank queries in
/// `O(log n + k + BATCH)`; one merge per `BATCH` values).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Sorted {
    order: VecDeque<f32>,
    sorted: Vec<f32>,
    pending: Vec<f32>,
}

impl Sorted {
    fn push(&mut self, v: f32, cap: usize) {
        if self.order.capacity() == 0 {
            // Exact sizes: the window never holds more than `cap + BATCH` values.
            self.order.reserve_exact(cap + BATCH);
            self.pending.reserve_exact(BATCH);
        }
        self.order.push_back(v);
        self.pending.push(v);
        if self.pending.len() >= BATCH.min(cap) {
            self.merge(cap);
        }
    }

    /// Moves the pending values into the sorted run and drops the oldest values beyond `cap`
    /// (always in the sorted run: the pending values are the newest and `BATCH` is at most `cap`).
    fn merge(&mut self, cap: usize) {
        let drop = self.order.len().saturating_sub(cap);
        let mut gone: Vec<f32> = self.order.drain(..drop).collect();
        gone.sort_unstable_by(f32::total_cmp);
        self.pending.sort_unstable_by(f32::total_cmp);
        // One linear pass over the run: the leaving values are skipped (one stored copy each)
        // and the pending ones merged in, the stretches between them copied whole. Linear scans
        // beat a binary search per value here (measured: the searches' cache misses cost 18 % of
        // the service-defaults time at a batch of 32).
        let run = &self.sorted;
        let mut out = Vec::with_capacity(cap + BATCH);
        let (mut i, mut g, mut p) = (0, 0, 0);
        loop {
            // The next event: a leaving value or a pending value, whichever comes first.
            let next_gone = gone.get(g).copied();
            let next_new = self.pending.get(p).copied();
            let (stop, leaving) = match (next_gone, next_new) {
                (None, None) => break,
                (Some(x), Some(y)) if x <= y => (x, true),
                (Some(x), None) => (x, true),
                (_, Some(y)) => (y, false),
            };
            let mut j = i;
            if leaving {
                while j < run.len() && run[j] < stop {
                    j += 1;
                }
                out.extend_from_slice(&run[i..j]);
                i = (j + 1).min(run.len()); // skip the copy leaving
                g += 1;
            } else {
                while j < run.len() && run[j] <= stop {
                    j += 1;
                }
                out.extend_from_slice(&run[i..j]);
                out.push(stop);
                i = j;
                p += 1;
            }
        }
        out.extend_from_slice(&run[i..]);
        self.pending.clear();
        self.sorted = out;
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.pending.len()
    }

    /// Mean distance from `v` to its `k` nearest values (`k` at most [`MAX_NEIGHBOURS`]).
    fn knn(&self, v: f32, k: usize) -> f64 {
        let s = &self.sorted;
        let k = k.min(self.len()).min(MAX_NEIGHBOURS);
        if k == 0 {
            return 0.0;
        }
        // The k nearest of the sorted run, in increasing distance, by walking out from `v`.
        let mut best = [0f64; MAX_NEIGHBOURS];
        let mut have = 0;
        let at = s.partition_point(|&x| x < v);
        let (mut lo, mut hi) = (at, at);
        let v64 = f64::from(v);
        while have < k {
            let left = (lo > 0).then(|| (v64 - f64::from(s[lo - 1])).abs());
            let right = (hi < s.len()).then(|| (f64::from(s[hi]) - v64).abs());
            best[have] = match (left, right) {
                (Some(l), Some(r)) if l <= r => {
                    lo -= 1;
                    l
                }
                (_, Some(r)) => {
                    hi += 1;
                    r
                }
                (Some(l), None) => {
                    lo -= 1;
                    l
                }
                (None, None) => break,
            };
            have += 1;
        }
        // Then the pending values, each replacing the farthest kept one when nearer.
        for &x in &self.pending {
            let d = (f64::from(x) - v64).abs();
            if have < k {
                let at = best[..have].partition_point(|&b| b <= d);
                best.copy_within(at..have, at + 1);
                best[at] = d;
                have += 1;
            } else if d < best[k - 1] {
                let at = best[..k].partition_point(|&b| b <= d);
                best.copy_within(at..k - 1, at + 1);
                best[at] = d;
            }
        }
        best[..have].iter().sum::<f64>() / have as f64
    }

    /// The natural log of `v`'s tail probability: `(1 + values ≥ v) / (1 + len)`, and beyond the
    /// largest value an exponential tail fitted to the top tenth: the floor `1 / (1 + len)` times
    /// `exp(−(v − max) / (max − q90))`. Without the extrapolation every value past the history's
    /// maximum would be equally rare, however far past it lies.
    fn ln_tail(&self, v: f32) -> f64 {
        let s = &self.sorted;
        let floor = -((1 + self.len()) as f64).ln();
        let max = self.pending.iter().copied().chain(s.last().copied()).fold(f32::NEG_INFINITY, f32::max);
        if v > max && s.len() >= 10 {
            let q90 = s[(s.len() - 1) * 9 / 10];
            let tau = (f64::from(max) - f64::from(q90)).max(f64::from(max).abs() * 1e-3).max(1e-12);
            floor - (f64::from(v) - f64::from(max)) / tau
        } else {
            let at_least = s.len() - s.partition_point(|&x| x < v) + self.pending.iter().filter(|&&x| x >= v).count();
            ((1 + at_least) as f64).ln() + floor
        }
    }

    fn heap_bytes(&self) -> usize {
        (self.order.capacity() + self.sorted.capacity() + self.pending.capacity()) * 4
    }
}

/// One rarity channel: its reference values and its calibration history.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Channel {
    reference: Sorted,
    calibration: Sorted,
}

impl Channel {
    /// The log tail probability of `v`'s rarity and the log of the smallest probability the
    /// calibration can give without extrapolating (`None` until the reference has neighbours),
    /// then `v` joins the reference.
    fn observe(&mut self, v: f32, cfg: &AnomalyConfig) -> Option<(f64, f64)> {
        let p = (self.reference.len() > cfg.neighbours).then(|| {
            let raw = to_f32(self.reference.knn(v, cfg.neighbours));
            let ln_p = self.calibration.ln_tail(raw);
            let ln_floor = -((1 + self.calibration.len()) as f64).ln();
            self.calibration.push(raw, cfg.calibration);
            (ln_p, ln_floor)
        });
        self.reference.push(v, cfg.reference);
        p
    }
}

/// The streaming anomaly scorer of one univariate series (see the module docs). Multivariate
/// series are scored per column and the columns' probabilities combined.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AnomalyScorer {
    cfg: AnomalyConfig,
    seen: u64,
    /// Per column: the values channel and, with differences on, the differences channel.
    channels: Vec<Channel>,
    last: Vec<f64>,
    /// The last `smooth` values per column (row-major, oldest first) and their running means.
    window: VecDeque<f64>,
    window_sum: Vec<f64>,
    /// Recent calibrated (unsuppressed) scores with their positions, a monotone deque whose
    /// front is the largest of the last `refractory` points.
    recent: VecDeque<(u64, f64)>,
}

impl AnomalyScorer {
    /// A scorer for points of `d` values.
    ///
    /// # Errors
    /// A configuration out of range.
    pub fn new(cfg: AnomalyConfig, d: usize) -> Result<Self, crate::IcidError> {
        cfg.validate()?;
        let per = 1 + usize::from(cfg.differences) + usize::from(cfg.smooth > 0);
        Ok(Self {
            cfg,
            seen: 0,
            channels: vec![Channel::default(); d * per],
            last: Vec::new(),
            window: VecDeque::new(),
            window_sum: vec![0.0; d],
            recent: VecDeque::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AnomalyConfig {
        &self.cfg
    }

    /// Scores one point (`values.len() == d`, finite) and adds it to the history.
    pub fn push(&mut self, values: &[f64]) -> PointScore {
        let index = self.seen;
        self.seen += 1;
        let per = 1 + usize::from(self.cfg.differences) + usize::from(self.cfg.smooth > 0);
        let d = values.len();
        let full = self.cfg.smooth > 0 && self.window.len() / d.max(1) >= self.cfg.smooth;
        if self.cfg.smooth > 0 {
            // Running means (sums of v / smooth: no overflow even at the largest finite values).
            let k = self.cfg.smooth as f64;
            if full {
                for j in 0..d {
                    let old = self.window.pop_front().expect("a full window");
                    self.window_sum[j] -= old / k;
                }
            }
            for (j, &v) in values.iter().enumerate() {
                self.window.push_back(v);
                self.window_sum[j] += v / k;
            }
        }
        let smooth_ready = self.cfg.smooth > 0 && self.window.len() / d.max(1) >= self.cfg.smooth;
        let (mut log_sum, mut floor_sum) = (0.0, 0.0);
        let mut count = 0usize;
        for (j, &v) in values.iter().enumerate() {
            let mut feed = |c: usize, x: f64| {
                if let Some((ln_p, ln_floor)) = self.channels[c].observe(to_f32(x), &self.cfg) {
                    log_sum += ln_p;
                    floor_sum += ln_floor;
                    count += 1;
                }
            };
            feed(j * per, v);
            if self.cfg.differences
                && let Some(&prev) = self.last.get(j)
            {
                feed(j * per + 1, v - prev);
            }
            if smooth_ready {
                feed(j * per + per - 1, self.window_sum[j]);
            }
        }
        self.last.clear();
        self.last.extend_from_slice(values);
        if index < self.cfg.warmup as u64 || count == 0 {
            return PointScore { score: 0.0, warming_up: true };
        }
        // Surprise on a log scale: the combined p-value's log against the log of the combined
        // p-value of a point at every channel's floor (rarer than anything in the calibration).
        let ln_q = ln_fisher(-2.0 * log_sum, count);
        let ln_q_floor = ln_fisher(-2.0 * floor_sum, count);
        let calibrated = if ln_q_floor < 0.0 { (ln_q / ln_q_floor).clamp(0.0, 1.0) } else { 0.0 };
        // Repeat suppression against the last `refractory` calibrated scores.
        while self.recent.front().is_some_and(|&(i, _)| i + (self.cfg.refractory as u64) < index) {
            self.recent.pop_front();
        }
        let beaten = self.recent.front().is_some_and(|&(_, s)| s >= calibrated);
        while self.recent.back().is_some_and(|&(_, s)| s <= calibrated) {
            self.recent.pop_back();
        }
        self.recent.push_back((index, calibrated));
        let score = if beaten { calibrated * 0.5 } else { calibrated };
        PointScore { score: score as f32, warming_up: false }
    }

    /// Bytes of state held now (bounded by the configuration).
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.channels.iter().map(|c| c.reference.heap_bytes() + c.calibration.heap_bytes()).sum::<usize>()
            + self.recent.capacity() * 16
            + self.last.capacity() * 8
    }
}

/// The natural log of the upper tail of χ² with `2k` degrees of freedom at `x`:
/// `ln(e^{−x/2} Σ_{i<k} (x/2)^i / i!)`, in log space so that no tail underflows.
fn ln_fisher(x: f64, k: usize) -> f64 {
    let h = (x / 2.0).max(0.0);
    if h == 0.0 {
        return 0.0;
    }
    let ln_h = h.ln();
    // The terms' logs, computed twice (for their maximum, then the sum) rather than collected:
    // this runs twice per point, and `k` is the number of channels.
    let ln_terms = || {
        let mut ln_fact = 0.0;
        (0..k.max(1)).map(move |i| {
            if i > 0 {
                ln_fact += (i as f64).ln();
            }
            i as f64 * ln_h - ln_fact
        })
    };
    let top = ln_terms().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = ln_terms().map(|t| (t - top).exp()).sum();
    (-h + top + sum.ln()).min(0.0)
}

/// `x` as f32, saturating at the largest finite values.
fn to_f32(x: f64) -> f32 {
    x.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_matches_the_chi_square_tail() {
        // One p-value: chi2(2) tail at -2 ln p is p itself.
        for p in [0.5f64, 0.1, 0.001, 1e-300] {
            assert!((ln_fisher(-2.0 * p.ln(), 1) - p.ln()).abs() < 1e-9);
        }
        // Two p-values of 0.05: chi2(4) at 11.98 is about 0.0175.
        assert!((ln_fisher(-4.0 * 0.05f64.ln(), 2).exp() - 0.017_48).abs() < 1e-4);
        // Far in the tail the log stays finite.
        assert!(ln_fisher(1e5, 3).is_finite() && ln_fisher(1e5, 3) < -4e4);
    }

    #[test]
    fn neighbours_and_tails_of_a_sliding_window() {
        let mut s = Sorted::default();
        for v in [5.0, 1.0, 3.0, 9.0] {
            s.push(v, 3); // batches of 3: after 5, 1, 3 merge; 9 waits
        }
        assert_eq!((s.sorted.clone(), s.pending.clone()), (vec![1.0, 3.0, 5.0], vec![9.0]));
        s.merge(3); // drops the oldest, 5
        assert_eq!(s.sorted, vec![1.0, 3.0, 9.0]);
        assert!((s.knn(2.0, 2) - 1.0).abs() < 1e-9);
        assert!((s.knn(10.0, 1) - 1.0).abs() < 1e-9);
        assert!((s.ln_tail(3.0).exp() - 3.0 / 4.0).abs() < 1e-9);
        // Too few values to fit a tail: past the maximum is the floor.
        assert!((s.ln_tail(100.0).exp() - 1.0 / 4.0).abs() < 1e-9);
        // With a history, past the maximum the tail keeps falling with the distance.
        let mut h = Sorted::default();
        for v in 0..100 {
            h.push(v as f32, 100);
        }
        h.merge(100); // 0..=99 in the run: max 99, q90 89, so tau = 10
        let floor = -(101f64).ln();
        assert!((h.ln_tail(99.0) - (2f64.ln() + floor)).abs() < 1e-9);
        assert!((h.ln_tail(119.0) - (floor - 2.0)).abs() < 1e-9);
    }

    #[test]
    fn batched_window_answers_as_a_plain_sliding_window() {
        // A deterministic pseudo-random stream with repeats; the window is checked against a
        // brute-force copy of its last values.
        let mut s = Sorted::default();
        let mut all = Vec::new();
        let mut x = 12345u64;
        for i in 0..3000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 40) % 200) as f32 / 4.0;
            s.push(v, 100);
            all.push(v);
            let held = s.len();
            assert!((100..100 + BATCH).contains(&held) || i < 100, "{held} values held");
            let window = &all[all.len() - held..];
            let q = ((x >> 20) % 220) as f32 / 4.0;
            let mut d: Vec<f64> = window.iter().map(|&w| (f64::from(w) - f64::from(q)).abs()).collect();
            d.sort_by(f64::total_cmp);
            let k = 5.min(d.len());
            let want = d[..k].iter().sum::<f64>() / k as f64;
            assert!((s.knn(q, 5) - want).abs() < 1e-9, "knn at {i}");
            let max = window.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if q <= max {
                let at_least = window.iter().filter(|&&w| w >= q).count();
                let want = ((1 + at_least) as f64 / (1 + held) as f64).ln();
                assert!((s.ln_tail(q) - want).abs() < 1e-9, "tail at {i}");
            }
        }
    }
}
