//! The running service: settings, storage, the detector pipeline and the HTTP listener, and the
//! write path between them.
//!
//! Start-up ([`Application::build`]): connect storage (migrations run), start the pipeline,
//! restore every stored detector checkpoint, bind the listener (port 0 allowed).
//! Serving ([`Application::run_until_stopped`]) starts the labeling worker, and the Kafka
//! source when `kafka.brokers` is set. Shutdown: stop accepting HTTP, stop the Kafka source (its partitions drain and persist
//! their offsets and checkpoints), let the pipeline drain, and store every other detector's
//! checkpoint, so a restart resumes each series where it left off.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::ingest::decode::{LineError, Message, RejectReason, Rejected, decode_body};
use crate::pipeline::{Pipeline, PipelineConfig, Report};
use crate::storage::{IntervalRow, PointChunk, ScoreRow, Storage, WriteBatch};
use driftwatch_icid::{ClosedInterval, Event, PsiPolicy, StreamConfig, StreamDetector};

/// A failure on the write path (pipeline or storage), shared by HTTP and Kafka ingest.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The pipeline is stopping or refused a configuration.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// A stored series configuration no longer parses.
    #[error("stored series configuration: {0}")]
    Config(String),
}

/// What handlers share: cheap handles.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Storage.
    pub storage: Storage,
    /// Detector pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Metrics.
    pub metrics: crate::metrics::Metrics,
    /// The labeling loop.
    pub labeling: crate::labeling::Labeling,
    /// Recently validated API tokens.
    pub tokens: crate::auth::TokenCache,
    /// Per-token request buckets.
    pub limiter: crate::http::RateLimiter,
    /// Order and recovery of the HTTP write path, per series.
    pub guards: SeriesGuards,
    /// The Kafka consumer thread's last poll (epoch ms): 0 before it starts, -1 once it has
    /// stopped. `/readyz` reads it.
    pub kafka_heartbeat: Arc<std::sync::atomic::AtomicI64>,
    /// API requests in progress, at most `http.max_in_flight`.
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

/// Keeps the HTTP write path of each series in order and its detector consistent with storage.
///
/// * A series' batches are fed and stored one at a time (a striped async lock held from the
///   detector to the commit), so stored point blocks are contiguous and a checkpoint taken
///   under the lock reflects exactly the stored points.
/// * A series whose results could not be stored is *stale*: its detector has seen points that
///   storage has not. Before its next batch the detector is rebuilt from storage
///   ([`AppState::recover_detector`]), so the client's retry of those points is accepted again
///   instead of being counted as duplicates, and no result is lost.
/// * Series that took points since their last checkpoint are *dirty*; the checkpointer
///   ([`run_checkpoints`]) stores them every `pipeline.checkpoint_interval_ms`.
#[derive(Debug, Clone)]
pub struct SeriesGuards {
    stripes: Arc<[tokio::sync::Mutex<()>]>,
    stale: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    dirty: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Default for SeriesGuards {
    fn default() -> Self {
        // 1,024 stripes: two series share a lock with probability 1/1024, and then only wait
        // for each other's commit.
        Self {
            stripes: (0..1024).map(|_| tokio::sync::Mutex::new(())).collect(),
            stale: Arc::default(),
            dirty: Arc::default(),
        }
    }
}

impl SeriesGuards {
    /// The write lock of a series.
    pub async fn lock(&self, series: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(series);
        self.stripes[(h % self.stripes.len() as u64) as usize].lock().await
    }

    fn mark_stale(&self, series: &str) {
        self.stale.lock().expect("not poisoned").insert(series.to_owned());
    }

    fn is_stale(&self, series: &str) -> bool {
        self.stale.lock().expect("not poisoned").contains(series)
    }

    fn clear_stale(&self, series: &str) {
        self.stale.lock().expect("not poisoned").remove(series);
    }

    fn mark_dirty(&self, series: &str) {
        self.dirty.lock().expect("not poisoned").insert(series.to_owned());
    }

