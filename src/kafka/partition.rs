//! A partition's task: decodes its records (bad ones to the dead-letter topic), restores each
//! series on its first message, feeds the detectors, stores every series' results in one
//! transaction (retried until it succeeds or the partition is abandoned), produces interval
//! events, and persists its position with the checkpoints of the series it fed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driftwatch_icid::Event;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::shared::{Record, Shared, Tp};
use crate::decode::{Message, decode_keyed};
use crate::pipeline::Report;
use crate::service::{IngestSummary, ServiceError};
use crate::storage::PartitionPosition;

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

pub(super) async fn run_partition(
    shared: Arc<Shared>,
    tp: Tp,
    mut rx: mpsc::Receiver<Record>,
    abandon: Arc<AtomicBool>,
) {
    let k = shared.service.settings.kafka.clone();
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
        let _ = task.shared.service.pipeline.remove(name.clone()).await;
    }
}

/// Retries `op` with back-off until it succeeds or the partition is abandoned (revoked during a
/// storage outage: the next owner replays what was not persisted).
async fn retry<T, F, Fut>(shared: &Shared, abandon: &AtomicBool, tp: &Tp, what: &str, mut op: F) -> Result<T, Abandoned>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ServiceError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(ServiceError::Pipeline(e)) => {
                tracing::warn!(error = %e, "The pipeline stopped under a partition.");
                return Err(Abandoned);
            }
            Err(e) => {
                shared.service.metrics.kafka_errors.with_label_values(&["storage"]).inc();
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
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        retry(&self.shared, &self.abandon, &self.tp, what, op).await
    }

    async fn process(&mut self, batch: Vec<Record>) -> Result<(), Abandoned> {
        let state = self.shared.service.clone();
        let metrics = &state.metrics;
        let mut summary = IngestSummary::default();
        let mut deliveries: Vec<(Option<DeliveryFuture>, &'static str)> = Vec::new();
        // Good messages grouped by series, in first-seen order; each series keeps its order.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Message> = HashMap::new();
        let last = batch.last().map(|r| r.offset);
        let stamps: Vec<i64> = batch.iter().filter_map(|r| r.timestamp_ms).collect();
        let horizon = state.future_horizon();
        for record in batch {
            match decode_keyed(&record.payload, record.key.as_deref()) {
                Ok(mut m) => {
                    if let Some(h) = horizon {
                        crate::decode::reject_after(&mut m, h);
                    }
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
                    summary.error(crate::decode::LineError { line: 1, error: e.clone() });
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
            let (principal, now) = (state.settings.principal.clone(), crate::clock::now_ms());
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
                // Counted below, into the batch's summary, once every series is fed.
                let report = state.feed(m, &mut IngestSummary::default()).await.map_err(|_| Abandoned)?;
                Ok::<_, Abandoned>((i, report))
            });
        }
        let mut reports: Vec<(usize, Report)> = Vec::with_capacity(order.len());
        while let Some(done) = jobs.join_next().await {
            let (i, report) = done.map_err(|_| Abandoned)??;
            summary.count(&report);
            reports.push((i, report));
        }
        let rows: Vec<(i64, &Report)> =
            reports.iter().filter_map(|(i, r)| self.loaded.get(&order[*i]).map(|id| (*id, r))).collect();
        let gone = self.retry("storing results", || state.store_many(&rows)).await?;
        if !gone.is_empty() {
            // Deleted while in flight: their points count as before the delete. The series is
            // created afresh by its next message.
            self.loaded.retain(|name, id| {
                let deleted = gone.contains(id);
                if deleted {
                    tracing::info!(series = %name, "Series deleted while its batch was stored; its points were dropped.");
                }
                !deleted
            });
        }
        let now = crate::clock::now_ms();
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
        let state = self.shared.service.clone();
        let names: Vec<String> = self.dirty.drain().collect();
        let copies = state.pipeline.snapshot_many(names).await.map_err(|_| Abandoned)?;
        let copies: Vec<(i64, crate::pipeline::Held)> =
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
                    .filter_map(|(id, held)| match serde_json::to_vec(&held.detector) {
                        Ok(bytes) => Some((id, bytes, held.points() as i64)),
                        Err(e) => {
                            tracing::error!(series_id = id, error = %e, "A checkpoint did not serialise.");
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| Abandoned)?;
            let state = &shared.service;
            let checkpoints = &checkpoints;
            retry(&shared, &abandon, &tp, "persisting a partition", || async {
                Ok(state.storage.save_partition_state(&at, checkpoints, crate::clock::now_ms()).await?)
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
        self.shared.service.metrics.kafka_dead_letters.with_label_values(&[reason]).inc();
        let k = &self.shared.service.settings.kafka;
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
        let k = &self.shared.service.settings.kafka;
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
    crate::decode::RejectReason::ALL
        .iter()
        .filter(|r| m.rejected.get(**r) > 0)
        .map(|r| format!("{} {r}", m.rejected.get(*r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The events-topic payload of an interval event; `id` is the same for every redelivery.
fn event_json(series: &str, e: &Event) -> Option<(&'static str, String)> {
    let (kind, body): (&'static str, Value) = match e {
        Event::Opened { start, start_ts, change_point, change_ts, detected_at, score, threshold } => (
            "opened",
            json!({"id": format!("{series}/opened/{start}"), "start": start, "start_ts": start_ts,
                   "change_point": change_point, "change_ts": change_ts,
                   "detected_at": detected_at, "score": score, "threshold": threshold}),
        ),
        Event::Extended { start, end, score } => (
            "extended",
            json!({"id": format!("{series}/extended/{start}/{end}"), "start": start, "end": end, "score": score}),
        ),
        Event::Closed(c) => (
            "closed",
            json!({"id": format!("{series}/closed/{}", c.start), "start": c.start, "end": c.end,
                   "start_ts": c.start_ts, "end_ts": c.end_ts, "change_point": c.change_point,
                   "change_ts": c.change_ts, "detected_at": c.detected_at,
                   "peak_score": c.peak_score, "explanation": c.explanation}),
        ),
        _ => return None,
    };
    let mut body = body;
    body["series"] = json!(series);
    body["event"] = json!(kind);
    Some((kind, body.to_string()))
}
