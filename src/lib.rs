//! # driftwatch
//!
//! The service around the iCID engine (`driftwatch-icid`) and the LEIAD labeling core
//! (`driftwatch-leiad`): command-line entry points, input readers, ingest, storage, HTTP,
//! Kafka and metrics. The numeric work lives in the pure crates under `crates/`; this crate
//! owns everything that touches files, threads, pools and the outside world.
//!
//! # Layers (a module uses only modules of its own layer or below; see ARCHITECTURE.md)
//! 1. Foundations, pure: [`clock`], [`config`], [`decode`] (the one point format), [`input`].
//! 2. Infrastructure: [`metrics`], [`pipeline`] (detector threads), [`storage`] (all SQL).
//! 3. Service: [`service`] (write path, recovery, checkpoints, retention), [`labeling`] (the
//!    LEIAD loop), [`auth`] (tokens and roles).
//! 4. Adapters: [`http`] (axum API and page), [`kafka`] (the Kafka source).
//! 5. Composition root: [`server`], the only module that names HTTP, Kafka and the labeling
//!    worker together.
//! 6. Edge: [`commands`] (the command tree, one module per command; lab commands in
//!    [`commands::lab`]). `anyhow` lives here and in the binary.

pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
pub mod decode;
pub mod http;
pub mod input;
pub mod kafka;
pub mod labeling;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod service;
pub mod storage;
