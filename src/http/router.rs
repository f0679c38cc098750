//! The axum router: one entry point that authenticates, authorizes and dispatches every request
//! by its RequestInfo, so static paths and resource paths share one filter chain.

use super::handlers::{self, ResourceRequest};
use super::health::Health;
use super::request_info::RequestInfo;
use super::{discovery, openapi, response, version};
use crate::apimachinery::status::ApiError;
use crate::audit;
use crate::authn::{Authenticator, UserInfo};
use crate::authz::{Attributes, Authorizer, Decision};
use crate::registry::Store;
use crate::storage::cache::WatchCache;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Shared state of the HTTP server.
pub struct AppState {
    pub store: Store,
    /// This process's watch cache: watches are served from it.
    pub cache: WatchCache,
    pub compaction: Arc<crate::storage::compaction::CompactionStats>,
    pub health: Health,
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<Authorizer>,
    /// The audit policy and backends; None when auditing is off.
    pub auditor: Option<Arc<crate::audit::Auditor>>,
    /// host:port clients should use (discovery's serverAddressByClientCIDRs).
    pub external_address: String,
    pub shutting_down: AtomicBool,
    /// In-flight limits and the request deadline.
    pub limits: super::limits::Limits,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(guarded_entry).with_state(state)
}

/// `entry` with any panic answered as a 500 Status (the outermost filter, as in Go).
async fn guarded_entry(state: State<Arc<AppState>>, req: Request) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    super::limits::recover_panics(&method, &path, entry(state, req)).await
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

