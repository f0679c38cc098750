//! Strict decoding of request bodies against a kind's OpenAPI schema: unknown fields and type errors.
//!
//! Go decodes a body into typed structs; fields the struct lacks are dropped ("unknown"), repeated
//! keys keep the last value ("duplicate"), and `fieldValidation` decides whether those become
//! errors, warnings or nothing. Here the body stays a `serde_json::Value`, so the same facts are
//! recovered from the parse (duplicates) and from a walk against the OpenAPI schema (unknown
//! fields, type mismatches). Messages follow `sigs.k8s.io/json` and `encoding/json`.

use crate::api::meta_schema;
use crate::apimachinery::gofmt::{Quoted, json_kind, quote_char};
use crate::apimachinery::gotime;
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
            let Some(key) = key else {
                // A null key (`{~: b}`): sigs.k8s.io/yaml's JSON conversion refuses it,
                // quoting the value as Go's `%+#v` prints it.
                let value = map.next_value_seed(Tracking {
                    path: self.path,
                    dupes: self.dupes,
                })?;
                return Err(de::Error::custom(format!(
                    "{NULL_KEY}, value: {}",
                    go_value_syntax(&value)
                )));
            };
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

/// The start of sigs.k8s.io/yaml's error for a null mapping key (`{~: b}`).
const NULL_KEY: &str = "unsupported map key of type: %!s(<nil>), key: <nil>";

/// A decoded value as Go's `%+#v` prints the `interface{}` go-yaml made of it, for the one
/// error that quotes it: `"b"`, `5`, `true`, `<nil>`; collections as Go's map and slice syntax.
fn go_value_syntax(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Quoted(s).to_string(),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            a.iter().map(go_value_syntax).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "map[interface {{}}]interface {{}}{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", Quoted(k), go_value_syntax(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Object keys as strings; YAML may use scalars of other types as keys, as sigs.k8s.io/yaml
/// converts them (`1` → `"1"`, `true` → `"true"`). None for a null key, which Go refuses.
struct KeyString;

impl<'de> DeserializeSeed<'de> for KeyString {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyString {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<String>, E> {
        Ok(Some(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
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
    with_bad_unicode_replaced(bytes, parse_json_exact)
}

/// `parse(bytes)`, or when that fails and `bytes` has bad Unicode in its strings (see
/// [`replace_bad_unicode`]), `parse` of the body with it replaced by U+FFFD, as Go's
/// encoding/json reads it (whose error, if any, is then the body's real syntax error).
pub fn with_bad_unicode_replaced<T, E>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, E>,
) -> Result<T, E> {
    let first = parse(bytes);
    match first {
        Err(_) => match replace_bad_unicode(bytes) {
            Some(fixed) => parse(&fixed),
            None => first,
        },
        ok => ok,
    }
}

/// `serde_json::from_slice` with Go's tolerance of bad Unicode in strings, for patches (Go
/// decodes them with the same encoding/json).
pub fn from_slice_lossy<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    with_bad_unicode_replaced(bytes, |b| serde_json::from_slice(b))
}

/// Go's `encoding/json` decodes a string's invalid UTF-8 bytes and unpaired UTF-16 surrogate
/// escapes (`\ud800`) as U+FFFD, one per bad byte or escape, where serde_json refuses them.
/// The body with those replaced inside strings (bytes → `EF BF BD`, escapes → `\ufffd`), or
/// None when it has none. Only tried after a failed parse: valid bodies pay nothing.
fn replace_bad_unicode(bytes: &[u8]) -> Option<Vec<u8>> {
    const FFFD: &[u8] = "\u{fffd}".as_bytes();
    let hex4 = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let mut out = Vec::with_capacity(bytes.len());
    let (mut i, mut in_string, mut changed) = (0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string || b == b'"' {
            in_string ^= b == b'"';
            out.push(b);
            i += 1;
        } else if b == b'\\' {
            let unit = (bytes.get(i + 1) == Some(&b'u'))
                .then(|| hex4(i + 2))
                .flatten();
            match unit {
                Some(0xD800..=0xDBFF)
                    if bytes.get(i + 6..i + 8) == Some(b"\\u")
                        && matches!(hex4(i + 8), Some(0xDC00..=0xDFFF)) =>
                {
                    out.extend_from_slice(&bytes[i..i + 12]);
                    i += 12;
                }
                Some(0xD800..=0xDFFF) => {
                    out.extend_from_slice(b"\\ufffd");
                    changed = true;
                    i += 6;
                }
                _ => {
                    let end = (i + 2).min(bytes.len());
                    out.extend_from_slice(&bytes[i..end]);
                    i = end;
                }
            }
        } else if b < 0x80 {
            out.push(b);
            i += 1;
        } else {
            let width = (2..=4).find(|w| {
                bytes
                    .get(i..i + w)
                    .is_some_and(|c| std::str::from_utf8(c).is_ok())
            });
            match width {
                Some(w) => {
                    out.extend_from_slice(&bytes[i..i + w]);
                    i += w;
                }
                None => {
                    out.extend_from_slice(FFFD);
                    changed = true;
                    i += 1;
                }
            }
        }
    }
    changed.then_some(out)
}

fn parse_json_exact(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
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
            json_error_text(&e, bytes)
        ))
    })?;
    Ok((value, dupes))
}

