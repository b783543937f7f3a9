//! The detector pipeline: every series has its own [`StreamDetector`], and series are sharded
//! over a fixed set of OS threads (never tokio worker threads: the engine is CPU-bound) by a
//! stable hash of the series name. Each shard is fed by a bounded channel, so when detectors
//! fall behind, [`Pipeline::ingest`] waits for room and back-pressure reaches the ingest edge.
//!
//! A shard owns its series outright (no locks): points of one series are processed in the
//! order they were submitted. A point whose timestamp equals the series' last accepted one is
//! a duplicate, one before it is late; both are counted and skipped, so replay and redelivery
//! are safe. Every batch gets a [`Report`]: counts by outcome, the events it caused and the
//! scored blocks (window score, threshold, per-point anomaly scores) for storage.
//!
//! Stream indices are the series' own, not the detector's: a detector installed after a reset or
//! a configuration change starts at a *base* (the series' next stored index) and after a *floor*
//! (the series' newest stored timestamp), so its points continue the stored numbering (no row is
//! overwritten) and stay in time order (older points are late, as before the reset). Every index
//! in a [`Report`] is base + the detector's own.
//!
//! Every detector of the pipeline, a series' own configuration or a restored checkpoint
//! included, runs the nearest-centre search on the defaults' path (the service's
//! `pipeline.simd`); results do not depend on it.
//!
//! Shutdown: [`Pipeline::shutdown`] closes the channels; each shard finishes what is queued and
//! returns its detectors, so the caller can checkpoint them.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::thread::JoinHandle;
use std::time::Instant;

use driftwatch_icid::{BlockScore, ClosedInterval, Event, Pushed, StreamConfig, StreamDetector};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::decode::Point;

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Detector threads.
    pub shards: usize,
    /// Batches queued per shard before `ingest` waits.
    pub queue: usize,
    /// Detector configuration for a series that has none of its own.
    pub detector: StreamConfig,
}

/// What went wrong talking to the pipeline.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PipelineError {
    /// The pipeline is shutting down or a shard thread is gone.
    #[error("the detector pipeline is not running")]
    Stopped,
    /// A detector configuration the engine refuses.
    #[error("invalid detector configuration: {0}")]
    Config(String),
    /// The pipeline settings are unusable.
    #[error("invalid pipeline settings: {0}")]
    Settings(&'static str),
}

/// The outcome of one batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Points fed to the detector.
    pub accepted: u64,
    /// Points with the series' last accepted timestamp.
    pub duplicate: u64,
    /// Points before the series' last accepted timestamp.
    pub late: u64,
    /// Points with a different number of values than the series.
    pub dimension_mismatch: u64,
    /// Events the batch caused, in order.
    pub events: Vec<Event>,
    /// Blocks the batch completed, in order.
    pub blocks: Vec<BlockScore>,
    /// Stream index of the first accepted point (accepted points have consecutive indices).
    pub first_index: u64,
    /// The accepted points, in order.
    pub accepted_points: Vec<(i64, Vec<f64>)>,
    /// The interval open after the batch, as it stands.
    pub open_interval: Option<ClosedInterval>,
    /// psi in use (after warm-up).
    pub psi: Option<usize>,
    /// Time spent in the detector, seconds.
    pub detector_seconds: f64,
}

/// Where a fresh detector starts in its series: the stream index of its first point and the
/// timestamp its points must come after (the series' stored history).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Start {
    /// Stream index of the detector's first point (the series' stored point count).
    pub index: u64,
    /// Points at or before this timestamp are duplicate or late.
    pub after_ts: Option<i64>,
}

/// A series' detector and where it sits in the series' stream.
#[derive(Debug, Clone)]
pub struct Held {
    /// The detector.
    pub detector: StreamDetector,
    /// Stream index of the detector's first point.
    pub base: u64,
    /// Points at or before this timestamp are refused (until the detector has its own).
    floor: Option<i64>,
}

