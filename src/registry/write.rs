//! create, update (PUT), patch and delete: the write verbs of the generic Store, and
//! `guaranteed_update`, the one read-modify-write loop that update, patch, apply and graceful
//! delete run their transforms in.

use super::{Ctx, Store, TypeErrors, being_deleted, check_fields, finalizers, meta_str};
use crate::admission::attributes::{Attributes, Operation};
use crate::apimachinery::decode::FieldValidation;
use crate::apimachinery::gofmt::Quoted;
use crate::apimachinery::managed_fields;
use crate::apimachinery::meta;
use crate::apimachinery::names;
use crate::apimachinery::options::{DeleteOptions, Propagation, WriteOptions};
use crate::apimachinery::patch::{self, PatchType};
use crate::apimachinery::status::{ApiError, ApiResult, FieldError, GroupKind};
use crate::storage::types::{Obj, Preconditions, StorageError, Write, WriteOp, WriteOutcome};
use serde_json::{Value, json};
use std::future::Future;

/// How often a write that raced another writer is retried before giving up with a 409.
const MAX_RETRIES: usize = 16;
/// Go retries a generateName collision this many times.
const NAME_ATTEMPTS: usize = 8;

/// The outcome of POST: the stored object, and the text the watch cache serves for it (None
/// for a dry run, which stores nothing), so a plain JSON answer need not encode it again.
pub struct Created {
    pub object: Value,
    pub served: Option<Obj>,
}

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

