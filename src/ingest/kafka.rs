//! The Kafka source: a consumer group that feeds points to the detectors, at least once, with
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
//! * The key is the series id and is required (see [`decode_keyed`]): one series, one
//!   partition, one instance, in order.
//! * Interval events are produced after the results are stored and before the offset row, so
//!   each is delivered at least once; its `id` lets consumers drop repeats.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::app::{AppState, IngestError, IngestSummary};
use crate::ingest::decode::{Message, decode_keyed};
use crate::pipeline::Report;
use crate::storage::PartitionPosition;
use driftwatch_icid::Event;

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

/// A message as it left the broker (owned, so it can cross to the partition task).
#[derive(Debug)]
struct Record {
    offset: i64,
    /// The message's timestamp (epoch ms), when it has one.
    timestamp_ms: Option<i64>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

type Tp = (String, i32);

/// What the consumer thread keeps per assigned partition.
#[derive(Debug)]
struct Part {
    tx: mpsc::Sender<Record>,
    /// Records that did not fit the queue; the partition is paused while any wait.
    pending: VecDeque<Record>,
    /// Set on revoke: stop retrying storage, persist nothing more.
    abandon: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// State shared by the consumer thread, its callbacks and the partition tasks.
struct Shared {
    state: AppState,
    rt: tokio::runtime::Handle,
    producer: FutureProducer,
    parts: Mutex<HashMap<Tp, Part>>,
    /// Durable next offsets not yet committed to the broker.
    to_commit: Mutex<HashMap<Tp, i64>>,
    paused: Mutex<HashSet<Tp>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

struct Ctx(Arc<Shared>);

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let parts = self.0.parts.lock().expect("parts lock");
        for (topic, t) in &stats.topics {
            for (p, ps) in &t.partitions {
                if *p >= 0 && ps.consumer_lag >= 0 && parts.contains_key(&(topic.clone(), *p)) {
                    self.0.state.metrics.kafka_lag.with_label_values(&[topic, &p.to_string()]).set(ps.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.state.metrics.kafka_errors.with_label_values(&["consume"]).inc();
        tracing::warn!(%error, reason, "Kafka client error.");
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let shared = &self.0;
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                shared.state.metrics.kafka_rebalances.with_label_values(&["assign"]).inc();
                let tps: Vec<Tp> = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                for (topic, partition) in &tps {
                    if let Some(offset) = shared.stored_offset(topic, *partition) {
                        let _ = tpl.set_partition_offset(topic, *partition, Offset::Offset(offset));
                    }
                }
                let assigned = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = assigned {
                    tracing::error!(error = %e, "Assigning partitions failed.");
                    shared.state.metrics.kafka_rebalances.with_label_values(&["error"]).inc();
                    return;
                }
                for tp in tps {
                    shared.start_partition(tp);
                }
                tracing::info!(partitions = ?tpl.elements().iter().map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset())).collect::<Vec<_>>(), "Partitions assigned.");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                shared.state.metrics.kafka_rebalances.with_label_values(&["revoke"]).inc();
                let tps: Vec<Tp> = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                shared.drain(&tps);
                shared.commit(consumer, CommitMode::Sync);
                let result = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "Unassigning partitions failed.");
                }
                tracing::info!(partitions = tps.len(), "Partitions revoked; their detectors were checkpointed.");
            }
            other => {
                shared.state.metrics.kafka_rebalances.with_label_values(&["error"]).inc();
                tracing::error!(error = ?other, "Rebalance error; dropping the assignment.");
                let all: Vec<Tp> = shared.parts.lock().expect("parts lock").keys().cloned().collect();
                shared.drain(&all);
                let _ = consumer.unassign();
            }
        }
    }
}

impl Shared {
    /// The partition's stored position, retried for a while: starting from the broker's
    /// committed offset instead is safe (it is never ahead of the row) but replays more.
    fn stored_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let group = &self.state.settings.kafka.group_id;
        for attempt in 0..5 {
            match self.rt.block_on(self.state.storage.partition_offset(group, topic, partition)) {
                Ok(o) => return o,
                Err(e) => {
                    self.state.metrics.kafka_errors.with_label_values(&["storage"]).inc();
                    tracing::warn!(error = %e, topic, partition, attempt, "Reading a partition's stored offset failed.");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
            }
        }
        None
    }

