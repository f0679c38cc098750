//! Storage over Postgres or SQLite: migrations, the group-commit writer, reads at a resourceVersion.
//! `Storage` is the only entry point; all its logic is shared by both engines, whose differences
//! live in `dialect` (+ `postgres`, `sqlite`).

pub mod cache;
pub mod compaction;
pub mod object;
pub mod types;

mod dialect;
mod health;
mod journal;
mod migrate;
pub use migrate::SchemaNewer;
mod postgres;
mod sql;
mod sqlite;
mod writer;

pub use writer::contains_nul;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use dialect::Engine;

/// The database used when no `--database-url` is given: `wardle.db` in the cert dir, created if
/// missing (`mode=rwc`). `report` reads the same file by default.
pub fn default_url(cert_dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", cert_dir.join("wardle.db").display())
}
use dialect::{Cell, Db, Param, SqlSet, Wakeup};
use health::DbHealth;
use journal::Journal;
pub use types::*;
use writer::{Request, Writer};

/// Requests queued for the writer before `write` callers wait for room.
const QUEUE_DEPTH: usize = 1024;

/// Handle to the database; cheap to clone (everything is behind one `Arc`).
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    sql: &'static SqlSet,
    /// `None` once closed; writes then fail with `Unavailable`.
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    commits: Arc<watch::Sender<i64>>,
    stats: Arc<Mutex<WriterStats>>,
    health: Arc<DbHealth>,
    /// This process's recent commits (see `journal`).
    journal: Arc<Journal>,
    /// Marks this process's NOTIFYs, so its own are ignored: a random id and a colon.
    tag: String,
    /// Reads of the event log (`events_after`): the watch cache's catch-up reads and watches
    /// replayed from the database. This process's own commits should cost none.
    log_reads: AtomicU64,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("engine", &self.inner.sql.engine.name())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: sqlx::Error) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

/// Removes `metadata.resourceVersion`: the RV is the row's, never part of the stored JSON.
pub(crate) fn strip_rv(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
}

/// Sets `metadata.resourceVersion` to `rv` (as a string, like the apiserver), as etcd3 does from
/// ModRevision on read.
pub(crate) fn inject_rv(object: &mut Value, rv: i64) {
    if let Some(obj) = object.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
}

fn parse_object(text: &str, rv: i64) -> StorageResult<Obj> {
    let mut object: Value = serde_json::from_str(text)
        .map_err(|e| StorageError::Unavailable(format!("stored object is not valid JSON: {e}")))?;
    inject_rv(&mut object, rv);
    Ok(Obj::from_value(&object))
}

fn cell_int(row: &[Cell], i: usize) -> StorageResult<i64> {
    row.get(i)
        .ok_or_else(|| StorageError::Unavailable(format!("missing column {i}")))?
        .int()
        .map_err(unavailable)
}

fn cell_text(row: &[Cell], i: usize) -> StorageResult<&str> {
    row.get(i)
        .ok_or_else(|| StorageError::Unavailable(format!("missing column {i}")))?
        .text()
        .map_err(unavailable)
}

/// Decodes one `events_after` row.
fn event_from_row(row: &[Cell]) -> StorageResult<Event> {
    let rv = cell_int(row, 0)?;
    let kind_text = cell_text(row, 4)?;
    let kind = EventType::parse(kind_text)
        .ok_or_else(|| StorageError::Unavailable(format!("unknown event type {kind_text:?}")))?;
    let prev_object = match (row.get(6), row.get(7)) {
        (Some(Cell::Int(prev_rv)), Some(Cell::Text(text))) => Some(parse_object(text, *prev_rv)?),
        _ => None,
    };
    Ok(Event {
        rv,
        kind,
        key: Key::new(cell_text(row, 1)?, cell_text(row, 2)?, cell_text(row, 3)?),
        object: parse_object(cell_text(row, 5)?, rv)?,
        prev_object,
    })
}

