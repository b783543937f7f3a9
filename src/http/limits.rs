//! Middleware for every route: a count and a timing of every response by route template
//! ([`record`]), and request limits and response headers: a deadline per request
//! (`http.request_timeout_ms`, answered `503 timeout`), a token bucket per token
//! (`auth.rate_per_sec`, `auth.burst`; answered `429 rate_limited` with `Retry-After`), and the
//! usual security headers (no sniffing, no framing, no referrer, no caching of API answers, and
//! a locked-down Content-Security-Policy on anything that is not the page).

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::ApiState;
use crate::auth::Principal;

/// Per-token rate limit; runs after authentication (it reads the [`Principal`]).
pub async fn rate_limit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let a = &state.service.settings.auth;
    if a.rate_per_sec > 0.0
        && let Some(p) = request.extensions().get::<Principal>()
        && let Err(wait) = state.limiter.take(&p.name, a.rate_per_sec, a.burst.max(1.0), Instant::now())
    {
        let mut r = ApiError::rate_limited(format!(
            "token {:?} is over its {} requests/s; retry in {} ms",
            p.name,
            a.rate_per_sec,
            wait.as_millis()
        ))
        .into_response();
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    next.run(request).await
}

/// Admission: at most `http.max_in_flight` API requests at once; the rest are refused at once
/// (503 `overloaded`, Retry-After: 1), so overload costs failed requests, not unbounded memory.
/// `bench soak` at 1,000 queries/s with half-maximum ingest and labeling on 2 cores had queued
/// requests grow the service to 5 GB with queries timing out at 30 s before this.
pub async fn admit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.service.metrics.http_shed.inc();
        return ApiError::overloaded(state.service.settings.http.max_in_flight).into_response();
    };
    next.run(request).await
}

/// The request deadline and the security headers.
pub async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_millis(state.service.settings.http.request_timeout_ms.max(1));
    let mut response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(r) => r,
        Err(_) => {
            state.service.metrics.http_timeouts.inc();
            ApiError::timeout(format!("the request took over {} ms and was abandoned", limit.as_millis()))
                .into_response()
        }
    };
    let h = response.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Counts every response by route template (never the raw path, so labels stay bounded),
/// method and status, and times it: 4xx answers to bad input show up in metrics whatever
/// rejected them (a handler, a body limit, an unknown route).
pub async fn record(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let m = &state.service.metrics;
    m.http_seconds.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    m.http_requests.with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()]).inc();
    response
}
