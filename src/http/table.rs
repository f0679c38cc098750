//! Table and PartialObjectMetadata transformations of objects and lists.
//!
//! Table columns are Name, the kind's own columns, then Age (as Go's built-in printers and CRD
//! tables do); Age is rendered server-side with Go's `duration.HumanDuration` so kubectl prints
//! it verbatim.

use crate::api::Resource;
use crate::apimachinery::status::{ApiError, FieldError};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Go's ObjectMeta doc for `name` (the Name column's description).
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// Go's ObjectMeta doc for `creationTimestamp` (the Age column's description).
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// `includeObject`: what each Table row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Parse the `includeObject` query parameter; unset/empty means Metadata (Go's default).
pub fn parse_include_object(q: Option<&str>) -> Result<IncludeObject, ApiError> {
    match q.unwrap_or("") {
        "" | "Metadata" => Ok(IncludeObject::Metadata),
        "None" => Ok(IncludeObject::None),
        "Object" => Ok(IncludeObject::Object),
        other => {
            let e = FieldError::invalid(
                "includeObject",
                other,
                "must be 'Metadata', 'Object', 'None', or empty",
            );
            Err(ApiError::bad_request(format!(
                "Unable to convert to Table as requested: {e}"
            )))
        }
    }
}

/// List metadata of a Table or PartialObjectMetadataList: resourceVersion, continue, remainingItemCount.
pub type ListMeta = (String, Option<String>, Option<i64>);

fn list_meta_json(meta: &ListMeta) -> Value {
    let (rv, cont, remaining) = meta;
    let mut m = Map::new();
    if !rv.is_empty() {
        m.insert("resourceVersion".into(), json!(rv));
    }
    if let Some(c) = cont.as_deref().filter(|c| !c.is_empty()) {
        m.insert("continue".into(), json!(c));
    }
    if let Some(n) = remaining {
        m.insert("remainingItemCount".into(), json!(n));
    }
    Value::Object(m)
}

fn column(name: &str, type_: &str, format: &str, description: &str, priority: i32) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// The column definitions of a kind's Table.
pub fn column_definitions(resource: &dyn Resource) -> Vec<Value> {
    let mut cols = vec![column("Name", "string", "name", NAME_DESCRIPTION, 0)];
    let defined = resource.columns();
    let as_column =
        |c: &crate::api::Column| column(c.name, c.type_, c.format, c.description, c.priority);
    cols.extend(defined.iter().filter(|c| c.priority == 0).map(as_column));
    // "date" like Go's built-in printers' Age column; the cell is already a human duration.
    cols.push(column("Age", "date", "", CREATION_DESCRIPTION, 0));
    // `-o wide` columns follow Age, as on built-in kinds (pods: ... AGE IP NODE).
    cols.extend(defined.iter().filter(|c| c.priority != 0).map(as_column));
    cols
}

/// Build a Table in the negotiated meta.k8s.io version (v1 or v1beta1). `version` is the resource
/// version the client addressed (for `includeObject=Object`), `objects` are storage JSON.
/// `list_meta` is None for a single object. `with_headers=false` gives `columnDefinitions: null`.
pub fn table(
    resource: &dyn Resource,
    version: &str,
    target_version: &str,
    objects: &[Value],
    list_meta: Option<ListMeta>,
    include: IncludeObject,
    with_headers: bool,
) -> Value {
    table_at(
        resource,
        version,
        target_version,
        objects,
        list_meta,
        include,
        with_headers,
        OffsetDateTime::now_utc(),
    )
}

#[allow(clippy::too_many_arguments)] // the public entry point plus the clock, for tests
fn table_at(
    resource: &dyn Resource,
    version: &str,
    target_version: &str,
    objects: &[Value],
    list_meta: Option<ListMeta>,
    include: IncludeObject,
    with_headers: bool,
    now: OffsetDateTime,
) -> Value {
    let meta = match &list_meta {
        Some(m) => list_meta_json(m),
        None => {
            let rv = objects
                .first()
                .and_then(|o| o.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str);
            list_meta_json(&(rv.unwrap_or("").to_string(), None, None))
        }
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(resource, version, target_version, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{target_version}"),
        "metadata": meta,
        "columnDefinitions": if with_headers { Value::Array(column_definitions(resource)) } else { Value::Null },
        // Go's nil slice: an empty table has `rows: null`.
        "rows": if rows.is_empty() { Value::Null } else { Value::Array(rows) },
    })
}

fn row(
    resource: &dyn Resource,
    version: &str,
    target_version: &str,
    obj: &Value,
    include: IncludeObject,
    now: OffsetDateTime,
) -> Value {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hub = resource.to_hub(resource.storage_version(), obj.clone());
    let mut cells = vec![json!(name)];
    let defined = resource.columns();
    let (narrow, wide): (Vec<_>, Vec<_>) = resource
        .cells(&hub)
        .into_iter()
        .enumerate()
        .partition(|(i, _)| defined.get(*i).is_none_or(|c| c.priority == 0));
    cells.extend(narrow.into_iter().map(|(_, c)| c));
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    cells.push(json!(age(created, now)));
    cells.extend(wide.into_iter().map(|(_, c)| c));
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => partial_object_metadata(obj, target_version),
        IncludeObject::Object => resource.storage_to_version(version, obj.clone()),
    };
    json!({"cells": cells, "object": object})
}

