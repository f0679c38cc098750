//! The one error type of the server (`ApiError`) and its Kubernetes `Status` form.
//! Every failure on the request path ends up here; `http::response` turns it into a response.

use super::gofmt::{Quoted, go_quote};
use super::verb::Verb;
use crate::storage::types::{MAX_OBJECT_BYTES, StorageError};
use serde_json::{Value, json};

/// Group + resource, e.g. `flunders.wardle.example.com`; the prefix of most Status messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        qualified(f, &self.resource, &self.group)
    }
}

/// `<name>.<group>`, or the name alone in the core group (Go's GroupResource/GroupKind String).
fn qualified(f: &mut std::fmt::Formatter<'_>, name: &str, group: &str) -> std::fmt::Result {
    if group.is_empty() {
        f.write_str(name)
    } else {
        write!(f, "{name}.{group}")
    }
}

/// Group + kind, e.g. `Flunder.wardle.example.com` (Go's `schema.GroupKind`): what a 422 Invalid
/// names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    pub fn new(group: &str, kind: &str) -> Self {
        GroupKind {
            group: group.to_string(),
            kind: kind.to_string(),
        }
    }

    /// `<Kind>Options` of meta.k8s.io, e.g. `ListOptions.meta.k8s.io`: what a bad query option
    /// is reported against.
    pub fn options(kind: &str) -> Self {
        GroupKind::new("meta.k8s.io", kind)
    }
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        qualified(f, &self.kind, &self.group)
    }
}

/// apimachinery's `StatusReason`s: the machine-readable reason of a failure, which clients act
/// on. `Unknown` is the empty reason; `Other` one apimachinery does not define (a webhook's own
/// reason passes through as it sent it, as Go's `ToStatusErr` keeps the whole Status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Unknown,
    Other(String),
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    ServerTimeout,
    StoreReadError,
    Timeout,
    TooManyRequests,
    BadRequest,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    InternalError,
    Expired,
    ServiceUnavailable,
}

impl Reason {
    const ALL: [Reason; 20] = [
        Reason::Unknown,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::Gone,
        Reason::Invalid,
        Reason::ServerTimeout,
        Reason::StoreReadError,
        Reason::Timeout,
        Reason::TooManyRequests,
        Reason::BadRequest,
        Reason::MethodNotAllowed,
        Reason::NotAcceptable,
        Reason::RequestEntityTooLarge,
        Reason::UnsupportedMediaType,
        Reason::InternalError,
        Reason::Expired,
        Reason::ServiceUnavailable,
    ];

