//! The audit policy: an `audit.k8s.io/v1` Policy file and the rule evaluation of Go's
//! `k8s.io/apiserver/pkg/audit/policy/checker.go` — the first matching rule decides the level,
//! the omitted stages and whether managedFields are dropped.

use serde::Deserialize;
use std::path::Path;

use crate::authz::Attributes;

/// How much of a request is recorded (Go's `audit.Level`), in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// The points of a request's life an event is sent at (Go's `audit.Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Stage {
    RequestReceived,
    /// Long-running requests (watches) only: the headers have been sent.
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

/// `GroupResources`: resources of one API group, optionally only some names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupResources {
    pub group: String,
    /// `resource`, `resource/subresource`, `*`, `*/subresource` or `resource/*`.
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

/// `PolicyRule`: every non-empty list must match; empty lists match everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// `""` matches non-namespaced resources.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Paths; `*` alone matches all, a trailing `*` matches a prefix.
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Overrides the policy's `omitManagedFields` when set.
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// `Policy` as read from `--audit-policy-file` (YAML or JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub rules: Vec<PolicyRule>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// What the policy decided for one request (Go's `RequestAuditConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuditConfig {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

impl Policy {
    /// Read and validate a policy file. Errors name the file and the fault, as Go's
    /// `LoadPolicyFromFile` does (an empty rule list is refused).
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading audit policy {}: {e}", path.display()))?;
        Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("loading audit policy file {}: {e}", path.display()))
    }

    /// Parse and validate a policy document (YAML, of which JSON is a subset).
    pub fn parse(text: &str) -> anyhow::Result<Policy> {
        let mut p: Policy =
            serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
        if p.kind != "Policy" {
            anyhow::bail!("kind {:?} is not Policy", p.kind);
        }
        if p.api_version != "audit.k8s.io/v1" {
            anyhow::bail!(
                "apiVersion {:?} is not supported (audit.k8s.io/v1)",
                p.api_version
            );
        }
        if p.rules.is_empty() {
            anyhow::bail!("loaded illegal policy with 0 rules");
        }
        for (i, r) in p.rules.iter().enumerate() {
            if !r.non_resource_urls.is_empty()
                && (!r.resources.is_empty() || !r.namespaces.is_empty())
            {
                anyhow::bail!(
                    "rules[{i}]: rules cannot apply to both regular resources and non-resource URLs"
                );
            }
            // Go's validation: URLs start with `/` and `*` only ends them; groups are DNS
            // subdomains; resourceNames need resources.
            for url in &r.non_resource_urls {
                if url != "*" && !url.starts_with('/') {
                    anyhow::bail!(
                        "rules[{i}].nonResourceURLs: {url:?}: non-resource URL rules must begin with a '/' character"
                    );
                }
                if url != "*" && url.strip_suffix('*').unwrap_or(url).contains('*') {
                    anyhow::bail!(
                        "rules[{i}].nonResourceURLs: {url:?}: non-resource URL wildcards '*' must be the final character of the rule"
                    );
                }
            }
            for gr in &r.resources {
                let msgs = crate::apimachinery::meta::is_dns1123_subdomain(&gr.group);
                if !gr.group.is_empty() && !msgs.is_empty() {
                    anyhow::bail!(
                        "rules[{i}].resources.group: {:?}: {}",
                        gr.group,
                        msgs.join(",")
                    );
                }
                if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                    anyhow::bail!(
                        "rules[{i}].resources.resourceNames: using resourceNames requires at least one resource"
                    );
                }
            }
        }
        // Go's NewPolicyRuleEvaluator: a rule omits its own stages and the policy's.
        let policy_stages = p.omit_stages.clone();
        for r in &mut p.rules {
            for s in &policy_stages {
                if !r.omit_stages.contains(s) {
                    r.omit_stages.push(*s);
                }
            }
        }
        Ok(p)
    }

    /// The first matching rule's decision, else level None with the policy's stages.
    pub fn evaluate(&self, attrs: &Attributes) -> RequestAuditConfig {
        match self.rules.iter().find(|r| r.matches(attrs)) {
            Some(r) => RequestAuditConfig {
                level: r.level,
                omit_stages: r.omit_stages.clone(),
                omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
            },
            None => RequestAuditConfig {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            },
        }
    }
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|s| s == v)
}

