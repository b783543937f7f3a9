//! The `driftwatch` binary: parses the command line and hands over to `driftwatch::commands`.
//! `anyhow` lives only here, at the edge; errors print as one line and exit non-zero.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = driftwatch::cli::Cli::parse();
    match driftwatch::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
