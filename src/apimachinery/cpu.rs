//! CPU-bound request work (decoding large bodies, applying patches) run so that it cannot starve
//! the async runtime: the worker thread hands its other tasks to the rest of the pool while the
//! work runs (`tokio::task::block_in_place`). The work itself is bounded elsewhere (body size,
//! patch bounds); this keeps even a bounded but slow request from stalling `/readyz` and others.

/// Bodies at least this large are decoded off the async workers; smaller ones cost less than
/// the hand-off.
pub const LARGE_BODY: usize = 64 * 1024;

/// Runs `work` on the current thread after telling a multi-threaded tokio runtime that this
/// worker blocks; elsewhere (no runtime, a current-thread runtime in tests) it just runs it.
pub fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_a_runtime() {
        assert_eq!(cpu_bound(|| 2 + 2), 4);
    }

    #[tokio::test]
    async fn runs_on_a_current_thread_runtime() {
        assert_eq!(cpu_bound(|| 3), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn other_tasks_run_while_work_blocks() {
        // With one worker, a task spawned before the blocking work still completes during it.
        let (tx, rx) = std::sync::mpsc::channel();
        tokio::spawn(async move { tx.send(()).expect("send") });
        cpu_bound(|| rx.recv_timeout(std::time::Duration::from_secs(10)))
            .expect("the spawned task ran while this worker blocked");
    }
}
