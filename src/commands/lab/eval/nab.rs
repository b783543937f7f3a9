//! `driftwatch eval nab DATA`: the streaming anomaly score over the Numenta Anomaly Benchmark.
//!
//! Each file is fed point by point through the anomaly scorer (no look-ahead, nothing shared
//! between files) and scored with NAB v1.1's rules (`driftwatch-eval`): the threshold optimised
//! over the corpus, the three profiles, normalised between the null and the perfect detector.
//! Categories are the folders of DATA; the windows come from `combined_windows.json` beside
//! them. With `--grid`, every setting runs and leave-one-category-out chooses a setting and a
//! threshold on the other categories, then scores the held-out one at that threshold (the honest
//! figure) and at its own best threshold (what NAB's scorer reports for a corpus).
//! `--results DIR` writes NAB's results layout (`DIR/<detector>/<category>/<detector>_<file>`) so
//! NAB's own scorer can read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use driftwatch_eval::nab::{self, NabFile, NabScorer, Profile};
use driftwatch_icid::{Pushed, StreamConfig, StreamDetector};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::commands::host::init_threads;
use crate::config::DetectorSettings;

/// `driftwatch eval nab`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The NAB data folder: category folders of `timestamp,value` CSV files and
    /// `combined_windows.json`.
    pub data: PathBuf,
    /// Settings of the anomaly scorer as `name=value` (reference, neighbours, calibration,
    /// refractory, warmup, differences), repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Settings to choose from by leave-one-category-out, as `name=v1,v2,...` (repeatable; the
    /// product is searched).
    #[arg(long = "grid", value_name = "NAME=V1,V2")]
    pub grid: Vec<String>,
    /// Write NAB's results layout under this folder.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Detector name in the results layout.
    #[arg(long, default_value = "driftwatch")]
    pub detector: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Worker threads; 0 = all cores. Files run in parallel, one thread each.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// One NAB file with its values.
struct Series {
    file: NabFile,
    values: Vec<f64>,
    key: String,
}

use super::{Setting, expand_grid};

