-- Kafka source positions. A partition's row is written after its results and its detectors'
-- checkpoints are durable, so it is the offset those checkpoints reflect: a partition assigned
-- to any instance starts exactly here (Kafka's own committed offset is kept in step for lag
-- tooling, but this row decides).
CREATE TABLE kafka_offsets (
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset  BIGINT  NOT NULL, -- the first offset not yet reflected
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);

-- Detector checkpoints leave the series row for a table of their own: a partition's checkpoint
-- transaction (megabytes) must not hold the series rows' locks that every results write
-- takes (measured: with the checkpoint on the series row, results writes of the same series
-- waited 1-4 s behind a concurrent checkpoint write).
CREATE TABLE checkpoints (
    series_id BIGINT NOT NULL PRIMARY KEY,
    state     BYTEA  NOT NULL, -- serialised detector state
    points    BIGINT NOT NULL  -- points it has seen
);
INSERT INTO checkpoints (series_id, state, points)
    SELECT id, checkpoint, checkpoint_points FROM series WHERE checkpoint IS NOT NULL;
ALTER TABLE series DROP COLUMN checkpoint;
ALTER TABLE series DROP COLUMN checkpoint_points;
