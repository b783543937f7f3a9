//! NAB's sweep scores, per-file score-by-threshold tables, corpus threshold optimisation and
//! normalisation (`sweeper.py` `calcSweepScore`, `calcScoreByThreshold`, `scoreDataSet`;
//! `optimizer.py` `optimizeThreshold`; `runner.py` `normalize`).
//!
//! Each file is swept once when a [`NabScorer`] is built: its rows are sorted by descending
//! anomaly score and its raw score is tabulated at every distinct score. Scoring any subset of
//! files at a threshold is then a binary search per file, and optimising a subset's threshold
//! merges the files' tables, so a caller can score categories and cross-validation folds many
//! times over without sweeping again.

use std::collections::{BTreeMap, HashMap};

use super::{NabFile, PROBATIONARY_PERCENT, Profile, probation_bound, scaled_sigmoid};
use crate::EvalError;

/// NAB's starting threshold: above every score in `[0, 1]`, so nothing is detected.
const NO_DETECTION: f64 = 1.1;

/// One row's place in NAB's sweep (`sweeper.py` `AnomalyPoint` without the anomaly score).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSweep {
    /// The row's weighted sweep score: what a detection here adds (outside a window) or is
    /// worth to its window (inside).
    pub sweep: f64,
    /// Index into the file's windows of the window the row is in, if any.
    pub window: Option<usize>,
    /// The row is in the probationary period and not scored.
    pub probationary: bool,
}

/// A file's score at one threshold. The four counts are NAB's (as in its `*_scores.csv`): they
/// count scorable *rows*, not windows.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScore {
    /// File name.
    pub name: String,
    /// File category (folder).
    pub category: String,
    /// Raw NAB score of the file at the threshold.
    pub raw: f64,
    /// Scorable rows inside windows with a detection.
    pub tp: usize,
    /// Scorable rows outside windows without a detection.
    pub tn: usize,
    /// Scorable rows outside windows with a detection.
    pub fp: usize,
    /// Scorable rows inside windows without a detection.
    pub fn_: usize,
    /// All windows of the file.
    pub windows: usize,
    /// Windows with at least one row after the probationary period (the ones that count).
    pub windows_scorable: usize,
    /// Scorable windows with at least one detection.
    pub windows_detected: usize,
}

/// A set of files scored together at one threshold, normalised against that set's null and
/// perfect detectors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubsetScore {
    /// Rows with anomaly score `>= threshold` are detections (1.1: none).
    pub threshold: f64,
    /// Sum of the files' raw scores at the threshold (NAB's `Totals` row).
    pub raw: f64,
    /// The raw score of NAB's null detector on these files: the constant score 0.5 at its own
    /// optimal threshold, which is the better of detecting nothing (`-fnWeight` per scorable
    /// window) and detecting every row; on NAB's data always the former.
    pub null_raw: f64,
    /// `tpWeight ×` the number of windows of these files: NAB counts every window in the
    /// windows file, scorable or not.
    pub perfect_raw: f64,
    /// `100 · (raw − null_raw) / (perfect_raw − null_raw)`: 0 for the null detector, 100 for a
    /// detector that hits every window at its first row and nothing else. NaN when the files have
    /// no window.
    pub normalized: f64,
}

/// [`SubsetScore`] with the per-file scores.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusScore {
    /// Rows with anomaly score `>= threshold` are detections (1.1: none).
    pub threshold: f64,
    /// Sum of the files' raw scores.
    pub raw: f64,
    /// See [`SubsetScore::null_raw`].
    pub null_raw: f64,
    /// See [`SubsetScore::perfect_raw`].
    pub perfect_raw: f64,
    /// See [`SubsetScore::normalized`].
    pub normalized: f64,
    /// Per file, in the order of the subset given.
    pub per_file: Vec<FileScore>,
}

/// The scorer's view of one row: anomaly score and sweep.
#[derive(Debug, Clone, Copy)]
struct ScoredRow {
    score: f64,
    sweep: f64,
    window: Option<usize>,
    scorable: bool,
}

/// One line of NAB's score-by-threshold table (`ThresholdScore`), plus detected windows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Record {
    threshold: f64,
    raw: f64,
    tp: usize,
    tn: usize,
    fp: usize,
    fn_: usize,
    windows_detected: usize,
}

/// A file swept and tabulated.
#[derive(Debug, Clone)]
struct Prepared {
    name: String,
    category: String,
    windows: usize,
    windows_scorable: usize,
    /// Descending thresholds; `records[0]` is the no-detection line at 1.1.
    records: Vec<Record>,
    /// Raw score with every scorable row detected, summed in row order (the null detector's
    /// constant score detects every row at its threshold 0.5).
    all_detected_raw: f64,
}

impl Prepared {
    /// The line of the table for detections `score >= threshold`: the last line whose threshold
    /// is `>= threshold` (NAB's `scoreDataSet` lookup).
    fn at(&self, threshold: f64) -> &Record {
        let n = self.records.partition_point(|r| r.threshold >= threshold);
        &self.records[n.saturating_sub(1)]
    }
}

/// NAB's scorer over a fixed set of files and detector scores under one profile. Build it once;
/// every scoring call after that is cheap.
#[derive(Debug, Clone)]
pub struct NabScorer {
    profile: Profile,
    files: Vec<Prepared>,
}

impl NabScorer {
    /// Sweeps each file with NAB's probationary period (15 %, at most 750 rows).
    ///
    /// `scores[i]` are the anomaly scores of `files[i]`, one per row, each in `[0, 1]`.
    ///
    /// # Errors
    /// [`EvalError::NabFile`] if a file's scores and rows differ in number, a score is outside
    /// `[0, 1]`, a window end is not one of the file's timestamps, windows are out of order or
    /// share a row, or a window is never reached in the file's order of rows;
    /// [`EvalError::InvalidInput`] if `files` and `scores` differ in length.
    pub fn new(files: &[NabFile], scores: &[Vec<f64>], profile: Profile) -> Result<Self, EvalError> {
        Self::with_probation_percent(files, scores, profile, PROBATIONARY_PERCENT)
    }

    /// [`NabScorer::new`] with another probationary fraction (NAB's `Sweeper(probationPercent)`;
    /// NAB's runner always uses 0.15).
    ///
    /// # Errors
    /// As [`NabScorer::new`], and [`EvalError::InvalidInput`] for a fraction outside `[0, 1]`.
    pub fn with_probation_percent(
        files: &[NabFile],
        scores: &[Vec<f64>],
        profile: Profile,
        probation_percent: f64,
    ) -> Result<Self, EvalError> {
        if !(0.0..=1.0).contains(&probation_percent) {
            return Err(EvalError::InvalidInput(format!("probationary fraction {probation_percent} outside [0, 1]")));
        }
        Self::build(files, scores, profile, &|n| probation_bound(probation_percent, n))
    }

