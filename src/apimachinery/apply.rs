//! Server-side apply: merging an applied configuration into the live object, pruning what the
//! applier stopped applying, and field ownership with conflicts (structured-merge-diff's
//! `merge.Updater.Apply`, AS:`fieldmanager`), on JSON trees with the list rules of `list_strategy`.
//!
//! Every managedFields entry keeps its paths in its own apiVersion; ownership questions about an
//! entry are asked on the objects converted to that version (`Convert`), as Go does.

use crate::apimachinery::gofmt::go_quote;
use crate::apimachinery::managed_fields::{
    Comparison, Entry, FieldSet, PathElement, atomic_item, cap_update_managers, children, compare,
    decode_entries, diff, path_string, strip_meta, write_entries,
};
use crate::apimachinery::patch::{ListStrategy, list_strategy};
use crate::apimachinery::status::{ApiError, Reason, StatusCause, StatusDetails};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub use crate::apimachinery::managed_fields::Convert;

/// One apply request.
pub struct Apply<'a> {
    pub manager: &'a str,
    /// The request's apiVersion; `live` and `config` are in it.
    pub api_version: &'a str,
    pub force: bool,
    pub now: &'a str,
    pub convert: Convert<'a>,
}

fn strategy(p: &[String]) -> ListStrategy {
    list_strategy(p)
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// The fields an applied configuration sets (SMD `ToFieldSet`): leaves and list items are
/// members, maps and structs only through their children (an empty one is a member itself;
/// an empty set or map list is nothing). Not stripped of metadata.
pub fn applied_set(config: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk_applied(config, &mut Vec::new(), &mut Vec::new(), &mut out, 0);
    out
}

fn walk_applied(
    v: &Value,
    path: &mut Vec<PathElement>,
    fpath: &mut Vec<String>,
    out: &mut FieldSet,
    depth: usize,
) {
    if depth > 200 {
        return;
    }
    // SMD's `doList` inserts only the items of a set or map list, so an empty one (`finalizers:
    // []`, `ownerReferences: []`) is no field of the applier's; an empty atomic list or map is.
    if v.as_array().is_some_and(Vec::is_empty) && strategy(fpath) != ListStrategy::Atomic {
        return;
    }
    let kids = children(v, fpath, &strategy);
    let container = match v {
        Value::Object(m) => !m.is_empty() && !atomic_item(fpath, &strategy),
        Value::Array(a) => strategy(fpath) != ListStrategy::Atomic && !a.is_empty(),
        _ => false,
    };
    if !container {
        out.insert(path);
        return;
    }
    let is_list = v.is_array();
    for (pe, field, child) in kids {
        // A field applied as null is owned too (SMD records it); the typed decode of the
        // result then makes it Go's zero value.
        path.push(pe);
        if is_list {
            // List items are members themselves (`.` in FieldsV1), besides their fields.
            out.insert(path);
        }
        if let Some(f) = &field {
            fpath.push(f.clone());
        }
        walk_applied(child, path, fpath, out, depth + 1);
        if field.is_some() {
            fpath.pop();
        }
        path.pop();
    }
}

/// Every node of a value as a member (maps, items and leaves).
fn full_set(v: &Value) -> FieldSet {
    let mut cmp = Comparison::default();
    compare(
        &mut Vec::new(),
        &mut Vec::new(),
        None,
        Some(v),
        &strategy,
        &mut cmp,
        0,
    );
    cmp.added
}

/// Maps whose keys are data, not named fields (their parents are still named fields).
fn is_map_path(parent: &[PathElement]) -> bool {
    let f = |s: &str| PathElement::Field(s.to_string());
    parent == [f("metadata"), f("labels")] || parent == [f("metadata"), f("annotations")]
}

/// SMD `EnsureNamedFieldsAreMembers`: the struct fields above every member become members, so
/// that owning `spec.reference` protects `spec` from pruning.
fn ensure_named(set: &FieldSet) -> FieldSet {
    let mut out = set.clone();
    for p in set.paths() {
        for i in 1..p.len() {
            let prefix = &p[..i];
            if matches!(prefix[i - 1], PathElement::Field(_)) && !is_map_path(&prefix[..i - 1]) {
                out.insert(prefix);
            }
        }
    }
    out
}

/// Paths the server owns: never pruned.
fn protected() -> FieldSet {
    let f = |s: &str| PathElement::Field(s.to_string());
    let mut s = FieldSet::new();
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for m in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        s.insert(&[f("metadata"), f(m)]);
    }
    s
}

