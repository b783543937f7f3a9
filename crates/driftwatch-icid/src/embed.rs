//! Temporal context for the kernel: the pattern width of a series, read off its autocorrelation,
//! and the subsequence embedding that lets the isolation kernel see shape and rhythm instead of a
//! bag of values.
//!
//! A row `i` of the embedding summarises the subsequence `x[i .. i + width)` of every column by
//! its piecewise aggregate approximation (PAA): the means of `segments` equal parts. With width 1
//! the embedding is the scaled series itself. Two regimes with the same value distribution but a
//! different shape or period (a frequency change, most of TSSB) give different subsequences, so
//! different cells in the kernel.
//!
//! # Width from the data
//! [`pattern_width`] takes the mean autocorrelation over the columns (by FFT, so the cost is
//! `O(n log n)`), finds its first zero crossing and then the first local maximum after it: the lag
//! at which the series looks most like itself again, i.e. its dominant period. Series without a
//! zero crossing within the lags looked at (trends, random walks, constants) or with no
//! maximum after it above the white-noise band `4/√n` (and 0.1) have no pattern to embed and get width 1. The width is capped so that the
//! series holds at least [`MIN_PATTERNS`] patterns; short series (under `2 · MIN_PATTERNS` rows)
//! always get width 1.

use std::sync::Arc;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use crate::Scaled;

/// The series must hold at least this many patterns of the chosen width.
pub const MIN_PATTERNS: usize = 20;
/// Largest lag the autocorrelation is read at.
pub const MAX_LAG: usize = 1000;
/// PAA segments per column (fewer when the width is smaller).
pub const PAA_SEGMENTS: usize = 8;

/// The pattern width chosen for a series, with the evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Width {
    /// Rows per embedded subsequence (1 = no embedding).
    pub width: usize,
    /// First lag at which the mean autocorrelation is at or below zero, if any.
    pub zero_crossing: Option<usize>,
    /// The autocorrelation at the chosen lag (before capping), if a peak was found.
    pub peak: Option<f64>,
    /// Whether the width was capped at `n / MIN_PATTERNS`.
    pub capped: bool,
}

impl Width {
    /// One line a user can read: what was chosen and why.
    pub fn reason(&self) -> String {
        match (self.zero_crossing, self.peak) {
            (_, Some(p)) if self.capped => {
                format!(
                    "{}: the autocorrelation peaks later (at {p:.2}), capped to leave {MIN_PATTERNS} patterns",
                    self.width
                )
            }
            (Some(z), Some(p)) => {
                format!("{}: first autocorrelation peak ({p:.2}) after its zero crossing at lag {z}", self.width)
            }
            (Some(z), None) => {
                format!("1: the autocorrelation crosses zero at lag {z} and has no significant peak after it")
            }
            (None, _) => "1: the autocorrelation never crosses zero (no repeating pattern)".to_string(),
        }
    }
}

/// Mean autocorrelation of the columns of row-major `data` at lags `0..=max_lag`, normalised to 1
/// at lag 0 (all zeros when every column is constant).
pub fn autocorrelation(data: &[f64], d: usize, max_lag: usize) -> Vec<f64> {
    let n = data.len() / d.max(1);
    let max_lag = max_lag.min(n.saturating_sub(1));
    let mut out = vec![0.0; max_lag + 1];
    if n < 2 {
        return out;
    }
    let len = (2 * n).next_power_of_two();
    let mut planner = FftPlanner::<f64>::new();
    let fwd: Arc<dyn rustfft::Fft<f64>> = planner.plan_fft_forward(len);
    let inv = planner.plan_fft_inverse(len);
    let mut buf = vec![Complex::new(0.0, 0.0); len];
    let mut used = 0;
    for j in 0..d {
        let mean = data.iter().skip(j).step_by(d).sum::<f64>() / n as f64;
        buf.iter_mut().for_each(|c| *c = Complex::new(0.0, 0.0));
        for (b, v) in buf.iter_mut().zip(data.iter().skip(j).step_by(d)) {
            *b = Complex::new(v - mean, 0.0);
        }
        fwd.process(&mut buf);
        for c in buf.iter_mut() {
            *c = Complex::new(c.norm_sqr(), 0.0);
        }
        inv.process(&mut buf);
        let zero = buf[0].re;
        if zero <= 0.0 {
            continue; // a constant column says nothing about the pattern
        }
        used += 1;
        for (o, c) in out.iter_mut().zip(&buf) {
            *o += c.re / zero;
        }
    }
    if used > 0 {
        out.iter_mut().for_each(|v| *v /= used as f64);
    }
    out
}

/// The pattern width of row-major `data` with `d` columns (see the module docs).
pub fn pattern_width(data: &[f64], d: usize) -> Width {
    let n = data.len() / d.max(1);
    let cap = n / MIN_PATTERNS;
    let none = |zero_crossing| Width { width: 1, zero_crossing, peak: None, capped: false };
    if cap < 2 {
        return none(None);
    }
    let ac = autocorrelation(data, d, MAX_LAG.min(n / 4));
    let Some(zero) = ac.iter().position(|&v| v <= 0.0) else { return none(None) };
    // A peak inside the white-noise band is no evidence of a repeating pattern: noise and level
    // shifts have such ripples. The band is four standard errors (4/sqrt(n)), not the usual two,
    // because up to MAX_LAG lags are searched: white noise crosses 2/sqrt(n) at about one lag in
    // twenty, and 4/sqrt(n) at about one in 30,000. The first local maximum above it is the period.
    // A correlation under 0.1 is too weak to call a pattern even when significant (series whose
    // level or spread changes have inflated, ragged autocorrelations).
    let band = (4.0 / (n as f64).sqrt()).max(0.1);
    let peak =
        (zero.max(1)..ac.len().saturating_sub(1)).find(|&l| ac[l] > band && ac[l - 1] < ac[l] && ac[l] >= ac[l + 1]);
    match peak {
        None => none(Some(zero)),
        Some(l) => Width { width: l.min(cap).max(1), zero_crossing: Some(zero), peak: Some(ac[l]), capped: l > cap },
    }
}

