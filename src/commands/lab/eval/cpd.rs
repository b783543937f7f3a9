//! `driftwatch eval cpd DATA`: the offline change-point methods over a benchmark folder.
//!
//! Two layouts: TSSB (`desc.txt` with `NAME,WINDOW,CP1,...` and one value per line in
//! `NAME.txt`) and CSV (`truth.json` mapping each CSV file to its change points, or to a list of
//! annotators' change points). The detector never sees the benchmark's WINDOW hint or the number
//! of change points. Scores: covering and F1 with a margin of 5 rows, both as TCPDBench defines
//! them (row 0 counted as a change point, no double matching). With `--folds K` every setting of
//! the grid is run on every series and each fold's setting is chosen on the other folds (series
//! assigned to folds by sorted name); the held-out means are the honest figure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use driftwatch_eval::{cpd, cv, tssb};
use driftwatch_icid::segment::{Choice, SegmentParams, segment};
use driftwatch_icid::{Params, PsiChoice, detect, suggest_window};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::commands::host::init_threads;

/// `driftwatch eval cpd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The benchmark folder.
    pub data: PathBuf,
    /// `auto` (the default method) or `icid` (the paper's).
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    pub method: Method,
    /// Settings of the method as `name=value` (auto: width, psi, t, z, permutations, seed;
    /// icid: window, alpha, psi, t, seed), repeatable. Unset ones keep the method's defaults.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Cross-validate over K folds of series: the grid (`--grid`) is run on every series and
    /// each fold is scored with the setting that did best on the others.
    #[arg(long)]
    pub folds: Option<usize>,
    /// The grid for `--folds`, as `name=v1,v2,...` (repeatable; the product is searched).
    /// Default for auto: `z=1,2,3` and `psi=32,64,128`; for icid: `alpha=1,2,3`.
    #[arg(long = "grid", value_name = "NAME=V1,V2")]
    pub grid: Vec<String>,
    /// Score by F1 instead of covering when choosing settings in `--folds`.
    #[arg(long)]
    pub choose_by_f1: bool,
    /// Margin of the F1 score, in rows.
    #[arg(long, default_value_t = 5)]
    pub margin: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Worker threads; 0 = all cores. Series run in parallel, one thread each.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The offline methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Segmentation in the kernel's feature space (the default method of `detect`).
    Auto,
    /// The paper's iCID; change points are the starts of its intervals.
    Icid,
}

/// One benchmark series.
struct Series {
    name: String,
    data: Vec<f64>,
    d: usize,
    /// One list of change points per annotator.
    truth: Vec<Vec<usize>>,
}

/// One run of one setting on one series.
#[derive(Clone)]
struct Outcome {
    found: Vec<usize>,
    covering: f64,
    f1: f64,
    seconds: f64,
}

