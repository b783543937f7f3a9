//! The labeling API under `/v1/labeling` and the interval-feedback route: parse, call
//! [`crate::labeling::Labeling`], render. Bodies are checked with `deny_unknown_fields`, and
//! every refusal is a 4xx [`ApiError`] with a stable code. Authors come from the request's
//! principal (`http::auth::author`): with tokens the token's name, whatever `author` says.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::auth::author;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, body, query};
use super::state::ApiState;
use crate::auth::Principal;
use crate::labeling::views::{
    FeedbackView, LabelChange, LabelExport, LabelList, LfList, Progress, ProjectList, ProjectView, RefitState, Skipped,
    SuggestionsView, Undone, Vetoed, WindowView,
};
use crate::labeling::{LabelRequest, NewProject};

/// The labeling routes.
pub(super) fn routes() -> Router<ApiState> {
    use axum::routing::{get, post, put};
    Router::new()
        .route("/v1/labeling/projects", get(list_projects).post(create_project))
        .route("/v1/labeling/projects/{project}", get(one_project))
        .route("/v1/labeling/projects/{project}/suggestions", get(suggestions))
        .route("/v1/labeling/projects/{project}/suggestions/{id}/skip", post(skip))
        .route("/v1/labeling/projects/{project}/window", get(window))
        .route("/v1/labeling/projects/{project}/labels", get(labels).post(add_label))
        .route("/v1/labeling/projects/{project}/labels/{id}", put(edit_label).delete(undo_label))
        .route("/v1/labeling/projects/{project}/undo", post(undo_newest))
        .route("/v1/labeling/projects/{project}/lfs", get(lfs))
        .route("/v1/labeling/projects/{project}/lfs/{id}/veto", post(veto))
        .route("/v1/labeling/projects/{project}/refit", post(refit))
        .route("/v1/labeling/projects/{project}/progress", get(progress))
        .route("/v1/labeling/projects/{project}/export", get(export))
        .route("/v1/series/{name}/intervals/{start}/feedback", post(interval_feedback))
}

/// Who makes a change (open mode; with tokens the token's name is the author).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Author {
    #[serde(default)]
    author: Option<String>,
}

#[utoipa::path(get, path = "/v1/labeling/projects", tag = "labeling", responses((status = 200, description = "Every project with its status, budget, labels used and anomalies found", body = ProjectList)))]
async fn list_projects(State(state): State<ApiState>) -> Result<Json<ProjectList>, ApiError> {
    let mut projects = Vec::new();
    for p in state.service.storage.projects().await? {
        state.labeling.warm(&p);
        projects.push(state.labeling.project_view(&p).await?);
    }
    Ok(Json(ProjectList { projects }))
}

#[utoipa::path(post, path = "/v1/labeling/projects", tag = "labeling",
    request_body(content = Object, description = "`{\"name\", \"series\": [names], \"budget\"?, \"half_window\"?, \"seed\"?, \"author\"}`; series of one value per point with at least 16 stored points. The pool is each series' points as of now."),
    responses((status = 201, description = "Created; the pool is prepared in the background (`status: preparing`)", body = ProjectView), (status = 400, description = "Bad settings or series", body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody)))]
async fn create_project(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    b: Result<Json<NewProject>, JsonRejection>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let mut req = body(b)?;
    req.author = author(&p, Some(&req.author))?;
    let row = state.labeling.create(req).await?;
    Ok((StatusCode::CREATED, Json(state.labeling.project_view(&row).await?)))
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "The project", body = ProjectView), (status = 404, description = "Unknown project", body = ErrorBody)))]
async fn one_project(
    State(state): State<ApiState>,
    Path(project): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let p = state.labeling.project(&project).await?;
    state.labeling.warm(&p);
    Ok(Json(state.labeling.project_view(&p).await?))
}