async fn entry(State(state): State<Arc<AppState>>, mut req: Request) -> Response {
    let started = Instant::now();
    let received = std::time::SystemTime::now();
    let method = req.method().clone();
    let path = super::request_info::decode_path(req.uri().path());
    let info = RequestInfo::new(&method, &path, req.uri().query());
    let labels =
        crate::metrics::RequestLabels::new(&info, &method, req.headers(), req.uri().query());
    // Go's WithAuditInit: the client's Audit-Id is kept, else one is made; it is echoed back.
    let audit_id = audit::request_audit_id(req.headers());

    // Errors are encoded as the request negotiated (Go's ErrorNegotiated), whichever stage fails.
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let pretty = super::negotiate::wants_pretty(
        super::request_info::query_param(req.uri().query(), "pretty").as_deref(),
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let encode_error = |resp| response::negotiate_error(resp, accept.as_deref(), pretty);

    let peer_chain: Vec<Vec<u8>> = req
        .extensions()
        .get::<Arc<axum_server::tls::TlsInfo>>()
        .map(|t| t.peer_certificates.clone())
        .unwrap_or_default();
    // Captured before authentication, which removes the credential headers.
    let audit_headers = state.auditor.as_ref().map(|_| req.headers().clone());
    let request_uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let parts = |headers| audit::RequestParts {
        audit_id: &audit_id,
        received,
        request_uri: &request_uri,
        headers,
        peer,
        client_cert: !peer_chain.is_empty(),
    };
    let auth = state
        .authenticator
        .authenticate_request(&peer_chain, req.headers_mut())
        .await;
    let user = match auth {
        Ok(u) => u,
        Err(e) => {
            let mut resp = encode_error(e.into_response());
            if let (Some(a), Some(h)) = (&state.auditor, &audit_headers) {
                let attrs = attributes(&UserInfo::default(), &info);
                a.failed_authentication(&attrs, &parts(h), resp.status().as_u16())
                    .await;
            }
            common_headers(&mut resp, &audit_id);
            return finish(resp, &info, &labels, "", &audit_id, started);
        }
    };
    let attrs = attributes(&user, &info);
    let mut audit = match (&state.auditor, &audit_headers) {
        (Some(a), Some(h)) => a.begin(&attrs, &parts(h)),
        _ => None,
    };
    if let Some(a) = audit.as_mut()
        && !a.request_received().await
    {
        // blocking-strict: a request that cannot be audited is not served.
        let mut resp =
            encode_error(ApiError::internal("failed to store audit event").into_response());
        common_headers(&mut resp, &audit_id);
        return finish(resp, &info, &labels, &user.name, &audit_id, started);
    }
    // Go's order: max-in-flight after authentication (system:masters may pass a full server)
    // and inside the audit filter (a 429 is audited), before authorization.
    let _slot = match state.limits.admit(&info, &user) {
        Ok(slot) => slot,
        Err(resp) => {
            let resp = match audit {
                Some(a) => a.run(async { resp }, false).await,
                None => resp,
            };
            let mut resp = encode_error(resp);
            common_headers(&mut resp, &audit_id);
            return finish(resp, &info, &labels, &user.name, &audit_id, started);
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
                state
                    .limits
                    .deadline(&info, Box::pin(route(&state, &info, &user, &audit_id, req)))
                    .await
            }
            Decision::Deny(reason) => crate::authz::forbidden(&attrs, &reason).into_response(),
            Decision::NoOpinion => crate::authz::forbidden(&attrs, "").into_response(),
            Decision::Error(e) => ApiError::internal(e).into_response(),
        }
    };
    let mut resp = match audit {
        Some(a) => a.run(handler, info.verb == "watch").await,
        None => handler.await,
    };
    resp = encode_error(resp);
    common_headers(&mut resp, &audit_id);
    finish(resp, &info, &labels, &user.name, &audit_id, started)
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
        verb: info.verb.clone(),
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

/// The one log line and the metrics of every request (a watch: when its stream starts).
fn finish(
    resp: Response,
    info: &RequestInfo,
    labels: &crate::metrics::RequestLabels,
    user: &str,
    audit_id: &str,
    started: Instant,
) -> Response {
    let elapsed = started.elapsed();
    let code = resp.status().as_u16();
    labels.record(code, elapsed);
    tracing::info!(
        verb = %info.verb,
        resource = %info.resource,
        subresource = %info.subresource,
        namespace = %info.namespace,
        name = %info.name,
        path = %info.path,
        user,
        audit_id,
        code,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

async fn route(
    state: &Arc<AppState>,
    info: &RequestInfo,
    user: &UserInfo,
    audit_id: &str,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query();
    let headers = &parts.headers;
    if info.is_resource_request {
        let rr = ResourceRequest {
            info,
            user,
            audit_id,
            headers,
            query,
            body,
        };
        return handlers::serve(state, rr).await;
    }
    let path = info.path.trim_end_matches('/');
    // Go serves /version and discovery through go-restful routes for GET only (405 otherwise);
    // the health checks, /metrics, /openapi, the index and paths of no route (another group, or
    // /api/v1/namespaces for `kubectl create namespace`: 404) are plain handlers for any method.
    let group_path = format!("/apis/{}", crate::api::GROUP);
    let restful = path == "/version"
        || path == "/apis"
        || path == group_path
        || path.starts_with(&format!("{group_path}/"));
    if restful && parts.method != Method::GET && parts.method != Method::HEAD {
        return ApiError::method_not_allowed().into_response();
    }
    let result = match path {
        "" | "/index.html" => Ok(response::json(
            StatusCode::OK,
            &json!({"paths": INDEX_PATHS}),
        )),
        "/version" => Ok(version::version()),
        "/apis" => discovery::apis(headers, &state.external_address),
        "/metrics" => Ok(metrics(state).await),
        _ if path.starts_with("/healthz")
            || path.starts_with("/livez")
            || path.starts_with("/readyz") =>
        {
            let down = state.shutting_down.load(Ordering::Relaxed);
            Ok(state.health.handle(path, query, down).await)
        }
        _ if path.starts_with("/openapi/") => openapi::serve(path, query, headers),
        _ if path == "/apis/wardle.example.com" => discovery::group(headers),
        _ if path.starts_with("/apis/") => {
            let parts: Vec<&str> = path.trim_start_matches("/apis/").split('/').collect();
            match parts.as_slice() {
                [group, v] if *group == crate::api::GROUP => {
                    discovery::version_resources(v, headers)
                }
                [group, ..] if *group == crate::api::GROUP => Err(ApiError::not_found_path()),
                // Another group is no path of this server: the index, as for any unknown path.
                _ => Ok(response::json(
                    StatusCode::NOT_FOUND,
                    &json!({"paths": INDEX_PATHS}),
                )),
            }
        }
        _ => Ok(response::json(
            StatusCode::NOT_FOUND,
            &json!({"paths": INDEX_PATHS}),
        )),
    };
    result.unwrap_or_else(|e| e.into_response())
}

/// Prometheus text for storage, compaction and the watch cache (the full set is a later issue).
async fn metrics(state: &AppState) -> Response {
    use std::fmt::Write;
    let s = state.store.storage.stats();
    let c = &state.compaction;
    let cache_head = state.cache.head().max(0) as u64;
    // The committed counter and horizon come from the database; if it is down, report what
    // the cache knows and let /readyz tell the story.
    let (head, compacted) = state
        .store
        .storage
        .heads()
        .await
        .unwrap_or((state.cache.head(), 0));
    let series: [(&str, &str, &str, u64); 10] = [
        (
            "wardle_storage_head_rv",
            "gauge",
            "The committed resourceVersion (the database's counter).",
            head.max(0) as u64,
        ),
        (
            "wardle_storage_compacted_rv",
            "gauge",
            "Events at or below this resourceVersion may have been compacted away.",
            compacted.max(0) as u64,
        ),
        (
            "wardle_watch_cache_lag",
            "gauge",
            "Committed resourceVersions the watch cache has not applied yet.",
            (head.max(0) as u64).saturating_sub(cache_head),
        ),
        (
            "wardle_storage_batches_total",
            "counter",
            "Write transactions committed by the group-commit writer.",
            s.batches,
        ),
        (
            "wardle_storage_writes_total",
            "counter",
            "Writes committed (each write is one event).",
            s.writes,
        ),
        (
            "wardle_storage_batch_size_max",
            "gauge",
            "The largest batch committed in one transaction.",
            s.max_batch as u64,
        ),
        (
            "wardle_watch_cache_head_rv",
            "gauge",
            "The resourceVersion the watch cache has applied.",
            state.cache.head().max(0) as u64,
        ),
        (
            "wardle_watch_cache_oldest_rv",
            "gauge",
            "The oldest resourceVersion a watch can resume from without the database.",
            state.cache.oldest_rv().max(0) as u64,
        ),
        (
            "wardle_compaction_runs_total",
            "counter",
            "Compaction runs of this process.",
            c.runs.load(Ordering::Relaxed),
        ),
        (
            "wardle_compaction_errors_total",
            "counter",
            "Compaction runs that failed (retried next interval).",
            c.errors.load(Ordering::Relaxed),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in series {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
    let gauges = crate::metrics::Gauges {
        objects: state
            .store
            .storage
            .object_counts()
            .await
            .unwrap_or_default(),
        writer_queue_depth: state.store.storage.queue_depth(),
        history_pruned: c.history_pruned.load(Ordering::Relaxed),
    };
    crate::metrics::render(&mut out, &gauges);
    let mut resp = (StatusCode::OK, Body::from(out)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