/// The resourceVersion an object names, as Go's `APIObjectVersioner.ObjectResourceVersion`
/// reads it: absent, null, "" and "0" are None (Go's 0, "unset"); otherwise decimal digits
/// (Go's ParseUint: no sign). A value no store can have reached compares unequal to every stored
/// one. Anything else is a 400 (Go: a 500 from the parse error).
pub(super) fn parse_rv_field(obj: &Value) -> ApiResult<Option<i64>> {
    match obj["metadata"].get("resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(rv) => Ok(Some(i64::try_from(rv).unwrap_or(i64::MAX))),
            Err(_) => Err(ApiError::bad_request(format!(
                "invalid resource version: {}",
                Quoted(s)
            ))),
        },
        Some(Value::String(s)) => Err(ApiError::bad_request(format!(
            "invalid resource version: {}",
            Quoted(s)
        ))),
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
    async fn commit(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        op: WriteOp,
    ) -> Result<WriteOutcome, StorageError> {
        self.storage
            .write(Write {
                key: ctx.key(name),
                op,
                actor: ctx.user.name.clone(),
                audit_id: ctx.audit_id.to_string(),
            })
            .await
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

    /// The body's namespace must be empty or the URL's; cluster-scoped kinds have none, and
    /// neither has a body sent to an empty namespace (`namespaces//flunders`), which validation
    /// then refuses (Go's `EnsureObjectNamespaceMatchesRequestNamespace`).
    pub(super) fn settle_namespace(ctx: &Ctx<'_>, obj: &mut Value) -> ApiResult<()> {
        let body_ns = meta_str(obj, "namespace").to_string();
        let m = meta_mut(obj);
        if ctx.resource.namespaced() && !ctx.namespace.is_empty() {
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

    /// Go's `GuaranteedUpdate` (k8s.io/apiserver storage/etcd3 + registry/generic Store.Update):
    /// the one read-modify-write loop. It reads the stored object (None when absent), hands it
    /// to `try_update`, and commits the write the transform asks for with the read
    /// resourceVersion as precondition. When another writer got there first (Conflict, or
    /// AlreadyExists for a create-on-apply) and the step allows it, it reads again and reruns
    /// the transform, at most `MAX_RETRIES` times, then answers 409. A step that carries a
    /// client's own precondition (a resourceVersion in the body, DeleteOptions.preconditions)
    /// is not retried: the client asked to fail rather than act on a newer object.
    pub(super) async fn guaranteed_update<T, F, Fut>(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        mut try_update: F,
    ) -> ApiResult<T>
    where
        F: FnMut(Option<Current>) -> Fut,
        Fut: Future<Output = ApiResult<Step<T>>>,
    {
        for _ in 0..MAX_RETRIES {
            let current = match self.storage.get(&ctx.key(name)).await {
                Ok(s) => s.map(|s| Current {
                    rv: s.rv,
                    object: s.object.value(),
                }),
                Err(e) => return Err(ctx.storage_error(name, e)),
            };
            let (op, retry, answer) = match try_update(current).await? {
                Step::Done(out) => return Ok(out),
                Step::Write { op, retry, answer } => (op, retry, answer),
            };
            match self.commit(ctx, name, op).await {
                Ok(out) => return Ok(answer(out.object)),
                Err(StorageError::Conflict { .. } | StorageError::AlreadyExists) if retry => {}
                Err(e) => return Err(ctx.storage_error(name, e)),
            }
        }
        Err(ApiError::modified_conflict(
            &ctx.resource.group_resource(),
            name,
        ))
    }

    /// POST: returns the stored object (201). A generateName create retries with a new name
    /// when the generated one is taken (Go's Store.Create does the same, outside
    /// GuaranteedUpdate: a create reads nothing it could re-read).
    pub async fn create(
        &self,
        ctx: &Ctx<'_>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Created> {
        let mut new = self.prepare_create(ctx, obj, opts, true).await?;
        for attempt in 1..=NAME_ATTEMPTS {
            let name = new.next_name();
            let stored = self.admit_create(ctx, &mut new, &name).await?;
            if opts.dry_run {
                let object = self.dry_run_create(ctx, &name, stored).await?;
                return Ok(Created {
                    object,
                    served: None,
                });
            }
            match self
                .commit(ctx, &name, WriteOp::Create { object: stored })
                .await
            {
                Ok(out) => {
                    return Ok(Created {
                        object: out.object,
                        served: Some(out.served),
                    });
                }
                Err(StorageError::AlreadyExists) if new.generated && attempt < NAME_ATTEMPTS => {}
                Err(StorageError::AlreadyExists) => {
                    return Err(self.create_exists_error(ctx, &name, new.generated).await);
                }
                Err(e) => return Err(ctx.storage_error(&name, e)),
            }
        }
        Err(ApiError::internal("name generation did not converge"))
    }

    /// The create step of a create-on-apply: `obj` carries its name and managedFields.
    pub(super) async fn create_step(
        &self,
        ctx: &Ctx<'_>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Step<Value>> {
        let mut new = self.prepare_create(ctx, obj, opts, false).await?;
        let name = new.next_name();
        let stored = self.admit_create(ctx, &mut new, &name).await?;
        if opts.dry_run {
            return self
                .dry_run_create(ctx, &name, stored)
                .await
                .map(Step::Done);
        }
        // Someone else creating it meanwhile is retried: the apply then merges into theirs.
        Ok(Step::Write {
            op: WriteOp::Create { object: stored },
            retry: true,
            answer: Box::new(|object| object),
        })
    }

    /// Everything a create does before its name is final: server-owned fields wiped,
    /// defaulting, managedFields (`record` false: already computed by server-side apply),
    /// uid and creationTimestamp, mutating admission.
    async fn prepare_create<'c>(
        &self,
        ctx: &'c Ctx<'_>,
        mut obj: Value,
        opts: &WriteOptions,
        record: bool,
    ) -> ApiResult<NewObject<'c>> {
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
            super::as_fieldmanager_sees(ctx, &mut obj);
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
        let attrs = ctx.admission(
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
        let generate = meta_str(&obj, "generateName").to_string();
        let generated = meta_str(&obj, "name").is_empty() && !generate.is_empty();
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now));
        Ok(NewObject {
            obj,
            errs,
            attrs,
            generate,
            generated,
        })
    }

    /// Validation (ObjectMeta, the kind's strategy) and validating admission of a create named
    /// `name`; the storage JSON to write.
    async fn admit_create(
        &self,
        ctx: &Ctx<'_>,
        new: &mut NewObject<'_>,
        name: &str,
    ) -> ApiResult<Value> {
        let r = ctx.resource;
        let mut hub = r.to_hub(ctx.version, new.obj.clone());
        r.prepare_for_create(&mut hub);
        let mut all = new.errs.clone();
        all.extend(meta::validate_create(&hub["metadata"], r.namespaced()));
        all.extend(r.validate(&hub));
        if !all.is_empty() {
            return Err(ctx.invalid(name, &all));
        }
        for w in r.warnings_on_create(&hub) {
            crate::admission::warnings::add(&w);
        }
        new.attrs.name = name.to_string();
        self.admission.validate(&new.attrs, Some(&new.obj)).await?;
        Ok(super::to_storage(r, hub))
    }

    /// A dry-run create writes nothing, but answers as a real create would.
    async fn dry_run_create(&self, ctx: &Ctx<'_>, name: &str, stored: Value) -> ApiResult<Value> {
        match self.storage.get(&ctx.key(name)).await {
            Ok(Some(existing)) => Err(self.exists_error(ctx, name, &existing.object.value())),
            Ok(None) => Ok(stored),
            Err(e) => Err(ctx.storage_error(name, e)),
        }
    }

    /// 409 AlreadyExists for a create whose name is taken; for a generated name, Go's
    /// "could not generate a unique name" with a Retry-After.
    async fn create_exists_error(&self, ctx: &Ctx<'_>, name: &str, generated: bool) -> ApiError {
        let gr = ctx.resource.group_resource();
        if generated {
            let mut e = ApiError::already_exists(&gr, name);
            e.message
                .push_str(", the server was not able to generate a unique name for the object");
            if let Some(d) = e.details.as_mut() {
                d.retry_after_seconds = Some(1);
            }
            return e;
        }
        match self.storage.get(&ctx.key(name)).await.ok().flatten() {
            Some(s) => self.exists_error(ctx, name, &s.object.value()),
            None => ApiError::already_exists(&gr, name),
        }
    }

    /// Mutating admission of `obj` (versioned JSON of the request's version); what webhooks
    /// changed must still be an object of this kind in this namespace, with fields of the
    /// right types. Unchanged by webhooks, its fields are what the caller already checked (the
    /// body, patch result or apply configuration, plus the server's own defaults and
    /// managedFields), so the schema walk is skipped: it was ~5 % of the server's CPU per create.
    async fn admit(&self, ctx: &Ctx<'_>, attrs: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
        let changed = self
            .admission
            .mutate(&self.cache, attrs, Some(&mut *obj))
            .await?;
        Self::check_type_meta(ctx, obj)?;
        Self::settle_namespace(ctx, obj)?;
        if changed {
            check_fields(
                ctx,
                obj,
                Vec::new(),
                FieldValidation::Ignore,
                false,
                TypeErrors::Body,
            )?;
        }
        Ok(())
    }

    fn exists_error(&self, ctx: &Ctx<'_>, name: &str, existing: &Value) -> ApiError {
        let mut e = ApiError::already_exists(&ctx.resource.group_resource(), name);
        if being_deleted(existing) {
            e.message = format!("object is being deleted: {}", e.message);
        }
        e
    }

    /// PUT: the body must carry the resourceVersion it was based on; never retried.
    pub async fn update(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        Self::check_type_meta(ctx, &obj)?;
        // Go's update handler: the namespace, then the name (`checkName`).
        Self::settle_namespace(ctx, &mut obj)?;
        check_name(&obj, name)?;
        let rv_field = parse_rv_field(&obj)?;
        let obj = &obj;
        self.guaranteed_update(ctx, name, move |current| async move {
            let old = exists(ctx, name, current)?;
            // Go's order (registry Store.Update): the object must exist (no create-on-update
            // here), then a uid in the body is a storage precondition, then the resourceVersion
            // must be given and current.
            let uid = meta_str(obj, "uid");
            let old_uid = meta_str(&old.object, "uid");
            if !uid.is_empty() && uid != old_uid {
                return Err(ctx.uid_precondition_failed(name, uid, old_uid));
            }
            let rv = match rv_field {
                Some(rv) => rv,
                None => return Err(rv_required(ctx, name)),
            };
            if old.rv != rv {
                return Err(ApiError::modified_conflict(
                    &ctx.resource.group_resource(),
                    name,
                ));
            }
            let manager = self.manager(ctx, opts)?;
            let update = UpdateOf {
                old: &old,
                manager: Some(&manager),
                dry_run: opts.dry_run,
                retry: false,
            };
            self.update_step(ctx, name, update, obj.clone()).await
        })
        .await
    }

    /// The update transform shared by PUT, PATCH and apply: `new` is versioned JSON based on
    /// `update.old`; the step writes it (or deletes the object when its last finalizer went).
    pub(super) async fn update_step(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        update: UpdateOf<'_>,
        mut new: Value,
    ) -> ApiResult<Step<Value>> {
        let r = ctx.resource;
        let old = update.old;
        r.default(ctx.version, &mut new);
        let attrs = ctx.admission(
            Operation::Update,
            name,
            Some(&old.object),
            update.dry_run,
            update.manager,
        );
        before_update(&mut new, &old.object);
        if let Some(manager) = update.manager {
            super::as_fieldmanager_sees(ctx, &mut new);
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
        self.admit(ctx, &attrs, &mut new).await?;
        let mut errs = r.validate_versioned(ctx.version, &new);
        let versioned = new.clone();
        let mut hub = r.to_hub(ctx.version, new);
        let old_hub = r.to_hub(r.storage_version(), old.object.clone());
        r.prepare_for_update(&mut hub, &old_hub);
        errs.extend(meta::validate_update(
            &hub["metadata"],
            &old_hub["metadata"],
            r.namespaced(),
        ));
        errs.extend(r.validate_update(&hub, &old_hub));
        if !errs.is_empty() {
            return Err(ctx.invalid(name, &errs));
        }
        for w in r.warnings_on_update(&hub, &old_hub) {
            crate::admission::warnings::add(&w);
        }
        self.admission.validate(&attrs, Some(&versioned)).await?;
        Ok(update.step(super::to_storage(r, hub)))
    }

    /// PATCH (AS:`handlers/patch.go` patcher, then registry Store.Update): the patch is applied
    /// to the latest object, the result decoded as Go's patchers do (`decode_patched`), its
    /// namespace and name checked against the URL, and its resourceVersion must be the stored
    /// one: the patch leaves the original's in place unless it changes or removes it, so a
    /// patch that removes it is Go's 422 "must be specified for an update" (Flunder and Fischer
    /// do not allow unconditional updates) and one naming an older version a 409. A lost race
    /// reruns the whole transform on the newer object, as Go's GuaranteedUpdate does: a patch
    /// that names a resourceVersion then fails that comparison, one that does not applies anew.
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
        let manager = manager.as_str();
        self.guaranteed_update(ctx, name, move |current| async move {
            let old = exists(ctx, name, current)?;
            let original = ctx
                .resource
                .storage_to_version(ctx.version, old.object.clone());
            let patched = patch::apply_patch(patch_type, &original, body, validation)?;
            let mut patched =
                decode_patched(ctx, patch_type, body, &original, patched, validation)?;
            // The patched object is decoded into Go's types: empty metadata values vanish.
            meta::drop_empty_fields(&mut patched);
            Self::settle_namespace(ctx, &mut patched)?;
            check_name(&patched, name)?;
            // A changed uid is no precondition here (Go's patcher has no object to take one
            // from): it fails update validation as immutable (422).
            let rv = required_rv(ctx, name, &patched)?;
            if rv != old.rv {
                return Err(ApiError::modified_conflict(
                    &ctx.resource.group_resource(),
                    name,
                ));
            }
            let update = UpdateOf {
                old: &old,
                manager: Some(manager),
                dry_run: opts.dry_run,
                retry: true,
            };
            self.update_step(ctx, name, update, patched).await
        })
        .await
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
        self.guaranteed_update(ctx, name, move |current| async move {
            let old = exists(ctx, name, current)?;
            let uid = meta_str(&old.object, "uid").to_string();
            if let Some(want) = &opts.precondition_uid
                && *want != uid
            {
                return Err(ctx.precondition_conflict(name, "UID", want, &uid));
            }
            let rv = old.rv.to_string();
            if let Some(want) = &opts.precondition_rv
                && *want != rv
            {
                return Err(ctx.precondition_conflict(name, "ResourceVersion", want, &rv));
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
            Ok(delete_step(old, uid, opts))
        })
        .await
    }
}

/// The stored object a verb that needs one (PUT, PATCH, DELETE) starts from; 404 when absent.
fn exists(ctx: &Ctx<'_>, name: &str, current: Option<Current>) -> ApiResult<Current> {
    current.ok_or_else(|| ApiError::not_found(&ctx.resource.group_resource(), name))
}

/// Go's `checkName` (AS:`handlers/rest.go`), for PUT and PATCH: 400 when the object has no
/// name (`the name of the object (<url name> based on URL) was undeterminable: name must be
/// provided`) or names another object than the URL.
pub(super) fn check_name(obj: &Value, name: &str) -> ApiResult<()> {
    let got = meta_str(obj, "name");
    if got.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name} based on URL) was undeterminable: name must be provided"
        )));
    }
    if got != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({got}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// The resourceVersion an update names (Store.Update): absent, "" and "0" are Go's 0, which
/// Flunder and Fischer refuse (their strategies do not allow unconditional updates): 422
/// `metadata.resourceVersion: Invalid value: 0: must be specified for an update`.
fn required_rv(ctx: &Ctx<'_>, name: &str, obj: &Value) -> ApiResult<i64> {
    parse_rv_field(obj)?.ok_or_else(|| rv_required(ctx, name))
}

/// Store.Update's 422 for an update whose object names no resourceVersion.
pub(super) fn rv_required(ctx: &Ctx<'_>, name: &str) -> ApiError {
    let gr = ctx.resource.group_resource();
    ApiError::invalid(
        &GroupKind::new(&gr.group, &gr.resource),
        name,
        &[FieldError::invalid(
            "metadata.resourceVersion",
            0,
            "must be specified for an update",
        )],
    )
}

/// A JSON or merge patch result without an apiVersion: Go decodes it into the empty object of
/// its unversioned type, to which every field but apiVersion and kind is unknown (warnings or,
/// with Strict, a 422), and the empty object then has no name. The fields are named in the
/// order Go's patched JSON has them: a merge patch sorts them, a JSON patch keeps the object's
/// (metadata first, status last). Go's original JSON always carries the kind's `status`, even
/// empty, so it is among them unless the patch removed it (found by patching an original
/// that has it; wardle's objects never store an empty status).
fn undecodable_as_versionless(
    ctx: &Ctx<'_>,
    patch_type: PatchType,
    body: &[u8],
    original: &Value,
    patched: &serde_json::Map<String, Value>,
    validation: FieldValidation,
) -> ApiResult<Value> {
    let r = ctx.resource;
    let mut fields: Vec<&str> = patched
        .keys()
        .map(String::as_str)
        .filter(|k| !["apiVersion", "kind"].contains(k))
        .collect();
    let has_status = super::schema(r, ctx.version)
        .get("properties")
        .is_some_and(|p| p.get("status").is_some());
    if has_status && !fields.contains(&"status") {
        let mut probe = original.clone();
        if let Some(m) = probe.as_object_mut() {
            m.entry("status").or_insert_with(|| json!({}));
        }
        let kept = patch::apply_patch(patch_type, &probe, body, FieldValidation::Ignore)
            .is_ok_and(|p| p.get("status").is_some());
        if kept {
            fields.push("status");
        }
    }
    fields.sort_by_key(|f| match patch_type {
        PatchType::Merge => (0, *f),
        _ => (u8::from(*f != "metadata") + u8::from(*f == "status"), *f),
    });
    let unknown: Vec<String> = fields.into_iter().map(str::to_string).collect();
    let problems = crate::apimachinery::decode::strict_problems(&[], &unknown);
    let warnings = crate::apimachinery::decode::strict_outcome(
        validation,
        problems,
        r.kind(),
        ctx.version,
        true,
    )?;
    for w in warnings {
        crate::admission::warnings::add(&w);
    }
    Ok(json!({}))
}

/// Go's decoding of a patched object (AS:`handlers/patch.go`) into the request's version.
///
/// JSON and merge patches produce JSON that Go decodes by its own `apiVersion` and `kind`
/// (`runtime.DecodeInto`): without an apiVersion it decodes to an empty object (whose missing
/// name is then the 400 of `check_name`); another served version of the kind is decoded as that
/// version and converted; an unknown version or kind, a non-object, or a field of the wrong
/// type is a 422 on field `patch` quoting the patched JSON. A strategic merge patch is
/// converted field by field into the request's type (`FromUnstructured`): its apiVersion and
/// kind are ignored, and a type error quotes the patch (Go's `%+v` of the patch map).
fn decode_patched(
    ctx: &Ctx<'_>,
    patch_type: PatchType,
    body: &[u8],
    original: &Value,
    mut patched: Value,
    validation: FieldValidation,
) -> ApiResult<Value> {
    let r = ctx.resource;
    let quote_json = |v: &Value| v.to_string();
    if patch_type == PatchType::StrategicMerge {
        let quote = |_: &Value| {
            serde_json::from_slice::<Value>(body)
                .map(|p| patch::go_fmt(&p))
                .unwrap_or_default()
        };
        // Converted into the request's type: the map's apiVersion and kind play no part.
        if let Some(m) = patched.as_object_mut() {
            m.insert("apiVersion".into(), json!(ctx.api_version()));
            m.insert("kind".into(), json!(r.kind()));
        }
        check_fields(
            ctx,
            &mut patched,
            Vec::new(),
            validation,
            true,
            TypeErrors::PatchedMap(&quote),
        )?;
        return Ok(patched);
    }
    let Some(m) = patched.as_object() else {
        return Err(super::patch_invalid(
            &quote_json(&patched),
            &format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
                crate::apimachinery::gofmt::json_kind(&patched)
            ),
        ));
    };
    let field = |f: &str| match m.get(f) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(super::patch_invalid(
            &quote_json(&patched),
            &format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{f} of type string",
                crate::apimachinery::gofmt::json_kind(other)
            ),
        )),
    };
    let (api_version, kind) = (field("apiVersion")?, field("kind")?);
    if api_version.is_empty() {
        return undecodable_as_versionless(ctx, patch_type, body, original, m, validation);
    }
    let version = match api_version.split('/').collect::<Vec<_>>()[..] {
        [group, version] if group == crate::api::GROUP => r.version(version).map(|d| d.name),
        // The core group (`v1`) or another group: no such kind there.
        [_] | [_, _] => None,
        _ => {
            return Err(super::patch_invalid(
                &quote_json(&patched),
                &format!("unexpected GroupVersion string: {api_version}"),
            ));
        }
    };
    let kind = if kind.is_empty() { r.kind() } else { kind };
    let Some(version) = version.filter(|_| kind == r.kind()) else {
        return Err(super::patch_invalid(
            &quote_json(&patched),
            &format!(
                "no kind {} is registered for version {} in scheme \"pkg/runtime/scheme.go:111\"",
                Quoted(kind),
                Quoted(api_version)
            ),
        ));
    };
    let as_decoded = Ctx { version, ..*ctx };
    check_fields(
        &as_decoded,
        &mut patched,
        Vec::new(),
        validation,
        true,
        TypeErrors::PatchedJson(&quote_json),
    )?;
    if version == ctx.version {
        return Ok(patched);
    }
    Ok(r.hub_to_version(ctx.version, r.to_hub(version, patched)))
}