impl Storage {
    /// Opens `postgres://…`/`postgresql://…` or `sqlite://path?mode=rwc`/`sqlite::memory:`,
    /// migrates the schema and starts the writer task.
    pub async fn open(url: &str) -> anyhow::Result<Storage> {
        let (db, dialect) = match Engine::of(url)? {
            Engine::Postgres => (postgres::connect(url).await?, &postgres::SQL),
            Engine::Sqlite => (sqlite::connect(url).await?, &sqlite::SQL),
        };
        let start = db.fetch(sql::HEADS, &[]).await?;
        let head = start
            .first()
            .map(|r| cell_int(r, 0))
            .transpose()?
            .unwrap_or(0);
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let commits = Arc::new(watch::channel(head).0);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let health = Arc::new(DbHealth::default());
        let journal = Arc::new(Journal::default());
        let tag = format!("{}:", uuid::Uuid::new_v4().simple());
        let writer = Writer {
            db: db.clone(),
            sql: dialect,
            rx,
            tag: tag.clone(),
            conn: dialect::BatchConn::new(health.losses()),
            publish: writer::Publish {
                commits: commits.clone(),
                stats: stats.clone(),
                health: health.clone(),
                journal: journal.clone(),
                db: db.clone(),
            },
        };
        let handle = tokio::spawn(writer.run());
        tracing::info!(engine = dialect.engine.name(), rv = head, "storage opened");
        Ok(Storage {
            inner: Arc::new(Inner {
                db,
                sql: dialect,
                queue: Mutex::new(Some(queue)),
                writer: tokio::sync::Mutex::new(Some(handle)),
                commits,
                stats,
                health,
                journal,
                tag,
                log_reads: AtomicU64::new(0),
            }),
        })
    }

