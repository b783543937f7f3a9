//! The series, interval and ingest answers as types: serialised as the API's JSON bodies
//! where a handler builds them ([`SeriesView`], [`IntervalView`]), and described in the OpenAPI
//! document (`utoipa::ToSchema`) for every answer, streamed ones included ([`PointsPage`]).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::storage::{IntervalRow, SeriesRow};

/// A series with its latest change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SeriesView {
    /// Name.
    pub name: String,
    /// Values per point.
    pub dim: i64,
    /// Newest accepted timestamp (epoch ms).
    pub last_ts: Option<i64>,
    /// Points the detector had seen at its last checkpoint.
    pub points: i64,
    /// Points still stored (retention removes old ones).
    pub stored_points: i64,
    /// The stream index after the newest stored point (counts points retention removed).
    pub next_index: i64,
    /// Stream index of the first point still stored (null when none is).
    pub first_stored_index: Option<i64>,
    /// Timestamp of the first point still stored (epoch ms).
    pub first_stored_ts: Option<i64>,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
    /// Its own detector settings, if any.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Its newest change interval.
    pub latest_change: Option<LatestChange>,
}

/// A series' newest change interval, in brief.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct LatestChange {
    /// First index.
    pub start: i64,
    /// Its timestamp (epoch ms).
    pub start_ts: i64,
    /// The change placed to the row (null for intervals stored before version 2).
    pub change_point: Option<i64>,
    /// Its timestamp.
    pub change_ts: Option<i64>,
    /// `open` or `closed`.
    pub status: &'static str,
    /// Highest window score.
    pub peak_score: f64,
}

impl SeriesView {
    pub(super) fn new(s: &SeriesRow, latest: Option<&IntervalRow>) -> Self {
        Self {
            name: s.name.clone(),
            dim: s.dim,
            last_ts: s.last_ts,
            points: s.checkpoint_points,
            stored_points: s.stored_count,
            next_index: s.stored_points,
            first_stored_index: s.first_stored_index,
            first_stored_ts: s.first_stored_ts,
            created_by: s.created_by.clone(),
            updated_by: s.updated_by.clone(),
            config: s.config.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
            latest_change: latest.map(|r| LatestChange {
                start: r.start_index,
                start_ts: r.start_ts,
                change_point: r.change_point,
                change_ts: r.change_ts,
                status: if r.open { "open" } else { "closed" },
                peak_score: r.peak_score,
            }),
        }
    }
}

/// Every series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SeriesList {
    /// By name.
    pub series: Vec<SeriesView>,
}

/// A change interval `[start, end)` with its feedback.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct IntervalView {
    /// Series name.
    pub series: String,
    /// First index.
    pub start: i64,
    /// One past the last index.
    pub end: i64,
    /// Timestamp of the first point (epoch ms).
    pub start_ts: i64,
    /// Timestamp of the last point (epoch ms).
    pub end_ts: i64,
    /// The change placed to the row (null for intervals stored before version 2).
    pub change_point: Option<i64>,
    /// Its timestamp.
    pub change_ts: Option<i64>,
    /// Stream index at which it was reported.
    pub detected_at: i64,
    /// Highest window score.
    pub peak_score: f64,
    /// psi in use.
    pub psi: i64,
    /// `open` or `closed`.
    pub status: &'static str,
    /// The statistics before and during the interval (`before`, `during`: mean, sd, ...), once
    /// closed.
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<Value>,
    /// Whether its points are still stored: `stored`, `partial` (retention removed some) or
    /// `removed` (none left: the interval is kept, its data is not).
    pub data: &'static str,
    /// The analyst's verdict, if any.
    pub feedback: Option<FeedbackBrief>,
}

/// A stored verdict on an interval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct FeedbackBrief {
    /// `confirm` or `dismiss`.
    pub verdict: String,
    /// Who.
    pub author: String,
    /// When (epoch ms).
    pub at: i64,
}

