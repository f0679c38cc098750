//! A DeleteOptions request body decoded as Go's meta codecs decode it (handlers/delete.go:
//! `DecoderToVersion(...).Decode(body, &defaultGVK, options)`): apiVersion and kind read first,
//! then each field into its Go type. A value of the wrong JSON type is a 400 in encoding/json's
//! words, never silently dropped; unknown fields are ignored and names are case-sensitive
//! (sigs.k8s.io/json); `null` anywhere leaves a field unset; a repeated key's last value wins,
//! but a type error in an earlier one is still reported (Go reports its first type error).

use super::gofmt::Quoted;
use super::status::{ApiError, ApiResult};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// DeleteOptions' fields as Go's decoding leaves them, before ValidateDeleteOptions.
#[derive(Debug, Default, PartialEq)]
pub(super) struct RawDelete {
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub orphan: Option<bool>,
    /// Set, even to "", when given (Go's `*DeletionPropagation`).
    pub policy: Option<String>,
    pub dry_run: Vec<String>,
}

/// A DeleteOptions body and its format (the Content-Type picked it).
pub enum DeleteBody<'a> {
    Json(&'a [u8]),
    Yaml(&'a [u8]),
}

/// Decodes a non-empty body. Errors (all 400): a syntax error
/// (`couldn't get version/kind; json parse error: ...`), a non-object
/// (`... cannot unmarshal array into Go value of type struct { APIVersion ... }`), an apiVersion
/// that is no group/version (`unexpected GroupVersion string: a/b/c`), another kind
/// (`no kind "X" is registered for version "meta.k8s.io/v1" in scheme ...`), and the first
/// type error (`json: cannot unmarshal number into Go struct field Preconditions.preconditions.uid
/// of type types.UID`).
pub(super) fn decode(body: DeleteBody<'_>) -> ApiResult<RawDelete> {
    let top = match body {
        DeleteBody::Json(bytes) => {
            // As Go's encoding/json, bad Unicode in strings reads as U+FFFD.
            let parse = || {
                super::decode::with_bad_unicode_replaced(bytes, |bytes| {
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    let top = TopLevel::deserialize(&mut de)?;
                    de.end()?;
                    Ok::<_, serde_json::Error>(top)
                })
            };
            let parsed = if bytes.len() >= super::cpu::LARGE_BODY {
                super::cpu::cpu_bound(parse)
            } else {
                parse()
            };
            parsed.map_err(|e| {
                ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: {}",
                    super::decode::json_error_text(&e, bytes)
                ))
            })?
        }
        // Go converts YAML to JSON first; the converted document decodes the same way.
        DeleteBody::Yaml(bytes) => {
            let (v, _) = super::decode::parse_yaml(bytes)?;
            TopLevel::deserialize(v).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
    };
    let fields = match top {
        TopLevel::Null => return Ok(RawDelete::default()),
        TopLevel::Other(kind) => {
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: {}",
                super::decode::find_kind_type_error(kind)
            )));
        }
        TopLevel::Object(fields) => fields,
    };
    check_type_meta(&fields)?;
    let mut raw = RawDelete::default();
    let mut first_error = None;
    for (key, value) in &fields {
        if let Err(e) = raw.set(key, value) {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(ApiError::bad_request(e)),
        None => Ok(raw),
    }
}

/// Go's SimpleMetaFactory.Interpret and the scheme's kind lookup: apiVersion and kind must be
/// strings (the last of repeated keys counts), apiVersion a group/version, kind DeleteOptions or
/// unset (any group/version may carry it: per-group DeleteOptions are accepted).
fn check_type_meta(fields: &[(String, Value)]) -> ApiResult<()> {
    let mut api_version = String::new();
    let mut kind = String::new();
    for (key, value) in fields {
        let slot = match key.as_str() {
            "apiVersion" => &mut api_version,
            "kind" => &mut kind,
            _ => continue,
        };
        match value {
            Value::String(s) => *slot = s.clone(),
            Value::Null => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: json: cannot unmarshal {} into \
                     Go struct field .{key} of type string",
                    super::gofmt::json_kind(other)
                )));
            }
        }
    }
    if api_version.matches('/').count() > 1 {
        return Err(ApiError::bad_request(format!(
            "unexpected GroupVersion string: {api_version}"
        )));
    }
    if !kind.is_empty() && kind != "DeleteOptions" {
        let version = if api_version.is_empty() {
            "meta.k8s.io/v1"
        } else {
            &api_version
        };
        return Err(ApiError::bad_request(format!(
            "no kind {} is registered for version {} in scheme \"pkg/runtime/scheme.go:111\"",
            Quoted(&kind),
            Quoted(version)
        )));
    }
    Ok(())
}

