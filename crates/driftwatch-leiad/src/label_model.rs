//! The Snorkel-style label model (spec part B.1.4 step 1): LFs conditionally independent given
//! the true label Y, class prior π fixed, one emission table `μ_j(l, y) = P(λ_j = l | Y = y)` per LF
//! for the two non-abstain votes. Fitted by matching the off-diagonal blocks of the observed vote
//! overlap matrix `O = E[ψψᵀ]` to `μ diag(π) μᵀ` (masked Frobenius loss, Adam, clamping);
//! inference is `P(Y | λ) ∝ π_y Π_{j voting} μ_j(λ_j, y)`. Also the majority-vote fallback.
//!
//! Pure: a vote matrix in, a fitted model and per-point probabilities out. Deterministic (no
//! randomness: the initialisation is fixed).

// Index loops mirror the subscripts of the math (μ_j[a][y], O[(j,a),(k,b)]).
#![allow(clippy::needless_range_loop)]

use crate::votes::VoteMatrix;

/// Fitting settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelModelConfig {
    /// Gradient steps.
    pub epochs: usize,
    /// Adam step size.
    pub lr: f64,
    /// Pull of μ towards its initialisation (L2).
    pub l2: f64,
    /// Initial accuracy `P(λ = y | λ ≠ abstain, y)`.
    pub init_accuracy: f64,
    /// EM steps after the overlap fit in which human-labeled points keep their label (0 = the
    /// unsupervised Snorkel fit alone).
    ///
    /// Default 5. The overlap fit sees only how LFs agree with each other, so a high-coverage LF
    /// whose many normal votes agree with everyone looks accurate even when all its anomaly votes
    /// are wrong (synthetic seed 3: the iCID LF, learned accuracy 0.99, none of its 132 anomaly
    /// votes right; the posterior ranked the pool below chance, ROC-AUC 0.47). Clamping the
    /// analyst's labels lets them correct that. Measured with `leiad simulate`, 10 seeds, the
    /// label model's ROC-AUC after 10 / 20 windows, 0 steps → 5 steps: NAB tight 0.59 / 0.45 →
    /// 0.64 / 0.63; NAB wide 0.55 / 0.53 → 0.62 / 0.65; synthetic seed 1 0.63 / 0.66 → 0.68 /
    /// 0.73; seed 2 0.43 / 0.67 → 0.69 / 0.76; seed 3 0.47 / 0.46 → 0.61 / 0.68. 20 steps were no
    /// better than 5 (README, "LEIAD").
    pub em_steps: usize,
    /// Weight of an unlabeled point in those EM steps (a labeled one weighs 1); `None` = balanced
    /// (see [`LabelModel::refine_em`]). Default 1: balanced weighting corrects the unit test's
    /// distractor LFs fully and did as well on the synthetic sets, but on NAB it let the few
    /// labeled windows (from which the prototype LFs are built, so those LFs are right on them by
    /// construction) outweigh the rest: LEIAD's AP after 10 / 20 windows, 10 seeds, tight 0.051 /
    /// 0.048 → 0.035 / 0.048, wide 0.283 / 0.294 → 0.170 / 0.212.
    pub em_unlabeled_weight: Option<f64>,
}

impl Default for LabelModelConfig {
    fn default() -> Self {
        Self { epochs: 300, lr: 0.01, l2: 0.0, init_accuracy: 0.7, em_steps: 5, em_unlabeled_weight: Some(1.0) }
    }
}

/// A fitted label model.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelModel {
    /// `P(Y = 1)`.
    pub prior: f64,
    /// `mu[j][l][y] = P(λ_j = l | Y = y)`, `l, y ∈ {0 = normal, 1 = anomaly}`.
    pub mu: Vec<[[f64; 2]; 2]>,
}

