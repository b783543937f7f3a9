//! One module per subcommand; `run` dispatches. Commands return `anyhow::Result` because they
//! sit at the binary's edge and only report.

pub mod bench;
pub mod detect;

use crate::cli::{BenchCommand, Cli, Command};

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command reports; the binary prints it as one line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect(args) => detect::run(&args),
        Command::Bench(BenchCommand::Offline(args)) => bench::offline(&args),
        Command::Bench(BenchCommand::Engine(args)) => bench::engine(&args),
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
