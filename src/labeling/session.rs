//! A project's session on this instance, kept in step with the database: the frozen pool
//! prepared once (features, seed detectors), then the stored rounds (labels, undos, vetoes) and
//! model versions this instance has not applied yet, replayed in order before it answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use driftwatch_leiad::{EndModel, Leiad, LeiadConfig, Pool, Prepared, SeriesInput, Window};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::priority::background;
use super::{Labeling, LabelingError, blocking, lock};
use crate::storage::{LabelRow, LfRow, ModelRow, ProjectRow, RoundRow};

/// A project's settings and frozen pool, stored as JSON in `labeling_projects.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Series in pool order.
    pub series: Vec<SpecSeries>,
    /// Windows the analysts will label at most.
    pub budget: usize,
    /// Half-width of a suggested window.
    pub half_window: usize,
    /// Seed of the session's random choices.
    pub seed: u64,
}

/// One series of a project's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecSeries {
    /// Series id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Points in the pool (indices `[0, points)`).
    pub points: i64,
}

/// A session kept in step with the database.
pub(super) struct SessionState {
    pub(super) leiad: Leiad,
    /// Last round applied.
    pub(super) applied: i64,
    /// Stored label id → session label id.
    pub(super) label_ids: HashMap<i64, u64>,
    /// Installed model version (0 = none).
    pub(super) version: i64,
    /// Round of the installed model.
    pub(super) version_round: i64,
    /// The last step, for (round, version).
    pub(super) stepped: Option<(i64, i64, driftwatch_leiad::Step)>,
    /// Model version whose pool probabilities are stored (lease holder only).
    pub(super) pool_scores_written: i64,
    /// When the newest fit started (epoch ms): a refit asked for before it is served by it.
    pub(super) fit_started: i64,
    /// LF statistics as of (round, model version), computed once per change.
    pub(super) lf_cache: Option<(i64, Vec<LfRow>)>,
    /// A copy of the installed end model for live scoring, which runs without the session
    /// lock (features of new points and the model's predictions need only the prepared pool
    /// and the model).
    pub(super) live_model: Option<Arc<EndModel>>,
}

/// A prepared project on this instance.
pub struct Session {
    pub(super) project: ProjectRow,
    pub(super) spec: Spec,
    /// Per pool series: timestamps of its points.
    pub(super) ts: Vec<Vec<i64>>,
    pub(super) state: Mutex<SessionState>,
    pub(super) refitting: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("project", &self.project.name).finish_non_exhaustive()
    }
}

/// Preparation of a project on this instance.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) started: bool,
    pub(super) outcome: Option<Result<Arc<Session>, String>>,
}

impl Labeling {
    /// The project's session on this instance, if prepared; starts preparing it otherwise.
    pub(super) fn session_of(&self, project: &ProjectRow) -> Option<Result<Arc<Session>, String>> {
        let mut slots = lock(&self.inner.slots);
        let slot = slots.entry(project.id).or_default();
        if let Some(done) = &slot.outcome {
            return Some(done.clone());
        }
        if !slot.started {
            slot.started = true;
            drop(slots);
            self.spawn_prepare(project.clone());
        }
        None
    }

    pub(super) fn start_preparing(&self, project: &ProjectRow) {
        let _ = self.session_of(project);
    }

