//! The end model over the causal features, trained on the confident pseudo-labels plus every
//! human label. [`EndModel`] is a plain value: fitting it does not touch the session, so the
//! service can fit in the background and install the result later.
//!
//! Back-ends: gradient-boosted trees from `forust-ml` (pure Rust, deterministic, no clock), the
//! seed-anchored logistic regression of [`anchored`] (pure Rust, no dependency), the default
//! [`Backend::Gate`] that fits both and serves the one the analyst's labels vouch for (the
//! session decides, see `session::GateEvidence`), and, behind the `perpetual` feature,
//! `perpetual` (kept for the comparison recorded in ARCHITECTURE.md). All run single-threaded
//! here: the service gives a refit one core.

use crate::LeiadError;

/// Which model (and crate) the end model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `forust-ml` with fixed iterations.
    Forust,
    /// `perpetual` with a fixed budget (feature `perpetual`).
    Perpetual,
    /// A seed-anchored logistic regression (see [`anchored`]). Alone it beats the
    /// isolation-forest seed on NAB with tight labels but loses to the trees on the synthetic
    /// benchmark (`tests/session.rs`: LEIAD 0.065 against the iCID seed's 0.068 at seed 0).
    Anchored,
    /// Per refit, the trees or the anchored model, whichever ranks held-out labeled windows
    /// better (`RefitJob::select` in the session). Fitted directly (no windows to hold out), as
    /// `Forust`. Not the default: on the synthetic set (10 seeds) it fell from the trees' AP
    /// 0.244 / 0.259 to 0.098 / 0.094 after 10 / 20 windows.
    Select,
    /// The default. Per refit, the [`GATE_CANDIDATES`]: the trees on pseudo-labels and human
    /// labels, the anchored model, and the trees on the human labels alone, stored together; the
    /// first answers unless another ranked the analyst's anomalies (before each was labeled)
    /// clearly higher in the pool (see [`crate::GateEvidence`]). The others keep being scored,
    /// so the evidence keeps growing for all. Fitted directly, as `Forust`.
    Gate,
}

/// The candidates of [`Backend::Gate`], in their stored order: the trees on pseudo-labels and
/// human labels (LEIAD's end model proper, the default choice), the seed-anchored regression
/// (for pools where the label model is at chance but a seed detector is not), and the trees on
/// the human labels alone (for pools where the pseudo-labels mislead the trees and no seed
/// helps).
pub const GATE_CANDIDATES: [&str; 3] = ["trees", "anchored", "supervised"];

/// End-model settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndModelConfig {
    /// Library.
    pub backend: Backend,
    /// Boosting rounds (forust).
    pub iterations: usize,
    /// Learning rate (forust).
    pub learning_rate: f32,
    /// Tree depth (forust).
    pub max_depth: usize,
    /// Budget (perpetual).
    pub budget: f32,
    /// Seed.
    pub seed: u64,
    /// Anchored: the column (a seed detector's score) the prior weight vector points along;
    /// `None` fits the regression with a zero prior. The session sets it per refit.
    pub anchor: Option<usize>,
    /// Anchored: prior weight of the anchor column (on its `sign·ln(1+|x|)` transform).
    pub anchor_weight: f64,
    /// Anchored: ridge pull of the weights towards the prior, against a class-balanced
    /// log-loss whose weights sum to 1 (default 2: see [`anchored`] for the measurements).
    pub anchor_ridge: f64,
    /// Select: the trees are chosen only when their held-out AP exceeds the anchored model's
    /// times this factor.
    pub select_margin: f64,
    /// Gate: the anchored model replaces the trees only when its geometric-mean share of the pool
    /// ranked above the analyst's anomalies is this many times smaller than the trees'. At 1.0 the
    /// first one to three anomalies decide on noise: on the session test's small synthetic set
    /// (6 × 4,000 points) shares of 0.0097 against 0.0068 (both in the top 1 %) switched to the
    /// anchored model, and one of three seeds ended 10 windows below the isolation forest (AP
    /// 0.060 against 0.064; the trees alone: 0.163). On NAB the evidence against the trees is
    /// about twice that from the first anomaly (0.96 against 0.47).
    pub gate_margin: f64,
    /// Gate: the candidate ([`GATE_CANDIDATES`] index) that answers without evidence against it.
    /// 1, the seed-anchored regression, since issue 20: with the calibrated seed columns and the
    /// anchor chosen by the pool rank of the labeled anomalies it ranked above the trees on both
    /// NAB and the synthetic sets (docs/experiments.md, 2026-12-07). It was 0, the trees.
    pub gate_default: usize,
}

