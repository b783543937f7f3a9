//! `driftwatch bench ...`: benchmarks that print figures, one module each. Not part of the
//! test suite (the suite runs each once in a smoke mode where it has one); the figures and the
//! commands that reproduce them are in BENCHMARKS.md.

use clap::Subcommand;

mod engine;
mod http;
mod kafka;
mod offline;
mod soak;

/// `driftwatch bench ...`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline iCID on the 100,000-point timing series (1-D and 8-D), one core and all cores,
    /// against the numpy reference when it is available. Prints one JSON line per measurement.
    Offline(offline::Args),
    /// The streaming detector on one core: points per second and bytes per series for each
    /// scenario of the streaming issue, one JSON line each, plus the SIMD path's gain.
    Engine(engine::Args),
    /// End to end through Kafka: points produced to a topic, consumed by an in-process service
    /// (storage from DATABASE_URL, else a temporary SQLite), until every point's results are
    /// stored. Prints sustained points/s and the latency from producing the point that closes an
    /// interval to the interval being stored (p50, p99).
    Kafka(kafka::Args),
    /// The HTTP service under load: ingest of 1,000-point batches, then interval queries at a
    /// fixed rate while ingest goes on. Runs the service in-process (SQLite in a temp folder, or
    /// DATABASE_URL) unless --url names a running one.
    Http(http::Args),
    /// A long run (10 minutes by default) of a `serve` child process at half its measured
    /// maximum ingest rate, with interval queries and an analyst labeling meanwhile; prints
    /// memory and p50/p99 latencies per period and a summary (SQLite, or DATABASE_URL).
    Soak(soak::Args),
}

/// Runs a benchmark.
///
/// # Errors
/// Whatever the benchmark reports.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Offline(args) => offline::run(&args),
        Command::Engine(args) => engine::run(&args),
        Command::Kafka(args) => kafka::run(&args),
        Command::Http(args) => http::run(&args),
        Command::Soak(args) => soak::run(&args),
    }
}
