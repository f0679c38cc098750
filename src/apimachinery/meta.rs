//! ObjectMeta rules on create and update: names, namespaces, labels, annotations, finalizers, owners.
//!
//! Field paths, messages and their order follow `k8s.io/apimachinery/pkg/api/validation`
//! (`ValidateObjectMetaAccessor` with `path.ValidatePathSegmentName`, then
//! `ValidateObjectMetaAccessorUpdate`) and the string checks of
//! `k8s.io/apimachinery/pkg/api/validate/content`, because clients and tests read these texts.

use super::gofmt::{go_quote, is_go_printable};
use super::status::FieldError;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Total bytes of annotation keys + values allowed on one object (Go: 256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const LABEL_MAX: usize = 63;
const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const FIELD_MANAGER_MAX: usize = 128;
const SUBRESOURCE_MAX: usize = 256;

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

const FIELD_IMMUTABLE: &str = "field is immutable";

// ---------------------------------------------------------------------------------------------
// String checks (Go's content.Is* functions): each returns the list of Go error texts, empty when
// the value is fine.

/// Go's `MaxLenError` of `util/validation`, which the DNS name checks (object and namespace
/// names, CEL's format library) use: it says characters.
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Go's `MaxLenError` of `api/validate/content`, which the label key and value checks use: it
/// says bytes.
fn content_max_len_error(n: usize) -> String {
    format!("must be no more than {n} bytes")
}

/// Go's `RegexError` (its odd `'a',  or 'b', ` punctuation included).
fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push('\'');
        s.push_str(e);
        s.push_str("', ");
    }
    s.push_str("regex used for validation is '");
    s.push_str(re);
    s.push_str("')");
    s
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_label_key_fmt(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            is_alnum(f)
                && is_alnum(l)
                && b.iter()
                    .all(|&c| is_alnum(c) || c == b'-' || c == b'_' || c == b'.')
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label_fmt(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => ok(f) && ok(l) && b.iter().all(|&c| ok(c) || c == b'-'),
        _ => false,
    }
}

fn matches_dns1123_subdomain_fmt(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label_fmt)
}

/// Go's `IsDNS1123Label` (namespace names).
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !matches_dns1123_label_fmt(s) {
        if matches_dns1123_subdomain_fmt(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Go's `IsDNS1123Subdomain` (util/validation: object names, API groups).
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    dns1123_subdomain(s, max_len_error)
}

/// The subdomain check with the length message of its Go package: `content`'s (label key
/// prefixes) says bytes where `util/validation`'s says characters.
fn dns1123_subdomain(s: &str, too_long: fn(usize) -> String) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    if !matches_dns1123_subdomain_fmt(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Go's `IsQualifiedName` / `IsLabelKey`: `[prefix/]name`, prefix a DNS-1123 subdomain, name
/// at most 63 bytes of `[-A-Za-z0-9_.]` starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix, content_max_len_error)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_ERR, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_MAX {
        errs.push(format!("name part {}", content_max_len_error(LABEL_MAX)));
    }
    if !matches_label_key_fmt(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_ERR,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Go's `IsValidLabelValue`: empty, or at most 63 bytes shaped like a label key name.
pub fn is_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_MAX {
        errs.push(content_max_len_error(LABEL_MAX));
    }
    if !s.is_empty() && !matches_label_key_fmt(s) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Go's ObjectMeta fields are all `omitempty`: an empty string, list or map in a request's
/// metadata decodes to the zero value and is never stored or served (`finalizers: []` is no
/// finalizers). `managedFields` is left alone: an explicitly empty list there resets them.
pub fn drop_empty_fields(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|k, v| {
        k == "managedFields"
            || !match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }
    });
}

/// The longest `metadata.name` wardle stores, in bytes. Go bounds a path-segment name only by
/// etcd's request size (~1.5 MiB); wardle's key is a Postgres btree key, whose entries must fit a
/// third of a page (2704 bytes with resource, namespace and rv), so a longer random name would
/// be refused by the database at commit. 2048 leaves room for the rest of the key on both
/// engines (README "Differences").
pub const MAX_NAME_BYTES: usize = 2048;

/// Go's `IsPathSegmentName`: what `metadata.name` must satisfy for wardle's resources.
pub fn is_path_segment_name(s: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if s == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    is_path_segment_prefix(s)
}

