//! Storage of the labeling loop: projects, their rounds (the change log every instance replays),
//! labels with their undo chain, suggestions with their claims, labeling functions, model
//! versions, live anomaly probabilities and interval feedback. All SQL of the loop is here.
//!
//! Concurrency: every change to a project runs in one transaction that first bumps the
//! project's `round` (`UPDATE … RETURNING`). On PostgreSQL that row lock orders concurrent
//! writers of one project, so the conflict checks made after it (a window labeled since the
//! writer's round, a suggestion claimed by someone else, a label already undone) see every
//! committed change; on SQLite writes are serialised by the single writer connection.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Storage, StorageError};

/// A stored project.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// Id (= the round that added it).
    pub id: i64,
    /// Series id.
    pub series_id: i64,
    /// First index of the window.
    pub start: i64,
    /// One past the last index.
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
#[derive(Debug, Clone, PartialEq)]
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
    pub start: i64,
    /// Window end.
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
#[derive(Debug, Clone, PartialEq)]
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
     replaces, suggestion_id, undone_round, undone_at, undone_by";
const SUGGESTION_COLUMNS: &str = "id, round, rank, series_id, start_index, end_index, centre, score, probability, \
     breakdown, status, claimed_by, claimed_until";

fn project_row(r: &AnyRow) -> Result<ProjectRow, StorageError> {
    Ok(ProjectRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        spec: r.try_get(2)?,
        round: r.try_get(3)?,
        status: r.try_get(4)?,
        error: r.try_get(5)?,
        created_at: r.try_get(6)?,
        created_by: r.try_get(7)?,
    })
}

fn label_row(r: &AnyRow) -> Result<LabelRow, StorageError> {
    Ok(LabelRow {
        id: r.try_get(0)?,
        series_id: r.try_get(1)?,
        start: r.try_get(2)?,
        end: r.try_get(3)?,
        labels: r.try_get(4)?,
        anomalies: r.try_get(5)?,
        author: r.try_get(6)?,
        created_at: r.try_get(7)?,
        source: r.try_get(8)?,
        replaces: r.try_get(9)?,
        suggestion_id: r.try_get(10)?,
        undone_round: r.try_get(11)?,
        undone_at: r.try_get(12)?,
        undone_by: r.try_get(13)?,
    })
}

