//! managedFields: FieldsV1 sets and the Update entries recorded per field manager.
//!
//! A `FieldSet` is the tree structured-merge-diff calls a field set: path elements `f:<field>`,
//! `k:<key json>` (items of keyed lists), `v:<value json>` (items of set lists), `i:<index>`,
//! and `.` for "this node itself". `record_update` reproduces Go's fieldmanager for Update
//! operations (AS:`pkg/endpoints/handlers/fieldmanager`, SMD `merge/update.go`).

use crate::apimachinery::patch::{ListStrategy, list_strategy};
use crate::apimachinery::status::{ApiError, FieldError, GroupKind};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Converts a full object (carrying its `apiVersion`) to another apiVersion
/// (`wardle.example.com/v1beta1`); None when that version is not served.
pub type Convert<'a> = &'a (dyn Fn(&Value, &str) -> Option<Value> + Sync);

/// Longest accepted `fieldManager` (bytes), as in Go's `FieldManagerMaxLength`.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// Manager name from a User-Agent: the part before the first `/`, non-printables dropped,
/// cut at 128 bytes (AS:`handlers/create.go` prefixFromUserAgent); `unknown` when that leaves
/// nothing, as Go's field manager names an empty manager (AM `internal/buildmanagerinfo.go`).
pub fn default_manager(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("");
    let prefix = ua.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix
        .chars()
        .filter(|c| crate::apimachinery::gofmt::is_go_printable(*c))
    {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// Field errors for a `fieldManager` value (AM `ValidateFieldManager`).
pub fn manager_errors(name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long(
            "fieldManager",
            &format!("may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"),
        ));
    }
    for (i, c) in name.char_indices() {
        if !crate::apimachinery::gofmt::is_go_printable(c) {
            errs.push(FieldError::invalid(
                "fieldManager",
                name,
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// 422 for a bad `fieldManager`. Go names the options kind (`PatchOptions.meta.k8s.io "" is
/// invalid: ...`); this signature does not know it, so the lead may prefer pushing
/// `manager_errors` into the options' error list.
pub fn validate_manager(name: &str) -> Result<(), ApiError> {
    let errs = manager_errors(name);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&GroupKind::default(), "", &errs))
    }
}

/// One step in a field path. The derived order (fields, keys, values, indexes; then by text)
/// is the order FieldsV1 is written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:<name>`: a field of an object.
    Field(String),
    /// `k:{"uid":"..."}`: the item of a keyed list with these key values (canonical JSON).
    Key(String),
    /// `v:"x"`: the item of a set list with this value (JSON).
    Value(String),
    /// `i:3`: an item of a list addressed by position.
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<PathElement, String> {
        let (prefix, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("invalid path element {s:?}"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) => Ok(PathElement::Key(canonical_key(&m))),
                _ => Err(format!("invalid key {rest:?}: expected a JSON object")),
            },
            "v" => serde_json::from_str::<Value>(rest)
                .map(|v| PathElement::Value(v.to_string()))
                .map_err(|e| format!("invalid value {rest:?}: {e}")),
            "i" => rest
                .parse::<usize>()
                .map(PathElement::Index)
                .map_err(|_| format!("invalid index {rest:?}")),
            _ => Err(format!("unknown path element type {prefix:?} in {s:?}")),
        }
    }

    /// structured-merge-diff's path notation: `.spec`, `[uid="1"]`, `[="x"]`, `[3]`.
    fn display(&self) -> String {
        match self {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(k) => {
                let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                    Ok(Value::Object(m)) => m.iter().map(|(n, v)| format!("{n}={v}")).collect(),
                    _ => vec![k.clone()],
                };
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// Key fields as compact JSON with sorted names, so equal keys compare equal.
fn canonical_key(m: &Map<String, Value>) -> String {
    let mut names: Vec<&String> = m.keys().collect();
    names.sort();
    let mut out = Map::new();
    for n in names {
        out.insert(n.clone(), m[n.as_str()].clone());
    }
    Value::Object(out).to_string()
}

/// Renders a path the way apply conflicts name fields (`.spec.reference`).
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    /// The node itself is in the set (`.` in FieldsV1, or a leaf `{}`).
    member: bool,
    children: FieldSet,
}

impl Node {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }
}

/// A set of field paths, stored as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    nodes: BTreeMap<PathElement, Node>,
}

impl FieldSet {
    pub fn new() -> Self {
        FieldSet::default()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds one path (the root itself, an empty path, is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let node = self.nodes.entry(first.clone()).or_default();
        if rest.is_empty() {
            node.member = true;
        } else {
            node.children.insert(rest);
        }
    }

    /// The paths below `pe` (relative to it), if any.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.nodes.get(pe).map(|n| &n.children)
    }