/// SMD `RemoveItems`: drops every member path of `set` (with all below it) from `v`.
pub fn remove_items(v: &Value, set: &FieldSet) -> Value {
    remove_at(v, set, &mut Vec::new())
}

fn remove_at(v: &Value, set: &FieldSet, fpath: &mut Vec<String>) -> Value {
    if set.is_empty() {
        return v.clone();
    }
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, c) in m {
                let pe = PathElement::Field(k.clone());
                if set.has(&pe) {
                    continue;
                }
                let child = match set.child(&pe) {
                    Some(sub) => {
                        fpath.push(k.clone());
                        let r = remove_at(c, sub, fpath);
                        fpath.pop();
                        r
                    }
                    None => c.clone(),
                };
                out.insert(k.clone(), child);
            }
            Value::Object(out)
        }
        Value::Array(_) if strategy(fpath) != ListStrategy::Atomic => {
            let kept: Vec<Value> = children(v, fpath, &strategy)
                .into_iter()
                .filter(|(pe, _, _)| !set.has(pe))
                .map(|(pe, _, c)| match set.child(&pe) {
                    Some(sub) => remove_at(c, sub, fpath),
                    None => c.clone(),
                })
                .collect();
            Value::Array(kept)
        }
        _ => v.clone(),
    }
}

/// SMD merge of an applied configuration into the live object: maps merge by key, set and map
/// lists merge by item, everything else (scalars, atomic lists) is replaced. A `null` in the
/// configuration removes the field.
pub fn merge(live: &Value, config: &Value) -> Value {
    merge_at(live, config, &mut Vec::new(), 0)
}

fn merge_at(live: &Value, config: &Value, fpath: &mut Vec<String>, depth: usize) -> Value {
    if depth > 200 {
        return config.clone();
    }
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !atomic_item(fpath, &strategy) => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    // Kept as null for the typed decode that follows (`decode::normalize`):
                    // a struct field vanishes, a map value becomes "" as in Go.
                    out.insert(k.clone(), Value::Null);
                    continue;
                }
                fpath.push(k.clone());
                let merged = match l.get(k) {
                    Some(lv) => merge_at(lv, cv, fpath, depth + 1),
                    None => cv.clone(),
                };
                fpath.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(_), Value::Array(_)) if strategy(fpath) != ListStrategy::Atomic => {
            let lk = children(live, fpath, &strategy);
            let ck = children(config, fpath, &strategy);
            let in_config = |pe: &PathElement| ck.iter().position(|(p, _, _)| p == pe);
            let mut out = Vec::new();
            let mut next_config = 0;
            // Live items keep their places; config items come in config order, each shared
            // item pulling in the config items before it (SMD's interleaving, simplified).
            for (pe, _, lv) in &lk {
                match in_config(pe) {
                    None => out.push((*lv).clone()),
                    Some(ci) if ci >= next_config => {
                        for (p, _, cv) in &ck[next_config..=ci] {
                            let merged = match lk.iter().find(|(q, _, _)| q == p) {
                                Some((_, _, lv)) => merge_at(lv, cv, fpath, depth + 1),
                                None => (*cv).clone(),
                            };
                            out.push(merged);
                        }
                        next_config = ci + 1;
                    }
                    Some(_) => {}
                }
            }
            for (p, _, cv) in &ck[next_config..] {
                let merged = match lk.iter().find(|(q, _, _)| q == p) {
                    Some((_, _, lv)) => merge_at(lv, cv, fpath, depth + 1),
                    None => (*cv).clone(),
                };
                out.push(merged);
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// How a manager is named in conflicts (AS `printManager`): Apply managers by name, Update
/// managers with the version they used.
fn print_manager(e: &Entry) -> String {
    let mut s = go_quote(&e.manager);
    if !e.subresource.is_empty() {
        s = format!("{s} with subresource {}", go_quote(&e.subresource));
    }
    if e.operation == "Update" {
        s = format!("{s} using {}", e.api_version);
    }
    s
}

/// Go's 409 for apply conflicts (AS `internal.NewConflictError`).
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let message = if let [(m, p)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {m}: {p}")
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (m, p) in conflicts {
            by_manager.entry(m).or_default().push(p);
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut e = ApiError::new(409, Reason::Conflict, message);
    e.details = Some(Box::new(StatusDetails {
        causes: conflicts
            .iter()
            .map(|(m, p)| StatusCause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with {m}"),
                field: p.clone(),
            })
            .collect(),
        ..Default::default()
    }));
    e
}

/// Converts `obj` to `version`, caching per version.
fn converted<'c>(
    cache: &'c mut BTreeMap<String, Option<Value>>,
    obj: &Value,
    version: &str,
    req: &Apply<'_>,
) -> Option<&'c Value> {
    cache
        .entry(version.to_string())
        .or_insert_with(|| {
            if version == req.api_version {
                Some(obj.clone())
            } else {
                (req.convert)(obj, version)
            }
        })
        .as_ref()
}