impl Default for EndModelConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Gate,
            iterations: 100,
            learning_rate: 0.15,
            max_depth: 3,
            budget: 0.5,
            seed: 0,
            anchor: None,
            anchor_weight: 10.0,
            anchor_ridge: 2.0,
            select_margin: 1.5,
            gate_margin: 1.5,
            gate_default: 1,
        }
    }
}

/// A fitted end model (or a constant when the training set had one class).
pub struct EndModel {
    inner: Inner,
    /// Rows it was trained on.
    pub trained_rows: usize,
}

impl std::fmt::Debug for EndModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Inner::Constant(_) => "constant",
            Inner::Forust(_) => "forust",
            Inner::Anchored(_) => "anchored",
            Inner::Gated { .. } => "gated",
            #[cfg(feature = "perpetual")]
            Inner::Perpetual(_) => "perpetual",
        };
        f.debug_struct("EndModel").field("kind", &kind).field("trained_rows", &self.trained_rows).finish()
    }
}

enum Inner {
    Constant(f64),
    Forust(Box<forust_ml::GradientBooster>),
    /// Weights of the transformed columns, then the intercept.
    Anchored(Vec<f64>),
    /// The trees and the anchored model, and which one answers ([`Backend::Gate`]).
    /// The [`GATE_CANDIDATES`] and the index of the one that answers ([`Backend::Gate`]).
    Gated {
        models: Vec<EndModel>,
        serve: usize,
    },
    #[cfg(feature = "perpetual")]
    Perpetual(Box<perpetual::PerpetualBooster>),
}

/// Column-major features: `cols` columns of `rows` values.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    /// `data[c * rows + r]`.
    pub data: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl FeatureMatrix {
    /// The sub-matrix of `rows`, column-major.
    pub fn take(&self, rows: &[usize]) -> FeatureMatrix {
        let mut data = Vec::with_capacity(rows.len() * self.cols);
        for c in 0..self.cols {
            let col = &self.data[c * self.rows..(c + 1) * self.rows];
            data.extend(rows.iter().map(|&r| col[r]));
        }
        FeatureMatrix { data, rows: rows.len(), cols: self.cols }
    }

    /// Column `c`.
    pub fn col(&self, c: usize) -> &[f64] {
        &self.data[c * self.rows..(c + 1) * self.rows]
    }
}

impl EndModel {
    /// Fits on the rows of `x` with 0/1 targets `y`; positives are up-weighted to balance the classes.
    ///
    /// # Errors
    /// [`LeiadError::EndModel`] when the library refuses the data or the parameters, or the
    /// `perpetual` back-end is asked for without the feature.
    pub fn fit(x: &FeatureMatrix, y: &[bool], cfg: &EndModelConfig) -> Result<Self, LeiadError> {
        Self::fit_weighted(x, y, &vec![1.0; y.len()], cfg)
    }

