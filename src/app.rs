//! `AppState`: what every request shares — the registry, the filters' state (authn, authz,
//! audit, limits), health and the `/metrics` scrape. Its own module so the HTTP handlers, the
//! router and the watch session all depend on it instead of on each other.

use crate::audit::Auditor;
use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::http::health::Health;
use crate::http::limits::Limits;
use crate::registry::Store;
use crate::storage::compaction::CompactionStats;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared state of the HTTP server.
pub struct AppState {
    /// Every verb of every resource (writes to storage, reads and watches from the cache).
    pub store: Store,
    pub compaction: Arc<CompactionStats>,
    pub health: Health,
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<Authorizer>,
    /// The audit policy and backends; None when auditing is off.
    pub auditor: Option<Arc<Auditor>>,
    /// host:port clients should use (discovery's serverAddressByClientCIDRs).
    pub external_address: String,
    pub shutting_down: AtomicBool,
    /// In-flight limits and the request deadline.
    pub limits: Limits,
}

impl AppState {
    /// Marks the server as shutting down (/readyz fails) and ends every watch stream, so the
    /// graceful drain is not held open by them.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.store.cache.shutdown();
    }

    /// The `/metrics` page (OpenMetrics text, `metrics::CONTENT_TYPE`). The committed counter and horizon come from the
    /// database; if it is down, the page reports what the cache knows and /readyz tells the
    /// story.
    pub async fn metrics(&self) -> String {
        let storage = &self.store.storage;
        let cache = &self.store.cache;
        let writer = storage.stats();
        let c = &self.compaction;
        let (head, compacted) = storage.heads().await.unwrap_or((cache.head(), 0));
        let gauges = crate::metrics::Gauges {
            head_rv: head.max(0) as u64,
            compacted_rv: compacted.max(0) as u64,
            cache_head_rv: cache.head().max(0) as u64,
            cache_oldest_rv: cache.oldest_rv().max(0) as u64,
            batches: writer.batches,
            writes: writer.writes,
            max_batch: writer.max_batch as u64,
            compaction_runs: c.runs.load(Ordering::Relaxed),
            compaction_errors: c.errors.load(Ordering::Relaxed),
            objects: storage.object_counts().await.unwrap_or_default(),
            writer_queue_depth: storage.queue_depth(),
            history_pruned: c.history_pruned.load(Ordering::Relaxed),
            log_reads: storage.log_reads(),
        };
        crate::metrics::render(&gauges)
    }
}
