//! Recovery: a series' detector rebuilt from storage alone, from its checkpoint and the stored
//! points the checkpoint has not seen. Used at start-up, after a failed write (a *stale*
//! series), and by the Kafka source when a partition brings a series to this instance.

use driftwatch_icid::StreamDetector;

use super::{Service, ServiceError};
use crate::config::DetectorSettings;
use crate::decode::Point;
use crate::storage::SeriesRow;

impl Service {
    /// Installs a series' stored detector in the pipeline, replacing whatever the pipeline
    /// holds: its checkpoint when there is a readable one, else a fresh detector with the
    /// series' own configuration (or the defaults). Returns whether a checkpoint was restored.
    ///
    /// # Errors
    /// Storage or pipeline failures, or a stored configuration that no longer parses.
    pub async fn load_detector(&self, s: &SeriesRow) -> Result<bool, ServiceError> {
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
        self.configure_own(s).await?;
        Ok(false)
    }

    /// Gives the pipeline a fresh detector with the series' own stored settings, if it has any
    /// (else the pipeline's defaults apply at its next point).
    pub(super) async fn configure_own(&self, s: &SeriesRow) -> Result<(), ServiceError> {
        if let Some(config) = s.config.as_deref() {
            let detector: DetectorSettings =
                serde_json::from_str(config).map_err(|e| ServiceError::Config(e.to_string()))?;
            let config = detector.stream_config().map_err(ServiceError::Config)?;
            self.pipeline.configure(s.name.clone(), config, s.dim as usize).await?;
        }
        Ok(())
    }

    /// Recovers every stored series (start-up without Kafka); returns how many came from a
    /// checkpoint.
    ///
    /// # Errors
    /// As [`Service::recover_detector`].
    pub async fn recover_all(&self) -> Result<usize, ServiceError> {
        let mut restored = 0;
        for s in self.storage.list_series().await? {
            let (from_checkpoint, replayed) = self.recover_detector(&s).await?;
            restored += usize::from(from_checkpoint);
            if replayed > 0 {
                tracing::info!(series = %s.name, replayed, "Replayed stored points the checkpoint had not seen.");
            }
        }
        Ok(restored)
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
    pub async fn recover_detector(&self, s: &SeriesRow) -> Result<(bool, u64), ServiceError> {
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
                let fresh = SeriesRow { checkpoint_points: 0, ..s.clone() };
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
            let points: Vec<Point> =
                points.into_iter().skip(skip).map(|(ts_ms, values)| Point { ts_ms, values }).collect();
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
}
