//! OpenAPI schemas of the meta.k8s.io types every kind refers to (ObjectMeta, ListMeta, Status, ...).
//! References are written as `{"$ref": "<definition name>"}`; the OpenAPI builder rewrites them
//! to `#/definitions/...` (v2) or `#/components/schemas/...` (v3).

use serde_json::{Value, json};

pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

pub fn object_meta_ref() -> Value {
    json!({"$ref": OBJECT_META, "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"})
}

pub fn api_version_prop() -> Value {
    json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"})
}

pub fn kind_prop() -> Value {
    json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"})
}