/// Whose suggestions, how many.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SuggestionParams {
    /// Who the suggestions are claimed for (open mode; with tokens, the token's name).
    analyst: Option<String>,
    /// Suggestions to claim, 1 to 20 (default 5).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}/suggestions", tag = "labeling", params(("project" = String, Path, description = "Project name"), SuggestionParams),
    responses((status = 200, description = "`{round, model_version, stop, suggestions: [{id, rank, series, start, end, centre, score, probability, breakdown, claimed_by, claimed_until}]}`, claimed for the analyst; never a window another analyst holds", body = SuggestionsView),
        (status = 404, description = "Unknown project", body = ErrorBody), (status = 409, description = "Still preparing (`not_ready`) or failed", body = ErrorBody)))]
async fn suggestions(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(project): Path<String>,
    q: Result<Query<SuggestionParams>, QueryRejection>,
) -> Result<Json<SuggestionsView>, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(5);
    if !(1..=20).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 20"));
    }
    let analyst = author(&p, q.analyst.as_deref())?;
    Ok(Json(state.labeling.suggestions(&project, &analyst, limit).await?))
}

#[utoipa::path(post, path = "/v1/labeling/projects/{project}/suggestions/{id}/skip", tag = "labeling", params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "Suggestion id")),
    request_body(content = Object, description = "`{\"author\"}`"),
    responses((status = 200, description = "Skipped: not offered to anyone again", body = Skipped), (status = 404, description = "Unknown project or suggestion", body = ErrorBody), (status = 409, description = "Already labeled or skipped", body = ErrorBody)))]
async fn skip(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((project, id)): Path<(String, i64)>,
    b: Result<Json<Author>, JsonRejection>,
) -> Result<Json<Skipped>, ApiError> {
    let who = author(&p, body(b)?.author.as_deref())?;
    Ok(Json(state.labeling.skip(&project, id, &who).await?))
}

/// The window `[start, end)` of `series`, with `context` points either side (default 200, at
/// most 5000).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WindowParams {
    /// Series name (one of the project's).
    series: String,
    /// Window start (pool index).
    start: i64,
    /// Window end, exclusive (pool index).
    end: i64,
    /// Points of context either side, 0 to 5000 (default 200).
    context: Option<i64>,
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}/window", tag = "labeling", params(("project" = String, Path, description = "Project name"), WindowParams),
    responses((status = 200, description = "Per point of [from, to): index, ts, value, probability, seeds (scaled score per seed detector), votes (anomaly/normal counts of the active LFs), labels (-1 unlabeled, 0 normal, 1 anomaly)", body = WindowView),
        (status = 400, description = "Window outside the pool", body = ErrorBody), (status = 404, description = "Unknown project or series", body = ErrorBody)))]
async fn window(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    q: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<WindowView>, ApiError> {
    let q = query(q)?;
    Ok(Json(state.labeling.window(&project, &q.series, q.start, q.end, q.context.unwrap_or(200)).await?))
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}/labels", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Every label, newest first, with author, time, source, the label it replaces and whether it is in force", body = LabelList), (status = 404, description = "Unknown project", body = ErrorBody)))]
async fn labels(State(state): State<ApiState>, Path(project): Path<String>) -> Result<Json<LabelList>, ApiError> {
    Ok(Json(state.labeling.labels(&project).await?))
}

#[utoipa::path(post, path = "/v1/labeling/projects/{project}/labels", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    request_body(content = Object, description = "`{\"author\", \"round\", \"suggestion\"?, \"series\", \"start\", \"end\", \"anomalies\": [[a, b], ...]}`: every point of [start, end) outside the anomalous ranges is labeled normal"),
    responses((status = 201, description = "`{label, round}`", body = LabelChange), (status = 400, description = "Ranges outside the window, a window outside the pool, an unknown round", body = ErrorBody),
        (status = 404, description = "Unknown project, series or suggestion", body = ErrorBody),
        (status = 409, description = "`stale_round`: the window overlaps a label made after your round; `suggestion_taken`: claimed by someone else, labeled or skipped", body = ErrorBody)))]
async fn add_label(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(project): Path<String>,
    b: Result<Json<LabelRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<LabelChange>), ApiError> {
    let mut req = body(b)?;
    req.author = author(&p, Some(&req.author))?;
    Ok((StatusCode::CREATED, Json(state.labeling.label(&project, req).await?)))
}

