//! `driftwatch eval ...`: detection quality on benchmark folders, scored with the benchmarks' own
//! rules (the pure scorers of `driftwatch-eval`), with cross-validated settings. Long runs are
//! separate commands; the test suite runs each on a small generated folder.

mod cpd;
mod nab;

use anyhow::Context;
use clap::Subcommand;

/// `driftwatch eval ...`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Change points over a benchmark folder (the TSSB layout `desc.txt` + `NAME.txt`, or CSV
    /// files with a `truth.json`): covering and F1 (margin 5, TCPDBench definitions) per series
    /// and in the mean, beside the published scores when the folder has them; `--folds K`
    /// cross-validates the method's settings.
    Cpd(cpd::Args),
    /// The streaming anomaly score over NAB's data layout, point by point, scored with NAB's
    /// rules (standard, reward_low_FP_rate, reward_low_FN_rate), per category and overall; with
    /// `--grid`, leave-one-category-out choice of the settings; `--results` writes NAB's layout.
    Nab(nab::Args),
}

/// Runs the command.
///
/// # Errors
/// Unreadable folders or files, or settings the engine refuses.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Cpd(args) => cpd::run(&args),
        Command::Nab(args) => nab::run(&args),
    }
}

/// One setting of a method: `name → value`, as given to `--set` and `--grid`.
type Setting = std::collections::BTreeMap<String, String>;

/// The product of the grid's values, each on top of `base`.
fn expand_grid(base: &Setting, grid: &[String]) -> anyhow::Result<Vec<Setting>> {
    let mut out = vec![base.clone()];
    for g in grid {
        let (k, vs) = g.split_once('=').with_context(|| format!("--grid {g:?}: expected NAME=V1,V2,..."))?;
        out = out
            .iter()
            .flat_map(|s| {
                vs.split(',').map(move |v| {
                    let mut s = s.clone();
                    s.insert(k.trim().to_string(), v.trim().to_string());
                    s
                })
            })
            .collect();
    }
    Ok(out)
}

