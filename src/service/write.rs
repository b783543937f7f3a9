//! The write path: a body is decoded, each message's points go through the series' detector,
//! and what the detector produced (points, intervals, scores) is stored in one transaction
//! before the caller hears back. Counts go to the metrics once per request or Kafka batch.

use driftwatch_icid::{ClosedInterval, Event};

use super::{Service, ServiceError};
use crate::decode::{LineError, Message, RejectReason, Rejected, decode_lines, reject_after};
use crate::pipeline::Report;
use crate::storage::{IntervalRow, PointChunk, ScoreRow, StorageError, WriteBatch};

/// Undecodable messages an answer lists; the rest are only counted (`bad_lines`).
pub const LISTED_ERRORS: usize = 20;

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
    /// The first [`LISTED_ERRORS`] messages that could not be decoded.
    pub errors: Vec<LineError>,
    /// Every message that could not be decoded (listed or not).
    pub bad_lines: usize,
    /// Series not created because the token is at `auth.max_series_per_token`.
    pub refused_series: Vec<String>,
}

impl IngestSummary {
    /// Adds a detector report's point counts.
    pub fn count(&mut self, report: &Report) {
        self.accepted += report.accepted;
        self.duplicate += report.duplicate;
        self.late += report.late;
        self.dimension_mismatch += report.dimension_mismatch;
    }

    /// Counts an undecodable message, listing it if fewer than [`LISTED_ERRORS`] are listed.
    pub fn error(&mut self, e: LineError) {
        self.bad_lines += 1;
        if self.errors.len() < LISTED_ERRORS {
            self.errors.push(e);
        }
    }

    /// Whether points came and none was usable: every point was rejected, of the wrong
    /// dimension, or in an undecodable message, and none was accepted, duplicate or late.
    pub fn all_rejected(&self) -> bool {
        self.accepted + self.duplicate + self.late == 0
            && self.rejected.total() + self.dimension_mismatch + self.bad_lines as u64 > 0
    }

    /// Why nothing was usable, for people: counts by reason and the first undecodable lines.
    pub fn rejection_text(&self) -> String {
        let mut parts = Vec::new();
        let described = self.rejected.describe();
        if !described.is_empty() {
            parts.push(described);
        }
        if self.dimension_mismatch > 0 {
            parts.push(format!(
                "{} dimension_mismatch (the series has another number of values)",
                self.dimension_mismatch
            ));
        }
        if self.bad_lines > 0 {
            let first: Vec<String> = self.errors.iter().take(3).map(ToString::to_string).collect();
            parts.push(format!("{} undecodable message(s), first: {}", self.bad_lines, first.join("; ")));
        }
        parts.join(", ")
    }
}

impl Service {
    /// Decodes a body and runs every message through pipeline and storage on behalf of the
    /// settings' principal.
    ///
    /// # Errors
    /// As [`Service::ingest_body_as`].
    pub async fn ingest_body(&self, body: &[u8]) -> Result<IngestSummary, ServiceError> {
        self.ingest_body_as(body, &self.settings.principal, 0).await
    }

    /// Decodes a body and runs every message through pipeline and storage on behalf of `who`
    /// (recorded as the creator of new series), who may have created at most `max_series`
    /// series (0 = no limit): messages for further new series are refused and listed in
    /// `refused_series`. Decode problems are counted in the summary (the first
    /// [`LISTED_ERRORS`] listed); points dated past the clock plus `pipeline.max_future_ms` are
    /// rejected as `future_timestamp`.
    ///
    /// The work per body is bounded before anything is fed: decoding stops at the
    /// `http.max_bad_lines`-th undecodable line and at `http.max_batch_points` points (a message
    /// counts as at least one).
    ///
    /// # Errors
    /// [`ServiceError::TooManyErrors`] and [`ServiceError::BatchTooLarge`] (nothing of the body
    /// is fed then); storage or pipeline failures.
    pub async fn ingest_body_as(
        &self,
        body: &[u8],
        who: &str,
        max_series: usize,
    ) -> Result<IngestSummary, ServiceError> {
        let mut summary = IngestSummary::default();
        let (limit, max_bad) = (self.settings.http.max_batch_points, self.settings.http.max_bad_lines);
        let mut messages = Vec::new();
        let mut points = 0usize;
        for decoded in decode_lines(body) {
            match decoded {
                Ok(m) => {
                    points += (m.points.len() + m.rejected.total() as usize).max(1);
                    if points > limit {
                        // The whole request is refused before any of it reaches a detector.
                        return Err(ServiceError::BatchTooLarge { points, limit });
                    }
                    messages.push(m);
                }
                Err(e) => {
                    summary.error(e);
                    if summary.bad_lines > max_bad {
                        return Err(ServiceError::TooManyErrors {
                            limit: max_bad,
                            first: summary.errors.iter().take(5).map(ToString::to_string).collect(),
                        });
                    }
                }
            }
        }
        let horizon = self.future_horizon();
        for mut message in messages {
            summary.messages += 1;
            if let Some(h) = horizon {
                reject_after(&mut message, h);
            }
            summary.rejected.merge(&message.rejected);
            self.ingest_message(message, who, max_series, &mut summary).await?;
        }
        self.record(&summary);
        Ok(summary)
    }