    /// Whether `pe` itself is a member.
    pub fn has(&self, pe: &PathElement) -> bool {
        self.nodes.get(pe).is_some_and(|n| n.member)
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        match self.nodes.get(first) {
            None => false,
            Some(n) if rest.is_empty() => n.member,
            Some(n) => n.children.contains(rest),
        }
    }

    /// Removes one path (its descendants stay).
    pub fn remove(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(first) {
            if rest.is_empty() {
                node.member = false;
            } else {
                node.children.remove(rest);
            }
            if node.is_empty() {
                self.nodes.remove(first);
            }
        }
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// Adds every path of `other` (`union` in place: nothing of `self` is copied).
    pub fn merge(&mut self, other: &FieldSet) {
        for (k, n) in &other.nodes {
            match self.nodes.get_mut(k) {
                Some(mine) => {
                    mine.member |= n.member;
                    mine.children.merge(&n.children);
                }
                None => {
                    self.nodes.insert(k.clone(), n.clone());
                }
            }
        }
    }

    /// Paths in `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, n) in &self.nodes {
            let node = match other.nodes.get(k) {
                None => n.clone(),
                Some(o) => Node {
                    member: n.member && !o.member,
                    children: n.children.difference(&o.children),
                },
            };
            if !node.is_empty() {
                out.nodes.insert(k.clone(), node);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, n) in &self.nodes {
            if let Some(o) = other.nodes.get(k) {
                let node = Node {
                    member: n.member && o.member,
                    children: n.children.intersection(&o.children),
                };
                if !node.is_empty() {
                    out.nodes.insert(k.clone(), node);
                }
            }
        }
        out
    }

    /// Every member path, in FieldsV1 order (a node before its children).
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for (k, n) in &self.nodes {
            prefix.push(k.clone());
            if n.member {
                out.push(prefix.clone());
            }
            n.children.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 JSON (`{"f:spec":{".":{},"f:reference":{}}}`).
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for (k, n) in &self.nodes {
            let v = if n.children.is_empty() {
                json!({})
            } else {
                let mut inner = Map::new();
                if n.member {
                    inner.insert(".".into(), json!({}));
                }
                if let Value::Object(c) = n.children.to_fields_v1() {
                    inner.extend(c);
                }
                Value::Object(inner)
            };
            m.insert(k.encode(), v);
        }
        Value::Object(m)
    }

    /// Parses FieldsV1 JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, ApiError> {
        Self::parse_fields_v1(v, 0)
            .map_err(|e| ApiError::bad_request(format!("invalid fieldsV1: {e}")))
    }

    fn parse_fields_v1(v: &Value, depth: usize) -> Result<FieldSet, String> {
        if depth > 100 {
            return Err("too deeply nested".into());
        }
        let Value::Object(m) = v else {
            return Err(format!("expected an object, got {v}"));
        };
        let mut out = FieldSet::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::decode(k)?;
            let Value::Object(cm) = child else {
                return Err(format!("expected an object under {k:?}"));
            };
            let children = Self::parse_fields_v1(child, depth + 1)?;
            let member = cm.is_empty() || cm.contains_key(".");
            let node = Node { member, children };
            if !node.is_empty() {
                out.nodes.insert(pe, node);
            }
        }
        Ok(out)
    }

    /// The fields an object sets (every object field, list item of set/keyed lists, and leaf),
    /// minus the ones no manager ever owns (apiVersion, kind, metadata itself and its
    /// server-set fields), as Go's stripMeta does.
    pub fn from_object(obj: &Value, strategy: &dyn Fn(&[String]) -> ListStrategy) -> FieldSet {
        let mut cmp = Comparison::default();
        compare(
            &mut Vec::new(),
            &mut Vec::new(),
            None,
            Some(obj),
            strategy,
            &mut cmp,
            0,
        );
        strip_meta(cmp.added)
    }
}

/// What changed between two objects (SMD `typed.Comparison`): nodes and all their descendants.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) removed: FieldSet,
    pub(crate) modified: FieldSet,
}

/// Children of a value for comparison: object fields, and items of set/keyed lists.
pub(crate) fn children<'v>(
    v: &'v Value,
    fpath: &[String],
    strategy: &dyn Fn(&[String]) -> ListStrategy,
) -> Vec<(PathElement, Option<String>, &'v Value)> {
    match v {
        // An object where a keyed list is: one of its items, which are atomic (OwnerReference
        // is `x-kubernetes-map-type: atomic`, the only keyed list here).
        Value::Object(_) if atomic_item(fpath, strategy) => Vec::new(),
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| (PathElement::Field(k.clone()), Some(k.clone()), c))
            .collect(),
        Value::Array(items) => match strategy(fpath) {
            ListStrategy::Atomic => Vec::new(),
            ListStrategy::Set => items
                .iter()
                .map(|i| (PathElement::Value(i.to_string()), None, i))
                .collect(),
            ListStrategy::Map(key) => items
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    let pe = match i.get(key) {
                        Some(kv) => {
                            let mut m = Map::new();
                            m.insert(key.to_string(), kv.clone());
                            PathElement::Key(canonical_key(&m))
                        }
                        // An item without its key cannot be addressed by key; fall back to position.
                        None => PathElement::Index(n),
                    };
                    (pe, None, i)
                })
                .collect(),
        },
        _ => Vec::new(),
    }
}