    fn take_dirty(&self) -> Vec<String> {
        self.dirty.lock().expect("not poisoned").drain().collect()
    }
}

/// Outcome of one ingest request.
#[derive(Debug, Default)]
pub struct IngestSummary {
    /// Messages decoded.
    pub messages: usize,
    /// Points fed to detectors.
    pub accepted: u64,
    /// Duplicate points (same timestamp as the last accepted).
    pub duplicate: u64,
    /// Late points (before the last accepted).
    pub late: u64,
    /// Points of the wrong dimension for their series.
    pub dimension_mismatch: u64,
    /// Points the decoder set aside.
    pub rejected: Rejected,
    /// Messages that could not be decoded.
    pub errors: Vec<LineError>,
    /// Series not created because the token is at `auth.max_series_per_token`.
    pub refused_series: Vec<String>,
}

impl IngestSummary {
    /// The response body.
    pub fn to_json(&self) -> Value {
        let rejected: serde_json::Map<String, Value> =
            RejectReason::ALL.iter().map(|r| (r.as_str().to_string(), json!(self.rejected.get(*r)))).collect();
        json!({
            "messages": self.messages, "accepted": self.accepted, "duplicate": self.duplicate, "late": self.late,
            "dimension_mismatch": self.dimension_mismatch, "rejected": rejected,
            "errors": self.errors.iter().map(|e| json!({"line": e.line, "message": e.error.to_string()})).collect::<Vec<_>>(),
            "refused_series": self.refused_series,
        })
    }
}

/// The detector configuration for series without their own, from the settings.
pub fn detector_defaults(s: &Settings) -> Result<StreamConfig, String> {
    stream_config(&s.detector)
}

/// An engine configuration from detector settings.
pub fn stream_config(d: &crate::config::DetectorSettings) -> Result<StreamConfig, String> {
    let mut c = StreamConfig::new(d.window);
    c.hop = if d.hop == 0 { d.window } else { d.hop };
    c.alpha = d.alpha;
    c.t = d.t;
    c.warmup_windows = d.warmup_windows;
    c.psi = match d.psi.to_ascii_lowercase().as_str() {
        // Chosen at warm-up over the streaming candidates (the default).
        "auto" => c.psi,
        // Every candidate tracked; re-selected every 20 windows over the last 40 scores.
        "online" => PsiPolicy::Online {
            candidates: driftwatch_icid::stream::STREAM_PSI_CANDIDATES.to_vec(),
            history: 40,
            every: 20,
        },
        n => PsiPolicy::Fixed(
            n.parse().map_err(|_| format!("detector.psi must be auto, online or a number, not {:?}", d.psi))?,
        ),
    };
    Ok(c)
}

impl AppState {
    /// The stored series named `name`, or a 404 saying so.
    ///
    /// # Errors
    /// 404 for an unknown series; storage failures.
    pub async fn series_named(&self, name: &str) -> Result<crate::storage::SeriesRow, crate::http::ApiError> {
        self.storage.series(name).await?.ok_or_else(|| crate::http::ApiError::not_found(format!("no series {name:?}")))
    }

    /// Decodes a body and runs every message through pipeline and storage.
    ///
    /// # Errors
    /// Storage or pipeline failures (decode problems are counted in the summary).
    pub async fn ingest_body(&self, body: &[u8]) -> Result<IngestSummary, crate::http::ApiError> {
        self.ingest_body_as(body, &self.settings.principal, 0).await
    }

    /// [`AppState::ingest_body`] on behalf of `who` (recorded as the creator of new series),
    /// who may have created at most `max_series` series (0 = no limit): messages for further
    /// new series are refused and listed in `refused_series`.
    ///
    /// # Errors
    /// Storage or pipeline failures.
    pub async fn ingest_body_as(
        &self,
        body: &[u8],
        who: &str,
        max_series: usize,
    ) -> Result<IngestSummary, crate::http::ApiError> {
        let mut summary = IngestSummary::default();
        let decoded = decode_body(body);
        // The whole request is refused before any of it reaches a detector.
        let points: usize =
            decoded.iter().filter_map(|m| m.as_ref().ok()).map(|m| m.points.len() + m.rejected.total() as usize).sum();
        if points > self.settings.http.max_batch_points {
            return Err(crate::http::ApiError::batch_too_large(points, self.settings.http.max_batch_points));
        }
        for decoded in decoded {
            match decoded {
                Ok(message) => {
                    summary.messages += 1;
                    summary.rejected.merge(&message.rejected);
                    if max_series > 0
                        && self.storage.series(&message.series).await?.is_none()
                        && self.storage.series_created_by(who).await? >= max_series as i64
                    {
                        summary.refused_series.push(message.series);
                        continue;
                    }
                    self.ingest_message_as(message, who, &mut summary).await?;
                }
                Err(e) => summary.errors.push(e),
            }
        }
        self.record(&summary);
        Ok(summary)
    }