impl Held {
    /// A detector at the start of a series, or at `base` after its history (restored from a
    /// checkpoint that has seen `base + detector.stats().points` points).
    pub fn new(detector: StreamDetector, base: u64) -> Self {
        Self { detector, base, floor: None }
    }

    /// Points of the series this detector reflects: its base plus what it accepted.
    pub fn points(&self) -> u64 {
        self.base + self.detector.stats().points
    }

    /// The last accepted timestamp of the series as far as this detector knows.
    pub fn last_ts(&self) -> Option<i64> {
        self.detector.last_ts().or(self.floor)
    }
}

enum Job {
    Points {
        series: String,
        points: Vec<Point>,
        reply: oneshot::Sender<Report>,
    },
    Configure {
        series: String,
        config: Option<Box<StreamConfig>>,
        dim: usize,
        start: Start,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Snapshot {
        series: String,
        reply: oneshot::Sender<Option<Held>>,
    },
    SnapshotMany {
        series: Vec<String>,
        reply: oneshot::Sender<Vec<(String, Held)>>,
    },
    Restore {
        series: String,
        held: Box<Held>,
    },
    Remove {
        series: String,
        reply: oneshot::Sender<bool>,
    },
}

/// A running pipeline. Shared by reference (`Arc`); [`Pipeline::shutdown`] works through a
/// shared reference too, so a request still holding a handle cannot block shutdown.
#[derive(Debug)]
pub struct Pipeline {
    /// Emptied by `shutdown`: once gone, shards see their channels close when the last in-flight
    /// sender clone drops, and finish.
    senders: std::sync::Mutex<Vec<mpsc::Sender<Job>>>,
    threads: std::sync::Mutex<Vec<JoinHandle<HashMap<String, Held>>>>,
    shards: usize,
    queue: usize,
}

impl Pipeline {
    /// Starts `config.shards` detector threads.
    ///
    /// # Errors
    /// Zero shards or queue length, or a default detector configuration the engine refuses.
    pub fn start(config: PipelineConfig) -> Result<Self, PipelineError> {
        if config.shards == 0 || config.queue == 0 {
            return Err(PipelineError::Settings("shards and queue must be at least 1"));
        }
        // Validate the default configuration once, up front.
        StreamDetector::new(config.detector.clone(), 1).map_err(|e| PipelineError::Config(e.to_string()))?;
        let mut senders = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        for shard in 0..config.shards {
            let (tx, rx) = mpsc::channel(config.queue);
            let mut defaults = config.detector.clone();
            defaults.collect_blocks = true;
            let handle = std::thread::Builder::new()
                .name(format!("detector-{shard}"))
                .spawn(move || run_shard(rx, defaults))
                .map_err(|_| PipelineError::Settings("could not start a detector thread"))?;
            senders.push(tx);
            threads.push(handle);
        }
        Ok(Self {
            senders: std::sync::Mutex::new(senders),
            threads: std::sync::Mutex::new(threads),
            shards: config.shards,
            queue: config.queue,
        })
    }

    /// The shard a series lives on: a stable hash of its name (SipHash with fixed keys).
    pub fn shard_of(&self, series: &str) -> usize {
        let mut h = DefaultHasher::new();
        series.hash(&mut h);
        (h.finish() % self.shards as u64) as usize
    }

    /// Batches waiting per shard (for the queue-depth metric).
    pub fn queue_depths(&self) -> Vec<usize> {
        self.senders.lock().expect("pipeline lock").iter().map(|s| self.queue - s.capacity()).collect()
    }

    /// The sender of `series`' shard, or `Stopped` after shutdown.
    fn sender(&self, series: &str) -> Result<mpsc::Sender<Job>, PipelineError> {
        let shard = self.shard_of(series);
        self.senders.lock().expect("pipeline lock").get(shard).cloned().ok_or(PipelineError::Stopped)
    }