/// The server owns these on update (Go's rest.BeforeUpdate): generation, creationTimestamp and
/// a deletionTimestamp already set are the stored ones whatever the body says; an empty uid or
/// a missing grace period is taken from the stored object; the rest is validated as immutable.
fn before_update(new: &mut Value, old: &Value) {
    let old_meta = &old["metadata"];
    let m = meta_mut(new);
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

/// The graceful-delete transform: delete now when no finalizer holds the object, else set
/// deletionTimestamp and the finalizers the propagation policy adds (with the garbage
/// collector on, Orphan/Foreground are finalizers it acts on).
fn delete_step(old: Current, uid: String, opts: &DeleteOptions) -> Step<Deleted> {
    let mut obj = old.object;
    let mut fins = finalizers(&obj);
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
    let retry = opts.precondition_rv.is_none();
    if fins.is_empty() {
        if opts.dry_run {
            return Step::Done(Deleted::Gone(obj));
        }
        return Step::Write {
            op: WriteOp::Delete { pre },
            retry,
            answer: Box::new(Deleted::Gone),
        };
    }
    if being_deleted(&obj) && fins == finalizers(&obj) {
        return Step::Done(Deleted::Pending(obj));
    }
    let m = meta_mut(&mut obj);
    m.insert("finalizers".into(), json!(fins));
    if m.get("deletionTimestamp").is_none_or(|v| v.is_null()) {
        m.insert("deletionTimestamp".into(), json!(meta::timestamp_now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    m.remove("resourceVersion");
    if opts.dry_run {
        return Step::Done(Deleted::Pending(obj));
    }
    Step::Write {
        op: WriteOp::Update { object: obj, pre },
        retry,
        answer: Box::new(Deleted::Pending),
    }
}

/// A create on its way to storage: the object (name still open for generateName), the
/// versioned validation errors found so far, and what validating admission will see.
struct NewObject<'c> {
    obj: Value,
    errs: Vec<FieldError>,
    attrs: Attributes<'c>,
    generate: String,
    generated: bool,
}

impl NewObject<'_> {
    /// The name to try: the requested one, or a fresh one made from generateName.
    fn next_name(&mut self) -> String {
        if self.generated {
            meta_mut(&mut self.obj).insert("name".into(), json!(names::generate(&self.generate)));
        }
        meta_str(&self.obj, "name").to_string()
    }
}

/// What an update transform knows besides the new object.
pub(super) struct UpdateOf<'o> {
    pub(super) old: &'o Current,
    /// None: managedFields were already computed (server-side apply).
    pub(super) manager: Option<&'o str>,
    pub(super) dry_run: bool,
    /// Whether a lost race may be retried (no resourceVersion given by the client).
    pub(super) retry: bool,
}

impl UpdateOf<'_> {
    /// The write that turns `old` into `stored` (storage JSON): nothing for a no-op, a delete
    /// when the last finalizer of an object being deleted went, else an update.
    fn step(&self, stored: Value) -> Step<Value> {
        let old = self.old;
        if same_ignoring_times(&stored, &old.object) {
            return Step::Done(old.object.clone());
        }
        let pre = Preconditions {
            rv: Some(old.rv),
            uid: None,
        };
        let at_old_rv = |mut obj: Value| {
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(old.rv.to_string()));
            obj
        };
        // Removing the last finalizer of an object being deleted completes the deletion. The
        // answer is the object as updated, at the resourceVersion it was updated from (Go's
        // deleteWithoutFinalizers returns the request's object, not the deleted one).
        if being_deleted(&stored) && finalizers(&stored).is_empty() {
            let last = at_old_rv(stored);
            if self.dry_run {
                return Step::Done(last);
            }
            return Step::Write {
                op: WriteOp::Delete { pre },
                retry: self.retry,
                answer: Box::new(move |_| last),
            };
        }
        if self.dry_run {
            return Step::Done(at_old_rv(stored));
        }
        Step::Write {
            op: WriteOp::Update {
                object: stored,
                pre,
            },
            retry: self.retry,
            answer: Box::new(|object| object),
        }
    }
}

/// What a transform of `guaranteed_update` decides for the object it was given.
pub(super) enum Step<T> {
    /// Nothing to write (a no-op, a dry run): answer with this.
    Done(T),
    /// Commit `op` (preconditioned on the resourceVersion read); `answer` makes the reply from
    /// the committed object. `retry`: a lost race reruns the transform on the newer object.
    Write {
        op: WriteOp,
        retry: bool,
        answer: Box<dyn FnOnce(Value) -> T + Send>,
    },
}

impl<T: 'static> Step<T> {
    pub(super) fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Step<U> {
        match self {
            Step::Done(t) => Step::Done(f(t)),
            Step::Write { op, retry, answer } => Step::Write {
                op,
                retry,
                answer: Box::new(move |v| f(answer(v))),
            },
        }
    }
}