/// The PAA embedding of `points` (scaled, row-major) with subsequences of `width` rows: row `i`
/// holds, for every column, the means of `min(width, PAA_SEGMENTS)` equal parts of
/// `x[i .. i + width)`. `n − width + 1` rows; with width 1, a copy of `points`.
pub fn embed(points: &Scaled, width: usize) -> Scaled {
    let (n, d) = (points.n, points.d);
    let width = width.clamp(1, n.max(1));
    if width == 1 {
        return points.clone();
    }
    let k = width.min(PAA_SEGMENTS);
    let edges: Vec<usize> = (0..=k).map(|s| (s * width + k / 2) / k).collect();
    let rows = n - width + 1;
    // Prefix sums per column in f64: exact enough for means of f32 values in [0, 1].
    let mut prefix = vec![0f64; (n + 1) * d];
    for i in 0..n {
        for j in 0..d {
            prefix[(i + 1) * d + j] = prefix[i * d + j] + points.values[i * d + j] as f64;
        }
    }
    let mut values = Vec::with_capacity(rows * k * d);
    for i in 0..rows {
        for j in 0..d {
            for s in 0..k {
                let (a, b) = (i + edges[s], i + edges[s + 1]);
                values.push(((prefix[b * d + j] - prefix[a * d + j]) / (b - a) as f64) as f32);
            }
        }
    }
    Scaled { values, n: rows, d: k * d }
}

/// The embedding row of the newest point for a streaming detector: the PAA of the subsequence
/// `rows` (the last `width` scaled rows, oldest first, row-major with `d` columns), appended to
/// `out`, in the layout of [`embed`]'s rows. Segment means are summed directly, so a value may
/// differ from [`embed`]'s (prefix sums) in its last bit.
pub fn paa_row(rows: &[f32], d: usize, out: &mut Vec<f32>) {
    let width = rows.len() / d.max(1);
    if width <= 1 {
        out.extend_from_slice(rows);
        return;
    }
    let k = width.min(PAA_SEGMENTS);
    for j in 0..d {
        for s in 0..k {
            let (a, b) = ((s * width + k / 2) / k, ((s + 1) * width + k / 2) / k);
            let sum: f64 = (a..b).map(|i| f64::from(rows[i * d + j])).sum();
            out.push((sum / (b - a) as f64) as f32);
        }
    }
}

/// Columns of an embedding of `d` columns at `width` (the kernel's dimension).
pub fn embedded_dim(d: usize, width: usize) -> usize {
    if width <= 1 { d } else { d * width.min(PAA_SEGMENTS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, period: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * std::f64::consts::TAU / period).sin()).collect()
    }

    #[test]
    fn a_streamed_row_is_the_embedding_row_of_its_subsequence() {
        let x: Vec<f32> = (0..120).map(|i| ((i * 37) % 17) as f32 / 17.0).collect();
        for (d, width) in [(1, 1), (1, 5), (1, 12), (2, 9), (3, 20)] {
            let n = x.len() / d;
            let emb = embed(&Scaled { values: x[..n * d].to_vec(), n, d }, width);
            assert_eq!(emb.d, embedded_dim(d, width));
            for i in [0, 7, emb.n - 1] {
                let mut row = Vec::new();
                paa_row(&x[i * d..(i + width) * d], d, &mut row);
                let want = &emb.values[i * emb.d..(i + 1) * emb.d];
                assert!(row.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "d {d} width {width} row {i}");
                assert_eq!(row.len(), want.len());
            }
        }
    }

    #[test]
    fn a_sine_gets_its_period() {
        let w = pattern_width(&sine(2000, 40.0), 1);
        assert_eq!(w.width, 40, "{w:?}");
        assert!(w.peak.unwrap() > 0.9);
        assert!(w.reason().contains("peak"));
    }

    #[test]
    fn the_width_leaves_twenty_patterns() {
        let w = pattern_width(&sine(1000, 80.0), 1);
        assert_eq!(w.width, 50);
        assert!(w.capped);
    }

    #[test]
    fn trends_constants_and_short_series_get_width_one() {
        let trend: Vec<f64> = (0..500).map(|i| i as f64).collect();
        assert_eq!(pattern_width(&trend, 1).width, 1);
        assert_eq!(pattern_width(&[3.0; 500], 1).width, 1);
        for n in [15, 30, 39] {
            assert_eq!(pattern_width(&sine(n, 4.0), 1).width, 1, "n = {n}");
        }
    }

    #[test]
    fn autocorrelation_averages_columns_and_skips_constant_ones() {
        let x = sine(400, 20.0);
        let two: Vec<f64> = x.iter().flat_map(|&v| [v, 7.0]).collect();
        let a = autocorrelation(&x, 1, 50);
        let b = autocorrelation(&two, 2, 50);
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-9);
        }
        assert!((a[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn embedding_means_the_parts_of_each_subsequence() {
        let points = Scaled { values: (0..20).map(|i| i as f32 / 20.0).collect(), n: 20, d: 1 };
        let e = embed(&points, 4);
        assert_eq!((e.n, e.d), (17, 4));
        assert_eq!(e.row(0), &[0.0, 0.05, 0.1, 0.15]);
        let e = embed(&points, 16);
        assert_eq!((e.n, e.d), (5, 8));
        assert!((e.row(1)[0] - 0.075).abs() < 1e-6); // mean of rows 1 and 2
        assert_eq!(embed(&points, 1), points);
    }
}