/// List items add no segment to `fpath`, so an object at a keyed list's path is one of its
/// items; those are atomic (owned and replaced whole).
pub(crate) fn atomic_item(fpath: &[String], strategy: &dyn Fn(&[String]) -> ListStrategy) -> bool {
    matches!(strategy(fpath), ListStrategy::Map(_))
}

fn is_container(v: &Value, fpath: &[String], strategy: &dyn Fn(&[String]) -> ListStrategy) -> bool {
    match v {
        Value::Object(_) => !atomic_item(fpath, strategy),
        Value::Array(_) => strategy(fpath) != ListStrategy::Atomic,
        _ => false,
    }
}

/// Bounds recursion on hostile input (bodies are already depth-limited by the JSON parser).
const MAX_DEPTH: usize = 200;

pub(crate) fn compare(
    path: &mut Vec<PathElement>,
    fpath: &mut Vec<String>,
    old: Option<&Value>,
    new: Option<&Value>,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
    out: &mut Comparison,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let descend = match (old, new) {
        (None, None) => false,
        (None, Some(_)) => {
            out.added.insert(path);
            true
        }
        (Some(_), None) => {
            out.removed.insert(path);
            true
        }
        (Some(o), Some(n)) => {
            let both_containers = is_container(o, fpath, strategy)
                && is_container(n, fpath, strategy)
                && std::mem::discriminant(o) == std::mem::discriminant(n);
            if !both_containers && o != n {
                out.modified.insert(path);
            }
            both_containers
        }
    };
    if !descend {
        return;
    }
    // Objects (the common case, and all of a create): fields looked up by name, without
    // building the child lists below. Same visits, old's fields first, then new's others.
    fn as_fields(v: Option<&Value>) -> Option<Option<&Map<String, Value>>> {
        match v {
            Some(Value::Object(m)) => Some(Some(m)),
            None => Some(None),
            Some(_) => None,
        }
    }
    if let (Some(om), Some(nm)) = (as_fields(old), as_fields(new))
        && (om.is_some() || nm.is_some())
        && !atomic_item(fpath, strategy)
    {
        for (k, ov) in om.into_iter().flatten() {
            let nv = nm.and_then(|n| n.get(k));
            field_step(path, fpath, k, Some(ov), nv, strategy, out, depth);
        }
        for (k, nv) in nm.into_iter().flatten() {
            if om.is_none_or(|o| !o.contains_key(k)) {
                field_step(path, fpath, k, None, Some(nv), strategy, out, depth);
            }
        }
        return;
    }
    let old_children = old
        .map(|o| children(o, fpath, strategy))
        .unwrap_or_default();
    let new_children = new
        .map(|n| children(n, fpath, strategy))
        .unwrap_or_default();
    let mut seen: Vec<&PathElement> = Vec::new();
    for (pe, field, ov) in &old_children {
        let nv = new_children
            .iter()
            .find(|(p, _, _)| p == pe)
            .map(|(_, _, v)| *v);
        step(path, fpath, pe, field, Some(*ov), nv, strategy, out, depth);
        seen.push(pe);
    }
    for (pe, field, nv) in &new_children {
        if !seen.contains(&pe) {
            step(
                path,
                fpath,
                pe,
                field,
                None,
                Some(*nv),
                strategy,
                out,
                depth,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn step(
    path: &mut Vec<PathElement>,
    fpath: &mut Vec<String>,
    pe: &PathElement,
    field: &Option<String>,
    old: Option<&Value>,
    new: Option<&Value>,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
    out: &mut Comparison,
    depth: usize,
) {
    path.push(pe.clone());
    if let Some(f) = field {
        fpath.push(f.clone());
    }
    compare(path, fpath, old, new, strategy, out, depth + 1);
    if field.is_some() {
        fpath.pop();
    }
    path.pop();
}

/// `step` into an object's field `k`.
#[allow(clippy::too_many_arguments)]
fn field_step(
    path: &mut Vec<PathElement>,
    fpath: &mut Vec<String>,
    k: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
    out: &mut Comparison,
    depth: usize,
) {
    path.push(PathElement::Field(k.to_owned()));
    fpath.push(k.to_owned());
    compare(path, fpath, old, new, strategy, out, depth + 1);
    fpath.pop();
    path.pop();
}

/// Go's stripMeta set: paths no Update ever owns.
pub(crate) fn strip_meta(mut set: FieldSet) -> FieldSet {
    /// `remove` of each field `names` lists (descendants stay), without building paths.
    fn remove_fields(set: &mut FieldSet, names: &[&str]) {
        set.nodes.retain(|pe, n| match pe {
            PathElement::Field(f) if names.contains(&f.as_str()) => {
                n.member = false;
                !n.is_empty()
            }
            _ => true,
        });
    }
    if let Some(meta) = set.nodes.get_mut(&PathElement::Field("metadata".into())) {
        remove_fields(
            &mut meta.children,
            &[
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            ],
        );
    }
    remove_fields(&mut set, &["apiVersion", "kind", "metadata"]);
    set
}

/// One decoded managedFields entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
    pub(crate) subresource: String,
    pub(crate) set: FieldSet,
}

impl Entry {
    pub(crate) fn same_identity(&self, other: &Entry) -> bool {
        // Apply entries are identified without their apiVersion (Go BuildManagerIdentifier).
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    /// Seconds since the epoch of `time` (0 when absent or unparsable), for Go's sort order.
    fn seconds(&self) -> i64 {
        self.time
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp())
            .unwrap_or(0)
    }
}

/// Go's DecodeManagedFields: every entry must be well formed, or the whole list is refused.
pub(crate) fn decode_entries(v: Option<&Value>) -> Result<Vec<Entry>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Value::Array(items) = v else {
        return Err("managedFields must be a list".into());
    };
    let mut out: Vec<Entry> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let s = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let operation = s("operation");
        if operation != "Apply" && operation != "Update" {
            return Err("operation must be `Apply` or `Update`".into());
        }
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match s("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match item.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::parse_fields_v1(f, 0)?,
        };
        let entry = Entry {
            manager: s("manager"),
            operation,
            api_version,
            time: item.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            set,
        };
        // Go keys entries by identity: a later duplicate replaces the earlier one.
        match out.iter().position(|e| e.same_identity(&entry)) {
            Some(p) => out[p] = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Go's isResetManagedFields: an explicitly empty list (`[]`) or a single zero entry (`[{}]`)
/// in the request clears the object's managed fields.
fn is_reset(requested: Option<&Value>) -> bool {
    let Some(Value::Array(items)) = requested else {
        return false;
    };
    let zero = |v: &Value| match v {
        Value::Object(m) => m.values().all(|x| match x {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }),
        _ => false,
    };
    items.is_empty() || (items.len() == 1 && zero(&items[0]))
}

/// Go's decodeLiveOrNew: a reset (`[]`, `[{}]`) in the request starts from nothing; a
/// non-empty, well-formed list from the request is honoured; anything else (absent, `null`,
/// malformed) keeps the stored entries.
fn starting_entries(live: Option<&Value>, requested: Option<&Value>) -> Vec<Entry> {
    if is_reset(requested) {
        return Vec::new();
    }
    match decode_entries(requested) {
        Ok(e) if !e.is_empty() => e,
        _ => decode_entries(live).unwrap_or_default(),
    }
}

/// Go keeps at most this many Update entries; older ones fold into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;

pub(crate) fn cap_update_managers(entries: &mut Vec<Entry>) {
    let is_update = |e: &Entry| e.operation == "Update";
    if entries.iter().filter(|e| is_update(e)).count() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut updaters: Vec<Entry> = entries.iter().filter(|e| is_update(e)).cloned().collect();
    updaters.sort_by(|a, b| {
        a.seconds()
            .cmp(&b.seconds())
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
    });
    // As Go: the oldest entry of a version waits; when a second one of that version comes,
    // both fold into the version's `ancient-changes` bucket, and so on until under the cap.
    let mut first_of_version: Vec<Entry> = Vec::new();
    let mut length = updaters.len();
    for e in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let bucket_id = Entry {
            manager: "ancient-changes".into(),
            set: FieldSet::new(),
            ..e.clone()
        };
        let Some(first) = first_of_version
            .iter()
            .find(|f| f.api_version == e.api_version)
            .cloned()
        else {
            first_of_version.push(e);
            continue;
        };
        if !entries.iter().any(|x| x.same_identity(&bucket_id))
            && let Some(pos) = entries.iter().position(|x| x.same_identity(&first))
        {
            let moved = entries.remove(pos);
            entries.push(Entry {
                manager: "ancient-changes".into(),
                ..moved
            });
        }
        if let Some(pos) = entries.iter().position(|x| x.same_identity(&e)) {
            entries.remove(pos);
        }
        if let Some(b) = entries.iter_mut().find(|x| x.same_identity(&bucket_id)) {
            b.set = b.set.union(&e.set);
            b.time = e.time.clone();
        }
        length -= 1;
    }
}

/// Records an Update by `manager` (at `api_version`, e.g. `wardle.example.com/v1alpha1`) in
/// `new.metadata.managedFields`, as Go's fieldmanager does:
///
/// * the fields this request added or changed go to the manager's Update entry (created or
///   merged into, `time` set to `now`), and are taken from every other entry;
/// * removed fields leave every entry; entries left empty are dropped;
/// * a request that changes nothing leaves the entries (and times) alone;
/// * `managedFields` in `new` is honoured when non-empty and well formed, `[]` or `[{}]`
///   resets it, otherwise the entries of `old` carry forward;
/// * an update of an object (`old` has a uid) that ends up with no entries records none
///   (Go's skipNonAppliedManager): a reset clears managedFields for good, until an apply.
///
/// `old` is None on create, which compares against `{}`. Go compares against the kind's zero
/// object instead, where non-pointer structs (a Flunder's `spec` and `status`) already exist:
/// pass `Some(&{"spec":{},"status":{}})` on create to get Go's exact set (`f:spec` without `.`).
/// Entries recorded at another apiVersion are compared in this version's field names (Go
/// converts first).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
) {
    record_update_with(old, new, manager, api_version, now, None);
}

/// `record_update` where entries of other apiVersions are judged on the objects converted to
/// their version (Go's way), so a v1beta1 owner of `spec.flunderReference` loses it when a
/// v1alpha1 update changes `spec.reference`. `convert` None compares everything in
/// `api_version`.
pub fn record_update_with(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
    convert: Option<Convert<'_>>,
) {
    let Some(new_obj) = new.as_object_mut() else {
        return;
    };
    let live_mf = old
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("managedFields"));
    let requested_mf = new_obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    let mut entries = starting_entries(live_mf, requested_mf.as_ref());
    // Go's skipNonAppliedManager: an update (the live object has a uid) of an object without
    // managed fields does not start tracking them; only a create or an apply does.
    let live_uid = old
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .is_some_and(|u| !u.is_empty());
    if entries.is_empty() && live_uid {
        write_entries(new, entries);
        return;
    }

    // The live object without its managedFields; a create's base has none, so no copy.
    let empty = json!({});
    let base: Cow<'_, Value> = match old {
        Some(o) if o["metadata"].get("managedFields").is_some() => {
            let mut o = o.clone();
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
            Cow::Owned(o)
        }
        Some(o) => Cow::Borrowed(o),
        None => Cow::Borrowed(&empty),
    };
    let Comparison {
        added: mut changed,
        modified,
        removed,
    } = diff(&base, new);
    changed.merge(&modified);
    lose_changed(
        &mut entries,
        &base,
        new,
        &changed,
        &removed,
        api_version,
        convert,
    );
    entries.retain(|e| !e.set.is_empty());

    let current = strip_meta(changed);
    if !current.is_empty() {
        let me = Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: Some(now.to_string()),
            subresource: String::new(),
            set: current,
        };
        match entries.iter_mut().find(|e| e.same_identity(&me)) {
            Some(e) => {
                e.set = e.set.union(&me.set);
                e.time = me.time;
            }
            None => entries.push(me),
        }
    }
    cap_update_managers(&mut entries);
    write_entries(new, entries);
}