impl LabelModel {
    /// Fits the model to `votes` with class prior `P(Y=1) = prior`.
    pub fn fit(votes: &VoteMatrix, prior: f64, cfg: &LabelModelConfig) -> Self {
        let m = votes.m;
        let n = votes.n().max(1) as f64;
        let pi = [1.0 - prior, prior];
        // Overlap O[(j,a),(k,b)] and coverage per (j, a).
        let dim = 2 * m;
        let mut o = vec![0.0f64; dim * dim];
        let mut cov = vec![0.0f64; dim];
        for i in 0..votes.n() {
            let row = votes.row(i);
            for &(j, a) in row {
                let r = 2 * j as usize + a as usize;
                cov[r] += 1.0;
                for &(k, b) in row {
                    if k != j {
                        o[r * dim + 2 * k as usize + b as usize] += 1.0;
                    }
                }
            }
        }
        for v in o.iter_mut() {
            *v /= n;
        }
        // Initialise from each LF's coverage: P(vote | y) split by the initial accuracy.
        let mut mu = vec![[[0.0; 2]; 2]; m];
        for j in 0..m {
            let c = ((cov[2 * j] + cov[2 * j + 1]) / n).clamp(1e-4, 1.0);
            for (l, row) in mu[j].iter_mut().enumerate() {
                for (y, v) in row.iter_mut().enumerate() {
                    *v = c * if l == y { cfg.init_accuracy } else { 1.0 - cfg.init_accuracy };
                }
            }
        }
        let init = mu.clone();
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut m1 = vec![[[0.0; 2]; 2]; m];
        let mut m2 = vec![[[0.0; 2]; 2]; m];
        let mut grad = vec![[[0.0; 2]; 2]; m];
        // Relative loss: divide residuals by the scale of O so Adam's step means the same on any pool.
        for epoch in 1..=cfg.epochs {
            for g in grad.iter_mut() {
                *g = [[0.0; 2]; 2];
            }
            for j in 0..m {
                for k in 0..m {
                    if j == k {
                        continue;
                    }
                    for a in 0..2 {
                        for b in 0..2 {
                            let model: f64 = (0..2).map(|y| mu[j][a][y] * pi[y] * mu[k][b][y]).sum();
                            let r = o[(2 * j + a) * dim + 2 * k + b] - model;
                            for y in 0..2 {
                                // d(r²)/dμ_j[a][y] = −2 r π_y μ_k[b][y]; the (k, j) block adds the same.
                                grad[j][a][y] += -4.0 * r * pi[y] * mu[k][b][y];
                            }
                        }
                    }
                }
                for a in 0..2 {
                    for y in 0..2 {
                        grad[j][a][y] += 2.0 * cfg.l2 * (mu[j][a][y] - init[j][a][y]);
                    }
                }
            }
            let c1 = 1.0 - b1.powi(epoch as i32);
            let c2 = 1.0 - b2.powi(epoch as i32);
            for j in 0..m {
                for a in 0..2 {
                    for y in 0..2 {
                        let g = grad[j][a][y];
                        m1[j][a][y] = b1 * m1[j][a][y] + (1.0 - b1) * g;
                        m2[j][a][y] = b2 * m2[j][a][y] + (1.0 - b2) * g * g;
                        let step = cfg.lr * (m1[j][a][y] / c1) / ((m2[j][a][y] / c2).sqrt() + eps);
                        mu[j][a][y] = (mu[j][a][y] - step).clamp(1e-6, 1.0);
                    }
                }
                for y in 0..2 {
                    let s = mu[j][0][y] + mu[j][1][y];
                    if s > 1.0 {
                        mu[j][0][y] /= s;
                        mu[j][1][y] /= s;
                    }
                }
            }
        }
        Self { prior, mu }
    }

    /// Refines μ by EM (Dawid–Skene) with the human labels clamped: E-step = the posterior of
    /// every unlabeled point (`golden[i] < 0`), the label itself elsewhere; M-step = each LF's
    /// vote rates per class under those weights. The prior stays fixed. This lets a few labeled
    /// anomalies say which LFs are right about anomalies, which the overlap fit cannot see.
    ///
    /// `unlabeled_weight` is each unlabeled point's weight in the M-step against 1 for a labeled
    /// one (EM-λ, Nigam et al. 2000); `None` balances the two sets (the labeled count over the
    /// unlabeled count, at most 1). At weight 1 the unlabeled majority keeps EM near the optimum
    /// the overlap fit started it in when LFs break conditional independence by agreeing on normal
    /// points (the unit test below: ROC-AUC on unlabeled points 0.29 for the fit, 0.67 after EM
    /// at weight 1, 0.93 balanced); see [`LabelModelConfig::em_unlabeled_weight`] for why the
    /// default is 1 all the same.
    pub fn refine_em(&mut self, votes: &VoteMatrix, golden: &[i8], steps: usize, unlabeled_weight: Option<f64>) {
        let n = votes.n();
        let labeled = golden.iter().filter(|&&g| g >= 0).count();
        let uw = unlabeled_weight.unwrap_or_else(|| (labeled as f64 / (n - labeled).max(1) as f64).min(1.0));
        let m = self.mu.len();
        for _ in 0..steps {
            let q = self.predict(votes);
            let mut num = vec![[[0.0f64; 2]; 2]; m];
            let mut den = [0.0f64; 2];
            for i in 0..n {
                let (p1, wt) = match golden.get(i) {
                    Some(&g) if g >= 0 => (f64::from(g), 1.0),
                    _ => (q[i], uw),
                };
                let w = [(1.0 - p1) * wt, p1 * wt];
                den[0] += w[0];
                den[1] += w[1];
                for &(j, a) in votes.row(i) {
                    let t = &mut num[j as usize][a as usize];
                    t[0] += w[0];
                    t[1] += w[1];
                }
            }
            for j in 0..m {
                for a in 0..2 {
                    for y in 0..2 {
                        // One pseudo-observation at the current value keeps rare cells finite.
                        let v = (num[j][a][y] + self.mu[j][a][y]) / (den[y] + 1.0);
                        self.mu[j][a][y] = v.clamp(1e-6, 1.0);
                    }
                }
            }
        }
    }