/// encoding/json's UnmarshalTypeError text: `json: cannot unmarshal <what> into Go struct field
/// <Struct>.<path> of type <T>`.
fn type_error(value: &Value, go_struct: &str, path: &str, go_type: &str) -> String {
    let what = match value {
        // Go names the number when it fails to fit an integer type.
        Value::Number(n) if go_type == "int64" => format!("number {n}"),
        other => super::gofmt::json_kind(other).to_string(),
    };
    format!(
        "json: cannot unmarshal {what} into Go struct field {go_struct}.{path} of type {go_type}"
    )
}

impl RawDelete {
    /// Stores one top-level field of a DeleteOptions body, or says why its JSON type is not the
    /// Go field's. Unknown keys (and kind/apiVersion, read before) are ignored.
    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        const S: &str = "DeleteOptions";
        let string = |go_type: &str| match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(type_error(other, S, key, go_type)),
        };
        let boolean = || match value {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(type_error(other, S, key, "bool")),
        };
        match key {
            "gracePeriodSeconds" => {
                self.grace_period_seconds = match value {
                    Value::Null => None,
                    Value::Number(n) if n.is_i64() => n.as_i64(),
                    // `-0` (serde_json reads it as a float; Go's ParseInt takes it).
                    Value::Number(n) if n.as_f64() == Some(0.0) => Some(0),
                    other => return Err(type_error(other, S, key, "int64")),
                }
            }
            "orphanDependents" => self.orphan = boolean()?,
            // Read and validated, then dropped: Go does the same while the
            // AllowUnsafeMalformedObjectDeletion feature is off.
            "ignoreStoreReadErrorWithClusterBreakingPotential" => {
                boolean()?;
            }
            "propagationPolicy" => self.policy = string("v1.DeletionPropagation")?,
            "dryRun" => {
                self.dry_run = match value {
                    Value::Null => Vec::new(),
                    Value::Array(items) => {
                        let mut out = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                // null in a []string is the zero value.
                                Value::Null => out.push(String::new()),
                                Value::String(s) => out.push(s.clone()),
                                other => return Err(type_error(other, S, key, "string")),
                            }
                        }
                        out
                    }
                    other => return Err(type_error(other, S, key, "[]string")),
                }
            }
            "preconditions" => match value {
                Value::Null => {
                    self.uid = None;
                    self.resource_version = None;
                }
                Value::Object(p) => {
                    for (k, v) in p {
                        let (slot, go_type) = match k.as_str() {
                            "uid" => (&mut self.uid, "types.UID"),
                            "resourceVersion" => (&mut self.resource_version, "string"),
                            _ => continue,
                        };
                        *slot = match v {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => {
                                let path = format!("preconditions.{k}");
                                return Err(type_error(other, "Preconditions", &path, go_type));
                            }
                        };
                    }
                }
                other => return Err(type_error(other, S, key, "v1.Preconditions")),
            },
            _ => {}
        }
        Ok(())
    }
}

