//! Everything LEIAD computes once per pool, before any label: seed-detector scores, the seed
//! LFs' scaled scores, the active-learning prior, the causal feature matrix and the
//! representation Z.
//!
//! The feature matrix ends with two columns per detector: its pooled, scaled score, then its
//! score calibrated per series (`−ln` of the share of the series' points scoring at least as
//! high), which makes one detector's scores comparable across series of different scales (on NAB
//! realKnownCause, pooled AP of the isolation forest 0.063 raw, 0.105 calibrated; realTweets,
//! robust z 0.013 and 0.079). Immutable once built and shared (`Arc`) by every session over the same pool,
//! so the simulation's seeds and baselines do not recompute it.

use crate::detectors::{Detector, score_series};
use crate::end_model::FeatureMatrix;
use crate::features::{BASE_FEATURES, SeriesWindows, base_feature_names, series_features, zscore_clipped};
use crate::representation::Representation;
use crate::{LeiadError, Pool, SeriesInput};

/// Quantile at which seed scores are clipped before min-max scaling (so one extreme value does
/// not squeeze every other score under the 0.05 line).
pub const SEED_CLIP_QUANTILE: f64 = 0.999;

/// Largest share of the pool a seed LF may vote anomaly on.
pub const MAX_SEED_POSITIVE_SHARE: f64 = 0.05;

/// Per-pool precomputation.
#[derive(Debug)]
pub struct Prepared {
    pool: Pool,
    windows: Vec<SeriesWindows>,
    raw: Vec<Vec<f64>>,
    /// Per detector: (min, clip) of the pooled raw scores.
    scaling: Vec<(f64, f64)>,
    scaled: Vec<Vec<f64>>,
    /// Per detector: (mean, sd) of the scaled score, for the feature column.
    feature_norm: Vec<(f64, f64)>,
    /// Per detector: (mean, sd) of the calibrated score, for the feature column.
    calibrated_norm: Vec<(f64, f64)>,
    prior: Vec<f64>,
    features: FeatureMatrix,
    repr: Representation,
    seed: u64,
}

impl Prepared {
    /// Runs the seed detectors, builds features and Z for `pool`. Deterministic given `seed`.
    pub fn new(pool: Pool, seed: u64) -> Self {
        let n = pool.len();
        let windows: Vec<SeriesWindows> =
            pool.series().iter().map(|s| SeriesWindows::derive(s.period_secs, s.values.len())).collect();
        let mut raw: Vec<Vec<f64>> = (0..Detector::ALL.len()).map(|_| Vec::with_capacity(n)).collect();
        let mut calibrated: Vec<Vec<f64>> = (0..Detector::ALL.len()).map(|_| Vec::with_capacity(n)).collect();
        let mut base: Vec<Vec<f64>> = (0..BASE_FEATURES).map(|_| Vec::with_capacity(n)).collect();
        for (s, win) in pool.series().iter().zip(&windows) {
            for (d, scores) in score_series(&s.values, win, seed).into_iter().enumerate() {
                calibrated[d].extend(calibrate(&scores));
                raw[d].extend(scores);
            }
            for (c, col) in series_features(&s.values, win).into_iter().enumerate() {
                base[c].extend(col);
            }
        }
        let scaling: Vec<(f64, f64)> = raw.iter().map(|r| clip_range(r)).collect();
        let scaled: Vec<Vec<f64>> =
            raw.iter().zip(&scaling).map(|(r, &(lo, hi))| r.iter().map(|&v| scale(v, lo, hi)).collect()).collect();
        let prior = (0..n).map(|i| scaled.iter().map(|s| s[i]).sum::<f64>() / scaled.len() as f64).collect();
        let mut feature_norm = Vec::new();
        let cols = BASE_FEATURES + 2 * Detector::ALL.len();
        let mut data = Vec::with_capacity(n * cols);
        for col in &base {
            data.extend_from_slice(col);
        }
        for s in &scaled {
            let mut col = s.clone();
            feature_norm.push(crate::features::mean_sd(&col));
            zscore_clipped(&mut col);
            data.extend_from_slice(&col);
        }
        let mut calibrated_norm = Vec::new();
        for mut col in calibrated {
            calibrated_norm.push(crate::features::mean_sd(&col));
            zscore_clipped(&mut col);
            data.extend_from_slice(&col);
        }
        let features = FeatureMatrix { data, rows: n, cols };
        let repr = Representation::build(&pool, &windows, seed);
        Self { pool, windows, raw, scaling, scaled, feature_norm, calibrated_norm, prior, features, repr, seed }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Window lengths per series.
    pub fn windows(&self) -> &[SeriesWindows] {
        &self.windows
    }

    /// Raw score of detector `d` for every pooled point.
    pub fn detector_scores(&self, d: Detector) -> &[f64] {
        &self.raw[d as usize]
    }

    /// Clipped, min-max scaled score of detector `d` (in [0, 1]).
    pub fn scaled_scores(&self, d: Detector) -> &[f64] {
        &self.scaled[d as usize]
    }

    /// The active-learning prior over every detector: the mean scaled seed score.
    pub fn prior(&self) -> &[f64] {
        &self.prior
    }

    /// The mean scaled score of `detectors` (a session's prior over its seed LFs).
    pub fn prior_of(&self, detectors: &[Detector]) -> Vec<f64> {
        let k = detectors.len().max(1) as f64;
        (0..self.pool.len()).map(|i| detectors.iter().map(|&d| self.scaled[d as usize][i]).sum::<f64>() / k).collect()
    }

    /// Feature matrix of the pool (`n` rows).
    pub fn features(&self) -> &FeatureMatrix {
        &self.features
    }

    /// Names of the feature columns.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = base_feature_names();
        names.extend(Detector::ALL.iter().map(|d| format!("score_{}", d.name())));
        names.extend(Detector::ALL.iter().map(|d| format!("calibrated_{}", d.name())));
        names
    }