/// SMD `prune`: fields in the applier's previous set that nobody owns any more are removed from
/// `merged`, working in each owner's version.
fn prune(
    merged: Value,
    entries: &[Entry],
    applied_full: &FieldSet,
    last: &Entry,
    req: &Apply<'_>,
) -> Value {
    let v = last.api_version.as_str();
    let Some(merged_v) = converted(&mut BTreeMap::new(), &merged, v, req).cloned() else {
        return merged;
    };
    // Everything owned now, per version (the applier's new set is in the request's version).
    let mut owned: BTreeMap<String, FieldSet> = BTreeMap::new();
    for e in entries {
        let s = owned.entry(e.api_version.clone()).or_default();
        *s = s.union(&e.set);
    }
    let s = owned.entry(req.api_version.to_string()).or_default();
    *s = s.union(applied_full);

    let empty = FieldSet::new();
    let owned_v = owned.get(v).unwrap_or(&empty);
    let to_remove = ensure_named(&last.set)
        .difference(&ensure_named(owned_v))
        .difference(&protected());
    let mut pruned = remove_items(&merged_v, &to_remove);
    // Add back what owners in other versions still own (SMD addBackOwnedItems).
    let mut at = v.to_string();
    for (w, set) in &owned {
        if w == v {
            continue;
        }
        // Both carry their apiVersion; the converter reads it.
        let (Some(m_w), Some(p_w)) = ((req.convert)(&merged_v, w), (req.convert)(&pruned, w))
        else {
            continue;
        };
        let drop = full_set(&m_w)
            .difference(&full_set(&p_w).union(&ensure_named(set)))
            .difference(&protected());
        pruned = remove_items(&m_w, &drop);
        at = w.clone();
    }
    if at == req.api_version {
        pruned
    } else {
        (req.convert)(&pruned, req.api_version).unwrap_or(merged)
    }
}

/// The annotation client-side `kubectl apply` keeps its configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Fields the last-applied-configuration annotation sets to the value they still have.
fn allowed_from_last_applied(live: &Value, req: &Apply<'_>) -> FieldSet {
    let Some(text) = live["metadata"]["annotations"][LAST_APPLIED].as_str() else {
        return FieldSet::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return FieldSet::new();
    };
    if !last.is_object() {
        return FieldSet::new();
    }
    let last = if last.get("apiVersion").and_then(Value::as_str) == Some(req.api_version) {
        last
    } else {
        match (req.convert)(&last, req.api_version) {
            Some(l) => l,
            None => return FieldSet::new(),
        }
    };
    let cmp = diff(&last, live);
    applied_set(&last)
        .difference(&cmp.modified)
        .difference(&cmp.removed)
}

/// Applies `config` to `live` (both in the request's version; `live` with its managedFields,
/// `{}`-like for a create). Returns the merged object with managedFields set, or the 409 of
/// Go when other managers own fields the configuration changes and `force` is off.
pub fn apply(live: &Value, config: &Value, req: &Apply<'_>) -> Result<Value, ApiError> {
    // Merging and field-set arithmetic over a large object: keep it off the async workers.
    crate::apimachinery::cpu::cpu_bound(|| apply_now(live, config, req))
}