/// A JSON syntax error in words: truncated (and empty) input is Go encoding/json's `unexpected
/// end of JSON input`, a value followed by more than white space its `invalid character 'x'
/// after top-level value` (`input`: the bytes parsed, to name that character), anything else
/// serde_json's own description (line and column).
pub fn json_error_text(e: &serde_json::Error, input: &[u8]) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of JSON input".to_string(),
        serde_json::error::Category::Syntax
            if e.to_string().starts_with("trailing characters")
                && let Some(b) = byte_at(input, e.line(), e.column()) =>
        {
            format!("invalid character {} after top-level value", quote_char(b))
        }
        _ => e.to_string(),
    }
}

/// The byte at serde_json's 1-based line and column (a column counts bytes).
fn byte_at(input: &[u8], line: usize, column: usize) -> Option<u8> {
    let start = if line <= 1 {
        0
    } else {
        let newline = input
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)?
            .0;
        newline + 1
    };
    input.get(start + column.checked_sub(1)?).copied()
}

/// Parses a YAML body like `parse_json`. Repeated keys are reported, not refused. Only the
/// first document counts, as sigs.k8s.io/yaml's conversion reads only that one (whatever
/// follows a `---` is not even parsed). A body with no content but comments is `null`. A null
/// mapping key is Go's `unsupported map key of type: %!s(<nil>), ...` (no YAML prefix: callers
/// quote it in an "unrecognized" answer as they quote any parse error). Nesting deeper than
/// [`MAX_YAML_DEPTH`] is `error converting YAML to JSON: yaml: exceeded max depth of 128`.
pub fn parse_yaml(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    if bytes.len() >= crate::apimachinery::cpu::LARGE_BODY {
        return crate::apimachinery::cpu::cpu_bound(|| parse_yaml_now(bytes));
    }
    parse_yaml_now(bytes)
}

/// The deepest YAML nesting accepted, the same as serde_json's fixed limit for JSON bodies
/// (Go's parsers allow 10000 levels; README "Differences").
pub const MAX_YAML_DEPTH: usize = 128;

/// The stack a YAML parse runs on (when the thread has less left than this).
const YAML_STACK: usize = 16 * 1024 * 1024;

fn parse_yaml_now(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    let doc = first_document(bytes);
    if doc.iter().all(u8::is_ascii_whitespace) || only_comments(doc) {
        return Ok((Value::Null, Vec::new()));
    }
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_YAML_DEPTH;
    options.budget = Some(budget);
    // serde-saphyr recurses per level (kilobytes a level in a debug build): a stack of its own
    // keeps MAX_YAML_DEPTH levels clear of a worker thread's 2 MiB.
    let parsed = stacker::maybe_grow(YAML_STACK, YAML_STACK, || {
        serde_saphyr::from_slice_with_options::<ValueWithDupes>(doc, options)
    })
    .map_err(|e| ApiError::bad_request(yaml_error_text(&e)))?;
    Ok((parsed.value, parsed.dupes))
}

/// A YAML parse error in words: Go's for a null key and too deep nesting, else serde-saphyr's.
fn yaml_error_text(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    if let Some(at) = text.find(NULL_KEY) {
        // The message is ours; the parser may have framed it with a location.
        let tail = &text[at..];
        let end = tail.find('\n').unwrap_or(tail.len());
        return tail[..end].to_string();
    }
    // The breach comes wrapped in a snippet of the input: found by its words.
    if text.contains("budget breached: Depth") {
        return format!(
            "error converting YAML to JSON: yaml: exceeded max depth of {MAX_YAML_DEPTH}"
        );
    }
    format!("error converting YAML to JSON: {text}")
}

