//! Fault tests: the service under the failures operators meet, each checked against the same
//! data ingested by an uninterrupted instance.
//!
//! * `sigkill_*`: `driftwatch serve` (a child process, SQLite) is SIGKILLed twice while clients
//!   post points over HTTP, and restarted on the same port;
//! * `postgres_restart_*`: the PostgreSQL server under an in-process service is stopped and
//!   started again mid-stream (a server of its own, on port 55433 or `DRIFTWATCH_FAULTS_PG_PORT`,
//!   so other tests are untouched);
//! * `broker_pause_*`: the Kafka-protocol broker under a consuming service is frozen with SIGSTOP
//!   and resumed (a broker of its own, on port 59093 or `DRIFTWATCH_FAULTS_KAFKA_PORT`; tansu
//!   keeps topics in memory, so a real restart would lose them);
//! * `storage_quota_*`: the embedded store reaches `storage.max_bytes` mid-stream, then space is
//!   freed.
//!
//! After each: every series has exactly its points stored once, and its intervals (start, end,
//! status, peak score bits) and score blocks (window score, threshold, anomaly scores) equal the
//! uninterrupted run's, so no point's result is lost and no interval is duplicated; the service
//! recovered by itself (clients only retry what was not acknowledged, as any client must);
//! errors were answered with their stable codes (never `internal`), and metrics and logs say what
//! happened.
//!
//! Clients retry a batch until it is acknowledged, like any at-least-once producer.
//! Sizes: short here; `DRIFTWATCH_FAULTS=full` (scripts/faults.sh) runs 64 series × 4,000 points,
//! a 30 s broker pause and a 15 s database outage.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Size {
    series: usize,
    points: usize,
    batch: usize,
    pause: Duration,
    db_down: Duration,
}

fn size() -> Size {
    if std::env::var("DRIFTWATCH_FAULTS").as_deref() == Ok("full") {
        Size { series: 64, points: 4000, batch: 50, pause: Duration::from_secs(30), db_down: Duration::from_secs(15) }
    } else {
        Size { series: 12, points: 1200, batch: 50, pause: Duration::from_secs(5), db_down: Duration::from_secs(3) }
    }
}

const T0: i64 = 1_795_780_800_000;
const DEADLINE: Duration = Duration::from_secs(300);

/// Series i: N(0, 1), then N(3, 1) from its change point on.
fn dataset(sz: &Size) -> Vec<(String, Vec<f64>)> {
    (0..sz.series)
        .map(|i| {
            let cp = sz.points / 2 + (i % 5) * 20;
            let xs = driftwatch_testkit::gaussian_segments(&[(0.0, 1.0, cp), (3.0, 1.0, sz.points - cp)], i as u64 + 1);
            (format!("f-{i:03}"), xs)
        })
        .collect()
}

fn points_json(xs: &[f64], range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(|j| json!([T0 + 1000 * j as i64, xs[j]])).collect()
}

/// Detector settings shared by every run (small windows so short series detect).
fn detector_env() -> Vec<(&'static str, String)> {
    vec![
        ("DRIFTWATCH__PIPELINE__SHARDS", "2".into()),
        ("DRIFTWATCH__DETECTOR__WINDOW", "20".into()),
        ("DRIFTWATCH__DETECTOR__WARMUP_WINDOWS", "10".into()),
        ("DRIFTWATCH__DETECTOR__T", "100".into()),
    ]
}

fn settings() -> driftwatch::config::Settings {
    let mut s = common::base_settings();
    s.detector.window = 20;
    s.detector.warmup_windows = 10;
    s.detector.t = 100;
    s
}

/// What clients saw: acknowledged batches and every refusal by code.
#[derive(Default)]
struct Seen {
    acked: AtomicU64,
    ack_times: std::sync::Mutex<Vec<Instant>>,
    refusals: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    fn refused(&self, code: &str) {
        *self.refusals.lock().unwrap().entry(code.to_owned()).or_default() += 1;
    }

