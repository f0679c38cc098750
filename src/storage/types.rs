//! The storage contract: keys, stored objects, writes, list chunks and storage errors.
//! The registry talks to storage only through these types, whichever engine is underneath.

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
        Key { resource: resource.into(), namespace: namespace.into(), name: name.into() }
    }
}

/// An object as stored: storage-version JSON with `metadata.resourceVersion` set to `rv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub key: Key,
    pub rv: i64,
    pub object: Value,
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

/// One write as the registry hands it to the group-commit writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub key: Key,
    pub op: WriteOp,
    /// The authenticated user, recorded in `events.actor`.
    pub actor: String,
}

/// What a successful write produced.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The new resourceVersion (the event's RV).
    pub rv: i64,
    /// Create/Update: the new object; Delete: the last state. RV injected = `rv`.
    pub object: Value,
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
    /// The database cannot be reached or the transaction failed for reasons outside the request.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type StorageResult<T> = Result<T, StorageError>;
