//! Group commit: one writer task per process drains the write queue into batches and commits
//! each batch as ONE transaction with ONE counter increment. Every write keeps its own
//! precondition check and its own consecutive resourceVersion; a failed precondition fails that
//! write alone. When the database refuses a write's data (too large for an index, a bad value)
//! the batch's writes are retried one by one, so only the offender fails (`Rejected`); a
//! transaction that fails for any other reason fails its whole batch with `Unavailable`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use super::dialect::{Cell, Db, Param, SqlSet, refused_input};
use super::types::{
    Key, MAX_OBJECT_BYTES, Preconditions, StorageError, StorageResult, Write, WriteOp,
    WriteOutcome, WriterStats,
};
use super::{inject_rv, strip_rv};

/// Most writes per transaction. Larger batches hold the counter lock longer for little gain.
pub(crate) const MAX_BATCH: usize = 64;

/// A queued write and where its answer goes.
pub(crate) struct Request {
    pub write: Write,
    pub reply: oneshot::Sender<StorageResult<WriteOutcome>>,
}

/// The writer task's state.
pub(crate) struct Writer {
    pub db: Db,
    pub sql: &'static SqlSet,
    pub rx: mpsc::Receiver<Request>,
    pub commits: Arc<watch::Sender<i64>>,
    pub stats: Arc<Mutex<WriterStats>>,
    pub health: Arc<super::health::DbHealth>,
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    pub async fn run(mut self) {
        let mut pending = VecDeque::new();
        while let Some(batch) = next_batch(&mut self.rx, &mut pending).await {
            self.commit(batch).await;
        }
        tracing::debug!("storage writer stopped");
    }

    async fn commit(&self, batch: Vec<Request>) {
        let size = batch.len();
        crate::metrics::batch(size);
        let (writes, replies): (Vec<Write>, Vec<_>) =
            batch.into_iter().map(|r| (r.write, r.reply)).unzip();
        match apply_batch(&self.db, self.sql, &writes).await {
            Ok((results, last_rv)) => self.answer(size, replies, results, last_rv).await,
            Err(e) if size > 1 && refused_input(&e).is_some() => {
                // The database refused one write's data (a statement failed, so nothing was
                // committed). Each write goes again on its own, so only the offender fails.
                lock_stats(&self.stats).failed_batches += 1;
                tracing::warn!(error = %e, batch = size, "write batch refused; retrying its writes one by one");
                for (write, reply) in writes.into_iter().zip(replies) {
                    match apply_batch(&self.db, self.sql, std::slice::from_ref(&write)).await {
                        Ok((results, last_rv)) => {
                            self.answer(1, vec![reply], results, last_rv).await
                        }
                        Err(e) => self.fail(vec![reply], &e),
                    }
                }
            }
            Err(e) => self.fail(replies, &e),
        }
    }

    /// Hands out the results of a committed (or wholly precondition-failed) batch.
    async fn answer(
        &self,
        size: usize,
        replies: Vec<oneshot::Sender<StorageResult<WriteOutcome>>>,
        results: Vec<StorageResult<WriteOutcome>>,
        last_rv: Option<i64>,
    ) {
        let committed = results.iter().filter(|r| r.is_ok()).count();
        lock_stats(&self.stats).record_batch(size, committed);
        if last_rv.is_some() {
            self.health.write_outcome(None);
        }
        if let Some(rv) = last_rv {
            // In-process wake-up first: this replica's watch cache need not wait for NOTIFY.
            self.commits.send_replace(rv);
        }
        tracing::debug!(
            batch = size,
            committed,
            rv = last_rv,
            "committed write batch"
        );
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that gave up waiting is not an error: the write committed anyway.
            let _ = reply.send(result);
        }
        if let (Some(notify), Some(rv)) = (self.sql.notify, last_rv) {
            // Best effort, after COMMIT and outside the counter lock: a lost NOTIFY only
            // delays other replicas until their fallback poll.
            if let Err(e) = self
                .db
                .execute(notify, &[Param::Text(rv.to_string())])
                .await
            {
                tracing::warn!(error = %e, rv, "NOTIFY after commit failed");
            }
        }
    }

    /// Fails every write of a transaction that did not commit: `Rejected` when the database
    /// refused the (single) write's data, else `Unavailable`.
    fn fail(&self, replies: Vec<oneshot::Sender<StorageResult<WriteOutcome>>>, e: &sqlx::Error) {
        lock_stats(&self.stats).failed_batches += 1;
        tracing::warn!(error = %e, batch = replies.len(), "write batch failed");
        let err = match refused_input(e) {
            Some(msg) if replies.len() == 1 => StorageError::Rejected(msg),
            _ => {
                self.health.observe(&self.db, self.sql, e);
                self.health.write_outcome(Some(e.to_string()));
                StorageError::Unavailable(e.to_string())
            }
        };
        for reply in replies {
            let _ = reply.send(Err(err.clone()));
        }
    }
}