    /// Counts a summary in the metrics (once per request or Kafka batch).
    pub fn record(&self, summary: &IngestSummary) {
        let m = &self.metrics;
        for r in RejectReason::ALL {
            m.points_rejected.with_label_values(&[r.as_str()]).inc_by(summary.rejected.get(r));
        }
        m.points_rejected.with_label_values(&["duplicate"]).inc_by(summary.duplicate);
        m.points_rejected.with_label_values(&["late"]).inc_by(summary.late);
        m.points_rejected.with_label_values(&["dimension_mismatch"]).inc_by(summary.dimension_mismatch);
        m.points_rejected.with_label_values(&["undecodable_message"]).inc_by(summary.errors.len() as u64);
        m.points_ingested.inc_by(summary.accepted);
        for (shard, depth) in self.pipeline.queue_depths().into_iter().enumerate() {
            m.queue_depth.with_label_values(&[&shard.to_string()]).set(depth as i64);
        }
    }

    /// Installs a series' stored detector in the pipeline, replacing whatever the pipeline
    /// holds: its checkpoint when there is a readable one, else a fresh detector with the
    /// series' own configuration (or the defaults). Returns whether a checkpoint was restored.
    ///
    /// # Errors
    /// Storage or pipeline failures, or a stored configuration that no longer parses.
    pub async fn load_detector(&self, s: &crate::storage::SeriesRow) -> Result<bool, IngestError> {
        if let Some((state, _)) = self.storage.checkpoint(s.id).await?
            && !state.is_empty()
        {
            match serde_json::from_slice::<StreamDetector>(&state) {
                Ok(det) if det.check_version().is_ok() => {
                    self.pipeline.restore(s.name.clone(), det).await?;
                    return Ok(true);
                }
                _ => {
                    tracing::warn!(series = %s.name, "Checkpoint unreadable or of another version; the series re-warms.")
                }
            }
        }
        self.pipeline.remove(s.name.clone()).await?;
        if let Some(config) = s.config.as_deref() {
            let detector: crate::config::DetectorSettings =
                serde_json::from_str(config).map_err(|e| IngestError::Config(e.to_string()))?;
            let config = stream_config(&detector).map_err(IngestError::Config)?;
            self.pipeline.configure(s.name.clone(), config, s.dim as usize).await?;
        }
        Ok(false)
    }

