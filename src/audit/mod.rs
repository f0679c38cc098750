//! Auditing like kube-apiserver (Go: `pkg/endpoints/filters/audit.go`, `pkg/audit`): the policy
//! decides each request's level, a [`RequestAudit`] collects the event while the request runs and
//! sends it at each stage — RequestReceived, ResponseStarted (watches), ResponseComplete, Panic —
//! to the configured backends (log file, webhook). The router calls in here at one place.

pub mod backend;
pub mod event;
pub mod options;
pub mod policy;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::authz::{Attributes, Decision};
use backend::{Backend, Rotation};
use event::{Event, ObjectReference, ResponseStatus, UserInfo};
pub use options::AuditOptions;
use policy::{Level, Policy, RequestAuditConfig, Stage};

/// The request and response header carrying the audit ID.
pub const HEADER_AUDIT_ID: &str = "audit-id";
const MAX_USER_AGENT: usize = 1024;

/// The audit policy and backends of this server.
pub struct Auditor {
    policy: Policy,
    backends: Vec<Backend>,
}

impl Auditor {
    /// Build from the flags. `None` when nothing would be recorded: no policy file, or no
    /// backend (Go logs the same and audits nothing).
    pub async fn from_options(o: &AuditOptions) -> anyhow::Result<Option<Arc<Auditor>>> {
        o.validate()?;
        let Some(policy_file) = &o.audit_policy_file else {
            if o.audit_log_path.is_some() || o.audit_webhook_config_file.is_some() {
                tracing::info!("no audit policy file provided, no events will be recorded");
            }
            return Ok(None);
        };
        let policy = Policy::load(policy_file)?;
        let mut backends = Vec::new();
        if let Some(path) = &o.audit_log_path {
            let rotation = Rotation {
                max_age_days: o.audit_log_maxage,
                max_backups: o.audit_log_maxbackup,
                max_size_mb: o.audit_log_maxsize,
                compress: o.audit_log_compress,
            };
            backends.push(Backend::log(
                path,
                o.audit_log_format,
                &rotation,
                o.audit_log_mode,
                &o.log_batch(),
                o.log_truncate(),
            )?);
        }
        if let Some(cfg) = &o.audit_webhook_config_file {
            backends.push(
                Backend::webhook(
                    cfg,
                    o.audit_webhook_initial_backoff,
                    o.audit_webhook_mode,
                    &o.webhook_batch(),
                    o.webhook_truncate(),
                )
                .await?,
            );
        }
        if backends.is_empty() {
            tracing::info!("no audit backend configured, no events will be recorded");
            return Ok(None);
        }
        Ok(Some(Arc::new(Auditor { policy, backends })))
    }

    /// Send buffered events before the process exits (waiting at most `grace` per backend).
    pub async fn shutdown(&self, grace: Duration) {
        for b in &self.backends {
            b.shutdown(grace).await;
        }
    }

    /// Send one stage of an event to every backend; false if a blocking-strict backend failed.
    async fn process(&self, ev: &Event) -> bool {
        crate::metrics::audit_event();
        let mut ok = true;
        for b in &self.backends {
            ok &= b.process(ev).await;
        }
        ok
    }

    /// Start auditing a request whose user is known: evaluate the policy and fill the request's
    /// metadata. `None` if the policy says level None.
    pub fn begin(
        self: &Arc<Self>,
        attrs: &Attributes,
        parts: &RequestParts<'_>,
    ) -> Option<RequestAudit> {
        let config = self.policy.evaluate(attrs);
        crate::metrics::audit_level(config.level.as_str());
        if config.level == Level::None {
            return None;
        }
        let mut ev = Event::new(config.level, parts.audit_id.to_string(), parts.received);
        ev.request_uri = parts.request_uri.to_string();
        ev.verb = attrs.verb.clone();
        ev.user = UserInfo {
            username: attrs.user.name.clone(),
            uid: attrs.user.uid.clone(),
            groups: attrs.user.groups.clone(),
            extra: attrs.user.extra.clone(),
        };
        ev.source_ips = event::source_ips(
            header(parts.headers, "x-forwarded-for"),
            header(parts.headers, "x-real-ip"),
            parts.peer,
        );
        ev.user_agent = user_agent(parts.headers);
        if attrs.resource_request {
            ev.object_ref = Some(ObjectReference {
                resource: attrs.resource.clone(),
                namespace: attrs.namespace.clone(),
                name: attrs.name.clone(),
                api_group: attrs.api_group.clone(),
                api_version: attrs.api_version.clone(),
                subresource: attrs.subresource.clone(),
                ..Default::default()
            });
        }
        Some(RequestAudit {
            auditor: self.clone(),
            config,
            event: ev,
        })
    }

