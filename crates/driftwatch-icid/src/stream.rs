//! The streaming detector: one per series, fed one point at a time (spec §5, "recommended
//! incremental form").
//!
//! # Life of a detector
//! 1. **Warm-up.** The first `warmup_windows × window` points are buffered. Then the scaling
//!    (per-column min and max of the buffer), the kernel of every psi candidate (centres drawn
//!    from the buffer) and psi itself (lowest approximate entropy of the buffer's window scores,
//!    exactly as the offline method) are fixed, and the threshold history is seeded with the
//!    buffer's window scores. So is the temporal context: the pattern width of the buffer (the
//!    autocorrelation's first peak, [`crate::embed::pattern_width`], at most a quarter window);
//!    above 1 the kernel sees each point as the PAA of the subsequence ending at it
//!    ([`crate::embed`]), so changes of shape or rhythm with the same values separate, as in the
//!    `auto` batch method.
//! 2. **Running.** Points are scaled with the warm-up scaling (and embedded) and appended to the
//!    current window. Every `hop` points the window of the last `window` points is scored against the
//!    `window` points before it: `1 − cos` of their cell histograms. Above the threshold
//!    (`mean + alpha·std` of a bounded history of recent scores) an interval opens or extends;
//!    the first score at or below it closes the interval, with an explanation.
//!
//! # Cost per point
//! A histogram is computed when its block of points is complete, with the batch kernels: in 1-D
//! each partitioning's cell counts are vectorised compare-and-counts against its sorted
//! thresholds (psi/16 vector compares per point and partitioning), for d > 1 the SIMD
//! nearest-centre kernel runs across the block's points. That is the per-point work of one
//! nearest-centre lookup per partitioning and an O(t) count update, done a block at a time so
//! the vector units see many points at once. Scoring adds `t·psi/hop` multiply-adds per point.
//!
//! # Invariants
//! * Feeding points one by one gives exactly the scores and events of the straightforward batch
//!   computation over the same points with the same kernel, scaling and threshold rule
//!   (`tests/stream_equivalence.rs`).
//! * The state is bounded: its size depends on `t`, psi, `window`, `hop` and the history length,
//!   never on how many points have been seen ([`StreamDetector::state_bytes`]).
//! * With the `serde` feature the state round-trips bit-exactly; it carries
//!   [`STATE_VERSION`], and a state of another version is refused with the reason, so the caller
//!   re-warms the detector.

use std::collections::VecDeque;

use crate::anomaly::{AnomalyConfig, AnomalyScorer};
use crate::apen::approximate_entropy_default;
use crate::kernel::{IsolationKernel, NearestPath};
use crate::offline::{Params, lowest_apen, normalise, score_candidate};
use crate::scale::{column_range, scale_one, to_f32};
use crate::score::histogram;
use crate::{IcidError, Layout, Scaled, Windows};

/// Version of the serialised detector state.
pub const STATE_VERSION: u32 = 2;

/// The psi candidates a streaming detector chooses from by default: the paper's six less 32 and
/// 64. A univariate detector's state is dominated by its kernel, `t·psi` exact f32 thresholds
/// plus `t·psi` centres and one window histogram; measured at t = 200, w = 50 (`driftwatch
/// bench engine`): 9 KB at psi 2, 40 KB at 16, 75 KB at 32 and 145 KB at 64, so only
/// psi ≤ 16 keeps 100,000 series under 7 GB (64 KB each). Configure `PsiPolicy::AtWarmup`
/// with 32 and 64 to let them compete; the offline method always scores all six.
pub const STREAM_PSI_CANDIDATES: [usize; 4] = [2, 4, 8, 16];

/// How psi is chosen in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PsiPolicy {
    /// This psi, always.
    Fixed(usize),
    /// Chosen once at the end of warm-up by lowest approximate entropy (the default, over the
    /// paper's six candidates).
    AtWarmup(Vec<usize>),
    /// Every candidate is scored on every window; every `every` windows the one whose last
    /// `history` scores have the lowest approximate entropy becomes the active one.
    Online {
        /// Candidates.
        candidates: Vec<usize>,
        /// Recent scores per candidate that the choice looks at.
        history: usize,
        /// Windows between choices.
        every: usize,
    },
}

/// When the kernel is rebuilt from recent data.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Refresh {
    /// Never: the warm-up kernel stays.
    Never,
    /// After this many scored windows.
    EveryWindows(usize),
    /// When, for `windows` windows in a row, more than `share` of a window's values fall
    /// outside the warm-up range (the reference no longer represents the stream).
    OnDrift {
        /// Share of out-of-range values that counts as drift.
        share: f64,
        /// Consecutive drifting windows before the refresh.
        windows: usize,
    },
}

/// Configuration of a [`StreamDetector`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StreamConfig {
    /// Points per window.
    pub window: usize,
    /// Points between scores: `window` for non-overlapping windows, or a divisor of `window`
    /// to score (and report) sooner.
    pub hop: usize,
    /// Threshold multiplier.
    pub alpha: f64,
    /// Partitionings.
    pub t: usize,
    /// psi policy.
    pub psi: PsiPolicy,
    /// Windows buffered before detection starts (at least 2).
    pub warmup_windows: usize,
    /// Scores kept for the threshold.
    pub history: usize,
    /// Kernel refresh policy.
    pub refresh: Refresh,
    /// A gap longer than this many median sampling intervals ends the current window; `None`
    /// disables gap handling.
    pub max_gap_factor: Option<f64>,
    /// Compute a point anomaly score for every point ([`crate::anomaly`]).
    pub anomaly: bool,
    /// Settings of the anomaly score.
    #[cfg_attr(feature = "serde", serde(default))]
    pub anomaly_config: AnomalyConfig,
    /// Attach an explanation to every closed interval.
    pub explain: bool,
    /// Seed of the partitionings.
    pub seed: u64,
    /// Nearest-centre implementation.
    pub path: NearestPath,
    /// Record every completed block in an outbox for [`StreamDetector::drain_blocks`] (the
    /// service stores window and anomaly scores from it). Off by default: nothing is kept.
    #[cfg_attr(feature = "serde", serde(default))]
    pub collect_blocks: bool,
}

impl StreamConfig {
    /// The service's defaults for a window length: non-overlapping windows, alpha 2, t = 200,
    /// psi chosen at warm-up over [`STREAM_PSI_CANDIDATES`], warm-up of 500 points (at least 2
    /// windows), a 256-score history,
    /// no refresh, gaps over 5 median intervals, anomaly scores and explanations on.
    pub fn new(window: usize) -> Self {
        Self {
            window,
            hop: window,
            alpha: 2.0,
            t: crate::offline::DEFAULT_T,
            psi: PsiPolicy::AtWarmup(STREAM_PSI_CANDIDATES.to_vec()),
            warmup_windows: (500 / window.max(1)).max(2),
            history: 256,
            refresh: Refresh::Never,
            max_gap_factor: Some(5.0),
            anomaly: true,
            anomaly_config: AnomalyConfig::default(),
            explain: true,
            seed: 0,
            path: NearestPath::Auto,
            collect_blocks: false,
        }
    }

