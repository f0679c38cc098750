//! The Postgres dialect: SQL text (json recordsets, advisory locks, NOTIFY) and connecting +
//! migrating under a session advisory lock so several replicas can start at once.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::dialect::{Db, SqlSet};
use super::migrate::{MigrationConn, postgres_runner};

/// Objects/events columns are selected with `::text` so rows decode the same as SQLite's TEXT.
pub(crate) static SQL: SqlSet = SqlSet {
    engine: "postgres",
    // READ COMMITTED: a writer waiting on the counter row re-reads it after the holder commits
    // (REPEATABLE READ would fail with a serialization error instead).
    begin_write: "BEGIN ISOLATION LEVEL READ COMMITTED",
    begin_read: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    // ORDER BY in the subquery keeps it from being flattened, so locks are taken in id order.
    lock_keys: Some(
        "SELECT count(pg_advisory_xact_lock(id)) FROM \
           (SELECT value::bigint AS id FROM jsonb_array_elements_text($1::jsonb) ORDER BY 1) ids",
    ),
    read_current: "SELECT o.resource, o.namespace, o.name, o.uid, o.rv, o.create_rv, o.object::text \
         FROM jsonb_to_recordset($1::jsonb) AS k(resource text, namespace text, name text) \
         JOIN objects o ON o.resource = k.resource AND o.namespace = k.namespace AND o.name = k.name",
    // One statement, so the counter lock (taken first in it, released at COMMIT) covers a single
    // round trip plus the commit.
    apply_batch: &[
        "WITH c AS (UPDATE rv_counter SET rv = rv + $2 RETURNING rv), \
         r AS (SELECT (SELECT rv FROM c) - $2 + x.ord AS new_rv, x.* FROM json_to_recordset($1::json) AS \
               x(ord bigint, resource text, namespace text, name text, uid text, type text, object json, \
                 prev_rv bigint, prev_object json, create_rv bigint, actor text, audit_id text)), \
         e AS (INSERT INTO events (rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, actor, audit_id) \
               SELECT new_rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, actor, audit_id FROM r), \
         u AS (INSERT INTO objects (resource, namespace, name, uid, rv, create_rv, object) \
               SELECT resource, namespace, name, uid, new_rv, coalesce(create_rv, new_rv), object FROM r \
               WHERE type <> 'DELETED' \
               ON CONFLICT (resource, namespace, name) DO UPDATE SET uid = excluded.uid, rv = excluded.rv, \
                 create_rv = excluded.create_rv, object = excluded.object), \
         d AS (DELETE FROM objects o USING r WHERE r.type = 'DELETED' AND o.resource = r.resource \
               AND o.namespace = r.namespace AND o.name = r.name) \
         SELECT rv FROM c",
    ],
    get: "SELECT rv, object::text FROM objects WHERE resource = $1 AND namespace = $2 AND name = $3",
    heads: "SELECT c.rv, m.compacted_rv FROM rv_counter c, storage_meta m",
    list_at: "SELECT namespace, name, rv, object::text FROM ( \
           SELECT namespace, name, rv, object FROM objects \
            WHERE resource = $1 AND ($2::text IS NULL OR namespace = $2::text) \
              AND (namespace, name) > ($3::text, $4::text) AND rv <= $5 \
           UNION ALL \
           SELECT e.namespace, e.name, e.prev_rv, e.prev_object FROM events e \
             JOIN (SELECT min(rv) AS rv FROM events \
                    WHERE resource = $1 AND ($2::text IS NULL OR namespace = $2::text) \
                      AND (namespace, name) > ($3::text, $4::text) AND rv > $5 \
                    GROUP BY namespace, name) f ON e.rv = f.rv \
            WHERE e.prev_object IS NOT NULL) s \
         ORDER BY namespace, name LIMIT $6",
    count_at: "SELECT count(*) FROM ( \
           SELECT namespace, name FROM objects \
            WHERE resource = $1 AND ($2::text IS NULL OR namespace = $2::text) \
              AND (namespace, name) > ($3::text, $4::text) AND rv <= $5 \
           UNION ALL \
           SELECT e.namespace, e.name FROM events e \
             JOIN (SELECT min(rv) AS rv FROM events \
                    WHERE resource = $1 AND ($2::text IS NULL OR namespace = $2::text) \
                      AND (namespace, name) > ($3::text, $4::text) AND rv > $5 \
                    GROUP BY namespace, name) f ON e.rv = f.rv \
            WHERE e.prev_object IS NOT NULL) s",
    notify: Some("SELECT pg_notify('wardle', $1)"),
    ping: "SELECT rv FROM rv_counter",
    events_after: "SELECT rv, resource, namespace, name, type, object::text, prev_rv, prev_object::text \
         FROM events WHERE rv > $1 ORDER BY rv LIMIT $2",
    all_objects: "SELECT resource, namespace, name, rv, object::text FROM objects \
         WHERE (resource, namespace, name) > ($1::text, $2::text, $3::text) \
         ORDER BY resource, namespace, name LIMIT $4",
    // LISTEN wardle wakes other replicas; the watch cache's fallback timer covers lost NOTIFYs.
    commit_poll_ms: 0,
    // One statement: the rows leave `events` and enter `history` atomically.
    compact_range: &[
        "WITH moved AS (DELETE FROM events WHERE rv > $1 AND rv <= $2 \
           RETURNING rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, committed_at, actor, audit_id) \
         INSERT INTO history (rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, committed_at, actor, audit_id) \
         SELECT rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, committed_at, actor, audit_id FROM moved \
         ON CONFLICT (rv) DO NOTHING",
    ],
    prune_history: "DELETE FROM history WHERE committed_at < now() - $1::bigint * interval '1 second'",
};

/// Session advisory lock (two-int4 key space, so it cannot collide with the per-key bigint locks)
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
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
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
    let report = result?;
    for m in report.applied_migrations() {
        tracing::info!(
            version = m.version(),
            name = m.name(),
            "applied postgres migration"
        );
    }
    Ok(Db::Postgres(pool))
}