    /// Feeds a batch of one series' points, waiting for queue room, and returns its report.
    ///
    /// # Errors
    /// [`PipelineError::Stopped`] when the pipeline is shutting down.
    pub async fn ingest(&self, series: String, points: Vec<Point>) -> Result<Report, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.sender(&series)?.send(Job::Points { series, points, reply }).await.map_err(|_| PipelineError::Stopped)?;
        rx.await.map_err(|_| PipelineError::Stopped)
    }

    /// Installs a fresh detector for a series with `config` (`None`: the pipeline's defaults),
    /// starting at `start` in the series' stream; whatever the series had is forgotten (it
    /// re-warms).
    ///
    /// # Errors
    /// A configuration the engine refuses, or a stopped pipeline.
    pub async fn configure(
        &self,
        series: String,
        config: Option<StreamConfig>,
        dim: usize,
        start: Start,
    ) -> Result<(), PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.sender(&series)?
            .send(Job::Configure { series, config: config.map(Box::new), dim, start, reply })
            .await
            .map_err(|_| PipelineError::Stopped)?;
        rx.await.map_err(|_| PipelineError::Stopped)?.map_err(PipelineError::Config)
    }

    /// A copy of a series' detector (for checkpoints), if the series is known.
    ///
    /// # Errors
    /// A stopped pipeline.
    pub async fn snapshot(&self, series: String) -> Result<Option<Held>, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.sender(&series)?.send(Job::Snapshot { series, reply }).await.map_err(|_| PipelineError::Stopped)?;
        rx.await.map_err(|_| PipelineError::Stopped)
    }

    /// Copies of many series' detectors, one job per shard rather than one per series; unknown
    /// series are left out.
    ///
    /// # Errors
    /// A stopped pipeline.
    pub async fn snapshot_many(&self, series: Vec<String>) -> Result<Vec<(String, Held)>, PipelineError> {
        let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); self.shards];
        for s in series {
            by_shard[self.shard_of(&s)].push(s);
        }
        let mut replies = Vec::new();
        for (shard, names) in by_shard.into_iter().enumerate() {
            if names.is_empty() {
                continue;
            }
            let sender =
                self.senders.lock().expect("pipeline lock").get(shard).cloned().ok_or(PipelineError::Stopped)?;
            let (reply, rx) = oneshot::channel();
            sender.send(Job::SnapshotMany { series: names, reply }).await.map_err(|_| PipelineError::Stopped)?;
            replies.push(rx);
        }
        let mut out = Vec::new();
        for rx in replies {
            out.extend(rx.await.map_err(|_| PipelineError::Stopped)?);
        }
        Ok(out)
    }

    /// Installs a restored detector for a series (from a checkpoint).
    ///
    /// # Errors
    /// A stopped pipeline.
    pub async fn restore(&self, series: String, held: Held) -> Result<(), PipelineError> {
        self.sender(&series)?
            .send(Job::Restore { series, held: Box::new(held) })
            .await
            .map_err(|_| PipelineError::Stopped)
    }

    /// Forgets a series; returns whether it was known.
    ///
    /// # Errors
    /// A stopped pipeline.
    pub async fn remove(&self, series: String) -> Result<bool, PipelineError> {
        let (reply, rx) = oneshot::channel();
        self.sender(&series)?.send(Job::Remove { series, reply }).await.map_err(|_| PipelineError::Stopped)?;
        rx.await.map_err(|_| PipelineError::Stopped)
    }

    /// Stops accepting work, lets every shard finish its queue (and any send already under way),
    /// and returns all detectors (for the final checkpoint). Blocks until the shard threads end;
    /// a second call returns nothing.
    pub fn shutdown(&self) -> HashMap<String, Held> {
        self.senders.lock().expect("pipeline lock").clear();
        let threads = std::mem::take(&mut *self.threads.lock().expect("pipeline lock"));
        let mut all = HashMap::new();
        for t in threads {
            if let Ok(part) = t.join() {
                all.extend(part);
            }
        }
        all
    }
}

