//! The operations routes: liveness, readiness and the Prometheus exposition.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::error::{ApiError, ErrorBody};
use super::state::ApiState;
use crate::service::Liveness;

/// `/healthz`, `/readyz`, `/metrics`.
pub(super) fn routes() -> axum::Router<ApiState> {
    use axum::routing::get;
    axum::Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub(super) struct Status {
    /// `ok` (alive) or `ready`.
    status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Status)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus text format. Gauges read from storage are refreshed at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<ApiState>) -> Result<impl axum::response::IntoResponse, ApiError> {
    let counts = state.service.storage.counts().await.inspect_err(|_| state.service.metrics.storage_errors.inc())?;
    state.service.metrics.series.set(counts.series);
    state.service.metrics.open_intervals.set(counts.open_intervals);
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.service.metrics.render()))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Storage reachable and, with Kafka on, the consumer polling", body = Status), (status = 503, description = "Storage unreachable, or the Kafka consumer stopped or stalled (30 s)", body = ErrorBody)))]
async fn readyz(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    if !state.service.storage.ping().await {
        return Err(ApiError::unavailable("storage is not reachable"));
    }
    if state.service.settings.kafka.enabled() {
        // The consumer thread beats on every poll; a rebalance may hold it for a few seconds
        // while revoked partitions drain, never for half a minute.
        const STALL_MS: i64 = 30_000;
        match state.kafka.liveness(crate::clock::now_ms(), STALL_MS) {
            Liveness::NotStarted => return Err(ApiError::unavailable("the Kafka consumer has not started")),
            Liveness::Stopped => return Err(ApiError::unavailable("the Kafka consumer has stopped")),
            Liveness::Stalled(ms) => {
                return Err(ApiError::unavailable(format!("the Kafka consumer has not polled for {} s", ms / 1000)));
            }
            Liveness::Alive => {}
        }
    }
    Ok(Json(json!({"status": "ready"})))
}
