//! Encoding responses and turning ApiError into a Status response: the one place errors become HTTP.

use crate::apimachinery::status::ApiError;
use crate::http::negotiate::{self, Format};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code >= 500 {
            tracing::warn!(code = self.code, reason = self.reason.as_str(), message = %self.message, "request failed");
        }
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let status = self.to_status();
        let (body, content_type) = negotiate::encode(&status, Format::Json, false);
        let mut resp = (code, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // The audit event's responseStatus is taken from here.
        resp.extensions_mut()
            .insert(crate::audit::StatusObject(status.clone()));
        // The router re-encodes it in the format the request negotiated (`negotiate_error`).
        resp.extensions_mut().insert(ErrorStatus(status));
        // Go's ErrorNegotiated: a Retry-After header only for a positive delay.
        if let Some(r) = self
            .details
            .as_ref()
            .and_then(|d| d.retry_after_seconds)
            .filter(|r| *r > 0)
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(r));
        }
        resp
    }
}

/// The Status of a failed request, carried on its response until the router encodes it the way
/// the request negotiated.
#[derive(Clone)]
pub struct ErrorStatus(Value);

/// Encode an error response like Go's ErrorNegotiated, whatever stage failed (authn, authz,
/// routing, decoding, storage): in the Accept header's format (YAML when asked for), indented
/// for `pretty`; when no plain format is acceptable, Go's WriteRawJSON (indented JSON). Other
/// responses pass through unchanged.
pub fn negotiate_error(mut resp: Response, accept: Option<&str>, pretty: bool) -> Response {
    let Some(ErrorStatus(status)) = resp.extensions_mut().remove::<ErrorStatus>() else {
        return resp;
    };
    let (body, content_type) = match negotiate::negotiate_plain(accept) {
        Ok(format) => negotiate::encode(&status, format, pretty),
        Err(_) => (
            serde_json::to_vec_pretty(&status).unwrap_or_default(),
            Format::Json.content_type(),
        ),
    };
    *resp.body_mut() = axum::body::Body::from(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Render `text` as an RFC 7234 warning the way Go's apiserver does (`net.NewWarningHeader`):
/// `299 - "<text>"` with `"` and `\` escaped and any other character, non-ASCII included, as
/// UTF-8. None for text a header cannot carry (control characters).
pub fn warning_value(text: &str) -> Option<HeaderValue> {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    HeaderValue::from_bytes(format!("299 - \"{escaped}\"").as_bytes()).ok()
}

/// An encoded object with status code, format and warnings.
pub fn object(
    code: StatusCode,
    value: &Value,
    format: Format,
    pretty: bool,
    warnings: &[String],
) -> Response {
    let (body, content_type) = negotiate::encode(value, format, pretty);
    let mut resp = (code, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    add_warnings(&mut resp, warnings);
    resp
}

/// A JSON body that is already encoded (objects served from their cached text).
pub fn raw_json(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Format::Json.content_type()),
    );
    resp
}

pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        if let Some(v) = warning_value(w) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

/// JSON with a fixed content type (discovery, OpenAPI and friends set their own).
pub fn json(code: StatusCode, value: &Value) -> Response {
    let mut resp = (code, serde_json::to_vec(value).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_quoted_like_go() {
        let v = warning_value(r#"unknown field "spec.foo""#).unwrap();
        assert_eq!(v.to_str().unwrap(), r#"299 - "unknown field \"spec.foo\"""#);
        let v = warning_value("naïve ✓").unwrap();
        assert_eq!(v.as_bytes(), "299 - \"naïve ✓\"".as_bytes());
        assert!(warning_value("a\nb").is_none());
    }

    #[test]
    fn errors_follow_the_negotiated_format() {
        let err = || ApiError::not_found_path().into_response();
        let yaml = negotiate_error(err(), Some("application/yaml"), false);
        assert_eq!(yaml.status(), StatusCode::NOT_FOUND);
        assert_eq!(yaml.headers()[header::CONTENT_TYPE], "application/yaml");
        let json = negotiate_error(
            err(),
            Some("application/json;as=Table;v=v1;g=meta.k8s.io, application/json"),
            false,
        );
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
        let raw = negotiate_error(err(), Some("text/html"), false);
        assert_eq!(raw.status(), StatusCode::NOT_FOUND);
        assert_eq!(raw.headers()[header::CONTENT_TYPE], "application/json");
        // Not an error: untouched.
        let ok = negotiate_error(
            StatusCode::OK.into_response(),
            Some("application/yaml"),
            false,
        );
        assert!(ok.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn errors_become_status_responses() {
        let resp = ApiError::bad_request("nope").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }
}