    /// The latest timestamp accepted now: the clock plus `pipeline.max_future_ms` (`None`: no
    /// bound).
    pub fn future_horizon(&self) -> Option<i64> {
        let skew = self.settings.pipeline.max_future_ms;
        (skew > 0).then(|| crate::clock::now_ms().saturating_add(i64::try_from(skew).unwrap_or(i64::MAX)))
    }

    /// Feeds one decoded message to its series' detector and stores the results durably (one
    /// transaction), under the series' write lock (taken before the series is looked up or
    /// created, so a delete, reset or configuration change runs wholly before or after); a
    /// series left stale by an earlier failed write is rebuilt from storage first. A new
    /// series past `who`'s cap is refused (listed in `refused_series`).
    async fn ingest_message(
        &self,
        m: Message,
        who: &str,
        max_series: usize,
        summary: &mut IngestSummary,
    ) -> Result<(), ServiceError> {
        let Some(first) = m.points.first() else { return Ok(()) };
        let _order = self.guards.lock(&m.series).await;
        let now = crate::clock::now_ms();
        let dim = first.values.len() as i64;
        let Some(series) = self.storage.ensure_series_capped(&m.series, dim, who, now, max_series).await? else {
            summary.refused_series.push(m.series);
            return Ok(());
        };
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
            if let ServiceError::Storage(StorageError::Gone(_)) = e {
                return Err(ServiceError::Invalid {
                    code: "series_deleted",
                    message: format!(
                        "series {name:?} was deleted while these points were stored; nothing of them was stored"
                    ),
                });
            }
            tracing::warn!(series = %name, error = %e, "Results not stored; the client's retry will be accepted.");
            return Err(e);
        }
        if report.accepted > 0 {
            self.guards.mark_dirty(&name);
        }
        Ok(())
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
        m.points_rejected.with_label_values(&["undecodable_message"]).inc_by(summary.bad_lines as u64);
        m.points_ingested.inc_by(summary.accepted);
        for (shard, depth) in self.pipeline.queue_depths().into_iter().enumerate() {
            m.queue_depth.with_label_values(&[&shard.to_string()]).set(depth as i64);
        }
    }

    /// Feeds a message's points to its series' detector and counts the outcome; nothing is
    /// stored yet (see [`Service::store`]).
    ///
    /// # Errors
    /// A stopped pipeline.
    pub async fn feed(&self, m: Message, summary: &mut IngestSummary) -> Result<Report, ServiceError> {
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
                self.metrics.watched_anomaly_warming_up.with_label_values(&l).set(i64::from(b.warming_up));
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
        summary.count(&report);
        Ok(report)
    }

    fn count_failure(&self, e: &StorageError) {
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
    /// `Storage::write_many`); like [`Service::store`], safe to retry. Returns the ids of series
    /// deleted meanwhile (their results are not stored).
    ///
    /// # Errors
    /// A storage failure; nothing is stored then.
    pub async fn store_many(&self, reports: &[(i64, &Report)]) -> Result<Vec<i64>, ServiceError> {
        let batches: Vec<(i64, WriteBatch)> = reports.iter().map(|(id, r)| (*id, write_batch(*id, r))).collect();
        let refs: Vec<(i64, &WriteBatch)> = batches.iter().map(|(id, b)| (*id, b)).collect();
        self.timed_write(self.storage.write_many(&refs)).await
    }

    /// Stores what a report produced (points, intervals, scores) in one transaction. Writing the
    /// same report again leaves the same rows, so a failed write can simply be retried.
    ///
    /// # Errors
    /// A storage failure; nothing of the report is stored then.
    pub async fn store(&self, series_id: i64, report: &Report) -> Result<(), ServiceError> {
        let batch = write_batch(series_id, report);
        if batch == WriteBatch::default() {
            return Ok(());
        }
        self.timed_write(self.storage.write(series_id, &batch)).await
    }

    /// Times a storage write and counts its failure.
    async fn timed_write<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, ServiceError> {
        let started = std::time::Instant::now();
        let written = write.await;
        self.metrics.storage_write_seconds.observe(started.elapsed().as_secs_f64());
        Ok(written.inspect_err(|e| self.count_failure(e))?)
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
        change_point: Some(iv.change_point as i64),
        change_ts: Some(iv.change_ts),
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
                warming_up: b.warming_up,
                anomaly_version: crate::storage::ANOMALY_VERSION,
            })
            .collect(),
        last_ts: r.accepted_points.last().map(|p| p.0),
    }
}
