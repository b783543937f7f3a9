//! Detector checkpoints (one row per series, in a table of its own so writing them never holds
//! the series rows that results writes update) and Kafka partition positions, stored together
//! so a partition resumed from its row resumes the detectors that reflect it.

use super::{Storage, StorageError};

// A stale copy never overwrites a newer state, nor a reset's marker (an empty state at the
// series' index of the reset) with a detector that has seen no point since.
const SAVE_CHECKPOINT: &str = "INSERT INTO checkpoints (state, points, series_id) VALUES ($1, $2, $3) \
     ON CONFLICT (series_id) DO UPDATE SET state = excluded.state, points = excluded.points \
     WHERE checkpoints.points < excluded.points \
        OR (checkpoints.points = excluded.points AND length(checkpoints.state) > 0)";

/// Where a Kafka partition stands: the first offset not yet reflected in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset not yet reflected.
    pub next_offset: i64,
}

impl Storage {
    /// Stores a detector checkpoint that has seen `points` points, unless the stored one has
    /// seen more (a stale copy never overwrites a newer state).
    ///
    /// # Errors
    /// A database failure.
    pub async fn save_checkpoint(&self, id: i64, state: &[u8], points: i64) -> Result<(), StorageError> {
        sqlx::query(SAVE_CHECKPOINT).bind(state).bind(points).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores a Kafka partition's position together with the checkpoints of the detectors that
    /// reflect it, in one transaction: a partition resumed from this row resumes those states.
    ///
    /// # Errors
    /// A database failure (nothing is written then).
    pub async fn save_partition_state(
        &self,
        at: &PartitionPosition,
        checkpoints: &[(i64, Vec<u8>, i64)],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        for (id, state, points) in checkpoints {
            sqlx::query(SAVE_CHECKPOINT).bind(state.as_slice()).bind(*points).bind(*id).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO kafka_offsets (group_id, topic, partition_id, next_offset, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET next_offset = excluded.next_offset, \
             updated_at = excluded.updated_at",
        )
        .bind(&at.group)
        .bind(&at.topic)
        .bind(at.partition)
        .bind(at.next_offset)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored position of a Kafka partition: the first offset its stored state does not
    /// reflect.
    ///
    /// # Errors
    /// A database failure.
    pub async fn partition_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StorageError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT next_offset FROM kafka_offsets WHERE group_id = $1 AND topic = $2 AND partition_id = $3",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(offset,)| offset))
    }

    /// The stored checkpoint and the points it has seen.
    ///
    /// # Errors
    /// A database failure.
    pub async fn checkpoint(&self, id: i64) -> Result<Option<(Vec<u8>, i64)>, StorageError> {
        let row: Option<(Option<Vec<u8>>, i64)> =
            sqlx::query_as("SELECT state, points FROM checkpoints WHERE series_id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.and_then(|(state, points)| state.map(|s| (s, points))))
    }

    /// Deletes a series' checkpoint (one that has seen points storage lacks): the series is
    /// then rebuilt from its stored points.
    ///
    /// # Errors
    /// A database failure.
    pub async fn drop_checkpoint(&self, id: i64) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM checkpoints WHERE series_id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets a series' detector state (reset, new configuration) at stream index `at` (the
    /// series' stored point count), recording who did it. Stored points are kept.
    ///
    /// # Errors
    /// A database failure.
    pub async fn clear_checkpoint(&self, id: i64, at: i64, principal: &str, now_ms: i64) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM checkpoints WHERE series_id = $1").bind(id).execute(&mut *tx).await?;
        // An empty state at index `at` marks the reset: a restart starts the series' detector
        // afresh there and replays only the points stored after it (see
        // `Service::recover_detector`).
        sqlx::query("INSERT INTO checkpoints (state, points, series_id) VALUES ($1, $2, $3)")
            .bind(Vec::<u8>::new())
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE series SET updated_at = $1, updated_by = $2 WHERE id = $3")
            .bind(now_ms)
            .bind(principal)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
