//! The generic Store: every verb for every declared resource, on top of storage.
//! Objects enter as versioned JSON of the request's version and leave as storage JSON (with
//! `metadata.resourceVersion`); the HTTP layer converts them to the version and format asked for.

mod apply;
mod list;
mod watch;
mod write;

pub use apply::Applied;

pub use list::ListResult;
pub use watch::{Watch, WatchEvent};
pub use write::{Created, Deleted};

/// The objects the registry hands out: an immutable stored version (storage JSON with its
/// resourceVersion) whose text the HTTP layer can splice into responses as it is.
pub use crate::storage::types::Obj;

use crate::admission::Admission;
use crate::admission::attributes::{Attributes, Operation};
use crate::api::{Resource, meta_schema};
use crate::apimachinery::decode::{self, FieldValidation};
use crate::apimachinery::options::ListOptions;
use crate::apimachinery::status::{ApiError, ApiResult, FieldError, GroupKind};
use crate::apimachinery::verb::Verb;
use crate::authn::UserInfo;
use crate::storage::Storage;
use crate::storage::cache::WatchCache;
use crate::storage::types::{Key, StorageError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// Who is asking for what: the resource, the version of the request, the namespace of the URL.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The request's verb: what storage failures are reported as.
    pub verb: &'a Verb,
    pub resource: &'static dyn Resource,
    pub version: &'static str,
    /// The URL's namespace; "" for cluster-scoped kinds and all-namespaces lists.
    pub namespace: &'a str,
    pub user: &'a UserInfo,
    /// The request's audit ID, stored with each event it writes (`events.audit_id`).
    pub audit_id: &'a str,
    pub user_agent: Option<&'a str>,
}

impl Ctx<'_> {
    pub fn key(&self, name: &str) -> Key {
        Key::new(self.resource.plural(), self.namespace, name)
    }

    fn api_version(&self) -> String {
        format!("{}/{}", crate::api::GROUP, self.version)
    }

    /// Converts a full object (carrying its apiVersion; the request's version if it has none)
    /// to the served apiVersion `to` (`wardle.example.com/v1beta1`): managedFields entries are
    /// judged in the version they were recorded in.
    fn convert(&self, obj: &Value, to: &str) -> Option<Value> {
        let r = self.resource;
        let to = r.version(to.strip_prefix(crate::api::GROUP)?.strip_prefix('/')?)?;
        let from = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|a| a.strip_prefix(crate::api::GROUP)?.strip_prefix('/'))
            .and_then(|v| r.version(v))
            .map_or(self.version, |d| d.name);
        if !obj.is_object() {
            return None;
        }
        Some(r.hub_to_version(to.name, r.to_hub(from, obj.clone())))
    }

    /// What admission sees of a write of `name`; `old` is the stored object (storage JSON).
    fn admission<'b>(
        &'b self,
        operation: Operation,
        name: &str,
        old: Option<&Value>,
        dry_run: bool,
        field_manager: Option<&str>,
    ) -> Attributes<'b> {
        Attributes {
            operation,
            resource: self.resource,
            version: self.version,
            namespace: self.namespace,
            name: name.to_string(),
            user: self.user,
            dry_run,
            field_manager: field_manager.map(str::to_string),
            old: old.map(|o| self.resource.storage_to_version(self.version, o.clone())),
        }
    }

    fn invalid(&self, name: &str, errs: &[FieldError]) -> ApiError {
        ApiError::invalid(&self.resource.group_kind(), name, errs)
    }

    /// A storage failure of this request as the Status its client gets
    /// (`ApiError::from_storage`, with the request's verb).
    fn storage_error(&self, name: &str, e: StorageError) -> ApiError {
        let r = self.resource;
        ApiError::from_storage(self.verb, &r.group_resource(), &r.group_kind(), name, e)
    }

    /// 409 for a PUT whose body names another uid than the stored object's: Go makes the body's
    /// uid a storage precondition, whose failure is an etcd3 StorageError wrapped in a Conflict.
    /// The key is the one the Go sample-apiserver's etcd layout would give.
    fn uid_precondition_failed(&self, name: &str, expected: &str, actual: &str) -> ApiError {
        let r = self.resource;
        let mut key = format!("/registry/{g}/{g}/{}", r.plural(), g = crate::api::GROUP);
        if r.namespaced() {
            key = format!("{key}/{}", self.namespace);
        }
        ApiError::conflict(
            &r.group_resource(),
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: {key}/{name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {expected}, UID in object meta: {actual}"
            ),
        )
    }

    /// Go's precondition message, which names the *Kind* (rest/delete.go).
    fn precondition_conflict(
        &self,
        name: &str,
        what: &str,
        expected: &str,
        actual: &str,
    ) -> ApiError {
        ApiError::precondition_conflict(&self.resource.group_kind(), name, what, expected, actual)
    }
}