fn apply_now(live: &Value, config: &Value, req: &Apply<'_>) -> Result<Value, ApiError> {
    let live_mf = live.get("metadata").and_then(|m| m.get("managedFields"));
    let mut entries = decode_entries(live_mf).unwrap_or_default();
    let live_clean = without_managed_fields(live);

    let applied_full = applied_set(config);
    let me = Entry {
        manager: req.manager.to_string(),
        operation: "Apply".into(),
        api_version: req.api_version.to_string(),
        time: None,
        subresource: String::new(),
        set: strip_meta(applied_full.clone()),
    };
    let previous = entries
        .iter()
        .position(|e| e.same_identity(&me))
        .map(|i| entries.remove(i));

    let mut merged = merge(&live_clean, config);
    if let Some(last) = &previous
        && !last.set.is_empty()
    {
        merged = prune(merged, &entries, &applied_full, last, req);
    }

    let Ownership {
        conflicts,
        taken,
        unconvertible,
    } = ownership(&entries, &live_clean, &merged, req);
    if !req.force {
        refuse_conflicts(conflicts, &live_clean, req)?;
    }
    for (i, set) in taken {
        entries[i].set = entries[i].set.difference(&set);
    }
    let mut i = 0;
    entries.retain(|e| {
        let keep = !unconvertible.contains(&i) && !e.set.is_empty();
        i += 1;
        keep
    });

    // The time moves only when the object changed (Go's managedFieldsUpdater.Apply sets it only
    // when structured-merge-diff returns a new object): an apply that changes nothing keeps the
    // applier's old time, and a manager new to the object gets an entry without one.
    let time = if merged == live_clean {
        previous.as_ref().and_then(|p| p.time.clone())
    } else {
        Some(req.now.to_string())
    };
    if !me.set.is_empty() {
        entries.push(Entry { time, ..me });
    }
    cap_update_managers(&mut entries);
    if !merged.get("metadata").is_some_and(Value::is_object)
        && let Some(o) = merged.as_object_mut()
    {
        o.insert("metadata".into(), Value::Object(Map::new()));
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// What the other managers' entries lose to an apply, and where they object.
struct Ownership {
    /// (manager as printed, path) of each field another manager owns that the apply changes.
    conflicts: Vec<(String, Vec<PathElement>)>,
    /// Per entry index: the fields it no longer owns (changed or removed by the apply).
    taken: Vec<(usize, FieldSet)>,
    /// Entries of versions that cannot be converted to (Go drops those managers).
    unconvertible: Vec<usize>,
}

/// Every other manager, asked in its own version (SMD `Updater.update`): which of its fields the
/// apply changes (`live` → `merged`).
fn ownership(entries: &[Entry], live: &Value, merged: &Value, req: &Apply<'_>) -> Ownership {
    let mut old_cache = BTreeMap::new();
    let mut new_cache = BTreeMap::new();
    let mut comparisons: BTreeMap<String, Option<Comparison>> = BTreeMap::new();
    let mut out = Ownership {
        conflicts: Vec::new(),
        taken: Vec::new(),
        unconvertible: Vec::new(),
    };
    for (i, e) in entries.iter().enumerate() {
        let cmp = comparisons.entry(e.api_version.clone()).or_insert_with(|| {
            let old = converted(&mut old_cache, live, &e.api_version, req)?.clone();
            let new = converted(&mut new_cache, merged, &e.api_version, req)?;
            Some(diff(&old, new))
        });
        let Some(cmp) = cmp else {
            out.unconvertible.push(i);
            continue;
        };
        let changed = cmp.modified.union(&cmp.added);
        let conflict = e.set.intersection(&changed);
        for p in conflict.paths() {
            out.conflicts.push((print_manager(e), p));
        }
        out.taken.push((i, conflict.union(&cmp.removed)));
    }
    out
}

/// 409 for the conflicts of an unforced apply. kubectl's first server-side apply of an object
/// it managed client-side may take the fields its last-applied-configuration still describes
/// (AS `lastAppliedManager`).
fn refuse_conflicts(
    mut conflicts: Vec<(String, Vec<PathElement>)>,
    live: &Value,
    req: &Apply<'_>,
) -> Result<(), ApiError> {
    if !conflicts.is_empty() && req.manager == "kubectl" {
        let allowed = allowed_from_last_applied(live, req);
        conflicts.retain(|(_, p)| !allowed.contains(p));
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    let mut named: Vec<(String, String)> = conflicts
        .iter()
        .map(|(m, p)| (m.clone(), path_string(p)))
        .collect();
    named.sort();
    Err(conflict_error(&named))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A1: &str = "wardle.example.com/v1alpha1";
    const B1: &str = "wardle.example.com/v1beta1";

    /// A toy two-version kind: v1alpha1 `spec.reference` is v1beta1 `spec.flunderReference`.
    fn convert(obj: &Value, to: &str) -> Option<Value> {
        let from = obj["apiVersion"].as_str()?;
        let mut o = obj.clone();
        o["apiVersion"] = json!(to);
        if from == to {
            return Some(o);
        }
        let (a, b) = if to == B1 {
            ("reference", "flunderReference")
        } else if to == A1 {
            ("flunderReference", "reference")
        } else {
            return None;
        };
        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut)
            && let Some(v) = spec.remove(a)
        {
            spec.insert(b.into(), v);
        }
        Some(o)
    }

    fn req<'a>(manager: &'a str, version: &'a str, force: bool, now: &'a str) -> Apply<'a> {
        Apply {
            manager,
            api_version: version,
            force,
            now,
            convert: &convert,
        }
    }

    /// An applied configuration; empty labels or spec are left out (an empty map is a value
    /// the applier would own).
    fn cfg(version: &str, labels: Value, spec: Value) -> Value {
        let mut c = json!({"apiVersion": version, "kind": "Flunder", "metadata": {"name": "f"}});
        if labels != json!({}) {
            c["metadata"]["labels"] = labels;
        }
        if spec != json!({}) {
            c["spec"] = spec;
        }
        c
    }

    fn live() -> Value {
        json!({"apiVersion": A1, "kind": "Flunder", "metadata": {"name": "f", "uid": "u"},
               "spec": {}, "status": {}})
    }

    fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
    }

    #[test]
    fn applied_set_has_no_struct_members() {
        let c = json!({"apiVersion": A1, "kind": "Flunder",
                       "metadata": {"name": "f", "labels": {"a": "1"}, "finalizers": ["x"]},
                       "spec": {"reference": "r"}, "list": ["p"]});
        assert_eq!(
            strip_meta(applied_set(&c)).to_fields_v1(),
            json!({"f:list": {}, "f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
                   "f:spec": {"f:reference": {}}})
        );
    }

    #[test]
    fn merge_rules() {
        let l = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"],
                                    "ownerReferences": [{"uid": "1", "name": "n"}]},
                       "spec": {"reference": "r", "referenceType": "Flunder"}, "list": [1, 2]});
        let c = json!({"metadata": {"labels": {"b": "2"}, "finalizers": ["z", "y"],
                                    "ownerReferences": [{"uid": "1", "kind": "K"}]},
                       "spec": {"reference": null}, "list": [3]});
        let m = merge(&l, &c);
        assert_eq!(m["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(m["metadata"]["finalizers"], json!(["x", "z", "y"]));
        // OwnerReferences are atomic items: replaced whole, matched by uid.
        assert_eq!(
            m["metadata"]["ownerReferences"],
            json!([{"uid": "1", "kind": "K"}])
        );
        // null stays for the typed decode (`decode::normalize`), which drops the field.
        assert_eq!(
            m["spec"],
            json!({"reference": null, "referenceType": "Flunder"})
        );
        assert_eq!(m["list"], json!([3]), "atomic lists are replaced");
    }

    #[test]
    fn time_moves_only_when_the_object_changes() {
        // Real times: the sort of managedFields reads them (an unparsable one counts as none).
        let (t1, t2, t3, t4) = (
            "2024-01-01T00:00:01Z",
            "2024-01-01T00:00:02Z",
            "2024-01-01T00:00:03Z",
            "2024-01-01T00:00:04Z",
        );
        let c = cfg(A1, json!({"a": "1"}), json!({"reference": "r"}));
        let o1 = apply(&live(), &c, &req("alice", A1, false, t1)).unwrap();
        // carol applies what alice already set: she co-owns the fields, the object is the same,
        // so her new entry has no time (Go) and sorts first (no time counts as the epoch).
        let o2 = apply(&o1, &c, &req("carol", A1, false, t2)).unwrap();
        let carol = entry(&o2, "carol");
        assert!(carol.get("time").is_none(), "{carol}");
        assert_eq!(carol["fieldsV1"], entry(&o1, "alice")["fieldsV1"]);
        assert_eq!(entry(&o2, "alice")["time"], t1);
        assert_eq!(o2["metadata"]["managedFields"][0]["manager"], "carol");
        // alice applies less (the object stays as it is, carol still owns the rest): her fields
        // shrink, her time stays.
        let c_less = cfg(A1, json!({"a": "1"}), json!({}));
        let o3 = apply(&o2, &c_less, &req("alice", A1, false, t3)).unwrap();
        assert_eq!(o3["spec"]["reference"], "r");
        assert_eq!(entry(&o3, "alice")["time"], t1);
        // carol changes a value: now she gets a time.
        let c2 = cfg(A1, json!({"a": "2"}), json!({"reference": "r"}));
        let o4 = apply(&o3, &c2, &req("carol", A1, true, t4)).unwrap();
        assert_eq!(entry(&o4, "carol")["time"], t4);
    }

    #[test]
    fn create_then_reapply_prunes_dropped_fields() {
        let c1 = cfg(A1, json!({"a": "1", "b": "2"}), json!({"reference": "r"}));
        let o1 = apply(&live(), &c1, &req("m", A1, false, "t1")).unwrap();
        assert_eq!(o1["spec"]["reference"], "r");
        let e = entry(&o1, "m");
        assert_eq!(e["operation"], "Apply");
        assert_eq!(e["time"], "t1");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}}, "f:spec": {"f:reference": {}}})
        );
        assert_eq!(o1["metadata"]["uid"], "u", "server fields survive");

        // Same config again: nothing moves, not even the time.
        let again = apply(&o1, &c1, &req("m", A1, false, "t2")).unwrap();
        assert_eq!(again, o1);

        // Label b and the reference are dropped from the config: they go.
        let c2 = cfg(A1, json!({"a": "1"}), json!({}));
        let o2 = apply(&o1, &c2, &req("m", A1, false, "t3")).unwrap();
        assert_eq!(o2["metadata"]["labels"], json!({"a": "1"}));
        // Nobody owns spec any more (the kind's conversion brings back an empty one).
        assert!(o2.get("spec").is_none(), "{o2}");
        assert_eq!(o2["metadata"]["name"], "f");
        assert_eq!(
            entry(&o2, "m")["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:a": {}}}})
        );
    }

    #[test]
    fn conflicts_force_and_shared_ownership() {
        let o1 = apply(
            &live(),
            &cfg(A1, json!({}), json!({"reference": "r"})),
            &req("alice", A1, false, "t1"),
        )
        .unwrap();
        // Bob applies the same value: no conflict, both own it.
        let o2 = apply(
            &o1,
            &cfg(A1, json!({"x": "1"}), json!({"reference": "r"})),
            &req("bob", A1, false, "t2"),
        )
        .unwrap();
        assert_eq!(
            entry(&o2, "alice")["fieldsV1"],
            json!({"f:spec": {"f:reference": {}}})
        );
        assert_eq!(
            entry(&o2, "bob")["fieldsV1"]["f:spec"],
            json!({"f:reference": {}})
        );
        // Bob changes it in v1beta1: conflict with alice, named in alice's (Apply) terms.
        let bob_b1 = cfg(B1, json!({"x": "1"}), json!({"flunderReference": "s"}));
        let o2_b1 = convert(&o2, B1).unwrap();
        let err = apply(&o2_b1, &bob_b1, &req("bob", B1, false, "t3")).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, Reason::Conflict);
        assert_eq!(
            err.message,
            r#"Apply failed with 1 conflict: conflict with "alice": .spec.reference"#
        );
        let causes = &err.details.as_ref().unwrap().causes;
        assert_eq!(causes[0].reason, "FieldManagerConflict");
        assert_eq!(causes[0].message, r#"conflict with "alice""#);
        assert_eq!(causes[0].field, ".spec.reference");
        // Forced: bob takes it, alice keeps nothing and disappears.
        let o3 = apply(&o2_b1, &bob_b1, &req("bob", B1, true, "t3")).unwrap();
        assert_eq!(o3["spec"]["flunderReference"], "s");
        let mf = o3["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 1, "{mf:?}");
        assert_eq!(mf[0]["manager"], "bob");
        assert_eq!(mf[0]["apiVersion"], B1);
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:spec": {"f:flunderReference": {}}})
        );
    }

    #[test]
    fn update_managers_conflict_with_version_and_lose_fields() {
        let mut o = live();
        o["spec"]["reference"] = json!("r");
        o["metadata"]["labels"] = json!({"keep": "1"});
        o["metadata"]["managedFields"] = json!([{"manager": "kubectl-edit", "operation": "Update",
            "apiVersion": A1, "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:keep": {}}}, "f:spec": {"f:reference": {}}}}]);
        let c = cfg(A1, json!({}), json!({"reference": "z"}));
        let err = apply(&o, &c, &req("kubectl", A1, false, "t")).unwrap_err();
        assert_eq!(
            err.message,
            r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using wardle.example.com/v1alpha1: .spec.reference"#
        );
        let forced = apply(&o, &c, &req("kubectl", A1, true, "t")).unwrap();
        assert_eq!(
            entry(&forced, "kubectl-edit")["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:keep": {}}}})
        );
        assert_eq!(forced["metadata"]["labels"], json!({"keep": "1"}));
        // Apply entries come first.
        assert_eq!(forced["metadata"]["managedFields"][0]["operation"], "Apply");
    }

    #[test]
    fn pruning_spares_fields_others_own() {
        let c1 = cfg(A1, json!({"a": "1"}), json!({"reference": "r"}));
        let o1 = apply(&live(), &c1, &req("m", A1, false, "t1")).unwrap();
        let o2 = apply(&o1, &c1, &req("n", A1, false, "t2")).unwrap();
        // m stops applying everything; n still owns it all, so nothing is removed.
        let o3 = apply(
            &o2,
            &cfg(A1, json!({}), json!({})),
            &req("m", A1, false, "t3"),
        )
        .unwrap();
        assert_eq!(o3["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(o3["spec"]["reference"], "r");
        assert!(
            o3["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["manager"] != "m"),
            "{o3}"
        );
    }

    #[test]
    fn kubectl_takes_over_client_side_apply_fields() {
        let mut o = live();
        o["spec"]["reference"] = json!("r");
        o["metadata"]["annotations"] = json!({LAST_APPLIED: serde_json::to_string(
            &json!({"apiVersion": A1, "kind": "Flunder", "metadata": {"name": "f"}, "spec": {"reference": "r"}})).unwrap()});
        o["metadata"]["managedFields"] = json!([{"manager": "kubectl-client-side-apply", "operation": "Update",
            "apiVersion": A1, "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                         "f:spec": {"f:reference": {}}}}]);
        let c = cfg(A1, json!({}), json!({"reference": "s"}));
        // Another manager name gets the conflict; kubectl takes the field.
        assert_eq!(
            apply(&o, &c, &req("other", A1, false, "t"))
                .unwrap_err()
                .code,
            409
        );
        let out = apply(&o, &c, &req("kubectl", A1, false, "t")).unwrap();
        assert_eq!(out["spec"]["reference"], "s");
        // Not when the field changed since the last client-side apply.
        o["spec"]["reference"] = json!("edited");
        assert_eq!(
            apply(&o, &c, &req("kubectl", A1, false, "t"))
                .unwrap_err()
                .code,
            409
        );
    }

    #[test]
    fn pruning_across_versions() {
        let c1 = cfg(A1, json!({"a": "1"}), json!({"reference": "r"}));
        let o1 = apply(&live(), &c1, &req("m", A1, false, "t1")).unwrap();
        // m now applies through v1beta1 and no longer sets the reference: it goes, the label
        // it still applies stays, and its entry moves to v1beta1.
        let o1_b1 = convert(&o1, B1).unwrap();
        let c2 = cfg(B1, json!({"a": "1"}), json!({}));
        let o2 = apply(&o1_b1, &c2, &req("m", B1, false, "t2")).unwrap();
        assert_eq!(o2["metadata"]["labels"], json!({"a": "1"}));
        assert!(o2["spec"].get("flunderReference").is_none(), "{o2}");
        let e = entry(&o2, "m");
        assert_eq!(e["apiVersion"], B1);
        assert_eq!(
            e["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:a": {}}}})
        );
    }

    #[test]
    fn multiple_conflicts_message() {
        let err = conflict_error(&[
            ("\"a\"".into(), ".spec.x".into()),
            ("\"a\"".into(), ".spec.y".into()),
            ("\"b\" using v1".into(), ".z".into()),
        ]);
        assert_eq!(
            err.message,
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.x\n- .spec.y\nconflicts with \"b\" using v1:\n- .z"
        );
    }
}
