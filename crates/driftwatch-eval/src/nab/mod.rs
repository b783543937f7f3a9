//! The Numenta Anomaly Benchmark scorer with NAB v1.1's rules (repository numenta/NAB:
//! `nab/sweeper.py`, `nab/optimizer.py`, `nab/scorer.py`, `nab/runner.py` `normalize`,
//! `config/profiles.json`), and pure parsers and a writer for NAB's file formats.
//!
//! What is scored, per file: every row after the probationary period (the first
//! [`probationary_length`] rows) gets a *sweep score*, depending only on where it sits relative
//! to the labelled anomaly windows:
//!
//! - inside a window whose last row is `right` and which has `width` rows, row `i` scores
//!   `scaled_sigmoid(-(right - i + 1) / width) · tpWeight / scaled_sigmoid(-1)`: `tpWeight` at the
//!   window's first row, falling towards 0 at its end;
//! - after a window, `scaled_sigmoid(|prevRight - i| / (prevWidth - 1)) · fpWeight`: almost 0 just
//!   after the window, `-fpWeight` from three window widths on;
//! - before any window, `-fpWeight`.
//!
//! At a threshold `T`, the rows with anomaly score `>= T` are detections. A file's raw score is
//! the sum of the sweep scores of its detections outside windows, plus, for each window with a
//! row after the probationary period, the best (earliest) detection's sweep score, or `-fnWeight`
//! if it has none. Windows that lie wholly in the probationary period count for nothing.
//!
//! The corpus threshold is the one that maximises the summed raw score over all files (one sweep
//! over all scorable rows sorted by descending score, starting from 1.1 = no detection; on a tie
//! the higher threshold), and the reported score is normalised as NAB's runner does (see
//! [`SubsetScore::normalized`]).

mod format;
mod score;

pub use format::{
    NabSeries, format_timestamp, parse_data_csv, parse_labels_json, parse_timestamp, parse_windows_json,
    render_results_csv, results_file_path, split_key,
};
pub use score::{
    CorpusScore, FileScore, NabScorer, RowSweep, SubsetScore, row_sweep_scores, score_at_threshold, score_corpus,
};

/// NAB's probationary fraction: the first 15 % of each file (at most 750 rows) is not scored.
pub const PROBATIONARY_PERCENT: f64 = 0.15;

/// A cost matrix of NAB (`config/profiles.json`; `tnWeight` is unused by the scorer and left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Reward for detecting a window at its first row.
    pub tp_weight: f64,
    /// Cost of a detection far from (or before) any window.
    pub fp_weight: f64,
    /// Cost of a window without detection.
    pub fn_weight: f64,
}

impl Profile {
    /// `standard`: tp 1, fp 0.11, fn 1.
    pub const STANDARD: Profile = Profile { tp_weight: 1.0, fp_weight: 0.11, fn_weight: 1.0 };
    /// `reward_low_FP_rate`: tp 1, fp 0.22, fn 1.
    pub const REWARD_LOW_FP_RATE: Profile = Profile { tp_weight: 1.0, fp_weight: 0.22, fn_weight: 1.0 };
    /// `reward_low_FN_rate`: tp 1, fp 0.11, fn 2.
    pub const REWARD_LOW_FN_RATE: Profile = Profile { tp_weight: 1.0, fp_weight: 0.11, fn_weight: 2.0 };
    /// The three profiles with NAB's names, in the order of NAB's results tables.
    pub const ALL: [(&'static str, Profile); 3] = [
        ("standard", Profile::STANDARD),
        ("reward_low_FP_rate", Profile::REWARD_LOW_FP_RATE),
        ("reward_low_FN_rate", Profile::REWARD_LOW_FN_RATE),
    ];

    /// The profile of that NAB name (`standard`, `reward_low_FP_rate`, `reward_low_FN_rate`).
    pub fn named(name: &str) -> Option<Profile> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
    }
}

/// One data file of the corpus with its labels: what the scorer needs besides the detector's
/// anomaly scores.
#[derive(Debug, Clone, PartialEq)]
pub struct NabFile {
    /// File name, e.g. `nyc_taxi.csv`.
    pub name: String,
    /// The folder it sits in, e.g. `realKnownCause`.
    pub category: String,
    /// Row timestamps, epoch milliseconds (NAB's naive times read as UTC), in file order.
    pub timestamps: Vec<i64>,
    /// Anomaly windows `(first, last)`, inclusive, as in `combined_windows.json`; both ends must
    /// be timestamps of the file, and windows must be in order without sharing a row.
    pub windows: Vec<(i64, i64)>,
}

impl NabFile {
    /// `category/name`, the file's key in NAB's label files.
    pub fn key(&self) -> String {
        format!("{}/{}", self.category, self.name)
    }
}

/// NAB's scaled sigmoid of a position relative to a window (`sweeper.py` `scaledSigmoid`):
/// `-1` above 3, else `2·sigmoid(-5x) - 1`: about 0.987 at -1 (a window's start), 0 at 0 (just past
/// its end), about -0.987 at 1.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 { -1.0 } else { 2.0 * sigmoid(-5.0 * x) - 1.0 }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The probationary period of a file of `n_rows` rows as NAB computes it
/// (`util.getProbationPeriod(0.15, n)`: `min(floor(0.15·n), 0.15·5000)`): rows with a smaller
/// index are not scored.
pub fn probationary_length(n_rows: usize) -> usize {
    probation_bound(PROBATIONARY_PERCENT, n_rows).ceil() as usize
}

/// `min(floor(percent·n), percent·5000)` in floating point, as NAB compares row indices with it.
fn probation_bound(percent: f64, n_rows: usize) -> f64 {
    (percent * n_rows as f64).floor().min(percent * 5000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tests/integration/sweeper_test.py` `testGetProbationaryLength`.
    #[test]
    fn probationary_length_as_nab() {
        for (n, percent, expected) in [
            (100, 0.0, 0.0),
            (100, 1.0, 100.0),
            (100, 0.1, 10.0),
            (100, 0.15, 15.0),
            (5000, 0.1, 500.0),
            (6000, 0.1, 500.0),
        ] {
            assert_eq!(probation_bound(percent, n), expected, "{n} {percent}");
        }
        assert_eq!(probationary_length(100), 15);
        assert_eq!(probationary_length(4032), 604);
        assert_eq!(probationary_length(22695), 750);
    }

    /// The values quoted in `scaledSigmoid`'s docstring and in NAB's unit tests.
    #[test]
    fn scaled_sigmoid_values() {
        assert_eq!(scaled_sigmoid(-1.0), 0.9866142981514305);
        assert_eq!(scaled_sigmoid(-0.5), 0.8482836399575131);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(0.5) + 0.8482836399575129).abs() < 1e-15);
        // Exactly 3 is still on the curve; only beyond it is the value clamped.
        assert!(scaled_sigmoid(3.0) > -1.0);
        assert_eq!(scaled_sigmoid(3.0 + 1e-9), -1.0);
        assert_eq!(scaled_sigmoid(f64::INFINITY), -1.0);
    }

    #[test]
    fn profiles_as_in_config_profiles_json() {
        assert_eq!(Profile::named("standard"), Some(Profile::STANDARD));
        assert_eq!(Profile::named("reward_low_FP_rate").map(|p| p.fp_weight), Some(0.22));
        assert_eq!(Profile::named("reward_low_FN_rate").map(|p| p.fn_weight), Some(2.0));
        assert_eq!(Profile::named("type1error"), None);
    }
}