/// Runs the command.
///
/// # Errors
/// Unreadable folder or files, or settings the scorer refuses.
pub fn run(args: &Args) -> anyhow::Result<()> {
    init_threads(args.threads);
    let series = load(&args.data)?;
    let base: Setting = args
        .set
        .iter()
        .map(|p| {
            let (k, v) = p.split_once('=').with_context(|| format!("--set {p:?}: expected NAME=VALUE"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<anyhow::Result<_>>()?;
    let grid = expand_grid(&base, &args.grid)?;
    let files: Vec<NabFile> = series.iter().map(|s| s.file.clone()).collect();
    let started = Instant::now();
    // scores[setting][file]
    let scores: Vec<Vec<Vec<f64>>> = grid
        .iter()
        .map(|setting| {
            let cfg = config(setting)?;
            series
                .par_iter()
                .map(|s| score_file(&cfg, &s.file.timestamps, &s.values))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<_>>()?;
    let elapsed = started.elapsed().as_secs_f64();
    let points: usize = series.iter().map(|s| s.values.len()).sum();
    let mut out = serde_json::Map::new();
    out.insert("data".into(), json!(args.data.display().to_string()));
    out.insert("files".into(), json!(series.len()));
    out.insert("points".into(), json!(points));
    out.insert("seconds".into(), json!(elapsed));
    let base_at = grid.iter().position(|g| *g == base).unwrap_or(0);
    // The base setting: corpus and per-category scores for every profile.
    let mut profiles = serde_json::Map::new();
    for (name, profile) in Profile::ALL {
        let scorer = NabScorer::new(&files, &scores[base_at], profile)?;
        let all = scorer.optimize(&scorer.all())?;
        let at_corpus = scorer.per_category(Some(all.threshold));
        let own = scorer.per_category(None);
        let cats: BTreeMap<&String, Value> = own
            .iter()
            .map(|(c, s)| (c, json!({"own_threshold": s.normalized, "corpus_threshold": at_corpus[c].normalized})))
            .collect();
        profiles.insert(name.to_string(), json!({"score": all.normalized, "threshold": all.threshold, "categories": cats}));
    }
    out.insert("setting".into(), json!(grid[base_at]));
    out.insert("profiles".into(), Value::Object(profiles));
    if grid.len() > 1 || !args.grid.is_empty() {
        out.insert("loco".into(), leave_one_category_out(&files, &scores, &grid)?);
    }
    if let Some(dir) = &args.results {
        write_results(dir, &args.detector, &series, &scores[base_at])?;
        out.insert("results".into(), json!(dir.join(&args.detector).display().to_string()));
    }
    let out = Value::Object(out);
    if args.json {
        println!("{out}");
    } else {
        print_tables(&out);
    }
    Ok(())
}

/// Leave one category out over the grid (standard profile): choose the setting and its
/// threshold on the other categories, score the held-out one at that threshold and at its own.
fn leave_one_category_out(files: &[NabFile], scores: &[Vec<Vec<f64>>], grid: &[Setting]) -> anyhow::Result<Value> {
    let scorers: Vec<NabScorer> =
        scores.iter().map(|s| NabScorer::new(files, s, Profile::STANDARD)).collect::<Result<_, _>>()?;
    let cats = scorers[0].categories();
    let mut folds = Vec::new();
    let (mut fixed_sum, mut own_sum) = (0.0, 0.0);
    for (cat, test) in &cats {
        let train: Vec<usize> = (0..files.len()).filter(|i| !test.contains(i)).collect();
        let mut best: Option<(usize, f64, f64)> = None;
        for (g, sc) in scorers.iter().enumerate() {
            let s = sc.optimize(&train)?;
            if best.is_none_or(|(_, b, _)| s.normalized > b) {
                best = Some((g, s.normalized, s.threshold));
            }
        }
        let (g, train_score, threshold) = best.expect("a grid has a setting");
        let fixed = scorers[g].at_threshold(test, threshold)?.normalized;
        let own = scorers[g].optimize(test)?.normalized;
        fixed_sum += fixed;
        own_sum += own;
        folds.push(json!({"held_out": cat, "setting": grid[g], "train": train_score, "threshold": threshold,
                          "score_at_train_threshold": fixed, "score_at_own_threshold": own}));
    }
    let k = cats.len() as f64;
    Ok(json!({"folds": folds, "mean_at_train_threshold": fixed_sum / k, "mean_at_own_threshold": own_sum / k}))
}

/// The service's `[detector]` defaults with the setting's changes.
fn config(setting: &Setting) -> anyhow::Result<StreamConfig> {
    let mut detector = DetectorSettings::default();
    if let Some(w) = setting.get("window") {
        detector.window = w.parse().with_context(|| format!("window={w:?} is not a whole number"))?;
        detector.warmup_windows = (500 / detector.window.max(1)).max(2);
    }
    let mut cfg = detector.stream_config().map_err(anyhow::Error::msg)?;
    let a = &mut cfg.anomaly_config;
    for (k, v) in setting {
        let n = || v.parse::<usize>().with_context(|| format!("setting {k}={v:?} is not a whole number"));
        let b = || v.parse::<bool>().with_context(|| format!("setting {k}={v:?}: true or false"));
        match k.as_str() {
            "window" => {}
            "reference" => a.reference = n()?,
            "neighbours" => a.neighbours = n()?,
            "calibration" => a.calibration = n()?,
            "refractory" => a.refractory = n()?,
            "warmup" => a.warmup = n()?,
            "smooth" => a.smooth = n()?,
            "differences" => a.differences = b()?,
            "onsets" => a.onsets = b()?,
            _ => bail!("unknown setting {k:?}"),
        }
    }
    cfg.collect_blocks = true;
    StreamDetector::new(cfg.clone(), 1)?;
    Ok(cfg)
}

/// Feeds one file point by point through the streaming detector, with its own timestamps (as
/// the service would get them); a point's score is what the detector reported for it, 0 while
/// warming up and for points it refused (none in NAB's files).
fn score_file(cfg: &StreamConfig, timestamps: &[i64], values: &[f64]) -> anyhow::Result<Vec<f64>> {
    let mut det = StreamDetector::new(cfg.clone(), 1)?;
    let mut events = Vec::new();
    // Stream index of each accepted point -> row of the file.
    let mut rows = Vec::with_capacity(values.len());
    let mut out = vec![0f64; values.len()];
    let place = |det: &mut StreamDetector, rows: &[usize], out: &mut [f64]| {
        for b in det.drain_blocks() {
            for (i, &s) in b.anomaly.iter().enumerate() {
                out[rows[b.first_index as usize + i]] = f64::from(s);
            }
        }
    };
    for (row, (&ts, &v)) in timestamps.iter().zip(values).enumerate() {
        if det.push(ts, &[v], &mut events) == Pushed::Accepted {
            rows.push(row);
        }
        events.clear();
        if row % 4096 == 0 {
            place(&mut det, &rows, &mut out);
        }
    }
    det.flush(&mut events);
    place(&mut det, &rows, &mut out);
    let (pending, _) = det.pending_anomaly_scores();
    for (i, &s) in pending.iter().enumerate() {
        out[rows[rows.len() - pending.len() + i]] = f64::from(s);
    }
    Ok(out)
}

/// Category folders of CSV files and their windows.
fn load(dir: &Path) -> anyhow::Result<Vec<Series>> {
    let windows_path = dir.join("combined_windows.json");
    let text = std::fs::read_to_string(&windows_path).with_context(|| windows_path.display().to_string())?;
    let windows = nab::parse_windows_json(&text).with_context(|| windows_path.display().to_string())?;
    let mut out = Vec::new();
    let mut cats: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cats.sort();
    for cat in cats {
        let category = cat.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let mut csvs: Vec<PathBuf> = std::fs::read_dir(&cat)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        csvs.sort();
        for path in csvs {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let key = format!("{category}/{name}");
            let Some(w) = windows.get(&key) else { continue };
            let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            let data = nab::parse_data_csv(&text).with_context(|| path.display().to_string())?;
            out.push(Series {
                file: NabFile { name, category: category.clone(), timestamps: data.timestamps, windows: w.clone() },
                values: data.values,
                key,
            });
        }
    }
    if out.is_empty() {
        bail!("{}: no category folder holds a CSV file listed in combined_windows.json", dir.display());
    }
    Ok(out)
}

fn write_results(dir: &Path, detector: &str, series: &[Series], scores: &[Vec<f64>]) -> anyhow::Result<()> {
    for (s, sc) in series.iter().zip(scores) {
        let path = dir.join(nab::results_file_path(detector, &s.key));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        let text = nab::render_results_csv(&s.file.timestamps, &s.values, sc, &s.file.windows)?;
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

fn print_tables(out: &Value) {
    println!("{} files, {} points, {:.1} s; setting {}", out["files"], out["points"], out["seconds"].as_f64().unwrap_or(0.0), out["setting"]);
    for (name, p) in out["profiles"].as_object().into_iter().flatten() {
        println!("{name:<20} NAB score {:6.1} (threshold {:.4})", p["score"].as_f64().unwrap_or(f64::NAN), p["threshold"].as_f64().unwrap_or(f64::NAN));
        for (cat, c) in p["categories"].as_object().into_iter().flatten() {
            println!(
                "    {cat:<24} {:6.1} at the corpus threshold, {:6.1} at its own",
                c["corpus_threshold"].as_f64().unwrap_or(f64::NAN),
                c["own_threshold"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    if let Some(loco) = out.get("loco") {
        println!("leave one category out (standard profile):");
        for f in loco["folds"].as_array().into_iter().flatten() {
            println!(
                "    {:<24} chose {} (train {:.1}, threshold {:.4}): {:6.1} at that threshold, {:6.1} at its own",
                f["held_out"].as_str().unwrap_or(""),
                f["setting"],
                f["train"].as_f64().unwrap_or(f64::NAN),
                f["threshold"].as_f64().unwrap_or(f64::NAN),
                f["score_at_train_threshold"].as_f64().unwrap_or(f64::NAN),
                f["score_at_own_threshold"].as_f64().unwrap_or(f64::NAN)
            );
        }
        println!(
            "    mean over held-out categories: {:.1} at the training threshold, {:.1} at their own",
            loco["mean_at_train_threshold"].as_f64().unwrap_or(f64::NAN),
            loco["mean_at_own_threshold"].as_f64().unwrap_or(f64::NAN)
        );
    }
}
