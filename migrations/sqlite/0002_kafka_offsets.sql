-- SQLite flavour of ../postgres/0002_kafka_offsets.sql.
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
