//! Request parts read the same way by every handler: a JSON body or a query string, refused
//! with `400 invalid_body` / `400 invalid_query` and the extractor's reason.

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};

use super::error::ApiError;

/// A JSON body, or `400 invalid_body`.
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))
}

/// A query string, or `400 invalid_query`.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}
