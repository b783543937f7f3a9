//! The offline (batch) iCID method, spec §§1–4: scale, score windows for each psi candidate, pick
//! psi by minimum approximate entropy, threshold at `mean + alpha·std`, report change intervals.

use crate::apen::{approximate_entropy_default, sample_std};
use crate::kernel::{IsolationKernel, NearestPath};
use crate::score::pair_stats;
use crate::{IcidError, Layout, Scaled, Windows, minmax_scale};

/// The psi candidates of the paper and the authors' code.
pub const DEFAULT_PSI_CANDIDATES: [usize; 6] = [2, 4, 8, 16, 32, 64];
/// Partitionings: the authors' hard-coded value.
pub const DEFAULT_T: usize = 200;

/// How psi is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsiChoice {
    /// Score every candidate and keep the one whose point scores have the lowest approximate
    /// entropy (first candidate on ties).
    Auto(Vec<usize>),
    /// Use this psi.
    Fixed(usize),
}

impl Default for PsiChoice {
    fn default() -> Self {
        PsiChoice::Auto(DEFAULT_PSI_CANDIDATES.to_vec())
    }
}

/// Parameters of one offline run. No `Default`: the window has no sensible value without the data
/// (see [`suggest_window`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Window length in rows.
    pub window: usize,
    /// Threshold multiplier: flag points whose score is above `mean + alpha·std`.
    pub alpha: f64,
    /// Partitionings.
    pub t: usize,
    /// psi selection.
    pub psi: PsiChoice,
    /// Seed of the partitionings.
    pub seed: u64,
    /// Window layout.
    pub layout: Layout,
    /// Nearest-centre implementation.
    pub path: NearestPath,
}

impl Params {
    /// Paper defaults for everything but the window and alpha.
    pub fn new(window: usize, alpha: f64) -> Self {
        Self {
            window,
            alpha,
            t: DEFAULT_T,
            psi: PsiChoice::default(),
            seed: 0,
            layout: Layout::Shared,
            path: NearestPath::Auto,
        }
    }
}

/// A window length for a series of `n` rows when the user gives none: about `sqrt(n)` rounded to
/// a multiple of 5, within the paper's grid 10..=400, and at most `n/20` so that psi selection and
/// the threshold rest on at least 20 window scores (fewer for very short series, at least 2 rows).
pub fn suggest_window(n: usize) -> usize {
    let root = ((n as f64).sqrt() / 5.0).round() as usize * 5;
    root.clamp(10, 400).min((n / 20).max(2))
}

/// A change interval: half-open row range `[start, end)` whose point scores exceed the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// Largest normalised point score inside.
    pub peak_score: f64,
}

/// One psi candidate's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// psi asked for.
    pub psi: usize,
    /// psi used (clipped to n).
    pub psi_used: usize,
    /// Approximate entropy of its point scores (`None` when psi was fixed).
    pub apen: Option<f64>,
}

/// Result of [`detect`].
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// The windows.
    pub windows: Windows,
    /// psi selected (as asked for; see `candidates` for the clipped value).
    pub psi: usize,
    /// Every candidate scored.
    pub candidates: Vec<Candidate>,
    /// Raw window scores, `1 − cos`, window 0 scored 0.
    pub window_scores: Vec<f64>,
    /// Point scores, min-max normalised to [0, 1] over the series.
    pub point_scores: Vec<f64>,
    /// `mean + alpha·std` of the point scores.
    pub threshold: f64,
    /// Maximal runs of points above the threshold.
    pub intervals: Vec<Interval>,
}

impl Detection {
    /// First row of each interval.
    pub fn change_points(&self) -> Vec<usize> {
        self.intervals.iter().map(|iv| iv.start).collect()
    }
}

pub(crate) struct Scored {
    pub(crate) kernel: IsolationKernel,
    pub(crate) psi_used: usize,
    pub(crate) window_scores: Vec<f64>,
    pub(crate) point_scores: Vec<f64>,
    pub(crate) apen: Option<f64>,
}

