//! `driftwatch leiad simulate`: labeled series replayed with a simulated analyst, AP / ROC-AUC
//! per round for LEIAD and its baselines, then a summary with paired differences over the
//! seeds. This module reads files, parses timestamps and NAB label JSON, times rounds and
//! prints; the loop itself (and its protocol) lives in `driftwatch_leiad::simulation`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::ValueEnum;
use driftwatch_leiad::simulation::{RoundReport, SimConfig, Simulation};
use driftwatch_leiad::{AlWeights, Backend, LeiadConfig, Pool, Prepared, SeriesInput};
use serde_json::{Value, json};

/// `driftwatch leiad simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory of CSV files (NAB layout: `timestamp,value`, labels from a JSON file; or files
    /// with a 0/1 `label` column), or one CSV file with a `label` column.
    pub data: PathBuf,
    /// NAB labels JSON (default: `combined_labels.json`, or `combined_windows.json` with
    /// --windows, in DATA's parent directory).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Use NAB's wide anomaly windows as ground truth instead of ±tolerance around each timestamp.
    #[arg(long)]
    pub windows: bool,
    /// Points on each side of a labeled anomaly timestamp that count as anomalous.
    #[arg(long, default_value_t = 5)]
    pub tolerance: usize,
    /// Seeds (paired comparisons are across them).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Windows labeled per seed.
    #[arg(long, default_value_t = 20)]
    pub max_windows: usize,
    /// Window counts the summary reports at (rounds never step over them).
    #[arg(long, value_delimiter = ',', default_value = "10,20")]
    pub checkpoints: Vec<usize>,
    /// Half-width of a suggested window, in points.
    #[arg(long, default_value_t = 200)]
    pub half_window: usize,
    /// End model: the gate between trees and the seed-anchored regression (default), or one of them.
    #[arg(long, value_enum, default_value_t = EndModelArg::Gate)]
    pub end_model: EndModelArg,
    /// Active-learning weights: LF disagreement, LF abstention, end-model uncertainty, novelty,
    /// seed-detector prior (default: the session's defaults).
    #[arg(long, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
    /// One JSON line per round (and one for the summary) instead of text.
    #[arg(long)]
    pub json: bool,
    /// After each seed, list the labeling functions with their statistics and the precision of
    /// their votes against the ground truth (with --json: one `{"seed", "lfs"}` line).
    #[arg(long)]
    pub show_lfs: bool,
    /// After each seed, list the windows the simulated analyst labeled, in order (with --json:
    /// one `{"seed", "labels"}` line).
    #[arg(long)]
    pub show_labels: bool,
    /// Session setting overrides, `NAME=VALUE` (anomaly_rate, ws_ratio, neg_ratio, human_weight,
    /// k_stat, k_repr, golden_every, max_lfs, iterations, learning_rate, max_depth, candidates,
    /// em_steps, em_unlabeled_weight (a number or `balanced`), anchor_weight, anchor_ridge, gate_margin).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub overrides: Vec<String>,
}

/// The end model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndModelArg {
    /// forust-ml gradient-boosted trees alone.
    Forust,
    /// Per refit, the trees or the anchored model, by cross-validation on the labeled windows.
    Select,
    /// Both the trees and the anchored model per refit; the one that ranked the analyst's later
    /// anomalies higher in the pool answers (the default).
    Gate,
    /// The seed-anchored logistic regression.
    Anchored,
    /// perpetual (needs the `leiad-perpetual` feature).
    Perpetual,
}

/// One loaded series with its ground truth.
struct Loaded {
    series: SeriesInput,
    truth: Vec<bool>,
}

/// The LEIAD back-end an `--end-model` names.
pub(super) fn backend(arg: EndModelArg) -> Backend {
    match arg {
        EndModelArg::Forust => Backend::Forust,
        EndModelArg::Perpetual => Backend::Perpetual,
        EndModelArg::Anchored => Backend::Anchored,
        EndModelArg::Select => Backend::Select,
        EndModelArg::Gate => Backend::Gate,
    }
}