fn lock_stats(stats: &Mutex<WriterStats>) -> std::sync::MutexGuard<'_, WriterStats> {
    // Stats are plain counters; a panic elsewhere while holding the lock leaves them usable.
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes the next batch: older deferred writes first (in order), then whatever is queued, without
/// waiting unless nothing at all is ready. A key already in the batch defers the later write to a
/// following batch, so writes to one key commit in the order they were queued.
/// Returns `None` once the queue is closed and everything has been handed out.
pub(crate) async fn next_batch(
    rx: &mut mpsc::Receiver<Request>,
    pending: &mut VecDeque<Request>,
) -> Option<Vec<Request>> {
    let mut batch = Vec::new();
    let mut keys = HashSet::new();
    let mut deferred = VecDeque::new();
    while let Some(req) = pending.pop_front() {
        if batch.len() < MAX_BATCH && !keys.contains(&req.write.key) {
            keys.insert(req.write.key.clone());
            batch.push(req);
        } else {
            deferred.push_back(req);
        }
    }
    if batch.is_empty() {
        let req = rx.recv().await?;
        keys.insert(req.write.key.clone());
        batch.push(req);
    }
    // Bound `deferred` too, so a flood of writes to one key is not pulled into memory at once.
    while batch.len() < MAX_BATCH && deferred.len() < MAX_BATCH {
        let Ok(req) = rx.try_recv() else { break };
        if keys.contains(&req.write.key) {
            deferred.push_back(req);
        } else {
            keys.insert(req.write.key.clone());
            batch.push(req);
        }
    }
    *pending = deferred;
    Some(batch)
}

/// The committed row of a key, as read inside the write transaction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Current {
    pub uid: String,
    pub rv: i64,
    pub create_rv: i64,
    pub object: Value,
}

/// What one write will store: the batch row (without `ord`) and the object to answer with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    pub row: serde_json::Map<String, Value>,
    pub outcome: Value,
}

fn check_preconditions(pre: &Preconditions, cur: &Current) -> StorageResult<()> {
    // Same order as apimachinery's Preconditions.Check: uid, then resourceVersion.
    if let Some(uid) = &pre.uid
        && *uid != cur.uid
    {
        return Err(StorageError::UidMismatch {
            expected: uid.clone(),
            actual: cur.uid.clone(),
        });
    }
    if let Some(rv) = pre.rv
        && rv != cur.rv
    {
        return Err(StorageError::Conflict { current: cur.rv });
    }
    Ok(())
}

/// Postgres cannot turn U+0000 into text or jsonb (the labels column, the reporting views), so
/// such objects are refused on both engines. The API refuses them with a 400 first; this guard
/// keeps one bad object from failing everybody else's writes in its batch.
pub fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn uid_of(object: &Value) -> Option<&str> {
    object.get("metadata")?.get("uid")?.as_str()
}