/// The fields that differ between `old` and `new` (whole objects, list rules of `list_strategy`).
pub(crate) fn diff(old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    compare(
        &mut Vec::new(),
        &mut Vec::new(),
        Some(old),
        Some(new),
        &list_strategy,
        &mut c,
        0,
    );
    c
}

/// Takes from each entry the fields an update changed (`changed`: added or modified, and
/// `removed`, both in `api_version`); an entry of another version is asked in its own version
/// when `convert` can (Go's way).
fn lose_changed(
    entries: &mut [Entry],
    base: &Value,
    new: &Value,
    changed: &FieldSet,
    removed: &FieldSet,
    api_version: &str,
    convert: Option<Convert<'_>>,
) {
    let mut other_versions: BTreeMap<String, Option<FieldSet>> = BTreeMap::new();
    for e in entries.iter_mut() {
        let lost = match convert {
            Some(convert) if e.api_version != api_version => other_versions
                .entry(e.api_version.clone())
                .or_insert_with(|| {
                    let c = diff(
                        &convert(base, &e.api_version)?,
                        &convert(new, &e.api_version)?,
                    );
                    Some(c.added.union(&c.modified).union(&c.removed))
                })
                .clone(),
            _ => None,
        };
        e.set = match lost {
            Some(lost) => e.set.difference(&lost),
            None => e.set.difference(changed).difference(removed),
        };
    }
}

