//! What the labeling loop answers: typed views, serialised as the API's JSON bodies and
//! described in the OpenAPI document (`utoipa::ToSchema`).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::storage::LfStats;

/// A project as listed: settings, status and counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectView {
    /// Unique name.
    pub name: String,
    /// The pool's series with their pooled points.
    pub series: Vec<PoolSeries>,
    /// Window budget.
    pub budget: usize,
    /// Half-width of a suggested window.
    pub half_window: usize,
    /// `preparing`, `ready` or `failed` (as stored).
    pub status: String,
    /// `ready`, `failed`, `preparing` or `not_loaded` on the instance that answers.
    pub status_here: &'static str,
    /// Why preparation failed.
    pub error: Option<String>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Creator.
    pub created_by: String,
    /// Labels in force.
    pub labels_used: usize,
    /// Anomalous points labeled (labels in force).
    pub anomalies_found: i64,
    /// Newest stored model version (0 = none).
    pub model_version: i64,
    /// The project's round.
    pub round: i64,
    /// While the pool is being prepared (here or on the instance that answers): about how long
    /// preparing takes in all, from its size (ms; measured one-core cost per point), else null.
    pub prepare_estimate_ms: Option<i64>,
}

/// One series of a project's pool.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolSeries {
    /// Series name.
    pub name: String,
    /// Points in the pool.
    pub points: i64,
}

/// Every project.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectList {
    /// Projects by name.
    pub projects: Vec<ProjectView>,
}

/// A round's suggestions, claimed for the analyst who asked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuggestionsView {
    /// The round they were made for.
    pub round: i64,
    /// The model version they were ranked with.
    pub model_version: i64,
    /// Why the loop stops suggesting (`budget`, `stable`, `no_candidate`), if it does.
    pub stop: Option<&'static str>,
    /// The suggestions, by rank.
    pub suggestions: Vec<SuggestionView>,
}

/// One suggested window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuggestionView {
    /// Suggestion id.
    pub id: i64,
    /// Round it was made for.
    pub round: i64,
    /// Rank within the round.
    pub rank: i64,
    /// Series name.
    pub series: String,
    /// Window start.
    pub start: i64,
    /// Window end (exclusive).
    pub end: i64,
    /// The ranked centre.
    pub centre: i64,
    /// Active-learning score.
    pub score: f64,
    /// The model's probability at the centre.
    pub probability: f64,
    /// The score's five terms.
    #[schema(value_type = Object)]
    pub breakdown: Value,
    /// `open`, `labeled` or `skipped`.
    pub status: String,
    /// Who holds the claim.
    pub claimed_by: Option<String>,
    /// Until when (epoch ms).
    pub claimed_until: Option<i64>,
}

/// A window with context, per point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowView {
    /// Series name.
    pub series: String,
    /// Window start.
    pub start: i64,
    /// Window end (exclusive).
    pub end: i64,
    /// First point shown (with context).
    pub from: i64,
    /// One past the last point shown.
    pub to: i64,
    /// Index per point.
    pub index: Vec<i64>,
    /// Timestamp per point (epoch ms).
    pub ts: Vec<i64>,
    /// Value per point.
    pub value: Vec<f64>,
    /// The model's probability per point.
    pub probability: Vec<f64>,
    /// Per seed detector, its scaled score per point.
    #[schema(value_type = Object)]
    pub seeds: serde_json::Map<String, Value>,
    /// The active LFs' votes per point.
    pub votes: Votes,
    /// Per point: -1 unlabeled, 0 normal, 1 anomaly.
    pub labels: Vec<i64>,
    /// The round the session is at.
    pub round: i64,
    /// The installed model version.
    pub model_version: i64,
}

/// Anomaly and normal vote counts per point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Votes {
    /// Anomaly votes.
    pub anomaly: Vec<u32>,
    /// Normal votes.
    pub normal: Vec<u32>,
}

