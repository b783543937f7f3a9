//! The labeling loop in the service: LEIAD sessions over stored series, kept in step with the
//! database, plus the background work one instance does per project (refits, live scoring).
//!
//! Model: a project's pool is its series frozen at creation (`spec.series[k].points` points
//! each). Its state is a function of the pool and its rounds in order (labels, undos, vetoes;
//! `storage::labeling`), so every instance keeps its own [`driftwatch_leiad::Leiad`] and brings
//! it up to date by replaying the rounds it has not applied yet ([`Labeling::sync`]) before it
//! answers. Model versions are stored with their bytes; an instance installs the newest.
//!
//! Who does what:
//! * any instance: the API (suggestions, labels, LFs, progress), claims and conflict checks (in
//!   the database, so they hold across instances);
//! * the lease holder of a project (a row lease in `labeling_projects`, renewed every tick):
//!   refits (on request, and after every `refit_every` new labels) and live scoring of new
//!   points with the newest model. A refit fits on a blocking thread from a detached
//!   [`driftwatch_leiad::RefitJob`], so the session keeps taking labels meanwhile; suggestions
//!   come from the freshest installed model.
//!
//! CPU work (replay, LF generation, label-model fits, scoring) runs under `spawn_blocking`,
//! never on the async workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use driftwatch_leiad::eval::average_precision;
use driftwatch_leiad::{
    Backend, Detector, EndModel, GATE_CANDIDATES, Leiad, LeiadConfig, Pool, Prepared, SeriesInput, Window,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::LabelingSettings;
use crate::storage::{Conflict, LabelRow, LfRow, ModelRow, NewLabel, ProjectRow, Storage, SuggestionRow};

/// Longest window one label may cover.
pub const MAX_LABEL_POINTS: i64 = 20_000;
/// Most series in one project.
pub const MAX_PROJECT_SERIES: usize = 100;

/// A labeling failure, mapped to HTTP by the API layer.
#[derive(Debug, thiserror::Error)]
pub enum LabelingError {
    /// Unknown project, series, label or suggestion.
    #[error("{0}")]
    NotFound(String),
    /// The request does not make sense (stable code, message).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The request conflicts with the project's state (stable code, message).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// The project's pool is still being prepared on this instance.
    #[error("{0}")]
    NotReady(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The LEIAD core failed.
    #[error("labeling engine: {0}")]
    Engine(String),
}

fn invalid(msg: impl Into<String>) -> LabelingError {
    LabelingError::Invalid("invalid_label", msg.into())
}

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

/// A project request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Unique name.
    pub name: String,
    /// Series names.
    pub series: Vec<String>,
    /// Window budget (default 50).
    pub budget: Option<usize>,
    /// Half-width of suggested windows (default from the settings).
    pub half_window: Option<usize>,
    /// Seed (default 123).
    pub seed: Option<u64>,
    /// Who creates it.
    pub author: String,
}

/// A label request: a window and its anomalous ranges (absolute indices); the rest is normal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// Who labels.
    pub author: String,
    /// The round the analyst's view was at.
    pub round: i64,
    /// The suggestion answered, if any.
    pub suggestion: Option<i64>,
    /// Series name.
    pub series: String,
    /// Window start.
    pub start: i64,
    /// Window end (exclusive).
    pub end: i64,
    /// Anomalous ranges `[a, b)` inside the window.
    #[serde(default)]
    pub anomalies: Vec<[i64; 2]>,
}

/// A session kept in step with the database.
struct SessionState {
    leiad: Leiad,
    /// Last round applied.
    applied: i64,
    /// Stored label id → session label id.
    label_ids: HashMap<i64, u64>,
    /// Installed model version (0 = none).
    version: i64,
    /// Round of the installed model.
    version_round: i64,
    /// The last step, for (round, version).
    stepped: Option<(i64, i64, driftwatch_leiad::Step)>,
    /// Model version whose pool probabilities are stored (lease holder only).
    pool_scores_written: i64,
    /// When the newest fit started (epoch ms): a refit asked for before it is served by it.
    fit_started: i64,
    /// LF statistics as of (round, model version), computed once per change.
    lf_cache: Option<(i64, Vec<LfRow>)>,
    /// A copy of the installed end model for live scoring, which runs without the session
    /// lock (features of new points and the model's predictions need only the prepared pool
    /// and the model).
    live_model: Option<Arc<EndModel>>,
}

/// A prepared project on this instance.
pub struct Session {
    project: ProjectRow,
    spec: Spec,
    /// Per pool series: timestamps of its points.
    ts: Vec<Vec<i64>>,
    state: Mutex<SessionState>,
    refitting: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("project", &self.project.name).finish_non_exhaustive()
    }
}

/// Preparation of a project on this instance.
#[derive(Default)]
struct Slot {
    started: bool,
    outcome: Option<Result<Arc<Session>, String>>,
}

/// The labeling loop of one instance: cheap to clone.
#[derive(Clone)]
pub struct Labeling {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    metrics: crate::metrics::Metrics,
    settings: LabelingSettings,
    /// This instance's lease identity.
    instance: String,
    slots: Mutex<HashMap<i64, Slot>>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Labeling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Labeling").field("instance", &self.inner.instance).finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, LabelingError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LabelingError::Engine(e.to_string()))
}

/// Background LEIAD work that holds no session lock (pool preparation, end-model fits, live
/// scoring) on a thread of its own at a lower CPU priority (nice +10), so ingest keeps the cores when both
/// want them. (Work under the session lock stays at normal priority: an analyst's request
/// waiting for that lock must not wait behind a deprioritised thread.)
/// Measured with `bench soak` (2 cores, 200,000 points/s, a project over 4 series of 200,000
/// points and a refit every 10 s): at normal priority ingest fell to 45,000 points/s with p99
/// 3.6 s while refits ran. Analysts' requests (suggestions, labels) stay at normal priority.
async fn background<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, LabelingError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("labeling-bg".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| LabelingError::Engine(format!("starting a background thread: {e}")))?;
    rx.await.map_err(|_| LabelingError::Engine("a background labeling job panicked".into()))
}