/// The bytes of a stream's first YAML document: up to the next line that starts a document
/// (`---`) or ends one (`...`), a leading `---` (and directives before it) belonging to the
/// first. Such a line ends a document wherever it stands, even inside a block scalar.
fn first_document(bytes: &[u8]) -> &[u8] {
    let mut started = false;
    let mut at = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let marker = |m: &[u8]| {
            line.starts_with(m)
                && line
                    .get(3)
                    .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        };
        let trimmed = line.trim_ascii();
        let blank = trimmed.is_empty() || trimmed.starts_with(b"#");
        if marker(b"---") {
            if started {
                return &bytes[..at];
            }
            started = true;
        } else if marker(b"...") {
            if started || !blank {
                return &bytes[..at];
            }
        } else if !blank && !line.starts_with(b"%") {
            started = true;
        }
        at += line.len();
    }
    bytes
}

/// Whether a document is nothing but comments, blank lines and markers (Go reads it as null).
fn only_comments(doc: &[u8]) -> bool {
    doc.split(|b| *b == b'\n').all(|line| {
        let t = line.trim_ascii();
        t.is_empty() || t.starts_with(b"#") || t == b"---" || t.starts_with(b"%")
    })
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
        "couldn't get version/kind; json parse error: {}",
        find_kind_type_error(ty)
    );
    Some(unrecognized_body(kind, &detail, body))
}

/// encoding/json's error for a body of JSON type `ty` (array, string, ...) read for its
/// apiVersion and kind (Go's SimpleMetaFactory.Interpret).
pub fn find_kind_type_error(ty: &str) -> String {
    format!(
        "json: cannot unmarshal {ty} into Go value of type struct {{ APIVersion string \
         \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}"
    )
}

/// What a schema walk found: unknown field paths and Go-style type errors, in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaCheck {
    pub unknown: Vec<String>,
    /// The same unknown fields as paths, for pruning.
    unknown_at: Vec<Vec<Seg>>,
    /// Per entry of `unknown`: whether the field sits in a struct that declares no fields at
    /// all (Flunder's `status`). Server-side apply's typed conversion takes any field there
    /// (an OpenAPI object without properties is an untyped map to it); the typed decode that
    /// follows still drops it.
    pub in_empty_struct: Vec<bool>,
    /// `json: cannot unmarshal number into Go struct field FlunderSpec.spec.reference of type string`.
    pub type_errors: Vec<String>,
    /// Whether a `null` or a `metav1.Time` was met (outside preserved-unknown subtrees): only
    /// then can [`normalize`] change anything, so a body without either skips that walk.
    pub typed_rewrites: bool,
}