    fn validate(&self) -> Result<(), IcidError> {
        if self.window < 2 {
            return Err(IcidError::param("window", "must be at least 2"));
        }
        if self.window > u16::MAX as usize {
            return Err(IcidError::param("window", "must be at most 65535"));
        }
        if self.hop == 0 || !self.window.is_multiple_of(self.hop) {
            return Err(IcidError::param("hop", format!("must divide the window ({})", self.window)));
        }
        if self.warmup_windows < 2 {
            return Err(IcidError::param("warmup_windows", "must be at least 2"));
        }
        if self.history < 2 {
            return Err(IcidError::param("history", "must be at least 2"));
        }
        if !self.alpha.is_finite() {
            return Err(IcidError::param("alpha", "must be a finite number"));
        }
        match self.refresh {
            Refresh::EveryWindows(0) => return Err(IcidError::param("refresh", "every 0 windows")),
            Refresh::OnDrift { share, windows } if windows == 0 || !(0.0..1.0).contains(&share) => {
                return Err(IcidError::param("refresh", "drift needs windows >= 1 and 0 <= share < 1"));
            }
            _ => {}
        }
        if let Some(k) = self.max_gap_factor
            && !(k.is_finite() && k > 1.0)
        {
            return Err(IcidError::param("max_gap_factor", "must be a number above 1"));
        }
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(IcidError::param("psi", "no candidates given"));
        }
        if let Some(&p) = candidates.iter().find(|&&p| p == 0 || p > crate::kernel::MAX_PSI) {
            return Err(IcidError::param("psi", format!("must be between 1 and {}, got {p}", crate::kernel::MAX_PSI)));
        }
        if self.t == 0 {
            return Err(IcidError::param("t", "must be at least 1"));
        }
        if self.anomaly {
            self.anomaly_config.validate()?;
        }
        Ok(())
    }

    fn candidates(&self) -> Vec<usize> {
        match &self.psi {
            PsiPolicy::Fixed(p) => vec![*p],
            PsiPolicy::AtWarmup(c) => c.clone(),
            PsiPolicy::Online { candidates, .. } => candidates.clone(),
        }
    }

    fn warmup_len(&self) -> usize {
        self.warmup_windows * self.window
    }
}

/// Summary statistics of some rows, per dimension.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Summary {
    /// Rows summarised.
    pub count: u64,
    /// Mean per dimension.
    pub mean: Vec<f64>,
    /// Sample standard deviation per dimension.
    pub std: Vec<f64>,
    /// Minimum, 25th percentile, median, 75th percentile and maximum per dimension
    /// (percentiles of at most 512 evenly thinned rows).
    pub quantiles: Vec<[f64; 5]>,
}

/// Why an interval was flagged, in terms a user can read.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Explanation {
    /// The window before the interval.
    pub before: Summary,
    /// The interval.
    pub during: Summary,
    /// Share of the change each dimension carries: its two-sample Kolmogorov–Smirnov statistic
    /// (before vs during), normalised to sum to 1 (`[1.0]` in one dimension).
    pub contributions: Vec<f64>,
}

/// A change interval that has ended.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClosedInterval {
    /// First point index (0-based, counting accepted points).
    pub start: u64,
    /// One past the last point index.
    pub end: u64,
    /// Timestamp of the first point.
    pub start_ts: i64,
    /// Timestamp of the last point.
    pub end_ts: i64,
    /// Highest window score inside.
    pub peak_score: f64,
    /// Point index at which the interval was first reported.
    pub detected_at: u64,
    /// The change itself, placed to the point: the first point of the new regime, found by the
    /// best split of the flagged window and the two windows before it in the kernel's feature
    /// space ([`crate::segment::refine_change`]). Inside `[start − 2·window, end)`.
    pub change_point: u64,
    /// Timestamp of `change_point`.
    pub change_ts: i64,
    /// Why, when explanations are on.
    pub explanation: Option<Explanation>,
}

/// What a detector reports.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Event {
    /// Warm-up finished: detection starts with this psi and threshold.
    WarmedUp {
        /// Points seen.
        at: u64,
        /// psi in use.
        psi: usize,
        /// Threshold in use.
        threshold: f64,
    },
    /// A window scored above the threshold and no interval was open.
    Opened {
        /// First point of the flagged window.
        start: u64,
        /// Its timestamp.
        start_ts: i64,
        /// The change placed to the point (see [`ClosedInterval::change_point`]).
        change_point: u64,
        /// Its timestamp.
        change_ts: i64,
        /// Point index at which this is reported (detection delay = `detected_at − start`).
        detected_at: u64,
        /// The window's score.
        score: f64,
        /// The threshold it crossed.
        threshold: f64,
    },
    /// A further window scored above the threshold.
    Extended {
        /// Start of the open interval.
        start: u64,
        /// New end (exclusive).
        end: u64,
        /// The window's score.
        score: f64,
    },
    /// The interval ended: a window scored at or below the threshold, a gap or a refresh.
    Closed(ClosedInterval),
    /// The sampling gap before the point at `at` was longer than `max_gap_factor` median
    /// intervals: the window in progress was scored early or dropped.
    Gap {
        /// Index of the first point after the gap.
        at: u64,
        /// Timestamp before the gap.
        from_ts: i64,
        /// Timestamp after the gap.
        to_ts: i64,
        /// Points of the unfinished block that were dropped (fewer than half a hop).
        dropped: usize,
    },
    /// The kernel was rebuilt from recent data.
    Refreshed {
        /// Points seen.
        at: u64,
        /// Why.
        reason: String,
    },
}

/// Counters of what the detector did with its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StreamStats {
    /// Points accepted.
    pub points: u64,
    /// Points refused: a value not finite or the wrong number of values.
    pub invalid: u64,
    /// Points refused: timestamp at or before the last accepted one.
    pub late: u64,
    /// Windows scored.
    pub windows: u64,
    /// Gaps handled.
    pub gaps: u64,
    /// Kernel refreshes.
    pub refreshes: u64,
    /// Times warm-up started again because every value in it was identical.
    pub warmup_extensions: u64,
}

/// One completed block, as recorded when [`StreamConfig::collect_blocks`] is on.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BlockScore {
    /// Stream index of the block's first point.
    pub first_index: u64,
    /// Points in the block.
    pub rows: usize,
    /// Timestamp of the block's last point.
    pub end_ts: i64,
    /// Score of the window ending with this block (`None` while a window after a gap fills).
    pub score: Option<f64>,
    /// The threshold the score was judged by.
    pub threshold: Option<f64>,
    /// Anomaly score of each point of the block (empty when anomaly scores are off).
    pub anomaly: Vec<f32>,
    /// Whether some of these anomaly scores were given while the score was still warming up
    /// (they are 0 and mean nothing), or the block precedes the end of the detector's warm-up
    /// (no window score yet).
    #[cfg_attr(feature = "serde", serde(default))]
    pub warming_up: bool,
}

/// What [`StreamDetector::push`] did with one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pushed {
    /// Accepted (during warm-up, or its score is not known until its window completes).
    Accepted,
    /// Refused: the timestamp is at or before the last accepted one.
    Late,
    /// Refused: a value is not finite, or the point has the wrong dimension.
    Invalid,
}

