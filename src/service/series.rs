//! Series administration: a series' own detector settings, a reset of its detector, and
//! deletion with everything stored for it.

use serde_json::Value;

use super::{Service, ServiceError};
use crate::clock::now_ms;
use crate::config::DetectorSettings;

impl Service {
    /// Gives a series its own detector settings: the fields of `body` over the service's
    /// defaults, validated by the engine. The series' detector starts again (re-warms).
    /// Returns the series' configuration.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown series, [`ServiceError::Invalid`] for a body
    /// that is not an object or settings the engine refuses.
    pub async fn configure(&self, name: &str, body: Value) -> Result<Value, ServiceError> {
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
        self.pipeline.configure(name.to_owned(), config, series.dim as usize).await?;
        self.storage.set_config(series.id, Some(&merged.to_string()), &self.settings.principal, now_ms()).await?;
        self.storage.clear_checkpoint(series.id, &self.settings.principal, now_ms()).await?;
        Ok(merged)
    }

    /// Forgets a series' detector state; its next points warm a new detector up (with the
    /// series' own settings, if it has any).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown series; storage or pipeline failures.
    pub async fn reset(&self, name: &str) -> Result<(), ServiceError> {
        let series = self.series_named(name).await?;
        self.pipeline.remove(name.to_owned()).await?;
        self.configure_own(&series).await?;
        self.storage.clear_checkpoint(series.id, &self.settings.principal, now_ms()).await?;
        Ok(())
    }

    /// Deletes a series: its detector and everything stored. Returns whether it existed.
    ///
    /// # Errors
    /// Storage or pipeline failures.
    pub async fn delete(&self, name: &str) -> Result<bool, ServiceError> {
        self.pipeline.remove(name.to_owned()).await?;
        Ok(self.storage.delete_series(name).await?)
    }
}
