//! `driftwatch bench kafka`: the end-to-end benchmark through a real broker. Not part of the
//! test suite (`tests/kafka.rs` checks behaviour; this measures).
//!
//! Per phase: a fresh input topic (and its events and dead-letter topics), an in-process
//! service consuming it (storage from `DATABASE_URL`, else a temporary SQLite), and a producer
//! in the same process sending `points` points over `series` keyed series, round-robin, in
//! messages of `batch` points. Every series has one mean shift of 3 sd in its second half.
//!
//! * throughput: points / (first produce → every point's results stored, as counted by the
//!   service after each storage commit);
//! * latency: for every interval closed, from the moment the producer handed over the message
//!   holding the point that completes the closing window (index `end + window − 1`) to the
//!   moment the `closed` event arrives on the events topic. The service produces that event
//!   after the interval's storage transaction commits, so this bounds "produced → queryable"
//!   from above.
//!
//! `max` produces as fast as it can; `paced` produces at `--rate` points/s, where latency means
//! something (with a backlog, latency is just queueing).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::config::Settings;

/// `driftwatch bench kafka`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kafka bootstrap servers (`scripts/kafka.sh start` runs a local tansu broker).
    #[arg(long, default_value = "127.0.0.1:59092")]
    pub brokers: String,
    /// Series the points are spread over (keys; each has one change point).
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// Points in all.
    #[arg(long, default_value_t = 2_000_000)]
    pub points: usize,
    /// Points per Kafka message.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Produce rate of the latency phase, points per second (the throughput phase produces as
    /// fast as it can).
    #[arg(long, default_value_t = 200_000)]
    pub rate: u64,
    /// Phases to run: `max` (throughput), `paced` (latency at --rate), or both.
    #[arg(long, value_delimiter = ',', default_value = "max,paced")]
    pub phases: Vec<String>,
}

