-- The labeling loop (LEIAD in the service). Kept in step with ../postgres/0003_labeling.sql.
-- A project's session state is a function of its pool and its rounds in order: every instance
-- rebuilds the same state by replaying them, so any instance can serve a project's API.

-- A labeling project: a named pool of series (each frozen at `points` points when created),
-- a window budget, the session settings and the refit lease.
CREATE TABLE labeling_projects (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT   NOT NULL UNIQUE,
    spec         TEXT   NOT NULL, -- JSON: series [{id, name, points}], budget, half_window, seed
    round        BIGINT NOT NULL DEFAULT 0, -- the last round; each change opens the next
    refit_requested BIGINT NOT NULL DEFAULT 0, -- when a refit was last asked for (epoch ms)
    status       TEXT   NOT NULL DEFAULT 'preparing' CHECK (status IN ('preparing', 'ready', 'failed')),
    error        TEXT,
    lease_holder TEXT,            -- the instance running refits and live scoring
    lease_until  BIGINT,          -- epoch ms
    created_at   BIGINT NOT NULL,
    created_by   TEXT   NOT NULL
);

-- The change log: round N is the state after change N (a label, an undo, a veto, a restore).
CREATE TABLE labeling_rounds (
    project_id BIGINT NOT NULL,
    round      BIGINT NOT NULL,
    kind       TEXT   NOT NULL CHECK (kind IN ('label', 'undo', 'veto', 'restore')),
    target     BIGINT NOT NULL, -- the label (label, undo) or the labeling function (veto, restore)
    author     TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (project_id, round)
);

-- Labeled windows. A label's id is the round that added it. An edit is a new label that
-- `replaces` the old one (the old one is undone in the same round); an undo sets `undone_*`.
CREATE TABLE labeling_labels (
    project_id     BIGINT NOT NULL,
    id             BIGINT NOT NULL,
    series_id      BIGINT NOT NULL,
    start_index    BIGINT NOT NULL,
    end_index      BIGINT NOT NULL,
    labels         TEXT   NOT NULL, -- one character per point: 1 anomaly, 0 normal
    anomalies      BIGINT NOT NULL, -- points labeled anomalous
    author         TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    source         TEXT   NOT NULL CHECK (source IN ('suggestion', 'interval', 'edit')),
    replaces       BIGINT,
    suggestion_id  BIGINT,
    undone_round   BIGINT,
    undone_at      BIGINT,
    undone_by      TEXT,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX labeling_labels_by_window ON labeling_labels (project_id, series_id, start_index);

-- Suggested windows per round with why they were chosen, and who has them claimed.
CREATE TABLE labeling_suggestions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    BIGINT NOT NULL,
    round         BIGINT NOT NULL,
    rank          BIGINT NOT NULL,
    series_id     BIGINT NOT NULL,
    start_index   BIGINT NOT NULL,
    end_index     BIGINT NOT NULL,
    centre        BIGINT NOT NULL,
    score         REAL NOT NULL,
    probability   REAL NOT NULL,
    breakdown     TEXT   NOT NULL, -- JSON
    status        TEXT   NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'labeled', 'skipped')),
    claimed_by    TEXT,
    claimed_until BIGINT,
    created_at    BIGINT NOT NULL,
    UNIQUE (project_id, round, series_id, start_index)
);
CREATE INDEX labeling_suggestions_by_window ON labeling_suggestions (project_id, series_id, start_index);

-- Labeling functions as of the last label-model fit, for listing (vetoes live in the rounds).
CREATE TABLE labeling_lfs (
    project_id       BIGINT NOT NULL,
    lf_id            BIGINT NOT NULL,
    kind             TEXT   NOT NULL,
    params           TEXT   NOT NULL, -- JSON: the labels it was built from, its vote counts
    coverage         REAL NOT NULL,
    conflict         REAL NOT NULL,
    learned_accuracy REAL,
    golden_accuracy  REAL,
    active           BIGINT NOT NULL, -- 0/1
    vetoed           BIGINT NOT NULL, -- 0/1
    round            BIGINT NOT NULL,
    PRIMARY KEY (project_id, lf_id)
);

-- End-model versions with their metrics; the newest is the one in use.
CREATE TABLE labeling_models (
    project_id BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    round      BIGINT NOT NULL, -- the round it was trained at
    labels     BIGINT NOT NULL, -- labels in force then
    anomalies  BIGINT NOT NULL, -- anomalous points labeled then
    metrics    TEXT   NOT NULL, -- JSON
    model      BLOB   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, version)
);

-- Live anomaly probabilities from a project's end model, one row per scored block.
CREATE TABLE anomaly_probabilities (
    project_id  BIGINT NOT NULL,
    series_id   BIGINT NOT NULL,
    first_index BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    first_ts    BIGINT NOT NULL,
    last_ts     BIGINT NOT NULL,
    version     BIGINT NOT NULL, -- model version that scored it
    data        BLOB   NOT NULL, -- n × f32 LE
    PRIMARY KEY (project_id, series_id, first_index)
);
CREATE INDEX anomaly_probabilities_by_time ON anomaly_probabilities (series_id, last_ts);

-- Analysts' verdicts on detected change intervals (the latest verdict per interval).
CREATE TABLE interval_feedback (
    series_id   BIGINT NOT NULL,
    start_index BIGINT NOT NULL,
    verdict     TEXT   NOT NULL CHECK (verdict IN ('confirm', 'dismiss')),
    author      TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (series_id, start_index)
);