/// Lowers the calling thread's CPU priority (Linux keeps a nice value per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; gettid has no preconditions.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

fn check_author(author: &str) -> Result<(), LabelingError> {
    if author.trim().is_empty() || author.len() > 100 {
        return Err(LabelingError::Invalid("invalid_author", "author must be 1 to 100 characters".into()));
    }
    Ok(())
}

/// `'0'`/`'1'` per point of `[start, end)` from anomalous ranges.
fn label_string(start: i64, end: i64, ranges: &[[i64; 2]]) -> Result<String, LabelingError> {
    let mut out = vec![b'0'; (end - start) as usize];
    for [a, b] in ranges {
        if a >= b || *a < start || *b > end {
            return Err(invalid(format!("anomaly range [{a}, {b}) is empty or outside the window [{start}, {end})")));
        }
        for c in &mut out[(a - start) as usize..(b - start) as usize] {
            *c = b'1';
        }
    }
    Ok(String::from_utf8(out).expect("ASCII"))
}

/// Anomalous ranges of a label string starting at `start`.
fn ranges_of(start: i64, labels: &str) -> Vec<[i64; 2]> {
    let mut out = Vec::new();
    let mut open: Option<i64> = None;
    for (k, c) in labels.bytes().enumerate() {
        let i = start + k as i64;
        match (c == b'1', open) {
            (true, None) => open = Some(i),
            (false, Some(a)) => {
                out.push([a, i]);
                open = None;
            }
            _ => {}
        }
    }
    if let Some(a) = open {
        out.push([a, start + labels.len() as i64]);
    }
    out
}

