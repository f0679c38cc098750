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

    let peer_chain: Vec<Vec<u8>> = req
        .extensions()
        .get::<Arc<axum_server::tls::TlsInfo>>()
        .map(|t| t.peer_certificates.clone())
        .unwrap_or_default();
    let user = match state
        .authenticator
        .authenticate(&peer_chain, req.headers_mut())
    {
        Ok(u) => u,
        Err(e) => return finish(e.into_response(), &method, &path, "", started),
    };
    let attrs = attributes(&user, &info);
    let mut resp = match state.authorizer.authorize(&attrs).await {
        Decision::Allow => route(&state, &info, &user, req).await,
        Decision::Deny(reason) => crate::authz::forbidden(&attrs, &reason).into_response(),
        Decision::NoOpinion => crate::authz::forbidden(&attrs, "").into_response(),
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
    finish(resp, &method, &path, &user.name, started)
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

fn finish(resp: Response, method: &Method, path: &str, user: &str, started: Instant) -> Response {
    tracing::info!(
        verb = %method,
        path,
        user,
        code = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
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
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return ApiError::method_not_allowed().into_response();
    }
    let path = info.path.trim_end_matches('/');
    let result = match path {
        "" | "/index.html" => Ok(response::json(
            StatusCode::OK,
            &json!({"paths": INDEX_PATHS}),
        )),
        "/version" => Ok(version::version()),
        "/apis" => discovery::apis(headers, &state.external_address),
        "/metrics" => Ok(metrics(state)),
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
        _ => Ok(response::json(
            StatusCode::NOT_FOUND,
            &json!({"paths": INDEX_PATHS}),
        )),
    };
    result.unwrap_or_else(|e| e.into_response())
}

/// Prometheus text for the storage writer (the full metrics set is a later issue).
fn metrics(state: &AppState) -> Response {
    let s = state.store.storage.stats();
    let mut out = String::new();
    out.push_str("# HELP wardle_storage_batches_total Write transactions committed by the group-commit writer.\n");
    out.push_str("# TYPE wardle_storage_batches_total counter\n");
    out.push_str(&format!("wardle_storage_batches_total {}\n", s.batches));
    out.push_str(
        "# HELP wardle_storage_writes_total Writes committed (each write is one event).\n",
    );
    out.push_str("# TYPE wardle_storage_writes_total counter\n");
    out.push_str(&format!("wardle_storage_writes_total {}\n", s.writes));
    out.push_str(
        "# HELP wardle_storage_batch_size_max The largest batch committed in one transaction.\n",
    );
    out.push_str("# TYPE wardle_storage_batch_size_max gauge\n");
    out.push_str(&format!("wardle_storage_batch_size_max {}\n", s.max_batch));
    let mut resp = (StatusCode::OK, Body::from(out)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
