//! OpenAPI v2 and v3 documents built from the declared resources.
//!
//! The documents follow what kube-openapi emits for the Go sample-apiserver, because kubectl reads
//! them: `kubectl create/apply` use server-side field validation only if the POST/PATCH
//! operations (matched by `x-kubernetes-group-version-kind`) list `fieldValidation`; client-side
//! apply picks strategic merge patch when PATCH accepts `application/strategic-merge-patch+json`;
//! `kubectl explain` walks `components.schemas`. The documents are static, so each is built and
//! hashed once.

use super::discovery::sha512_upper_hex;
use super::negotiate;
use crate::api::{self, GROUP, GROUP_VERSIONS, Resource, meta_schema};
use crate::apimachinery::status::ApiError;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub const TITLE: &str = "Wardle";
pub const VERSION: &str = "0.1";

/// The content types a PATCH accepts (Go's installer list, in its order).
pub const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// Media types responses are produced in (protobuf is not offered: wardle types have none).
const PRODUCES: [&str; 2] = ["application/json", "application/yaml"];
const WATCH_STREAM: &str = "application/json;stream=watch";

/// Go's model name of a wardle kind, e.g. `io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Flunder`.
pub fn definition_name(version: &str, kind: &str) -> String {
    format!("io.k8s.sample-apiserver.pkg.apis.wardle.{version}.{kind}")
}

// ---------------------------------------------------------------------------------------------
// A neutral model of the operations, rendered into v2 and v3 below.

#[derive(Clone, Copy, PartialEq)]
enum In {
    Path,
    Query,
}

#[derive(Clone)]
struct Param {
    name: &'static str,
    loc: In,
    ty: &'static str,
    description: String,
}

