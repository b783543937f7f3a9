//! The HTTP API (axum), versioned under `/v1`. Handlers stay thin: they parse, call
//! [`crate::app::AppState`], and render. Errors are [`ApiError`] JSON bodies.

mod downsample;
mod error;
mod labeling;
mod limits;
mod openapi;
mod web;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub use error::ApiError;
pub use limits::RateLimiter;

use crate::app::AppState;
use crate::storage::{IntervalQuery, IntervalRow, SeriesRow};

/// The router over `state`: the API plus the operations routes (metrics, health).
pub fn router(state: AppState) -> Router {
    let (api, ops) = routers(state);
    api.merge(ops)
}

/// The API router and the operations router (`/metrics`, `/healthz`, `/readyz`), for serving
/// them on separate listeners.
pub fn routers(state: AppState) -> (Router, Router) {
    let limit = state.settings.http.max_body_bytes;
    let api = Router::new()
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/v1/points", post(ingest))
        .route("/v1/series", get(list_series))
        .route("/v1/series/{name}", get(one_series).delete(delete_series))
        .route("/v1/series/{name}/reset", post(reset_series))
        .route("/v1/series/{name}/config", axum::routing::put(configure_series))
        .route("/v1/series/{name}/points", get(series_points))
        .route("/v1/series/{name}/scores", get(series_scores))
        .route("/v1/series/{name}/intervals", get(series_intervals))
        .route("/v1/intervals", get(all_intervals))
        .merge(labeling::routes())
        .merge(web::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limits::rate_limit))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::require))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::admit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state.clone());
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state);
    (api, ops)
}

/// Counts every response by route template (never the raw path, so labels stay bounded),
/// method and status, and times it: 4xx answers to bad input show up in metrics whatever
/// rejected them (a handler, a body limit, an unknown route).
async fn record(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let m = &state.metrics;
    m.http_seconds.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    m.http_requests.with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()]).inc();
    response
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus text format. Gauges read from storage are refreshed at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Result<impl axum::response::IntoResponse, ApiError> {
    let counts = state.storage.counts().await.inspect_err(|_| state.metrics.storage_errors.inc())?;
    state.metrics.series.set(counts.series);
    state.metrics.open_intervals.set(counts.open_intervals);
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Storage reachable and, with Kafka on, the consumer polling"), (status = 503, description = "Storage unreachable, or the Kafka consumer stopped or stalled (30 s)", body = openapi::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.storage.ping().await {
        return Err(ApiError::unavailable("storage is not reachable"));
    }
    if state.settings.kafka.enabled() {
        // The consumer thread beats on every poll; a rebalance may hold it for a few seconds
        // while revoked partitions drain, never for half a minute.
        const STALL_MS: i64 = 30_000;
        let beat = state.kafka_heartbeat.load(std::sync::atomic::Ordering::Relaxed);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        if beat == 0 {
            return Err(ApiError::unavailable("the Kafka consumer has not started"));
        }
        if beat < 0 {
            return Err(ApiError::unavailable("the Kafka consumer has stopped"));
        }
        if now - beat > STALL_MS {
            return Err(ApiError::unavailable(format!(
                "the Kafka consumer has not polled for {} s",
                (now - beat) / 1000
            )));
        }
    }
    Ok(Json(json!({"status": "ready"})))
}

/// Ingest points: one JSON message (a point or a batch for one series) or NDJSON lines.
#[utoipa::path(post, path = "/v1/points", tag = "ingest", request_body(content = String, description = "`{\"series\", \"ts\", \"value\"|\"values\"}` or `{\"series\", \"points\": [[ts, x], ...]}`; JSON or NDJSON", content_type = "application/json"),
    responses((status = 200, description = "Counts by outcome: accepted, duplicate, late, dimension_mismatch, rejected by reason, undecodable lines"), (status = 400, description = "No message could be decoded", body = openapi::ErrorBody), (status = 413, description = "Body over the limit", body = openapi::ErrorBody)))]
async fn ingest(
    State(state): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::too_large(state.settings.http.max_body_bytes),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    })?;
    // The write path runs in its own task: a request abandoned at its deadline (or by its
    // client) must not stop a batch between the detectors and storage, which would lose those
    // results. A retry of the same points is then counted as duplicates.
    let worker = state.clone();
    // With tokens, new series are recorded as the token's and counted against its cap.
    let (who, cap) = match principal {
        Some(axum::Extension(p)) if state.settings.auth.tokens() => (p.name, state.settings.auth.max_series_per_token),
        _ => (state.settings.principal.clone(), 0),
    };
    let summary = tokio::spawn(async move { worker.ingest_body_as(&body, &who, cap).await })
        .await
        .map_err(|e| ApiError::internal(format!("ingest task: {e}")))??;
    if summary.messages > 0 && summary.refused_series.len() == summary.messages {
        return Err(ApiError::forbidden(format!(
            "this token may create at most {} series (auth.max_series_per_token); refused: {}",
            state.settings.auth.max_series_per_token,
            summary.refused_series.join(", ")
        )));
    }
    if summary.messages == 0 {
        let first = summary.errors.first().map_or_else(|| "the body holds no message".to_string(), |e| e.to_string());
        return Err(ApiError::bad_request("invalid_body", first));
    }
    Ok(Json(summary.to_json()))
}