    /// The reason as a Status carries it (`NotFound`; "" for `Unknown`).
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Unknown => "",
            Reason::Other(reason) => reason,
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Invalid => "Invalid",
            Reason::ServerTimeout => "ServerTimeout",
            Reason::StoreReadError => "StoreReadError",
            Reason::Timeout => "Timeout",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::BadRequest => "BadRequest",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::InternalError => "InternalError",
            Reason::Expired => "Expired",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// A free-text reason (a webhook's, a policy's): one apimachinery defines, `Unknown` for "",
    /// else `Other`.
    pub fn parse(reason: &str) -> Reason {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == reason)
            .unwrap_or_else(|| Reason::Other(reason.to_string()))
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of field error apimachinery knows (`k8s.io/apimachinery/pkg/util/validation/field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    Invalid,
    Required,
    Forbidden,
    NotSupported,
    Duplicate,
    TooLong,
    TooMany,
}

impl FieldErrorType {
    fn reason(self) -> &'static str {
        match self {
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::TooMany => "FieldValueTooMany",
        }
    }
    fn label(self) -> &'static str {
        match self {
            FieldErrorType::Invalid => "Invalid value",
            FieldErrorType::Required => "Required value",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::TooMany => "Too many",
        }
    }
}

/// One validation failure at a field path, rendered exactly like Go's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorType,
    pub field: String,
    pub value: Option<Value>,
    pub detail: String,
    /// The value is of a named Go type (`ReferenceType`, `ResourceVersionMatch`,
    /// `DeletionPropagation`), which field.Error renders with json.Marshal, not `%q`.
    pub named_type: bool,
}

impl FieldError {
    pub fn invalid(field: &str, value: impl Into<Value>, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
            named_type: false,
        }
    }
    pub fn required(field: &str, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
            named_type: false,
        }
    }
    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
            named_type: false,
        }
    }
    pub fn not_supported(field: &str, value: impl Into<Value>, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().copied().map(go_quote).collect();
        FieldError {
            kind: FieldErrorType::NotSupported,
            field: field.into(),
            value: Some(value.into()),
            detail: format!("supported values: {}", list.join(", ")),
            named_type: false,
        }
    }
    pub fn too_long(field: &str, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::TooLong,
            field: field.into(),
            value: None,
            detail: detail.into(),
            named_type: false,
        }
    }
    pub fn duplicate(field: &str, value: impl Into<Value>) -> Self {
        FieldError {
            kind: FieldErrorType::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
            named_type: false,
        }
    }

    /// Marks the value as one of a named Go string type (see `named_type`).
    pub fn of_named_type(mut self) -> Self {
        self.named_type = true;
        self
    }

    /// The message without the field path (`Invalid value: "Foo": must be Flunder or Fischer`).
    pub fn body(&self) -> String {
        let mut s = self.kind.label().to_string();
        let shows_value = matches!(
            self.kind,
            FieldErrorType::Invalid | FieldErrorType::NotSupported | FieldErrorType::Duplicate
        );
        if shows_value && let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(&render_value(v, self.named_type));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Go's field.Error `ErrorBody`: a `string` quoted (`%q`), numbers and bools bare, anything
/// else (lists, maps, values of named string types) as json.Marshal writes it.
fn render_value(v: &Value, named_type: bool) -> String {
    match v {
        Value::String(s) if !named_type => super::gofmt::go_quote(s),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        Value::Null => "null".into(),
        other => super::gofmt::go_json_escape(other.to_string()),
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusCause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusDetails {
    pub name: String,
    pub group: String,
    pub kind: String,
    pub uid: String,
    pub causes: Vec<StatusCause>,
    pub retry_after_seconds: Option<u32>,
}

/// A failed request: HTTP code, machine-readable reason, human message, optional details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    pub details: Option<Box<StatusDetails>>,
    /// A `metadata.continue` for the Status (410 on an expired continue token).
    pub continue_token: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    fn named(gr: &GroupResource, name: &str) -> StatusDetails {
        StatusDetails {
            name: name.into(),
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            ..Default::default()
        }
    }

    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(
            404,
            Reason::NotFound,
            format!("{gr} {} not found", Quoted(name)),
        )
        .with_details(Self::named(gr, name))
    }

    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(
            409,
            Reason::AlreadyExists,
            format!("{gr} {} already exists", Quoted(name)),
        )
        .with_details(Self::named(gr, name))
    }

    /// 409 Conflict: `Operation cannot be fulfilled on <gr> "<name>": <detail>`.
    pub fn conflict(gr: &GroupResource, name: &str, detail: &str) -> Self {
        ApiError::new(
            409,
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {gr} {}: {detail}",
                Quoted(name)
            ),
        )
        .with_details(Self::named(gr, name))
    }

    pub fn modified_conflict(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `<Kind>.<group> "<name>" is invalid: <causes>`, the causes in details
    /// (Go's `errors.NewInvalid(qualifiedKind, name, errs)`).
    pub fn invalid(gk: &GroupKind, name: &str, errors: &[FieldError]) -> Self {
        let list = if errors.len() == 1 {
            errors[0].to_string()
        } else {
            format!(
                "[{}]",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: e.kind.reason().into(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        ApiError::new(
            422,
            Reason::Invalid,
            format!("{gk} {} is invalid: {list}", Quoted(name)),
        )
        .with_details(StatusDetails {
            name: name.into(),
            group: gk.group.clone(),
            kind: gk.kind.clone(),
            causes,
            ..Default::default()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, Reason::BadRequest, message)
    }

    pub fn forbidden(gr: &GroupResource, name: &str, reason: &str) -> Self {
        let msg = if name.is_empty() {
            format!("{gr} is forbidden: {reason}")
        } else {
            format!("{gr} {} is forbidden: {reason}", Quoted(name))
        };
        ApiError::new(403, Reason::Forbidden, msg).with_details(Self::named(gr, name))
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, Reason::Unauthorized, "Unauthorized")
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Expired, message)
    }

    /// 504 Timeout; the message reads `Timeout: <message>` (AM `errors.NewTimeoutError`).
    pub fn timeout(message: impl Into<String>, retry_after: u32) -> Self {
        ApiError::new(504, Reason::Timeout, format!("Timeout: {}", message.into())).with_details(
            StatusDetails {
                retry_after_seconds: Some(retry_after),
                ..Default::default()
            },
        )
    }

    pub fn too_large_resource_version(requested: i64, current: i64) -> Self {
        let mut e = Self::timeout(
            format!("Too large resource version: {requested}, current: {current}"),
            1,
        );
        if let Some(d) = e.details.as_mut() {
            d.causes.push(StatusCause {
                reason: "ResourceVersionTooLarge".into(),
                message: "Too large resource version".into(),
                field: String::new(),
            });
        }
        e
    }

    pub fn not_found_path() -> Self {
        ApiError::new(
            404,
            Reason::NotFound,
            "the server could not find the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, Reason::NotAcceptable, message)
    }

    /// 406 from Go's router (go-restful) rather than its handlers: empty details, as Go's
    /// container error handler builds it (a generic server response).
    pub fn route_not_acceptable(message: impl Into<String>) -> Self {
        Self::not_acceptable(message).with_details(StatusDetails::default())
    }

    /// 415 from Go's router (go-restful): its fixed words, empty details, as `route_not_acceptable`.
    pub fn route_unsupported_media_type() -> Self {
        Self::unsupported_media_type("415: Unsupported Media Type")
            .with_details(StatusDetails::default())
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        ApiError::new(415, Reason::UnsupportedMediaType, message)
    }

    pub fn too_large_body() -> Self {
        ApiError::new(
            413,
            Reason::RequestEntityTooLarge,
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            Reason::InternalError,
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, Reason::ServiceUnavailable, message)
    }

    /// 409 of a failed precondition, in Go's words, which name the *Kind* (rest/delete.go):
    /// `the UID in the precondition (a) does not match the UID in record (b). ...`; `what` is
    /// `UID` or `ResourceVersion`.
    pub fn precondition_conflict(
        gk: &GroupKind,
        name: &str,
        what: &str,
        expected: &str,
        actual: &str,
    ) -> Self {
        let tail = if what == "UID" {
            "The object might have been deleted and then recreated"
        } else {
            "The object might have been modified"
        };
        Self::conflict(
            &GroupResource::new(&gk.group, &gk.kind),
            name,
            &format!(
                "the {what} in the precondition ({expected}) does not match the {what} in record ({actual}). {tail}"
            ),
        )
    }

    /// THE mapping of a storage failure to the Status a client gets (Go's
    /// `storage.Interpret{Get,List,Create,Update,Delete,Watch}Error` and the cacher's errors).
    /// `gr` and `gk` name the resource and its kind, `name` the object ("" for a collection).
    /// The verb decides the words of an expired resourceVersion (a watch's `too old resource
    /// version: R (C)`, a read's `The resourceVersion for the provided list is too old.`). A
    /// database outage is 503 ServiceUnavailable for every verb, admission's reads included
    /// (Go's etcd errors are mostly 500s; see README "Differences").
    pub fn from_storage(
        verb: &Verb,
        gr: &GroupResource,
        gk: &GroupKind,
        name: &str,
        e: StorageError,
    ) -> Self {
        match e {
            StorageError::AlreadyExists => Self::already_exists(gr, name),
            StorageError::NotFound => Self::not_found(gr, name),
            StorageError::Conflict { .. } => Self::modified_conflict(gr, name),
            StorageError::UidMismatch { expected, actual } => {
                Self::precondition_conflict(gk, name, "UID", &expected, &actual)
            }
            StorageError::Compacted {
                requested,
                compacted,
            } => match verb {
                Verb::Watch => Self::gone(format!(
                    "too old resource version: {requested} ({compacted})"
                )),
                _ => Self::gone("The resourceVersion for the provided list is too old."),
            },
            StorageError::TooLarge { requested, current } => {
                Self::too_large_resource_version(requested, current)
            }
            StorageError::ObjectTooLarge(size) => Self::new(
                413,
                Reason::RequestEntityTooLarge,
                format!(
                    "Request entity too large: the object would be {size} bytes, the limit is {MAX_OBJECT_BYTES}"
                ),
            ),
            StorageError::Rejected(msg) => {
                Self::bad_request(format!("the object could not be stored: {msg}"))
            }
            StorageError::Unavailable(msg) => {
                tracing::warn!(error = %msg, %verb, resource = %gr, "storage unavailable");
                Self::service_unavailable(format!("storage is unavailable: {msg}"))
            }
        }
    }

    /// Attach or replace details' name/group/kind (used where the caller knows the object).
    pub fn for_object(mut self, name: &str, group: &str, kind: &str) -> Self {
        let d = self.details.get_or_insert_with(Box::default);
        d.name = name.into();
        d.group = group.into();
        d.kind = kind.into();
        self
    }

    /// The `Status` object (apiVersion v1) for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
        });
        if let Some(c) = &self.continue_token {
            status["metadata"]["continue"] = json!(c);
        }
        if let Some(d) = &self.details {
            let mut dj = serde_json::Map::new();
            if !d.name.is_empty() {
                dj.insert("name".into(), json!(d.name));
            }
            if !d.group.is_empty() {
                dj.insert("group".into(), json!(d.group));
            }
            if !d.kind.is_empty() {
                dj.insert("kind".into(), json!(d.kind));
            }
            if !d.uid.is_empty() {
                dj.insert("uid".into(), json!(d.uid));
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| {
                        let mut m = serde_json::Map::new();
                        m.insert("reason".into(), json!(c.reason));
                        m.insert("message".into(), json!(c.message));
                        if !c.field.is_empty() {
                            m.insert("field".into(), json!(c.field));
                        }
                        Value::Object(m)
                    })
                    .collect();
                dj.insert("causes".into(), Value::Array(causes));
            }
            // Go's `retryAfterSeconds,omitempty`: 0 is not written.
            if let Some(r) = d.retry_after_seconds.filter(|r| *r > 0) {
                dj.insert("retryAfterSeconds".into(), json!(r));
            }
            status["details"] = Value::Object(dj);
        }
        status["code"] = json!(self.code);
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_go() {
        let e = ApiError::invalid(
            &GroupKind::new("wardle.example.com", "Flunder"),
            "x",
            &[FieldError::invalid(
                "spec.referenceType",
                "Foo",
                "must be Flunder or Fischer",
            )],
        );
        assert_eq!(
            e.message,
            r#"Flunder.wardle.example.com "x" is invalid: spec.referenceType: Invalid value: "Foo": must be Flunder or Fischer"#
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            s["details"]["causes"][0]["message"],
            r#"Invalid value: "Foo": must be Flunder or Fischer"#
        );
        assert_eq!(s["code"], 422);
    }

    #[test]
    fn required_and_multiple() {
        let a = FieldError::required("metadata.name", "name or generateName is required");
        assert_eq!(
            a.to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        let b = FieldError::invalid(
            "metadata.resourceVersion",
            0,
            "must be specified for an update",
        );
        assert_eq!(
            b.to_string(),
            "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        );
        let e = ApiError::invalid(&GroupKind::new("g", "K"), "n", &[a, b]);
        assert!(
            e.message
                .starts_with(r#"K.g "n" is invalid: [metadata.name: Required"#),
            "{}",
            e.message
        );
        let ns = FieldError::not_supported("dryRun", "x", &["All"]);
        assert_eq!(
            ns.to_string(),
            r#"dryRun: Unsupported value: "x": supported values: "All""#
        );
    }

    #[test]
    fn not_found_status_shape() {
        let gr = GroupResource::new("wardle.example.com", "flunders");
        let s = ApiError::not_found(&gr, "x").to_status();
        assert_eq!(s["message"], r#"flunders.wardle.example.com "x" not found"#);
        assert_eq!(s["details"]["kind"], "flunders");
        assert_eq!(s["details"]["group"], "wardle.example.com");
        assert_eq!(s["reason"], "NotFound");
    }

    #[test]
    fn storage_errors_map_by_verb() {
        let gr = GroupResource::new("wardle.example.com", "flunders");
        let gk = GroupKind::new("wardle.example.com", "Flunder");
        let map = |verb: Verb, e: StorageError| ApiError::from_storage(&verb, &gr, &gk, "x", e);
        let compacted = || StorageError::Compacted {
            requested: 1,
            compacted: 5,
        };
        let watch = map(Verb::Watch, compacted());
        assert_eq!((watch.code, watch.reason), (410, Reason::Expired));
        assert_eq!(watch.message, "too old resource version: 1 (5)");
        let list = map(Verb::List, compacted());
        assert_eq!(
            list.message,
            "The resourceVersion for the provided list is too old."
        );
        for verb in [Verb::Get, Verb::Create, Verb::Watch, Verb::DeleteCollection] {
            let e = map(verb, StorageError::Unavailable("down".into()));
            assert_eq!((e.code, e.reason), (503, Reason::ServiceUnavailable));
        }
        let e = map(Verb::Create, StorageError::AlreadyExists);
        assert_eq!(
            e.message,
            r#"flunders.wardle.example.com "x" already exists"#
        );
        let e = map(
            Verb::Update,
            StorageError::UidMismatch {
                expected: "a".into(),
                actual: "b".into(),
            },
        );
        assert!(
            e.message
                .starts_with(r#"Operation cannot be fulfilled on Flunder.wardle.example.com "x": the UID in the precondition (a)"#),
            "{}",
            e.message
        );
        assert_eq!(Reason::parse("NotFound"), Reason::NotFound);
        assert_eq!(Reason::parse("Nonsense"), Reason::Other("Nonsense".into()));
        assert_eq!(Reason::parse(""), Reason::Unknown);
    }
}