    fn start_partition(self: &Arc<Self>, tp: Tp) {
        let (tx, rx) = mpsc::channel(self.state.settings.kafka.queue_messages);
        let abandon = Arc::new(AtomicBool::new(false));
        let task = self.rt.spawn(run_partition(self.clone(), tp.clone(), rx, abandon.clone()));
        let mut parts = self.parts.lock().expect("parts lock");
        if let Some(old) = parts.insert(tp, Part { tx, pending: VecDeque::new(), abandon, task }) {
            // Not expected (a revoke drains first); the old task ends when its queue closes.
            old.abandon.store(true, Ordering::SeqCst);
        }
        self.state.metrics.kafka_assigned.set(parts.len() as i64);
    }

    /// Closes the queues of `tps`, waits for their tasks to process what is queued and persist
    /// their position, and forgets them. Pending (unqueued) records are dropped: they are past
    /// the persisted offset, so the next owner reads them again.
    fn drain(&self, tps: &[Tp]) {
        let taken: Vec<(Tp, Part)> = {
            let mut parts = self.parts.lock().expect("parts lock");
            let taken = tps.iter().filter_map(|tp| parts.remove(tp).map(|p| (tp.clone(), p))).collect();
            self.state.metrics.kafka_assigned.set(parts.len() as i64);
            taken
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        for (tp, part) in taken {
            let Part { tx, task, abandon, .. } = part;
            drop(tx);
            let left = deadline.saturating_duration_since(Instant::now());
            let abort = task.abort_handle();
            if self.rt.block_on(async { tokio::time::timeout(left, task).await }).is_err() {
                tracing::error!(topic = %tp.0, partition = tp.1, "A partition did not drain in time; its unpersisted work will be replayed.");
                abandon.store(true, Ordering::SeqCst);
                abort.abort();
            }
            self.paused.lock().expect("paused lock").remove(&tp);
            let _ = self.state.metrics.kafka_lag.remove_label_values(&[&tp.0, &tp.1.to_string()]);
        }
        self.state.metrics.kafka_paused.set(self.paused.lock().expect("paused lock").len() as i64);
    }

    /// Commits the durable offsets gathered since the last commit to the broker.
    fn commit(&self, consumer: &BaseConsumer<Ctx>, mode: CommitMode) {
        let offsets = std::mem::take(&mut *self.to_commit.lock().expect("commit lock"));
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &offsets {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        if let Err(e) = consumer.commit(&tpl, mode) {
            // The stored rows decide where partitions start; a failed broker commit only
            // leaves lag tooling behind until the next one.
            self.state.metrics.kafka_errors.with_label_values(&["commit"]).inc();
            tracing::warn!(error = %e, "Committing offsets to the broker failed.");
        }
    }

    /// Waits (up to 10 s) for produced dead letters and events still in flight.
    fn producer_flush(&self) -> Result<(), KafkaError> {
        use rdkafka::producer::Producer;
        self.producer.flush(Duration::from_secs(10))
    }

    /// Hands records waiting for queue room to their tasks; resumes partitions that drained.
    fn deliver_pending(&self, consumer: &BaseConsumer<Ctx>) {
        let mut resumed = Vec::new();
        {
            let mut parts = self.parts.lock().expect("parts lock");
            for (tp, part) in parts.iter_mut() {
                while let Some(r) = part.pending.pop_front() {
                    match part.tx.try_send(r) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(r)) => {
                            part.pending.push_front(r);
                            break;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => part.pending.clear(),
                    }
                }
                if part.pending.is_empty() && self.paused.lock().expect("paused lock").contains(tp) {
                    resumed.push(tp.clone());
                }
            }
        }
        if !resumed.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &resumed {
                tpl.add_partition(t, *p);
            }
            if let Err(e) = consumer.resume(&tpl) {
                tracing::warn!(error = %e, "Resuming partitions failed.");
                return;
            }
            let mut paused = self.paused.lock().expect("paused lock");
            for tp in &resumed {
                paused.remove(tp);
            }
            self.state.metrics.kafka_paused.set(paused.len() as i64);
        }
    }

