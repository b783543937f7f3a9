-- driftwatch storage, PostgreSQL flavour. Kept in step with ../sqlite/0001_init.sql: same
-- tables, columns and keys; only the types differ. Timestamps are epoch milliseconds.

CREATE TABLE series (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    dim               BIGINT  NOT NULL,
    config            TEXT,                       -- detector configuration (JSON); NULL = defaults
    checkpoint        BYTEA,                       -- serialised detector state
    checkpoint_points BIGINT  NOT NULL DEFAULT 0, -- points the checkpoint has seen
    last_ts           BIGINT ,                    -- last accepted timestamp
    created_at        BIGINT  NOT NULL,
    created_by        TEXT    NOT NULL,
    updated_at        BIGINT  NOT NULL,
    updated_by        TEXT    NOT NULL
);

-- Raw points, one row per series per block of points (first_index = stream index of the
-- block's first point). Writing the same block again replaces it: replays are idempotent.
CREATE TABLE point_chunks (
    series_id   BIGINT  NOT NULL,
    first_index BIGINT  NOT NULL,
    n           BIGINT  NOT NULL,
    first_ts    BIGINT  NOT NULL,
    last_ts     BIGINT  NOT NULL,
    data        BYTEA    NOT NULL,                 -- n × (ts i64 LE, dim × f64 LE)
    PRIMARY KEY (series_id, first_index)
);
CREATE INDEX point_chunks_by_time ON point_chunks (series_id, last_ts);

-- Change intervals: half-open [start, end) in stream indices and in timestamps.
CREATE TABLE intervals (
    series_id   BIGINT  NOT NULL,
    start_index BIGINT  NOT NULL,
    end_index   BIGINT  NOT NULL,
    start_ts    BIGINT  NOT NULL,
    end_ts      BIGINT  NOT NULL,
    detected_at BIGINT  NOT NULL,
    peak_score  DOUBLE PRECISION    NOT NULL,
    psi         BIGINT  NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    explanation TEXT,                             -- JSON
    PRIMARY KEY (series_id, start_index)
);
CREATE INDEX intervals_by_time ON intervals (start_ts);
CREATE INDEX intervals_by_status ON intervals (status, series_id);

-- One row per completed detector block: the window score and the points' anomaly scores.
CREATE TABLE score_chunks (
    series_id   BIGINT  NOT NULL,
    first_index BIGINT  NOT NULL,
    n           BIGINT  NOT NULL,
    end_ts      BIGINT  NOT NULL,
    score       DOUBLE PRECISION,                             -- NULL while a window after a gap fills
    threshold   DOUBLE PRECISION,
    anomaly     BYTEA    NOT NULL,                 -- n × f32 LE (empty when anomaly scores are off)
    PRIMARY KEY (series_id, first_index)
);
CREATE INDEX score_chunks_by_time ON score_chunks (series_id, end_ts);
