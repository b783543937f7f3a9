//! `driftwatch bench offline`: the offline run (all six psi, t = 200, w = 50, ApEn selection) on
//! the 100,000-point timing series, measured in child processes (so peak memory is the run's own),
//! on one core and on all cores, next to the numpy reference in the same run when it is present.
//! Prints one JSON line per measurement and a summary line with the speed-up ratios.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::{BenchEngineArgs, BenchHttpArgs, BenchOfflineArgs};
use driftwatch_icid::{NearestPath, PsiPolicy, SimdLevel, StreamConfig, StreamDetector};

const FILES: [(&str, usize); 2] = [("timing_uni_100k.csv", 1), ("timing_mv_100k_8.csv", 8)];

/// Runs the benchmark.
///
/// # Errors
/// When the data cannot be written or a driftwatch child run fails.
pub fn offline(args: &BenchOfflineArgs) -> anyhow::Result<()> {
    let reference = Reference::probe(&args.reference_dir, &args.python);
    let data_dir = prepare_data(args, reference.as_ref())?;
    let exe = std::env::current_exe().context("locating the driftwatch binary")?;
    let mut summary = Vec::new();
    for (file, d) in FILES {
        let path = data_dir.join(file);
        let one = best_of(args.repeat, || run_detect(&exe, &path, 1))?;
        let all = best_of(args.repeat, || run_detect(&exe, &path, 0))?;
        println!(
            "{}",
            json!({"bench": "offline", "impl": "driftwatch", "file": file, "d": d, "threads": 1, "elapsed_s": one.0, "peak_rss_bytes": one.1, "psi": one.2})
        );
        println!(
            "{}",
            json!({"bench": "offline", "impl": "driftwatch", "file": file, "d": d, "threads": all.3, "elapsed_s": all.0, "peak_rss_bytes": all.1, "psi": all.2})
        );
        let mut line = json!({"file": file, "d": d, "driftwatch_1core_s": one.0, "driftwatch_allcores_s": all.0, "peak_rss_mb": one.1.map(|b| b as f64 / 1e6)});
        match &reference {
            Some(r) => {
                let (secs, psi) = r.run(&path)?;
                println!(
                    "{}",
                    json!({"bench": "offline", "impl": "numpy-reference", "file": file, "d": d, "threads": 1, "elapsed_s": secs, "psi": psi})
                );
                line["reference_1core_s"] = json!(secs);
                line["speedup_1core"] = json!(secs / one.0);
                line["speedup_allcores"] = json!(secs / all.0);
            }
            None => line["reference"] = json!("not available: give --reference-dir and a --python with numpy"),
        }
        summary.push(line);
    }
    for s in summary {
        println!("{}", json!({"summary": s}));
    }
    Ok(())
}

fn best_of<T: Copy>(
    repeat: usize,
    mut f: impl FnMut() -> anyhow::Result<(f64, T, Value, usize)>,
) -> anyhow::Result<(f64, T, Value, usize)> {
    let mut best = f()?;
    for _ in 1..repeat.max(1) {
        let r = f()?;
        if r.0 < best.0 {
            best = r;
        }
    }
    Ok(best)
}

