//! Ingest: turning bytes from any input into points for the detectors: the one point format
//! and its decoder ([`decode`]), shared by HTTP bodies, files and Kafka messages, and the Kafka
//! source ([`kafka`]), a consumer group that feeds the pipeline at least once.

pub mod decode;
pub mod kafka;