impl Labeling {
    /// The loop over `storage`; `instance` names this instance in leases.
    pub fn new(storage: Storage, metrics: crate::metrics::Metrics, settings: LabelingSettings) -> Self {
        let instance = format!(
            "{}-{}-{:x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "driftwatch".into()),
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
        );
        Self {
            inner: Arc::new(Inner {
                storage,
                metrics,
                settings,
                instance,
                slots: Mutex::new(HashMap::new()),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The stored project named `name`.
    ///
    /// # Errors
    /// 404 for an unknown project; storage failures.
    pub async fn project(&self, name: &str) -> Result<ProjectRow, LabelingError> {
        self.storage().project(name).await?.ok_or_else(|| LabelingError::NotFound(format!("no project {name:?}")))
    }

    /// Creates a project and starts preparing it.
    ///
    /// # Errors
    /// 400 for bad settings or unusable series, 409 when the name is taken.
    pub async fn create(&self, req: NewProject) -> Result<ProjectRow, LabelingError> {
        check_author(&req.author)?;
        let bad = |m: String| LabelingError::Invalid("invalid_project", m);
        if req.name.is_empty()
            || req.name.len() > 100
            || !req.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad("name must be 1 to 100 characters of letters, digits, '-', '_' or '.'".into()));
        }
        if req.series.is_empty() || req.series.len() > MAX_PROJECT_SERIES {
            return Err(bad(format!("a project holds 1 to {MAX_PROJECT_SERIES} series")));
        }
        let budget = req.budget.unwrap_or(50);
        if !(1..=10_000).contains(&budget) {
            return Err(bad("budget must be between 1 and 10000 windows".into()));
        }
        let half_window = req.half_window.unwrap_or(self.inner.settings.half_window);
        if !(5..=5_000).contains(&half_window) {
            return Err(bad("half_window must be between 5 and 5000".into()));
        }
        let mut series = Vec::new();
        let mut total = 0i64;
        for name in &req.series {
            let s = self.storage().series(name).await?.ok_or_else(|| bad(format!("no series {name:?}")))?;
            if s.dim != 1 {
                return Err(bad(format!("series {name:?} has {} values per point; labeling takes 1", s.dim)));
            }
            if series.iter().any(|x: &SpecSeries| x.id == s.id) {
                return Err(bad(format!("series {name:?} is listed twice")));
            }
            let points = self.storage().point_count(s.id).await?;
            if points < driftwatch_leiad::pool::MIN_SERIES_LEN as i64 {
                return Err(bad(format!("series {name:?} has {points} stored points; a project needs at least 16")));
            }
            total += points;
            series.push(SpecSeries { id: s.id, name: s.name, points });
        }
        if total > self.inner.settings.max_pool_points as i64 {
            return Err(bad(format!(
                "the series hold {total} points, over labeling.max_pool_points = {}",
                self.inner.settings.max_pool_points
            )));
        }
        let spec = Spec { series, budget, half_window, seed: req.seed.unwrap_or(123) };
        let spec_json = serde_json::to_string(&spec).map_err(|e| LabelingError::Engine(e.to_string()))?;
        let row =
            self.storage().create_project(&req.name, &spec_json, &req.author, now_ms()).await?.ok_or_else(|| {
                LabelingError::Conflict("name_taken", format!("a project named {:?} exists", req.name))
            })?;
        self.start_preparing(&row);
        Ok(row)
    }

    /// The project's session on this instance, if prepared; starts preparing it otherwise.
    fn session_of(&self, project: &ProjectRow) -> Option<Result<Arc<Session>, String>> {
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

    fn start_preparing(&self, project: &ProjectRow) {
        let _ = self.session_of(project);
    }

    fn spawn_prepare(&self, project: ProjectRow) {
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
    async fn prepare(&self, project: &ProjectRow) -> Result<Arc<Session>, LabelingError> {
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

    fn session_config(&self, spec: &Spec) -> LeiadConfig {
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
    async fn sync(&self, s: &Arc<Session>) -> Result<(), LabelingError> {
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

    fn series_index(s: &Session, name: &str) -> Result<usize, LabelingError> {
        s.spec
            .series
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| LabelingError::NotFound(format!("series {name:?} is not in project {:?}", s.project.name)))
    }

    /// Ranked suggestions for `analyst`, claimed for them.
    ///
    /// # Errors
    /// As [`Labeling::ready`]; storage failures.
    pub async fn suggestions(&self, name: &str, analyst: &str, limit: usize) -> Result<Value, LabelingError> {
        check_author(analyst)?;
        let s = self.ready(name).await?;
        let s2 = Arc::clone(&s);
        let (round, version, step) = blocking(move || {
            let mut st = lock(&s2.state);
            let key = (st.applied, st.version);
            if st.stepped.as_ref().is_none_or(|(r, v, _)| (*r, *v) != key) {
                let mut step = st.leiad.step();
                // A suggestion shows unlabeled points only: its window is trimmed to the
                // unlabeled run around its centre (the core ranks centres, not windows).
                let golden = st.leiad.golden();
                for x in &mut step.suggestions {
                    let off = s2.state_offset(x.window.series);
                    let c = x.centre - off;
                    let mut a = c;
                    while a > x.window.start && golden[off + a - 1] < 0 {
                        a -= 1;
                    }
                    let mut b = c + 1;
                    while b < x.window.end && golden[off + b] < 0 {
                        b += 1;
                    }
                    x.window.start = a;
                    x.window.end = b;
                }
                st.stepped = Some((key.0, key.1, step));
            }
            let (r, v, step) = st.stepped.clone().expect("just set");
            (r, v, step)
        })
        .await?;
        let now = now_ms();
        let rows: Vec<SuggestionRow> = step
            .suggestions
            .iter()
            .map(|x| SuggestionRow {
                id: 0,
                round,
                rank: x.rank as i64,
                series_id: s.spec.series[x.window.series].id,
                start: x.window.start as i64,
                end: x.window.end as i64,
                centre: (x.centre - s.state_offset(x.window.series)) as i64,
                score: x.score,
                probability: x.probability,
                breakdown:
                    json!({"lf_disagreement": x.breakdown.lf_disagreement, "lf_abstention": x.breakdown.lf_abstention,
                    "uncertainty": x.breakdown.uncertainty, "novelty": x.breakdown.novelty, "prior": x.breakdown.prior})
                    .to_string(),
                status: "open".into(),
                claimed_by: None,
                claimed_until: None,
            })
            .collect();
        self.storage().save_suggestions(s.project.id, &rows, now).await?;
        let stop = step.stop.map(|r| match r {
            driftwatch_leiad::StopReason::Budget => "budget",
            driftwatch_leiad::StopReason::Stable => "stable",
            driftwatch_leiad::StopReason::NoCandidate => "no_candidate",
        });
        let mut out = Vec::new();
        if stop != Some("budget") {
            let blocked = self.storage().blocked_windows(s.project.id, analyst, now).await?;
            let until = now + self.inner.settings.claim_secs as i64 * 1000;
            for row in self.storage().suggestions(s.project.id, round, now).await? {
                if out.len() >= limit {
                    break;
                }
                if row.status != "open"
                    || blocked.iter().any(|&(sid, a, b)| sid == row.series_id && a < row.end && row.start < b)
                {
                    continue;
                }
                if self.storage().claim(s.project.id, row.id, analyst, until, now).await? {
                    out.push(self.suggestion_json(&s, &row, Some((analyst, until))));
                }
            }
        }
        Ok(json!({"round": round, "model_version": version, "stop": stop, "suggestions": out}))
    }

    fn suggestion_json(&self, s: &Session, r: &SuggestionRow, claim: Option<(&str, i64)>) -> Value {
        let series = s.spec.series.iter().find(|x| x.id == r.series_id).map_or("", |x| x.name.as_str());
        json!({"id": r.id, "round": r.round, "rank": r.rank, "series": series, "start": r.start, "end": r.end,
               "centre": r.centre, "score": r.score, "probability": r.probability,
               "breakdown": serde_json::from_str::<Value>(&r.breakdown).unwrap_or(Value::Null),
               "status": r.status,
               "claimed_by": claim.map_or(r.claimed_by.clone(), |c| Some(c.0.to_owned())),
               "claimed_until": claim.map_or(r.claimed_until, |c| Some(c.1))})
    }

    /// Per point of a window with context: values, timestamps, model probability, seed
    /// detector scores, LF votes and labels.
    ///
    /// # Errors
    /// 400 for a window outside the pool; as [`Labeling::ready`].
    pub async fn window(
        &self,
        name: &str,
        series: &str,
        start: i64,
        end: i64,
        context: i64,
    ) -> Result<Value, LabelingError> {
        let s = self.ready(name).await?;
        let k = Self::series_index(&s, series)?;
        let n = s.spec.series[k].points;
        if !(0 <= start && start < end && end <= n) || end - start > MAX_LABEL_POINTS {
            return Err(LabelingError::Invalid(
                "invalid_query",
                format!("window [{start}, {end}) must lie in [0, {n}) and span at most {MAX_LABEL_POINTS} points"),
            ));
        }
        let context = context.clamp(0, 5_000);
        let (from, to) = ((start - context).max(0), (end + context).min(n));
        let s2 = Arc::clone(&s);
        blocking(move || {
            let st = lock(&s2.state);
            let off = s2.state_offset(k);
            let range = off + from as usize..off + to as usize;
            let prep = st.leiad.prepared();
            let values = &prep.pool().series()[k].values[from as usize..to as usize];
            let seeds: serde_json::Map<String, Value> = Detector::ALL
                .iter()
                .map(|d| (d.name().to_owned(), json!(prep.scaled_scores(*d)[range.clone()])))
                .collect();
            let (va, vn): (Vec<u32>, Vec<u32>) = range.clone().map(|i| st.leiad.vote_tally(i)).unzip();
            let index: Vec<i64> = (from..to).collect();
            json!({"series": s2.spec.series[k].name, "start": start, "end": end, "from": from, "to": to,
                   "index": index, "ts": s2.ts[k][from as usize..to as usize], "value": values,
                   "probability": st.leiad.probabilities()[range.clone()],
                   "seeds": seeds, "votes": {"anomaly": va, "normal": vn},
                   "labels": st.leiad.golden()[range].iter().map(|&g| i64::from(g)).collect::<Vec<_>>(),
                   "round": st.applied, "model_version": st.version})
        })
        .await
    }

    /// Stores a labeled window.
    ///
    /// # Errors
    /// 400 for a bad window or ranges, 409 for a stale round or a suggestion someone else has.
    pub async fn label(&self, name: &str, req: LabelRequest) -> Result<Value, LabelingError> {
        check_author(&req.author)?;
        let s = self.ready(name).await?;
        let k = Self::series_index(&s, &req.series)?;
        let n = s.spec.series[k].points;
        if !(0 <= req.start && req.start < req.end && req.end <= n) {
            return Err(invalid(format!("window [{}, {}) must lie in the pool [0, {n})", req.start, req.end)));
        }
        if req.end - req.start > MAX_LABEL_POINTS {
            return Err(invalid(format!("a label spans at most {MAX_LABEL_POINTS} points")));
        }
        let current = lock(&s.state).applied;
        if req.round < 0 || req.round > current {
            return Err(LabelingError::Invalid(
                "invalid_round",
                format!("round {} is not a round of this project (now {current})", req.round),
            ));
        }
        let labels = label_string(req.start, req.end, &req.anomalies)?;
        if let Some(id) = req.suggestion {
            let sug = self
                .storage()
                .suggestion(s.project.id, id)
                .await?
                .ok_or_else(|| LabelingError::NotFound(format!("no suggestion {id}")))?;
            if sug.series_id != s.spec.series[k].id || sug.start != req.start || sug.end != req.end {
                return Err(invalid(format!(
                    "suggestion {id} is the window [{}, {}) of another series or range",
                    sug.start, sug.end
                )));
            }
        }
        let new = NewLabel {
            series_id: s.spec.series[k].id,
            start: req.start,
            end: req.end,
            labels,
            source: "suggestion",
            replaces: None,
            suggestion_id: req.suggestion,
        };
        let row = self.storage().add_label(s.project.id, &new, &req.author, Some(req.round), now_ms()).await?;
        let row = row.map_err(conflict)?;
        self.inner.metrics.labeling_labels.with_label_values(&["suggestion"]).inc();
        self.after_change(&s).await?;
        Ok(json!({"label": self.label_json(&s, &row), "round": lock(&s.state).applied}))
    }

    /// Replaces a label in force with new anomalous ranges (same window).
    ///
    /// # Errors
    /// 404 unknown label, 409 when it is no longer in force, 400 bad ranges.
    pub async fn edit(&self, name: &str, id: i64, author: &str, ranges: &[[i64; 2]]) -> Result<Value, LabelingError> {
        check_author(author)?;
        let s = self.ready(name).await?;
        let old = self
            .storage()
            .label(s.project.id, id)
            .await?
            .ok_or_else(|| LabelingError::NotFound(format!("no label {id}")))?;
        let labels = label_string(old.start, old.end, ranges)?;
        let new = NewLabel {
            series_id: old.series_id,
            start: old.start,
            end: old.end,
            labels,
            source: "edit",
            replaces: Some(id),
            suggestion_id: None,
        };
        let row = self.storage().add_label(s.project.id, &new, author, None, now_ms()).await?.map_err(conflict)?;
        self.inner.metrics.labeling_labels.with_label_values(&["edit"]).inc();
        self.after_change(&s).await?;
        Ok(json!({"label": self.label_json(&s, &row), "round": lock(&s.state).applied}))
    }

    /// Undoes a label (`id`), or the author's newest label in force.
    ///
    /// # Errors
    /// 404 when there is nothing to undo, 409 when the label is already undone.
    pub async fn undo(&self, name: &str, id: Option<i64>, author: &str) -> Result<Value, LabelingError> {
        check_author(author)?;
        let s = self.ready(name).await?;
        let id = match id {
            Some(id) => id,
            None => self
                .storage()
                .newest_label_of(s.project.id, author)
                .await?
                .ok_or_else(|| LabelingError::NotFound(format!("{author} has no label in force to undo")))?,
        };
        let row = self.storage().undo_label(s.project.id, id, author, now_ms()).await?.map_err(conflict)?;
        self.after_change(&s).await?;
        Ok(json!({"undone": self.label_json(&s, &row), "round": lock(&s.state).applied}))
    }

    /// Skips a suggestion for everyone.
    ///
    /// # Errors
    /// 404 unknown suggestion, 409 when it is no longer open.
    pub async fn skip(&self, name: &str, id: i64, author: &str) -> Result<Value, LabelingError> {
        check_author(author)?;
        let p = self.project(name).await?;
        let sug = self
            .storage()
            .suggestion(p.id, id)
            .await?
            .ok_or_else(|| LabelingError::NotFound(format!("no suggestion {id}")))?;
        if !self.storage().skip_suggestion(p.id, id).await? {
            return Err(LabelingError::Conflict(
                "suggestion_closed",
                format!("suggestion {id} is already {}", sug.status),
            ));
        }
        Ok(json!({"skipped": id}))
    }

    /// Vetoes or restores an LF.
    ///
    /// # Errors
    /// 404 unknown LF.
    pub async fn veto(&self, name: &str, lf: i64, vetoed: bool, author: &str) -> Result<Value, LabelingError> {
        check_author(author)?;
        let s = self.ready(name).await?;
        let known = lock(&s.state).leiad.lf_list().iter().any(|f| f.id == lf as u64);
        if !known {
            return Err(LabelingError::NotFound(format!("no labeling function {lf} in force")));
        }
        self.storage().veto_lf(s.project.id, lf, vetoed, author, now_ms()).await?;
        self.after_change(&s).await?;
        let lfs = self.lfs(name).await?;
        let one = lfs["lfs"].as_array().and_then(|a| a.iter().find(|x| x["id"] == lf).cloned()).unwrap_or(Value::Null);
        Ok(json!({"lf": one}))
    }

    /// Every LF with its statistics (refits the label model first if stale).
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn lfs(&self, name: &str) -> Result<Value, LabelingError> {
        let s = self.ready(name).await?;
        let s2 = Arc::clone(&s);
        let (round, rows, fresh) = blocking(move || {
            let mut st = lock(&s2.state);
            if let Some((r, rows)) = &st.lf_cache
                && *r == st.applied
            {
                return (*r, rows.clone(), false);
            }
            st.leiad.update_label_model();
            let rows: Vec<LfRow> = st
                .leiad
                .lfs()
                .into_iter()
                .map(|f| LfRow {
                    lf_id: f.id as i64,
                    kind: f.kind.name(),
                    params: json!({"from_labels": f.from_labels, "positives": f.positives}).to_string(),
                    coverage: f.coverage,
                    conflict: f.conflict,
                    learned_accuracy: f.learned_accuracy,
                    golden_accuracy: f.golden_accuracy,
                    active: f.active,
                    vetoed: f.vetoed,
                })
                .collect();
            st.lf_cache = Some((st.applied, rows.clone()));
            (st.applied, rows, true)
        })
        .await?;
        if fresh {
            self.storage().save_lfs(s.project.id, round, &rows).await?;
        }
        // Session label ids → stored label ids, for "built from".
        let back: HashMap<u64, i64> = lock(&s.state).label_ids.iter().map(|(db, se)| (*se, *db)).collect();
        let lfs: Vec<Value> = rows
            .iter()
            .map(|f| {
                let params: Value = serde_json::from_str(&f.params).unwrap_or(Value::Null);
                let from: Vec<i64> = params["from_labels"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).filter_map(|x| back.get(&x).copied()).collect())
                    .unwrap_or_default();
                json!({"id": f.lf_id, "name": f.kind, "kind": f.kind.split(':').next().unwrap_or(""),
                       "from_labels": from, "positives": params["positives"], "coverage": f.coverage,
                       "conflict": f.conflict, "learned_accuracy": f.learned_accuracy,
                       "golden_accuracy": f.golden_accuracy, "active": f.active, "vetoed": f.vetoed})
            })
            .collect();
        Ok(json!({"round": round, "lfs": lfs}))
    }

    /// Every label of a project, newest first.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn labels(&self, name: &str) -> Result<Value, LabelingError> {
        let s = self.ready(name).await?;
        let rows = self.storage().labels(s.project.id).await?;
        Ok(json!({"labels": rows.iter().rev().map(|r| self.label_json(&s, r)).collect::<Vec<_>>()}))
    }

    fn label_json(&self, s: &Session, r: &LabelRow) -> Value {
        let series = s.spec.series.iter().find(|x| x.id == r.series_id).map_or("", |x| x.name.as_str());
        json!({"id": r.id, "series": series, "start": r.start, "end": r.end, "anomalies": ranges_of(r.start, &r.labels),
               "anomalous_points": r.anomalies, "author": r.author, "created_at": r.created_at, "source": r.source,
               "replaces": r.replaces, "suggestion": r.suggestion_id, "undone_at": r.undone_at,
               "undone_by": r.undone_by, "in_force": r.undone_round.is_none()})
    }

    /// Asks for a refit; the lease holder runs it.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn request_refit(&self, name: &str) -> Result<Value, LabelingError> {
        let s = self.ready(name).await?;
        let state = if s.refitting.load(std::sync::atomic::Ordering::SeqCst) { "running" } else { "queued" };
        self.storage().request_refit(s.project.id, now_ms()).await?;
        self.inner.wake.notify_one();
        Ok(json!({"refit": state}))
    }

    /// Labels used, anomalies found, the model versions' metric curve and the refit state.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn progress(&self, name: &str) -> Result<Value, LabelingError> {
        let s = self.ready(name).await?;
        let models = self.storage().models(s.project.id).await?;
        let (labels_used, anomalies, round, version) = {
            let st = lock(&s.state);
            (st.leiad.labels().len(), st.leiad.golden().iter().filter(|&&g| g == 1).count(), st.applied, st.version)
        };
        let curve: Vec<Value> = models
            .iter()
            .map(|m| {
                let mut v: Value = serde_json::from_str(&m.metrics).unwrap_or_else(|_| json!({}));
                v["version"] = json!(m.version);
                v["round"] = json!(m.round);
                v["labels"] = json!(m.labels);
                v["anomalies"] = json!(m.anomalies);
                v["created_at"] = json!(m.created_at);
                v
            })
            .collect();
        let refit_requested = self.storage().refit_requested(s.project.id).await?;
        let running = s.refitting.load(std::sync::atomic::Ordering::SeqCst)
            || refit_requested > models.last().map_or(0, |m| m.created_at);
        Ok(json!({"labels_used": labels_used, "windows_labeled": labels_used, "budget": s.spec.budget,
                  "anomalies_found": anomalies, "round": round, "model_version": version,
                  "refit": if running { "running" } else { "idle" }, "curve": curve}))
    }

    /// Starts preparing a project on this instance if it is not yet (a listing or a look at
    /// the project warms it, so the first labeling call finds it ready).
    pub fn warm(&self, project: &ProjectRow) {
        if project.status != "failed" {
            let _ = self.session_of(project);
        }
    }

    /// A project as listed: settings, status and counts.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn project_json(&self, p: &ProjectRow) -> Result<Value, LabelingError> {
        let spec: Spec = serde_json::from_str(&p.spec).map_err(|e| LabelingError::Engine(e.to_string()))?;
        let labels = self.storage().labels(p.id).await?;
        let in_force: Vec<&LabelRow> = labels.iter().filter(|l| l.undone_round.is_none()).collect();
        let version = self.storage().models(p.id).await?.last().map_or(0, |m| m.version);
        let local = lock(&self.inner.slots).get(&p.id).map(|s| match &s.outcome {
            Some(Ok(_)) => "ready",
            Some(Err(_)) => "failed",
            None => "preparing",
        });
        Ok(
            json!({"name": p.name, "series": spec.series.iter().map(|s| json!({"name": s.name, "points": s.points})).collect::<Vec<_>>(),
                  "budget": spec.budget, "half_window": spec.half_window, "status": p.status,
                  "status_here": local.unwrap_or("not_loaded"), "error": p.error, "created_at": p.created_at,
                  "created_by": p.created_by, "labels_used": in_force.len(),
                  "anomalies_found": in_force.iter().map(|l| l.anomalies).sum::<i64>(),
                  "model_version": version, "round": p.round}),
        )
    }

    /// Feedback on a change interval: stored, and a label (all anomalous for `confirm`, all
    /// normal for `dismiss`) in every ready project whose pool holds the interval's start.
    ///
    /// # Errors
    /// 404 unknown series or interval, 400 bad verdict.
    pub async fn interval_feedback(
        &self,
        series: &str,
        start: i64,
        verdict: &str,
        author: &str,
    ) -> Result<Value, LabelingError> {
        check_author(author)?;
        if !matches!(verdict, "confirm" | "dismiss") {
            return Err(LabelingError::Invalid(
                "invalid_verdict",
                format!("verdict must be confirm or dismiss, not {verdict:?}"),
            ));
        }
        let s = self
            .storage()
            .series(series)
            .await?
            .ok_or_else(|| LabelingError::NotFound(format!("no series {series:?}")))?;
        let iv =
            self.storage().interval_at(s.id, start).await?.ok_or_else(|| {
                LabelingError::NotFound(format!("series {series:?} has no interval starting at {start}"))
            })?;
        let now = now_ms();
        self.storage().set_feedback(s.id, start, verdict, author, now).await?;
        let mut made = Vec::new();
        for p in self.storage().projects().await? {
            let Ok(spec) = serde_json::from_str::<Spec>(&p.spec) else { continue };
            let Some(ps) = spec.series.iter().find(|x| x.id == s.id) else { continue };
            if p.status != "ready" || iv.start_index >= ps.points {
                continue;
            }
            let end = iv.end_index.min(ps.points).min(iv.start_index + MAX_LABEL_POINTS).max(iv.start_index + 1);
            let bit = if verdict == "confirm" { "1" } else { "0" };
            let new = NewLabel {
                series_id: s.id,
                start: iv.start_index,
                end,
                labels: bit.repeat((end - iv.start_index) as usize),
                source: "interval",
                replaces: None,
                suggestion_id: None,
            };
            if let Ok(row) = self.storage().add_label(p.id, &new, author, None, now).await? {
                self.inner.metrics.labeling_labels.with_label_values(&["interval"]).inc();
                made.push(json!({"project": p.name, "label": row.id}));
            }
        }
        Ok(
            json!({"series": series, "start": start, "feedback": {"verdict": verdict, "author": author, "at": now}, "labels": made}),
        )
    }

    /// After a change: apply it here, and wake the worker (an automatic refit may be due).
    async fn after_change(&self, s: &Arc<Session>) -> Result<(), LabelingError> {
        self.sync(s).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// The background worker: every tick (or when woken), for every project, take or renew
    /// its lease; the holder prepares it, refits when asked or when `refit_every` labels
    /// arrived since the last model, and scores new points. Ends when `stop` fires, giving
    /// its leases back.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let tick = std::time::Duration::from_millis(self.inner.settings.tick_ms.max(50));
        let mut last_score = std::time::Instant::now() - std::time::Duration::from_secs(3600);
        let mut held: Vec<i64> = Vec::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                () = self.inner.wake.notified() => {}
                _ = stop.changed() => break,
            }
            let score_now =
                last_score.elapsed() >= std::time::Duration::from_millis(self.inner.settings.score_interval_ms);
            if score_now {
                last_score = std::time::Instant::now();
            }
            match self.work(score_now).await {
                Ok(h) => held = h,
                Err(e) => {
                    self.inner.metrics.storage_errors.inc();
                    tracing::error!(error = %e, "Labeling worker pass failed.");
                }
            }
        }
        for id in held {
            let _ = self.storage().release_lease(id, &self.inner.instance).await;
        }
    }

    async fn work(&self, score_now: bool) -> Result<Vec<i64>, LabelingError> {
        let now = now_ms();
        let until = now + self.inner.settings.lease_secs as i64 * 1000;
        let mut held = Vec::new();
        for p in self.storage().projects().await? {
            if p.status == "failed" || !self.storage().try_lease(p.id, &self.inner.instance, until, now).await? {
                continue;
            }
            held.push(p.id);
            let Some(Ok(s)) = self.session_of(&p) else { continue };
            self.sync(&s).await?;
            let budget_left = {
                let st = lock(&s.state);
                s.spec.budget.saturating_sub(st.leiad.labels().len())
            };
            self.inner.metrics.labeling_budget_remaining.with_label_values(&[&p.name]).set(budget_left as i64);
            if !s.refitting.load(std::sync::atomic::Ordering::SeqCst) && self.refit_due(&s).await? {
                s.refitting.store(true, std::sync::atomic::Ordering::SeqCst);
                lock(&s.state).fit_started = now_ms();
                let this = self.clone();
                let s2 = Arc::clone(&s);
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let outcome = this.refit(&s2).await;
                    let secs = started.elapsed().as_secs_f64();
                    this.inner.metrics.labeling_refit_seconds.observe(secs);
                    match outcome {
                        Ok(v) => {
                            this.inner.metrics.labeling_refits.with_label_values(&["ok"]).inc();
                            tracing::info!(project = %s2.project.name, version = v, seconds = secs, "Refit done.");
                        }
                        Err(e) => {
                            this.inner.metrics.labeling_refits.with_label_values(&["failed"]).inc();
                            tracing::error!(project = %s2.project.name, error = %e, "Refit failed.");
                        }
                    }
                    s2.refitting.store(false, std::sync::atomic::Ordering::SeqCst);
                    this.inner.wake.notify_one();
                });
            }
            if score_now && let Err(e) = self.score(&s).await {
                self.inner.metrics.storage_errors.inc();
                tracing::error!(project = %p.name, error = %e, "Live scoring failed.");
            }
        }
        Ok(held)
    }

    /// Whether a refit is asked for or `refit_every` labels changed since the last model.
    async fn refit_due(&self, s: &Arc<Session>) -> Result<bool, LabelingError> {
        let requested = self.storage().refit_requested(s.project.id).await?;
        let (version_round, changes, fit_started) = {
            let st = lock(&s.state);
            (st.version_round, st.leiad.labels().len(), st.fit_started)
        };
        if requested > fit_started {
            return Ok(true);
        }
        let every = self.inner.settings.refit_every;
        if every == 0 || changes == 0 {
            return Ok(false);
        }
        let labels = self.storage().labels(s.project.id).await?;
        let changed =
            labels.iter().filter(|l| l.id > version_round || l.undone_round.is_some_and(|u| u > version_round)).count();
        Ok(changed >= every)
    }

    /// Fits, evaluates, stores and installs a new end model; returns its version.
    async fn refit(&self, s: &Arc<Session>) -> Result<i64, LabelingError> {
        self.sync(s).await?;
        let labels = self.storage().labels(s.project.id).await?;
        let s2 = Arc::clone(s);
        let (job, round, version_round, prev_version) = blocking(move || {
            let mut st = lock(&s2.state);
            st.leiad.update_label_model();
            (st.leiad.refit_job(), st.applied, st.version_round, st.version)
        })
        .await?;
        let model = background(move || job.run()).await?.map_err(|e| LabelingError::Engine(e.to_string()))?;
        let bytes = model.to_bytes().map_err(|e| LabelingError::Engine(e.to_string()))?;
        let live = EndModel::from_bytes(&bytes).ok();
        let s2 = Arc::clone(s);
        let (metrics, n_labels, anomalies) = blocking(move || {
            let mut st = lock(&s2.state);
            // Points of labels in force added since the previous model: the previous model
            // never saw them, so its precision there is an honest held-out figure.
            let mut fresh = vec![false; st.leiad.golden().len()];
            for l in labels.iter().filter(|l| l.undone_round.is_none() && l.id > version_round) {
                if let Some(k) = s2.spec.series.iter().position(|x| x.id == l.series_id) {
                    let off = s2.state_offset(k);
                    fresh[off + l.start as usize..off + l.end as usize].fill(true);
                }
            }
            let golden = st.leiad.golden().to_vec();
            let ap_on = |scores: &[f64], mask: &dyn Fn(usize) -> bool| -> Option<f64> {
                let idx: Vec<usize> = (0..golden.len()).filter(|&i| golden[i] >= 0 && mask(i)).collect();
                let truth: Vec<bool> = idx.iter().map(|&i| golden[i] == 1).collect();
                (truth.contains(&true) && truth.contains(&false))
                    .then(|| average_precision(&idx.iter().map(|&i| scores[i]).collect::<Vec<_>>(), &truth))
            };
            let ap_prev_fresh = ap_on(st.leiad.probabilities(), &|i| fresh[i]);
            let prep = Arc::clone(st.leiad.prepared());
            let seeds: Vec<f64> =
                Detector::ALL.iter().filter_map(|d| ap_on(prep.scaled_scores(*d), &|_| true)).collect();
            st.leiad.install_end_model(model);
            st.live_model = live.map(Arc::new);
            let end = st.leiad.end_scores().expect("installed").to_vec();
            let ap_labels = ap_on(&end, &|_| true);
            let ap_label_model = ap_on(st.leiad.label_model_scores(), &|_| true);
            (
                json!({"ap_labels": ap_labels, "ap_new_labels": ap_prev_fresh, "new_label_version": prev_version,
                       "ap_seed_best": seeds.iter().copied().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
                       "ap_label_model": ap_label_model, "installed_round": st.applied,
                       "end_model": end_model_kind(&st.leiad), "gate": gate_json(&st.leiad)}),
                st.leiad.labels().len() as i64,
                golden.iter().filter(|&&g| g == 1).count() as i64,
            )
        })
        .await?;
        let version = prev_version + 1;
        let row = ModelRow {
            version,
            round,
            labels: n_labels,
            anomalies,
            metrics: metrics.to_string(),
            created_at: now_ms(),
        };
        if !self.storage().save_model(s.project.id, &row, &bytes).await? {
            return Err(LabelingError::Conflict("version_taken", format!("model version {version} exists")));
        }
        {
            let mut st = lock(&s.state);
            st.version = version;
            st.version_round = round;
        }
        if let Some(ap) = metrics["ap_labels"].as_f64() {
            self.inner.metrics.labeling_model_ap.with_label_values(&[&s.project.name]).set(ap);
        }
        Ok(version)
    }

    /// Stores the model's probabilities: the pool's (transductive) once per model version, then
    /// every new point after the pool, scored with context.
    async fn score(&self, s: &Arc<Session>) -> Result<(), LabelingError> {
        const BLOCK: usize = 4096;
        const CONTEXT: i64 = 2048;
        const MAX_NEW: i64 = 50_000;
        let (version, written) = {
            let st = lock(&s.state);
            (st.version, st.pool_scores_written)
        };
        if version == 0 {
            return Ok(());
        }
        let threshold = self.inner.settings.alert_probability;
        if written < version {
            let s2 = Arc::clone(s);
            let per_series: Vec<Vec<f32>> = blocking(move || {
                let st = lock(&s2.state);
                let p = st.leiad.probabilities();
                (0..s2.spec.series.len())
                    .map(|k| {
                        let off = s2.state_offset(k);
                        p[off..off + s2.spec.series[k].points as usize].iter().map(|&x| x as f32).collect()
                    })
                    .collect()
            })
            .await?;
            for (k, probs) in per_series.iter().enumerate() {
                for (b, chunk) in probs.chunks(BLOCK).enumerate() {
                    let first = b * BLOCK;
                    let ts = (s.ts[k][first], s.ts[k][first + chunk.len() - 1]);
                    self.storage()
                        .write_probabilities(s.project.id, s.spec.series[k].id, first as i64, ts, version, chunk)
                        .await?;
                }
            }
            lock(&s.state).pool_scores_written = version;
        }
        let mut max_p: Option<f64> = None;
        for (k, ser) in s.spec.series.iter().enumerate() {
            let done = self.storage().scored_until(s.project.id, ser.id).await?.max(ser.points);
            let stored = self.storage().point_count(ser.id).await?;
            if stored <= done {
                continue;
            }
            let upto = stored.min(done + MAX_NEW);
            let from = (done - CONTEXT).max(0);
            let pts = self.storage().points_by_index(ser.id, 1, from, upto).await?;
            let Some(cut) = pts.iter().position(|p| p.0 >= done) else { continue };
            let values: Vec<f64> = pts.iter().map(|p| p.2[0]).collect();
            let name = ser.name.clone();
            let period = s.state_period(k);
            let (prep, model) = {
                let st = lock(&s.state);
                (Arc::clone(st.leiad.prepared()), st.live_model.clone())
            };
            let Some(model) = model else { continue };
            // Off the session lock and below ingest's priority.
            let probs = background(move || {
                prep.features_for(&SeriesInput { name, values, period_secs: period }).map(|x| model.predict(&x))
            })
            .await?
            .map_err(|e| LabelingError::Engine(e.to_string()))?;
            let new: Vec<f32> = probs[cut..].iter().map(|&p| p as f32).collect();
            let (first, ts) = (pts[cut].0, (pts[cut].1, pts[pts.len() - 1].1));
            self.storage().write_probabilities(s.project.id, ser.id, first, ts, version, &new).await?;
            let above = new.iter().filter(|&&p| f64::from(p) >= threshold).count() as u64;
            self.inner.metrics.anomaly_points.with_label_values(&[&s.project.name]).inc_by(above);
            self.inner.metrics.anomaly_scored_points.with_label_values(&[&s.project.name]).inc_by(new.len() as u64);
            let last = f64::from(*new.last().expect("non-empty"));
            self.inner.metrics.set_watched_probability(&ser.name, last);
            let m = f64::from(new.iter().copied().fold(0f32, f32::max));
            max_p = Some(max_p.map_or(m, |x: f64| x.max(m)));
        }
        if let Some(m) = max_p {
            self.inner.metrics.anomaly_probability_max.with_label_values(&[&s.project.name]).set(m);
        }
        Ok(())
    }
}