/// Derives the seed of one psi candidate's kernel, so candidates use unrelated partitionings.
pub(crate) fn candidate_seed(seed: u64, psi: usize) -> u64 {
    let mut z = seed ^ (psi as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Samples one candidate's kernel and scores `windows` with it (with its ApEn if asked).
/// `lean` builds the kernel without 1-D bucket tables (the streaming detector keeps it).
pub(crate) fn score_candidate(
    points: &Scaled,
    windows: &Windows,
    psi: usize,
    params: &Params,
    with_apen: bool,
    lean: bool,
) -> Result<Scored, IcidError> {
    let seed = candidate_seed(params.seed, psi);
    let kernel = if lean {
        IsolationKernel::sample_lean(points, psi, params.t, seed)?
    } else {
        IsolationKernel::sample(points, psi, params.t, seed)?
    };
    let window_scores = pair_stats(&kernel, points, windows, params.path).scores();
    let mut point_scores = windows.point_scores(&window_scores);
    normalise(&mut point_scores);
    let apen = with_apen.then(|| approximate_entropy_default(&point_scores));
    Ok(Scored { psi_used: kernel.psi(), kernel, window_scores, point_scores, apen })
}

/// Index of the lowest ApEn (first on ties; a missing ApEn counts as 0).
pub(crate) fn lowest_apen(scored: &[Scored]) -> usize {
    let mut best = 0;
    for (i, s) in scored.iter().enumerate() {
        if s.apen.unwrap_or(0.0) < scored[best].apen.unwrap_or(0.0) {
            best = i;
        }
    }
    best
}

/// Min-max normalises in place; an all-equal series becomes all zeros (MATLAB would give NaN).
pub(crate) fn normalise(x: &mut [f64]) {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    for v in x.iter_mut() {
        *v = if span > 0.0 { (*v - lo) / span } else { 0.0 };
    }
}

/// Runs offline iCID over `data` (row-major, `d` columns).
///
/// # Errors
/// Shape or non-finite data, a window giving fewer than two windows, psi outside `1..=256`,
/// `t == 0`, a non-finite alpha, or an empty candidate list.
pub fn detect(data: &[f64], d: usize, params: &Params) -> Result<Detection, IcidError> {
    if !params.alpha.is_finite() {
        return Err(IcidError::param("alpha", "must be a finite number"));
    }
    let points = minmax_scale(data, d)?;
    let windows = Windows::new(points.n, params.window, params.layout)?;
    let (list, auto) = match &params.psi {
        PsiChoice::Auto(c) if c.is_empty() => return Err(IcidError::param("psi", "no candidates given")),
        PsiChoice::Auto(c) => (c.clone(), true),
        PsiChoice::Fixed(p) => (vec![*p], false),
    };
    let run = |&psi: &usize| score_candidate(&points, &windows, psi, params, auto, false);
    #[cfg(feature = "parallel")]
    let scored: Vec<Result<Scored, IcidError>> = {
        use rayon::prelude::*;
        list.par_iter().map(run).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let scored: Vec<Result<Scored, IcidError>> = list.iter().map(run).collect();
    let scored = scored.into_iter().collect::<Result<Vec<_>, _>>()?;
    let best = lowest_apen(&scored);
    let candidates =
        list.iter().zip(&scored).map(|(&psi, s)| Candidate { psi, psi_used: s.psi_used, apen: s.apen }).collect();
    let chosen = scored.into_iter().nth(best).expect("best indexes scored");
    let p = &chosen.point_scores;
    let mean = p.iter().sum::<f64>() / p.len() as f64;
    let threshold = mean + params.alpha * sample_std(p);
    let intervals = runs_above(p, threshold);
    Ok(Detection {
        n: points.n,
        d,
        windows,
        psi: list[best],
        candidates,
        window_scores: chosen.window_scores,
        point_scores: chosen.point_scores,
        threshold,
        intervals,
    })
}

/// Maximal runs of `x > threshold`, as half-open ranges with their peak.
pub fn runs_above(x: &[f64], threshold: f64) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < x.len() {
        if x[i] > threshold {
            let start = i;
            let mut peak = x[i];
            while i < x.len() && x[i] > threshold {
                peak = peak.max(x[i]);
                i += 1;
            }
            out.push(Interval { start, end: i, peak_score: peak });
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_windows_stay_in_the_paper_grid_and_leave_twenty_windows() {
        assert_eq!(suggest_window(3000), 55);
        assert_eq!(suggest_window(100_000), 315);
        assert_eq!(suggest_window(10_000_000), 400);
        assert_eq!(suggest_window(100), 5);
        assert_eq!(suggest_window(10), 2);
        for n in [40, 100, 1000, 5000] {
            assert!(n / suggest_window(n) >= 20);
        }
    }

    #[test]
    fn runs_are_half_open_and_carry_their_peak() {
        let iv = runs_above(&[0.0, 0.5, 0.9, 0.1, 0.7, 0.7], 0.4);
        assert_eq!(
            iv,
            vec![Interval { start: 1, end: 3, peak_score: 0.9 }, Interval { start: 4, end: 6, peak_score: 0.7 }]
        );
        assert!(runs_above(&[0.0; 4], 0.0).is_empty());
    }

    #[test]
    fn a_constant_series_has_no_change_and_zero_scores() {
        let det = detect(&[4.2; 500], 1, &Params::new(50, 0.0)).unwrap();
        assert!(det.intervals.is_empty());
        assert!(det.point_scores.iter().all(|&v| v == 0.0));
        assert_eq!(det.psi, 2, "all candidates tie at ApEn 0: the first wins");
    }

    #[test]
    fn rejects_bad_parameters_with_reasons() {
        let data = vec![0.0; 100];
        let mut p = Params::new(10, f64::NAN);
        assert!(matches!(detect(&data, 1, &p), Err(IcidError::Param { name: "alpha", .. })));
        p.alpha = 1.0;
        p.psi = PsiChoice::Fixed(0);
        assert!(matches!(detect(&data, 1, &p), Err(IcidError::Param { name: "psi", .. })));
        p.psi = PsiChoice::Auto(vec![]);
        assert!(matches!(detect(&data, 1, &p), Err(IcidError::Param { name: "psi", .. })));
        p.psi = PsiChoice::Fixed(4);
        p.t = 0;
        assert!(matches!(detect(&data, 1, &p), Err(IcidError::Param { name: "t", .. })));
        assert!(matches!(detect(&data, 1, &Params::new(99, 1.0)), Err(IcidError::TooFewWindows { windows: 1, .. })));
    }
}