    /// Builds with `probation(n_rows)` as the bound below which row indices are probationary.
    fn build(
        files: &[NabFile],
        scores: &[Vec<f64>],
        profile: Profile,
        probation: &dyn Fn(usize) -> f64,
    ) -> Result<Self, EvalError> {
        if files.len() != scores.len() {
            return Err(EvalError::InvalidInput(format!("{} files but {} score lists", files.len(), scores.len())));
        }
        let files = files
            .iter()
            .zip(scores)
            .map(|(f, s)| prepare(f, s, profile, probation(f.timestamps.len())))
            .collect::<Result<_, _>>()?;
        Ok(NabScorer { profile, files })
    }

    /// The profile the scorer was built with.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when built over no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Indices of all files, `0..len()`.
    pub fn all(&self) -> Vec<usize> {
        (0..self.files.len()).collect()
    }

    /// File indices by category, categories in sorted order, indices ascending.
    pub fn categories(&self) -> BTreeMap<String, Vec<usize>> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, f) in self.files.iter().enumerate() {
            out.entry(f.category.clone()).or_default().push(i);
        }
        out
    }

    /// The threshold NAB's optimizer picks for these files: the one with the highest summed raw
    /// score over all distinct anomaly scores of their scorable rows and 1.1 (no detection),
    /// the higher threshold on a tie.
    ///
    /// # Errors
    /// [`EvalError::InvalidInput`] for an index out of range or repeated.
    pub fn optimal_threshold(&self, subset: &[usize]) -> Result<f64, EvalError> {
        self.check_subset(subset)?;
        // Each file's table as steps (threshold, change of raw score), merged in descending
        // threshold order. Every table is already descending, so the stable sort merges runs.
        let mut steps: Vec<(f64, f64)> = Vec::new();
        let mut total = 0.0;
        for &i in subset {
            let r = &self.files[i].records;
            total += r[0].raw;
            steps.extend(r.windows(2).map(|w| (w[1].threshold, w[1].raw - w[0].raw)));
        }
        steps.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut best_threshold, mut best) = (NO_DETECTION, total);
        let mut k = 0;
        while k < steps.len() {
            let threshold = steps[k].0;
            while k < steps.len() && steps[k].0 == threshold {
                total += steps[k].1;
                k += 1;
            }
            if total > best {
                (best_threshold, best) = (threshold, total);
            }
        }
        Ok(best_threshold)
    }

    /// The files scored at the threshold NAB's optimizer picks for them
    /// ([`NabScorer::optimal_threshold`]).
    ///
    /// # Errors
    /// [`EvalError::InvalidInput`] for an index out of range or repeated.
    pub fn optimize(&self, subset: &[usize]) -> Result<SubsetScore, EvalError> {
        let threshold = self.optimal_threshold(subset)?;
        self.at_threshold(subset, threshold)
    }

    /// The files scored at a given threshold (detections: anomaly score `>= threshold`), e.g. a
    /// category at the corpus threshold or a held-out fold at the training folds' threshold.
    ///
    /// # Errors
    /// [`EvalError::InvalidInput`] for an index out of range or repeated, or a NaN threshold.
    pub fn at_threshold(&self, subset: &[usize], threshold: f64) -> Result<SubsetScore, EvalError> {
        self.check_subset(subset)?;
        if threshold.is_nan() {
            return Err(EvalError::InvalidInput("NaN threshold".into()));
        }
        let (mut raw, mut none, mut all, mut windows) = (0.0, 0.0, 0.0, 0usize);
        for &i in subset {
            let f = &self.files[i];
            raw += f.at(threshold).raw;
            none += f.records[0].raw;
            all += f.all_detected_raw;
            windows += f.windows;
        }
        // The null detector's own optimum over these files: no detection unless detecting
        // everything scores strictly higher (ties go to the higher threshold, 1.1).
        let null_raw = if all > none { all } else { none };
        let perfect_raw = self.profile.tp_weight * windows as f64;
        Ok(SubsetScore {
            threshold,
            raw,
            null_raw,
            perfect_raw,
            normalized: 100.0 * (raw - null_raw) / (perfect_raw - null_raw),
        })
    }

    /// One file's score at a threshold.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn file_score(&self, index: usize, threshold: f64) -> FileScore {
        let f = &self.files[index];
        let r = f.at(threshold);
        FileScore {
            name: f.name.clone(),
            category: f.category.clone(),
            raw: r.raw,
            tp: r.tp,
            tn: r.tn,
            fp: r.fp,
            fn_: r.fn_,
            windows: f.windows,
            windows_scorable: f.windows_scorable,
            windows_detected: r.windows_detected,
        }
    }

    /// [`NabScorer::at_threshold`] with the per-file scores.
    ///
    /// # Errors
    /// As [`NabScorer::at_threshold`].
    pub fn corpus_score_at(&self, subset: &[usize], threshold: f64) -> Result<CorpusScore, EvalError> {
        let s = self.at_threshold(subset, threshold)?;
        Ok(CorpusScore {
            threshold: s.threshold,
            raw: s.raw,
            null_raw: s.null_raw,
            perfect_raw: s.perfect_raw,
            normalized: s.normalized,
            per_file: subset.iter().map(|&i| self.file_score(i, threshold)).collect(),
        })
    }

    /// Every category scored either at one given threshold (e.g. the corpus threshold) or, with
    /// `None`, each at its own optimal threshold.
    pub fn per_category(&self, threshold: Option<f64>) -> BTreeMap<String, SubsetScore> {
        self.categories()
            .into_iter()
            .map(|(c, idx)| {
                let s = match threshold {
                    Some(t) => self.at_threshold(&idx, t),
                    None => self.optimize(&idx),
                };
                (c, s.expect("category indices are valid"))
            })
            .collect()
    }

    fn check_subset(&self, subset: &[usize]) -> Result<(), EvalError> {
        let mut seen = vec![false; self.files.len()];
        for &i in subset {
            match seen.get_mut(i) {
                None => {
                    return Err(EvalError::InvalidInput(format!(
                        "file index {i} out of range ({} files)",
                        self.files.len()
                    )));
                }
                Some(true) => {
                    return Err(EvalError::InvalidInput(format!("file index {i} given twice")));
                }
                Some(s) => *s = true,
            }
        }
        Ok(())
    }
}

/// NAB's score of a corpus: the threshold optimised over all files, the raw total at it, and the
/// normalised score, with every file's score at that threshold.
///
/// # Errors
/// As [`NabScorer::new`].
pub fn score_corpus(files: &[NabFile], scores: &[Vec<f64>], profile: Profile) -> Result<CorpusScore, EvalError> {
    let scorer = NabScorer::new(files, scores, profile)?;
    let all = scorer.all();
    let threshold = scorer.optimal_threshold(&all)?;
    scorer.corpus_score_at(&all, threshold)
}

/// The corpus scored at a given threshold (detections: anomaly score `>= threshold`).
///
/// # Errors
/// As [`NabScorer::new`], and for a NaN threshold.
pub fn score_at_threshold(
    files: &[NabFile],
    scores: &[Vec<f64>],
    profile: Profile,
    threshold: f64,
) -> Result<CorpusScore, EvalError> {
    let scorer = NabScorer::new(files, scores, profile)?;
    scorer.corpus_score_at(&scorer.all(), threshold)
}