impl Session {
    /// Pooled index of a series' first point.
    fn state_offset(&self, k: usize) -> usize {
        self.spec.series[..k].iter().map(|s| s.points as usize).sum()
    }

    fn state_period(&self, k: usize) -> Option<f64> {
        lock(&self.state).leiad.prepared().pool().series()[k].period_secs
    }
}

fn conflict(c: Conflict) -> LabelingError {
    match c {
        Conflict::StaleRound { label, round } => LabelingError::Conflict(
            "stale_round",
            format!(
                "the window overlaps label {label}, made after your round; reload (the project is at round {round})"
            ),
        ),
        Conflict::Suggestion(m) => LabelingError::Conflict("suggestion_taken", m),
        Conflict::LabelNotInForce(id) => {
            LabelingError::Conflict("stale_label", format!("label {id} is no longer in force (undone or replaced)"))
        }
        Conflict::Missing(m) => LabelingError::NotFound(format!("no {m}")),
    }
}

/// Which learner answers in the installed end model: one of `driftwatch_leiad::GATE_CANDIDATES`
/// ("trees", "anchored", "supervised") for the gate, else "trees", "anchored" or "constant".
fn end_model_kind(leiad: &Leiad) -> &'static str {
    let Some(m) = leiad.end_model() else { return "constant" };
    if let Some(k) = m.gate_choice() {
        return GATE_CANDIDATES[k];
    }
    match m.backend() {
        Some(Backend::Anchored) => "anchored",
        Some(_) => "trees",
        None => "constant",
    }
}

