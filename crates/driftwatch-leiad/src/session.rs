//! The LEIAD round API over one pool: labels in, LFs, label model, pseudo-labels, end model and
//! ranked suggestions out. Owns the mutable state of a labeling project (labels, LFs, the fitted
//! label model, the installed end model); everything per pool is in the shared [`Prepared`].
//!
//! Cost split, for the service:
//! * foreground: [`Leiad::add_labels`] (LF generation: a bounded number of pool passes, plus the
//!   labels-only model every `golden_every` labels), [`Leiad::step`] (label-model refit when
//!   stale, pseudo-labels, active-learning scores, suggestions);
//! * background: [`Leiad::refit_end_model`] takes `&self` and returns an [`EndModel`] value;
//!   [`Leiad::install_end_model`] swaps it in later (its pool predictions feed the next step's
//!   uncertainty term and the stopping rule).
//!
//! Invariants: the state is a function of (pool, config, the sequence of label / undo / veto /
//! install calls, in order: a label records how the installed gated model ranked it): no hidden RNG
//! advances between calls (LF generation seeds its RNG from the session seed and the label id).
//! Undoing a label removes it and every LF built from it, so the state equals the state before
//! the label.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::active::{self, AlScores, AlWeights, Breakdown};
use crate::detectors::Detector;
use crate::end_model::{Backend, EndModel, EndModelConfig, GATE_CANDIDATES};
use crate::eval::average_precision;
use crate::label_model::{LabelModel, LabelModelConfig};
use crate::lfgen::{LfGenConfig, golden_votes, prototype_votes};
use crate::prepared::Prepared;
use crate::votes::{LabelingFunction, LfKind, VoteMatrix};
use crate::{LeiadError, SeriesInput, Window};

/// When to stop asking (part A): budget spent, ranking stable, or nothing worth asking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopConfig {
    /// Windows the analysts will label at most.
    pub budget_windows: Option<usize>,
    /// Consecutive end-model installs whose top-K overlap must reach `stable_overlap`.
    pub stable_rounds: usize,
    /// Overlap share counted as stable.
    pub stable_overlap: f64,
    /// K of the top-K comparison.
    pub top_k: usize,
    /// Stop when no candidate's active-learning score is above this.
    pub score_floor: f64,
}

impl Default for StopConfig {
    fn default() -> Self {
        Self { budget_windows: None, stable_rounds: 3, stable_overlap: 0.95, top_k: 100, score_floor: 0.0 }
    }
}

/// The seed detectors that vote as LFs by default: those whose pooled AP is at least twice the
/// base rate on the median development set (five NAB categories and five synthetic sets; the same
/// six in every leave-one-set-out fold, docs/experiments.md 2026-12-07). The iCID change score,
/// the IDK point score and the spectral residual fall below that and stay features only.
pub const DEFAULT_SEED_LFS: [Detector; 6] = [
    Detector::RobustZ,
    Detector::IsolationForest,
    Detector::AnomalyScore,
    Detector::GaussianTail,
    Detector::DiffTail,
    Detector::SeasonalResidual,
];

/// Session settings; every constant the reference hard-codes is here.
#[derive(Debug, Clone, PartialEq)]
pub struct LeiadConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Half-width of a suggested window (reference: 200).
    pub half_window: usize,
    /// Candidate windows per step (reference: 5).
    pub candidates: usize,
    /// Active-learning weights.
    pub weights: AlWeights,
    /// Assumed anomaly share of the pool (reference: 0.01); also the label model's class prior.
    pub anomaly_rate: f64,
    /// Share of `anomaly_rate` pseudo-labeled positive before human anomalies dominate (reference: 0.1).
    pub ws_ratio: f64,
    /// Negatives per positive pseudo-label (reference: 100), capped at `max_negative_share`.
    pub neg_ratio: f64,
    /// Largest share of the pool pseudo-labeled negative.
    pub max_negative_share: f64,
    /// Largest number of negative training rows (thinned evenly in score order beyond it).
    pub max_negatives: usize,
    /// LF generation.
    pub lfgen: LfGenConfig,
    /// A golden-model LF after every this many labels (reference: 5 rounds).
    pub golden_every: usize,
    /// Golden LF's positive share (reference: 0.005).
    pub golden_top: f64,
    /// Golden LF's negative share (reference: 0.495).
    pub golden_bottom: f64,
    /// Most LFs the label model uses: the seed LFs plus the newest generated ones.
    pub max_lfs: usize,
    /// Weight of a human-labeled training row relative to a pseudo-labeled one.
    pub human_weight: f64,
    /// Label model.
    pub label_model: LabelModelConfig,
    /// End model.
    pub end_model: EndModelConfig,
    /// Stopping rules.
    pub stop: StopConfig,
    /// The seed detectors that vote as LFs and make the active-learning prior (every detector
    /// stays a feature column and an anchor candidate of the end model).
    pub seed_lfs: Vec<Detector>,
}

impl Default for LeiadConfig {
    fn default() -> Self {
        Self {
            seed: 123,
            half_window: 200,
            candidates: 5,
            weights: AlWeights::default(),
            anomaly_rate: 0.01,
            ws_ratio: 0.1,
            neg_ratio: 100.0,
            max_negative_share: 0.5,
            max_negatives: 20_000,
            lfgen: LfGenConfig::default(),
            golden_every: 5,
            golden_top: 0.005,
            golden_bottom: 0.495,
            max_lfs: 50,
            human_weight: 5.0,
            label_model: LabelModelConfig::default(),
            end_model: EndModelConfig::default(),
            stop: StopConfig::default(),
            seed_lfs: DEFAULT_SEED_LFS.to_vec(),
        }
    }
}