    /// Rebuilds a series' detector from storage alone: the checkpoint, then every stored point
    /// it has not seen, fed again in order (results are upserts, so storing them again leaves
    /// the same rows). A checkpoint that has seen points storage does not hold (its last point
    /// is not the stored point at its index) is dropped and the series is replayed from its
    /// first stored point. Returns (checkpoint used, points replayed).
    ///
    /// Replay stops at the first hole in the stored indices (points retention removed, or blocks
    /// left over from before a reset), so it never feeds points out of order. A series reset
    /// since its last checkpoint (an empty checkpoint marks it) starts afresh without replay.
    ///
    /// # Errors
    /// Storage or pipeline failures; the series is left without a detector then.
    pub async fn recover_detector(&self, s: &crate::storage::SeriesRow) -> Result<(bool, u64), IngestError> {
        // Reset (or reconfigured) since its last checkpoint: it starts afresh, its stored
        // history is not fed to the new detector.
        if self.storage.checkpoint(s.id).await?.is_some_and(|(state, _)| state.is_empty()) {
            self.load_detector(s).await?;
            return Ok((false, 0));
        }
        let mut from_checkpoint = self.load_detector(s).await?;
        let mut seen = 0i64;
        // The stored blocks are read once: from the checkpoint's last point on, to check the
        // checkpoint against and then replay; from the first point when there is no usable
        // checkpoint.
        let mut tail = None;
        if from_checkpoint {
            let det = self.pipeline.snapshot(s.name.clone()).await?;
            let (points, last) = det.map_or((0, None), |d| (d.stats().points as i64, d.last_ts()));
            let chunks = self.storage.chunks_from(s.id, s.dim as usize, (points - 1).max(0)).await?;
            // The checkpoint's last point must be the stored point at its index.
            let stored_last = if points == 0 {
                None
            } else {
                chunks.first().and_then(|(first, pts)| pts.get((points - 1 - first) as usize).map(|p| p.0))
            };
            if points > 0 && stored_last != last {
                tracing::warn!(series = %s.name, points, "The checkpoint has seen points storage does not hold; replaying from the first stored point.");
                self.pipeline.remove(s.name.clone()).await?;
                let fresh = crate::storage::SeriesRow { checkpoint_points: 0, ..s.clone() };
                self.storage.drop_checkpoint(s.id).await?;
                self.load_detector(&fresh).await?;
                from_checkpoint = false;
            } else {
                seen = points;
                tail = Some(chunks);
            }
        }
        let chunks = match tail {
            Some(chunks) => chunks,
            None => self.storage.chunks_from(s.id, s.dim as usize, 0).await?,
        };
        let mut replayed = 0u64;
        let mut next = seen;
        for (first, points) in chunks {
            if first > next {
                tracing::warn!(series = %s.name, at = next, "Stored points have a hole; replay stops there.");
                break;
            }
            let skip = (next - first) as usize;
            let points: Vec<crate::ingest::decode::Point> = points
                .into_iter()
                .skip(skip)
                .map(|(ts_ms, values)| crate::ingest::decode::Point { ts_ms, values })
                .collect();
            if points.is_empty() {
                continue;
            }
            let n = points.len() as u64;
            // Straight to the pipeline: these points were counted when they first arrived.
            let report = self.pipeline.ingest(s.name.clone(), points).await?;
            if report.accepted != n {
                tracing::warn!(series = %s.name, at = next, "Stored points out of order; replay stops there.");
                break;
            }
            self.store(s.id, &report).await?;
            replayed += n;
            next += n as i64;
        }
        if replayed > 0 {
            self.guards.mark_dirty(&s.name);
        }
        Ok((from_checkpoint, replayed))
    }

    /// Stores the checkpoints of the series fed over HTTP since the last call. Each is taken
    /// under the series' write lock, so it reflects exactly the stored points. Returns how many
    /// were stored.
    ///
    /// # Errors
    /// A storage failure (the series stay dirty for the next call).
    pub async fn checkpoint_dirty(&self) -> Result<usize, IngestError> {
        let dirty = self.guards.take_dirty();
        let mut saved = 0;
        for (k, name) in dirty.iter().enumerate() {
            let _order = self.guards.lock(name).await;
            let saving = async {
                if self.guards.is_stale(name) {
                    return Ok(false);
                }
                let Some(s) = self.storage.series(name).await? else { return Ok(false) };
                let Some(det) = self.pipeline.snapshot(name.clone()).await? else { return Ok(false) };
                self.storage
                    .save_checkpoint(
                        s.id,
                        &serde_json::to_vec(&det).map_err(|e| IngestError::Config(e.to_string()))?,
                        det.stats().points as i64,
                    )
                    .await?;
                Ok::<_, IngestError>(true)
            };
            match saving.await {
                Ok(stored) => saved += usize::from(stored),
                Err(e) => {
                    for rest in &dirty[k..] {
                        self.guards.mark_dirty(rest);
                    }
                    return Err(e);
                }
            }
        }
        Ok(saved)
    }

    /// Feeds one decoded message to its series' detector and stores the results durably
    /// (one transaction) before returning the series' id and the detector's report.
    ///
    /// # Errors
    /// Storage or pipeline failures; nothing of the message is stored then.
    pub async fn ingest_message(
        &self,
        m: Message,
        summary: &mut IngestSummary,
    ) -> Result<Option<(i64, Report)>, IngestError> {
        self.ingest_message_as(m, &self.settings.principal, summary).await
    }

