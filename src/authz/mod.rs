//! Authorization: system:masters, always-allowed paths, then delegated SubjectAccessReview.
//!
//! Mirrors Go's union authorizer: members are asked in order, the first Allow or Deny wins,
//! and if every member has no opinion the request is forbidden. `forbidden` renders the 403
//! exactly like `responsewriters.Forbidden`.

pub mod webhook;

use crate::apimachinery::gofmt::go_quote;
use anyhow::{Result, bail};
use std::sync::Arc;

use crate::apimachinery::status::{ApiError, Reason};
use crate::authn::{SYSTEM_MASTERS, UserInfo};

/// `--authorization-always-allow-paths` default.
pub const DEFAULT_ALWAYS_ALLOW_PATHS: [&str; 3] = ["/healthz", "/readyz", "/livez"];
/// `--authorization-always-allow-groups` default.
pub const DEFAULT_ALWAYS_ALLOW_GROUPS: [&str; 1] = [SYSTEM_MASTERS];

/// Go's `authorizer.Attributes`, as filled from the RequestInfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the reason appended to the 403 message (may be empty).
    Deny(String),
    NoOpinion,
    /// The decision could not be made (the SubjectAccessReview failed): Go answers 500.
    Error(String),
}

/// A member of the union.
#[derive(Debug, Clone)]
enum Rule {
    /// SubjectAccessReview to the core cluster (`--authorization-kubeconfig`); async, so
    /// [`Authorizer::authorize`] asks it directly.
    Webhook(Arc<webhook::SubjectAccessReviewer>),
    /// Users in any of these groups may do anything.
    PrivilegedGroups(Vec<String>),
    /// Non-resource paths anyone may request: exact (without the leading `/`) or prefixes
    /// (a pattern's trailing `*` removed).
    Paths {
        exact: Vec<String>,
        prefixes: Vec<String>,
    },
}

