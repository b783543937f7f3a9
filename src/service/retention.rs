//! Retention: per series, points and scores more than their configured number of days before
//! the series' newest point are removed (`storage.retention_days_points`,
//! `storage.retention_days_scores`; 0 keeps them).

use super::Service;

/// Applies the retention settings now and then every ten minutes. Runs until aborted.
pub async fn run_retention(service: Service) {
    const DAY_MS: i64 = 86_400_000;
    let settings = &service.settings.storage;
    let keep = |days: u32| if days == 0 { i64::MAX / 2 } else { days as i64 * DAY_MS };
    let (points, scores) = (keep(settings.retention_days_points), keep(settings.retention_days_scores));
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        match service.storage.apply_retention(points, scores).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "Retention removed old blocks."),
            Err(e) => {
                service.metrics.storage_errors.inc();
                tracing::error!(error = %e, "Retention failed.");
            }
        }
    }
}
