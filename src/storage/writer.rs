//! Group commit: one writer task per process drains the write queue into batches and commits
//! each batch as ONE transaction with ONE counter increment. Every write keeps its own
//! precondition check and its own consecutive resourceVersion; a failed precondition fails that
//! write alone. When the database refuses a write's data (too large for an index, a bad value)
//! the batch's writes are retried one by one, so only the offender fails (`Rejected`); a
//! transaction that fails for any other reason fails its whole batch with `Unavailable`.
//!
//! How a batch reaches the database is the dialect's (`BatchPath`): on Postgres one call of
//! `wardle_apply_batch` on the writer's own connection does locks, checks, counter, events,
//! objects and NOTIFY in one round trip; on SQLite (in-process) a transaction of statements with
//! the checks (`verdict`) in Rust. Both end in `finish`, which gives RVs and builds the events
//! that go to this process's watch cache through the `journal`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::dialect::{BatchConn, BatchPath, Cell, Db, Param, PgQuery, SqlSet, refused_input};
use super::journal::Journal;
use super::object::StoredText;
use super::types::{
    Event, EventType, Key, MAX_OBJECT_BYTES, Obj, Preconditions, StorageError, StorageResult,
    Write, WriteOp, WriteOutcome, WriterStats,
};
use super::{inject_rv, strip_rv};

/// Most writes per transaction. Larger batches hold the counter lock longer for little gain.
pub(crate) const MAX_BATCH: usize = 64;

/// A queued write and where its answer goes.
pub(crate) struct Request {
    pub write: Prepared,
    pub reply: oneshot::Sender<StorageResult<WriteOutcome>>,
}

/// A write readied by [`prepare`]: the write, and for a create or update its object's stored
/// text (always set for those; `None` for a delete).
pub(crate) struct Prepared {
    pub write: Write,
    pub text: Option<StoredText>,
}

/// The writer task's state.
pub(crate) struct Writer {
    pub db: Db,
    pub sql: &'static SqlSet,
    pub rx: mpsc::Receiver<Request>,
    /// Marks this process's NOTIFYs (see `postgres::listen`).
    pub tag: String,
    /// The connection batches run on, kept between them (Postgres).
    pub conn: BatchConn,
    pub publish: Publish,
}

/// Where a batch's results go: the callers, this process's watch cache (the journal and the
/// commit wake-up), the writer's stats and the database's health.
pub(crate) struct Publish {
    pub commits: Arc<watch::Sender<i64>>,
    pub stats: Arc<Mutex<WriterStats>>,
    pub health: Arc<super::health::DbHealth>,
    /// Where committed batches' events go for this process's watch cache.
    pub journal: Arc<Journal>,
    /// For the health gate when a batch fails (a clone of the writer's).
    pub db: Db,
}

/// A batch the database has answered whose callers are not answered yet: each write's reply
/// channel and the batch's writes and verdicts, or the error that failed the whole batch.
struct Answered {
    replies: Vec<oneshot::Sender<StorageResult<WriteOutcome>>>,
    outcome: Result<(Vec<Prepared>, Decided), sqlx::Error>,
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    ///
    /// A batch's callers are answered while the next batch is in the database: when writes are
    /// already waiting, the next batch is sent first and the last one's answers (its events for
    /// the watch cache, the replies) are built while the database works, so that work is not
    /// part of every batch's cycle. With nothing waiting the answers go out at once. Batches
    /// still commit one after another and are answered in order.
    pub async fn run(mut self) {
        let mut pending = VecDeque::new();
        let mut unanswered: Option<Answered> = None;
        loop {
            // With a batch still to answer, only writes already queued; else wait for one.
            let wait = unanswered.is_none();
            match next_batch(&mut self.rx, &mut pending, wait).await {
                Some(batch) => {
                    let last = unanswered.take();
                    unanswered = Some(self.apply_answering(batch, last).await);
                }
                None => match unanswered.take() {
                    Some(last) => self.publish.answered(last),
                    None => break,
                },
            }
        }
        tracing::debug!("storage writer stopped");
    }