impl Rule {
    /// The decision and, for NoOpinion, a reason to show if the request ends up forbidden.
    fn decide(&self, attrs: &Attributes) -> (Decision, String) {
        match self {
            Rule::Webhook(_) => (Decision::NoOpinion, String::new()),
            Rule::PrivilegedGroups(groups) => {
                if attrs.user.groups.iter().any(|g| groups.contains(g)) {
                    (Decision::Allow, String::new())
                } else {
                    (Decision::NoOpinion, String::new())
                }
            }
            Rule::Paths { exact, prefixes } => {
                if attrs.resource_request {
                    return (Decision::NoOpinion, String::new());
                }
                let p = attrs.path.strip_prefix('/').unwrap_or(&attrs.path);
                if exact.iter().any(|e| e == p)
                    || prefixes.iter().any(|pre| p.starts_with(pre.as_str()))
                {
                    (Decision::Allow, String::new())
                } else {
                    (Decision::NoOpinion, String::new())
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    rules: Vec<Rule>,
}

impl Default for Authorizer {
    /// The standalone set: `system:masters` and `/healthz`, `/readyz`, `/livez`.
    fn default() -> Self {
        Authorizer::new(
            DEFAULT_ALWAYS_ALLOW_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }
}

impl Authorizer {
    /// `system:masters` plus `--authorization-always-allow-paths`. Lenient: a pattern with a
    /// `*` before its end (which Go refuses at startup) is logged and ignored; use
    /// [`Authorizer::with_groups`] to fail on it instead.
    pub fn new(always_allow_paths: Vec<String>) -> Self {
        let groups: Vec<String> = DEFAULT_ALWAYS_ALLOW_GROUPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let valid: Vec<String> = always_allow_paths
            .into_iter()
            .filter(|p| {
                let ok = parse_path(p).is_ok();
                if !ok {
                    tracing::warn!(path = %p, "ignoring always-allow path: only a trailing * is allowed");
                }
                ok
            })
            .collect();
        Self::with_groups(&groups, &valid).unwrap_or_else(|_| Authorizer {
            rules: vec![Rule::PrivilegedGroups(groups)],
        })
    }

    /// Build from `--authorization-always-allow-groups` / `-paths`. A `*` anywhere but at the
    /// end of a path is an error, as in Go.
    pub fn with_groups(
        always_allow_groups: &[String],
        always_allow_paths: &[String],
    ) -> Result<Self> {
        let mut rules = Vec::new();
        if !always_allow_groups.is_empty() {
            rules.push(Rule::PrivilegedGroups(always_allow_groups.to_vec()));
        }
        if !always_allow_paths.is_empty() {
            let mut exact = Vec::new();
            let mut prefixes = Vec::new();
            for p in always_allow_paths {
                match parse_path(p)? {
                    PathPattern::Exact(e) => exact.push(e),
                    PathPattern::Prefix(pre) => prefixes.push(pre),
                }
            }
            rules.push(Rule::Paths { exact, prefixes });
        }
        Ok(Authorizer { rules })
    }

    /// Append the SubjectAccessReview member (asked last, as in Go).
    pub fn with_webhook(mut self, reviewer: webhook::SubjectAccessReviewer) -> Self {
        self.rules.push(Rule::Webhook(Arc::new(reviewer)));
        self
    }

    /// Ask each member in order; the first Allow/Deny wins. If none has an opinion the request
    /// is denied; reasons the members gave are joined with newlines (Go's union) and, when
    /// present, come back as `Deny(reasons)`, otherwise as `NoOpinion`. Both mean 403.
    pub async fn authorize(&self, attrs: &Attributes) -> Decision {
        self.decide(attrs).await.0
    }

    /// [`Authorizer::authorize`] plus the reason the deciding member gave (for an Allow too),
    /// which the audit event records as `authorization.k8s.io/reason`.
    pub async fn decide(&self, attrs: &Attributes) -> (Decision, String) {
        let mut reasons = Vec::new();
        for rule in &self.rules {
            let answer = match rule {
                Rule::Webhook(w) => match w.decide(attrs).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "authorization webhook failed");
                        return (Decision::Error(e), String::new());
                    }
                },
                _ => rule.decide(attrs),
            };
            match answer {
                (Decision::NoOpinion, reason) => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
                (decision, reason) => return (decision, reason),
            }
        }
        if reasons.is_empty() {
            (Decision::NoOpinion, String::new())
        } else {
            let reason = reasons.join("\n");
            (Decision::Deny(reason.clone()), reason)
        }
    }
}

enum PathPattern {
    Exact(String),
    Prefix(String),
}

/// Go's path authorizer parsing: the leading `/` is dropped, `""` means `/`, and a trailing `*`
/// makes a prefix; a `*` anywhere else is an error.
fn parse_path(p: &str) -> Result<PathPattern> {
    let p = p.strip_prefix('/').unwrap_or(p);
    if p.is_empty() {
        return Ok(PathPattern::Exact(String::new()));
    }
    let head = &p[..p.len() - p.chars().last().map_or(0, char::len_utf8)];
    if head.contains('*') {
        bail!("only trailing * allowed in {p:?}");
    }
    Ok(match p.strip_suffix('*') {
        Some(prefix) => PathPattern::Prefix(prefix.to_string()),
        None => PathPattern::Exact(p.to_string()),
    })
}

/// The 403 for a request the authorizer did not allow, byte for byte as Go writes it
/// (`responsewriters.Forbidden` + `apierrors.NewForbidden`); `reason` is appended as `: reason`.
pub fn forbidden(attrs: &Attributes, reason: &str) -> ApiError {
    let mut msg = sanitize(&forbidden_message(attrs));
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    let message = if attrs.api_group.is_empty() && attrs.resource.is_empty() {
        format!("forbidden: {msg}")
    } else {
        let gr = if attrs.api_group.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}.{}", attrs.resource, attrs.api_group)
        };
        if attrs.name.is_empty() {
            format!("{gr} is forbidden: {msg}")
        } else {
            format!("{gr} {} is forbidden: {msg}", go_quote(&attrs.name))
        }
    };
    ApiError::new(403, Reason::Forbidden, message).for_object(
        &attrs.name,
        &attrs.api_group,
        &attrs.resource,
    )
}

fn forbidden_message(a: &Attributes) -> String {
    let user = go_quote(&a.user.name);
    if !a.resource_request {
        return format!("User {user} cannot {} path {}", a.verb, go_quote(&a.path));
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource.push('/');
        resource.push_str(&a.subresource);
    }
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {}", go_quote(&a.namespace))
    };
    format!(
        "User {user} cannot {} resource {} in API group {} {scope}",
        a.verb,
        go_quote(&resource),
        go_quote(&a.api_group)
    )
}