    /// "postgres" | "sqlite".
    pub fn engine(&self) -> &'static str {
        self.inner.sql.engine.name()
    }

    /// Queues a write for the group-commit writer and waits for its own outcome.
    pub async fn write(&self, w: Write) -> StorageResult<WriteOutcome> {
        self.inner.health.gate()?;
        let w = writer::prepare(w)?;
        let queue = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StorageError::Unavailable("storage is closed".into()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { write: w, reply })
            .await
            .map_err(|_| StorageError::Unavailable("storage writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("storage writer has stopped".into()))?
    }

    /// The latest committed state of one key.
    pub async fn get(&self, key: &Key) -> StorageResult<Option<Stored>> {
        self.inner.health.gate()?;
        // No stored object has a U+0000 in its key (writes refuse it), and Postgres cannot take
        // one as a text parameter: such a key (e.g. a percent-decoded `%00` in a URL) is absent.
        if has_nul(&key.namespace) || has_nul(&key.name) {
            return Ok(None);
        }
        let params = [
            Param::Text(key.resource.clone()),
            Param::Text(key.namespace.clone()),
            Param::Text(key.name.clone()),
        ];
        let rows = self
            .inner
            .db
            .fetch(sql::GET, &params)
            .await
            .map_err(|e| self.failed(e))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let rv = cell_int(row, 0)?;
        Ok(Some(Stored {
            key: key.clone(),
            rv,
            object: parse_object(cell_text(row, 1)?, rv)?,
        }))
    }

    /// Reads the horizon and compaction point in `tx`, and resolves the RV to read at:
    /// `None` = the committed horizon (consistent read).
    async fn resolve_rv(&self, tx: &mut dialect::Tx, at_rv: Option<i64>) -> StorageResult<i64> {
        let heads = tx
            .fetch(sql::HEADS, &[])
            .await
            .map_err(|e| self.failed(e))?;
        let row = heads
            .first()
            .ok_or_else(|| StorageError::Unavailable("rv_counter is empty".into()))?;
        let (current, compacted) = (cell_int(row, 0)?, cell_int(row, 1)?);
        match at_rv {
            None => Ok(current),
            Some(x) if x > current => Err(StorageError::TooLarge {
                requested: x,
                current,
            }),
            Some(x) if x < compacted => Err(StorageError::Compacted {
                requested: x,
                compacted,
            }),
            Some(x) => Ok(x),
        }
    }

    fn key_params(
        resource: &str,
        namespace: Option<&str>,
        at: i64,
        after: Option<(&str, &str)>,
    ) -> Vec<Param> {
        // ("", "") sorts before every real key: names are never empty.
        let (after_ns, after_name) = after.unwrap_or(("", ""));
        vec![
            Param::Text(resource.into()),
            Param::OptText(namespace.map(str::to_owned)),
            Param::Text(after_ns.into()),
            Param::Text(after_name.into()),
            Param::Int(at),
        ]
    }

    /// Up to `limit` items (0 = no limit) of `resource` (in `namespace`, or all namespaces) after
    /// the key `after`, in (namespace, name) byte order, as of `at_rv` (`None`: consistent read at
    /// the committed horizon). The horizon check and the rows share one snapshot.
    pub async fn list_chunk(
        &self,
        resource: &str,
        namespace: Option<&str>,
        at_rv: Option<i64>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StorageResult<Chunk> {
        self.inner.health.gate()?;
        let mut tx = self
            .inner
            .db
            .begin_read(self.inner.sql.begin_read)
            .await
            .map_err(|e| self.failed(e))?;
        let at = self.resolve_rv(&mut tx, at_rv).await?;
        // As in `get`: nothing is stored in a namespace whose name has a U+0000.
        if namespace.is_some_and(has_nul) {
            tx.commit().await.map_err(|e| self.failed(e))?;
            return Ok(Chunk {
                rv: at,
                items: Vec::new(),
                more: false,
            });
        }
        let mut params = Self::key_params(resource, namespace, at, after);
        // One extra row tells whether more follow.
        let fetch = if limit == 0 {
            i64::MAX
        } else {
            i64::try_from(limit)
                .unwrap_or(i64::MAX - 1)
                .saturating_add(1)
        };
        params.push(Param::Int(fetch));
        let rows = tx
            .fetch(sql::LIST_AT, &params)
            .await
            .map_err(|e| self.failed(e))?;
        tx.commit().await.map_err(|e| self.failed(e))?;
        let more = limit != 0 && rows.len() > limit;
        let items = rows
            .iter()
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|row| {
                let rv = cell_int(row, 2)?;
                Ok(Stored {
                    key: Key::new(resource, cell_text(row, 0)?, cell_text(row, 1)?),
                    rv,
                    object: parse_object(cell_text(row, 3)?, rv)?,
                })
            })
            .collect::<StorageResult<Vec<_>>>()?;
        Ok(Chunk {
            rv: at,
            items,
            more,
        })
    }

    /// How many items a list at `at_rv` has after the key `after` (for `remainingItemCount`).
    pub async fn count_after(
        &self,
        resource: &str,
        namespace: Option<&str>,
        at_rv: i64,
        after: (&str, &str),
    ) -> StorageResult<i64> {
        self.inner.health.gate()?;
        let mut tx = self
            .inner
            .db
            .begin_read(self.inner.sql.begin_read)
            .await
            .map_err(|e| self.failed(e))?;
        let at = self.resolve_rv(&mut tx, Some(at_rv)).await?;
        let rows = tx
            .fetch(
                sql::COUNT_AT,
                &Self::key_params(resource, namespace, at, Some(after)),
            )
            .await
            .map_err(|e| self.failed(e))?;
        tx.commit().await.map_err(|e| self.failed(e))?;
        rows.first()
            .map(|r| cell_int(r, 0))
            .transpose()
            .map(|n| n.unwrap_or(0))
    }

    /// The committed counter and the compaction horizon, read in one snapshot.
    pub async fn heads(&self) -> StorageResult<(i64, i64)> {
        self.inner.health.gate()?;
        let rows = self
            .inner
            .db
            .fetch(sql::HEADS, &[])
            .await
            .map_err(|e| self.failed(e))?;
        let row = rows
            .first()
            .ok_or_else(|| StorageError::Unavailable("rv_counter is empty".into()))?;
        Ok((cell_int(row, 0)?, cell_int(row, 1)?))
    }

    /// The committed horizon: every RV up to it is committed and visible.
    pub async fn current_rv(&self) -> StorageResult<i64> {
        Ok(self.heads().await?.0)
    }

    /// Events at or below this RV may have been deleted.
    pub async fn compacted_rv(&self) -> StorageResult<i64> {
        Ok(self.heads().await?.1)
    }

    /// Succeeds if the database answers (for /readyz).
    /// One round trip to the database, even while it is believed down (a success ends that).
    pub async fn ping(&self) -> StorageResult<()> {
        self.inner
            .db
            .fetch(sql::PING, &[])
            .await
            .map_err(|e| self.failed(e))?;
        self.inner.health.reachable();
        Ok(())
    }

    /// Readiness: the database answers and writes commit (after a failed write transaction, a
    /// probe write must commit). Fails at once while the database is known to be unreachable.
    pub async fn ready(&self) -> StorageResult<()> {
        self.inner
            .health
            .ready(&self.inner.db, self.inner.sql)
            .await
    }

    /// Maps a database error to `Unavailable`, noting an unreachable database so later requests
    /// fail fast (see `health`).
    fn failed(&self, e: sqlx::Error) -> StorageError {
        self.inner.health.observe(&self.inner.db, &e);
        unavailable(e)
    }

    /// How many current objects each resource has (for apiserver_storage_objects).
    pub async fn object_counts(&self) -> StorageResult<Vec<(String, i64)>> {
        self.inner.health.gate()?;
        let rows = self
            .inner
            .db
            .fetch(sql::OBJECT_COUNTS, &[])
            .await
            .map_err(|e| self.failed(e))?;
        rows.iter()
            .map(|r| Ok((cell_text(r, 0)?.to_string(), cell_int(r, 1)?)))
            .collect()
    }

    /// Writes queued for the writer task and not yet taken into a batch.
    pub fn queue_depth(&self) -> usize {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |q| q.max_capacity() - q.capacity())
    }

    /// How many times this process has read the event log (see `Inner::log_reads`).
    pub fn log_reads(&self) -> u64 {
        self.inner.log_reads.load(Ordering::Relaxed)
    }

    /// The group-commit counters of this process.
    pub fn stats(&self) -> WriterStats {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last RV this process committed, updated right after each COMMIT (in-process wake-up).
    pub fn subscribe_commits(&self) -> watch::Receiver<i64> {
        self.inner.commits.subscribe()
    }

    /// The events of the batch this process committed right after `rv`, if it did and they are
    /// still kept: the watch cache applies them without reading the log.
    pub(crate) fn own_events_after(&self, rv: i64) -> Option<Arc<[Event]>> {
        self.inner.journal.after(rv)
    }

    /// Up to `limit` events with RV above `after`, in RV order, read in one snapshot with the
    /// counter and the compaction horizon (see [`EventPage`]). Objects get their RVs injected.
    pub async fn events_after(&self, after: i64, limit: usize) -> StorageResult<EventPage> {
        self.inner.health.gate()?;
        self.inner.log_reads.fetch_add(1, Ordering::Relaxed);
        let mut tx = self
            .inner
            .db
            .begin_read(self.inner.sql.begin_read)
            .await
            .map_err(|e| self.failed(e))?;
        let heads = tx
            .fetch(sql::HEADS, &[])
            .await
            .map_err(|e| self.failed(e))?;
        let head = heads
            .first()
            .ok_or_else(|| StorageError::Unavailable("rv_counter is empty".into()))?;
        let (current, compacted) = (cell_int(head, 0)?, cell_int(head, 1)?);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = tx
            .fetch(sql::EVENTS_AFTER, &[Param::Int(after), Param::Int(limit)])
            .await
            .map_err(|e| self.failed(e))?;
        tx.commit().await.map_err(|e| self.failed(e))?;
        let events = rows
            .iter()
            .map(|row| event_from_row(row))
            .collect::<StorageResult<Vec<_>>>()?;
        Ok(EventPage {
            current,
            compacted,
            events,
        })
    }

    /// Every current object and the RV they are the state at, read in one snapshot (in pages of
    /// `page` rows, all inside the same read transaction). Loads the watch cache.
    pub async fn all_objects(&self, page: usize) -> StorageResult<(i64, Vec<Stored>)> {
        self.inner.health.gate()?;
        let mut tx = self
            .inner
            .db
            .begin_read(self.inner.sql.begin_read)
            .await
            .map_err(|e| self.failed(e))?;
        // The first statement fixes the snapshot (both engines), so the counter and every page
        // below see the same committed state.
        let rv = self.resolve_rv(&mut tx, None).await?;
        let limit = i64::try_from(page.max(1)).unwrap_or(i64::MAX);
        let mut items = Vec::new();
        let mut after = (String::new(), String::new(), String::new());
        loop {
            let params = [
                Param::Text(after.0.clone()),
                Param::Text(after.1.clone()),
                Param::Text(after.2.clone()),
                Param::Int(limit),
            ];
            let rows = tx
                .fetch(sql::ALL_OBJECTS, &params)
                .await
                .map_err(|e| self.failed(e))?;
            let n = rows.len();
            for row in &rows {
                let key = Key::new(cell_text(row, 0)?, cell_text(row, 1)?, cell_text(row, 2)?);
                let obj_rv = cell_int(row, 3)?;
                items.push(Stored {
                    key,
                    rv: obj_rv,
                    object: parse_object(cell_text(row, 4)?, obj_rv)?,
                });
            }
            match items.last() {
                Some(last) if i64::try_from(n).unwrap_or(i64::MAX) >= limit => {
                    after = (
                        last.key.resource.clone(),
                        last.key.namespace.clone(),
                        last.key.name.clone(),
                    );
                }
                _ => break,
            }
        }
        tx.commit().await.map_err(|e| self.failed(e))?;
        Ok((rv, items))
    }

    /// Arranges for `wake` to be notified when another process commits, until `stop` turns true
    /// or is dropped: on an engine that notifies, a listener task that also wakes on every sign
    /// that notifications were lost (see `postgres::listen`); returns how often to read the log
    /// when the engine must be polled instead (`None`: it notifies).
    pub(crate) fn wake_on_commits(
        &self,
        wake: Arc<tokio::sync::Notify>,
        stop: watch::Receiver<bool>,
    ) -> Option<std::time::Duration> {
        match (self.inner.sql.wakeup, &self.inner.db) {
            (Wakeup::Poll(every), _) => Some(every),
            (Wakeup::Notify, Db::Postgres { pool, .. }) => {
                let own = self.inner.tag.clone();
                let health = self.inner.health.clone();
                tokio::spawn(postgres::listen(pool.clone(), own, wake, stop, health));
                None
            }
            (Wakeup::Notify, Db::Sqlite { .. }) => None,
        }
    }

    /// Stops accepting writes, lets the writer finish what is queued, then closes the pools.
    pub async fn close(&self) {
        drop(
            self.inner
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(handle) = self.inner.writer.lock().await.take()
            && let Err(e) = handle.await
        {
            tracing::warn!(error = %e, "storage writer task ended abnormally");
        }
        self.inner.db.close().await;
    }
}

/// Whether `s` holds a U+0000, which no stored key has and Postgres refuses as text.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rv_is_stripped_and_injected() {
        let mut stored = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        strip_rv(&mut stored);
        assert_eq!(stored, json!({"metadata": {"name": "a"}}));
        let mut obj = stored;
        inject_rv(&mut obj, 7);
        assert_eq!(obj["metadata"]["resourceVersion"], "7");
        let mut bare = json!({});
        inject_rv(&mut bare, 1);
        assert_eq!(bare, json!({"metadata": {"resourceVersion": "1"}}));
        let mut not_object = json!([1]);
        inject_rv(&mut not_object, 1);
        assert_eq!(not_object, json!([1]));
    }

    #[tokio::test]
    async fn bad_urls_are_refused() {
        assert!(Storage::open("mysql://x").await.is_err());
        assert!(
            Storage::open("sqlite:///nonexistent-dir/x/y.db")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn memory_sqlite_round_trip() {
        let s = Storage::open("sqlite::memory:").await.expect("open");
        assert_eq!(s.engine(), "sqlite");
        let key = Key::new("fischers", "", "f1");
        let out = s
            .write(Write {
                key: key.clone(),
                op: WriteOp::Create {
                    object: json!({"metadata": {"name": "f1", "uid": "u"}}),
                },
                actor: "t".into(),
                audit_id: String::new(),
            })
            .await
            .expect("create");
        assert_eq!(out.rv, 2, "a fresh store is at 1; the first write is 2");
        let got = s.get(&key).await.expect("get").expect("present");
        assert_eq!(got.object.value()["metadata"]["resourceVersion"], "2");
        assert_eq!(s.current_rv().await, Ok(2));
        s.close().await;
        assert!(matches!(
            s.write(Write {
                key,
                op: WriteOp::Delete {
                    pre: Preconditions::default()
                },
                actor: "t".into(),
                audit_id: String::new(),
            })
            .await,
            Err(StorageError::Unavailable(_))
        ));
    }
}
