//! The OpenAPI document at `/openapi.json`, generated from the handlers' `#[utoipa::path]`
//! annotations (paths, parameters, responses), so it moves with the code.

use utoipa::OpenApi;

/// The error body every 4xx/5xx carries: `{"error": {"code", "message"}}`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only; `ApiError` renders the body
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

/// A stable code (`invalid_body`, `invalid_query`, `invalid_config`, `not_found`,
/// `body_too_large`, `unavailable`, `internal`) and a message for people.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "driftwatch",
        description = "Streaming change-interval and anomaly detection. Intervals are half-open [start, end) in stream indices and timestamps (epoch ms)."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        super::ingest,
        super::list_series,
        super::one_series,
        super::delete_series,
        super::reset_series,
        super::configure_series,
        super::series_points,
        super::series_scores,
        super::series_intervals,
        super::all_intervals,
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct ApiDoc;

/// The document as JSON.
pub(super) fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc = super::document();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/points",
            "/v1/series",
            "/v1/series/{name}",
            "/v1/series/{name}/reset",
            "/v1/series/{name}/config",
            "/v1/series/{name}/points",
            "/v1/series/{name}/scores",
            "/v1/series/{name}/intervals",
            "/v1/intervals",
        ] {
            assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
        }
        assert!(
            doc["paths"]["/v1/intervals"]["get"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "since")
        );
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }
}
