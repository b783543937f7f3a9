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

use driftwatch::app::Application;
use driftwatch::config::{PropertyValue, Settings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

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

fn fixture() -> Vec<f64> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mean_shift.csv")).unwrap();
    driftwatch_testkit::parse_column(&text)
}

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
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let xs = fixture();
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
    let _ = stop.send(());
    done.await.unwrap().unwrap();
}
