//! The axum router: one entry point that authenticates, authorizes and dispatches every request
//! by its RequestInfo, so static paths and resource paths share one filter chain.

use super::handlers::{self, ResourceRequest};
use super::request_info::RequestInfo;
use super::{discovery, openapi, response, version};
use crate::apimachinery::query::query_param;
use crate::apimachinery::status::ApiError;
use crate::apimachinery::verb::Verb;
use crate::app::AppState;
use crate::audit;
use crate::authn::UserInfo;
use crate::authz::{Attributes, Decision};
use crate::metrics::RequestLabels;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(guarded_entry).with_state(state)
}

/// `entry` with any panic answered as a 500 Status (the outermost filter, as in Go), a body
/// left unread drained after the answer (HTTP/2) or the connection closed after it (HTTP/1,
/// `Connection: close`; see `unread`).
async fn guarded_entry(state: State<Arc<AppState>>, req: Request) -> Response {
    if let Some(refused) = oversized_head(&req).or_else(|| unmet_expectation(&req)) {
        return refused;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    super::unread::serve(req, |req| {
        super::limits::recover_panics(&method, &path, entry(state, req))
    })
    .await
}

/// Go's bound on an HTTP/1 request's head (net/http `initialReadLimitSize`: `MaxHeaderBytes`
/// plus 4096 bytes of request line and headers), made exact here: hyper's own bound
/// (`tls::server::bound_connections`) is its read buffer, which one read can overshoot. A head
/// over it is 431 with a Status (Go answers these words as plain text) and the connection
/// closed, as Go closes it. HTTP/2 bounds the header list itself.
fn oversized_head(req: &Request) -> Option<Response> {
    const LIMIT: usize = crate::tls::server::MAX_HEADER_BYTES + 4096;
    if req.version() > http::Version::HTTP_11 {
        return None;
    }
    // `METHOD target HTTP/1.1\r\n`, `name: value\r\n` per header, the closing `\r\n`.
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if line + headers + 2 <= LIMIT {
        return None;
    }
    let mut resp = ApiError::new(
        431,
        crate::apimachinery::status::Reason::Unknown,
        "Request Header Fields Too Large",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(resp)
}

/// Go's net/http answer to an HTTP/1 request whose `Expect` (its first value) is anything but
/// `100-continue` (a token of it, any case), before any handler runs: 417 with no body, and the
/// connection closed (`response.sendExpectationFailed`). hyper would serve such a request.
/// HTTP/2 requests are served, as Go's HTTP/2 server does.
fn unmet_expectation(req: &Request) -> Option<Response> {
    if req.version() > http::Version::HTTP_11 {
        return None;
    }
    let expect = req.headers().get(header::EXPECT)?.as_bytes();
    // Go's hasToken: tokens are separated by spaces, tabs and commas.
    let continues = expect
        .split(|b| matches!(b, b' ' | b'\t' | b','))
        .any(|t| t.eq_ignore_ascii_case(b"100-continue"));
    if expect.is_empty() || continues {
        return None;
    }
    let mut resp = StatusCode::EXPECTATION_FAILED.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(resp)
}

/// Paths listed by `/` and by the 404 of an unknown non-API path (Go's IndexLister).
const INDEX_PATHS: &[&str] = &[
    "/apis",
    "/apis/wardle.example.com",
    "/apis/wardle.example.com/v1alpha1",
    "/apis/wardle.example.com/v1beta1",
    "/healthz",
    "/livez",
    "/metrics",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/",
    "/readyz",
    "/version",
];

/// What the filters know of a request before its body is read: what it asks for, how its
/// errors are encoded, and what its audit events and metrics record.
struct Incoming {
    started: Instant,
    received: SystemTime,
    info: RequestInfo,
    labels: RequestLabels,
    /// Go's WithAuditInit: the client's Audit-Id is kept, else one is made; it is echoed back.
    audit_id: String,
    /// Errors are encoded as the request negotiated (Go's ErrorNegotiated), whichever stage
    /// fails.
    accept: Option<String>,
    pretty: bool,
    /// The connection's TLS facts (shared by its requests: the client's chain is not copied).
    tls: Option<Arc<axum_server::tls::TlsInfo>>,
    /// Captured before authentication, which removes the credential headers.
    audit_headers: Option<HeaderMap>,
    request_uri: String,
    peer: Option<std::net::IpAddr>,
    /// The `timeout` query parameter of a request that is not long-running: a positive
    /// duration shortens its deadline; one that does not parse is Go's 400.
    user_timeout: Result<Option<Duration>, ApiError>,
}

impl Incoming {
    fn new(state: &AppState, req: &Request) -> Incoming {
        let method = req.method();
        let path = super::request_info::decode_path(req.uri().path());
        let query = req.uri().query();
        let headers = req.headers();
        let info = RequestInfo::new(method, &path, query);
        let labels = info.metric_labels(method, headers, query);
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Incoming {
            started: Instant::now(),
            received: SystemTime::now(),
            labels,
            audit_id: audit::request_audit_id(headers),
            accept: header(header::ACCEPT).map(str::to_owned),
            pretty: super::negotiate::wants_pretty(
                query_param(query, "pretty").as_deref(),
                header(header::USER_AGENT),
            ),
            tls: req
                .extensions()
                .get::<Arc<axum_server::tls::TlsInfo>>()
                .cloned(),
            audit_headers: state.auditor.as_ref().map(|_| headers.clone()),
            request_uri: req
                .uri()
                .path_and_query()
                .map_or_else(|| path.clone(), |p| p.as_str().to_string()),
            peer: req
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
            user_timeout: user_timeout(&info, query),
            info,
        }
    }

    /// The client's certificate chain (DER, leaf first); empty without one.
    fn peer_chain(&self) -> &[Vec<u8>] {
        self.tls
            .as_deref()
            .map_or(&[], |t| t.peer_certificates.as_slice())
    }

    fn audit_parts<'a>(&'a self, headers: &'a HeaderMap) -> audit::RequestParts<'a> {
        audit::RequestParts {
            audit_id: &self.audit_id,
            received: self.received,
            request_uri: &self.request_uri,
            headers,
            peer: self.peer,
            client_cert: !self.peer_chain().is_empty(),
        }
    }

    /// The end of every request: its error encoded as negotiated, the common headers, then
    /// the one log line and the metrics (a watch: when its stream starts).
    fn finish(&self, resp: Response, user: &str) -> Response {
        let mut resp = response::negotiate_error(resp, self.accept.as_deref(), self.pretty);
        common_headers(&mut resp, &self.audit_id);
        let elapsed = self.started.elapsed();
        let code = resp.status().as_u16();
        self.labels.record(code, elapsed);
        let info = &self.info;
        tracing::info!(
            verb = %info.verb,
            resource = %info.resource,
            subresource = %info.subresource,
            namespace = %info.namespace,
            name = %info.name,
            path = %info.path,
            user,
            audit_id = self.audit_id.as_str(),
            code,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        resp
    }
}

/// Go's parseTimeout (filters/request_deadline.go): the first `timeout` value of a request that
/// is not long-running, as a Go duration. None when absent, empty or not positive (the server's
/// deadline stands); a 400 `invalid timeout specified in the request URL - time: invalid
/// duration "abc"` when it does not parse.
fn user_timeout(info: &RequestInfo, query: Option<&str>) -> Result<Option<Duration>, ApiError> {
    if super::limits::long_running(info) {
        return Ok(None);
    }
    let Some(value) = query_param(query, "timeout").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match crate::apimachinery::query::parse_go_duration(&value) {
        Ok(ns) => Ok((ns > 0).then(|| Duration::from_nanos(ns.unsigned_abs()))),
        Err(e) => Err(ApiError::bad_request(format!(
            "invalid timeout specified in the request URL - {e}"
        ))),
    }
}

/// The filter chain, in Go's order: authentication, audit, max-in-flight, authorization, then
/// the handler under the request deadline.
async fn entry(State(state): State<Arc<AppState>>, mut req: Request) -> Response {
    let incoming = Incoming::new(&state, &req);
    // Go's WithRequestDeadline runs before authentication: a bad `timeout` is a 400 to anyone.
    if let Err(e) = &incoming.user_timeout {
        if let (Some(a), Some(h)) = (&state.auditor, &incoming.audit_headers) {
            let attrs = attributes(&UserInfo::default(), &incoming.info);
            let parts = incoming.audit_parts(h);
            a.failed_before_authentication(&attrs, &parts, e.code, e.message.clone())
                .await;
        }
        return incoming.finish(e.clone().into_response(), "");
    }
    let auth = state
        .authenticator
        .authenticate_request(incoming.peer_chain(), req.headers_mut())
        .await;
    let user = match auth {
        Ok(u) => u,
        Err(e) => {
            let resp = e.into_response();
            if let (Some(a), Some(h)) = (&state.auditor, &incoming.audit_headers) {
                let attrs = attributes(&UserInfo::default(), &incoming.info);
                a.failed_authentication(&attrs, &incoming.audit_parts(h), resp.status().as_u16())
                    .await;
            }
            return incoming.finish(resp, "");
        }
    };
    let resp = audited(&state, &incoming, &user, req).await;
    incoming.finish(resp, &user.name)
}

/// Max-in-flight, authorization and the handler, inside the request's audit events.
async fn audited(
    state: &Arc<AppState>,
    incoming: &Incoming,
    user: &UserInfo,
    req: Request,
) -> Response {
    let info = &incoming.info;
    let attrs = attributes(user, info);
    let mut audit = match (&state.auditor, &incoming.audit_headers) {
        (Some(a), Some(h)) => a.begin(&attrs, &incoming.audit_parts(h)),
        _ => None,
    };
    if let Some(a) = audit.as_mut()
        && !a.request_received().await
    {
        // blocking-strict: a request that cannot be audited is not served.
        return ApiError::internal("failed to store audit event").into_response();
    }
    // Go's order: max-in-flight after authentication (system:masters may pass a full server)
    // and inside the audit filter (a 429 is audited), before authorization.
    let _slot = match state.limits.admit(info, user) {
        Ok(slot) => slot,
        Err(resp) => {
            return match audit {
                Some(a) => a.run(async { resp }, false).await,
                None => resp,
            };
        }
    };
    let (decision, reason) = state.authorizer.decide(&attrs).await;
    if let Some(a) = audit.as_mut() {
        a.authorized(&decision, &reason);
    }
    let handler = async {
        match decision {
            Decision::Allow => {
                // Boxed: the handler's future (decode, admission, storage, watch) is large, and
                // nested inside the audit and deadline wrappers it overflowed a worker's stack.
                let audit_id = &incoming.audit_id;
                let route = Box::pin(route(state, info, user, audit_id, req));
                let user_timeout = incoming.user_timeout.clone().ok().flatten();
                state
                    .limits
                    .deadline(info, user_timeout, incoming.started, route)
                    .await
            }
            Decision::Deny(reason) => crate::authz::forbidden(&attrs, &reason).into_response(),
            Decision::NoOpinion => crate::authz::forbidden(&attrs, "").into_response(),
            Decision::Error(e) => ApiError::internal(e).into_response(),
        }
    };
    match audit {
        Some(a) => a.run(handler, info.verb == Verb::Watch).await,
        None => handler.await,
    }
}

/// Every Go apiserver response carries these: the audit ID and (unless set) Cache-Control.
fn common_headers(resp: &mut Response, audit_id: &str) {
    audit::set_audit_id_header(resp, audit_id);
    let h = resp.headers_mut();
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
    }
}

/// What the authorizer is asked about: the user and the RequestInfo's verb and target.
fn attributes(user: &UserInfo, info: &RequestInfo) -> Attributes {
    Attributes {
        user: user.clone(),
        verb: info.verb.to_string(),
        resource_request: info.is_resource_request,
        api_group: info.api_group.clone(),
        api_version: info.api_version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
    }
}

/// A resource request goes to its handler; any other path to the static handler serving it.
/// Which of Go's two muxes a path reaches decides first (`go_restful`): a path the RequestInfo
/// reads as a resource request (`//apis/<group>/<version>/...`, another group) but outside the
/// group's web service is the plain mux's 404, as in Go (authorized as that resource first).
async fn route(
    state: &Arc<AppState>,
    info: &RequestInfo,
    user: &UserInfo,
    audit_id: &str,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let served = if go_restful(&info.path) {
        if info.is_resource_request {
            let rr = ResourceRequest {
                info,
                user,
                audit_id,
                headers: &parts.headers,
                query: parts.uri.query(),
                body: handlers::undeclared_over_limit(parts.version, body),
            };
            return handlers::serve(state, rr).await;
        }
        restful(state, &info.path, &parts)
    } else {
        plain(state, &info.path, &parts).await
    };
    served.unwrap_or_else(|e| e.into_response())
}

/// Whether Go's director (AS:`server/handler.go`) hands `path` (decoded) to go-restful rather
/// than to its plain mux: the discovery web service at exactly `/apis` or `/apis/`, the
/// group's (its versions are under it) and `/version`'s for their root path and anything under
/// it at a segment boundary.
fn go_restful(path: &str) -> bool {
    let group_root = format!("/apis/{}", crate::api::GROUP);
    path == "/apis"
        || path == "/apis/"
        || [group_root.as_str(), "/version"].iter().any(|root| {
            path.strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// The go-restful routes that are not resources: /apis, the group's and its versions'
/// discovery, /version. go-restful ignores trailing slashes (`/version//` is /version) but no
/// other empty segment (`/apis/<group>//v1beta1` is its 404 Status); they serve GET only (405
/// for another method on a route).
fn restful(
    state: &AppState,
    path: &str,
    parts: &http::request::Parts,
) -> Result<Response, ApiError> {
    let headers = &parts.headers;
    let path = path.trim_end_matches('/');
    let group_path = format!("/apis/{}", crate::api::GROUP);
    enum Route<'a> {
        Apis,
        Version,
        Group,
        GroupVersion(&'a str),
    }
    let route = match path {
        "/apis" => Route::Apis,
        "/version" => Route::Version,
        _ if path == group_path => Route::Group,
        _ => match path.strip_prefix(&format!("{group_path}/")) {
            Some(v) if !v.contains('/') => Route::GroupVersion(v),
            _ => return Err(ApiError::not_found_path()),
        },
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    match route {
        Route::Apis => discovery::apis(headers, &state.external_address),
        Route::Version => Ok(version::version()),
        Route::Group => discovery::group(headers),
        Route::GroupVersion(v) => discovery::version_resources(v, headers),
    }
}

/// Go's plain (non-go-restful) mux: exact paths for any method — the index, /metrics, the
/// health checks, /openapi/v2 and /openapi/v3 — and the `/openapi/v3/` prefix; any other path
/// (a trailing or doubled slash included: `//apis`, `/healthz//`, `/metrics/`) is its 404 with
/// the index of paths.
async fn plain(
    state: &AppState,
    path: &str,
    parts: &http::request::Parts,
) -> Result<Response, ApiError> {
    let (query, headers) = (parts.uri.query(), &parts.headers);
    match path {
        "/" | "/index.html" => Ok(index(StatusCode::OK)),
        "/metrics" => Ok(metrics(state).await),
        "/openapi/v2" | "/openapi/v3" => openapi::serve(path, query, headers),
        _ if path.starts_with("/openapi/v3/") => openapi::serve(path, query, headers),
        _ => {
            let down = state.shutting_down.load(Ordering::Relaxed);
            Ok(match state.health.handle(path, query, down).await {
                Some(resp) => resp,
                None => index(StatusCode::NOT_FOUND),
            })
        }
    }
}

/// The index of paths (Go's IndexLister): `/`, and the 404 of an unknown non-API path.
fn index(code: StatusCode) -> Response {
    response::json(code, &json!({"paths": INDEX_PATHS}))
}

/// `/metrics`: the OpenMetrics text of `AppState::metrics`.
async fn metrics(state: &AppState) -> Response {
    let mut resp = (StatusCode::OK, Body::from(state.metrics().await)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}