fn run_shard(mut rx: mpsc::Receiver<Job>, defaults: StreamConfig) -> HashMap<String, Held> {
    let mut detectors: HashMap<String, Held> = HashMap::new();
    while let Some(job) = rx.blocking_recv() {
        match job {
            Job::Points { series, points, reply } => {
                let report = feed(&mut detectors, &defaults, series, &points);
                let _ = reply.send(report); // the caller may have gone away; the work is done
            }
            Job::Configure { series, config, dim, start, reply } => {
                let mut config = config.map_or_else(|| defaults.clone(), |c| *c);
                config.collect_blocks = true;
                config.path = defaults.path;
                let result = StreamDetector::new(config, dim).map(|detector| {
                    detectors.insert(series, Held { detector, base: start.index, floor: start.after_ts });
                });
                let _ = reply.send(result.map_err(|e| e.to_string()));
            }
            Job::Snapshot { series, reply } => {
                let _ = reply.send(detectors.get(&series).cloned());
            }
            Job::SnapshotMany { series, reply } => {
                let copies = series.into_iter().filter_map(|s| detectors.get(&s).cloned().map(|d| (s, d))).collect();
                let _ = reply.send(copies);
            }
            Job::Restore { series, held } => {
                let mut held = *held;
                if held.detector.check_version().is_ok() {
                    // Restored state keeps its own configuration but this pipeline's SIMD path; the outbox
                    // is always wanted here.
                    held.detector.set_collect_blocks(true);
                    held.detector.set_path(defaults.path);
                    detectors.insert(series, held);
                }
            }
            Job::Remove { series, reply } => {
                let _ = reply.send(detectors.remove(&series).is_some());
            }
        }
    }
    detectors
}

fn feed(detectors: &mut HashMap<String, Held>, defaults: &StreamConfig, series: String, points: &[Point]) -> Report {
    let mut report = Report::default();
    let Some(first) = points.first() else { return report };
    let started = Instant::now();
    let held = match detectors.entry(series) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let det = StreamDetector::new(defaults.clone(), first.values.len()).expect("defaults validated at start");
            e.insert(Held::new(det, 0))
        }
    };
    let (base, floor) = (held.base, held.floor);
    let det = &mut held.detector;
    report.first_index = base + det.stats().points;
    for p in points {
        if p.values.len() != det.dim() {
            report.dimension_mismatch += 1;
            continue;
        }
        // The series' stored history bounds a detector that has none of its own yet.
        if det.last_ts().is_none()
            && let Some(floor) = floor
            && p.ts_ms <= floor
        {
            if p.ts_ms == floor {
                report.duplicate += 1;
            } else {
                report.late += 1;
            }
            continue;
        }
        match det.push(p.ts_ms, &p.values, &mut report.events) {
            Pushed::Accepted => {
                report.accepted += 1;
                report.accepted_points.push((p.ts_ms, p.values.clone()));
            }
            Pushed::Late if det.last_ts() == Some(p.ts_ms) => report.duplicate += 1,
            Pushed::Late => report.late += 1,
            // Finite values and the right dimension are checked by the decoder and above.
            Pushed::Invalid => report.dimension_mismatch += 1,
        }
    }
    report.blocks = det.drain_blocks();
    report.open_interval = det.open_interval();
    report.psi = det.psi();
    if base > 0 {
        shift(&mut report, base);
    }
    report.detector_seconds = started.elapsed().as_secs_f64();
    report
}

/// Moves a report's detector indices to the series' stream (the detector starts at `base`).
fn shift(report: &mut Report, base: u64) {
    let interval = |iv: &mut ClosedInterval| {
        iv.start += base;
        iv.end += base;
        iv.detected_at += base;
    };
    for e in &mut report.events {
        match e {
            Event::WarmedUp { at, .. } | Event::Gap { at, .. } | Event::Refreshed { at, .. } => *at += base,
            Event::Opened { start, detected_at, .. } => {
                *start += base;
                *detected_at += base;
            }
            Event::Extended { start, end, .. } => {
                *start += base;
                *end += base;
            }
            Event::Closed(iv) => interval(iv),
        }
    }
    for b in &mut report.blocks {
        b.first_index += base;
    }
    if let Some(iv) = &mut report.open_interval {
        interval(iv);
    }
}

