//! Storage of the labeling loop: projects, their rounds (the change log every instance replays),
//! labels with their undo chain, suggestions with their claims, labeling functions, model
//! versions, live anomaly probabilities and interval feedback. All SQL of the loop is here,
//! by concern: projects and their leases (this file), [`labels`] (rounds, labels, undo, veto),
//! [`suggestions`] (and their claims), [`models`] (model versions, LFs, probabilities, feedback).
//!
//! Concurrency: every change to a project runs in one transaction that first bumps the
//! project's `round` (`UPDATE … RETURNING`). On PostgreSQL that row lock orders concurrent
//! writers of one project, so the conflict checks made after it (a window labeled since the
//! writer's round, a suggestion claimed by someone else, a label already undone) see every
//! committed change; on SQLite writes are serialised by the single writer connection.

mod labels;
mod models;
mod suggestions;

use super::{Storage, StorageError};

/// A stored project.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProjectRow {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Settings and pool (JSON).
    pub spec: String,
    /// Last round.
    pub round: i64,
    /// `preparing`, `ready` or `failed`.
    pub status: String,
    /// Why preparation failed.
    pub error: Option<String>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Creator.
    pub created_by: String,
}

/// One change of a project.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoundRow {
    /// Round number (1, 2, ...).
    pub round: i64,
    /// `label`, `undo`, `veto` or `restore`.
    pub kind: String,
    /// The label or LF it concerns.
    pub target: i64,
    /// Who made it.
    pub author: String,
    /// When (epoch ms).
    pub at: i64,
}

/// A stored label.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LabelRow {
    /// Id (= the round that added it).
    pub id: i64,
    /// Series id.
    pub series_id: i64,
    /// First index of the window.
    #[sqlx(rename = "start_index")]
    pub start: i64,
    /// One past the last index.
    #[sqlx(rename = "end_index")]
    pub end: i64,
    /// One `'0'`/`'1'` per point.
    pub labels: String,
    /// Anomalous points.
    pub anomalies: i64,
    /// Author.
    pub author: String,
    /// Time (epoch ms).
    pub created_at: i64,
    /// `suggestion`, `interval` or `edit`.
    pub source: String,
    /// The label an edit replaced.
    pub replaces: Option<i64>,
    /// The suggestion it answered.
    pub suggestion_id: Option<i64>,
    /// Round that undid it.
    pub undone_round: Option<i64>,
    /// When it was undone.
    pub undone_at: Option<i64>,
    /// Who undid it.
    pub undone_by: Option<String>,
    /// Time of the window's first point (None for labels stored before migration 0006).
    pub start_ts: Option<i64>,
    /// Time of the window's last point.
    pub end_ts: Option<i64>,
}

/// A label to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLabel {
    /// Series id.
    pub series_id: i64,
    /// First index.
    pub start: i64,
    /// One past the last index.
    pub end: i64,
    /// One `'0'`/`'1'` per point.
    pub labels: String,
    /// `suggestion`, `interval` or `edit`.
    pub source: &'static str,
    /// Label this one replaces (an edit).
    pub replaces: Option<i64>,
    /// Suggestion it answers.
    pub suggestion_id: Option<i64>,
    /// Time of the window's first point.
    pub start_ts: Option<i64>,
    /// Time of the window's last point.
    pub end_ts: Option<i64>,
}

/// Why a change was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The window overlaps a label added after the round the writer saw.
    StaleRound {
        /// The newer label.
        label: i64,
        /// The project's round now.
        round: i64,
    },
    /// The suggestion is claimed by another analyst, labeled or skipped already.
    Suggestion(String),
    /// The label is not in force (already undone or replaced).
    LabelNotInForce(i64),
    /// No such label, suggestion or project.
    Missing(String),
}

/// A stored suggestion.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SuggestionRow {
    /// Id.
    pub id: i64,
    /// Round it was made for.
    pub round: i64,
    /// Rank within the round.
    pub rank: i64,
    /// Series id.
    pub series_id: i64,
    /// Window start.
    #[sqlx(rename = "start_index")]
    pub start: i64,
    /// Window end.
    #[sqlx(rename = "end_index")]
    pub end: i64,
    /// Centre index.
    pub centre: i64,
    /// Active-learning score.
    pub score: f64,
    /// Model probability at the centre.
    pub probability: f64,
    /// Score breakdown (JSON).
    pub breakdown: String,
    /// `open`, `labeled` or `skipped`.
    pub status: String,
    /// Current claim holder.
    pub claimed_by: Option<String>,
    /// Claim expiry (epoch ms).
    pub claimed_until: Option<i64>,
}

/// A labeling function as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct LfRow {
    /// LF id within the project.
    pub lf_id: i64,
    /// Kind name.
    pub kind: String,
    /// Parameters (JSON).
    pub params: String,
    /// Its statistics.
    pub stats: LfStats,
}

/// A labeling function's statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LfStats {
    /// Share of the pool it votes on.
    pub coverage: f64,
    /// Share of its votes another active LF contradicts.
    pub conflict: f64,
    /// The label model's accuracy for it.
    pub learned_accuracy: Option<f64>,
    /// Agreement with human labels.
    pub golden_accuracy: Option<f64>,
    /// Used by the label model.
    pub active: bool,
    /// Vetoed.
    pub vetoed: bool,
}

