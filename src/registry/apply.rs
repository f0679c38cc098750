//! PATCH with `application/apply-patch+yaml`: server-side apply on the generic Store (AS
//! `handlers/patch.go` applyPatcher): create when absent, else merge with field ownership.

use super::write::{UpdateOf, check_name, parse_rv_field, rv_required};
use super::{Ctx, Store, meta_str, to_typed};
use crate::apimachinery::apply::{self, Apply};
use crate::apimachinery::decode::{self, FieldValidation};
use crate::apimachinery::meta;
use crate::apimachinery::options::WriteOptions;
use crate::apimachinery::status::{ApiError, ApiResult, FieldError};
use serde_json::{Value, json};

/// What an apply did: the object and whether it was created (201). Strict-decoding warnings go
/// to the request's recorder (`check_fields`).
pub struct Applied {
    pub object: Value,
    pub created: bool,
}

impl Store {
    /// Server-side apply of `body` (YAML or JSON) to the object `name`.
    pub async fn apply(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        body: &[u8],
        opts: &WriteOptions,
        validation: FieldValidation,
    ) -> ApiResult<Applied> {
        let Some(manager) = opts.field_manager.clone() else {
            return Err(decode::options_invalid(
                "PatchOptions",
                &[FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        };
        // WriteOptions::parse has already refused an invalid fieldManager.
        let config = typed_config(ctx, body, validation)?;
        let r = ctx.resource;
        let api_version = ctx.api_version();
        let convert = |obj: &Value, to: &str| ctx.convert(obj, to);
        let now = meta::timestamp_now();
        let req = Apply {
            manager: &manager,
            api_version: &api_version,
            force: opts.force.unwrap_or(false),
            now: &now,
            convert: &convert,
        };

        // A resourceVersion in the configuration is applied like any field, so the merged
        // object carries it to Store.Update: a stale one is a 409, and one that is null, "" or
        // "0" leaves the update without a version, Go's 422 "must be specified" (a create
        // ignores it). Without one the live object's version stays: nothing to check.
        let names_rv = config
            .get("metadata")
            .is_some_and(|m| m.get("resourceVersion").is_some());
        let client_rv = parse_rv_field(&config)?;
        let (config, req) = (&config, &req);
        self.guaranteed_update(ctx, name, move |current| async move {
            let Some(old) = current else {
                // Create-on-apply: the configuration applied to the kind's empty object.
                let empty = r.hub_to_version(ctx.version, json!({"metadata": {}}));
                let mut merged = apply::apply(&empty, config, req)?;
                to_typed(ctx, &mut merged);
                check_name(&merged, name)?;
                let step = self.create_step(ctx, merged, opts).await?;
                return Ok(step.map(|object| Applied {
                    object,
                    created: true,
                }));
            };
            if names_rv {
                let rv = client_rv.ok_or_else(|| rv_required(ctx, name))?;
                if rv != old.rv {
                    return Err(ApiError::modified_conflict(&r.group_resource(), name));
                }
            }
            let original = r.storage_to_version(ctx.version, old.object.clone());
            let mut merged = apply::apply(&original, config, req)?;
            to_typed(ctx, &mut merged);
            check_name(&merged, name)?;
            Self::settle_namespace(ctx, &mut merged)?;
            let update = UpdateOf {
                old: &old,
                manager: None,
                dry_run: opts.dry_run,
                retry: !names_rv,
            };
            let step = self.update_step(ctx, name, update, merged).await?;
            Ok(step.map(|object| Applied {
                object,
                created: false,
            }))
        })
        .await
    }
}

/// The applied configuration, decoded and checked against the kind's schema. Apply is always
/// strict about unknown fields (SMD's typed conversion refuses them), whatever fieldValidation
/// says, except in a struct that declares no fields (Flunder's `status`), which SMD takes as an
/// untyped map: Go records such fields as owned and its typed decode then drops them
/// (`to_typed` on the merged object). Duplicates follow fieldValidation. The configuration
/// keeps its nulls: SMD records a field set to null as owned (`f:spec: {f:x: {}}`) before the
/// typed decode turns it into nothing.
///
/// A value that does not decode into the kind's types (a malformed timestamp) makes Go answer
/// 500 `failed to convert new object ... to proper version`; it is the client's error, so
/// wardle answers 400 as a create would (README difference `apply-undecodable`).
fn typed_config(ctx: &Ctx<'_>, body: &[u8], validation: FieldValidation) -> ApiResult<Value> {
    let (config, dupes) = decode_config(ctx, body)?;
    let r = ctx.resource;
    let schema = super::schema(r, ctx.version);
    let found = decode::check_schema(&config, &schema, super::definitions());
    if let Some(u) = found.undeclared().next() {
        return Err(ApiError::bad_request(format!(
            "failed to create typed patch object ({api_version}, Kind={kind}; {ns}/{n}): .{u}: field not declared in schema",
            api_version = ctx.api_version(),
            kind = r.kind(),
            ns = ctx.namespace,
            n = meta_str(&config, "name"),
        )));
    }
    if let Some(first) = found.type_errors.first() {
        return Err(decode::cannot_handle(r.kind(), ctx.version, first));
    }
    if crate::storage::contains_nul(&config) {
        return Err(decode::cannot_handle(
            r.kind(),
            ctx.version,
            "strings may not contain the NUL character (U+0000)",
        ));
    }
    let problems = decode::strict_problems(&dupes, &[]);
    for w in decode::strict_outcome(validation, problems, r.kind(), ctx.version, true)? {
        crate::admission::warnings::add(&w);
    }
    Ok(config)
}

/// The applied configuration: YAML or JSON, a full object of the URL's version and kind, with
/// no managedFields (AS `structuredMergeManager.Apply`).
fn decode_config(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<(Value, Vec<String>)> {
    let is_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let parsed = if is_json {
        decode::parse_json(body)
    } else {
        decode::parse_yaml(body)
    };
    let (config, dupes) = parsed.map_err(|e| {
        // Go converts the YAML with sigs.k8s.io/yaml, which frames every failure (a null key
        // too, which parse_yaml leaves bare for the create and update answers).
        const CONVERTING: &str = "error converting YAML to JSON: ";
        let why = if is_json || e.message.starts_with(CONVERTING) {
            e.message
        } else {
            format!("{CONVERTING}{}", e.message)
        };
        ApiError::bad_request(format!("error decoding YAML: {why}"))
    })?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the applied configuration must be an object",
        ));
    }
    // Go's versionCheckManager: the configuration's group, version and kind must be the
    // endpoint's, else 400 `invalid object type: <group>/<version>, Kind=<kind>`.
    let text = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let (group, version) = parse_group_version(api_version);
    if group != crate::api::GROUP || version != ctx.version || kind != ctx.resource.kind() {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {group}/{version}, Kind={kind}"
        )));
    }
    if config
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    Ok((config, dupes))
}

/// Go's schema.ParseGroupVersion as an unstructured object reads it: `v1` is the core group,
/// `g/v` a group, anything else (more slashes) the empty GroupVersion.
fn parse_group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        None => ("", api_version),
        Some((g, v)) if !v.contains('/') => (g, v),
        Some(_) => ("", ""),
    }
}