impl SchemaCheck {
    /// The unknown fields apply's typed conversion refuses (`unknown` less those in a struct
    /// that declares no fields).
    pub fn undeclared(&self) -> impl Iterator<Item = &str> {
        self.unknown
            .iter()
            .zip(&self.in_empty_struct)
            .filter(|(_, loose)| !**loose)
            .map(|(u, _)| u.as_str())
    }
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

/// What Go's typed decode and encode make of a (schema-checked, pruned) object, for the
/// values JSON can say that Go's types cannot hold:
///
/// * `null` is the Go zero value. A struct field then vanishes (every field of these kinds is
///   `omitempty` or a pointer), except a field the schema lists as `required` (not
///   `omitempty`, as OwnerReference's `name`), which becomes its zero (`""`, `0`, `false`);
///   a map value or list item becomes its type's zero: `labels: {"a": null}` → `{"a": ""}`,
///   `disallowedFlunders: [null, "x"]` → `["", "x"]`.
/// * A `metav1.Time` is re-encoded as Go marshals it: UTC, whole seconds
///   (`2020-01-01T01:30:00.5+01:00` → `2020-01-01T00:30:00Z`).
///
/// Runs once per request body, patch result and apply result, on every kind (Go:
/// `encoding/json` into the kind's structs, then `json.Marshal` into storage).
pub fn normalize(obj: &mut Value, schema: &Value, defs: &Map<String, Value>) {
    normalize_at(obj, schema, defs, 0);
}

fn normalize_at(v: &mut Value, schema: &Value, defs: &Map<String, Value>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let (s, def) = resolve(schema, defs);
    if s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    if def == Some(meta_schema::TIME) {
        if let Some(t) = v.as_str().and_then(|t| gotime::parse_rfc3339(t).ok()) {
            *v = Value::String(crate::apimachinery::meta::format_timestamp(t));
        }
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                map.retain(|k, child| !child.is_null() || required(s, k));
                for (k, child) in map.iter_mut() {
                    if let Some(ps) = props.get(k) {
                        if child.is_null() {
                            *child = zero_value(ps, defs, depth + 1);
                        } else {
                            normalize_at(child, ps, defs, depth + 1);
                        }
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    if child.is_null() {
                        *child = zero_value(ap, defs, depth + 1);
                    } else {
                        normalize_at(child, ap, defs, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for item in items {
                    if item.is_null() {
                        *item = zero_value(is, defs, depth + 1);
                    } else {
                        normalize_at(item, is, defs, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

/// What Go's JSON encoders write of a typed object: a struct field tagged `omitempty` (every
/// field the schema does not list as `required`) is left out when it holds its type's empty
/// value, as `encoding/json` (storage, responses) and the unstructured converter (what the
/// fieldmanager reads) both do:
///
/// * `null`, `""`, `[]`, and `{}` where the schema is a map (`additionalProperties`):
///   `disallowedFlunders: []`, `labels: {}`, `finalizers: []`, `generateName: ""` go;
/// * `0` and `false`, unless Go declares the field a pointer ([`meta_schema::POINTER_SCALARS`]:
///   `generation: 0` goes, `deletionGracePeriodSeconds: 0` and `controller: false` stay);
/// * a struct is never empty to `omitempty` (`spec: {}`, `status: {}`, `fieldsV1: {}` stay).
///
/// Map values and list items are never omitted, only walked. Not a decode step: Go's decoded
/// object keeps an empty `managedFields: []` (a reset request) until it is encoded.
pub fn omit_empty(obj: &mut Value, schema: &Value, defs: &Map<String, Value>) {
    omit_empty_at(obj, schema, defs, 0);
}

fn omit_empty_at(v: &mut Value, schema: &Value, defs: &Map<String, Value>, depth: usize) {
    // Only objects and lists hold fields to leave out; scalars end the walk before any schema
    // lookup (this walk runs on every write: most of an object is non-empty scalars).
    if depth > MAX_DEPTH || !(v.is_object() || v.is_array()) {
        return;
    }
    let (s, def) = resolve(schema, defs);
    if def == Some(meta_schema::TIME)
        || s.get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true)
    {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let pointer =
                    |k: &str| def.is_some_and(|d| meta_schema::POINTER_SCALARS.contains(&(d, k)));
                map.retain(|k, child| {
                    // A value no Go type calls empty stays whatever its schema says.
                    if !zero_like(child) {
                        return true;
                    }
                    let Some(ps) = props.get(k) else {
                        return true;
                    };
                    required(s, k) || !go_empty(child, ps, defs, pointer(k))
                });
                for (k, child) in map.iter_mut() {
                    if let Some(ps) = props
                        .get(k)
                        .filter(|_| child.is_object() || child.is_array())
                    {
                        omit_empty_at(child, ps, defs, depth + 1);
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    omit_empty_at(child, ap, defs, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for item in items {
                    omit_empty_at(item, is, defs, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Whether the object schema `s` lists `field` as required: in Kubernetes' OpenAPI, a field Go
/// declares without `omitempty` (kept when empty or null).
fn required(s: &Value, field: &str) -> bool {
    s.get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(field)))
}

/// Whether `v` could be empty to Go's `isEmptyValue` for some type: null, "", 0, false, an
/// empty list or object. Anything else is kept without looking at its schema.
fn zero_like(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// Go's `isEmptyValue` for a field of the type `schema` describes (`pointer`: Go declares it
/// `*T`, empty only when nil).
fn go_empty(v: &Value, schema: &Value, defs: &Map<String, Value>, pointer: bool) -> bool {
    match v {
        Value::Null => true,
        _ if pointer => false,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Object(o) => {
            // A map is empty without entries; a struct never is.
            let (s, _) = resolve(schema, defs);
            o.is_empty() && s.get("properties").is_none() && s.get("additionalProperties").is_some()
        }
    }
}

/// How Go encodes the zero value of the type a schema describes: `""`, `0`, `false`, a struct
/// with its non-`omitempty` (required) fields at their zeros; `null` for a nil map, slice or
/// Time (what `json.Marshal` writes for them).
fn zero_value(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let (s, def) = resolve(schema, defs);
    if depth > MAX_DEPTH || def == Some(meta_schema::TIME) {
        return Value::Null;
    }
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Value::from(0);
    }
    match schema_type(s) {
        Some("string") => Value::from(""),
        Some("integer") | Some("number") => Value::from(0),
        Some("boolean") => Value::Bool(false),
        Some("object")
            if s.get("properties").is_some() || s.get("additionalProperties").is_none() =>
        {
            let mut out = Map::new();
            let props = s.get("properties").and_then(Value::as_object);
            for k in s
                .get("required")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let (Some(k), Some(p)) = (k.as_str(), props.and_then(|p| p.get(k.as_str()?))) {
                    out.insert(k.to_string(), zero_value(p, defs, depth + 1));
                }
            }
            Value::Object(out)
        }
        _ => Value::Null,
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

/// A type error of [`check_schema`] (encoding/json's words) as Go's unstructured converter
/// (AM:`pkg/runtime/converter.go` `fromUnstructured`) words it, for a strategic merge patch,
/// whose result Go converts from a map instead of decoding JSON: `cannot restore map from
/// string`, `cannot restore slice from map`, `cannot restore struct from: int64`, `cannot
/// convert float64 to int64`, `unrecognized type: string`. None when the error is not one of
/// those shapes (e.g. a timestamp, which decodes as JSON there too).
pub fn converter_error(json_error: &str) -> Option<String> {
    let rest = json_error.strip_prefix("json: cannot unmarshal ")?;
    let (shown, rest) = rest.split_once(" into Go struct field ")?;
    let (_, expected) = rest.rsplit_once(" of type ")?;
    // What Go's JSON decoding made of the value (util/json keeps whole numbers int64).
    let source = match shown {
        "string" => "string",
        "bool" => "bool",
        "array" => "slice",
        "object" => "map",
        "number" => "int64",
        n => match n.strip_prefix("number ")?.parse::<i64>() {
            Ok(_) => "int64",
            Err(_) => "float64",
        },
    };
    let expected = expected.trim_start_matches('*');
    if expected.starts_with("map[") {
        return Some(format!("cannot restore map from {source}"));
    }
    if expected.starts_with("[]") {
        return Some(format!("cannot restore slice from {source}"));
    }
    if expected == "v1.Time" || expected == "v1.MicroTime" {
        return None;
    }
    if expected.contains('.') {
        return Some(format!("cannot restore struct from: {source}"));
    }
    let integer = |t: &str| t.starts_with("int") || t.starts_with("uint");
    Some(match source {
        "int64" if expected == "string" => "cannot convert int64 to string".to_string(),
        "float64" if integer(expected) => format!("cannot convert float64 to {expected}"),
        _ => format!("unrecognized type: {expected}"),
    })
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

    /// Notes the current path as an unknown field (`loose`: of a struct without fields).
    fn unknown_here(&mut self, loose: bool) {
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
        self.out.in_empty_struct.push(loose);
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
        if v.is_null() {
            self.out.typed_rewrites = true;
        }
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
        if def == Some(meta_schema::TIME)
            && let Some(text) = v.as_str()
        {
            self.out.typed_rewrites = true;
            // metav1.Time's UnmarshalJSON: the string must be RFC 3339, and Go's decoder
            // passes time.Parse's error up as it is.
            if let Err(e) = gotime::parse_rfc3339(text) {
                self.out.type_errors.push(e);
            }
            return;
        }
        let last_field = self.fields.last().copied().unwrap_or_default();
        match schema_type(s) {
            Some("string") if !v.is_string() => {
                let t = named_string_type(owner, self.fields.last().copied());
                self.type_error(v, t.unwrap_or("string"), owner)
            }
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
                (None, _) => self.unknown_here(props.is_none() && additional.is_none()),
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

/// The named Go string types of the meta structs, which `encoding/json` names in a type error
/// (`... ObjectMeta.metadata.uid of type types.UID`); None for plain `string`. `owner` is the
/// struct holding the field. (A `metav1.Time` given a non-string is `of type string`: its
/// UnmarshalJSON decodes into a plain string first.)
fn named_string_type(owner: &GoType, field: Option<&str>) -> Option<&'static str> {
    if owner.package != "v1" {
        return None;
    }
    match (&*owner.struct_name, field?) {
        ("ObjectMeta" | "OwnerReference" | "Preconditions", "uid") => Some("types.UID"),
        ("ManagedFieldsEntry", "operation") => Some("v1.ManagedFieldsOperationType"),
        _ => None,
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

    /// Patches (and other bodies read with `from_slice_lossy`) take bad Unicode as Go does.
    #[test]
    fn lossy_slices_replace_bad_unicode() {
        let v: Value = from_slice_lossy(br#"{"a":"x\ud800y"}"#).expect("lone surrogate");
        assert_eq!(v["a"], "x\u{fffd}y");
        let v: Value = from_slice_lossy(b"{\"a\":\"x\xffy\"}").expect("bad byte");
        assert_eq!(v["a"], "x\u{fffd}y");
        let e = from_slice_lossy::<Value>(b"{\"a\":\"x\xffy\"").expect_err("still truncated");
        assert!(e.is_eof(), "{e}");
    }

    /// What Go's encoder leaves out of a Fischer: empty omitempty fields, not structs, not the
    /// zero of a pointer, not map values or list items.
    #[test]
    fn omit_empty_is_gos_omitempty() {
        use crate::api::Resource;
        let schema = crate::api::fischer::Fischer.schema("v1alpha1");
        let defs = meta_schema::definitions();
        let mut obj = json!({
            "kind": "Fischer", "apiVersion": "",
            "metadata": {"name": "a", "generateName": "", "generation": 0, "labels": {},
                "annotations": {"k": ""}, "finalizers": [], "managedFields": [],
                "deletionGracePeriodSeconds": 0, "deletionTimestamp": null,
                "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": "",
                    "controller": false, "blockOwnerDeletion": null}]},
            "disallowedFlunders": []
        });
        omit_empty(&mut obj, &schema, &defs);
        assert_eq!(
            obj,
            json!({
                "kind": "Fischer",
                "metadata": {"name": "a", "annotations": {"k": ""},
                    "deletionGracePeriodSeconds": 0,
                    "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": "",
                        "controller": false}]}
            })
        );
        let mut mf = json!({"metadata": {"managedFields": [{"manager": "", "fieldsV1": {}}]}, "disallowedFlunders": [""]});
        omit_empty(&mut mf, &schema, &defs);
        assert_eq!(
            mf,
            json!({"metadata": {"managedFields": [{"fieldsV1": {}}]}, "disallowedFlunders": [""]})
        );
    }

    /// A value followed by more than white space: encoding/json's words, naming the byte.
    #[test]
    fn trailing_characters_in_go_words() {
        for (input, go) in [
            (&b"{} x"[..], "invalid character 'x' after top-level value"),
            (
                b"{}\n\n  '",
                r"invalid character '\'' after top-level value",
            ),
            (b"[]\x01", r"invalid character '\x01' after top-level value"),
            (
                b"{}\xff",
                "invalid character '\u{ff}' after top-level value",
            ),
            (b"{\"a\":", "unexpected end of JSON input"),
        ] {
            let e = serde_json::from_slice::<Value>(input).expect_err("bad JSON");
            assert_eq!(json_error_text(&e, input), go, "{input:?}");
        }
    }

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
    fn converter_words() {
        let cases = [
            (
                "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string",
                Some("cannot restore map from string"),
            ),
            (
                "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.finalizers of type []string",
                Some("cannot restore slice from string"),
            ),
            (
                "json: cannot unmarshal number 1.5 into Go struct field ObjectMeta.metadata.generation of type int64",
                Some("cannot convert float64 to int64"),
            ),
            (
                "json: cannot unmarshal string into Go struct field Flunder.spec of type v1beta1.FlunderSpec",
                Some("cannot restore struct from: string"),
            ),
            (
                "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string",
                Some("cannot convert int64 to string"),
            ),
            (
                "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type string",
                Some("unrecognized type: string"),
            ),
            (
                "json: cannot unmarshal object into Go struct field ObjectMeta.metadata.creationTimestamp of type v1.Time",
                None,
            ),
        ];
        for (json_error, want) in cases {
            assert_eq!(converter_error(json_error).as_deref(), want, "{json_error}");
        }
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
    #[test]
    fn yaml_first_document_comments_null_keys_depth() {
        let (v, _) = parse_yaml(b"a: 1\n---\nb: [\n").unwrap();
        assert_eq!(v, json!({"a": 1}));
        let (v, _) = parse_yaml(b"# c\n---\na: 1\n...\nzz: [\n").unwrap();
        assert_eq!(v, json!({"a": 1}));
        assert_eq!(parse_yaml(b"# only a comment\n").unwrap().0, Value::Null);
        assert_eq!(parse_yaml(b"~").unwrap().0, Value::Null);
        let e = parse_yaml(b"metadata:\n  labels: {~: b}\n").unwrap_err();
        assert_eq!(
            e.message,
            r#"unsupported map key of type: %!s(<nil>), key: <nil>, value: "b""#
        );
        let (v, _) = parse_yaml(b"{1: a, true: b}").unwrap();
        assert_eq!(v, json!({"1": "a", "true": "b"}));
        let nest = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert!(parse_yaml(nest(MAX_YAML_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse_yaml(nest(MAX_YAML_DEPTH + 1).as_bytes())
                .unwrap_err()
                .message,
            "error converting YAML to JSON: yaml: exceeded max depth of 128"
        );
    }

    #[test]
    fn bad_unicode_in_json_strings_is_replaced_as_go_does() {
        // Go 1.26 encoding/json (via the Go sample-apiserver): one U+FFFD per bad byte or escape.
        let body = b"{\"x\":\"a\xff\xe2\x82b\\ud800c\\udc00\\ud800\\u0041\\ud83d\\ude00\"}";
        let (v, _) = parse_json(body).unwrap();
        assert_eq!(
            v["x"],
            "a\u{fffd}\u{fffd}\u{fffd}b\u{fffd}c\u{fffd}\u{fffd}A\u{1f600}"
        );
        assert!(parse_json(b"{\"x\":\"\xff\"").is_err());
    }

    #[test]
    fn normalize_makes_go_zero_values() {
        let mut d = defs();
        d.insert(
            meta_schema::OWNER_REFERENCE.into(),
            json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "controller": {"type": "boolean"}}}),
        );
        d.insert(
            meta_schema::TIME.into(),
            json!({"type": "string", "format": "date-time"}),
        );
        if let Some(Value::Object(p)) = d
            .get_mut("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .and_then(|m| m.get_mut("properties"))
        {
            p.insert(
                "ownerReferences".into(),
                json!({"type": "array", "items": {"$ref": meta_schema::OWNER_REFERENCE}}),
            );
            p.insert(
                "creationTimestamp".into(),
                json!({"$ref": meta_schema::TIME}),
            );
            p.insert(
                "finalizers".into(),
                json!({"type": "array", "items": {"type": "string"}}),
            );
        }
        let mut obj = json!({
            "metadata": {"name": null, "labels": {"a": null, "b": "c"}, "finalizers": [null, "x"],
                "ownerReferences": [{"name": null, "controller": null}, null],
                "creationTimestamp": "2020-01-01T01:30:00.5+01:00"},
            "spec": {"reference": null, "count": 3},
        });
        normalize(&mut obj, &flunder_schema(), &d);
        assert_eq!(
            obj,
            json!({
                "metadata": {"labels": {"a": "", "b": "c"}, "finalizers": ["", "x"],
                    "ownerReferences": [{"name": ""}, {"name": ""}],
                    "creationTimestamp": "2020-01-01T00:30:00Z"},
                "spec": {"count": 3},
            })
        );
        let mut t = json!({"metadata": {"creationTimestamp": "garbage"}});
        let found = check_schema(&t, &flunder_schema(), &d);
        assert_eq!(
            found.type_errors,
            vec![
                r#"parsing time "garbage" as "2006-01-02T15:04:05Z07:00": cannot parse "garbage" as "2006""#
            ]
        );
        normalize(&mut t, &flunder_schema(), &d);
        let errs = type_errors(
            &json!({"metadata": {"ownerReferences": [{"name": 5}]}}),
            &flunder_schema(),
            &d,
        );
        assert!(
            errs[0].ends_with("OwnerReference.metadata.ownerReferences.name of type string"),
            "{errs:?}"
        );
    }

    #[test]
    fn fields_of_field_less_structs_are_declared_for_apply() {
        let found = check_schema(
            &json!({"status": {"x": 1}, "spec": {"foo": 1}}),
            &flunder_schema(),
            &defs(),
        );
        assert_eq!(found.unknown, vec!["spec.foo", "status.x"]);
        assert_eq!(found.undeclared().collect::<Vec<_>>(), vec!["spec.foo"]);
    }
}
