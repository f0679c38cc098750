//! The wardle API: what a Flunder and a Fischer are. The only module that knows their fields.
//! A resource is declared here (names, versions, schemas, conversion, defaulting, validation,
//! table columns) and served by the generic `registry::Store`.

pub mod fischer;
pub mod flunder;
pub mod meta_schema;

use crate::apimachinery::status::{FieldError, GroupKind, GroupResource};
use serde_json::{Value, json};
use std::sync::{Mutex, OnceLock};

pub const GROUP: &str = "wardle.example.com";

/// One served version of a resource.
#[derive(Debug, Clone)]
pub struct VersionDecl {
    pub name: &'static str,
    /// `Warning` header value sent on every request to this version (Go's deprecation warning).
    pub deprecation_warning: Option<&'static str>,
}

/// A printer column for Table output (`kubectl get`).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

/// The names and versions of a kind: the facts discovery, OpenAPI, routing and storage key on,
/// declared once per kind as a `static`.
#[derive(Debug)]
pub struct KindDecl {
    /// `Flunder`.
    pub kind: &'static str,
    /// `flunders`: the URL segment and the `objects.resource` column.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// Served versions, highest priority first.
    pub versions: &'static [VersionDecl],
    /// The version objects are stored in (its JSON is the `objects.object` column).
    pub storage_version: &'static str,
    /// What the kind is, the `description` of its schema.
    pub description: &'static str,
}

