//! The evaluation protocol (spec part A, B.1.7) as a pure state machine: a simulated analyst
//! answers suggested windows from ground truth, and after every round all methods are scored
//! point-wise on the points neither run has labeled. The caller times rounds and prints; this
//! module reads no clock.
//!
//! Per round, the LEIAD run shows its suggestions in rank order and stops at the first window
//! holding an anomaly (B.1.4 step 5), at the window budget, or at a reporting checkpoint (so
//! every seed reports at exactly 10 and 20 windows). The random-selection run then labels the
//! same number of windows, centred on random unlabeled points, so the two are compared at equal
//! label budgets. Methods scored:
//! * `leiad`: the end model of the active run;
//! * `leiad_random`: the end model of the random-selection run;
//! * `labels_only`: the GBDT (forust) trained only on the active run's human labels, whatever
//!   the end model's back-end (the spec's "model trained only on the analyst's labels");
//! * `labels_prior`: the seed-anchored logistic regression trained only on those labels, that
//!   is the labels plus the best seed detector as a prior: a stricter baseline, which shows what
//!   the LFs and pseudo-labels add beyond the seed detector the anchored end model leans on;
//! * `label_model`: the active run's label-model probabilities (for insight);
//! * one entry per seed detector (raw score).

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::detectors::Detector;
use crate::eval::{average_precision, roc_auc};
use crate::{Leiad, LeiadConfig, LeiadError, Prepared, Window};

/// Simulation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Windows after which the loop stops.
    pub max_windows: usize,
    /// Window counts a round may not step over (reports land exactly on them).
    pub checkpoints: Vec<usize>,
    /// Session settings (its seed is the simulation seed).
    pub leiad: LeiadConfig,
}

/// Scores of one round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Round number, from 1.
    pub round: usize,
    /// Windows the analyst has labeled so far (in each run).
    pub windows_labeled: usize,
    /// Anomalous windows among them (active run).
    pub anomalous_windows: usize,
    /// Average precision per method.
    pub ap: BTreeMap<String, f64>,
    /// ROC-AUC per method.
    pub roc_auc: BTreeMap<String, f64>,
    /// Points scored (unlabeled in both runs).
    pub evaluated_points: usize,
    /// Anomalous points among them: with none (a small pool whose anomalies both runs have
    /// labeled), AP and ROC-AUC are undefined and every method reports 0.
    pub evaluated_anomalies: usize,
}

/// One seed's replay.
#[derive(Debug)]
pub struct Simulation {
    prep: Arc<Prepared>,
    truth: Arc<Vec<bool>>,
    cfg: SimConfig,
    active: Leiad,
    random: Leiad,
    rng: ChaCha8Rng,
    windows: usize,
    anomalous: usize,
    round: usize,
}

impl Simulation {
    /// Starts a replay of `truth` (one flag per pooled point).
    ///
    /// # Errors
    /// [`LeiadError::Param`] when `truth` does not match the pool or the settings are invalid.
    pub fn new(prep: Arc<Prepared>, truth: Arc<Vec<bool>>, cfg: SimConfig) -> Result<Self, LeiadError> {
        if truth.len() != prep.pool().len() {
            return Err(LeiadError::param("truth", format!("{} flags for {} points", truth.len(), prep.pool().len())));
        }
        let active = Leiad::new(prep.clone(), cfg.leiad.clone())?;
        let random = Leiad::new(prep.clone(), cfg.leiad.clone())?;
        let rng = ChaCha8Rng::seed_from_u64(cfg.leiad.seed ^ 0x5eed);
        Ok(Self { prep, truth, cfg, active, random, rng, windows: 0, anomalous: 0, round: 0 })
    }

    /// The active-learning session.
    pub fn session(&self) -> &Leiad {
        &self.active
    }

    fn answer(&self, w: &Window) -> Vec<bool> {
        self.prep.pool().global(w).map(|i| self.truth[i]).collect()
    }

