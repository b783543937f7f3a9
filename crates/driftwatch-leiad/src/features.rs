//! Causal per-point features for the end model and the statistical-prototype LFs (spec part
//! B.1.2 families: moving averages, EWMAs, rolling min/max/range/std/rank, differences, log
//! transforms), with window lengths derived from each series' sampling period (part A) instead of
//! fixed minute counts. Every feature at `t` reads only points `≤ t`; each column is then
//! z-scored per series (in the service that scaling would come from the warm-up).
//!
//! Layout: column-major `f64`, `columns × n`, the layout the GBDT crate reads without copying.

use std::collections::VecDeque;

/// Window lengths (in points) for one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesWindows {
    /// About an hour (at least 5 points).
    pub short: usize,
    /// About a day.
    pub mid: usize,
    /// About a week (at most 1000 points).
    pub long: usize,
    /// The iCID window for the seed detectors.
    pub icid: usize,
    /// Causal context of the representation Z.
    pub context: usize,
}

impl SeriesWindows {
    /// Derives the windows from the sampling period; without one, 10 / 50 / 200 points.
    pub fn derive(period_secs: Option<f64>, len: usize) -> Self {
        let (short, mid, long) = match period_secs {
            Some(p) => {
                let pts = |secs: f64| (secs / p).round().max(1.0) as usize;
                (pts(3600.0), pts(86_400.0), pts(7.0 * 86_400.0))
            }
            None => (10, 50, 200),
        };
        let cap = (len / 4).max(8);
        let short = short.clamp(5, 120).min(cap);
        let mid = mid.clamp(2 * short, 500).min(cap).max(short + 1);
        let long = long.clamp(2 * mid, 1000).min(cap).max(mid + 1);
        let icid = short.clamp(8, 64);
        let context = short.clamp(4, 64);
        Self { short, mid, long, icid, context }
    }
}

/// Feature columns per series before the detector scores are appended.
pub const BASE_FEATURES: usize = 3 * 11 + 6;

/// Column names of [`series_features`], in order.
pub fn base_feature_names() -> Vec<String> {
    let mut names = Vec::with_capacity(BASE_FEATURES);
    for w in ["short", "mid", "long"] {
        for f in [
            "ma",
            "x_minus_ma",
            "x_over_ma",
            "ewma",
            "x_minus_ewma",
            "x_over_ewma",
            "min",
            "max",
            "range",
            "std",
            "rank",
        ] {
            names.push(format!("{f}_{w}"));
        }
    }
    for f in ["value", "diff", "rel_diff", "log2", "x_minus_log2", "x_over_log2"] {
        names.push(f.to_string());
    }
    names
}

/// Causal base features of one series, column-major (`BASE_FEATURES` columns of `len` rows),
/// each column z-scored over the series.
pub fn series_features(x: &[f64], win: &SeriesWindows) -> Vec<Vec<f64>> {
    let mut cols = raw_features(x, win);
    for c in &mut cols {
        zscore_clipped(c);
    }
    cols
}

/// The causal columns before per-series scaling.
fn raw_features(x: &[f64], win: &SeriesWindows) -> Vec<Vec<f64>> {
    let n = x.len();
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(BASE_FEATURES);
    let ratio = |a: f64, b: f64| a / b.abs().max(1e-9).copysign(b);
    for w in [win.short, win.mid, win.long] {
        let ma = rolling_mean(x, w);
        let alpha = 2.0 / (w as f64 + 1.0);
        let mut ew = vec![0.0; n];
        let mut e = x[0];
        for t in 0..n {
            e += alpha * (x[t] - e);
            ew[t] = e;
        }
        let (mn, mx) = rolling_min_max(x, w);
        let sd = rolling_sd(x, w);
        let rank = rolling_rank(x, w);
        cols.push(ma.clone());
        cols.push((0..n).map(|t| x[t] - ma[t]).collect());
        cols.push((0..n).map(|t| ratio(x[t], ma[t])).collect());
        cols.push(ew.clone());
        cols.push((0..n).map(|t| x[t] - ew[t]).collect());
        cols.push((0..n).map(|t| ratio(x[t], ew[t])).collect());
        cols.push(mn.clone());
        cols.push(mx.clone());
        cols.push((0..n).map(|t| mx[t] - mn[t]).collect());
        cols.push(sd);
        cols.push(rank);
    }
    cols.push(x.to_vec());
    cols.push((0..n).map(|t| if t == 0 { 0.0 } else { x[t] - x[t - 1] }).collect());
    cols.push((0..n).map(|t| if t == 0 { 0.0 } else { (x[t] - x[t - 1]) / (x[t - 1].abs() + 1e-9) }).collect());
    let lg: Vec<f64> = x.iter().map(|v| (v.abs() + 1.1).log2()).collect();
    cols.push(lg.clone());
    cols.push((0..n).map(|t| x[t] - lg[t]).collect());
    cols.push((0..n).map(|t| x[t] / lg[t]).collect());
    debug_assert_eq!(cols.len(), BASE_FEATURES);
    cols
}