/// The meta definitions (ObjectMeta, …) the kind schemas refer to; built once.
fn definitions() -> &'static serde_json::Map<String, Value> {
    static DEFS: OnceLock<serde_json::Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(meta_schema::definitions)
}

/// The kind's schema in `version` (`Resource::schema`), built once per kind and version and
/// shared: building it per request was ~9% of the server's CPU at 32 concurrent creates.
fn schema(r: &dyn Resource, version: &'static str) -> Arc<Value> {
    type Schemas = HashMap<(usize, &'static str), Arc<Value>>;
    static SCHEMAS: OnceLock<RwLock<Schemas>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(Default::default);
    // A kind is its static declaration: its address tells kinds apart whatever their names.
    let key = (std::ptr::from_ref(r.decl()) as usize, version);
    if let Some(s) = schemas.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return s.clone();
    }
    let built = Arc::new(r.schema(version));
    let mut schemas = schemas.write().unwrap_or_else(|p| p.into_inner());
    schemas.entry(key).or_insert(built).clone()
}

/// Unknown/duplicate fields and type errors of a decoded object, judged by the fieldValidation
/// mode: Strict fails, Warn records warnings on the request, Ignore does nothing. Type errors
/// always fail. Unknown fields are dropped from `obj` (Go decodes into typed structs, which have
/// no place for them), so they are never stored, served or recorded in managedFields.
///
/// Warnings go to the request's recorder (`admission::warnings`), as Go's decoder adds them to
/// the request context (`warning.AddWarning`): they are sent even when the request fails later
/// (a conflict, a validation error), not only with a success.
///
/// `type_errors` says how a type error is reported, after the Go decoder of that input.
pub fn check_fields(
    ctx: &Ctx<'_>,
    obj: &mut Value,
    duplicates: Vec<String>,
    mode: FieldValidation,
    is_patch: bool,
    type_errors: TypeErrors<'_>,
) -> ApiResult<()> {
    let r = ctx.resource;
    let schema = schema(r, ctx.version);
    // One walk finds both type errors and unknown fields (it runs on every write).
    let found = decode::check_schema(obj, &schema, definitions());
    if let Some(first) = found.type_errors.first() {
        match type_errors {
            TypeErrors::Body => {}
            TypeErrors::PatchedJson(quote) => return Err(patch_invalid(&quote(obj), first)),
            TypeErrors::PatchedMap(quote) => {
                let why = decode::converter_error(first).unwrap_or_else(|| first.clone());
                return Err(patch_invalid(&quote(obj), &why));
            }
        }
        return Err(ApiError::bad_request(format!(
            "{kind} in version {v:?} cannot be handled as a {kind}: {first}",
            kind = r.kind(),
            v = ctx.version
        )));
    }
    if crate::storage::contains_nul(obj) {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {v:?} cannot be handled as a {kind}: strings may not contain the NUL character (U+0000)",
            kind = r.kind(),
            v = ctx.version
        )));
    }
    decode::prune(obj, &found);
    if found.typed_rewrites {
        decode::normalize(obj, &schema, definitions());
    }
    let problems = decode::strict_problems(&duplicates, &found.unknown);
    for w in decode::strict_outcome(mode, problems, r.kind(), ctx.version, is_patch)? {
        crate::admission::warnings::add(&w);
    }
    Ok(())
}

