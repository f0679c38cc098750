//! The SQLite dialect: SQL text (TEXT JSON via json_each/json_extract) and connecting: WAL,
//! synchronous=NORMAL, busy_timeout, one writer connection plus a read pool (one connection kept
//! forever for `sqlite::memory:`, whose database lives and dies with its connection).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::dialect::{BatchPath, Db, Engine, SqlSet, Wakeup};
use super::migrate::{MigrationConn, migration_error, sqlite_runner};

/// One field of a batch row (`value` of json_each).
macro_rules! field {
    ($name:literal) => {
        concat!("json_extract(value, '$.", $name, "')")
    };
}

/// The key fields of a batch row, comma-separated.
macro_rules! key_fields {
    () => {
        concat!(
            field!("resource"),
            ", ",
            field!("namespace"),
            ", ",
            field!("name")
        )
    };
}

pub(crate) static SQL: SqlSet = SqlSet {
    engine: Engine::Sqlite,
    // IMMEDIATE takes the write lock before the snapshot: no SQLITE_BUSY_SNAPSHOT, and a second
    // process waits on busy_timeout instead of failing.
    begin_write: "BEGIN IMMEDIATE",
    begin_read: "BEGIN",
    batch: BatchPath::Statements {
        read_current: concat!(
            "SELECT o.resource, o.namespace, o.name, o.uid, o.rv, o.create_rv, o.object FROM json_each($1) ",
            "JOIN objects o ON o.resource = ",
            field!("resource"),
            " AND o.namespace = ",
            field!("namespace"),
            " AND o.name = ",
            field!("name")
        ),
        // Later statements read the batch's top RV back from the counter row they just updated.
        apply: &[
            "UPDATE rv_counter SET rv = rv + $2 RETURNING rv",
            concat!(
                "INSERT INTO events (rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, actor, audit_id) ",
                "SELECT (SELECT rv FROM rv_counter) - $2 + ",
                field!("ord"),
                ", ",
                key_fields!(),
                ", ",
                field!("uid"),
                ", ",
                field!("type"),
                ", ",
                field!("object"),
                ", ",
                field!("prev_rv"),
                ", ",
                field!("prev_object"),
                ", ",
                field!("actor"),
                ", ",
                field!("audit_id"),
                " FROM json_each($1) ORDER BY ",
                field!("ord")
            ),
            concat!(
                "INSERT INTO objects (resource, namespace, name, uid, rv, create_rv, object) ",
                "SELECT ",
                key_fields!(),
                ", ",
                field!("uid"),
                ", (SELECT rv FROM rv_counter) - $2 + ",
                field!("ord"),
                ", coalesce(",
                field!("create_rv"),
                ", (SELECT rv FROM rv_counter) - $2 + ",
                field!("ord"),
                "), ",
                field!("object"),
                " FROM json_each($1) WHERE ",
                field!("type"),
                " <> 'DELETED' ",
                "ON CONFLICT (resource, namespace, name) DO UPDATE SET uid = excluded.uid, rv = excluded.rv, ",
                "create_rv = excluded.create_rv, object = excluded.object"
            ),
            concat!(
                "DELETE FROM objects WHERE (resource, namespace, name) IN (SELECT ",
                key_fields!(),
                " FROM json_each($1) WHERE ",
                field!("type"),
                " = 'DELETED')"
            ),
        ],
    },
    // SQLite has no NOTIFY: another process's commits are seen by reading the log, a cheap
    // read of a local file.
    wakeup: Wakeup::Poll(Duration::from_millis(100)),
    prune_history: "DELETE FROM history \
         WHERE committed_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || $1 || ' seconds')",
};

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Opens the pools and migrates on the writer connection.
pub(crate) async fn connect(url: &str) -> anyhow::Result<Db> {
    // Several processes opening a new file at once race on switching it to WAL and on the
    // migrations; SQLite answers some of those with SQLITE_BUSY at once, ignoring busy_timeout,
    // and a migration another opener applied after refinery read the history fails on its DDL
    // ("already exists", "duplicate column name", …) or its history row. Opening is idempotent
    // (each migration commits with its history row), so the whole open is retried while the
    // error is BUSY or another opener has recorded a migration meanwhile; any other error fails.
    let mut attempt = 1;
    loop {
        let applied = applied_migrations(url).await;
        match open_once(url).await {
            Ok(db) => return Ok(db),
            Err(e)
                if attempt < OPEN_ATTEMPTS
                    && (is_busy(&e) || applied_migrations(url).await > applied) =>
            {
                tracing::debug!(error = %e, attempt, "sqlite open raced another opener, retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How often opening retries (about 10 s in all).
const OPEN_ATTEMPTS: usize = 30;

fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let msg = c.to_string();
        msg.contains("database is locked")
            || msg.contains("(code: 5)")
            || msg.contains("(code: 517)")
    })
}

/// How many migrations the file's history records (0 when it cannot be read yet).
async fn applied_migrations(url: &str) -> i64 {
    use sqlx::Connection;
    if is_memory(url) {
        return 0;
    }
    let Ok(options) = SqliteConnectOptions::from_str(url) else {
        return 0;
    };
    let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true)).await
    else {
        return 0;
    };
    let count = sqlx::query_scalar("SELECT count(*) FROM refinery_schema_history")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(0);
    let _ = conn.close().await;
    count
}

/// Keeps the writer connection only if no transaction is left open on it. After a failed COMMIT
/// (e.g. SQLITE_FULL) SQLite may already have rolled back, so sqlx's queued ROLLBACK fails and
/// its transaction depth stays at 1: every later `BEGIN IMMEDIATE` would be refused ("begin_with
/// at non-zero transaction depth"). Closing such a connection lets the pool open a fresh one.
async fn release_writer(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // The round trip runs after the ROLLBACK that dropping the transaction queued.
    conn.ping().await?;
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!(
            "closing the sqlite writer connection: a failed transaction left it unusable"
        );
    }
    Ok(clean)
}

async fn open_once(url: &str) -> anyhow::Result<Db> {
    let base = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(30));
    let (writer, reader) = if is_memory(url) {
        // Only one connection ever sees this database, so it must never be closed or recycled.
        // No ping before each use (sqlx's default): an in-process connection cannot be lost.
        // sqlx still pings each one when it comes back (and `release_writer` checks the writer's).
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base)
            .await?;
        (pool.clone(), pool)
    } else {
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .after_release(|conn, _| Box::pin(release_writer(conn)))
            .connect_with(
                base.clone()
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await?;
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .connect_lazy_with(base);
        (writer, reader)
    };
    {
        let mut conn = writer.acquire().await?;
        let report = sqlite_runner()
            .run_async(&mut MigrationConn(&mut *conn))
            .await
            .map_err(migration_error)?;
        for m in report.applied_migrations() {
            tracing::info!(
                version = m.version(),
                name = m.name(),
                "applied sqlite migration"
            );
        }
    }
    Ok(Db::Sqlite { writer, reader })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_memory("sqlite::memory:"));
        assert!(is_memory("sqlite://x?mode=memory"));
        assert!(!is_memory("sqlite:///tmp/wardle.db?mode=rwc"));
    }
}
