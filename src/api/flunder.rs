//! Flunder (namespaced, v1alpha1 + v1beta1): conversion, defaulting, validation, columns.
//!
//! Hub (internal) spec: `{flunderReference, fischerReference, referenceType}` — the v1beta1 shape.
//! v1alpha1 spec: `{reference, referenceType}`; `reference` means whichever kind `referenceType` names.
//! Storage version: v1alpha1 (as in Go, so storageVersionHash matches), lossless for valid objects.

use super::{Column, KindDecl, Resource, VersionDecl};
use crate::apimachinery::status::FieldError;
use serde_json::{Map, Value, json};

pub struct Flunder;

const FLUNDER: &str = "Flunder";
const FISCHER: &str = "Fischer";

static DECL: KindDecl = KindDecl {
    kind: FLUNDER,
    plural: "flunders",
    singular: "flunder",
    namespaced: true,
    versions: &[
        VersionDecl {
            name: "v1beta1",
            deprecation_warning: None,
        },
        VersionDecl {
            name: "v1alpha1",
            deprecation_warning: Some(
                "wardle.example.com/v1alpha1 Flunder is deprecated in v1.3+, unavailable in v1.10+",
            ),
        },
    ],
    // As in Go, so storageVersionHash matches.
    storage_version: "v1alpha1",
    description: "Flunder is an example namespaced resource that may refer to another Flunder or to a Fischer.",
};

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    let mut v = obj;
    for p in path {
        match v.get(p) {
            Some(x) => v = x,
            None => return "",
        }
    }
    v.as_str().unwrap_or("")
}

fn put(spec: &mut Map<String, Value>, key: &str, val: &str) {
    if !val.is_empty() {
        spec.insert(key.into(), json!(val));
    }
}

/// Rebuild an object around a new spec: metadata kept, status always present (Go emits `status:{}`).
fn with_spec(mut obj: Value, spec: Map<String, Value>) -> Value {
    let map = obj.as_object_mut().expect("objects are JSON objects");
    let status = map.remove("status").unwrap_or_else(|| json!({}));
    map.insert("spec".into(), Value::Object(spec));
    map.insert(
        "status".into(),
        if status.is_object() {
            status
        } else {
            json!({})
        },
    );
    obj
}

