//! The consumer thread: polls the broker, hands each record to its partition's task through a
//! bounded queue (pausing the partition when it is full), commits durable offsets to the
//! broker, and answers rebalances (assign: start at the stored offset; revoke: drain and
//! persist first).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::mpsc;

use super::partition::run_partition;
use super::shared::{Part, Record, Shared, Tp};
use crate::service::Heartbeat;

/// The client context: statistics, errors and rebalances go to the shared state.
pub(super) struct Ctx(pub(super) Arc<Shared>);

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let parts = self.0.parts.lock().expect("parts lock");
        for (topic, t) in &stats.topics {
            for (p, ps) in &t.partitions {
                if *p >= 0 && ps.consumer_lag >= 0 && parts.contains_key(&(topic.clone(), *p)) {
                    self.0.service.metrics.kafka_lag.with_label_values(&[topic, &p.to_string()]).set(ps.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.service.metrics.kafka_errors.with_label_values(&["consume"]).inc();
        tracing::warn!(%error, reason, "Kafka client error.");
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let shared = &self.0;
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                shared.service.metrics.kafka_rebalances.with_label_values(&["assign"]).inc();
                let tps: Vec<Tp> = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                for (topic, partition) in &tps {
                    if let Some(offset) = shared.stored_offset(topic, *partition) {
                        let _ = tpl.set_partition_offset(topic, *partition, Offset::Offset(offset));
                    }
                }
                let assigned = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = assigned {
                    tracing::error!(error = %e, "Assigning partitions failed.");
                    shared.service.metrics.kafka_rebalances.with_label_values(&["error"]).inc();
                    return;
                }
                for tp in tps {
                    shared.start_partition(tp);
                }
                tracing::info!(partitions = ?tpl.elements().iter().map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset())).collect::<Vec<_>>(), "Partitions assigned.");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                shared.service.metrics.kafka_rebalances.with_label_values(&["revoke"]).inc();
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
                shared.service.metrics.kafka_rebalances.with_label_values(&["error"]).inc();
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
        let group = &self.service.settings.kafka.group_id;
        for attempt in 0..5 {
            match self.rt.block_on(self.service.storage.partition_offset(group, topic, partition)) {
                Ok(o) => return o,
                Err(e) => {
                    self.service.metrics.kafka_errors.with_label_values(&["storage"]).inc();
                    tracing::warn!(error = %e, topic, partition, attempt, "Reading a partition's stored offset failed.");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
            }
        }
        None
    }

    fn start_partition(self: &Arc<Self>, tp: Tp) {
        let (tx, rx) = mpsc::channel(self.service.settings.kafka.queue_messages);
        let abandon = Arc::new(AtomicBool::new(false));
        let task = self.rt.spawn(run_partition(self.clone(), tp.clone(), rx, abandon.clone()));
        let mut parts = self.parts.lock().expect("parts lock");
        if let Some(old) = parts.insert(tp, Part { tx, pending: VecDeque::new(), abandon, task }) {
            // Not expected (a revoke drains first); the old task ends when its queue closes.
            old.abandon.store(true, Ordering::SeqCst);
        }
        self.service.metrics.kafka_assigned.set(parts.len() as i64);
    }

    /// Closes the queues of `tps`, waits for their tasks to process what is queued and persist
    /// their position, and forgets them. Pending (unqueued) records are dropped: they are past
    /// the persisted offset, so the next owner reads them again.
    fn drain(&self, tps: &[Tp]) {
        let taken: Vec<(Tp, Part)> = {
            let mut parts = self.parts.lock().expect("parts lock");
            let taken = tps.iter().filter_map(|tp| parts.remove(tp).map(|p| (tp.clone(), p))).collect();
            self.service.metrics.kafka_assigned.set(parts.len() as i64);
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
            let _ = self.service.metrics.kafka_lag.remove_label_values(&[&tp.0, &tp.1.to_string()]);
        }
        self.service.metrics.kafka_paused.set(self.paused.lock().expect("paused lock").len() as i64);
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
            self.service.metrics.kafka_errors.with_label_values(&["commit"]).inc();
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
            self.service.metrics.kafka_paused.set(paused.len() as i64);
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
                self.service.metrics.kafka_pauses.inc();
                let mut paused = self.paused.lock().expect("paused lock");
                paused.insert(tp);
                self.service.metrics.kafka_paused.set(paused.len() as i64);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Marks the consumer thread stopped for `/readyz` when it ends, by return or by panic.
struct StopOnDrop(Heartbeat);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The consumer thread: polls, dispatches, commits, and on stop drains everything.
pub(super) fn consume(consumer: BaseConsumer<Ctx>, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut last_commit = Instant::now();
    let heartbeat = StopOnDrop(shared.heartbeat.clone());
    while !stop.load(Ordering::SeqCst) {
        heartbeat.0.beat();
        shared.deliver_pending(&consumer);
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => {
                shared.service.metrics.kafka_errors.with_label_values(&["consume"]).inc();
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