/// An edit: new anomalous ranges for the same window.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Edit {
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    anomalies: Vec<[i64; 2]>,
}

#[utoipa::path(put, path = "/v1/labeling/projects/{project}/labels/{id}", tag = "labeling", params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "Label id")),
    request_body(content = Object, description = "`{\"author\", \"anomalies\": [[a, b], ...]}`"),
    responses((status = 200, description = "The new label, which replaces the old one", body = LabelChange), (status = 400, description = "Ranges outside the window", body = ErrorBody), (status = 404, description = "Unknown label", body = ErrorBody), (status = 409, description = "`stale_label`: no longer in force", body = ErrorBody)))]
async fn edit_label(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((project, id)): Path<(String, i64)>,
    b: Result<Json<Edit>, JsonRejection>,
) -> Result<Json<LabelChange>, ApiError> {
    let e = body(b)?;
    let who = author(&p, e.author.as_deref())?;
    Ok(Json(state.labeling.edit(&project, id, &who, &e.anomalies).await?))
}

/// Who undoes (open mode; with tokens, the token's name).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuthorParam {
    /// Who undoes (open mode; with tokens, the token's name).
    author: Option<String>,
}

#[utoipa::path(delete, path = "/v1/labeling/projects/{project}/labels/{id}", tag = "labeling", params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "Label id"), AuthorParam),
    responses((status = 200, description = "Undone", body = Undone), (status = 404, description = "Unknown label", body = ErrorBody), (status = 409, description = "Already undone", body = ErrorBody)))]
async fn undo_label(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((project, id)): Path<(String, i64)>,
    q: Result<Query<AuthorParam>, QueryRejection>,
) -> Result<Json<Undone>, ApiError> {
    let who = author(&p, query(q)?.author.as_deref())?;
    Ok(Json(state.labeling.undo(&project, Some(id), &who).await?))
}

#[utoipa::path(post, path = "/v1/labeling/projects/{project}/undo", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    request_body(content = Object, description = "`{\"author\"}`"),
    responses((status = 200, description = "The author's newest label in force, undone", body = Undone), (status = 404, description = "Nothing to undo", body = ErrorBody)))]
async fn undo_newest(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(project): Path<String>,
    b: Result<Json<Author>, JsonRejection>,
) -> Result<Json<Undone>, ApiError> {
    let who = author(&p, body(b)?.author.as_deref())?;
    Ok(Json(state.labeling.undo(&project, None, &who).await?))
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}/lfs", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Labeling functions: kind, the labels they were built from, coverage, positives, conflict, learned and golden accuracy, active, vetoed", body = LfList), (status = 404, description = "Unknown project", body = ErrorBody)))]
async fn lfs(State(state): State<ApiState>, Path(project): Path<String>) -> Result<Json<LfList>, ApiError> {
    Ok(Json(state.labeling.lfs(&project).await?))
}

/// A veto (`vetoed: true`) or a restore.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Veto {
    #[serde(default)]
    author: Option<String>,
    #[serde(default = "yes")]
    vetoed: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/v1/labeling/projects/{project}/lfs/{id}/veto", tag = "labeling", params(("project" = String, Path, description = "Project name"), ("id" = i64, Path, description = "LF id")),
    request_body(content = Object, description = "`{\"author\", \"vetoed\": true|false}`"),
    responses((status = 200, description = "The LF", body = Vetoed), (status = 404, description = "Unknown LF", body = ErrorBody)))]
async fn veto(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((project, id)): Path<(String, i64)>,
    b: Result<Json<Veto>, JsonRejection>,
) -> Result<Json<Vetoed>, ApiError> {
    let v = body(b)?;
    let who = author(&p, v.author.as_deref())?;
    Ok(Json(state.labeling.veto(&project, id, v.vetoed, &who).await?))
}

#[utoipa::path(post, path = "/v1/labeling/projects/{project}/refit", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    request_body(content = Object, description = "`{\"author\"}`"),
    responses((status = 202, description = "Queued; the project's lease holder fits in the background and the API keeps answering", body = RefitState), (status = 404, description = "Unknown project", body = ErrorBody)))]
