//! The `driftwatch` binary: parses the command line and hands over to `driftwatch::commands`.
//! `anyhow` lives only here, at the edge; errors print as one line and exit non-zero.

fn main() -> std::process::ExitCode {
    match driftwatch::commands::run(driftwatch::commands::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
