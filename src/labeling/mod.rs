//! The labeling loop in the service: LEIAD sessions over stored series, kept in step with the
//! database, plus the background work one instance does per project (refits, live scoring).
//!
//! Model: a project's pool is its series frozen at creation (`spec.series[k].points` points
//! each). Its state is a function of the pool and its rounds in order (labels, undos, vetoes;
//! `storage::labeling`), so every instance keeps its own [`driftwatch_leiad::Leiad`] and brings
//! it up to date by replaying the rounds it has not applied yet ([`session`]) before it
//! answers. Model versions are stored with their bytes; an instance installs the newest.
//!
//! Who does what:
//! * any instance: the API ([`projects`], [`labels`], [`suggestions`], answering with the typed
//!   [`views`]), claims and conflict checks (in the database, so they hold across instances);
//! * the lease holder of a project (a row lease in `labeling_projects`, renewed every tick):
//!   refits (on request, and after every `refit_every` new labels) and live scoring of new
//!   points with the newest model ([`worker`]). A refit fits on a thread of its own at low
//!   priority ([`priority`]) from a detached [`driftwatch_leiad::RefitJob`], so the session
//!   keeps taking labels meanwhile; suggestions come from the freshest installed model.
//!
//! CPU work (replay, LF generation, label-model fits, scoring) runs under `spawn_blocking` or
//! on those background threads, never on the async workers. Nothing here names HTTP: failures
//! are [`LabelingError`], which the API maps.

mod labels;
mod priority;
mod projects;
mod session;
mod suggestions;
mod worker;

pub mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

pub use session::{Session, Spec, SpecSeries};

use crate::config::LabelingSettings;
use crate::metrics::Metrics;
use crate::storage::{Conflict, ProjectRow, Storage};
use session::Slot;

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
    /// Who creates it (set by the HTTP layer from the request's principal).
    #[serde(default)]
    pub author: String,
}

/// A label request: a window and its anomalous ranges (absolute indices); the rest is normal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// Who labels (set by the HTTP layer from the request's principal).
    #[serde(default)]
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

/// The labeling loop of one instance: cheap to clone.
#[derive(Clone)]
pub struct Labeling {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    metrics: Metrics,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, LabelingError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LabelingError::Engine(e.to_string()))
}

fn check_author(author: &str) -> Result<(), LabelingError> {
    // 100 characters of a name plus the open-mode mark (`auth::UNAUTHENTICATED`).
    if author.trim().is_empty() || author.len() > 128 {
        return Err(LabelingError::Invalid("invalid_author", "author must be 1 to 100 characters".into()));
    }
    Ok(())
}

impl Labeling {
    /// The loop over `storage`; `instance` names this instance in leases.
    pub fn new(storage: Storage, metrics: Metrics, settings: LabelingSettings) -> Self {
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