/// Everything the generic machinery needs to serve one kind.
///
/// Objects move between three shapes: the *versioned* JSON a client sends or reads, the *hub*
/// (internal) JSON that validation and conversion pivot on, and the *storage* JSON, which is the
/// versioned JSON of `storage_version`. All are `serde_json::Value` objects with `metadata`.
pub trait Resource: Send + Sync + 'static {
    /// The kind's names and versions.
    fn decl(&self) -> &'static KindDecl;
    /// The kind's own top-level schema properties in `version` (`spec`, `status`, …), without
    /// `apiVersion`, `kind` and `metadata`, which `schema` adds. As in Kubernetes' generated
    /// OpenAPI, a field listed in its object's `required` is one Go declares without
    /// `omitempty`: it is always stored and served; any other field is left out when empty
    /// (`""`, `0`, `false`, `[]`, an empty map), as Go's encoder leaves it out.
    fn properties(&self, version: &str) -> Value;

    /// The OpenAPI v3 schema of the versioned kind, `metadata` as a `$ref` to ObjectMeta.
    fn schema(&self, version: &str) -> Value {
        let mut properties = serde_json::Map::new();
        properties.insert("apiVersion".into(), meta_schema::api_version_prop());
        properties.insert("kind".into(), meta_schema::kind_prop());
        properties.insert("metadata".into(), meta_schema::object_meta_ref());
        if let Value::Object(own) = self.properties(version) {
            properties.extend(own);
        }
        json!({
            "type": "object",
            "description": self.decl().description,
            "properties": properties,
            "x-kubernetes-group-version-kind": [{"group": GROUP, "kind": self.kind(), "version": version}],
        })
    }

    /// Versioned defaulting (runs on decoded request bodies, before conversion).
    fn default(&self, _version: &str, _obj: &mut Value) {}
    /// Version-specific checks that conversion would otherwise lose (field paths as the client sent them).
    fn validate_versioned(&self, _version: &str, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }
    /// The kind's own conversion, versioned body → hub body: `apiVersion`/`kind` are already
    /// gone (`to_hub` strips them), `metadata` must be kept as is. Identity by default (a kind
    /// whose versions share one shape).
    fn body_to_hub(&self, _version: &str, body: Value) -> Value {
        body
    }
    /// The kind's own conversion, hub body → versioned body, without `apiVersion`/`kind`
    /// (`hub_to_version` sets them). Identity by default.
    fn body_from_hub(&self, _version: &str, hub: Value) -> Value {
        hub
    }
    /// Spec validation on the hub object, on create (and on update unless `validate_update`
    /// says otherwise). Go's strategy `Validate`.
    fn validate(&self, hub: &Value) -> Vec<FieldError>;
    /// Update validation of the hub objects `new` against `old` (Go's strategy
    /// `ValidateUpdate`, where immutable spec fields are refused); `validate(new)` by default.
    /// ObjectMeta's own update rules are checked by the registry for every kind.
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate(new)
    }
    /// Go's strategy `PrepareForCreate`: clear or set fields a client may not (e.g. status) on
    /// the hub object, after mutating admission, before validation.
    fn prepare_for_create(&self, _hub: &mut Value) {}
    /// Go's strategy `PrepareForUpdate`: the same for an update of `old` (hub objects).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}
    /// Go's `WarningsOnCreate`: `Warning` header texts for a valid create (hub object).
    fn warnings_on_create(&self, _hub: &Value) -> Vec<String> {
        Vec::new()
    }
    /// Go's `WarningsOnUpdate`: `Warning` header texts for a valid update (hub objects).
    fn warnings_on_update(&self, _new: &Value, _old: &Value) -> Vec<String> {
        Vec::new()
    }

    /// Printer columns after Name (Name is always first; Age last is added by the table code).
    fn columns(&self) -> Vec<Column>;
    /// Cells for `columns()` from a hub object.
    fn cells(&self, hub: &Value) -> Vec<Value>;

    /// Versioned → hub: drops `apiVersion`/`kind`, then the kind's `body_to_hub`.
    fn to_hub(&self, version: &str, mut obj: Value) -> Value {
        if let Some(m) = obj.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        self.body_to_hub(version, obj)
    }
    /// Hub → versioned: the kind's `body_from_hub`, led by `kind` and `apiVersion` (in that
    /// order, as Go serializes TypeMeta).
    fn hub_to_version(&self, version: &str, mut hub: Value) -> Value {
        if let Some(m) = hub.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        let mut out = serde_json::Map::new();
        out.insert("kind".into(), Value::from(self.kind()));
        out.insert(
            "apiVersion".into(),
            Value::from(format!("{GROUP}/{version}")),
        );
        if let Value::Object(m) = self.body_from_hub(version, hub) {
            out.extend(m);
        }
        Value::Object(out)
    }

    fn plural(&self) -> &'static str {
        self.decl().plural
    }
    fn singular(&self) -> &'static str {
        self.decl().singular
    }
    fn kind(&self) -> &'static str {
        self.decl().kind
    }
    fn namespaced(&self) -> bool {
        self.decl().namespaced
    }
    /// Served versions, highest priority first.
    fn versions(&self) -> &'static [VersionDecl] {
        self.decl().versions
    }
    fn storage_version(&self) -> &'static str {
        self.decl().storage_version
    }
    fn group_resource(&self) -> GroupResource {
        GroupResource::new(GROUP, self.plural())
    }
    fn list_kind(&self) -> String {
        format!("{}List", self.kind())
    }
    /// `Flunder.wardle.example.com`: what Invalid messages and precondition conflicts name.
    fn group_kind(&self) -> GroupKind {
        GroupKind::new(GROUP, self.kind())
    }
    fn serves(&self, version: &str) -> bool {
        self.versions().iter().any(|v| v.name == version)
    }
    fn version(&self, version: &str) -> Option<&'static VersionDecl> {
        self.versions().iter().find(|v| v.name == version)
    }
    /// Storage JSON → versioned JSON for a reader of `version`.
    fn storage_to_version(&self, version: &str, stored: Value) -> Value {
        if version == self.storage_version() {
            return stored;
        }
        let hub = self.to_hub(self.storage_version(), stored);
        self.hub_to_version(version, hub)
    }
    /// Hub → storage JSON.
    fn hub_to_storage(&self, hub: Value) -> Value {
        self.hub_to_version(self.storage_version(), hub)
    }
}

/// The `-o wide` Managers cell: the distinct field managers of an object, in managedFields order.
pub fn managers_cell(obj: &Value) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for e in obj["metadata"]["managedFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Some(m) = e["manager"].as_str()
            && !names.contains(&m)
        {
            names.push(m);
        }
    }
    if names.is_empty() {
        Value::from("<none>")
    } else {
        Value::from(names.join(","))
    }
}

/// The `-o wide` Managers column.
pub fn managers_column() -> Column {
    Column {
        name: "Managers",
        type_: "string",
        format: "",
        description: "The field managers that own fields of the object (metadata.managedFields).",
        priority: 1,
    }
}