/// Go's `IsPathSegmentPrefix`: what `metadata.generateName` must satisfy.
pub fn is_path_segment_prefix(s: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|bad| s.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// Now, as Kubernetes writes it: RFC 3339, UTC, whole seconds (`2026-11-22T10:00:00Z`).
pub fn timestamp_now() -> String {
    format_timestamp(OffsetDateTime::now_utc())
}

/// Formats an instant like `metav1.Time` marshals it (UTC, second precision).
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    // Formatting a valid date with a fixed numeric pattern cannot fail for years 0..=9999;
    // outside that range fall back to the RFC 3339 formatter's own output.
    t.format(fmt)
        .or_else(|_| t.format(&Rfc3339))
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp (any offset), as `metav1.Time` accepts it.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Go's `time.Time.String()` of a timestamp in UTC (`2026-11-22 10:00:00 +0000 UTC`), which is
/// how Go prints a `metav1.Time` inside a field error.
fn go_time_string(s: &str) -> String {
    match parse_timestamp(s) {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let fmt =
                format_description!("[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC");
            t.format(fmt).unwrap_or_else(|_| s.to_string())
        }
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// ObjectMeta validation

fn str_field<'a>(meta: &'a Value, key: &str) -> &'a str {
    meta.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Validates `metadata` of an object being created (after name generation), like Go's
/// `ValidateObjectMetaAccessor(meta, namespaced, ValidatePathSegmentName, "metadata")`.
pub fn validate_create(meta: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();

    let generate_name = str_field(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in is_path_segment_prefix(generate_name) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                &msg,
            ));
        }
    }
    let name = str_field(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in is_path_segment_name(name) {
            errs.push(FieldError::invalid("metadata.name", name, &msg));
        }
        if name.len() > MAX_NAME_BYTES {
            errs.push(FieldError::too_long(
                "metadata.name",
                &format!("must have at most {MAX_NAME_BYTES} bytes"),
            ));
        }
    }

    let namespace = str_field(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in is_dns1123_label(namespace) {
                errs.push(FieldError::invalid("metadata.namespace", namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }

    if let Some(g) = meta.get("generation").and_then(Value::as_i64)
        && g < 0
    {
        errs.push(FieldError::invalid(
            "metadata.generation",
            g,
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        "metadata.annotations",
    ));
    errs.extend(validate_owner_references(meta.get("ownerReferences")));
    errs.extend(validate_finalizers(meta.get("finalizers")));
    errs.extend(validate_managed_fields(meta.get("managedFields")));
    errs
}

/// Validates `metadata` on update: everything `validate_create` checks, then Go's
/// `ValidateObjectMetaAccessorUpdate` (immutable identity fields, generation, no new finalizers
/// while being deleted). The resourceVersion presence check is left to the store, which
/// answers it earlier with its own message. Repeated messages are dropped, as Go's aggregate does.
pub fn validate_update(new: &Value, old: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = validate_create(new, namespaced);
    errs.extend(no_new_finalizers_while_deleting(new, old));
    let new_gen = new.get("generation").and_then(Value::as_i64).unwrap_or(0);
    let old_gen = old.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            "metadata.generation",
            new_gen,
            "must not be decremented",
        ));
    }
    errs.extend(immutable_fields(new, old));
    let mut seen: Vec<String> = Vec::new();
    errs.retain(|e| {
        let s = e.to_string();
        if seen.contains(&s) {
            false
        } else {
            seen.push(s);
            true
        }
    });
    errs
}

/// Go's rule that an object being deleted takes no new finalizers (only removals).
fn no_new_finalizers_while_deleting(new: &Value, old: &Value) -> Option<FieldError> {
    if old.get("deletionTimestamp").is_none_or(Value::is_null) {
        return None;
    }
    let old_fin = string_list(old.get("finalizers"));
    let mut extra: Vec<String> = string_list(new.get("finalizers"))
        .into_iter()
        .filter(|f| !old_fin.contains(f))
        .collect();
    extra.sort();
    extra.dedup();
    if extra.is_empty() {
        return None;
    }
    let list = extra
        .iter()
        .map(|s| go_quote(s))
        .collect::<Vec<_>>()
        .join(", ");
    Some(FieldError::forbidden(
        "metadata.finalizers",
        &format!(
            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
        ),
    ))
}

