-- Issue 23: a label keeps the times of its window beside its rows, so an export (and anyone
-- reading labels without the project's pool) sees when, not only where. start_ts is the time of
-- the window's first point, end_ts of its last (the window is [start_index, end_index)). NULL
-- for labels stored before this migration; the API fills them from the pool. Kept in step with
-- ../sqlite/0006_ui_label_times.sql.
ALTER TABLE labeling_labels ADD COLUMN start_ts BIGINT;
ALTER TABLE labeling_labels ADD COLUMN end_ts   BIGINT;
