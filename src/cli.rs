//! The command tree (clap derive). Only parsing lives here; behaviour is in `commands`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Streaming change-interval and anomaly detection (iCID + LEIAD).
#[derive(Debug, Parser)]
#[command(name = "driftwatch", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Detect change intervals in a CSV file with offline iCID and print JSON.
    Detect(DetectArgs),
    /// Benchmarks that print figures (not part of the test suite).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the service: HTTP ingest and queries, embedded SQLite unless DATABASE_URL says otherwise.
    Serve {
        /// TOML settings file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Stream a CSV file into a series, through a running service (--url) or an embedded one
    /// (the same storage `serve` uses), with a progress bar. Timestamps are start + i × interval,
    /// so replaying the same file again is counted as duplicates and stores nothing twice.
    Replay(ReplayArgs),
    /// Produce demo series with change points to Kafka, in real time (the compose stack's data
    /// generator).
    Generate(GenerateArgs),
    /// Exit 0 when a URL answers 2xx within two seconds, else 1 (container health checks).
    Probe {
        /// The URL, e.g. http://127.0.0.1:8080/readyz.
        url: String,
    },
    /// LEIAD: label-efficient interactive anomaly detection (replays and benchmarks).
    #[command(subcommand)]
    Leiad(LeiadCommand),
    /// API tokens for `auth.mode = "tokens"`: create (printed once), list, revoke. Works on the
    /// configured storage directly (the same settings as `serve`).
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `driftwatch token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (only its hash is stored: keep it now).
    Create {
        /// Unique name; writes made with the token are recorded under it.
        #[arg(long)]
        name: String,
        /// What it may do: reader (queries), analyst (queries and labeling), ingest (points),
        /// admin (everything).
        #[arg(long, value_enum)]
        role: crate::auth::Role,
        /// TOML settings file (environment variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List tokens (names, roles, creation and revocation times; never secrets).
    List {
        /// TOML settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Revoke a token by name (running instances stop accepting it within 10 s).
    Revoke {
        /// The token's name.
        name: String,
        /// TOML settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `driftwatch leiad ...`.
#[derive(Debug, Subcommand)]
pub enum LeiadCommand {
    /// Replay labeled series with a simulated analyst and print AP / ROC-AUC per round for LEIAD
    /// and its baselines, then a summary with paired differences over the seeds.
    Simulate(LeiadSimulateArgs),
    /// Write the synthetic labeled set (spikes, level shifts, variance bursts, seasonal breaks)
    /// as CSV files `timestamp,value,label` into a directory.
    Synth(LeiadSynthArgs),
    /// Interactive-speed benchmark on one core: prepare, foreground step after a label, end-model refit.
    Bench(LeiadBenchArgs),
}

/// `driftwatch leiad simulate`.
#[derive(Debug, clap::Args)]
pub struct LeiadSimulateArgs {
    /// A directory of CSV files (NAB layout: `timestamp,value`, labels from a JSON file; or files
    /// with a 0/1 `label` column), or one CSV file with a `label` column.
    pub data: PathBuf,
    /// NAB labels JSON (default: `combined_labels.json`, or `combined_windows.json` with
    /// --windows, in DATA's parent directory).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Use NAB's wide anomaly windows as ground truth instead of ±tolerance around each timestamp.
    #[arg(long)]
    pub windows: bool,
    /// Points on each side of a labeled anomaly timestamp that count as anomalous.
    #[arg(long, default_value_t = 5)]
    pub tolerance: usize,
    /// Seeds (paired comparisons are across them).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Windows labeled per seed.
    #[arg(long, default_value_t = 20)]
    pub max_windows: usize,
    /// Window counts the summary reports at (rounds never step over them).
    #[arg(long, value_delimiter = ',', default_value = "10,20")]
    pub checkpoints: Vec<usize>,
    /// Half-width of a suggested window, in points.
    #[arg(long, default_value_t = 200)]
    pub half_window: usize,
    /// End model: the gate between trees and the seed-anchored regression (default), or one of them.
    #[arg(long, value_enum, default_value_t = EndModelArg::Gate)]
    pub end_model: EndModelArg,
    /// Active-learning weights: LF disagreement, LF abstention, end-model uncertainty, novelty,
    /// seed-detector prior (default: the session's defaults).
    #[arg(long, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
    /// One JSON line per round (and one for the summary) instead of text.
    #[arg(long)]
    pub json: bool,
    /// After each seed, list the labeling functions with their statistics and the precision of
    /// their votes against the ground truth (with --json: one `{"seed", "lfs"}` line).
    #[arg(long)]
    pub show_lfs: bool,
    /// After each seed, list the windows the simulated analyst labeled, in order (with --json:
    /// one `{"seed", "labels"}` line).
    #[arg(long)]
    pub show_labels: bool,
    /// Session setting overrides, `NAME=VALUE` (anomaly_rate, ws_ratio, neg_ratio, human_weight,
    /// k_stat, k_repr, golden_every, max_lfs, iterations, learning_rate, max_depth, candidates,
    /// em_steps, em_unlabeled_weight (a number or `balanced`), anchor_weight, anchor_ridge, gate_margin).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub overrides: Vec<String>,
}

/// The end model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndModelArg {
    /// forust-ml gradient-boosted trees alone.
    Forust,
    /// Per refit, the trees or the anchored model, by cross-validation on the labeled windows.
    Select,
    /// Both the trees and the anchored model per refit; the one that ranked the analyst's later
    /// anomalies higher in the pool answers (the default).
    Gate,
    /// The seed-anchored logistic regression.
    Anchored,
    /// perpetual (needs the `leiad-perpetual` feature).
    Perpetual,
}

/// `driftwatch leiad synth`.
#[derive(Debug, clap::Args)]
pub struct LeiadSynthArgs {
    /// Output directory (created).
    pub out: PathBuf,
    /// Series.
    #[arg(long, default_value_t = 8)]
    pub series: usize,
    /// Points per series.
    #[arg(long, default_value_t = 5000)]
    pub len: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `driftwatch leiad bench`.
#[derive(Debug, clap::Args)]
pub struct LeiadBenchArgs {
    /// Pooled points (synthetic series of 5,000 points).
    #[arg(long, default_value_t = 100_000)]
    pub points: usize,
    /// Labeling functions to reach before timing the foreground step.
    #[arg(long, default_value_t = 50)]
    pub lfs: usize,
    /// Foreground steps timed.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// End-model refits timed.
    #[arg(long, default_value_t = 3)]
    pub refits: usize,
    /// End model: the gate between trees and the seed-anchored regression (default), or one of them.
    #[arg(long, value_enum, default_value_t = EndModelArg::Gate)]
    pub end_model: EndModelArg,
}

/// `driftwatch generate`. A later occurrence of an option overrides an earlier one, so a
/// command line from a compose file can be extended.
#[derive(Debug, clap::Args)]
#[command(args_override_self = true)]
pub struct GenerateArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to produce to.
    #[arg(long, default_value = "driftwatch.points")]
    pub topic: String,
    /// Series (keys `demo-000`, `demo-001`, ...).
    #[arg(long, default_value_t = 20)]
    pub series: usize,
    /// Points per second per series.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Points per message.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Mean points between changes of a series' distribution (mean or spread).
    #[arg(long, default_value_t = 3000)]
    pub change_every: usize,
    /// Stop after this many points per series (0 = run until stopped).
    #[arg(long, default_value_t = 0)]
    pub points: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `driftwatch replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// CSV file (as for `detect`).
    pub file: PathBuf,
    /// Series to write to.
    #[arg(long)]
    pub series: String,
    /// Columns to use, by header name or 0-based index.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Timestamp of the first row, epoch milliseconds.
    #[arg(long, default_value_t = 0)]
    pub start_ms: i64,
    /// Milliseconds between rows.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: i64,
    /// Rows per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// A running service; without it the pipeline runs embedded.
    #[arg(long)]
    pub url: Option<String>,
    /// TOML settings file for the embedded pipeline.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `driftwatch config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings (defaults, file, environment) as TOML, passwords masked.
    Show {
        /// TOML settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `driftwatch detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// CSV file: one row per time step, one column per dimension; the header line is optional.
    pub file: PathBuf,
    /// Columns to use, by header name or 0-based index, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Window length in rows (default: about sqrt(n), leaving at least 20 windows).
    #[arg(long, short = 'w')]
    pub window: Option<usize>,
    /// Threshold = mean + alpha * std of the point scores.
    #[arg(long, short = 'a', default_value_t = 2.0, allow_negative_numbers = true)]
    pub alpha: f64,
    /// `auto` (lowest approximate entropy over 2,4,8,16,32,64), a number, or a comma list of candidates.
    #[arg(long, default_value = "auto")]
    pub psi: String,
    /// Partitionings of the isolation kernel.
    #[arg(long, default_value_t = 200)]
    pub t: usize,
    /// Seed of the partitionings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Window layout: `shared` (the authors': neighbours share a row) or `halfopen`.
    #[arg(long, value_enum, default_value_t = LayoutArg::Shared)]
    pub layout: LayoutArg,
    /// Include the normalised point scores and the raw window scores.
    #[arg(long)]
    pub scores: bool,
    /// Worker threads; 0 = all cores.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Nearest-centre implementation (for checks and benchmarks).
    #[arg(long, value_enum, default_value_t = PathArg::Auto)]
    pub path: PathArg,
    /// Add compute time and peak memory to the output.
    #[arg(long)]
    pub timing: bool,
    /// `offline`: the batch method over the whole file. `online`: the streaming detector fed
    /// one row at a time (row index as timestamp), as the service runs it.
    #[arg(long, value_enum, default_value_t = ModeArg::Offline)]
    pub mode: ModeArg,
    /// online: points between scores (a divisor of the window; default: the window).
    #[arg(long)]
    pub hop: Option<usize>,
    /// online: windows buffered before detection starts.
    #[arg(long, default_value_t = 20)]
    pub warmup_windows: usize,
    /// online: re-select psi as the stream goes (tracks every candidate; more memory and time).
    #[arg(long)]
    pub online_psi: bool,
}

/// Offline or streaming detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Batch iCID over the whole file.
    Offline,
    /// The streaming detector, one row at a time.
    Online,
}

