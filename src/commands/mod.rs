//! The edge: the command tree (clap derive) and one module per command, each owning its
//! arguments and behaviour. The lab commands (benchmarks and experiments) are grouped in
//! [`lab`] and listed in their own `--help` section. Commands return `anyhow::Result` because
//! they sit at the binary's edge and only report.

pub mod detect;
pub mod generate;
pub mod host;
pub mod lab;
pub mod replay;
pub mod token;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::Settings;

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
    Detect(detect::Args),
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
    Replay(replay::Args),
    /// Produce demo series with change points to Kafka, in real time (the compose stack's data
    /// generator).
    Generate(generate::Args),
    /// Exit 0 when a URL answers 2xx within two seconds, else 1 (container health checks).
    Probe {
        /// The URL, e.g. http://127.0.0.1:8080/readyz.
        url: String,
    },
    /// API tokens for `auth.mode = "tokens"`: create (printed once), list, revoke. Works on the
    /// configured storage directly (the same settings as `serve`).
    #[command(subcommand)]
    Token(token::Command),
    /// The lab commands (`bench ...`, `leiad ...`), listed in their own help section.
    #[command(flatten)]
    Lab(lab::LabCommand),
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

/// The command tree: the user's commands under "Commands", the lab commands hidden there and
/// listed under their own heading after them.
pub fn command() -> clap::Command {
    let lab = lab::LabCommand::augment_subcommands(clap::Command::new("lab"));
    let mut section = String::from("Lab commands (benchmarks and experiments; not needed to run the service):\n");
    let mut cmd = Cli::command();
    for sub in lab.get_subcommands() {
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        section.push_str(&format!("  {:<9} {about}\n", sub.get_name()));
        cmd = cmd.mut_subcommand(sub.get_name(), |s| s.hide(true));
    }
    cmd.after_help(section)
}

/// Parses the process's command line (exits with usage on an error, as clap does).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command reports; the binary prints it as one line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect(args) => detect::run(&args),
        Command::Config(ConfigCommand::Show { config }) => {
            print!("{}", Settings::load(config.as_deref(), std::env::vars())?.show());
            Ok(())
        }
        Command::Serve { config } => serve(config.as_deref()),
        Command::Replay(args) => replay::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Probe { url } => generate::probe(&url),
        Command::Token(command) => token::run(command),
        Command::Lab(command) => command.run(),
    }
}

/// `driftwatch serve`: logs to stderr (`RUST_LOG` filters), serves until Ctrl-C or SIGTERM.
fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config, std::env::vars())?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let app = crate::server::Application::build(settings).await?;
        app.run_until_stopped(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            tracing::info!("Shutting down.");
        })
        .await
    })
}