/// A stored label.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabelView {
    /// Label id.
    pub id: i64,
    /// Series name.
    pub series: String,
    /// Window start.
    pub start: i64,
    /// Window end (exclusive).
    pub end: i64,
    /// Time of the window's first point (epoch ms).
    pub start_ts: Option<i64>,
    /// Time of the window's last point (epoch ms).
    pub end_ts: Option<i64>,
    /// Anomalous ranges `[a, b)`.
    pub anomalies: Vec<[i64; 2]>,
    /// Anomalous points.
    pub anomalous_points: i64,
    /// Author.
    pub author: String,
    /// Time (epoch ms).
    pub created_at: i64,
    /// `suggestion`, `free` (a window nobody suggested), `interval` or `edit`.
    pub source: String,
    /// The label an edit replaced.
    pub replaces: Option<i64>,
    /// The suggestion it answered.
    pub suggestion: Option<i64>,
    /// When it was undone.
    pub undone_at: Option<i64>,
    /// Who undid it.
    pub undone_by: Option<String>,
    /// Whether it is in force.
    pub in_force: bool,
}

/// A new or edited label and the round it made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabelChange {
    /// The label.
    pub label: LabelView,
    /// The project's round after it.
    pub round: i64,
}

/// An undone label and the round it made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Undone {
    /// The label, now undone.
    pub undone: LabelView,
    /// The project's round after it.
    pub round: i64,
}

/// Every label, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabelList {
    /// The labels.
    pub labels: Vec<LabelView>,
}

/// A skipped suggestion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Skipped {
    /// Its id.
    pub skipped: i64,
}

/// A labeling function with its statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LfView {
    /// LF id.
    pub id: i64,
    /// Full name (`kind:detail`).
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Stored label ids it was built from.
    pub from_labels: Vec<i64>,
    /// Positive examples it was built from.
    #[schema(value_type = Object)]
    pub positives: Value,
    /// Coverage, conflict, learned and golden accuracy, active, vetoed (flattened into the LF).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub stats: LfStats,
}

/// Every LF as of a round.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LfList {
    /// The round.
    pub round: i64,
    /// The LFs.
    pub lfs: Vec<LfView>,
}

/// The LF after a veto or a restore (null when it is gone).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Vetoed {
    /// The LF.
    pub lf: Option<LfView>,
}

/// A refit request's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefitState {
    /// `queued` or `running`.
    pub refit: &'static str,
}

/// Labels, anomalies, the model versions' metric curve and the refit state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    /// Labels in force.
    pub labels_used: usize,
    /// Windows labeled (= labels in force).
    pub windows_labeled: usize,
    /// Window budget.
    pub budget: usize,
    /// Anomalous points labeled.
    pub anomalies_found: usize,
    /// The round the session is at.
    pub round: i64,
    /// The installed model version.
    pub model_version: i64,
    /// `running` or `idle`.
    pub refit: &'static str,
    /// Per model version: its stored metrics with `version`, `round`, `labels`, `anomalies`,
    /// `created_at`.
    #[schema(value_type = Vec<Object>)]
    pub curve: Vec<Value>,
}

/// A verdict on a change interval and the labels it made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedbackView {
    /// Series name.
    pub series: String,
    /// The interval's start index.
    pub start: i64,
    /// The verdict as stored.
    pub feedback: Verdict,
    /// With `label: true`, a label per ready project holding the interval (else none).
    pub labels: Vec<ProjectLabel>,
}

/// A stored verdict.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verdict {
    /// `confirm` or `dismiss`.
    pub verdict: String,
    /// Who.
    pub author: String,
    /// When (epoch ms).
    pub at: i64,
}

/// A label made in a project.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectLabel {
    /// Project name.
    pub project: String,
    /// Label id.
    pub label: i64,
}

/// One row of a label export: a run of one label's points that share a verdict.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportRow {
    /// The label's id.
    pub label_id: i64,
    /// Series name.
    pub series: String,
    /// First row of the run.
    pub start: i64,
    /// One past its last row.
    pub end: i64,
    /// Time of its first point (epoch ms).
    pub start_ts: Option<i64>,
    /// Time of its last point (epoch ms).
    pub end_ts: Option<i64>,
    /// `anomaly` or `normal`.
    pub label: &'static str,
    /// Who labeled.
    pub author: String,
    /// `suggestion`, `interval` or `edit`.
    pub source: String,
    /// When (epoch ms).
    pub created_at: i64,
}

/// Every label in force of a project, as runs of anomalous and normal points.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabelExport {
    /// Project name.
    pub project: String,
    /// The runs, by series and start.
    pub labels: Vec<ExportRow>,
}