    /// Sends `batch` to the database and, while it is there, answers `last`. Returns `batch`
    /// answered by the database, for the caller to publish (already published, and returned
    /// with no replies, when its writes had to be retried one by one).
    async fn apply_answering(&mut self, batch: Vec<Request>, last: Option<Answered>) -> Answered {
        let size = batch.len();
        crate::metrics::batch(size);
        let (writes, replies): (Vec<Prepared>, Vec<_>) =
            batch.into_iter().map(|r| (r.write, r.reply)).unzip();
        let decided = {
            let mut call = std::pin::pin!(apply_batch(
                &self.db,
                &mut self.conn,
                self.sql,
                &writes,
                &self.tag
            ));
            // The first poll writes the batch to the connection; then the last batch's answers.
            let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
            if let Some(last) = last {
                self.publish.answered(last);
            }
            match first {
                Poll::Ready(r) => r,
                Poll::Pending => call.await,
            }
        };
        let outcome = match decided {
            Err(e) if size > 1 && refused_input(&e).is_some() => {
                // The database refused one write's data (a statement failed, so nothing was
                // committed). Each write goes again on its own, so only the offender fails.
                lock_stats(&self.publish.stats).failed_batches += 1;
                tracing::warn!(error = %e, batch = size, "write batch refused; retrying its writes one by one");
                for (write, reply) in writes.into_iter().zip(replies) {
                    let one = std::slice::from_ref(&write);
                    let outcome = apply_batch(&self.db, &mut self.conn, self.sql, one, &self.tag)
                        .await
                        .map(|decided| (vec![write], decided));
                    self.publish.answered(Answered {
                        replies: vec![reply],
                        outcome,
                    });
                }
                return Answered {
                    replies: Vec::new(),
                    outcome: Ok((Vec::new(), (Vec::new(), None))),
                };
            }
            other => other.map(|decided| (writes, decided)),
        };
        Answered { replies, outcome }
    }
}

impl Publish {
    fn answered(&self, Answered { replies, outcome }: Answered) {
        if replies.is_empty() {
            return;
        }
        match outcome {
            Ok((writes, decided)) => self.answer(replies, finish(writes, decided)),
            Err(e) => self.fail(replies, &e),
        }
    }