/// Query parameters: (name, type, description), the texts kube-openapi emits for Go's options.
const QUERY_PARAMS: &[(&str, &str, &str)] = &[
    (
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
    ),
    (
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid whether due to expiration (generally five to fifteen minutes) or a configuration change on the server, the server will respond with a 410 ResourceExpired error together with a continue token. If the client needs a consistent list, it must restart their list without the continue field. Otherwise, the client may send another list request with the token received with the 410 error, the server will respond with a list starting from the next key, but from the latest snapshot, which is inconsistent from the previous list results - objects that are created, modified, or deleted after the first list request will be included in the response, as long as their keys are after the \"next key\".\n\nThis field is not supported when watch is true. Clients may start a watch from the last resourceVersion value returned by the server and not miss any modifications.",
    ),
    (
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    (
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    (
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results. Setting a limit may return fewer than the requested amount of items (up to zero items) in the event all requested objects are filtered out and clients should only use the presence of the continue field to determine whether more results are available. Servers may choose not to support the limit argument and will return all of the available results. If limit is specified and the continue field is empty, clients may assume that no more results are available. This field is not supported if watch is true.\n\nThe server guarantees that the objects returned when using continue will be identical to issuing a single list call without a limit - that is, no objects created, modified, or deleted after the first request is issued will be included in any subsequent continued requests. This is sometimes referred to as a consistent snapshot, and ensures that a client that is using limit to receive smaller chunks of a very large result can ensure they see all possible objects. If objects are updated during a chunked list the version of the object that was present at the time the first list result was calculated is returned.",
    ),
    (
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    (
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    (
        "sendInitialEvents",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation. Afterwards, the watch stream will proceed as usual, sending watch events corresponding to changes (subsequent to the RV) to objects watched.\n\nWhen `sendInitialEvents` option is set, we require `resourceVersionMatch` option to also be set.",
    ),
    (
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
    ),
    (
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ),
    (
        "pretty",
        "string",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    ),
    (
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    ),
    (
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    ),
    (
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
    ),
    (
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    ),
    (
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
    ),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "boolean",
        "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it",
    ),
    (
        "orphanDependents",
        "boolean",
        "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
    ),
    (
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
    ),
];

fn query(name: &'static str) -> Param {
    let (ty, description) = QUERY_PARAMS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(("string", ""), |(_, t, d)| (*t, *d));
    Param {
        name,
        loc: In::Query,
        ty,
        description: description.to_string(),
    }
}

fn queries(names: &[&'static str]) -> Vec<Param> {
    names.iter().map(|n| query(n)).collect()
}

const LIST_PARAMS: [&str; 10] = [
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const DELETECOLLECTION_PARAMS: [&str; 13] = [
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const DELETE_PARAMS: [&str; 5] = [
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const WRITE_PARAMS: [&str; 3] = ["dryRun", "fieldManager", "fieldValidation"];

fn patch_params() -> Vec<Param> {
    let mut ps = queries(&["dryRun", "fieldManager", "fieldValidation", "force"]);
    ps[1].description = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).".into();
    ps
}

fn path_param(name: &'static str, description: String) -> Param {
    Param {
        name,
        loc: In::Path,
        ty: "string",
        description,
    }
}

fn namespace_param() -> Param {
    path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects".into(),
    )
}

enum Body {
    /// The kind itself (create, replace).
    Object(String),
    DeleteOptions,
    Patch,
}

struct Op {
    method: &'static str,
    /// `x-kubernetes-action`; None for the discovery operation.
    action: Option<&'static str>,
    id: String,
    description: String,
    params: Vec<Param>,
    body: Option<Body>,
    /// (code, description, definition name)
    responses: Vec<(&'static str, &'static str, String)>,
    /// Also produced as a watch stream.
    streams: bool,
}

struct PathItem {
    path: String,
    params: Vec<Param>,
    ops: Vec<Op>,
}

/// Go's ToValidOperationID: drop non-identifier characters, capitalizing what follows them.
fn op_id_part(s: &str, capitalize_first: bool) -> String {
    let mut out = String::new();
    let mut capitalize = capitalize_first;
    for (i, c) in s.chars().enumerate() {
        if c.is_alphabetic() || c == '_' || (i != 0 && c.is_ascii_digit()) {
            if capitalize {
                out.extend(c.to_uppercase());
                capitalize = false;
            } else {
                out.push(c);
            }
        } else {
            capitalize = true;
        }
    }
    out
}

/// `wardleExampleCom_v1alpha1`, the tag Go derives from the path.
fn tag(version: &str) -> String {
    format!(
        "{}_{}",
        op_id_part(GROUP.trim_end_matches(".k8s.io"), false),
        op_id_part(version, false)
    )
}

/// `<verb>WardleExampleComV1alpha1<rest>`, Go's operation id.
fn op_id(verb: &str, version: &str, rest: &str) -> String {
    format!(
        "{verb}{}{}{rest}",
        op_id_part(GROUP.trim_end_matches(".k8s.io"), true),
        op_id_part(version, true)
    )
}

fn status_responses() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("200", "OK", meta_schema::STATUS.into()),
        ("202", "Accepted", meta_schema::STATUS.into()),
    ]
}

/// Every path of one group version.
fn paths_for(version: &str) -> Vec<PathItem> {
    let base = format!("/apis/{GROUP}/{version}");
    let mut items = vec![PathItem {
        path: format!("{base}/"),
        params: Vec::new(),
        ops: vec![Op {
            action: None,
            ..Op::new(
                "get",
                "",
                op_id("get", version, "APIResources"),
                "get available resources".into(),
            )
            .responses(vec![("200", "OK", meta_schema::API_RESOURCE_LIST.into())])
        }],
    }];
    for r in api::resources()
        .iter()
        .copied()
        .filter(|r| r.serves(version))
    {
        items.extend(resource_paths(r, version, &base));
    }
    items.sort_by(|a, b| a.path.cmp(&b.path));
    items
}

/// The paths of one resource in one version: collection, item, the legacy watch paths and, for a
/// namespaced kind, the all-namespaces list and watch. Parameters on a path are sorted by name.
fn resource_paths(r: &dyn Resource, version: &str, base: &str) -> Vec<PathItem> {
    let names = Names::new(r, version, base);
    let mut out = vec![names.collection(), names.item()];
    out.extend(names.watch_paths());
    if r.namespaced() {
        out.extend(names.all_namespaces());
    }
    for p in &mut out {
        p.params.sort_by(|a, b| a.name.cmp(b.name));
    }
    out
}

impl Op {
    /// A `method` operation for `x-kubernetes-action` `action`: no parameters, body or
    /// responses yet, not streamed.
    fn new(method: &'static str, action: &'static str, id: String, description: String) -> Op {
        Op {
            method,
            action: Some(action),
            id,
            description,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            streams: false,
        }
    }

    fn params(mut self, params: Vec<Param>) -> Op {
        self.params = params;
        self
    }

    fn body(mut self, body: Body) -> Op {
        self.body = Some(body);
        self
    }

    fn responses(mut self, responses: Vec<(&'static str, &'static str, String)>) -> Op {
        self.responses = responses;
        self
    }

    /// Also produced as a watch stream.
    fn streamed(mut self) -> Op {
        self.streams = true;
        self
    }
}

/// What one resource's paths and operations are named from, as Go's installer names them.
struct Names<'a> {
    r: &'a dyn Resource,
    version: &'a str,
    base: &'a str,
    kind: &'a str,
    /// The kind's definition and its list's.
    def: String,
    list_def: String,
    /// `Namespaced` in operation ids of a namespaced kind, else empty.
    scope: &'static str,
    /// `/namespaces/{namespace}` for a namespaced kind, else empty.
    ns_prefix: &'static str,
}

impl<'a> Names<'a> {
    fn new(r: &'a dyn Resource, version: &'a str, base: &'a str) -> Names<'a> {
        let (scope, ns_prefix) = if r.namespaced() {
            ("Namespaced", "/namespaces/{namespace}")
        } else {
            ("", "")
        };
        Names {
            r,
            version,
            base,
            kind: r.kind(),
            def: definition_name(version, r.kind()),
            list_def: definition_name(version, &r.list_kind()),
            scope,
            ns_prefix,
        }
    }

    /// Go's operation id `<verb>WardleExampleComV1alpha1<prefix>[Namespaced]<Kind><suffix>`.
    fn id(&self, verb: &str, prefix: &str, suffix: &str) -> String {
        let (scope, kind) = (self.scope, self.kind);
        op_id(
            verb,
            self.version,
            &format!("{prefix}{scope}{kind}{suffix}"),
        )
    }

    /// The namespace path parameter of a namespaced kind.
    fn scope_params(&self) -> Vec<Param> {
        if self.r.namespaced() {
            vec![namespace_param()]
        } else {
            Vec::new()
        }
    }

    fn name_param(&self) -> Param {
        path_param("name", format!("name of the {}", self.kind))
    }

    /// Responses `codes` (code, description) that carry the object.
    fn object_responses(
        &self,
        codes: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str, String)> {
        codes
            .iter()
            .map(|(c, d)| (*c, *d, self.def.clone()))
            .collect()
    }

    fn list(&self, id: String) -> Op {
        Op::new(
            "get",
            "list",
            id,
            format!("list or watch objects of kind {}", self.kind),
        )
        .responses(vec![("200", "OK", self.list_def.clone())])
        .streamed()
    }

    /// `.../<plural>`: list, create, deletecollection.
    fn collection(&self) -> PathItem {
        let kind = self.kind;
        PathItem {
            path: format!("{}{}/{}", self.base, self.ns_prefix, self.r.plural()),
            params: [self.scope_params(), vec![query("pretty")]].concat(),
            ops: vec![
                self.list(self.id("list", "", ""))
                    .params(queries(&LIST_PARAMS)),
                Op::new(
                    "post",
                    "post",
                    self.id("create", "", ""),
                    format!("create a {kind}"),
                )
                .params(queries(&WRITE_PARAMS))
                .body(Body::Object(self.def.clone()))
                .responses(self.object_responses(&[
                    ("200", "OK"),
                    ("201", "Created"),
                    ("202", "Accepted"),
                ])),
                Op::new(
                    "delete",
                    "deletecollection",
                    self.id("delete", "Collection", ""),
                    format!("delete collection of {kind}"),
                )
                .params(queries(&DELETECOLLECTION_PARAMS))
                .body(Body::DeleteOptions)
                .responses(vec![("200", "OK", meta_schema::STATUS.into())]),
            ],
        }
    }

    /// `.../<plural>/{name}`: get, put, patch, delete.
    fn item(&self) -> PathItem {
        let kind = self.kind;
        let written = || self.object_responses(&[("200", "OK"), ("201", "Created")]);
        PathItem {
            path: format!(
                "{}{}/{}/{{name}}",
                self.base,
                self.ns_prefix,
                self.r.plural()
            ),
            params: [
                vec![self.name_param()],
                self.scope_params(),
                vec![query("pretty")],
            ]
            .concat(),
            ops: vec![
                Op::new(
                    "get",
                    "get",
                    self.id("read", "", ""),
                    format!("read the specified {kind}"),
                )
                .responses(self.object_responses(&[("200", "OK")])),
                Op::new(
                    "put",
                    "put",
                    self.id("replace", "", ""),
                    format!("replace the specified {kind}"),
                )
                .params(queries(&WRITE_PARAMS))
                .body(Body::Object(self.def.clone()))
                .responses(written()),
                Op::new(
                    "patch",
                    "patch",
                    self.id("patch", "", ""),
                    format!("partially update the specified {kind}"),
                )
                .params(patch_params())
                .body(Body::Patch)
                .responses(written()),
                Op::new(
                    "delete",
                    "delete",
                    self.id("delete", "", ""),
                    format!("delete a {kind}"),
                )
                .params(queries(&DELETE_PARAMS))
                .body(Body::DeleteOptions)
                .responses(status_responses()),
            ],
        }
    }

    /// A legacy watch path (deprecated, still installed by Go); its parameters live on the path.
    fn watch_path(&self, path: String, extra: Vec<Param>, op: Op) -> PathItem {
        PathItem {
            path,
            params: [queries(&LIST_PARAMS), extra, vec![query("pretty")]].concat(),
            ops: vec![
                op.responses(vec![("200", "OK", meta_schema::WATCH_EVENT.into())])
                    .streamed(),
            ],
        }
    }

    fn watch_list(&self, id: String, path: String, extra: Vec<Param>) -> PathItem {
        let description = format!(
            "watch individual changes to a list of {}. deprecated: use the 'watch' parameter with a list operation instead.",
            self.kind
        );
        self.watch_path(path, extra, Op::new("get", "watchlist", id, description))
    }

    /// `.../watch/.../<plural>` and `.../watch/.../<plural>/{name}`.
    fn watch_paths(&self) -> [PathItem; 2] {
        let watch_base = format!("{}/watch{}/{}", self.base, self.ns_prefix, self.r.plural());
        let description = format!(
            "watch changes to an object of kind {}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.",
            self.kind
        );
        [
            self.watch_list(
                self.id("watch", "", "List"),
                watch_base.clone(),
                self.scope_params(),
            ),
            self.watch_path(
                format!("{watch_base}/{{name}}"),
                [vec![self.name_param()], self.scope_params()].concat(),
                Op::new("get", "watch", self.id("watch", "", ""), description),
            ),
        ]
    }

    /// The all-namespaces list and its legacy watch: GET only.
    fn all_namespaces(&self) -> [PathItem; 2] {
        let (kind, plural, base) = (self.kind, self.r.plural(), self.base);
        let list_id = op_id("list", self.version, &format!("{kind}ForAllNamespaces"));
        let watch_id = op_id(
            "watch",
            self.version,
            &format!("{kind}ListForAllNamespaces"),
        );
        [
            PathItem {
                path: format!("{base}/{plural}"),
                params: [queries(&LIST_PARAMS), vec![query("pretty")]].concat(),
                ops: vec![self.list(list_id)],
            },
            self.watch_list(watch_id, format!("{base}/watch/{plural}"), Vec::new()),
        ]
    }
}

/// The GVK an operation of `path` acts on (None for the discovery path).
fn gvk_of(path: &str, version: &str) -> Option<Value> {
    let r = api::resources()
        .iter()
        .find(|r| path.split('/').any(|seg| seg == r.plural()) && r.serves(version))?;
    Some(json!({"group": GROUP, "kind": r.kind(), "version": version}))
}

// ---------------------------------------------------------------------------------------------
// Definitions.

fn list_schema(r: &dyn Resource, version: &str) -> Value {
    json!({
        "description": format!("{} is a list of {} objects.", r.list_kind(), r.kind()),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": meta_schema::api_version_prop(),
            "items": {"type": "array", "description": format!("Items is a list of {} objects.", r.kind()), "items": {"$ref": definition_name(version, r.kind())}},
            "kind": meta_schema::kind_prop(),
            "metadata": meta_schema::list_meta_ref(),
        },
        "x-kubernetes-group-version-kind": [{"group": GROUP, "kind": r.list_kind(), "version": version}],
    })
}

/// Every definition (bare-name refs): the meta types plus each served kind and its list.
fn all_definitions() -> Map<String, Value> {
    let mut defs = meta_schema::definitions();
    for r in api::resources() {
        for v in r.versions() {
            defs.insert(definition_name(v.name, r.kind()), r.schema(v.name));
            defs.insert(
                definition_name(v.name, &r.list_kind()),
                list_schema(*r, v.name),
            );
        }
    }
    defs
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.insert(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The definitions reachable from `roots`, sorted by name (Go's map order).
fn reachable(roots: BTreeSet<String>, all: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(schema) = all.get(&name) else {
            continue;
        };
        let mut more = BTreeSet::new();
        collect_refs(schema, &mut more);
        todo.extend(more);
        out.insert(name, schema.clone());
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Spec {
    V2,
    V3,
}

/// Rewrite bare `$ref` names to document pointers. In v3 a `$ref` with siblings other than
/// `description` is wrapped in `allOf` (kube-openapi's WrapRefs; OpenAPI 3.0 ignores siblings).
fn rewrite_refs(v: &mut Value, spec: Spec) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if !r.starts_with('#') {
                    let prefix = if spec == Spec::V2 {
                        "#/definitions/"
                    } else {
                        "#/components/schemas/"
                    };
                    *r = format!("{prefix}{r}");
                }
                let wrap = spec == Spec::V3 && m.keys().any(|k| k != "$ref" && k != "description");
                if wrap && let Some(r) = m.remove("$ref") {
                    m.insert("allOf".into(), json!([{"$ref": r}]));
                }
            }
            for x in m.values_mut() {
                rewrite_refs(x, spec);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, spec)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

fn render_param(p: &Param, spec: Spec) -> Value {
    let mut m = Map::new();
    if !p.description.is_empty() {
        m.insert("description".into(), json!(p.description));
    }
    m.insert(
        "in".into(),
        json!(if p.loc == In::Path { "path" } else { "query" }),
    );
    m.insert("name".into(), json!(p.name));
    if p.loc == In::Path {
        m.insert("required".into(), json!(true));
    }
    match spec {
        Spec::V2 => {
            m.insert("type".into(), json!(p.ty));
            m.insert("uniqueItems".into(), json!(true));
        }
        Spec::V3 => {
            m.insert("schema".into(), json!({"type": p.ty, "uniqueItems": true}));
        }
    }
    Value::Object(m)
}

fn body_schema(body: &Body) -> (String, bool) {
    match body {
        Body::Object(def) => (def.clone(), true),
        Body::DeleteOptions => (meta_schema::DELETE_OPTIONS.into(), false),
        Body::Patch => (meta_schema::PATCH.into(), true),
    }
}

fn consumes(op: &Op) -> Vec<&'static str> {
    if matches!(op.body, Some(Body::Patch)) {
        PATCH_TYPES.to_vec()
    } else {
        vec!["*/*"]
    }
}

fn produces(op: &Op) -> Vec<&'static str> {
    let mut p = PRODUCES.to_vec();
    if op.streams {
        p.push(WATCH_STREAM);
    }
    p
}

fn render_op(op: &Op, version: &str, path: &str, spec: Spec) -> Value {
    let mut m = Map::new();
    m.insert("description".into(), json!(op.description));
    if spec == Spec::V2 {
        m.insert("consumes".into(), json!(consumes(op)));
        m.insert("produces".into(), json!(produces(op)));
        m.insert("schemes".into(), json!(["https"]));
        m.insert("tags".into(), json!([tag(version)]));
    }
    m.insert("operationId".into(), json!(op.id));
    let mut params: Vec<Value> = Vec::new();
    if let (Spec::V2, Some(body)) = (spec, &op.body) {
        let (def, required) = body_schema(body);
        let mut b = json!({"name": "body", "in": "body", "schema": {"$ref": def}});
        if required {
            b["required"] = json!(true);
        }
        params.push(b);
    }
    params.extend(op.params.iter().map(|p| render_param(p, spec)));
    if !params.is_empty() {
        m.insert("parameters".into(), Value::Array(params));
    }
    if let (Spec::V3, Some(body)) = (spec, &op.body) {
        let (def, required) = body_schema(body);
        let content: Map<String, Value> = consumes(op)
            .into_iter()
            .map(|ct| (ct.to_string(), json!({"schema": {"$ref": def}})))
            .collect();
        let mut rb = json!({"content": content});
        if required {
            rb["required"] = json!(true);
        }
        m.insert("requestBody".into(), rb);
    }
    let mut responses = Map::new();
    for (code, desc, def) in &op.responses {
        let r = match spec {
            Spec::V2 => json!({"description": desc, "schema": {"$ref": def}}),
            Spec::V3 => {
                let content: Map<String, Value> = produces(op)
                    .into_iter()
                    .map(|ct| (ct.to_string(), json!({"schema": {"$ref": def}})))
                    .collect();
                json!({"description": desc, "content": content})
            }
        };
        responses.insert(code.to_string(), r);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    m.insert("responses".into(), Value::Object(responses));
    if spec == Spec::V3 {
        m.insert("tags".into(), json!([tag(version)]));
    }
    if let Some(action) = op.action {
        m.insert("x-kubernetes-action".into(), json!(action));
        if let Some(gvk) = gvk_of(path, version) {
            m.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    Value::Object(m)
}

/// Rendered paths of the given versions plus the (bare) names of the definitions they use.
fn render_paths(versions: &[&str], spec: Spec) -> (Map<String, Value>, BTreeSet<String>) {
    let mut paths = BTreeMap::new();
    let mut roots = BTreeSet::new();
    for v in versions {
        for item in paths_for(v) {
            let mut m = Map::new();
            for op in &item.ops {
                let rendered = render_op(op, v, &item.path, spec);
                collect_refs(&rendered, &mut roots);
                m.insert(op.method.into(), rendered);
            }
            if !item.params.is_empty() {
                m.insert(
                    "parameters".into(),
                    Value::Array(item.params.iter().map(|p| render_param(p, spec)).collect()),
                );
            }
            // Sorted keys, as Go's JSON encoding of the path item.
            let mut keys: Vec<String> = m.keys().cloned().collect();
            keys.sort();
            let sorted: Map<String, Value> = keys
                .into_iter()
                .filter_map(|k| m.remove(&k).map(|v| (k, v)))
                .collect();
            paths.insert(item.path, Value::Object(sorted));
        }
    }
    (paths.into_iter().collect(), roots)
}

fn security_scheme() -> Value {
    json!({"BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey"}})
}

fn build_v2() -> Value {
    let versions: Vec<&str> = GROUP_VERSIONS.to_vec();
    let (paths, roots) = render_paths(&versions, Spec::V2);
    let mut defs = Value::Object(reachable(roots, &all_definitions()).into_iter().collect());
    let mut paths = Value::Object(paths);
    rewrite_refs(&mut defs, Spec::V2);
    rewrite_refs(&mut paths, Spec::V2);
    json!({
        "swagger": "2.0",
        "info": {"title": TITLE, "version": VERSION},
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": security_scheme(),
        "security": [{"BearerToken": []}],
    })
}

fn build_v3(version: &str) -> Value {
    let (paths, roots) = render_paths(&[version], Spec::V3);
    let mut schemas = Value::Object(reachable(roots, &all_definitions()).into_iter().collect());
    let mut paths = Value::Object(paths);
    rewrite_refs(&mut schemas, Spec::V3);
    rewrite_refs(&mut paths, Spec::V3);
    json!({
        "openapi": "3.0.0",
        "info": {"title": TITLE, "version": VERSION},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security_scheme()},
        "security": [{"BearerToken": []}],
    })
}

/// A built document: its value, compact JSON bytes and unquoted uppercase sha512.
pub struct Doc {
    pub value: Value,
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl Doc {
    fn new(value: Value) -> Doc {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let hash = sha512_upper_hex(&bytes);
        Doc { value, bytes, hash }
    }
}

struct Specs {
    v2: Doc,
    /// The v2 document as gnostic protobuf (served with the JSON document's ETag, as Go does).
    v2_proto: Vec<u8>,
    /// "apis/wardle.example.com/v1alpha1" → document.
    v3: BTreeMap<String, Doc>,
    v3_root: Doc,
}

fn specs() -> &'static Specs {
    static SPECS: OnceLock<Specs> = OnceLock::new();
    SPECS.get_or_init(|| {
        let v3: BTreeMap<String, Doc> = GROUP_VERSIONS
            .iter()
            .filter(|v| api::resources().iter().any(|r| r.serves(v)))
            .map(|v| (format!("apis/{GROUP}/{v}"), Doc::new(build_v3(v))))
            .collect();
        let root_paths: Map<String, Value> = v3
            .iter()
            .map(|(k, d)| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", d.hash)}),
                )
            })
            .collect();
        let v2 = Doc::new(build_v2());
        Specs {
            v2_proto: super::openapi_proto::encode(&v2.value),
            v2,
            v3_root: Doc::new(json!({"paths": root_paths})),
            v3,
        }
    })
}

/// The OpenAPI v2 document.
pub fn v2_document() -> &'static Doc {
    &specs().v2
}

/// The OpenAPI v3 root (`{"paths": {gv: {"serverRelativeURL": ...}}}`).
pub fn v3_root_document() -> &'static Doc {
    &specs().v3_root
}

