//! Suggestions: a round's ranked windows (saved again by every request, so a round's list is
//! the newest model's), claims that keep two analysts off one window, and skips.

use super::{SUGGESTION_COLUMNS, SuggestionRow};
use crate::storage::{Storage, StorageError};

impl Storage {
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
        Ok(sqlx::query_as(&format!(
            "SELECT {SUGGESTION_COLUMNS} FROM labeling_suggestions WHERE project_id = $1 AND round = $2 \
             AND created_at >= $3 ORDER BY rank, id"
        ))
        .bind(project)
        .bind(round)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
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
        Ok(sqlx::query_as(
            "SELECT series_id, start_index, end_index FROM labeling_suggestions WHERE project_id = $1 AND \
             (status = 'skipped' OR (status = 'open' AND claimed_by <> $2 AND claimed_until > $3))",
        )
        .bind(project)
        .bind(analyst)
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
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
        Ok(sqlx::query_as(&format!(
            "SELECT {SUGGESTION_COLUMNS} FROM labeling_suggestions WHERE project_id = $1 AND id = $2"
        ))
        .bind(project)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }
}
