//! The streaming anomaly score: one number per point in `[0, 1]`, calibrated on the series' own
//! history, so that a value near 1 is rare and means "unlike anything normal here, and new".
//!
//! # How a point is scored
//! 1. **Rarity against a long reference.** Each channel measures how far the point lies from the
//!    series' normal behaviour: the mean distance to its `k` nearest neighbours among the last
//!    `reference` points (strictly before it). Two channels: the values themselves, and their
//!    first differences (a jump is rare in the differences before the level it reaches is rare).
//!    The reference spans many windows (2,000 points by default), so a clean seasonal series
//!    finds its own earlier cycles there and ordinary seasonal change does not look new.
//! 2. **Calibration.** Each channel's raw distance becomes a tail probability: the share of the
//!    last `calibration` raw distances at least as large (`(1 + count) / (1 + size)`). The
//!    channels' probabilities are combined by Fisher's method (`−2 Σ ln p` is χ² with 4 degrees of
//!    freedom under independence) and the score is `1 − p`. Ordinary points spread evenly over
//!    `[0, 1]`; a score of 0.999 needs a point rarer than about one in a thousand of this series.
//! 3. **Repeat suppression.** A score is reported as it is only when it beats every score of the
//!    last `refractory` points; otherwise it is halved (so at most 0.5: never an alarm). An
//!    incident is reported once, at its onset, instead of on every point it lasts; a higher peak
//!    inside it is still reported.
//!
//! The first `warmup` points get no score (marked as warming up): the reference and the
//! calibration need a history first.
//!
//! # Why nearest neighbours and not the isolation kernel here
//! Measured on the five NAB development categories (`driftwatch eval nab`, see docs/experiments.md):
//! with the same calibration and suppression, isolation-kernel rarity (iNNE radius ratio with
//! `psi` centres drawn from the reference) scored far below the nearest-neighbour distance: the
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
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            reference: 2000,
            neighbours: 5,
            calibration: 2000,
            refractory: 200,
            warmup: 100,
            differences: true,
            smooth: 10,
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

/// A sliding window of values kept in arrival order and in sorted order (for neighbour and rank
/// queries in `O(log n + k)`, updates in one `memmove`).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Sorted {
    order: VecDeque<f32>,
    sorted: Vec<f32>,
}

impl Sorted {
    fn push(&mut self, v: f32, cap: usize) {
        if self.order.len() == cap
            && let Some(old) = self.order.pop_front()
        {
            let at = self.sorted.partition_point(|&x| x < old);
            self.sorted.remove(at);
        }
        self.order.push_back(v);
        let at = self.sorted.partition_point(|&x| x < v);
        self.sorted.insert(at, v);
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Mean distance from `v` to its `k` nearest values.
    fn knn(&self, v: f32, k: usize) -> f64 {
        let s = &self.sorted;
        let k = k.min(s.len());
        let (mut lo, mut hi) = (s.partition_point(|&x| x < v), s.partition_point(|&x| x < v));
        let mut sum = 0f64;
        for _ in 0..k {
            let left = (lo > 0).then(|| (v - s[lo - 1]).abs());
            let right = (hi < s.len()).then(|| (s[hi] - v).abs());
            match (left, right) {
                (Some(l), Some(r)) if l <= r => {
                    sum += l as f64;
                    lo -= 1;
                }
                (_, Some(r)) => {
                    sum += r as f64;
                    hi += 1;
                }
                (Some(l), None) => {
                    sum += l as f64;
                    lo -= 1;
                }
                (None, None) => break,
            }
        }
        if k == 0 { 0.0 } else { sum / k as f64 }
    }

    /// `(1 + values ≥ v) / (1 + len)`.
    fn tail(&self, v: f32) -> f64 {
        let at_least = self.sorted.len() - self.sorted.partition_point(|&x| x < v);
        (1 + at_least) as f64 / (1 + self.sorted.len()) as f64
    }

    fn heap_bytes(&self) -> usize {
        (self.order.capacity() + self.sorted.capacity()) * 4
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
    /// The tail probability of `v`'s rarity (`None` until the reference has neighbours), then
    /// `v` joins the reference.
    fn observe(&mut self, v: f32, cfg: &AnomalyConfig) -> Option<f64> {
        let p = (self.reference.len() > cfg.neighbours).then(|| {
            let raw = self.reference.knn(v, cfg.neighbours) as f32;
            let p = self.calibration.tail(raw);
            self.calibration.push(raw, cfg.calibration);
            p
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
    /// The last `smooth` values per column (row-major, oldest first) and their running sums.
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
            if full {
                for j in 0..d {
                    let old = self.window.pop_front().expect("a full window");
                    self.window_sum[j] -= old;
                }
            }
            for (j, &v) in values.iter().enumerate() {
                self.window.push_back(v);
                self.window_sum[j] += v;
            }
        }
        let smooth_ready = self.cfg.smooth > 0 && self.window.len() / d.max(1) >= self.cfg.smooth;
        let mut log_sum = 0.0;
        let mut count = 0usize;
        for (j, &v) in values.iter().enumerate() {
            let mut feed = |c: usize, x: f64| {
                if let Some(p) = self.channels[c].observe(x as f32, &self.cfg) {
                    log_sum += p.ln();
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
                feed(j * per + per - 1, self.window_sum[j] / self.cfg.smooth as f64);
            }
        }
        self.last.clear();
        self.last.extend_from_slice(values);
        if index < self.cfg.warmup as u64 || count == 0 {
            return PointScore { score: 0.0, warming_up: true };
        }
        let calibrated = 1.0 - fisher(-2.0 * log_sum, count);
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

/// Upper tail of χ² with `2k` degrees of freedom at `x`: `e^{−x/2} Σ_{i<k} (x/2)^i / i!`.
fn fisher(x: f64, k: usize) -> f64 {
    let h = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..k {
        term *= h / i as f64;
        sum += term;
    }
    ((-h).exp() * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_matches_the_chi_square_tail() {
        // One p-value: chi2(2) tail at -2 ln p is p itself.
        for p in [0.5f64, 0.1, 0.001] {
            assert!((fisher(-2.0 * p.ln(), 1) - p).abs() < 1e-12);
        }
        // Two p-values of 0.05: chi2(4) at 11.98 is about 0.0175.
        assert!((fisher(-4.0 * 0.05f64.ln(), 2) - 0.017_48).abs() < 1e-4);
    }

    #[test]
    fn neighbours_and_tails_of_a_sliding_window() {
        let mut s = Sorted::default();
        for v in [5.0, 1.0, 3.0, 9.0] {
            s.push(v, 3); // keeps the last three: 1, 3, 9
        }
        assert_eq!(s.sorted, vec![1.0, 3.0, 9.0]);
        assert!((s.knn(2.0, 2) - 1.0).abs() < 1e-9);
        assert!((s.knn(10.0, 1) - 1.0).abs() < 1e-9);
        assert!((s.tail(3.0) - 3.0 / 4.0).abs() < 1e-9);
        assert!((s.tail(100.0) - 1.0 / 4.0).abs() < 1e-9);
    }
}