    /// Runs one round and scores it; `None` once the budget is spent or nothing is left to ask.
    ///
    /// # Errors
    /// [`LeiadError::EndModel`] when a GBDT fit fails.
    pub fn round(&mut self) -> Result<Option<RoundReport>, LeiadError> {
        if self.windows >= self.cfg.max_windows {
            return Ok(None);
        }
        let limit = self
            .cfg
            .checkpoints
            .iter()
            .copied()
            .filter(|&c| c > self.windows)
            .min()
            .unwrap_or(usize::MAX)
            .min(self.cfg.max_windows);
        let step = self.active.step();
        let mut shown = 0;
        for s in &step.suggestions {
            if self.windows >= limit {
                break;
            }
            let answer = self.answer(&s.window);
            let any = answer.contains(&true);
            self.active.add_labels(s.window, &answer)?;
            self.windows += 1;
            shown += 1;
            if any {
                self.anomalous += 1;
                break;
            }
        }
        if shown == 0 {
            return Ok(None);
        }
        // The random run labels as many windows, centred on random unlabeled points.
        for _ in 0..shown {
            let Some(w) = self.random_window() else { break };
            let answer = self.answer(&w);
            self.random.add_labels(w, &answer)?;
        }
        for run in [&mut self.active, &mut self.random] {
            run.update_label_model();
            let model = run.refit_end_model()?;
            run.install_end_model(model);
        }
        self.round += 1;
        Ok(Some(self.score()?))
    }

    fn random_window(&mut self) -> Option<Window> {
        let g = self.random.golden();
        let n = g.len();
        for _ in 0..1000 {
            let i = self.rng.random_range(0..n);
            if g[i] < 0 {
                return Some(self.prep.pool().window_around(i, self.cfg.leiad.half_window));
            }
        }
        None
    }

    fn score(&self) -> Result<RoundReport, LeiadError> {
        let (ga, gr) = (self.active.golden(), self.random.golden());
        let mask: Vec<usize> = (0..ga.len()).filter(|&i| ga[i] < 0 && gr[i] < 0).collect();
        let truth: Vec<bool> = mask.iter().map(|&i| self.truth[i]).collect();
        let mut methods: Vec<(String, Vec<f64>)> = Vec::new();
        let pick = |s: &[f64]| mask.iter().map(|&i| s[i]).collect::<Vec<f64>>();
        methods.push(("leiad".into(), pick(self.active.end_scores().unwrap_or(&[]))));
        methods.push(("leiad_random".into(), pick(self.random.end_scores().unwrap_or(&[]))));
        let lo = self.active.labels_only_trees()?.predict(self.prep.features());
        methods.push(("labels_only".into(), pick(&lo)));
        let lp = self.active.labels_prior_model()?.predict(self.prep.features());
        methods.push(("labels_prior".into(), pick(&lp)));
        methods.push(("label_model".into(), pick(self.active.label_model_scores())));
        // Each of the gate's candidates, whichever answers: shows whether the gate chose well.
        if let Some(c) = self.active.candidate_scores() {
            for (name, s) in crate::GATE_CANDIDATES.iter().zip(c) {
                methods.push((format!("gate_{name}"), pick(s)));
            }
        }
        for d in Detector::ALL {
            methods.push((d.name().to_string(), pick(self.prep.detector_scores(d))));
        }
        let mut ap = BTreeMap::new();
        let mut auc = BTreeMap::new();
        for (name, s) in methods {
            ap.insert(name.clone(), average_precision(&s, &truth));
            auc.insert(name, roc_auc(&s, &truth));
        }
        Ok(RoundReport {
            round: self.round,
            windows_labeled: self.windows,
            anomalous_windows: self.anomalous,
            ap,
            roc_auc: auc,
            evaluated_points: mask.len(),
            evaluated_anomalies: truth.iter().filter(|&&t| t).count(),
        })
    }
}
