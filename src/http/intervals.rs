//! Change intervals: one series' (`/v1/series/{name}/intervals`) or every series'
//! (`/v1/intervals`), filtered and paged, each with its analyst feedback.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ErrorBody};
use super::extract::query;
use super::state::ApiState;
use crate::storage::{IntervalQuery, IntervalRow};

/// The interval listings.
pub(super) fn routes() -> axum::Router<ApiState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/v1/series/{name}/intervals", get(series_intervals))
        .route("/v1/intervals", get(all_intervals))
}

fn interval_json(series: &str, r: &IntervalRow, feedback: Option<&(String, String, i64)>) -> Value {
    json!({"series": series, "start": r.start_index, "end": r.end_index, "start_ts": r.start_ts, "end_ts": r.end_ts,
           "change_point": r.change_point, "change_ts": r.change_ts,
           "detected_at": r.detected_at, "peak_score": r.peak_score, "psi": r.psi,
           "status": if r.open { "open" } else { "closed" },
           "explanation": r.explanation.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
           "feedback": feedback.map(|(v, a, t)| json!({"verdict": v, "author": a, "at": t}))})
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

async fn render_intervals(state: &ApiState, q: IntervalQuery) -> Result<Json<Value>, ApiError> {
    let rows = state.service.storage.intervals(&q).await?;
    // Only the names on this page (a query must not cost more as series are added).
    let mut ids: Vec<i64> = rows.iter().map(|r| r.series_id).collect();
    ids.dedup();
    let names = state.service.storage.series_names(&ids).await?;
    let next = (rows.len() as i64 == q.limit)
        .then(|| rows.last().map(|r| format!("{}:{}", r.series_id, r.start_index)))
        .flatten();
    let mut feedback = std::collections::HashMap::new();
    for r in &rows {
        if let std::collections::hash_map::Entry::Vacant(e) = feedback.entry(r.series_id) {
            e.insert(state.service.storage.feedback(r.series_id).await?);
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

#[utoipa::path(get, path = "/v1/series/{name}/intervals", tag = "intervals", params(("name" = String, Path, description = "Series name"), IntervalParams), responses((status = 200, description = "Intervals [start, end) with change_point and change_ts (the change placed to the row; null for intervals stored before version 2), peak score, psi, status and explanation; `next` cursor"), (status = 400, description = "Bad query", body = ErrorBody), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn series_intervals(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    params: Result<Query<IntervalParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(params)?;
    let s = state.service.series_named(&name).await?;
    render_intervals(&state, query_of(&p, Some(s.id))?).await
}

#[utoipa::path(get, path = "/v1/intervals", tag = "intervals", params(IntervalParams), responses((status = 200, description = "Intervals across series, in (series, start) order, each with its change_point and change_ts; `next` cursor"), (status = 400, description = "Bad query", body = ErrorBody)))]
async fn all_intervals(
    State(state): State<ApiState>,
    params: Result<Query<IntervalParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(params)?;
    render_intervals(&state, query_of(&p, None)?).await
}