/// Go's order of managedFields (Apply before Update, then by time, manager, apiVersion), written
/// into `obj.metadata.managedFields` (removed when there are none).
pub(crate) fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.seconds().cmp(&b.seconds()))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(meta) = obj
        .as_object_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1A1: &str = "wardle.example.com/v1alpha1";

    fn fl(labels: Value, spec: Value) -> Value {
        json!({
            "apiVersion": V1A1, "kind": "Flunder",
            "metadata": {"name": "f", "namespace": "default", "uid": "u", "resourceVersion": "3",
                         "creationTimestamp": "2024-01-01T00:00:00Z", "labels": labels},
            "spec": spec,
            "status": {}
        })
    }

    fn mf(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {
                "f:finalizers": {".": {}, "v:\"x\"": {}},
                "f:labels": {".": {}, "f:a": {}},
                "f:ownerReferences": {".": {}, "k:{\"uid\":\"1\"}": {}}
            },
            "f:spec": {".": {}, "f:reference": {}}
        });
        let s = FieldSet::from_fields_v1(&v).unwrap();
        assert_eq!(s.to_fields_v1(), v);
        let f = |x: &str| PathElement::Field(x.into());
        assert!(s.contains(&[f("spec")]));
        assert!(s.contains(&[f("spec"), f("reference")]));
        assert!(!s.contains(&[f("metadata")]));
        assert!(s.contains(&[
            f("metadata"),
            f("finalizers"),
            PathElement::Value("\"x\"".into())
        ]));
        assert_eq!(
            path_string(&[
                f("metadata"),
                f("ownerReferences"),
                PathElement::Key(r#"{"uid":"1"}"#.into())
            ]),
            r#".metadata.ownerReferences[uid="1"]"#
        );
        assert_eq!(s.paths().len(), 8);
    }

    #[test]
    fn strip_meta_and_merge() {
        let set = |v: Value| FieldSet::from_fields_v1(&v).unwrap();
        // Server-owned members go; a node left with descendants stays, an emptied one goes.
        let full = set(json!({
            "f:apiVersion": {}, "f:kind": {},
            "f:metadata": {".": {}, "f:name": {}, "f:uid": {}, "f:labels": {".": {}, "f:a": {}},
                           "f:generation": {}},
            "f:spec": {".": {}, "f:reference": {}}
        }));
        assert_eq!(
            strip_meta(full).to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
                   "f:spec": {".": {}, "f:reference": {}}})
        );
        let only_owned = set(json!({"f:metadata": {".": {}, "f:name": {}, "f:namespace": {}}}));
        assert!(strip_meta(only_owned).is_empty());
        let nested = set(json!({"f:spec": {"f:metadata": {"f:name": {}}}}));
        assert_eq!(
            strip_meta(nested.clone()),
            nested,
            "only the object's own metadata"
        );
        // merge is union in place, whichever side a path or its membership comes from.
        let a = set(json!({"f:spec": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}));
        let b = set(json!({"f:spec": {".": {}, "f:b": {}}, "f:status": {}}));
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(
            m.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:x": {}}},
                   "f:spec": {".": {}, "f:a": {}, "f:b": {}}, "f:status": {}})
        );
        assert_eq!(m, a.union(&b));
        assert_eq!(m, b.union(&a));
    }

    #[test]
    fn fields_v1_errors() {
        for bad in [
            json!([]),
            json!({"x:a": {}}),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"i:z": {}}),
            json!({"nocolon": {}}),
        ] {
            assert_eq!(
                FieldSet::from_fields_v1(&bad).unwrap_err().code,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn set_algebra() {
        let a =
            FieldSet::from_fields_v1(&json!({"f:spec": {".": {}, "f:a": {}, "f:b": {}}})).unwrap();
        let b = FieldSet::from_fields_v1(&json!({"f:spec": {"f:b": {}, "f:c": {}}})).unwrap();
        assert_eq!(
            a.union(&b).to_fields_v1(),
            json!({"f:spec": {".": {}, "f:a": {}, "f:b": {}, "f:c": {}}})
        );
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:spec": {".": {}, "f:a": {}}})
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:spec": {"f:b": {}}})
        );
        assert!(a.difference(&a).is_empty());
        assert!(FieldSet::new().is_empty());
    }

    #[test]
    fn from_object_strips_meta_and_uses_list_rules() {
        let mut o = fl(json!({"a": "1"}), json!({"reference": "r"}));
        o["metadata"]["finalizers"] = json!(["x"]);
        o["metadata"]["ownerReferences"] = json!([{"uid": "1", "name": "n"}]);
        o["disallowed"] = json!(["p", "q"]);
        let s = FieldSet::from_object(&o, &list_strategy);
        assert_eq!(
            s.to_fields_v1(),
            json!({
                "f:disallowed": {},
                "f:metadata": {
                    "f:finalizers": {".": {}, "v:\"x\"": {}},
                    "f:labels": {".": {}, "f:a": {}},
                    "f:ownerReferences": {".": {}, "k:{\"uid\":\"1\"}": {}}
                },
                "f:spec": {".": {}, "f:reference": {}},
                "f:status": {}
            })
        );
    }

    #[test]
    fn create_records_manager() {
        let mut o = fl(json!({"a": "1"}), json!({"reference": "r"}));
        record_update(None, &mut o, "kubectl-create", V1A1, "2024-01-01T00:00:00Z");
        let e = mf(&o);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0],
            json!({
                "manager": "kubectl-create", "operation": "Update", "apiVersion": V1A1,
                "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {".": {}, "f:reference": {}}, "f:status": {}}
            })
        );
        // Against the kind's zero object (Go's way), spec and status already exist.
        let mut o = fl(json!({"a": "1"}), json!({"reference": "r"}));
        record_update(
            Some(&json!({"spec": {}, "status": {}})),
            &mut o,
            "kubectl-create",
            V1A1,
            "t",
        );
        assert_eq!(
            mf(&o)[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:reference": {}}})
        );
    }

    #[test]
    fn updates_by_two_managers() {
        let mut v1 = fl(json!({"a": "1"}), json!({"reference": "r"}));
        record_update(None, &mut v1, "creator", V1A1, "2024-01-01T00:00:00Z");

        // A second manager changes spec.reference and adds a label: it takes those fields.
        let mut v2 = fl(json!({"a": "1", "b": "2"}), json!({"reference": "s"}));
        v2["metadata"]["managedFields"] = v1["metadata"]["managedFields"].clone();
        record_update(Some(&v1), &mut v2, "labeler", V1A1, "2024-01-02T00:00:00Z");
        let e = mf(&v2);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0]["manager"], "creator");
        assert_eq!(
            e[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {}, "f:status": {}})
        );
        assert_eq!(e[1]["manager"], "labeler");
        assert_eq!(e[1]["time"], "2024-01-02T00:00:00Z");
        assert_eq!(
            e[1]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:spec": {"f:reference": {}}})
        );

        // The creator removes label a: it leaves every set; a no-op for labeler's fields.
        let mut v3 = fl(json!({"b": "2"}), json!({"reference": "s"}));
        record_update(Some(&v2), &mut v3, "creator", V1A1, "2024-01-03T00:00:00Z");
        let e = mf(&v3);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0]["manager"], "creator");
        assert_eq!(
            e[0]["time"], "2024-01-01T00:00:00Z",
            "removal alone does not refresh the time"
        );
        assert_eq!(
            e[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {}}, "f:spec": {}, "f:status": {}})
        );

        // The creator sets spec.reference back: labeler loses it, creator's entry is merged into.
        let mut v4 = fl(json!({"b": "2"}), json!({"reference": "r"}));
        record_update(Some(&v3), &mut v4, "creator", V1A1, "2024-01-04T00:00:00Z");
        let e = mf(&v4);
        assert_eq!(e[0]["manager"], "labeler");
        assert_eq!(
            e[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:b": {}}}})
        );
        assert_eq!(e[1]["manager"], "creator");
        assert_eq!(e[1]["time"], "2024-01-04T00:00:00Z");
        assert_eq!(
            e[1]["fieldsV1"]["f:spec"],
            json!({".": {}, "f:reference": {}})
        );

        // Labeler drops its last field: its entry disappears.
        let mut v5 = fl(json!({}), json!({"reference": "r"}));
        record_update(Some(&v4), &mut v5, "labeler", V1A1, "2024-01-05T00:00:00Z");
        let e = mf(&v5);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["manager"], "creator");
    }

    #[test]
    fn no_op_update_keeps_entries() {
        let mut v1 = fl(json!({"a": "1"}), json!({"reference": "r"}));
        record_update(None, &mut v1, "creator", V1A1, "2024-01-01T00:00:00Z");
        let mut v2 = v1.clone();
        record_update(Some(&v1), &mut v2, "other", V1A1, "2024-01-09T00:00:00Z");
        assert_eq!(mf(&v2), mf(&v1));
        // Same manager at another apiVersion is another entry.
        let mut v3 = fl(json!({"a": "2"}), json!({"reference": "r"}));
        record_update(
            Some(&v2),
            &mut v3,
            "creator",
            "wardle.example.com/v1beta1",
            "2024-01-10T00:00:00Z",
        );
        assert_eq!(mf(&v3).len(), 2);
    }

    #[test]
    fn request_managed_fields_rules() {
        let mut v1 = fl(json!({"a": "1"}), json!({"reference": "r"}));
        record_update(None, &mut v1, "creator", V1A1, "2024-01-01T00:00:00Z");

        // Absent or null in the request: the stored entries carry forward.
        for requested in [None, Some(json!(null))] {
            let mut v2 = fl(json!({"a": "1"}), json!({"reference": "r"}));
            if let Some(r) = &requested {
                v2["metadata"]["managedFields"] = r.clone();
            }
            record_update(Some(&v1), &mut v2, "x", V1A1, "t2");
            assert_eq!(mf(&v2), mf(&v1));
        }
        // [] and [{}] reset; an update of a live object (it has a uid) then records nothing,
        // even when it changes fields.
        v1["metadata"]["uid"] = json!("u1");
        for reset in [json!([]), json!([{}]), json!([{"manager": ""}])] {
            let mut v2 = fl(json!({"a": "2"}), json!({"reference": "r"}));
            v2["metadata"]["managedFields"] = reset;
            v2["metadata"]["uid"] = json!("u1");
            record_update(Some(&v1), &mut v2, "x", V1A1, "t2");
            assert!(v2["metadata"].get("managedFields").is_none());
            // ... and later updates do not start tracking again.
            let mut v3 = fl(json!({"a": "3"}), json!({"reference": "r"}));
            record_update(Some(&v2), &mut v3, "x", V1A1, "t3");
            assert!(v3["metadata"].get("managedFields").is_none());
        }
        // A well-formed list from the client is honoured.
        let mut v2 = fl(json!({"a": "1"}), json!({"reference": "r"}));
        let mine = json!([{"manager": "someone", "operation": "Update", "apiVersion": V1A1, "time": "2023-01-01T00:00:00Z",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:reference": {}}}}]);
        v2["metadata"]["managedFields"] = mine.clone();
        record_update(Some(&v1), &mut v2, "x", V1A1, "t2");
        assert_eq!(mf(&v2), mine.as_array().cloned().unwrap());
        // A malformed one is ignored.
        let mut v2 = fl(json!({"a": "1"}), json!({"reference": "r"}));
        v2["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Frob", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
        record_update(Some(&v1), &mut v2, "x", V1A1, "t2");
        assert_eq!(mf(&v2), mf(&v1));
        // Non-object input never panics.
        let mut weird = json!("x");
        record_update(Some(&json!(5)), &mut weird, "m", V1A1, "t");
        let mut no_meta = json!({"spec": {"a": 1}});
        record_update(None, &mut no_meta, "m", V1A1, "t");
        assert!(no_meta.get("metadata").is_none());
    }

    #[test]
    fn apply_entries_sort_first_and_update_cap() {
        let mut obj = fl(json!({}), json!({}));
        let mut entries = vec![
            json!({"manager": "kubectl", "operation": "Apply", "apiVersion": V1A1, "time": "2024-02-01T00:00:00Z",
                                      "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:x": {}}}}),
        ];
        for i in 0..11 {
            entries.push(json!({"manager": format!("m{i:02}"), "operation": "Update", "apiVersion": V1A1,
                                "time": format!("2024-01-{:02}T00:00:00Z", i + 1),
                                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {format!("f:l{i}"): {}}}}}));
        }
        let old = obj.clone();
        obj["metadata"]["managedFields"] = Value::Array(entries);
        obj["spec"]["new"] = json!(1);
        record_update(Some(&old), &mut obj, "m99", V1A1, "2024-03-01T00:00:00Z");
        let e = mf(&obj);
        assert_eq!(e[0]["operation"], "Apply");
        let updates: Vec<&Value> = e.iter().filter(|x| x["operation"] == "Update").collect();
        assert_eq!(updates.len(), 10, "{e:#?}");
        let ancient = updates
            .iter()
            .find(|x| x["manager"] == "ancient-changes")
            .expect("bucket");
        assert_eq!(
            ancient["fieldsV1"]["f:metadata"]["f:labels"],
            json!({"f:l0": {}, "f:l1": {}, "f:l2": {}})
        );
    }

    #[test]
    fn managers() {
        assert_eq!(
            default_manager(Some("kubectl/v1.32.4 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(default_manager(Some("curl/8.5.0")), "curl");
        assert_eq!(default_manager(Some("a\u{7}b/1")), "ab");
        assert_eq!(default_manager(None), "unknown");
        assert_eq!(default_manager(Some("/x")), "unknown");
        assert_eq!(default_manager(Some(&"x".repeat(300))).len(), 128);

        assert!(validate_manager("kubectl-client-side-apply").is_ok());
        assert!(validate_manager(&"m".repeat(128)).is_ok());
        let e = validate_manager(&"m".repeat(129)).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .ends_with("fieldManager: Too long: may not be more than 128 bytes"),
            "{}",
            e.message
        );
        let errs = manager_errors("a\tb");
        assert_eq!(
            errs[0].to_string(),
            r#"fieldManager: Invalid value: "a\tb": invalid character U+0009 (at position 1)"#
        );
    }
}
