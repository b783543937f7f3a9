//! Rounds and labels: the change log every instance replays, labels with their undo chain, and
//! LF vetoes. Each change opens its round in the transaction that checks for conflicts.

use super::{
    Conflict, LABEL_COLUMNS, LabelRow, NewLabel, RoundRow, SUGGESTION_COLUMNS, SuggestionRow, log_round, open_rounds,
    undo_in,
};
use crate::storage::{Storage, StorageError};

impl Storage {
    /// The project's rounds after `after`, in order.
    ///
    /// # Errors
    /// A database failure.
    pub async fn rounds_after(&self, project: i64, after: i64) -> Result<Vec<RoundRow>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT round, kind, target, author, at FROM labeling_rounds WHERE project_id = $1 AND round > $2 ORDER BY round",
        )
        .bind(project)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every label of a project (undone ones too), oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn labels(&self, project: i64) -> Result<Vec<LabelRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {LABEL_COLUMNS} FROM labeling_labels WHERE project_id = $1 ORDER BY id"))
            .bind(project)
            .fetch_all(&self.pool)
            .await?)
    }

    /// One label.
    ///
    /// # Errors
    /// A database failure.
    pub async fn label(&self, project: i64, id: i64) -> Result<Option<LabelRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {LABEL_COLUMNS} FROM labeling_labels WHERE project_id = $1 AND id = $2"))
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
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
            let newer: Option<(i64,)> = sqlx::query_as(
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
            if let Some((label,)) = newer {
                return Ok(Err(Conflict::StaleRound { label, round: first - 1 }));
            }
        }
        if let Some(s) = label.suggestion_id {
            let row: Option<SuggestionRow> = sqlx::query_as(&format!(
                "SELECT {SUGGESTION_COLUMNS} FROM labeling_suggestions WHERE project_id = $1 AND id = $2"
            ))
            .bind(project)
            .bind(s)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(Err(Conflict::Missing(format!("suggestion {s}")))) };
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
             created_at, source, replaces, suggestion_id, start_ts, end_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        .bind(label.start_ts)
        .bind(label.end_ts)
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
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM labeling_labels WHERE project_id = $1 AND author = $2 AND undone_round IS NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(project)
        .bind(author)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id,)| id))
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
}
