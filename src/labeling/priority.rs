//! Background LEIAD work at a lower CPU priority: a thread of its own at nice +10 for work that
//! holds no session lock (pool preparation, end-model fits, live scoring), so ingest keeps the
//! cores when both want them. The crate's one `unsafe` (`setpriority`) is here.

use super::LabelingError;

/// Background LEIAD work that holds no session lock (pool preparation, end-model fits, live
/// scoring) on a thread of its own at a lower CPU priority (nice +10), so ingest keeps the cores when both
/// want them. (Work under the session lock stays at normal priority: an analyst's request
/// waiting for that lock must not wait behind a deprioritised thread.)
/// Measured with `bench soak` (2 cores, 200,000 points/s, a project over 4 series of 200,000
/// points and a refit every 10 s): at normal priority ingest fell to 45,000 points/s with p99
/// 3.6 s while refits ran. Analysts' requests (suggestions, labels) stay at normal priority.
pub(super) async fn background<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, LabelingError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("labeling-bg".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| LabelingError::Engine(format!("starting a background thread: {e}")))?;
    rx.await.map_err(|_| LabelingError::Engine("a background labeling job panicked".into()))
}

/// Lowers the calling thread's CPU priority (Linux keeps a nice value per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; gettid has no preconditions.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}
