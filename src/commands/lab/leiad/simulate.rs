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
use driftwatch_leiad::eval::{average_precision, roc_auc};
use driftwatch_leiad::simulation::{RoundReport, SimConfig, Simulation};
use driftwatch_leiad::{AlWeights, Backend, Detector, LeiadConfig, Pool, Prepared, SeriesInput};
use serde_json::{Value, json};

/// `driftwatch leiad simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory of CSV files (NAB layout: `timestamp,value`, labels from a JSON file; or files
    /// with a 0/1 `label` column), or one CSV file with a `label` column.
    pub data: Option<PathBuf>,
    /// Run each category folder of DIR (NAB's layout: folders of CSV files, labels JSON in DIR)
    /// as its own pool and print one table over them, with the mean over categories.
    #[arg(long, value_name = "DIR", conflicts_with = "data")]
    pub suite: Option<PathBuf>,
    /// Add the five synthetic development sets (`leiad synth` seeds 1 to 5) to the suite (alone:
    /// a suite of just them).
    #[arg(long)]
    pub synthetic: bool,
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
    /// em_steps, em_unlabeled_weight (a number or `balanced`), anchor_weight, anchor_ridge, gate_margin, gate_default).
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
    let sets = datasets(args)?;
    let suite = args.suite.is_some() || args.synthetic;
    let mut results: Vec<SetResult> = Vec::new();
    for set in sets {
        let at = run_set(args, &set, suite)?;
        if !suite {
            if args.json {
                println!("{}", json!({ "summary": summarise(&at) }));
            } else {
                print_summary(&at);
            }
        }
        results.push(SetResult { name: set.name, points: set.points, anomalous: set.anomalous, at });
    }
    if suite {
        if args.json {
            println!("{}", json!({ "suite": suite_json(&results) }));
        } else {
            print_suite(&results, args.seeds);
        }
    }
    Ok(())
}

/// One data set to replay: a NAB category, a directory or file, or a synthetic set.
struct DataSet {
    name: String,
    loaded: Vec<Loaded>,
    ground_truth: String,
    points: usize,
    anomalous: usize,
}

/// One data set's reports at the checkpoints.
struct SetResult {
    name: String,
    points: usize,
    anomalous: usize,
    at: BTreeMap<usize, Vec<RoundReport>>,
}

/// The synthetic development sets (`leiad synth` seeds 1 to 5 with the shapes docs/experiments.md
/// used): (seed, series, points per series).
const SYNTHETIC: [(u64, usize, usize); 5] = [(1, 8, 5000), (2, 8, 5000), (3, 6, 6000), (4, 8, 5000), (5, 10, 4000)];

/// The data sets the arguments name, in order: DATA, or each category folder of --suite (sorted),
/// then the synthetic sets with --synthetic.
fn datasets(args: &Args) -> anyhow::Result<Vec<DataSet>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    match (&args.data, &args.suite) {
        (Some(_), Some(_)) => bail!("give either DATA or --suite DIR, not both"),
        (Some(d), None) => dirs.push(d.clone()),
        (None, Some(root)) => {
            let mut cats: Vec<PathBuf> = std::fs::read_dir(root)
                .with_context(|| format!("Failed to read directory {}", root.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_dir()
                        && std::fs::read_dir(p).is_ok_and(|mut r| {
                            r.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "csv")))
                        })
                })
                .collect();
            cats.sort();
            if cats.is_empty() {
                bail!("{}: no category folders holding CSV files", root.display());
            }
            dirs.extend(cats);
        }
        (None, None) if args.synthetic => {}
        (None, None) => bail!("give DATA, --suite DIR or --synthetic"),
    }
    let mut out = Vec::new();
    for d in dirs {
        let (loaded, from_nab) = load(args, &d)?;
        let name = d.file_name().map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into_owned());
        let ground_truth = if !from_nab {
            "label column".to_string()
        } else if args.windows {
            "NAB windows".to_string()
        } else {
            format!("±{} samples of NAB labels", args.tolerance)
        };
        out.push(DataSet::new(name, loaded, ground_truth));
    }
    if args.synthetic {
        for (seed, series, len) in SYNTHETIC {
            let loaded = driftwatch_testkit::labeled_set(series, len, seed)
                .into_iter()
                .enumerate()
                .map(|(k, s)| Loaded {
                    series: SeriesInput { name: format!("synthetic_{k:02}.csv"), values: s.values, period_secs: Some(300.0) },
                    truth: s.labels,
                })
                .collect();
            out.push(DataSet::new(format!("synthetic_{seed}"), loaded, "label column".into()));
        }
    }
    Ok(out)
}