/// NAB's per-row sweep scores of a file (`calcSweepScore`; the `S(t)` column NAB appends to a
/// results file), with the standard probationary period.
///
/// # Errors
/// As [`NabScorer::new`] for the file's windows.
pub fn row_sweep_scores(file: &NabFile, profile: Profile) -> Result<Vec<RowSweep>, EvalError> {
    sweep(file, profile, probation_bound(PROBATIONARY_PERCENT, file.timestamps.len()))
}

fn file_error(file: &NabFile, message: String) -> EvalError {
    EvalError::NabFile { file: file.key(), message }
}

/// `calcSweepScore`: walks the rows in file order, entering a window at the first row whose
/// timestamp equals the next window's start and leaving it after the row whose timestamp equals
/// its end. Rows with index `< probation` are probationary.
fn sweep(file: &NabFile, profile: Profile, probation: f64) -> Result<Vec<RowSweep>, EvalError> {
    let ts = &file.timestamps;
    let mut first_index: HashMap<i64, usize> = HashMap::with_capacity(ts.len());
    for (i, &t) in ts.iter().enumerate() {
        first_index.entry(t).or_insert(i);
    }
    for (k, &(start, end)) in file.windows.iter().enumerate() {
        for t in [start, end] {
            if !first_index.contains_key(&t) {
                return Err(file_error(file, format!("window {k}: timestamp {t} is not a row of the file")));
            }
        }
        if start > end {
            return Err(file_error(file, format!("window {k} ends before it starts")));
        }
        if k > 0 && file.windows[k - 1].1 >= start {
            return Err(file_error(file, format!("windows {} and {k} overlap or share a row", k - 1)));
        }
    }

    let max_tp = scaled_sigmoid(-1.0);
    let mut next = 0;
    // (window index, index of its last row, width in rows)
    let mut current: Option<(usize, i64, f64)> = None;
    // (index of the previous window's last row, its width)
    let mut previous: Option<(i64, f64)> = None;
    let mut out = Vec::with_capacity(ts.len());
    for (i, &t) in ts.iter().enumerate() {
        let i_ = i as i64;
        if next < file.windows.len() && t == file.windows[next].0 {
            let (start, end) = file.windows[next];
            let right = first_index[&end] as i64;
            let left = first_index[&start] as i64;
            current = Some((next, right, (right - left + 1) as f64));
            next += 1;
        }
        let sweep = match (current, previous) {
            (Some((_, right, width)), _) => {
                let position = -((right - i_ + 1) as f64) / width;
                scaled_sigmoid(position) * profile.tp_weight / max_tp
            }
            // After a one-row window the position is |d| / 0 = +inf, i.e. far away (NAB itself
            // raises ZeroDivisionError there; its corpus has no such window).
            (None, Some((right, width))) => {
                let position = (right - i_).abs() as f64 / (width - 1.0);
                scaled_sigmoid(position) * profile.fp_weight
            }
            // NAB: -1.0 * fpWeight.
            (None, None) => -profile.fp_weight,
        };
        out.push(RowSweep { sweep, window: current.map(|c| c.0), probationary: (i as f64) < probation });
        if let Some((k, right, width)) = current
            && t == file.windows[k].1
        {
            previous = Some((right, width));
            current = None;
        }
    }
    if next < file.windows.len() {
        return Err(file_error(
            file,
            format!(
                "window {next} is never entered: its start does not follow window {}'s end in row order",
                next.saturating_sub(1)
            ),
        ));
    }
    Ok(out)
}

fn prepare(file: &NabFile, scores: &[f64], profile: Profile, probation: f64) -> Result<Prepared, EvalError> {
    if scores.len() != file.timestamps.len() {
        return Err(file_error(file, format!("{} anomaly scores for {} rows", scores.len(), file.timestamps.len())));
    }
    if let Some((i, s)) = scores.iter().enumerate().find(|(_, s)| !(0.0..=1.0).contains(*s)) {
        return Err(file_error(file, format!("anomaly score {s} at row {i} is outside [0, 1]")));
    }
    let sweeps = sweep(file, profile, probation)?;
    let rows: Vec<ScoredRow> = sweeps
        .iter()
        .zip(scores)
        .map(|(r, &score)| ScoredRow { score, sweep: r.sweep, window: r.window, scorable: !r.probationary })
        .collect();
    let records = score_by_threshold(&rows, file.windows.len(), profile.fn_weight);
    // The null detector: one constant score, so every scorable row at once, in row order.
    let constant: Vec<ScoredRow> = rows.iter().map(|r| ScoredRow { score: 0.5, ..*r }).collect();
    let all_detected_raw = score_by_threshold(&constant, file.windows.len(), profile.fn_weight)
        .last()
        .expect("the table has its 1.1 line")
        .raw;
    let mut scorable = vec![false; file.windows.len()];
    for r in rows.iter().filter(|r| r.scorable) {
        if let Some(w) = r.window {
            scorable[w] = true;
        }
    }
    Ok(Prepared {
        name: file.name.clone(),
        category: file.category.clone(),
        windows: file.windows.len(),
        windows_scorable: scorable.iter().filter(|&&s| s).count(),
        records,
        all_detected_raw,
    })
}

