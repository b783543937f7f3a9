//! What the lease holder produces and analysts' verdicts: model versions (bytes and metrics),
//! the listed LFs with their statistics, live anomaly probabilities (little-endian `f32`
//! blocks), and feedback on change intervals.

use std::collections::HashMap;

use super::{LfRow, ModelRow};
use crate::storage::rows::{decode_f32s, encode_f32s};
use crate::storage::{Storage, StorageError};

/// A model version with its bytes.
#[derive(sqlx::FromRow)]
struct StoredModel {
    #[sqlx(flatten)]
    row: ModelRow,
    model: Vec<u8>,
}

impl Storage {
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
            .bind(lf.stats.coverage)
            .bind(lf.stats.conflict)
            .bind(lf.stats.learned_accuracy)
            .bind(lf.stats.golden_accuracy)
            .bind(i64::from(lf.stats.active))
            .bind(i64::from(lf.stats.vetoed))
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

    /// Every model version newer than `after`, with its bytes, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn models_after(&self, project: i64, after: i64) -> Result<Vec<(ModelRow, Vec<u8>)>, StorageError> {
        let rows: Vec<StoredModel> = sqlx::query_as(
            "SELECT version, round, labels, anomalies, metrics, created_at, model FROM labeling_models \
             WHERE project_id = $1 AND version > $2 ORDER BY version",
        )
        .bind(project)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|m| (m.row, m.model)).collect())
    }

    /// Every model version's figures, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn models(&self, project: i64) -> Result<Vec<ModelRow>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT version, round, labels, anomalies, metrics, created_at FROM labeling_models \
             WHERE project_id = $1 ORDER BY version",
        )
        .bind(project)
        .fetch_all(&self.read)
        .await?)
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
        let data = encode_f32s(p);
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
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(first_index + n), 0) FROM anomaly_probabilities WHERE project_id = $1 AND series_id = $2",
        )
        .bind(project)
        .bind(series)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
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
        let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT project_id, first_index, data FROM anomaly_probabilities WHERE series_id = $1 AND last_ts >= $2 \
             AND first_ts < $3 ORDER BY project_id, first_index",
        )
        .bind(series)
        .bind(from_ts)
        .bind(to_ts)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for (project, first, data) in rows {
            out.extend(decode_f32s(&data)?.into_iter().enumerate().map(|(k, p)| (project, first + k as i64, p)));
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
    pub async fn feedback(&self, series: i64) -> Result<HashMap<i64, (String, String, i64)>, StorageError> {
        let rows: Vec<(i64, String, String, i64)> =
            sqlx::query_as("SELECT start_index, verdict, author, at FROM interval_feedback WHERE series_id = $1")
                .bind(series)
                .fetch_all(&self.read)
                .await?;
        Ok(rows.into_iter().map(|(start, verdict, author, at)| (start, (verdict, author, at))).collect())
    }
}