#[cfg(test)]
mod tests {
    use driftwatch_icid::NearestPath;

    use super::*;

    fn points(values: &[f64], t0: i64) -> Vec<Point> {
        values.iter().enumerate().map(|(i, &v)| Point { ts_ms: t0 + i as i64 * 1000, values: vec![v] }).collect()
    }

    fn config(shards: usize) -> PipelineConfig {
        let mut detector = StreamConfig::new(50);
        detector.psi = driftwatch_icid::PsiPolicy::Fixed(8);
        detector.t = 50;
        PipelineConfig { shards, queue: 4, detector }
    }

    fn shift() -> Vec<f64> {
        driftwatch_testkit::gaussian_segments(&[(0.0, 1.0, 1500), (5.0, 1.0, 500)], 3)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_find_the_change_and_replays_are_counted_not_fed() {
        let p = Pipeline::start(config(2)).unwrap();
        let data = shift();
        let all = points(&data, 0);
        let mut opened = Vec::new();
        let mut blocks = 0;
        for chunk in all.chunks(100) {
            let r = p.ingest("s1".into(), chunk.to_vec()).await.unwrap();
            assert_eq!(r.accepted, chunk.len() as u64);
            opened.extend(
                r.events.iter().filter_map(|e| if let Event::Opened { start, .. } = e { Some(*start) } else { None }),
            );
            blocks += r.blocks.len();
            for b in &r.blocks {
                assert_eq!(b.anomaly.len(), b.rows);
            }
        }
        assert!(opened.contains(&1500), "{opened:?}");
        assert_eq!(blocks, 40, "2000 / 50: every point's anomaly score is in a block, warm-up included");
        // Replaying a batch: the last point is a duplicate, the rest are late; nothing is fed.
        let r = p.ingest("s1".into(), all[1900..].to_vec()).await.unwrap();
        assert_eq!((r.accepted, r.duplicate, r.late), (0, 1, 99));
        assert!(r.events.is_empty() && r.blocks.is_empty());
        let dets = p.shutdown();
        assert_eq!(dets["s1"].points(), 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn series_spread_over_shards_and_each_keeps_its_order() {
        let p = Pipeline::start(config(3)).unwrap();
        let names: Vec<String> = (0..30).map(|i| format!("series-{i}")).collect();
        let shards: std::collections::HashSet<usize> = names.iter().map(|n| p.shard_of(n)).collect();
        assert_eq!(shards.len(), 3, "30 names land on every shard");
        assert_eq!(p.shard_of("series-7"), p.shard_of("series-7"));
        let data = shift();
        let mut tasks = Vec::new();
        let p = std::sync::Arc::new(p);
        for name in names.clone() {
            let (p, data) = (p.clone(), data.clone());
            tasks.push(tokio::spawn(async move {
                let mut accepted = 0;
                for chunk in points(&data[..1200], 0).chunks(200) {
                    accepted += p.ingest(name.clone(), chunk.to_vec()).await.unwrap().accepted;
                }
                accepted
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1200);
        }
        let p = std::sync::Arc::try_unwrap(p).unwrap();
        let dets = p.shutdown();
        assert_eq!(dets.len(), 30);
        assert!(dets.values().all(|d| d.points() == 1200 && !d.detector.warming_up()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_series_can_be_configured_snapshotted_restored_and_removed() {
        let mut cfg = config(1);
        cfg.detector.path = NearestPath::Forced(driftwatch_icid::SimdLevel::Portable);
        let p = Pipeline::start(cfg).unwrap();
        let mut own = StreamConfig::new(20);
        own.psi = driftwatch_icid::PsiPolicy::Fixed(4);
        own.t = 30;
        own.path = NearestPath::Scalar;
        p.configure("a".into(), Some(own.clone()), 1, Start::default()).await.unwrap();
        own.hop = 7; // does not divide 20
        assert!(matches!(
            p.configure("a".into(), Some(own), 1, Start::default()).await,
            Err(PipelineError::Config(m)) if m.contains("hop")
        ));
        let data = shift();
        p.ingest("a".into(), points(&data[..500], 0)).await.unwrap();
        let snap = p.snapshot("a".into()).await.unwrap().expect("known series");
        assert_eq!(snap.detector.config().window, 20);
        // A series' own configuration runs on the pipeline's SIMD path (`pipeline.simd`) ...
        assert_eq!(snap.detector.config().path, NearestPath::Forced(driftwatch_icid::SimdLevel::Portable));
        assert!(!snap.detector.warming_up(), "20 windows of 20 points");
        assert!(p.remove("a".into()).await.unwrap());
        assert!(p.snapshot("a".into()).await.unwrap().is_none());
        let mut snap = snap;
        snap.detector.set_path(NearestPath::Auto);
        p.restore("a".into(), snap).await.unwrap();
        // ... and so does a restored checkpoint, whatever path it was saved with.
        let restored = p.snapshot("a".into()).await.unwrap().expect("restored");
        assert_eq!(restored.detector.config().path, NearestPath::Forced(driftwatch_icid::SimdLevel::Portable));
        let r = p.ingest("a".into(), points(&data[500..600], 500_000)).await.unwrap();
        assert_eq!(r.accepted, 100);
        assert_eq!(r.blocks.len(), 5, "the restored detector continues, no re-warm");
        // A point of the wrong dimension is counted, not fed.
        let r = p.ingest("a".into(), vec![Point { ts_ms: 10_000_000, values: vec![1.0, 2.0] }]).await.unwrap();
        assert_eq!(r.dimension_mismatch, 1);
        p.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_detector_started_after_history_continues_its_numbering_and_time_order() {
        let p = Pipeline::start(config(1)).unwrap();
        let data = shift();
        // A reset after 1,200 points stored up to ts 1,199,000: the new detector starts there.
        p.configure("a".into(), None, 1, Start { index: 1200, after_ts: Some(1_199_000) }).await.unwrap();
        let r = p.ingest("a".into(), points(&data[..10], 1_190_000)).await.unwrap();
        assert_eq!((r.accepted, r.duplicate, r.late), (0, 1, 9), "older points stay late after a reset");
        let (mut all, mut fed) = (Vec::new(), 0);
        for chunk in points(&data, 1_200_000).chunks(100) {
            let r = p.ingest("a".into(), chunk.to_vec()).await.unwrap();
            assert_eq!(r.first_index, 1200 + fed);
            fed += r.accepted;
            all.extend(r.blocks.iter().map(|b| b.first_index));
            for e in &r.events {
                if let Event::Opened { start, detected_at, .. } = e {
                    assert!(*start >= 1200 + 1000 && detected_at >= start, "{e:?}");
                }
            }
        }
        // Blocks tile the new detector's points from its first (warm-up blocks included), in the
        // series' numbering.
        assert_eq!(all.first(), Some(&1200), "blocks start at the new detector's first point");
        assert!(all.windows(2).all(|w| w[1] == w[0] + 50), "blocks of 50 without holes: {all:?}");
        assert_eq!(p.shutdown()["a"].points(), 3200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_a_one_batch_queue_concurrent_senders_lose_nothing() {
        let mut cfg = config(1);
        cfg.queue = 1;
        let p = std::sync::Arc::new(Pipeline::start(cfg).unwrap());
        let data = shift();
        // Many concurrent senders into one shard with a queue of one batch.
        let mut tasks = Vec::new();
        for s in 0..8 {
            let (p, data) = (p.clone(), data.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                for chunk in points(&data, 0).chunks(250) {
                    n += p.ingest(format!("s{s}"), chunk.to_vec()).await.unwrap().accepted;
                }
                n
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 2000);
        }
        assert!(p.queue_depths().iter().all(|&d| d == 0));
        let p = std::sync::Arc::try_unwrap(p).unwrap();
        assert_eq!(p.shutdown().len(), 8);
    }
}