    /// A request that failed authentication (Go's `WithFailedAuthenticationAudit`): evaluated
    /// with no user, and sent once, at ResponseStarted, with the 401 and the methods tried.
    pub async fn failed_authentication(
        self: &Arc<Self>,
        attrs: &Attributes,
        parts: &RequestParts<'_>,
        code: u16,
    ) {
        let message = auth_methods(parts.headers, parts.client_cert);
        self.failed_before_authentication(attrs, parts, code, message)
            .await;
    }

    /// A request refused before authentication (Go's `withFailedRequestAudit`: a bad `timeout`
    /// parameter, or `WithFailedAuthenticationAudit`): evaluated with no user, and sent once, at
    /// ResponseStarted, with its status code and message.
    pub async fn failed_before_authentication(
        self: &Arc<Self>,
        attrs: &Attributes,
        parts: &RequestParts<'_>,
        code: u16,
        message: String,
    ) {
        let Some(mut a) = self.begin(attrs, parts) else {
            return;
        };
        a.event.response_status = Some(ResponseStatus {
            message,
            code,
            ..Default::default()
        });
        a.send(Stage::ResponseStarted).await;
    }
}

/// What the audit event is filled from, besides the authorizer's attributes.
pub struct RequestParts<'a> {
    pub audit_id: &'a str,
    pub received: SystemTime,
    /// Path and query as received.
    pub request_uri: &'a str,
    pub headers: &'a HeaderMap,
    pub peer: Option<std::net::IpAddr>,
    /// The client presented a certificate.
    pub client_cert: bool,
}

