//! Series: the listing, one series, its points and scores (downsampled for charts), and its
//! administration (configure, reset, delete).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::downsample;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Time, body, query};
use super::state::ApiState;
use super::views::{PointsPage, ScoresAnswer, SeriesConfig, SeriesList, SeriesReset, SeriesView};
use crate::auth::Principal;
use crate::storage::SeriesRow;

/// The series routes.
pub(super) fn routes() -> axum::Router<ApiState> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/v1/series", get(list_series))
        .route("/v1/series/{name}", get(one_series).delete(delete_series))
        .route("/v1/series/{name}/reset", post(reset_series))
        .route("/v1/series/{name}/config", put(configure_series))
        .route("/v1/series/{name}/points", get(series_points))
        .route("/v1/series/{name}/scores", get(series_scores))
}

#[utoipa::path(get, path = "/v1/series", tag = "series", responses((status = 200, description = "Every series with its latest change", body = SeriesList)))]
async fn list_series(State(state): State<ApiState>) -> Result<Json<SeriesList>, ApiError> {
    let all = state.service.storage.list_series().await?;
    let latest = state.service.storage.latest_intervals().await?;
    Ok(Json(SeriesList { series: all.iter().map(|s| SeriesView::new(s, latest.get(&s.id))).collect() }))
}

#[utoipa::path(get, path = "/v1/series/{name}", tag = "series", params(("name" = String, Path, description = "Series name")), responses((status = 200, description = "The series", body = SeriesView), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn one_series(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<SeriesView>, ApiError> {
    let s = state.service.series_named(&name).await?;
    let latest = state.service.storage.latest_intervals().await?;
    Ok(Json(SeriesView::new(&s, latest.get(&s.id))))
}

#[utoipa::path(delete, path = "/v1/series/{name}", tag = "series", params(("name" = String, Path, description = "Series name")), responses((status = 204, description = "Deleted with everything stored for it"), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn delete_series(State(state): State<ApiState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    // The series row goes with everything stored for it; no author is kept.
    if state.service.delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no series {name:?}")))
    }
}

#[utoipa::path(post, path = "/v1/series/{name}/reset", tag = "series", params(("name" = String, Path, description = "Series name")), responses((status = 200, description = "Detector state forgotten; the next points re-warm it", body = SeriesReset), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn reset_series(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.service.reset(&name, &p.author(None)).await?;
    Ok(Json(json!({"series": name, "reset": true})))
}

#[utoipa::path(put, path = "/v1/series/{name}/config", tag = "series", params(("name" = String, Path, description = "Series name")), request_body(content = Object, description = "Any of window, hop, alpha, psi, t, warmup_windows; the rest from the defaults"), responses((status = 200, description = "The series' configuration", body = SeriesConfig), (status = 400, description = "Settings refused", body = ErrorBody), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn configure_series(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let config = state.service.configure(&name, body(b)?, &p.author(None)).await?;
    Ok(Json(json!({"series": name, "config": config})))
}

/// Range filters for points and scores.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    /// Start of the range, inclusive: epoch ms or RFC 3339 (default: the first point).
    from: Option<Time>,
    /// End of the range, exclusive: epoch ms or RFC 3339 (default: after the last point).
    to: Option<Time>,
    /// Downsample the range to about this many values (min/max buckets, so spikes survive);
    /// 2 to `http.max_points_per_page`.
    max_points: Option<usize>,
    /// Points: raw points per answer (1 to `http.max_points_per_page`, the default); the
    /// answer's `next` is the `from` of the next page.
    limit: Option<usize>,
}

/// A checked range request: the series, `[from, to)`, the downsampling bound and the page size.
struct Ranged {
    series: SeriesRow,
    from: i64,
    to: i64,
    max_points: Option<usize>,
    limit: usize,
}

/// The range routes' request: the query checked (400 `invalid_query`), then the series of the
/// path looked up (404).
impl FromRequestParts<ApiState> for Ranged {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let Path(name) = Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let params = Query::<RangeParams>::from_request_parts(parts, state).await;
        let p = query(params).map_err(IntoResponse::into_response)?;
        let (from, to) = (p.from.map_or(i64::MIN, |t| t.0), p.to.map_or(i64::MAX, |t| t.0));
        if from >= to {
            return Err(ApiError::bad_request("invalid_query", "from must be before to").into_response());
        }
        let cap = state.service.settings.http.max_points_per_page;
        if p.max_points.is_some_and(|m| m < 2 || m > cap) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("max_points must be between 2 and {cap} (http.max_points_per_page)"),
            )
            .into_response());
        }
        if p.limit.is_some_and(|l| l == 0 || l > cap) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and {cap} (http.max_points_per_page)"),
            )
            .into_response());
        }
        let series = state.service.series_named(&name).await.map_err(|e| ApiError::from(e).into_response())?;
        Ok(Ranged { series, from, to, max_points: p.max_points, limit: p.limit.unwrap_or(cap) })
    }
}

/// Stored blocks read per storage round trip while a points answer streams.
const BLOCKS_PER_READ: i64 = 8;

