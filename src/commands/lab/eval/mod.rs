//! `driftwatch eval ...`: detection quality on benchmark folders, scored with the benchmarks' own
//! rules (the pure scorers of `driftwatch-eval`), with cross-validated settings. Long runs are
//! separate commands; the test suite runs each on a small generated folder.

mod cpd;

use clap::Subcommand;

/// `driftwatch eval ...`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Change points over a benchmark folder (the TSSB layout `desc.txt` + `NAME.txt`, or CSV
    /// files with a `truth.json`): covering and F1 (margin 5, TCPDBench definitions) per series
    /// and in the mean, beside the published scores when the folder has them; `--folds K`
    /// cross-validates the method's settings.
    Cpd(cpd::Args),
}

/// Runs the command.
///
/// # Errors
/// Unreadable folders or files, or settings the engine refuses.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Cpd(args) => cpd::run(&args),
    }
}
