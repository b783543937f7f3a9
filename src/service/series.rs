//! Series administration: a series' own detector settings, a reset of its detector, and
//! deletion with everything stored for it. Each runs under the series' write lock, so it falls
//! wholly between two ingested batches. A reset or a new configuration forgets the detector,
//! never data: the new detector continues the series' numbering after its stored points and
//! refuses points older than them (see `pipeline`).

use serde_json::Value;

use super::{Service, ServiceError};
use crate::clock::now_ms;
use crate::config::DetectorSettings;
use crate::pipeline::Start;

impl Service {
    /// Gives a series its own detector settings: the fields of `body` over the service's
    /// defaults, validated by the engine. The series' detector starts again (re-warms) after
    /// its stored points, which are kept. Recorded as changed by `who`. Returns the series'
    /// configuration.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown series, [`ServiceError::Invalid`] for a body
    /// that is not an object or settings the engine refuses.
    pub async fn configure(&self, name: &str, body: Value, who: &str) -> Result<Value, ServiceError> {
        let _order = self.guards.lock(name).await;
        let series = self.series_named(name).await?;
        let Value::Object(fields) = body else {
            return Err(ServiceError::invalid_config("the body must be a JSON object"));
        };
        let mut merged = serde_json::to_value(&self.settings.detector)?;
        for (k, v) in fields {
            // psi may be given as a number or as "auto".
            let v = if k == "psi" && v.is_number() { Value::String(v.to_string()) } else { v };
            merged[k] = v;
        }
        let detector: DetectorSettings =
            serde_json::from_value(merged.clone()).map_err(|e| ServiceError::invalid_config(e.to_string()))?;
        let config = detector.stream_config().map_err(ServiceError::invalid_config)?;
        let start = history_end(&series);
        self.pipeline.configure(name.to_owned(), Some(config), series.dim as usize, start).await?;
        let stored = async {
            self.storage.set_config(series.id, Some(&merged.to_string()), who, now_ms()).await?;
            self.storage.clear_checkpoint(series.id, start.index as i64, who, now_ms()).await
        };
        self.settle(name, stored.await)?;
        Ok(merged)
    }

    /// Forgets a series' detector state; its next points warm a new detector up (with the
    /// series' own settings, if it has any), numbered after the stored points, which are kept.
    /// Recorded as changed by `who`.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown series; storage or pipeline failures.
    pub async fn reset(&self, name: &str, who: &str) -> Result<(), ServiceError> {
        let _order = self.guards.lock(name).await;
        let series = self.series_named(name).await?;
        let start = history_end(&series);
        self.start_fresh(&series, start).await?;
        let stored = self.storage.clear_checkpoint(series.id, start.index as i64, who, now_ms()).await;
        self.settle(name, stored)
    }

    /// After a new detector is installed: storage agrees (the series is clean) or it did not
    /// take the reset (the series is rebuilt from storage before its next batch).
    fn settle(&self, name: &str, stored: Result<(), crate::storage::StorageError>) -> Result<(), ServiceError> {
        match stored {
            Ok(()) => {
                self.guards.clear_stale(name);
                Ok(())
            }
            Err(e) => {
                self.guards.mark_stale(name);
                Err(e.into())
            }
        }
    }

    /// Deletes a series: its detector and everything stored. Returns whether it existed.
    ///
    /// # Errors
    /// Storage or pipeline failures.
    pub async fn delete(&self, name: &str) -> Result<bool, ServiceError> {
        let _order = self.guards.lock(name).await;
        self.pipeline.remove(name.to_owned()).await?;
        let existed = self.storage.delete_series(name).await?;
        self.guards.forget(name);
        Ok(existed)
    }
}

/// Where a new detector of a series starts: after its stored points.
fn history_end(s: &crate::storage::SeriesRow) -> Start {
    Start { index: u64::try_from(s.stored_points).unwrap_or(0), after_ts: s.last_ts }
}