/// Decides one write against the committed row: a precondition error, or what to store.
pub(crate) fn plan(w: &Write, cur: Option<&Current>) -> StorageResult<Planned> {
    let key = &w.key;
    let mut row = serde_json::Map::new();
    row.insert("resource".into(), json!(key.resource));
    row.insert("namespace".into(), json!(key.namespace));
    row.insert("name".into(), json!(key.name));
    row.insert("actor".into(), json!(w.actor));
    let audit_id = (!w.audit_id.is_empty()).then_some(w.audit_id.as_str());
    row.insert("audit_id".into(), json!(audit_id));
    let outcome = match (&w.op, cur) {
        (WriteOp::Create { .. }, Some(_)) => return Err(StorageError::AlreadyExists),
        (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => {
            return Err(StorageError::NotFound);
        }
        (WriteOp::Create { object }, None) => {
            let object = strip_rv(object.clone());
            row.insert("uid".into(), json!(uid_of(&object).unwrap_or_default()));
            row.insert("type".into(), json!("ADDED"));
            row.insert("object".into(), object.clone());
            row.insert("prev_rv".into(), Value::Null);
            row.insert("prev_object".into(), Value::Null);
            row.insert("create_rv".into(), Value::Null);
            object
        }
        (WriteOp::Update { object, pre }, Some(cur)) => {
            check_preconditions(pre, cur)?;
            let object = strip_rv(object.clone());
            row.insert("uid".into(), json!(uid_of(&object).unwrap_or(&cur.uid)));
            row.insert("type".into(), json!("MODIFIED"));
            row.insert("object".into(), object.clone());
            row.insert("prev_rv".into(), json!(cur.rv));
            row.insert("prev_object".into(), cur.object.clone());
            row.insert("create_rv".into(), json!(cur.create_rv));
            object
        }
        (WriteOp::Delete { pre }, Some(cur)) => {
            check_preconditions(pre, cur)?;
            row.insert("uid".into(), json!(cur.uid));
            row.insert("type".into(), json!("DELETED"));
            row.insert("object".into(), cur.object.clone());
            row.insert("prev_rv".into(), json!(cur.rv));
            row.insert("prev_object".into(), cur.object.clone());
            row.insert("create_rv".into(), json!(cur.create_rv));
            cur.object.clone()
        }
    };
    let size = super::object::json_len(&outcome);
    if size > MAX_OBJECT_BYTES {
        return Err(StorageError::ObjectTooLarge(size));
    }
    if contains_nul(&outcome) {
        return Err(StorageError::Rejected(
            "object contains a U+0000 character, which cannot be stored".into(),
        ));
    }
    Ok(Planned { row, outcome })
}

/// The per-key lock id: 64 bits of SHA-256 over the key (NUL-separated, NUL cannot occur in names).
pub(crate) fn lock_id(key: &Key) -> i64 {
    let mut h = Sha256::new();
    for part in [&key.resource, &key.namespace, &key.name] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

fn current_from_row(row: &[Cell]) -> Result<(Key, Current), sqlx::Error> {
    let [resource, namespace, name, uid, rv, create_rv, object] = row else {
        return Err(sqlx::Error::Decode(
            "read_current must return 7 columns".into(),
        ));
    };
    let key = Key::new(resource.text()?, namespace.text()?, name.text()?);
    let object = serde_json::from_str(object.text()?).map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok((
        key,
        Current {
            uid: uid.text()?.to_owned(),
            rv: rv.int()?,
            create_rv: create_rv.int()?,
            object,
        },
    ))
}

/// Runs one batch in one transaction. Returns each write's result (in order) and the batch's last
/// RV (`None` if no write passed its checks, in which case nothing was written).
pub(crate) async fn apply_batch(
    db: &Db,
    sql: &SqlSet,
    writes: &[Write],
) -> Result<(Vec<StorageResult<WriteOutcome>>, Option<i64>), sqlx::Error> {
    let mut tx = db.begin_write(sql.begin_write).await?;
    if let Some(lock_keys) = sql.lock_keys {
        let mut ids: Vec<i64> = writes.iter().map(|w| lock_id(&w.key)).collect();
        ids.sort_unstable();
        ids.dedup();
        tx.fetch(lock_keys, &[Param::Text(json!(ids).to_string())])
            .await?;
    }
    let keys: Vec<Value> = writes
        .iter()
        .map(|w| json!({"resource": w.key.resource, "namespace": w.key.namespace, "name": w.key.name}))
        .collect();
    let current: HashMap<Key, Current> = tx
        .fetch(
            sql.read_current,
            &[Param::Text(Value::Array(keys).to_string())],
        )
        .await?
        .iter()
        .map(|r| current_from_row(r))
        .collect::<Result<_, _>>()?;

    let mut results: Vec<StorageResult<Value>> = Vec::with_capacity(writes.len());
    let mut rows = Vec::new();
    for w in writes {
        match plan(w, current.get(&w.key)) {
            Ok(Planned { mut row, outcome }) => {
                row.insert("ord".into(), json!(rows.len() + 1));
                rows.push(Value::Object(row));
                results.push(Ok(outcome));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if rows.is_empty() {
        tx.rollback().await?;
        // Every write failed its checks (no row was planned), so all results are errors.
        return Ok((
            results
                .into_iter()
                .filter_map(Result::err)
                .map(Err)
                .collect(),
            None,
        ));
    }

    let k = rows.len() as i64;
    let params = [Param::Text(Value::Array(rows).to_string()), Param::Int(k)];
    let (first, rest) = sql
        .apply_batch
        .split_first()
        .ok_or_else(|| sqlx::Error::Protocol("empty apply_batch".into()))?;
    let top = tx
        .fetch(first, &params)
        .await?
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| sqlx::Error::RowNotFound)?
        .int()?;
    for stmt in rest {
        tx.fetch(stmt, &params).await?;
    }
    tx.commit().await?;

    let mut ord = 0;
    let outcomes = results
        .into_iter()
        .map(|r| {
            r.map(|mut object| {
                ord += 1;
                let rv = top - k + ord;
                inject_rv(&mut object, rv);
                WriteOutcome { rv, object }
            })
        })
        .collect();
    Ok((outcomes, Some(top)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, op: WriteOp) -> Write {
        Write {
            key: Key::new("flunders", "ns", name),
            op,
            actor: "alice".into(),
            audit_id: "a-1".into(),
        }
    }

    fn cur(rv: i64) -> Current {
        Current {
            uid: "u1".into(),
            rv,
            create_rv: 1,
            object: json!({"metadata": {"name": "a", "uid": "u1"}}),
        }
    }

    #[test]
    fn create_conflicts_with_an_existing_row() {
        let w = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a"}}),
            },
        );
        assert_eq!(plan(&w, Some(&cur(3))), Err(StorageError::AlreadyExists));
        let p = plan(&w, None).expect("create");
        assert_eq!(p.row["type"], "ADDED");
        assert_eq!(p.row["prev_object"], Value::Null);
    }

    #[test]
    fn update_and_delete_check_preconditions() {
        let upd = |pre| {
            write(
                "a",
                WriteOp::Update {
                    object: json!({"metadata": {"name": "a"}}),
                    pre,
                },
            )
        };
        assert_eq!(
            plan(&upd(Preconditions::default()), None),
            Err(StorageError::NotFound)
        );
        assert_eq!(
            plan(
                &upd(Preconditions {
                    rv: Some(2),
                    uid: None
                }),
                Some(&cur(3))
            ),
            Err(StorageError::Conflict { current: 3 })
        );
        assert_eq!(
            plan(
                &upd(Preconditions {
                    rv: Some(2),
                    uid: Some("other".into())
                }),
                Some(&cur(3))
            ),
            Err(StorageError::UidMismatch {
                expected: "other".into(),
                actual: "u1".into()
            })
        );
        let ok = plan(
            &upd(Preconditions {
                rv: Some(3),
                uid: Some("u1".into()),
            }),
            Some(&cur(3)),
        )
        .expect("update");
        assert_eq!(ok.row["prev_rv"], 3);
        assert_eq!(ok.row["uid"], "u1", "uid falls back to the stored one");
        let del = plan(
            &write(
                "a",
                WriteOp::Delete {
                    pre: Preconditions::default(),
                },
            ),
            Some(&cur(3)),
        )
        .expect("delete");
        assert_eq!(del.row["type"], "DELETED");
        assert_eq!(del.outcome, cur(3).object);
    }

    #[test]
    fn resource_version_is_never_stored() {
        let w = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a", "resourceVersion": "9"}}),
            },
        );
        let p = plan(&w, None).expect("create");
        assert_eq!(p.row["object"], json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn nul_characters_fail_only_that_write() {
        let w = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a"}, "spec": {"x": "a\u{0}b"}}),
            },
        );
        assert!(matches!(plan(&w, None), Err(StorageError::Rejected(_))));
    }

    #[test]
    fn objects_past_the_size_limit_are_refused() {
        let big = |n: usize| {
            write(
                "a",
                WriteOp::Create {
                    object: json!({"metadata": {"name": "a"}, "spec": {"x": "y".repeat(n)}}),
                },
            )
        };
        assert!(plan(&big(1000), None).is_ok());
        assert!(matches!(
            plan(&big(MAX_OBJECT_BYTES as usize), None),
            Err(StorageError::ObjectTooLarge(n)) if n > MAX_OBJECT_BYTES
        ));
    }

    #[test]
    fn lock_ids_are_stable_and_key_sensitive() {
        let a = lock_id(&Key::new("flunders", "ns", "a"));
        assert_eq!(a, lock_id(&Key::new("flunders", "ns", "a")));
        assert_ne!(a, lock_id(&Key::new("flunders", "nsa", "")));
        assert_ne!(a, lock_id(&Key::new("fischers", "ns", "a")));
    }

    fn req(name: &str) -> (Request, oneshot::Receiver<StorageResult<WriteOutcome>>) {
        let (reply, rx) = oneshot::channel();
        (
            Request {
                write: write(
                    name,
                    WriteOp::Delete {
                        pre: Preconditions::default(),
                    },
                ),
                reply,
            },
            rx,
        )
    }

    #[tokio::test]
    async fn same_key_waits_for_the_next_batch_in_order() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut keep = Vec::new();
        for name in ["a", "b", "a", "c", "a"] {
            let (r, reply) = req(name);
            keep.push(reply);
            tx.send(r).await.expect("send");
        }
        drop(tx);
        let mut pending = VecDeque::new();
        let names = |b: Vec<Request>| b.into_iter().map(|r| r.write.key.name).collect::<Vec<_>>();
        assert_eq!(
            names(next_batch(&mut rx, &mut pending).await.expect("1")),
            ["a", "b", "c"]
        );
        assert_eq!(
            names(next_batch(&mut rx, &mut pending).await.expect("2")),
            ["a"]
        );
        assert_eq!(
            names(next_batch(&mut rx, &mut pending).await.expect("3")),
            ["a"]
        );
        assert!(next_batch(&mut rx, &mut pending).await.is_none());
    }
}