/// A body's top level: its keys in document order (so the first type error is Go's first), or
/// `null`, or the JSON type of anything else.
enum TopLevel {
    Null,
    Object(Vec<(String, Value)>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DeleteOptions object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("bool"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other("array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            fields.push((k, v));
        }
        Ok(TopLevel::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> ApiResult<RawDelete> {
        decode(DeleteBody::Json(body.as_bytes()))
    }

    /// Bad Unicode in a string reads as U+FFFD, as Go's encoding/json has it (Go then
    /// refuses the dry-run value `["\u{fffd}"]` as unsupported: ValidateDeleteOptions).
    #[test]
    fn bad_unicode_reads_as_replacement_characters() {
        let raw = json(r#"{"dryRun":["\ud800"]}"#).expect("decodes");
        assert_eq!(raw.dry_run, vec!["\u{fffd}".to_string()]);
        let raw = decode(DeleteBody::Json(b"{\"dryRun\":[\"a\xffb\"]}")).expect("decodes");
        assert_eq!(raw.dry_run, vec!["a\u{fffd}b".to_string()]);
    }

    /// Each message is what the Go sample-apiserver answered for the same body.
    #[test]
    fn wrong_types_are_gos_400s() {
        for (body, want) in [
            (
                r#"{"dryRun":"All"}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string",
            ),
            (
                r#"{"dryRun":[5]}"#,
                "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type string",
            ),
            (
                r#"{"preconditions":{"uid":5}}"#,
                "json: cannot unmarshal number into Go struct field Preconditions.preconditions.uid of type types.UID",
            ),
            (
                r#"{"preconditions":{"resourceVersion":5}}"#,
                "json: cannot unmarshal number into Go struct field Preconditions.preconditions.resourceVersion of type string",
            ),
            (
                r#"{"preconditions":"x"}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.preconditions of type v1.Preconditions",
            ),
            (
                r#"{"preconditions":[]}"#,
                "json: cannot unmarshal array into Go struct field DeleteOptions.preconditions of type v1.Preconditions",
            ),
            (
                r#"{"gracePeriodSeconds":"x"}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
            ),
            (
                r#"{"gracePeriodSeconds":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
            ),
            // (Go quotes the literal, 99999999999999999999; serde_json keeps only the float.)
            (
                r#"{"gracePeriodSeconds":99999999999999999999}"#,
                "json: cannot unmarshal number 1e+20 into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
            ),
            (
                r#"{"propagationPolicy":5}"#,
                "json: cannot unmarshal number into Go struct field DeleteOptions.propagationPolicy of type v1.DeletionPropagation",
            ),
            (
                r#"{"orphanDependents":"x"}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.orphanDependents of type bool",
            ),
            (
                r#"{"ignoreStoreReadErrorWithClusterBreakingPotential":"x"}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential of type bool",
            ),
            // The first type error in document order, even when a later repeat is right.
            (
                r#"{"gracePeriodSeconds":"x","dryRun":"All"}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
            ),
            (
                r#"{"dryRun":"All","dryRun":["All"]}"#,
                "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string",
            ),
            (
                r#"{"kind":5,"dryRun":"All"}"#,
                "couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string",
            ),
            (
                r#"{"kind":"Flunder"}"#,
                r#"no kind "Flunder" is registered for version "meta.k8s.io/v1" in scheme "pkg/runtime/scheme.go:111""#,
            ),
            (
                r#"{"apiVersion":"a/b/c","kind":"DeleteOptions"}"#,
                "unexpected GroupVersion string: a/b/c",
            ),
            (
                " ",
                "couldn't get version/kind; json parse error: unexpected end of JSON input",
            ),
            (
                "[]",
                "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }",
            ),
        ] {
            let e = json(body).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (400, want), "{body}");
        }
    }

    #[test]
    fn right_types_decode() {
        assert_eq!(json("null").unwrap(), RawDelete::default());
        let r = json(
            r#"{"apiVersion":"wardle.example.com/v1alpha1","kind":"DeleteOptions","DryRun":5,
                "dryRun":[null,"All"],"gracePeriodSeconds":-0,"propagationPolicy":"",
                "preconditions":{"uid":"u","resourceVersion":null},"unknown":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(r.dry_run, ["", "All"]);
        assert_eq!(r.grace_period_seconds, Some(0));
        assert_eq!(r.policy.as_deref(), Some(""));
        assert_eq!((r.uid.as_deref(), r.resource_version), (Some("u"), None));
        let y = decode(DeleteBody::Yaml(b"dryRun: [All]\ngracePeriodSeconds: 5\n")).unwrap();
        assert_eq!(
            (y.dry_run, y.grace_period_seconds),
            (vec!["All".into()], Some(5))
        );
        let e = decode(DeleteBody::Yaml(b"dryRun: All\n")).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            decode(DeleteBody::Yaml(b"# nothing\n")).unwrap(),
            RawDelete::default()
        );
    }
}