    pub(super) fn spawn_prepare(&self, project: ProjectRow) {
        let this = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = this.prepare(&project).await;
            match &outcome {
                Ok(s) => {
                    tracing::info!(project = %project.name, points = s.ts.iter().map(Vec::len).sum::<usize>(),
                        seconds = started.elapsed().as_secs_f64(), "Labeling project prepared.");
                    if project.status != "ready"
                        && let Err(e) = this.storage().set_project_status(project.id, "ready", None).await
                    {
                        tracing::error!(error = %e, "Recording a project as ready failed.");
                    }
                }
                Err(e) => {
                    tracing::error!(project = %project.name, error = %e, "Preparing a labeling project failed.");
                    let _ = this.storage().set_project_status(project.id, "failed", Some(&e.to_string())).await;
                }
            }
            let mut slots = lock(&this.inner.slots);
            let slot = slots.entry(project.id).or_default();
            match outcome {
                Ok(s) => slot.outcome = Some(Ok(s)),
                // A storage failure may pass: let the next request try again.
                Err(LabelingError::Storage(_)) => slot.started = false,
                Err(e) => slot.outcome = Some(Err(e.to_string())),
            }
        });
    }

    /// Loads the pool, prepares features and replays every round.
    pub(super) async fn prepare(&self, project: &ProjectRow) -> Result<Arc<Session>, LabelingError> {
        let spec: Spec = serde_json::from_str(&project.spec)
            .map_err(|e| LabelingError::Engine(format!("stored project settings: {e}")))?;
        let mut inputs = Vec::new();
        let mut ts_all = Vec::new();
        for s in &spec.series {
            let pts = self.storage().points_by_index(s.id, 1, 0, s.points).await?;
            if pts.len() as i64 != s.points {
                return Err(LabelingError::Engine(format!(
                    "series {:?} has {} of its {} pooled points stored (deleted or past retention)",
                    s.name,
                    pts.len(),
                    s.points
                )));
            }
            let ts: Vec<i64> = pts.iter().map(|p| p.1).collect();
            let mut gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).collect();
            gaps.sort_unstable();
            let period_secs = gaps.get(gaps.len() / 2).map(|&g| g as f64 / 1000.0);
            inputs.push(SeriesInput {
                name: s.name.clone(),
                values: pts.iter().map(|p| p.2[0]).collect(),
                period_secs,
            });
            ts_all.push(ts);
        }
        let cfg = self.session_config(&spec);
        let seed = spec.seed;
        let leiad = background(move || -> Result<Leiad, driftwatch_leiad::LeiadError> {
            let prep = Arc::new(Prepared::new(Pool::new(inputs)?, seed));
            Leiad::new(prep, cfg)
        })
        .await?
        .map_err(|e| LabelingError::Engine(e.to_string()))?;
        let session = Arc::new(Session {
            project: project.clone(),
            spec,
            ts: ts_all,
            state: Mutex::new(SessionState {
                leiad,
                applied: 0,
                label_ids: HashMap::new(),
                version: 0,
                version_round: 0,
                stepped: None,
                pool_scores_written: 0,
                fit_started: 0,
                lf_cache: None,
                live_model: None,
            }),
            refitting: std::sync::atomic::AtomicBool::new(false),
        });
        self.sync(&session).await?;
        Ok(session)
    }

    pub(super) fn session_config(&self, spec: &Spec) -> LeiadConfig {
        let mut cfg = LeiadConfig { seed: spec.seed, half_window: spec.half_window, ..LeiadConfig::default() };
        cfg.candidates = self.inner.settings.candidates.max(1);
        cfg.stop.budget_windows = Some(spec.budget);
        cfg
    }

    /// The prepared session of a project.
    ///
    /// # Errors
    /// 404 for an unknown project, 409 `not_ready` while preparing, the preparation error.
    pub async fn ready(&self, name: &str) -> Result<Arc<Session>, LabelingError> {
        let project = self.project(name).await?;
        match self.session_of(&project) {
            Some(Ok(s)) => {
                self.sync(&s).await?;
                Ok(s)
            }
            Some(Err(e)) => {
                Err(LabelingError::Conflict("project_failed", format!("the project failed to prepare: {e}")))
            }
            None => Err(LabelingError::NotReady(format!(
                "project {name:?} is being prepared on this instance; try again in a few seconds"
            ))),
        }
    }

    /// Applies the rounds and the model version this instance has not applied yet.
    pub(super) async fn sync(&self, s: &Arc<Session>) -> Result<(), LabelingError> {
        let (applied, version) = {
            let st = lock(&s.state);
            (st.applied, st.version)
        };
        let rounds = self.storage().rounds_after(s.project.id, applied).await?;
        let mut labels: HashMap<i64, LabelRow> = HashMap::new();
        for r in rounds.iter().filter(|r| r.kind == "label") {
            if let Some(l) = self.storage().label(s.project.id, r.target).await? {
                labels.insert(l.id, l);
            }
        }
        // Every newer model, installed between the rounds as the lease holder installed it (the
        // round it had applied then, `installed_round` in the metrics): labels record how the
        // installed models ranked them, the evidence of the end model's gate, so a replay
        // (restart, another instance) rebuilds the same evidence.
        let models = self.storage().models_after(s.project.id, version).await?;
        if rounds.is_empty() && models.is_empty() {
            return Ok(());
        }
        let s2 = Arc::clone(s);
        blocking(move || {
            let mut st = lock(&s2.state);
            let mut models = models.into_iter().peekable();
            for r in rounds {
                if r.round <= st.applied {
                    continue; // another request applied it meanwhile
                }
                let mut due = None;
                while let Some(m) = models.next_if(|(row, _)| installed_round(row) < r.round) {
                    due = Some(m);
                }
                if let Some((row, bytes)) = due {
                    install_stored(&mut st, &row, &bytes);
                }
                apply_round(&s2, &mut st, &r, &labels);
                st.applied = r.round;
            }
            if let Some((row, bytes)) = models.last() {
                install_stored(&mut st, &row, &bytes);
            }
        })
        .await
    }

    pub(super) fn series_index(s: &Session, name: &str) -> Result<usize, LabelingError> {
        s.spec
            .series
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| LabelingError::NotFound(format!("series {name:?} is not in project {:?}", s.project.name)))
    }

    /// Starts preparing a project on this instance if it is not yet (a listing or a look at
    /// the project warms it, so the first labeling call finds it ready).
    pub fn warm(&self, project: &ProjectRow) {
        if project.status != "failed" {
            let _ = self.session_of(project);
        }
    }

    /// After a change: apply it here, and wake the worker (an automatic refit may be due).
    pub(super) async fn after_change(&self, s: &Arc<Session>) -> Result<(), LabelingError> {
        self.sync(s).await?;
        self.inner.wake.notify_one();
        Ok(())
    }
}

