//! HTTP errors: one type, a stable code and a message, rendered as
//! `{"error": {"code": .., "message": ..}}` with the matching status, and the mapping of every
//! lower layer's error to it. Internal failures are logged once here and answered with an
//! opaque message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::service::ServiceError;

/// The error body every 4xx/5xx carries: `{"error": {"code", "message"}}` (for the OpenAPI
/// document; [`ApiError`] renders it).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ErrorBody {
    error: ErrorDetail,
}

/// A stable code (`invalid_body`, `invalid_query`, `invalid_path`, `method_not_allowed`, `invalid_config`, `not_found`,
/// `body_too_large`, `batch_too_large`, `too_many_errors`, `points_rejected`, `series_deleted`,
/// `unsupported_media_type`, `host_not_allowed`, `origin_not_allowed`, `too_many_projects`,
/// `unauthorized`, `forbidden`, `rate_limited`,
/// `overloaded`, `timeout`, `unavailable`, `storage_unavailable`, `storage_full`, `internal`;
/// labeling: `invalid_label`, `invalid_round`, `invalid_project`, `invalid_author`,
/// `invalid_verdict`, `stale_round`, `stale_label`, `suggestion_taken`, `suggestion_closed`,
/// `name_taken`, `not_ready`, `project_failed`) and a message for people.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    code: String,
    message: String,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// 400 with a reason.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    /// 404 for a named thing.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: what.into() }
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self { status: StatusCode::METHOD_NOT_ALLOWED, code: "method_not_allowed", message: message.into() }
    }

    /// 401: no token, or one that is malformed, unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }

    /// 403: the token's role may not use this route.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "forbidden", message: message.into() }
    }

    /// 403 with a code of its own (`host_not_allowed`, `origin_not_allowed`).
    pub fn forbidden_code(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code, message: message.into() }
    }

    /// 415: a write whose body is not JSON or NDJSON.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: format!("writes take Content-Type: application/json or application/x-ndjson, not {got:?}"),
        }
    }

    /// 503: the token holds its share of the slots (`http.token_share`).
    pub fn overloaded_share(token: &str, held: usize, kind: &str) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded",
            message: format!(
                "token {token:?} holds {held} {kind} slots, its share (http.token_share); retry when one ends"
            ),
        }
    }

    /// 429: over the token's request rate.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self { status: StatusCode::TOO_MANY_REQUESTS, code: "rate_limited", message: message.into() }
    }

    /// 503: the request ran past `http.request_timeout_ms`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: "timeout", message: message.into() }
    }

    /// 422: understood, but nothing in it is usable.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code, message: message.into() }
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, code, message: message.into() }
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            message: format!("the body is over {limit} bytes"),
        }
    }

    /// 413 where the limit is not at hand (a body extractor's refusal).
    pub fn body_too_large() -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            message: "the body is over http.max_body_bytes".into(),
        }
    }

    /// 413: more points in one request than `http.max_batch_points`.
    pub fn batch_too_large(points: usize, limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "batch_too_large",
            message: format!(
                "{points} points in one request; the limit is {limit} (http.max_batch_points): split the batch"
            ),
        }
    }

    /// 503: `http.max_in_flight` requests are being served already.
    pub fn overloaded(limit: usize) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded",
            message: format!("{limit} requests are in progress (http.max_in_flight); retry shortly"),
        }
    }

    /// 503 while a dependency is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: message.into() }
    }

    /// 500; the cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Request failed.");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message: "internal error".into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        if self.code == "storage_unavailable" || self.code == "overloaded" {
            return (self.status, [(axum::http::header::RETRY_AFTER, "1")], body).into_response();
        }
        (self.status, body).into_response()
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::ErrorKind;
        match e.kind() {
            ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "Storage unavailable.");
                Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "storage_unavailable",
                    message: "storage is not reachable right now; retry the request (points already stored count as duplicates)".into(),
                }
            }
            ErrorKind::Full => {
                tracing::error!(error = %e, "Storage full.");
                Self {
                    status: StatusCode::INSUFFICIENT_STORAGE,
                    code: "storage_full",
                    message: "storage is full (quota or disk); retry the request once space is freed (points already stored count as duplicates)".into(),
                }
            }
            ErrorKind::Other => ApiError::internal(e),
        }
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(e: crate::pipeline::PipelineError) -> Self {
        match e {
            crate::pipeline::PipelineError::Stopped => ApiError::unavailable("the service is shutting down"),
            other => ApiError::bad_request("invalid_config", other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => ApiError::not_found(m),
            ServiceError::Invalid { code: "series_deleted", message } => ApiError::conflict("series_deleted", message),
            ServiceError::Invalid { code, message } => ApiError::bad_request(code, message),
            e @ ServiceError::TooManyErrors { .. } => ApiError::bad_request("too_many_errors", e.to_string()),
            ServiceError::BatchTooLarge { points, limit } => ApiError::batch_too_large(points, limit),
            ServiceError::Pipeline(p) => p.into(),
            ServiceError::Storage(s) => s.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Storage(s) => s.into(),
            e @ AuthError::StoredRole(_) => ApiError::internal(e),
            e => ApiError::unauthorized(e.to_string()),
        }
    }
}

impl From<crate::labeling::LabelingError> for ApiError {
    fn from(e: crate::labeling::LabelingError) -> Self {
        use crate::labeling::LabelingError as L;
        match e {
            L::NotFound(m) => ApiError::not_found(m),
            L::Invalid(code, m) => ApiError::bad_request(code, m),
            L::Conflict(code, m) => ApiError::conflict(code, m),
            L::NotReady(m) => ApiError::conflict("not_ready", m),
            L::Storage(s) => s.into(),
            L::Engine(m) => ApiError::internal(m),
        }
    }
}
