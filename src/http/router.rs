//! The axum router: one entry point that authenticates, authorizes and dispatches every request
//! by its RequestInfo, so static paths and resource paths share one filter chain.

use super::handlers::{self, ResourceRequest};
use super::health::Health;
use super::request_info::RequestInfo;
use super::{discovery, openapi, response, version};
use crate::apimachinery::status::ApiError;
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
    /// host:port clients should use (discovery's serverAddressByClientCIDRs).
    pub external_address: String,
    pub shutting_down: AtomicBool,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(entry).with_state(state)
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
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let info = RequestInfo::new(&method, &path, req.uri().query());
    let labels =
        crate::metrics::RequestLabels::new(&info, &method, req.headers(), req.uri().query());

    let peer_chain: Vec<Vec<u8>> = req
        .extensions()
        .get::<Arc<axum_server::tls::TlsInfo>>()
        .map(|t| t.peer_certificates.clone())
        .unwrap_or_default();
    let user = match state
        .authenticator
        .authenticate_request(&peer_chain, req.headers_mut())
        .await
    {
        Ok(u) => u,
        Err(e) => return finish(e.into_response(), &info, &labels, "", started),
    };
    let attrs = attributes(&user, &info);
    let mut resp = match state.authorizer.authorize(&attrs).await {
        Decision::Allow => route(&state, &info, &user, req).await,
        Decision::Deny(reason) => crate::authz::forbidden(&attrs, &reason).into_response(),
        Decision::NoOpinion => crate::authz::forbidden(&attrs, "").into_response(),
        Decision::Error(e) => ApiError::internal(e).into_response(),
    };
    // Every Go apiserver response carries these.
    let h = resp.headers_mut();
    h.insert(
        "audit-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ascii"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
    }
    finish(resp, &info, &labels, &user.name, started)
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
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query();
    let headers = &parts.headers;
    if info.is_resource_request {
        let rr = ResourceRequest {
            info,
            user,
            headers,
            query,
            body,
        };
        return handlers::serve(state, rr).await;
    }
    let path = info.path.trim_end_matches('/');
    // Unknown paths are 404 whatever the method (Go's NotFoundHandler answers every method), so
    // `kubectl create namespace` here fails as its GET does; a known path only serves GET.
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return if serves_path(path) {
            ApiError::method_not_allowed().into_response()
        } else {
            not_found(path)
        };
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
                _ => Err(ApiError::not_found_path()),
            }
        }
        _ => Ok(not_found(path)),
    };
    result.unwrap_or_else(|e| e.into_response())
}

/// Whether a GET of the non-resource `path` (trailing `/` trimmed) can answer other than 404.
fn serves_path(path: &str) -> bool {
    matches!(path, "" | "/index.html" | "/version" | "/apis" | "/metrics")
        || ["/healthz", "/livez", "/readyz", "/openapi/"]
            .iter()
            .any(|p| path.starts_with(p))
        || path == format!("/apis/{}", crate::api::GROUP)
        || path
            .strip_prefix("/apis/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(group, v)| group == crate::api::GROUP && !v.contains('/'))
}

/// 404 for a path this server does not serve: under `/apis/` Go's go-restful answers a Status,
/// elsewhere its IndexLister answers the listed paths.
fn not_found(path: &str) -> Response {
    if path.starts_with("/apis/") {
        ApiError::not_found_path().into_response()
    } else {
        response::json(StatusCode::NOT_FOUND, &json!({"paths": INDEX_PATHS}))
    }
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
