//! The end model: gradient-boosted trees over the causal features, trained on the confident
//! pseudo-labels plus every human label. [`EndModel`] is a plain value: fitting it does not touch
//! the session, so the service can fit in the background and install the result later.
//!
//! Back-ends: `forust-ml` (default; pure Rust, deterministic, no clock) and, behind the
//! `perpetual` feature, `perpetual` (kept for the comparison recorded in ARCHITECTURE.md).
//! Both run single-threaded here: the service gives a refit one core.

use crate::LeiadError;

/// Which GBDT crate fits the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `forust-ml` with fixed iterations.
    Forust,
    /// `perpetual` with a fixed budget (feature `perpetual`).
    Perpetual,
}

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
}

impl Default for EndModelConfig {
    fn default() -> Self {
        Self { backend: Backend::Forust, iterations: 100, learning_rate: 0.15, max_depth: 3, budget: 0.5, seed: 0 }
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
            #[cfg(feature = "perpetual")]
            Inner::Perpetual(_) => "perpetual",
        };
        f.debug_struct("EndModel").field("kind", &kind).field("trained_rows", &self.trained_rows).finish()
    }
}

enum Inner {
    Constant(f64),
    Forust(Box<forust_ml::GradientBooster>),
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
            Backend::Forust => {
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
            t => return Err(bad(&format!("unknown tag {t}"))),
        };
        Ok(Self { inner, trained_rows: rows })
    }

    /// `P(anomaly)` for every row of `x`.
    pub fn predict(&self, x: &FeatureMatrix) -> Vec<f64> {
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        match &self.inner {
            Inner::Constant(c) => vec![*c; x.rows],
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
    }
}