/// Window layouts on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// The authors' layout.
    Shared,
    /// Half-open windows.
    Halfopen,
}

/// Nearest-centre implementations on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// Widest SIMD level present.
    Auto,
    /// The scalar reference loop.
    Scalar,
    /// Fast path without SIMD intrinsics.
    Portable,
    /// Fast path, AVX2+FMA.
    Avx2,
    /// Fast path, AVX-512F.
    Avx512,
}

/// `driftwatch bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Offline iCID on the 100,000-point timing series (1-D and 8-D), one core and all cores,
    /// against the numpy reference when it is available. Prints one JSON line per measurement.
    Offline(BenchOfflineArgs),
    /// The streaming detector on one core: points per second and bytes per series for each
    /// scenario of the streaming issue, one JSON line each, plus the SIMD path's gain.
    Engine(BenchEngineArgs),
    /// End to end through Kafka: points produced to a topic, consumed by an in-process service
    /// (storage from DATABASE_URL, else a temporary SQLite), until every point's results are
    /// stored. Prints sustained points/s and the latency from producing the point that closes an
    /// interval to the interval being stored (p50, p99).
    Kafka(BenchKafkaArgs),
    /// The HTTP service under load: ingest of 1,000-point batches, then interval queries at a
    /// fixed rate while ingest goes on. Runs the service in-process (SQLite in a temp folder, or
    /// DATABASE_URL) unless --url names a running one.
    Http(BenchHttpArgs),
    /// A long run (10 minutes by default) of a `serve` child process at half its measured
    /// maximum ingest rate, with interval queries and an analyst labeling meanwhile; prints
    /// memory and p50/p99 latencies per period and a summary (SQLite, or DATABASE_URL).
    Soak(BenchSoakArgs),
}