/// One `driftwatch detect` child run: (compute seconds, peak RSS, psi chosen, threads).
fn run_detect(exe: &Path, file: &Path, threads: usize) -> anyhow::Result<(f64, Option<u64>, Value, usize)> {
    let out = Command::new(exe)
        .args(["detect", "--window", "50", "--alpha", "1", "--timing", "--threads", &threads.to_string()])
        .arg(file)
        .output()
        .context("running driftwatch detect")?;
    if !out.status.success() {
        bail!("driftwatch detect failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing driftwatch detect output")?;
    let timing = &v["timing"];
    Ok((
        timing["elapsed_s"].as_f64().unwrap_or(f64::NAN),
        timing["peak_rss_bytes"].as_u64(),
        v["psi"].clone(),
        timing["threads"].as_u64().unwrap_or(0) as usize,
    ))
}

struct Reference {
    dir: PathBuf,
    python: String,
}

impl Reference {
    /// The reference is usable when its folder exists and the Python has numpy.
    fn probe(dir: &Path, python: &str) -> Option<Self> {
        if !dir.join("run_ref.py").is_file() {
            eprintln!("bench: no numpy reference at {} (skipping the ratio)", dir.display());
            return None;
        }
        let ok =
            Command::new(python).args(["-c", "import numpy"]).output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            eprintln!("bench: {python} has no numpy (skipping the ratio)");
            return None;
        }
        Some(Self { dir: dir.canonicalize().ok()?, python: python.to_owned() })
    }

    fn command(&self, script: &str) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(self.dir.join(script)).current_dir(&self.dir);
        // One core, like the figures the reference's README quotes; the OpenBLAS core-type
        // overrides of these machines slow a current numpy, so they are dropped for this run only.
        for var in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            c.env(var, "1");
        }
        c.env_remove("OPENBLAS_CORETYPE").env_remove("OPENBLAS_L2_SIZE");
        c
    }

    fn run(&self, file: &Path) -> anyhow::Result<(f64, Value)> {
        let out = self
            .command("run_ref.py")
            .arg(file)
            .args(["--window", "50", "--alpha", "1", "--no-scores"])
            .output()
            .context("running the numpy reference")?;
        if !out.status.success() {
            bail!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout).context("parsing reference output")?;
        Ok((v["runtime_s"].as_f64().unwrap_or(f64::NAN), v["psi_selected"].clone()))
    }
}

