//! Request limits and response headers for every route: a deadline per request
//! (`http.request_timeout_ms`, answered `503 timeout`), a token bucket per token
//! (`auth.rate_per_sec`, `auth.burst`; answered `429 rate_limited` with `Retry-After`), and the
//! usual security headers (no sniffing, no framing, no referrer, no caching of API answers, and
//! a locked-down Content-Security-Policy on anything that is not the page).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::app::AppState;
use crate::auth::Principal;

/// Per-principal token buckets: name → (tokens left, last refill).
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl RateLimiter {
    /// Takes one request's token for `who`; `Err(wait)` when the bucket is empty.
    pub fn take(&self, who: &str, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = map.entry(who.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

/// Per-token rate limit; runs after authentication (it reads the [`Principal`]).
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let a = &state.settings.auth;
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
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.metrics.http_shed.inc();
        return ApiError::overloaded(state.settings.http.max_in_flight).into_response();
    };
    next.run(request).await
}

/// The request deadline and the security headers.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_millis(state.settings.http.request_timeout_ms.max(1));
    let mut response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(r) => r,
        Err(_) => {
            state.metrics.http_timeouts.inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take("a", 2.0, 3.0, t0).is_ok());
        }
        let wait = l.take("a", 2.0, 3.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(l.take("b", 2.0, 3.0, t0).is_ok(), "buckets are per token");
        assert!(l.take("a", 2.0, 3.0, t0 + Duration::from_millis(500)).is_ok());
        assert!(l.take("a", 2.0, 3.0, t0 + Duration::from_millis(500)).is_err());
    }
}