    async fn ingest_message_as(
        &self,
        m: Message,
        who: &str,
        summary: &mut IngestSummary,
    ) -> Result<Option<(i64, Report)>, IngestError> {
        let Some(first) = m.points.first() else { return Ok(None) };
        let now = now_ms();
        let series = self.storage.ensure_series(&m.series, first.values.len() as i64, who, now).await?;
        let _order = self.guards.lock(&series.name).await;
        if self.guards.is_stale(&series.name) {
            let outcome = self.recover_detector(&series).await;
            self.metrics.recoveries.with_label_values(&[if outcome.is_ok() { "ok" } else { "failed" }]).inc();
            let (_, replayed) = outcome?;
            tracing::info!(series = %series.name, replayed, "Detector rebuilt from storage after a failed write.");
            self.guards.clear_stale(&series.name);
        }
        let name = series.name.clone();
        let report = self.feed(m, summary).await?;
        if let Err(e) = self.store(series.id, &report).await {
            // The detector is ahead of storage now; rebuild it before the series' next batch.
            self.guards.mark_stale(&name);
            tracing::warn!(series = %name, error = %e, "Results not stored; the client's retry will be accepted.");
            return Err(e);
        }
        if report.accepted > 0 {
            self.guards.mark_dirty(&name);
        }
        Ok(Some((series.id, report)))
    }

    /// [`AppState::ingest_message`] for a series whose storage id is known.
    ///
    /// # Errors
    /// As [`AppState::ingest_message`].
    pub async fn ingest_into(
        &self,
        series_id: i64,
        m: Message,
        summary: &mut IngestSummary,
    ) -> Result<Report, IngestError> {
        let report = self.feed(m, summary).await?;
        self.store(series_id, &report).await?;
        Ok(report)
    }

    /// Feeds a message's points to its series' detector and counts the outcome; nothing is
    /// stored yet (see [`AppState::store`]).
    ///
    /// # Errors
    /// A stopped pipeline.
    pub async fn feed(&self, m: Message, summary: &mut IngestSummary) -> Result<Report, IngestError> {
        let watched = self.metrics.is_watched(&m.series).then(|| m.series.clone());
        let report = self.pipeline.ingest(m.series, m.points).await?;
        if let Some(name) = watched {
            let l = [name.as_str()];
            self.metrics.watched_points.with_label_values(&l).inc_by(report.accepted);
            self.metrics.watched_open.with_label_values(&l).set(i64::from(report.open_interval.is_some()));
            self.metrics.watched_warming_up.with_label_values(&l).set(i64::from(report.psi.is_none()));
            if let Some(b) = report.blocks.last() {
                if let Some(score) = b.score {
                    self.metrics.watched_window_score.with_label_values(&l).set(score);
                }
                self.metrics
                    .watched_anomaly
                    .with_label_values(&l)
                    .set(b.anomaly.iter().copied().fold(0f32, f32::max) as f64);
            }
        }
        self.metrics.detector_seconds.observe(report.detector_seconds);
        for e in &report.events {
            match e {
                Event::Opened { .. } => self.metrics.intervals.with_label_values(&["opened"]).inc(),
                Event::Closed(_) => self.metrics.intervals.with_label_values(&["closed"]).inc(),
                _ => {}
            }
        }
        summary.accepted += report.accepted;
        summary.duplicate += report.duplicate;
        summary.late += report.late;
        summary.dimension_mismatch += report.dimension_mismatch;
        Ok(report)
    }

    fn count_failure(&self, e: &crate::storage::StorageError) {
        use crate::storage::ErrorKind;
        self.metrics.storage_errors.inc();
        let kind = match e.kind() {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Full => "full",
            ErrorKind::Other => "other",
        };
        self.metrics.storage_failures.with_label_values(&[kind]).inc();
    }

    /// Stores what many series' reports produced in one transaction (see
    /// [`Storage::write_many`]); like [`AppState::store`], safe to retry.
    ///
    /// # Errors
    /// A storage failure; nothing is stored then.
    pub async fn store_many(&self, reports: &[(i64, &Report)]) -> Result<(), IngestError> {
        let batches: Vec<(i64, WriteBatch)> = reports.iter().map(|(id, r)| (*id, write_batch(*id, r))).collect();
        let refs: Vec<(i64, &WriteBatch)> = batches.iter().map(|(id, b)| (*id, b)).collect();
        let started = std::time::Instant::now();
        let written = self.storage.write_many(&refs).await;
        self.metrics.storage_write_seconds.observe(started.elapsed().as_secs_f64());
        written.inspect_err(|e| self.count_failure(e))?;
        Ok(())
    }