/// The identity and lifecycle fields an update may not change, each shown as Go prints its type.
fn immutable_fields(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut immutable = |field: &str, shown: Value| {
        errs.push(FieldError::invalid(
            &format!("metadata.{field}"),
            shown,
            FIELD_IMMUTABLE,
        ));
    };
    for key in ["name", "namespace", "uid"] {
        let (n, o) = (str_field(new, key), str_field(old, key));
        if n != o {
            immutable(key, Value::from(n));
        }
    }
    // creationTimestamp is a value type in Go: a missing one is the zero time and prints as such.
    let (nc, oc) = (
        str_field(new, "creationTimestamp"),
        str_field(old, "creationTimestamp"),
    );
    if !same_instant(nc, oc) {
        let shown = if nc.is_empty() {
            "0001-01-01 00:00:00 +0000 UTC".to_string()
        } else {
            go_time_string(nc)
        };
        immutable("creationTimestamp", Value::from(shown));
    }
    // deletionTimestamp is a pointer in Go: missing prints as null.
    let deletion = |o: &Value| {
        o.get("deletionTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (nd, od) = (deletion(new), deletion(old));
    if !same_instant(&nd, &od) {
        let shown = if nd.is_empty() {
            Value::Null
        } else {
            Value::String(go_time_string(&nd))
        };
        immutable("deletionTimestamp", shown);
    }
    let grace = |o: &Value| o.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
    let (ng, og) = (grace(new), grace(old));
    if ng != og {
        immutable(
            "deletionGracePeriodSeconds",
            ng.map(Value::from).unwrap_or(Value::Null),
        );
    }
    errs
}

/// Equal as instants (Go compares `metav1.Time` semantically, ignoring the zone); unparsable
/// values fall back to text comparison.
fn same_instant(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (parse_timestamp(a), parse_timestamp(b)) {
        (Some(x), Some(y)) => x.unix_timestamp() == y.unix_timestamp(),
        _ => false,
    }
}

/// The strings of a JSON array (non-strings skipped; not an array → empty).
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `ValidateLabels`: errors carry the map's path, not the key's.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(labels) = labels else { return errs };
    let Some(map) = labels.as_object() else {
        if !labels.is_null() {
            errs.push(FieldError::invalid(
                path,
                labels.clone(),
                "must be a map of strings",
            ));
        }
        return errs;
    };
    for (k, v) in map {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), &msg));
        }
        match v.as_str() {
            Some(s) => {
                for msg in is_label_value(s) {
                    errs.push(FieldError::invalid(path, s, &msg));
                }
            }
            None => errs.push(FieldError::invalid(path, v.clone(), "must be a string")),
        }
    }
    errs
}

/// Go's `ValidateAnnotations`: keys are qualified names compared case-insensitively, and keys +
/// values together stay within 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    let Some(map) = annotations.as_object() else {
        if !annotations.is_null() {
            errs.push(FieldError::invalid(
                path,
                annotations.clone(),
                "must be a map of strings",
            ));
        }
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in map {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), &msg));
        }
        match v.as_str() {
            Some(s) => total += k.len() + s.len(),
            None => errs.push(FieldError::invalid(path, v.clone(), "must be a string")),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            path,
            &format!("must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }
    errs
}

/// Go's `ValidateOwnerReferences`. Go reports these at `metadata.ownerReferences.<field>`
/// without an index; kept so for identical messages.
fn validate_owner_references(refs: Option<&Value>) -> Vec<FieldError> {
    const PATH: &str = "metadata.ownerReferences";
    let mut errs = Vec::new();
    let Some(refs) = refs.and_then(Value::as_array) else {
        return errs;
    };
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_field(r, "apiVersion");
        let kind = str_field(r, "kind");
        let name = str_field(r, "name");
        let uid = str_field(r, "uid");
        let (group, version) = parse_group_version(api_version);
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &format!("{PATH}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                &format!("{PATH}.kind"),
                kind,
                "must not be empty",
            ));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid(
                &format!("{PATH}.name"),
                name,
                "must not be empty",
            ));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                &format!("{PATH}.uid"),
                uid,
                "must not be empty",
            ));
        }
        // Go bans core/v1 Event as an owner.
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                PATH,
                r.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let cur = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    PATH,
                    Value::Array(refs.clone()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"
                    ),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
    errs
}

/// Go's `schema.ParseGroupVersion` as used by `FromAPIVersionAndKind`: an unparsable value
/// yields an empty group and version.
fn parse_group_version(s: &str) -> (&str, &str) {
    if s.is_empty() || s == "/" {
        return ("", "");
    }
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [v] => ("", *v),
        [g, v] => (*g, *v),
        _ => ("", ""),
    }
}