/// The v3 document of one group version path (`apis/wardle.example.com/v1alpha1`).
pub fn v3_document(gv_path: &str) -> Option<&'static Doc> {
    specs().v3.get(gv_path)
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/// http.ServeContent's If-None-Match test (weak comparison, lists, `*`).
fn none_match(headers: &HeaderMap, quoted_etag: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == quoted_etag)
}

fn serve_doc(
    doc: &Doc,
    headers: &HeaderMap,
    content_type: &'static str,
    extra: &[(header::HeaderName, String)],
) -> Response {
    serve_bytes(&doc.bytes, &doc.hash, headers, content_type, extra)
}

/// A document body with its ETag (`hash`, quoted), 304 for a matching If-None-Match.
fn serve_bytes(
    bytes: &[u8],
    hash: &str,
    headers: &HeaderMap,
    content_type: &'static str,
    extra: &[(header::HeaderName, String)],
) -> Response {
    let etag = format!("\"{hash}\"");
    let mut resp = if none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = bytes.to_vec().into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    resp
}

/// The Content-Type of the protobuf v2 document, whichever of its two names was asked for.
const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V2Format {
    Json,
    Protobuf,
}

/// kube-openapi's `/openapi/v2` negotiation: goautoneg's clause order, the first clause that
/// names JSON or either protobuf subtype (`...spec.v2@v1.0+protobuf`, the deprecated spelling,
/// or `...spec.v2.v1.0+protobuf`) wins; `*/*`, `application/*` and no Accept mean JSON.
/// goautoneg does not check tokens, so `@` is fine here (mime.ParseMediaType would refuse it).
fn v2_format(headers: &HeaderMap) -> Option<V2Format> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let accept = if accept.is_empty() { "*/*" } else { accept };
    let mut clauses: Vec<(f64, String, String)> = accept
        .split(',')
        .filter_map(|part| {
            let mut params = part.split(';');
            let (typ, sub) = params.next()?.trim().split_once('/')?;
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            Some((
                q,
                typ.trim().to_ascii_lowercase(),
                sub.trim().to_ascii_lowercase(),
            ))
        })
        .collect();
    // goautoneg: higher q first, then concrete before wildcard; stable otherwise.
    clauses.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| (a.1 == "*").cmp(&(b.1 == "*")))
            .then_with(|| (a.2 == "*").cmp(&(b.2 == "*")))
    });
    const SERVED: [(&str, V2Format); 3] = [
        ("json", V2Format::Json),
        (
            "com.github.proto-openapi.spec.v2@v1.0+protobuf",
            V2Format::Protobuf,
        ),
        (
            "com.github.proto-openapi.spec.v2.v1.0+protobuf",
            V2Format::Protobuf,
        ),
    ];
    clauses
        .iter()
        .filter(|(q, typ, _)| *q > 0.0 && (typ == "application" || typ == "*"))
        .find_map(|(_, _, sub)| {
            SERVED
                .iter()
                .find(|(s, _)| sub == s || sub == "*")
                .map(|(_, f)| *f)
        })
}

