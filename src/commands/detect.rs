//! `driftwatch detect FILE.csv`: change points of a file, JSON on stdout. The default method is
//! `auto` (segmentation in the isolation kernel's feature space, every choice from the data); the
//! paper's iCID stays available by name (`--method icid`) with its own options and behaviour, and
//! `--mode online` runs the streaming detector the service uses.
//!
//! Every value the user did not give is reported under `"defaults"` with the rule that chose it,
//! so a run can be repeated exactly.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use driftwatch_icid::segment::{Choice, SegmentParams, segment};
use driftwatch_icid::{Layout, NearestPath, Params, PsiChoice, SimdLevel, detect, suggest_window};
use serde_json::{Map, Value, json};

use clap::ValueEnum;

use super::host::{init_threads, peak_rss_bytes};
use crate::input::read_csv;
use driftwatch_icid::{Event, PsiPolicy, StreamConfig, StreamDetector};

/// `driftwatch detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV file: one row per time step, one column per dimension; the header line is optional.
    pub file: PathBuf,
    /// Columns to use, by header name or 0-based index, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// `auto`: segmentation in the kernel's feature space, every choice from the data (the
    /// default). `icid`: the paper's method (windows, alpha, psi by approximate entropy).
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    pub method: MethodArg,
    /// auto: pattern width of the subsequence embedding (default: from the autocorrelation).
    #[arg(long)]
    pub width: Option<usize>,
    /// auto: a change is kept when its gain stands this many standard deviations above the
    /// gains of block-shuffled copies (default 2).
    #[arg(long)]
    pub z: Option<f64>,
    /// auto: block shuffles per significance test (default 50).
    #[arg(long)]
    pub permutations: Option<usize>,
    /// icid and online: window length in rows (default: about sqrt(n), leaving at least 20 windows).
    #[arg(long, short = 'w')]
    pub window: Option<usize>,
    /// icid and online: threshold = mean + alpha * std of the scores (default 2).
    #[arg(long, short = 'a', allow_negative_numbers = true)]
    pub alpha: Option<f64>,
    /// `auto` or a number; icid also takes a comma list of candidates (auto: 2,4,8,16,32,64 by
    /// lowest approximate entropy; method auto: 64, at most a quarter of the rows).
    #[arg(long, default_value = "auto")]
    pub psi: String,
    /// Partitionings of the isolation kernel (default: 100 for auto, 200 for icid and online).
    #[arg(long)]
    pub t: Option<usize>,
    /// Seed of the partitionings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// icid: window layout, `shared` (the authors': neighbours share a row) or `halfopen`.
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// icid and online: include the normalised point scores and the raw window scores.
    #[arg(long)]
    pub scores: bool,
    /// Worker threads; 0 = all cores.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Nearest-centre implementation (for checks and benchmarks); a level this CPU lacks is
    /// refused.
    #[arg(long, visible_alias = "level", value_enum, default_value_t = PathArg::Auto)]
    pub path: PathArg,
    /// Add compute time and peak memory to the output.
    #[arg(long)]
    pub timing: bool,
    /// `offline`: the batch method over the whole file. `online`: the streaming detector fed
    /// one row at a time (row index as timestamp), as the service runs it.
    #[arg(long, value_enum, default_value_t = ModeArg::Offline)]
    pub mode: ModeArg,
    /// online: points between scores (a divisor of the window; default: the window).
    #[arg(long)]
    pub hop: Option<usize>,
    /// online: windows buffered before detection starts (default: 500 points' worth, at least 2).
    #[arg(long)]
    pub warmup_windows: Option<usize>,
    /// online: re-select psi as the stream goes (tracks every candidate; more memory and time).
    #[arg(long)]
    pub online_psi: bool,
}

/// The offline method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Segmentation in the isolation kernel's feature space with significance from the data.
    Auto,
    /// The paper's iCID: adjacent windows, threshold mean + alpha·std, psi by approximate entropy.
    Icid,
}

/// Offline or streaming detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Batch iCID over the whole file.
    Offline,
    /// The streaming detector, one row at a time.
    Online,
}

/// Window layouts on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// The authors' layout.
    Shared,
    /// Half-open windows.
    Halfopen,
}

/// Nearest-centre implementations on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// Widest SIMD level present.
    Auto,
    /// The scalar reference loop.
    Scalar,
    /// Fast path without SIMD intrinsics.
    Portable,
    /// Fast path, AVX2+FMA.
    Avx2,
    /// Fast path, AVX-512F.
    Avx512,
}