    /// Hands out the results of a committed (or wholly precondition-failed) batch. The events
    /// go to the journal before the in-process wake-up, so this process's watch cache takes
    /// them from there instead of reading them back.
    fn answer(&self, replies: Vec<oneshot::Sender<StorageResult<WriteOutcome>>>, applied: Applied) {
        let size = replies.len();
        let committed = applied.results.iter().filter(|r| r.is_ok()).count();
        lock_stats(&self.stats).record_batch(size, committed);
        let last_rv = applied.committed.map(|(top, events)| {
            self.health.write_outcome(None);
            self.journal.push(events);
            self.commits.send_replace(top);
            top
        });
        tracing::debug!(
            batch = size,
            committed,
            rv = last_rv,
            "committed write batch"
        );
        for (reply, result) in replies.into_iter().zip(applied.results) {
            // A caller that gave up waiting is not an error: the write committed anyway.
            let _ = reply.send(result);
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
                self.health.observe(&self.db, e);
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
/// waiting unless nothing at all is ready and `wait` is set. A key already in the batch defers
/// the later write to a following batch, so writes to one key commit in the order they were
/// queued. Returns `None` once the queue is closed and everything has been handed out, or
/// (`wait` unset) when nothing is ready.
pub(crate) async fn next_batch(
    rx: &mut mpsc::Receiver<Request>,
    pending: &mut VecDeque<Request>,
    wait: bool,
) -> Option<Vec<Request>> {
    let mut batch = Vec::new();
    let mut keys = HashSet::new();
    let mut deferred = VecDeque::new();
    while let Some(req) = pending.pop_front() {
        if batch.len() < MAX_BATCH && !keys.contains(&req.write.write.key) {
            keys.insert(req.write.write.key.clone());
            batch.push(req);
        } else {
            deferred.push_back(req);
        }
    }
    if batch.is_empty() {
        let req = if wait {
            rx.recv().await?
        } else {
            rx.try_recv().ok()?
        };
        keys.insert(req.write.write.key.clone());
        batch.push(req);
    }
    // Bound `deferred` too, so a flood of writes to one key is not pulled into memory at once.
    while batch.len() < MAX_BATCH && deferred.len() < MAX_BATCH {
        let Ok(req) = rx.try_recv() else { break };
        if keys.contains(&req.write.write.key) {
            deferred.push_back(req);
        } else {
            keys.insert(req.write.write.key.clone());
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

/// The committed state a write replaces: its RV and object (metadata.resourceVersion absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prev {
    pub rv: i64,
    pub object: Value,
}

/// The database's answer to one write: `Ok(prev)` = it passed its checks (`prev` is the state it
/// replaces, `None` for a create), or the error that failed it alone.
pub(crate) type Verdict = StorageResult<Option<Prev>>;

/// A batch applied: each write's result, in order, and when any write committed, the batch's
/// last RV and its events (for this process's watch cache, see `journal`).
pub(crate) struct Applied {
    pub results: Vec<StorageResult<WriteOutcome>>,
    pub committed: Option<(i64, Vec<Event>)>,
}

fn check_preconditions(pre: &Preconditions, cur_uid: &str, cur_rv: i64) -> StorageResult<()> {
    // Same order as apimachinery's Preconditions.Check: uid, then resourceVersion.
    if let Some(uid) = &pre.uid
        && uid != cur_uid
    {
        return Err(StorageError::UidMismatch {
            expected: uid.clone(),
            actual: cur_uid.to_owned(),
        });
    }
    if let Some(rv) = pre.rv
        && rv != cur_rv
    {
        return Err(StorageError::Conflict { current: cur_rv });
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

/// Readies a create's or update's object for storage: its resourceVersion removed, serialized
/// once (`StoredText`), and refused when no engine could store it (`ObjectTooLarge`, `Rejected`
/// for a U+0000). Runs in the caller's task before the write is queued, so the writer, which
/// every batch waits on, does none of this work.
pub(crate) fn prepare(mut w: Write) -> StorageResult<Prepared> {
    let (WriteOp::Create { object } | WriteOp::Update { object, .. }) = &mut w.op else {
        return Ok(Prepared {
            write: w,
            text: None,
        });
    };
    strip_rv(object);
    let text = StoredText::new(object)
        .map_err(|e| StorageError::Rejected(format!("object cannot be serialized: {e}")))?;
    let size = text.bytes() as u64;
    if size > MAX_OBJECT_BYTES {
        return Err(StorageError::ObjectTooLarge(size));
    }
    if contains_nul(object) {
        return Err(StorageError::Rejected(
            "object contains a U+0000 character, which cannot be stored".into(),
        ));
    }
    Ok(Prepared {
        write: w,
        text: Some(text),
    })
}

/// Decides one write against the committed row. `wardle_apply_batch` (Postgres, V7/V8)
/// applies the same rules in SQL.
pub(crate) fn verdict(w: &Write, cur: Option<&Current>) -> Verdict {
    match (&w.op, cur) {
        (WriteOp::Create { .. }, Some(_)) => Err(StorageError::AlreadyExists),
        (WriteOp::Create { .. }, None) => Ok(None),
        (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => Err(StorageError::NotFound),
        (WriteOp::Update { pre, .. } | WriteOp::Delete { pre }, Some(cur)) => {
            check_preconditions(pre, &cur.uid, cur.rv)?;
            Ok(Some(Prev {
                rv: cur.rv,
                object: cur.object.clone(),
            }))
        }
    }
}

/// The engine's answer to a batch: each write's verdict (in order) and, if any committed, the
/// batch's last RV.
pub(crate) type Decided = (Vec<Verdict>, Option<i64>);

/// Runs one batch of prepared writes in one transaction. `tag` marks this process's NOTIFY
/// (Postgres). [`finish`] turns the answer into results and events.
pub(crate) async fn apply_batch(
    db: &Db,
    conn: &mut BatchConn,
    sql: &SqlSet,
    writes: &[Prepared],
    tag: &str,
) -> Result<Decided, sqlx::Error> {
    match (&sql.batch, writes.is_empty()) {
        (_, true) => Ok((Vec::new(), None)),
        (BatchPath::Function(call), false) => call_batch(db, conn, call, writes, tag).await,
        (
            BatchPath::Statements {
                read_current,
                apply,
            },
            false,
        ) => run_statements(db, sql.begin_write, read_current, apply, writes).await,
    }
}

/// Gives the writes that passed their RVs (`top - k + 1 ..= top`, in order) and builds their
/// outcomes and events. The writes are consumed: their objects become the outcomes.
fn finish(writes: Vec<Prepared>, (verdicts, top): Decided) -> Applied {
    let Some(top) = top else {
        // Nothing committed: every write failed on its own (or the batch was empty).
        let nothing = || StorageError::Unavailable("the batch committed nothing".into());
        let results = verdicts.into_iter().map(|d| d.and_then(|_| Err(nothing())));
        return Applied {
            results: results.collect(),
            committed: None,
        };
    };
    let k = verdicts.iter().filter(|d| d.is_ok()).count() as i64;
    let mut events = Vec::with_capacity(k as usize);
    let results = writes
        .into_iter()
        .zip(verdicts)
        .map(|(Prepared { write: w, text }, verdict)| {
            let prev = verdict?;
            let rv = top - k + 1 + events.len() as i64;
            let (kind, mut object) = match (w.op.into_object(), &prev) {
                (Some(o), None) => (EventType::Added, o),
                (Some(o), Some(_)) => (EventType::Modified, o),
                (None, Some(p)) => (EventType::Deleted, p.object.clone()),
                (None, None) => return Err(StorageError::NotFound),
            };
            inject_rv(&mut object, rv);
            // Creates and updates have their stored text; a delete serves the last state.
            let served = match &text {
                Some(text) => Obj::from_stored(text, rv, &object),
                None => Obj::from_value(&object),
            };
            let outcome = WriteOutcome {
                rv,
                object,
                served: served.clone(),
            };
            events.push(Event {
                rv,
                kind,
                key: w.key,
                object: served,
                prev_object: prev.map(|mut p| {
                    inject_rv(&mut p.object, p.rv);
                    Obj::from_value(&p.object)
                }),
            });
            Ok(outcome)
        })
        .collect();
    Applied {
        results,
        committed: Some((top, events)),
    }
}

/// One write as `wardle_apply_batch` takes it: one element of each of its argument arrays
/// (migration V8), in its argument order.
struct FunctionWrite<'a> {
    op: &'static str,
    resource: &'a str,
    namespace: &'a str,
    name: &'a str,
    uid: Option<&'a str>,
    object: Option<&'a str>,
    labels: Option<&'a str>,
    pre_uid: Option<&'a str>,
    pre_rv: Option<i64>,
    actor: &'a str,
    audit_id: Option<&'a str>,
}

/// One write's answer from `wardle_apply_batch`.
#[derive(Deserialize)]
struct FunctionReply {
    status: String,
    rv: Option<i64>,
    cur_uid: Option<String>,
    cur_rv: Option<i64>,
    prev: Option<Value>,
}

fn function_write(p: &Prepared) -> FunctionWrite<'_> {
    let w = &p.write;
    let object = w.op.object();
    let (op, pre) = match &w.op {
        WriteOp::Create { .. } => ("create", None),
        WriteOp::Update { pre, .. } => ("update", Some(pre)),
        WriteOp::Delete { pre } => ("delete", Some(pre)),
    };
    FunctionWrite {
        op,
        resource: &w.key.resource,
        namespace: &w.key.namespace,
        name: &w.key.name,
        uid: object.and_then(uid_of),
        object: p.text.as_ref().map(StoredText::text),
        labels: p.text.as_ref().map(StoredText::labels_json),
        pre_uid: pre.and_then(|p| p.uid.as_deref()),
        pre_rv: pre.and_then(|p| p.rv),
        actor: &w.actor,
        audit_id: (!w.audit_id.is_empty()).then_some(w.audit_id.as_str()),
    }
}

/// Turns a reply into the write's verdict (the statuses of migrations V5-V8).
fn reply_verdict(w: &Write, r: FunctionReply) -> Verdict {
    let pre = match &w.op {
        WriteOp::Update { pre, .. } | WriteOp::Delete { pre } => Some(pre),
        WriteOp::Create { .. } => None,
    };
    match (r.status.as_str(), r.cur_rv) {
        ("ok", _) => Ok(r.cur_rv.zip(r.prev).map(|(rv, object)| Prev { rv, object })),
        ("exists", _) => Err(StorageError::AlreadyExists),
        ("missing", _) => Err(StorageError::NotFound),
        ("uid", _) => Err(StorageError::UidMismatch {
            expected: pre.and_then(|p| p.uid.clone()).unwrap_or_default(),
            actual: r.cur_uid.unwrap_or_default(),
        }),
        ("conflict", Some(current)) => Err(StorageError::Conflict { current }),
        (status, _) => Err(StorageError::Unavailable(format!(
            "wardle_apply_batch answered {status:?}"
        ))),
    }
}

/// Postgres: the whole batch in one call (one round trip, one transaction).
async fn call_batch(
    db: &Db,
    conn: &mut BatchConn,
    call: &'static str,
    writes: &[Prepared],
    tag: &str,
) -> Result<(Vec<Verdict>, Option<i64>), sqlx::Error> {
    use sqlx::postgres::PgBindIterExt;
    let batch: Vec<FunctionWrite> = writes.iter().map(function_write).collect();
    // Each column is encoded straight from the writes, in binary (no JSON to parse).
    let bind = |q: PgQuery<'static>| {
        let b = &batch;
        q.bind(b.iter().map(|w| w.op).bind_iter())
            .bind(b.iter().map(|w| w.resource).bind_iter())
            .bind(b.iter().map(|w| w.namespace).bind_iter())
            .bind(b.iter().map(|w| w.name).bind_iter())
            .bind(b.iter().map(|w| w.uid).bind_iter())
            .bind(b.iter().map(|w| w.object).bind_iter())
            .bind(b.iter().map(|w| w.labels).bind_iter())
            .bind(b.iter().map(|w| w.pre_uid).bind_iter())
            .bind(b.iter().map(|w| w.pre_rv).bind_iter())
            .bind(b.iter().map(|w| w.actor).bind_iter())
            .bind(b.iter().map(|w| w.audit_id).bind_iter())
            .bind(tag.to_owned())
    };
    let rows = db.fetch_batch(conn, call, bind).await?;
    let text = rows
        .first()
        .and_then(|r| r.first())
        .ok_or(sqlx::Error::RowNotFound)?
        .text()?;
    let replies: Vec<FunctionReply> =
        serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))?;
    if replies.len() != writes.len() {
        return Err(sqlx::Error::Protocol(format!(
            "wardle_apply_batch answered {} writes of {}",
            replies.len(),
            writes.len()
        )));
    }
    let top = replies.iter().filter_map(|r| r.rv).max();
    let verdicts = writes
        .iter()
        .zip(replies)
        .map(|(p, r)| reply_verdict(&p.write, r))
        .collect();
    Ok((verdicts, top))
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

/// The row the `Statements` path stores for a write that passed (`ord` is added by the caller).
fn row(w: &Write, cur: Option<&Current>) -> Value {
    let new_uid = w.op.object().and_then(uid_of);
    let (kind, uid, object) = match (w.op.object(), cur) {
        (Some(o), None) => ("ADDED", new_uid.unwrap_or_default(), o),
        (Some(o), Some(c)) => ("MODIFIED", new_uid.unwrap_or(&c.uid), o),
        (None, Some(c)) => ("DELETED", c.uid.as_str(), &c.object),
        (None, None) => ("DELETED", "", &Value::Null),
    };
    json!({
        "resource": w.key.resource, "namespace": w.key.namespace, "name": w.key.name,
        "uid": uid, "type": kind, "object": object,
        "prev_rv": cur.map(|c| c.rv), "prev_object": cur.map(|c| &c.object),
        "create_rv": cur.map(|c| c.create_rv), "actor": w.actor,
        "audit_id": (!w.audit_id.is_empty()).then_some(w.audit_id.as_str()),
    })
}

/// SQLite: read the current rows, decide in Rust, apply, commit (one transaction).
async fn run_statements(
    db: &Db,
    begin: &'static str,
    read_current: &'static str,
    apply: &'static [&'static str],
    writes: &[Prepared],
) -> Result<(Vec<Verdict>, Option<i64>), sqlx::Error> {
    let mut tx = db.begin_batch(begin).await?;
    let writes = writes.iter().map(|p| &p.write);
    let keys: Vec<Value> = writes
        .clone()
        .map(|w| json!({"resource": w.key.resource, "namespace": w.key.namespace, "name": w.key.name}))
        .collect();
    let current: HashMap<Key, Current> = tx
        .fetch(read_current, &[Param::Text(Value::Array(keys).to_string())])
        .await?
        .iter()
        .map(|r| current_from_row(r))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let verdicts: Vec<Verdict> = writes
        .map(|w| {
            let cur = current.get(&w.key);
            let v = verdict(w, cur)?;
            let mut r = row(w, cur);
            r["ord"] = json!(rows.len() + 1);
            rows.push(r);
            Ok(v)
        })
        .collect();
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok((verdicts, None));
    }
    let k = rows.len() as i64;
    let params = [Param::Text(Value::Array(rows).to_string()), Param::Int(k)];
    let (first, rest) = apply
        .split_first()
        .ok_or_else(|| sqlx::Error::Protocol("empty apply statements".into()))?;
    let top = tx
        .fetch(first, &params)
        .await?
        .first()
        .and_then(|r| r.first())
        .ok_or(sqlx::Error::RowNotFound)?
        .int()?;
    for stmt in rest {
        tx.fetch(stmt, &params).await?;
    }
    tx.commit().await?;
    Ok((verdicts, Some(top)))
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

    fn prepared(w: Write) -> Prepared {
        prepare(w).expect("input")
    }

    #[test]
    fn create_conflicts_with_an_existing_row() {
        let w = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a"}}),
            },
        );
        assert_eq!(verdict(&w, Some(&cur(3))), Err(StorageError::AlreadyExists));
        assert_eq!(verdict(&w, None), Ok(None));
        let w = prepared(w);
        let r = row(&w.write, None);
        assert_eq!(r["type"], "ADDED");
        assert_eq!(r["prev_object"], Value::Null);
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
            verdict(&upd(Preconditions::default()), None),
            Err(StorageError::NotFound)
        );
        assert_eq!(
            verdict(
                &upd(Preconditions {
                    rv: Some(2),
                    uid: None
                }),
                Some(&cur(3))
            ),
            Err(StorageError::Conflict { current: 3 })
        );
        assert_eq!(
            verdict(
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
        let w = upd(Preconditions {
            rv: Some(3),
            uid: Some("u1".into()),
        });
        let prev = verdict(&w, Some(&cur(3))).expect("update");
        assert_eq!(prev.map(|p| p.rv), Some(3));
        let w = prepared(w);
        let r = row(&w.write, Some(&cur(3)));
        assert_eq!(r["prev_rv"], 3);
        assert_eq!(r["uid"], "u1", "uid falls back to the stored one");
        let del = write(
            "a",
            WriteOp::Delete {
                pre: Preconditions::default(),
            },
        );
        let del = prepared(del);
        assert_eq!(del.write.op.object(), None);
        assert!(del.text.is_none());
        let r = row(&del.write, Some(&cur(3)));
        assert_eq!(r["type"], "DELETED");
        assert_eq!(r["object"], cur(3).object);
    }

    #[test]
    fn committed_writes_get_consecutive_rvs_and_events() {
        let create = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a"}}),
            },
        );
        let del = write(
            "b",
            WriteOp::Delete {
                pre: Preconditions::default(),
            },
        );
        let writes = vec![prepared(create.clone()), prepared(create), prepared(del)];
        let prev = Prev {
            rv: 3,
            object: cur(3).object,
        };
        let verdicts = vec![Ok(None), Err(StorageError::AlreadyExists), Ok(Some(prev))];
        let applied = finish(writes, (verdicts, Some(11)));
        let rvs: Vec<_> = applied
            .results
            .iter()
            .map(|r| r.as_ref().map(|o| o.rv))
            .collect();
        assert_eq!(rvs, [Ok(10), Err(&StorageError::AlreadyExists), Ok(11)]);
        let (top, events) = applied.committed.expect("committed");
        assert_eq!(top, 11);
        let kinds: Vec<_> = events.iter().map(|e| (e.rv, e.kind)).collect();
        assert_eq!(kinds, [(10, EventType::Added), (11, EventType::Deleted)]);
        let prev = events[1].prev_object.as_ref().expect("prev");
        assert_eq!(prev.value()["metadata"]["resourceVersion"], "3");
        assert_eq!(
            events[1].object.value()["metadata"]["resourceVersion"],
            "11"
        );
    }

    #[test]
    fn resource_version_is_never_stored() {
        let w = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a", "resourceVersion": "9"}}),
            },
        );
        let w = prepared(w);
        assert_eq!(
            w.write.op.object(),
            Some(&json!({"metadata": {"name": "a"}}))
        );
        let text = w.text.expect("stored text");
        assert_eq!(text.text(), r#"{"metadata":{"name":"a"}}"#);
    }

    #[test]
    fn nul_characters_fail_only_that_write() {
        let w = write(
            "a",
            WriteOp::Create {
                object: json!({"metadata": {"name": "a"}, "spec": {"x": "a\u{0}b"}}),
            },
        );
        assert!(matches!(prepare(w), Err(StorageError::Rejected(_))));
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
        assert!(prepare(big(1000)).is_ok());
        assert!(matches!(
            prepare(big(MAX_OBJECT_BYTES as usize)),
            Err(StorageError::ObjectTooLarge(n)) if n > MAX_OBJECT_BYTES
        ));
    }

    fn req(name: &str) -> (Request, oneshot::Receiver<StorageResult<WriteOutcome>>) {
        let (reply, rx) = oneshot::channel();
        (
            Request {
                write: prepared(write(
                    name,
                    WriteOp::Delete {
                        pre: Preconditions::default(),
                    },
                )),
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
        let names = |b: Vec<Request>| {
            b.into_iter()
                .map(|r| r.write.write.key.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(next_batch(&mut rx, &mut pending, true).await.expect("1")),
            ["a", "b", "c"]
        );
        assert_eq!(
            names(next_batch(&mut rx, &mut pending, true).await.expect("2")),
            ["a"]
        );
        assert_eq!(
            names(next_batch(&mut rx, &mut pending, true).await.expect("3")),
            ["a"]
        );
        assert!(next_batch(&mut rx, &mut pending, true).await.is_none());
    }
}
