//! Active learning (spec part B.1.4 step 4): the five-term score per point and the choice of
//! candidate windows. Each term is min-max normalised over the pool, then weighted:
//!
//! * `lf_disagreement`: binary entropy of the share of anomaly votes among the point's votes;
//! * `lf_abstention`: `ln(1 + abstaining LFs)`;
//! * `uncertainty`: binary entropy of the end model's probability (the label model's before
//!   the first end model);
//! * `novelty`: `1 −` mean cosine of the point's Z with a uniform sample of labeled points
//!   (computed as one dot product with the mean unit vector, so it is `O(n·dim)`);
//! * `prior`: the mean scaled seed-detector score.
//!
//! Pure: inputs in, scores and chosen centres out.

use crate::Pool;
use crate::representation::{REPR_DIM, Representation};
use crate::votes::VoteMatrix;

/// Weights of the five terms (reference: 1, 0.5, 0.5, 1, 0.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlWeights {
    /// LF disagreement.
    pub lf_disagreement: f64,
    /// LF abstention.
    pub lf_abstention: f64,
    /// End-model uncertainty.
    pub uncertainty: f64,
    /// Novelty against labeled points.
    pub novelty: f64,
    /// Seed-detector prior.
    pub prior: f64,
}

impl Default for AlWeights {
    fn default() -> Self {
        Self { lf_disagreement: 1.0, lf_abstention: 0.5, uncertainty: 0.5, novelty: 1.0, prior: 0.2 }
    }
}

/// The five normalised terms of one point (each in [0, 1], before weighting).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Breakdown {
    /// LF disagreement.
    pub lf_disagreement: f64,
    /// LF abstention.
    pub lf_abstention: f64,
    /// End-model uncertainty.
    pub uncertainty: f64,
    /// Novelty.
    pub novelty: f64,
    /// Prior.
    pub prior: f64,
}

/// Scores of every point.
#[derive(Debug, Clone)]
pub struct AlScores {
    /// Weighted sum per point.
    pub total: Vec<f64>,
    /// Normalised terms per point, in [`Breakdown`] order.
    pub terms: [Vec<f64>; 5],
}

impl AlScores {
    /// The breakdown of point `i`.
    pub fn breakdown(&self, i: usize) -> Breakdown {
        Breakdown {
            lf_disagreement: self.terms[0][i],
            lf_abstention: self.terms[1][i],
            uncertainty: self.terms[2][i],
            novelty: self.terms[3][i],
            prior: self.terms[4][i],
        }
    }
}

fn entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 { 0.0 } else { -(p * p.ln() + (1.0 - p) * (1.0 - p).ln()) }
}

fn normalise(x: &mut [f64]) {
    let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let span = hi - lo;
    for v in x.iter_mut() {
        *v = if span > 0.0 { (*v - lo) / span } else { 0.0 };
    }
}

/// Computes the five terms and the weighted total. `labeled_sample` holds at most ~1000
/// pooled indices of labeled points (uniformly drawn by the caller).
pub fn score(
    votes: &VoteMatrix,
    model_prob: &[f64],
    repr: &Representation,
    labeled_sample: &[usize],
    prior: &[f64],
    w: &AlWeights,
) -> AlScores {
    let n = votes.n();
    let m = votes.m as f64;
    let mut dis = Vec::with_capacity(n);
    let mut abs = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = votes.tally(i);
        let r = if a + b == 0 { 0.0 } else { f64::from(a) / f64::from(a + b) };
        dis.push(entropy(r));
        abs.push((1.0 + m - f64::from(a + b)).ln());
    }
    let mut unc: Vec<f64> = model_prob.iter().map(|&p| entropy(p)).collect();
    let mut nov = vec![0.0; n];
    if !labeled_sample.is_empty() {
        let mut mean = [0f32; REPR_DIM];
        for &k in labeled_sample {
            for (m, u) in mean.iter_mut().zip(repr.unit(k)) {
                *m += u / labeled_sample.len() as f32;
            }
        }
        let mut cos = Vec::with_capacity(n);
        // cosines() divides by each row's norm; `mean` is not unit, which is what we want:
        // ⟨Z_i/|Z_i|, mean of unit Z_k⟩ = mean cosine.
        repr.cosines(&mean, &mut cos);
        for (v, c) in nov.iter_mut().zip(cos) {
            *v = 1.0 - f64::from(c);
        }
    }
    let mut pr = prior.to_vec();
    for t in [&mut dis, &mut abs, &mut unc, &mut nov, &mut pr] {
        normalise(t);
    }
    let total = (0..n)
        .map(|i| {
            w.lf_disagreement * dis[i]
                + w.lf_abstention * abs[i]
                + w.uncertainty * unc[i]
                + w.novelty * nov[i]
                + w.prior * pr[i]
        })
        .collect();
    AlScores { total, terms: [dis, abs, unc, nov, pr] }
}