/// Parses `--psi`: `auto`, one number, or a comma list of candidates.
///
/// # Errors
/// A value that is not `auto` or positive integers.
pub fn parse_psi(s: &str) -> anyhow::Result<PsiChoice> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(PsiChoice::default());
    }
    let list: Vec<usize> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .with_context(|| format!("--psi: {p:?} is not a whole number (use auto, N or a comma list)"))
        })
        .collect::<anyhow::Result<_>>()?;
    match list.as_slice() {
        [one] => Ok(PsiChoice::Fixed(*one)),
        _ => Ok(PsiChoice::Auto(list)),
    }
}

/// The engine's path for `--path`/`--level`, refused when this CPU lacks the level.
///
/// # Errors
/// A forced level this CPU does not support.
pub fn nearest_path(p: PathArg) -> anyhow::Result<NearestPath> {
    let path = match p {
        PathArg::Auto => NearestPath::Auto,
        PathArg::Scalar => NearestPath::Scalar,
        PathArg::Portable => NearestPath::Forced(SimdLevel::Portable),
        PathArg::Avx2 => NearestPath::Forced(SimdLevel::Avx2),
        PathArg::Avx512 => NearestPath::Forced(SimdLevel::Avx512),
    };
    path.check().map_err(|e| {
        anyhow::anyhow!("--path {}: {e}", p.to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned()))
    })
}

