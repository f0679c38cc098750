//! The statements both engines run as written (standard SQL; JSON columns are read with
//! `CAST(… AS TEXT)`, a no-op on SQLite's TEXT and the stored text of Postgres' `json`). What
//! differs per engine is in `dialect::SqlSet` (filled by `postgres` and `sqlite`). Parameters are
//! bound with their types (sqlx sends them), so no statement needs a Postgres `::type` cast.

/// The key filter of `LIST_AT` and `COUNT_AT`.
macro_rules! key_filter {
    () => {
        "resource = $1 AND ($2 IS NULL OR namespace = $2) AND (namespace, name) > ($3, $4)"
    };
}

/// The state at RV `$5`: unchanged rows, plus each key's first event after `$5` carrying the state
/// before it (absent if that event was its creation).
macro_rules! state_at {
    ($cols:literal, $ecols:literal) => {
        concat!(
            "SELECT ",
            $cols,
            " FROM objects WHERE ",
            key_filter!(),
            " AND rv <= $5 ",
            "UNION ALL SELECT ",
            $ecols,
            " FROM events e JOIN (SELECT min(rv) AS rv FROM events WHERE ",
            key_filter!(),
            " AND rv > $5 GROUP BY namespace, name) f ON e.rv = f.rv ",
            "WHERE e.prev_object IS NOT NULL"
        )
    };
}

/// `$1` = resource, `$2` = namespace, `$3` = name. Columns: rv, object (text).
pub(crate) const GET: &str = "SELECT rv, CAST(object AS TEXT) FROM objects \
     WHERE resource = $1 AND namespace = $2 AND name = $3";

/// No parameters. Columns: rv (the counter), compacted_rv.
pub(crate) const HEADS: &str = "SELECT c.rv, m.compacted_rv FROM rv_counter c, storage_meta m";

/// Cheap liveness probe.
pub(crate) const PING: &str = "SELECT rv FROM rv_counter";

/// The state at an RV, in key order. `$1` resource, `$2` namespace or NULL for all,
/// `$3`/`$4` the key to start after, `$5` the RV, `$6` the row limit.
/// Columns: namespace, name, rv, object (text).
pub(crate) const LIST_AT: &str = concat!(
    "SELECT namespace, name, rv, CAST(object AS TEXT) FROM (",
    state_at!(
        "namespace, name, rv, object",
        "e.namespace, e.name, e.prev_rv, e.prev_object"
    ),
    ") s ORDER BY namespace, name LIMIT $6"
);

/// How many keys `LIST_AT` would return without a limit. `$1`..`$5` as `LIST_AT`. Column: count.
pub(crate) const COUNT_AT: &str = concat!(
    "SELECT count(*) FROM (",
    state_at!("namespace, name", "e.namespace, e.name"),
    ") s"
);

/// The event log after an RV, in RV order (watch cache tailer, watch replay). `$1` = the RV to
/// start after, `$2` = row limit. Columns: rv, resource, namespace, name, type, object (text),
/// prev_rv, prev_object (text or NULL).
pub(crate) const EVENTS_AFTER: &str = "SELECT rv, resource, namespace, name, type, \
     CAST(object AS TEXT), prev_rv, CAST(prev_object AS TEXT) \
     FROM events WHERE rv > $1 ORDER BY rv LIMIT $2";

/// Every current object, in (resource, namespace, name) order, for loading the watch cache.
/// `$1`..`$3` = the key to start after, `$4` = row limit.
/// Columns: resource, namespace, name, rv, object (text).
pub(crate) const ALL_OBJECTS: &str = "SELECT resource, namespace, name, rv, CAST(object AS TEXT) \
     FROM objects WHERE (resource, namespace, name) > ($1, $2, $3) \
     ORDER BY resource, namespace, name LIMIT $4";

/// Compaction of one range, run in one write transaction: moves events with `$1` < rv <= `$2`
/// into `history` (the reporting log that outlives the watch window) and deletes them.
pub(crate) const COMPACT_RANGE: [&str; 2] = [
    "INSERT INTO history (rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, \
       committed_at, actor, audit_id) \
     SELECT rv, resource, namespace, name, uid, type, object, prev_rv, prev_object, committed_at, \
       actor, audit_id FROM events WHERE rv > $1 AND rv <= $2 \
     ON CONFLICT (rv) DO NOTHING",
    "DELETE FROM events WHERE rv > $1 AND rv <= $2",
];

/// How many current objects each resource has. Columns: resource, count.
pub(crate) const OBJECT_COUNTS: &str = "SELECT resource, count(*) FROM objects GROUP BY resource";