    /// Stores what a report produced (points, intervals, scores) in one transaction. Writing the
    /// same report again leaves the same rows, so a failed write can simply be retried.
    ///
    /// # Errors
    /// A storage failure; nothing of the report is stored then.
    pub async fn store(&self, series_id: i64, report: &Report) -> Result<(), IngestError> {
        let batch = write_batch(series_id, report);
        if batch != WriteBatch::default() {
            let started = std::time::Instant::now();
            let written = self.storage.write(series_id, &batch).await;
            self.metrics.storage_write_seconds.observe(started.elapsed().as_secs_f64());
            written.inspect_err(|e| self.count_failure(e))?;
        }
        Ok(())
    }

    /// Gives a series its own detector settings: the fields of `body` over the service's
    /// defaults, validated by the engine. The series' detector starts again (re-warms).
    ///
    /// # Errors
    /// 404 for an unknown series, 400 for settings the engine refuses.
    pub async fn configure(&self, name: &str, body: Value) -> Result<Value, crate::http::ApiError> {
        use crate::http::ApiError;
        let series = self.series_named(name).await?;
        let Value::Object(fields) = body else {
            return Err(ApiError::bad_request("invalid_config", "the body must be a JSON object"));
        };
        let mut merged = serde_json::to_value(&self.settings.detector).map_err(ApiError::internal)?;
        for (k, v) in fields {
            // psi may be given as a number or as "auto".
            let v = if k == "psi" && v.is_number() { Value::String(v.to_string()) } else { v };
            merged[k] = v;
        }
        let detector: crate::config::DetectorSettings = serde_json::from_value(merged.clone())
            .map_err(|e| ApiError::bad_request("invalid_config", e.to_string()))?;
        let config = stream_config(&detector).map_err(|e| ApiError::bad_request("invalid_config", e))?;
        self.pipeline.configure(name.to_owned(), config, series.dim as usize).await?;
        self.storage.set_config(series.id, Some(&merged.to_string()), &self.settings.principal, now_ms()).await?;
        self.storage.clear_checkpoint(series.id, &self.settings.principal, now_ms()).await?;
        Ok(merged)
    }

    /// Forgets a series' detector state; its next points warm a new detector up.
    ///
    /// # Errors
    /// 404 for an unknown series.
    pub async fn reset(&self, name: &str) -> Result<(), crate::http::ApiError> {
        let series = self.series_named(name).await?;
        self.pipeline.remove(name.to_owned()).await?;
        if let Some(config) = series.config.as_deref() {
            // Keep the series' own settings for the new detector.
            let detector: crate::config::DetectorSettings =
                serde_json::from_str(config).map_err(crate::http::ApiError::internal)?;
            let config = stream_config(&detector).map_err(crate::http::ApiError::internal)?;
            self.pipeline.configure(name.to_owned(), config, series.dim as usize).await?;
        }
        self.storage.clear_checkpoint(series.id, &self.settings.principal, now_ms()).await?;
        Ok(())
    }

