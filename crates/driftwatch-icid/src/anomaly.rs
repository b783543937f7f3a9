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
    /// Points before the first score. 300 by default, from leave-one-category-out on NAB's
    /// development data over warm-up 100/150/200/300/500: 300 in 4 of 5 folds (150 in the
    /// fifth, tied with 300 elsewhere), held-out mean 56.8 against 47.6 with 500
    /// (docs/experiments.md, 2026-12-08): 500 left no score in NAB windows that begin soon after
    /// its probationary period (5 of realAdExchange's 18). Independent of the change detector's
    /// warm-up (500).
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
            warmup: 300,
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

/// Target length of a bucket of a [`Sorted`] window: a bucket splits in two at twice this, and
/// one under a quarter of it joins a neighbour. Measured with `bench engine` (service defaults,
/// 2026-12-08, docs/experiments.md): the previous layout, one sorted run merged with a batch of
/// 64 pending values every 64 points, spent 55 % of the detector's time in the merges, the
/// pending scans and the binary searches over 2,000 values; buckets of 64 keep every insert,
/// removal and query to a search over about 40 bucket maxima plus one bucket.
const BUCKET: usize = 64;

/// Spare room a bucket keeps (grown and shrunk by this much): Vec's doubling would leave the
/// windows a third empty on average (measured: 152 KB of state per series instead of 115 KB).
const SLACK: usize = 16;

/// A bucket holding a copy of `values` and room for [`SLACK`] more.
fn tight(values: &[f32]) -> Vec<f32> {
    let mut v = Vec::with_capacity(values.len() + SLACK);
    v.extend_from_slice(values);
    v
}

/// Most neighbours a distance may average.
pub const MAX_NEIGHBOURS: usize = 32;

/// A sliding window of the last `cap` values, kept in arrival order and as a sorted list cut in
/// buckets (each sorted, non-empty, their concatenation sorted; `maxes` holds each bucket's
/// largest value). Insert, removal, neighbour and rank queries all cost a search over the bucket
/// maxima, a search in one bucket and a move of at most `2 * BUCKET` values.
///
/// Only the arrival order is serialised; the buckets are rebuilt on load.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "SortedRepr", into = "SortedRepr"))]
struct Sorted {
    order: VecDeque<f32>,
    buckets: Vec<Vec<f32>>,
    maxes: Vec<f32>,
}

/// The serialised form of [`Sorted`]: its values in arrival order. (A state written by the
/// previous layout, with `sorted` and `pending` beside `order`, reads the same: unknown fields
/// are ignored.)
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct SortedRepr {
    order: VecDeque<f32>,
}

#[cfg(feature = "serde")]
impl From<SortedRepr> for Sorted {
    fn from(r: SortedRepr) -> Self {
        let mut s = Sorted::default();
        for &v in &r.order {
            let at = s.locate(v);
            s.insert_at(v, at);
        }
        s.order = r.order;
        s
    }
}

#[cfg(feature = "serde")]
impl From<Sorted> for SortedRepr {
    fn from(s: Sorted) -> Self {
        SortedRepr { order: s.order }
    }
}

impl Sorted {
    /// Adds `v` and drops the oldest values beyond `cap`.
    #[cfg(test)]
    fn push(&mut self, v: f32, cap: usize) {
        let at = self.locate(v);
        self.push_at(v, at, cap);
    }

    /// [`Sorted::push`] at the place [`Sorted::locate`] found for `v` (the queries before a push
    /// find it once for both).
    fn push_at(&mut self, v: f32, at: Place, cap: usize) {
        self.order.push_back(v);
        self.insert_at(v, at);
        while self.order.len() > cap {
            let old = self.order.pop_front().expect("a value past the cap");
            self.remove(old);
        }
    }

    /// The first bucket whose maximum is at least `v` (`buckets.len()` when none is).
    fn bucket_at_least(&self, v: f32) -> usize {
        count_below(&self.maxes, v)
    }

    /// Where `v` belongs: the first bucket whose maximum is at least `v` (else the last), and
    /// the number of that bucket's values below `v`.
    fn locate(&self, v: f32) -> Place {
        if self.buckets.is_empty() {
            return Place { bucket: 0, at: 0 };
        }
        let bucket = self.bucket_at_least(v).min(self.buckets.len() - 1);
        Place { bucket, at: count_below(&self.buckets[bucket], v) }
    }

