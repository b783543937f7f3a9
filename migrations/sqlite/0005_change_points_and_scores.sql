-- Row-precise change points (issue 18) and the calibrated anomaly score (issue 19). Kept in step
-- with ../postgres/0005_change_points_and_scores.sql.

-- The change placed to the point, inside [start_index − window, end_index). NULL for intervals
-- stored before this migration (they have only their span).
ALTER TABLE intervals ADD COLUMN change_point INTEGER;
ALTER TABLE intervals ADD COLUMN change_ts    INTEGER;

-- 1 when some of the block's anomaly scores were given while the score was warming up (they are
-- 0 and mean nothing).
ALTER TABLE score_chunks ADD COLUMN warming_up INTEGER NOT NULL DEFAULT 0;
-- Which anomaly score the block holds: 1 = the window-relative iNNE score of earlier versions
-- (every row stored before this migration), 2 = the calibrated score (crates/driftwatch-icid/src/
-- anomaly.rs: near 1 means rarer than anything in the series' recent history). Old rows keep
-- their values and their meaning; the API reports the version beside them.
ALTER TABLE score_chunks ADD COLUMN anomaly_version INTEGER NOT NULL DEFAULT 1;
