//! Discovery documents: legacy (/apis, group, version) and aggregated apidiscovery.k8s.io/v2, with ETags.
//!
//! Everything is derived from `api::resources()` and `api::GROUP_VERSIONS`; nothing here knows a
//! kind by name. The aggregated document's exact Content-Type and ETag matter: kube-aggregator
//! accepts the document only with that Content-Type and polls it with If-None-Match.

use super::negotiate::{self, Format};
use crate::api::{self, GROUP, GROUP_VERSIONS, Resource};
use crate::apimachinery::status::ApiError;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use std::sync::OnceLock;

/// The exact Content-Type of the aggregated discovery document (kube-aggregator compares it).
pub const AGGREGATED_V2_JSON: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2_YAML: &str =
    "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The verbs every resource supports (the generic Store implements all of them), sorted.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `base64(sha256("<group>/<storageVersion>/<Kind>")[..8])`, Go's storageVersionHash.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// Uppercase hex sha512, the hash Go uses for discovery and OpenAPI ETags.
pub(crate) fn sha512_upper_hex(bytes: &[u8]) -> String {
    hex::encode_upper(Sha512::digest(bytes))
}

/// Served versions that at least one resource serves, in priority order.
fn served_versions() -> Vec<&'static str> {
    GROUP_VERSIONS
        .iter()
        .copied()
        .filter(|v| api::resources().iter().any(|r| r.serves(v)))
        .collect()
}

fn resources_of(version: &str) -> Vec<&'static dyn Resource> {
    let mut rs: Vec<&'static dyn Resource> = api::resources()
        .iter()
        .copied()
        .filter(|r| r.serves(version))
        .collect();
    rs.sort_by_key(|r| r.plural());
    rs
}

fn gv_for_discovery(version: &str) -> Value {
    json!({"groupVersion": format!("{GROUP}/{version}"), "version": version})
}

fn group_body() -> (Vec<Value>, Value) {
    let versions = served_versions();
    let preferred = versions
        .first()
        .map(|v| gv_for_discovery(v))
        .unwrap_or(Value::Null);
    (
        versions.iter().map(|v| gv_for_discovery(v)).collect(),
        preferred,
    )
}

/// `GET /apis` (legacy): APIGroupList with the address clients should use.
pub fn api_group_list(server_address: &str) -> Value {
    let (versions, preferred) = group_body();
    // No apiVersion: Go's legacy /apis handler writes the list without one.
    json!({
        "kind": "APIGroupList",
        "groups": [{
            "name": GROUP,
            "versions": versions,
            "preferredVersion": preferred,
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }],
    })
}

/// `GET /apis/<group>`: APIGroup (no serverAddressByClientCIDRs, as in Go).
pub fn api_group() -> Value {
    let (versions, preferred) = group_body();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": versions, "preferredVersion": preferred})
}

/// `GET /apis/<group>/<version>`: APIResourceList, or None for a version nobody serves.
pub fn api_resource_list(version: &str) -> Option<Value> {
    let rs = resources_of(version);
    if rs.is_empty() {
        return None;
    }
    let resources: Vec<Value> = rs
        .iter()
        .map(|r| {
            json!({
                "name": r.plural(),
                "singularName": r.singular(),
                "namespaced": r.namespaced(),
                "kind": r.kind(),
                "verbs": VERBS,
                "storageVersionHash": storage_version_hash(GROUP, r.storage_version(), r.kind()),
            })
        })
        .collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{version}"),
        "resources": resources,
    }))
}