    /// Queues one record; a full queue pauses the partition (back-pressure, bounded memory).
    fn dispatch(&self, consumer: &BaseConsumer<Ctx>, tp: Tp, record: Record) {
        let mut parts = self.parts.lock().expect("parts lock");
        let Some(part) = parts.get_mut(&tp) else { return };
        if !part.pending.is_empty() {
            part.pending.push_back(record);
            return;
        }
        match part.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r)) => {
                part.pending.push_back(r);
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&tp.0, tp.1);
                if let Err(e) = consumer.pause(&tpl) {
                    tracing::warn!(error = %e, "Pausing a partition failed.");
                }
                self.state.metrics.kafka_pauses.inc();
                let mut paused = self.paused.lock().expect("paused lock");
                paused.insert(tp);
                self.state.metrics.kafka_paused.set(paused.len() as i64);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
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
fn client_config(state: &AppState, role: Role, ours: &[(&str, &str)]) -> ClientConfig {
    let k = &state.settings.kafka;
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
    pub async fn start(state: AppState) -> Result<Self, SourceError> {
        let k = state.settings.kafka.clone();
        if k.create_topics
            && let Err(e) = ensure_topics(&state, &k).await
        {
            // Not fatal: the broker may be down now and come back; librdkafka retries, and
            // producing to a missing topic is counted in driftwatch_kafka_errors_total.
            tracing::warn!(error = %e, "Could not create the output topics.");
        }
        let producer: FutureProducer =
            client_config(&state, Role::Producer, &[("enable.idempotence", "true"), ("linger.ms", "5")]).create()?;
        let shared = Arc::new(Shared {
            state: state.clone(),
            rt: tokio::runtime::Handle::current(),
            producer,
            parts: Mutex::new(HashMap::new()),
            to_commit: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashSet::new()),
        });
        let mut consumer_config = client_config(
            &state,
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

async fn ensure_topics(state: &AppState, k: &crate::config::KafkaSettings) -> Result<(), SourceError> {
    let admin: AdminClient<_> = client_config(state, Role::Admin, &[]).create()?;
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

/// The consumer thread: polls, dispatches, commits, and on stop drains everything.
/// Marks the consumer thread stopped for `/readyz` when it ends, by return or by panic.
struct Heartbeat(Arc<std::sync::atomic::AtomicI64>);

impl Heartbeat {
    fn beat(&self) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_millis() as i64);
        self.0.store(now, Ordering::Relaxed);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.store(-1, Ordering::Relaxed);
    }
}

fn consume(consumer: BaseConsumer<Ctx>, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut last_commit = Instant::now();
    let heartbeat = Heartbeat(shared.state.kafka_heartbeat.clone());
    while !stop.load(Ordering::SeqCst) {
        heartbeat.beat();
        shared.deliver_pending(&consumer);
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => {
                shared.state.metrics.kafka_errors.with_label_values(&["consume"]).inc();
                tracing::warn!(error = %e, "Kafka consume error.");
            }
            Some(Ok(m)) => {
                let record = Record {
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default()))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                let tp = (m.topic().to_owned(), m.partition());
                drop(m);
                shared.dispatch(&consumer, tp, record);
            }
        }
        if last_commit.elapsed() >= Duration::from_secs(1) {
            shared.commit(&consumer, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
    let all: Vec<Tp> = shared.parts.lock().expect("parts lock").keys().cloned().collect();
    shared.drain(&all);
    shared.commit(&consumer, CommitMode::Sync);
    consumer.unsubscribe();
    // Dropping the consumer closes it: it leaves the group, so the partitions move at once.
    drop(consumer);
    let _ = shared.producer_flush();
    tracing::info!("Kafka source stopped.");
}

/// What a partition task keeps between batches.
struct PartitionTask {
    shared: Arc<Shared>,
    tp: Tp,
    abandon: Arc<AtomicBool>,
    /// Series loaded (restored from storage) during this assignment: name → storage id.
    loaded: HashMap<String, i64>,
    /// Series fed since the last persist.
    dirty: HashSet<String>,
    /// First offset not yet processed (None before the first record).
    next_offset: Option<i64>,
    /// Whether `next_offset` moved since the last persist.
    moved: bool,
    /// The persist running in the background, if any.
    persisting: Option<tokio::task::JoinHandle<Result<(), Abandoned>>>,
}

async fn run_partition(shared: Arc<Shared>, tp: Tp, mut rx: mpsc::Receiver<Record>, abandon: Arc<AtomicBool>) {
    let k = shared.state.settings.kafka.clone();
    let every = Duration::from_millis(k.checkpoint_interval_ms);
    let mut task = PartitionTask {
        shared,
        tp,
        abandon,
        loaded: HashMap::new(),
        dirty: HashSet::new(),
        next_offset: None,
        moved: false,
        persisting: None,
    };
    let mut buf = Vec::with_capacity(k.batch_messages);
    // Partitions persist at staggered moments, so their checkpoint writes do not pile up.
    let phase = every.mul_f64((task.tp.1.unsigned_abs() as u64).wrapping_mul(0x9E37_79B9) as f64 % 1000.0 / 1000.0);
    let mut last_persist = Instant::now().checked_sub(phase).unwrap_or_else(Instant::now);
    loop {
        let got = tokio::select! {
            n = rx.recv_many(&mut buf, k.batch_messages) => Some(n),
            () = tokio::time::sleep(every.saturating_sub(last_persist.elapsed())) => None,
        };
        match got {
            Some(0) => break,
            Some(_) => {
                let batch = std::mem::take(&mut buf);
                if task.process(batch).await.is_err() {
                    // Abandoned (revoked during an outage): the next owner replays.
                    break;
                }
            }
            None => {}
        }
        if last_persist.elapsed() >= every {
            if task.persist(false).await.is_err() {
                break;
            }
            last_persist = Instant::now();
        }
    }
    if !task.abandon.load(Ordering::SeqCst) && task.persist(true).await.is_ok() {
        let _ = task.finish_persist().await;
    }
    // Leave no copy behind: if the partition comes back, its series are restored afresh.
    for name in task.loaded.keys() {
        let _ = task.shared.state.pipeline.remove(name.clone()).await;
    }
}

/// Retries `op` with back-off until it succeeds or the partition is abandoned (revoked during a
/// storage outage: the next owner replays what was not persisted).
async fn retry<T, F, Fut>(shared: &Shared, abandon: &AtomicBool, tp: &Tp, what: &str, mut op: F) -> Result<T, Abandoned>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, IngestError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(IngestError::Pipeline(e)) => {
                tracing::warn!(error = %e, "The pipeline stopped under a partition.");
                return Err(Abandoned);
            }
            Err(e) => {
                shared.state.metrics.kafka_errors.with_label_values(&["storage"]).inc();
                tracing::warn!(error = %e, topic = %tp.0, partition = tp.1, what, retry_in = ?delay, "Storage failed; retrying.");
            }
        }
        if abandon.load(Ordering::SeqCst) {
            return Err(Abandoned);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Work was given up because the partition was revoked during a failure.
#[derive(Debug)]
struct Abandoned;

impl PartitionTask {
    /// Retries `op` with back-off until it succeeds or the partition is abandoned.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Abandoned>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, IngestError>>,
    {
        retry(&self.shared, &self.abandon, &self.tp, what, op).await
    }

    async fn process(&mut self, batch: Vec<Record>) -> Result<(), Abandoned> {
        let state = self.shared.state.clone();
        let metrics = &state.metrics;
        let mut summary = IngestSummary::default();
        let mut deliveries: Vec<(Option<DeliveryFuture>, &'static str)> = Vec::new();
        // Good messages grouped by series, in first-seen order; each series keeps its order.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Message> = HashMap::new();
        let last = batch.last().map(|r| r.offset);
        let stamps: Vec<i64> = batch.iter().filter_map(|r| r.timestamp_ms).collect();
        for record in batch {
            match decode_keyed(&record.payload, record.key.as_deref()) {
                Ok(m) => {
                    summary.messages += 1;
                    summary.rejected.merge(&m.rejected);
                    if m.rejected.total() > 0 {
                        // The usable points go on; the message is set aside for inspection.
                        let why = format!("{} point(s) set aside: {}", m.rejected.total(), rejected_text(&m));
                        deliveries.push((self.dead_letter(&record, "rejected_points", &why), "dead_letter"));
                    }
                    metrics.kafka_messages.with_label_values(&["processed"]).inc();
                    match groups.get_mut(&m.series) {
                        Some(g) => g.points.extend(m.points),
                        None => {
                            order.push(m.series.clone());
                            groups.insert(m.series.clone(), m);
                        }
                    }
                }
                Err(e) => {
                    summary.errors.push(crate::ingest::decode::LineError { line: 1, error: e.clone() });
                    metrics.kafka_messages.with_label_values(&["dead_lettered"]).inc();
                    deliveries.push((self.dead_letter(&record, e.reason(), &e.to_string()), "dead_letter"));
                }
            }
        }
        // Restore series seen for the first time in this assignment.
        for name in &order {
            if self.loaded.contains_key(name) {
                continue;
            }
            let Some(dim) = groups[name].points.first().map(|p| p.values.len() as i64) else { continue };
            let (principal, now) = (state.settings.principal.clone(), now_ms());
            let row = self
                .retry("loading a series", || async {
                    let row = state.storage.ensure_series(name, dim, &principal, now).await?;
                    state.load_detector(&row).await?;
                    Ok(row)
                })
                .await?;
            self.loaded.insert(name.clone(), row.id);
        }
        // Feed each series (series run concurrently: their detectors live on different shards;
        // each series' points stay in order), then store every series' results in one
        // transaction, retried until it succeeds.
        let mut jobs = tokio::task::JoinSet::new();
        for (i, name) in order.iter().enumerate() {
            let Some(m) = groups.remove(name) else { continue };
            let state = state.clone();
            jobs.spawn(async move {
                let mut summary = IngestSummary::default();
                let report = state.feed(m, &mut summary).await.map_err(|_| Abandoned)?;
                Ok::<_, Abandoned>((i, summary, report))
            });
        }
        let mut reports: Vec<(usize, Report)> = Vec::with_capacity(order.len());
        while let Some(done) = jobs.join_next().await {
            let (i, s, report) = done.map_err(|_| Abandoned)??;
            summary.accepted += s.accepted;
            summary.duplicate += s.duplicate;
            summary.late += s.late;
            summary.dimension_mismatch += s.dimension_mismatch;
            reports.push((i, report));
        }
        let rows: Vec<(i64, &Report)> =
            reports.iter().filter_map(|(i, r)| self.loaded.get(&order[*i]).map(|id| (*id, r))).collect();
        self.retry("storing results", || state.store_many(&rows)).await?;
        let now = now_ms();
        for t in stamps {
            metrics.kafka_record_age_seconds.observe((now - t).max(0) as f64 / 1000.0);
        }
        reports.sort_by_key(|(i, _)| *i);
        for (i, report) in &reports {
            if report.accepted > 0 {
                self.dirty.insert(order[*i].clone());
            }
            for e in &report.events {
                if let Some((kind, payload)) = event_json(&order[*i], e) {
                    deliveries.push((self.produce_event(&order[*i], kind, &payload), kind));
                }
            }
        }
        metrics.kafka_points.inc_by(summary.accepted);
        state.record(&summary);
        // Events and dead letters are delivered before the offset can move past them.
        for (d, kind) in deliveries {
            let delivered = match d {
                Some(d) => matches!(d.await, Ok(Ok(_))),
                None => false,
            };
            if !delivered {
                metrics.kafka_errors.with_label_values(&["produce"]).inc();
                tracing::error!(kind, topic = %self.tp.0, partition = self.tp.1, "A message could not be produced.");
            } else if kind != "dead_letter" {
                metrics.kafka_events.with_label_values(&[kind]).inc();
            }
        }
        if let Some(last) = last {
            self.next_offset = Some(last + 1);
            self.moved = true;
        }
        Ok(())
    }

    /// Starts making the position durable: copies the detectors of the series fed since the
    /// last time (a consistent cut: no batch is being processed), then, in the background,
    /// serialises them and stores them with the partition's next offset in one transaction and
    /// queues the broker commit. Processing goes on meanwhile; one persist runs at a time, in
    /// order. Returns without starting when the previous one is still running, unless `wait`.
    async fn persist(&mut self, wait: bool) -> Result<(), Abandoned> {
        if let Some(running) = &self.persisting {
            if !wait && !running.is_finished() {
                return Ok(());
            }
            self.finish_persist().await?;
        }
        let Some(next_offset) = self.next_offset.filter(|_| self.moved) else { return Ok(()) };
        let started = Instant::now();
        let state = self.shared.state.clone();
        let names: Vec<String> = self.dirty.drain().collect();
        let copies = state.pipeline.snapshot_many(names).await.map_err(|_| Abandoned)?;
        let copies: Vec<(i64, driftwatch_icid::StreamDetector)> =
            copies.into_iter().filter_map(|(name, det)| self.loaded.get(&name).map(|id| (*id, det))).collect();
        self.moved = false;
        let at = PartitionPosition {
            group: state.settings.kafka.group_id.clone(),
            topic: self.tp.0.clone(),
            partition: self.tp.1,
            next_offset,
        };
        let (shared, abandon, tp) = (self.shared.clone(), self.abandon.clone(), self.tp.clone());
        self.persisting = Some(tokio::spawn(async move {
            let checkpoints = tokio::task::spawn_blocking(move || {
                copies
                    .into_iter()
                    .filter_map(|(id, det)| match serde_json::to_vec(&det) {
                        Ok(bytes) => Some((id, bytes, det.stats().points as i64)),
                        Err(e) => {
                            tracing::error!(series_id = id, error = %e, "A checkpoint did not serialise.");
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| Abandoned)?;
            let state = &shared.state;
            let checkpoints = &checkpoints;
            retry(&shared, &abandon, &tp, "persisting a partition", || async {
                Ok(state.storage.save_partition_state(&at, checkpoints, now_ms()).await?)
            })
            .await?;
            shared.to_commit.lock().expect("commit lock").insert(tp, next_offset);
            state.metrics.kafka_commit_seconds.observe(started.elapsed().as_secs_f64());
            Ok(())
        }));
        Ok(())
    }

    /// Waits for the persist in flight, if any.
    async fn finish_persist(&mut self) -> Result<(), Abandoned> {
        match self.persisting.take() {
            Some(running) => running.await.map_err(|_| Abandoned)?,
            None => Ok(()),
        }
    }

    fn dead_letter(&self, record: &Record, reason: &str, error: &str) -> Option<DeliveryFuture> {
        self.shared.state.metrics.kafka_dead_letters.with_label_values(&[reason]).inc();
        let k = &self.shared.state.settings.kafka;
        let (offset, partition) = (record.offset.to_string(), self.tp.1.to_string());
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        headers = headers
            .insert(Header { key: "driftwatch-error", value: Some(error) })
            .insert(Header { key: "driftwatch-reason", value: Some(reason) })
            .insert(Header { key: "driftwatch-source-topic", value: Some(&self.tp.0) })
            .insert(Header { key: "driftwatch-source-partition", value: Some(&partition) })
            .insert(Header { key: "driftwatch-source-offset", value: Some(&offset) });
        let mut r: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&k.dead_letter_topic).payload(record.payload.as_slice()).headers(headers);
        if let Some(key) = &record.key {
            r = r.key(key.as_slice());
        }
        self.send(r)
    }

    fn produce_event(&self, series: &str, kind: &str, payload: &str) -> Option<DeliveryFuture> {
        let k = &self.shared.state.settings.kafka;
        let headers = OwnedHeaders::new().insert(Header { key: "driftwatch-event", value: Some(kind) });
        self.send(FutureRecord::to(&k.events_topic).key(series).payload(payload).headers(headers))
    }

    /// Enqueues a record, waiting while the producer's queue is full.
    fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
        &self,
        mut record: FutureRecord<'_, K, P>,
    ) -> Option<DeliveryFuture> {
        loop {
            match self.shared.producer.send_result(record) {
                Ok(d) => return Some(d),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.shared.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    // Enqueueing failed for good (e.g. a message over the size limit).
                    tracing::error!(error = %e, "Producing failed.");
                    return None;
                }
            }
        }
    }
}

fn rejected_text(m: &Message) -> String {
    crate::ingest::decode::RejectReason::ALL
        .iter()
        .filter(|r| m.rejected.get(**r) > 0)
        .map(|r| format!("{} {r}", m.rejected.get(*r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The events-topic payload of an interval event; `id` is the same for every redelivery.
fn event_json(series: &str, e: &Event) -> Option<(&'static str, String)> {
    let (kind, body): (&'static str, Value) = match e {
        Event::Opened { start, start_ts, detected_at, score, threshold } => (
            "opened",
            json!({"id": format!("{series}/opened/{start}"), "start": start, "start_ts": start_ts,
                   "detected_at": detected_at, "score": score, "threshold": threshold}),
        ),
        Event::Extended { start, end, score } => (
            "extended",
            json!({"id": format!("{series}/extended/{start}/{end}"), "start": start, "end": end, "score": score}),
        ),
        Event::Closed(c) => (
            "closed",
            json!({"id": format!("{series}/closed/{}", c.start), "start": c.start, "end": c.end,
                   "start_ts": c.start_ts, "end_ts": c.end_ts, "detected_at": c.detected_at,
                   "peak_score": c.peak_score, "explanation": c.explanation}),
        ),
        _ => return None,
    };
    let mut body = body;
    body["series"] = json!(series);
    body["event"] = json!(kind);
    Some((kind, body.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