/// `leiad simulate`.
///
/// # Errors
/// Unreadable data or labels, series LEIAD cannot use, or a failed fit.
pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::commands::host::init_threads(1);
    if let Some(w) = &args.weights
        && (w.len() != 5 || w.iter().any(|v| !(v.is_finite() && *v >= 0.0)))
    {
        bail!("--weights takes five non-negative numbers (disagreement, abstention, uncertainty, novelty, prior)");
    }
    let (loaded, from_nab) = load(args)?;
    let names: Vec<String> = loaded.iter().map(|l| l.series.name.clone()).collect();
    let truth: Vec<bool> = loaded.iter().flat_map(|l| l.truth.iter().copied()).collect();
    let pool = Pool::new(loaded.into_iter().map(|l| l.series).collect())?;
    let positives = truth.iter().filter(|&&t| t).count();
    let t0 = Instant::now();
    let prep = Arc::new(Prepared::new(pool, 0));
    let prepare_ms = t0.elapsed().as_secs_f64() * 1e3;
    let info = json!({
        "data": args.data.display().to_string(), "series": names.len(), "points": truth.len(),
        "anomalous_points": positives,
        "ground_truth": if !from_nab { "label column".to_string() } else if args.windows { "NAB windows".to_string() } else { format!("±{} samples of NAB labels", args.tolerance) },
        "prepare_ms": prepare_ms.round(),
    });
    if args.json {
        println!("{}", json!({ "dataset": info }));
    } else {
        println!("dataset: {info}");
    }
    let truth = Arc::new(truth);
    let mut at: BTreeMap<usize, Vec<RoundReport>> = BTreeMap::new();
    for seed in args.first_seed..args.first_seed + args.seeds {
        let mut leiad = LeiadConfig { seed, half_window: args.half_window, ..LeiadConfig::default() };
        leiad.end_model.backend = backend(args.end_model);
        leiad.end_model.seed = seed;
        for o in &args.overrides {
            apply_override(&mut leiad, o)?;
        }
        if let Some(w) = &args.weights {
            leiad.weights =
                AlWeights { lf_disagreement: w[0], lf_abstention: w[1], uncertainty: w[2], novelty: w[3], prior: w[4] };
        }
        let cfg = SimConfig { max_windows: args.max_windows, checkpoints: args.checkpoints.clone(), leiad };
        let mut sim = Simulation::new(prep.clone(), truth.clone(), cfg)?;
        loop {
            let t = Instant::now();
            let Some(r) = sim.round()? else { break };
            let round_ms = t.elapsed().as_secs_f64() * 1e3;
            if args.json {
                println!(
                    "{}",
                    json!({"seed": seed, "round": r.round, "windows_labeled": r.windows_labeled,
                        "anomalous_windows": r.anomalous_windows, "ap": r.ap, "roc_auc": r.roc_auc,
                        "round_ms": round_ms.round(), "evaluated_points": r.evaluated_points})
                );
            } else {
                let fmt = |m: &BTreeMap<String, f64>| {
                    m.iter().map(|(k, v)| format!("{k}={v:.3}")).collect::<Vec<_>>().join(" ")
                };
                let gate = sim.session().gate_evidence().map_or_else(
                    || "-".to_string(),
                    |e| {
                        format!(
                            "trees {:.4} anchored {:.4} supervised {:.4} ({} points)",
                            e.top[0], e.top[1], e.top[2], e.anomalies
                        )
                    },
                );
                println!(
                    "seed {seed} round {:>2} windows {:>2} (anomalous {:>2}) {:>6.0} ms | AP {} | ROC-AUC {} | gate {gate}",
                    r.round,
                    r.windows_labeled,
                    r.anomalous_windows,
                    round_ms,
                    fmt(&r.ap),
                    fmt(&r.roc_auc)
                );
            }
            if args.checkpoints.contains(&r.windows_labeled) {
                at.entry(r.windows_labeled).or_default().push(r);
            }
        }
        if args.show_labels {
            let rows: Vec<Value> = sim
                .session()
                .labels()
                .iter()
                .map(|l| {
                    json!({"id": l.id, "series": prep.pool().series()[l.window.series].name,
                        "start": l.window.start, "end": l.window.end,
                        "anomalous_points": l.labels.iter().filter(|&&a| a).count()})
                })
                .collect();
            if args.json {
                println!("{}", json!({"seed": seed, "labels": rows}));
            } else {
                for r in &rows {
                    println!(
                        "  label {:>3} series {} [{}, {}) anomalous points {}",
                        r["id"].as_u64().unwrap_or(0),
                        r["series"].as_str().unwrap_or(""),
                        r["start"],
                        r["end"],
                        r["anomalous_points"]
                    );
                }
            }
        }
        if args.show_lfs {
            let list = sim.session().lf_list();
            let rows: Vec<Value> = sim
                .session()
                .lfs()
                .iter()
                .map(|l| {
                    // Against the simulation's ground truth (which a session never sees): the
                    // share of the LF's anomaly votes that are true anomalies, and of its normal
                    // votes that are true normals.
                    let votes = list.iter().find(|f| f.id == l.id).map_or(&[][..], |f| f.votes.as_slice());
                    let precision = |vote: bool| {
                        let (mut all, mut right) = (0usize, 0usize);
                        for &(i, v) in votes.iter().filter(|&&(_, v)| v == vote) {
                            all += 1;
                            right += usize::from(truth[i as usize] == v);
                        }
                        (all > 0).then(|| right as f64 / all as f64)
                    };
                    json!({"id": l.id, "kind": l.kind.name(), "coverage": l.coverage, "anomaly_votes": l.positives,
                        "conflict": l.conflict, "learned_accuracy": l.learned_accuracy,
                        "golden_accuracy": l.golden_accuracy, "active": l.active,
                        "truth_precision_anomaly": precision(true), "truth_precision_normal": precision(false)})
                })
                .collect();
            if args.json {
                println!("{}", json!({"seed": seed, "lfs": rows}));
            } else {
                let acc = |v: &Value| v.as_f64().map_or_else(|| "-".to_string(), |a| format!("{a:.3}"));
                for r in &rows {
                    println!(
                        "  lf {:>3} {:<26} coverage {:.4} anomaly votes {:>6} conflict {:.3} learned {} golden {}{} truth: anomaly votes {} normal votes {}",
                        r["id"].as_u64().unwrap_or(0),
                        r["kind"].as_str().unwrap_or(""),
                        r["coverage"].as_f64().unwrap_or(0.0),
                        r["anomaly_votes"].as_u64().unwrap_or(0),
                        r["conflict"].as_f64().unwrap_or(0.0),
                        acc(&r["learned_accuracy"]),
                        acc(&r["golden_accuracy"]),
                        if r["active"] == true { "" } else { " (inactive)" },
                        acc(&r["truth_precision_anomaly"]),
                        acc(&r["truth_precision_normal"]),
                    );
                }
            }
        }
    }
    let summary = summarise(&at);
    if args.json {
        println!("{}", json!({ "summary": summary }));
    } else {
        print_summary(&at);
    }
    Ok(())
}