    /// `P(Y = 1 | λ_i)` for every point; a point without votes gets the prior.
    pub fn predict(&self, votes: &VoteMatrix) -> Vec<f64> {
        let lp = [(1.0 - self.prior).ln(), self.prior.ln()];
        let logmu: Vec<[[f64; 2]; 2]> =
            self.mu.iter().map(|t| [[t[0][0].ln(), t[0][1].ln()], [t[1][0].ln(), t[1][1].ln()]]).collect();
        (0..votes.n())
            .map(|i| {
                let mut s = lp;
                for &(j, a) in votes.row(i) {
                    let t = &logmu[j as usize][a as usize];
                    s[0] += t[0];
                    s[1] += t[1];
                }
                1.0 / (1.0 + (s[0] - s[1]).exp())
            })
            .collect()
    }

    /// Learned accuracy of LF `j`: `P(λ_j = Y | λ_j ≠ abstain)`.
    pub fn accuracy(&self, j: usize) -> f64 {
        let pi = [1.0 - self.prior, self.prior];
        let t = &self.mu[j];
        let right = pi[0] * t[0][0] + pi[1] * t[1][1];
        let all = pi[0] * (t[0][0] + t[1][0]) + pi[1] * (t[0][1] + t[1][1]);
        if all > 0.0 { right / all } else { 0.5 }
    }
}

