//! What the detectors produce, stored per series: raw point blocks, change intervals and score
//! blocks, written a batch per transaction (upserts on their natural keys, so a replay leaves
//! the same rows) and read back by range, index or page.

use std::collections::HashMap;

use super::rows::{F32Block, Flag, OpenStatus, encode_f32s};
use super::{Storage, StorageError, decode_points, encode_points};

/// A block of raw points.
#[derive(Debug, Clone, PartialEq)]
pub struct PointChunk {
    /// Stream index of the first point.
    pub first_index: i64,
    /// Timestamps and values, in order; every point has the series' dimension.
    pub points: Vec<(i64, Vec<f64>)>,
}

/// A change interval as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IntervalRow {
    /// Series id.
    pub series_id: i64,
    /// First index.
    pub start_index: i64,
    /// One past the last index.
    pub end_index: i64,
    /// Timestamp of the first point.
    pub start_ts: i64,
    /// Timestamp of the last point.
    pub end_ts: i64,
    /// Index at which it was reported.
    pub detected_at: i64,
    /// Highest window score.
    pub peak_score: f64,
    /// psi in use.
    pub psi: i64,
    /// Still open?
    #[sqlx(rename = "status", try_from = "OpenStatus")]
    pub open: bool,
    /// Explanation (JSON), once closed.
    pub explanation: Option<String>,
    /// The change placed to the point (None for intervals stored before row-precise change
    /// points).
    pub change_point: Option<i64>,
    /// Its timestamp.
    pub change_ts: Option<i64>,
}

/// One completed detector block's scores.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScoreRow {
    /// Stream index of the block's first point.
    pub first_index: i64,
    /// Timestamp of its last point.
    pub end_ts: i64,
    /// Window score (None while a window after a gap fills).
    pub score: Option<f64>,
    /// Threshold it was judged by.
    pub threshold: Option<f64>,
    /// Anomaly score per point of the block.
    #[sqlx(try_from = "F32Block")]
    pub anomaly: Vec<f32>,
    /// Some of the anomaly scores were given while warming up (0, meaningless).
    #[sqlx(try_from = "Flag")]
    pub warming_up: bool,
    /// Which anomaly score: 1 = the window-relative score of earlier versions, 2 = the
    /// calibrated score ([`ANOMALY_VERSION`]).
    pub anomaly_version: i64,
}

/// The anomaly score version new blocks are stored with (see migration 0005).
pub const ANOMALY_VERSION: i64 = 2;

/// Everything one ingested batch of a series produces, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Raw point blocks.
    pub chunks: Vec<PointChunk>,
    /// Intervals opened, extended or closed.
    pub intervals: Vec<IntervalRow>,
    /// Completed blocks' scores.
    pub scores: Vec<ScoreRow>,
    /// New last accepted timestamp.
    pub last_ts: Option<i64>,
}

/// Which intervals to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalQuery {
    /// One series, or all.
    pub series_id: Option<i64>,
    /// Only open (Some(true)) or closed (Some(false)) ones.
    pub open: Option<bool>,
    /// Intervals ending at or after this timestamp.
    pub from_ts: Option<i64>,
    /// Intervals starting at or after this timestamp.
    pub since: Option<i64>,
    /// Intervals starting before this timestamp.
    pub to_ts: Option<i64>,
    /// Page: rows after this (series id, start index), in that order.
    pub after: Option<(i64, i64)>,
    /// Intervals whose peak score is at least this.
    pub min_score: Option<f64>,
    /// Intervals with this analyst verdict (`confirm`, `dismiss`), or with none (`none`); any
    /// other value is taken as `dismiss` (callers check it).
    pub verdict: Option<String>,
    /// Page size.
    pub limit: i64,
}

const INTERVAL_COLUMNS: &str = "series_id, start_index, end_index, start_ts, end_ts, detected_at, peak_score, psi, status, explanation, \
     change_point, change_ts";

