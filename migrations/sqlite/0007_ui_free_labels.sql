-- Issue 23: a label of a window nobody suggested (the analyst chose it) is stored with its own
-- source, `free`, not `suggestion`. SQLite cannot change a CHECK constraint in place, so the table
-- is rebuilt with the same columns, rows and index. Kept in step with
-- ../postgres/0007_ui_free_labels.sql.
CREATE TABLE labeling_labels_new (
    project_id     BIGINT NOT NULL,
    id             BIGINT NOT NULL,
    series_id      BIGINT NOT NULL,
    start_index    BIGINT NOT NULL,
    end_index      BIGINT NOT NULL,
    labels         TEXT   NOT NULL, -- one character per point: 1 anomaly, 0 normal
    anomalies      BIGINT NOT NULL, -- points labeled anomalous
    author         TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    source         TEXT   NOT NULL CHECK (source IN ('suggestion', 'interval', 'edit', 'free')),
    replaces       BIGINT,
    suggestion_id  BIGINT,
    undone_round   BIGINT,
    undone_at      BIGINT,
    undone_by      TEXT,
    start_ts       INTEGER,
    end_ts         INTEGER,
    PRIMARY KEY (project_id, id)
);
INSERT INTO labeling_labels_new (project_id, id, series_id, start_index, end_index, labels, anomalies, author,
    created_at, source, replaces, suggestion_id, undone_round, undone_at, undone_by, start_ts, end_ts)
SELECT project_id, id, series_id, start_index, end_index, labels, anomalies, author,
    created_at, source, replaces, suggestion_id, undone_round, undone_at, undone_by, start_ts, end_ts
FROM labeling_labels;
DROP TABLE labeling_labels;
ALTER TABLE labeling_labels_new RENAME TO labeling_labels;
CREATE INDEX labeling_labels_by_window ON labeling_labels (project_id, series_id, start_index);