impl LeiadConfig {
    fn validate(&self) -> Result<(), LeiadError> {
        let share = |name, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1.0 { Ok(()) } else { Err(LeiadError::param(name, "must be in (0, 1)")) }
        };
        share("anomaly_rate", self.anomaly_rate)?;
        share("ws_ratio", self.ws_ratio)?;
        share("max_negative_share", self.max_negative_share)?;
        share("golden_top", self.golden_top)?;
        share("golden_bottom", self.golden_bottom)?;
        if self.half_window == 0 || self.candidates == 0 || self.golden_every == 0 {
            return Err(LeiadError::param("half_window/candidates/golden_every", "must be at least 1"));
        }
        if self.seed_lfs.is_empty() {
            return Err(LeiadError::param("seed_lfs", "needs at least one detector"));
        }
        if self.max_lfs < self.seed_lfs.len() + 2 {
            return Err(LeiadError::param("max_lfs", format!("must be at least {}", self.seed_lfs.len() + 2)));
        }
        if !(self.human_weight.is_finite() && self.human_weight > 0.0) {
            return Err(LeiadError::param("human_weight", "must be a positive number"));
        }
        if !(self.neg_ratio.is_finite() && self.neg_ratio > 0.0) {
            return Err(LeiadError::param("neg_ratio", "must be a positive number"));
        }
        if self.label_model.em_unlabeled_weight.is_some_and(|w| !(w.is_finite() && w > 0.0)) {
            return Err(LeiadError::param("em_unlabeled_weight", "must be a positive number"));
        }
        if self.lfgen.max_prototypes == 0 || self.lfgen.max_seeds == 0 {
            return Err(LeiadError::param("lfgen", "max_prototypes and max_seeds must be at least 1"));
        }
        Ok(())
    }
}

/// One human label: a window and its per-point answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Stable id.
    pub id: u64,
    /// The window.
    pub window: Window,
    /// `true` = anomaly, per point of the window.
    pub labels: Vec<bool>,
    /// [`Backend::Gate`]'s evidence: per anomalous point of the window, the share of the pool
    /// ranked above it by each of the [`GATE_CANDIDATES`] installed when the label arrived
    /// (predictions made without this label). Empty when no gated model was installed.
    pub gate_shares: Vec<[f64; 3]>,
}

/// What [`Backend::Gate`] weighs: where the analyst's anomalous points sat in the pool's ranking
/// before they were labeled, under each candidate, as the geometric mean over them of the share
/// of the pool ranked above them (smaller is better).
///
/// Why the whole pool and not cross-validation on the labeled windows (`Backend::Select`): the
/// pooled average precision the loop is judged on rewards anomalies ranked above the (mostly
/// normal) rest of the pool, and ranking inside a suggested window says little about that. Why
/// the end models and not the label model the trees learn from: on the synthetic set the label
/// model ranks labeled anomalies below the best seed detector (geometric mean share 0.29 against
/// 0.23 after 10 windows) although the trees built on its pseudo-labels rank the pool five times
/// better than any seed (AP 0.24 against 0.05). What it cannot see: false alarms ranked above
/// the anomalies (precision); see ARCHITECTURE.md, "the open problem".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateEvidence {
    /// Per candidate ([`GATE_CANDIDATES`] order): geometric mean share of the pool ranked above a
    /// labeled anomaly.
    pub top: [f64; 3],
    /// Labeled anomalous points weighed.
    pub anomalies: usize,
}

impl GateEvidence {
    /// Which candidate answers: `default` (see [`crate::EndModelConfig::gate_default`]) unless
    /// the candidate that ranked the analyst's anomalies highest did so `margin` times higher (its
    /// share of the pool above them that many times smaller). See
    /// [`crate::EndModelConfig::gate_margin`].
    pub fn choice(&self, margin: f64, default: usize) -> usize {
        let default = default.min(self.top.len() - 1);
        let best = (0..self.top.len())
            .min_by(|&a, &b| {
                self.top[a].total_cmp(&self.top[b]).then((a != default).cmp(&(b != default))).then(a.cmp(&b))
            })
            .unwrap_or(default);
        if best != default && self.top[best] * margin < self.top[default] { best } else { default }
    }
}

/// `scores` in ascending order, for [`share_above`].
fn sorted(scores: &[f64]) -> Vec<f64> {
    let mut sorted = scores.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
}

/// Per point of `at`: the share of `scores` strictly above it plus half the share equal to it
/// (`sorted` is `scores` in ascending order).
fn share_above(scores: &[f64], sorted: &[f64], at: impl Iterator<Item = usize>) -> Vec<f64> {
    let n = sorted.len().max(1) as f64;
    at.map(|i| {
        let v = scores[i];
        let below = sorted.partition_point(|x| x.total_cmp(&v).is_lt());
        let not_above = sorted.partition_point(|x| x.total_cmp(&v).is_le());
        ((sorted.len() - not_above) as f64 + 0.5 * (not_above - below) as f64) / n
    })
    .collect()
}