impl IntervalView {
    /// `first_stored`: the series' first stored index (None: no point is stored).
    pub(super) fn new(
        series: &str,
        r: &IntervalRow,
        feedback: Option<&(String, String, i64)>,
        first_stored: Option<i64>,
    ) -> Self {
        let data = match first_stored {
            Some(f) if r.end_index <= f => "removed",
            Some(f) if r.start_index < f => "partial",
            Some(_) => "stored",
            None => "removed",
        };
        Self {
            series: series.to_owned(),
            start: r.start_index,
            end: r.end_index,
            start_ts: r.start_ts,
            end_ts: r.end_ts,
            change_point: r.change_point,
            change_ts: r.change_ts,
            detected_at: r.detected_at,
            peak_score: r.peak_score,
            psi: r.psi,
            status: if r.open { "open" } else { "closed" },
            explanation: r.explanation.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
            data,
            feedback: feedback.map(|(v, a, t)| FeedbackBrief { verdict: v.clone(), author: a.clone(), at: *t }),
        }
    }
}

/// A page of change intervals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct IntervalList {
    /// The intervals, in (series, start) order.
    pub intervals: Vec<IntervalView>,
    /// The `after` cursor of the next page, or null.
    pub next: Option<String>,
}

/// A points answer (documentation only: it is streamed). Raw: `{downsampled: false, points:
/// [[ts, [values]], ...], next}`; downsampled: `{downsampled: true, buckets: [...]}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(super) struct PointsPage {
    /// Whether the range was cut into min/max buckets.
    pub downsampled: bool,
    /// Raw points: `[ts, [values]]` each.
    #[schema(value_type = Option<Vec<Object>>)]
    pub points: Option<Vec<Value>>,
    /// Downsampled: per bucket its `from`, `to`, `count`, `min` and `max` per dimension.
    #[schema(value_type = Option<Vec<Object>>)]
    pub buckets: Option<Vec<Value>>,
    /// The `from` of the next page (raw points only), or null.
    pub next: Option<i64>,
}

/// A scores answer (documentation only): the points answer's shape over detector blocks, with
/// `columns` naming each value, and per labeling project its model's probabilities.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(super) struct ScoresAnswer {
    /// Whether the range was cut into min/max buckets.
    pub downsampled: bool,
    /// `[end_ts, [window_score, threshold, anomaly_max, anomaly_warming_up, anomaly_version]]`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub points: Option<Vec<Value>>,
    /// Downsampled buckets.
    #[schema(value_type = Option<Vec<Object>>)]
    pub buckets: Option<Vec<Value>>,
    /// The names of each point's values.
    pub columns: Vec<String>,
    /// Per project name: its model's probability per point, in the same shape.
    #[schema(value_type = Option<Object>)]
    pub anomaly_probability: Option<Value>,
}

/// An ingest answer: counts by outcome (documentation only; `summary_json` builds it).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(super) struct IngestAnswer {
    /// Messages decoded.
    pub messages: u64,
    /// Points stored.
    pub accepted: u64,
    /// Points already stored (same timestamp and values).
    pub duplicate: u64,
    /// Points older than the series' newest.
    pub late: u64,
    /// Points of another dimension than the series'.
    pub dimension_mismatch: u64,
    /// Rejected points by reason.
    #[schema(value_type = Object)]
    pub rejected: Value,
    /// The first 20 undecodable lines: `{line, message}`.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<Value>,
    /// Undecodable lines in all.
    pub errors_total: u64,
    /// Series this token may not create.
    pub refused_series: Vec<String>,
}

/// A series' detector settings after a change (documentation only).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(super) struct SeriesConfig {
    /// Series name.
    pub series: String,
    /// The settings in force.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// A reset (documentation only).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(super) struct SeriesReset {
    /// Series name.
    pub series: String,
    /// Always true.
    pub reset: bool,
}
