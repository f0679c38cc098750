//! The storage contract: keys, stored objects, writes, list chunks and storage errors.
//! The registry talks to storage only through these types, whichever engine is underneath.

pub use super::object::Obj;
use serde_json::Value;

/// Where an object lives: `(resource, namespace, name)`; namespace is "" for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        Key {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// An object as stored: storage-version JSON with `metadata.resourceVersion` set to `rv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub key: Key,
    pub rv: i64,
    pub object: Obj,
}

/// Preconditions checked inside the write transaction, against the row as committed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preconditions {
    /// The current row must have exactly this resourceVersion.
    pub rv: Option<i64>,
    /// The current row must have exactly this uid.
    pub uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Insert; fails with `AlreadyExists` if the key exists.
    Create { object: Value },
    /// Replace; fails with `NotFound` if missing, `Conflict`/`UidMismatch` if preconditions fail.
    Update { object: Value, pre: Preconditions },
    /// Remove; the DELETED event carries the last stored state.
    Delete { pre: Preconditions },
}

impl WriteOp {
    /// The object a create or update stores; `None` for a delete, which stores nothing new.
    pub fn object(&self) -> Option<&Value> {
        match self {
            WriteOp::Create { object } | WriteOp::Update { object, .. } => Some(object),
            WriteOp::Delete { .. } => None,
        }
    }

    /// [`WriteOp::object`], taken.
    pub fn into_object(self) -> Option<Value> {
        match self {
            WriteOp::Create { object } | WriteOp::Update { object, .. } => Some(object),
            WriteOp::Delete { .. } => None,
        }
    }
}

/// One write as the registry hands it to the group-commit writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub key: Key,
    pub op: WriteOp,
    /// The authenticated user, recorded in `events.actor`.
    pub actor: String,
    /// The audit ID of the request that made the write, recorded in `events.audit_id` (NULL if
    /// empty), so a change leads to its audit event.
    pub audit_id: String,
}

/// What a successful write produced.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The new resourceVersion (the event's RV).
    pub rv: i64,
    /// Create/Update: the new object; Delete: the last state. RV injected = `rv`.
    pub object: Value,
    /// `object` as the watch cache serves it (the same `Obj` its event carries): a JSON answer
    /// is this text rather than a second encoding of `object`.
    pub served: Obj,
}

/// A slice of a list at one resourceVersion, in (namespace, name) byte order.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The RV the chunk was read at (the committed horizon for a consistent read).
    pub rv: i64,
    pub items: Vec<Stored>,
    /// True if more rows follow the last item of this chunk.
    pub more: bool,
}

/// Failures storage reports; the registry turns them into `ApiError`s with the object's names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("already exists")]
    AlreadyExists,
    #[error("not found")]
    NotFound,
    /// The rv precondition failed; `current` is the stored rv.
    #[error("conflict: stored resourceVersion is {current}")]
    Conflict { current: i64 },
    #[error("uid precondition failed: expected {expected}, stored {actual}")]
    UidMismatch { expected: String, actual: String },
    /// The requested RV is below the compaction horizon.
    #[error("resource version {requested} is compacted (horizon {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// The requested RV is above the committed horizon.
    #[error("resource version {requested} is newer than the current {current}")]
    TooLarge { requested: i64, current: i64 },
    /// The object to store is larger than [`MAX_OBJECT_BYTES`] (its size in bytes).
    #[error("the object is {0} bytes, more than the {MAX_OBJECT_BYTES} an object may have")]
    ObjectTooLarge(u64),
    /// The database refused this write's data (a value it cannot hold, a key too large for its
    /// index): the client's input, not the database's health, is at fault.
    #[error("the database refused the object: {0}")]
    Rejected(String),
    /// The database cannot be reached or the transaction failed for reasons outside the request.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The largest object wardle stores, as compact JSON: the request body limit (3 MiB). Go's
/// bound is etcd's request limit (1.5 MiB by default); without one, patches could grow an
/// object without end (each within the body limit), and every watcher and list would carry it.
pub const MAX_OBJECT_BYTES: u64 = 3 * 1024 * 1024;

/// Upper bounds of the batch-size histogram buckets in [`WriterStats::batch_sizes`]; the last
/// bucket (`usize::MAX`) catches anything larger.
pub const BATCH_SIZE_BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, usize::MAX];

/// Group-commit counters of this process's writer (for tests and `/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct WriterStats {
    /// Batches whose transaction completed (committed, or rolled back because every write in it
    /// failed its precondition); each commit has one counter increment.
    pub batches: u64,
    /// Writes committed, i.e. that got a resourceVersion (each is one event).
    pub writes: u64,
    /// Write requests answered from committed batches, including those whose precondition failed.
    pub requests: u64,
    /// Transactions that failed as a whole (every write in them got `Unavailable`).
    pub failed_batches: u64,
    /// The most write requests seen in one committed batch.
    pub max_batch: usize,
    /// `(upper bound, count)` per bucket of [`BATCH_SIZE_BUCKETS`] over requests per committed
    /// batch; not cumulative.
    pub batch_sizes: Vec<(usize, u64)>,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            batches: 0,
            writes: 0,
            requests: 0,
            failed_batches: 0,
            max_batch: 0,
            batch_sizes: BATCH_SIZE_BUCKETS.iter().map(|&le| (le, 0)).collect(),
        }
    }
}

impl WriterStats {
    /// Records one committed batch of `size` requests, `committed` of which got an RV.
    pub fn record_batch(&mut self, size: usize, committed: usize) {
        self.batches += 1;
        self.requests += size as u64;
        self.writes += committed as u64;
        self.max_batch = self.max_batch.max(size);
        if let Some(bucket) = self.batch_sizes.iter_mut().find(|(le, _)| size <= *le) {
            bucket.1 += 1;
        }
    }
}

/// What a watch event did to its key (the `type` column of `events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// Parses the `events.type` column.
    pub fn parse(s: &str) -> Option<EventType> {
        match s {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }

    /// The Kubernetes watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One row of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub rv: i64,
    pub kind: EventType,
    pub key: Key,
    /// The new state (for DELETED: the last state), `metadata.resourceVersion` = `rv`.
    pub object: Obj,
    /// The state before this event, resourceVersion = its own RV; `None` for ADDED. The HTTP layer
    /// needs it for selector transitions (matched before, not now: DELETED, and vice versa).
    pub prev_object: Option<Obj>,
}

/// A page of the event log read in one snapshot together with the counter and the compaction
/// horizon, so a missing RV can be told apart: compacted (`<= compacted`) or a bug.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// The committed horizon in the same snapshot: every RV `<= current` is committed.
    pub current: i64,
    /// Events `<= compacted` may have been deleted.
    pub compacted: i64,
    /// Events with RV above the requested one, in RV order.
    pub events: Vec<Event>,
}
