//! # driftwatch
//!
//! The service around the iCID engine (`driftwatch-icid`): command-line entry points, input
//! readers and, as the project grows, ingest, storage, HTTP and metrics. The numeric work lives in
//! the pure crates under `crates/`; this crate owns everything that touches files, threads pools
//! and the outside world.
//!
//! # Layout
//! * [`app`] — the running service: state, the write path, start-up and shutdown.
//! * [`auth`] — API tokens, roles, and the role each route needs.
//! * [`cli`] — the clap command tree.
//! * [`config`] — settings: defaults, TOML file, environment.
//! * [`http`] — the axum API and its JSON errors.
//! * [`input`] — reading series from CSV files, with errors that name file, row and reason.
//! * [`commands`] — one module per subcommand.
//! * [`ingest`] — the one point format every input uses (HTTP and Kafka), its decoder, and the
//!   Kafka source.
//! * [`labeling`] — the LEIAD labeling loop over stored series: sessions kept in step with the
//!   database, refits and live scoring by the project's lease holder.
//! * [`metrics`] — the Prometheus registry and every metric name.
//! * [`pipeline`] — series sharded over detector threads behind bounded queues.
//! * [`storage`] — SQLite or PostgreSQL behind one interface; the only module with SQL.

pub mod app;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod ingest;
pub mod input;
pub mod labeling;
pub mod metrics;
pub mod pipeline;
pub mod storage;
