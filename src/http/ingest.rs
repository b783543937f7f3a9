//! `POST /v1/points`: a body of points through the service's write path, answered with
//! counts by outcome.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde_json::{Value, json};

use super::error::{ApiError, ErrorBody};
use super::state::ApiState;
use super::views::IngestAnswer;
use crate::auth::Principal;
use crate::decode::RejectReason;
use crate::service::IngestSummary;

/// `/v1/points`.
pub(super) fn routes() -> axum::Router<ApiState> {
    axum::Router::new().route("/v1/points", axum::routing::post(ingest))
}

/// Ingest points: one JSON message (a point or a batch for one series) or NDJSON lines.
#[utoipa::path(post, path = "/v1/points", tag = "ingest", request_body(content = String, description = "`{\"series\", \"ts\", \"value\"|\"values\"}` or `{\"series\", \"points\": [[ts, x], ...]}`; JSON or NDJSON", content_type = "application/json"),
    responses((status = 200, description = "Counts by outcome: accepted, duplicate, late, dimension_mismatch, rejected by reason, undecodable lines (`errors`: the first 20, `errors_total`: all)", body = IngestAnswer), (status = 400, description = "No message could be decoded (`invalid_body`), or more undecodable lines than http.max_bad_lines (`too_many_errors`, nothing stored)", body = ErrorBody), (status = 413, description = "Body over the limit", body = ErrorBody), (status = 415, description = "Not JSON or NDJSON", body = ErrorBody), (status = 422, description = "No point usable (`points_rejected`), with the reasons", body = ErrorBody)))]
async fn ingest(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::too_large(state.service.settings.http.max_body_bytes),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    })?;
    // The write path runs in its own task: a request abandoned at its deadline (or by its
    // client) must not stop a batch between the detectors and storage, which would lose those
    // results. A retry of the same points is then counted as duplicates.
    let worker = state.service.clone();
    // With tokens, new series are recorded as the token's and counted against its cap; in
    // open mode as the settings' principal, marked unauthenticated.
    let (who, cap) = match principal {
        Some(axum::Extension(p)) if p.authenticated => {
            (p.author(None), state.service.settings.auth.max_series_per_token)
        }
        Some(axum::Extension(p)) => (p.author(None), 0),
        None => (state.service.settings.principal.clone(), 0),
    };
    let summary = tokio::spawn(async move { worker.ingest_body_as(&body, &who, cap).await })
        .await
        .map_err(|e| ApiError::internal(format!("ingest task: {e}")))??;
    if summary.messages > 0 && summary.refused_series.len() == summary.messages {
        return Err(ApiError::forbidden(format!(
            "this token may create at most {} series (auth.max_series_per_token); refused: {}",
            state.service.settings.auth.max_series_per_token,
            summary.refused_series.join(", ")
        )));
    }
    if summary.messages == 0 {
        let first = summary.errors.first().map_or_else(|| "the body holds no message".to_string(), |e| e.to_string());
        let more = match summary.bad_lines {
            0 | 1 => String::new(),
            n => format!(" (and {} more undecodable lines)", n - 1),
        };
        return Err(ApiError::bad_request("invalid_body", format!("{first}{more}")));
    }
    if summary.all_rejected() {
        return Err(ApiError::unprocessable(
            "points_rejected",
            format!("no point of the body was usable: {}", summary.rejection_text()),
        ));
    }
    Ok(Json(summary_json(&summary)))
}

/// The response body: counts by outcome, rejected points by reason, undecodable lines.
fn summary_json(s: &IngestSummary) -> Value {
    let rejected: serde_json::Map<String, Value> =
        RejectReason::ALL.iter().map(|r| (r.as_str().to_string(), json!(s.rejected.get(*r)))).collect();
    json!({
        "messages": s.messages, "accepted": s.accepted, "duplicate": s.duplicate, "late": s.late,
        "dimension_mismatch": s.dimension_mismatch, "rejected": rejected,
        "errors": s.errors.iter().map(|e| json!({"line": e.line, "message": e.error.to_string()})).collect::<Vec<_>>(),
        "errors_total": s.bad_lines,
        "refused_series": s.refused_series,
    })
}