#[utoipa::path(get, path = "/v1/series/{name}/points", tag = "series", params(("name" = String, Path, description = "Series name"), RangeParams), responses((status = 200, description = "`{downsampled: false, points: [[ts, [values]], ...], next}` (at most `limit` points, streamed; `next`: the `from` of the next page, or null), or min/max buckets when over max_points", body = PointsPage), (status = 400, description = "Bad query", body = ErrorBody), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn series_points(State(state): State<ApiState>, r: Ranged) -> Result<Response, ApiError> {
    let storage = state.service.storage.clone();
    let (s, dim) = (&r.series, r.series.dim as usize);
    if let Some(max) = r.max_points
        && let Some((lo, hi, n)) = storage.point_span(s.id, r.from, r.to).await?
        && n > max as i64
    {
        // Every point of the range goes through the buckets, a few blocks at a time.
        let (lo, hi) = (r.from.max(lo), r.to.min(hi.saturating_add(1)));
        let mut buckets = downsample::Bucketer::new(lo, hi, max);
        let (mut after, mut count) = (-1, 0usize);
        loop {
            let page = storage.point_blocks(s.id, dim, (r.from, r.to), after, BLOCKS_PER_READ).await?;
            let Some(last) = page.last() else { break };
            after = last.0;
            for (ts, v) in page.iter().flat_map(|(_, pts)| pts) {
                if (r.from..r.to).contains(ts) {
                    buckets.push(*ts, v);
                    count += 1;
                }
            }
        }
        if count > max {
            return Ok(Json(buckets.finish()).into_response());
        }
    }
    let limit = r.max_points.map_or(r.limit, |m| m.min(r.limit));
    Ok(stream_points(storage, s.id, dim, (r.from, r.to), limit))
}

/// `{"downsampled": false, "points": [...], "next": ts|null}` written as it is read: at most
/// `limit` points of `[from, to)`, a few stored blocks at a time, so a large page costs the
/// memory of those blocks, not of the answer.
fn stream_points(storage: crate::storage::Storage, id: i64, dim: usize, range: (i64, i64), limit: usize) -> Response {
    use std::fmt::Write as _;
    struct Cursor {
        after: i64,
        sent: usize,
        done: bool,
        opened: bool,
    }
    let start = Cursor { after: -1, sent: 0, done: false, opened: false };
    let body = futures_util::stream::unfold(start, move |mut c| {
        let storage = storage.clone();
        async move {
            if c.done {
                return None;
            }
            let mut out = String::new();
            if !c.opened {
                out.push_str("{\"downsampled\":false,\"points\":[");
                c.opened = true;
            }
            let page = match storage.point_blocks(id, dim, range, c.after, BLOCKS_PER_READ).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "Streaming points failed; the answer is cut short.");
                    return Some((Err(std::io::Error::other("storage failed")), Cursor { done: true, ..c }));
                }
            };
            let mut next = None;
            for (ts, values) in page.iter().flat_map(|(_, pts)| pts).filter(|(ts, _)| (range.0..range.1).contains(ts)) {
                if c.sent == limit {
                    next = Some(*ts);
                    break;
                }
                if c.sent > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{ts},{}]", serde_json::to_string(values).unwrap_or_default());
                c.sent += 1;
            }
            match page.last() {
                Some(last) if next.is_none() => c.after = last.0,
                _ => {
                    let next = next.map_or_else(|| "null".to_owned(), |t| t.to_string());
                    let _ = write!(out, "],\"next\":{next}}}");
                    c.done = true;
                }
            }
            Some((Ok::<_, std::io::Error>(out), c))
        }
    });
    ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Body::from_stream(body)).into_response()
}

#[utoipa::path(get, path = "/v1/series/{name}/scores", tag = "series", params(("name" = String, Path, description = "Series name"), RangeParams), responses((status = 200, description = "Per detector block: window score, threshold, largest point anomaly score (calibrated: near 1 = rarer than anything in the series' recent history), anomaly_warming_up (1 while the score warms up: its 0s mean nothing), anomaly_version (1 = the window-relative score stored before version 2, 2 = calibrated); and `anomaly_probability`: per labeling project holding the series, its end model's probability per point", body = ScoresAnswer), (status = 400, description = "Bad query", body = ErrorBody), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn series_scores(
    State(state): State<ApiState>,
    Ranged { series: s, from, to, max_points, .. }: Ranged,
) -> Result<Json<Value>, ApiError> {
    let storage = &state.service.storage;
    let rows = storage.scores(s.id, from, to).await?;
    // One entry per detector block: its window score, threshold, largest point anomaly score,
    // whether the anomaly score was still warming up (1: its 0s mean nothing) and which anomaly
    // score the block holds (1: the window-relative score before migration 0005, 2: calibrated).
    let as_points: Vec<(i64, Vec<f64>)> = rows
        .iter()
        .map(|r| {
            let anomaly_max = r.anomaly.iter().copied().fold(0f32, f32::max) as f64;
            let row = vec![
                r.score.unwrap_or(f64::NAN),
                r.threshold.unwrap_or(f64::NAN),
                anomaly_max,
                f64::from(u8::from(r.warming_up)),
                r.anomaly_version as f64,
            ];
            (r.end_ts, row)
        })
        .collect();
    let mut v = downsample::points_json(&as_points, from, to, max_points);
    v["columns"] = json!(["window_score", "threshold", "anomaly_max", "anomaly_warming_up", "anomaly_version"]);
    // Per labeling project holding the series: the end model's anomaly probability per point.
    let probs = storage.probabilities(s.id, from, to).await?;
    if !probs.is_empty() {
        let names: std::collections::HashMap<i64, String> =
            storage.projects().await?.into_iter().map(|p| (p.id, p.name)).collect();
        let lo = probs.iter().map(|p| p.1).min().unwrap_or(0);
        let hi = probs.iter().map(|p| p.1).max().unwrap_or(0) + 1;
        let ts: std::collections::HashMap<i64, i64> =
            storage.points_by_index(s.id, s.dim as usize, lo, hi).await?.into_iter().map(|p| (p.0, p.1)).collect();
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
            .map(|(name, pts)| (name.clone(), downsample::points_json(pts, from, to, max_points)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    Ok(Json(v))
}
