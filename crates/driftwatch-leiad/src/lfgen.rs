//! Labeling-function generation from one labeled window (spec part B.1.4 step 7) and the
//! golden-model LF (step 6).
//!
//! Prototype LFs vote 1 on points similar to a confirmed anomaly: similarity above
//! `mean + k·sd` of that prototype's similarities over the pool, united over prototypes; the
//! labeled window itself votes its human labels; everything else abstains.
//!
//! The bound that keeps this cheap: the reference code scans the pool once per seed anomaly (up
//! to 100 scans). Here the seeds are first reduced to at most `max_prototypes` representatives
//! by farthest-point selection on Z (cosine), so one window costs at most that many pool passes
//! per LF whatever the number of anomalous points. Points of one labeled event are near copies
//! of each other, so the representatives lose little.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::prepared::Prepared;
use crate::representation::REPR_DIM;

/// LF-generation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LfGenConfig {
    /// k of the statistical-prototype rule `mean + k·sd`.
    pub k_stat: f64,
    /// k of the representation-prototype rule.
    pub k_repr: f64,
    /// Anomalous points sampled from a window (reference: 100).
    pub max_seeds: usize,
    /// Representatives per window: the bound on pool passes.
    pub max_prototypes: usize,
}

impl Default for LfGenConfig {
    fn default() -> Self {
        Self { k_stat: 4.0, k_repr: 4.0, max_seeds: 100, max_prototypes: 4 }
    }
}

/// Dense votes of the two prototype LFs built from one window: `(statistical, representation)`.
pub fn prototype_votes(
    prep: &Prepared,
    anomalies: &[usize],
    normals: &[usize],
    cfg: &LfGenConfig,
    seed: u64,
) -> (Vec<Option<bool>>, Vec<Option<bool>>) {
    let n = prep.pool().len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let seeds: Vec<usize> = if anomalies.len() > cfg.max_seeds {
        let mut pick: Vec<usize> =
            rand::seq::index::sample(&mut rng, anomalies.len(), cfg.max_seeds).into_iter().collect();
        pick.sort_unstable();
        pick.into_iter().map(|k| anomalies[k]).collect()
    } else {
        anomalies.to_vec()
    };
    let protos = representatives(prep, &seeds, cfg.max_prototypes);
    let mut stat = vec![None; n];
    let mut repr = vec![None; n];
    let x = prep.features();
    let mut sims = vec![0.0f64; n];
    let mut cos = Vec::with_capacity(n);
    for &a in &protos {
        // Statistical: inner product of feature rows, accumulated column by column.
        sims.iter_mut().for_each(|s| *s = 0.0);
        for c in 0..x.cols {
            let col = x.col(c);
            let w = col[a];
            if w != 0.0 {
                for (s, &v) in sims.iter_mut().zip(col) {
                    *s += w * v;
                }
            }
        }
        let thr = mean_plus_k_sd(&sims, cfg.k_stat);
        for (v, &s) in stat.iter_mut().zip(&sims) {
            if s > thr {
                *v = Some(true);
            }
        }
        // Representation: cosine of mean maps.
        let unit: [f32; REPR_DIM] = prep.repr().unit(a);
        prep.repr().cosines(&unit, &mut cos);
        let c64: Vec<f64> = cos.iter().map(|&c| f64::from(c)).collect();
        let thr = mean_plus_k_sd(&c64, cfg.k_repr);
        for (v, &s) in repr.iter_mut().zip(&c64) {
            if s > thr {
                *v = Some(true);
            }
        }
    }
    for lf in [&mut stat, &mut repr] {
        for &i in anomalies {
            lf[i] = Some(true);
        }
        for &i in normals {
            lf[i] = Some(false);
        }
    }
    (stat, repr)
}

/// Up to `k` seeds, each the one least similar (max cosine on Z) to those already chosen.
fn representatives(prep: &Prepared, seeds: &[usize], k: usize) -> Vec<usize> {
    if seeds.is_empty() {
        return Vec::new();
    }
    let units: Vec<[f32; REPR_DIM]> = seeds.iter().map(|&i| prep.repr().unit(i)).collect();
    let dot = |a: &[f32; REPR_DIM], b: &[f32; REPR_DIM]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut chosen = vec![0usize];
    let mut best: Vec<f32> = units.iter().map(|u| dot(u, &units[0])).collect();
    while chosen.len() < k {
        let (far, &sim) = best.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).expect("seeds not empty");
        if sim > 0.99 {
            break; // every seed is a near copy of a chosen one
        }
        chosen.push(far);
        for (b, u) in best.iter_mut().zip(&units) {
            *b = b.max(dot(u, &units[far]));
        }
    }
    chosen.into_iter().map(|c| seeds[c]).collect()
}

fn mean_plus_k_sd(x: &[f64], k: f64) -> f64 {
    let (m, sd) = crate::features::mean_sd(x);
    m + k * sd
}

/// Dense votes of a golden-model LF: the top `top` share of `scores` vote 1, the bottom `bottom`
/// share vote 0, the rest abstain.
pub fn golden_votes(scores: &[f64], top: f64, bottom: f64) -> Vec<Option<bool>> {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n_top = ((n as f64 * top).ceil() as usize).min(n);
    let n_bottom = ((n as f64 * bottom).floor() as usize).min(n - n_top);
    let mut out = vec![None; n];
    for &i in &order[..n_top] {
        out[i] = Some(true);
    }
    for &i in &order[n - n_bottom..] {
        out[i] = Some(false);
    }
    out
}
