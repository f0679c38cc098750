//! Strict decoding of request bodies against a kind's OpenAPI schema: unknown fields and type errors.
//!
//! Go decodes a body into typed structs; fields the struct lacks are dropped ("unknown"), repeated
//! keys keep the last value ("duplicate"), and `fieldValidation` decides whether those become
//! errors, warnings or nothing. Here the body stays a `serde_json::Value`, so the same facts are
//! recovered from the parse (duplicates) and from a walk against the OpenAPI schema (unknown
//! fields, type mismatches). Messages follow `sigs.k8s.io/json` and `encoding/json`.

use crate::apimachinery::gofmt::{Quoted, json_kind};
use crate::apimachinery::status::{ApiError, FieldError, GroupKind};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// The mode a `fieldValidation` value selects; None for a value Go refuses.
/// Absent or empty means `Warn` (AS:`handlers/rest.go`).
fn mode_of(q: Option<&str>) -> Option<FieldValidation> {
    match q.unwrap_or("") {
        "" | "Warn" => Some(FieldValidation::Warn),
        "Ignore" => Some(FieldValidation::Ignore),
        "Strict" => Some(FieldValidation::Strict),
        _ => None,
    }
}

/// The field error Go's `ValidateFieldValidation` gives for a refused value (None if valid):
/// `fieldValidation: Unsupported value: "x": supported values: "", "Ignore", "Strict", "Warn"`.
pub fn field_validation_error(q: Option<&str>) -> Option<FieldError> {
    match mode_of(q) {
        Some(_) => None,
        None => Some(FieldError::not_supported(
            "fieldValidation",
            q.unwrap_or(""),
            &["", "Ignore", "Strict", "Warn"],
        )),
    }
}

/// `fieldValidation` as a request error. Go rejects a bad value while validating the options
/// object: 422 `<Kind>Options.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: ...`.
/// This function does not know the options kind, so its 422 names none; the exact Go answer
/// comes from pushing `field_validation_error` into the options' error list
/// (`WriteOptions::parse`, which also aggregates dryRun/fieldManager errors as Go does), or from
/// `parse_field_validation_for`.
pub fn parse_field_validation(q: Option<&str>) -> Result<FieldValidation, ApiError> {
    mode_of(q).ok_or_else(|| {
        ApiError::invalid(
            &GroupKind::default(),
            "",
            &field_validation_error(q).into_iter().collect::<Vec<_>>(),
        )
    })
}

/// `parse_field_validation` with the options kind (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
pub fn parse_field_validation_for(
    q: Option<&str>,
    options_kind: &str,
) -> Result<FieldValidation, ApiError> {
    mode_of(q).ok_or_else(|| {
        options_invalid(
            options_kind,
            &field_validation_error(q).into_iter().collect::<Vec<_>>(),
        )
    })
}

/// 422 `<Kind>Options.meta.k8s.io "" is invalid: ...`, the shape of every query-option error.
pub fn options_invalid(options_kind: &str, errors: &[FieldError]) -> ApiError {
    ApiError::invalid(&GroupKind::options(options_kind), "", errors)
}

/// One step of a path inside a decoded document.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
}

/// Go's rendering of a strict-decoding path: `spec.items[0].bar`.
fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Field(f) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(f);
            }
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// Builds a `Value` while noting repeated object keys (last one wins, as in Go).
struct Tracking<'a> {
    path: &'a mut Vec<Seg>,
    dupes: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Tracking<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracking<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // NaN/inf only come from YAML (`.nan`); JSON has no such numbers, and Go refuses them.
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            self.path.push(Seg::Index(out.len()));
            let item = seq.next_element_seed(Tracking {
                path: self.path,
                dupes: self.dupes,
            });
            self.path.pop();
            match item? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeyString)? {
            self.path.push(Seg::Field(key.clone()));
            if out.contains_key(&key) {
                self.dupes.push(render_path(self.path));
            }
            let value = map.next_value_seed(Tracking {
                path: self.path,
                dupes: self.dupes,
            });
            self.path.pop();
            out.insert(key, value?);
        }
        Ok(Value::Object(out))
    }
}