    fn insert_at(&mut self, v: f32, Place { bucket: b, at }: Place) {
        if self.buckets.is_empty() {
            let mut first = Vec::with_capacity(SLACK);
            first.push(v);
            self.buckets.push(first);
            self.maxes.push(v);
            return;
        }
        let bucket = &mut self.buckets[b];
        if bucket.len() == bucket.capacity() {
            bucket.reserve_exact(SLACK);
        }
        bucket.insert(at, v);
        if at + 1 == bucket.len() {
            self.maxes[b] = v;
        }
        if bucket.len() >= 2 * BUCKET {
            self.split(b, BUCKET);
        }
    }

    /// Cuts bucket `b` in two before its value `at` (`0 < at < len`).
    fn split(&mut self, b: usize, at: usize) {
        let bucket = &mut self.buckets[b];
        let upper = tight(&bucket[at..]);
        bucket.truncate(at);
        bucket.shrink_to(at + SLACK);
        self.maxes[b] = bucket[at - 1];
        self.maxes.insert(b + 1, *upper.last().expect("a non-empty half"));
        self.buckets.insert(b + 1, upper);
    }

    /// Removes one copy of `v`, which the window holds.
    fn remove(&mut self, v: f32) {
        // Every earlier bucket's maximum is below `v`, so this bucket holds its first copy.
        let b = self.bucket_at_least(v);
        let bucket = &mut self.buckets[b];
        let at = count_below(bucket, v);
        debug_assert!(bucket.get(at) == Some(&v), "removing a value the window does not hold");
        bucket.remove(at);
        if bucket.is_empty() {
            self.buckets.remove(b);
            self.maxes.remove(b);
            return;
        }
        self.maxes[b] = *bucket.last().expect("non-empty");
        if bucket.capacity() - bucket.len() > 2 * SLACK {
            bucket.shrink_to(bucket.len() + SLACK);
        }
        if bucket.len() < BUCKET / 4 && self.buckets.len() > 1 {
            // Join the smaller neighbour (split again if that makes a full bucket), so the
            // number of buckets stays below 4 * len / BUCKET.
            let left = if b == 0 {
                0
            } else if b + 1 == self.buckets.len() || self.buckets[b - 1].len() <= self.buckets[b + 1].len() {
                b - 1
            } else {
                b
            };
            let right = self.buckets.remove(left + 1);
            self.maxes.remove(left + 1);
            let joined = &mut self.buckets[left];
            joined.reserve_exact(right.len());
            joined.extend_from_slice(&right);
            self.maxes[left] = *joined.last().expect("non-empty");
            if joined.len() >= 2 * BUCKET {
                let half = joined.len() / 2;
                self.split(left, half);
            }
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    /// Mean distance from `v` to its `k` nearest values (`k` at most [`MAX_NEIGHBOURS`]).
    #[cfg(test)]
    fn knn(&self, v: f32, k: usize) -> f64 {
        self.knn_at(v, self.locate(v), k)
    }

    /// [`Sorted::knn`] with `v`'s place.
    fn knn_at(&self, v: f32, Place { bucket: b, at }: Place, k: usize) -> f64 {
        let k = k.min(self.len()).min(MAX_NEIGHBOURS);
        if k == 0 {
            return 0.0;
        }
        let v64 = f64::from(v);
        // Up to k values on each side of `v`, each side in increasing distance.
        let mut below = [0f64; MAX_NEIGHBOURS];
        let mut nb = 0;
        let lower = self.buckets[..b].iter().rev().map(Vec::as_slice);
        for x in std::iter::once(&self.buckets[b][..at]).chain(lower).flat_map(|s| s.iter().rev()).take(k) {
            below[nb] = v64 - f64::from(*x);
            nb += 1;
        }
        let mut above = [0f64; MAX_NEIGHBOURS];
        let mut na = 0;
        let upper = self.buckets[b + 1..].iter().map(Vec::as_slice);
        for x in std::iter::once(&self.buckets[b][at..]).chain(upper).flatten().take(k) {
            above[na] = f64::from(*x) - v64;
            na += 1;
        }
        // The k smallest of the two ascending lists (ties to the lower side).
        let (mut i, mut j, mut sum) = (0, 0, 0.0);
        for _ in 0..k {
            if j >= na || (i < nb && below[i] <= above[j]) {
                sum += below[i];
                i += 1;
            } else {
                sum += above[j];
                j += 1;
            }
        }
        sum / k as f64
    }

    /// The value of rank `r` (0-based, ascending).
    fn select(&self, mut r: usize) -> f32 {
        for bucket in &self.buckets {
            if r < bucket.len() {
                return bucket[r];
            }
            r -= bucket.len();
        }
        unreachable!("rank {r} past the window")
    }

    /// The natural log of `v`'s tail probability: `(1 + values ≥ v) / (1 + len)`, and beyond the
    /// largest value an exponential tail fitted to the top tenth: the floor `1 / (1 + len)` times
    /// `exp(−(v − max) / (max − q90))`. Without the extrapolation every value past the history's
    /// maximum would be equally rare, however far past it lies.
    #[cfg(test)]
    fn ln_tail(&self, v: f32) -> f64 {
        self.ln_tail_at(v, self.locate(v))
    }

    /// [`Sorted::ln_tail`] with `v`'s place.
    fn ln_tail_at(&self, v: f32, Place { bucket: b, at }: Place) -> f64 {
        let floor = -ln_count(1 + self.len());
        let Some(&max) = self.maxes.last() else {
            return 0.0;
        };
        if v > max && self.len() >= 10 {
            let q90 = self.select((self.len() - 1) * 9 / 10);
            let tau = (f64::from(max) - f64::from(q90)).max(f64::from(max).abs() * 1e-3).max(1e-12);
            floor - (f64::from(v) - f64::from(max)) / tau
        } else {
            let later: usize = self.buckets[b + 1..].iter().map(Vec::len).sum();
            ln_count(1 + later + self.buckets[b].len() - at) + floor
        }
    }

    fn heap_bytes(&self) -> usize {
        self.order.capacity() * 4
            + self.maxes.capacity() * 4
            + self.buckets.capacity() * std::mem::size_of::<Vec<f32>>()
            + self.buckets.iter().map(|b| b.capacity() * 4).sum::<usize>()
    }
}

/// Where a value belongs in a [`Sorted`] window (see [`Sorted::locate`]).
#[derive(Debug, Clone, Copy)]
struct Place {
    bucket: usize,
    at: usize,
}

/// How many of `s` (sorted) are below `v`: where `v` would go. A binary search: measured against
/// branch-free vectorised counts over 40 to 128 values (the bucket maxima, one bucket), it took
/// 11 to 15 ns a query against 16 to 54 ns (rustc -O, this machine, 2026-12-08).
fn count_below(s: &[f32], v: f32) -> usize {
    s.partition_point(|&x| x < v)
}

/// `ln n`, from a table for the counts a window of the default sizes produces (the logs were 5 %
/// of the detector's time).
fn ln_count(n: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..4096).map(|i| (i as f64).ln()).collect());
    table.get(n).copied().unwrap_or_else(|| (n as f64).ln())
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
        let at = self.reference.locate(v);
        let p = (self.reference.len() > cfg.neighbours).then(|| {
            let raw = to_f32(self.reference.knn_at(v, at, cfg.neighbours));
            let raw_at = self.calibration.locate(raw);
            let ln_p = self.calibration.ln_tail_at(raw, raw_at);
            let ln_floor = -ln_count(1 + self.calibration.len());
            self.calibration.push_at(raw, raw_at, cfg.calibration);
            (ln_p, ln_floor)
        });
        self.reference.push_at(v, at, cfg.reference);
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
    if k <= 3 && h < 1e100 {
        // The sum directly: one logarithm instead of one per term (this runs twice per point).
        let sum = match k {
            0 | 1 => 1.0,
            2 => 1.0 + h,
            _ => 1.0 + h * (1.0 + h / 2.0),
        };
        return (-h + sum.ln()).min(0.0);
    }
    ln_fisher_terms(h, k)
}

