//! Whether the database is reachable and whether writes can commit, so that an outage answers
//! every request at once with 503 instead of each waiting out the pool's acquire timeout, and
//! `/readyz` fails while committed writes are impossible (e.g. a full disk).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dialect::{Db, SqlSet};
use super::sql;
use super::types::{StorageError, StorageResult};

/// How often a down database is probed until it answers again.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// A write that commits without changing anything visible, yet must append to the database's
/// log: SQLite skips writing a page whose row an UPDATE leaves byte-identical, so the probe
/// changes the row and changes it back within its transaction.
const WRITE_PROBE: [&str; 2] = [
    "UPDATE storage_meta SET schema_version = schema_version + 1",
    "UPDATE storage_meta SET schema_version = schema_version - 1",
];

/// Shared by the Storage handle and its writer task.
#[derive(Debug, Default)]
pub(crate) struct DbHealth {
    /// Set when an operation failed because the database could not be reached; cleared by the
    /// background probe once a ping succeeds.
    down: AtomicBool,
    /// Why the database is down (the error that said so).
    down_reason: Mutex<String>,
    /// Set when a write transaction failed for a reason other than its data (disk full, I/O);
    /// cleared by the next committed write or write probe.
    write_failure: Mutex<Option<String>>,
    /// How many times a connection was seen lost (an unreachable database, the LISTEN
    /// connection dropped): a connection kept from before may be dead too (see
    /// `dialect::BatchConn`).
    losses: Arc<AtomicU64>,
}

/// Errors meaning "the database cannot be reached", as opposed to a failed statement: I/O, TLS,
/// pool timeouts, a crashed SQLite worker; from Postgres, connection exceptions (SQLSTATE class
/// 08), refused logins (class 28, 3D000 no such database, 55000 connections not allowed) and
/// shutdown / not-yet-accepting states (57P01..57P03). wardle's own statements raise none of
/// these.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| {
                let code = pg.code();
                code.starts_with("08")
                    || code.starts_with("28")
                    || matches!(code, "3D000" | "55000" | "57P01" | "57P02" | "57P03")
            }),
        _ => false,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain flags and strings: a panic elsewhere while holding the lock leaves them usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DbHealth {
    /// Fails fast with `Unavailable` while the database is known to be down.
    pub fn gate(&self) -> StorageResult<()> {
        if self.down.load(Ordering::Acquire) {
            return Err(StorageError::Unavailable(format!(
                "the database is unreachable: {}",
                lock(&self.down_reason)
            )));
        }
        Ok(())
    }

    /// Notes a failed operation: an unreachable database turns the gate on and starts probing it
    /// (once) until it answers; any other error changes nothing.
    pub fn observe(self: &Arc<Self>, db: &Db, e: &sqlx::Error) {
        if !unreachable(e) {
            return;
        }
        self.connection_lost();
        *lock(&self.down_reason) = e.to_string();
        if self.down.swap(true, Ordering::AcqRel) {
            return; // a probe is already running
        }
        tracing::warn!(error = %e, "database unreachable; failing requests fast until it answers");
        let (health, db) = (self.clone(), db.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if !health.down.load(Ordering::Acquire) || db.fetch(sql::PING, &[]).await.is_ok() {
                    health.reachable();
                    tracing::info!("database reachable again");
                    return;
                }
            }
        });
    }

    /// Counts a connection seen lost (see `losses`).
    pub fn connection_lost(&self) {
        self.losses.fetch_add(1, Ordering::AcqRel);
    }

    /// The count of connections seen lost, shared (for `dialect::BatchConn`).
    pub fn losses(&self) -> Arc<AtomicU64> {
        self.losses.clone()
    }

    /// The database answered: stop failing fast.
    pub fn reachable(&self) {
        self.down.store(false, Ordering::Release);
    }

    /// Records how the last write transaction ended (`None` = committed).
    pub fn write_outcome(&self, failure: Option<String>) {
        *lock(&self.write_failure) = failure;
    }

    /// Readiness: the database answers, and writes commit. After a failed write transaction
    /// this commits a probe write (so readiness returns once e.g. disk space does, without
    /// waiting for a client's write).
    pub async fn ready(&self, db: &Db, sql: &'static SqlSet) -> StorageResult<()> {
        self.gate()?;
        db.fetch(sql::PING, &[])
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        if lock(&self.write_failure).is_none() {
            return Ok(());
        }
        let probe = async {
            let mut tx = db.begin_write(sql.begin_write).await?;
            for stmt in WRITE_PROBE {
                tx.execute_count(stmt, &[]).await?;
            }
            tx.commit().await
        };
        match probe.await {
            Ok(()) => {
                self.write_outcome(None);
                Ok(())
            }
            Err(e) => {
                let msg = format!("writes cannot commit: {e}");
                self.write_outcome(Some(msg.clone()));
                Err(StorageError::Unavailable(msg))
            }
        }
    }
}