/// What Go's typed decode makes of an object whose values already passed `check_fields` or
/// apply's configuration check: fields the kind's types lack dropped, nulls and timestamps as
/// Go's types hold them (`decode::prune`, `decode::normalize`). For apply's merged object,
/// which Go decodes into the kind's structs before storing.
pub fn to_typed(ctx: &Ctx<'_>, obj: &mut Value) {
    let schema = schema(ctx.resource, ctx.version);
    let found = decode::check_schema(obj, &schema, definitions());
    decode::prune(obj, &found);
    decode::normalize(obj, &schema, definitions());
}

/// The storage JSON of a hub object, as Go's encoder writes it: converted to the storage
/// version, empty `omitempty` fields left out (`decode::omit_empty`). What is stored is what
/// every read, watch event and write answer then serves.
pub fn to_storage(r: &dyn Resource, hub: Value) -> Value {
    let mut stored = r.hub_to_storage(hub);
    let schema = schema(r, r.storage_version());
    decode::omit_empty(&mut stored, &schema, definitions());
    stored
}

/// A decoded create or update body as Go's fieldmanager sees it (the unstructured converter
/// honours `omitempty`, so `spec.flunderReference: ""` or `disallowedFlunders: []` is not a
/// field anyone manages), except for `metadata.managedFields`, which is taken as the request
/// sent it: an empty list there asks for a reset, which the fieldmanager reads first.
pub fn as_fieldmanager_sees(ctx: &Ctx<'_>, obj: &mut Value) {
    let meta = obj.get_mut("metadata").and_then(Value::as_object_mut);
    let requested = meta.and_then(|m| m.remove("managedFields"));
    let schema = schema(ctx.resource, ctx.version);
    decode::omit_empty(obj, &schema, definitions());
    if let (Some(mf), Some(m)) = (
        requested,
        obj.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        m.insert("managedFields".into(), mf);
    }
}

/// How [`check_fields`] reports a type error; the functions make the text Go's patchers quote
/// from the object checked (the patched JSON, or the patch map).
#[derive(Clone, Copy)]
pub enum TypeErrors<'q> {
    /// A request body (create, update, apply): 400 `<Kind> in version "<v>" cannot be handled
    /// as a <Kind>: <encoding/json's words>`.
    Body,
    /// The result of a JSON or merge patch, which Go decodes as JSON: 422 Invalid on field
    /// `patch` quoting it, encoding/json's words (AS:`handlers/patch.go` jsonPatcher).
    PatchedJson(&'q dyn Fn(&Value) -> String),
    /// The result of a strategic merge patch, which Go converts from a map: 422 Invalid on
    /// field `patch` quoting the patch, the unstructured converter's words (`smpPatcher`).
    PatchedMap(&'q dyn Fn(&Value) -> String),
}

/// Go's answer when the object a patch produced does not decode (AS:`handlers/patch.go`
/// `applyPatchToCurrentObject`, `applyPatchToObject`): 422 Invalid with no kind or name, one
/// cause on field `patch` quoting `quoted` (the patched object or the patch), `why` the detail.
pub fn patch_invalid(quoted: &str, why: &str) -> ApiError {
    ApiError::invalid(
        &GroupKind::default(),
        "",
        &[FieldError::invalid("patch", quoted, why)],
    )
}

/// The Store serves every declared resource; cheap to clone. Writes go to storage; reads come
/// from the watch cache (memory) whenever it holds the state asked for, else from storage.
#[derive(Clone)]
pub struct Store {
    pub storage: Storage,
    pub cache: WatchCache,
    admission: Admission,
}

impl Store {
    pub fn new(storage: Storage, cache: WatchCache, admission: Admission) -> Store {
        Store {
            storage,
            cache,
            admission,
        }
    }
}

/// Does this object carry a deletionTimestamp (graceful deletion in progress)?
fn being_deleted(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn finalizers(obj: &Value) -> Vec<String> {
    crate::apimachinery::meta::string_list(obj["metadata"].get("finalizers"))
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

/// Whether the object at `key` passes the request's label and field selectors.
pub fn selected(opts: &ListOptions, key: &Key, obj: &Obj) -> bool {
    opts.matches_parts(&key.namespace, &key.name, |k| obj.label(k))
}
