//! The lab commands: benchmarks, soaks and experiments that print figures (`bench ...`,
//! `leiad ...`, `eval ...`). Same binary and the same command names as always, listed in their own
//! `--help` section, apart from the commands that run and feed the service.
//!
//! A lab command group is a module with a clap `Command` (a `Subcommand` enum) and
//! `run(Command) -> anyhow::Result<()>`; adding one is that module plus one line in
//! [`lab_commands!`] below (its doc comment is the group's `--help` line).

/// Declares the lab modules, the [`LabCommand`] enum over their `Command`s, and its dispatch.
macro_rules! lab_commands {
    ($($(#[doc = $doc:literal])* $variant:ident => $module:ident,)*) => {
        $(pub mod $module;)*

        /// The lab command groups, flattened into the top-level command tree.
        #[derive(Debug, clap::Subcommand)]
        pub enum LabCommand {
            $(
                $(#[doc = $doc])*
                #[command(subcommand)]
                $variant($module::Command),
            )*
        }

        impl LabCommand {
            /// Runs the command.
            ///
            /// # Errors
            /// Whatever the command reports.
            pub fn run(self) -> anyhow::Result<()> {
                match self {
                    $(LabCommand::$variant(command) => $module::run(command),)*
                }
            }
        }
    };
}

lab_commands! {
    /// Benchmarks that print figures (not part of the test suite).
    Bench => bench,
    /// LEIAD: label-efficient interactive anomaly detection (replays and benchmarks).
    Leiad => leiad,
    /// Detection quality on benchmark folders with the benchmarks' own scorers.
    Eval => eval,
}
