//! Per-series order of the write path: a striped async lock held from the detector to the
//! commit, and the sets of *stale* series (their detector has seen points storage has not) and
//! *dirty* ones (points taken since their last checkpoint).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Keeps the write path of each series in order and its detector consistent with storage.
///
/// * A series' batches are fed and stored one at a time (a striped async lock held from the
///   detector to the commit), so stored point blocks are contiguous and a checkpoint taken
///   under the lock reflects exactly the stored points.
/// * A series whose results could not be stored is *stale*: its detector has seen points that
///   storage has not. Before its next batch the detector is rebuilt from storage
///   (`Service::recover_detector`), so the client's retry of those points is accepted again
///   instead of being counted as duplicates, and no result is lost.
/// * Series that took points since their last checkpoint are *dirty*; the checkpointer
///   (`run_checkpoints`) stores them every `pipeline.checkpoint_interval_ms`.
#[derive(Debug, Clone)]
pub struct SeriesGuards {
    stripes: Arc<[tokio::sync::Mutex<()>]>,
    stale: Arc<Mutex<HashSet<String>>>,
    dirty: Arc<Mutex<HashSet<String>>>,
}

impl Default for SeriesGuards {
    fn default() -> Self {
        // 1,024 stripes: two series share a lock with probability 1/1024, and then only wait
        // for each other's commit.
        Self {
            stripes: (0..1024).map(|_| tokio::sync::Mutex::new(())).collect(),
            stale: Arc::default(),
            dirty: Arc::default(),
        }
    }
}

fn set(m: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    m.lock().expect("not poisoned")
}

impl SeriesGuards {
    /// The write lock of a series.
    pub async fn lock(&self, series: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(series);
        self.stripes[(h % self.stripes.len() as u64) as usize].lock().await
    }

    pub(super) fn mark_stale(&self, series: &str) {
        set(&self.stale).insert(series.to_owned());
    }

    pub(super) fn is_stale(&self, series: &str) -> bool {
        set(&self.stale).contains(series)
    }

    pub(super) fn clear_stale(&self, series: &str) {
        set(&self.stale).remove(series);
    }

    pub(super) fn mark_dirty(&self, series: &str) {
        set(&self.dirty).insert(series.to_owned());
    }

    /// Forgets a deleted series.
    pub(super) fn forget(&self, series: &str) {
        set(&self.stale).remove(series);
        set(&self.dirty).remove(series);
    }

    pub(super) fn take_dirty(&self) -> Vec<String> {
        set(&self.dirty).drain().collect()
    }
}