    /// As [`EndModel::fit`] with a weight per row (before class balancing): the session weighs
    /// human labels above pseudo-labels.
    ///
    /// # Errors
    /// As [`EndModel::fit`].
    pub fn fit_weighted(
        x: &FeatureMatrix,
        y: &[bool],
        row_weight: &[f64],
        cfg: &EndModelConfig,
    ) -> Result<Self, LeiadError> {
        let pos = y.iter().filter(|&&v| v).count();
        let neg = y.len() - pos;
        if pos == 0 || neg == 0 {
            return Ok(Self { inner: Inner::Constant(if pos > 0 { 1.0 } else { 0.0 }), trained_rows: y.len() });
        }
        let (wp, wn) =
            y.iter().zip(row_weight).fold((0.0, 0.0), |(p, n), (&v, &w)| if v { (p + w, n) } else { (p, n + w) });
        let w_pos = if wp > 0.0 { wn / wp } else { 1.0 };
        let weights: Vec<f64> = y.iter().zip(row_weight).map(|(&v, &w)| if v { w * w_pos } else { w }).collect();
        let target: Vec<f64> = y.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
        let m = forust_ml::Matrix::new(&x.data, x.rows, x.cols);
        let inner = match cfg.backend {
            Backend::Anchored => {
                let mut prior = vec![0.0; x.cols + 1];
                if let Some(a) = cfg.anchor.filter(|&a| a < x.cols) {
                    prior[a] = cfg.anchor_weight;
                }
                Inner::Anchored(anchored::fit(x, y, &weights, &prior, cfg.anchor_ridge))
            }
            Backend::Forust | Backend::Select | Backend::Gate => {
                let mut b = forust_ml::GradientBooster::default()
                    .set_iterations(cfg.iterations)
                    .set_learning_rate(cfg.learning_rate)
                    .set_max_depth(cfg.max_depth)
                    .set_parallel(false)
                    .set_seed(cfg.seed);
                b.fit(&m, &target, &weights, None).map_err(|e| LeiadError::EndModel(e.to_string()))?;
                Inner::Forust(Box::new(b))
            }
            #[cfg(feature = "perpetual")]
            Backend::Perpetual => {
                let pm = perpetual::Matrix::new(&x.data, x.rows, x.cols);
                let mut b = perpetual::PerpetualBooster::default()
                    .set_budget(cfg.budget)
                    .set_num_threads(Some(1))
                    .set_seed(cfg.seed);
                b.fit(&pm, &target, Some(&weights), None).map_err(|e| LeiadError::EndModel(e.to_string()))?;
                Inner::Perpetual(Box::new(b))
            }
            #[cfg(not(feature = "perpetual"))]
            Backend::Perpetual => {
                return Err(LeiadError::EndModel("built without the `perpetual` feature".into()));
            }
        };
        Ok(Self { inner, trained_rows: y.len() })
    }

