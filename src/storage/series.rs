//! Series rows: creation, lookup, a series' own detector configuration, names by id, deletion
//! with everything stored for it, and retention of old blocks.

use std::collections::HashMap;

use super::{Storage, StorageError};

/// A stored series.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SeriesRow {
    /// Storage id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Values per point.
    pub dim: i64,
    /// Detector configuration (JSON), when the series has its own.
    pub config: Option<String>,
    /// Points the stored checkpoint has seen.
    pub checkpoint_points: i64,
    /// The stream index after the newest stored block (points removed by retention still
    /// count): where a new detector starts.
    pub stored_points: i64,
    /// Points still stored (retention removes old blocks).
    pub stored_count: i64,
    /// Stream index of the first point still stored.
    pub first_stored_index: Option<i64>,
    /// Its timestamp.
    pub first_stored_ts: Option<i64>,
    /// Last accepted timestamp.
    pub last_ts: Option<i64>,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
}

// `stored_points` is the end of the newest block (a primary-key lookup), so it counts points
// that retention has since removed, like the stream index does; `stored_count` sums the blocks
// still there (one index range scan) and the first block says where stored data begins.
const SERIES_COLUMNS: &str = "id, name, dim, config, \
     COALESCE((SELECT c.points FROM checkpoints c WHERE c.series_id = series.id), 0) AS checkpoint_points, \
     last_ts, created_by, updated_by, \
     COALESCE((SELECT p.first_index + p.n FROM point_chunks p WHERE p.series_id = series.id \
               ORDER BY p.first_index DESC LIMIT 1), 0) AS stored_points, \
     CAST(COALESCE((SELECT SUM(p.n) FROM point_chunks p WHERE p.series_id = series.id), 0) AS BIGINT) AS stored_count, \
     (SELECT p.first_index FROM point_chunks p WHERE p.series_id = series.id \
               ORDER BY p.first_index LIMIT 1) AS first_stored_index, \
     (SELECT p.first_ts FROM point_chunks p WHERE p.series_id = series.id \
               ORDER BY p.first_index LIMIT 1) AS first_stored_ts";

impl Storage {
    /// The series named `name`, created with `dim` values per point if it is new.
    ///
    /// # Errors
    /// A database failure.
    pub async fn ensure_series(
        &self,
        name: &str,
        dim: i64,
        principal: &str,
        now_ms: i64,
    ) -> Result<SeriesRow, StorageError> {
        Ok(self.ensure_series_capped(name, dim, principal, now_ms, 0).await?.expect("no cap"))
    }

    /// [`Storage::ensure_series`] for a creator who may have created at most `cap` series
    /// (0 = no limit): `None` when the series is new and `principal` is at the cap. The count
    /// and the insert are one transaction under a lock on the creator (an advisory lock on
    /// PostgreSQL; SQLite has one writer), so concurrent first points cannot pass the cap.
    ///
    /// # Errors
    /// A database failure.
    pub async fn ensure_series_capped(
        &self,
        name: &str,
        dim: i64,
        principal: &str,
        now_ms: i64,
        cap: usize,
    ) -> Result<Option<SeriesRow>, StorageError> {
        // A series deleted between the insert and the read (another instance) is created again.
        for _ in 0..3 {
            if let Some(row) = self.series(name).await? {
                return Ok(Some(row));
            }
            let mut tx = self.pool.begin().await?;
            if cap > 0 {
                if self.backend == super::Backend::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
                        .bind(format!("driftwatch.series_cap.{principal}"))
                        .execute(&mut *tx)
                        .await?;
                }
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM series WHERE created_by = $1 AND name <> $2")
                    .bind(principal)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                if n >= cap as i64 {
                    tx.rollback().await?;
                    return self.series(name).await;
                }
            }
            sqlx::query(
                "INSERT INTO series (name, dim, created_at, created_by, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(dim)
            .bind(now_ms)
            .bind(principal)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        self.series(name).await?.map(Some).ok_or_else(|| StorageError::Gone(name.to_owned()))
    }

    /// The series named `name`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn series(&self, name: &str) -> Result<Option<SeriesRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {SERIES_COLUMNS} FROM series WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.read)
            .await?)
    }

    /// Every series, by name.
    ///
    /// # Errors
    /// A database failure.
    pub async fn list_series(&self) -> Result<Vec<SeriesRow>, StorageError> {
        Ok(sqlx::query_as(&format!("SELECT {SERIES_COLUMNS} FROM series ORDER BY name")).fetch_all(&self.read).await?)
    }

    /// Sets (or clears) a series' own detector configuration.
    ///
    /// # Errors
    /// A database failure.
    pub async fn set_config(
        &self,
        id: i64,
        config: Option<&str>,
        principal: &str,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE series SET config = $1, updated_at = $2, updated_by = $3 WHERE id = $4")
            .bind(config)
            .bind(now_ms)
            .bind(principal)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Series created by `who`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn series_created_by(&self, who: &str) -> Result<i64, StorageError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM series WHERE created_by = $1").bind(who).fetch_one(&self.read).await?;
        Ok(n)
    }

    /// Names of the series with these ids.
    ///
    /// # Errors
    /// A database failure.
    pub async fn series_names(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StorageError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT id, name FROM series WHERE id IN ({})", list.join(", "));
        let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(&self.read).await?.into_iter().collect())
    }

    /// Deletes a series and everything stored for it; returns whether it existed.
    ///
    /// # Errors
    /// A database failure.
    pub async fn delete_series(&self, name: &str) -> Result<bool, StorageError> {
        let Some(s) = self.series(name).await? else { return Ok(false) };
        let mut tx = self.pool.begin().await?;
        // The series row first: on PostgreSQL this waits for a results write that holds it (see
        // `write_many`), whose rows the statements below then see and remove; a later write
        // finds no row and stores nothing. So no block outlives its series.
        let gone = sqlx::query("DELETE FROM series WHERE id = $1").bind(s.id).execute(&mut *tx).await?.rows_affected();
        for table in
            ["point_chunks", "intervals", "score_chunks", "checkpoints", "anomaly_probabilities", "interval_feedback"]
        {
            sqlx::query(&format!("DELETE FROM {table} WHERE series_id = $1")).bind(s.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// Retention counted back from each series' newest point: deletes raw point blocks that end
    /// more than `points_ms` before it and score blocks more than `scores_ms` before it (so
    /// replayed or back-filled history is kept like live data). Returns the rows removed.
    ///
    /// # Errors
    /// A database failure.
    pub async fn apply_retention(&self, points_ms: i64, scores_ms: i64) -> Result<u64, StorageError> {
        // In batches of BATCH rows, each its own short transaction, so ingest's writes get the
        // database between them. One statement per table held SQLite's write lock for about 8 s
        // when a soak's first retention pass removed ~2 million points' scores (`bench soak`:
        // ingest p99 7.8 s in that period).
        const BATCH: i64 = 2000;
        let mut removed = 0u64;
        for (table, ts, keep) in [("point_chunks", "last_ts", points_ms), ("score_chunks", "end_ts", scores_ms)] {
            let sql = format!(
                "DELETE FROM {table} WHERE (series_id, first_index) IN (SELECT c.series_id, c.first_index FROM {table} c \
                 JOIN series s ON s.id = c.series_id WHERE c.{ts} < s.last_ts - $1 LIMIT $2)"
            );
            loop {
                let n = sqlx::query(&sql).bind(keep).bind(BATCH).execute(&self.pool).await?.rows_affected();
                removed += n;
                if n < BATCH as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(removed)
    }
}