impl DataSet {
    fn new(name: String, loaded: Vec<Loaded>, ground_truth: String) -> Self {
        let points = loaded.iter().map(|l| l.truth.len()).sum();
        let anomalous = loaded.iter().map(|l| l.truth.iter().filter(|&&t| t).count()).sum();
        Self { name, loaded, ground_truth, points, anomalous }
    }
}

/// Replays one data set over the seeds; returns the reports at the checkpoints.
fn run_set(args: &Args, set: &DataSet, quiet: bool) -> anyhow::Result<BTreeMap<usize, Vec<RoundReport>>> {
    let category = set.name.as_str();
    let names: Vec<String> = set.loaded.iter().map(|l| l.series.name.clone()).collect();
    let truth: Vec<bool> = set.loaded.iter().flat_map(|l| l.truth.iter().copied()).collect();
    let pool = Pool::new(set.loaded.iter().map(|l| l.series.clone()).collect())?;
    let t0 = Instant::now();
    let prep = Arc::new(Prepared::new(pool, 0));
    let prepare_ms = t0.elapsed().as_secs_f64() * 1e3;
    // Each seed detector over the whole pool, before any label.
    let mut seed_ap = serde_json::Map::new();
    let mut seed_auc = serde_json::Map::new();
    for d in Detector::ALL {
        let s = prep.detector_scores(d);
        seed_ap.insert(d.name().into(), json!(average_precision(s, &truth)));
        seed_auc.insert(d.name().into(), json!(roc_auc(s, &truth)));
    }
    let info = json!({
        "data": category, "series": names.len(), "points": truth.len(),
        "anomalous_points": set.anomalous, "ground_truth": set.ground_truth,
        "prepare_ms": prepare_ms.round(), "seed_ap": seed_ap, "seed_roc_auc": seed_auc,
    });
    if args.json {
        println!("{}", json!({ "dataset": info }));
    } else {
        println!("dataset: {info}");
    }
    let truth = Arc::new(truth);
    let mut at: BTreeMap<usize, Vec<RoundReport>> = BTreeMap::new();
    let show = !quiet;
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
                    json!({"category": category, "seed": seed, "round": r.round, "windows_labeled": r.windows_labeled,
                        "anomalous_windows": r.anomalous_windows, "ap": r.ap, "roc_auc": r.roc_auc,
                        "round_ms": round_ms.round(), "evaluated_points": r.evaluated_points,
                        "evaluated_anomalies": r.evaluated_anomalies})
                );
            } else if show {
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
    Ok(at)
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
        "gate_default" => cfg.end_model.gate_default = whole()?.min(2),
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

/// Over the seeds whose scored points hold an anomaly (elsewhere AP is undefined).
fn method_stats(reports: &[RoundReport], m: &str) -> MethodStats {
    let defined = || reports.iter().filter(|r| r.evaluated_anomalies > 0);
    let ap: Vec<f64> = defined().map(|r| r.ap[m]).collect();
    let auc: Vec<f64> = defined().map(|r| r.roc_auc[m]).collect();
    let diff: Vec<f64> = defined().map(|r| r.ap["leiad"] - r.ap[m]).collect();
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

/// The methods LEIAD is compared with in the suite (issue 20's fixed set): the baselines, the
/// label model and every seed detector (the gate's candidates are insight, not comparisons).
fn compared() -> Vec<String> {
    let mut m: Vec<String> =
        ["labels_only", "labels_prior", "leiad_random", "label_model"].iter().map(|s| (*s).to_string()).collect();
    m.extend(Detector::ALL.iter().map(|d| d.name().to_string()));
    m
}

/// Per seed (report order), the mean over the data sets of `f(report)`, over the sets where
/// that seed's scored points hold an anomaly; seeds every set reached.
fn across_sets(results: &[SetResult], w: usize, f: impl Fn(&RoundReport) -> f64) -> Vec<f64> {
    let per: Vec<&Vec<RoundReport>> = results.iter().filter_map(|r| r.at.get(&w)).collect();
    if per.len() < results.len() {
        return Vec::new();
    }
    let seeds = per.iter().map(|r| r.len()).min().unwrap_or(0);
    (0..seeds)
        .filter_map(|k| {
            let v: Vec<f64> = per.iter().map(|r| &r[k]).filter(|r| r.evaluated_anomalies > 0).map(&f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

/// The suite's figures: per data set its summary, then `mean` (per method and checkpoint: the mean
/// AP over the sets, the paired LEIAD − method difference of the per-seed means with its 95 %
/// interval, and in how many sets that difference's interval is above zero).
fn suite_json(results: &[SetResult]) -> Value {
    let mut out = serde_json::Map::new();
    for r in results {
        out.insert(
            r.name.clone(),
            json!({"points": r.points, "anomalous_points": r.anomalous, "summary": summarise(&r.at)}),
        );
    }
    let mut mean = serde_json::Map::new();
    let checkpoints: Vec<usize> = results.first().map(|r| r.at.keys().copied().collect()).unwrap_or_default();
    for w in checkpoints {
        let mut methods = serde_json::Map::new();
        for m in std::iter::once("leiad".to_string()).chain(compared()) {
            let ap = across_sets(results, w, |r| r.ap[&m]);
            let d = across_sets(results, w, |r| r.ap["leiad"] - r.ap[&m]);
            let ((ap_m, _), (d_m, d_h)) = (mean_ci(&ap), mean_ci(&d));
            let above = results
                .iter()
                .filter(|r| {
                    r.at.get(&w).is_some_and(|reps| {
                        let s = method_stats(reps, &m);
                        s.d_m - s.d_h > 0.0
                    })
                })
                .count();
            methods.insert(
                m,
                json!({"ap": ap_m, "leiad_minus_ap": d_m, "leiad_minus_ci": [d_m - d_h, d_m + d_h],
                       "sets_ci_above_zero": above, "sets": results.len()}),
            );
        }
        mean.insert(w.to_string(), Value::Object(methods));
    }
    out.insert("mean".into(), Value::Object(mean));
    Value::Object(out)
}

/// One table over the suite (markdown): per data set, LEIAD and every compared method at each
/// checkpoint with the paired difference and its 95 % interval, then the mean over the sets; and
/// a verdict per set.
fn print_suite(results: &[SetResult], seeds: u64) {
    let checkpoints: Vec<usize> = results.first().map(|r| r.at.keys().copied().collect()).unwrap_or_default();
    println!("\nsuite: {} data sets, {seeds} seeds; AP over the points neither run labeled\n", results.len());
    let mut head = "| data | method |".to_string();
    let mut rule = "|---|---|".to_string();
    for w in &checkpoints {
        head.push_str(&format!(" AP @{w} | LEIAD − method @{w} [95% CI] |"));
        rule.push_str("---|---|");
    }
    println!("{head}\n{rule}");
    let methods: Vec<String> = std::iter::once("leiad".to_string()).chain(compared()).collect();
    for r in results {
        for m in &methods {
            let mut row = format!("| {} | {m} |", r.name);
            for w in &checkpoints {
                match r.at.get(w) {
                    Some(reps) if reps[0].ap.contains_key(m) => {
                        let st = method_stats(reps, m);
                        let d = if m == "leiad" {
                            String::new()
                        } else {
                            format!("{:+.4} [{:+.4}, {:+.4}]", st.d_m, st.d_m - st.d_h, st.d_m + st.d_h)
                        };
                        row.push_str(&format!(" {:.4} | {d} |", st.ap_m));
                    }
                    _ => row.push_str(" – | – |"),
                }
            }
            println!("{row}");
        }
    }
    let mean = suite_json(results);
    for m in &methods {
        let mut row = format!("| mean over {} | {m} |", results.len());
        for w in &checkpoints {
            let e = &mean["mean"][w.to_string()][m];
            let d = if m == "leiad" {
                String::new()
            } else {
                let ci = &e["leiad_minus_ci"];
                format!(
                    "{:+.4} [{:+.4}, {:+.4}], CI > 0 in {}/{}",
                    e["leiad_minus_ap"].as_f64().unwrap_or(f64::NAN),
                    ci[0].as_f64().unwrap_or(f64::NAN),
                    ci[1].as_f64().unwrap_or(f64::NAN),
                    e["sets_ci_above_zero"],
                    e["sets"]
                )
            };
            row.push_str(&format!(" {:.4} | {d} |", e["ap"].as_f64().unwrap_or(f64::NAN)));
        }
        println!("{row}");
    }
    println!();
    for r in results {
        let mut parts = Vec::new();
        for w in &checkpoints {
            let Some(reps) = r.at.get(w) else { continue };
            let defined = reps.iter().filter(|r| r.evaluated_anomalies > 0).count();
            if defined == 0 {
                parts.push(format!("@{w}: undefined (every anomaly labeled by one run or the other in every seed)"));
                continue;
            }
            let stats: Vec<(String, MethodStats)> =
                compared().into_iter().filter(|m| reps[0].ap.contains_key(m)).map(|m| (m.clone(), method_stats(reps, &m))).collect();
            let below: Vec<&str> = stats.iter().filter(|(_, s)| s.d_m <= 0.0).map(|(m, _)| m.as_str()).collect();
            let ci = stats.iter().filter(|(_, s)| s.d_m - s.d_h > 0.0).count();
            parts.push(format!(
                "@{w} ({defined} seeds with an anomaly left): LEIAD {:.4}, above all {} in the mean: {}, CI > 0 for {}/{}",
                method_stats(reps, "leiad").ap_m,
                stats.len(),
                if below.is_empty() { "yes".to_string() } else { format!("no (not above {})", below.join(", ")) },
                ci,
                stats.len()
            ));
        }
        let first = checkpoints.first().and_then(|w| r.at.get(w)).map(|reps| method_stats(reps, "leiad").ap_m);
        let last = checkpoints.last().and_then(|w| r.at.get(w)).map(|reps| method_stats(reps, "leiad").ap_m);
        if let (Some(a), Some(b)) = (first, last) {
            parts.push(format!("LEIAD last − first checkpoint {:+.4}", b - a));
        }
        println!("{} ({} points, {} anomalous): {}", r.name, r.points, r.anomalous, parts.join("; "));
    }
}

/// The series with their ground truth, and whether any came from NAB label files.
fn load(args: &Args, data: &Path) -> anyhow::Result<(Vec<Loaded>, bool)> {
    if data.is_file() {
        let (ts, values, labels) = read_csv(data)?;
        let labels = labels.with_context(|| format!("{}: a single CSV needs a 0/1 `label` column", data.display()))?;
        return Ok((vec![Loaded { series: series_input(data, ts.as_deref(), values), truth: labels }], false));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| format!("Failed to read directory {}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no CSV files", data.display());
    }
    let mut nab: Option<serde_json::Map<String, Value>> = None;
    let mut out = Vec::new();
    for f in &files {
        let (ts, values, labels) = read_csv(f)?;
        let truth = match labels {
            Some(l) => l,
            None => {
                if nab.is_none() {
                    nab = Some(read_nab_labels(args, data)?);
                }
                let map = nab.as_ref().expect("just loaded");
                let ts =
                    ts.as_deref().with_context(|| format!("{}: NAB files need a timestamp column", f.display()))?;
                let key = nab_key(data, f);
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

fn read_nab_labels(args: &Args, data: &Path) -> anyhow::Result<serde_json::Map<String, Value>> {
    let path = match &args.labels {
        Some(p) => p.clone(),
        None => {
            let parent = data.canonicalize()?.parent().map(Path::to_path_buf).unwrap_or_default();
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

