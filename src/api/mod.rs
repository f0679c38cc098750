//! The wardle API: what a Flunder and a Fischer are. The only module that knows their fields.
//! A resource is declared here (names, versions, schemas, conversion, defaulting, validation,
//! table columns) and served by the generic `registry::Store`.

pub mod fischer;
pub mod flunder;
pub mod meta_schema;

use crate::apimachinery::status::{FieldError, GroupKind, GroupResource};
use serde_json::Value;

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

/// Everything the generic machinery needs to serve one kind.
///
/// Objects move between three shapes: the *versioned* JSON a client sends or reads, the *hub*
/// (internal) JSON that validation and conversion pivot on, and the *storage* JSON, which is the
/// versioned JSON of `storage_version`. All are `serde_json::Value` objects with `metadata`.
pub trait Resource: Send + Sync + 'static {
    fn plural(&self) -> &'static str;
    fn singular(&self) -> &'static str;
    fn kind(&self) -> &'static str;
    fn namespaced(&self) -> bool;
    /// Served versions, highest priority first.
    fn versions(&self) -> &'static [VersionDecl];
    fn storage_version(&self) -> &'static str;

    /// The OpenAPI v3 schema of the versioned kind, `metadata` as a `$ref` to ObjectMeta.
    fn schema(&self, version: &str) -> Value;

    /// Versioned defaulting (runs on decoded request bodies, before conversion).
    fn default(&self, _version: &str, _obj: &mut Value) {}
    /// Version-specific checks that conversion would otherwise lose (field paths as the client sent them).
    fn validate_versioned(&self, _version: &str, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }
    /// Versioned → hub. Keeps `metadata` as is; drops `apiVersion`/`kind`.
    fn to_hub(&self, version: &str, obj: Value) -> Value;
    /// Hub → versioned, with `apiVersion` and `kind` set.
    fn hub_to_version(&self, version: &str, hub: Value) -> Value;
    /// Spec validation on the hub object; runs on create and on update.
    fn validate(&self, hub: &Value) -> Vec<FieldError>;

    /// Printer columns after Name (Name is always first; Age last is added by the table code).
    fn columns(&self) -> Vec<Column>;
    /// Cells for `columns()` from a hub object.
    fn cells(&self, hub: &Value) -> Vec<Value>;

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

/// The resources this server serves, in discovery order (sorted by plural name).
pub fn resources() -> &'static [&'static dyn Resource] {
    static ALL: [&dyn Resource; 2] = [&fischer::Fischer, &flunder::Flunder];
    &ALL
}

pub fn resource(plural: &str) -> Option<&'static dyn Resource> {
    resources().iter().copied().find(|r| r.plural() == plural)
}

/// Served versions of the group, highest priority first (v1beta1 is preferred, as in Go).
pub const GROUP_VERSIONS: &[&str] = &["v1beta1", "v1alpha1"];