/// Per point of `at` (any order): the share of `scores` strictly above it plus half the share
/// equal to it, in one pass over `scores` (`O(n log |at|)`, no sort of the pool).
fn shares_above_points(scores: &[f64], at: &[usize]) -> Vec<f64> {
    let mut vals: Vec<f64> = at.iter().map(|&i| scores[i]).collect();
    vals.sort_unstable_by(f64::total_cmp);
    // Twice the count per sorted anomaly value, as a difference array.
    let mut diff = vec![0i64; vals.len() + 1];
    for x in scores {
        let lo = vals.partition_point(|v| v.total_cmp(x).is_lt());
        let hi = vals.partition_point(|v| v.total_cmp(x).is_le());
        diff[0] += 2;
        diff[lo] -= 1;
        diff[hi] -= 1;
    }
    let n = scores.len().max(1) as f64;
    let mut run = 0i64;
    let per_sorted: Vec<f64> = diff[..vals.len()]
        .iter()
        .map(|d| {
            run += d;
            run as f64 / 2.0 / n
        })
        .collect();
    // Every point equal to a value shares its result, so the sorted order maps back by value.
    at.iter()
        .map(|&i| {
            let k = vals.partition_point(|v| v.total_cmp(&scores[i]).is_lt());
            per_sorted[k]
        })
        .collect()
}

/// Geometric mean of shares, each floored at one point in `n`.
fn geometric_mean(shares: &[f64], n: usize) -> f64 {
    let floor = 1.0 / n.max(1) as f64;
    (shares.iter().map(|s| s.max(floor).ln()).sum::<f64>() / shares.len().max(1) as f64).exp()
}

/// One suggested window and why it was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// Rank, 0 = best.
    pub rank: usize,
    /// The window to show.
    pub window: Window,
    /// Pooled index of the point it centres on.
    pub centre: usize,
    /// Weighted active-learning score of the centre.
    pub score: f64,
    /// The five normalised terms of the centre.
    pub breakdown: Breakdown,
    /// The current model's anomaly probability of the centre.
    pub probability: f64,
}

/// Why the loop says to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The window budget is spent.
    Budget,
    /// The end model's top-K has been stable for the configured rounds.
    Stable,
    /// No unlabeled candidate scores above the floor.
    NoCandidate,
}

/// What [`Leiad::step`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Ranked suggestions (empty when stopping for lack of candidates).
    pub suggestions: Vec<Suggestion>,
    /// Set when a stopping rule fires; suggestions are still given unless none exist.
    pub stop: Option<StopReason>,
    /// Whether the label model fell back to majority voting this refit.
    pub majority_fallback: bool,
}

/// Statistics of one LF, for listing.
#[derive(Debug, Clone, PartialEq)]
pub struct LfStats {
    /// Id.
    pub id: u64,
    /// Kind.
    pub kind: LfKind,
    /// Labels it was built from.
    pub from_labels: Vec<u64>,
    /// Vetoed by a user.
    pub vetoed: bool,
    /// Whether the current label model uses it (not vetoed, within `max_lfs`).
    pub active: bool,
    /// Share of the pool it votes on.
    pub coverage: f64,
    /// Anomaly votes.
    pub positives: usize,
    /// Share of its votes that some other active LF contradicts.
    pub conflict: f64,
    /// The label model's accuracy for it (active LFs, after a refit).
    pub learned_accuracy: Option<f64>,
    /// Share of its votes on human-labeled points that agree with the human.
    pub golden_accuracy: Option<f64>,
}

#[derive(Debug)]
struct Installed {
    model: EndModel,
    scores: Vec<f64>,
    /// A gated model's candidates' scores, each with a sorted copy ([`Backend::Gate`]): every
    /// label ranks its points against them, so they are sorted once per install.
    candidates: Option<Vec<(Vec<f64>, Vec<f64>)>>,
}

/// A detached end-model fit: see [`Leiad::refit_job`].
#[derive(Debug, Clone)]
pub struct RefitJob {
    prep: Arc<Prepared>,
    rows: Vec<usize>,
    y: Vec<bool>,
    w: Vec<f64>,
    /// Per row: the cross-validation fold of the label covering it; `None` for pseudo-labels.
    fold: Vec<Option<usize>>,
    cfg: EndModelConfig,
    /// [`Backend::Gate`]: which candidate answers.
    serve: usize,
}

/// Folds of [`RefitJob::select`].
pub const SELECT_FOLDS: usize = 3;

impl RefitJob {
    /// Fits the end model. [`Backend::Select`] first cross-validates the trees against the
    /// anchored model on the labeled windows (see [`RefitJob::select`]) and fits the winner.
    ///
    /// # Errors
    /// [`LeiadError::EndModel`] when the GBDT library refuses to fit.
    pub fn run(&self) -> Result<EndModel, LeiadError> {
        let backend = match self.cfg.backend {
            Backend::Select => self.select()?,
            Backend::Gate => {
                let trees = self.fit_with(Backend::Forust, None)?;
                let anchored = self.fit_with(Backend::Anchored, None)?;
                let supervised = self.fit_supervised()?;
                return Ok(EndModel::gated(vec![trees, anchored, supervised], self.serve));
            }
            b => b,
        };
        self.fit_with(backend, None)
    }

    /// Fits `backend` on the job's rows, leaving out the labeled points of fold `held` (if any).
    /// The anchored model also leaves out the pseudo-positives: they come from a label model that
    /// is at chance on NAB, and they cost it (10 windows, tight labels, 4 seeds: LEIAD − labels-only
    /// −0.013 with them, +0.016 without).
    fn fit_with(&self, backend: Backend, held: Option<usize>) -> Result<EndModel, LeiadError> {
        let keep: Vec<usize> = (0..self.rows.len())
            .filter(|&k| held.is_none() || self.fold[k] != held)
            .filter(|&k| !(backend == Backend::Anchored && self.pseudo_positive(k)))
            .collect();
        let rows: Vec<usize> = keep.iter().map(|&k| self.rows[k]).collect();
        let y: Vec<bool> = keep.iter().map(|&k| self.y[k]).collect();
        let w: Vec<f64> = keep.iter().map(|&k| self.w[k]).collect();
        EndModel::fit_weighted(&self.prep.features().take(&rows), &y, &w, &EndModelConfig { backend, ..self.cfg })
    }