/// Object keys as strings; YAML may use scalars of other types as keys.
struct KeyString;

impl<'de> DeserializeSeed<'de> for KeyString {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyString {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok("null".to_string())
    }
}

/// Parses a JSON body, returning the value and the paths of repeated keys (`spec.reference`).
/// A syntax error is a 400 whose message is Go's `couldn't get version/kind; json parse error: ...`
/// (callers wrap it with `unrecognized_body`).
pub fn parse_json(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    if bytes.len() >= crate::apimachinery::cpu::LARGE_BODY {
        return crate::apimachinery::cpu::cpu_bound(|| parse_json_now(bytes));
    }
    parse_json_now(bytes)
}

fn parse_json_now(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    let mut path = Vec::new();
    let mut dupes = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Tracking {
        path: &mut path,
        dupes: &mut dupes,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|_| v))
    .map_err(|e| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {}",
            json_error_text(&e)
        ))
    })?;
    Ok((value, dupes))
}

/// A JSON syntax error in words: truncated (and empty) input is Go encoding/json's `unexpected
/// end of JSON input`, anything else serde_json's own description (line and column).
pub fn json_error_text(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of JSON input".to_string(),
        _ => e.to_string(),
    }
}

/// Parses a YAML body (one document) like `parse_json`. Repeated keys are reported, not refused.
pub fn parse_yaml(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    if bytes.len() >= crate::apimachinery::cpu::LARGE_BODY {
        return crate::apimachinery::cpu::cpu_bound(|| parse_yaml_now(bytes));
    }
    parse_yaml_now(bytes)
}

fn parse_yaml_now(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    let parsed = serde_saphyr::from_slice_with_options::<ValueWithDupes>(bytes, options)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    Ok((parsed.value, parsed.dupes))
}

/// A `Value` plus the duplicate-key paths seen while deserializing it (for YAML).
struct ValueWithDupes {
    value: Value,
    dupes: Vec<String>,
}

impl<'de> serde::Deserialize<'de> for ValueWithDupes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut path = Vec::new();
        let mut dupes = Vec::new();
        let value = Tracking {
            path: &mut path,
            dupes: &mut dupes,
        }
        .deserialize(d)?;
        Ok(ValueWithDupes { value, dupes })
    }
}

/// `Flunder in version "v1alpha1" cannot be handled as a Flunder: <detail>` (AS:`handlers/rest.go`
/// transformDecodeError, when the body's kind is known).
pub fn cannot_handle(kind: &str, version: &str, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version {} cannot be handled as a {kind}: {detail}",
        Quoted(version)
    ))
}

/// `the object provided is unrecognized (must be of type Flunder): <detail> (<summary>)`, Go's
/// answer when the body's kind could not even be read (syntax errors).
pub fn unrecognized_body(kind: &str, detail: &str, body: &[u8]) -> ApiError {
    const MAX: usize = 30;
    let summary = if body.is_empty() {
        "<empty>".to_string()
    } else if body[0] == b'{' {
        let cut = &body[..body.len().min(MAX)];
        let s = String::from_utf8_lossy(cut).into_owned();
        if body.len() > MAX {
            format!("{s} ...")
        } else {
            s
        }
    } else {
        let cut = &body[..body.len().min(MAX)];
        let s = hex::encode(cut);
        if body.len() > MAX {
            format!("{s} ...")
        } else {
            s
        }
    };
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {kind}): {detail} ({summary})"
    ))
}

