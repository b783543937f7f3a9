//! What the consumer thread, its rebalance callbacks and the partition tasks share: the
//! service, the producer, and the partitions assigned here with their queues.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;

use crate::service::{Heartbeat, Service};

/// A message as it left the broker (owned, so it can cross to the partition task).
#[derive(Debug)]
pub(super) struct Record {
    pub(super) offset: i64,
    /// The message's timestamp (epoch ms), when it has one.
    pub(super) timestamp_ms: Option<i64>,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
    pub(super) headers: Vec<(String, Vec<u8>)>,
}

pub(super) type Tp = (String, i32);

/// What the consumer thread keeps per assigned partition.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) tx: mpsc::Sender<Record>,
    /// Records that did not fit the queue; the partition is paused while any wait.
    pub(super) pending: VecDeque<Record>,
    /// Set on revoke: stop retrying storage, persist nothing more.
    pub(super) abandon: Arc<AtomicBool>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

/// State shared by the consumer thread, its callbacks and the partition tasks.
pub(super) struct Shared {
    pub(super) service: Service,
    pub(super) heartbeat: Heartbeat,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) producer: FutureProducer,
    pub(super) parts: Mutex<HashMap<Tp, Part>>,
    /// Durable next offsets not yet committed to the broker.
    pub(super) to_commit: Mutex<HashMap<Tp, i64>>,
    pub(super) paused: Mutex<HashSet<Tp>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}