/// Z-scores a column in place; non-finite values become 0 and values are clipped to ±50 so one
/// division by a near-zero average cannot dominate a similarity.
pub(crate) fn zscore_clipped(c: &mut [f64]) {
    for v in c.iter_mut() {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
    let (m, s) = mean_sd(c);
    for v in c.iter_mut() {
        *v = ((*v - m) / s).clamp(-50.0, 50.0);
    }
}

fn rolling_mean(x: &[f64], w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    let mut sum = 0.0;
    for t in 0..x.len() {
        sum += x[t];
        if t >= w {
            sum -= x[t - w];
        }
        out.push(sum / (t + 1).min(w) as f64);
    }
    out
}

fn rolling_sd(x: &[f64], w: usize) -> Vec<f64> {
    // Sums of squares after centring on the first value (causal), which keeps cancellation small.
    let m = x[0];
    let mut out = Vec::with_capacity(x.len());
    let (mut s1, mut s2) = (0.0, 0.0);
    for t in 0..x.len() {
        let v = x[t] - m;
        s1 += v;
        s2 += v * v;
        if t >= w {
            let o = x[t - w] - m;
            s1 -= o;
            s2 -= o * o;
        }
        let k = (t + 1).min(w) as f64;
        out.push(((s2 / k) - (s1 / k) * (s1 / k)).max(0.0).sqrt());
    }
    out
}

fn rolling_min_max(x: &[f64], w: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let (mut mn, mut mx) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut qmin: VecDeque<usize> = VecDeque::new();
    let mut qmax: VecDeque<usize> = VecDeque::new();
    for t in 0..n {
        while qmin.back().is_some_and(|&j| x[j] >= x[t]) {
            qmin.pop_back();
        }
        qmin.push_back(t);
        while qmax.back().is_some_and(|&j| x[j] <= x[t]) {
            qmax.pop_back();
        }
        qmax.push_back(t);
        while qmin.front().is_some_and(|&j| j + w <= t) {
            qmin.pop_front();
        }
        while qmax.front().is_some_and(|&j| j + w <= t) {
            qmax.pop_front();
        }
        mn.push(x[qmin[0]]);
        mx.push(x[qmax[0]]);
    }
    (mn, mx)
}

/// Share of the window's points (current included) at or below the current value.
fn rolling_rank(x: &[f64], w: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = Vec::with_capacity(w + 1);
    let mut out = Vec::with_capacity(x.len());
    for t in 0..x.len() {
        let pos = sorted.partition_point(|&v| v < x[t]);
        sorted.insert(pos, x[t]);
        if t >= w {
            let old = x[t - w];
            let p = sorted.partition_point(|&v| v < old);
            sorted.remove(p);
        }
        let le = sorted.partition_point(|&v| v <= x[t]);
        out.push(le as f64 / sorted.len() as f64);
    }
    out
}

/// Mean and population standard deviation (1 for a constant series, so dividing by it is safe).
pub(crate) fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
    (m, if v > 0.0 { v.sqrt() } else { 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_causal() {
        let x: Vec<f64> = (0..400).map(|t| (t as f64 / 7.0).sin()).collect();
        let mut y = x.clone();
        y[300] = 40.0;
        let win = SeriesWindows::derive(None, x.len());
        let a = raw_features(&x, &win);
        let b = raw_features(&y, &win);
        for (ca, cb) in a.iter().zip(&b) {
            assert_eq!(ca[..300], cb[..300]);
            assert_eq!(ca.len(), 400);
        }
    }

    #[test]
    fn windows_follow_the_sampling_period() {
        let w = SeriesWindows::derive(Some(300.0), 20_000);
        assert_eq!((w.short, w.mid), (12, 288));
        let h = SeriesWindows::derive(Some(3600.0), 20_000);
        assert!(h.short == 5 && h.mid == 24 && h.long == 168, "{h:?}");
    }
}