    /// The feature column holding detector `d`'s (scaled, z-scored) score.
    pub fn seed_column(&self, d: Detector) -> usize {
        BASE_FEATURES + d as usize
    }

    /// The feature column holding detector `d`'s score calibrated per series (z-scored).
    pub fn calibrated_column(&self, d: Detector) -> usize {
        BASE_FEATURES + Detector::ALL.len() + d as usize
    }

    /// Z of the pool.
    pub fn repr(&self) -> &Representation {
        &self.repr
    }

    /// The seed LF of detector `d`: 1 above 0.95, 0 below 0.05 on the scaled score, else abstain.
    /// A detector whose scores pile up at the top (more than [`MAX_SEED_POSITIVE_SHARE`] of the
    /// pool above 0.95, e.g. many ties at its maximum) cannot single out anomalies: it abstains
    /// there instead of voting anomaly on a third of the pool.
    pub fn seed_votes(&self, d: Detector) -> Vec<Option<bool>> {
        let s = &self.scaled[d as usize];
        let high = s.iter().filter(|&&v| v > 0.95).count() as f64 / s.len() as f64;
        let vote_high = high <= MAX_SEED_POSITIVE_SHARE;
        s.iter()
            .map(|&v| {
                if v > 0.95 {
                    vote_high.then_some(true)
                } else if v < 0.05 {
                    Some(false)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Features of a series outside the pool, scaled like the pool's (for `predict`).
    ///
    /// # Errors
    /// [`LeiadError::Series`] for an unusable series.
    pub fn features_for(&self, s: &SeriesInput) -> Result<FeatureMatrix, LeiadError> {
        Pool::new(vec![s.clone()])?;
        let win = SeriesWindows::derive(s.period_secs, s.values.len());
        let n = s.values.len();
        let mut data = Vec::with_capacity(n * self.features.cols);
        for col in series_features(&s.values, &win) {
            data.extend(col);
        }
        let scores = score_series(&s.values, &win, self.seed);
        for (d, scores) in scores.iter().enumerate() {
            let (lo, hi) = self.scaling[d];
            let (m, sd) = self.feature_norm[d];
            data.extend(scores.iter().map(|&v| ((scale(v, lo, hi) - m) / sd).clamp(-50.0, 50.0)));
        }
        for (d, scores) in scores.iter().enumerate() {
            let (m, sd) = self.calibrated_norm[d];
            data.extend(calibrate(scores).into_iter().map(|v| ((v - m) / sd).clamp(-50.0, 50.0)));
        }
        Ok(FeatureMatrix { data, rows: n, cols: self.features.cols })
    }
}

/// Per point: `−ln` of the share of the series' points scoring at least as high (0 for the
/// lowest score, up to `ln n` for the single highest).
fn calibrate(scores: &[f64]) -> Vec<f64> {
    let n = scores.len();
    let mut asc = scores.to_vec();
    asc.sort_unstable_by(f64::total_cmp);
    scores
        .iter()
        .map(|v| {
            let at_least = n - asc.partition_point(|x| x.total_cmp(v).is_lt());
            -(at_least as f64 / n.max(1) as f64).ln()
        })
        .collect()
}

fn clip_range(x: &[f64]) -> (f64, f64) {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let lo = s[0];
    let q = s[((s.len() - 1) as f64 * SEED_CLIP_QUANTILE).round() as usize];
    let hi = if q > lo { q } else { s[s.len() - 1] };
    (lo, hi)
}

fn scale(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 }
}