/// A body that is valid JSON but no object (`[]`, `"x"`, `1`): Go's error from reading its
/// apiVersion and kind, in the `unrecognized_body` form; None for objects and `null`.
pub fn not_an_object(kind: &str, value: &Value, body: &[u8]) -> Option<ApiError> {
    let ty = match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) | Value::Null => return None,
    };
    let detail = format!(
        "couldn't get version/kind; json parse error: json: cannot unmarshal {ty} into Go value \
         of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \
         \"json:\\\"kind,omitempty\\\"\" }}"
    );
    Some(unrecognized_body(kind, &detail, body))
}

/// What a schema walk found: unknown field paths and Go-style type errors, in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaCheck {
    pub unknown: Vec<String>,
    /// The same unknown fields as paths, for pruning.
    unknown_at: Vec<Vec<Seg>>,
    /// `json: cannot unmarshal number into Go struct field FlunderSpec.spec.reference of type string`.
    pub type_errors: Vec<String>,
}

/// Paths of fields the schema does not know (`spec.foo`, `metadata.foo`, `spec.items[0].bar`).
pub fn unknown_fields(obj: &Value, schema: &Value, defs: &Map<String, Value>) -> Vec<String> {
    check_schema(obj, schema, defs).unknown
}

/// Drops every field the schema does not know, at any depth (ObjectMeta, ownerReferences
/// items, managedFields entries, spec, status ...), as Go's typed decoding does: the fields a
/// struct lacks never reach storage. `found` is [`check_schema`] of this same `obj` (its
/// `unknown` lists the paths dropped: `spec.foo`, `metadata.bar`).
pub fn prune(obj: &mut Value, found: &SchemaCheck) {
    for path in &found.unknown_at {
        remove_at(obj, path);
    }
}