    /// The trees on the job's human-labeled rows alone (equal weights: the class balancing
    /// makes the human weight irrelevant there).
    fn fit_supervised(&self) -> Result<EndModel, LeiadError> {
        let keep: Vec<usize> = (0..self.rows.len()).filter(|&k| self.fold[k].is_some()).collect();
        let rows: Vec<usize> = keep.iter().map(|&k| self.rows[k]).collect();
        let y: Vec<bool> = keep.iter().map(|&k| self.y[k]).collect();
        let w = vec![1.0; rows.len()];
        let cfg = EndModelConfig { backend: Backend::Forust, ..self.cfg };
        EndModel::fit_weighted(&self.prep.features().take(&rows), &y, &w, &cfg)
    }

    fn pseudo_positive(&self, k: usize) -> bool {
        self.y[k] && self.fold[k].is_none()
    }

    /// Trees or the anchored model: the one with the higher mean average precision on held-out
    /// labeled windows. Labels are dealt into [`SELECT_FOLDS`] folds in the order they were given;
    /// each fold's labeled points are scored by both models fitted without them (pseudo-labels
    /// stay in). Folds without both classes are skipped; with fewer than two usable folds, or on
    /// a tie, the anchored model (which defaults to the best seed detector) is chosen.
    ///
    /// # Errors
    /// As [`EndModel::fit_weighted`].
    pub fn select(&self) -> Result<Backend, LeiadError> {
        let x = self.prep.features();
        let (mut trees, mut anchored, mut used) = (0.0, 0.0, 0);
        for f in 0..SELECT_FOLDS {
            let held: Vec<usize> = (0..self.rows.len()).filter(|&k| self.fold[k] == Some(f)).collect();
            let truth: Vec<bool> = held.iter().map(|&k| self.y[k]).collect();
            if !(truth.contains(&true) && truth.contains(&false)) {
                continue;
            }
            let xh = x.take(&held.iter().map(|&k| self.rows[k]).collect::<Vec<usize>>());
            trees += average_precision(&self.fit_with(Backend::Forust, Some(f))?.predict(&xh), &truth);
            anchored += average_precision(&self.fit_with(Backend::Anchored, Some(f))?.predict(&xh), &truth);
            used += 1;
        }
        Ok(if used >= 2 && trees > anchored * self.cfg.select_margin { Backend::Forust } else { Backend::Anchored })
    }

    /// Rows it trains on.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

/// A labeling session over one pool.
#[derive(Debug)]
pub struct Leiad {
    prep: Arc<Prepared>,
    cfg: LeiadConfig,
    lfs: Vec<LabelingFunction>,
    labels: Vec<Label>,
    /// Per point: −1 unlabeled, 0 normal, 1 anomaly (the latest label covering it wins).
    golden: Vec<i8>,
    next_lf: u64,
    next_label: u64,
    stale: bool,
    votes: VoteMatrix,
    /// Ids of the LFs that are the vote matrix's columns.
    columns: Vec<u64>,
    label_model: Option<LabelModel>,
    fallback: bool,
    q: Vec<f64>,
    train: Vec<(usize, bool)>,
    end: Option<Installed>,
    stable_count: usize,
    /// The active-learning prior: the mean scaled score of the seed LFs' detectors.
    prior: Vec<f64>,
}

impl Leiad {
    /// Starts a session: one seed LF per detector.
    ///
    /// # Errors
    /// [`LeiadError::Param`] for settings out of range.
    pub fn new(prep: Arc<Prepared>, cfg: LeiadConfig) -> Result<Self, LeiadError> {
        cfg.validate()?;
        let n = prep.pool().len();
        let lfs: Vec<LabelingFunction> = cfg
            .seed_lfs
            .iter()
            .enumerate()
            .map(|(j, &d)| LabelingFunction::from_dense(j as u64, LfKind::Seed(d), Vec::new(), &prep.seed_votes(d)))
            .collect();
        let prior = prep.prior_of(&cfg.seed_lfs);
        Ok(Self {
            prior,
            next_lf: lfs.len() as u64,
            prep,
            cfg,
            lfs,
            labels: Vec::new(),
            golden: vec![-1; n],
            next_label: 0,
            stale: true,
            votes: VoteMatrix::default(),
            columns: Vec::new(),
            label_model: None,
            fallback: false,
            q: vec![0.0; n],
            train: Vec::new(),
            end: None,
            stable_count: 0,
        })
    }

    /// The shared per-pool data.
    pub fn prepared(&self) -> &Arc<Prepared> {
        &self.prep
    }

    /// Settings.
    pub fn config(&self) -> &LeiadConfig {
        &self.cfg
    }

    /// Human labels per point: −1 unlabeled, 0 normal, 1 anomaly.
    pub fn golden(&self) -> &[i8] {
        &self.golden
    }

    /// Labels in force, oldest first.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Every LF, vetoed ones included.
    pub fn lf_list(&self) -> &[LabelingFunction] {
        &self.lfs
    }

