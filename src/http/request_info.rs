//! RequestInfo: what a request path and method mean (verb, resource, namespace, name), as in Go's
//! `RequestInfoFactory`. Authorization and the resource dispatcher both read it.

use http::Method;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// False for non-resource paths (/healthz, /openapi/v2, /apis, ...).
    pub is_resource_request: bool,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection; lower-cased method otherwise.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The name came from the path (`.../flunders/<name>`), not from a metadata.name selector.
    pub name_in_path: bool,
    /// The request used the deprecated `/watch/` path prefix.
    pub legacy_watch_path: bool,
}

pub use crate::apimachinery::query::{parse_bool, query_param, query_params};

/// A request path percent-decoded as Go's `URL.Path` is (`+` stays a plus): object names that
/// need escaping in a URL (a space, non-ASCII letters) arrive as the names they are.
pub fn decode_path(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

impl RequestInfo {
    /// `path` is the decoded path (Go's `URL.Path`: `%20` is a space, `%2F` a slash that
    /// separates segments); see `decode_path`.
    pub fn new(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.as_str().to_lowercase(),
            ..Default::default()
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        // Only /apis/<group>/<version>/... are resource requests (there is no legacy /api group here).
        if parts.len() < 3 || parts[0] != "apis" {
            return info;
        }
        info.is_resource_request = true;
        info.api_group = parts[1].to_string();
        info.api_version = parts[2].to_string();
        let mut rest = &parts[3..];

        let mut watch = false;
        if rest.first() == Some(&"watch") {
            watch = true;
            info.legacy_watch_path = true;
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces") {
            if rest.len() > 1 {
                info.namespace = rest[1].to_string();
                if rest.len() > 2 {
                    rest = &rest[2..];
                } else {
                    // `/namespaces/<ns>` is the namespace object itself.
                    info.resource = "namespaces".into();
                    info.name = rest[1].to_string();
                    info.namespace.clear();
                    rest = &[];
                }
            } else {
                info.resource = "namespaces".into();
                rest = &[];
            }
        }
        if let Some(r) = rest.first() {
            info.resource = r.to_string();
        }
        if let Some(n) = rest.get(1) {
            info.name = n.to_string();
            info.name_in_path = true;
        }
        if let Some(s) = rest.get(2) {
            info.subresource = s.to_string();
        }
        if rest.len() > 3 {
            // Deeper paths name nothing we serve; keep them distinguishable for a 404.
            info.subresource = rest[2..].join("/");
        }
        if info.resource.is_empty() {
            // /apis/<group>/<version> is discovery, not a resource request.
            info.is_resource_request = false;
            return info;
        }

        let watch_param = query_param(query, "watch")
            .and_then(|v| parse_bool(&v))
            .unwrap_or(false);
        info.verb = match *method {
            Method::GET | Method::HEAD if watch || watch_param => "watch".into(),
            Method::GET | Method::HEAD if info.name.is_empty() => "list".into(),
            Method::GET | Method::HEAD => "get".into(),
            Method::POST => "create".into(),
            Method::PUT => "update".into(),
            Method::PATCH => "patch".into(),
            Method::DELETE if info.name.is_empty() => "deletecollection".into(),
            Method::DELETE => "delete".into(),
            _ => info.verb,
        };
        // list/watch by metadata.name is authorized as that name (Go does the same).
        if matches!(info.verb.as_str(), "list" | "watch")
            && info.name.is_empty()
            && let Some(fs) = query_param(query, "fieldSelector")
        {
            for req in fs.split(',') {
                if let Some(v) = req
                    .strip_prefix("metadata.name=")
                    .or_else(|| req.strip_prefix("metadata.name=="))
                {
                    info.name = v.to_string();
                }
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths() {
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders",
            None,
        );
        assert!(i.is_resource_request);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("list", "default", "flunders")
        );
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders/x",
            None,
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("get", "x"));
        let i = RequestInfo::new(
            &Method::DELETE,
            "/apis/wardle.example.com/v1alpha1/fischers",
            None,
        );
        assert_eq!(i.verb, "deletecollection");
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/watch/namespaces/ns/flunders",
            None,
        );
        assert_eq!((i.verb.as_str(), i.legacy_watch_path), ("watch", true));
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/flunders",
            Some("watch=1"),
        );
        assert_eq!(i.verb, "watch");
        let i = RequestInfo::new(
            &Method::PATCH,
            "/apis/wardle.example.com/v1alpha1/fischers/f",
            None,
        );
        assert_eq!(
            (i.verb.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("patch", "f", "")
        );
    }

    #[test]
    fn non_resource_paths() {
        for p in [
            "/apis",
            "/apis/wardle.example.com",
            "/apis/wardle.example.com/v1alpha1",
            "/healthz",
            "/openapi/v2",
        ] {
            let i = RequestInfo::new(&Method::GET, p, None);
            assert!(!i.is_resource_request, "{p}");
            assert_eq!(i.verb, "get");
        }
    }

    #[test]
    fn field_selector_names_the_object() {
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/g/v1/namespaces/d/flunders",
            Some("fieldSelector=metadata.name%3Dabc"),
        );
        assert_eq!(i.name, "abc");
    }

    #[test]
    fn query_decoding() {
        let q = query_params(Some("labelSelector=a%20in%20(b%2Cc)&x=1+2&flag"));
        assert_eq!(q[0], ("labelSelector".into(), "a in (b,c)".into()));
        assert_eq!(q[1], ("x".into(), "1 2".into()));
        assert_eq!(q[2], ("flag".into(), "".into()));
    }
}
