//! The Kafka source (an adapter over the service layer, beside HTTP): a consumer group that feeds points to the detectors, at least once, with
//! nothing lost and nothing stored twice.
//!
//! Shape (one instance; run more with the same `group_id` to scale out):
//!
//! ```text
//!  consumer thread (BaseConsumer::poll)             tokio tasks, one per assigned partition
//!  ─────────────────────────────────────            ─────────────────────────────────────────
//!  message ──try_send──► bounded queue ───────────► decode (the one point format, key = series)
//!     queue full: pause the partition,               ├─ bad: dead-letter topic, original bytes
//!     resume when it drains                          └─ good: detector → storage (one tx each)
//!  rebalance callback:                                       → interval events to events topic
//!     assign: start each partition at its stored     every checkpoint_interval_ms and at the
//!             offset (kafka_offsets row)             end: checkpoints + offset row in one tx,
//!     revoke: close queues, wait for the tasks       then the broker commit (lag tooling)
//!             to drain and persist, then unassign
//! ```
//!
//! Invariants:
//! * A partition's `kafka_offsets` row is written only after every result of the messages
//!   before it is durable, in the same transaction as the checkpoints of the detectors those
//!   messages touched. A partition assigned anywhere starts at that row's offset, and each
//!   series' detector is restored from its checkpoint on its first message, so it continues
//!   exactly, without re-warm-up.
//! * Anything processed after the last row is replayed by the next owner (after a crash, a
//!   revoke or a storage outage). Replays are harmless: detectors are deterministic, and every
//!   stored row is an upsert on its natural key.
//! * A storage failure never skips data: the write is retried with back-off while the queue
//!   fills and the partition pauses. A revoke during an outage abandons the unpersisted work,
//!   which the next owner replays.
//! * The key is the series id and is required (see [`crate::decode::decode_keyed`]): one series, one
//!   partition, one instance, in order.
//! * Interval events are produced after the results are stored and before the offset row, so
//!   each is delivered at least once; its `id` lets consumers drop repeats.

mod consumer;
mod partition;
mod shared;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use thiserror::Error;

use crate::config::KafkaSettings;
use crate::service::{Heartbeat, Service};
use consumer::{Ctx, consume};
use shared::Shared;

/// Why the Kafka source could not start.
#[derive(Debug, Error)]
pub enum SourceError {
    /// librdkafka refused the configuration or the broker could not be reached.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The consumer thread could not be started.
    #[error("kafka: could not start the consumer thread: {0}")]
    Thread(std::io::Error),
}

/// A running Kafka source. [`KafkaSource::stop`] drains and persists every partition.
#[derive(Debug)]
pub struct KafkaSource {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Consumer,
    Producer,
    Admin,
}

/// Pass-through properties that only a consumer knows; producers and admin clients would warn.
fn consumer_only(key: &str) -> bool {
    key.starts_with("group.")
        || key.starts_with("fetch.")
        || key.starts_with("queued.")
        || key.starts_with("auto.")
        || key.starts_with("enable.auto.")
        || matches!(
            key,
            "session.timeout.ms"
                | "heartbeat.interval.ms"
                | "max.poll.interval.ms"
                | "partition.assignment.strategy"
                | "isolation.level"
                | "check.crcs"
                | "coordinator.query.interval.ms"
                | "enable.partition.eof"
        )
}

/// The bootstrap servers and the configured pass-through properties (those that fit the role)
/// over `ours`, driftwatch's own choices: the operator's properties win.
fn client_config(k: &KafkaSettings, role: Role, ours: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in ours {
        c.set(*key, *value);
    }
    for (key, value) in &k.properties {
        if role == Role::Consumer || !consumer_only(key) {
            c.set(key, value.to_string());
        }
    }
    c
}

impl KafkaSource {
    /// Creates the output topics if asked to, subscribes to the input topics and starts the
    /// consumer thread. Must be called inside the tokio runtime.
    ///
    /// # Errors
    /// A configuration librdkafka refuses, or topics that cannot be created.
    pub async fn start(service: Service, heartbeat: Heartbeat) -> Result<Self, SourceError> {
        let k = service.settings.kafka.clone();
        if k.create_topics
            && let Err(e) = ensure_topics(&k).await
        {
            // Not fatal: the broker may be down now and come back; librdkafka retries, and
            // producing to a missing topic is counted in driftwatch_kafka_errors_total.
            tracing::warn!(error = %e, "Could not create the output topics.");
        }
        let producer: FutureProducer =
            client_config(&k, Role::Producer, &[("enable.idempotence", "true"), ("linger.ms", "5")]).create()?;
        let shared = Arc::new(Shared {
            service,
            heartbeat,
            rt: tokio::runtime::Handle::current(),
            producer,
            parts: Mutex::new(HashMap::new()),
            to_commit: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashSet::new()),
        });
        let mut consumer_config = client_config(
            &k,
            Role::Consumer,
            &[
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("statistics.interval.ms", "5000"),
                ("fetch.wait.max.ms", "100"),
            ],
        );
        // Not overridable: offsets are driftwatch's to store and commit.
        consumer_config
            .set("group.id", &k.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer<Ctx> = consumer_config.create_with_context(Ctx(shared.clone()))?;
        let topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || consume(consumer, shared, flag))
            .map_err(SourceError::Thread)?;
        tracing::info!(brokers = %k.brokers, topics = ?k.topics, group = %k.group_id, "Kafka source started.");
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Stops consuming: every partition processes what it has queued and persists its position
    /// and checkpoints; then the consumer leaves the group. Blocks; call it off the runtime
    /// (`spawn_blocking`).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("The Kafka consumer thread panicked; unpersisted work will be replayed.");
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn ensure_topics(k: &KafkaSettings) -> Result<(), SourceError> {
    let admin: AdminClient<_> = client_config(k, Role::Admin, &[]).create()?;
    // As many partitions as the first input topic, so events spread like their series.
    let partitions = admin
        .inner()
        .fetch_metadata(Some(&k.topics[0]), Duration::from_secs(10))
        .ok()
        .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let names: Vec<&str> =
        [k.dead_letter_topic.as_str(), k.events_topic.as_str()].into_iter().filter(|t| !t.is_empty()).collect();
    let new: Vec<NewTopic<'_>> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(new.iter(), &opts).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions, "Created topic."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => tracing::warn!(topic = %name, error = %code, "Could not create topic."),
        }
    }
    Ok(())
}