/// Go avoids anything that looks like HTML in this message (quotes are fine).
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn res(verb: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            user: user("bob", &["system:authenticated"]),
            verb: verb.into(),
            resource_request: true,
            api_group: "wardle.example.com".into(),
            api_version: "v1alpha1".into(),
            resource: "flunders".into(),
            namespace: ns.into(),
            name: name.into(),
            path: "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders".into(),
            ..Default::default()
        }
    }

    fn non_res(u: UserInfo, verb: &str, path: &str) -> Attributes {
        Attributes {
            user: u,
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_match_go() {
        let e = forbidden(&res("list", "default", ""), "");
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, Reason::Forbidden);
        assert_eq!(
            e.message,
            r#"flunders.wardle.example.com is forbidden: User "bob" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "default""#
        );
        let s = e.to_status();
        assert_eq!(
            s["details"],
            serde_json::json!({"group": "wardle.example.com", "kind": "flunders"})
        );

        let e = forbidden(&res("get", "default", "x"), "");
        assert_eq!(
            e.message,
            r#"flunders.wardle.example.com "x" is forbidden: User "bob" cannot get resource "flunders" in API group "wardle.example.com" in the namespace "default""#
        );
        assert_eq!(e.to_status()["details"]["name"], "x");

        let mut cluster = res("list", "", "");
        cluster.resource = "fischers".into();
        assert_eq!(
            forbidden(&cluster, "").message,
            r#"fischers.wardle.example.com is forbidden: User "bob" cannot list resource "fischers" in API group "wardle.example.com" at the cluster scope"#
        );

        let mut sub = res("update", "ns1", "x");
        sub.subresource = "status".into();
        assert_eq!(
            forbidden(&sub, "").message,
            r#"flunders.wardle.example.com "x" is forbidden: User "bob" cannot update resource "flunders/status" in API group "wardle.example.com" in the namespace "ns1""#
        );

        let e = forbidden(&non_res(UserInfo::anonymous(), "get", "/metrics"), "");
        assert_eq!(
            e.message,
            r#"forbidden: User "system:anonymous" cannot get path "/metrics""#
        );
        assert_eq!(e.to_status()["details"], serde_json::json!({}));

        let e = forbidden(&res("list", "default", ""), "no RBAC policy matched");
        assert!(
            e.message
                .ends_with(r#"in the namespace "default": no RBAC policy matched"#),
            "{}",
            e.message
        );
    }

    #[test]
    fn odd_input_is_quoted_and_sanitized() {
        let e = forbidden(&non_res(user("a\"b", &[]), "get", "/<script>&"), "");
        assert_eq!(
            e.message,
            r#"forbidden: User "a\"b" cannot get path "/&lt;script&gt;&amp;""#
        );
        // A resource request without a resource (GET /apis/<g>/<v>) keeps Go's odd prefix.
        let mut a = res("get", "", "");
        a.resource.clear();
        assert!(
            forbidden(&a, "")
                .message
                .starts_with(".wardle.example.com is forbidden: ")
        );
        assert_eq!(go_quote("tab\there\u{1}"), r#""tab\there\x01""#);
    }

    #[tokio::test]
    async fn union_decisions() {
        let authz = Authorizer::default();
        let masters = user("wardle-admin", &["system:masters", "system:authenticated"]);
        assert_eq!(
            authz.authorize(&res("delete", "default", "x")).await,
            Decision::NoOpinion
        );
        let mut admin_req = res("delete", "default", "x");
        admin_req.user = masters.clone();
        assert_eq!(authz.authorize(&admin_req).await, Decision::Allow);
        assert_eq!(
            authz.authorize(&non_res(masters, "get", "/metrics")).await,
            Decision::Allow
        );

        let anon = UserInfo::anonymous();
        for p in ["/healthz", "/readyz", "/livez"] {
            assert_eq!(
                authz.authorize(&non_res(anon.clone(), "get", p)).await,
                Decision::Allow,
                "{p}"
            );
        }
        for p in ["/healthz/ping", "/metrics", "/livez/", "/"] {
            assert_eq!(
                authz.authorize(&non_res(anon.clone(), "get", p)).await,
                Decision::NoOpinion,
                "{p}"
            );
        }
        // The path list never applies to resource requests, whatever their path.
        let mut r = res("get", "", "");
        r.user = anon;
        r.path = "/healthz".into();
        assert_eq!(authz.authorize(&r).await, Decision::NoOpinion);
    }

    #[tokio::test]
    async fn path_patterns() {
        let authz =
            Authorizer::with_groups(&[], &["/openapi/*".into(), "/".into(), "version".into()])
                .expect("ok");
        let anon = UserInfo::anonymous();
        for (p, want) in [
            ("/openapi/v2", Decision::Allow),
            ("/openapi/", Decision::Allow),
            ("/openapi", Decision::NoOpinion),
            ("/", Decision::Allow),
            ("/version", Decision::Allow),
            ("/versions", Decision::NoOpinion),
        ] {
            assert_eq!(
                authz.authorize(&non_res(anon.clone(), "get", p)).await,
                want,
                "{p}"
            );
        }
        assert!(Authorizer::with_groups(&[], &["/a*b".into()]).is_err());
        assert!(Authorizer::with_groups(&[], &["*".into()]).is_ok());
        // The lenient constructor drops the bad pattern and keeps the rest (and system:masters).
        let lenient = Authorizer::new(vec!["/a*b".into(), "/healthz".into()]);
        let anon = UserInfo::anonymous();
        assert_eq!(
            lenient
                .authorize(&non_res(anon.clone(), "get", "/healthz"))
                .await,
            Decision::Allow
        );
        assert_eq!(
            lenient.authorize(&non_res(anon, "get", "/a*b")).await,
            Decision::NoOpinion
        );
        let admin = user("x", &["system:masters"]);
        assert_eq!(
            lenient.authorize(&non_res(admin, "get", "/metrics")).await,
            Decision::Allow
        );
        let none = Authorizer::with_groups(&[], &[]).expect("ok");
        assert_eq!(
            none.authorize(&non_res(UserInfo::anonymous(), "get", "/healthz"))
                .await,
            Decision::NoOpinion
        );
    }
}