/// A psi candidate being tracked.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Track {
    psi: usize,
    #[cfg_attr(feature = "serde", serde(with = "kernel_repr"))]
    kernel: IsolationKernel,
    /// Histograms of the last `2·window/hop − 1` hop blocks, oldest first: with the block being
    /// completed they make the two windows a score compares (u16: a block has at most 65535
    /// rows). Non-overlapping windows keep just one: the previous window.
    blocks: VecDeque<Vec<u16>>,
    /// Recent window scores, oldest first (bounded by `history`).
    scores: VecDeque<f64>,
}

#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct OpenInterval {
    start: u64,
    start_ts: i64,
    change_point: u64,
    change_ts: i64,
    end: u64,
    end_ts: i64,
    peak: f64,
    detected_at: u64,
    /// Raw rows of the window before the interval (explanations on).
    before_rows: Option<Vec<f64>>,
    during: Option<Accumulator>,
}

/// Running statistics of the rows of an open interval: exact moments, and rows thinned evenly
/// to at most `SAMPLE_MAX` for quantiles.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Accumulator {
    d: usize,
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    sample: Vec<f64>,
    stride: u64,
}

const SAMPLE_MAX: usize = 512;

impl Accumulator {
    fn new(d: usize) -> Self {
        Self { d, count: 0, mean: vec![0.0; d], m2: vec![0.0; d], sample: Vec::new(), stride: 1 }
    }

    fn add(&mut self, row: &[f64]) {
        self.count += 1;
        let n = self.count as f64;
        for ((&v, mean), m2) in row.iter().zip(&mut self.mean).zip(&mut self.m2) {
            let delta = v - *mean;
            if delta.is_finite() {
                *mean += delta / n;
                // Saturates for values beyond about 1e154 (their squares overflow): the state is
                // checkpointed as JSON, which has no infinity.
                *m2 = (*m2 + delta * (v - *mean)).min(f64::MAX);
            } else {
                // v and the mean lie more than f64::MAX apart.
                *mean += v / n - *mean / n;
                *m2 = f64::MAX;
            }
        }
        if (self.count - 1).is_multiple_of(self.stride) {
            self.sample.extend_from_slice(row);
            if self.sample.len() / self.d > SAMPLE_MAX {
                // Keep every other kept row; from now on keep every 2·stride-th row.
                let d = self.d;
                let kept: Vec<f64> = self.sample.chunks_exact(d).step_by(2).flatten().copied().collect();
                self.sample = kept;
                self.stride *= 2;
            }
        }
    }

    fn summary(&self) -> Summary {
        let std =
            self.m2.iter().map(|m| if self.count > 1 { (m / (self.count - 1) as f64).sqrt() } else { 0.0 }).collect();
        Summary { count: self.count, mean: self.mean.clone(), std, quantiles: quantiles(&self.sample, self.d) }
    }
}

fn summarise(rows: &[f64], d: usize) -> Summary {
    let mut acc = Accumulator::new(d);
    for r in rows.chunks_exact(d) {
        acc.add(r);
    }
    acc.summary()
}

fn quantiles(rows: &[f64], d: usize) -> Vec<[f64; 5]> {
    (0..d)
        .map(|j| {
            let mut col: Vec<f64> = rows.chunks_exact(d).map(|r| r[j]).collect();
            col.sort_by(f64::total_cmp);
            if col.is_empty() {
                return [f64::NAN; 5];
            }
            let at = |q: f64| col[((col.len() - 1) as f64 * q).round() as usize];
            [col[0], at(0.25), at(0.5), at(0.75), col[col.len() - 1]]
        })
        .collect()
}

/// Two-sample Kolmogorov–Smirnov statistic of column `j`.
fn ks(a: &[f64], b: &[f64], d: usize, j: usize) -> f64 {
    let mut x: Vec<f64> = a.chunks_exact(d).map(|r| r[j]).collect();
    let mut y: Vec<f64> = b.chunks_exact(d).map(|r| r[j]).collect();
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let (mut i, mut k, mut best) = (0, 0, 0.0f64);
    while i < x.len() && k < y.len() {
        let v = x[i].min(y[k]);
        while i < x.len() && x[i] <= v {
            i += 1;
        }
        while k < y.len() && y[k] <= v {
            k += 1;
        }
        best = best.max((i as f64 / x.len() as f64 - k as f64 / y.len() as f64).abs());
    }
    best
}

#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Running {
    lo: Vec<f64>,
    span: Vec<f64>,
    tracks: Vec<Track>,
    active: usize,
    /// Raw rows of the hop block in progress, and their scaled copies.
    block_raw: Vec<f64>,
    block_scaled: Vec<f32>,
    block_start: u64,
    block_ts: Vec<i64>,
    /// Raw rows of the last `2·window` points before the block in progress (explanations).
    recent_raw: VecDeque<f64>,
    /// Timestamps matching `recent_raw`'s rows.
    recent_ts: VecDeque<i64>,
    open: Option<OpenInterval>,
    windows_since_select: usize,
    windows_since_refresh: usize,
    drifting_windows: usize,
    out_of_range_in_block: usize,
    /// Anomaly scores of the points of the last completed block.
    last_anomaly: Vec<f32>,
    /// Pattern width of the warm-up (the autocorrelation's first peak, at most a quarter
    /// window): the scale at which a change point is placed.
    #[cfg_attr(feature = "serde", serde(default = "one"))]
    width: usize,
    /// Width of the subsequences the kernel sees (1: single rows): the pattern width, so that
    /// changes of shape or rhythm with the same values separate (see [`crate::embed`]). A state
    /// written before this field kept single rows, and keeps them.
    #[cfg_attr(feature = "serde", serde(default = "one"))]
    embed: usize,
    /// The last `embed − 1` scaled rows before the block's newest, for the next subsequence.
    #[cfg_attr(feature = "serde", serde(default))]
    tail: VecDeque<f32>,
    /// Blocks completed since the last gap (saturating). After a gap the windows start again:
    /// nothing is scored until a whole window of points after the gap is in, and that window is
    /// compared with the window before the gap.
    since_gap: usize,
}

#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum Phase {
    WarmingUp { raw: Vec<f64>, ts: Vec<i64> },
    Running(Box<Running>),
}

/// The streaming iCID detector of one series.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StreamDetector {
    version: u32,
    cfg: StreamConfig,
    d: usize,
    phase: Phase,
    stats: StreamStats,
    last_ts: Option<i64>,
    /// Recent sampling intervals (bounded) and their cached median.
    deltas: VecDeque<i64>,
    median_delta: Option<i64>,
    /// The last `warmup_len` rows and timestamps, kept only when a refresh policy is set.
    refresh_raw: VecDeque<f64>,
    refresh_ts: VecDeque<i64>,
    /// Points counted in `stats.points` but not yet in any block (the point after a gap while
    /// the gap is handled).
    #[cfg_attr(feature = "serde", serde(skip))]
    pending: u64,
    /// Completed blocks not yet drained (only with `collect_blocks`).
    #[cfg_attr(feature = "serde", serde(skip))]
    outbox: Vec<BlockScore>,
    /// The point anomaly scorer (anomaly scores on). It lives beside the change detector's
    /// phases: it keeps scoring through warm-ups, refreshes and gaps.
    scorer: Option<AnomalyScorer>,
    /// Anomaly scores of the points not yet in an emitted block, with the first one's index,
    /// the last one's timestamp and whether any of them is a warm-up placeholder.
    pending_scores: PendingScores,
}