impl PolicyRule {
    /// Go's `ruleMatches`.
    fn matches(&self, a: &Attributes) -> bool {
        if !self.users.is_empty() && !has(&self.users, &a.user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !a.user.groups.iter().any(|g| has(&self.user_groups, g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !has(&self.verbs, &a.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(a);
        }
        if !self.non_resource_urls.is_empty() {
            return !a.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&a.path, spec));
        }
        true
    }

    /// Go's `ruleMatchesResource`.
    fn matches_resource(&self, a: &Attributes) -> bool {
        if !a.resource_request {
            return false;
        }
        if !self.namespaces.is_empty() && !has(&self.namespaces, &a.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        self.resources
            .iter()
            .filter(|gr| gr.group == a.api_group)
            .any(|gr| {
                if gr.resources.is_empty() {
                    return true;
                }
                if !gr.resource_names.is_empty() && !has(&gr.resource_names, &a.name) {
                    return false;
                }
                gr.resources.iter().any(|res| {
                    res == &combined
                        || res == "*"
                        || (!a.subresource.is_empty()
                            && res.strip_prefix("*/") == Some(a.subresource.as_str()))
                        || res.strip_suffix("/*") == Some(a.resource.as_str())
                })
            })
    }
}

/// Go's `pathMatches`: `*`, exact, or a prefix before a trailing `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
omitManagedFields: true
rules:
  - level: None
    users: ["system:kube-proxy"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    resources:
      - group: wardle.example.com
        resources: ["fischers"]
        resourceNames: ["special"]
    omitManagedFields: false
  - level: Request
    userGroups: ["devs"]
    verbs: ["create", "update", "patch"]
    namespaces: ["prod"]
  - level: Metadata
    resources:
      - group: wardle.example.com
        resources: ["*/status"]
    omitStages: [ResponseStarted]
  - level: Metadata
    resources:
      - group: wardle.example.com
        resources: ["flunders/*"]
  - level: Metadata
    nonResourceURLs: ["*"]
"#;

    fn attrs(user: &str, groups: &[&str], verb: &str, path: &str) -> Attributes {
        let mut a = Attributes {
            user: UserInfo {
                name: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                ..Default::default()
            },
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        };
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["apis", group, version, rest @ ..] = parts.as_slice() {
            a.resource_request = true;
            a.api_group = group.to_string();
            a.api_version = version.to_string();
            let rest = match rest {
                ["namespaces", ns, more @ ..] => {
                    a.namespace = ns.to_string();
                    more
                }
                more => more,
            };
            a.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
            a.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
            a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        }
        a
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = Policy::parse(POLICY).expect("policy");
        let level = |a: Attributes| p.evaluate(&a).level;
        let w = "/apis/wardle.example.com/v1alpha1";
        assert_eq!(
            level(attrs("system:kube-proxy", &[], "get", "/version")),
            Level::None
        );
        assert_eq!(level(attrs("a", &[], "get", "/healthz/ping")), Level::None);
        assert_eq!(level(attrs("a", &[], "get", "/metrics")), Level::Metadata);
        let special = attrs("a", &[], "get", &format!("{w}/fischers/special"));
        assert_eq!(level(special), Level::RequestResponse);
        // resourceNames limits the rule: another fischer falls through to no rule at all.
        assert_eq!(
            level(attrs("a", &[], "get", &format!("{w}/fischers/other"))),
            Level::None
        );
        let prod = format!("{w}/namespaces/prod/flunders");
        assert_eq!(
            level(attrs("b", &["devs"], "create", &prod)),
            Level::Request
        );
        // Not devs, or not a write: on to `flunders/*`, which (as in Go) also matches flunders.
        assert_eq!(
            level(attrs("b", &["ops"], "create", &prod)),
            Level::Metadata
        );
        assert_eq!(level(attrs("b", &["devs"], "list", &prod)), Level::Metadata);
        let fischers = format!("{w}/fischers");
        assert_eq!(level(attrs("b", &["devs"], "list", &fischers)), Level::None);
        let status = format!("{w}/namespaces/dev/flunders/x/status");
        assert_eq!(level(attrs("b", &[], "update", &status)), Level::Metadata);
        let sub = attrs(
            "b",
            &[],
            "get",
            &format!("{w}/namespaces/dev/flunders/x/scale"),
        );
        assert_eq!(
            level(sub),
            Level::Metadata,
            "flunders/* matches any subresource"
        );
    }

    #[test]
    fn stages_and_managed_fields_merge_with_the_policy() {
        let p = Policy::parse(POLICY).expect("policy");
        let w = "/apis/wardle.example.com/v1alpha1";
        let status = p.evaluate(&attrs(
            "b",
            &[],
            "update",
            &format!("{w}/namespaces/dev/flunders/x/status"),
        ));
        assert_eq!(
            status.omit_stages,
            vec![Stage::ResponseStarted, Stage::RequestReceived]
        );
        assert!(status.omit_managed_fields, "the policy default applies");
        let special = p.evaluate(&attrs("a", &[], "get", &format!("{w}/fischers/special")));
        assert!(
            !special.omit_managed_fields,
            "the rule overrides the policy"
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        let base = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
        assert!(Policy::parse(&format!("{base}rules: []\n")).is_err());
        assert!(Policy::parse(&format!("{base}rules:\n- level: Loud\n")).is_err());
        assert!(
            Policy::parse(&format!(
                "{base}rules:\n- level: None\n  nonResourceURLs: [/x]\n  namespaces: [a]\n"
            ))
            .is_err()
        );
        assert!(
            Policy::parse(
                "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: None\n"
            )
            .is_err()
        );
        for bad_rule in [
            "- level: None\n  nonResourceURLs: [/a*b]\n",
            "- level: None\n  nonResourceURLs: [healthz]\n",
            "- level: None\n  nonResourceURLs: [\"/**\"]\n",
            "- level: None\n  resources: [{group: wardle.example.com/v1}]\n",
            "- level: None\n  resources: [{group: a, resourceNames: [x]}]\n",
            "- level: None\n  omitStages: [Sometimes]\n",
        ] {
            assert!(
                Policy::parse(&format!("{base}rules:\n{bad_rule}")).is_err(),
                "{bad_rule}"
            );
        }
        assert!(Policy::parse(&format!("{base}rules:\n- level: Metadata\n")).is_ok());
    }

    #[test]
    fn paths_match_like_go() {
        assert!(path_matches("/anything", "*"));
        assert!(path_matches("/version", "/version"));
        assert!(!path_matches("/version/x", "/version"));
        assert!(path_matches("/healthz/etcd", "/healthz*"));
        assert!(path_matches("/healthz", "/healthz*"));
        assert!(!path_matches("/readyz", "/healthz*"));
    }
}