    fn count(&self, code: &str) -> u64 {
        self.refusals.lock().unwrap().get(code).copied().unwrap_or(0)
    }

    /// Time from `since` to the first acknowledgement after it.
    fn first_ack_after(&self, since: Instant) -> Option<Duration> {
        self.ack_times.lock().unwrap().iter().filter(|t| **t > since).min().map(|t| *t - since)
    }

    fn summary(&self) -> String {
        format!(
            "{} batches acknowledged, refusals {:?}",
            self.acked.load(Ordering::Relaxed),
            self.refusals.lock().unwrap()
        )
    }
}

/// Posts a series batch by batch, each retried until acknowledged; checks that every
/// acknowledged batch was accepted whole now, or had been whole before.
async fn post_series(base: String, name: String, xs: Vec<f64>, batch: usize, pace: Duration, seen: Arc<Seen>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let started = Instant::now();
    for start in (0..xs.len()).step_by(batch) {
        tokio::time::sleep(pace).await;
        let end = (start + batch).min(xs.len());
        let body = json!({"series": name, "points": points_json(&xs, start..end)}).to_string();
        loop {
            let sent = client
                .post(format!("{base}/v1/points"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                    // A batch is stored whole or not at all: a retry of one whose answer was
                    // lost (the service died after its commit) finds every point already seen.
                    let count = |k: &str| v[k].as_u64().unwrap();
                    let n = (end - start) as u64;
                    assert!(
                        count("accepted") == n || count("duplicate") + count("late") == n,
                        "{name} [{start}, {end}): {v}"
                    );
                    seen.ack_times.lock().unwrap().push(Instant::now());
                    seen.acked.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
                    let code = v["error"]["code"].as_str().unwrap_or("?").to_owned();
                    assert!(status >= 500 && code != "internal", "{name}: {status} {v}");
                    seen.refused(&code);
                }
                Err(_) => seen.refused("connection"),
            }
            assert!(started.elapsed() < DEADLINE, "{name} stuck at point {start}: {}", seen.summary());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One client per series, each sending a batch every `pace` at most.
fn post_all(
    base: &str,
    data: &[(String, Vec<f64>)],
    batch: usize,
    pace: Duration,
    seen: &Arc<Seen>,
) -> Vec<tokio::task::JoinHandle<()>> {
    data.iter()
        .map(|(name, xs)| {
            tokio::spawn(post_series(base.to_owned(), name.clone(), xs.clone(), batch, pace, seen.clone()))
        })
        .collect()
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.await.unwrap();
    }
}

/// A stored interval: start and end (indices, timestamps), status, peak score bits.
type IntervalKey = (i64, i64, i64, i64, String, String);
/// A stored score block: first index, length, window score and threshold bits, anomaly bytes.
type ScoreBlock = (i64, i64, Option<String>, Option<String>, Vec<u8>);

/// Per series: points stored, the end of the stored index range, intervals and score blocks.
#[derive(Debug, PartialEq)]
struct SeriesOutcome {
    points: i64,
    end_index: i64,
    intervals: Vec<IntervalKey>,
    scores: Vec<ScoreBlock>,
}

async fn outcome(url: &str) -> BTreeMap<String, SeriesOutcome> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url).await.unwrap();
    let mut out = BTreeMap::new();
    for s in sqlx::query("SELECT id, name FROM series").fetch_all(&db).await.unwrap() {
        let (id, name): (i64, String) = (s.get(0), s.get(1));
        let p = sqlx::query(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT), CAST(COALESCE(MAX(first_index + n), 0) AS BIGINT) \
             FROM point_chunks WHERE series_id = $1",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
        let intervals = sqlx::query(
            "SELECT start_index, end_index, start_ts, end_ts, status, peak_score FROM intervals \
             WHERE series_id = $1 ORDER BY start_index",
        )
        .bind(id)
        .fetch_all(&db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), format!("{:e}", r.get::<f64, _>(5))))
        .collect();
        let scores = sqlx::query(
            "SELECT first_index, n, score, threshold, anomaly FROM score_chunks WHERE series_id = $1 ORDER BY first_index",
        )
        .bind(id)
        .fetch_all(&db)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let bits = |v: Option<f64>| v.map(|x| format!("{x:e}"));
            (r.get(0), r.get(1), bits(r.get(2)), bits(r.get(3)), r.get(4))
        })
        .collect();
        out.insert(name, SeriesOutcome { points: p.get(0), end_index: p.get(1), intervals, scores });
    }
    db.close().await;
    out
}

