//! The one error type of the server (`ApiError`) and its Kubernetes `Status` form.
//! Every failure on the request path ends up here; `http::response` turns it into a response.

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
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
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
}

impl FieldError {
    pub fn invalid(field: &str, value: impl Into<Value>, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }
    pub fn required(field: &str, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn not_supported(field: &str, value: impl Into<Value>, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            kind: FieldErrorType::NotSupported,
            field: field.into(),
            value: Some(value.into()),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }
    pub fn too_long(field: &str, detail: &str) -> Self {
        FieldError {
            kind: FieldErrorType::TooLong,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn duplicate(field: &str, value: impl Into<Value>) -> Self {
        FieldError {
            kind: FieldErrorType::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
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
            s.push_str(&render_value(v));
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

/// Go prints strings quoted (`%q`) and numbers/bools bare.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => super::gofmt::go_quote(s),
        Value::Null => "null".into(),
        other => other.to_string(),
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
    /// A `StatusReason`; a webhook's own reason passes through as it sent it (Go's `ToStatusErr`).
    pub reason: std::borrow::Cow<'static, str>,
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
    pub fn new(
        code: u16,
        reason: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            code,
            reason: reason.into(),
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
        ApiError::new(404, "NotFound", format!("{gr} {name:?} not found"))
            .with_details(Self::named(gr, name))
    }

    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{gr} {name:?} already exists"),
        )
        .with_details(Self::named(gr, name))
    }

    /// 409 Conflict: `Operation cannot be fulfilled on <gr> "<name>": <detail>`.
    pub fn conflict(gr: &GroupResource, name: &str, detail: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} {name:?}: {detail}"),
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

    /// 422 Invalid. `kind_group` is `Flunder.wardle.example.com` (Go uses the Kind here).
    pub fn invalid(
        kind_group: &str,
        kind: &str,
        group: &str,
        name: &str,
        errors: &[FieldError],
    ) -> Self {
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
            "Invalid",
            format!("{kind_group} {name:?} is invalid: {list}"),
        )
        .with_details(StatusDetails {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
            causes,
            ..Default::default()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn forbidden(gr: &GroupResource, name: &str, reason: &str) -> Self {
        let msg = if name.is_empty() {
            format!("{gr} is forbidden: {reason}")
        } else {
            format!("{gr} {name:?} is forbidden: {reason}")
        };
        ApiError::new(403, "Forbidden", msg).with_details(Self::named(gr, name))
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 504 Timeout; the message reads `Timeout: <message>` (AM `errors.NewTimeoutError`).
    pub fn timeout(message: impl Into<String>, retry_after: u32) -> Self {
        ApiError::new(504, "Timeout", format!("Timeout: {}", message.into())).with_details(
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
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, "NotAcceptable", message)
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
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    pub fn too_large_body() -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
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
            "reason": self.reason,
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
            if let Some(r) = d.retry_after_seconds {
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
            "Flunder.wardle.example.com",
            "Flunder",
            "wardle.example.com",
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
        let e = ApiError::invalid("K.g", "K", "g", "n", &[a, b]);
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
}