/// Applies one `NAME=VALUE` session override.
fn apply_override(cfg: &mut LeiadConfig, o: &str) -> anyhow::Result<()> {
    let (name, value) = o.split_once('=').with_context(|| format!("--set {o:?}: expected NAME=VALUE"))?;
    if name.trim() == "em_unlabeled_weight" && value.trim() == "balanced" {
        cfg.label_model.em_unlabeled_weight = None;
        return Ok(());
    }
    let v: f64 = value.trim().parse().with_context(|| format!("--set {o:?}: value is not a number"))?;
    let whole = || -> anyhow::Result<usize> {
        if v >= 0.0 && v.fract() == 0.0 { Ok(v as usize) } else { bail!("--set {o:?}: expected a whole number") }
    };
    match name.trim() {
        "anomaly_rate" => cfg.anomaly_rate = v,
        "ws_ratio" => cfg.ws_ratio = v,
        "neg_ratio" => cfg.neg_ratio = v,
        "human_weight" => cfg.human_weight = v,
        "k_stat" => cfg.lfgen.k_stat = v,
        "k_repr" => cfg.lfgen.k_repr = v,
        "golden_every" => cfg.golden_every = whole()?,
        "max_lfs" => cfg.max_lfs = whole()?,
        "iterations" => cfg.end_model.iterations = whole()?,
        "learning_rate" => cfg.end_model.learning_rate = v as f32,
        "max_depth" => cfg.end_model.max_depth = whole()?,
        "select_margin" => cfg.end_model.select_margin = v,
        "anchor_weight" => cfg.end_model.anchor_weight = v,
        "anchor_ridge" => cfg.end_model.anchor_ridge = v,
        "gate_margin" => cfg.end_model.gate_margin = v,
        "candidates" => cfg.candidates = whole()?,
        "em_steps" => cfg.label_model.em_steps = whole()?,
        "em_unlabeled_weight" => cfg.label_model.em_unlabeled_weight = Some(v),
        other => bail!("--set: unknown setting {other:?}"),
    }
    Ok(())
}

/// Two-sided 95 % Student t quantile for `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 { f64::NAN } else { T.get(df - 1).copied().unwrap_or(1.96) }
}