fn series_json(s: &SeriesRow, latest: Option<&IntervalRow>) -> Value {
    json!({"name": s.name, "dim": s.dim, "last_ts": s.last_ts, "points": s.checkpoint_points,
           "stored_points": s.stored_points,
           "created_by": s.created_by, "updated_by": s.updated_by,
           "config": s.config.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
           "latest_change": latest.map(|r| json!({"start": r.start_index, "start_ts": r.start_ts,
               "status": if r.open { "open" } else { "closed" }, "peak_score": r.peak_score}))})
}

fn interval_json(series: &str, r: &IntervalRow, feedback: Option<&(String, String, i64)>) -> Value {
    json!({"series": series, "start": r.start_index, "end": r.end_index, "start_ts": r.start_ts, "end_ts": r.end_ts,
           "detected_at": r.detected_at, "peak_score": r.peak_score, "psi": r.psi,
           "status": if r.open { "open" } else { "closed" },
           "explanation": r.explanation.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
           "feedback": feedback.map(|(v, a, t)| json!({"verdict": v, "author": a, "at": t}))})
}

#[utoipa::path(get, path = "/v1/series", tag = "series", responses((status = 200, description = "Every series with its latest change")))]
async fn list_series(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = state.storage.list_series().await?;
    let latest = state.storage.latest_intervals().await?;
    Ok(Json(json!({"series": all.iter().map(|s| series_json(s, latest.get(&s.id))).collect::<Vec<_>>()})))
}

#[utoipa::path(get, path = "/v1/series/{name}", tag = "series", params(("name" = String, Path, description = "Series name")), responses((status = 200, description = "The series"), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn one_series(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let s = state.series_named(&name).await?;
    let latest = state.storage.latest_intervals().await?;
    Ok(Json(series_json(&s, latest.get(&s.id))))
}

/// Interval filters: `status=open|closed`, `from`/`to` (epoch ms: intervals overlapping the
/// range), `since` (epoch ms: intervals starting at or after it), `limit` (1..=1000, default
/// 100), `after` (the `next` cursor of the previous page).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IntervalParams {
    status: Option<String>,
    since: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<i64>,
    after: Option<String>,
}

fn query_of(p: &IntervalParams, series_id: Option<i64>) -> Result<IntervalQuery, ApiError> {
    let open = match p.status.as_deref() {
        None => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("status must be open or closed, not {other:?}"),
            ));
        }
    };
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 1000"));
    }
    let after = match &p.after {
        None => None,
        Some(c) => {
            let (a, b) = c
                .split_once(':')
                .ok_or_else(|| ApiError::bad_request("invalid_query", "after must be a cursor from next"))?;
            Some((
                a.parse().map_err(|_| ApiError::bad_request("invalid_query", "bad cursor"))?,
                b.parse().map_err(|_| ApiError::bad_request("invalid_query", "bad cursor"))?,
            ))
        }
    };
    Ok(IntervalQuery { series_id, open, from_ts: p.from, to_ts: p.to, since: p.since, after, limit })
}

async fn render_intervals(state: &AppState, q: IntervalQuery) -> Result<Json<Value>, ApiError> {
    let rows = state.storage.intervals(&q).await?;
    // Only the names on this page (a query must not cost more as series are added).
    let mut ids: Vec<i64> = rows.iter().map(|r| r.series_id).collect();
    ids.dedup();
    let names = state.storage.series_names(&ids).await?;
    let next = (rows.len() as i64 == q.limit)
        .then(|| rows.last().map(|r| format!("{}:{}", r.series_id, r.start_index)))
        .flatten();
    let mut feedback = std::collections::HashMap::new();
    for r in &rows {
        if let std::collections::hash_map::Entry::Vacant(e) = feedback.entry(r.series_id) {
            e.insert(state.storage.feedback(r.series_id).await?);
        }
    }
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let fb = feedback.get(&r.series_id).and_then(|f| f.get(&r.start_index));
            interval_json(names.get(&r.series_id).map_or("", String::as_str), r, fb)
        })
        .collect();
    Ok(Json(json!({"intervals": items, "next": next})))
}

#[utoipa::path(get, path = "/v1/series/{name}/intervals", tag = "intervals", params(("name" = String, Path, description = "Series name"), IntervalParams), responses((status = 200, description = "Intervals [start, end) with peak score, psi, status and explanation; `next` cursor"), (status = 400, description = "Bad query", body = openapi::ErrorBody), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn series_intervals(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<IntervalParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let s = state.series_named(&name).await?;
    render_intervals(&state, query_of(&p, Some(s.id))?).await
}

#[utoipa::path(get, path = "/v1/intervals", tag = "intervals", params(IntervalParams), responses((status = 200, description = "Intervals across series, in (series, start) order; `next` cursor"), (status = 400, description = "Bad query", body = openapi::ErrorBody)))]
async fn all_intervals(
    State(state): State<AppState>,
    params: Result<Query<IntervalParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    render_intervals(&state, query_of(&p, None)?).await
}

