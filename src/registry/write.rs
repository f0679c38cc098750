//! create, update (PUT), patch and delete: the write verbs of the generic Store.

use super::{Ctx, Store, being_deleted, check_fields, finalizers, meta_str};
use crate::admission::attributes::{Attributes, Operation};
use crate::apimachinery::decode::FieldValidation;
use crate::apimachinery::managed_fields;
use crate::apimachinery::meta;
use crate::apimachinery::names;
use crate::apimachinery::options::{DeleteOptions, Propagation, WriteOptions};
use crate::apimachinery::patch::{self, PatchType};
use crate::apimachinery::status::{ApiError, ApiResult, FieldError};
use crate::storage::types::{Preconditions, StorageError, Write, WriteOp};
use serde_json::{Value, json};

/// How often a write that raced another writer is retried before giving up with a 409.
pub(super) const MAX_RETRIES: usize = 16;
/// Go retries a generateName collision this many times.
const NAME_ATTEMPTS: usize = 8;

/// The outcome of DELETE.
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// Finalizers hold it; this is the object with deletionTimestamp set.
    Pending(Value),
}

/// Fields the server owns, wiped from a create's body (Go's WipeObjectMetaSystemFields, plus
/// resourceVersion, which Go refuses with a 500). `generation` is not among them: Go keeps a
/// client's value on create (and validates it), and only updates pin it.
const SYSTEM_FIELDS: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

pub(super) fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Compare two objects ignoring managedFields timestamps (Go does the same so that a no-op
/// update by the same manager does not count as a change).
fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    }
    strip(a) == strip(b)
}

pub(super) fn parse_rv_field(obj: &Value) -> ApiResult<Option<i64>> {
    match obj["metadata"].get("resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}"))),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid resource version: {other}"
        ))),
    }
}

/// The stored version a write starts from, parsed: writes edit and compare trees.
pub(super) struct Current {
    pub(super) rv: i64,
    pub(super) object: Value,
}

impl Store {
    pub(super) fn manager(&self, ctx: &Ctx<'_>, opts: &WriteOptions) -> ApiResult<String> {
        match &opts.field_manager {
            Some(m) => {
                managed_fields::validate_manager(m)?;
                Ok(m.clone())
            }
            None => Ok(managed_fields::default_manager(ctx.user_agent)),
        }
    }

    /// Submit one write (or pretend to, for dryRun).
    async fn commit(&self, ctx: &Ctx<'_>, name: &str, op: WriteOp) -> Result<Value, StorageError> {
        let out = self
            .storage
            .write(Write {
                key: ctx.key(name),
                op,
                actor: ctx.user.name.clone(),
                audit_id: ctx.audit_id.to_string(),
            })
            .await?;
        Ok(out.object)
    }