/// The aggregated (apidiscovery.k8s.io/v2) document.
pub fn aggregated() -> Value {
    let versions: Vec<Value> = served_versions()
        .iter()
        .map(|v| {
            let resources: Vec<Value> = resources_of(v)
                .iter()
                .map(|r| {
                    json!({
                        "resource": r.plural(),
                        // Empty group/version: Go's Store is not a GroupVersionKindProvider.
                        "responseKind": {"group": "", "version": "", "kind": r.kind()},
                        "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular(),
                        "verbs": VERBS,
                    })
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{"metadata": {"name": GROUP}, "versions": versions}],
    })
}

/// The aggregated document, its compact JSON and its quoted ETag, computed once (static data).
fn aggregated_cached() -> &'static (Value, String) {
    static CACHE: OnceLock<(Value, String)> = OnceLock::new();
    CACHE.get_or_init(|| {
        let doc = aggregated();
        let compact = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", sha512_upper_hex(&compact));
        (doc, etag)
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn respond(value: &Value, format: Format, content_type: &str, pretty: bool) -> Response {
    let (body, _) = negotiate::encode(value, format, pretty);
    ([(header::CONTENT_TYPE, content_type.to_string())], body).into_response()
}

/// What the Accept header asks of `/apis`: the aggregated form (v2, json or yaml) or the legacy
/// list. Go decides by the first clause its discovery negotiation accepts; v2beta1 is removed
/// (gate AggregatedDiscoveryRemoveBetaType, locked on in 1.35), so its clauses are skipped and
/// a request listing nothing else gets the legacy handler's 406.
enum ApisChoice {
    Aggregated(Format),
    Legacy,
}

fn apis_choice(accept: Option<&str>) -> ApisChoice {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return ApisChoice::Legacy;
    };
    for c in negotiate::parse_accept(accept) {
        if c.refused() {
            continue;
        }
        let format = if c.matches("application", "json") {
            Format::Json
        } else if c.matches("application", "yaml") {
            Format::Yaml
        } else {
            continue;
        };
        let aggregated = c.param("as") == Some("APIGroupDiscoveryList")
            && c.param("g") == Some("apidiscovery.k8s.io");
        if aggregated && c.param("v") == Some("v2") {
            return ApisChoice::Aggregated(format);
        }
    }
    ApisChoice::Legacy
}

/// Go indents discovery JSON for curl, wget and browsers (the `pretty` query parameter is not
/// consulted here; clients of discovery never send it).
fn pretty(headers: &HeaderMap) -> bool {
    negotiate::wants_pretty(None, header_str(headers, header::USER_AGENT))
}

/// `GET /apis`: aggregated discovery when the Accept header asks for it, else the legacy list.
/// `server_address` is the `host:port` advertised in serverAddressByClientCIDRs.
pub fn apis(headers: &HeaderMap, server_address: &str) -> Result<Response, ApiError> {
    let pretty = pretty(headers);
    let accept = header_str(headers, header::ACCEPT);
    match apis_choice(accept) {
        ApisChoice::Aggregated(format) => {
            let (doc, etag) = aggregated_cached();
            let mut resp = if header_str(headers, header::IF_NONE_MATCH) == Some(etag.as_str()) {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                let ct = if format == Format::Json {
                    AGGREGATED_V2_JSON
                } else {
                    AGGREGATED_V2_YAML
                };
                respond(doc, format, ct, pretty)
            };
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(etag) {
                h.insert(header::ETAG, v);
            }
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
            Ok(resp)
        }
        ApisChoice::Legacy => {
            let format = negotiate::negotiate_plain(accept)?;
            Ok(respond(
                &api_group_list(server_address),
                format,
                format.content_type(),
                pretty,
            ))
        }
    }
}

/// `GET /apis/<group>`.
pub fn group(headers: &HeaderMap) -> Result<Response, ApiError> {
    let format = negotiate::negotiate_plain(header_str(headers, header::ACCEPT))?;
    Ok(respond(
        &api_group(),
        format,
        format.content_type(),
        pretty(headers),
    ))
}

/// `GET /apis/<group>/<version>`; an unserved version is go-restful's 404 Status.
pub fn version_resources(version: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let list = api_resource_list(version).ok_or_else(ApiError::not_found_path)?;
    let format = negotiate::negotiate_plain(header_str(headers, header::ACCEPT))?;
    Ok(respond(
        &list,
        format,
        format.content_type(),
        pretty(headers),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    async fn body(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn storage_version_hashes_match_go() {
        assert_eq!(
            storage_version_hash(GROUP, "v1alpha1", "Flunder"),
            "UHqNx5H3K7A="
        );
        assert_eq!(
            storage_version_hash(GROUP, "v1alpha1", "Fischer"),
            "YS5qRiSxzNM="
        );
    }

    #[test]
    fn legacy_documents() {
        let l = api_group_list("10.0.0.1:443");
        let g = &l["groups"][0];
        assert_eq!(g["name"], GROUP);
        assert_eq!(
            g["versions"][0]["groupVersion"],
            "wardle.example.com/v1beta1"
        );
        assert_eq!(g["versions"][1]["version"], "v1alpha1");
        assert_eq!(g["preferredVersion"]["version"], "v1beta1");
        assert_eq!(
            g["serverAddressByClientCIDRs"][0],
            json!({"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:443"})
        );
        let grp = api_group();
        assert_eq!(grp["kind"], "APIGroup");
        assert!(grp.get("serverAddressByClientCIDRs").is_none());

        let a = api_resource_list("v1alpha1").unwrap();
        assert_eq!(a["groupVersion"], "wardle.example.com/v1alpha1");
        let rs = a["resources"].as_array().unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(
            rs[0],
            json!({"name": "fischers", "singularName": "fischer", "namespaced": false, "kind": "Fischer",
                   "verbs": VERBS, "storageVersionHash": "YS5qRiSxzNM="})
        );
        assert_eq!(rs[1]["name"], "flunders");
        assert_eq!(rs[1]["namespaced"], true);
        assert_eq!(rs[1]["storageVersionHash"], "UHqNx5H3K7A=");
        let b = api_resource_list("v1beta1").unwrap();
        let rs = b["resources"].as_array().unwrap();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0]["storageVersionHash"], "UHqNx5H3K7A=");
        assert!(api_resource_list("v2").is_none());
        let mut sorted = VERBS.to_vec();
        sorted.sort();
        assert_eq!(sorted, VERBS);
    }

    #[test]
    fn aggregated_document() {
        let d = aggregated();
        assert_eq!(d["kind"], "APIGroupDiscoveryList");
        assert_eq!(d["metadata"], json!({}));
        let item = &d["items"][0];
        assert_eq!(item["metadata"], json!({"name": GROUP}));
        let vs = item["versions"].as_array().unwrap();
        assert_eq!(vs[0]["version"], "v1beta1");
        assert_eq!(vs[0]["freshness"], "Current");
        assert_eq!(vs[0]["resources"].as_array().unwrap().len(), 1);
        let alpha = vs[1]["resources"].as_array().unwrap();
        assert_eq!(alpha[0]["resource"], "fischers");
        assert_eq!(alpha[0]["scope"], "Cluster");
        assert_eq!(alpha[1]["scope"], "Namespaced");
        assert_eq!(alpha[1]["singularResource"], "flunder");
        assert_eq!(
            alpha[1]["responseKind"],
            json!({"group": "", "version": "", "kind": "Flunder"})
        );
        assert!(alpha[1].get("storageVersionHash").is_none());
    }

    #[tokio::test]
    async fn apis_negotiation_etag_and_304() {
        let r = apis(&headers(&[(header::ACCEPT, KUBECTL)]), "h:1").unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], AGGREGATED_V2_JSON);
        assert_eq!(r.headers()[header::VARY], "Accept");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public");
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() == 130,
            "{etag}"
        );
        assert_eq!(etag[1..129].to_uppercase(), etag[1..129]);
        let doc = body(r).await;
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        let expected = format!(
            "\"{}\"",
            sha512_upper_hex(&serde_json::to_vec(&doc).unwrap())
        );
        assert_eq!(etag, expected);

        let r = apis(
            &headers(&[(header::ACCEPT, KUBECTL), (header::IF_NONE_MATCH, &etag)]),
            "h:1",
        )
        .unwrap();
        assert_eq!(r.status(), 304);
        assert_eq!(r.headers()[header::ETAG], etag.as_str());
        let r = apis(
            &headers(&[(header::ACCEPT, KUBECTL), (header::IF_NONE_MATCH, "\"x\"")]),
            "h:1",
        )
        .unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn apis_legacy_and_beta() {
        for accept in [
            None,
            Some("application/json"),
            Some("*/*"),
            Some("application/json;g=x;v=v2;as=APIGroupDiscoveryList,application/json"),
        ] {
            let h = accept
                .map(|a| headers(&[(header::ACCEPT, a)]))
                .unwrap_or_default();
            let r = apis(&h, "h:1").unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
            assert!(r.headers().get(header::ETAG).is_none());
            assert_eq!(body(r).await["kind"], "APIGroupList");
        }
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        let r = apis(&headers(&[(header::ACCEPT, beta)]), "h:1");
        assert_eq!(r.unwrap_err().code, 406);
        let with_plain = format!("{beta},application/json");
        let r = apis(&headers(&[(header::ACCEPT, &with_plain)]), "h:1").unwrap();
        assert_eq!(body(r).await["kind"], "APIGroupList");
        let r = apis(&headers(&[(header::ACCEPT, "text/html")]), "h:1");
        assert_eq!(r.unwrap_err().code, 406);
        let yaml = "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let r = apis(&headers(&[(header::ACCEPT, yaml)]), "h:1").unwrap();
        assert_eq!(r.headers()[header::CONTENT_TYPE], AGGREGATED_V2_YAML);
    }

    #[tokio::test]
    async fn group_and_version_endpoints() {
        let r = group(&HeaderMap::new()).unwrap();
        assert_eq!(body(r).await["preferredVersion"]["version"], "v1beta1");
        let r = version_resources("v1alpha1", &HeaderMap::new()).unwrap();
        assert_eq!(body(r).await["kind"], "APIResourceList");
        let e = version_resources("v2", &HeaderMap::new()).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (404, "the server could not find the requested resource")
        );
        let e = group(&headers(&[(
            header::ACCEPT,
            "application/vnd.kubernetes.protobuf",
        )]))
        .unwrap_err();
        assert_eq!(e.code, 406);
    }
}
