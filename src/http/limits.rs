//! Middleware for every route: a count and a timing of every response by route template
//! ([`record`]), and request limits and response headers: a deadline per request
//! (`http.request_timeout_ms`, answered `503 timeout`), which requests come from where they may
//! ([`origin`]: in open mode loopback `Host` and `Origin` only; writes only as JSON or NDJSON),
//! admission (reads and writes apart, and a share of each per token), a token bucket per token
//! (`auth.rate_per_sec`, `auth.burst`; answered `429 rate_limited` with `Retry-After`), and the
//! usual security headers (no sniffing, no framing, no referrer, no caching of API answers, and
//! a locked-down Content-Security-Policy on anything that is not the page).

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
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

fn is_read(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Admission: at most `http.max_in_flight` API reads and as many writes at once, counted apart;
/// the rest are refused at once (503 `overloaded`, Retry-After: 1), so overload costs failed
/// requests, not unbounded memory. `bench soak` at 1,000 queries/s with half-maximum ingest and
/// labeling on 2 cores had queued requests grow the service to 5 GB with queries timing out at
/// 30 s before this. Runs before authentication; [`share`] bounds each token after it.
pub async fn admit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let pool = if is_read(request.method()) { &state.reads } else { &state.writes };
    let Ok(_permit) = pool.clone().try_acquire_owned() else {
        state.service.metrics.http_shed.inc();
        return ApiError::overloaded(state.service.settings.http.max_in_flight).into_response();
    };
    next.run(request).await
}

/// A token's slot, given back when the request ends.
struct Holding {
    held: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, bool), usize>>>,
    key: (String, bool),
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut map = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A token's share: with tokens, one token may hold at most `http.token_share` of the read
/// slots and of the write slots at once (at least one), so a few slow requests of one token
/// cannot take every slot from the others (503 `overloaded` past its share).
pub async fn share(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let http = &state.service.settings.http;
    let Some(p) = request.extensions().get::<Principal>().filter(|p| p.authenticated) else {
        return next.run(request).await;
    };
    let limit = ((http.max_in_flight as f64 * http.token_share).floor() as usize).max(1);
    let write = !is_read(request.method());
    let key = (p.name.clone(), write);
    {
        let mut map = state.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= limit {
            state.service.metrics.http_shed.inc();
            let mut r = ApiError::overloaded_share(&p.name, *n, if write { "write" } else { "read" }).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            return r;
        }
        *n += 1;
    }
    let _holding = Holding { held: state.held.clone(), key };
    next.run(request).await
}

/// Whether an authority (`host[:port]`) names this machine's loopback: `localhost` (and
/// `*.localhost`), 127.0.0.0/8 or `[::1]`.
fn loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { authority })
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a `Content-Type` is JSON or NDJSON.
fn json_or_ndjson(v: &HeaderValue) -> bool {
    let t = v.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(t.as_str(), "application/json" | "application/x-ndjson" | "application/ndjson")
        || (t.starts_with("application/") && t.ends_with("+json"))
}

/// Where a request may come from, and what a write may carry.
///
/// * Open mode (no tokens, loopback only): the `Host` must be a loopback name, so a page whose
///   DNS name is rebound to 127.0.0.1 cannot use the API (403 `host_not_allowed`), and an
///   `Origin`, when sent, must be a loopback one, so another site's page cannot make the
///   browser write (403 `origin_not_allowed`).
/// * Every mode: a write (not GET, HEAD or OPTIONS) with a body or a `Content-Type` must be
///   JSON or NDJSON (415 `unsupported_media_type`): the types an HTML form or a no-CORS `fetch`
///   can send are refused.
pub async fn origin(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let h = request.headers();
    if !state.service.settings.auth.tokens() {
        let host =
            h.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| request.uri().authority().map(|a| a.as_str()));
        if !host.is_some_and(loopback_authority) {
            return ApiError::forbidden_code(
                "host_not_allowed",
                format!(
                    "auth.mode = \"open\" answers only requests for a loopback name (localhost, 127.0.0.1, [::1]), not {:?}",
                    host.unwrap_or("")
                ),
            )
            .into_response();
        }
        if let Some(o) = h.get(header::ORIGIN) {
            let o = o.to_str().unwrap_or("");
            let ok = o.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && loopback_authority(rest.trim_end_matches('/'))
            });
            if !ok {
                return ApiError::forbidden_code(
                    "origin_not_allowed",
                    format!("auth.mode = \"open\" answers only pages served from a loopback name, not origin {o:?}"),
                )
                .into_response();
            }
        }
    }
    if !is_read(request.method()) {
        let has_body = h.get(header::TRANSFER_ENCODING).is_some()
            || h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
        let ok = match h.get(header::CONTENT_TYPE) {
            Some(v) => json_or_ndjson(v),
            None => !has_body,
        };
        if !ok {
            return ApiError::unsupported_media_type(
                h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("none"),
            )
            .into_response();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_and_json_bodies_pass() {
        for ok in
            ["localhost", "localhost:8080", "127.0.0.1:8080", "127.1.2.3", "[::1]:80", "[::1]", "app.localhost:3000"]
        {
            assert!(loopback_authority(ok), "{ok}");
        }
        for bad in
            ["attacker.example", "attacker.example:8080", "10.0.0.1", "localhost.attacker.example", "[::2]:80", ""]
        {
            assert!(!loopback_authority(bad), "{bad}");
        }
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/X-NDJSON",
            "application/merge-patch+json",
        ] {
            assert!(json_or_ndjson(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""] {
            assert!(!json_or_ndjson(&HeaderValue::from_static(bad)), "{bad}");
        }
    }
}