impl Resource for Flunder {
    fn decl(&self) -> &'static KindDecl {
        &DECL
    }

    fn properties(&self, version: &str) -> Value {
        let ref_type = json!({
            "type": "string",
            "description": "referenceType is the type of the referenced object: Flunder or Fischer.",
            "enum": [FLUNDER, FISCHER],
        });
        let spec_props = if version == "v1alpha1" {
            json!({
                "reference": {"type": "string", "description": "reference is the name of a Flunder in the same namespace or of a Fischer, depending on referenceType."},
                "referenceType": ref_type,
            })
        } else {
            json!({
                "flunderReference": {"type": "string", "description": "flunderReference is the name of a Flunder in the same namespace. Set only if referenceType is Flunder."},
                "fischerReference": {"type": "string", "description": "fischerReference is the name of a Fischer. Set only if referenceType is Fischer."},
                "referenceType": ref_type,
            })
        };
        json!({
            "spec": {"type": "object", "description": "spec is what the Flunder refers to.", "properties": spec_props},
            "status": {"type": "object", "description": "status of the Flunder (no fields yet)."},
        })
    }

    fn default(&self, version: &str, obj: &mut Value) {
        // v1alpha1: a reference without a type refers to a Flunder (SA v1alpha1/defaults.go).
        if version == "v1alpha1"
            && !str_at(obj, &["spec", "reference"]).is_empty()
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            let unset = spec
                .get("referenceType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
            if unset {
                spec.insert("referenceType".into(), json!(FLUNDER));
            }
        }
    }

    fn validate_versioned(&self, version: &str, obj: &Value) -> Vec<FieldError> {
        // Go's v1alpha1 conversion silently drops an unknown referenceType together with the
        // reference; we reject it instead so no data is lost (README: deviations).
        let t = str_at(obj, &["spec", "referenceType"]);
        if version == "v1alpha1" && !t.is_empty() && t != FLUNDER && t != FISCHER {
            return vec![
                FieldError::invalid("spec.referenceType", t, "must be Flunder or Fischer")
                    .of_named_type(),
            ];
        }
        Vec::new()
    }

    fn body_to_hub(&self, version: &str, obj: Value) -> Value {
        let mut spec = Map::new();
        let t = str_at(&obj, &["spec", "referenceType"]).to_string();
        if version == "v1alpha1" {
            let reference = str_at(&obj, &["spec", "reference"]).to_string();
            match t.as_str() {
                FLUNDER => put(&mut spec, "flunderReference", &reference),
                FISCHER => put(&mut spec, "fischerReference", &reference),
                _ => {}
            }
            if t == FLUNDER || t == FISCHER {
                put(&mut spec, "referenceType", &t);
            }
        } else {
            put(
                &mut spec,
                "flunderReference",
                str_at(&obj, &["spec", "flunderReference"]),
            );
            put(
                &mut spec,
                "fischerReference",
                str_at(&obj, &["spec", "fischerReference"]),
            );
            put(&mut spec, "referenceType", &t);
        }
        with_spec(obj, spec)
    }

    fn body_from_hub(&self, version: &str, hub: Value) -> Value {
        let mut spec = Map::new();
        let t = str_at(&hub, &["spec", "referenceType"]).to_string();
        if version == "v1alpha1" {
            let reference = match t.as_str() {
                FLUNDER => str_at(&hub, &["spec", "flunderReference"]),
                FISCHER => str_at(&hub, &["spec", "fischerReference"]),
                _ => "",
            }
            .to_string();
            put(&mut spec, "reference", &reference);
        } else {
            put(
                &mut spec,
                "flunderReference",
                str_at(&hub, &["spec", "flunderReference"]),
            );
            put(
                &mut spec,
                "fischerReference",
                str_at(&hub, &["spec", "fischerReference"]),
            );
        }
        put(&mut spec, "referenceType", &t);
        with_spec(hub, spec)
    }

    fn validate(&self, hub: &Value) -> Vec<FieldError> {
        let flunder = str_at(hub, &["spec", "flunderReference"]);
        let fischer = str_at(hub, &["spec", "fischerReference"]);
        let t = str_at(hub, &["spec", "referenceType"]);
        let mut errs = Vec::new();
        // The first matching rule of Go's if/else chain (SA validation.go), then the type check.
        if !flunder.is_empty() && !fischer.is_empty() {
            errs.push(FieldError::invalid(
                "spec.fischerReference",
                fischer,
                "cannot be set with flunderReference at the same time",
            ));
        } else if !flunder.is_empty() && t != FLUNDER {
            errs.push(FieldError::invalid(
                "spec.flunderReference",
                flunder,
                "cannot be set if referenceType is not Flunder",
            ));
        } else if !fischer.is_empty() && t != FISCHER {
            errs.push(FieldError::invalid(
                "spec.fischerReference",
                fischer,
                "cannot be set if referenceType is not Fischer",
            ));
        } else if fischer.is_empty() && t == FISCHER {
            errs.push(FieldError::invalid(
                "spec.fischerReference",
                fischer,
                "cannot be empty if referenceType is Fischer",
            ));
        } else if flunder.is_empty() && t == FLUNDER {
            errs.push(FieldError::invalid(
                "spec.flunderReference",
                flunder,
                "cannot be empty if referenceType is Flunder",
            ));
        }
        if !t.is_empty() && t != FLUNDER && t != FISCHER {
            errs.push(
                FieldError::invalid("spec.referenceType", t, "must be Flunder or Fischer")
                    .of_named_type(),
            );
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column {
                name: "Reference Type",
                type_: "string",
                format: "",
                description: "The kind of the referenced object: Flunder or Fischer.",
                priority: 0,
            },
            Column {
                name: "Reference",
                type_: "string",
                format: "",
                description: "The name of the referenced Flunder (same namespace) or Fischer.",
                priority: 0,
            },
            super::managers_column(),
        ]
    }

    fn cells(&self, hub: &Value) -> Vec<Value> {
        let t = str_at(hub, &["spec", "referenceType"]);
        let r = match t {
            FISCHER => str_at(hub, &["spec", "fischerReference"]),
            _ => str_at(hub, &["spec", "flunderReference"]),
        };
        let show = |s: &str| {
            if s.is_empty() {
                json!("<none>")
            } else {
                json!(s)
            }
        };
        vec![show(t), show(r), super::managers_cell(hub)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(spec: Value) -> Value {
        json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": "x"}, "spec": spec})
    }

    #[test]
    fn v1alpha1_defaulting_and_roundtrip() {
        let mut o = obj(json!({"reference": "a"}));
        Flunder.default("v1alpha1", &mut o);
        assert_eq!(o["spec"]["referenceType"], "Flunder");
        let hub = Flunder.to_hub("v1alpha1", o);
        assert_eq!(
            hub["spec"],
            json!({"flunderReference": "a", "referenceType": "Flunder"})
        );
        let beta = Flunder.hub_to_version("v1beta1", hub.clone());
        assert_eq!(beta["apiVersion"], "wardle.example.com/v1beta1");
        assert_eq!(
            beta["spec"],
            json!({"flunderReference": "a", "referenceType": "Flunder"})
        );
        assert_eq!(beta["status"], json!({}));
        let alpha = Flunder.hub_to_version("v1alpha1", Flunder.to_hub("v1beta1", beta));
        assert_eq!(
            alpha["spec"],
            json!({"reference": "a", "referenceType": "Flunder"})
        );
    }

    #[test]
    fn fischer_reference_converts_both_ways() {
        let b = json!({"metadata": {"name": "x"}, "spec": {"fischerReference": "f", "referenceType": "Fischer"}});
        let hub = Flunder.to_hub("v1beta1", b);
        let a = Flunder.hub_to_version("v1alpha1", hub);
        assert_eq!(
            a["spec"],
            json!({"reference": "f", "referenceType": "Fischer"})
        );
        let back = Flunder.hub_to_version("v1beta1", Flunder.to_hub("v1alpha1", a));
        assert_eq!(
            back["spec"],
            json!({"fischerReference": "f", "referenceType": "Fischer"})
        );
    }

    #[test]
    fn validation_rules_in_go_order() {
        let v = |spec: Value| {
            Flunder
                .validate(&json!({"spec": spec}))
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            v(
                json!({"flunderReference": "a", "fischerReference": "b", "referenceType": "Flunder"})
            ),
            vec![
                r#"spec.fischerReference: Invalid value: "b": cannot be set with flunderReference at the same time"#
            ]
        );
        assert_eq!(
            v(json!({"flunderReference": "a"})),
            vec![
                r#"spec.flunderReference: Invalid value: "a": cannot be set if referenceType is not Flunder"#
            ]
        );
        assert_eq!(
            v(json!({"fischerReference": "a", "referenceType": "Flunder"})),
            vec![
                r#"spec.fischerReference: Invalid value: "a": cannot be set if referenceType is not Fischer"#
            ]
        );
        assert_eq!(
            v(json!({"referenceType": "Fischer"})),
            vec![
                r#"spec.fischerReference: Invalid value: "": cannot be empty if referenceType is Fischer"#
            ]
        );
        assert_eq!(
            v(json!({"referenceType": "Flunder"})),
            vec![
                r#"spec.flunderReference: Invalid value: "": cannot be empty if referenceType is Flunder"#
            ]
        );
        assert_eq!(
            v(json!({"referenceType": "Foo"})),
            vec![r#"spec.referenceType: Invalid value: "Foo": must be Flunder or Fischer"#]
        );
        assert!(v(json!({})).is_empty());
        assert!(v(json!({"fischerReference": "f", "referenceType": "Fischer"})).is_empty());
    }

    #[test]
    fn v1alpha1_unknown_type_is_rejected_not_dropped() {
        let errs = Flunder.validate_versioned(
            "v1alpha1",
            &obj(json!({"reference": "a", "referenceType": "Foo"})),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.referenceType");
    }
}
