//! `driftwatch bench engine`: the streaming detector on one core, points per second and bytes
//! per series for each scenario of the streaming issue, one JSON line each naming the level the
//! nearest-centre search actually ran on (`simd`), plus the SIMD path's gain over the scalar
//! path. `--path LEVEL` forces a level; `--all-levels` runs every scenario at every level this
//! CPU supports, each in a fresh child process, with its ratio to the portable level in the same
//! run.

use anyhow::Context;
use serde_json::json;

use driftwatch_icid::{NearestPath, PsiPolicy, SimdLevel, StreamConfig, StreamDetector};

use crate::commands::detect::{PathArg, nearest_path};

/// `driftwatch bench engine`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Points timed per single-series scenario (after warm-up).
    #[arg(long, default_value_t = 2_000_000)]
    pub points: usize,
    /// Series in the many-series scenarios.
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Level of the fast path: `auto` (the widest present), `avx512`, `avx2`, `portable` or
    /// `scalar`; a level this CPU lacks is refused. The `_scalar_path` scenarios stay scalar.
    #[arg(long, visible_alias = "level", value_enum, default_value_t = PathArg::Auto, conflicts_with = "all_levels")]
    pub path: PathArg,
    /// Every scenario at every level this CPU supports (portable first, each in a child process
    /// of its own), each line with its ratio to the portable level of the same scenario in the
    /// same run.
    #[arg(long)]
    pub all_levels: bool,
}

/// One streaming scenario's outcome.
struct Measured {
    points_per_sec: f64,
    bytes_per_series: usize,
}

fn stream_config(psi: PsiPolicy, service_defaults: bool, path: NearestPath) -> StreamConfig {
    let mut cfg = StreamConfig::new(50);
    cfg.psi = psi;
    cfg.anomaly = service_defaults;
    cfg.explain = service_defaults;
    cfg.path = path;
    cfg
}

/// A long univariate series with a change every 5,000 points (so intervals open and close).
fn signal(len: usize, d: usize, seed: u64) -> Vec<f64> {
    let segments = len.div_ceil(5000);
    driftwatch_testkit::piecewise_gaussian(segments, 5000, d, seed)
}

/// Warms `series` detectors up, then times `rounds` passes in which every series receives `run`
/// points, series visited in `order` each pass.
fn run_many(
    cfg: &StreamConfig,
    d: usize,
    series: usize,
    run: usize,
    rounds: usize,
    shuffle: bool,
) -> anyhow::Result<Measured> {
    let warm = cfg.warmup_windows * cfg.window;
    let data = signal(warm + run * rounds, d, 11);
    let mut dets = Vec::with_capacity(series);
    let mut events = Vec::new();
    for s in 0..series {
        let mut det = StreamDetector::new(cfg.clone(), d)?;
        for i in 0..warm {
            // Offset each series so they are not identical.
            let row = &data[((i + s) % warm) * d..((i + s) % warm + 1) * d];
            det.push(i as i64, row, &mut events);
        }
        dets.push(det);
    }
    let bytes = dets.iter().map(StreamDetector::state_bytes).sum::<usize>() / series;
    let mut order: Vec<usize> = (0..series).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let started = std::time::Instant::now();
    for round in 0..rounds {
        if shuffle {
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
        }
        for &s in &order {
            let det = &mut dets[s];
            for p in 0..run {
                let i = warm + round * run + p;
                det.push(i as i64, &data[i * d..(i + 1) * d], &mut events);
            }
            events.clear();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Measured { points_per_sec: (series * run * rounds) as f64 / secs, bytes_per_series: bytes })
}

/// `--path` name of a path (`auto` never reaches here).
fn path_arg(path: NearestPath) -> &'static str {
    match path {
        NearestPath::Scalar => "scalar",
        NearestPath::Forced(SimdLevel::Portable) => "portable",
        NearestPath::Forced(SimdLevel::Avx2) => "avx2",
        NearestPath::Forced(SimdLevel::Avx512) => "avx512",
        NearestPath::Auto => "auto",
    }
}

/// Runs scenario `name` on `path` in a child process of this binary (`--only NAME --path P`) and
/// reads its line.
fn in_child(args: &Args, name: &str, path: NearestPath) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("locating the driftwatch binary")?;
    let (points, series) = (args.points.to_string(), args.series.to_string());
    let out = std::process::Command::new(exe)
        .args(["bench", "engine", "--only", name, "--path", path_arg(path), "--points", &points, "--series", &series])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting a child bench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: serde_json::Value = match stdout.lines().next().map(serde_json::from_str) {
        Some(Ok(v)) if out.status.success() => v,
        _ => anyhow::bail!("bench engine --only {name} --path {} failed ({})", path_arg(path), out.status),
    };
    match (line["points_per_sec"].as_f64(), line["bytes_per_series"].as_u64()) {
        (Some(points_per_sec), Some(bytes)) => Ok(Measured { points_per_sec, bytes_per_series: bytes as usize }),
        _ => anyhow::bail!("bench engine --only {name}: unexpected line {line}"),
    }
}

/// A scenario: its name, whether it runs on the level under test (the `_scalar_path` ones are
/// the scalar baseline), and the run itself on a given path.
type Scenario<'a> = (&'a str, bool, Box<dyn Fn(NearestPath) -> anyhow::Result<Measured> + 'a>);