/// A stored model version (without its bytes).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelRow {
    /// Version (1, 2, ...).
    pub version: i64,
    /// Round trained at.
    pub round: i64,
    /// Labels in force then.
    pub labels: i64,
    /// Anomalous points labeled then.
    pub anomalies: i64,
    /// Metrics (JSON).
    pub metrics: String,
    /// When (epoch ms).
    pub created_at: i64,
}

const PROJECT_COLUMNS: &str = "id, name, spec, round, status, error, created_at, created_by";
const LABEL_COLUMNS: &str = "id, series_id, start_index, end_index, labels, anomalies, author, created_at, source, \
     replaces, suggestion_id, undone_round, undone_at, undone_by, start_ts, end_ts";
const SUGGESTION_COLUMNS: &str = "id, round, rank, series_id, start_index, end_index, centre, score, probability, \
     breakdown, status, claimed_by, claimed_until";

pub(super) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Opens the next `n` rounds of a project inside `tx`; returns the first of them.
pub(super) async fn open_rounds(tx: &mut Tx<'_>, project: i64, n: i64) -> Result<Option<i64>, StorageError> {
    let row: Option<(i64,)> =
        sqlx::query_as("UPDATE labeling_projects SET round = round + $1 WHERE id = $2 RETURNING round")
            .bind(n)
            .bind(project)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(last,)| last - n + 1))
}

pub(super) async fn log_round(
    tx: &mut Tx<'_>,
    project: i64,
    round: i64,
    kind: &str,
    target: i64,
    author: &str,
    now: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO labeling_rounds (project_id, round, kind, target, author, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(project)
    .bind(round)
    .bind(kind)
    .bind(target)
    .bind(author)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a label undone in `round`, if it is in force.
pub(super) async fn undo_in(
    tx: &mut Tx<'_>,
    project: i64,
    label: i64,
    round: i64,
    author: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE labeling_labels SET undone_round = $1, undone_at = $2, undone_by = $3 \
         WHERE project_id = $4 AND id = $5 AND undone_round IS NULL",
    )
    .bind(round)
    .bind(now)
    .bind(author)
    .bind(project)
    .bind(label)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Storage {
    /// Creates a project; `None` when the name is taken.
    ///
    /// # Errors
    /// A database failure.
    pub async fn create_project(
        &self,
        name: &str,
        spec: &str,
        author: &str,
        now: i64,
    ) -> Result<Option<ProjectRow>, StorageError> {
        let done = sqlx::query(
            "INSERT INTO labeling_projects (name, spec, created_at, created_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(spec)
        .bind(now)
        .bind(author)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.project_on(&self.pool, name).await
    }

    /// Projects created by `author`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn projects_created_by(&self, author: &str) -> Result<i64, StorageError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM labeling_projects WHERE created_by = $1")
            .bind(author)
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    async fn project_on(&self, pool: &sqlx::AnyPool, name: &str) -> Result<Option<ProjectRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {PROJECT_COLUMNS} FROM labeling_projects WHERE name = $1"))
            .bind(name)
            .fetch_optional(pool)
            .await?)
    }

    /// The project named `name`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn project(&self, name: &str) -> Result<Option<ProjectRow>, StorageError> {
        self.project_on(&self.read, name).await
    }

    /// Every project, by name.
    ///
    /// # Errors
    /// A database failure.
    pub async fn projects(&self) -> Result<Vec<ProjectRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {PROJECT_COLUMNS} FROM labeling_projects ORDER BY name"))
            .fetch_all(&self.read)
            .await?)
    }

    /// Records a project's preparation outcome.
    ///
    /// # Errors
    /// A database failure.
    pub async fn set_project_status(&self, id: i64, status: &str, error: Option<&str>) -> Result<(), StorageError> {
        sqlx::query("UPDATE labeling_projects SET status = $1, error = $2 WHERE id = $3")
            .bind(status)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes or renews a project's lease for `holder` until `until` when it is free, expired or
    /// already `holder`'s; returns whether `holder` has it.
    ///
    /// # Errors
    /// A database failure.
    pub async fn try_lease(&self, project: i64, holder: &str, until: i64, now: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE labeling_projects SET lease_holder = $1, lease_until = $2 WHERE id = $3 \
             AND (lease_holder IS NULL OR lease_holder = $1 OR lease_until < $4)",
        )
        .bind(holder)
        .bind(until)
        .bind(project)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease back (at shutdown), if `holder` has it.
    ///
    /// # Errors
    /// A database failure.
    pub async fn release_lease(&self, project: i64, holder: &str) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE labeling_projects SET lease_holder = NULL, lease_until = NULL WHERE id = $1 AND lease_holder = $2",
        )
        .bind(project)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Asks for a refit of the project at time `at` (epoch ms); the lease holder runs one that
    /// starts after it.
    ///
    /// # Errors
    /// A database failure.
    pub async fn request_refit(&self, project: i64, at: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE labeling_projects SET refit_requested = $1 WHERE id = $2 AND refit_requested < $1")
            .bind(at)
            .bind(project)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When a refit was last asked for (epoch ms, 0 = never).
    ///
    /// # Errors
    /// A database failure.
    pub async fn refit_requested(&self, project: i64) -> Result<i64, StorageError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT refit_requested FROM labeling_projects WHERE id = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |(at,)| at))
    }
}