/// Runs the command.
///
/// # Errors
/// Unreadable or bad input, or parameters the engine rejects; the message names the file.
pub fn run(args: &Args) -> anyhow::Result<()> {
    init_threads(args.threads);
    let table = read_csv(&args.file, args.columns.as_deref())?;
    if args.mode == ModeArg::Offline && args.method == MethodArg::Auto {
        return run_auto(args, &table);
    }
    let mut defaults = Map::new();
    let window = match args.window {
        Some(w) => w,
        None => {
            let w = suggest_window(table.n);
            defaults
                .insert("window".into(), json!(format!("{w}: about sqrt(n) for n = {}, at least 20 windows", table.n)));
            w
        }
    };
    let psi = parse_psi(&args.psi)?;
    if args.psi.eq_ignore_ascii_case("auto") {
        defaults.insert("psi".into(), json!("auto: lowest approximate entropy over 2,4,8,16,32,64"));
    }
    let params = Params {
        window,
        alpha: args.alpha.unwrap_or(2.0),
        t: args.t.unwrap_or(driftwatch_icid::offline::DEFAULT_T),
        psi,
        seed: args.seed,
        layout: match args.layout.unwrap_or(LayoutArg::Shared) {
            LayoutArg::Shared => Layout::Shared,
            LayoutArg::Halfopen => Layout::HalfOpen,
        },
        path: nearest_path(args.path)?,
    };
    if args.mode == ModeArg::Online {
        return run_online(args, &table, &params, defaults);
    }
    let started = Instant::now();
    let det = detect(&table.data, table.d, &params).with_context(|| args.file.display().to_string())?;
    let elapsed = started.elapsed().as_secs_f64();

    let mut out = Map::new();
    out.insert("file".into(), json!(args.file.display().to_string()));
    out.insert("method".into(), json!("icid"));
    out.insert("n".into(), json!(det.n));
    out.insert("d".into(), json!(det.d));
    if let Some(names) = &table.names {
        out.insert("columns".into(), json!(names));
    }
    out.insert("window".into(), json!(window));
    out.insert("windows".into(), json!(det.windows.len()));
    out.insert("layout".into(), json!(params.layout.name()));
    out.insert("alpha".into(), json!(params.alpha));
    out.insert("t".into(), json!(params.t));
    out.insert("seed".into(), json!(params.seed));
    out.insert("psi".into(), json!(det.psi));
    if det.candidates.iter().any(|c| c.apen.is_some()) {
        let apen: Map<String, Value> = det.candidates.iter().map(|c| (c.psi.to_string(), json!(c.apen))).collect();
        out.insert("apen".into(), Value::Object(apen));
    }
    out.insert("threshold".into(), json!(det.threshold));
    out.insert("change_points".into(), json!(det.change_points()));
    let intervals: Vec<Value> =
        det.intervals.iter().map(|iv| json!({"start": iv.start, "end": iv.end, "peak_score": iv.peak_score})).collect();
    out.insert("intervals".into(), json!(intervals));
    if !defaults.is_empty() {
        out.insert("defaults".into(), Value::Object(defaults));
    }
    if args.scores {
        out.insert("window_starts".into(), json!(det.windows.starts()));
        out.insert("window_scores".into(), json!(det.window_scores));
        out.insert("scores".into(), json!(det.point_scores));
    }
    if args.timing {
        out.insert(
            "timing".into(),
            json!({"elapsed_s": elapsed, "threads": rayon::current_num_threads(), "simd": params.path.used(), "peak_rss_bytes": peak_rss_bytes()}),
        );
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// `--mode online`: the streaming detector over the file's rows, events and intervals as JSON.
fn run_online(
    args: &Args,
    table: &crate::input::Table,
    params: &Params,
    mut defaults: Map<String, Value>,
) -> anyhow::Result<()> {
    let mut cfg = StreamConfig::new(params.window);
    cfg.hop = args.hop.unwrap_or(params.window);
    cfg.alpha = params.alpha;
    cfg.t = params.t;
    cfg.seed = params.seed;
    cfg.path = params.path;
    if let Some(w) = args.warmup_windows {
        cfg.warmup_windows = w;
    }
    cfg.psi = match (&params.psi, args.online_psi) {
        (PsiChoice::Fixed(p), _) => PsiPolicy::Fixed(*p),
        (PsiChoice::Auto(c), true) => PsiPolicy::Online { candidates: c.clone(), history: 40, every: 20 },
        (PsiChoice::Auto(_), false) if args.psi.eq_ignore_ascii_case("auto") => {
            defaults.insert(
                "psi".into(),
                json!("auto: lowest approximate entropy of the warm-up over 2,4,8,16 (streaming default)"),
            );
            cfg.psi.clone()
        }
        (PsiChoice::Auto(c), false) => PsiPolicy::AtWarmup(c.clone()),
    };
    let warm = cfg.warmup_windows * cfg.window;
    if table.n < warm + cfg.window {
        anyhow::bail!(
            "{}: {} rows are too few for online mode: warm-up takes {} ({} windows of {}) and detection at least one more window",
            args.file.display(),
            table.n,
            warm,
            cfg.warmup_windows,
            cfg.window
        );
    }
    cfg.collect_blocks = args.scores;
    let mut det = StreamDetector::new(cfg.clone(), table.d).with_context(|| args.file.display().to_string())?;
    let started = Instant::now();
    let mut events = Vec::new();
    // Window scores after warm-up; anomaly scores for every point, warm-up included (0 there).
    let (mut window_scores, mut anomaly, mut anomaly_warmup) = (Vec::new(), Vec::new(), 0usize);
    let mut take = |det: &mut StreamDetector, window_scores: &mut Vec<Option<f64>>, anomaly: &mut Vec<f32>| {
        for b in det.drain_blocks() {
            if b.threshold.is_some() || b.score.is_some() {
                window_scores.push(b.score);
            }
            if b.warming_up {
                anomaly_warmup = anomaly_warmup.max(b.first_index as usize + b.rows);
            }
            anomaly.extend_from_slice(&b.anomaly);
        }
    };
    for (i, row) in table.data.chunks_exact(table.d).enumerate() {
        det.push(i as i64, row, &mut events);
        if args.scores {
            take(&mut det, &mut window_scores, &mut anomaly);
        }
    }
    det.flush(&mut events);
    if args.scores {
        take(&mut det, &mut window_scores, &mut anomaly);
        anomaly.extend_from_slice(det.pending_anomaly_scores().0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let intervals: Vec<Value> = events
        .iter()
        .filter_map(|e| match e {
            Event::Closed(c) => Some(json!({
                "start": c.start, "end": c.end, "change_point": c.change_point, "peak_score": c.peak_score,
                "detected_at": c.detected_at, "explanation": c.explanation,
            })),
            _ => None,
        })
        .collect();
    let change_points: Vec<Value> = intervals.iter().map(|i| i["change_point"].clone()).collect();
    let mut out = Map::new();
    out.insert("file".into(), json!(args.file.display().to_string()));
    out.insert("mode".into(), json!("online"));
    out.insert("n".into(), json!(table.n));
    out.insert("d".into(), json!(table.d));
    if let Some(names) = &table.names {
        out.insert("columns".into(), json!(names));
    }
    out.insert("window".into(), json!(cfg.window));
    out.insert("hop".into(), json!(cfg.hop));
    out.insert("warmup_points".into(), json!(warm));
    out.insert("alpha".into(), json!(cfg.alpha));
    out.insert("t".into(), json!(cfg.t));
    out.insert("seed".into(), json!(cfg.seed));
    out.insert("psi".into(), json!(det.psi()));
    out.insert("threshold".into(), json!(det.threshold()));
    out.insert("change_points".into(), json!(change_points));
    out.insert("intervals".into(), json!(intervals));
    out.insert("events".into(), serde_json::to_value(&events)?);
    out.insert("stats".into(), serde_json::to_value(det.stats())?);
    out.insert("state_bytes".into(), json!(det.state_bytes()));
    if !defaults.is_empty() {
        out.insert("defaults".into(), Value::Object(defaults));
    }
    if args.scores {
        out.insert("window_scores".into(), json!(window_scores));
        out.insert("anomaly_scores".into(), json!(anomaly));
        out.insert("anomaly_warmup_points".into(), json!(anomaly_warmup));
    }
    if args.timing {
        out.insert("timing".into(), json!({"elapsed_s": elapsed, "points_per_sec": table.n as f64 / elapsed, "peak_rss_bytes": peak_rss_bytes()}));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// `--method auto` (offline): [`segment`] over the file, change points, their intervals and
/// significance, and every choice it made.
fn run_auto(args: &Args, table: &crate::input::Table) -> anyhow::Result<()> {
    for (given, name) in [
        (args.window.is_some(), "--window"),
        (args.alpha.is_some(), "--alpha"),
        (args.layout.is_some(), "--layout"),
        (args.scores, "--scores"),
    ] {
        if given {
            bail!("{name} applies to --method icid and --mode online, not to the default method auto");
        }
    }
    let mut params = SegmentParams { seed: args.seed, path: nearest_path(args.path)?, ..SegmentParams::default() };
    if let Some(w) = args.width {
        params.width = Choice::Fixed(w);
    }
    if !args.psi.eq_ignore_ascii_case("auto") {
        let p = args.psi.trim().parse::<usize>().with_context(|| {
            format!("--psi: {:?} is not a whole number (method auto takes auto or one number)", args.psi)
        })?;
        params.psi = Choice::Fixed(p);
    }
    if let Some(t) = args.t {
        params.t = t;
    }
    if let Some(z) = args.z {
        params.z = z;
    }
    if let Some(r) = args.permutations {
        params.permutations = r;
    }
    let started = Instant::now();
    let seg = segment(&table.data, table.d, &params).with_context(|| args.file.display().to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut defaults: Map<String, Value> = seg.defaults.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
    if args.z.is_none() {
        defaults.insert(
            "z".into(),
            json!(format!("{}: a change must stand two standard deviations above block-shuffled copies", params.z)),
        );
    }
    let mut out = Map::new();
    out.insert("file".into(), json!(args.file.display().to_string()));
    out.insert("method".into(), json!("auto"));
    out.insert("n".into(), json!(seg.n));
    out.insert("d".into(), json!(seg.d));
    if let Some(names) = &table.names {
        out.insert("columns".into(), json!(names));
    }
    out.insert("width".into(), json!(seg.width));
    out.insert("psi".into(), json!(seg.psi));
    out.insert("t".into(), json!(seg.t));
    out.insert("z".into(), json!(params.z));
    out.insert("permutations".into(), json!(params.permutations));
    out.insert("min_size".into(), json!(seg.min_size));
    out.insert("seed".into(), json!(params.seed));
    out.insert("change_points".into(), json!(seg.rows()));
    let intervals: Vec<Value> = seg
        .change_points
        .iter()
        .map(|c| {
            json!({"start": c.interval.0, "end": c.interval.1, "change_point": c.row, "peak_score": c.z,
                   "p_value": c.p_value, "gain": c.gain})
        })
        .collect();
    out.insert("intervals".into(), json!(intervals));
    out.insert("defaults".into(), Value::Object(defaults));
    if args.timing {
        out.insert(
            "timing".into(),
            json!({"elapsed_s": elapsed, "threads": rayon::current_num_threads(), "simd": params.path.used(), "peak_rss_bytes": peak_rss_bytes()}),
        );
    }
    println!("{}", Value::Object(out));
    Ok(())
}