/// [`ln_fisher`] at `h = x / 2 > 0` summed in log space: no term overflows, whatever `k`.
fn ln_fisher_terms(h: f64, k: usize) -> f64 {
    let ln_h = h.ln();
    // The terms' logs, computed twice (for their maximum, then the sum) rather than collected.
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
        // The direct sum (up to 3 terms) and the log-space sum agree, and on both sides of the switch.
        for x in [0.1, 1.0, 7.5, 40.0, 1e3, 1e6] {
            for k in 1..=3 {
                let (direct, logs) = (ln_fisher(x, k), ln_fisher_terms(x / 2.0, k));
                assert!((direct - logs).abs() <= 1e-12 * logs.abs().max(1.0), "x {x}, k {k}: {direct} vs {logs}");
            }
        }
        assert!((ln_fisher(3e100, 3) - (-1.5e100)).abs() < 1e88);
    }

    #[test]
    fn neighbours_and_tails_of_a_sliding_window() {
        let mut s = Sorted::default();
        for v in [5.0, 1.0, 3.0, 9.0] {
            s.push(v, 3); // the fourth push drops the oldest, 5
        }
        assert_eq!(s.buckets.concat(), vec![1.0, 3.0, 9.0]);
        assert!((s.knn(2.0, 2) - 1.0).abs() < 1e-9);
        assert!((s.knn(10.0, 1) - 1.0).abs() < 1e-9);
        assert!((s.ln_tail(3.0).exp() - 3.0 / 4.0).abs() < 1e-9);
        // Too few values to fit a tail: past the maximum is the floor.
        assert!((s.ln_tail(100.0).exp() - 1.0 / 4.0).abs() < 1e-9);
        // With a history, past the maximum the tail keeps falling with the distance.
        let mut h = Sorted::default();
        for v in 0..100 {
            h.push(v as f32, 100); // 0..=99: max 99, q90 89, so tau = 10
        }
        let floor = -(101f64).ln();
        assert!((h.ln_tail(99.0) - (2f64.ln() + floor)).abs() < 1e-9);
        assert!((h.ln_tail(119.0) - (floor - 2.0)).abs() < 1e-9);
    }

    /// The window checked against a brute-force copy of its last values, on streams that exercise
    /// splits, joins and emptied buckets: random values with repeats, a drifting level (old
    /// buckets drain), and long runs of one value.
    #[test]
    fn bucketed_window_answers_as_a_plain_sliding_window() {
        for (stream, cap) in [(0, 100), (1, 300), (2, 257), (0, 1000)] {
            let mut s = Sorted::default();
            let mut all = Vec::new();
            let mut x = 12345u64 + stream;
            for i in 0..4000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let noise = ((x >> 40) % 200) as f32 / 4.0;
                let v = match stream {
                    0 => noise,
                    1 => noise + i as f32 / 10.0,
                    _ => (i / 500) as f32 * if i % 7 == 0 { noise } else { 1.0 },
                };
                s.push(v, cap);
                all.push(v);
                let held = s.len();
                assert_eq!(held, (i + 1).min(cap));
                let window = &all[all.len() - held..];
                let mut flat = window.to_vec();
                flat.sort_by(f32::total_cmp);
                assert_eq!(s.buckets.concat(), flat, "stream {stream} at {i}");
                assert!(s.buckets.iter().all(|b| !b.is_empty() && b.len() < 2 * BUCKET));
                assert!(s.buckets.len() <= 4 * held / BUCKET + 1, "{} buckets for {held}", s.buckets.len());
                let q = ((x >> 20) % 220) as f32 / 4.0 + if stream == 1 { i as f32 / 10.0 } else { 0.0 };
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

    #[cfg(feature = "serde")]
    #[test]
    fn a_window_round_trips_through_its_arrival_order() {
        let mut s = Sorted::default();
        for i in 0..700 {
            s.push(((i * 37) % 101) as f32, 500);
        }
        let back: Sorted = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
        assert_eq!(back.order, s.order);
        assert_eq!(back.buckets.concat(), s.buckets.concat());
        // The previous layout's state (a sorted run and pending values beside the order) still reads.
        let old: Sorted =
            serde_json::from_str(r#"{"order":[3.0,1.0,2.0],"sorted":[1.0,3.0],"pending":[2.0]}"#).expect("old");
        assert_eq!(old.buckets.concat(), vec![1.0, 2.0, 3.0]);
    }
}
