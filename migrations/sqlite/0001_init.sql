-- driftwatch storage, SQLite flavour. Kept in step with ../postgres/0001_init.sql: same
-- tables, columns and keys; only the types differ. Timestamps are epoch milliseconds.

CREATE TABLE series (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    dim               INTEGER NOT NULL,
    config            TEXT,                       -- detector configuration (JSON); NULL = defaults
    checkpoint        BLOB,                       -- serialised detector state
    checkpoint_points INTEGER NOT NULL DEFAULT 0, -- points the checkpoint has seen
    last_ts           INTEGER,                    -- last accepted timestamp
    created_at        INTEGER NOT NULL,
    created_by        TEXT    NOT NULL,
    updated_at        INTEGER NOT NULL,
    updated_by        TEXT    NOT NULL
);

-- Raw points, one row per series per block of points (first_index = stream index of the
-- block's first point). Writing the same block again replaces it: replays are idempotent.
CREATE TABLE point_chunks (
    series_id   INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    first_ts    INTEGER NOT NULL,
    last_ts     INTEGER NOT NULL,
    data        BLOB    NOT NULL,                 -- n × (ts i64 LE, dim × f64 LE)
    PRIMARY KEY (series_id, first_index)
);
CREATE INDEX point_chunks_by_time ON point_chunks (series_id, last_ts);

-- Change intervals: half-open [start, end) in stream indices and in timestamps.
CREATE TABLE intervals (
    series_id   INTEGER NOT NULL,
    start_index INTEGER NOT NULL,
    end_index   INTEGER NOT NULL,
    start_ts    INTEGER NOT NULL,
    end_ts      INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    peak_score  REAL    NOT NULL,
    psi         INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    explanation TEXT,                             -- JSON
    PRIMARY KEY (series_id, start_index)
);
CREATE INDEX intervals_by_time ON intervals (start_ts);
CREATE INDEX intervals_by_status ON intervals (status, series_id);

-- One row per completed detector block: the window score and the points' anomaly scores.
CREATE TABLE score_chunks (
    series_id   INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    end_ts      INTEGER NOT NULL,
    score       REAL,                             -- NULL while a window after a gap fills
    threshold   REAL,
    anomaly     BLOB    NOT NULL,                 -- n × f32 LE (empty when anomaly scores are off)
    PRIMARY KEY (series_id, first_index)
);
CREATE INDEX score_chunks_by_time ON score_chunks (series_id, end_ts);
