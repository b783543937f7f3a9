//! Recovery: a series' detector rebuilt from storage alone, from its checkpoint (or its last
//! reset) and the stored points the checkpoint has not seen. Used at start-up, after a failed write (a *stale*
//! series), and by the Kafka source when a partition brings a series to this instance.

use driftwatch_icid::StreamDetector;

use super::{Service, ServiceError};
use crate::config::DetectorSettings;
use crate::decode::Point;
use crate::pipeline::{Held, Start};
use crate::storage::SeriesRow;

/// What a series' stored checkpoint row says.
enum Stored {
    /// A detector that has seen the series' first `points` points.
    Detector(Box<Held>),
    /// A reset (or configuration change) at this stream index: a fresh detector starts there.
    Reset(u64),
    /// Nothing usable: a fresh detector starts at the series' first point.
    Nothing,
}

impl Service {
    async fn stored_detector(&self, s: &SeriesRow) -> Result<Stored, ServiceError> {
        let Some((state, points)) = self.storage.checkpoint(s.id).await? else { return Ok(Stored::Nothing) };
        let points = u64::try_from(points).unwrap_or(0);
        if state.is_empty() {
            return Ok(Stored::Reset(points));
        }
        match serde_json::from_slice::<StreamDetector>(&state) {
            Ok(det) if det.check_version().is_ok() && det.stats().points <= points => {
                let base = points - det.stats().points;
                Ok(Stored::Detector(Box::new(Held::new(det, base))))
            }
            _ => {
                tracing::warn!(series = %s.name, "Checkpoint unreadable or of another version; the series re-warms.");
                Ok(Stored::Nothing)
            }
        }
    }

    /// Installs a series' stored detector in the pipeline, replacing whatever the pipeline
    /// holds: its checkpoint when there is a readable one, else a fresh detector with the
    /// series' own configuration (or the defaults), at the index of its last reset (after its
    /// stored history) or at its start. Returns whether a checkpoint was restored.
    ///
    /// # Errors
    /// Storage or pipeline failures, or a stored configuration that no longer parses.
    pub async fn load_detector(&self, s: &SeriesRow) -> Result<bool, ServiceError> {
        match self.stored_detector(s).await? {
            Stored::Detector(held) => {
                self.pipeline.restore(s.name.clone(), *held).await?;
                Ok(true)
            }
            Stored::Reset(index) => {
                let i = index as i64;
                let after_ts = if index == 0 {
                    None
                } else {
                    self.storage.points_by_index(s.id, s.dim as usize, i - 1, i).await?.first().map(|p| p.1)
                };
                self.start_fresh(s, Start { index, after_ts }).await?;
                Ok(false)
            }
            Stored::Nothing => {
                self.start_fresh(s, Start::default()).await?;
                Ok(false)
            }
        }
    }

    /// Gives the pipeline a fresh detector for a series, with its own stored settings if it has
    /// any (else the pipeline's defaults), starting at `start`.
    pub(super) async fn start_fresh(&self, s: &SeriesRow, start: Start) -> Result<(), ServiceError> {
        let config = match s.config.as_deref() {
            Some(config) => {
                let detector: DetectorSettings =
                    serde_json::from_str(config).map_err(|e| ServiceError::Config(e.to_string()))?;
                Some(detector.stream_config().map_err(ServiceError::Config)?)
            }
            None => None,
        };
        self.pipeline.configure(s.name.clone(), config, s.dim as usize, start).await?;
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

    /// Rebuilds a series' detector from storage alone: the checkpoint (or a fresh detector at
    /// its last reset), then every stored point it has not seen, fed again in order (results
    /// are upserts, so storing them again leaves the same rows). A checkpoint that has seen
    /// points storage does not hold (its last point is not the stored point at its index) is
    /// dropped and the series is replayed from its first stored point. Returns (checkpoint
    /// used, points replayed).
    ///
    /// Replay stops at the first hole in the stored indices (points retention removed), so it
    /// never feeds points out of order.
    ///
    /// # Errors
    /// Storage or pipeline failures; the series is left without a detector then.
    pub async fn recover_detector(&self, s: &SeriesRow) -> Result<(bool, u64), ServiceError> {
        let mut from_checkpoint = self.load_detector(s).await?;
        let held = self.pipeline.snapshot(s.name.clone()).await?;
        let (mut next, last) = held.map_or((0, None), |h| (h.points() as i64, h.detector.last_ts()));
        // The stored blocks are read once: from the detector's last point on, to check a
        // checkpoint against and then replay.
        let mut chunks = self.storage.chunks_from(s.id, s.dim as usize, (next - 1).max(0)).await?;
        if from_checkpoint && last.is_some() {
            // The checkpoint's last point must be the stored point at its index.
            let stored_last =
                chunks.first().and_then(|(first, pts)| pts.get((next - 1 - first).max(-1) as usize).map(|p| p.0));
            if stored_last != last {
                tracing::warn!(series = %s.name, points = next, "The checkpoint has seen points storage does not hold; replaying from the first stored point.");
                self.storage.drop_checkpoint(s.id).await?;
                self.start_fresh(s, Start::default()).await?;
                from_checkpoint = false;
                next = 0;
                chunks = self.storage.chunks_from(s.id, s.dim as usize, 0).await?;
            }
        }
        let mut replayed = 0u64;
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
