//! RequestInfo: what a request path and method mean (verb, resource, namespace, name), as in Go's
//! `RequestInfoFactory`. Authorization and the resource dispatcher both read it.

use crate::apimachinery::query::{Params, go_bool, query_param};
use crate::apimachinery::verb::Verb;
use crate::metrics::{RequestLabelValues, RequestLabels};
use http::{HeaderMap, Method};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// False for non-resource paths (/healthz, /openapi/v2, /apis, ...).
    pub is_resource_request: bool,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection; the method otherwise.
    pub verb: Verb,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    /// The path is `.../namespaces/<namespace>/<resource>...`, even with an empty namespace
    /// (`namespaces//flunders`, which Go routes as a namespaced path).
    pub namespace_in_path: bool,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The name came from the path (`.../flunders/<name>`), not from a metadata.name selector.
    pub name_in_path: bool,
    /// The request used the deprecated `/watch/` path prefix.
    pub legacy_watch_path: bool,
}

/// The API verb of a resource request's method (Go's RequestInfoFactory): GET is watch on the
/// `/watch/` prefix, and on a collection with `?watch` true as Go's query conversion reads it
/// (`go_bool` of the first value: `?watch=` and `?watch=maybe` watch); a named GET is a get
/// whatever `watch` says. None for a method no verb has.
fn resource_verb(method: &Method, info: &RequestInfo, query: Option<&str>) -> Option<Verb> {
    let watch_param = || query_param(query, "watch").is_some_and(|v| go_bool(&v));
    Some(match *method {
        Method::GET | Method::HEAD if info.legacy_watch_path => Verb::Watch,
        Method::GET | Method::HEAD if info.name.is_empty() && watch_param() => Verb::Watch,
        Method::GET | Method::HEAD if info.name.is_empty() => Verb::List,
        Method::GET | Method::HEAD => Verb::Get,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if info.name.is_empty() => Verb::DeleteCollection,
        Method::DELETE => Verb::Delete,
        _ => return None,
    })
}

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
            verb: Verb::of_method(method.as_str()),
            ..Default::default()
        };
        // Go's splitPath: the outer slashes go, inner empty segments stay, so
        // `.../namespaces//flunders` names the namespace "" (every namespace, as Go lists it)
        // and `.../ns1//flunders` names resource "" (a path no route serves: 404).
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        // Only /apis/<group>/<version>/... are resource requests (there is no legacy /api group here).
        if parts.len() < 3 || parts[0] != "apis" {
            return info;
        }
        info.is_resource_request = true;
        info.api_group = parts[1].to_string();
        info.api_version = parts[2].to_string();
        let mut rest = &parts[3..];

        if rest.first() == Some(&"watch") {
            info.legacy_watch_path = true;
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces") {
            if rest.len() > 1 {
                info.namespace = rest[1].to_string();
                if rest.len() > 2 {
                    info.namespace_in_path = true;
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

        info.verb = resource_verb(method, &info, query).unwrap_or(info.verb);
        // list/watch by metadata.name is authorized as that name (Go does the same).
        if matches!(info.verb, Verb::List | Verb::Watch)
            && info.name.is_empty()
            && let Some(fs) = query_param(query, "fieldSelector")
        {
            for req in fs.split(',') {
                if let Some(v) = req
                    .strip_prefix("metadata.name==")
                    .or_else(|| req.strip_prefix("metadata.name="))
                {
                    info.name = v.to_string();
                }
            }
        }
        info
    }
}

impl RequestInfo {
    /// The request's labels in kube-apiserver's request metrics. Only resources this server has
    /// become label values: an unknown path must not create a new series per request (unbounded
    /// memory); the APPLY verb needs the request's content type.
    pub fn metric_labels(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> RequestLabels {
        // Only this server's group, versions, resources and subresources, as static strings.
        let served = || {
            if !self.is_resource_request || self.api_group != crate::api::GROUP {
                return None;
            }
            let version = crate::api::GROUP_VERSIONS
                .iter()
                .find(|v| **v == self.api_version)?;
            let resource = crate::api::resource(&self.resource)?.plural();
            let subresource = match self.subresource.as_str() {
                "" => "",
                "status" => "status",
                _ => return None,
            };
            Some((crate::api::GROUP, *version, resource, subresource))
        };
        let (group, version, resource, subresource) = served().unwrap_or(("", "", "", ""));
        // Go's CleanScope.
        let scope = if !self.is_resource_request {
            ""
        } else if !self.name.is_empty() || self.verb == Verb::Create {
            "resource"
        } else if !self.namespace.is_empty() {
            "namespace"
        } else {
            "cluster"
        };
        // Go's CanonicalVerb + cleanVerb.
        let apply = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/apply-patch"));
        let verb = match method.as_str() {
            _ if self.verb == Verb::Watch => "WATCH",
            "GET" | "HEAD" if scope != "resource" && !scope.is_empty() => "LIST",
            "GET" | "HEAD" => "GET",
            "PATCH" if apply => "APPLY",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "CONNECT" => "CONNECT",
            _ => "other",
        };
        // Go's cleanDryRun: every dryRun value, deduplicated; any but `All` is "invalid" (so no
        // value a client makes up creates a series of its own).
        let dry_run = {
            let values = Params::parse(query).all("dryRun");
            if values.is_empty() {
                ""
            } else if values.iter().all(|v| v == "All") {
                "All"
            } else {
                "invalid"
            }
        };
        RequestLabels::new(RequestLabelValues {
            verb,
            dry_run,
            group,
            version,
            resource,
            subresource,
            scope,
        })
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
            (&i.verb, i.namespace.as_str(), i.resource.as_str()),
            (&Verb::List, "default", "flunders")
        );
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders/x",
            None,
        );
        assert_eq!((&i.verb, i.name.as_str()), (&Verb::Get, "x"));
        let i = RequestInfo::new(
            &Method::DELETE,
            "/apis/wardle.example.com/v1alpha1/fischers",
            None,
        );
        assert_eq!(i.verb, Verb::DeleteCollection);
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/watch/namespaces/ns/flunders",
            None,
        );
        assert_eq!((&i.verb, i.legacy_watch_path), (&Verb::Watch, true));
        let i = RequestInfo::new(
            &Method::GET,
            "/apis/wardle.example.com/v1alpha1/flunders",
            Some("watch=1"),
        );
        assert_eq!(i.verb, Verb::Watch);
        // Go's Convert_Slice_string_To_bool: only "0" and "false" (any case) are false, the
        // first value counts, and a named GET is a get.
        let verb = |path: &str, q: &str| RequestInfo::new(&Method::GET, path, Some(q)).verb;
        let fl = "/apis/wardle.example.com/v1alpha1/flunders";
        assert_eq!(verb(fl, "watch="), Verb::Watch);
        assert_eq!(verb(fl, "watch=maybe"), Verb::Watch);
        assert_eq!(verb(fl, "watch=FaLsE"), Verb::List);
        assert_eq!(verb(fl, "watch=0&watch=1"), Verb::List);
        assert_eq!(verb(fl, "watch=1&watch=0"), Verb::Watch);
        let named = "/apis/wardle.example.com/v1alpha1/namespaces/n/flunders/f";
        assert_eq!(verb(named, "watch=1"), Verb::Get);
        let legacy = "/apis/wardle.example.com/v1alpha1/watch/namespaces/n/flunders/f";
        assert_eq!(verb(legacy, "watch=0"), Verb::Watch);
        let i = RequestInfo::new(
            &Method::PATCH,
            "/apis/wardle.example.com/v1alpha1/fischers/f",
            None,
        );
        assert_eq!(
            (&i.verb, i.name.as_str(), i.namespace.as_str()),
            (&Verb::Patch, "f", "")
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
            assert_eq!(i.verb, Verb::Get);
        }
    }

    #[test]
    fn empty_segments_stay_as_in_go() {
        let b = "/apis/wardle.example.com/v1beta1";
        let all = RequestInfo::new(&Method::GET, &format!("{b}/namespaces//flunders"), None);
        assert!(all.is_resource_request);
        assert_eq!(
            (&all.verb, all.namespace.as_str(), all.resource.as_str()),
            (&Verb::List, "", "flunders")
        );
        for p in [
            format!("{b}/namespaces/ns1//flunders"),
            format!("{b}//namespaces/ns1/flunders/f1"),
        ] {
            let i = RequestInfo::new(&Method::GET, &p, None);
            assert!(i.resource.is_empty(), "{p}: {i:?}");
        }
        let named = RequestInfo::new(
            &Method::GET,
            &format!("{b}/namespaces/ns1/flunders//f1"),
            None,
        );
        assert_eq!(
            (named.name.as_str(), named.subresource.as_str()),
            ("", "f1")
        );
        // Outer slashes still go.
        let i = RequestInfo::new(
            &Method::GET,
            &format!("/{b}/namespaces/ns1/flunders/f1//"),
            None,
        );
        assert_eq!((i.namespace.as_str(), i.name.as_str()), ("ns1", "f1"));
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
    fn metric_labels_follow_go() {
        let labels = |method: Method, path: &str, query: Option<&str>, ct: Option<&str>| {
            let info = RequestInfo::new(&method, path, query);
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            info.metric_labels(&method, &h, query).values()
        };
        let ns = "/apis/wardle.example.com/v1alpha1/namespaces/ns/flunders";
        let list = RequestLabelValues {
            verb: "LIST",
            dry_run: "",
            group: "wardle.example.com",
            version: "v1alpha1",
            resource: "flunders",
            subresource: "",
            scope: "namespace",
        };
        assert_eq!(labels(Method::GET, ns, None, None), list);
        assert_eq!(
            labels(Method::GET, ns, Some("watch=true"), None).verb,
            "WATCH"
        );
        assert_eq!(
            labels(Method::GET, &format!("{ns}/a/status"), None, None),
            RequestLabelValues {
                verb: "GET",
                subresource: "status",
                scope: "resource",
                ..list
            }
        );
        let create = labels(Method::POST, ns, Some("dryRun=All"), None);
        assert_eq!((create.verb, create.dry_run), ("POST", "All"));
        assert_eq!(create.scope, "resource");
        for (q, want) in [
            ("dryRun=All&dryRun=All", "All"),
            ("dryRun=", "invalid"),
            ("dryRun=x", "invalid"),
        ] {
            assert_eq!(labels(Method::POST, ns, Some(q), None).dry_run, want, "{q}");
        }
        let apply = labels(
            Method::PATCH,
            &format!("{ns}/a"),
            None,
            Some("application/apply-patch+yaml"),
        );
        assert_eq!(apply.verb, "APPLY");
        assert_eq!(labels(Method::OPTIONS, ns, None, None).verb, "other");
        let cluster = labels(
            Method::GET,
            "/apis/wardle.example.com/v1alpha1/fischers",
            None,
            None,
        );
        assert_eq!(cluster.scope, "cluster");
        // Unknown resources, versions, subresources and non-resource paths get no resource
        // labels.
        let none = RequestLabelValues {
            group: "",
            version: "",
            resource: "",
            subresource: "",
            ..list
        };
        for path in [
            "/apis/wardle.example.com/v1alpha1/namespaces/ns/nope\"x",
            "/apis/wardle.example.com/v9/namespaces/ns/flunders",
            "/apis/other.example.com/v1alpha1/namespaces/ns/flunders",
        ] {
            assert_eq!(labels(Method::GET, path, None, None), none, "{path}");
        }
        assert_eq!(
            labels(Method::GET, &format!("{ns}/a/nope"), None, None).resource,
            ""
        );
        assert_eq!(
            labels(Method::GET, "/metrics", None, None),
            RequestLabelValues {
                verb: "GET",
                scope: "",
                ..none
            }
        );
    }
}