/// The end model gate's evidence (see `driftwatch_leiad::GateEvidence`), or null before any.
fn gate_json(leiad: &Leiad) -> Value {
    leiad.gate_evidence().map_or(Value::Null, |e| {
        json!({"trees_top": e.top[0], "anchored_top": e.top[1], "supervised_top": e.top[2],
               "anomalies": e.anomalies, "next": GATE_CANDIDATES[leiad.gate_choice()]})
    })
}

/// The round after which the lease holder installed a stored model (its metrics'
/// `installed_round`; the round it was trained at for models stored before that was recorded).
fn installed_round(row: &ModelRow) -> i64 {
    serde_json::from_str::<Value>(&row.metrics)
        .ok()
        .and_then(|m| m.get("installed_round").and_then(Value::as_i64))
        .unwrap_or(row.round)
}

/// Installs a stored model version newer than the installed one.
fn install_stored(st: &mut SessionState, row: &ModelRow, bytes: &[u8]) {
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
fn apply_round(s: &Session, st: &mut SessionState, r: &crate::storage::RoundRow, labels: &HashMap<i64, LabelRow>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip_through_label_strings() {
        let s = label_string(100, 110, &[[102, 104], [103, 106], [109, 110]]).unwrap();
        assert_eq!(s, "0011110001");
        assert_eq!(ranges_of(100, &s), vec![[102, 106], [109, 110]]);
        assert_eq!(ranges_of(0, "000"), Vec::<[i64; 2]>::new());
        assert!(label_string(100, 110, &[[99, 104]]).is_err());
        assert!(label_string(100, 110, &[[105, 105]]).is_err());
        assert!(label_string(100, 110, &[[105, 111]]).is_err());
    }
}
