//! Compaction of the event log, as the Go apiserver does it with etcd: every interval, compact
//! to the resourceVersion seen at the previous run, so at least one interval of history stays.
//! The horizon is announced first (readers check it in the same snapshot as the events they
//! read), then old events are moved to `history` in small ranges, each its own short transaction:
//! watches never read `history`, so the watch window (and its 410s) is unchanged, while the
//! reporting view `change_history` keeps every change until `--history-retention` prunes it.

use super::dialect::Param;
use super::sql;
use super::types::StorageResult;
use super::{Storage, unavailable};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Raise the announced horizon; never lowers it (two replicas may compact at once).
const ANNOUNCE: &str = "UPDATE storage_meta SET compacted_rv = $1 WHERE compacted_rv < $1";
/// Rows per delete statement, so no transaction holds locks for long.
const RANGE: i64 = 1000;

/// What compaction has done in this process (for /metrics).
#[derive(Debug, Default)]
pub struct CompactionStats {
    pub runs: AtomicU64,
    pub errors: AtomicU64,
    /// History rows pruned by --history-retention.
    pub history_pruned: AtomicU64,
}

impl Storage {
    /// Compact the event log up to `target` (events with rv <= target may disappear).
    /// Returns the horizon now in force.
    pub async fn compact(&self, target: i64) -> StorageResult<i64> {
        let (head, before) = self.heads().await?;
        let target = target.min(head);
        if target <= before {
            return Ok(before);
        }
        let db = &self.inner.db;
        db.execute(ANNOUNCE, &[Param::Int(target)])
            .await
            .map_err(unavailable)?;
        let mut lo = before;
        while lo < target {
            let hi = (lo + RANGE).min(target);
            // Moving a range is one transaction, so a row is always in exactly one of `events`
            // and `history` (change_history reads both in one statement).
            let mut tx = db
                .begin_write(self.inner.sql.begin_write)
                .await
                .map_err(unavailable)?;
            for stmt in sql::COMPACT_RANGE {
                tx.fetch(stmt, &[Param::Int(lo), Param::Int(hi)])
                    .await
                    .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)?;
            lo = hi;
        }
        tracing::debug!(from = before, to = target, "compacted the event log");
        Ok(target)
    }

    /// Deletes change history committed longer than `retention` ago; returns the rows deleted.
    pub async fn prune_history(&self, retention: Duration) -> StorageResult<u64> {
        let secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let mut tx = self
            .inner
            .db
            .begin_write(self.inner.sql.begin_write)
            .await
            .map_err(unavailable)?;
        let deleted = tx
            .execute_count(self.inner.sql.prune_history, &[Param::Int(secs)])
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted)
    }
}

/// Run compaction every `interval` until the process ends; errors are retried next time.
/// After each compaction, history older than `history_retention` is pruned (zero: kept forever).
pub fn spawn(
    storage: Storage,
    interval: Duration,
    history_retention: Duration,
    stats: std::sync::Arc<CompactionStats>,
) {
    tokio::spawn(async move {
        let mut previous: Option<i64> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(target) = previous {
                stats.runs.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = storage.compact(target).await {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "compaction failed; retrying next interval");
                    continue;
                }
                if !history_retention.is_zero() {
                    match storage.prune_history(history_retention).await {
                        Ok(n) => {
                            stats.history_pruned.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "pruning history failed; retrying next interval");
                        }
                    }
                }
            }
            match storage.current_rv().await {
                Ok(rv) => previous = Some(rv),
                Err(e) => tracing::warn!(error = %e, "compaction could not read the head"),
            }
        }
    });
}