impl Session {
    /// The name of a pool series by its storage id ("" if not in the pool).
    pub(super) fn series_name(&self, id: i64) -> &str {
        self.spec.series.iter().find(|x| x.id == id).map_or("", |x| x.name.as_str())
    }

    /// The times of a window `[start, end)` of a series by id: its first and its last point's.
    pub(super) fn window_times(&self, id: i64, start: i64, end: i64) -> (Option<i64>, Option<i64>) {
        let Some(k) = self.spec.series.iter().position(|x| x.id == id) else { return (None, None) };
        let at = |i: i64| usize::try_from(i).ok().and_then(|i| self.ts[k].get(i).copied());
        (at(start), at(end - 1))
    }

    /// Pooled index of a series' first point.
    pub(super) fn state_offset(&self, k: usize) -> usize {
        self.spec.series[..k].iter().map(|s| s.points as usize).sum()
    }

    pub(super) fn state_period(&self, k: usize) -> Option<f64> {
        lock(&self.state).leiad.prepared().pool().series()[k].period_secs
    }
}

/// The round after which the lease holder installed a stored model (its metrics'
/// `installed_round`; the round it was trained at for models stored before that was recorded).
pub(super) fn installed_round(row: &ModelRow) -> i64 {
    serde_json::from_str::<Value>(&row.metrics)
        .ok()
        .and_then(|m| m.get("installed_round").and_then(Value::as_i64))
        .unwrap_or(row.round)
}

/// Installs a stored model version newer than the installed one.
pub(super) fn install_stored(st: &mut SessionState, row: &ModelRow, bytes: &[u8]) {
    if row.version <= st.version {
        return;
    }
    match EndModel::from_bytes(bytes) {
        Ok(m) => {
            st.leiad.install_end_model(m);
            st.live_model = EndModel::from_bytes(bytes).ok().map(Arc::new);
            st.version = row.version;
            st.version_round = row.round;
            st.fit_started = st.fit_started.max(row.created_at);
        }
        Err(e) => tracing::error!(version = row.version, error = %e, "A stored model does not load."),
    }
}

/// Applies one stored round to a session.
pub(super) fn apply_round(s: &Session, st: &mut SessionState, r: &RoundRow, labels: &HashMap<i64, LabelRow>) {
    match r.kind.as_str() {
        "label" => {
            let Some(l) = labels.get(&r.target) else {
                tracing::error!(round = r.round, "A label round without its label.");
                return;
            };
            let Some(k) = s.spec.series.iter().position(|x| x.id == l.series_id) else { return };
            let window = Window { series: k, start: l.start as usize, end: l.end as usize };
            let answers: Vec<bool> = l.labels.bytes().map(|b| b == b'1').collect();
            match st.leiad.add_labels(window, &answers) {
                Ok(id) => {
                    st.label_ids.insert(l.id, id);
                }
                Err(e) => tracing::error!(label = l.id, error = %e, "A stored label does not fit the pool."),
            }
        }
        "undo" => {
            if let Some(id) = st.label_ids.remove(&r.target)
                && let Err(e) = st.leiad.undo(id)
            {
                tracing::error!(label = r.target, error = %e, "Undo failed.");
            }
        }
        "veto" | "restore" => {
            // An LF removed by an undo is gone; vetoing it is moot.
            let _ = st.leiad.veto(r.target as u64, r.kind == "veto");
        }
        other => tracing::error!(kind = other, "Unknown round kind."),
    }
}
