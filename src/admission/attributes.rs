//! What admission sees of one write (Go's `admission.Attributes`): the operation, the resource
//! and version of the request, namespace, name, user, dryRun, options and the old object.

use serde_json::{Value, json};

use crate::api::{GROUP, Resource};
use crate::authn::UserInfo;

/// The admission operation of a write. PATCH and server-side apply of an existing object are
/// UPDATE; apply of a missing object is CREATE (as in Go's `handlers/patch.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE`: the names rules and AdmissionReview use.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    /// The kind of the options object admission is given (`CreateOptions`, ...).
    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// One write as admission sees it. Objects are versioned JSON of the request's `version`.
pub struct Attributes<'a> {
    pub operation: Operation,
    pub resource: &'static dyn Resource,
    /// The version of the request URL (`v1alpha1`, `v1beta1`).
    pub version: &'static str,
    /// "" for cluster-scoped kinds.
    pub namespace: &'a str,
    /// "" for a generateName create (admission runs before the name is generated, as in Go).
    pub name: String,
    pub user: &'a UserInfo,
    pub dry_run: bool,
    /// The field manager of a create/update, for the options object.
    pub field_manager: Option<String>,
    /// The stored object for UPDATE and DELETE, in the request's version.
    pub old: Option<Value>,
}

impl Attributes<'_> {
    /// `flunders.wardle.example.com`-style group/resource of the request.
    pub fn group_resource(&self) -> crate::apimachinery::status::GroupResource {
        self.resource.group_resource()
    }

    /// The options object of the request (`CreateOptions` / `UpdateOptions` / `DeleteOptions`
    /// in meta.k8s.io/v1), as Go puts it in AdmissionReview and CEL's `request.options`.
    pub fn options(&self) -> Value {
        let mut o = json!({"kind": self.operation.options_kind(), "apiVersion": "meta.k8s.io/v1"});
        if self.dry_run {
            o["dryRun"] = json!(["All"]);
        }
        if let Some(m) = &self.field_manager
            && self.operation != Operation::Delete
        {
            o["fieldManager"] = json!(m);
        }
        o
    }

    /// `obj` (versioned JSON of the request's version) as versioned JSON of `version`, with
    /// apiVersion and kind set: what a webhook or policy matched in `version` is given.
    pub fn convert(&self, obj: &Value, version: &str) -> Value {
        let r = self.resource;
        let mut out = if version == self.version {
            obj.clone()
        } else {
            r.hub_to_version(version, r.to_hub(self.version, obj.clone()))
        };
        if let Some(m) = out.as_object_mut() {
            m.insert("apiVersion".into(), json!(format!("{GROUP}/{version}")));
            m.insert("kind".into(), json!(r.kind()));
        }
        out
    }

    /// The user as `authentication.k8s.io/v1` UserInfo JSON (empty fields left out, as Go does).
    pub fn user_info(&self) -> Value {
        let u = self.user;
        let mut o = json!({"username": u.name});
        if !u.uid.is_empty() {
            o["uid"] = json!(u.uid);
        }
        if !u.groups.is_empty() {
            o["groups"] = json!(u.groups);
        }
        if !u.extra.is_empty() {
            o["extra"] = json!(u.extra);
        }
        o
    }
}
