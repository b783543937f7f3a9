//! # driftwatch-leiad
//!
//! LEIAD (Label-Efficient Interactive time-series Anomaly Detection, Guo et al. 2022) as this
//! project adapts it (`shared/spec/leiad.md` part A): streaming seed detectors become labeling
//! functions (LFs), each labeled window generates prototype LFs, a Snorkel-style label model
//! turns the LF votes into pseudo-labels, gradient-boosted trees learn from them and the human
//! labels (or, when the labels show them ranking the analyst's anomalies clearly lower, a
//! logistic regression anchored on the best seed detector or trees on the labels alone answer
//! instead), and active learning picks the next windows to show.
//!
//! Pure: no I/O, no async, no clock, no logging. Slices in, plain data out, deterministic given
//! the seed.
//!
//! # Layout
//! * [`pool`]: pooled series and windows.
//! * [`detectors`]: the five seed detectors (per-point causal scores).
//! * [`features`]: causal rolling features with windows from the sampling period.
//! * [`representation`]: Z, the isolation-kernel mean map of a point's causal context.
//! * [`prepared`]: everything computed once per pool, shared by sessions.
//! * [`votes`]: LFs (sparse votes) and the per-point vote matrix.
//! * [`lfgen`]: prototype LFs from a labeled window; the golden-model LF.
//! * [`label_model`]: the conditional-independence label model and majority vote.
//! * [`end_model`]: the end model: GBDT (forust-ml; perpetual behind a feature for comparison),
//!   the seed-anchored regression, and the gate over both trees and the regression (the default).
//! * [`active`]: the five-term active-learning score and candidate windows.
//! * [`session`]: the round API (`add_labels`, `step`, `lfs`, `undo`, `veto`, `predict`,
//!   `refit_end_model` / `install_end_model`).
//! * [`simulation`]: the replay protocol with a simulated analyst (no clock: callers time it).
//! * [`eval`]: average precision and ROC-AUC.

#![warn(missing_docs, unreachable_pub)]

pub mod active;
pub mod detectors;
pub mod end_model;
mod error;
pub mod eval;
pub mod features;
pub mod label_model;
pub mod lfgen;
pub mod pool;
pub mod prepared;
pub mod representation;
pub mod session;
pub mod simulation;
pub mod votes;

pub use active::{AlWeights, Breakdown};
pub use detectors::Detector;
pub use end_model::{Backend, EndModel, EndModelConfig, GATE_CANDIDATES};
pub use error::LeiadError;
pub use pool::{Pool, SeriesInput, Window};
pub use prepared::Prepared;
pub use session::{GateEvidence, Leiad, LeiadConfig, LfStats, RefitJob, Step, StopReason, Suggestion};