#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct PendingScores {
    scores: Vec<f32>,
    first: u64,
    last_ts: i64,
    warming_up: bool,
}

impl PendingScores {
    fn push(&mut self, index: u64, ts: i64, score: f32, warming_up: bool) {
        if self.scores.is_empty() {
            self.first = index;
            self.warming_up = false;
        }
        self.scores.push(score);
        self.last_ts = ts;
        self.warming_up |= warming_up;
    }

    /// The pending scores as a block without a window score (warm-up, or points a gap dropped).
    fn take_block(&mut self) -> Option<BlockScore> {
        (!self.scores.is_empty()).then(|| BlockScore {
            first_index: self.first,
            rows: self.scores.len(),
            end_ts: self.last_ts,
            score: None,
            threshold: None,
            anomaly: std::mem::take(&mut self.scores),
            warming_up: self.warming_up,
        })
    }
}

const DELTAS_KEPT: usize = 32;

#[cfg(feature = "serde")]
fn one() -> usize {
    1
}

impl StreamDetector {
    /// A detector for a series of `d` values per point.
    ///
    /// # Errors
    /// [`IcidError::Param`] for a configuration out of range.
    pub fn new(cfg: StreamConfig, d: usize) -> Result<Self, IcidError> {
        cfg.validate()?;
        if d == 0 {
            return Err(IcidError::param("d", "must be at least 1"));
        }
        let scorer = if cfg.anomaly { Some(AnomalyScorer::new(cfg.anomaly_config.clone(), d)?) } else { None };
        Ok(Self {
            version: STATE_VERSION,
            cfg,
            d,
            phase: Phase::WarmingUp { raw: Vec::new(), ts: Vec::new() },
            stats: StreamStats::default(),
            last_ts: None,
            deltas: VecDeque::new(),
            median_delta: None,
            refresh_raw: VecDeque::new(),
            refresh_ts: VecDeque::new(),
            pending: 0,
            outbox: Vec::new(),
            scorer,
            pending_scores: PendingScores::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// Values per point.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// What happened to the input so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Whether warm-up is still in progress.
    pub fn warming_up(&self) -> bool {
        matches!(self.phase, Phase::WarmingUp { .. })
    }

    /// psi in use (after warm-up).
    pub fn psi(&self) -> Option<usize> {
        match &self.phase {
            Phase::Running(r) => Some(r.tracks[r.active].psi),
            Phase::WarmingUp { .. } => None,
        }
    }

    /// The current threshold (after warm-up).
    pub fn threshold(&self) -> Option<f64> {
        match &self.phase {
            Phase::Running(r) => Some(threshold(&r.tracks[r.active].scores, self.cfg.alpha)),
            Phase::WarmingUp { .. } => None,
        }
    }

    /// The most recent window score of the active psi (after warm-up; before the first scored
    /// window, the last warm-up score).
    pub fn last_window_score(&self) -> Option<f64> {
        match &self.phase {
            Phase::Running(r) => r.tracks[r.active].scores.back().copied(),
            Phase::WarmingUp { .. } => None,
        }
    }

    /// Width of the subsequences the kernel sees, chosen at warm-up from the autocorrelation
    /// (1: single rows; after warm-up).
    pub fn embed_width(&self) -> Option<usize> {
        match &self.phase {
            Phase::Running(r) => Some(r.embed),
            Phase::WarmingUp { .. } => None,
        }
    }

    /// The active kernel and the warm-up scaling `(lo, span)` (after warm-up). With an
    /// [`StreamDetector::embed_width`] above 1 the kernel's rows are subsequence embeddings of
    /// the scaled rows ([`crate::embed::embed`]).
    pub fn kernel(&self) -> Option<(&IsolationKernel, &[f64], &[f64])> {
        match &self.phase {
            Phase::Running(r) => Some((&r.tracks[r.active].kernel, &r.lo, &r.span)),
            Phase::WarmingUp { .. } => None,
        }
    }

    /// Anomaly scores (in [0, 1], higher = more anomalous) of the points of the last completed
    /// block, oldest first; empty when anomaly scores are off or nothing is complete yet.
    pub fn last_anomaly_scores(&self) -> &[f32] {
        match &self.phase {
            Phase::Running(r) => &r.last_anomaly,
            Phase::WarmingUp { .. } => &[],
        }
    }

    /// Anomaly scores of the points not yet in a completed block (the block in progress), oldest
    /// first, and whether any of them is a warm-up placeholder. At the end of a stream these are
    /// the last points' scores.
    pub fn pending_anomaly_scores(&self) -> (&[f32], bool) {
        (&self.pending_scores.scores, self.pending_scores.warming_up)
    }

    /// Runs the nearest-centre search on `path` from now on (results do not depend on it: see
    /// [`crate::kernel`]); a service applies its own SIMD setting to restored detectors with it.
    pub fn set_path(&mut self, path: NearestPath) {
        self.cfg.path = path;
    }

    /// Turns the completed-block outbox on or off (a restored detector keeps its configuration
    /// otherwise).
    pub fn set_collect_blocks(&mut self, on: bool) {
        self.cfg.collect_blocks = on;
        if !on {
            self.outbox.clear();
        }
    }

    /// Takes the completed blocks recorded since the last call (with `collect_blocks`).
    pub fn drain_blocks(&mut self) -> Vec<BlockScore> {
        std::mem::take(&mut self.outbox)
    }

    /// The interval open right now, as it stands (end and peak so far; no explanation yet).
    pub fn open_interval(&self) -> Option<ClosedInterval> {
        let Phase::Running(r) = &self.phase else { return None };
        r.open.as_ref().map(|o| ClosedInterval {
            start: o.start,
            end: o.end,
            start_ts: o.start_ts,
            end_ts: o.end_ts,
            peak_score: o.peak,
            detected_at: o.detected_at,
            change_point: o.change_point,
            change_ts: o.change_ts,
            explanation: None,
        })
    }

    /// Timestamp of the last accepted point.
    pub fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// Bytes of heap and inline state this detector holds now. Bounded: it depends on the
    /// configuration, not on the number of points seen.
    pub fn state_bytes(&self) -> usize {
        let f64s = |v: &VecDeque<f64>| v.capacity() * 8;
        let base = std::mem::size_of::<Self>()
            + self.deltas.capacity() * 8
            + f64s(&self.refresh_raw)
            + self.refresh_ts.capacity() * 8
            + self.scorer.as_ref().map_or(0, AnomalyScorer::state_bytes)
            + self.pending_scores.scores.capacity() * 4;
        base + match &self.phase {
            Phase::WarmingUp { raw, ts } => raw.capacity() * 8 + ts.capacity() * 8,
            Phase::Running(r) => {
                std::mem::size_of::<Running>()
                    + (r.lo.capacity() + r.span.capacity() + r.block_raw.capacity()) * 8
                    + (r.block_scaled.capacity() + r.tail.capacity()) * 4
                    + r.block_ts.capacity() * 8
                    + f64s(&r.recent_raw)
                    + r.recent_ts.capacity() * 8
                    + r.last_anomaly.capacity() * 4
                    + r.open.as_ref().map_or(0, |o| {
                        o.during.as_ref().map_or(0, |a| a.sample.capacity() * 8 + a.d * 16)
                            + o.before_rows.as_ref().map_or(0, |v| v.capacity() * 8)
                    })
                    + r.tracks
                        .iter()
                        .map(|t| {
                            std::mem::size_of::<Track>()
                                + t.kernel.heap_bytes()
                                + t.blocks.iter().map(|b| b.capacity() * 2 + 24).sum::<usize>()
                                + t.scores.capacity() * 8
                        })
                        .sum::<usize>()
            }
        }
    }

    /// Feeds one point (`values.len() == d`) with its timestamp; events go to `events`.
    pub fn push(&mut self, ts: i64, values: &[f64], events: &mut Vec<Event>) -> Pushed {
        if values.len() != self.d || values.iter().any(|v| !v.is_finite()) {
            self.stats.invalid += 1;
            return Pushed::Invalid;
        }
        if self.last_ts.is_some_and(|last| ts <= last) {
            self.stats.late += 1;
            return Pushed::Late;
        }
        let gap = self.observe_interval(ts);
        self.last_ts = Some(ts);
        let index = self.stats.points;
        self.stats.points += 1;
        // A gap is handled before this point is recorded anywhere: it may complete the block in
        // progress and so trigger a refresh, which must not see this point yet.
        if let (Some(from_ts), Phase::Running(_)) = (gap, &self.phase) {
            self.pending = 1; // this point is not part of any block yet
            self.handle_gap(index, from_ts, ts, events);
            self.pending = 0;
        }
        if let Some(scorer) = &mut self.scorer {
            let s = scorer.push(values);
            self.pending_scores.push(index, ts, s.score, s.warming_up);
        }
        if self.cfg.refresh != Refresh::Never {
            self.refresh_raw.extend(values.iter().copied());
            self.refresh_ts.push_back(ts);
            while self.refresh_ts.len() > self.cfg.warmup_len() {
                self.refresh_ts.pop_front();
                for _ in 0..self.d {
                    self.refresh_raw.pop_front();
                }
            }
        }
        match &mut self.phase {
            Phase::WarmingUp { raw, ts: tss } => {
                raw.extend_from_slice(values);
                tss.push(ts);
                if self.pending_scores.scores.len() >= self.cfg.hop
                    && let Some(b) = self.pending_scores.take_block()
                    && self.cfg.collect_blocks
                {
                    self.outbox.push(b);
                }
                if tss.len() == self.cfg.warmup_len() {
                    let (_, span) = column_range(raw, self.d);
                    if span.iter().all(|&s| s == 0.0) {
                        // Every value so far is the same: there is no reference to compare with
                        // yet. Start the warm-up again from the last window, so the reference
                        // is built from data that vary rather than mostly from the constant run.
                        let keep = self.cfg.window;
                        let cut = tss.len() - keep;
                        raw.drain(..cut * self.d);
                        tss.drain(..cut);
                        self.stats.warmup_extensions += 1;
                    } else {
                        let (raw, tss) = (std::mem::take(raw), std::mem::take(tss));
                        // The configuration was validated and the data are finite: warm-up cannot fail.
                        self.finish_warmup(&raw, &tss, events).expect("warm-up on validated input");
                    }
                }
            }
            Phase::Running(_) => self.push_running(index, ts, values, events),
        }
        Pushed::Accepted
    }

    /// Records the interval since the last point; returns the previous timestamp when this
    /// interval is a gap.
    fn observe_interval(&mut self, ts: i64) -> Option<i64> {
        let last = self.last_ts?;
        let delta = ts.saturating_sub(last);
        let gap = match (self.cfg.max_gap_factor, self.median_delta) {
            (Some(k), Some(m)) if m > 0 && (delta as f64) > k * m as f64 => Some(last),
            _ => None,
        };
        // Gap intervals count too: the median of 32 ignores an isolated outage, and a lasting
        // slower rate becomes the new median within about 16 points instead of turning every
        // later interval into a gap.
        self.deltas.push_back(delta);
        if self.deltas.len() > DELTAS_KEPT {
            self.deltas.pop_front();
        }
        if self.deltas.len() >= 8
            && (self.median_delta.is_none() || gap.is_some() || self.stats.points.is_multiple_of(DELTAS_KEPT as u64))
        {
            let mut v: Vec<i64> = self.deltas.iter().copied().collect();
            v.sort_unstable();
            self.median_delta = Some(v[v.len() / 2]);
        }
        gap
    }

    fn finish_warmup(&mut self, raw: &[f64], ts: &[i64], events: &mut Vec<Event>) -> Result<(), IcidError> {
        let d = self.d;
        let n = ts.len();
        let (lo, span) = column_range(raw, d);
        let rows = Scaled { values: scale_rows(raw, &lo, &span), n, d };
        let w = self.cfg.window;
        let per_window = w / self.cfg.hop;
        let width = crate::embed::pattern_width(raw, d).width.clamp(1, (w / 4).max(1));
        // The kernel sees subsequences of the pattern width; the warm-up must still seed the
        // block ring after the first `width − 1` rows are used up.
        let embed_width = width.min(n + 1 - (2 * per_window - 1) * self.cfg.hop).max(1);
        let tail: VecDeque<f32> = rows.values[(n + 1 - embed_width) * d..].iter().copied().collect();
        let scaled = crate::embed::embed(&rows, embed_width);
        // The kernel's rows: `width − 1` fewer than the points, `kd` columns each.
        let (rows_e, kd) = (scaled.n, scaled.d);
        let windows = Windows::new(rows_e, w, Layout::HalfOpen)?;
        let candidates = self.cfg.candidates();
        let params = Params {
            window: w,
            alpha: self.cfg.alpha,
            t: self.cfg.t,
            psi: crate::PsiChoice::Auto(candidates.clone()),
            seed: self.cfg.seed,
            layout: Layout::HalfOpen,
            path: self.cfg.path,
        };
        let with_apen = !matches!(self.cfg.psi, PsiPolicy::Fixed(_));
        let scored = candidates
            .iter()
            .map(|&psi| score_candidate(&scaled, &windows, psi, &params, with_apen, true))
            .collect::<Result<Vec<_>, _>>()?;
        let chosen = lowest_apen(&scored);
        // Only the online policy keeps scoring every candidate; otherwise the chosen one stays.
        let keep_all = matches!(self.cfg.psi, PsiPolicy::Online { .. });
        let active = if keep_all { chosen } else { 0 };
        let tracks = scored
            .into_iter()
            .zip(&candidates)
            .enumerate()
            .filter(|(i, _)| keep_all || *i == chosen)
            .map(|(_, (s, _))| (s.psi_used, s))
            .map(|(psi, s)| {
                let mut blocks = VecDeque::new();
                // Seed the block ring with the warm-up's last `2·per_window − 1` blocks.
                let first = rows_e - (2 * per_window - 1) * self.cfg.hop;
                for b in 0..2 * per_window - 1 {
                    let r0 = first + b * self.cfg.hop;
                    let rows = Scaled {
                        values: scaled.values[r0 * kd..(r0 + self.cfg.hop) * kd].to_vec(),
                        n: self.cfg.hop,
                        d: kd,
                    };
                    let mut h = vec![0u16; s.kernel.t() * s.kernel.psi()];
                    histogram(&s.kernel, &rows, self.cfg.path, &mut h);
                    blocks.push_back(h);
                }
                let mut scores: VecDeque<f64> = s.window_scores[1..].iter().copied().collect();
                while scores.len() > self.cfg.history {
                    scores.pop_front();
                }
                Track { psi, kernel: s.kernel, blocks, scores }
            })
            .collect::<Vec<_>>();
        let at = self.stats.points - self.pending;
        let recent_raw: VecDeque<f64> = raw[(n - 2 * w) * d..].iter().copied().collect();
        let recent_ts: VecDeque<i64> = ts[n - 2 * w..].iter().copied().collect();
        let running = Running {
            lo,
            span,
            tracks,
            active,
            block_raw: Vec::with_capacity(self.cfg.hop * d),
            block_scaled: Vec::with_capacity(self.cfg.hop * kd),
            block_start: at,
            block_ts: Vec::with_capacity(self.cfg.hop),
            recent_raw,
            recent_ts,
            open: None,
            windows_since_select: 0,
            windows_since_refresh: 0,
            drifting_windows: 0,
            out_of_range_in_block: 0,
            last_anomaly: Vec::new(),
            width,
            embed: embed_width,
            tail,
            since_gap: usize::MAX,
        };
        // Scores of warm-up points not yet in a block go out as a block of their own: the first
        // running block starts with the next point.
        if let Some(b) = self.pending_scores.take_block()
            && self.cfg.collect_blocks
        {
            self.outbox.push(b);
        }
        let thr = threshold(&running.tracks[active].scores, self.cfg.alpha);
        events.push(Event::WarmedUp { at, psi: running.tracks[active].psi, threshold: thr });
        self.phase = Phase::Running(Box::new(running));
        Ok(())
    }

    fn handle_gap(&mut self, at: u64, from_ts: i64, to_ts: i64, events: &mut Vec<Event>) {
        self.stats.gaps += 1;
        let Phase::Running(r) = &mut self.phase else { return };
        let have = r.block_ts.len();
        let dropped = if have == 0 {
            0
        } else if 2 * have >= self.cfg.hop {
            // Score the partial block as if it were complete.
            self.complete_block(events);
            0
        } else {
            let Phase::Running(r) = &mut self.phase else { return };
            r.block_raw.clear();
            r.block_scaled.clear();
            r.block_ts.clear();
            r.out_of_range_in_block = 0;
            // The dropped points keep their anomaly scores, in a block without a window score.
            if let Some(b) = self.pending_scores.take_block()
                && self.cfg.collect_blocks
            {
                self.outbox.push(b);
            }
            have
        };
        // The data after a gap is not continuous with the window before it: close any open
        // interval at the gap.
        if let Phase::Running(r) = &mut self.phase
            && let Some(open) = r.open.take()
        {
            events.push(Event::Closed(close_interval(open, self.d)));
        }
        if let Phase::Running(r) = &mut self.phase {
            r.block_start = at;
            r.since_gap = 0;
        }
        events.push(Event::Gap { at, from_ts, to_ts, dropped });
    }

    fn push_running(&mut self, index: u64, ts: i64, values: &[f64], events: &mut Vec<Event>) {
        let Phase::Running(r) = &mut self.phase else { return };
        if r.block_ts.is_empty() {
            r.block_start = index;
        }
        r.block_raw.extend_from_slice(values);
        let mut out = false;
        let scaled = values.iter().zip(&r.lo).zip(&r.span).map(|((&v, &lo), &span)| {
            let x = scale_one(v, lo, span);
            out |= !(0.0..=1.0).contains(&x);
            to_f32(x)
        });
        if r.embed > 1 {
            // The kernel's row: the subsequence of the last `embed` rows, this one included.
            r.tail.extend(scaled);
            crate::embed::paa_row(r.tail.make_contiguous(), values.len(), &mut r.block_scaled);
            r.tail.drain(..values.len());
        } else {
            r.block_scaled.extend(scaled);
        }
        r.out_of_range_in_block += usize::from(out);
        r.block_ts.push(ts);
        if r.block_ts.len() == self.cfg.hop {
            self.complete_block(events);
        }
    }

    /// Scores the block in progress (a full block, or a partial one before a gap).
    fn complete_block(&mut self, events: &mut Vec<Event>) {
        let d = self.d;
        let cfg = &self.cfg;
        let Phase::Running(r) = &mut self.phase else { return };
        let rows = r.block_ts.len();
        let kd = crate::embed::embedded_dim(d, r.embed);
        let block = Scaled { values: std::mem::take(&mut r.block_scaled), n: rows, d: kd };
        let per_window = cfg.window / cfg.hop;
        // The block's points' anomaly scores (computed as each point came in).
        let block_warm = self.pending_scores.warming_up;
        r.last_anomaly.clear();
        r.last_anomaly.append(&mut self.pending_scores.scores);
        let window_end = r.block_start + rows as u64;
        let end_ts = *r.block_ts.last().expect("a completed block has rows");
        // Score every tracked candidate; only the active one drives events. A window is judged
        // by the threshold of the scores before it.
        let thr = threshold(&r.tracks[r.active].scores, cfg.alpha);
        r.since_gap = r.since_gap.saturating_add(1);
        let scoring = r.since_gap >= per_window;
        for t in &mut r.tracks {
            let mut fresh = vec![0u16; t.kernel.t() * t.kernel.psi()];
            histogram(&t.kernel, &block, cfg.path, &mut fresh);
            if scoring {
                let n = t.blocks.len(); // 2·per_window − 1
                let cur = sum_blocks(&t.blocks, n + 1 - per_window.., Some(&fresh));
                let prev = sum_blocks(&t.blocks, ..n + 1 - per_window, None);
                let score = cosine_score(&cur, &prev);
                drop((cur, prev));
                t.scores.push_back(score);
                if t.scores.len() > cfg.history {
                    t.scores.pop_front();
                }
            }
            t.blocks.push_back(fresh);
            t.blocks.pop_front();
        }
        if scoring && cfg.anomaly && cfg.anomaly_config.onsets && r.open.is_none() {
            // An interval opens here: the onset feeds the point score of the point that completes
            // the window, on the point score's scale: the window score's tail probability among
            // the recent window scores, as a log ratio to the smallest one they can give.
            let scores = &r.tracks[r.active].scores;
            let score = *scores.back().expect("just pushed");
            if score > thr {
                let at_least = scores.iter().filter(|&&s| s >= score).count().max(1);
                let onset = (at_least as f64 / (scores.len() + 1) as f64).ln() / (-((scores.len() + 1) as f64).ln());
                if let Some(last) = r.last_anomaly.last_mut() {
                    *last = last.max(onset.clamp(0.0, 1.0) as f32);
                }
            }
        }
        if cfg.collect_blocks {
            let score = if scoring { r.tracks[r.active].scores.back().copied() } else { None };
            self.outbox.push(BlockScore {
                first_index: r.block_start,
                rows,
                end_ts,
                score,
                threshold: scoring.then_some(thr),
                anomaly: r.last_anomaly.clone(),
                warming_up: block_warm && cfg.anomaly,
            });
        }
        if !scoring {
            // Part of the first window after a gap: keep its rows, score nothing yet.
            Self::slide_recent(r, cfg.window, d);
            r.block_scaled = block.values;
            r.block_scaled.clear();
            r.block_start = window_end;
            return;
        }
        self.stats.windows += 1;
        let score = *r.tracks[r.active].scores.back().expect("just pushed");
        // The scored window: this block and the `window − hop` points before it.
        let lead = cfg.window - cfg.hop; // points of the window before this block
        let win_start = window_end - (rows + lead) as u64;
        let recent_len = r.recent_ts.len();
        let win_start_ts = if lead == 0 { r.block_ts[0] } else { r.recent_ts[recent_len - lead] };
        if score > thr {
            match &mut r.open {
                None => {
                    let (before_rows, during) = if cfg.explain {
                        // `window` rows before the window, then the window's own rows.
                        let raw: Vec<f64> = r.recent_raw.iter().copied().collect();
                        let lead_at = raw.len() - lead * d;
                        let before_at = lead_at.saturating_sub(cfg.window * d);
                        let mut acc = Accumulator::new(d);
                        for row in raw[lead_at..].chunks_exact(d).chain(r.block_raw.chunks_exact(d)) {
                            acc.add(row);
                        }
                        (Some(raw[before_at..lead_at].to_vec()), Some(acc))
                    } else {
                        (None, None)
                    };
                    let (change_point, change_ts) = place_change(r, cfg, d, win_start, win_start_ts);
                    r.open = Some(OpenInterval {
                        start: win_start,
                        start_ts: win_start_ts,
                        change_point,
                        change_ts,
                        end: window_end,
                        end_ts,
                        peak: score,
                        detected_at: window_end,
                        before_rows,
                        during,
                    });
                    events.push(Event::Opened {
                        start: win_start,
                        start_ts: win_start_ts,
                        change_point,
                        change_ts,
                        detected_at: window_end,
                        score,
                        threshold: thr,
                    });
                }
                Some(open) => {
                    open.end = window_end;
                    open.end_ts = end_ts;
                    open.peak = open.peak.max(score);
                    if let Some(acc) = &mut open.during {
                        for row in r.block_raw.chunks_exact(d) {
                            acc.add(row);
                        }
                    }
                    events.push(Event::Extended { start: open.start, end: window_end, score });
                }
            }
        } else if let Some(open) = r.open.take() {
            events.push(Event::Closed(close_interval(open, d)));
        }
        let out_share = r.out_of_range_in_block as f64 / rows as f64;
        Self::slide_recent(r, cfg.window, d);
        let mut block_values = block.values;
        block_values.clear();
        r.block_scaled = block_values;
        r.block_start = window_end;
        // psi re-selection.
        if let PsiPolicy::Online { history, every, .. } = &cfg.psi {
            r.windows_since_select += 1;
            if r.windows_since_select >= *every {
                r.windows_since_select = 0;
                r.active = select_online(&r.tracks, *history, cfg.window);
            }
        }
        // Refresh.
        r.windows_since_refresh += 1;
        let trigger = match cfg.refresh {
            Refresh::Never => None,
            Refresh::EveryWindows(n) => {
                (r.windows_since_refresh >= n).then(|| (format!("scheduled after {n} windows"), cfg.warmup_len()))
            }
            Refresh::OnDrift { share, windows } => {
                r.drifting_windows = if out_share > share { r.drifting_windows + 1 } else { 0 };
                (r.drifting_windows >= windows).then(|| {
                    let why = format!(
                        "{windows} windows in a row with more than {:.0}% of values outside the reference range",
                        share * 100.0
                    );
                    (why, windows * cfg.hop)
                })
            }
        };
        if let Some((reason, keep)) = trigger {
            self.refresh(reason, keep, events);
        }
    }

    /// Moves the completed block's rows into the recent rows (the last `2·window` points) and
    /// clears the block.
    fn slide_recent(r: &mut Running, window: usize, d: usize) {
        r.recent_raw.extend(r.block_raw.iter().copied());
        r.recent_ts.extend(r.block_ts.iter().copied());
        while r.recent_ts.len() > 2 * window {
            r.recent_ts.pop_front();
            for _ in 0..d {
                r.recent_raw.pop_front();
            }
        }
        r.block_raw.clear();
        r.block_ts.clear();
        r.out_of_range_in_block = 0;
    }

    /// Starts a new warm-up seeded with the last `keep` points: a scheduled refresh keeps a whole
    /// warm-up's worth and so rebuilds at once; a drift refresh keeps only the drifting windows
    /// and re-warms on the new data, detecting nothing until the warm-up is complete. An open
    /// interval is closed first: scores before and after a refresh are not comparable.
    fn refresh(&mut self, reason: String, keep: usize, events: &mut Vec<Event>) {
        let Phase::Running(r) = &mut self.phase else { return };
        if let Some(open) = r.open.take() {
            events.push(Event::Closed(close_interval(open, self.d)));
        }
        let last_anomaly = std::mem::take(&mut r.last_anomaly);
        let keep = keep.min(self.refresh_ts.len());
        let skip = self.refresh_ts.len() - keep;
        let raw: Vec<f64> = self.refresh_raw.iter().skip(skip * self.d).copied().collect();
        let ts: Vec<i64> = self.refresh_ts.iter().skip(skip).copied().collect();
        self.stats.refreshes += 1;
        events.push(Event::Refreshed { at: self.stats.points - self.pending, reason });
        if ts.len() == self.cfg.warmup_len() {
            self.finish_warmup(&raw, &ts, events).expect("warm-up on validated input");
            if let Phase::Running(r) = &mut self.phase {
                r.last_anomaly = last_anomaly; // the block that triggered the refresh keeps its scores
            }
        } else {
            self.phase = Phase::WarmingUp { raw, ts };
        }
    }

    /// Closes an open interval at the end of the stream (or on shutdown) and returns it.
    pub fn flush(&mut self, events: &mut Vec<Event>) {
        if let Phase::Running(r) = &mut self.phase
            && let Some(open) = r.open.take()
        {
            events.push(Event::Closed(close_interval(open, self.d)));
        }
    }

    /// Checks a restored state: the version must be this build's.
    ///
    /// # Errors
    /// A message saying which version was found; the caller should re-warm the detector.
    pub fn check_version(&self) -> Result<(), String> {
        if self.version == STATE_VERSION {
            Ok(())
        } else {
            Err(format!("detector state version {} is not {STATE_VERSION}: re-warming", self.version))
        }
    }
}

fn close_interval(open: OpenInterval, d: usize) -> ClosedInterval {
    let explanation = match (open.before_rows, open.during) {
        (Some(before_rows), Some(during)) => {
            // Per-dimension share of the change: each column's two-sample KS statistic, before vs
            // during (the interval's rows thinned evenly to at most SAMPLE_MAX), minus the 5 %
            // critical value (what two samples of these sizes reach by chance), normalised to sum
            // 1; if no column exceeds it, the raw statistics' shares.
            let (n1, n2) = ((before_rows.len() / d) as f64, (during.sample.len() / d) as f64);
            let critical = 1.358 * ((n1 + n2) / (n1 * n2)).sqrt();
            let ks_per: Vec<f64> = (0..d).map(|j| ks(&before_rows, &during.sample, d, j)).collect();
            let excess: Vec<f64> = ks_per.iter().map(|v| (v - critical).max(0.0)).collect();
            let shares = |v: &[f64]| {
                let total: f64 = v.iter().sum();
                (total > 0.0).then(|| v.iter().map(|x| x / total).collect::<Vec<f64>>())
            };
            let contributions = shares(&excess).or_else(|| shares(&ks_per)).unwrap_or_else(|| vec![1.0 / d as f64; d]);
            Some(Explanation { before: summarise(&before_rows, d), during: during.summary(), contributions })
        }
        _ => None,
    };
    ClosedInterval {
        start: open.start,
        end: open.end,
        start_ts: open.start_ts,
        end_ts: open.end_ts,
        peak_score: open.peak,
        detected_at: open.detected_at,
        change_point: open.change_point,
        change_ts: open.change_ts,
        explanation,
    }
}

/// Partitionings the refinement of an opened interval's change averages over (at most). Each
/// interval opening pays for a local kernel; with the detector's 200 it cost 37 % of the
/// change-only time in `bench engine` (2026-12-08); with 50 (and with 20) the placements of
/// `tests/stream_precision.rs` were as good (21 of 23 within 5 rows, two errors smaller).
const REFINE_T: usize = 50;

/// Places the change behind a window that opens an interval to the point: the best split of the
/// two windows before the flagged one and the flagged window itself (`segment::refine_change` at the
/// pattern width chosen at warm-up). Falls back to the flagged window's start.
fn place_change(r: &Running, cfg: &StreamConfig, d: usize, win_start: u64, win_start_ts: i64) -> (u64, i64) {
    // The two windows before the flagged one and the flagged window's rows before this block: a
    // change seen through subsequences is flagged up to a window late (measured with
    // tests/stream_precision.rs: with one window before, rhythm changes were placed 44 to 50
    // rows off, with two 0 to 7 in 8 of 10).
    let before = r.recent_ts.len();
    let rows: Vec<f64> =
        r.recent_raw.iter().skip(r.recent_raw.len() - before * d).copied().chain(r.block_raw.iter().copied()).collect();
    let ts: Vec<i64> = r.recent_ts.iter().skip(r.recent_ts.len() - before).chain(&r.block_ts).copied().collect();
    let edge = (cfg.window / 8).max(4);
    match crate::segment::refine_change(&rows, d, r.width, edge, cfg.t.min(REFINE_T), cfg.seed) {
        Ok(Some(at)) if at < ts.len() => (r.block_start - before as u64 + at as u64, ts[at]),
        _ => (win_start, win_start_ts),
    }
}

fn scale_rows(raw: &[f64], lo: &[f64], span: &[f64]) -> Vec<f32> {
    let d = lo.len();
    raw.chunks_exact(d).flat_map(|r| (0..d).map(move |j| to_f32(scale_one(r[j], lo[j], span[j])))).collect()
}

/// The sum of the ring's blocks in `range` plus `extra`: borrowed when it is a single block
/// (non-overlapping windows), summed otherwise.
fn sum_blocks<'a>(
    blocks: &'a VecDeque<Vec<u16>>,
    range: impl std::ops::RangeBounds<usize> + Clone,
    extra: Option<&'a [u16]>,
) -> std::borrow::Cow<'a, [u16]> {
    let mut ring = blocks.range(range.clone());
    match (ring.len(), extra) {
        (1, None) => return std::borrow::Cow::Borrowed(ring.next().expect("one block")),
        (0, Some(e)) => return std::borrow::Cow::Borrowed(e),
        _ => {}
    }
    let len = extra.map_or_else(|| blocks.front().map_or(0, Vec::len), <[u16]>::len);
    let mut out = vec![0u16; len];
    for p in blocks.range(range).map(Vec::as_slice).chain(extra) {
        for (o, &c) in out.iter_mut().zip(p) {
            *o += c;
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `1 − cos` of two histograms. Accumulated in f64, which is exact here: every product and
/// partial sum is an integer below 2^53 (`t · 65535²` at most), so the result equals integer
/// arithmetic and the batch computation's, while the loop vectorises.
fn cosine_score(a: &[u16], b: &[u16]) -> f64 {
    let (mut dot, mut sa, mut sb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        sa += x * x;
        sb += y * y;
    }
    let denom = (sa * sb).sqrt();
    if denom > 0.0 { (1.0 - dot / denom).max(0.0) } else { 0.0 }
}

fn threshold(scores: &VecDeque<f64>, alpha: f64) -> f64 {
    threshold_of(scores.iter(), alpha)
}

/// `mean + alpha·std` (sample std) of the scores; +inf when there are none.
fn threshold_of<'a>(scores: impl Iterator<Item = &'a f64> + Clone, alpha: f64) -> f64 {
    let (mut n, mut sum) = (0usize, 0.0);
    for v in scores.clone() {
        n += 1;
        sum += v;
    }
    if n == 0 {
        return f64::INFINITY;
    }
    let mean = sum / n as f64;
    if n < 2 {
        return mean;
    }
    let ss: f64 = scores.map(|v| (v - mean) * (v - mean)).sum();
    mean + alpha * (ss / (n - 1) as f64).sqrt()
}

/// The candidate whose recent window scores, spread over points and normalised as the offline
/// method does, have the lowest approximate entropy.
fn select_online(tracks: &[Track], history: usize, window: usize) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, t) in tracks.iter().enumerate() {
        let recent: Vec<f64> = t.scores.iter().rev().take(history).rev().copied().collect();
        let mut points: Vec<f64> = recent.iter().flat_map(|&s| std::iter::repeat_n(s, window)).collect();
        normalise(&mut points);
        let e = approximate_entropy_default(&points);
        if e < best.1 {
            best = (i, e);
        }
    }
    best.0
}

#[cfg(feature = "serde")]
mod kernel_repr {
    //! Serialises a kernel as its centres; the indexes are rebuilt on load (deterministically).
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::IsolationKernel;

    #[derive(Serialize, Deserialize)]
    struct Repr {
        psi: usize,
        t: usize,
        d: usize,
        lean: bool,
        centres: Vec<f32>,
    }

    pub(super) fn serialize<S: Serializer>(k: &IsolationKernel, s: S) -> Result<S::Ok, S::Error> {
        Repr { psi: k.psi(), t: k.t(), d: k.d(), lean: k.is_lean(), centres: k.centres().to_vec() }.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IsolationKernel, D::Error> {
        let r = Repr::deserialize(d)?;
        if r.centres.len() != r.psi * r.t * r.d || r.psi == 0 || r.psi > crate::kernel::MAX_PSI || r.d == 0 {
            return Err(serde::de::Error::custom("kernel centres do not match psi, t and d"));
        }
        Ok(IsolationKernel::from_centres_with(r.centres, r.psi, r.t, r.d, r.lean))
    }
}
