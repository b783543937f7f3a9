//! One module per subcommand; `run` dispatches. Commands return `anyhow::Result` because they
//! sit at the binary's edge and only report.

pub mod bench;
pub mod bench_kafka;
pub mod detect;
pub mod generate;
pub mod leiad;
pub mod replay;
pub mod soak;
pub mod token;

use crate::cli::{BenchCommand, Cli, Command, ConfigCommand, LeiadCommand, TokenCommand};
use crate::config::Settings;

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command reports; the binary prints it as one line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect(args) => detect::run(&args),
        Command::Bench(BenchCommand::Offline(args)) => bench::offline(&args),
        Command::Bench(BenchCommand::Engine(args)) => bench::engine(&args),
        Command::Bench(BenchCommand::Http(args)) => bench::http(&args),
        Command::Bench(BenchCommand::Soak(args)) => soak::run(&args),
        Command::Bench(BenchCommand::Kafka(args)) => bench_kafka::run(&args),
        Command::Config(ConfigCommand::Show { config }) => {
            print!("{}", Settings::load(config.as_deref(), std::env::vars())?.show());
            Ok(())
        }
        Command::Serve { config } => serve(config.as_deref()),
        Command::Replay(args) => replay::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Probe { url } => generate::probe(&url),
        Command::Leiad(LeiadCommand::Simulate(args)) => leiad::simulate(&args),
        Command::Leiad(LeiadCommand::Synth(args)) => leiad::synth(&args),
        Command::Leiad(LeiadCommand::Bench(args)) => leiad::bench(&args),
        Command::Token(TokenCommand::Create { name, role, config }) => token::create(&name, role, config.as_deref()),
        Command::Token(TokenCommand::List { config }) => token::list(config.as_deref()),
        Command::Token(TokenCommand::Revoke { name, config }) => token::revoke(&name, config.as_deref()),
    }
}

/// Installs rayon's global pool with `threads` workers (0 = all cores). Later calls keep the
/// first pool.
pub fn init_threads(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `driftwatch serve`: logs to stderr (`RUST_LOG` filters), serves until Ctrl-C or SIGTERM.
fn serve(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config, std::env::vars())?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let app = crate::app::Application::build(settings).await?;
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