fn suggestion_row(r: &AnyRow) -> Result<SuggestionRow, StorageError> {
    Ok(SuggestionRow {
        id: r.try_get(0)?,
        round: r.try_get(1)?,
        rank: r.try_get(2)?,
        series_id: r.try_get(3)?,
        start: r.try_get(4)?,
        end: r.try_get(5)?,
        centre: r.try_get(6)?,
        score: r.try_get(7)?,
        probability: r.try_get(8)?,
        breakdown: r.try_get(9)?,
        status: r.try_get(10)?,
        claimed_by: r.try_get(11)?,
        claimed_until: r.try_get(12)?,
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Opens the next `n` rounds of a project inside `tx`; returns the first of them.
async fn open_rounds(tx: &mut Tx<'_>, project: i64, n: i64) -> Result<Option<i64>, StorageError> {
    let row = sqlx::query("UPDATE labeling_projects SET round = round + $1 WHERE id = $2 RETURNING round")
        .bind(n)
        .bind(project)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.map(|last| last - n + 1))
}

async fn log_round(
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
async fn undo_in(
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

    async fn project_on(&self, pool: &sqlx::AnyPool, name: &str) -> Result<Option<ProjectRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM labeling_projects WHERE name = $1"))
            .bind(name)
            .fetch_optional(pool)
            .await?;
        row.map(|r| project_row(&r)).transpose()
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
        let rows = sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM labeling_projects ORDER BY name"))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(project_row).collect()
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
        let row = sqlx::query("SELECT refit_requested FROM labeling_projects WHERE id = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    /// The project's rounds after `after`, in order.
    ///
    /// # Errors
    /// A database failure.
    pub async fn rounds_after(&self, project: i64, after: i64) -> Result<Vec<RoundRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT round, kind, target, author, at FROM labeling_rounds WHERE project_id = $1 AND round > $2 ORDER BY round",
        )
        .bind(project)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RoundRow {
                    round: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    target: r.try_get(2)?,
                    author: r.try_get(3)?,
                    at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Every label of a project (undone ones too), oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn labels(&self, project: i64) -> Result<Vec<LabelRow>, StorageError> {
        let rows =
            sqlx::query(&format!("SELECT {LABEL_COLUMNS} FROM labeling_labels WHERE project_id = $1 ORDER BY id"))
                .bind(project)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(label_row).collect()
    }

    /// One label.
    ///
    /// # Errors
    /// A database failure.
    pub async fn label(&self, project: i64, id: i64) -> Result<Option<LabelRow>, StorageError> {
        let row =
            sqlx::query(&format!("SELECT {LABEL_COLUMNS} FROM labeling_labels WHERE project_id = $1 AND id = $2"))
                .bind(project)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| label_row(&r)).transpose()
    }

    /// Adds a label in a new round (an edit: undoes the replaced label in one round and adds
    /// the new one in the next). `seen_round`: the round the author's view was at; a window
    /// overlapping a label added after it is refused as stale. Returns the label.
    ///
    /// # Errors
    /// A database failure; `Ok(Err(conflict))` when refused (nothing written).
    pub async fn add_label(
        &self,
        project: i64,
        label: &NewLabel,
        author: &str,
        seen_round: Option<i64>,
        now: i64,
    ) -> Result<Result<LabelRow, Conflict>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let rounds = if label.replaces.is_some() { 2 } else { 1 };
        let Some(first) = open_rounds(&mut tx, project, rounds).await? else {
            return Ok(Err(Conflict::Missing("project".into())));
        };
        if let Some(seen) = seen_round {
            let newer = sqlx::query(
                "SELECT id FROM labeling_labels WHERE project_id = $1 AND series_id = $2 AND start_index < $3 \
                 AND end_index > $4 AND (id > $5 OR undone_round > $5) ORDER BY id DESC LIMIT 1",
            )
            .bind(project)
            .bind(label.series_id)
            .bind(label.end)
            .bind(label.start)
            .bind(seen)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = newer {
                return Ok(Err(Conflict::StaleRound { label: r.try_get(0)?, round: first - 1 }));
            }
        }
        if let Some(s) = label.suggestion_id {
            let row = sqlx::query(&format!(
                "SELECT {SUGGESTION_COLUMNS} FROM labeling_suggestions WHERE project_id = $1 AND id = $2"
            ))
            .bind(project)
            .bind(s)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(Err(Conflict::Missing(format!("suggestion {s}")))) };
            let row = suggestion_row(&row)?;
            if row.status != "open" {
                return Ok(Err(Conflict::Suggestion(format!("suggestion {s} is already {}", row.status))));
            }
            if let (Some(by), Some(until)) = (&row.claimed_by, row.claimed_until)
                && by != author
                && until > now
            {
                return Ok(Err(Conflict::Suggestion(format!("suggestion {s} is claimed by {by}"))));
            }
            sqlx::query("UPDATE labeling_suggestions SET status = 'labeled' WHERE id = $1")
                .bind(s)
                .execute(&mut *tx)
                .await?;
        }
        let mut id = first;
        if let Some(old) = label.replaces {
            if !undo_in(&mut tx, project, old, first, author, now).await? {
                return Ok(Err(Conflict::LabelNotInForce(old)));
            }
            log_round(&mut tx, project, first, "undo", old, author, now).await?;
            id = first + 1;
        }
        let anomalies = label.labels.bytes().filter(|&b| b == b'1').count() as i64;
        sqlx::query(
            "INSERT INTO labeling_labels (project_id, id, series_id, start_index, end_index, labels, anomalies, author, \
             created_at, source, replaces, suggestion_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(project)
        .bind(id)
        .bind(label.series_id)
        .bind(label.start)
        .bind(label.end)
        .bind(&label.labels)
        .bind(anomalies)
        .bind(author)
        .bind(now)
        .bind(label.source)
        .bind(label.replaces)
        .bind(label.suggestion_id)
        .execute(&mut *tx)
        .await?;
        log_round(&mut tx, project, id, "label", id, author, now).await?;
        tx.commit().await?;
        Ok(self.label(project, id).await?.ok_or_else(|| Conflict::Missing(format!("label {id}"))))
    }

    /// Undoes a label in force, in a new round; returns the undone label.
    ///
    /// # Errors
    /// A database failure; `Ok(Err(conflict))` when the label is unknown or not in force.
    pub async fn undo_label(
        &self,
        project: i64,
        label: i64,
        author: &str,
        now: i64,
    ) -> Result<Result<LabelRow, Conflict>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let Some(round) = open_rounds(&mut tx, project, 1).await? else {
            return Ok(Err(Conflict::Missing("project".into())));
        };
        if !undo_in(&mut tx, project, label, round, author, now).await? {
            let exists = sqlx::query("SELECT 1 FROM labeling_labels WHERE project_id = $1 AND id = $2")
                .bind(project)
                .bind(label)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Ok(Err(if exists {
                Conflict::LabelNotInForce(label)
            } else {
                Conflict::Missing(format!("label {label}"))
            }));
        }
        log_round(&mut tx, project, round, "undo", label, author, now).await?;
        tx.commit().await?;
        Ok(self.label(project, label).await?.ok_or_else(|| Conflict::Missing(format!("label {label}"))))
    }

    /// The newest label in force that `author` made.
    ///
    /// # Errors
    /// A database failure.
    pub async fn newest_label_of(&self, project: i64, author: &str) -> Result<Option<i64>, StorageError> {
        let row = sqlx::query(
            "SELECT id FROM labeling_labels WHERE project_id = $1 AND author = $2 AND undone_round IS NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(project)
        .bind(author)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Vetoes or restores an LF in a new round; returns the round.
    ///
    /// # Errors
    /// A database failure; `None` for an unknown project.
    pub async fn veto_lf(
        &self,
        project: i64,
        lf: i64,
        vetoed: bool,
        author: &str,
        now: i64,
    ) -> Result<Option<i64>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let Some(round) = open_rounds(&mut tx, project, 1).await? else { return Ok(None) };
        log_round(&mut tx, project, round, if vetoed { "veto" } else { "restore" }, lf, author, now).await?;
        sqlx::query("UPDATE labeling_lfs SET vetoed = $1 WHERE project_id = $2 AND lf_id = $3")
            .bind(i64::from(vetoed))
            .bind(project)
            .bind(lf)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(round))
    }

    /// Stores a round's suggestions. A window already suggested in this round keeps its row (id,
    /// status, claim) and takes the new rank, figures and time, so a round's suggestions after a
    /// refit are the new model's (see [`Storage::suggestions`]).
    ///
    /// # Errors
    /// A database failure.
    pub async fn save_suggestions(&self, project: i64, rows: &[SuggestionRow], now: i64) -> Result<(), StorageError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for s in rows {
            sqlx::query(
                "INSERT INTO labeling_suggestions (project_id, round, rank, series_id, start_index, end_index, centre, \
                 score, probability, breakdown, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (project_id, round, series_id, start_index) DO UPDATE SET rank = excluded.rank, \
                 end_index = excluded.end_index, centre = excluded.centre, score = excluded.score, \
                 probability = excluded.probability, breakdown = excluded.breakdown, \
                 created_at = CASE WHEN excluded.created_at > labeling_suggestions.created_at \
                 THEN excluded.created_at ELSE labeling_suggestions.created_at END",
            )
            .bind(project)
            .bind(s.round)
            .bind(s.rank)
            .bind(s.series_id)
            .bind(s.start)
            .bind(s.end)
            .bind(s.centre)
            .bind(s.score)
            .bind(s.probability)
            .bind(&s.breakdown)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The suggestions of a round saved (or saved again) at `since` or later, by rank: a round's
    /// suggestions are saved again by every request, so this is the newest model's list, without
    /// the windows an older model of the same round suggested. (Without the filter those came
    /// back interleaved at equal ranks, in an order PostgreSQL does not keep stable.)
    ///
    /// # Errors
    /// A database failure.
    pub async fn suggestions(&self, project: i64, round: i64, since: i64) -> Result<Vec<SuggestionRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUGGESTION_COLUMNS} FROM labeling_suggestions WHERE project_id = $1 AND round = $2 \
             AND created_at >= $3 ORDER BY rank, id"
        ))
        .bind(project)
        .bind(round)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(suggestion_row).collect()
    }

    /// Windows not to offer `analyst`: skipped ones (any round) and open ones another analyst
    /// holds a live claim on. `(series, start, end)`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn blocked_windows(
        &self,
        project: i64,
        analyst: &str,
        now: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT series_id, start_index, end_index FROM labeling_suggestions WHERE project_id = $1 AND \
             (status = 'skipped' OR (status = 'open' AND claimed_by <> $2 AND claimed_until > $3))",
        )
        .bind(project)
        .bind(analyst)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Claims an open suggestion for `analyst` until `until` unless another analyst holds a live
    /// claim on it or on an overlapping window; returns whether `analyst` has it.
    ///
    /// # Errors
    /// A database failure.
    pub async fn claim(
        &self,
        project: i64,
        id: i64,
        analyst: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE labeling_suggestions SET claimed_by = $1, claimed_until = $2 WHERE project_id = $3 AND id = $4 \
             AND status = 'open' AND (claimed_by IS NULL OR claimed_by = $1 OR claimed_until < $5) \
             AND NOT EXISTS (SELECT 1 FROM labeling_suggestions o WHERE o.project_id = $3 AND o.id <> $4 \
                 AND o.status = 'open' AND o.claimed_by <> $1 AND o.claimed_until > $5 \
                 AND o.series_id = labeling_suggestions.series_id \
                 AND o.start_index < labeling_suggestions.end_index AND o.end_index > labeling_suggestions.start_index)",
        )
        .bind(analyst)
        .bind(until)
        .bind(project)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a suggestion skipped and releases its claim; `false` when it is not open.
    ///
    /// # Errors
    /// A database failure.
    pub async fn skip_suggestion(&self, project: i64, id: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE labeling_suggestions SET status = 'skipped', claimed_by = NULL, claimed_until = NULL \
             WHERE project_id = $1 AND id = $2 AND status = 'open'",
        )
        .bind(project)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One suggestion.
    ///
    /// # Errors
    /// A database failure.
    pub async fn suggestion(&self, project: i64, id: i64) -> Result<Option<SuggestionRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {SUGGESTION_COLUMNS} FROM labeling_suggestions WHERE project_id = $1 AND id = $2"
        ))
        .bind(project)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| suggestion_row(&r)).transpose()
    }

    /// Replaces a project's listed LFs.
    ///
    /// # Errors
    /// A database failure.
    pub async fn save_lfs(&self, project: i64, round: i64, lfs: &[LfRow]) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM labeling_lfs WHERE project_id = $1").bind(project).execute(&mut *tx).await?;
        for lf in lfs {
            sqlx::query(
                "INSERT INTO labeling_lfs (project_id, lf_id, kind, params, coverage, conflict, learned_accuracy, \
                 golden_accuracy, active, vetoed, round) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(project)
            .bind(lf.lf_id)
            .bind(&lf.kind)
            .bind(&lf.params)
            .bind(lf.coverage)
            .bind(lf.conflict)
            .bind(lf.learned_accuracy)
            .bind(lf.golden_accuracy)
            .bind(i64::from(lf.active))
            .bind(i64::from(lf.vetoed))
            .bind(round)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a model version; `false` when that version exists (another instance won).
    ///
    /// # Errors
    /// A database failure.
    pub async fn save_model(&self, project: i64, m: &ModelRow, model: &[u8]) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO labeling_models (project_id, version, round, labels, anomalies, metrics, model, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id, version) DO NOTHING",
        )
        .bind(project)
        .bind(m.version)
        .bind(m.round)
        .bind(m.labels)
        .bind(m.anomalies)
        .bind(&m.metrics)
        .bind(model)
        .bind(m.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest model version newer than `after`, with its bytes.
    ///
    /// # Errors
    /// A database failure.
    pub async fn newest_model(&self, project: i64, after: i64) -> Result<Option<(ModelRow, Vec<u8>)>, StorageError> {
        let row = sqlx::query(
            "SELECT version, round, labels, anomalies, metrics, created_at, model FROM labeling_models \
             WHERE project_id = $1 AND version > $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(project)
        .bind(after)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((model_row(&r)?, r.try_get(6)?)))
    }

    /// Every model version newer than `after`, with its bytes, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn models_after(&self, project: i64, after: i64) -> Result<Vec<(ModelRow, Vec<u8>)>, StorageError> {
        let rows = sqlx::query(
            "SELECT version, round, labels, anomalies, metrics, created_at, model FROM labeling_models \
             WHERE project_id = $1 AND version > $2 ORDER BY version",
        )
        .bind(project)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((model_row(r)?, r.try_get(6)?))).collect()
    }

    /// Every model version's figures, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn models(&self, project: i64) -> Result<Vec<ModelRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT version, round, labels, anomalies, metrics, created_at FROM labeling_models \
             WHERE project_id = $1 ORDER BY version",
        )
        .bind(project)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(model_row).collect()
    }

    /// Points of a series with stream index in `[from, to)`, as `(index, ts, values)`.
    ///
    /// # Errors
    /// A database failure or a corrupt block.
    pub async fn points_by_index(
        &self,
        id: i64,
        dim: usize,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64, Vec<f64>)>, StorageError> {
        let rows = sqlx::query(
            "SELECT first_index, data FROM point_chunks WHERE series_id = $1 AND first_index < $2 \
             AND first_index + n > $3 ORDER BY first_index",
        )
        .bind(id)
        .bind(to)
        .bind(from)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let first: i64 = r.try_get(0)?;
            let data: Vec<u8> = r.try_get(1)?;
            for (k, (ts, v)) in super::decode_points(&data, dim)?.into_iter().enumerate() {
                let i = first + k as i64;
                if (from..to).contains(&i) {
                    out.push((i, ts, v));
                }
            }
        }
        Ok(out)
    }

    /// Stored points of a series (one past the highest stored index).
    ///
    /// # Errors
    /// A database failure.
    pub async fn point_count(&self, id: i64) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COALESCE(MAX(first_index + n), 0) FROM point_chunks WHERE series_id = $1")
            .bind(id)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Stores a block of anomaly probabilities (an upsert on its first index).
    ///
    /// # Errors
    /// A database failure.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_probabilities(
        &self,
        project: i64,
        series: i64,
        first_index: i64,
        ts: (i64, i64),
        version: i64,
        p: &[f32],
    ) -> Result<(), StorageError> {
        let data: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        sqlx::query(
            "INSERT INTO anomaly_probabilities (project_id, series_id, first_index, n, first_ts, last_ts, version, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id, series_id, first_index) DO UPDATE SET \
             n = excluded.n, first_ts = excluded.first_ts, last_ts = excluded.last_ts, version = excluded.version, \
             data = excluded.data",
        )
        .bind(project)
        .bind(series)
        .bind(first_index)
        .bind(p.len() as i64)
        .bind(ts.0)
        .bind(ts.1)
        .bind(version)
        .bind(data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One past the highest index a project has scored in a series.
    ///
    /// # Errors
    /// A database failure.
    pub async fn scored_until(&self, project: i64, series: i64) -> Result<i64, StorageError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(first_index + n), 0) FROM anomaly_probabilities WHERE project_id = $1 AND series_id = $2",
        )
        .bind(project)
        .bind(series)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Anomaly probabilities of a series with `from_ts <= ts < to_ts` as
    /// `(project id, index, probability)`; timestamps come from the points.
    ///
    /// # Errors
    /// A database failure or a corrupt block.
    pub async fn probabilities(
        &self,
        series: i64,
        from_ts: i64,
        to_ts: i64,
    ) -> Result<Vec<(i64, i64, f32)>, StorageError> {
        let rows = sqlx::query(
            "SELECT project_id, first_index, data FROM anomaly_probabilities WHERE series_id = $1 AND last_ts >= $2 \
             AND first_ts < $3 ORDER BY project_id, first_index",
        )
        .bind(series)
        .bind(from_ts)
        .bind(to_ts)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let project: i64 = r.try_get(0)?;
            let first: i64 = r.try_get(1)?;
            let data: Vec<u8> = r.try_get(2)?;
            if !data.len().is_multiple_of(4) {
                return Err(StorageError::Corrupt("probability block length".into()));
            }
            out.extend(
                data.chunks_exact(4)
                    .enumerate()
                    .map(|(k, b)| (project, first + k as i64, f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            );
        }
        Ok(out)
    }

    /// Records an analyst's verdict on an interval (the latest verdict wins).
    ///
    /// # Errors
    /// A database failure.
    pub async fn set_feedback(
        &self,
        series: i64,
        start: i64,
        verdict: &str,
        author: &str,
        now: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO interval_feedback (series_id, start_index, verdict, author, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (series_id, start_index) DO UPDATE SET verdict = excluded.verdict, author = excluded.author, \
             at = excluded.at",
        )
        .bind(series)
        .bind(start)
        .bind(verdict)
        .bind(author)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Verdicts on a series' intervals: start index → (verdict, author, at).
    ///
    /// # Errors
    /// A database failure.
    pub async fn feedback(
        &self,
        series: i64,
    ) -> Result<std::collections::HashMap<i64, (String, String, i64)>, StorageError> {
        let rows = sqlx::query("SELECT start_index, verdict, author, at FROM interval_feedback WHERE series_id = $1")
            .bind(series)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))).collect()
    }

    /// The interval of a series starting at `start`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn interval_at(&self, series: i64, start: i64) -> Result<Option<super::IntervalRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM intervals WHERE series_id = $1 AND start_index = $2",
            super::INTERVAL_COLUMNS
        ))
        .bind(series)
        .bind(start)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| super::interval_row(&r)).transpose()
    }

    /// The listed LFs of a project.
    ///
    /// # Errors
    /// A database failure.
    pub async fn lfs(&self, project: i64) -> Result<Vec<LfRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT lf_id, kind, params, coverage, conflict, learned_accuracy, golden_accuracy, active, vetoed \
             FROM labeling_lfs WHERE project_id = $1 ORDER BY lf_id",
        )
        .bind(project)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LfRow {
                    lf_id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    params: r.try_get(2)?,
                    coverage: r.try_get(3)?,
                    conflict: r.try_get(4)?,
                    learned_accuracy: r.try_get(5)?,
                    golden_accuracy: r.try_get(6)?,
                    active: r.try_get::<i64, _>(7)? != 0,
                    vetoed: r.try_get::<i64, _>(8)? != 0,
                })
            })
            .collect()
    }
}

fn model_row(r: &AnyRow) -> Result<ModelRow, StorageError> {
    Ok(ModelRow {
        version: r.try_get(0)?,
        round: r.try_get(1)?,
        labels: r.try_get(2)?,
        anomalies: r.try_get(3)?,
        metrics: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}