    /// Records a labeled window and builds the LFs it implies.
    ///
    /// # Errors
    /// [`LeiadError::Window`] when the window is not in the pool or `labels` does not have one
    /// answer per point.
    pub fn add_labels(&mut self, window: Window, labels: &[bool]) -> Result<u64, LeiadError> {
        self.prep.pool().check(&window)?;
        if labels.len() != window.len() {
            return Err(LeiadError::Window(format!("{} labels for a window of {} points", labels.len(), window.len())));
        }
        let id = self.next_label;
        self.next_label += 1;
        let range = self.prep.pool().global(&window);
        let gate_shares = match self.end.as_ref().and_then(|e| e.candidates.as_ref()) {
            Some(c) if c.len() == GATE_CANDIDATES.len() => {
                let at = || range.clone().zip(labels).filter(|(_, l)| **l).map(|(i, _)| i);
                let per: Vec<Vec<f64>> = c.iter().map(|(scores, asc)| share_above(scores, asc, at())).collect();
                (0..per[0].len()).map(|k| [per[0][k], per[1][k], per[2][k]]).collect()
            }
            _ => Vec::new(),
        };
        self.labels.push(Label { id, window, labels: labels.to_vec(), gate_shares });
        for (i, &l) in range.clone().zip(labels) {
            self.golden[i] = i8::from(l);
        }
        let anomalies: Vec<usize> = range.clone().zip(labels).filter(|(_, l)| **l).map(|(i, _)| i).collect();
        if !anomalies.is_empty() {
            let normals: Vec<usize> = range.zip(labels).filter(|(_, l)| !**l).map(|(i, _)| i).collect();
            let seed = self.cfg.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let (stat, repr) = prototype_votes(&self.prep, &anomalies, &normals, &self.cfg.lfgen, seed);
            self.push_lf(LfKind::StatPrototype, vec![id], &stat);
            self.push_lf(LfKind::ReprPrototype, vec![id], &repr);
        }
        if self.labels.len().is_multiple_of(self.cfg.golden_every) && self.golden.contains(&1) {
            let model = self.labels_only_model()?;
            let scores = model.predict(self.prep.features());
            let votes = golden_votes(&scores, self.cfg.golden_top, self.cfg.golden_bottom);
            let from = self.labels.iter().map(|l| l.id).collect();
            self.push_lf(LfKind::Golden, from, &votes);
        }
        self.stale = true;
        Ok(id)
    }

    fn push_lf(&mut self, kind: LfKind, from: Vec<u64>, dense: &[Option<bool>]) {
        self.lfs.push(LabelingFunction::from_dense(self.next_lf, kind, from, dense));
        self.next_lf += 1;
    }

    /// Withdraws a label: its points return to their previous labels (or unlabeled), and every
    /// LF built from it is removed.
    ///
    /// # Errors
    /// [`LeiadError::UnknownId`] when no label in force has this id.
    pub fn undo(&mut self, label: u64) -> Result<(), LeiadError> {
        let pos =
            self.labels.iter().position(|l| l.id == label).ok_or(LeiadError::UnknownId { kind: "label", id: label })?;
        self.labels.remove(pos);
        self.lfs.retain(|lf| !lf.from_labels.contains(&label));
        self.golden.fill(-1);
        for l in &self.labels {
            for (i, &v) in self.prep.pool().global(&l.window).zip(&l.labels) {
                self.golden[i] = i8::from(v);
            }
        }
        self.stale = true;
        Ok(())
    }

    /// Vetoes (or restores) an LF: a vetoed LF stays listed but the label model ignores it.
    ///
    /// # Errors
    /// [`LeiadError::UnknownId`] for an unknown LF.
    pub fn veto(&mut self, lf: u64, vetoed: bool) -> Result<(), LeiadError> {
        let f = self
            .lfs
            .iter_mut()
            .find(|f| f.id == lf)
            .ok_or(LeiadError::UnknownId { kind: "labeling function", id: lf })?;
        if f.vetoed != vetoed {
            f.vetoed = vetoed;
            self.stale = true;
        }
        Ok(())
    }

    /// The LFs the label model uses: not vetoed; the seed LFs plus the newest generated ones up to `max_lfs`.
    fn active_ids(&self) -> Vec<u64> {
        let live: Vec<&LabelingFunction> = self.lfs.iter().filter(|f| !f.vetoed).collect();
        let seeds = live.iter().filter(|f| matches!(f.kind, LfKind::Seed(_))).count();
        let room = self.cfg.max_lfs.saturating_sub(seeds);
        let generated: Vec<u64> = live.iter().filter(|f| !matches!(f.kind, LfKind::Seed(_))).map(|f| f.id).collect();
        let skip = generated.len().saturating_sub(room);
        live.iter()
            .filter(|f| matches!(f.kind, LfKind::Seed(_)))
            .map(|f| f.id)
            .chain(generated.into_iter().skip(skip))
            .collect()
    }

    /// Refits the label model and the pseudo-labels if labels or LFs changed since the last fit.
    pub fn update_label_model(&mut self) {
        if !self.stale {
            return;
        }
        let n = self.prep.pool().len();
        self.columns = self.active_ids();
        let cols = &self.columns;
        self.votes = VoteMatrix::build(n, self.lfs.iter().filter(|f| cols.contains(&f.id)));
        let mut model = LabelModel::fit(&self.votes, self.cfg.anomaly_rate, &self.cfg.label_model);
        if self.cfg.label_model.em_steps > 0 && self.golden.iter().any(|&g| g >= 0) {
            model.refine_em(
                &self.votes,
                &self.golden,
                self.cfg.label_model.em_steps,
                self.cfg.label_model.em_unlabeled_weight,
            );
        }
        self.q = model.predict(&self.votes);
        self.label_model = Some(model);
        self.train = self.pseudo_labels();
        self.stale = false;
    }