/// Runs the phases and prints one JSON line each.
///
/// # Errors
/// An unreachable broker or storage, or a phase that does not finish in 10 minutes.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for phase in &args.phases {
        let rate = match phase.as_str() {
            "max" => 0,
            "paced" => args.rate,
            other => anyhow::bail!("unknown phase {other:?} (max, paced)"),
        };
        let line = runtime.block_on(phase_run(args, phase, rate))?;
        println!("{line}");
    }
    Ok(())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn phase_run(args: &Args, phase: &str, rate: u64) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.series > 0 && args.batch > 0, "--series and --batch must be at least 1");
    let per_series = args.points / args.series;
    anyhow::ensure!(
        per_series.is_multiple_of(args.batch),
        "points per series ({per_series}) must be a multiple of --batch"
    );
    let topic = unique(&format!("bench-{phase}"));
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &args.brokers).create()?;
    let topics = [topic.clone(), format!("{topic}.events"), format!("{topic}.dlq")];
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, args.partitions, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(new.iter(), &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
    }

    // The service, in process.
    let mut s = Settings::load(None, std::env::vars())?;
    s.http.addr = "127.0.0.1:0".into();
    // Synthetic time from 2026-11-27, a second a point: soon past the clock.
    s.pipeline.max_future_ms = 0;
    let _dir = if s.storage.url.is_none() {
        let dir = tempfile::tempdir()?;
        s.storage.data_dir = dir.path().to_owned();
        Some(dir)
    } else {
        None
    };
    let backend = if s.storage.url.is_some() { "postgres" } else { "sqlite" };
    s.kafka.brokers = args.brokers.clone();
    s.kafka.topics = vec![topic.clone()];
    s.kafka.group_id = unique("bench");
    s.kafka.events_topic = topics[1].clone();
    s.kafka.dead_letter_topic = topics[2].clone();
    let window = s.detector.window;
    let warmup_points = s.detector.window * s.detector.warmup_windows;
    let hop = if s.detector.hop == 0 { window } else { s.detector.hop };
    let app = crate::server::Application::build(s).await?;
    let state = app.service();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));

    // The data: series i is N(0, 1), then N(3, 1) from a point in its second half.
    let prefix = unique("b");
    let mut messages: Vec<(String, String)> = Vec::with_capacity(args.points / args.batch);
    let data: Vec<Vec<f64>> = (0..args.series)
        .map(|i| {
            let cp = per_series / 2 + (i * 7919) % (per_series / 3).max(1);
            driftwatch_testkit::gaussian_segments(&[(0.0, 1.0, cp), (3.0, 1.0, per_series - cp)], i as u64 + 11)
        })
        .collect();
    const T0: i64 = 1_795_780_800_000;
    for chunk in 0..per_series / args.batch {
        for (i, xs) in data.iter().enumerate() {
            let pts: Vec<serde_json::Value> =
                (chunk * args.batch..(chunk + 1) * args.batch).map(|j| json!([T0 + 1000 * j as i64, xs[j]])).collect();
            messages.push((format!("{prefix}-{i:05}"), json!({ "points": pts }).to_string()));
        }
    }
    drop(data);

    // The events reader, joined before the first message is produced.
    let epoch = Instant::now();
    let produced_at: Arc<Vec<AtomicU64>> = Arc::new((0..messages.len()).map(|_| AtomicU64::new(0)).collect());
    let reader_stop = Arc::new(AtomicBool::new(false));
    let events: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", unique("bench-events"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    events.subscribe(&[&topics[1]])?;
    let joined = Instant::now();
    while events.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        let _ = events.poll(Duration::from_millis(100));
        anyhow::ensure!(joined.elapsed() < Duration::from_secs(60), "the events reader did not join its group");
    }
    let reader = {
        let stop = reader_stop.clone();
        std::thread::spawn(move || {
            let mut closed: Vec<(String, u64, u64)> = Vec::new(); // (key, end, received ns)
            while !stop.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = events.poll(Duration::from_millis(20)) {
                    let at = epoch.elapsed().as_nanos() as u64;
                    let Ok(e) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()) else {
                        continue;
                    };
                    if e["event"] == "closed"
                        && let (Some(series), Some(end)) = (e["series"].as_str(), e["end"].as_u64())
                    {
                        closed.push((series.to_owned(), end, at));
                    }
                }
            }
            closed
        })
    };
    // Let the service join its group too, so the clock does not count group joins.
    let joined = Instant::now();
    while state.metrics.kafka_assigned.get() == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        anyhow::ensure!(joined.elapsed() < Duration::from_secs(60), "the service did not join its group");
    }

    // Produce.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    for (k, (key, payload)) in messages.iter().enumerate() {
        if rate > 0 {
            let due = started + Duration::from_secs_f64((k * args.batch) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        produced_at[k].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let record: FutureRecord<'_, str, str> = FutureRecord::to(&topic).key(key.as_str()).payload(payload.as_str());
        inflight.push_back(producer.send_result(record).map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?);
        while inflight.len() > 20_000 {
            if let Some(d) = inflight.pop_front() {
                d.await?.map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
            }
        }
    }
    for d in inflight {
        d.await?.map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
    }
    let produced_secs = started.elapsed().as_secs_f64();
    let total = (per_series * args.series) as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while state.metrics.kafka_points.get() < total {
        anyhow::ensure!(Instant::now() < deadline, "not every point was stored within 10 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored_secs = started.elapsed().as_secs_f64();
    let age = state.metrics.kafka_record_age_seconds.clone();
    tokio::time::sleep(Duration::from_secs(2)).await; // the last events
    reader_stop.store(true, Ordering::SeqCst);
    let closed = reader.join().map_err(|_| anyhow::anyhow!("the events reader panicked"))?;
    let _ = stop_tx.send(());
    service.await??;

    // Latency per closed interval: closing point end + window − 1 (hop = window) → its message.
    // Every series ends its warm-up at the same moment here (the producer is round-robin), so
    // all of them pick psi at once; latencies are also reported for intervals closing at least
    // five windows after that burst.
    let mut latencies: Vec<(f64, bool)> = closed
        .iter()
        .filter_map(|(series, end, at)| {
            let i: usize = series.rsplit('-').next()?.parse().ok()?;
            let closing = *end as usize + window - 1;
            (closing < per_series).then_some(())?;
            let k = (closing / args.batch) * args.series + i;
            let sent = produced_at.get(k)?.load(Ordering::Relaxed);
            Some(((at.saturating_sub(sent)) as f64 / 1e6, closing >= warmup_points + 5 * window))
        })
        .collect();
    latencies.sort_by(|a, b| a.0.total_cmp(&b.0));
    let steady: Vec<f64> = latencies.iter().filter(|l| l.1).map(|l| l.0).collect();
    let latencies: Vec<f64> = latencies.into_iter().map(|l| l.0).collect();
    let line = json!({
        "bench": "kafka", "phase": phase, "storage": backend, "points": total, "series": args.series,
        "points_per_message": args.batch, "partitions": args.partitions,
        "target_rate": if rate == 0 { json!("max") } else { json!(rate) },
        "produce_seconds": produced_secs, "stored_seconds": stored_secs,
        "points_per_second": total as f64 / stored_secs,
        "closed_intervals": latencies.len(),
        "latency_ms": {"p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99),
                        "max": latencies.last().copied().unwrap_or(f64::NAN)},
        "after_warmup_burst": {"closed_intervals": steady.len(), "p50": percentile(&steady, 0.5),
                               "p99": percentile(&steady, 0.99)},
        "window": window, "hop": hop,
        "record_age_mean_ms": age.get_sample_sum() / age.get_sample_count().max(1) as f64 * 1000.0,
    });
    eprintln!(
        "bench kafka {phase}: {total} points over {} series ({backend}): produced in {produced_secs:.2} s, all stored after {stored_secs:.2} s = {:.0} points/s; closed-interval latency p50 {:.0} ms, p99 {:.0} ms over {} intervals ({} closing after the warm-up burst: p50 {:.0} ms, p99 {:.0} ms)",
        args.series,
        total as f64 / stored_secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len(),
        steady.len(),
        percentile(&steady, 0.5),
        percentile(&steady, 0.99),
    );
    Ok(line)
}