/// The `k` best unlabeled centres whose windows (half-width `half`) do not overlap each other,
/// best first.
pub fn top_centres(total: &[f64], labeled: &[bool], pool: &Pool, half: usize, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..total.len()).filter(|&i| !labeled[i]).collect();
    order.sort_by(|&a, &b| total[b].total_cmp(&total[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut wins = Vec::with_capacity(k);
    for i in order {
        if chosen.len() == k {
            break;
        }
        let w = pool.window_around(i, half);
        if wins.iter().any(|o: &crate::Window| o.overlaps(&w)) {
            continue;
        }
        wins.push(w);
        chosen.push(i);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::votes::{LabelingFunction, LfKind};
    use crate::{SeriesInput, Window};

    #[test]
    fn disagreement_peaks_where_votes_split_and_abstention_where_lfs_are_silent() {
        let a = LabelingFunction::from_dense(0, LfKind::Golden, vec![], &[Some(true), Some(true), None]);
        let b = LabelingFunction::from_dense(1, LfKind::Golden, vec![], &[Some(true), Some(false), None]);
        let vm = VoteMatrix::build(3, [a, b].iter());
        let values: Vec<f64> = (0..16).map(f64::from).collect();
        let pool = Pool::new(vec![SeriesInput { name: "s".into(), values, period_secs: None }]).unwrap();
        let wins = [crate::features::SeriesWindows::derive(None, 16)];
        let repr = Representation::build(&pool, &wins, 1);
        let w = AlWeights { lf_disagreement: 1.0, lf_abstention: 0.0, uncertainty: 0.0, novelty: 0.0, prior: 0.0 };
        let s = score(&vm, &[0.5, 0.5, 0.5], &repr, &[], &[0.0; 3], &w);
        // Point 1 has one vote each way: maximal disagreement; points 0 and 2 have none.
        assert_eq!(s.terms[0], vec![0.0, 1.0, 0.0]);
        assert_eq!(s.terms[1], vec![0.0, 0.0, 1.0]); // point 2: both LFs abstain
        assert_eq!(s.total, vec![0.0, 1.0, 0.0]);
        let w = AlWeights { lf_disagreement: 0.0, lf_abstention: 2.0, ..w };
        let s = score(&vm, &[0.5, 0.5, 0.5], &repr, &[], &[0.0; 3], &w);
        assert_eq!(s.total, vec![0.0, 0.0, 2.0]);
    }

    #[test]
    fn uncertainty_and_prior_terms_follow_their_inputs() {
        let vm = VoteMatrix::build(3, std::iter::empty());
        let values: Vec<f64> = (0..16).map(f64::from).collect();
        let pool = Pool::new(vec![SeriesInput { name: "s".into(), values, period_secs: None }]).unwrap();
        let repr = Representation::build(&pool, &[crate::features::SeriesWindows::derive(None, 16)], 1);
        let s = score(&vm, &[0.5, 0.9, 0.99], &repr, &[], &[0.2, 0.1, 0.3], &AlWeights::default());
        assert_eq!(s.terms[2][0], 1.0);
        assert!(s.terms[2][1] > s.terms[2][2]);
        let want = [0.5, 0.0, 1.0];
        assert!(s.terms[4].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{:?}", s.terms[4]);
    }

    #[test]
    fn novelty_is_high_far_from_labeled_points() {
        // A series that sits low, then high: labeling a low point makes high points novel.
        let values: Vec<f64> =
            (0..400).map(|t| if t < 200 { (t % 7) as f64 * 0.01 } else { 5.0 + (t % 5) as f64 * 0.01 }).collect();
        let pool = Pool::new(vec![SeriesInput { name: "s".into(), values, period_secs: None }]).unwrap();
        let repr = Representation::build(&pool, &[crate::features::SeriesWindows::derive(None, 400)], 3);
        let vm = VoteMatrix::build(400, std::iter::empty());
        let s = score(&vm, &vec![0.0; 400], &repr, &[50, 60], &vec![0.0; 400], &AlWeights::default());
        let mean = |r: std::ops::Range<usize>| r.clone().map(|i| s.terms[3][i]).sum::<f64>() / r.len() as f64;
        let (low, high) = (mean(20..190), mean(220..400));
        assert!(high > low + 0.4, "novelty of the unlabeled level {high:.3}, of the labeled one {low:.3}");
    }

    #[test]
    fn top_centres_skip_labeled_points_and_overlapping_windows() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let pool = Pool::new(vec![SeriesInput { name: "s".into(), values, period_secs: None }]).unwrap();
        let mut total = vec![0.0; 1000];
        total[500] = 5.0; // labeled: skipped
        total[100] = 4.0;
        total[120] = 3.9; // overlaps 100's window
        total[800] = 3.0;
        let mut labeled = vec![false; 1000];
        labeled[500] = true;
        let c = top_centres(&total, &labeled, &pool, 50, 2);
        assert_eq!(c, vec![100, 800]);
        assert_eq!(pool.window_around(100, 50), Window { series: 0, start: 50, end: 150 });
    }
}