#[utoipa::path(delete, path = "/v1/series/{name}", tag = "series", params(("name" = String, Path, description = "Series name")), responses((status = 204, description = "Deleted with everything stored for it"), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn delete_series(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    if state.delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no series {name:?}")))
    }
}

#[utoipa::path(post, path = "/v1/series/{name}/reset", tag = "series", params(("name" = String, Path, description = "Series name")), responses((status = 200, description = "Detector state forgotten; the next points re-warm it"), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn reset_series(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    state.reset(&name).await?;
    Ok(Json(json!({"series": name, "reset": true})))
}

#[utoipa::path(put, path = "/v1/series/{name}/config", tag = "series", params(("name" = String, Path, description = "Series name")), request_body(content = Object, description = "Any of window, hop, alpha, psi, t, warmup_windows; the rest from the defaults"), responses((status = 200, description = "The series' configuration"), (status = 400, description = "Settings refused", body = openapi::ErrorBody), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn configure_series(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let config = state.configure(&name, body).await?;
    Ok(Json(json!({"series": name, "config": config})))
}

/// Range filters for points and scores: `from`/`to` (epoch ms, default everything) and
/// `max_points` (downsample to about that many values).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    from: Option<i64>,
    to: Option<i64>,
    max_points: Option<usize>,
}

fn range(p: &RangeParams) -> Result<(i64, i64), ApiError> {
    let (from, to) = (p.from.unwrap_or(i64::MIN), p.to.unwrap_or(i64::MAX));
    if from >= to {
        return Err(ApiError::bad_request("invalid_query", "from must be before to"));
    }
    if p.max_points.is_some_and(|m| m < 2) {
        return Err(ApiError::bad_request("invalid_query", "max_points must be at least 2"));
    }
    Ok((from, to))
}

#[utoipa::path(get, path = "/v1/series/{name}/points", tag = "series", params(("name" = String, Path, description = "Series name"), RangeParams), responses((status = 200, description = "Points, or min/max buckets when over max_points"), (status = 400, description = "Bad query", body = openapi::ErrorBody), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn series_points(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<RangeParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let (from, to) = range(&p)?;
    let s = state.series_named(&name).await?;
    let points = state.storage.points(s.id, s.dim as usize, from, to).await?;
    Ok(Json(downsample::points_json(&points, from, to, p.max_points)))
}

#[utoipa::path(get, path = "/v1/series/{name}/scores", tag = "series", params(("name" = String, Path, description = "Series name"), RangeParams), responses((status = 200, description = "Per detector block: window score, threshold, largest point anomaly score; and `anomaly_probability`: per labeling project holding the series, its end model's probability per point"), (status = 400, description = "Bad query", body = openapi::ErrorBody), (status = 404, description = "Unknown series", body = openapi::ErrorBody)))]
async fn series_scores(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<RangeParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let (from, to) = range(&p)?;
    let s = state.series_named(&name).await?;
    let rows = state.storage.scores(s.id, from, to).await?;
    // One entry per detector block: its window score, threshold and largest point anomaly score.
    let as_points: Vec<(i64, Vec<f64>)> = rows
        .iter()
        .map(|r| {
            let anomaly_max = r.anomaly.iter().copied().fold(0f32, f32::max) as f64;
            (r.end_ts, vec![r.score.unwrap_or(f64::NAN), r.threshold.unwrap_or(f64::NAN), anomaly_max])
        })
        .collect();
    let mut v = downsample::points_json(&as_points, from, to, p.max_points);
    v["columns"] = json!(["window_score", "threshold", "anomaly_max"]);
    // Per labeling project holding the series: the end model's anomaly probability per point.
    let probs = state.storage.probabilities(s.id, from, to).await?;
    if !probs.is_empty() {
        let names: std::collections::HashMap<i64, String> =
            state.storage.projects().await?.into_iter().map(|p| (p.id, p.name)).collect();
        let lo = probs.iter().map(|p| p.1).min().unwrap_or(0);
        let hi = probs.iter().map(|p| p.1).max().unwrap_or(0) + 1;
        let ts: std::collections::HashMap<i64, i64> = state
            .storage
            .points_by_index(s.id, s.dim as usize, lo, hi)
            .await?
            .into_iter()
            .map(|p| (p.0, p.1))
            .collect();
        let mut by_project: std::collections::BTreeMap<String, Vec<(i64, Vec<f64>)>> = Default::default();
        for (project, index, p) in probs {
            if let (Some(name), Some(&t)) = (names.get(&project), ts.get(&index))
                && (from..to).contains(&t)
            {
                by_project.entry(name.clone()).or_default().push((t, vec![f64::from(p)]));
            }
        }
        v["anomaly_probability"] = by_project
            .iter()
            .map(|(name, pts)| (name.clone(), downsample::points_json(pts, from, to, p.max_points)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    Ok(Json(v))
}
