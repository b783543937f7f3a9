//! The HTTP API (axum), versioned under `/v1`, and the analyst page under `/ui/`. Handlers stay
//! thin: they parse, call the service layer ([`crate::service`], [`crate::labeling`]) through
//! [`ApiState`], and render; errors are [`ApiError`] JSON bodies. This module only assembles
//! the routers and their middleware.

mod auth;
mod downsample;
mod error;
mod extract;
mod ingest;
mod intervals;
mod labeling;
mod limits;
mod openapi;
mod ops;
mod rate;
mod series;
mod serve;
mod state;
mod views;
mod web;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Json, Router};

pub use error::ApiError;
pub use rate::RateLimiter;
pub use serve::serve;
pub use state::ApiState;

/// The router over `state`: the API plus the operations routes (metrics, health).
pub fn router(state: ApiState) -> Router {
    let (api, ops) = routers(state);
    api.merge(ops.reset_fallback())
}

/// The API router and the operations router (`/metrics`, `/healthz`, `/readyz`), for serving
/// them on separate listeners.
pub fn routers(state: ApiState) -> (Router, Router) {
    let limit = state.service.settings.http.max_body_bytes;
    let api = Router::new()
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .merge(ingest::routes())
        .merge(series::routes())
        .merge(intervals::routes())
        .merge(labeling::routes())
        .merge(web::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // Innermost first: a token's share of the slots, its rate, then who it is.
        .route_layer(from_fn_with_state(state.clone(), limits::share))
        .route_layer(from_fn_with_state(state.clone(), limits::rate_limit))
        .route_layer(from_fn_with_state(state.clone(), auth::require))
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(state.clone(), limits::admit))
        .layer(from_fn_with_state(state.clone(), limits::origin))
        .layer(from_fn_with_state(state.clone(), limits::guard))
        .layer(from_fn_with_state(state.clone(), limits::record))
        .with_state(state.clone());
    let ops = ops::routes()
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), limits::origin))
        .layer(from_fn_with_state(state.clone(), limits::guard))
        .layer(from_fn_with_state(state.clone(), limits::record))
        .with_state(state);
    (api, ops)
}

/// Any path that is not a route: `404 not_found` as JSON, like every other refusal.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}; /openapi.json lists them", uri.path()))
}

/// A route asked with a method it does not take: `405 method_not_allowed` as JSON.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{} does not take {method}; /openapi.json lists its methods", uri.path()))
}