/// Uses `--data-dir` if it has the files, else the reference's generator, else our own generator
/// (same distribution, different random numbers).
fn prepare_data(args: &BenchOfflineArgs, reference: Option<&Reference>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.data_dir
        && FILES.iter().all(|(f, _)| dir.join(f).is_file())
    {
        return Ok(dir.clone());
    }
    let dir = args.data_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("driftwatch-bench-data"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if FILES.iter().all(|(f, _)| dir.join(f).is_file()) {
        return Ok(dir);
    }
    if let Some(r) = reference
        && args.rows == 100_000
    {
        let ok = r.command("gen_data.py").arg(&dir).status().map(|s| s.success()).unwrap_or(false);
        if ok {
            eprintln!("bench: timing series written by the reference's gen_data.py to {}", dir.display());
            return Ok(dir);
        }
    }
    eprintln!("bench: generating timing series ({} rows) in {}", args.rows, dir.display());
    for (i, (file, d)) in FILES.iter().enumerate() {
        let segments = 10;
        let data = driftwatch_testkit::piecewise_gaussian(segments, args.rows / segments, *d, 404 + i as u64);
        let mut text = (0..*d).map(|j| format!("x{j}")).collect::<Vec<_>>().join(",");
        text.push('\n');
        for row in data.chunks_exact(*d) {
            text.push_str(&row.iter().map(|v| format!("{v:.5}")).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        std::fs::write(dir.join(file), text).with_context(|| format!("writing {file}"))?;
    }
    Ok(dir)
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

/// `driftwatch bench engine`: every scenario on one thread.
///
/// # Errors
/// A detector configuration the engine refuses (not expected).
pub fn engine(args: &BenchEngineArgs) -> anyhow::Result<()> {
    let fixed16 = || PsiPolicy::Fixed(16);
    let all = || PsiPolicy::Online { candidates: vec![2, 4, 8, 16, 32, 64], history: 40, every: 20 };
    let one = |cfg: StreamConfig, d: usize| run_many(&cfg, d, 1, args.points, 1, false);
    let per_series_rounds = (args.points / args.series.max(1) / 100).max(1);
    type Scenario<'a> = (&'a str, Box<dyn Fn() -> anyhow::Result<Measured> + 'a>);
    let scenarios: Vec<Scenario<'_>> = vec![
        ("uni_psi16_change_only", Box::new(|| one(stream_config(fixed16(), false, NearestPath::Auto), 1))),
        (
            "uni_psi16_change_only_scalar_path",
            Box::new(|| one(stream_config(fixed16(), false, NearestPath::Scalar), 1)),
        ),
        ("uni_psi16_service_defaults", Box::new(|| one(stream_config(fixed16(), true, NearestPath::Auto), 1))),
        (
            "uni_psi16_10k_series_runs_of_100_random_order",
            Box::new(|| {
                run_many(
                    &stream_config(fixed16(), true, NearestPath::Auto),
                    1,
                    args.series,
                    100,
                    per_series_rounds,
                    true,
                )
            }),
        ),
        (
            "uni_psi16_10k_series_round_robin_1_point",
            Box::new(|| {
                run_many(
                    &stream_config(fixed16(), true, NearestPath::Auto),
                    1,
                    args.series,
                    1,
                    per_series_rounds * 100,
                    false,
                )
            }),
        ),
        ("uni_all_six_psi_online", Box::new(|| one(stream_config(all(), false, NearestPath::Auto), 1))),
        (
            "mv8_psi16_change_only",
            Box::new(|| run_many(&stream_config(fixed16(), false, NearestPath::Auto), 8, 1, args.points / 4, 1, false)),
        ),
        (
            "mv8_psi16_change_only_scalar_path",
            Box::new(|| {
                run_many(&stream_config(fixed16(), false, NearestPath::Scalar), 8, 1, args.points / 40, 1, false)
            }),
        ),
        (
            "uni_default_policy_memory",
            Box::new(|| {
                run_many(
                    &stream_config(PsiPolicy::AtWarmup(vec![2, 4, 8, 16, 32, 64]), true, NearestPath::Auto),
                    1,
                    1,
                    10_000,
                    1,
                    false,
                )
            }),
        ),
    ];
    let mut results = std::collections::HashMap::new();
    // `--only NAME` runs that scenario when NAME is exactly one; otherwise every name containing it.
    let exact = args.only.as_deref().is_some_and(|o| scenarios.iter().any(|(n, _)| *n == o));
    for (name, run) in scenarios {
        if let Some(o) = args.only.as_deref()
            && (if exact { name != o } else { !name.contains(o) })
        {
            continue;
        }
        let m = run()?;
        println!(
            "{}",
            json!({"scenario": name, "points_per_sec": m.points_per_sec.round(), "bytes_per_series": m.bytes_per_series, "simd": SimdLevel::detect().name()})
        );
        results.insert(name, m.points_per_sec);
    }
    if args.only.is_none() || args.only.as_deref() == Some("memory_by_psi") {
        for psi in [2usize, 4, 8, 16, 32, 64] {
            let m = run_many(&stream_config(PsiPolicy::Fixed(psi), true, NearestPath::Auto), 1, 1, 1_000, 1, false)?;
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
        if let (Some(f), Some(s)) = (results.get(fast), results.get(slow)) {
            println!("{}", json!({"simd_gain": fast, "over": slow, "ratio": f / s}));
        }
    }
    Ok(())
}

/// `driftwatch bench http`: prints one JSON line for the ingest phase and one for the query
/// phase (latency percentiles measured while ingest continues).
///
/// # Errors
/// When the service cannot be started or reached.
pub fn http(args: &BenchHttpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(http_async(args))
}

async fn http_async(args: &BenchHttpArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut _dir = None;
    let mut stop = None;
    let base = match &args.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let mut s = crate::config::Settings::load(None, std::env::vars())?;
            s.http.addr = "127.0.0.1:0".into();
            if s.storage.url.is_none() {
                let dir = tempfile::tempdir()?;
                s.storage.data_dir = dir.path().to_owned();
                _dir = Some(dir);
            }
            let backend = if s.storage.url.is_some() { "postgres" } else { "sqlite" };
            let app = crate::app::Application::build(s).await?;
            let base = format!("http://127.0.0.1:{}", app.port());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let handle = tokio::spawn(app.run_until_stopped(async move {
                let _ = rx.await;
            }));
            stop = Some((tx, handle));
            eprintln!("bench: in-process service on {base} with {backend}");
            base
        }
    };
    let client = reqwest::Client::new();
    let series = args.series.max(1);
    let data = Arc::new(driftwatch_testkit::piecewise_gaussian(20, 5000, 1, 5));
    let next = Arc::new(AtomicUsize::new(0));
    let ingest = |limit: usize| {
        let (client, base, next, data) = (client.clone(), base.clone(), next.clone(), data.clone());
        async move {
            let mut ok = 0usize;
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= limit {
                    break;
                }
                let r = client.post(format!("{base}/v1/points")).body(batch_body(b, series, &data)).send().await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                }
            }
            ok
        }
    };
    // Phase 1: ingest as fast as the service takes it.
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..args.concurrency.max(1)).map(|_| tokio::spawn(ingest(args.batches))).collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"bench": "http_ingest", "batches": ok, "points": ok * 1000, "seconds": secs, "points_per_sec": (ok * 1000) as f64 / secs, "concurrency": args.concurrency, "series": series})
    );
    // Phase 2: interval queries at a fixed rate while ingest runs in the background at
    // `ingest_rate` batches per second.
    next.store(args.batches, Ordering::Relaxed);
    let paced = {
        let (client, base, data) = (client.clone(), base.clone(), data.clone());
        let (rate, seconds, first) = (args.ingest_rate.max(1), args.query_seconds, args.batches);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_nanos(1_000_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sent = Vec::new();
            for b in first..first + (rate * seconds) as usize {
                tick.tick().await;
                let (client, base, data) = (client.clone(), base.clone(), data.clone());
                sent.push(tokio::spawn(async move {
                    client
                        .post(format!("{base}/v1/points"))
                        .body(batch_body(b, series, &data))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }));
            }
            let mut ok = 0usize;
            for s in sent {
                ok += usize::from(s.await.unwrap_or(false));
            }
            ok
        })
    };
    let mut ticker = tokio::time::interval(std::time::Duration::from_nanos(1_000_000_000 / args.query_rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let total = (args.query_rate * args.query_seconds) as usize;
    let mut queries = Vec::with_capacity(total);
    for q in 0..total {
        ticker.tick().await;
        let (client, base) = (client.clone(), base.clone());
        queries.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = client.get(format!("{base}/v1/series/bench-{}/intervals", q % series)).send().await;
            let ok = matches!(&r, Ok(r) if r.status().is_success());
            if let Ok(r) = r {
                let _ = r.bytes().await;
            }
            (t.elapsed().as_secs_f64(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut failed = 0;
    for q in queries {
        let (l, ok) = q.await?;
        lat.push(l);
        failed += usize::from(!ok);
    }
    let during = paced.await?;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] * 1000.0;
    println!(
        "{}",
        json!({"bench": "http_query_during_ingest", "queries": lat.len(), "failed": failed, "rate_per_sec": args.query_rate,
               "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0), "ingest_batches_meanwhile": during,
               "ingest_points_per_sec_meanwhile": args.ingest_rate * 1000})
    );
    if let Some((tx, handle)) = stop {
        let _ = tx.send(());
        handle.await??;
    }
    Ok(())
}

/// Batch `b`: 1,000 consecutive points of one series; the series take turns.
pub(crate) fn batch_body(b: usize, series: usize, data: &[f64]) -> String {
    let (s, round) = (b % series, b / series);
    let pts: Vec<String> = (0..1000)
        .map(|i| {
            let k = round * 1000 + i;
            format!("[{},{}]", 1_795_780_800_000i64 + k as i64 * 1000, data[k % data.len()])
        })
        .collect();
    format!("{{\"series\":\"bench-{s}\",\"points\":[{}]}}", pts.join(","))
}
