//! Change intervals: one series' (`/v1/series/{name}/intervals`) or every series'
//! (`/v1/intervals`), filtered and paged, each with its analyst feedback.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Time, query};
use super::state::ApiState;
use super::views::{IntervalList, IntervalView};
use crate::storage::IntervalQuery;

/// The interval listings.
pub(super) fn routes() -> axum::Router<ApiState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/v1/series/{name}/intervals", get(series_intervals))
        .route("/v1/intervals", get(all_intervals))
}

/// Interval filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IntervalParams {
    /// `open` or `closed` (default both).
    status: Option<String>,
    /// Intervals starting at or after this time: epoch ms or RFC 3339.
    since: Option<Time>,
    /// Intervals overlapping `[from, to)`: its start, epoch ms or RFC 3339.
    from: Option<Time>,
    /// Intervals overlapping `[from, to)`: its end, epoch ms or RFC 3339.
    to: Option<Time>,
    /// Intervals per page, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// Intervals whose peak score is at least this.
    min_score: Option<f64>,
    /// `confirm` or `dismiss`: intervals with that verdict; `none`: intervals without one.
    verdict: Option<String>,
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
    if let Some(v) = p.verdict.as_deref()
        && !matches!(v, "confirm" | "dismiss" | "none")
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("verdict must be confirm, dismiss or none, not {v:?}"),
        ));
    }
    if p.min_score.is_some_and(|m| !m.is_finite()) {
        return Err(ApiError::bad_request("invalid_query", "min_score must be a finite number"));
    }
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
    Ok(IntervalQuery {
        series_id,
        open,
        from_ts: p.from.map(|t| t.0),
        to_ts: p.to.map(|t| t.0),
        since: p.since.map(|t| t.0),
        after,
        min_score: p.min_score,
        verdict: p.verdict.clone(),
        limit,
    })
}

async fn render_intervals(state: &ApiState, q: IntervalQuery) -> Result<Json<IntervalList>, ApiError> {
    let rows = state.service.storage.intervals(&q).await?;
    // Only the names on this page (a query must not cost more as series are added).
    let mut ids: Vec<i64> = rows.iter().map(|r| r.series_id).collect();
    ids.dedup();
    let names = state.service.storage.series_names(&ids).await?;
    let next = (rows.len() as i64 == q.limit)
        .then(|| rows.last().map(|r| format!("{}:{}", r.series_id, r.start_index)))
        .flatten();
    let mut feedback = std::collections::HashMap::new();
    let mut first_stored = std::collections::HashMap::new();
    for r in &rows {
        if let std::collections::hash_map::Entry::Vacant(e) = feedback.entry(r.series_id) {
            e.insert(state.service.storage.feedback(r.series_id).await?);
            first_stored.insert(r.series_id, state.service.storage.first_stored_index(r.series_id).await?);
        }
    }
    let intervals = rows
        .iter()
        .map(|r| {
            let fb = feedback.get(&r.series_id).and_then(|f| f.get(&r.start_index));
            let first = first_stored.get(&r.series_id).copied().flatten();
            IntervalView::new(names.get(&r.series_id).map_or("", String::as_str), r, fb, first)
        })
        .collect();
    Ok(Json(IntervalList { intervals, next }))
}

#[utoipa::path(get, path = "/v1/series/{name}/intervals", tag = "intervals", params(("name" = String, Path, description = "Series name"), IntervalParams), responses((status = 200, description = "Intervals [start, end) with change_point and change_ts (the change placed to the row; null for intervals stored before version 2), peak score, psi, status and explanation; `next` cursor", body = IntervalList), (status = 400, description = "Bad query", body = ErrorBody), (status = 404, description = "Unknown series", body = ErrorBody)))]
async fn series_intervals(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    params: Result<Query<IntervalParams>, QueryRejection>,
) -> Result<Json<IntervalList>, ApiError> {
    let p = query(params)?;
    let s = state.service.series_named(&name).await?;
    render_intervals(&state, query_of(&p, Some(s.id))?).await
}

#[utoipa::path(get, path = "/v1/intervals", tag = "intervals", params(IntervalParams), responses((status = 200, description = "Intervals across series, in (series, start) order, each with its change_point and change_ts; `next` cursor", body = IntervalList), (status = 400, description = "Bad query", body = ErrorBody)))]
async fn all_intervals(
    State(state): State<ApiState>,
    params: Result<Query<IntervalParams>, QueryRejection>,
) -> Result<Json<IntervalList>, ApiError> {
    let p = query(params)?;
    render_intervals(&state, query_of(&p, None)?).await
}