/// `driftwatch bench soak`.
#[derive(Debug, clap::Args)]
pub struct BenchSoakArgs {
    /// Length of the run, seconds.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Ingest rate, points/s; measured (for --max-secs) and taken at --fraction when absent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds of the maximum-rate measurement.
    #[arg(long, default_value_t = 20)]
    pub max_secs: u64,
    /// Fraction of the measured maximum to run at.
    #[arg(long, default_value_t = 0.5)]
    pub fraction: f64,
    /// Series the points are spread over (batches of 1,000 points).
    #[arg(long, default_value_t = 64)]
    pub series: usize,
    /// Interval queries per second (a dashboard fleet; `bench http` measures 1,000/s for 10 s).
    #[arg(long, default_value_t = 200)]
    pub query_rate: u64,
    /// Milliseconds between the analyst's labels (a brisk human: one window every 5 s).
    #[arg(long, default_value_t = 5000)]
    pub label_every_ms: u64,
    /// Leave labeling out (ingest and queries only).
    #[arg(long)]
    pub no_labeling: bool,
    /// Seconds into the run when the analyst creates the project: its pool is the four series'
    /// points by then (about 47,000 each at 200,000 points/s over 64 series after 15 s).
    #[arg(long, default_value_t = 15)]
    pub project_after_secs: u64,
    /// Seconds per reported period.
    #[arg(long, default_value_t = 30)]
    pub report_secs: u64,
}