/// Does the Accept header admit JSON (kube-openapi's handlers: json or protobuf, `*/*` = json)?
fn accepts_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if accept.is_empty() {
        return true;
    }
    negotiate::parse_accept(accept)
        .iter()
        .any(|c| !c.refused() && c.matches("application", "json"))
}

fn not_acceptable() -> Response {
    let mut r = StatusCode::NOT_ACCEPTABLE.into_response();
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// One year from now as an HTTP date (the `Expires` of an immutable, hash-addressed document).
fn expires_in_a_year() -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Serve `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version path>`, exactly as
/// Go's mux matches them (`/openapi/v3/<gv>/` names no group-version: 404).
pub fn serve(path: &str, query: Option<&str>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let vary = (header::VARY, "Accept".to_string());
    if path == "/openapi/v2" {
        let doc = v2_document();
        return Ok(match v2_format(headers) {
            None => not_acceptable(),
            Some(V2Format::Json) => serve_doc(doc, headers, "application/json", &[vary]),
            Some(V2Format::Protobuf) => {
                serve_bytes(&specs().v2_proto, &doc.hash, headers, PROTOBUF_V2, &[vary])
            }
        });
    }
    if path == "/openapi/v3" {
        return Ok(serve_doc(
            v3_root_document(),
            headers,
            "application/json",
            &[],
        ));
    }
    let Some(gv) = path.strip_prefix("/openapi/v3/") else {
        return Err(ApiError::not_found_path());
    };
    let Some(doc) = v3_document(gv) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    if !accepts_json(headers) {
        return Ok(not_acceptable());
    }
    match query_value(query, "hash").filter(|h| !h.is_empty()) {
        Some(h) if h != doc.hash => {
            // A stale hash: send the client to the current document.
            let location = format!("/openapi/v3/{gv}?hash={}", doc.hash);
            let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
        Some(_) => Ok(serve_doc(
            doc,
            headers,
            "application/json",
            &[
                vary,
                (header::CACHE_CONTROL, "public, immutable".into()),
                (header::EXPIRES, expires_in_a_year()),
            ],
        )),
        None => Ok(serve_doc(doc, headers, "application/json", &[vary])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1A: &str = "apis/wardle.example.com/v1alpha1";
    const V1B: &str = "apis/wardle.example.com/v1beta1";

    fn resolve_all(doc: &Value, prefix: &str, defs: &Value) {
        let mut refs = BTreeSet::new();
        collect_refs(doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("bad ref {r}"));
            assert!(defs.get(name).is_some(), "dangling {r}");
        }
    }

    #[test]
    fn v2_document_shape() {
        let d = &v2_document().value;
        assert_eq!(d["swagger"], "2.0");
        assert_eq!(d["info"], json!({"title": "Wardle", "version": "0.1"}));
        let defs = &d["definitions"];
        let flunder = &defs["io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Flunder"];
        assert_eq!(
            flunder["x-kubernetes-group-version-kind"][0],
            json!({"group": GROUP, "kind": "Flunder", "version": "v1alpha1"})
        );
        assert_eq!(
            flunder["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        for name in [
            "v1alpha1.FlunderList",
            "v1beta1.Flunder",
            "v1beta1.FlunderList",
            "v1alpha1.Fischer",
            "v1alpha1.FischerList",
        ] {
            assert!(
                defs.get(format!("io.k8s.sample-apiserver.pkg.apis.wardle.{name}"))
                    .is_some(),
                "{name}"
            );
        }
        for m in [
            meta_schema::OBJECT_META,
            meta_schema::LIST_META,
            meta_schema::STATUS,
            meta_schema::DELETE_OPTIONS,
            meta_schema::WATCH_EVENT,
            meta_schema::PATCH,
        ] {
            assert!(defs.get(m).is_some(), "{m}");
        }
        resolve_all(d, "#/definitions/", defs);
        let post = &d["paths"]["/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders"]
            ["post"];
        assert_eq!(post["x-kubernetes-action"], "post");
        assert_eq!(
            post["operationId"],
            "createWardleExampleComV1alpha1NamespacedFlunder"
        );
        assert_eq!(post["tags"], json!(["wardleExampleCom_v1alpha1"]));
        assert_eq!(post["parameters"][0]["in"], "body");
        let patch = &d["paths"]["/apis/wardle.example.com/v1alpha1/fischers/{name}"]["patch"];
        assert_eq!(patch["consumes"], json!(PATCH_TYPES));
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": GROUP, "kind": "Fischer", "version": "v1alpha1"})
        );
        assert_eq!(d["securityDefinitions"]["BearerToken"]["in"], "header");
    }

    fn expected_paths(version: &str) -> Vec<(String, Vec<&'static str>)> {
        let b = format!("/apis/wardle.example.com/{version}");
        let mut want = vec![(format!("{b}/"), vec!["get"])];
        for r in api::resources().iter().filter(|r| r.serves(version)) {
            let p = r.plural();
            if r.namespaced() {
                want.push((
                    format!("{b}/namespaces/{{namespace}}/{p}"),
                    vec!["delete", "get", "post"],
                ));
                want.push((
                    format!("{b}/namespaces/{{namespace}}/{p}/{{name}}"),
                    vec!["delete", "get", "patch", "put"],
                ));
                want.push((format!("{b}/{p}"), vec!["get"]));
                want.push((
                    format!("{b}/watch/namespaces/{{namespace}}/{p}"),
                    vec!["get"],
                ));
                want.push((
                    format!("{b}/watch/namespaces/{{namespace}}/{p}/{{name}}"),
                    vec!["get"],
                ));
                want.push((format!("{b}/watch/{p}"), vec!["get"]));
            } else {
                want.push((format!("{b}/{p}"), vec!["delete", "get", "post"]));
                want.push((
                    format!("{b}/{p}/{{name}}"),
                    vec!["delete", "get", "patch", "put"],
                ));
                want.push((format!("{b}/watch/{p}"), vec!["get"]));
                want.push((format!("{b}/watch/{p}/{{name}}"), vec!["get"]));
            }
        }
        want
    }

    fn param_names(op: &Value, item: &Value) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for ps in [&op["parameters"], &item["parameters"]] {
            if let Some(a) = ps.as_array() {
                names.extend(
                    a.iter()
                        .filter_map(|p| p["name"].as_str().map(String::from)),
                );
            }
        }
        names
    }

    #[test]
    fn every_path_and_operation_is_present() {
        for (spec, doc) in [
            ("v2", &v2_document().value),
            ("v3a", &v3_document(V1A).unwrap().value),
            ("v3b", &v3_document(V1B).unwrap().value),
        ] {
            let paths = doc["paths"].as_object().unwrap();
            let versions: Vec<&str> = match spec {
                "v2" => vec!["v1beta1", "v1alpha1"],
                "v3a" => vec!["v1alpha1"],
                _ => vec!["v1beta1"],
            };
            let mut count = 0;
            for v in versions {
                for (path, methods) in expected_paths(v) {
                    let item = paths
                        .get(&path)
                        .unwrap_or_else(|| panic!("{spec}: missing {path}"));
                    for m in &methods {
                        let op = &item[*m];
                        assert!(op.is_object(), "{spec}: {m} {path}");
                        if !path.ends_with('/') {
                            assert!(op["x-kubernetes-action"].is_string(), "{spec}: {m} {path}");
                            assert_eq!(
                                op["x-kubernetes-group-version-kind"]["version"], v,
                                "{spec}: {m} {path}"
                            );
                        }
                        let names = param_names(op, item);
                        assert!(
                            names.contains(&"pretty".to_string()) || path.ends_with('/'),
                            "{spec}: {m} {path}"
                        );
                        if matches!(*m, "post" | "put" | "patch") {
                            for p in ["fieldValidation", "fieldManager", "dryRun"] {
                                assert!(
                                    names.contains(&p.to_string()),
                                    "{spec}: {p} on {m} {path}"
                                );
                            }
                        }
                        if *m == "patch" {
                            assert!(names.contains(&"force".to_string()));
                        }
                        if *m == "get" && op["x-kubernetes-action"] == "list" {
                            for p in LIST_PARAMS {
                                assert!(
                                    names.contains(&p.to_string()),
                                    "{spec}: {p} on list {path}"
                                );
                            }
                        }
                        if *m == "delete" {
                            for p in [
                                "dryRun",
                                "gracePeriodSeconds",
                                "orphanDependents",
                                "propagationPolicy",
                            ] {
                                assert!(
                                    names.contains(&p.to_string()),
                                    "{spec}: {p} on delete {path}"
                                );
                            }
                        }
                    }
                    count += 1;
                }
            }
            assert_eq!(count, paths.len(), "{spec}: unexpected extra paths");
        }
    }

    #[test]
    fn v3_documents() {
        let root = &v3_root_document().value;
        for gv in [V1A, V1B] {
            let doc = v3_document(gv).unwrap();
            assert_eq!(
                root["paths"][gv]["serverRelativeURL"],
                format!("/openapi/v3/{gv}?hash={}", doc.hash)
            );
            assert_eq!(doc.hash.len(), 128);
            assert_eq!(doc.hash, doc.hash.to_uppercase());
            let d = &doc.value;
            assert_eq!(d["openapi"], "3.0.0");
            resolve_all(d, "#/components/schemas/", &d["components"]["schemas"]);
        }
        let a = &v3_document(V1A).unwrap().value;
        let schemas = &a["components"]["schemas"];
        assert!(
            schemas
                .get("io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Fischer")
                .is_some()
        );
        assert!(
            schemas
                .get("io.k8s.sample-apiserver.pkg.apis.wardle.v1beta1.Flunder")
                .is_none()
        );
        let b = &v3_document(V1B).unwrap().value;
        let flunder =
            &b["components"]["schemas"]["io.k8s.sample-apiserver.pkg.apis.wardle.v1beta1.Flunder"];
        assert!(flunder["properties"]["spec"]["properties"]["flunderReference"].is_object());
        assert!(
            b["components"]["schemas"]
                .get("io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Fischer")
                .is_none()
        );
        // kubectl picks strategic merge patch from this list.
        let patch = &a["paths"]["/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders/{name}"]
            ["patch"];
        let content: Vec<&String> = patch["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let mut expected = PATCH_TYPES.to_vec();
        expected.sort();
        assert_eq!(content, expected);
        assert_eq!(patch["requestBody"]["required"], true);
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Flunder");
        let post = &a["paths"]["/apis/wardle.example.com/v1alpha1/fischers"]["post"];
        assert_eq!(
            post["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Fischer"
        );
        assert_eq!(
            post["parameters"][2]["schema"],
            json!({"type": "string", "uniqueItems": true})
        );
        let list = &a["paths"]["/apis/wardle.example.com/v1alpha1/fischers"]["get"]["responses"]["200"]
            ["content"];
        assert!(list.get(WATCH_STREAM).is_some());
    }

    #[test]
    fn v3_wraps_refs_with_siblings() {
        let mut v = json!({"a": {"$ref": "X", "description": "d"}, "b": {"$ref": "Y", "default": {}, "description": "d"}});
        rewrite_refs(&mut v, Spec::V3);
        assert_eq!(
            v["a"],
            json!({"$ref": "#/components/schemas/X", "description": "d"})
        );
        assert_eq!(
            v["b"],
            json!({"allOf": [{"$ref": "#/components/schemas/Y"}], "default": {}, "description": "d"})
        );
        let mut v = json!({"b": {"$ref": "Y", "default": {}}});
        rewrite_refs(&mut v, Spec::V2);
        assert_eq!(v["b"], json!({"$ref": "#/definitions/Y", "default": {}}));
    }

    #[test]
    fn operation_ids_follow_go() {
        assert_eq!(op_id_part("wardle.example.com", true), "WardleExampleCom");
        assert_eq!(
            op_id("list", "v1beta1", "FlunderForAllNamespaces"),
            "listWardleExampleComV1beta1FlunderForAllNamespaces"
        );
        assert_eq!(tag("v1alpha1"), "wardleExampleCom_v1alpha1");
        let d = &v2_document().value;
        let p = &d["paths"]["/apis/wardle.example.com/v1beta1/flunders"]["get"];
        assert_eq!(
            p["operationId"],
            "listWardleExampleComV1beta1FlunderForAllNamespaces"
        );
        let p = &d["paths"]["/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders"]["delete"];
        assert_eq!(
            p["operationId"],
            "deleteWardleExampleComV1alpha1CollectionNamespacedFlunder"
        );
        assert_eq!(p["x-kubernetes-action"], "deletecollection");
    }

    async fn bytes(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn h(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[tokio::test]
    async fn http_behaviour() {
        let doc = v3_document(V1A).unwrap();
        let hash = doc.hash.clone();
        let q = format!("hash={hash}");
        let r = serve(
            "/openapi/v3/apis/wardle.example.com/v1alpha1",
            Some(&q),
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, immutable");
        assert!(
            r.headers()[header::EXPIRES]
                .to_str()
                .unwrap()
                .ends_with(" GMT")
        );
        assert_eq!(r.headers()[header::ETAG], format!("\"{hash}\"").as_str());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body: Value = serde_json::from_slice(&bytes(r).await).unwrap();
        assert_eq!(body, doc.value);

        let r = serve(
            "/openapi/v3/apis/wardle.example.com/v1alpha1",
            Some("hash=STALE"),
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(r.status(), 301);
        assert_eq!(
            r.headers()[header::LOCATION],
            format!("/openapi/v3/{V1A}?hash={hash}").as_str()
        );

        let r = serve(
            "/openapi/v3/apis/wardle.example.com/v1alpha1",
            None,
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get(header::EXPIRES).is_none());

        let etag = format!("\"{hash}\"");
        let r = serve(
            "/openapi/v3/apis/wardle.example.com/v1alpha1",
            None,
            &h(&[(header::IF_NONE_MATCH, &etag)]),
        )
        .unwrap();
        assert_eq!(r.status(), 304);

        let proto = h(&[(
            header::ACCEPT,
            "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
        )]);
        assert_eq!(
            serve("/openapi/v3/apis/wardle.example.com/v1alpha1", None, &proto)
                .unwrap()
                .status(),
            406
        );
        // v2 as gnostic protobuf under both names (kubectl explain), with the JSON's ETag.
        let json_etag = serve("/openapi/v2", None, &HeaderMap::new())
            .unwrap()
            .headers()[header::ETAG]
            .clone();
        for accept in [
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json",
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        ] {
            let r = serve("/openapi/v2", None, &h(&[(header::ACCEPT, accept)])).unwrap();
            assert_eq!(r.status(), 200, "{accept}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            );
            assert_eq!(r.headers()[header::ETAG], json_etag);
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            let doc = <super::super::openapi_proto::Document as prost::Message>::decode(bytes)
                .expect("gnostic Document");
            assert_eq!(
                doc,
                super::super::openapi_proto::document(&v2_document().value)
            );
            let defs = doc.definitions.expect("definitions").additional_properties;
            assert!(
                defs.iter()
                    .any(|d| d.name == "io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Flunder")
            );
        }
        let json_first = h(&[(
            header::ACCEPT,
            "application/json, application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )]);
        let r = serve("/openapi/v2", None, &json_first).unwrap();
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = serve("/openapi/v2", None, &h(&[(header::ACCEPT, "text/html")])).unwrap();
        assert_eq!(r.status(), 406);
        let ok = h(&[(header::ACCEPT, "application/json, */*")]);
        assert_eq!(
            serve("/openapi/v3/apis/wardle.example.com/v1beta1", None, &ok)
                .unwrap()
                .status(),
            200
        );

        assert_eq!(
            serve(
                "/openapi/v3/apis/wardle.example.com/v2",
                None,
                &HeaderMap::new()
            )
            .unwrap()
            .status(),
            404
        );
        assert_eq!(
            serve("/openapi/v4", None, &HeaderMap::new())
                .unwrap_err()
                .code,
            404
        );

        let r = serve(
            "/openapi/v2",
            None,
            &h(&[(header::ACCEPT, "application/json")]),
        )
        .unwrap();
        assert_eq!(r.status(), 200);
        let v2etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let body: Value = serde_json::from_slice(&bytes(r).await).unwrap();
        assert_eq!(body["swagger"], "2.0");
        assert_eq!(
            serve("/openapi/v2", None, &h(&[(header::IF_NONE_MATCH, &v2etag)]))
                .unwrap()
                .status(),
            304
        );

        // Paths are exact, as Go's mux has them: `/openapi/v3/` names no group-version.
        let r = serve("/openapi/v3/", None, &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), 404);
        let r = serve("/openapi/v3", None, &HeaderMap::new()).unwrap();
        let root: Value = serde_json::from_slice(&bytes(r).await).unwrap();
        assert!(
            root["paths"][V1B]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .contains("?hash=")
        );
    }
}