/// Majority vote: `#anomaly / #non-abstain` per point, 0 without votes.
pub fn majority_vote(votes: &VoteMatrix) -> Vec<f64> {
    (0..votes.n())
        .map(|i| {
            let (a, b) = votes.tally(i);
            if a + b == 0 { 0.0 } else { f64::from(a) / f64::from(a + b) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::votes::{LabelingFunction, LfKind};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Draws votes from known emission tables and checks the fit recovers each LF's accuracy.
    fn recover(prior: f64, tables: &[[[f64; 2]; 2]], n: usize, tol: f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let ys: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < prior).collect();
        let lfs: Vec<LabelingFunction> = tables
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let dense: Vec<Option<bool>> = ys
                    .iter()
                    .map(|&y| {
                        let y = y as usize;
                        let u: f64 = rng.random();
                        if u < t[1][y] {
                            Some(true)
                        } else if u < t[1][y] + t[0][y] {
                            Some(false)
                        } else {
                            None
                        }
                    })
                    .collect();
                LabelingFunction::from_dense(j as u64, LfKind::StatPrototype, vec![], &dense)
            })
            .collect();
        let vm = VoteMatrix::build(n, lfs.iter());
        let model = LabelModel::fit(&vm, prior, &LabelModelConfig { epochs: 1500, ..Default::default() });
        let truth = LabelModel { prior, mu: tables.to_vec() };
        for j in 0..tables.len() {
            let (got, want) = (model.accuracy(j), truth.accuracy(j));
            assert!((got - want).abs() < tol, "LF {j}: learned accuracy {got:.3}, true {want:.3}");
        }
        // And the posterior ranks true anomalies above normals far better than chance.
        let q = model.predict(&vm);
        let auc = crate::eval::roc_auc(&q, &ys);
        assert!(auc > 0.9, "AUC {auc}");
    }

    #[test]
    fn label_model_recovers_known_lf_accuracies() {
        // mu[j][vote][y]: rows = vote normal/anomaly, columns = y normal/anomaly.
        let tables = [
            [[0.8, 0.1], [0.1, 0.8]],   // accurate, high coverage
            [[0.6, 0.2], [0.1, 0.6]],   // weaker
            [[0.5, 0.25], [0.25, 0.5]], // barely better than chance on anomalies
            [[0.7, 0.05], [0.05, 0.7]],
            [[0.3, 0.1], [0.05, 0.4]], // low coverage
            [[0.9, 0.3], [0.05, 0.6]],
        ];
        recover(0.3, &tables, 40_000, 0.05);
    }

    #[test]
    fn label_model_recovers_accuracies_at_a_rare_anomaly_prior() {
        let tables = [
            [[0.9, 0.1], [0.02, 0.8]],
            [[0.85, 0.2], [0.05, 0.7]],
            [[0.8, 0.1], [0.01, 0.6]],
            [[0.9, 0.3], [0.02, 0.5]],
        ];
        recover(0.05, &tables, 100_000, 0.05);
    }

    /// Two LFs that flag the same normal points (a "distractor", which breaks the model's
    /// conditional independence) and never a true anomaly, next to three independent, decent LFs:
    /// the overlap fit takes the pair's agreement for accuracy and ranks the distractor above the
    /// anomalies; EM with a tenth of the points labeled, balanced against the rest, learns that
    /// their anomaly votes are wrong; unweighted EM stays near where the fit started it.
    #[test]
    fn em_with_clamped_labels_corrects_lfs_that_agree_on_normal_points() {
        let (n, prior) = (40_000, 0.05);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let ys: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < prior).collect();
        let distractor: Vec<bool> = ys.iter().map(|&y| !y && rng.random::<f64>() < 0.04).collect();
        // Independent LFs: P(anomaly vote | y), P(normal vote | y).
        let good = [([0.02, 0.5], [0.5, 0.1]), ([0.03, 0.4], [0.5, 0.2]), ([0.02, 0.3], [0.4, 0.1])];
        let mut dense: Vec<Vec<Option<bool>>> = good
            .iter()
            .map(|(a, z)| {
                ys.iter()
                    .map(|&y| {
                        let (u, y) = (rng.random::<f64>(), y as usize);
                        if u < a[y] {
                            Some(true)
                        } else if u < a[y] + z[y] {
                            Some(false)
                        } else {
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        for _ in 0..2 {
            dense.push(
                distractor
                    .iter()
                    .map(|&d| {
                        if d {
                            Some(true)
                        } else if rng.random::<f64>() < 0.6 {
                            Some(false)
                        } else {
                            None
                        }
                    })
                    .collect(),
            );
        }
        let lfs: Vec<LabelingFunction> = dense
            .iter()
            .enumerate()
            .map(|(j, d)| LabelingFunction::from_dense(j as u64, LfKind::StatPrototype, vec![], d))
            .collect();
        let vm = VoteMatrix::build(n, lfs.iter());
        let golden: Vec<i8> = ys.iter().enumerate().map(|(i, &y)| if i < n / 10 { i8::from(y) } else { -1 }).collect();
        let cfg = LabelModelConfig::default();
        let fit = LabelModel::fit(&vm, prior, &cfg);
        let mut em = fit.clone();
        em.refine_em(&vm, &golden, 20, None);
        let mut em_unweighted = fit.clone();
        em_unweighted.refine_em(&vm, &golden, cfg.em_steps, cfg.em_unlabeled_weight);
        let unlabeled = |q: &[f64]| {
            let (s, t): (Vec<f64>, Vec<bool>) = (n / 10..n).map(|i| (q[i], ys[i])).unzip();
            (crate::eval::average_precision(&s, &t), crate::eval::roc_auc(&s, &t))
        };
        let ((ap_fit, auc_fit), (ap_em, auc_em)) = (unlabeled(&fit.predict(&vm)), unlabeled(&em.predict(&vm)));
        let ratio = |m: &LabelModel| m.mu[3][1][1] / m.mu[3][1][0];
        assert!(ratio(&fit) > 1.0, "the overlap fit should be fooled here (ratio {:.3})", ratio(&fit));
        assert!(ratio(&em) < 0.1, "EM: the distractor LF's anomaly-vote likelihood ratio {:.3}", ratio(&em));
        assert!(
            ap_em > ap_fit + 0.2 && auc_em > auc_fit,
            "unlabeled points: fit AP {ap_fit:.3} ROC-AUC {auc_fit:.3}, EM AP {ap_em:.3} ROC-AUC {auc_em:.3}"
        );
        // The default (unweighted, fewer steps) helps, but the unlabeled majority keeps EM near
        // the overlap fit's optimum.
        let (ap_1, auc_1) = unlabeled(&em_unweighted.predict(&vm));
        assert!(auc_1 > auc_fit + 0.2, "default EM ROC-AUC {auc_1:.3} against the fit's {auc_fit:.3}");
        assert!(ap_em > ap_1 + 0.2, "balanced EM AP {ap_em:.3} against unweighted {ap_1:.3}");
    }

    #[test]
    fn majority_vote_counts_votes() {
        let a = LabelingFunction::from_dense(0, LfKind::Golden, vec![], &[Some(true), Some(false), None]);
        let b = LabelingFunction::from_dense(1, LfKind::Golden, vec![], &[Some(true), Some(true), None]);
        let vm = VoteMatrix::build(3, [a, b].iter());
        assert_eq!(majority_vote(&vm), vec![1.0, 0.5, 0.0]);
    }
}