/// `driftwatch bench engine`: every scenario on one thread.
///
/// # Errors
/// A level this CPU lacks, or a detector configuration the engine refuses (not expected).
pub fn run(args: &Args) -> anyhow::Result<()> {
    let paths: Vec<NearestPath> = if args.all_levels {
        SimdLevel::available().into_iter().map(NearestPath::Forced).collect()
    } else {
        vec![nearest_path(args.path)?]
    };
    let fixed16 = || PsiPolicy::Fixed(16);
    let all = || PsiPolicy::Online { candidates: vec![2, 4, 8, 16, 32, 64], history: 40, every: 20 };
    let one = |cfg: StreamConfig, d: usize| run_many(&cfg, d, 1, args.points, 1, false);
    let per_series_rounds = (args.points / args.series.max(1) / 100).max(1);
    let scenarios: Vec<Scenario<'_>> = vec![
        ("uni_psi16_change_only", true, Box::new(|p| one(stream_config(fixed16(), false, p), 1))),
        (
            "uni_psi16_change_only_scalar_path",
            false,
            Box::new(|_| one(stream_config(fixed16(), false, NearestPath::Scalar), 1)),
        ),
        ("uni_psi16_service_defaults", true, Box::new(|p| one(stream_config(fixed16(), true, p), 1))),
        (
            "uni_psi16_10k_series_runs_of_100_random_order",
            true,
            Box::new(|p| run_many(&stream_config(fixed16(), true, p), 1, args.series, 100, per_series_rounds, true)),
        ),
        (
            "uni_psi16_10k_series_round_robin_1_point",
            true,
            Box::new(|p| {
                run_many(&stream_config(fixed16(), true, p), 1, args.series, 1, per_series_rounds * 100, false)
            }),
        ),
        ("uni_all_six_psi_online", true, Box::new(|p| one(stream_config(all(), false, p), 1))),
        (
            "mv8_psi16_change_only",
            true,
            Box::new(|p| run_many(&stream_config(fixed16(), false, p), 8, 1, args.points / 4, 1, false)),
        ),
        (
            "mv8_psi16_change_only_scalar_path",
            false,
            Box::new(|_| {
                run_many(&stream_config(fixed16(), false, NearestPath::Scalar), 8, 1, args.points / 40, 1, false)
            }),
        ),
        (
            "uni_default_policy_memory",
            true,
            Box::new(|p| {
                run_many(
                    &stream_config(PsiPolicy::AtWarmup(vec![2, 4, 8, 16, 32, 64]), true, p),
                    1,
                    1,
                    10_000,
                    1,
                    false,
                )
            }),
        ),
    ];
    // Points per second by (scenario, level actually used).
    let mut results: std::collections::HashMap<(&str, &str), f64> = std::collections::HashMap::new();
    // `--only NAME` runs that scenario when NAME is exactly one; otherwise every name containing it.
    let exact = args.only.as_deref().is_some_and(|o| scenarios.iter().any(|(n, _, _)| *n == o));
    for (name, on_level, run) in &scenarios {
        if let Some(o) = args.only.as_deref()
            && (if exact { name != &o } else { !name.contains(o) })
        {
            continue;
        }
        let levels: &[NearestPath] = if *on_level { &paths } else { &[NearestPath::Scalar] };
        for &path in levels {
            // Each level in a fresh process: in one process the 10,000-series scenarios ran
            // 10-30 % slower on every level after the first (each builds 1.2 GB of detectors
            // after the previous level freed its own), which skewed the ratios.
            let m = if args.all_levels { in_child(args, name, path)? } else { run(path)? };
            let used = path.used();
            results.insert((name, used), m.points_per_sec);
            let mut line = json!({"scenario": name, "simd": used, "points_per_sec": m.points_per_sec.round(), "bytes_per_series": m.bytes_per_series});
            if args.all_levels
                && *on_level
                && let Some(base) = results.get(&(*name, SimdLevel::Portable.name()))
            {
                line["vs_portable"] = json!((m.points_per_sec / base * 100.0).round() / 100.0);
            }
            println!("{line}");
        }
    }
    if args.only.is_none() || args.only.as_deref() == Some("memory_by_psi") {
        for psi in [2usize, 4, 8, 16, 32, 64] {
            let m = run_many(&stream_config(PsiPolicy::Fixed(psi), true, paths[0]), 1, 1, 1_000, 1, false)?;
            println!(
                "{}",
                json!({"scenario": format!("memory_uni_fixed_psi_{psi}"), "bytes_per_series": m.bytes_per_series})
            );
        }
    }
    for (fast, slow) in [
        ("uni_psi16_change_only", "uni_psi16_change_only_scalar_path"),
        ("mv8_psi16_change_only", "mv8_psi16_change_only_scalar_path"),
    ] {
        for path in &paths {
            if let (Some(f), Some(s)) = (results.get(&(fast, path.used())), results.get(&(slow, "scalar"))) {
                println!("{}", json!({"simd_gain": fast, "simd": path.used(), "over": slow, "ratio": f / s}));
            }
        }
    }
    Ok(())
}
