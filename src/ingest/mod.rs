//! Ingest: turning bytes from any input into points for the detectors. Today it holds the one
//! point format and its decoder ([`decode`]); the HTTP and Kafka sources and the sharded
//! pipeline build on it.

pub mod decode;
