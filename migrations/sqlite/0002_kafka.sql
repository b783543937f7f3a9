-- SQLite flavour of ../postgres/0002_kafka.sql.
-- Kafka source positions. A partition's row is written after its results and its detectors'
-- checkpoints are durable, so it is the offset those checkpoints reflect: a partition assigned
-- to any instance starts exactly here (Kafka's own committed offset is kept in step for lag
-- tooling, but this row decides).
CREATE TABLE kafka_offsets (
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL, -- the first offset not yet reflected
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);

-- Detector checkpoints get a table of their own (see ../postgres/0002_kafka.sql for why).
CREATE TABLE checkpoints (
    series_id INTEGER NOT NULL PRIMARY KEY,
    state     BLOB    NOT NULL, -- serialised detector state
    points    INTEGER NOT NULL  -- points it has seen
);
INSERT INTO checkpoints (series_id, state, points)
    SELECT id, checkpoint, checkpoint_points FROM series WHERE checkpoint IS NOT NULL;
ALTER TABLE series DROP COLUMN checkpoint;
ALTER TABLE series DROP COLUMN checkpoint_points;
