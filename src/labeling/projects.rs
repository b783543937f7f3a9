//! Projects: creation (validated, then prepared in the background), the listing view, progress
//! (labels, anomalies, the model versions' metric curve) and refit requests.

use serde_json::{Value, json};

use super::session::{Spec, SpecSeries};
use super::views::{PoolSeries, Progress, ProjectView, RefitState};
use super::{Labeling, LabelingError, MAX_PROJECT_SERIES, NewProject, check_author, lock};
use crate::clock::now_ms;
use crate::storage::{LabelRow, ProjectRow};

impl Labeling {
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
        let cap = self.inner.settings.max_projects_per_author;
        if cap > 0 && self.storage().projects_created_by(&req.author).await? >= cap as i64 {
            return Err(LabelingError::Conflict(
                "too_many_projects",
                format!(
                    "{} has {cap} projects, the most one author may have (labeling.max_projects_per_author)",
                    req.author
                ),
            ));
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

    /// Asks for a refit; the lease holder runs it.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn request_refit(&self, name: &str) -> Result<RefitState, LabelingError> {
        let s = self.ready(name).await?;
        let state = if s.refitting.load(std::sync::atomic::Ordering::SeqCst) { "running" } else { "queued" };
        self.storage().request_refit(s.project.id, now_ms()).await?;
        self.inner.wake.notify_one();
        Ok(RefitState { refit: state })
    }

    /// Labels used, anomalies found, the model versions' metric curve and the refit state.
    ///
    /// # Errors
    /// As [`Labeling::ready`].
    pub async fn progress(&self, name: &str) -> Result<Progress, LabelingError> {
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
        Ok(Progress {
            labels_used,
            windows_labeled: labels_used,
            budget: s.spec.budget,
            anomalies_found: anomalies,
            round,
            model_version: version,
            refit: if running { "running" } else { "idle" },
            curve,
        })
    }

    /// A project as listed: settings, status and counts, and while its pool is prepared here an
    /// estimate of how long that takes.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn project_view(&self, p: &ProjectRow) -> Result<ProjectView, LabelingError> {
        let spec: Spec = serde_json::from_str(&p.spec).map_err(|e| LabelingError::Engine(e.to_string()))?;
        let labels = self.storage().labels(p.id).await?;
        let in_force: Vec<&LabelRow> = labels.iter().filter(|l| l.undone_round.is_none()).collect();
        let version = self.storage().models(p.id).await?.last().map_or(0, |m| m.version);
        let local = lock(&self.inner.slots).get(&p.id).map(|s| match &s.outcome {
            Some(Ok(_)) => "ready",
            Some(Err(_)) => "failed",
            None => "preparing",
        });
        let here = local.unwrap_or("not_loaded");
        let points: i64 = spec.series.iter().map(|s| s.points).sum();
        let preparing = p.status == "preparing" || (p.status == "ready" && here != "ready");
        Ok(ProjectView {
            prepare_estimate_ms: preparing.then(|| (points as f64 * PREPARE_MS_PER_POINT).ceil() as i64),
            name: p.name.clone(),
            series: spec.series.iter().map(|s| PoolSeries { name: s.name.clone(), points: s.points }).collect(),
            budget: spec.budget,
            half_window: spec.half_window,
            status: p.status.clone(),
            status_here: here,
            error: p.error.clone(),
            created_at: p.created_at,
            created_by: p.created_by.clone(),
            labels_used: in_force.len(),
            anomalies_found: in_force.iter().map(|l| l.anomalies).sum::<i64>(),
            model_version: version,
            round: p.round,
        })
    }
}

/// What preparing a pool costs per point on one core: 1,000,000 points in 31.9 s
/// (`driftwatch leiad bench --points 1000000`, BENCHMARKS.md, 2026-12-08), rounded up.
pub const PREPARE_MS_PER_POINT: f64 = 0.032;