/// Go's `ValidateFinalizers`: qualified names, and not both `orphan` and `foregroundDeletion`.
/// (Go does not reject duplicates, so neither do we.)
fn validate_finalizers(finalizers: Option<&Value>) -> Vec<FieldError> {
    const PATH: &str = "metadata.finalizers";
    let mut errs = Vec::new();
    let Some(list) = finalizers.and_then(Value::as_array) else {
        return errs;
    };
    let mut orphan = false;
    let mut foreground = false;
    for f in list {
        let Some(s) = f.as_str() else {
            errs.push(FieldError::invalid(PATH, f.clone(), "must be a string"));
            continue;
        };
        for msg in is_qualified_name(s) {
            errs.push(FieldError::invalid(PATH, s, &msg));
        }
        orphan |= s == "orphan";
        foreground |= s == "foregroundDeletion";
    }
    if orphan && foreground {
        errs.push(FieldError::invalid(
            PATH,
            Value::Array(list.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// Go's `ValidateManagedFields`: operation, fieldsType, manager and subresource shape.
fn validate_managed_fields(entries: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = entries.and_then(Value::as_array) else {
        return errs;
    };
    for (i, e) in list.iter().enumerate() {
        let path = format!("metadata.managedFields[{i}]");
        let op = str_field(e, "operation");
        if op != "Apply" && op != "Update" {
            errs.push(FieldError::invalid(
                &format!("{path}.operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        let ft = str_field(e, "fieldsType");
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(FieldError::invalid(
                &format!("{path}.fieldsType"),
                ft,
                "must be `FieldsV1`",
            ));
        }
        errs.extend(validate_field_manager(
            str_field(e, "manager"),
            &format!("{path}.manager"),
        ));
        if str_field(e, "subresource").len() > SUBRESOURCE_MAX {
            errs.push(FieldError::too_long(
                &format!("{path}.subresource"),
                &format!("must have at most {SUBRESOURCE_MAX} bytes"),
            ));
        }
    }
    errs
}

/// Go's `ValidateFieldManager`: at most 128 bytes, printable characters only.
pub fn validate_field_manager(manager: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX {
        errs.push(FieldError::too_long(
            path,
            &format!("must have at most {FIELD_MANAGER_MAX} bytes"),
        ));
    }
    for (i, c) in manager.char_indices() {
        if !is_go_printable(c) {
            errs.push(FieldError::invalid(
                path,
                manager,
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "a",
            "A",
            "a.b_c-d",
            "example.com/Name",
            "k8s.io/x",
            &"a".repeat(63),
        ] {
            assert!(is_qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            is_qualified_name("-a"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 bytes"]
        );
        let e = is_qualified_name("");
        assert_eq!(e[0], "name part must be non-empty");
        assert_eq!(e.len(), 2);
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert!(
            is_qualified_name("Example.com/a")[0]
                .starts_with("prefix part a lowercase RFC 1123 subdomain")
        );
        assert!(is_qualified_name("a/b/c")[0].starts_with("a valid label key must consist"));
        assert_eq!(is_qualified_name("a/").len(), 2);
    }

    #[test]
    fn label_values_and_dns() {
        assert!(is_label_value("").is_empty());
        assert!(is_label_value("My_value.1").is_empty());
        assert_eq!(
            is_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 bytes"]
        );
        assert!(is_label_value("-x")[0].starts_with("a valid label must be an empty string"));
        assert!(is_dns1123_label("default").is_empty());
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label("Foo"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{1}\n"), r#""\x01\n""#);
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
    }

    #[test]
    fn timestamps() {
        let now = timestamp_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
        assert!(parse_timestamp(&now).is_some());
        assert!(same_instant(
            "2026-11-22T10:00:00Z",
            "2026-11-22T11:00:00+01:00"
        ));
        assert_eq!(
            go_time_string("2026-11-22T10:00:00Z"),
            "2026-11-22 10:00:00 +0000 UTC"
        );
    }

    #[test]
    fn create_names() {
        let ok = json!({"name": "My_Name.1", "namespace": "default"});
        assert!(validate_create(&ok, true).is_empty());
        let e = validate_create(&json!({"namespace": "default"}), true);
        assert_eq!(
            msgs(&e),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        let e = validate_create(&json!({"name": "a/b%c", "namespace": "default"}), true);
        assert_eq!(
            msgs(&e),
            vec![
                r#"metadata.name: Invalid value: "a/b%c": may not contain '/'"#,
                r#"metadata.name: Invalid value: "a/b%c": may not contain '%'"#
            ]
        );
        let e = validate_create(&json!({"name": "..", "namespace": "default"}), true);
        assert_eq!(
            msgs(&e),
            vec![r#"metadata.name: Invalid value: "..": may not be '..'"#]
        );
        let e = validate_create(
            &json!({"name": "x", "generateName": "a/", "namespace": "default"}),
            true,
        );
        assert_eq!(
            msgs(&e),
            vec![r#"metadata.generateName: Invalid value: "a/": may not contain '/'"#]
        );
    }

    #[test]
    fn create_namespaces() {
        let e = validate_create(&json!({"name": "x"}), true);
        assert_eq!(msgs(&e), vec!["metadata.namespace: Required value"]);
        let e = validate_create(&json!({"name": "x", "namespace": "Bad"}), true);
        assert!(e[0].to_string().starts_with(
            r#"metadata.namespace: Invalid value: "Bad": a lowercase RFC 1123 label"#
        ));
        let e = validate_create(&json!({"name": "x", "namespace": "ns"}), false);
        assert_eq!(
            msgs(&e),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert!(validate_create(&json!({"name": "x"}), false).is_empty());
        assert!(validate_create(&json!({"name": "x", "namespace": ""}), false).is_empty());
    }

    #[test]
    fn create_labels_annotations() {
        let m = json!({"name": "x", "labels": {"ok": "fine", "bad key": "v", "k": "-v"}});
        let e = msgs(&validate_create(&m, false));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with(
                r#"metadata.labels: Invalid value: "bad key": name part must consist"#
            ),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(r#"metadata.labels: Invalid value: "-v": a valid label must be"#),
            "{e:?}"
        );
        // Annotation keys are case-insensitive; values are free text.
        let m = json!({"name": "x", "annotations": {"Example.COM/Key": "any thing!"}});
        assert!(validate_create(&m, false).is_empty());
        let m = json!({"name": "x", "annotations": {"a b": "v"}});
        assert!(
            msgs(&validate_create(&m, false))[0]
                .starts_with(r#"metadata.annotations: Invalid value: "a b""#)
        );
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let m = json!({"name": "x", "annotations": {"k": big}});
        assert_eq!(
            msgs(&validate_create(&m, false)),
            vec!["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
        let m =
            json!({"name": "x", "annotations": {"k": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1)}});
        assert!(validate_create(&m, false).is_empty());
    }

    #[test]
    fn create_finalizers_owners_managed_fields() {
        let m = json!({"name": "x", "finalizers": ["example.com/f", "bad/final/izer", "orphan", "foregroundDeletion"]});
        let e = msgs(&validate_create(&m, false));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with(
            r#"metadata.finalizers: Invalid value: "bad/final/izer": a valid label key"#
        ));
        assert!(e[1].ends_with("finalizer orphan and foregroundDeletion cannot be both set"));
        // Duplicates are accepted, as in Go.
        assert!(
            validate_create(&json!({"name": "x", "finalizers": ["a/b", "a/b"]}), false).is_empty()
        );

        let m = json!({"name": "x", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u1", "controller": true},
            {"apiVersion": "", "kind": "", "name": "", "uid": ""},
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u2", "controller": true}
        ]});
        let e = msgs(&validate_create(&m, false));
        assert_eq!(
            e,
            vec![
                r#"metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty"#.to_string(),
                r#"metadata.ownerReferences.kind: Invalid value: "": must not be empty"#.to_string(),
                r#"metadata.ownerReferences.name: Invalid value: "": must not be empty"#.to_string(),
                r#"metadata.ownerReferences.uid: Invalid value: "": must not be empty"#.to_string(),
                e[4].clone(),
            ]
        );
        assert!(e[4].ends_with(
            r#"Only one reference can have Controller set to true. Found "true" in references for ConfigMap/c and Deployment/d"#
        ));
        let m = json!({"name": "x", "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}]});
        assert!(
            msgs(&validate_create(&m, false))[0]
                .ends_with("/v1, Kind=Event is disallowed from being an owner")
        );
        let m = json!({"name": "x", "ownerReferences": [{"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]});
        assert_eq!(msgs(&validate_create(&m, false)).len(), 1);

        let m = json!({"name": "x", "managedFields": [
            {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1"},
            {"manager": "a\u{7}", "operation": "Patch", "fieldsType": "FieldsV2", "subresource": "s".repeat(257)}
        ]});
        let e = msgs(&validate_create(&m, false));
        assert_eq!(
            e,
            vec![
                r#"metadata.managedFields[1].operation: Invalid value: "Patch": must be `Apply` or `Update`"#,
                r#"metadata.managedFields[1].fieldsType: Invalid value: "FieldsV2": must be `FieldsV1`"#,
                r#"metadata.managedFields[1].manager: Invalid value: "a\a": invalid character U+0007 (at position 1)"#,
                "metadata.managedFields[1].subresource: Too long: must have at most 256 bytes",
            ]
        );
        let e = validate_field_manager(&"m".repeat(129), "fieldManager");
        assert_eq!(
            msgs(&e),
            vec!["fieldManager: Too long: must have at most 128 bytes"]
        );
    }

    #[test]
    fn create_generation() {
        let e = validate_create(&json!({"name": "x", "generation": -1}), false);
        assert_eq!(
            msgs(&e),
            vec!["metadata.generation: Invalid value: -1: must be greater than or equal to 0"]
        );
    }

    fn base() -> Value {
        json!({"name": "x", "namespace": "default", "uid": "u1", "resourceVersion": "5",
               "creationTimestamp": "2026-11-22T10:00:00Z", "finalizers": ["a/b"]})
    }

    #[test]
    fn update_unchanged_is_fine() {
        assert!(validate_update(&base(), &base(), true).is_empty());
        let mut n = base();
        n["creationTimestamp"] = json!("2026-11-22T11:00:00+01:00");
        assert!(validate_update(&n, &base(), true).is_empty());
    }

    #[test]
    fn update_immutables() {
        let mut n = base();
        n["name"] = json!("y");
        n["uid"] = json!("u2");
        n["creationTimestamp"] = json!("2026-11-22T10:00:01Z");
        let e = msgs(&validate_update(&n, &base(), true));
        assert_eq!(
            e,
            vec![
                r#"metadata.name: Invalid value: "y": field is immutable"#,
                r#"metadata.uid: Invalid value: "u2": field is immutable"#,
                r#"metadata.creationTimestamp: Invalid value: "2026-11-22 10:00:01 +0000 UTC": field is immutable"#,
            ]
        );
        let mut n = base();
        n["namespace"] = json!("other");
        let e = msgs(&validate_update(&n, &base(), true));
        assert_eq!(
            e,
            vec![r#"metadata.namespace: Invalid value: "other": field is immutable"#]
        );
    }

    #[test]
    fn update_deletion_fields() {
        let mut old = base();
        old["deletionTimestamp"] = json!("2026-11-22T12:00:00Z");
        old["deletionGracePeriodSeconds"] = json!(0);
        let mut n = old.clone();
        assert!(validate_update(&n, &old, true).is_empty());
        n["deletionTimestamp"] = json!("2026-11-22T12:00:05Z");
        n["deletionGracePeriodSeconds"] = json!(30);
        let e = msgs(&validate_update(&n, &old, true));
        assert_eq!(
            e,
            vec![
                r#"metadata.deletionTimestamp: Invalid value: "2026-11-22 12:00:05 +0000 UTC": field is immutable"#,
                "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable",
            ]
        );
        // Clearing it is a change too.
        let mut n = old.clone();
        n.as_object_mut().map(|m| m.remove("deletionTimestamp"));
        let e = msgs(&validate_update(&n, &old, true));
        assert_eq!(
            e,
            vec!["metadata.deletionTimestamp: Invalid value: null: field is immutable"]
        );
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let mut old = base();
        old["deletionTimestamp"] = json!("2026-11-22T12:00:00Z");
        let mut n = old.clone();
        n["finalizers"] = json!(["z/z", "a/b", "c/d"]);
        let e = msgs(&validate_update(&n, &old, true));
        assert_eq!(
            e,
            vec![
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"c/d", "z/z"}"#
            ]
        );
        // Removing is allowed; adding is allowed when not being deleted.
        n["finalizers"] = json!([]);
        assert!(validate_update(&n, &old, true).is_empty());
        let mut n = base();
        n["finalizers"] = json!(["a/b", "c/d"]);
        assert!(validate_update(&n, &base(), true).is_empty());
    }

    #[test]
    fn update_generation_and_create_rules() {
        let mut old = base();
        old["generation"] = json!(3);
        let mut n = old.clone();
        n["generation"] = json!(2);
        n["labels"] = json!({"k": "-bad"});
        let e = msgs(&validate_update(&n, &old, true));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("metadata.labels: Invalid value: \"-bad\""));
        assert_eq!(
            e[1],
            "metadata.generation: Invalid value: 2: must not be decremented"
        );
    }
}