/// Removes the object key a path ends in (indexes only lead the way; removing keys never
/// shifts an array, so the other paths stay valid).
fn remove_at(obj: &mut Value, path: &[Seg]) {
    let Some((last, lead)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    for seg in lead {
        let next = match seg {
            Seg::Field(f) => v.get_mut(f.as_str()),
            Seg::Index(i) => v.get_mut(*i),
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    if let (Seg::Field(f), Some(m)) = (last, v.as_object_mut()) {
        m.remove(f);
    }
}

/// Type mismatches, as Go's `encoding/json` words them (Go stops at the first; so should the
/// caller). The root Go type (`v1alpha1.Flunder`) comes from the schema's
/// `x-kubernetes-group-version-kind`.
pub fn type_errors(obj: &Value, schema: &Value, defs: &Map<String, Value>) -> Vec<String> {
    check_schema(obj, schema, defs).type_errors
}

/// Walks `obj` against an OpenAPI v3 schema whose `$ref`s are bare definition names in `defs`.
///
/// Object rules: `properties` lists the known fields; `additionalProperties` (schema or `true`)
/// makes a map; `x-kubernetes-preserve-unknown-fields` opens anything. An *inline* object schema
/// with neither is an empty Go struct, so all its fields are unknown (Flunder's `status`); a
/// *referenced* definition with neither (FieldsV1, RawExtension) is a custom-decoded Go type and
/// accepts anything.
pub fn check_schema(obj: &Value, schema: &Value, defs: &Map<String, Value>) -> SchemaCheck {
    let gvk = schema
        .get("x-kubernetes-group-version-kind")
        .and_then(|g| g.get(0));
    let field = |k: &str| {
        Cow::Borrowed(
            gvk.and_then(|g| g.get(k))
                .and_then(Value::as_str)
                .unwrap_or(""),
        )
    };
    let (kind, version) = (field("kind"), field("version"));
    let mut w = Walker {
        defs,
        out: SchemaCheck::default(),
        path: Vec::new(),
        fields: Vec::new(),
    };
    if !obj.is_object() && !obj.is_null() {
        w.out.type_errors.push(format!(
            "json: cannot unmarshal {} into Go value of type {version}.{kind}",
            json_kind(obj)
        ));
        return w.out;
    }
    let root = GoType {
        struct_name: kind,
        package: version,
    };
    w.walk(obj, schema, &root, 0);
    w.out
}

/// The Go struct a schema node decodes into, for error messages. Borrowed from the schema
/// (a definition's name) where it can be: the walk runs on every write.
#[derive(Clone)]
struct GoType<'s> {
    struct_name: Cow<'s, str>,
    package: Cow<'s, str>,
}

/// One step of the walk's current path, borrowed from the document walked.
#[derive(Clone, Copy)]
enum Step<'v> {
    Field(&'v str),
    Index(usize),
}

struct Walker<'s, 'v> {
    defs: &'s Map<String, Value>,
    out: SchemaCheck,
    /// Full path with indexes, for unknown fields.
    path: Vec<Step<'v>>,
    /// Field names only, for Go's `Struct.field.path` in type errors.
    fields: Vec<&'v str>,
}

/// Bounds `$ref` chasing so a self-referencing schema cannot loop forever.
const MAX_DEPTH: usize = 64;

/// Resolves `$ref` and single-element `allOf` wrappers. Returns the schema and whether it came
/// from a named definition (plus that name).
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> (&'a Value, Option<&'a str>) {
    let mut s = schema;
    let mut name = None;
    for _ in 0..MAX_DEPTH {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let bare = r.rsplit('/').next().unwrap_or(r);
            match defs.get(bare) {
                Some(d) => {
                    name = Some(bare);
                    s = d;
                    continue;
                }
                None => return (s, name),
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array)
            && all.len() == 1
            && s.get("properties").is_none()
            && s.get("type").is_none()
        {
            s = &all[0];
            continue;
        }
        break;
    }
    (s, name)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn schema_type(s: &Value) -> Option<&str> {
    match s.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        _ => {
            if s.get("properties").is_some() || s.get("additionalProperties").is_some() {
                Some("object")
            } else {
                None
            }
        }
    }
}

impl<'s, 'v> Walker<'s, 'v> {
    /// Go's name for the type a schema decodes into (`string`, `int64`, `v1.ObjectMeta`, ...).
    fn go_type_name(&self, schema: &Value, parent: &GoType, field: &str, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return "interface {}".into();
        }
        let (s, def) = resolve(schema, self.defs);
        if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            return "intstr.IntOrString".into();
        }
        match schema_type(s) {
            Some("string") => "string".into(),
            Some("boolean") => "bool".into(),
            Some("integer") => {
                if s.get("format").and_then(Value::as_str) == Some("int32") {
                    "int32".into()
                } else {
                    "int64".into()
                }
            }
            Some("number") => "float64".into(),
            Some("array") => {
                let item = s
                    .get("items")
                    .map(|i| self.go_type_name(i, parent, field, depth + 1));
                format!("[]{}", item.unwrap_or_else(|| "interface {}".into()))
            }
            Some("object") => {
                if let Some(name) = def {
                    return def_go_name(name);
                }
                match s.get("additionalProperties") {
                    Some(ap) if ap.is_object() => {
                        format!(
                            "map[string]{}",
                            self.go_type_name(ap, parent, field, depth + 1)
                        )
                    }
                    Some(Value::Bool(true)) => "map[string]interface {}".into(),
                    _ => format!(
                        "{}.{}{}",
                        parent.package,
                        parent.struct_name,
                        capitalize(field)
                    ),
                }
            }
            _ => "interface {}".into(),
        }
    }

    /// Notes the current path as an unknown field.
    fn unknown_here(&mut self) {
        let owned: Vec<Seg> = self
            .path
            .iter()
            .map(|step| match *step {
                Step::Field(f) => Seg::Field(f.to_owned()),
                Step::Index(i) => Seg::Index(i),
            })
            .collect();
        self.out.unknown.push(render_path(&owned));
        self.out.unknown_at.push(owned);
    }

    fn type_error(&mut self, value: &Value, expected: &str, owner: &GoType) {
        let shown = match value {
            Value::Number(n) if expected.starts_with("int") || expected.starts_with("uint") => {
                format!("number {n}")
            }
            other => json_kind(other).to_string(),
        };
        let field = self.fields.join(".");
        self.out.type_errors.push(format!(
            "json: cannot unmarshal {shown} into Go struct field {}.{field} of type {expected}",
            owner.struct_name
        ));
    }

    /// `owner` is the innermost Go struct containing the current node (for messages);
    /// `field` is the last field name (to name inline struct types).
    fn walk(&mut self, v: &'v Value, schema: &'s Value, owner: &GoType<'s>, depth: usize) {
        if depth > MAX_DEPTH || v.is_null() {
            return;
        }
        let (s, def) = resolve(schema, self.defs);
        if s.get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return;
        }
        if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            if !(v.is_string() || v.is_i64() || v.is_u64()) {
                self.type_error(v, "intstr.IntOrString", owner);
            }
            return;
        }
        let last_field = self.fields.last().copied().unwrap_or_default();
        match schema_type(s) {
            Some("string") if !v.is_string() => self.type_error(v, "string", owner),
            Some("boolean") if !v.is_boolean() => self.type_error(v, "bool", owner),
            Some("integer") => {
                let t = if s.get("format").and_then(Value::as_str) == Some("int32") {
                    "int32"
                } else {
                    "int64"
                };
                if !(v.is_i64() || v.is_u64()) {
                    self.type_error(v, t, owner);
                }
            }
            Some("number") if !v.is_number() => self.type_error(v, "float64", owner),
            Some("array") => match v.as_array() {
                Some(items) => self.walk_items(items, s, owner, depth),
                None => {
                    let t = self.go_type_name(s, owner, last_field, depth);
                    self.type_error(v, &t, owner);
                }
            },
            Some("object") => match v.as_object() {
                Some(map) => self.walk_fields(map, (s, def), owner, depth),
                None => {
                    let t = self.go_type_name(schema, owner, last_field, depth);
                    self.type_error(v, &t, owner);
                }
            },
            _ => {}
        }
    }

    /// The items of a list, against the list schema's `items`.
    fn walk_items(&mut self, items: &'v [Value], s: &'s Value, owner: &GoType<'s>, depth: usize) {
        let Some(item_schema) = s.get("items") else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            self.path.push(Step::Index(i));
            self.walk(item, item_schema, owner, depth + 1);
            self.path.pop();
        }
    }

    /// The fields of an object against its (resolved) schema and definition name: declared
    /// properties are walked, map values too, anything else is an unknown field.
    fn walk_fields(
        &mut self,
        map: &'v Map<String, Value>,
        (s, def): (&'s Value, Option<&'s str>),
        owner: &GoType<'s>,
        depth: usize,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        let this = self.struct_of(def, owner);
        let open_custom = def.is_some() && props.is_none() && additional.is_none();
        for (k, child) in map {
            self.path.push(Step::Field(k));
            self.fields.push(k);
            match (props.and_then(|p| p.get(k)), additional) {
                (Some(ps), _) => self.walk(child, ps, &this, depth + 1),
                (None, Some(ap)) if ap.is_object() => {
                    // A Go map: its values belong to the struct holding the map field.
                    self.fields.pop();
                    self.walk(child, ap, owner, depth + 1);
                    self.fields.push(k);
                }
                (None, Some(Value::Bool(true))) => {}
                (None, _) if open_custom => {}
                (None, _) => self.unknown_here(),
            }
            self.fields.pop();
            self.path.pop();
        }
    }

    /// The Go struct an object is: a named definition, or `<Parent><Field>` inline.
    fn struct_of(&self, def: Option<&'s str>, owner: &GoType<'s>) -> GoType<'s> {
        match def {
            Some(name) => {
                let (package, struct_name) = def_go_parts(name);
                GoType {
                    struct_name: Cow::Borrowed(struct_name),
                    package: Cow::Borrowed(package.unwrap_or("")),
                }
            }
            None if self.fields.is_empty() => owner.clone(),
            None => GoType {
                struct_name: Cow::Owned(format!(
                    "{}{}",
                    owner.struct_name,
                    capitalize(self.fields.last().copied().unwrap_or(""))
                )),
                package: owner.package.clone(),
            },
        }
    }
}