    /// The model as bytes, for storing a model version: a tag byte, the trained row count
    /// (u64 LE), then the constant (f64 LE) or forust's JSON dump.
    ///
    /// # Errors
    /// [`LeiadError::EndModel`] when the back-end cannot be serialised (`perpetual`).
    pub fn to_bytes(&self) -> Result<Vec<u8>, LeiadError> {
        let mut out = Vec::new();
        match &self.inner {
            Inner::Constant(c) => {
                out.push(0u8);
                out.extend_from_slice(&(self.trained_rows as u64).to_le_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
            Inner::Forust(b) => {
                out.push(1u8);
                out.extend_from_slice(&(self.trained_rows as u64).to_le_bytes());
                out.extend_from_slice(b.json_dump().map_err(|e| LeiadError::EndModel(e.to_string()))?.as_bytes());
            }
            Inner::Anchored(w) => {
                out.push(2u8);
                out.extend_from_slice(&(self.trained_rows as u64).to_le_bytes());
                for v in w {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Inner::Gated { models, serve } => {
                out.push(3u8);
                out.extend_from_slice(&(self.trained_rows as u64).to_le_bytes());
                out.push(u8::try_from(*serve).map_err(|_| LeiadError::EndModel("gate index".into()))?);
                for m in models {
                    let b = m.to_bytes()?;
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(&b);
                }
            }
            #[cfg(feature = "perpetual")]
            Inner::Perpetual(_) => return Err(LeiadError::EndModel("perpetual models are not serialisable".into())),
        }
        Ok(out)
    }

    /// A model from [`EndModel::to_bytes`].
    ///
    /// # Errors
    /// [`LeiadError::EndModel`] for bytes this version did not write.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LeiadError> {
        let bad = |why: &str| LeiadError::EndModel(format!("stored model: {why}"));
        if bytes.len() < 9 {
            return Err(bad("too short"));
        }
        let rows = u64::from_le_bytes(bytes[1..9].try_into().map_err(|_| bad("header"))?) as usize;
        let rest = &bytes[9..];
        let inner = match bytes[0] {
            0 => Inner::Constant(f64::from_le_bytes(rest.try_into().map_err(|_| bad("constant"))?)),
            1 => {
                let json = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8"))?;
                Inner::Forust(Box::new(forust_ml::GradientBooster::from_json(json).map_err(|e| bad(&e.to_string()))?))
            }
            2 if !rest.is_empty() && rest.len().is_multiple_of(8) => Inner::Anchored(
                rest.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
            ),
            2 => return Err(bad("anchored weights")),
            3 => {
                let (&serve, mut rest) = rest.split_first().ok_or_else(|| bad("gate header"))?;
                let mut models = Vec::new();
                while !rest.is_empty() {
                    let len = rest.get(..8).ok_or_else(|| bad("gate model header"))?;
                    let len =
                        usize::try_from(u64::from_le_bytes(len.try_into().map_err(|_| bad("gate model header"))?))
                            .map_err(|_| bad("gate model length"))?;
                    let body = rest.get(8..8usize.saturating_add(len)).ok_or_else(|| bad("gate model length"))?;
                    models.push(Self::from_bytes(body)?);
                    rest = &rest[8 + len..];
                }
                if usize::from(serve) >= models.len() {
                    return Err(bad("gate index"));
                }
                Inner::Gated { models, serve: usize::from(serve) }
            }
            t => return Err(bad(&format!("unknown tag {t}"))),
        };
        Ok(Self { inner, trained_rows: rows })
    }

    /// The [`GATE_CANDIDATES`] of [`Backend::Gate`] (in that order), `serve` answering.
    ///
    /// # Panics
    /// When `serve` is not an index into `models`.
    pub fn gated(models: Vec<EndModel>, serve: usize) -> Self {
        assert!(serve < models.len(), "gate index {serve} of {}", models.len());
        let trained_rows = models[serve].trained_rows;
        Self { inner: Inner::Gated { models, serve }, trained_rows }
    }

    /// A gated model's candidates, in [`GATE_CANDIDATES`] order.
    pub fn candidates(&self) -> Option<&[EndModel]> {
        match &self.inner {
            Inner::Gated { models, .. } => Some(models),
            _ => None,
        }
    }

    /// Which of a gated model's candidates answers.
    pub fn gate_choice(&self) -> Option<usize> {
        match &self.inner {
            Inner::Gated { serve, .. } => Some(*serve),
            _ => None,
        }
    }

    /// The kind of model that answers [`EndModel::predict`]: `Forust`, `Anchored`, `Perpetual`,
    /// or `None` for a constant.
    pub fn backend(&self) -> Option<Backend> {
        match &self.inner {
            Inner::Constant(_) => None,
            Inner::Forust(_) => Some(Backend::Forust),
            Inner::Anchored(_) => Some(Backend::Anchored),
            Inner::Gated { models, serve } => models[*serve].backend(),
            #[cfg(feature = "perpetual")]
            Inner::Perpetual(_) => Some(Backend::Perpetual),
        }
    }

    /// `P(anomaly)` for every row of `x`.
    pub fn predict(&self, x: &FeatureMatrix) -> Vec<f64> {
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        match &self.inner {
            Inner::Constant(c) => vec![*c; x.rows],
            Inner::Anchored(w) => anchored::predict(w, x).into_iter().map(sigmoid).collect(),
            Inner::Gated { models, serve } => models[*serve].predict(x),
            Inner::Forust(b) => {
                b.predict(&forust_ml::Matrix::new(&x.data, x.rows, x.cols), false).into_iter().map(sigmoid).collect()
            }
            #[cfg(feature = "perpetual")]
            Inner::Perpetual(b) => {
                b.predict(&perpetual::Matrix::new(&x.data, x.rows, x.cols), false).into_iter().map(sigmoid).collect()
            }
        }
    }
}

/// The seed-anchored logistic regression.
///
/// `P(anomaly | x) = σ(b + Σ_c w_c·φ(x_c))` with `φ(v) = sign(v)·ln(1 + |v|)` (the columns are
/// z-scores; φ tames their tails), fitted by Newton steps on the weighted, class-balanced
/// log-loss plus `λ·‖w − w₀‖²`. The prior `w₀` is zero except along the anchor, a seed
/// detector's score column: with no labels the model ranks exactly as that detector, and the
/// labels move it only as far as the ridge lets them. So the end model can never stray far
/// below its best seed, and a few confirmed anomalies can still teach it a direction the seed
/// misses (e.g. "low values relative to the long average" on NAB's machine temperatures).
///
/// Why not the trees alone (measured on NAB realKnownCause, tight labels, 2 seeds, AP over the
/// points the analyst has not labeled, same masks, fitted after the fact on the GBDT run's labels):
/// after 10 windows GBDT 0.011, the isolation-forest seed 0.061, this model 0.113 (w₀ = 10 on the
/// isolation-forest column, λ = 1); after 20 windows 0.039 / 0.033 / 0.045. Neither mixing the
/// trees' rank with the seed's (any weight) nor fewer pseudo-labels brought the trees above the
/// seed. Grid tried for (w₀, λ): (1..20, 0.01..3); λ ≤ 0.1 overfits the few labeled events and
/// falls to chance. In the loop itself (`leiad simulate --end-model anchored`, 4 seeds, LEIAD −
/// isolation forest at 10 / 20 windows, pseudo-positives left out as the session does): λ = 1 (the
/// default then): tight +0.054 / +0.027, wide −0.007 / −0.005; λ = 3: tight +0.009 / +0.024, wide
/// −0.002 / −0.001; λ = 10: tight +0.030 / +0.020, wide −0.000 / −0.001. Also tried: `|φ(x)|` as a
/// second input per column (departures either way): tight +0.030 / +0.012 at λ = 1, so not kept.
/// These settings were chosen on that same benchmark (there is no held-out NAB set here), so the
/// figures are optimistic.
///
/// λ = 2 since the label model's EM (which changed the pseudo-negatives and so which windows the
/// loop asks about). The full loop, default gate, 10 seeds, LEIAD AP after 10 / 20 windows and
/// LEIAD − isolation forest after 10 [95 % CI] on NAB tight: λ = 0.3: 0.053 / 0.025 (−0.022 after
/// 20); λ = 1: 0.051 / 0.048, +0.008 [−0.001, +0.017]; λ = 2: 0.053 / 0.050, +0.010 [+0.006,
/// +0.015], every seed above; λ = 3: 0.053 / 0.043, +0.013 [+0.009, +0.016]; λ = 10: 0.036 / 0.036,
/// +0.004 [+0.003, +0.005]. NAB wide, λ = 1 / 2 / 3: 0.283 / 0.294, 0.273 / 0.302, 0.272 / 0.289.
/// On the five synthetic sets the gate serves the trees and λ = 1, 2 and 3 give the same figures.
/// Choosing λ per refit by cross-validation over {0.3, 1, 3, 10} on the labeled windows scored
/// 0.036 / 0.034 on NAB tight: it picked λ = 10 (the figures after 10 windows equal λ = 10's
/// exactly), because held-out labeled windows grade the ranking inside a window, where the seed is
/// strong (see ARCHITECTURE.md on `select`). With `--tolerance 10` (not the protocol's) λ = 1
/// scores higher: 0.158 / 0.144 against λ = 2's 0.121 / 0.131, both above the isolation forest.
/// Like the rest, λ = 2 was chosen on NAB itself.
pub mod anchored {
    use super::FeatureMatrix;

    /// Newton steps at most.
    const STEPS: usize = 30;

    /// The transform of every column.
    pub fn phi(v: f64) -> f64 {
        v.signum() * v.abs().ln_1p()
    }

    /// Fits the weights (one per column, then the intercept) on rows `x` with targets `y` and
    /// per-row weights `w` (rescaled so each class sums to ½), pulled towards `prior` by `ridge`.
    pub fn fit(x: &FeatureMatrix, y: &[bool], w: &[f64], prior: &[f64], ridge: f64) -> Vec<f64> {
        let d = x.cols + 1;
        let (sp, sn) = y.iter().zip(w).fold((0.0, 0.0), |(p, n), (&v, &r)| if v { (p + r, n) } else { (p, n + r) });
        let rw: Vec<f64> = y
            .iter()
            .zip(w)
            .map(|(&v, &r)| if v { 0.5 * r / sp.max(f64::MIN_POSITIVE) } else { 0.5 * r / sn.max(f64::MIN_POSITIVE) })
            .collect();
        // Row-major transformed inputs with the intercept's 1.
        let mut z = vec![1.0; x.rows * d];
        for c in 0..x.cols {
            for (r, &v) in x.col(c).iter().enumerate() {
                z[r * d + c] = phi(v);
            }
        }
        let mut beta = prior.to_vec();
        let mut g = vec![0.0; d];
        let mut h = vec![0.0; d * d];
        for _ in 0..STEPS {
            g.iter_mut().for_each(|v| *v = 0.0);
            h.iter_mut().for_each(|v| *v = 0.0);
            for c in 0..d - 1 {
                g[c] = 2.0 * ridge * (beta[c] - prior[c]);
                h[c * d + c] = 2.0 * ridge;
            }
            h[d * d - 1] = 1e-9;
            for r in 0..x.rows {
                let row = &z[r * d..(r + 1) * d];
                let m: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-m).exp());
                let e = rw[r] * (p - if y[r] { 1.0 } else { 0.0 });
                let s = rw[r] * (p * (1.0 - p)).max(1e-12);
                for a in 0..d {
                    g[a] += e * row[a];
                    let sa = s * row[a];
                    // Lower triangle only; mirrored below.
                    for (hb, &rb) in h[a * d..a * d + a + 1].iter_mut().zip(row) {
                        *hb += sa * rb;
                    }
                }
            }
            for a in 0..d {
                for b in 0..a {
                    h[b * d + a] = h[a * d + b];
                }
            }
            let step = solve_spd(&h, &g, d);
            let mut largest: f64 = 0.0;
            for (b, s) in beta.iter_mut().zip(&step) {
                *b -= s;
                largest = largest.max(s.abs());
            }
            if !largest.is_finite() {
                return prior.to_vec();
            }
            if largest < 1e-7 {
                break;
            }
        }
        beta
    }

    /// Margins `b + Σ w_c·φ(x_c)` of every row.
    pub fn predict(beta: &[f64], x: &FeatureMatrix) -> Vec<f64> {
        let d = beta.len();
        let mut m = vec![beta[d - 1]; x.rows];
        for (c, &w) in beta[..d - 1].iter().enumerate().take(x.cols) {
            if w != 0.0 {
                for (o, &v) in m.iter_mut().zip(x.col(c)) {
                    *o += w * phi(v);
                }
            }
        }
        m
    }

    /// Solves `h·s = g` for a symmetric positive-definite `h` (Cholesky).
    fn solve_spd(h: &[f64], g: &[f64], d: usize) -> Vec<f64> {
        let mut l = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                let mut sum = h[i * d + j];
                for k in 0..j {
                    sum -= l[i * d + k] * l[j * d + k];
                }
                l[i * d + j] = if i == j { sum.max(1e-12).sqrt() } else { sum / l[j * d + j] };
            }
        }
        let mut t = vec![0.0; d];
        for i in 0..d {
            let mut sum = g[i];
            for k in 0..i {
                sum -= l[i * d + k] * t[k];
            }
            t[i] = sum / l[i * d + i];
        }
        let mut s = vec![0.0; d];
        for i in (0..d).rev() {
            let mut sum = t[i];
            for k in i + 1..d {
                sum -= l[k * d + i] * s[k];
            }
            s[i] = sum / l[i * d + i];
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_model_predicts_exactly_as_the_fitted_one() {
        let rows = 200;
        let data: Vec<f64> = (0..rows * 2).map(|k| ((k * 37) % 101) as f64 / 10.0).collect();
        let x = FeatureMatrix { data, rows, cols: 2 };
        let y: Vec<bool> = (0..rows).map(|r| x.col(0)[r] > 7.0).collect();
        let m = EndModel::fit(&x, &y, &EndModelConfig { iterations: 20, ..EndModelConfig::default() }).unwrap();
        let back = EndModel::from_bytes(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(m.predict(&x), back.predict(&x));
        assert_eq!(back.trained_rows, rows);
        let c = EndModel::fit(&x, &vec![false; rows], &EndModelConfig::default()).unwrap();
        assert_eq!(EndModel::from_bytes(&c.to_bytes().unwrap()).unwrap().predict(&x), vec![0.0; rows]);
        assert!(EndModel::from_bytes(&[7, 0, 0]).is_err());
        assert!(EndModel::from_bytes(&[9; 12]).is_err());
        let anchored = EndModelConfig { backend: Backend::Anchored, anchor: Some(1), ..EndModelConfig::default() };
        let a = EndModel::fit(&x, &y, &anchored).unwrap();
        let back = EndModel::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert_eq!(a.predict(&x), back.predict(&x));
        assert!(EndModel::from_bytes(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]).is_err());
        // A gated model: every candidate survives, and so does which one answers.
        for serve in 0..3 {
            let copy = |e: &EndModel| EndModel::from_bytes(&e.to_bytes().unwrap()).unwrap();
            let gated = EndModel::gated(vec![copy(&m), copy(&a), copy(&c)], serve);
            let bytes = gated.to_bytes().unwrap();
            let back = EndModel::from_bytes(&bytes).unwrap();
            let want = [m.predict(&x), a.predict(&x), c.predict(&x)];
            assert_eq!(back.predict(&x), want[serve]);
            assert_eq!(back.gate_choice(), Some(serve));
            let got: Vec<Vec<f64>> = back.candidates().unwrap().iter().map(|e| e.predict(&x)).collect();
            assert_eq!(got, want.to_vec());
            assert!(EndModel::from_bytes(&bytes[..bytes.len() - 3]).is_err(), "truncated");
            assert!(EndModel::from_bytes(&bytes[..12]).is_err(), "truncated header");
        }
        let mut bad_index = EndModel::gated(vec![m], 0).to_bytes().unwrap();
        bad_index[9] = 1;
        assert!(EndModel::from_bytes(&bad_index).is_err(), "index past the candidates");
    }

    #[test]
    fn the_anchored_model_keeps_its_seed_ranking_without_evidence_and_learns_with_it() {
        // Column 0: the "seed" score; column 1: the signal the labels carry.
        let rows = 400;
        let seed: Vec<f64> = (0..rows).map(|r| ((r * 53) % 97) as f64 / 20.0 - 2.0).collect();
        let signal: Vec<f64> =
            (0..rows).map(|r| if r % 40 == 0 { 3.0 } else { ((r * 31) % 17) as f64 / 17.0 - 0.5 }).collect();
        let x = FeatureMatrix { data: [seed.clone(), signal.clone()].concat(), rows, cols: 2 };
        let cfg = EndModelConfig { backend: Backend::Anchored, anchor: Some(0), ..EndModelConfig::default() };
        // Labels unrelated to both columns' order: the anchor keeps the seed's ranking.
        let y: Vec<bool> = (0..rows).map(|r| r % 2 == 0).collect();
        let p = EndModel::fit(&x, &y, &cfg).unwrap().predict(&x);
        let order = |s: &[f64]| {
            let mut o: Vec<usize> = (0..s.len()).collect();
            o.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
            o
        };
        let top_seed = |o: Vec<usize>| o[..20].iter().map(|&r| seed[r]).collect::<Vec<f64>>();
        assert_eq!(top_seed(order(&p)), top_seed(order(&seed)));
        // Labels that follow column 1: its weight turns positive (as far as the ridge lets it;
        // a weak ridge here) and its anomalies rise.
        let y: Vec<bool> = signal.iter().map(|&v| v > 2.0).collect();
        let m = EndModel::fit(&x, &y, &EndModelConfig { anchor_ridge: 0.01, ..cfg }).unwrap();
        let Inner::Anchored(w) = &m.inner else { panic!("not anchored") };
        assert!(w[1] > 1.0, "{w:?}");
        let Inner::Anchored(w3) = &EndModel::fit(&x, &y, &cfg).unwrap().inner else { panic!("not anchored") };
        assert!(w3[1] > 0.0 && w3[1] < w[1], "{w3:?}");
        // Margins: with a weak ridge on separable data the probabilities saturate at 1.
        let top: Vec<usize> = order(&anchored::predict(w, &x))[..10].to_vec();
        assert!(top.iter().filter(|&&r| r % 40 == 0).count() >= 7, "{top:?}");
    }
}