/// `driftwatch bench kafka`.
#[derive(Debug, clap::Args)]
pub struct BenchKafkaArgs {
    /// Kafka bootstrap servers (`scripts/kafka.sh start` runs a local tansu broker).
    #[arg(long, default_value = "127.0.0.1:59092")]
    pub brokers: String,
    /// Series the points are spread over (keys; each has one change point).
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// Points in all.
    #[arg(long, default_value_t = 2_000_000)]
    pub points: usize,
    /// Points per Kafka message.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Produce rate of the latency phase, points per second (the throughput phase produces as
    /// fast as it can).
    #[arg(long, default_value_t = 200_000)]
    pub rate: u64,
    /// Phases to run: `max` (throughput), `paced` (latency at --rate), or both.
    #[arg(long, value_delimiter = ',', default_value = "max,paced")]
    pub phases: Vec<String>,
}

/// `driftwatch bench http`.
#[derive(Debug, clap::Args)]
pub struct BenchHttpArgs {
    /// A running service to load instead of an in-process one.
    #[arg(long)]
    pub url: Option<String>,
    /// Series the points are spread over.
    #[arg(long, default_value_t = 64)]
    pub series: usize,
    /// Batches of 1,000 points to post.
    #[arg(long, default_value_t = 600)]
    pub batches: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Interval queries per second during the second phase.
    #[arg(long, default_value_t = 1000)]
    pub query_rate: u64,
    /// Seconds of the query phase.
    #[arg(long, default_value_t = 10)]
    pub query_seconds: u64,
    /// Batches per second posted during the query phase (200 = the 200,000 points/s target).
    #[arg(long, default_value_t = 200)]
    pub ingest_rate: u64,
}

/// `driftwatch bench engine`.
#[derive(Debug, clap::Args)]
pub struct BenchEngineArgs {
    /// Points timed per single-series scenario (after warm-up).
    #[arg(long, default_value_t = 2_000_000)]
    pub points: usize,
    /// Series in the many-series scenarios.
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

/// `driftwatch bench offline`.
#[derive(Debug, clap::Args)]
pub struct BenchOfflineArgs {
    /// Folder of the numpy reference (`run_ref.py`, `gen_data.py`); skipped when absent.
    #[arg(long, default_value = "../shared/reference/icid")]
    pub reference_dir: PathBuf,
    /// Python with numpy for the reference.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Folder with `timing_uni_100k.csv` and `timing_mv_100k_8.csv`; generated when absent.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Rows of the generated series (ignored with existing files).
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Repetitions of each driftwatch run; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}