async fn refit(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(project): Path<String>,
    b: Result<Json<Author>, JsonRejection>,
) -> Result<(StatusCode, Json<RefitState>), ApiError> {
    author(&p, body(b)?.author.as_deref())?;
    Ok((StatusCode::ACCEPTED, Json(state.labeling.request_refit(&project).await?)))
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}/progress", tag = "labeling", params(("project" = String, Path, description = "Project name")),
    responses((status = 200, description = "Labels used, budget, anomalies found, model version, refit state and the metric curve over model versions (ap_labels, ap_new_labels: the previous model on labels it never saw, ap_seed_best, ap_label_model)", body = Progress), (status = 404, description = "Unknown project", body = ErrorBody)))]
async fn progress(State(state): State<ApiState>, Path(project): Path<String>) -> Result<Json<Progress>, ApiError> {
    Ok(Json(state.labeling.progress(&project).await?))
}

/// The export's format.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    /// `json` (default) or `csv` (a header line, then one line per run, as a download).
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/labeling/projects/{project}/export", tag = "labeling", params(("project" = String, Path, description = "Project name"), ExportParams),
    responses((status = 200, description = "Every label in force as runs of anomalous and normal points: series, start and end row (half-open), start_ts and end_ts (first and last point), label, author, source, created_at. CSV: the same columns, `text/csv`.", body = LabelExport),
        (status = 400, description = "Unknown format", body = ErrorBody), (status = 404, description = "Unknown project", body = ErrorBody), (status = 409, description = "Still preparing", body = ErrorBody)))]
async fn export(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    q: Result<Query<ExportParams>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let format = query(q)?.format.unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv") {
        return Err(ApiError::bad_request("invalid_query", format!("format must be json or csv, not {format:?}")));
    }
    let export = state.labeling.export(&project).await?;
    if format == "json" {
        return Ok(Json(export).into_response());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let cell = |v: Option<i64>| v.map_or_else(String::new, |x| x.to_string());
    let header =
        ["label_id", "series", "start", "end", "start_ts", "end_ts", "label", "author", "source", "created_at"];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for r in &export.labels {
        rows.push(vec![
            r.label_id.to_string(),
            r.series.clone(),
            r.start.to_string(),
            r.end.to_string(),
            cell(r.start_ts),
            cell(r.end_ts),
            r.label.to_owned(),
            r.author.clone(),
            r.source.clone(),
            r.created_at.to_string(),
        ]);
    }
    for row in rows {
        w.write_record(&row).map_err(ApiError::internal)?;
    }
    let bytes = w.into_inner().map_err(ApiError::internal)?;
    // A file name of the project's letters and digits only (it goes into a header).
    let safe: String = project.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe}-labels.csv\"")),
        ],
        bytes,
    )
        .into_response())
}

/// A verdict on a change interval.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Feedback {
    #[serde(default)]
    author: Option<String>,
    verdict: String,
    /// Also label the interval in every ready project holding it (default: triage only).
    #[serde(default)]
    label: bool,
}

#[utoipa::path(post, path = "/v1/series/{name}/intervals/{start}/feedback", tag = "intervals", params(("name" = String, Path, description = "Series name"), ("start" = i64, Path, description = "The interval's start index")),
    request_body(content = Object, description = "`{\"author\", \"verdict\": \"confirm\"|\"dismiss\", \"label\"?: false}`: a verdict is triage; with `label: true` it also becomes a label (anomalous for confirm, normal for dismiss) in every ready project holding the interval"),
    responses((status = 200, description = "Stored, with the labels it made (none unless `label: true`)", body = FeedbackView), (status = 400, description = "Bad verdict", body = ErrorBody), (status = 404, description = "Unknown series or interval", body = ErrorBody)))]
async fn interval_feedback(
    State(state): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((name, start)): Path<(String, i64)>,
    b: Result<Json<Feedback>, JsonRejection>,
) -> Result<Json<FeedbackView>, ApiError> {
    let f = body(b)?;
    let who = author(&p, f.author.as_deref())?;
    Ok(Json(state.labeling.interval_feedback(&name, start, &f.verdict, &who, f.label).await?))
}
