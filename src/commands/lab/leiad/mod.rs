//! `driftwatch leiad simulate | synth | bench`: the edges of the pure `driftwatch-leiad` crate
//! (replays with a simulated analyst, the synthetic labeled set, interactive-speed timings).

use std::path::PathBuf;

use clap::Subcommand;
mod simulate;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use driftwatch_leiad::{Leiad, LeiadConfig, Pool, Prepared, SeriesInput, Window};
use serde_json::json;

use simulate::{EndModelArg, backend};

/// `driftwatch leiad ...`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay labeled series with a simulated analyst and print AP / ROC-AUC per round for LEIAD
    /// and its baselines, then a summary with paired differences over the seeds.
    Simulate(simulate::Args),
    /// Write the synthetic labeled set (spikes, level shifts, variance bursts, seasonal breaks)
    /// as CSV files `timestamp,value,label` into a directory.
    Synth(SynthArgs),
    /// Interactive-speed benchmark on one core: prepare, foreground step after a label, end-model refit.
    Bench(BenchArgs),
}

/// `driftwatch leiad synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
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
pub struct BenchArgs {
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

/// Runs a LEIAD command.
///
/// # Errors
/// Whatever the command reports.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Synth(args) => synth(&args),
        Command::Bench(args) => bench(&args),
    }
}

fn synth(args: &SynthArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("Failed to create {}", args.out.display()))?;
    for (k, s) in driftwatch_testkit::labeled_set(args.series, args.len, args.seed).iter().enumerate() {
        let path = args.out.join(format!("synthetic_{k:02}.csv"));
        let mut text = String::from("timestamp,value,label\n");
        for (t, (v, l)) in s.values.iter().zip(&s.labels).enumerate() {
            text.push_str(&format!("{},{v},{}\n", t * 300, u8::from(*l)));
        }
        std::fs::write(&path, text).with_context(|| format!("Failed to write {}", path.display()))?;
    }
    println!("wrote {} series of {} points to {}", args.series, args.len, args.out.display());
    Ok(())
}

/// `leiad bench`.
///
/// # Errors
/// A failed fit.
fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    crate::commands::host::init_threads(1);
    let per = 5000;
    let set = driftwatch_testkit::labeled_set(args.points.div_ceil(per), per, 7);
    let truth: Vec<bool> = set.iter().flat_map(|s| s.labels.iter().copied()).collect();
    let series: Vec<SeriesInput> = set
        .iter()
        .enumerate()
        .map(|(k, s)| SeriesInput { name: format!("s{k}"), values: s.values.clone(), period_secs: Some(300.0) })
        .collect();
    let t = Instant::now();
    let prep = Arc::new(Prepared::new(Pool::new(series)?, 0));
    let prepare_s = t.elapsed().as_secs_f64();
    let mut cfg = LeiadConfig::default();
    cfg.max_lfs = args.lfs.max(cfg.seed_lfs.len() + 2);
    cfg.end_model.backend = backend(args.end_model);
    let mut session = Leiad::new(prep.clone(), cfg)?;
    // Anomalous windows, one per event, in a fixed order: each adds prototype LFs.
    let events: Vec<Window> = set
        .iter()
        .enumerate()
        .flat_map(|(k, s)| s.events.iter().map(move |&(t0, _)| (k, t0)))
        .map(|(k, t0)| Window { series: k, start: t0.saturating_sub(200), end: (t0 + 200).min(per) })
        .collect();
    let mut next = events.iter();
    let answer = |w: &Window| -> Vec<bool> { prep.pool().global(w).map(|i| truth[i]).collect() };
    while session.lf_list().len() < args.lfs {
        let Some(w) = next.next() else { break };
        session.add_labels(*w, &answer(w))?;
    }
    session.step();
    let mut fg = Vec::new();
    for _ in 0..args.steps {
        let Some(w) = next.next() else { break };
        let t = Instant::now();
        session.add_labels(*w, &answer(w))?;
        let step = session.step();
        fg.push(t.elapsed().as_secs_f64());
        std::hint::black_box(step);
    }
    let mut refit = Vec::new();
    for _ in 0..args.refits {
        let t = Instant::now();
        let model = session.refit_end_model()?;
        session.install_end_model(model);
        refit.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let active = session.lfs().iter().filter(|l| l.active).count();
    println!(
        "{}",
        json!({
            "points": prep.pool().len(), "lfs_total": session.lf_list().len(), "lfs_active": active,
            "labels": session.labels().len(), "training_rows": session.training_set().len(),
            "prepare_s": prepare_s, "foreground_step_median_s": median(&mut fg), "foreground_steps": fg.len(),
            "foreground_step_max_s": fg.iter().copied().fold(0.0, f64::max),
            "end_model_refit_median_s": median(&mut refit), "refits": refit.len(), "threads": 1,
        })
    );
    Ok(())
}