/// `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta` → `v1.ObjectMeta` (package.Type).
fn def_go_name(name: &str) -> String {
    match def_go_parts(name) {
        (Some(pkg), ty) => format!("{pkg}.{ty}"),
        (None, ty) => ty.to_string(),
    }
}

/// `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta` → (`v1`, `ObjectMeta`); no dot → no package.
fn def_go_parts(name: &str) -> (Option<&str>, &str) {
    let mut parts = name.rsplit('.');
    let ty = parts.next().unwrap_or(name);
    (parts.next(), ty)
}

/// Formats strict-decoding problems in Go's words: duplicates first, then unknown fields.
pub fn strict_problems(duplicates: &[String], unknown: &[String]) -> Vec<String> {
    duplicates
        .iter()
        .map(|p| format!("duplicate field {}", Quoted(p)))
        .chain(
            unknown
                .iter()
                .map(|p| format!("unknown field {}", Quoted(p))),
        )
        .collect()
}

/// Applies `fieldValidation` to the strict-decoding problems (from `strict_problems`).
///
/// * Strict, create/update: 400 `<Kind> in version "<v>" cannot be handled as a <Kind>: strict
///   decoding error: unknown field "spec.foo", ...`.
/// * Strict, patch: 422 ` "" is invalid: patch: Invalid value: strict decoding error: ...` with
///   a cause on field `patch` (Go's `NewInvalid(GroupKind{})`). Go also prints the patched
///   object (or the strategic patch as a Go map) as the value; wardle names only the fields
///   (README difference `strict-patch-message`).
/// * Warn: the problems are returned as warnings (sent as `Warning: 299 - "..."`).
/// * Ignore: nothing.
pub fn strict_outcome(
    mode: FieldValidation,
    problems: Vec<String>,
    kind: &str,
    version: &str,
    is_patch: bool,
) -> Result<Vec<String>, ApiError> {
    if problems.is_empty() {
        return Ok(Vec::new());
    }
    match mode {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Strict => {
            let detail = format!("strict decoding error: {}", problems.join(", "));
            if !is_patch {
                return Err(cannot_handle(kind, version, &detail));
            }
            let mut err = FieldError::invalid("patch", "", &detail);
            err.value = None;
            Err(ApiError::invalid(&GroupKind::default(), "", &[err]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apimachinery::status::Reason;
    use serde_json::json;

    fn flunder_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                "spec": {"type": "object", "properties": {
                    "reference": {"type": "string"},
                    "count": {"type": "integer", "format": "int32"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                }},
                "status": {"type": "object"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
            "x-kubernetes-group-version-kind": [{"group": "wardle.example.com", "kind": "Flunder", "version": "v1alpha1"}],
        })
    }

    fn defs() -> Map<String, Value> {
        let d = json!({
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "generation": {"type": "integer", "format": "int64"},
                "managedFields": {"type": "array", "items": {"allOf": [{"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"}]}},
            }},
            "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {"type": "object", "properties": {
                "manager": {"type": "string"},
                "fieldsV1": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"},
            }},
            "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": {"type": "object"},
        });
        d.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn field_validation_values() {
        assert_eq!(
            parse_field_validation(None).ok(),
            Some(FieldValidation::Warn)
        );
        assert_eq!(
            parse_field_validation(Some("")).ok(),
            Some(FieldValidation::Warn)
        );
        assert_eq!(
            parse_field_validation(Some("Strict")).ok(),
            Some(FieldValidation::Strict)
        );
        assert_eq!(
            parse_field_validation(Some("Ignore")).ok(),
            Some(FieldValidation::Ignore)
        );
        assert_eq!(parse_field_validation(Some("bogus")).unwrap_err().code, 422);
        let e = parse_field_validation_for(Some("strict"), "PatchOptions").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#"PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn""#
        );
    }

    #[test]
    fn json_duplicates_with_paths() {
        let body = br#"{"spec":{"reference":"a","reference":"b","items":[{"name":"x","name":"y"}]},"kind":"F","kind":"F"}"#;
        let (v, d) = parse_json(body).unwrap();
        assert_eq!(v["spec"]["reference"], "b");
        assert_eq!(d, vec!["spec.reference", "spec.items[0].name", "kind"]);
    }

    #[test]
    fn bodies_that_are_not_objects_are_unrecognized() {
        let e = not_an_object("Flunder", &json!([]), b"[]").unwrap();
        assert_eq!(
            e.message,
            "the object provided is unrecognized (must be of type Flunder): couldn't get \
             version/kind; json parse error: json: cannot unmarshal array into Go value of type \
             struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \
             \"json:\\\"kind,omitempty\\\"\" } (5b5d)"
        );
        assert!(not_an_object("Flunder", &json!({}), b"{}").is_none());
        assert!(not_an_object("Flunder", &Value::Null, b"null").is_none());
        let e = parse_json(b"").unwrap_err();
        assert_eq!(
            e.message,
            "couldn't get version/kind; json parse error: unexpected end of JSON input"
        );
    }

    #[test]
    fn json_syntax_error_is_400() {
        let e = parse_json(b"{\"a\":").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .starts_with("couldn't get version/kind; json parse error: "),
            "{}",
            e.message
        );
        assert!(parse_json(b"{} x").is_err());
        assert!(parse_json(b"").is_err());
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(
            parse_json(deep.as_bytes()).is_err(),
            "recursion limit, no stack overflow"
        );
    }

    #[test]
    fn yaml_parses_and_reports_duplicates() {
        let (v, d) =
            parse_yaml(b"apiVersion: v1\nspec:\n  reference: a\n  reference: b\n  count: 3\n")
                .unwrap();
        assert_eq!(v["spec"]["reference"], "b");
        assert_eq!(v["spec"]["count"], 3);
        assert_eq!(d, vec!["spec.reference"]);
        assert_eq!(parse_yaml(b"a: [1, 2").unwrap_err().code, 400);
    }

    #[test]
    fn unknown_fields_found() {
        let obj = json!({
            "apiVersion": "x", "kind": "Flunder",
            "metadata": {"name": "n", "foo": 1, "labels": {"a": "b"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}, "bogus": 1}]},
            "spec": {"reference": "r", "foo": "bar", "items": [{"name": "a"}, {"bar": 1}]},
            "status": {"x": 1},
            "extra": {"anything": {"goes": true}},
            "top": 1,
        });
        let u = unknown_fields(&obj, &flunder_schema(), &defs());
        assert_eq!(
            u,
            vec![
                "metadata.foo",
                "metadata.managedFields[0].bogus",
                "spec.foo",
                "spec.items[1].bar",
                "status.x",
                "top"
            ]
        );
    }

    #[test]
    fn type_errors_go_style() {
        let obj = json!({"spec": {"reference": 5}});
        let t = type_errors(&obj, &flunder_schema(), &defs());
        assert_eq!(
            t,
            vec![
                "json: cannot unmarshal number into Go struct field FlunderSpec.spec.reference of type string"
            ]
        );

        let obj = json!({"spec": "x", "metadata": {"labels": {"a": 1}, "generation": 1.5}});
        let t = type_errors(&obj, &flunder_schema(), &defs());
        assert_eq!(
            t,
            // Objects are key-sorted maps, so errors come in key order (metadata before spec).
            vec![
                "json: cannot unmarshal number 1.5 into Go struct field ObjectMeta.metadata.generation of type int64",
                "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
                "json: cannot unmarshal string into Go struct field Flunder.spec of type v1alpha1.FlunderSpec",
            ]
        );
        let t = type_errors(&json!({"metadata": []}), &flunder_schema(), &defs());
        assert_eq!(
            t,
            vec![
                "json: cannot unmarshal array into Go struct field Flunder.metadata of type v1.ObjectMeta"
            ]
        );
        let t = type_errors(&json!([1]), &flunder_schema(), &defs());
        assert_eq!(
            t,
            vec!["json: cannot unmarshal array into Go value of type v1alpha1.Flunder"]
        );
        // null is Go's zero value, never an error.
        assert!(
            type_errors(
                &json!({"spec": null, "metadata": {"name": null}}),
                &flunder_schema(),
                &defs()
            )
            .is_empty()
        );
    }

    #[test]
    fn self_referencing_schema_terminates() {
        let mut d = Map::new();
        d.insert("A".into(), json!({"$ref": "B"}));
        d.insert("B".into(), json!({"$ref": "A"}));
        let s = json!({"type": "object", "properties": {"a": {"$ref": "A"}}});
        let _ = check_schema(&json!({"a": {"x": 1}}), &s, &d);
    }

    #[test]
    fn strict_outcomes() {
        let problems =
            strict_problems(&["spec.reference".into()], &["spec.foo".into(), "x".into()]);
        assert_eq!(
            problems,
            vec![
                r#"duplicate field "spec.reference""#,
                r#"unknown field "spec.foo""#,
                r#"unknown field "x""#
            ]
        );

        let e = strict_outcome(
            FieldValidation::Strict,
            problems[1..].to_vec(),
            "Flunder",
            "v1alpha1",
            false,
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            r#"Flunder in version "v1alpha1" cannot be handled as a Flunder: strict decoding error: unknown field "spec.foo", unknown field "x""#
        );

        let e = strict_outcome(
            FieldValidation::Strict,
            problems[1..2].to_vec(),
            "Flunder",
            "v1alpha1",
            true,
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, Reason::Invalid);
        assert_eq!(
            e.message,
            r#" "" is invalid: patch: Invalid value: strict decoding error: unknown field "spec.foo""#
        );
        assert_eq!(e.to_status()["details"]["causes"][0]["field"], "patch");
        let w = strict_outcome(
            FieldValidation::Warn,
            problems.clone(),
            "Flunder",
            "v1alpha1",
            true,
        )
        .unwrap();
        assert_eq!(w.len(), 3);
        assert!(
            strict_outcome(
                FieldValidation::Ignore,
                problems,
                "Flunder",
                "v1alpha1",
                false
            )
            .unwrap()
            .is_empty()
        );
        assert!(
            strict_outcome(
                FieldValidation::Strict,
                vec![],
                "Flunder",
                "v1alpha1",
                false
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn unrecognized_summary() {
        let e = unrecognized_body(
            "Flunder",
            "boom",
            b"{\"apiVersion\": \"wardle.example.com/v1alpha1\"}",
        );
        assert_eq!(
            e.message,
            r#"the object provided is unrecognized (must be of type Flunder): boom ({"apiVersion": "wardle.example ...)"#
        );
        let e = unrecognized_body("Flunder", "boom", b"xy");
        assert_eq!(
            e.message,
            "the object provided is unrecognized (must be of type Flunder): boom (7879)"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for depth in [200, 100_000] {
            let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(parse_json(json.as_bytes()).unwrap_err().code, 400);
            let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(parse_yaml(flow.as_bytes()).unwrap_err().code, 400);
            let block: String = (0..depth.min(5000))
                .map(|i| format!("{}a:\n", " ".repeat(i)))
                .collect();
            assert_eq!(
                parse_yaml(block.as_bytes()).unwrap_err().code,
                400,
                "depth {depth}"
            );
        }
    }
}