/// The uninterrupted run: an in-process service on a temp SQLite file, the same clients.
async fn reference() -> &'static BTreeMap<String, SeriesOutcome> {
    static REFERENCE: tokio::sync::OnceCell<BTreeMap<String, SeriesOutcome>> = tokio::sync::OnceCell::const_new();
    REFERENCE
        .get_or_init(|| async {
            let sz = size();
            let dir = tempfile::tempdir().unwrap();
            let mut s = settings();
            s.storage.data_dir = dir.path().to_owned();
            let app = common::TestApp::spawn(s).await;
            let seen = Arc::new(Seen::default());
            join_all(post_all(&app.base, &dataset(&sz), sz.batch, Duration::ZERO, &seen)).await;
            app.stop().await;
            let out = outcome(&format!("sqlite://{}/driftwatch.db", dir.path().display())).await;
            // The data has its changes: the comparison below is not between empty results.
            let with_intervals = out.values().filter(|o| !o.intervals.is_empty()).count();
            assert!(with_intervals >= sz.series * 9 / 10, "the reference found intervals in {with_intervals} series");
            out
        })
        .await
}

/// Every series equals the uninterrupted run's: all points stored once (contiguous indices),
/// the same intervals and score blocks.
fn assert_like_reference(
    what: &str,
    got: &BTreeMap<String, SeriesOutcome>,
    reference: &BTreeMap<String, SeriesOutcome>,
) {
    let sz = size();
    assert_eq!(got.len(), reference.len(), "{what}: series stored");
    for (name, want) in reference {
        let have = got.get(name).unwrap_or_else(|| panic!("{what}: {name} missing"));
        assert_eq!((have.points, have.end_index), (sz.points as i64, sz.points as i64), "{what}: {name} points");
        assert_eq!(have.intervals, want.intervals, "{what}: {name} intervals");
        assert_eq!(have.scores.len(), want.scores.len(), "{what}: {name} score blocks");
        assert!(have.scores == want.scores, "{what}: {name} score blocks differ");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `probe` holds, or panics with `what` and `seen`'s summary.
async fn wait_for(what: &str, seen: Option<&Seen>, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !probe().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; clients: {}",
            seen.map(Seen::summary).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_http_ingest_then_restart_loses_and_duplicates_nothing() {
    let sz = size();
    let reference = reference().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = detector_env();
    env.push(("DRIFTWATCH__STORAGE__DATA_DIR", dir.path().join("data").display().to_string()));
    env.push(("DRIFTWATCH__HTTP__ADDR", format!("127.0.0.1:{port}")));
    // Checkpoints every 300 ms: a kill lands between them, so restarts replay stored points.
    env.push(("DRIFTWATCH__PIPELINE__CHECKPOINT_INTERVAL_MS", "300".into()));
    let log = dir.path().join("serve.log");
    let mut svc = common::Service::start(&log, &env);
    svc.ready(port).await;

    let seen = Arc::new(Seen::default());
    let base = format!("http://127.0.0.1:{port}");
    let clients = post_all(&base, &dataset(&sz), sz.batch, Duration::ZERO, &seen);
    let total = (sz.series * sz.points.div_ceil(sz.batch)) as u64;
    let mut down = Vec::new();
    for k in 1..=2u64 {
        wait_for("clients' progress", Some(&seen), async || seen.acked.load(Ordering::Relaxed) >= total * k / 3).await;
        svc.kill();
        let killed = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        svc = common::Service::start(&log, &env);
        svc.ready(port).await;
        let acked = seen.acked.load(Ordering::Relaxed);
        wait_for("the first acknowledgement after the restart", Some(&seen), async || {
            seen.acked.load(Ordering::Relaxed) > acked
        })
        .await;
        down.push(killed.elapsed());
    }
    join_all(clients).await;
    svc.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    let replayed = text.matches("Replayed stored points the checkpoint had not seen").count();
    println!(
        "fault sigkill: {} series x {} points, 2 SIGKILLs, acknowledged again after {:?}; {} series replayed stored points at restart; clients: {}",
        sz.series,
        sz.points,
        down,
        replayed,
        seen.summary()
    );
    assert!(seen.count("connection") > 0, "the clients never saw the service go away: {}", seen.summary());
    assert!(replayed > 0, "no restart replayed stored points (checkpoints every 300 ms, continuous ingest)");
    let got = outcome(&format!("sqlite://{}/driftwatch.db", dir.path().join("data").display())).await;
    assert_like_reference("after two SIGKILLs", &got, reference);
}

/// Runs `scripts/<script> <cmd>` with `env`; its stdout, trimmed.
fn script(script: &str, cmd: &str, env: &[(&str, String)]) -> String {
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/").to_owned() + script)
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/{script} {cmd} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Whether `scripts/test.sh` provides the service (`DRIFTWATCH_TEST_<what>` set); false when the
/// suite is told to skip it (`DRIFTWATCH_SKIP_<what>=1`); panics otherwise.
fn service_available(what: &str) -> bool {
    if std::env::var(format!("DRIFTWATCH_TEST_{what}")).is_ok() {
        return true;
    }
    let skip = std::env::var(format!("DRIFTWATCH_SKIP_{what}"));
    assert_eq!(
        skip.as_deref(),
        Ok("1"),
        "DRIFTWATCH_TEST_{what} is not set: run ./scripts/test.sh or set DRIFTWATCH_SKIP_{what}=1"
    );
    false
}

/// Stops a server a test started when the test ends, failed or not.
struct StopOnDrop(&'static str, Vec<(&'static str, String)>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/").to_owned() + self.0)
            .arg("stop")
            .envs(self.1.iter().map(|(k, v)| (*k, v.as_str())))
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_mid_stream_loses_and_duplicates_nothing() {
    if !service_available("PG") {
        return;
    }
    let sz = size();
    let reference = reference().await;
    // A server of its own: the test stops it, and other tests share the suite's server.
    let dir = tempfile::tempdir().unwrap();
    let pg_env = vec![
        ("DRIFTWATCH_PG_PORT", std::env::var("DRIFTWATCH_FAULTS_PG_PORT").unwrap_or_else(|_| "55433".to_owned())),
        ("DRIFTWATCH_PG_DIR", dir.path().join("pg").display().to_string()),
    ];
    let url = script("pg.sh", "start", &pg_env);
    let _stop = StopOnDrop("pg.sh", pg_env.clone());
    let mut s = settings();
    s.storage.url = Some(url.clone());
    s.storage.acquire_timeout_ms = 1000;
    let app = common::TestApp::spawn(s).await;

    // Paced so the stream lasts about three outages: the database goes away mid-stream.
    let seen = Arc::new(Seen::default());
    let pace = sz.db_down * 3 / sz.points.div_ceil(sz.batch) as u32;
    let clients = post_all(&app.base, &dataset(&sz), sz.batch, pace, &seen);
    let total = (sz.series * sz.points.div_ceil(sz.batch)) as u64;
    wait_for("clients' progress", Some(&seen), async || seen.acked.load(Ordering::Relaxed) >= total / 3).await;
    script("pg.sh", "stop", &pg_env);
    let stopped = Instant::now();
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "readyz while the database is down: {body}");
    tokio::time::sleep(sz.db_down.saturating_sub(stopped.elapsed())).await;
    let restarted = Instant::now();
    script("pg.sh", "start", &pg_env);
    join_all(clients).await;
    let recovered = seen.first_ack_after(restarted).expect("acknowledgements after the restart");
    assert_eq!(app.get("/readyz").await.0, 200);
    let metrics = app.metrics().await;
    app.stop().await;
    let unavailable = common::metric(&metrics, "driftwatch_storage_write_failures_total{kind=\"unavailable\"}");
    let recoveries = common::metric(&metrics, "driftwatch_detector_recoveries_total{outcome=\"ok\"}");
    println!(
        "fault postgres restart: {} series x {} points, database down {:?}, first write acknowledged {:?} after its start command; \
         {unavailable} failed writes, {recoveries} detectors rebuilt; clients: {}",
        sz.series,
        sz.points,
        sz.db_down,
        recovered,
        seen.summary()
    );
    assert!(seen.count("storage_unavailable") > 0, "no client was told storage_unavailable: {}", seen.summary());
    let got = outcome(&url).await;
    assert_like_reference("after a PostgreSQL restart", &got, reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_quota_reached_mid_stream_loses_and_duplicates_nothing() {
    let sz = size();
    let reference = reference().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings();
    s.storage.data_dir = dir.path().to_owned();
    // Room for the data several times over (about 25 bytes a point with its scores), so the
    // bulky series is what fills it.
    let quota = ((sz.series * sz.points * 64) as u64).next_multiple_of(1 << 20).max(4 << 20);
    s.storage.max_bytes = quota;
    let app = common::TestApp::spawn(s).await;

    // The clients stream (paced, about 10 s); a quarter of the way in, a bulky series fills the
    // quota, so their writes fail after their points reached the detectors.
    let seen = Arc::new(Seen::default());
    let pace = Duration::from_secs(10) / sz.points.div_ceil(sz.batch) as u32;
    let clients = post_all(&app.base, &dataset(&sz), sz.batch, pace, &seen);
    let total = (sz.series * sz.points.div_ceil(sz.batch)) as u64;
    wait_for("clients' progress", Some(&seen), async || seen.acked.load(Ordering::Relaxed) >= total / 4).await;
    let mut filled_at = 0;
    for k in 0.. {
        let pts: Vec<Value> = (0..2000).map(|j| json!([T0 + 1000 * (k * 2000 + j), (j % 7) as f64])).collect();
        let (status, body) = app.post("/v1/points", &json!({"series": "filler", "points": pts})).await;
        if status == 507 {
            assert_eq!(body["error"]["code"], "storage_full", "{body}");
            filled_at = k;
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(k < 10_000, "the quota was never reached");
    }
    // Streaming stalls: every client is told storage_full, and retries.
    wait_for("clients told storage_full", Some(&seen), async || seen.count("storage_full") >= 2 * sz.series as u64)
        .await;
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200, "a full store still answers queries");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The operator frees space: deleting the bulky series.
    let freed = Instant::now();
    assert_eq!(app.delete("/v1/series/filler").await.0, 204);
    join_all(clients).await;
    let recovered = seen.first_ack_after(freed).expect("acknowledgements after space was freed");
    let metrics = app.metrics().await;
    app.stop().await;
    let full = common::metric(&metrics, "driftwatch_storage_write_failures_total{kind=\"full\"}");
    let rebuilt = common::metric(&metrics, "driftwatch_detector_recoveries_total{outcome=\"ok\"}");
    println!(
        "fault storage quota: {} MiB filled after {} filler batches; {full} writes refused as full, \
         {rebuilt} detectors rebuilt from storage; first write acknowledged {:?} after space was freed; clients: {}",
        quota >> 20,
        filled_at + 1,
        recovered,
        seen.summary()
    );
    assert!(full > 0.0, "no write counted as full");
    // Writes failed after their points reached the detectors: those detectors were rebuilt
    // from storage, so the retries were accepted rather than counted as duplicates.
    assert!(rebuilt > 0.0, "no detector rebuilt after a failed write");
    let got = outcome(&format!("sqlite://{}/driftwatch.db", dir.path().display())).await;
    assert_like_reference("after the quota was reached", &got, reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_paused_mid_stream_loses_and_duplicates_nothing() {
    if !service_available("KAFKA") {
        return;
    }
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let sz = size();
    let reference = reference().await;
    // A broker of its own: the test freezes it.
    let kafka_port = std::env::var("DRIFTWATCH_FAULTS_KAFKA_PORT").unwrap_or_else(|_| "59093".to_owned());
    let kafka_env = vec![("DRIFTWATCH_KAFKA_PORT", kafka_port)];
    let brokers = script("kafka.sh", "start", &kafka_env);
    let _stop = StopOnDrop("kafka.sh", kafka_env.clone());
    let pid = script("kafka.sh", "pid", &kafka_env);
    let topic = format!("faults-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings();
    s.storage.data_dir = dir.path().to_owned();
    s.kafka.brokers = brokers.clone();
    s.kafka.topics = vec![topic.clone()];
    s.kafka.group_id = format!("{topic}-group");
    s.kafka.dead_letter_topic = format!("{topic}.dlq");
    s.kafka.events_topic = format!("{topic}.events");
    s.kafka.checkpoint_interval_ms = 500;
    use driftwatch::config::PropertyValue;
    s.kafka.properties.insert("session.timeout.ms".into(), PropertyValue::Int(6000));
    s.kafka.properties.insert("heartbeat.interval.ms".into(), PropertyValue::Int(500));
    let app = common::TestApp::spawn(s).await;
    wait_for("readyz", None, async || app.get("/readyz").await.0 == 200).await;

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &brokers).set("linger.ms", "5").create().unwrap();
    let data = dataset(&sz);
    let batches = sz.points.div_ceil(sz.batch);
    let produce = |range: std::ops::Range<usize>| {
        let (producer, topic, data, batch) = (producer.clone(), topic.clone(), data.clone(), sz.batch);
        tokio::spawn(async move {
            for b in range {
                for (name, xs) in &data {
                    let end = ((b + 1) * batch).min(xs.len());
                    let payload = json!({"points": points_json(xs, b * batch..end)}).to_string();
                    let record: FutureRecord<'_, str, str> =
                        FutureRecord::to(&topic).key(name.as_str()).payload(payload.as_str());
                    producer.send(record, Duration::from_secs(120)).await.map_err(|(e, _)| e).unwrap();
                }
            }
        })
    };
    produce(0..batches / 2).await.unwrap();
    let stored = async || {
        let (_, v) = app.get("/v1/series").await;
        v["series"].as_array().map_or(0, |a| a.len())
    };
    wait_for("the consumer's progress", None, async || stored().await == sz.series).await;

    // Freeze the broker mid-stream; the rest of the data is produced while it is frozen.
    let frozen = Instant::now();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let rest = produce(batches / 2..batches);
    tokio::time::sleep(sz.pause).await;
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let paused = frozen.elapsed();
    let resumed = Instant::now();
    rest.await.unwrap();
    let last = T0 + 1000 * (sz.points as i64 - 1);
    let complete = async || {
        let (_, v) = app.get("/v1/series").await;
        v["series"].as_array().is_some_and(|a| a.iter().filter(|s| s["last_ts"] == json!(last)).count() == sz.series)
    };
    wait_for("every series complete after the pause", None, complete).await;
    let caught_up = resumed.elapsed();
    let metrics = app.metrics().await;
    app.stop().await;
    let errors = common::metric(&metrics, "driftwatch_kafka_errors_total");
    let rebalances = common::metric(&metrics, "driftwatch_kafka_rebalances_total");
    println!(
        "fault broker pause: {} series x {} points, broker frozen {:?}; caught up {:?} after it resumed; \
         {errors} Kafka errors and {rebalances} rebalances counted",
        sz.series, sz.points, paused, caught_up
    );
    let got = outcome(&format!("sqlite://{}/driftwatch.db", dir.path().display())).await;
    assert_like_reference("after the broker pause", &got, reference);
}