    /// The confident slice (B.1.4 step 2) with the majority fallback and the human override.
    fn pseudo_labels(&mut self) -> Vec<(usize, bool)> {
        let n = self.q.len();
        let n_a = self.golden.iter().filter(|&&g| g == 1).count();
        let pct = (200.0 * n_a as f64 / n as f64).max(100.0 * self.cfg.anomaly_rate * self.cfg.ws_ratio);
        let n_pos = ((pct / 100.0 * n as f64).ceil() as usize).clamp(1, n / 2);
        let neg_share = (pct / 100.0 * self.cfg.neg_ratio).min(self.cfg.max_negative_share);
        let mut n_neg = ((neg_share * n as f64) as usize).min(n - n_pos);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| self.q[b].total_cmp(&self.q[a]).then(a.cmp(&b)));
        let pos_thr = self.q[order[n_pos - 1]];
        let neg_thr = self.q[order[n - n_neg.max(1)]];
        self.fallback = !(pos_thr.is_finite() && neg_thr.is_finite() && pos_thr > neg_thr);
        let (pos, neg): (Vec<usize>, Vec<usize>) = if self.fallback {
            // Rank by (anomaly votes − normal votes).
            let mv: Vec<f64> = (0..n)
                .map(|i| {
                    let (a, b) = self.votes.tally(i);
                    f64::from(a) - f64::from(b)
                })
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| mv[b].total_cmp(&mv[a]).then(a.cmp(&b)));
            let p = (2 * n_a).max((0.001 * n as f64).ceil() as usize).clamp(1, n / 2);
            n_neg = ((p as f64 * self.cfg.neg_ratio) as usize)
                .min(((self.cfg.max_negative_share) * n as f64) as usize)
                .min(n - p);
            (order[..p].to_vec(), order[n - n_neg..].to_vec())
        } else {
            (order[..n_pos].to_vec(), order[n - n_neg..].to_vec())
        };
        let neg = thin(neg, self.cfg.max_negatives);
        let mut train: Vec<(usize, bool)> = Vec::with_capacity(pos.len() + neg.len());
        let mut seen = vec![false; n];
        for (i, g) in self.golden.iter().enumerate() {
            if *g >= 0 {
                train.push((i, *g == 1));
                seen[i] = true;
            }
        }
        train.extend(pos.into_iter().filter(|&i| !seen[i]).map(|i| (i, true)));
        train.extend(neg.into_iter().filter(|&i| !seen[i]).map(|i| (i, false)));
        train.sort_unstable();
        train.dedup_by_key(|t| t.0);
        train
    }

    /// Refits what is stale and returns the ranked suggestions with their reasons.
    pub fn step(&mut self) -> Step {
        self.update_label_model();
        let scores = self.al_scores();
        let labeled: Vec<bool> = self.golden.iter().map(|&g| g >= 0).collect();
        let centres =
            active::top_centres(&scores.total, &labeled, self.prep.pool(), self.cfg.half_window, self.cfg.candidates);
        let prob = self.probabilities();
        let suggestions: Vec<Suggestion> = centres
            .iter()
            .enumerate()
            .map(|(rank, &c)| Suggestion {
                rank,
                window: self.prep.pool().window_around(c, self.cfg.half_window),
                centre: c,
                score: scores.total[c],
                breakdown: scores.breakdown(c),
                probability: prob[c],
            })
            .collect();
        let stop = if self.cfg.stop.budget_windows.is_some_and(|b| self.labels.len() >= b) {
            Some(StopReason::Budget)
        } else if suggestions.first().is_none_or(|s| s.score <= self.cfg.stop.score_floor) {
            Some(StopReason::NoCandidate)
        } else if self.cfg.stop.stable_rounds > 0 && self.stable_count >= self.cfg.stop.stable_rounds {
            Some(StopReason::Stable)
        } else {
            None
        };
        Step { suggestions, stop, majority_fallback: self.fallback }
    }

    /// The active-learning scores of every point under the current models.
    pub fn al_scores(&self) -> AlScores {
        let labeled: Vec<usize> = (0..self.golden.len()).filter(|&i| self.golden[i] >= 0).collect();
        let sample: Vec<usize> = if labeled.len() > 1000 {
            let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ labeled.len() as u64);
            let mut s: Vec<usize> =
                rand::seq::index::sample(&mut rng, labeled.len(), 1000).into_iter().map(|k| labeled[k]).collect();
            s.sort_unstable();
            s
        } else {
            labeled
        };
        active::score(&self.votes, self.probabilities(), self.prep.repr(), &sample, &self.prior, &self.cfg.weights)
    }

    /// The current anomaly probability of every pooled point: the installed end model's, or the
    /// label model's before the first install.
    pub fn probabilities(&self) -> &[f64] {
        self.end.as_ref().map_or(&self.q, |e| &e.scores)
    }

    /// The label model's `P(anomaly)` per point (after the last refit).
    pub fn label_model_scores(&self) -> &[f64] {
        &self.q
    }

    /// The training set of the next end model: `(pooled index, anomaly?)`.
    pub fn training_set(&self) -> &[(usize, bool)] {
        &self.train
    }

    /// Fits an end model on the current pseudo-labels and human labels. Takes `&self`, so the
    /// service can run it off the foreground; call [`Leiad::update_label_model`] (or `step`) first.
    ///
    /// # Errors
    /// [`LeiadError::EndModel`] when the GBDT library refuses to fit.
    pub fn refit_end_model(&self) -> Result<EndModel, LeiadError> {
        self.refit_job().run()
    }

    /// Everything an end-model fit needs, detached from the session, so a service can fit it on
    /// another thread while the session keeps taking labels. Call [`Leiad::update_label_model`]
    /// (or `step`) first; [`RefitJob::run`] equals [`Leiad::refit_end_model`] at this moment.
    pub fn refit_job(&self) -> RefitJob {
        self.job(self.train.clone(), self.cfg.human_weight)
    }

    /// A fit of `train` (`(pooled index, anomaly?)`), human-labeled rows weighing `human_weight`.
    fn job(&self, train: Vec<(usize, bool)>, human_weight: f64) -> RefitJob {
        // The fold of a labeled point is that of the latest label covering it (as `golden`).
        let mut point_fold: Vec<Option<usize>> = vec![None; self.golden.len()];
        for (j, l) in self.labels.iter().enumerate() {
            for i in self.prep.pool().global(&l.window) {
                point_fold[i] = Some(j % SELECT_FOLDS);
            }
        }
        let rows: Vec<usize> = train.iter().map(|t| t.0).collect();
        RefitJob {
            prep: Arc::clone(&self.prep),
            y: train.iter().map(|t| t.1).collect(),
            w: rows.iter().map(|&i| if self.golden[i] >= 0 { human_weight } else { 1.0 }).collect(),
            fold: rows.iter().map(|&i| point_fold[i]).collect(),
            rows,
            cfg: self.end_model_config(),
            serve: self.gate_choice(),
        }
    }

    /// The end-model settings of the next fit: the configured ones with the anchor column
    /// (anchored back-end) set to the seed column that ranked the analyst's anomalies highest in
    /// the pool (see [`Leiad::best_seed_column`]).
    fn end_model_config(&self) -> EndModelConfig {
        let mut cfg = self.cfg.end_model;
        if matches!(cfg.backend, Backend::Anchored | Backend::Select | Backend::Gate) && cfg.anchor.is_none() {
            cfg.anchor = self.best_seed_column();
        }
        cfg
    }

    /// The anchor of the seed-anchored regression: among every detector's two feature columns
    /// (pooled scaled score and per-series calibrated score), the one under which the analyst's
    /// anomalous points have the smallest geometric-mean share of the pool ranked above them
    /// (before any labeled anomaly, the current pseudo-positives'); ties go to the earlier
    /// column. `None` when there is neither.
    ///
    /// Why the pool share and not the average precision over the labeled points (the choice
    /// before issue 20): the benchmark grades how the pool ranks, and a ranking inside labeled
    /// windows says little about it (the same blind spot as `select`; see docs/experiments.md).
    fn best_seed_column(&self) -> Option<usize> {
        let mut at: Vec<usize> = (0..self.golden.len()).filter(|&i| self.golden[i] == 1).collect();
        if at.is_empty() {
            at = self.train.iter().filter(|t| t.1).map(|t| t.0).collect();
        }
        if at.is_empty() {
            return None;
        }
        let x = self.prep.features();
        let n = self.golden.len();
        let mut best: Option<(f64, usize)> = None;
        for d in Detector::ALL {
            for c in [self.prep.seed_column(d), self.prep.calibrated_column(d)] {
                let g = geometric_mean(&shares_above_points(x.col(c), &at), n);
                if best.is_none_or(|(b, _)| g < b) {
                    best = Some((g, c));
                }
            }
        }
        best.map(|(_, c)| c)
    }

    /// Which candidate the next [`Backend::Gate`] fit serves (index into [`GATE_CANDIDATES`]): by
    /// the evidence; without any (no label holding an anomaly arrived while a gated model was
    /// installed, as after a service restart that replayed its labels before installing the
    /// stored model), the installed model's choice; before any, the first.
    pub fn gate_choice(&self) -> usize {
        match self.gate_evidence() {
            Some(e) => e.choice(self.cfg.end_model.gate_margin, self.cfg.end_model.gate_default),
            None => self.end.as_ref().and_then(|e| e.model.gate_choice()).unwrap_or(self.cfg.end_model.gate_default),
        }
    }

    /// The evidence [`Backend::Gate`] decides on: `None` until a label holding an anomaly arrived
    /// while a gated model was installed.
    pub fn gate_evidence(&self) -> Option<GateEvidence> {
        let shares: Vec<[f64; 3]> = self.labels.iter().flat_map(|l| l.gate_shares.iter().copied()).collect();
        if shares.is_empty() {
            return None;
        }
        let n = self.golden.len();
        let top = [0, 1, 2].map(|c| geometric_mean(&shares.iter().map(|s| s[c]).collect::<Vec<f64>>(), n));
        Some(GateEvidence { top, anomalies: shares.len() })
    }

    /// Anomaly and normal votes of the active LFs at pooled point `i` (as of the last label-model
    /// refit).
    pub fn vote_tally(&self, i: usize) -> (u32, u32) {
        if i < self.votes.n() { self.votes.tally(i) } else { (0, 0) }
    }

    /// Installs a fitted end model: predicts the pool and updates the stability count.
    pub fn install_end_model(&mut self, model: EndModel) {
        let x = self.prep.features();
        let candidates: Option<Vec<(Vec<f64>, Vec<f64>)>> = model.candidates().map(|c| {
            c.iter()
                .map(|m| {
                    let p = m.predict(x);
                    let asc = sorted(&p);
                    (p, asc)
                })
                .collect()
        });
        let scores = match (&candidates, model.gate_choice()) {
            (Some(c), Some(k)) => c[k].0.clone(),
            _ => model.predict(x),
        };
        if let Some(old) = &self.end {
            let k = self.cfg.stop.top_k.min(scores.len());
            let overlap = top_k_overlap(&old.scores, &scores, k);
            if overlap >= self.cfg.stop.stable_overlap {
                self.stable_count += 1;
            } else {
                self.stable_count = 0;
            }
        }
        self.end = Some(Installed { model, scores, candidates });
    }

    /// The installed end model.
    pub fn end_model(&self) -> Option<&EndModel> {
        self.end.as_ref().map(|e| &e.model)
    }

    /// The installed end model's pool predictions (transductive).
    pub fn end_scores(&self) -> Option<&[f64]> {
        self.end.as_ref().map(|e| e.scores.as_slice())
    }

    /// A gated end model's candidates' pool predictions, in [`crate::GATE_CANDIDATES`] order
    /// (whichever answers); `None` for other end models.
    pub fn candidate_scores(&self) -> Option<Vec<&[f64]>> {
        let c = self.end.as_ref()?.candidates.as_ref()?;
        Some(c.iter().map(|(scores, _)| scores.as_slice()).collect())
    }

    /// The end model trained only on human labels (the "golden" model, B.1.4 step 6).
    ///
    /// # Errors
    /// As [`EndModel::fit`].
    pub fn labels_only_model(&self) -> Result<EndModel, LeiadError> {
        let mut job = self.job(self.human_training_set(), 1.0);
        if job.cfg.backend == Backend::Gate {
            // Only the answering candidate is needed. On human rows of equal weight the gate's
            // first and third candidates are the same trees, so this fits exactly the model a
            // gated fit would answer with, without the other two.
            job.cfg.backend = if job.serve == 1 { Backend::Anchored } else { Backend::Forust };
        }
        job.run()
    }

    /// The evaluation's supervised baseline: the trees (forust, the configured settings) trained
    /// on the human labels alone, whatever the configured back-end; no LF, no pseudo-label, no
    /// seed detector (`labels_only` in [`crate::simulation`]).
    ///
    /// # Errors
    /// As [`EndModel::fit`].
    pub fn labels_only_trees(&self) -> Result<EndModel, LeiadError> {
        let mut job = self.job(self.human_training_set(), 1.0);
        job.cfg.backend = Backend::Forust;
        job.run()
    }

    /// The evaluation's second baseline: the seed-anchored logistic regression on the human
    /// labels alone, that is the analyst's labels plus the best seed detector as a prior, without
    /// LFs or pseudo-labels (`labels_prior` in [`crate::simulation`]).
    ///
    /// # Errors
    /// As [`EndModel::fit`].
    pub fn labels_prior_model(&self) -> Result<EndModel, LeiadError> {
        let mut job = self.job(self.human_training_set(), 1.0);
        job.cfg.backend = Backend::Anchored;
        job.cfg.anchor = self.cfg.end_model.anchor.or_else(|| self.best_seed_column());
        job.run()
    }

    fn human_training_set(&self) -> Vec<(usize, bool)> {
        (0..self.golden.len()).filter(|&i| self.golden[i] >= 0).map(|i| (i, self.golden[i] == 1)).collect()
    }

    /// Anomaly probabilities of a series outside the pool, from the installed end model.
    ///
    /// # Errors
    /// [`LeiadError::Series`] for an unusable series; [`LeiadError::Param`] when no end model is installed.
    pub fn predict(&self, series: &SeriesInput) -> Result<Vec<f64>, LeiadError> {
        let end = self.end.as_ref().ok_or_else(|| LeiadError::param("end_model", "none installed yet"))?;
        Ok(end.model.predict(&self.prep.features_for(series)?))
    }

    /// Every LF with its statistics.
    pub fn lfs(&self) -> Vec<LfStats> {
        let n = self.golden.len();
        // Per point: anomaly and normal votes of the active LFs (from the last vote matrix).
        let fresh = !self.stale;
        self.lfs
            .iter()
            .map(|lf| {
                let col = self.columns.iter().position(|&c| c == lf.id).filter(|_| fresh);
                let mut conflict = 0usize;
                let mut g_seen = 0usize;
                let mut g_right = 0usize;
                for &(i, v) in &lf.votes {
                    let i = i as usize;
                    if fresh {
                        // The LF's own vote is never the opposite one, so every opposite vote is another LF's.
                        let (a, b) = self.votes.tally(i);
                        if (if v { b } else { a }) > 0 {
                            conflict += 1;
                        }
                    }
                    if self.golden[i] >= 0 {
                        g_seen += 1;
                        if (self.golden[i] == 1) == v {
                            g_right += 1;
                        }
                    }
                }
                LfStats {
                    id: lf.id,
                    kind: lf.kind,
                    from_labels: lf.from_labels.clone(),
                    vetoed: lf.vetoed,
                    active: col.is_some(),
                    coverage: lf.votes.len() as f64 / n as f64,
                    positives: lf.votes.iter().filter(|v| v.1).count(),
                    conflict: if lf.votes.is_empty() { 0.0 } else { conflict as f64 / lf.votes.len() as f64 },
                    learned_accuracy: col.and_then(|c| self.label_model.as_ref().map(|m| m.accuracy(c))),
                    golden_accuracy: (g_seen > 0).then(|| g_right as f64 / g_seen as f64),
                }
            })
            .collect()
    }
}

/// Keeps at most `max` of `idx`, evenly spaced in its order.
fn thin(idx: Vec<usize>, max: usize) -> Vec<usize> {
    if idx.len() <= max {
        return idx;
    }
    let step = idx.len() as f64 / max as f64;
    (0..max).map(|k| idx[(k as f64 * step) as usize]).collect()
}

/// Share of the top `k` of `a` that is also in the top `k` of `b`.
fn top_k_overlap(a: &[f64], b: &[f64], k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let top = |s: &[f64]| {
        let mut o: Vec<usize> = (0..s.len()).collect();
        o.sort_by(|&x, &y| s[y].total_cmp(&s[x]).then(x.cmp(&y)));
        o.truncate(k);
        o.sort_unstable();
        o
    };
    let (ta, tb) = (top(a), top(b));
    ta.iter().filter(|i| tb.binary_search(i).is_ok()).count() as f64 / k as f64
}