/// The audit ID of a request: its `Audit-Id` header (kept as sent, like Go), else a new UUID.
pub fn request_audit_id(headers: &HeaderMap) -> String {
    headers
        .get(HEADER_AUDIT_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Echo the audit ID on a response (unless a handler set one).
pub fn set_audit_id_header(resp: &mut Response, audit_id: &str) {
    if !resp.headers().contains_key(HEADER_AUDIT_ID)
        && let Ok(v) = HeaderValue::from_str(audit_id)
    {
        resp.headers_mut().insert(HEADER_AUDIT_ID, v);
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Go's `maybeTruncateUserAgent`.
fn user_agent(h: &HeaderMap) -> String {
    let ua = h
        .get(http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if ua.len() <= MAX_USER_AGENT {
        return ua;
    }
    let mut end = MAX_USER_AGENT;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...TRUNCATED", &ua[..end])
}

/// Go's `getAuthMethods`.
fn auth_methods(h: &HeaderMap, client_cert: bool) -> String {
    let mut methods = Vec::new();
    let auth = header(h, "authorization").unwrap_or("").trim();
    if auth.len() > 6 && auth[..6].eq_ignore_ascii_case("basic ") {
        methods.push("basic");
    }
    let mut parts = auth.split(' ');
    if parts
        .next()
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer"))
        && parts.next().is_some()
    {
        methods.push("bearer");
    }
    if client_cert {
        methods.push("x509");
    }
    if methods.is_empty() {
        "Authentication failed, no credentials provided".into()
    } else {
        format!("Authentication failed, attempted: {}", methods.join(", "))
    }
}

/// The `metav1.Status` a response carries (an error, or a delete's Success), put on the response
/// where it is made, so the event's `responseStatus` has its status, reason, message and details
/// as Go's `LogResponseObject` copies them.
#[derive(Debug, Clone)]
pub struct StatusObject(pub Value);

/// What the code below the router contributes to the running request's event.
#[derive(Default)]
struct Collected {
    /// The request body a handler read, for the event's requestObject and objectRef.
    body: Option<Bytes>,
    /// Admission annotations (Go's `AddAuditAnnotation`), first value per key kept.
    annotations: Vec<(String, String)>,
}

/// At most this many annotations from below the router, each value cut to this many bytes, so
/// a misbehaving admission webhook cannot grow every event without bound.
const MAX_ANNOTATIONS: usize = 64;
const MAX_ANNOTATION_BYTES: usize = 4096;

tokio::task_local! {
    static COLLECTED: Arc<Mutex<Collected>>;
}

fn collect(f: impl FnOnce(&mut Collected)) {
    let _ = COLLECTED.try_with(|c| f(&mut c.lock().unwrap_or_else(|p| p.into_inner())));
}

/// Called by the handlers with the request body they read; kept only while a request is audited.
pub fn note_request_body(body: &Bytes) {
    collect(|c| c.body = Some(body.clone()));
}

/// Add an annotation to the running request's audit event (Go's `AddAuditAnnotation`: a key
/// already set keeps its first value). A no-op when the request is not audited.
pub fn add_annotation(key: &str, value: &str) {
    collect(|c| {
        if c.annotations.len() >= MAX_ANNOTATIONS || c.annotations.iter().any(|(k, _)| k == key) {
            return;
        }
        let mut end = value.len().min(MAX_ANNOTATION_BYTES);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        c.annotations
            .push((key.chars().take(256).collect(), value[..end].to_string()));
    });
}

/// One audited request's event, filled in as the request runs.
pub struct RequestAudit {
    auditor: Arc<Auditor>,
    config: RequestAuditConfig,
    event: Event,
}

impl RequestAudit {
    /// Send the event at `stage` unless the policy omits it. False if a blocking-strict
    /// backend failed.
    async fn send(&mut self, stage: Stage) -> bool {
        if self.config.omit_stages.contains(&stage) {
            return true;
        }
        self.event.stage = stage.as_str();
        self.event.stage_timestamp = if stage == Stage::RequestReceived {
            self.event.request_received_timestamp
        } else {
            SystemTime::now()
        };
        self.auditor.process(&self.event).await
    }

    /// Send the RequestReceived stage; false means the request must fail (blocking-strict).
    pub async fn request_received(&mut self) -> bool {
        let ok = self.send(Stage::RequestReceived).await;
        if !ok {
            crate::metrics::audit_request_rejected();
        }
        ok
    }

    /// Record the authorizer's answer as Go's authorization filter does.
    pub fn authorized(&mut self, decision: &Decision, reason: &str) {
        let a = &mut self.event.annotations;
        let mut set = |k: &str, v: &str| {
            a.insert(k.to_string(), v.to_string());
        };
        match decision {
            Decision::Allow => {
                set("authorization.k8s.io/decision", "allow");
                set("authorization.k8s.io/reason", reason);
            }
            Decision::Deny(_) | Decision::NoOpinion => {
                set("authorization.k8s.io/decision", "forbid");
                set("authorization.k8s.io/reason", reason);
            }
            Decision::Error(_) => set("authorization.k8s.io/reason", "internal error"),
        }
    }

    /// Run the handler, then send ResponseComplete (for a watch: ResponseStarted now and
    /// ResponseComplete when its stream ends). A panicking handler sends the Panic stage and
    /// answers 500 instead of dropping the connection.
    pub async fn run<F>(self, handler: F, long_running: bool) -> Response
    where
        F: Future<Output = Response>,
    {
        let slot = Arc::new(Mutex::new(Collected::default()));
        // If the client goes away, the handler is dropped mid-way: the guard still sends
        // ResponseComplete (with Go's "Connection closed early" status), so no request that
        // may have changed something goes unrecorded.
        let mut pending = CompleteOnDrop(Some(self));
        let outcome = COLLECTED
            .scope(
                slot.clone(),
                std::panic::AssertUnwindSafe(handler).catch_unwind(),
            )
            .await;
        let Some(this) = pending.0.take() else {
            unreachable!("the guard is only emptied here");
        };
        this.finish(outcome, &slot, long_running).await
    }

    /// The handler's answer (or panic) into the event, and the remaining stages sent.
    async fn finish(
        mut self,
        outcome: std::thread::Result<Response>,
        slot: &Mutex<Collected>,
        long_running: bool,
    ) -> Response {
        let collected = std::mem::take(&mut *slot.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(body) = collected.body {
            self.record_request_body(&body);
        }
        for (k, v) in collected.annotations {
            self.event.annotations.entry(k).or_insert(v);
        }
        let resp = match outcome {
            Ok(resp) => resp,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %msg, "request handler panicked");
                self.event.response_status = Some(ResponseStatus {
                    status: "Failure".into(),
                    reason: "InternalError".into(),
                    message: format!("APIServer panic'd: {msg}"),
                    code: 500,
                    ..Default::default()
                });
                self.send(Stage::Panic).await;
                return crate::apimachinery::status::ApiError::internal(
                    "the server panicked while handling the request",
                )
                .into_response();
            }
        };
        let code = resp.status().as_u16();
        self.event.response_status = Some(match resp.extensions().get::<StatusObject>() {
            Some(s) => ResponseStatus::from_status(&s.0, code),
            None => ResponseStatus {
                code,
                ..Default::default()
            },
        });
        if long_running && resp.status().is_success() {
            self.send(Stage::ResponseStarted).await;
            return complete_when_streamed(self, resp);
        }
        let resp = if self.config.level >= Level::RequestResponse {
            self.record_response_body(resp).await
        } else {
            resp
        };
        self.send(Stage::ResponseComplete).await;
        resp
    }

    /// objectRef details from the body's metadata (Go's `LogRequestObject`, create and update),
    /// and the body itself from level Request on.
    fn record_request_body(&mut self, body: &Bytes) {
        let fills_ref = matches!(self.event.verb.as_str(), "create" | "update");
        if body.is_empty() || (!fills_ref && self.config.level < Level::Request) {
            return;
        }
        let Some(mut v) = parse_body(body) else {
            return;
        };
        if fills_ref && let Some(r) = self.event.object_ref.as_mut() {
            let meta = |k: &str| {
                v.pointer(&format!("/metadata/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            for (field, key) in [
                (&mut r.namespace, "namespace"),
                (&mut r.name, "name"),
                (&mut r.uid, "uid"),
                (&mut r.resource_version, "resourceVersion"),
            ] {
                if field.is_empty() {
                    *field = meta(key);
                }
            }
        }
        if self.config.level >= Level::Request {
            if self.config.omit_managed_fields {
                event::strip_managed_fields(&mut v);
            }
            self.event.request_object = Some(v);
        }
    }

    /// The response body as the event's responseObject (bodies here are in memory already).
    async fn record_response_body(&mut self, resp: Response) -> Response {
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return Response::from_parts(parts, Body::empty());
        };
        if let Some(mut v) = parse_body(&bytes) {
            if self.config.omit_managed_fields {
                event::strip_managed_fields(&mut v);
            }
            self.event.response_object = Some(v);
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// JSON, else YAML, as a JSON value (Go records objects as JSON whatever the wire format),
/// parsed with the request decoder's own limits.
fn parse_body(b: &[u8]) -> Option<Value> {
    use crate::apimachinery::decode::{parse_json, parse_yaml};
    parse_json(b)
        .or_else(|_| parse_yaml(b))
        .ok()
        .map(|(v, _)| v)
}

/// Sends ResponseComplete when dropped: a watch's body finished or was dropped (the client went
/// away), or a handler was dropped before it answered.
struct CompleteOnDrop(Option<RequestAudit>);

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        if let (Some(mut a), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            // Dropped before any response: what Go's audit filter records then.
            a.event
                .response_status
                .get_or_insert_with(|| ResponseStatus {
                    status: "Success".into(),
                    message: "Connection closed early".into(),
                    code: 200,
                    ..Default::default()
                });
            rt.spawn(async move {
                a.send(Stage::ResponseComplete).await;
            });
        }
    }
}

fn complete_when_streamed(audit: RequestAudit, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let guard = CompleteOnDrop(Some(audit));
    let stream = body.into_data_stream().map(move |chunk| {
        let _keep = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn annotations_keep_the_first_value_and_are_bounded() {
        let slot = Arc::new(Mutex::new(Collected::default()));
        COLLECTED
            .scope(slot.clone(), async {
                add_annotation("hook/a", "1");
                add_annotation("hook/a", "2");
                add_annotation("hook/big", &"é".repeat(5000));
                for i in 0..100 {
                    add_annotation(&format!("k{i}"), "v");
                }
            })
            .await;
        let c = slot.lock().unwrap();
        assert_eq!(c.annotations[0], ("hook/a".to_string(), "1".to_string()));
        assert!(c.annotations[1].1.len() <= MAX_ANNOTATION_BYTES);
        assert_eq!(c.annotations.len(), MAX_ANNOTATIONS);
        // Outside an audited request nothing happens (and nothing panics).
        add_annotation("lost", "x");
    }

    #[test]
    fn audit_ids_are_kept_or_made() {
        let mut h = HeaderMap::new();
        assert_eq!(request_audit_id(&h).len(), 36);
        h.insert(HEADER_AUDIT_ID, HeaderValue::from_static("mine"));
        assert_eq!(request_audit_id(&h), "mine");
    }

    #[test]
    fn auth_methods_name_what_was_tried() {
        let mut h = HeaderMap::new();
        assert_eq!(
            auth_methods(&h, false),
            "Authentication failed, no credentials provided"
        );
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(
            auth_methods(&h, true),
            "Authentication failed, attempted: bearer, x509"
        );
    }

    #[test]
    fn long_user_agents_are_truncated() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_str(&"a".repeat(2000)).unwrap(),
        );
        let ua = user_agent(&h);
        assert_eq!(ua.len(), 1024 + "...TRUNCATED".len());
        assert!(ua.ends_with("...TRUNCATED"));
    }
}
