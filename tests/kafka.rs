//! The Kafka source against a real Kafka-protocol broker (tansu, started by `scripts/test.sh`,
//! address in `DRIFTWATCH_TEST_KAFKA`; these tests fail unless it is set or
//! `DRIFTWATCH_SKIP_KAFKA=1`). Every test uses its own topics and consumer groups.
//!
//! * points produced to a topic become intervals in the API; bad messages go to the dead-letter
//!   topic with their original bytes and the good ones after them are processed; interval events
//!   reach the events topic;
//! * scale-out: two `driftwatch serve` processes in one group on 4 partitions, one SIGKILLed
//!   mid-stream and restarted, end with exactly the intervals and points of one uninterrupted
//!   instance (PostgreSQL, shared by the group).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use driftwatch::config::{PropertyValue, Settings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

mod common;

use common::{Service, TestApp, fresh_pg, mean_shift};

/// The broker's address, or None when the suite is told to skip Kafka.
fn broker() -> Option<String> {
    match std::env::var("DRIFTWATCH_TEST_KAFKA") {
        Ok(b) => Some(b),
        Err(_) if std::env::var("DRIFTWATCH_SKIP_KAFKA").as_deref() == Ok("1") => None,
        Err(_) => panic!(
            "DRIFTWATCH_TEST_KAFKA is not set: run ./scripts/test.sh (it starts a broker) or set DRIFTWATCH_SKIP_KAFKA=1"
        ),
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let new: Vec<NewTopic<'_>> = topics.iter().map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(new.iter(), &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create().unwrap()
}

async fn produce(p: &FutureProducer, topic: &str, key: Option<&str>, payload: &[u8]) {
    let mut r: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).payload(payload);
    if let Some(k) = key {
        r = r.key(k);
    }
    p.send(r, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

/// Every message of `topic` (all partitions) as (key, payload, headers), read by a fresh group.
fn read_all(brokers: &str, topic: &str, want: usize) -> Vec<(String, Vec<u8>, BTreeMap<String, String>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    out
}

fn kafka_settings(s: &mut Settings, brokers: &str, topic: &str, group: &str) {
    s.kafka.brokers = brokers.to_owned();
    s.kafka.topics = vec![topic.to_owned()];
    s.kafka.group_id = group.to_owned();
    s.kafka.dead_letter_topic = format!("{topic}.dlq");
    s.kafka.events_topic = format!("{topic}.events");
    s.kafka.checkpoint_interval_ms = 500;
    s.kafka.properties.insert("session.timeout.ms".into(), PropertyValue::Int(6000));
    s.kafka.properties.insert("heartbeat.interval.ms".into(), PropertyValue::Int(500));
}

const T0: i64 = 1_795_780_800_000;

async fn get(client: &reqwest::Client, url: String) -> Value {
    serde_json::from_str(&client.get(url).send().await.unwrap().text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_points_become_intervals_and_bad_messages_are_dead_lettered() {
    let Some(brokers) = broker() else { return };
    let topic = unique("points");
    create_topics(&brokers, &[(&topic, 4), (&format!("{topic}.dlq"), 1), (&format!("{topic}.events"), 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.http.addr = "127.0.0.1:0".into();
    settings.storage.data_dir = dir.path().to_owned();
    settings.pipeline.shards = 2;
    kafka_settings(&mut settings, &brokers, &topic, &unique("group"));
    // A tiny queue: the partition pauses and resumes many times (back-pressure), losing nothing.
    settings.kafka.queue_messages = 2;
    settings.kafka.batch_messages = 3;
    settings.kafka.properties.insert("statistics.interval.ms".into(), PropertyValue::Int(500));
    let app = TestApp::spawn(settings).await;
    let base = app.base.clone();

    let xs = mean_shift();
    let p = producer(&brokers);
    let batch = |from: usize, to: usize| {
        json!({"points": (from..to).map(|i| json!([T0 + 1000 * i as i64, xs[i]])).collect::<Vec<_>>()}).to_string()
    };
    for from in (0..1500).step_by(100) {
        produce(&p, &topic, Some("mean"), batch(from, from + 100).as_bytes()).await;
    }
    // Bad messages in the middle of the series: each is set aside, nothing after it is lost.
    let bad: [(Option<&str>, &[u8], &str); 4] = [
        (Some("mean"), b"{not json", "invalid_json"),
        (Some("mean"), br#"{"series":"other","ts":1,"value":1}"#, "key_mismatch"),
        (None, br#"{"series":"mean","ts":1,"value":1}"#, "missing_key"),
        (Some("mean"), br#"{"ts":1795782300000,"value":"NaN"}"#, "rejected_points"),
    ];
    for (key, payload, _) in bad {
        produce(&p, &topic, key, payload).await;
    }
    for from in (1500..3000).step_by(100) {
        produce(&p, &topic, Some("mean"), batch(from, from + 100).as_bytes()).await;
    }

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let intervals = loop {
        let body = get(&client, format!("{base}/v1/series/mean/intervals")).await;
        let closed: Vec<(u64, u64)> = body["intervals"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|i| i["status"] == "closed")
                    .map(|i| (i["start"].as_u64().unwrap(), i["end"].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let stored = get(&client, format!("{base}/v1/series/mean")).await;
        if (closed.len() >= 2 && stored["last_ts"] == json!(T0 + 2_999_000)) || Instant::now() > deadline {
            break closed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(intervals.iter().map(|i| i.0).collect::<Vec<_>>(), vec![1000, 2000], "{intervals:?}");
    let points = get(&client, format!("{base}/v1/series/mean/points?max_points=100000")).await;
    assert_eq!(points["points"].as_array().map(Vec::len), Some(3000), "every good point stored once");

    // The dead-letter topic holds each bad message's original bytes and why it was refused.
    let dlq = read_all(&brokers, &format!("{topic}.dlq"), 4);
    let reasons: BTreeSet<&str> = dlq.iter().map(|(_, _, h)| h["driftwatch-reason"].as_str()).collect();
    assert_eq!(reasons, bad.iter().map(|b| b.2).collect(), "{dlq:?}");
    for (key, payload, reason) in bad {
        let (k, bytes, h) = dlq.iter().find(|d| d.2["driftwatch-reason"] == reason).unwrap();
        assert_eq!((k.as_str(), bytes.as_slice()), (key.unwrap_or(""), payload), "{reason}");
        assert_eq!(h["driftwatch-source-topic"], topic);
        assert!(!h["driftwatch-error"].is_empty());
    }
    // Interval events: opened and closed for both changes, keyed by the series.
    let events = read_all(&brokers, &format!("{topic}.events"), 4);
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    for (key, payload, _) in &events {
        assert_eq!(key, "mean");
        let e: Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(e["series"], "mean");
        assert!(e["id"].as_str().unwrap().starts_with("mean/"));
        seen.insert((e["event"].as_str().unwrap().to_owned(), e["start"].as_u64().unwrap()));
    }
    for want in [("opened", 1000), ("closed", 1000), ("opened", 2000), ("closed", 2000)] {
        assert!(seen.contains(&(want.0.to_owned(), want.1)), "{want:?} not in {seen:?}");
    }
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "driftwatch_kafka_dead_letters_total{reason=\"invalid_json\"} 1",
        "driftwatch_kafka_dead_letters_total{reason=\"rejected_points\"} 1",
        "driftwatch_kafka_messages_total{outcome=\"dead_lettered\"} 3",
        "driftwatch_kafka_points_total 3000",
        "driftwatch_kafka_assigned_partitions 4",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    // Lag per assigned partition, from librdkafka's statistics (every 500 ms here).
    let lags =
        metrics.lines().filter(|l| l.starts_with("driftwatch_kafka_consumer_lag{") && l.contains(&topic)).count();
    assert!(lags >= 1, "no consumer lag gauge for {topic} in\n{metrics}");
    let pauses = metrics.lines().find_map(|l| l.strip_prefix("driftwatch_kafka_pauses_total ")).unwrap();
    assert!(pauses.parse::<u64>().unwrap() > 0, "a queue of 2 messages must have paused the partition");
    app.stop().await;
}

/// A `driftwatch serve` process of the group (`common::Service`), configured through the
/// environment as an operator would, and its port.
struct Instance {
    service: Service,
    port: u16,
}

impl Instance {
    fn start(name: &str, dir: &std::path::Path, db: &str, brokers: &str, topic: &str, group: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let env = [
            ("DATABASE_URL", db.to_owned()),
            ("DRIFTWATCH__HTTP__ADDR", format!("127.0.0.1:{port}")),
            ("DRIFTWATCH__PIPELINE__SHARDS", "2".into()),
            ("DRIFTWATCH__DETECTOR__WINDOW", "20".into()),
            ("DRIFTWATCH__DETECTOR__WARMUP_WINDOWS", "10".into()),
            ("DRIFTWATCH__DETECTOR__T", "100".into()),
            ("DRIFTWATCH__KAFKA__BROKERS", brokers.to_owned()),
            ("DRIFTWATCH__KAFKA__TOPICS", format!("[\"{topic}\"]")),
            ("DRIFTWATCH__KAFKA__GROUP_ID", group.to_owned()),
            ("DRIFTWATCH__KAFKA__DEAD_LETTER_TOPIC", format!("{topic}.dlq")),
            ("DRIFTWATCH__KAFKA__EVENTS_TOPIC", format!("{topic}.events")),
            ("DRIFTWATCH__KAFKA__CHECKPOINT_INTERVAL_MS", "300".into()),
            ("DRIFTWATCH__KAFKA__BATCH_MESSAGES", "50".into()),
            ("DRIFTWATCH__KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000".into()),
            ("DRIFTWATCH__KAFKA__PROPERTIES__HEARTBEAT.INTERVAL.MS", "500".into()),
        ];
        Self { service: Service::start(&dir.join(format!("{name}.log")), &env), port }
    }

    /// Waits until the instance answers `/readyz` (its migrations have run).
    async fn ready(&mut self) {
        self.service.ready(self.port).await;
    }

    fn kill(&mut self) {
        self.service.kill();
    }

    /// SIGTERM: graceful shutdown (drain, persist, leave the group).
    fn terminate(self) {
        self.service.terminate();
    }

    fn log_tail(&self) -> String {
        self.service.log_tail()
    }

    async fn metric(&self, client: &reqwest::Client, name: &str) -> f64 {
        match client.get(format!("http://127.0.0.1:{}/metrics", self.port)).send().await {
            Ok(r) => common::metric(&r.text().await.unwrap_or_default(), name),
            Err(_) => 0.0,
        }
    }
}

const SERIES: usize = 200;
const POINTS: usize = 800;
const CHUNK: usize = 20;

fn change_point(i: usize) -> usize {
    400 + (i % 5) * 40
}

/// Series i: N(0, 1), then N(3, 1) from its change point on.
fn series_values(i: usize) -> Vec<f64> {
    let cp = change_point(i);
    driftwatch_testkit::gaussian_segments(&[(0.0, 1.0, cp), (3.0, 1.0, POINTS - cp)], i as u64 + 1)
}

async fn produce_chunks(p: &FutureProducer, topic: &str, data: &[Vec<f64>], chunks: std::ops::Range<usize>) {
    let mut pending = Vec::new();
    for c in chunks {
        for (i, xs) in data.iter().enumerate() {
            let pts: Vec<Value> = (c * CHUNK..(c + 1) * CHUNK).map(|j| json!([T0 + 1000 * j as i64, xs[j]])).collect();
            let payload = json!({ "points": pts }).to_string();
            let key = format!("s-{i:03}");
            let r: FutureRecord<'_, str, str> = FutureRecord::to(topic).key(key.as_str()).payload(payload.as_str());
            pending.push(p.send_result(r).map_err(|(e, _)| e).unwrap());
        }
        if pending.len() > 2000 {
            for d in pending.drain(..) {
                d.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

async fn scalar(db: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(db).await.unwrap()
}

/// Waits until every series has all its points stored.
async fn wait_complete(db: &sqlx::AnyPool, instances: &[&Instance], what: &str) {
    let last = T0 + 1000 * (POINTS as i64 - 1);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done = scalar(db, &format!("SELECT COUNT(*) FROM series WHERE last_ts = {last}")).await;
        if done == SERIES as i64 {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = instances.iter().map(|i| i.log_tail()).collect();
            panic!("{what}: only {done} of {SERIES} series complete after 240 s\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// (series, start, end, status, peak score bits) of every interval, and points stored per series.
async fn outcome(db: &sqlx::AnyPool) -> (BTreeSet<(String, i64, i64, String, String)>, BTreeMap<String, i64>) {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT s.name, i.start_index, i.end_index, i.status, i.peak_score FROM intervals i JOIN series s ON s.id = i.series_id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let intervals = rows
        .iter()
        .map(|r| {
            let peak: f64 = r.get(4);
            (r.get::<String, _>(0), r.get(1), r.get(2), r.get(3), format!("{peak:e}"))
        })
        .collect();
    let rows = sqlx::query("SELECT s.name, CAST(SUM(c.n) AS BIGINT) FROM point_chunks c JOIN series s ON s.id = c.series_id GROUP BY s.name")
        .fetch_all(db)
        .await
        .unwrap();
    (intervals, rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_an_instance_killed_mid_stream_ends_like_one_uninterrupted_instance() {
    let Some(brokers) = broker() else { return };
    let (Some(shared_db), Some(solo_db)) = (fresh_pg("kafka_group").await, fresh_pg("kafka_solo").await) else {
        return;
    };
    let topic = unique("scale");
    create_topics(&brokers, &[(&topic, 4), (&format!("{topic}.dlq"), 1), (&format!("{topic}.events"), 4)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (group, solo_group) = (unique("group"), unique("solo"));
    let data: Vec<Vec<f64>> = (0..SERIES).map(series_values).collect();
    let p = producer(&brokers);
    let client = reqwest::Client::new();

    // The reference: one instance, never interrupted, reading the same topic in its own group.
    let mut solo = Instance::start("solo", dir.path(), &solo_db, &brokers, &topic, &solo_group);
    let mut a = Instance::start("a", dir.path(), &shared_db, &brokers, &topic, &group);
    let mut b = Instance::start("b", dir.path(), &shared_db, &brokers, &topic, &group);
    for i in [&mut solo, &mut a, &mut b] {
        i.ready().await;
    }
    produce_chunks(&p, &topic, &data, 0..POINTS / CHUNK / 2).await;

    // Kill b (SIGKILL) once both members have been working on their partitions for a while.
    let shared = sqlx::AnyPool::connect(&shared_db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = scalar(&shared, "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM point_chunks").await;
        let (a_points, b_points) = (
            a.metric(&client, "driftwatch_kafka_points_total").await,
            b.metric(&client, "driftwatch_kafka_points_total").await,
        );
        if stored as usize > SERIES * POINTS / 4 && a_points > 0.0 && b_points > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {stored} stored\n{}\n----\n{}", a.log_tail(), b.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.kill();
    produce_chunks(&p, &topic, &data, POINTS / CHUNK / 2..POINTS / CHUNK).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = Instance::start("b", dir.path(), &shared_db, &brokers, &topic, &group);

    wait_complete(&shared, &[&a, &b], "the group").await;
    let solo_pool = sqlx::AnyPool::connect(&solo_db).await.unwrap();
    wait_complete(&solo_pool, &[&solo], "the single instance").await;

    // Any member answers for every series (storage is shared): a and b agree on all of them.
    for i in (0..SERIES).step_by(10) {
        let path = format!("/v1/series/s-{i:03}/intervals");
        let from_a = get(&client, format!("http://127.0.0.1:{}{path}", a.port)).await;
        let from_b = get(&client, format!("http://127.0.0.1:{}{path}", b.port)).await;
        assert_eq!(from_a, from_b, "{path}");
        assert!(from_a["intervals"].as_array().is_some_and(|v| !v.is_empty()), "{path}: {from_a}");
    }
    a.terminate();
    b.terminate();
    solo.terminate();

    let (group_intervals, group_points) = outcome(&shared).await;
    let (solo_intervals, solo_points) = outcome(&solo_pool).await;
    // Every point stored exactly once, in both runs.
    assert_eq!(solo_points.len(), SERIES);
    assert!(solo_points.values().all(|n| *n == POINTS as i64), "{solo_points:?}");
    assert_eq!(group_points, solo_points, "points stored per series");
    // The reference finds the known changes...
    let found = (0..SERIES)
        .filter(|&i| {
            let cp = change_point(i) as i64;
            solo_intervals.iter().any(|iv| iv.0 == format!("s-{i:03}") && (iv.1 - cp).abs() <= 40)
        })
        .count();
    assert!(found >= SERIES * 95 / 100, "the reference found {found} of {SERIES} change points");
    // ...and the interrupted group ends with exactly the same intervals: none lost, none
    // duplicated, none different.
    let missing: Vec<_> = solo_intervals.difference(&group_intervals).take(5).collect();
    let extra: Vec<_> = group_intervals.difference(&solo_intervals).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    assert_eq!(group_intervals.len(), solo_intervals.len());
}