    /// Check the body's apiVersion/kind against the URL (they may be omitted).
    pub(super) fn check_type_meta(ctx: &Ctx<'_>, obj: &Value) -> ApiResult<()> {
        let expected = ctx.api_version();
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
            && !av.is_empty()
            && av != expected
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected})"
            )));
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str)
            && !k.is_empty()
            && k != ctx.resource.kind()
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                ctx.resource.kind()
            )));
        }
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        Ok(())
    }

    /// The body's namespace must be empty or the URL's; cluster-scoped kinds have none.
    pub(super) fn settle_namespace(ctx: &Ctx<'_>, obj: &mut Value) -> ApiResult<()> {
        let body_ns = meta_str(obj, "namespace").to_string();
        let m = meta_mut(obj);
        if ctx.resource.namespaced() {
            if !body_ns.is_empty() && body_ns != ctx.namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            m.insert("namespace".into(), json!(ctx.namespace));
        } else {
            m.remove("namespace");
        }
        Ok(())
    }

    /// POST: returns the stored object (201).
    pub async fn create(&self, ctx: &Ctx<'_>, obj: Value, opts: &WriteOptions) -> ApiResult<Value> {
        self.create_inner(ctx, obj, opts, true).await
    }

    /// create; `record` is false when managedFields were already computed (server-side apply).
    pub(super) async fn create_inner(
        &self,
        ctx: &Ctx<'_>,
        mut obj: Value,
        opts: &WriteOptions,
        record: bool,
    ) -> ApiResult<Value> {
        let r = ctx.resource;
        Self::check_type_meta(ctx, &obj)?;
        Self::settle_namespace(ctx, &mut obj)?;
        // A create naming a resourceVersion is a client mistake. Go's etcd3 storage refuses it
        // with a 500 (`errResourceVersionSetOnCreate`, for any non-zero number) while its dry run
        // echoes the value; here it is a 422, dry run or not. Apply (`record` false) takes a
        // resourceVersion as a precondition instead, checked by its caller.
        let rv_set = meta_str(&obj, "resourceVersion")
            .parse::<u64>()
            .ok()
            .filter(|rv| record && *rv != 0);
        let m = meta_mut(&mut obj);
        for f in SYSTEM_FIELDS {
            m.remove(*f);
        }
        r.default(ctx.version, &mut obj);
        let manager = self.manager(ctx, opts)?;
        let now = meta::timestamp_now();
        if record {
            // Go diffs a create against the kind's empty object, so `spec: {}` itself isn't owned.
            let empty = r.hub_to_version(ctx.version, json!({"metadata": {}}));
            managed_fields::record_update(
                Some(&empty),
                &mut obj,
                &manager,
                &ctx.api_version(),
                &now,
            );
        }

        // Admission sees the name as sent: a generateName create has none yet (as in Go).
        let requested_name = meta_str(&obj, "name").to_string();
        let mut attrs = ctx.admission(
            Operation::Create,
            &requested_name,
            None,
            opts.dry_run,
            Some(&manager),
        );
        self.admit(ctx, &attrs, &mut obj).await?;
        let mut errs = r.validate_versioned(ctx.version, &obj);
        if let Some(rv) = rv_set {
            errs.push(FieldError::invalid(
                "metadata.resourceVersion",
                rv.to_string(),
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let requested_name = meta_str(&obj, "name").to_string();

        let generate = meta_str(&obj, "generateName").to_string();
        let generated = requested_name.is_empty() && !generate.is_empty();
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now));

        for attempt in 0..NAME_ATTEMPTS {
            if generated {
                meta_mut(&mut obj).insert("name".into(), json!(names::generate(&generate)));
            }
            let name = meta_str(&obj, "name").to_string();
            let hub = r.to_hub(ctx.version, obj.clone());
            let mut all = errs.clone();
            all.extend(meta::validate_create(&hub["metadata"], r.namespaced()));
            all.extend(r.validate(&hub));
            if !all.is_empty() {
                return Err(ctx.invalid(&name, &all));
            }
            attrs.name.clone_from(&name);
            self.admission.validate(&attrs, Some(&obj)).await?;
            let stored = r.hub_to_storage(hub);
            if opts.dry_run {
                // Nothing is written, but the answer must be the one a real create would give.
                return match self.storage.get(&ctx.key(&name)).await {
                    Ok(Some(existing)) => {
                        Err(self.exists_error(ctx, &name, &existing.object.value()))
                    }
                    Ok(None) => Ok(stored),
                    Err(e) => Err(ctx.storage_error(&name, e)),
                };
            }
            match self
                .commit(ctx, &name, WriteOp::Create { object: stored })
                .await
            {
                Ok(object) => return Ok(object),
                Err(StorageError::AlreadyExists) if generated && attempt + 1 < NAME_ATTEMPTS => {
                    continue;
                }
                Err(StorageError::AlreadyExists) if generated => {
                    let mut e = ApiError::already_exists(&r.group_resource(), &name);
                    e.message.push_str(
                        ", the server was not able to generate a unique name for the object",
                    );
                    if let Some(d) = e.details.as_mut() {
                        d.retry_after_seconds = Some(1);
                    }
                    return Err(e);
                }
                Err(StorageError::AlreadyExists) => {
                    let existing = self.storage.get(&ctx.key(&name)).await.ok().flatten();
                    return Err(match existing {
                        Some(s) => self.exists_error(ctx, &name, &s.object.value()),
                        None => ApiError::already_exists(&r.group_resource(), &name),
                    });
                }
                Err(e) => return Err(ctx.storage_error(&name, e)),
            }
        }
        Err(ApiError::internal("name generation did not converge"))
    }

    /// Mutating admission of `obj` (versioned JSON of the request's version); what webhooks
    /// changed must still be an object of this kind in this namespace, with fields of the
    /// right types.
    async fn admit(&self, ctx: &Ctx<'_>, attrs: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
        self.admission
            .mutate(&self.cache, attrs, Some(&mut *obj))
            .await?;
        Self::check_type_meta(ctx, obj)?;
        Self::settle_namespace(ctx, obj)?;
        check_fields(ctx, obj, Vec::new(), FieldValidation::Ignore, false)?;
        Ok(())
    }

    fn exists_error(&self, ctx: &Ctx<'_>, name: &str, existing: &Value) -> ApiError {
        let mut e = ApiError::already_exists(&ctx.resource.group_resource(), name);
        if being_deleted(existing) {
            e.message = format!("object is being deleted: {}", e.message);
        }
        e
    }

    pub(super) async fn current(&self, ctx: &Ctx<'_>, name: &str) -> ApiResult<Current> {
        match self.storage.get(&ctx.key(name)).await {
            Ok(Some(s)) => Ok(Current {
                rv: s.rv,
                object: s.object.value(),
            }),
            Ok(None) => Err(ApiError::not_found(&ctx.resource.group_resource(), name)),
            Err(e) => Err(ctx.storage_error(name, e)),
        }
    }

    /// PUT: the body must carry the resourceVersion it was based on.
    pub async fn update(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        Self::check_type_meta(ctx, &obj)?;
        let body_name = meta_str(&obj, "name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        Self::settle_namespace(ctx, &mut obj)?;
        // Go's order (registry Store.Update): the object must exist (Flunders and Fischers do
        // not allow create-on-update), then a uid in the body is a storage precondition, then
        // the resourceVersion must be given and current.
        let rv_field = parse_rv_field(&obj)?;
        let old = self.current(ctx, name).await?;
        let uid = meta_str(&obj, "uid");
        let old_uid = meta_str(&old.object, "uid");
        if !uid.is_empty() && uid != old_uid {
            return Err(ctx.uid_precondition_failed(name, uid, old_uid));
        }
        let Some(rv) = rv_field else {
            let gr = ctx.resource.group_resource();
            return Err(ApiError::invalid(
                &gr.to_string(),
                ctx.resource.plural(),
                crate::api::GROUP,
                name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    0,
                    "must be specified for an update",
                )],
            ));
        };
        if old.rv != rv {
            return Err(ApiError::modified_conflict(
                &ctx.resource.group_resource(),
                name,
            ));
        }
        let manager = self.manager(ctx, opts)?;
        self.update_from(ctx, name, &old, obj, Some(&manager), opts.dry_run)
            .await
            .map_err(|e| e.into_api(ctx, name))
    }

    /// The part of update shared by PUT and PATCH: `new` is versioned JSON based on `old`.
    /// `manager` None: managedFields were already computed (server-side apply).
    pub(super) async fn update_from(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        old: &Current,
        mut new: Value,
        manager: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, UpdateError> {
        let r = ctx.resource;
        r.default(ctx.version, &mut new);
        let attrs = ctx.admission(Operation::Update, name, Some(&old.object), dry_run, manager);
        // The server owns these (Go's rest.BeforeUpdate): generation, creationTimestamp and a
        // deletionTimestamp already set are the stored ones whatever the body says; an empty uid
        // or a missing grace period is taken from the stored object; the rest is validated as
        // immutable below.
        {
            let old_meta = &old.object["metadata"];
            let m = meta_mut(&mut new);
            m.remove("resourceVersion");
            m.remove("selfLink");
            let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
            for f in ["generation", "creationTimestamp", "deletionTimestamp"] {
                match old_meta.get(f) {
                    Some(v) if set(Some(v)) => m.insert(f.into(), v.clone()),
                    _ if f == "generation" => m.remove(f),
                    _ => None,
                };
            }
            for f in ["uid", "deletionGracePeriodSeconds"] {
                if !set(m.get(f))
                    && let Some(v) = old_meta.get(f).filter(|v| set(Some(v)))
                {
                    m.insert(f.into(), v.clone());
                }
            }
        }
        if let Some(manager) = manager {
            let old_versioned = r.storage_to_version(ctx.version, old.object.clone());
            let convert = |obj: &Value, to: &str| ctx.convert(obj, to);
            managed_fields::record_update_with(
                Some(&old_versioned),
                &mut new,
                manager,
                &ctx.api_version(),
                &meta::timestamp_now(),
                Some(&convert),
            );
        }
        self.admit(ctx, &attrs, &mut new)
            .await
            .map_err(UpdateError::Api)?;
        let mut errs = r.validate_versioned(ctx.version, &new);
        let versioned = new.clone();
        let hub = r.to_hub(ctx.version, new);
        let old_hub = r.to_hub(r.storage_version(), old.object.clone());
        errs.extend(meta::validate_update(
            &hub["metadata"],
            &old_hub["metadata"],
            r.namespaced(),
        ));
        errs.extend(r.validate(&hub));
        if !errs.is_empty() {
            return Err(UpdateError::Api(ctx.invalid(name, &errs)));
        }
        self.admission
            .validate(&attrs, Some(&versioned))
            .await
            .map_err(UpdateError::Api)?;
        let stored = r.hub_to_storage(hub);
        if same_ignoring_times(&stored, &old.object) {
            return Ok(old.object.clone());
        }
        let pre = Preconditions {
            rv: Some(old.rv),
            uid: None,
        };
        // Removing the last finalizer of an object being deleted completes the deletion. The
        // answer is the object as updated, at the resourceVersion it was updated from (Go's
        // deleteWithoutFinalizers returns the request's object, not the deleted one).
        if being_deleted(&stored) && finalizers(&stored).is_empty() {
            let mut last = stored;
            meta_mut(&mut last).insert("resourceVersion".into(), json!(old.rv.to_string()));
            if !dry_run {
                self.commit(ctx, name, WriteOp::Delete { pre })
                    .await
                    .map_err(UpdateError::Storage)?;
            }
            return Ok(last);
        }
        if dry_run {
            let mut out = stored;
            meta_mut(&mut out).insert("resourceVersion".into(), json!(old.rv.to_string()));
            return Ok(out);
        }
        self.commit(
            ctx,
            name,
            WriteOp::Update {
                object: stored,
                pre,
            },
        )
        .await
        .map_err(UpdateError::Storage)
    }

    /// PATCH: applied to the latest object; retried when another writer got there first,
    /// unless the patch itself names a resourceVersion.
    pub async fn patch(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
        validation: FieldValidation,
    ) -> ApiResult<Value> {
        let manager = self.manager(ctx, opts)?;
        let gr = ctx.resource.group_resource();
        for _ in 0..MAX_RETRIES {
            let old = self.current(ctx, name).await?;
            let original = ctx
                .resource
                .storage_to_version(ctx.version, old.object.clone());
            let mut patched = patch::apply_patch(patch_type, &original, body)?;
            check_fields(ctx, &mut patched, Vec::new(), validation, true)?;
            // The patched object is decoded into Go's types: empty metadata values vanish.
            meta::drop_empty_fields(&mut patched);
            Self::check_type_meta(ctx, &patched)?;
            let patched_name = meta_str(&patched, "name");
            if patched_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                )));
            }
            // A changed uid is no precondition here (Go's patcher has no object to take one
            // from): it fails update validation as immutable (422).
            let client_rv = parse_rv_field(&patched)?;
            if client_rv.is_some_and(|rv| rv != old.rv) {
                return Err(ApiError::modified_conflict(&gr, name));
            }
            Self::settle_namespace(ctx, &mut patched)?;
            match self
                .update_from(ctx, name, &old, patched, Some(&manager), opts.dry_run)
                .await
            {
                Ok(v) => return Ok(v),
                Err(UpdateError::Storage(StorageError::Conflict { .. })) if client_rv.is_none() => {
                    continue;
                }
                Err(e) => return Err(e.into_api(ctx, name)),
            }
        }
        Err(ApiError::modified_conflict(&gr, name))
    }

    /// DELETE: immediate, or graceful while finalizers remain.
    pub async fn delete(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        self.delete_admitted_as(ctx, name, opts, name).await
    }

    /// DELETE of `name` with admission seeing the name `admitted_name`: "" for the items of a
    /// deletecollection, as Go's static admission attributes of that request.
    pub(super) async fn delete_admitted_as(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        opts: &DeleteOptions,
        admitted_name: &str,
    ) -> ApiResult<Deleted> {
        for _ in 0..MAX_RETRIES {
            let old = self.current(ctx, name).await?;
            let uid = meta_str(&old.object, "uid").to_string();
            if let Some(want) = &opts.precondition_uid
                && *want != uid
            {
                return Err(ctx.precondition_conflict(name, "UID", want, &uid));
            }
            if let Some(want) = &opts.precondition_rv
                && *want != old.rv.to_string()
            {
                return Err(ctx.precondition_conflict(
                    name,
                    "ResourceVersion",
                    want,
                    &old.rv.to_string(),
                ));
            }
            let attrs = ctx.admission(
                Operation::Delete,
                admitted_name,
                Some(&old.object),
                opts.dry_run,
                None,
            );
            self.admission.mutate(&self.cache, &attrs, None).await?;
            self.admission.validate(&attrs, None).await?;
            let mut obj = old.object.clone();
            let mut fins = finalizers(&obj);
            // With the garbage collector on, Orphan/Foreground are finalizers the GC acts on.
            let extra = match opts.propagation {
                Some(Propagation::Orphan) => Some("orphan"),
                Some(Propagation::Foreground) => Some("foregroundDeletion"),
                _ => None,
            };
            if let Some(f) = extra
                && !fins.iter().any(|x| x == f)
            {
                fins.push(f.to_string());
            }
            let pre = Preconditions {
                rv: Some(old.rv),
                uid: Some(uid),
            };
            let result = if fins.is_empty() {
                if opts.dry_run {
                    return Ok(Deleted::Gone(obj));
                }
                self.commit(ctx, name, WriteOp::Delete { pre })
                    .await
                    .map(Deleted::Gone)
            } else {
                let unchanged = being_deleted(&obj) && fins == finalizers(&obj);
                if unchanged {
                    return Ok(Deleted::Pending(obj));
                }
                let m = meta_mut(&mut obj);
                m.insert("finalizers".into(), json!(fins));
                if m.get("deletionTimestamp").is_none_or(|v| v.is_null()) {
                    m.insert("deletionTimestamp".into(), json!(meta::timestamp_now()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                m.remove("resourceVersion");
                if opts.dry_run {
                    return Ok(Deleted::Pending(obj));
                }
                self.commit(ctx, name, WriteOp::Update { object: obj, pre })
                    .await
                    .map(Deleted::Pending)
            };
            match result {
                Ok(d) => return Ok(d),
                Err(StorageError::Conflict { .. }) if opts.precondition_rv.is_none() => continue,
                Err(e) => return Err(ctx.storage_error(name, e)),
            }
        }
        Err(ApiError::modified_conflict(
            &ctx.resource.group_resource(),
            name,
        ))
    }
}

/// An update failure that the patch loop may retry (a storage Conflict) or report.
pub(super) enum UpdateError {
    Api(ApiError),
    Storage(StorageError),
}

impl UpdateError {
    pub(super) fn into_api(self, ctx: &Ctx<'_>, name: &str) -> ApiError {
        match self {
            UpdateError::Api(e) => e,
            UpdateError::Storage(e) => ctx.storage_error(name, e),
        }
    }
}