/// The kinds wardle itself serves. A new kind is one file in this folder plus one entry here.
static BUILT_IN: &[&dyn Resource] = &[&fischer::Fischer, &flunder::Flunder];

/// Kinds added by an embedding program (`server::run_with`) before serving starts.
static REGISTERED: Mutex<Vec<&'static dyn Resource>> = Mutex::new(Vec::new());
/// The served kinds, fixed by the first `resources()` call (discovery, OpenAPI and routing
/// must agree for the life of the process).
static ALL: OnceLock<Vec<&'static dyn Resource>> = OnceLock::new();

/// Adds `kind` to the served kinds, next to the built-in ones; it then gets every verb, watch,
/// discovery, OpenAPI, Table and SQL storage from the generic machinery. Registering a plural
/// already served (the same kind again) is a no-op. Errors when the plural is taken by another
/// kind, or when serving has started and the set of kinds is fixed.
pub fn register(kind: &'static dyn Resource) -> Result<(), String> {
    check_decl(kind.decl())?;
    let plural = kind.plural();
    let served = |list: &[&'static dyn Resource]| -> Result<bool, String> {
        match list.iter().find(|r| r.plural() == plural) {
            Some(r) if r.kind() == kind.kind() => Ok(true),
            Some(r) => Err(format!(
                "the plural {plural:?} is already served by {}",
                r.kind()
            )),
            None => Ok(false),
        }
    };
    if let Some(all) = ALL.get() {
        return match served(all)? {
            true => Ok(()),
            false => Err(format!(
                "cannot register {}: the served kinds are fixed once serving has started",
                kind.kind()
            )),
        };
    }
    let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    if !served(BUILT_IN)? && !served(&registered)? {
        registered.push(kind);
    }
    Ok(())
}

/// A kind can be served only in the group's versions, and must be stored in one it serves.
fn check_decl(d: &KindDecl) -> Result<(), String> {
    if d.versions.is_empty() {
        return Err(format!("{} serves no version", d.kind));
    }
    if let Some(v) = d
        .versions
        .iter()
        .find(|v| !GROUP_VERSIONS.contains(&v.name))
    {
        return Err(format!(
            "{} serves {}, which is not a version of {GROUP} ({})",
            d.kind,
            v.name,
            GROUP_VERSIONS.join(", ")
        ));
    }
    if !d.versions.iter().any(|v| v.name == d.storage_version) {
        return Err(format!(
            "{} is stored in {}, a version it does not serve",
            d.kind, d.storage_version
        ));
    }
    Ok(())
}

/// The resources this server serves, in discovery order (sorted by plural name).
pub fn resources() -> &'static [&'static dyn Resource] {
    ALL.get_or_init(|| {
        let registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&'static dyn Resource> = BUILT_IN.to_vec();
        all.extend(registered.iter().copied());
        all.sort_by_key(|r| r.plural());
        all
    })
}

pub fn resource(plural: &str) -> Option<&'static dyn Resource> {
    resources().iter().copied().find(|r| r.plural() == plural)
}

/// Served versions of the group, highest priority first (v1beta1 is preferred, as in Go).
pub const GROUP_VERSIONS: &[&str] = &["v1beta1", "v1alpha1"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_are_well_declared() {
        for r in BUILT_IN {
            assert_eq!(check_decl(r.decl()), Ok(()), "{}", r.kind());
        }
    }

    #[test]
    fn kinds_outside_the_group_versions_are_refused() {
        static V2: [VersionDecl; 1] = [VersionDecl {
            name: "v2",
            deprecation_warning: None,
        }];
        let mut d = KindDecl {
            kind: "Wurst",
            plural: "wursts",
            singular: "wurst",
            namespaced: false,
            versions: &V2,
            storage_version: "v2",
            description: "",
        };
        assert_eq!(
            check_decl(&d).unwrap_err(),
            "Wurst serves v2, which is not a version of wardle.example.com (v1beta1, v1alpha1)"
        );
        d.versions = fischer::Fischer.versions();
        d.storage_version = "v1beta1";
        assert_eq!(
            check_decl(&d).unwrap_err(),
            "Wurst is stored in v1beta1, a version it does not serve"
        );
        d.versions = &[];
        assert_eq!(check_decl(&d).unwrap_err(), "Wurst serves no version");
    }
}