    /// Deletes a series: its detector and everything stored. Returns whether it existed.
    ///
    /// # Errors
    /// Storage or pipeline failures.
    pub async fn delete(&self, name: &str) -> Result<bool, crate::http::ApiError> {
        self.pipeline.remove(name.to_owned()).await?;
        Ok(self.storage.delete_series(name).await?)
    }
}

fn interval_row(series_id: i64, iv: &ClosedInterval, psi: i64, open: bool) -> IntervalRow {
    IntervalRow {
        series_id,
        start_index: iv.start as i64,
        end_index: iv.end as i64,
        start_ts: iv.start_ts,
        end_ts: iv.end_ts,
        detected_at: iv.detected_at as i64,
        peak_score: iv.peak_score,
        psi,
        open,
        explanation: iv.explanation.as_ref().and_then(|e| serde_json::to_string(e).ok()),
    }
}

/// What one report stores: the accepted points as one block, every interval that closed, the
/// interval open now, and the completed blocks' scores.
fn write_batch(series_id: i64, r: &Report) -> WriteBatch {
    let psi = r.psi.unwrap_or(0) as i64;
    let mut intervals: Vec<IntervalRow> = r
        .events
        .iter()
        .filter_map(|e| if let Event::Closed(c) = e { Some(interval_row(series_id, c, psi, false)) } else { None })
        .collect();
    if let Some(open) = &r.open_interval {
        intervals.push(interval_row(series_id, open, psi, true));
    }
    WriteBatch {
        chunks: if r.accepted_points.is_empty() {
            vec![]
        } else {
            vec![PointChunk { first_index: r.first_index as i64, points: r.accepted_points.clone() }]
        },
        intervals,
        scores: r
            .blocks
            .iter()
            .map(|b| ScoreRow {
                first_index: b.first_index as i64,
                end_ts: b.end_ts,
                score: b.score,
                threshold: b.threshold,
                anomaly: b.anomaly.clone(),
            })
            .collect(),
        last_ts: r.accepted_points.last().map(|p| p.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_settings_map_to_the_three_policies() {
        let mut d = crate::config::DetectorSettings::default();
        assert!(matches!(stream_config(&d).unwrap().psi, PsiPolicy::AtWarmup(_)));
        d.psi = "Online".into();
        assert!(matches!(stream_config(&d).unwrap().psi, PsiPolicy::Online { .. }));
        d.psi = "16".into();
        assert_eq!(stream_config(&d).unwrap().psi, PsiPolicy::Fixed(16));
        d.psi = "many".into();
        assert!(stream_config(&d).unwrap_err().contains("auto, online or a number"));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Applies the retention settings now and then every ten minutes: per series, points and scores
/// more than their configured number of days before the series' newest point (0 keeps them).
async fn run_retention(storage: Storage, settings: Arc<Settings>, metrics: crate::metrics::Metrics) {
    const DAY_MS: i64 = 86_400_000;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let keep = |days: u32| if days == 0 { i64::MAX / 2 } else { days as i64 * DAY_MS };
        let (p, s) = (keep(settings.storage.retention_days_points), keep(settings.storage.retention_days_scores));
        match storage.apply_retention(p, s).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "Retention removed old blocks."),
            Err(e) => {
                metrics.storage_errors.inc();
                tracing::error!(error = %e, "Retention failed.");
            }
        }
    }
}

/// Stores the checkpoints of series fed over HTTP every `pipeline.checkpoint_interval_ms`
/// (not with Kafka on: partitions persist their own series with their offsets).
pub async fn run_checkpoints(state: AppState) {
    let every = state.settings.pipeline.checkpoint_interval_ms;
    if every == 0 || state.settings.kafka.enabled() {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match state.checkpoint_dirty().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(saved = n, "Checkpoints stored."),
            Err(e) => {
                state.metrics.storage_errors.inc();
                tracing::warn!(error = %e, "Storing checkpoints failed; retrying at the next interval.");
            }
        }
    }
}

/// A built, not yet serving, application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// The admin listener (metrics and health), when configured.
    admin: Option<TcpListener>,
    state: AppState,
}