/// `($1, $2), ($3, $4), …`: `rows` tuples of `width` numbered placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", (1..=width).map(|c| format!("${}", r * width + c)).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// As [`placeholders`], but a column whose value is absent (`present[row][col]` false) is written
/// as a literal `NULL` and takes no placeholder. sqlx 0.8's Any driver declares a `None::<f64>`
/// as `float4` (its Real/Double mapping for nulls is swapped), which PostgreSQL refuses with
/// "incorrect binary data format" once the statement was prepared with `float8`: absent values
/// never go through a bind.
fn placeholders_with_nulls(present: &[Vec<bool>]) -> String {
    let mut n = 0;
    present
        .iter()
        .map(|row| {
            let cols: Vec<String> = row
                .iter()
                .map(|&p| {
                    if p {
                        n += 1;
                        format!("${n}")
                    } else {
                        "NULL".to_string()
                    }
                })
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Storage {
    /// Writes one batch of a series in one transaction; every row is an upsert on its key.
    ///
    /// # Errors
    /// A database failure (nothing of the batch is written then); [`StorageError::Gone`] when
    /// the series no longer exists.
    pub async fn write(&self, series_id: i64, batch: &WriteBatch) -> Result<(), StorageError> {
        match self.write_many(&[(series_id, batch)]).await?.first() {
            Some(gone) => Err(StorageError::Gone(format!("id {gone}"))),
            None => Ok(()),
        }
    }

    /// Writes the batches of many series in one transaction, a few multi-row statements per
    /// table rather than several statements per series: the Kafka source writes a whole poll's
    /// worth of series at once. Every row is an upsert on its key. At most one batch per series.
    /// The series rows are locked first; the batches of series deleted meanwhile are left out
    /// (so no block outlives its series) and their ids returned.
    ///
    /// # Errors
    /// A database failure (nothing is written then).
    pub async fn write_many(&self, batches: &[(i64, &WriteBatch)]) -> Result<Vec<i64>, StorageError> {
        /// Rows per statement: far under both back-ends' bind limits (SQLite 32766).
        const ROWS: usize = 400;
        let chunks: Vec<(i64, &PointChunk)> = batches
            .iter()
            .flat_map(|(id, b)| b.chunks.iter().filter(|c| !c.points.is_empty()).map(move |c| (*id, c)))
            .collect();
        let intervals: Vec<&IntervalRow> = batches.iter().flat_map(|(_, b)| &b.intervals).collect();
        let scores: Vec<(i64, &ScoreRow)> =
            batches.iter().flat_map(|(id, b)| b.scores.iter().map(move |s| (*id, s))).collect();
        let last: Vec<(i64, i64)> = batches.iter().filter_map(|(id, b)| b.last_ts.map(|t| (*id, t))).collect();
        if chunks.is_empty() && intervals.is_empty() && scores.is_empty() && last.is_empty() {
            return Ok(vec![]);
        }
        // A connection whose write failed is closed instead of going back to the pool. SQLite
        // rolls a transaction back by itself on some errors (SQLITE_FULL among them); the
        // driver's ROLLBACK then fails and, we suspect, leaves its transaction count at one, so
        // the connection's next BEGIN would be a SAVEPOINT inside a transaction nobody commits.
        // (A storage-quota fault test once lost points this way; it has not since.)
        let mut conn = self.pool.acquire().await?;
        let written = async {
            let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
            let ids: std::collections::BTreeSet<i64> = batches.iter().map(|(id, _)| *id).collect();
            let mut live = std::collections::BTreeSet::new();
            for part in ids.iter().copied().collect::<Vec<_>>().chunks(ROWS) {
                // A no-op update takes the series rows' write locks until commit (PostgreSQL),
                // so a delete of one of these series waits for this write and then removes what
                // it stored; a series already deleted returns no row.
                let list = (1..=part.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("UPDATE series SET last_ts = last_ts WHERE id IN ({list}) RETURNING id");
                let mut q = sqlx::query_as::<_, (i64,)>(&sql);
                for id in part {
                    q = q.bind(*id);
                }
                live.extend(q.fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id));
            }
            let gone: Vec<i64> = ids.difference(&live).copied().collect();
            let chunks: Vec<_> = chunks.into_iter().filter(|(id, _)| live.contains(id)).collect();
            let intervals: Vec<_> = intervals.into_iter().filter(|iv| live.contains(&iv.series_id)).collect();
            let scores: Vec<_> = scores.into_iter().filter(|(id, _)| live.contains(id)).collect();
            let last: Vec<_> = last.into_iter().filter(|(id, _)| live.contains(id)).collect();
            for part in chunks.chunks(ROWS) {
                // A replay after a restore may cut the same points into other blocks: drop stored
                // blocks that start inside a new one, so no point is stored twice. Their later
                // points come back with the replay's next blocks.
                let cond = (0..part.len())
                    .map(|i| {
                        format!(
                            "(series_id = ${} AND first_index > ${} AND first_index < ${})",
                            3 * i + 1,
                            3 * i + 2,
                            3 * i + 3
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let sql = format!("DELETE FROM point_chunks WHERE {cond}");
                let mut q = sqlx::query(&sql);
                for (id, c) in part {
                    q = q.bind(*id).bind(c.first_index).bind(c.first_index + c.points.len() as i64);
                }
                q.execute(&mut *tx).await?;
                let sql = format!(
                    "INSERT INTO point_chunks (series_id, first_index, n, first_ts, last_ts, data) VALUES {} \
                     ON CONFLICT (series_id, first_index) DO UPDATE SET n = excluded.n, first_ts = excluded.first_ts, \
                     last_ts = excluded.last_ts, data = excluded.data",
                    placeholders(part.len(), 6)
                );
                let mut q = sqlx::query(&sql);
                for (id, c) in part {
                    let (first, last) = (c.points[0].0, c.points[c.points.len() - 1].0);
                    q = q
                        .bind(*id)
                        .bind(c.first_index)
                        .bind(c.points.len() as i64)
                        .bind(first)
                        .bind(last)
                        .bind(encode_points(&c.points));
                }
                q.execute(&mut *tx).await?;
            }
            for part in intervals.chunks(ROWS) {
                let sql = format!(
                    "INSERT INTO intervals ({INTERVAL_COLUMNS}) VALUES {} \
                     ON CONFLICT (series_id, start_index) DO UPDATE SET end_index = excluded.end_index, \
                     end_ts = excluded.end_ts, peak_score = excluded.peak_score, status = excluded.status, \
                     explanation = excluded.explanation, change_point = excluded.change_point, \
                     change_ts = excluded.change_ts",
                    placeholders(part.len(), 12)
                );
                let mut q = sqlx::query(&sql);
                for iv in part {
                    q = q
                        .bind(iv.series_id)
                        .bind(iv.start_index)
                        .bind(iv.end_index)
                        .bind(iv.start_ts)
                        .bind(iv.end_ts)
                        .bind(iv.detected_at)
                        .bind(iv.peak_score)
                        .bind(iv.psi)
                        .bind(if iv.open { "open" } else { "closed" })
                        .bind(iv.explanation.clone())
                        .bind(iv.change_point)
                        .bind(iv.change_ts);
                }
                q.execute(&mut *tx).await?;
            }
            for part in scores.chunks(ROWS) {
                let sql = format!(
                    "INSERT INTO score_chunks (series_id, first_index, n, end_ts, score, threshold, anomaly, \
                     warming_up, anomaly_version) VALUES {} \
                     ON CONFLICT (series_id, first_index) DO UPDATE SET n = excluded.n, end_ts = excluded.end_ts, \
                     score = excluded.score, threshold = excluded.threshold, anomaly = excluded.anomaly, \
                     warming_up = excluded.warming_up, anomaly_version = excluded.anomaly_version",
                    placeholders_with_nulls(
                        &part
                            .iter()
                            .map(|(_, s)| {
                                vec![true, true, true, true, s.score.is_some(), s.threshold.is_some(), true, true, true]
                            })
                            .collect::<Vec<_>>()
                    )
                );
                let mut q = sqlx::query(&sql);
                for (id, s) in part {
                    let anomaly = encode_f32s(&s.anomaly);
                    q = q.bind(*id).bind(s.first_index).bind(s.anomaly.len() as i64).bind(s.end_ts);
                    if let Some(score) = s.score {
                        q = q.bind(score);
                    }
                    if let Some(threshold) = s.threshold {
                        q = q.bind(threshold);
                    }
                    q = q.bind(anomaly).bind(i64::from(s.warming_up)).bind(s.anomaly_version);
                }
                q.execute(&mut *tx).await?;
            }
            for part in last.chunks(ROWS) {
                // Never move backwards (a replayed batch carries an older last timestamp).
                let sql = format!(
                    "WITH v (id, ts) AS (VALUES {}) UPDATE series SET last_ts = v.ts FROM v \
                     WHERE series.id = v.id AND (series.last_ts IS NULL OR series.last_ts < v.ts)",
                    placeholders(part.len(), 2)
                );
                let mut q = sqlx::query(&sql);
                for (id, ts) in part {
                    q = q.bind(*id).bind(*ts);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, StorageError>(gone)
        }
        .await;
        if written.is_err() {
            let _ = conn.close().await;
        }
        written
    }

    /// Intervals matching `q`, ordered by (series id, start index).
    ///
    /// # Errors
    /// A database failure or a corrupt row.
    pub async fn intervals(&self, q: &IntervalQuery) -> Result<Vec<IntervalRow>, StorageError> {
        // Only the filters given appear in the statement, so both planners use the
        // (series_id, start_index) key and the time indexes. (An earlier `$1 IS NULL OR
        // series_id = $1` form kept SQLite on a scan of the whole table in key order: a series'
        // intervals query slowed down as every series' intervals accumulated, from 2 ms to
        // seconds within a minute of `bench soak`.)
        enum Arg<'a> {
            Int(i64),
            Float(f64),
            Text(&'a str),
        }
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut push = |sql: &str, values: Vec<Arg<'static>>| {
            let mut sql = sql.to_owned();
            for v in values {
                args.push(v);
                sql = sql.replacen('?', &format!("${}", args.len()), 1);
            }
            conds.push(sql);
        };
        if let Some(id) = q.series_id {
            push("series_id = ?", vec![Arg::Int(id)]);
        }
        if let Some(open) = q.open {
            push("status = ?", vec![Arg::Text(if open { "open" } else { "closed" })]);
        }
        if let Some(t) = q.from_ts {
            push("end_ts >= ?", vec![Arg::Int(t)]);
        }
        if let Some(t) = q.to_ts {
            push("start_ts < ?", vec![Arg::Int(t)]);
        }
        if let Some((sid, start)) = q.after {
            push(
                "(series_id > ? OR (series_id = ? AND start_index > ?))",
                vec![Arg::Int(sid), Arg::Int(sid), Arg::Int(start)],
            );
        }
        if let Some(t) = q.since {
            push("start_ts >= ?", vec![Arg::Int(t)]);
        }
        if let Some(m) = q.min_score {
            push("peak_score >= ?", vec![Arg::Float(m)]);
        }
        let feedback = "SELECT 1 FROM interval_feedback f WHERE f.series_id = intervals.series_id \
                        AND f.start_index = intervals.start_index";
        match q.verdict.as_deref() {
            None => {}
            Some("none") => push(&format!("NOT EXISTS ({feedback})"), vec![]),
            Some(v) => {
                let v = if v == "confirm" { "confirm" } else { "dismiss" }; // checked by the caller
                push(&format!("EXISTS ({feedback} AND f.verdict = ?)"), vec![Arg::Text(v)]);
            }
        }
        let filter = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let sql = format!(
            "SELECT {INTERVAL_COLUMNS} FROM intervals {filter} ORDER BY series_id, start_index LIMIT ${}",
            args.len() + 1
        );
        let mut query = sqlx::query_as::<_, IntervalRow>(&sql);
        for a in args {
            query = match a {
                Arg::Int(v) => query.bind(v),
                Arg::Float(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
            };
        }
        Ok(query.bind(q.limit.max(0)).fetch_all(&self.read).await?)
    }

    /// The latest interval (highest start index) of every series that has one.
    ///
    /// # Errors
    /// A database failure or a corrupt row.
    pub async fn latest_intervals(&self) -> Result<HashMap<i64, IntervalRow>, StorageError> {
        let cols = INTERVAL_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ");
        let rows: Vec<IntervalRow> = sqlx::query_as(&format!(
            "SELECT {cols} FROM intervals i JOIN (SELECT series_id, MAX(start_index) AS m FROM intervals GROUP BY series_id) l \
             ON i.series_id = l.series_id AND i.start_index = l.m"
        ))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|iv| (iv.series_id, iv)).collect())
    }

    /// The interval of a series starting at `start`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn interval_at(&self, series: i64, start: i64) -> Result<Option<IntervalRow>, StorageError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {INTERVAL_COLUMNS} FROM intervals WHERE series_id = $1 AND start_index = $2"
        ))
        .bind(series)
        .bind(start)
        .fetch_optional(&self.read)
        .await?)
    }

    /// The stored point blocks of a series holding stream indices at or after `from_index`,
    /// as (first index, points), in index order. Crash recovery replays them through the
    /// detector restored from the checkpoint.
    ///
    /// # Errors
    /// A database failure or a corrupt chunk.
    pub async fn chunks_from(
        &self,
        id: i64,
        dim: usize,
        from_index: i64,
    ) -> Result<Vec<(i64, Vec<(i64, Vec<f64>)>)>, StorageError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT first_index, data FROM point_chunks WHERE series_id = $1 AND first_index + n > $2 ORDER BY first_index",
        )
        .bind(id)
        .bind(from_index)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(|(first, data)| Ok((first, decode_points(&data, dim)?))).collect()
    }

    /// Raw points of a series with `from_ts <= ts < to_ts`, in order.
    ///
    /// # Errors
    /// A database failure or a corrupt chunk.
    pub async fn points(
        &self,
        id: i64,
        dim: usize,
        from_ts: i64,
        to_ts: i64,
    ) -> Result<Vec<(i64, Vec<f64>)>, StorageError> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT data FROM point_chunks WHERE series_id = $1 AND last_ts >= $2 AND first_ts < $3 ORDER BY first_index",
        )
        .bind(id)
        .bind(from_ts)
        .bind(to_ts)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for (data,) in &rows {
            out.extend(decode_points(data, dim)?.into_iter().filter(|(ts, _)| (from_ts..to_ts).contains(ts)));
        }
        Ok(out)
    }

    /// One page of a series' raw point blocks overlapping `[from_ts, to_ts)`: at most `blocks`
    /// blocks after stream index `after` (exclusive; -1 for the first page), as
    /// (first index, points), in order. The points API streams a range page by page.
    ///
    /// # Errors
    /// A database failure or a corrupt chunk.
    pub async fn point_blocks(
        &self,
        id: i64,
        dim: usize,
        (from_ts, to_ts): (i64, i64),
        after: i64,
        blocks: i64,
    ) -> Result<Vec<(i64, Vec<(i64, Vec<f64>)>)>, StorageError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT first_index, data FROM point_chunks WHERE series_id = $1 AND last_ts >= $2 AND first_ts < $3 \
             AND first_index > $4 ORDER BY first_index LIMIT $5",
        )
        .bind(id)
        .bind(from_ts)
        .bind(to_ts)
        .bind(after)
        .bind(blocks)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(|(first, data)| Ok((first, decode_points(&data, dim)?))).collect()
    }

    /// The span and size of a series' stored points overlapping `[from_ts, to_ts)`: the first
    /// and last timestamps of the overlapping blocks and their point count (an upper bound of
    /// the points inside), or `None` when no block overlaps.
    ///
    /// # Errors
    /// A database failure.
    pub async fn point_span(&self, id: i64, from_ts: i64, to_ts: i64) -> Result<Option<(i64, i64, i64)>, StorageError> {
        let (lo, hi, n): (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(first_ts), MAX(last_ts), CAST(SUM(n) AS BIGINT) FROM point_chunks \
             WHERE series_id = $1 AND last_ts >= $2 AND first_ts < $3",
        )
        .bind(id)
        .bind(from_ts)
        .bind(to_ts)
        .fetch_one(&self.read)
        .await?;
        Ok(match (lo, hi, n) {
            (Some(lo), Some(hi), Some(n)) => Some((lo, hi, n)),
            _ => None,
        })
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
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT first_index, data FROM point_chunks WHERE series_id = $1 AND first_index < $2 \
             AND first_index + n > $3 ORDER BY first_index",
        )
        .bind(id)
        .bind(to)
        .bind(from)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for (first, data) in rows {
            for (k, (ts, v)) in decode_points(&data, dim)?.into_iter().enumerate() {
                let i = first + k as i64;
                if (from..to).contains(&i) {
                    out.push((i, ts, v));
                }
            }
        }
        Ok(out)
    }

    /// The stream index of a series' first stored point (None when it has none): points
    /// before it were removed by retention.
    ///
    /// # Errors
    /// A database failure.
    pub async fn first_stored_index(&self, id: i64) -> Result<Option<i64>, StorageError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT first_index FROM point_chunks WHERE series_id = $1 ORDER BY first_index LIMIT 1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Stored points of a series (one past the highest stored index).
    ///
    /// # Errors
    /// A database failure.
    pub async fn point_count(&self, id: i64) -> Result<i64, StorageError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(first_index + n), 0) FROM point_chunks WHERE series_id = $1")
                .bind(id)
                .fetch_one(&self.read)
                .await?;
        Ok(n)
    }

    /// Score blocks of a series ending in `from_ts <= end_ts < to_ts`, in order.
    ///
    /// # Errors
    /// A database failure or a corrupt block.
    pub async fn scores(&self, id: i64, from_ts: i64, to_ts: i64) -> Result<Vec<ScoreRow>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT first_index, end_ts, score, threshold, anomaly, warming_up, anomaly_version FROM score_chunks \
             WHERE series_id = $1 AND end_ts >= $2 AND end_ts < $3 ORDER BY first_index",
        )
        .bind(id)
        .bind(from_ts)
        .bind(to_ts)
        .fetch_all(&self.read)
        .await?)
    }
}
