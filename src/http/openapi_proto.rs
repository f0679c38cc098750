//! The OpenAPI v2 document as gnostic's protobuf (`openapi.v2.Document` of
//! github.com/google/gnostic-models `openapiv2/OpenAPIv2.proto`), which kube-openapi serves for
//! `Accept: application/com.github.proto-openapi.spec.v2[@.]v1.0+protobuf` and which
//! `kubectl explain --output plaintext-openapiv2` (client-go's `OpenAPISchema()`) reads.
//!
//! The messages are the subset of OpenAPIv2.proto a Kubernetes document uses, declared with
//! prost's derive (field numbers as in the .proto). `document` mirrors gnostic's
//! `ParseDocument`: map entries in document order, `x-` keys as vendor extensions whose value
//! is YAML text (JSON, which is YAML), `type` and `items` as lists.

use prost::Message;
use serde_json::{Map, Value};

/// gnostic's `Named<X>` message: one entry of a map kept in document order (`name` = 1,
/// `value` = 2).
macro_rules! named {
    ($name:ident, $value:ty) => {
        #[derive(Clone, PartialEq, Message)]
        pub struct $name {
            #[prost(string, tag = "1")]
            pub name: String,
            #[prost(message, optional, tag = "2")]
            pub value: Option<$value>,
        }
    };
}

/// gnostic's map message: its entries (`Named<X>`) in document order (`additional_properties`
/// = 1).
macro_rules! map {
    ($name:ident, $entry:ty) => {
        #[derive(Clone, PartialEq, Message)]
        pub struct $name {
            #[prost(message, repeated, tag = "1")]
            pub additional_properties: Vec<$entry>,
        }
    };
}

#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, tag = "3")]
    pub host: String,
    #[prost(string, tag = "4")]
    pub base_path: String,
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, optional, tag = "10")]
    pub parameters: Option<ParameterDefinitions>,
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    #[prost(message, optional, tag = "13")]
    pub security_definitions: Option<SecurityDefinitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A value gnostic keeps as YAML text.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

named!(NamedAny, Any);

#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

named!(NamedPathItem, PathItem);

#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct JsonReference {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    #[prost(oneof = "ParameterOrRef", tags = "1, 2")]
    pub oneof: Option<ParameterOrRef>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterOrRef {
    #[prost(message, tag = "1")]
    Parameter(Parameter),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    pub oneof: Option<ParameterKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterKind {
    #[prost(message, tag = "1")]
    BodyParameter(Box<BodyParameter>),
    #[prost(message, tag = "2")]
    NonBodyParameter(Box<NonBodyParameter>),
}

#[derive(Clone, PartialEq, Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyKind", tags = "1, 2, 3, 4")]
    pub oneof: Option<NonBodyKind>,
}

/// header and path parameters share one field layout, query and formData another.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyKind {
    #[prost(message, tag = "1")]
    Header(PathLikeParameter),
    #[prost(message, tag = "2")]
    FormData(QueryLikeParameter),
    #[prost(message, tag = "3")]
    Query(QueryLikeParameter),
    #[prost(message, tag = "4")]
    Path(PathLikeParameter),
}

/// QueryParameterSubSchema / FormDataParameterSubSchema (the fields used by Kubernetes).
#[derive(Clone, PartialEq, Message)]
pub struct QueryLikeParameter {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(bool, tag = "5")]
    pub allow_empty_value: bool,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(string, tag = "7")]
    pub format: String,
    #[prost(string, tag = "9")]
    pub collection_format: String,
    #[prost(message, optional, tag = "10")]
    pub default: Option<Any>,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
    #[prost(message, repeated, tag = "21")]
    pub r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "23")]
    pub vendor_extension: Vec<NamedAny>,
}

/// PathParameterSubSchema / HeaderParameterSubSchema (the fields used by Kubernetes).
#[derive(Clone, PartialEq, Message)]
pub struct PathLikeParameter {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub r#type: String,
    #[prost(string, tag = "6")]
    pub format: String,
    #[prost(string, tag = "8")]
    pub collection_format: String,
    #[prost(message, optional, tag = "9")]
    pub default: Option<Any>,
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "22")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

named!(NamedResponseValue, ResponseValue);