/// Go's translateTimestampSince: `<unknown>` without a timestamp, else a HumanDuration.
fn age(created: Option<&str>, now: OffsetDateTime) -> String {
    match created.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()) {
        Some(t) => human_duration((now - t).whole_seconds()),
        None => "<unknown>".into(),
    }
}

/// Go's `duration.HumanDuration`, on whole seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// PartialObjectMetadata of an object in the negotiated meta.k8s.io version.
pub fn partial_object_metadata(obj: &Value, target_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{target_version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// PartialObjectMetadataList of `items` with the list's metadata.
pub fn partial_object_metadata_list(
    items: &[Value],
    list_meta: ListMeta,
    target_version: &str,
) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": format!("meta.k8s.io/{target_version}"),
        "metadata": list_meta_json(&list_meta),
        "items": items.iter().map(|o| partial_object_metadata(o, target_version)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::flunder::Flunder;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-01-10 12:00:00 UTC);

    fn stored(name: &str, created: &str, rv: &str) -> Value {
        json!({
            "kind": "Flunder", "apiVersion": "wardle.example.com/v1alpha1",
            "metadata": {"name": name, "namespace": "default", "uid": "u1", "resourceVersion": rv, "creationTimestamp": created},
            "spec": {"reference": "other", "referenceType": "Flunder"}, "status": {},
        })
    }

    #[test]
    fn human_durations_match_go() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 2 * 60 + 5, "3h2m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 4 * 3600, "2d4h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn include_object_parsing() {
        assert_eq!(parse_include_object(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(
            parse_include_object(Some("")).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            parse_include_object(Some("None")).unwrap(),
            IncludeObject::None
        );
        assert_eq!(
            parse_include_object(Some("Object")).unwrap(),
            IncludeObject::Object
        );
        let e = parse_include_object(Some("Bogus")).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Unable to convert to Table as requested: includeObject: Invalid value: \"Bogus\": must be 'Metadata', 'Object', 'None', or empty"
        );
    }

    #[test]
    fn list_table_shape() {
        let objs = [
            stored("a", "2024-01-10T11:55:00Z", "5"),
            stored("b", "bad", "6"),
        ];
        let meta = Some(("42".to_string(), Some("tok".to_string()), Some(3)));
        let t = table_at(
            &Flunder,
            "v1beta1",
            "v1",
            &objs,
            meta,
            IncludeObject::Metadata,
            true,
            NOW,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok", "remainingItemCount": 3})
        );
        let cols = t["columnDefinitions"].as_array().unwrap();
        assert_eq!(cols.len(), 2 + Flunder.columns().len());
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(cols[0]["description"], NAME_DESCRIPTION);
        let rows = t["rows"].as_array().unwrap();
        let cells = rows[0]["cells"].as_array().unwrap();
        assert_eq!(cells.len(), cols.len());
        assert_eq!(cells[0], "a");
        let narrow = Flunder.columns().iter().filter(|c| c.priority == 0).count();
        let all = Flunder.cells(&Flunder.to_hub("v1alpha1", objs[0].clone()));
        assert_eq!(cells[1..=narrow], all[..narrow]);
        assert_eq!(cells[narrow + 1], "5m");
        assert_eq!(cells[narrow + 2..], all[narrow..]);
        assert_eq!(cols[narrow + 1]["name"], "Age");
        assert_eq!(rows[1]["cells"][narrow + 1], "<unknown>");
        assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(rows[0]["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(rows[0]["object"]["metadata"], objs[0]["metadata"]);
    }

    #[test]
    fn include_object_variants_and_single() {
        let objs = [stored("a", "2024-01-10T11:59:15Z", "7")];
        let t = table_at(
            &Flunder,
            "v1beta1",
            "v1beta1",
            &objs,
            None,
            IncludeObject::Object,
            false,
            NOW,
        );
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "7"}));
        assert_eq!(t["columnDefinitions"], Value::Null);
        let o = &t["rows"][0]["object"];
        assert_eq!(o["apiVersion"], "wardle.example.com/v1beta1");
        assert_eq!(o["spec"]["flunderReference"], "other");
        // Age comes after the default columns; the -o wide ones follow it.
        assert_eq!(t["rows"][0]["cells"][3], "45s");
        let t = table_at(
            &Flunder,
            "v1alpha1",
            "v1",
            &objs,
            None,
            IncludeObject::None,
            true,
            NOW,
        );
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let empty = table(
            &Flunder,
            "v1alpha1",
            "v1",
            &[],
            Some(("9".into(), None, None)),
            IncludeObject::Metadata,
            true,
        );
        assert_eq!(empty["rows"], Value::Null);
        assert_eq!(empty["metadata"], json!({"resourceVersion": "9"}));
    }

    #[test]
    fn partial_metadata_shapes() {
        let o = stored("a", "2024-01-10T11:59:15Z", "7");
        let p = partial_object_metadata(&o, "v1");
        assert_eq!(
            p,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        );
        let l = partial_object_metadata_list(
            std::slice::from_ref(&o),
            ("8".into(), Some("c".into()), None),
            "v1beta1",
        );
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(
            l["metadata"],
            json!({"resourceVersion": "8", "continue": "c"})
        );
        assert_eq!(l["items"][0]["metadata"]["name"], "a");
        let empty = partial_object_metadata_list(&[], ("8".into(), None, None), "v1");
        assert_eq!(empty["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(empty["items"], json!([]));
    }
}