impl Application {
    /// Connects storage, starts the pipeline, restores checkpoints and binds the listener.
    ///
    /// # Errors
    /// Storage, settings or bind failures, with what failed.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        use anyhow::Context;
        if settings.storage.url.is_none() {
            std::fs::create_dir_all(&settings.storage.data_dir)
                .with_context(|| format!("creating the data directory {}", settings.storage.data_dir.display()))?;
        }
        let timeouts = crate::storage::Timeouts {
            acquire_ms: settings.storage.acquire_timeout_ms,
            statement_ms: settings.storage.statement_timeout_ms,
            sqlite_max_bytes: settings.storage.max_bytes,
        };
        let storage = Storage::connect_with(&settings.storage_url(), settings.storage.max_connections, timeouts)
            .await
            .context("opening storage")?;
        let detector = detector_defaults(&settings).map_err(anyhow::Error::msg)?;
        let shards = if settings.pipeline.shards == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            settings.pipeline.shards
        };
        let pipeline = Pipeline::start(PipelineConfig { shards, queue: settings.pipeline.queue, detector })
            .context("starting detectors")?;
        let metrics = crate::metrics::Metrics::with_watched(&settings.metrics.watched_series);
        metrics.series.set(storage.counts().await?.series);
        let labeling = crate::labeling::Labeling::new(storage.clone(), metrics.clone(), settings.labeling.clone());
        let in_flight = Arc::new(tokio::sync::Semaphore::new(settings.http.max_in_flight));
        let state = AppState {
            storage,
            pipeline: Arc::new(pipeline),
            settings: Arc::new(settings),
            metrics,
            labeling,
            tokens: crate::auth::TokenCache::default(),
            limiter: crate::http::RateLimiter::default(),
            guards: SeriesGuards::default(),
            kafka_heartbeat: Arc::default(),
            in_flight,
        };
        // With Kafka, a series' detector is loaded by the partition that carries it, when the
        // partition is assigned here: loading every series now would hold stale copies of series
        // other instances own (and a stale copy must never be checkpointed over a newer one).
        let mut restored = 0;
        if !state.settings.kafka.enabled() {
            for s in state.storage.list_series().await? {
                let (from_checkpoint, replayed) = state.recover_detector(&s).await?;
                restored += usize::from(from_checkpoint);
                if replayed > 0 {
                    tracing::info!(series = %s.name, replayed, "Replayed stored points the checkpoint had not seen.");
                }
            }
        }
        let listener = TcpListener::bind(&state.settings.http.addr)
            .await
            .with_context(|| format!("binding {}", state.settings.http.addr))?;
        let admin = match &state.settings.http.admin_addr {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.with_context(|| format!("binding the admin listener {addr}"))?)
            }
            None => None,
        };
        let local = listener.local_addr()?;
        if !state.settings.auth.tokens() {
            anyhow::ensure!(
                local.ip().is_loopback(),
                "auth.mode = \"open\" serves the API without tokens and is allowed only on a loopback address, \
                 not {local}: set auth.mode = \"tokens\" (DRIFTWATCH__AUTH__MODE=tokens) and create tokens with \
                 `driftwatch token create`"
            );
            tracing::warn!(addr = %local, "Access control is off (auth.mode = open): any local client may use every route.");
        }
        tracing::info!(addr = %local, admin = ?admin.as_ref().and_then(|a| a.local_addr().ok()),
            storage = ?state.storage.backend(), restored, kafka = state.settings.kafka.enabled(),
            auth = %state.settings.auth.mode, "Listening.");
        Ok(Self { listener, admin, state })
    }

    /// A handle on the running state (for in-process callers such as `replay`).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// The admin listener's port, when configured.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    /// Serves until `shutdown` resolves, then drains the pipeline and stores every checkpoint.
    ///
    /// # Errors
    /// Serving or checkpoint failures.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let retention = tokio::spawn(run_retention(
            self.state.storage.clone(),
            self.state.settings.clone(),
            self.state.metrics.clone(),
        ));
        let checkpoints = tokio::spawn(run_checkpoints(self.state.clone()));
        let source = if self.state.settings.kafka.enabled() {
            Some(crate::ingest::kafka::KafkaSource::start(self.state.clone()).await?)
        } else {
            None
        };
        // One shutdown signal for every listener.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let labeling = tokio::spawn(self.state.labeling.clone().run(stop_rx.clone()));
        match self.admin {
            None => {
                let app = crate::http::router(self.state.clone());
                axum::serve(self.listener, app).with_graceful_shutdown(stopped(stop_rx)).await?;
            }
            Some(admin) => {
                let (api, ops) = crate::http::routers(self.state.clone());
                let ops_server = tokio::spawn(
                    axum::serve(admin, ops).with_graceful_shutdown(stopped(stop_rx.clone())).into_future(),
                );
                axum::serve(self.listener, api).with_graceful_shutdown(stopped(stop_rx)).await?;
                ops_server.await??;
            }
        }
        retention.abort();
        checkpoints.abort();
        // The labeling worker gives its leases back, so another instance takes over at once.
        let _ = labeling.await;
        if let Some(source) = source {
            // Kafka partitions drain and persist first; their detectors leave the pipeline.
            tokio::task::spawn_blocking(move || source.stop()).await?;
        }
        let AppState { storage, pipeline, guards, .. } = self.state;
        let detectors = tokio::task::spawn_blocking(move || pipeline.shutdown()).await?;
        let mut saved = 0;
        for (name, det) in detectors {
            // A stale detector has seen points storage has not: its stored checkpoint and the
            // stored points rebuild it at the next start.
            if guards.is_stale(&name) {
                continue;
            }
            if let Some(s) = storage.series(&name).await? {
                storage.save_checkpoint(s.id, &serde_json::to_vec(&det)?, det.stats().points as i64).await?;
                saved += 1;
            }
        }
        tracing::info!(saved, "Stopped; detector checkpoints stored.");
        Ok(())
    }
}
