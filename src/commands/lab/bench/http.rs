//! `driftwatch bench http`: the HTTP service under load, ingest of 1,000-point batches, then
//! interval queries at a fixed rate while ingest goes on.

use serde_json::json;

/// `driftwatch bench http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A running service to load instead of an in-process one.
    #[arg(long)]
    pub url: Option<String>,
    /// Series the points are spread over.
    #[arg(long, default_value_t = 64)]
    pub series: usize,
    /// Batches of 1,000 points to post.
    #[arg(long, default_value_t = 600)]
    pub batches: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Interval queries per second during the second phase.
    #[arg(long, default_value_t = 1000)]
    pub query_rate: u64,
    /// Seconds of the query phase.
    #[arg(long, default_value_t = 10)]
    pub query_seconds: u64,
    /// Batches per second posted during the query phase (200 = the 200,000 points/s target).
    #[arg(long, default_value_t = 200)]
    pub ingest_rate: u64,
}

/// `driftwatch bench http`: prints one JSON line for the ingest phase and one for the query
/// phase (latency percentiles measured while ingest continues).
///
/// # Errors
/// When the service cannot be started or reached.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(http_async(args))
}

async fn http_async(args: &Args) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut _dir = None;
    let mut stop = None;
    let base = match &args.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let mut s = crate::config::Settings::load(None, std::env::vars())?;
            s.http.addr = "127.0.0.1:0".into();
            // Synthetic time from 2026-11-27, a second a point: soon past the clock.
            s.pipeline.max_future_ms = 0;
            if s.storage.url.is_none() {
                let dir = tempfile::tempdir()?;
                s.storage.data_dir = dir.path().to_owned();
                _dir = Some(dir);
            }
            let backend = if s.storage.url.is_some() { "postgres" } else { "sqlite" };
            let app = crate::server::Application::build(s).await?;
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
                let r = client
                    .post(format!("{base}/v1/points"))
                    .header("content-type", "application/json")
                    .body(batch_body(b, series, &data)).send().await;
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
                        .header("content-type", "application/json")
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
pub(super) fn batch_body(b: usize, series: usize, data: &[f64]) -> String {
    let (s, round) = (b % series, b / series);
    let pts: Vec<String> = (0..1000)
        .map(|i| {
            let k = round * 1000 + i;
            format!("[{},{}]", 1_795_780_800_000i64 + k as i64 * 1000, data[k % data.len()])
        })
        .collect();
    format!("{{\"series\":\"bench-{s}\",\"points\":[{}]}}", pts.join(","))
}