/// Mean and 95 % confidence half-width.
fn mean_ci(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    if x.len() < 2 {
        return (m, f64::NAN);
    }
    let sd = (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    (m, t95(x.len() - 1) * sd / n.sqrt())
}

/// One method's figures over the seeds: AP mean and 95 % half-width, ROC-AUC mean, and the
/// paired LEIAD − method AP difference (mean and half-width).
struct MethodStats {
    ap_m: f64,
    ap_h: f64,
    auc_m: f64,
    d_m: f64,
    d_h: f64,
}

fn method_stats(reports: &[RoundReport], m: &str) -> MethodStats {
    let ap: Vec<f64> = reports.iter().map(|r| r.ap[m]).collect();
    let auc: Vec<f64> = reports.iter().map(|r| r.roc_auc[m]).collect();
    let diff: Vec<f64> = reports.iter().map(|r| r.ap["leiad"] - r.ap[m]).collect();
    let ((ap_m, ap_h), (auc_m, _), (d_m, d_h)) = (mean_ci(&ap), mean_ci(&auc), mean_ci(&diff));
    MethodStats { ap_m, ap_h, auc_m, d_m, d_h }
}

fn summarise(at: &BTreeMap<usize, Vec<RoundReport>>) -> Value {
    let mut out = serde_json::Map::new();
    for (w, reports) in at {
        let mut methods = serde_json::Map::new();
        for m in reports[0].ap.keys() {
            let MethodStats { ap_m, ap_h, auc_m, d_m, d_h } = method_stats(reports, m);
            methods.insert(
                m.clone(),
                json!({"ap": ap_m, "ap_ci": ap_h, "roc_auc": auc_m, "leiad_minus_ap": d_m,
                       "leiad_minus_ci": [d_m - d_h, d_m + d_h], "seeds": reports.len()}),
            );
        }
        out.insert(w.to_string(), Value::Object(methods));
    }
    Value::Object(out)
}

fn print_summary(at: &BTreeMap<usize, Vec<RoundReport>>) {
    for (w, reports) in at {
        println!("\nafter {w} labeled windows ({} seeds):", reports.len());
        println!("{:<20} {:>16} {:>8} {:>28}", "method", "AP (±95% CI)", "ROC-AUC", "LEIAD − method, AP [95% CI]");
        let mut names: Vec<&String> = reports[0].ap.keys().collect();
        names.sort_by_key(|n| (n.as_str() != "leiad", n.as_str().to_string()));
        for m in names {
            let MethodStats { ap_m, ap_h, auc_m, d_m, d_h } = method_stats(reports, m);
            let d =
                if m == "leiad" { String::new() } else { format!("{d_m:+.4} [{:+.4}, {:+.4}]", d_m - d_h, d_m + d_h) };
            println!("{m:<20} {:>16} {auc_m:>8.3} {d:>28}", format!("{ap_m:.4} ±{ap_h:.4}"));
        }
    }
}

/// The series with their ground truth, and whether any came from NAB label files.
fn load(args: &Args) -> anyhow::Result<(Vec<Loaded>, bool)> {
    if args.data.is_file() {
        let (ts, values, labels) = read_csv(&args.data)?;
        let labels =
            labels.with_context(|| format!("{}: a single CSV needs a 0/1 `label` column", args.data.display()))?;
        return Ok((vec![Loaded { series: series_input(&args.data, ts.as_deref(), values), truth: labels }], false));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.data)
        .with_context(|| format!("Failed to read directory {}", args.data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no CSV files", args.data.display());
    }
    let mut nab: Option<serde_json::Map<String, Value>> = None;
    let mut out = Vec::new();
    for f in &files {
        let (ts, values, labels) = read_csv(f)?;
        let truth = match labels {
            Some(l) => l,
            None => {
                if nab.is_none() {
                    nab = Some(read_nab_labels(args)?);
                }
                let map = nab.as_ref().expect("just loaded");
                let ts =
                    ts.as_deref().with_context(|| format!("{}: NAB files need a timestamp column", f.display()))?;
                let key = nab_key(&args.data, f);
                let entry = map.get(&key).with_context(|| format!("labels JSON has no entry {key:?}"))?;
                nab_truth(ts, entry, args.windows, args.tolerance).with_context(|| format!("labels for {key}"))?
            }
        };
        out.push(Loaded { series: series_input(f, ts.as_deref(), values), truth });
    }
    Ok((out, nab.is_some()))
}

fn series_input(path: &Path, ts: Option<&[f64]>, values: Vec<f64>) -> SeriesInput {
    let period_secs = ts.and_then(|t| {
        let mut d: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).filter(|v| *v > 0.0).collect();
        d.sort_by(f64::total_cmp);
        d.get(d.len() / 2).copied()
    });
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    SeriesInput { name, values, period_secs }
}

fn nab_key(dir: &Path, file: &Path) -> String {
    let d = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let f = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{d}/{f}")
}

fn read_nab_labels(args: &Args) -> anyhow::Result<serde_json::Map<String, Value>> {
    let path = match &args.labels {
        Some(p) => p.clone(),
        None => {
            let parent = args.data.canonicalize()?.parent().map(Path::to_path_buf).unwrap_or_default();
            parent.join(if args.windows { "combined_windows.json" } else { "combined_labels.json" })
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "Failed to read labels {} (CSV files without a `label` column need NAB labels; see --labels)",
            path.display()
        )
    })?;
    match serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))? {
        Value::Object(m) => Ok(m),
        _ => bail!("{}: expected an object of file → labels", path.display()),
    }
}