/// `calcScoreByThreshold` on one file's rows: the raw score and counts after each distinct
/// anomaly score, in descending order, starting with the no-detection line at 1.1.
///
/// The raw score is summed as NAB sums its `scoreParts` dict: the false-positive total first,
/// then each window's part in the order the windows first appear in the sorted rows.
fn score_by_threshold(rows: &[ScoredRow], n_windows: usize, fn_weight: f64) -> Vec<Record> {
    let mut order: Vec<&ScoredRow> = rows.iter().filter(|r| r.scorable).collect();
    // Python's sorted(reverse=True) is stable: equal scores keep row order.
    order.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut parts: Vec<Option<f64>> = vec![None; n_windows];
    let mut part_order: Vec<usize> = Vec::new();
    let (mut in_window, mut outside) = (0usize, 0usize);
    for r in &order {
        match r.window {
            Some(w) => {
                in_window += 1;
                if parts[w].is_none() {
                    parts[w] = Some(-fn_weight);
                    part_order.push(w);
                }
            }
            None => outside += 1,
        }
    }
    let mut detected = vec![false; n_windows];
    let (mut fp_sum, mut tp, mut fp, mut windows_detected) = (0.0, 0usize, 0usize, 0usize);
    let record = |threshold: f64, fp_sum: f64, parts: &[Option<f64>], tp, fp, wd| {
        let mut raw = 0.0;
        raw += fp_sum;
        for &w in &part_order {
            raw += parts[w].expect("initialised");
        }
        Record { threshold, raw, tp, tn: outside - fp, fp, fn_: in_window - tp, windows_detected: wd }
    };
    let mut out = Vec::new();
    let mut threshold = NO_DETECTION;
    for r in &order {
        if r.score != threshold {
            out.push(record(threshold, fp_sum, &parts, tp, fp, windows_detected));
            threshold = r.score;
        }
        match r.window {
            Some(w) => {
                tp += 1;
                if !detected[w] {
                    detected[w] = true;
                    windows_detected += 1;
                }
                let part = parts[w].as_mut().expect("initialised");
                *part = part.max(r.sweep);
            }
            None => {
                fp += 1;
                fp_sum += r.sweep;
            }
        }
    }
    out.push(record(threshold, fp_sum, &parts, tp, fp, windows_detected));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::probationary_length;

    const FIVE_MIN: i64 = 300_000;

    /// A file of `n` rows every 5 minutes with windows given as row ranges (inclusive).
    fn file(name: &str, category: &str, n: usize, windows: &[(usize, usize)]) -> NabFile {
        let t0 = 1_396_310_400_000; // 2014-04-01 00:00:00
        let timestamps: Vec<i64> = (0..n as i64).map(|i| t0 + i * FIVE_MIN).collect();
        let windows = windows.iter().map(|&(a, b)| (timestamps[a], timestamps[b])).collect();
        NabFile { name: name.into(), category: category.into(), timestamps, windows }
    }

    /// Scores of 1.0 at the given rows, 0 elsewhere.
    fn hits(n: usize, rows: &[usize]) -> Vec<f64> {
        let mut s = vec![0.0; n];
        for &r in rows {
            s[r] = 1.0;
        }
        s
    }

    /// NAB's test helper `generateWindows`: `k` windows of `size` rows, evenly spaced.
    fn generated_windows(n: usize, k: usize, size: usize) -> Vec<(usize, usize)> {
        let diff = ((n - k * size) as f64 / (k + 1) as f64).round() as usize;
        (0..k)
            .map(|i| {
                let a = diff * (i + 1) + size * i;
                (a, a + size - 1)
            })
            .collect()
    }

    /// One file scored at a threshold with a probationary period of `probation` rows.
    fn score_one(f: &NabFile, scores: Vec<f64>, profile: Profile, probation: usize, t: f64) -> FileScore {
        let s = NabScorer::build(std::slice::from_ref(f), &[scores], profile, &|_| probation as f64).unwrap();
        s.file_score(0, t)
    }

    fn counts(s: &FileScore) -> (usize, usize, usize, usize) {
        (s.tn, s.tp, s.fp, s.fn_)
    }

    /// NAB's unit tests use tp = fn = fp = 1.
    const ONES: Profile = Profile { tp_weight: 1.0, fp_weight: 1.0, fn_weight: 1.0 };

    // ---- tests/integration/sweeper_test.py ----

    #[test]
    fn sweep_scores_positive_in_windows_negative_elsewhere() {
        // testCalcSweepScoreWindowScoreInteraction: 100 rows, windows 30..=39 and 75..=95,
        // probationary fraction 0.1, standard profile.
        let f = file("t.csv", "c", 100, &[(30, 39), (75, 95)]);
        let rows = sweep(&f, Profile::STANDARD, probation_bound(0.1, 100)).unwrap();
        assert_eq!(rows.len(), 100);
        assert_eq!(rows.iter().filter(|r| r.probationary).count(), 10);
        assert_eq!(rows.iter().filter(|r| r.window.is_some()).count(), 10 + 21);
        for r in &rows {
            if r.window.is_some() && !r.probationary {
                assert!(r.sweep > 0.0);
            } else {
                assert!(r.sweep < 0.0);
            }
        }
    }

    #[test]
    fn score_by_threshold_table() {
        // testCalcScoreByThresholdReturnsExpectedScores, fnWeight 5, sweep scores given.
        let row = |score, sweep, window, scorable| ScoredRow { score, sweep, window, scorable };
        let (a, b) = (Some(0), Some(1));
        let rows = [
            row(0.5, -1000.0, None, false),
            row(0.5, -1000.0, None, false),
            row(0.0, -3.0, None, true),
            row(0.2, 20.0, a, true),
            row(0.3, 10.0, a, true),
            row(0.5, 5.0, b, true),
            row(0.5, -3.0, None, true),
        ];
        let rec =
            |threshold, raw, tp, tn, fp, fn_, wd| Record { threshold, raw, tp, tn, fp, fn_, windows_detected: wd };
        assert_eq!(
            score_by_threshold(&rows, 2, 5.0),
            vec![
                rec(1.1, -2.0 * 5.0, 0, 2, 0, 3, 0),
                rec(0.5, 5.0 - 3.0 - 5.0, 1, 1, 1, 2, 1),
                rec(0.3, 5.0 - 3.0 + 10.0, 2, 1, 1, 1, 2),
                rec(0.2, 5.0 - 3.0 + 20.0, 3, 1, 1, 0, 2),
                rec(0.0, 5.0 - 3.0 + 20.0 - 3.0, 3, 0, 2, 0, 2),
            ]
        );
    }

    // ---- tests/integration/scorer_test.py, false_*_test.py, true_positive_test.py ----
    // (Sweeper.scoreDataSet with probationPercent 0 and tp = fp = fn = 1 unless changed.)

    #[test]
    fn null_case_scores_zero() {
        let f = file("t.csv", "c", 10, &[]);
        let s = score_one(&f, vec![0.0; 10], ONES, 0, 0.5);
        assert_eq!(s.raw, 0.0);
        assert_eq!(counts(&s), (10, 0, 0, 0));
    }

    #[test]
    fn false_positive_scaling_balances_random_detections() {
        // testFalsePositiveScaling: 10 random detections in 100 rows with one 10-row window
        // and fp 0.11 average to a score within [-1.5, 0.5]. (A fixed LCG replaces Python's
        // random.sample.)
        let f = file("t.csv", "c", 100, &generated_windows(100, 1, 10));
        let profile = Profile { fp_weight: 0.11, ..ONES };
        let mut state: u64 = 12345;
        let mut total = 0.0;
        for _ in 0..20 {
            let mut rows: Vec<usize> = Vec::new();
            while rows.len() < 10 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (state >> 33) as usize % 100;
                if !rows.contains(&r) {
                    rows.push(r);
                }
            }
            total += score_one(&f, hits(100, &rows), profile, 0, 0.5).raw;
        }
        let avg = total / 20.0;
        assert!((-1.5..=0.5).contains(&avg), "{avg}");
    }

    #[test]
    fn reward_low_false_negatives_profile() {
        // testRewardLowFalseNegatives: no detection, one 10-row window; fn 2 doubles the score.
        let f = file("t.csv", "c", 100, &generated_windows(100, 1, 10));
        let low_fn = Profile { fn_weight: 2.0, fp_weight: 0.055, ..ONES };
        let s1 = score_one(&f, vec![0.0; 100], ONES, 0, 0.5);
        let s2 = score_one(&f, vec![0.0; 100], low_fn, 0, 0.5);
        assert_eq!(s1.raw, 0.5 * s2.raw);
        assert_eq!(counts(&s1), (90, 0, 0, 10));
        assert_eq!(counts(&s2), (90, 0, 0, 10));
    }

    #[test]
    fn reward_low_false_positives_profile() {
        // testRewardLowFalsePositives: one detection, no window; fp 2 doubles the score.
        let f = file("t.csv", "c", 100, &[]);
        let low_fp = Profile { fp_weight: 2.0, fn_weight: 0.5, ..ONES };
        let s1 = score_one(&f, hits(100, &[0]), ONES, 0, 0.5);
        let s2 = score_one(&f, hits(100, &[0]), low_fp, 0, 0.5);
        assert_eq!(s1.raw, 0.5 * s2.raw);
        assert_eq!(counts(&s1), (99, 0, 1, 0));
    }

    #[test]
    fn scoring_all_metrics() {
        // testScoringAllMetrics: windows 30..=34 and 65..=69; detections at 30 (TP), 31 (a
        // second TP in the same window, not counted) and 37 (FP 3 rows after a 5-row window):
        // 1 (first window at its start) - 1 (second window missed)
        //   + scaledSigmoid(3/4) = -0.95404...
        let w = generated_windows(100, 2, 5);
        assert_eq!(w, vec![(30, 34), (65, 69)]);
        let f = file("t.csv", "c", 100, &w);
        let s = score_one(&f, hits(100, &[30, 31, 37]), ONES, 0, 0.5);
        assert!((s.raw - -0.9540).abs() < 5e-5, "{}", s.raw);
        assert_eq!(s.raw, 1.0 - 1.0 + scaled_sigmoid(0.75));
        assert_eq!(counts(&s), (89, 2, 1, 8));
        assert_eq!((s.windows_detected, s.windows_scorable), (1, 2));
    }

    #[test]
    fn false_positives() {
        let w = generated_windows(1000, 1, 10);
        let f = file("t.csv", "c", 1000, &w);
        // testFalsePositiveMeansNegativeScore: an FP before the window, and the window missed.
        let one = score_one(&f, hits(1000, &[0]), ONES, 0, 0.5);
        assert!(one.raw < 0.0);
        assert_eq!(one.raw, -1.0 - 1.0);
        assert_eq!(counts(&one), (989, 0, 1, 10));
        // testTwoFalsePositivesIsWorseThanOne.
        let two = score_one(&f, hits(1000, &[0, 1]), ONES, 0, 0.5);
        assert!(two.raw < one.raw);
        assert_eq!(counts(&two), (988, 0, 2, 10));
        // testOneFalsePositiveNoWindow: exactly -fpWeight.
        let g = file("t.csv", "c", 1000, &[]);
        let s = score_one(&g, hits(1000, &[0]), ONES, 0, 0.5);
        assert_eq!(s.raw, -ONES.fp_weight);
        assert_eq!(counts(&s), (999, 0, 1, 0));
        // testEarlierFalsePositiveAfterWindowIsBetter: 10 rows, window 4..=5.
        let h = file("t.csv", "c", 10, &generated_windows(10, 1, 2));
        let s1 = score_one(&h, hits(10, &[6]), ONES, 0, 0.5);
        let s2 = score_one(&h, hits(10, &[7]), ONES, 0, 0.5);
        assert!(s1.raw > s2.raw);
        assert_eq!(counts(&s1), (7, 0, 1, 2));
        assert_eq!(counts(&s2), (7, 0, 1, 2));
    }

    #[test]
    fn false_negatives() {
        // testFalseNegativeCausesNegativeScore and testFourFalseNegatives (threshold 1, all 0).
        let f = file("t.csv", "c", 1000, &generated_windows(1000, 1, 10));
        let s = score_one(&f, vec![0.0; 1000], ONES, 0, 1.0);
        assert_eq!(s.raw, -ONES.fn_weight);
        assert_eq!(counts(&s), (990, 0, 0, 10));
        let g = file("t.csv", "c", 2000, &generated_windows(2000, 4, 10));
        let s = score_one(&g, vec![0.0; 2000], ONES, 0, 1.0);
        assert_eq!(s.raw, 4.0 * -ONES.fn_weight);
        assert_eq!(counts(&s), (1960, 0, 0, 40));
    }

    #[test]
    fn true_positives() {
        let w = generated_windows(10, 1, 2);
        assert_eq!(w, vec![(4, 5)]);
        let f = file("t.csv", "c", 10, &w);
        // testFirstTruePositiveWithinWindow: exactly tpWeight.
        let first = score_one(&f, hits(10, &[4]), ONES, 0, 0.5);
        assert_eq!(first.raw, ONES.tp_weight);
        assert_eq!(counts(&first), (8, 1, 0, 1));
        // testEarlierTruePositiveIsBetter.
        let last = score_one(&f, hits(10, &[5]), ONES, 0, 0.5);
        assert!(first.raw > last.raw);
        assert_eq!(counts(&last), (8, 1, 0, 1));
        // testOnlyScoreFirstTruePositiveWithinWindow.
        let both = score_one(&f, hits(10, &[4, 5]), ONES, 0, 0.5);
        assert_eq!(both.raw, first.raw);
        assert_eq!(counts(&both), (8, 2, 0, 0));
        // testTruePositivesWithDifferentWindowSizes: a window's first row is worth tpWeight
        // whatever its width.
        let w3 = generated_windows(10, 1, 3);
        let g = file("t.csv", "c", 10, &w3);
        let s3 = score_one(&g, hits(10, &[w3[0].0]), ONES, 0, 0.5);
        assert_eq!(s3.raw, first.raw);
        assert_eq!(counts(&s3), (7, 1, 0, 2));
    }

    #[test]
    fn true_positive_at_right_edge_is_about_zero() {
        // testTruePositiveAtRightEdgeOfWindow: 1000 rows, one 100-row window 450..=549. A
        // detection on its last row is worth scaledSigmoid(-1/100)/scaledSigmoid(-1) = 0.0253;
        // one just after it costs the window (-1) and scaledSigmoid(1/99) = -0.0252.
        let w = generated_windows(1000, 1, 100);
        assert_eq!(w, vec![(450, 549)]);
        let f = file("t.csv", "c", 1000, &w);
        let tp = score_one(&f, hits(1000, &[549]), ONES, 0, 0.5);
        let fp = score_one(&f, hits(1000, &[550]), ONES, 0, 0.5);
        assert!((tp.raw + fp.raw + 1.0).abs() < 5e-4);
        assert_eq!(counts(&tp), (900, 1, 0, 99));
        assert_eq!(counts(&fp), (899, 0, 1, 100));
    }

    // ---- tests/unit/scorer_test.py: tp 1.1, fp 0.11, fn 1.2, probation in rows ----

    const UNIT: Profile = Profile { tp_weight: 1.1, fp_weight: 0.11, fn_weight: 1.2 };

    fn unit_score(predictions: [u8; 7], windows: &[(usize, usize)], n: usize, probation: usize) -> f64 {
        let f = file("t.csv", "c", n, windows);
        let scores = predictions[..n].iter().map(|&p| f64::from(p)).collect();
        score_one(&f, scores, UNIT, probation, 0.5).raw
    }

    #[test]
    fn unit_scorer_cases() {
        let close = |a: f64, b: f64| assert!((a - b).abs() < 5e-8, "{a} vs {b}");
        let first = 0.8482836399575131 * UNIT.tp_weight / 0.9866142981514305;
        let second = 0.9866142981514305 * UNIT.tp_weight / 0.9866142981514305;
        // testNull, testFalsePositives, testFalseNegatives.
        close(unit_score([0; 7], &[], 5, 0), 0.0);
        close(unit_score([0, 1, 0, 1, 0, 0, 0], &[], 5, 0), -2.0 * UNIT.fp_weight);
        close(unit_score([0; 7], &[(1, 2), (4, 5)], 7, 0), -2.0 * UNIT.fn_weight);
        // testFalsePositivesInProbationary, testFalsePositivesBeforeAndAfterProbationary.
        close(unit_score([0, 1, 0, 1, 0, 0, 0], &[], 5, 4), 0.0);
        close(unit_score([0, 1, 0, 1, 0, 0, 0], &[], 5, 3), -UNIT.fp_weight);
        // testTruePositives1, testTruePositives1WithFN.
        close(unit_score([0, 0, 1, 0, 0, 0, 0], &[(1, 2)], 7, 0), first);
        close(unit_score([0, 0, 1, 0, 0, 0, 0], &[(1, 2), (4, 5)], 7, 0), first - UNIT.fn_weight);
        // testTruePositives2, testTruePositives3, testTruePositivesMultiple.
        close(unit_score([0, 0, 0, 0, 1, 0, 0], &[(4, 5)], 7, 0), second);
        close(unit_score([0, 0, 0, 0, 1, 1, 0], &[(4, 5)], 7, 0), second);
        close(unit_score([0, 0, 1, 0, 1, 0, 0], &[(1, 2), (4, 5)], 7, 0), first + second);
    }

    // ---- tests/unit/optimizer_test.py: the threshold the optimizer picks ----

    fn optimizer_files() -> (Vec<NabFile>, Vec<Vec<f64>>) {
        let files = vec![
            file("data1.csv", "c", 16, &[(3, 6), (9, 11)]),
            file("data2.csv", "c", 4, &[]),
            file("data3.csv", "c", 4, &[(1, 2)]),
        ];
        let scores = vec![
            vec![0.0, 0.2, 0.1, 0.1, 0.3, 0.4, 0.1, 0.1, 0.1, 0.9, 0.7, 0.1, 0.3, 0.2, 0.01, 0.11],
            vec![0.12, 0.31, 0.41, 0.21],
            vec![0.0, 0.6, 0.9, 0.4],
        ];
        (files, scores)
    }

    #[test]
    fn optimizer_picks_nab_thresholds() {
        let (files, scores) = optimizer_files();
        // Row 0 of each file is probationary.
        let s = NabScorer::build(&files, &scores, Profile::STANDARD, &|_| 1.0).unwrap();
        // testComputeThresholdScoresComplex, ...NoWindows, ...Combined, ...PerfectDetection.
        assert_eq!(s.optimal_threshold(&[0]).unwrap(), 0.3);
        assert!(s.optimal_threshold(&[1]).unwrap() > 1.0);
        assert_eq!(s.optimal_threshold(&[0, 1]).unwrap(), 0.4);
        assert_eq!(s.optimal_threshold(&[2]).unwrap(), 0.6);
    }

    #[test]
    fn optimizer_score_equals_scoring_at_its_threshold() {
        // testComputeThresholdScoresPerfectDetection's second half: at every threshold of the
        // table, the table's score is the scorer's score at that threshold.
        let (files, scores) = optimizer_files();
        let s = NabScorer::build(&files, &scores, Profile::STANDARD, &|_| 1.0).unwrap();
        for r in &s.files[2].records {
            assert_eq!(s.file_score(2, r.threshold).raw, r.raw);
        }
        // At 0.6 rows 1 and 2 are detected: the window's first row is worth exactly tpWeight.
        assert_eq!(s.file_score(2, 0.6).raw, 1.0);
    }

    // ---- known answers asked of the crate ----

    /// Three files in two categories, windows after the probationary period.
    fn corpus() -> Vec<NabFile> {
        vec![
            file("a.csv", "cat1", 200, &[(60, 79), (150, 169)]),
            file("b.csv", "cat1", 100, &[(40, 49)]),
            file("c.csv", "cat2", 300, &[(200, 229)]),
        ]
    }

    #[test]
    fn null_detector_scores_zero() {
        let files = corpus();
        for c in [0.0, 0.5, 1.0] {
            let scores: Vec<Vec<f64>> = files.iter().map(|f| vec![c; f.timestamps.len()]).collect();
            let s = score_corpus(&files, &scores, Profile::STANDARD).unwrap();
            assert_eq!(s.threshold, 1.1, "constant {c}: nothing detected is best");
            assert_eq!(s.normalized, 0.0);
            assert_eq!(s.raw, -4.0);
            assert_eq!((s.null_raw, s.perfect_raw), (-4.0, 4.0));
        }
    }

    #[test]
    fn constant_detector_detecting_everything() {
        // At its own score every row is a detection: each window is hit at its first row (+1
        // each) and every row outside costs up to 0.11. Far below the null detector.
        let files = corpus();
        let scores: Vec<Vec<f64>> = files.iter().map(|f| vec![0.5; f.timestamps.len()]).collect();
        let s = score_at_threshold(&files, &scores, Profile::STANDARD, 0.5).unwrap();
        assert!(s.normalized < -100.0, "{}", s.normalized);
        assert!(s.per_file.iter().all(|f| f.windows_detected == f.windows));
        assert_eq!(s.per_file[1].fp, 85 - 10);
    }

    #[test]
    fn hitting_every_window_at_its_first_row_scores_100() {
        let files = corpus();
        let scores: Vec<Vec<f64>> = files
            .iter()
            .map(|f| {
                let n = f.timestamps.len();
                let starts: Vec<usize> =
                    f.windows.iter().map(|w| f.timestamps.iter().position(|&t| t == w.0).unwrap()).collect();
                hits(n, &starts)
            })
            .collect();
        for (_, profile) in Profile::ALL {
            let s = score_corpus(&files, &scores, profile).unwrap();
            assert_eq!(s.threshold, 1.0);
            assert_eq!(s.raw, 4.0 * profile.tp_weight);
            assert_eq!(s.normalized, 100.0);
            assert!(s.per_file.iter().all(|f| f.fp == 0 && f.windows_detected == f.windows));
        }
    }

    #[test]
    fn one_window_worked_by_hand() {
        // 100 rows: probation floor(0.15 * 100) = 15 rows. One window, rows 50..=53 (width 4).
        // Detections: row 52 (score 0.9), row 56 (0.8), row 30 (0.3); row 5 (1.0) is
        // probationary.
        let f = file("t.csv", "c", 100, &[(50, 53)]);
        let mut scores = vec![0.0; 100];
        (scores[52], scores[56], scores[30], scores[5]) = (0.9, 0.8, 0.3, 1.0);
        let s = NabScorer::new(std::slice::from_ref(&f), &[scores], Profile::STANDARD).unwrap();

        // Row 52: position -(53 - 52 + 1) / 4 = -0.5, worth
        //   scaledSigmoid(-0.5) / scaledSigmoid(-1) = 0.848283.../0.986614... = 0.859792...
        let tp = (2.0 / (1.0 + (-2.5f64).exp()) - 1.0) / (2.0 / (1.0 + (-5.0f64).exp()) - 1.0);
        // Row 56, after the window: position |53 - 56| / (4 - 1) = 1, costs
        //   0.11 * scaledSigmoid(1) = 0.11 * (2 / (1 + e^5) - 1) = -0.108527...
        let fp_after = 0.11 * (2.0 / (1.0 + 5.0f64.exp()) - 1.0);
        // Row 30, before any window: -0.11.
        let fp_before = -0.11;
        assert!((tp - 0.8597925669097837).abs() < 1e-15);
        assert!((fp_after - -0.10852757279665734).abs() < 1e-15);

        let raw = |t: f64| s.at_threshold(&[0], t).unwrap().raw;
        assert_eq!(raw(1.1), -1.0); // nothing: the window is missed
        assert_eq!(raw(1.0), -1.0); // the 1.0 is in the probationary period
        assert!((raw(0.9) - tp).abs() < 1e-15);
        assert!((raw(0.8) - (tp + fp_after)).abs() < 1e-15);
        assert!((raw(0.3) - (tp + fp_after + fp_before)).abs() < 1e-15);
        // 0.3 < T <= 0.8 all mean the same detections.
        assert_eq!(raw(0.5), raw(0.8));

        let best = s.optimize(&[0]).unwrap();
        assert_eq!(best.threshold, 0.9);
        assert_eq!((best.null_raw, best.perfect_raw), (-1.0, 1.0));
        // 100 * (0.859792 - (-1)) / (1 - (-1)) = 92.98962...
        assert!((best.normalized - 100.0 * (tp + 1.0) / 2.0).abs() < 1e-12);
        assert!((best.normalized - 92.98962834548918).abs() < 1e-12);
        let fs = s.file_score(0, 0.3);
        // Scorable rows: 85; in the window 4 (one detected), outside 81 (two detected).
        assert_eq!(counts(&fs), (79, 1, 2, 3));
        // The null detector would rather detect nothing: every row costs 35 * 0.11 before the
        // window alone.
        assert!(s.files[0].all_detected_raw < -1.0);
    }

    #[test]
    fn false_positive_before_any_window_costs_fp_weight() {
        for (_, profile) in Profile::ALL {
            let f = file("t.csv", "c", 100, &[(60, 69)]);
            let none = score_one(&f, vec![0.0; 100], profile, 15, 0.5).raw;
            let one = score_one(&f, hits(100, &[20]), profile, 15, 0.5).raw;
            assert_eq!(none, -profile.fn_weight);
            // NAB sums the false positives first: (0 - fp) + (-fn).
            assert_eq!(one, -profile.fp_weight + -profile.fn_weight);
        }
    }

    #[test]
    fn false_positive_right_after_a_window_costs_almost_nothing() {
        // A 100-row window; the row after it sits at 1/99 of a window width:
        // 0.11 * scaledSigmoid(1/99) = -0.00278, against 0.11 far away.
        let f = file("t.csv", "c", 1000, &[(300, 399)]);
        let near = score_one(&f, hits(1000, &[400]), Profile::STANDARD, 150, 0.5).raw;
        let far = score_one(&f, hits(1000, &[800]), Profile::STANDARD, 150, 0.5).raw;
        assert_eq!(near, -0.002777187474616506 + -1.0);
        assert_eq!(far, -0.11 + -1.0);
    }

    #[test]
    fn probationary_rows_are_ignored() {
        // 100 rows: rows 0..15 are probationary. A window wholly inside (5..=9) neither rewards
        // nor penalises, but NAB's perfect score still counts it; a window straddling the end
        // of the period (12..=20) counts, with its first scorable row worth less than tpWeight.
        let f = file("t.csv", "c", 100, &[(5, 9), (12, 20), (60, 69)]);
        let quiet = score_one(&f, vec![0.0; 100], Profile::STANDARD, 15, 0.5);
        assert_eq!(quiet.raw, -2.0);
        assert_eq!((quiet.windows, quiet.windows_scorable), (3, 2));
        let noisy = score_one(&f, hits(100, &[0, 3, 5, 6, 12, 14]), Profile::STANDARD, 15, 0.5);
        assert_eq!(noisy.raw, quiet.raw);
        assert_eq!(counts(&noisy), counts(&quiet));
        // Row 15 of the window 12..=20 (width 9): position -(20 - 15 + 1) / 9.
        let late = score_one(&f, hits(100, &[15]), Profile::STANDARD, 15, 0.5);
        let worth = scaled_sigmoid(-6.0 / 9.0) / scaled_sigmoid(-1.0);
        assert!((late.raw - (-1.0 + worth)).abs() < 1e-15);
        // With NAB's rule on the whole scorer: null -2, perfect 3.
        let s = NabScorer::new(std::slice::from_ref(&f), &[vec![0.0; 100]], Profile::STANDARD)
            .unwrap()
            .optimize(&[0])
            .unwrap();
        assert_eq!((s.null_raw, s.perfect_raw, s.normalized), (-2.0, 3.0, 0.0));
    }

    #[test]
    fn window_limits_follow_nab_row_order() {
        // NAB's files have repeated timestamps. A window ends at the first row with its end
        // timestamp; its width counts from the first occurrences of its ends.
        let mut f = file("t.csv", "c", 40, &[]);
        f.timestamps[21] = f.timestamps[20];
        f.windows = vec![(f.timestamps[10], f.timestamps[20])];
        let rows = row_sweep_scores(&f, Profile::STANDARD).unwrap();
        assert_eq!(rows[20].window, Some(0));
        assert_eq!(rows[21].window, None);
        // Row 21 is the first row after the window (width 11): |20 - 21| / 10.
        assert_eq!(rows[21].sweep, scaled_sigmoid(0.1) * 0.11);
        assert_eq!(rows[10].sweep, 1.0);
    }

    #[test]
    fn bad_windows_and_scores_are_refused() {
        let f = file("t.csv", "c", 50, &[(10, 19), (30, 39)]);
        let ok = vec![0.0; 50];
        let err =
            |f: &NabFile, s: Vec<f64>| NabScorer::new(std::slice::from_ref(f), &[s], Profile::STANDARD).unwrap_err();
        let mut g = f.clone();
        g.windows[1].0 += 1; // not a row's timestamp
        assert!(matches!(err(&g, ok.clone()), EvalError::NabFile { .. }));
        let mut g = f.clone();
        g.windows[1].0 = g.timestamps[19]; // shares row 19
        assert!(matches!(err(&g, ok.clone()), EvalError::NabFile { .. }));
        let mut g = f.clone();
        g.windows.swap(0, 1);
        assert!(matches!(err(&g, ok.clone()), EvalError::NabFile { .. }));
        assert!(matches!(err(&f, vec![0.0; 49]), EvalError::NabFile { .. }));
        let mut s = ok.clone();
        s[3] = 1.5;
        assert!(matches!(err(&f, s), EvalError::NabFile { .. }));
        let mut s = ok.clone();
        s[3] = f64::NAN;
        assert!(matches!(err(&f, s), EvalError::NabFile { .. }));
        assert!(NabScorer::new(std::slice::from_ref(&f), &[], Profile::STANDARD).is_err());
        let s = NabScorer::new(&[f], &[ok], Profile::STANDARD).unwrap();
        assert!(s.at_threshold(&[1], 0.5).is_err());
        assert!(s.at_threshold(&[0, 0], 0.5).is_err());
        assert!(s.at_threshold(&[0], f64::NAN).is_err());
    }

    /// A direct reading of NAB's rules, written independently of the sweep: for each window
    /// the earliest scorable detection (or -fn if there is none and the window has a scorable
    /// row); for each scorable detection outside windows, the distance to the end of the last
    /// window before it (or -fp). Rows are 5 minutes apart, so indices stand for timestamps.
    fn reference_raw(f: &NabFile, scores: &[f64], p: Profile, probation: usize, t: f64) -> f64 {
        let idx = |ts: i64| f.timestamps.iter().position(|&x| x == ts).unwrap();
        let w: Vec<(usize, usize)> = f.windows.iter().map(|&(a, b)| (idx(a), idx(b))).collect();
        let n = scores.len();
        let detected = |i: usize| i >= probation && scores[i] >= t;
        let mut raw = 0.0;
        for &(a, b) in &w {
            let width = (b - a + 1) as f64;
            if let Some(i) = (a..=b).find(|&i| detected(i)) {
                let pos = -((b - i + 1) as f64) / width;
                raw += scaled_sigmoid(pos) * p.tp_weight / scaled_sigmoid(-1.0);
            } else if b >= probation {
                raw -= p.fn_weight;
            }
        }
        for i in (0..n).filter(|&i| detected(i)) {
            if w.iter().any(|&(a, b)| a <= i && i <= b) {
                continue;
            }
            raw += match w.iter().rfind(|&&(_, b)| b < i) {
                None => -p.fp_weight,
                Some(&(a, b)) => scaled_sigmoid((i - b) as f64 / (b - a) as f64) * p.fp_weight,
            };
        }
        raw
    }

    #[test]
    fn scorer_matches_a_direct_reading_of_the_rules() {
        let mut state: u64 = 7;
        let mut next = |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        for trial in 0..40 {
            let mut files = Vec::new();
            let mut scores = Vec::new();
            for k in 0..3 {
                let n = 50 + next(300) as usize;
                let mut windows = Vec::new();
                let mut at = next(n as u64 / 2) as usize;
                while windows.len() < 3 {
                    let len = 2 + next(20) as usize;
                    if at + len >= n {
                        break;
                    }
                    windows.push((at, at + len - 1));
                    at += len + 1 + next(60) as usize;
                }
                files.push(file(&format!("{k}.csv"), &format!("c{}", k % 2), n, &windows));
                // Scores on a coarse grid, so thresholds tie across rows and files.
                scores.push((0..n).map(|_| next(21) as f64 / 20.0).collect::<Vec<f64>>());
            }
            let profile = Profile::ALL[trial % 3].1;
            let s = NabScorer::new(&files, &scores, profile).unwrap();
            let all = s.all();
            let mut best = (1.1, f64::NEG_INFINITY);
            for t in [1.1, 1.0, 0.95, 0.5, 0.3, 0.05, 0.0, 0.42] {
                let mut total = 0.0;
                for (i, f) in files.iter().enumerate() {
                    let p = probationary_length(f.timestamps.len());
                    let r = reference_raw(f, &scores[i], profile, p, t);
                    assert!((s.file_score(i, t).raw - r).abs() < 1e-9, "trial {trial} file {i} t {t}");
                    total += r;
                }
                assert!((s.at_threshold(&all, t).unwrap().raw - total).abs() < 1e-9);
                if t != 0.42 && total > best.1 + 1e-12 {
                    best = (t, total);
                }
            }
            // Every candidate threshold (the grid) checked by brute force.
            let mut brute = (1.1, s.at_threshold(&all, 1.1).unwrap().raw);
            for g in (0..=20).rev() {
                let t = g as f64 / 20.0;
                let raw = s.at_threshold(&all, t).unwrap().raw;
                if raw > brute.1 + 1e-12 {
                    brute = (t, raw);
                }
            }
            assert_eq!(s.optimal_threshold(&all).unwrap(), brute.0, "trial {trial}");
            assert!(best.1 <= brute.1 + 1e-12);
        }
    }

    #[test]
    fn subsets_and_categories() {
        let files = corpus();
        let scores: Vec<Vec<f64>> = files
            .iter()
            .enumerate()
            .map(|(k, f)| (0..f.timestamps.len()).map(|i| ((i * 37 + k * 11) % 101) as f64 / 100.0).collect())
            .collect();
        let s = NabScorer::new(&files, &scores, Profile::STANDARD).unwrap();
        let cats = s.categories();
        assert_eq!(cats["cat1"], vec![0, 1]);
        assert_eq!(cats["cat2"], vec![2]);
        // A category scored inside the corpus equals the category scored on its own.
        let own = s.per_category(None);
        for (c, idx) in &cats {
            let sub_files: Vec<NabFile> = idx.iter().map(|&i| files[i].clone()).collect();
            let sub_scores: Vec<Vec<f64>> = idx.iter().map(|&i| scores[i].clone()).collect();
            let alone = score_corpus(&sub_files, &sub_scores, Profile::STANDARD).unwrap();
            assert_eq!(own[c].threshold, alone.threshold);
            assert_eq!(own[c].normalized, alone.normalized);
        }
        // At the corpus threshold, the categories' raw scores add up to the corpus's.
        let corpus = score_corpus(&files, &scores, Profile::STANDARD).unwrap();
        let at = s.per_category(Some(corpus.threshold));
        let sum: f64 = at.values().map(|c| c.raw).sum();
        assert!((sum - corpus.raw).abs() < 1e-12);
        assert_eq!(corpus.per_file.len(), 3);
        assert_eq!(corpus.per_file.iter().map(|f| f.raw).sum::<f64>(), corpus.raw);
    }

    #[test]
    fn null_is_the_null_detectors_own_optimum() {
        // A file that is nearly all window: detecting every row beats detecting nothing, so
        // NAB's null detector (constant 0.5) takes that, and so does the baseline.
        let f = file("t.csv", "c", 100, &[(15, 98)]);
        let s = NabScorer::new(std::slice::from_ref(&f), &[vec![0.5; 100]], Profile::STANDARD).unwrap();
        let r = s.optimize(&[0]).unwrap();
        assert_eq!(r.threshold, 0.5);
        assert!(r.null_raw > -1.0);
        assert_eq!(r.raw, r.null_raw);
        assert_eq!(r.normalized, 0.0);
    }
}
