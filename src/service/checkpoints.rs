//! Checkpoints of series fed over HTTP: stored every `pipeline.checkpoint_interval_ms` for the
//! series that took points since (each under its write lock, so it reflects exactly the stored
//! points), and for every detector at shutdown. With Kafka on, partitions persist their own
//! series' checkpoints together with their offsets instead.

use super::{Service, ServiceError};
use crate::pipeline::Held;

impl Service {
    /// Stores the checkpoints of the series fed over HTTP since the last call. Returns how many
    /// were stored.
    ///
    /// # Errors
    /// A storage failure (the series stay dirty for the next call).
    pub async fn checkpoint_dirty(&self) -> Result<usize, ServiceError> {
        let dirty = self.guards.take_dirty();
        let mut saved = 0;
        for (k, name) in dirty.iter().enumerate() {
            let _order = self.guards.lock(name).await;
            let saving = async {
                if self.guards.is_stale(name) {
                    return Ok(false);
                }
                let Some(s) = self.storage.series(name).await? else { return Ok(false) };
                let Some(held) = self.pipeline.snapshot(name.clone()).await? else { return Ok(false) };
                self.storage.save_checkpoint(s.id, &serde_json::to_vec(&held.detector)?, held.points() as i64).await?;
                Ok::<_, ServiceError>(true)
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

    /// Stores the checkpoint of every detector the drained pipeline handed back, except stale
    /// ones (they have seen points storage has not: their stored checkpoint and the stored
    /// points rebuild them at the next start). Returns how many were stored.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn save_checkpoints(
        &self,
        detectors: impl IntoIterator<Item = (String, Held)>,
    ) -> Result<usize, ServiceError> {
        let mut saved = 0;
        for (name, held) in detectors {
            if self.guards.is_stale(&name) {
                continue;
            }
            if let Some(s) = self.storage.series(&name).await? {
                self.storage.save_checkpoint(s.id, &serde_json::to_vec(&held.detector)?, held.points() as i64).await?;
                saved += 1;
            }
        }
        Ok(saved)
    }
}

/// Stores the checkpoints of series fed over HTTP every `pipeline.checkpoint_interval_ms`
/// (not with Kafka on: partitions persist their own series with their offsets). Runs until
/// aborted.
pub async fn run_checkpoints(service: Service) {
    let every = service.settings.pipeline.checkpoint_interval_ms;
    if every == 0 || service.settings.kafka.enabled() {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match service.checkpoint_dirty().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(saved = n, "Checkpoints stored."),
            Err(e) => {
                service.metrics.storage_errors.inc();
                tracing::warn!(error = %e, "Storing checkpoints failed; retrying at the next interval.");
            }
        }
    }
}