/// Ground truth of one NAB file: ±`tol` samples around each timestamp, or inside each window.
fn nab_truth(ts: &[f64], entry: &Value, windows: bool, tol: usize) -> anyhow::Result<Vec<bool>> {
    let n = ts.len();
    let mut truth = vec![false; n];
    let items = entry.as_array().context("expected a list")?;
    if n == 0 {
        return Ok(truth); // an empty file: Pool::new reports it by name
    }
    for item in items {
        if windows {
            let pair = item
                .as_array()
                .filter(|a| a.len() == 2)
                .context("expected [start, end] pairs (is this combined_windows.json?)")?;
            let lo = parse_ts(pair[0].as_str().context("window start is not a string")?)?;
            let hi = parse_ts(pair[1].as_str().context("window end is not a string")?)?;
            for (t, f) in ts.iter().zip(truth.iter_mut()) {
                if *t >= lo && *t <= hi {
                    *f = true;
                }
            }
        } else {
            let at = parse_ts(item.as_str().context("expected timestamp strings (is this combined_labels.json?)")?)?;
            let k = ts.partition_point(|&t| t < at);
            let k = if k == n || (k > 0 && at - ts[k - 1] < ts[k] - at) { k.saturating_sub(1).min(n - 1) } else { k };
            for f in &mut truth[k.saturating_sub(tol)..(k + tol + 1).min(n)] {
                *f = true;
            }
        }
    }
    Ok(truth)
}

/// `YYYY-MM-DD HH:MM:SS[.frac]` (or `T` separated) as seconds since 1970, or a plain number.
fn parse_ts(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return Ok(v);
    }
    let bad = || anyhow::anyhow!("timestamp {s:?} is neither a number nor YYYY-MM-DD HH:MM:SS");
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let t: Vec<f64> =
        time.trim_end_matches('Z').split(':').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() < 2 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t.get(2).copied().unwrap_or(0.0))
}

type Columns = (Option<Vec<f64>>, Vec<f64>, Option<Vec<bool>>);

/// Reads `timestamp` (optional), `value` and `label` (optional) columns by header name; without
/// a `value` header the last non-timestamp, non-label column is the value.
fn read_csv(path: &Path) -> anyhow::Result<Columns> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .with_context(|| format!("Failed to open {}", path.display()))?;
    let headers: Vec<String> = rdr
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let find = |n: &str| headers.iter().position(|h| h == n);
    let ts_col = find("timestamp");
    let label_col = find("label");
    let value_col = find("value")
        .or_else(|| (0..headers.len()).rev().find(|&c| Some(c) != ts_col && Some(c) != label_col))
        .with_context(|| format!("{}: no value column", path.display()))?;
    let (mut ts, mut values, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), row + 2))?;
        let field = |c: usize| rec.get(c).map(str::trim).unwrap_or("");
        let at = |what: &str| format!("{}: row {}: {what}", path.display(), row + 2);
        values.push(field(value_col).parse::<f64>().with_context(|| at("value is not a number"))?);
        if let Some(c) = ts_col {
            ts.push(parse_ts(field(c)).with_context(|| at("bad timestamp"))?);
        }
        if let Some(c) = label_col {
            labels.push(match field(c) {
                "0" | "0.0" | "false" => false,
                "1" | "1.0" | "true" => true,
                other => bail!("{}: label {other:?} is not 0 or 1", at("label")),
            });
        }
    }
    Ok((ts_col.map(|_| ts), values, label_col.map(|_| labels)))
}