#[derive(Clone, PartialEq, Message)]
pub struct ResponseValue {
    #[prost(oneof = "ResponseOrRef", tags = "1, 2")]
    pub oneof: Option<ResponseOrRef>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseOrRef {
    #[prost(message, tag = "1")]
    Response(Response),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SchemaItem {
    #[prost(oneof = "SchemaOrFile", tags = "1")]
    pub oneof: Option<SchemaOrFile>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaOrFile {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
}

#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "SchemaOrBool", tags = "1, 2")]
    pub oneof: Option<SchemaOrBool>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaOrBool {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

map!(Properties, NamedSchema);

map!(Definitions, NamedSchema);

named!(NamedSchema, Schema);

map!(ParameterDefinitions, NamedParameter);

named!(NamedParameter, Parameter);

map!(SecurityDefinitions, NamedSecurityDefinitionsItem);

named!(NamedSecurityDefinitionsItem, SecurityDefinitionsItem);

#[derive(Clone, PartialEq, Message)]
pub struct SecurityDefinitionsItem {
    #[prost(oneof = "SecurityScheme", tags = "1, 2")]
    pub oneof: Option<SecurityScheme>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SecurityScheme {
    #[prost(message, tag = "1")]
    Basic(BasicAuthenticationSecurity),
    #[prost(message, tag = "2")]
    ApiKey(ApiKeySecurity),
}

#[derive(Clone, PartialEq, Message)]
pub struct BasicAuthenticationSecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ApiKeySecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

map!(SecurityRequirement, NamedStringArray);

named!(NamedStringArray, StringArray);

#[derive(Clone, PartialEq, Message)]
pub struct StringArray {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// JSON → messages (gnostic's ParseDocument for the parts a Kubernetes document has).

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn float(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn entries(v: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    v.and_then(Value::as_object).into_iter().flat_map(Map::iter)
}

/// A value as gnostic keeps it: YAML text (JSON is YAML).
fn any(v: &Value) -> Any {
    Any {
        yaml: format!("{v}\n"),
    }
}

fn opt_any(v: &Value, key: &str) -> Option<Any> {
    v.get(key).map(any)
}

fn anys(v: &Value, key: &str) -> Vec<Any> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(any).collect())
        .unwrap_or_default()
}

/// The `x-` keys of an object, as vendor extensions.
fn extensions(v: &Value) -> Vec<NamedAny> {
    entries(Some(v))
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn schema(v: &Value) -> Schema {
    let type_ = match v.get("type") {
        Some(Value::String(t)) => Some(TypeItem {
            value: vec![t.clone()],
        }),
        Some(Value::Array(_)) => Some(TypeItem {
            value: strings(v, "type"),
        }),
        _ => None,
    };
    let items = match v.get("items") {
        Some(Value::Array(a)) => Some(ItemsItem {
            schema: a.iter().map(schema).collect(),
        }),
        Some(one @ Value::Object(_)) => Some(ItemsItem {
            schema: vec![schema(one)],
        }),
        _ => None,
    };
    let additional_properties = match v.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(SchemaOrBool::Boolean(*b)),
        Some(s @ Value::Object(_)) => Some(SchemaOrBool::Schema(Box::new(schema(s)))),
        _ => None,
    }
    .map(|o| Box::new(AdditionalPropertiesItem { oneof: Some(o) }));
    Schema {
        r#ref: text(v, "$ref"),
        format: text(v, "format"),
        title: text(v, "title"),
        description: text(v, "description"),
        default: opt_any(v, "default"),
        maximum: float(v, "maximum"),
        minimum: float(v, "minimum"),
        max_length: int(v, "maxLength"),
        min_length: int(v, "minLength"),
        pattern: text(v, "pattern"),
        max_items: int(v, "maxItems"),
        min_items: int(v, "minItems"),
        unique_items: flag(v, "uniqueItems"),
        required: strings(v, "required"),
        r#enum: anys(v, "enum"),
        additional_properties,
        r#type: type_,
        items,
        all_of: v
            .get("allOf")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(schema).collect())
            .unwrap_or_default(),
        properties: v.get("properties").map(|p| Properties {
            additional_properties: named_schemas(Some(p)),
        }),
        read_only: flag(v, "readOnly"),
        example: opt_any(v, "example"),
        vendor_extension: extensions(v),
    }
}

fn named_schemas(v: Option<&Value>) -> Vec<NamedSchema> {
    entries(v)
        .map(|(k, s)| NamedSchema {
            name: k.clone(),
            value: Some(schema(s)),
        })
        .collect()
}

fn parameter(v: &Value) -> Parameter {
    let kind = if v.get("in").and_then(Value::as_str) == Some("body") {
        ParameterKind::BodyParameter(Box::new(BodyParameter {
            description: text(v, "description"),
            name: text(v, "name"),
            r#in: text(v, "in"),
            required: flag(v, "required"),
            schema: v.get("schema").map(schema),
            vendor_extension: extensions(v),
        }))
    } else {
        let query_like = || QueryLikeParameter {
            required: flag(v, "required"),
            r#in: text(v, "in"),
            description: text(v, "description"),
            name: text(v, "name"),
            allow_empty_value: flag(v, "allowEmptyValue"),
            r#type: text(v, "type"),
            format: text(v, "format"),
            collection_format: text(v, "collectionFormat"),
            default: opt_any(v, "default"),
            unique_items: flag(v, "uniqueItems"),
            r#enum: anys(v, "enum"),
            vendor_extension: extensions(v),
        };
        let path_like = || PathLikeParameter {
            required: flag(v, "required"),
            r#in: text(v, "in"),
            description: text(v, "description"),
            name: text(v, "name"),
            r#type: text(v, "type"),
            format: text(v, "format"),
            collection_format: text(v, "collectionFormat"),
            default: opt_any(v, "default"),
            unique_items: flag(v, "uniqueItems"),
            r#enum: anys(v, "enum"),
            vendor_extension: extensions(v),
        };
        let sub = match v.get("in").and_then(Value::as_str) {
            Some("header") => NonBodyKind::Header(path_like()),
            Some("formData") => NonBodyKind::FormData(query_like()),
            Some("path") => NonBodyKind::Path(path_like()),
            _ => NonBodyKind::Query(query_like()),
        };
        ParameterKind::NonBodyParameter(Box::new(NonBodyParameter { oneof: Some(sub) }))
    };
    Parameter { oneof: Some(kind) }
}

fn json_reference(v: &Value) -> Option<JsonReference> {
    v.get("$ref").map(|_| JsonReference {
        r#ref: text(v, "$ref"),
        description: text(v, "description"),
    })
}

fn parameters(v: &Value) -> Vec<ParametersItem> {
    v.get("parameters")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| ParametersItem {
                    oneof: Some(match json_reference(p) {
                        Some(r) => ParameterOrRef::JsonReference(r),
                        None => ParameterOrRef::Parameter(parameter(p)),
                    }),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn operation(v: &Value) -> Operation {
    let responses = v.get("responses").map(|r| Responses {
        response_code: entries(Some(r))
            .filter(|(k, _)| !k.starts_with("x-"))
            .map(|(code, resp)| NamedResponseValue {
                name: code.clone(),
                value: Some(ResponseValue {
                    oneof: Some(match json_reference(resp) {
                        Some(r) => ResponseOrRef::JsonReference(r),
                        None => ResponseOrRef::Response(Response {
                            description: text(resp, "description"),
                            schema: resp.get("schema").map(|s| SchemaItem {
                                oneof: Some(SchemaOrFile::Schema(Box::new(schema(s)))),
                            }),
                            vendor_extension: extensions(resp),
                        }),
                    }),
                }),
            })
            .collect(),
        vendor_extension: extensions(r),
    });
    Operation {
        tags: strings(v, "tags"),
        summary: text(v, "summary"),
        description: text(v, "description"),
        operation_id: text(v, "operationId"),
        produces: strings(v, "produces"),
        consumes: strings(v, "consumes"),
        parameters: parameters(v),
        responses,
        schemes: strings(v, "schemes"),
        deprecated: flag(v, "deprecated"),
        vendor_extension: extensions(v),
    }
}

fn path_item(v: &Value) -> PathItem {
    let op = |m: &str| v.get(m).map(operation);
    PathItem {
        r#ref: text(v, "$ref"),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(v),
        vendor_extension: extensions(v),
    }
}

fn security_definitions(v: &Value) -> SecurityDefinitions {
    SecurityDefinitions {
        additional_properties: entries(Some(v))
            .map(|(name, d)| {
                let scheme = if d.get("type").and_then(Value::as_str) == Some("basic") {
                    SecurityScheme::Basic(BasicAuthenticationSecurity {
                        r#type: text(d, "type"),
                        description: text(d, "description"),
                        vendor_extension: extensions(d),
                    })
                } else {
                    SecurityScheme::ApiKey(ApiKeySecurity {
                        r#type: text(d, "type"),
                        name: text(d, "name"),
                        r#in: text(d, "in"),
                        description: text(d, "description"),
                        vendor_extension: extensions(d),
                    })
                };
                NamedSecurityDefinitionsItem {
                    name: name.clone(),
                    value: Some(SecurityDefinitionsItem {
                        oneof: Some(scheme),
                    }),
                }
            })
            .collect(),
    }
}

/// The document as gnostic parses a Swagger 2.0 JSON document.
pub fn document(v: &Value) -> Document {
    Document {
        swagger: text(v, "swagger"),
        info: v.get("info").map(|i| Info {
            title: text(i, "title"),
            version: text(i, "version"),
            description: text(i, "description"),
            vendor_extension: extensions(i),
        }),
        host: text(v, "host"),
        base_path: text(v, "basePath"),
        schemes: strings(v, "schemes"),
        consumes: strings(v, "consumes"),
        produces: strings(v, "produces"),
        paths: v.get("paths").map(|p| Paths {
            vendor_extension: extensions(p),
            path: entries(Some(p))
                .filter(|(k, _)| !k.starts_with("x-"))
                .map(|(k, item)| NamedPathItem {
                    name: k.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
        }),
        definitions: v.get("definitions").map(|d| Definitions {
            additional_properties: named_schemas(Some(d)),
        }),
        parameters: v.get("parameters").map(|p| ParameterDefinitions {
            additional_properties: entries(Some(p))
                .map(|(k, param)| NamedParameter {
                    name: k.clone(),
                    value: Some(parameter(param)),
                })
                .collect(),
        }),
        security: v
            .get("security")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|req| SecurityRequirement {
                        additional_properties: entries(Some(req))
                            .map(|(k, scopes)| NamedStringArray {
                                name: k.clone(),
                                value: Some(StringArray {
                                    value: scopes
                                        .as_array()
                                        .map(|s| {
                                            s.iter()
                                                .filter_map(|x| x.as_str().map(str::to_string))
                                                .collect()
                                        })
                                        .unwrap_or_default(),
                                }),
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        security_definitions: v.get("securityDefinitions").map(security_definitions),
        vendor_extension: extensions(v),
    }
}

/// The protobuf bytes of a Swagger 2.0 JSON document.
pub fn encode(v: &Value) -> Vec<u8> {
    document(v).encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_the_parts_kubectl_reads() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Wardle", "version": "0.1"},
            "paths": {"/apis/g/v1/things/{name}": {
                "get": {"operationId": "readThing", "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/T"}}},
                        "x-kubernetes-action": "get"},
                "parameters": [{"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true},
                               {"$ref": "#/parameters/pretty"}]}},
            "definitions": {"T": {"type": "object", "required": ["spec"],
                "properties": {"spec": {"type": "string", "description": "d"},
                               "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                               "list": {"type": "array", "items": {"$ref": "#/definitions/T"}}},
                "x-kubernetes-group-version-kind": [{"group": "g", "kind": "T", "version": "v1"}]}},
            "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
            "security": [{"BearerToken": []}],
        });
        let bytes = encode(&doc);
        let back = Document::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, document(&doc));
        assert_eq!(back.swagger, "2.0");
        let def = &back.definitions.as_ref().unwrap().additional_properties[0];
        assert_eq!(def.name, "T");
        let t = def.value.as_ref().unwrap();
        assert_eq!(t.r#type.as_ref().unwrap().value, ["object"]);
        assert_eq!(t.required, ["spec"]);
        let gvk = &t.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        let yaml: Value = serde_saphyr::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(yaml, json!([{"group": "g", "kind": "T", "version": "v1"}]));
        let props = &t.properties.as_ref().unwrap().additional_properties;
        assert_eq!(
            props.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["labels", "list", "spec"]
        );
        let labels = props[0].value.as_ref().unwrap();
        match labels
            .additional_properties
            .as_deref()
            .and_then(|a| a.oneof.as_ref())
        {
            Some(SchemaOrBool::Schema(s)) => assert_eq!(s.default.as_ref().unwrap().yaml, "\"\"\n"),
            other => panic!("{other:?}"),
        }
        let list = props[1].value.as_ref().unwrap();
        assert_eq!(
            list.items.as_ref().unwrap().schema[0].r#ref,
            "#/definitions/T"
        );
        let path = &back.paths.as_ref().unwrap().path[0];
        let item = path.value.as_ref().unwrap();
        assert_eq!(item.get.as_ref().unwrap().operation_id, "readThing");
        assert!(matches!(
            item.parameters[1].oneof,
            Some(ParameterOrRef::JsonReference(_))
        ));
        assert!(matches!(
            back.security_definitions
                .as_ref()
                .unwrap()
                .additional_properties[0]
                .value
                .as_ref()
                .unwrap()
                .oneof,
            Some(SecurityScheme::ApiKey(_))
        ));
    }
}
