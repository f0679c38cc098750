//! The Postgres dialect: SQL text (json recordsets, advisory locks, NOTIFY) and connecting +
//! migrating under a session advisory lock so several replicas can start at once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{Notify, watch};

use super::dialect::{ACQUIRE_TIMEOUT, BatchPath, Db, Engine, SqlSet, Wakeup};
use super::health::DbHealth;
use super::migrate::{MigrationConn, migration_error, postgres_runner};

/// The NOTIFY channel `wardle_apply_batch` (migration V5) sends to at each commit.
const CHANNEL: &str = "wardle";
/// Pause before re-LISTENing after a failure, doubling up to `MAX_BACKOFF`.
const BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) static SQL: SqlSet = SqlSet {
    engine: Engine::Postgres,
    // READ COMMITTED: a writer waiting on the counter row re-reads it after the holder commits
    // (REPEATABLE READ would fail with a serialization error instead).
    begin_write: "BEGIN ISOLATION LEVEL READ COMMITTED",
    begin_read: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    // The whole batch in one round trip (migrations V5-V8): eleven arrays, one element per
    // write, and the NOTIFY tag (writer::call_batch binds them).
    batch: BatchPath::Function(
        "SELECT CAST(wardle_apply_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) AS text)",
    ),
    // LISTEN wardle wakes other replicas; the watch cache's fallback timer covers lost NOTIFYs.
    wakeup: Wakeup::Notify,
    prune_history: "DELETE FROM history WHERE committed_at < now() - $1::bigint * interval '1 second'",
};

/// Session advisory lock (two-int4 key space, apart from the bigint keys V5 locked per write)
/// held while migrating: refinery does no locking and concurrent migrators would collide.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(2002874988, 1)";
const MIGRATION_UNLOCK: &str = "SELECT pg_advisory_unlock(2002874988, 1)";

/// Connects, migrates (under the advisory lock) and returns the pool.
pub(crate) async fn connect(url: &str) -> anyhow::Result<Db> {
    let options = PgConnectOptions::from_str(url)?
        .application_name("wardle")
        // A stuck lock holder must not block every writer forever, and a client that vanished
        // mid-transaction must release the counter row.
        .options([
            ("lock_timeout", "30s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]);
    // The first request of an outage waits this long before the storage health gate opens and
    // later requests fail at once (storage::health); 5 s still covers a busy pool.
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    // The writer's own connection. Its batches run in autocommit, so pin the isolation level
    // the batch function relies on (whatever the server's default).
    let writer = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options.options([("default_transaction_isolation", "read committed")]));
    let mut conn = pool.acquire().await?;
    sqlx::query(MIGRATION_LOCK).execute(&mut *conn).await?;
    let result = postgres_runner()
        .run_async(&mut MigrationConn(&mut *conn))
        .await;
    let unlocked = sqlx::query(MIGRATION_UNLOCK).execute(&mut *conn).await;
    if unlocked.is_err() {
        // The session lock dies with the connection; make sure it is not returned to the pool.
        conn.detach();
    }
    let report = result.map_err(migration_error)?;
    for m in report.applied_migrations() {
        tracing::info!(
            version = m.version(),
            name = m.name(),
            "applied postgres migration"
        );
    }
    Ok(Db::Postgres { pool, writer })
}

/// LISTEN on a dedicated connection (run as its own task; `Wakeup::Notify`): another process's
/// NOTIFY wakes `wake`; those whose payload starts with `own` (this process's tag) are ignored.
/// NOTIFY only shortens the wait; every sign that notifications may have been missed
/// (reconnect, `None`, any error) wakes the tailer to read the log, and the tailer's timer
/// covers the rest. A lost LISTEN connection is counted in `health` (others may be lost too).
pub(crate) async fn listen(
    pool: PgPool,
    own: String,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    health: Arc<DbHealth>,
) {
    let mut backoff = BACKOFF;
    loop {
        if *stop.borrow() || pool.is_closed() {
            return;
        }
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            changed = stop.changed() => { if changed.is_err() || *stop.borrow() { return } else { continue } }
            l = connected => match l {
                Ok(l) => l,
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for commits; relying on the fallback poll");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        tracing::debug!("listening for commits");
        backoff = BACKOFF;
        // LISTEN first, then catch up: anything committed before LISTEN is read by this wake.
        wake.notify_one();
        loop {
            // `try_recv` is only ever cancelled here when stopping: a cancelled reconnect would
            // hide the loss signal.
            let received = tokio::select! {
                changed = stop.changed() => { if changed.is_err() || *stop.borrow() { return } else { continue } }
                r = listener.try_recv() => r,
            };
            match received {
                // This process's own commits reach its watch cache from the writer.
                Ok(Some(n)) if n.payload().starts_with(&own) => {}
                Ok(Some(_)) => wake.notify_one(),
                Ok(None) => {
                    // Reconnected (LISTEN re-issued) before returning: catch up now.
                    tracing::warn!("LISTEN connection was lost and re-established; resyncing");
                    crate::metrics::listen_reconnect();
                    health.connection_lost();
                    wake.notify_one();
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    // The listener may reconnect silently on the next call; start over with a
                    // fresh one so that LISTEN happens before the catch-up read.
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting and resyncing");
                    crate::metrics::listen_reconnect();
                    health.connection_lost();
                    wake.notify_one();
                    break;
                }
            }
        }
        drop(listener);
        tokio::time::sleep(backoff).await;
    }
}
