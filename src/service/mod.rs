//! The service layer: what the service does with points and series, whoever asks (HTTP, Kafka,
//! `replay`). It owns the write path ([`write`]: decode, detector, storage, counts), recovery
//! of a series' detector from storage ([`recovery`]), periodic checkpoints ([`checkpoints`]),
//! retention ([`retention`]) and series administration ([`series`]: configure, reset, delete).
//!
//! It never names axum or Kafka: its failures are [`ServiceError`], which the adapters map
//! (HTTP to a status and a stable code, the Kafka source to a retry or an abandon).

mod checkpoints;
mod guards;
mod recovery;
mod retention;
mod series;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub use checkpoints::run_checkpoints;
pub use guards::SeriesGuards;
pub use retention::run_retention;
pub use write::{IngestSummary, LISTED_ERRORS};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError};
use crate::storage::{SeriesRow, Storage, StorageError};

/// A failure of the service layer. Adapters decide what the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An unknown series (or other named thing).
    #[error("{0}")]
    NotFound(String),
    /// A request the service refuses: a stable code and a message for people.
    #[error("{message}")]
    Invalid {
        /// Stable code (`invalid_config`, ...).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// More points in one request than `http.max_batch_points`.
    #[error("{points} points in one request; the limit is {limit} (http.max_batch_points): split the batch")]
    BatchTooLarge {
        /// Points in the request.
        points: usize,
        /// The limit.
        limit: usize,
    },
    /// More undecodable lines in one body than `http.max_bad_lines`; nothing was fed.
    #[error("over {limit} undecodable lines (http.max_bad_lines); nothing was stored. First: {}", first.join("; "))]
    TooManyErrors {
        /// The limit.
        limit: usize,
        /// The first few lines' errors.
        first: Vec<String>,
    },
    /// Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The pipeline is stopping or refused a configuration.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A stored series configuration no longer parses.
    #[error("stored series configuration: {0}")]
    Config(String),
    /// A detector checkpoint or the settings did not serialise.
    #[error("serialising: {0}")]
    Json(#[from] serde_json::Error),
}

impl ServiceError {
    fn invalid_config(message: impl Into<String>) -> Self {
        Self::Invalid { code: "invalid_config", message: message.into() }
    }
}

/// The service's shared handles: cheap to clone.
#[derive(Debug, Clone)]
pub struct Service {
    /// Storage.
    pub storage: Storage,
    /// Detector pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Metrics.
    pub metrics: Metrics,
    /// Order and recovery of the write path, per series.
    guards: SeriesGuards,
}

impl Service {
    /// The service over started parts.
    pub fn new(storage: Storage, pipeline: Pipeline, settings: Settings, metrics: Metrics) -> Self {
        Self {
            storage,
            pipeline: Arc::new(pipeline),
            settings: Arc::new(settings),
            metrics,
            guards: SeriesGuards::default(),
        }
    }

    /// The stored series named `name`.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown series; storage failures.
    pub async fn series_named(&self, name: &str) -> Result<SeriesRow, ServiceError> {
        self.storage.series(name).await?.ok_or_else(|| ServiceError::NotFound(format!("no series {name:?}")))
    }
}

/// Liveness of a background source (the Kafka consumer thread): the source beats on every
/// poll, readiness checks read it. Cheap to clone; every clone is the same heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

/// What a [`Heartbeat`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// No beat yet.
    NotStarted,
    /// The source has ended.
    Stopped,
    /// The last beat is this many milliseconds old, more than allowed.
    Stalled(i64),
    /// A recent beat.
    Alive,
}

impl Heartbeat {
    /// Records a beat now.
    pub fn beat(&self) {
        self.0.store(crate::clock::now_ms().max(1), Ordering::Relaxed);
    }

    /// Records that the source has ended.
    pub fn stop(&self) {
        self.0.store(-1, Ordering::Relaxed);
    }

    /// The source's state at `now_ms`, stalled when its last beat is over `stall_ms` old.
    pub fn liveness(&self, now_ms: i64, stall_ms: i64) -> Liveness {
        match self.0.load(Ordering::Relaxed) {
            0 => Liveness::NotStarted,
            beat if beat < 0 => Liveness::Stopped,
            beat if now_ms - beat > stall_ms => Liveness::Stalled(now_ms - beat),
            _ => Liveness::Alive,
        }
    }
}