/// Runs the command.
///
/// # Errors
/// Unreadable folder, bad files, or settings the engine refuses.
pub fn run(args: &Args) -> anyhow::Result<()> {
    init_threads(args.threads);
    let series = load(&args.data)?;
    if series.is_empty() {
        bail!("{}: no series found", args.data.display());
    }
    let published = read_published(&args.data)?;
    let base = parse_settings(&args.set)?;
    let grid = match (args.folds, args.grid.is_empty()) {
        (None, true) => vec![base.clone()],
        (None, false) => bail!("--grid goes with --folds"),
        (Some(_), true) => expand_grid(&base, &default_grid(args.method))?,
        (Some(_), false) => expand_grid(&base, &args.grid)?,
    };
    // table[setting][series]
    let table: Vec<Vec<Outcome>> = grid
        .iter()
        .map(|setting| {
            series.par_iter().map(|s| run_one(args.method, setting, s, args.margin)).collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<_>>()?;
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let mut out = serde_json::Map::new();
    out.insert("data".into(), json!(args.data.display().to_string()));
    out.insert("method".into(), json!(format!("{:?}", args.method).to_lowercase()));
    out.insert("margin".into(), json!(args.margin));
    out.insert("series".into(), json!(series.len()));
    if let Some(k) = args.folds {
        let splits = cv::k_fold_splits(&names, k)?;
        let metric = |o: &Outcome| if args.choose_by_f1 { o.f1 } else { o.covering };
        let scores: Vec<Vec<f64>> = table.iter().map(|row| row.iter().map(metric).collect()).collect();
        let choices = cv::select_by_mean(&scores, &splits)?;
        let mut folds = Vec::new();
        let (mut held_cov, mut held_f1) = (vec![0.0; series.len()], vec![0.0; series.len()]);
        for (f, (split, choice)) in splits.iter().zip(&choices).enumerate() {
            let row = &table[choice.setting];
            let mean = |g: &dyn Fn(&Outcome) -> f64| split.test.iter().map(|&i| g(&row[i])).sum::<f64>() / split.test.len() as f64;
            for &i in &split.test {
                held_cov[i] = row[i].covering;
                held_f1[i] = row[i].f1;
            }
            folds.push(json!({
                "fold": f, "setting": grid[choice.setting], "train": choice.train_score,
                "held_out_covering": mean(&|o| o.covering), "held_out_f1": mean(&|o| o.f1),
                "series": split.test.iter().map(|&i| names[i]).collect::<Vec<_>>(),
            }));
        }
        out.insert("folds".into(), json!(folds));
        out.insert(
            "cross_validated".into(),
            json!({"covering": mean_of(&held_cov), "f1": mean_of(&held_f1), "chosen_by": if args.choose_by_f1 { "f1" } else { "covering" }}),
        );
        let grid_means: Vec<Value> = grid
            .iter()
            .zip(&table)
            .map(|(g, row)| {
                json!({"setting": g, "covering": mean_of(&row.iter().map(|o| o.covering).collect::<Vec<_>>()),
                       "f1": mean_of(&row.iter().map(|o| o.f1).collect::<Vec<_>>())})
            })
            .collect();
        out.insert("grid".into(), json!(grid_means));
    }
    // The base setting (the method's defaults plus --set) over every series.
    let base_row = match grid.iter().position(|g| *g == base) {
        Some(i) => table[i].clone(),
        None => series.par_iter().map(|s| run_one(args.method, &base, s, args.margin)).collect::<anyhow::Result<_>>()?,
    };
    let per_series: Vec<Value> = series
        .iter()
        .zip(&base_row)
        .map(|(s, o)| {
            let mut v = json!({"name": s.name, "n": s.data.len() / s.d, "truth": s.truth, "found": o.found,
                               "covering": o.covering, "f1": o.f1, "seconds": o.seconds});
            if let Some(p) = published.as_ref().and_then(|p| p.scores.get(&s.name)) {
                v["published"] = json!(p);
            }
            v
        })
        .collect();
    let covs: Vec<f64> = base_row.iter().map(|o| o.covering).collect();
    let f1s: Vec<f64> = base_row.iter().map(|o| o.f1).collect();
    let mut summary = json!({"setting": base, "covering": mean_of(&covs), "f1": mean_of(&f1s),
                             "seconds": base_row.iter().map(|o| o.seconds).sum::<f64>()});
    if let Some(p) = &published {
        let means: BTreeMap<&str, f64> = p
            .methods
            .iter()
            .map(|m| {
                let v: Vec<f64> = series.iter().filter_map(|s| p.scores.get(&s.name).and_then(|r| r.get(m)).copied()).collect();
                (m.as_str(), mean_of(&v))
            })
            .collect();
        summary["published_covering"] = json!(means);
    }
    out.insert("defaults".into(), summary);
    out.insert("per_series".into(), json!(per_series));
    let out = Value::Object(out);
    if args.json {
        println!("{out}");
    } else {
        print_tables(&out, published.as_ref());
    }
    Ok(())
}

fn mean_of(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Loads a folder in either layout.
fn load(dir: &Path) -> anyhow::Result<Vec<Series>> {
    let read = |p: PathBuf| std::fs::read_to_string(&p).with_context(|| p.display().to_string());
    let desc = dir.join("desc.txt");
    if desc.exists() {
        let entries = tssb::parse_desc(&read(desc.clone())?).with_context(|| desc.display().to_string())?;
        return entries
            .into_iter()
            .map(|e| {
                let path = dir.join(format!("{}.txt", e.name));
                let data = tssb::parse_values(&read(path.clone())?).with_context(|| path.display().to_string())?;
                Ok(Series { name: e.name, data, d: 1, truth: vec![e.change_points] })
            })
            .collect();
    }
    let truth_path = dir.join("truth.json");
    if !truth_path.exists() {
        bail!("{}: neither desc.txt (TSSB layout) nor truth.json (CSV layout) found", dir.display());
    }
    let truth: BTreeMap<String, Value> = serde_json::from_str(&read(truth_path.clone())?)
        .with_context(|| format!("{}: not a JSON object of file -> change points", truth_path.display()))?;
    truth
        .into_iter()
        .map(|(file, cps)| {
            let table = crate::input::read_csv(&dir.join(&file), None)?;
            let truth = parse_truth(&cps).with_context(|| format!("{}: {file}", truth_path.display()))?;
            Ok(Series { name: file, data: table.data, d: table.d, truth })
        })
        .collect()
}

/// `[1000, 2000]` (one annotator) or `[[1000], [990, 2000]]` (several).
fn parse_truth(v: &Value) -> anyhow::Result<Vec<Vec<usize>>> {
    let list = v.as_array().context("change points must be a list")?;
    let as_cps = |l: &[Value]| -> anyhow::Result<Vec<usize>> {
        l.iter().map(|c| c.as_u64().map(|c| c as usize).context("a change point is not a whole number")).collect()
    };
    if list.iter().all(Value::is_array) && !list.is_empty() {
        list.iter().map(|a| as_cps(a.as_array().expect("checked"))).collect()
    } else {
        Ok(vec![as_cps(list)?])
    }
}

fn read_published(dir: &Path) -> anyhow::Result<Option<tssb::PublishedCovering>> {
    let path = dir.join("published_covering.csv");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(Some(tssb::parse_published_covering(&text).with_context(|| path.display().to_string())?))
}

use super::{Setting, expand_grid};

fn parse_settings(pairs: &[String]) -> anyhow::Result<Setting> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p.split_once('=').with_context(|| format!("--set {p:?}: expected NAME=VALUE"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn default_grid(method: Method) -> Vec<String> {
    match method {
        Method::Auto => vec!["z=1,2,3".into(), "psi=32,64,128".into()],
        Method::Icid => vec!["alpha=1,2,3".into()],
    }
}

fn get<T: std::str::FromStr>(s: &Setting, key: &str) -> anyhow::Result<Option<T>> {
    s.get(key).map(|v| v.parse::<T>().map_err(|_| anyhow::anyhow!("setting {key}={v:?} is not valid"))).transpose()
}

fn run_one(method: Method, setting: &Setting, s: &Series, margin: usize) -> anyhow::Result<Outcome> {
    let n = s.data.len() / s.d;
    let started = Instant::now();
    let found = match method {
        Method::Auto => {
            let known = ["width", "psi", "t", "z", "permutations", "seed"];
            if let Some(k) = setting.keys().find(|k| !known.contains(&k.as_str())) {
                bail!("setting {k:?} is not one of the auto method's ({})", known.join(", "));
            }
            let mut p = SegmentParams::default();
            if let Some(w) = get(setting, "width")? {
                p.width = Choice::Fixed(w);
            }
            if let Some(v) = get(setting, "psi")? {
                p.psi = Choice::Fixed(v);
            }
            p.t = get(setting, "t")?.unwrap_or(p.t);
            p.z = get(setting, "z")?.unwrap_or(p.z);
            p.permutations = get(setting, "permutations")?.unwrap_or(p.permutations);
            p.seed = get(setting, "seed")?.unwrap_or(p.seed);
            segment(&s.data, s.d, &p).with_context(|| s.name.clone())?.rows()
        }
        Method::Icid => {
            let known = ["window", "alpha", "psi", "t", "seed"];
            if let Some(k) = setting.keys().find(|k| !known.contains(&k.as_str())) {
                bail!("setting {k:?} is not one of the icid method's ({})", known.join(", "));
            }
            let mut p = Params::new(get(setting, "window")?.unwrap_or_else(|| suggest_window(n)), 2.0);
            p.alpha = get(setting, "alpha")?.unwrap_or(p.alpha);
            if let Some(v) = get(setting, "psi")? {
                p.psi = PsiChoice::Fixed(v);
            }
            p.t = get(setting, "t")?.unwrap_or(p.t);
            p.seed = get(setting, "seed")?.unwrap_or(p.seed);
            match detect(&s.data, s.d, &p) {
                Ok(det) => det.change_points(),
                // Too short for two windows: iCID reports nothing.
                Err(driftwatch_icid::IcidError::TooFewWindows { .. }) => Vec::new(),
                Err(e) => return Err(e).with_context(|| s.name.clone()),
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Outcome {
        covering: cpd::covering(&s.truth, &found, n),
        f1: cpd::f_measure(&s.truth, &found, margin),
        found,
        seconds,
    })
}

fn print_tables(out: &Value, published: Option<&tssb::PublishedCovering>) {
    let methods: Vec<String> = published.map(|p| p.methods.clone()).unwrap_or_default();
    print!("{:<32} {:>7} {:>8} {:>6} {:>7}", "series", "n", "covering", "F1", "time s");
    for m in &methods {
        print!(" {:>8}", m);
    }
    println!("  found / truth");
    for s in out["per_series"].as_array().into_iter().flatten() {
        print!(
            "{:<32} {:>7} {:>8.3} {:>6.3} {:>7.2}",
            s["name"].as_str().unwrap_or(""),
            s["n"],
            s["covering"].as_f64().unwrap_or(f64::NAN),
            s["f1"].as_f64().unwrap_or(f64::NAN),
            s["seconds"].as_f64().unwrap_or(f64::NAN)
        );
        for m in &methods {
            print!(" {:>8.3}", s["published"][m.as_str()].as_f64().unwrap_or(f64::NAN));
        }
        println!("  {} / {}", s["found"], s["truth"]);
    }
    let d = &out["defaults"];
    print!(
        "{:<32} {:>7} {:>8.3} {:>6.3} {:>7.1}",
        "MEAN (defaults)",
        "",
        d["covering"].as_f64().unwrap_or(f64::NAN),
        d["f1"].as_f64().unwrap_or(f64::NAN),
        d["seconds"].as_f64().unwrap_or(f64::NAN)
    );
    for m in &methods {
        print!(" {:>8.3}", d["published_covering"][m.as_str()].as_f64().unwrap_or(f64::NAN));
    }
    println!("  setting {}", d["setting"]);
    if let Some(folds) = out["folds"].as_array() {
        println!("\ncross-validation ({} folds; chosen by {}):", folds.len(), out["cross_validated"]["chosen_by"]);
        for f in folds {
            println!(
                "  fold {}: chose {} (train {:.3}); held-out covering {:.3}, F1 {:.3}",
                f["fold"],
                f["setting"],
                f["train"].as_f64().unwrap_or(f64::NAN),
                f["held_out_covering"].as_f64().unwrap_or(f64::NAN),
                f["held_out_f1"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let c = &out["cross_validated"];
        println!(
            "  held-out mean: covering {:.3}, F1 {:.3}",
            c["covering"].as_f64().unwrap_or(f64::NAN),
            c["f1"].as_f64().unwrap_or(f64::NAN)
        );
        println!("grid (all series):");
        for g in out["grid"].as_array().into_iter().flatten() {
            println!(
                "  {} covering {:.3} F1 {:.3}",
                g["setting"],
                g["covering"].as_f64().unwrap_or(f64::NAN),
                g["f1"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
}
