//! Which webhooks and policies a write concerns (Go's `predicates/rules`, `predicates/namespace`,
//! `predicates/object` and the matchPolicy handling of `generic/webhook.go`): rules on
//! operation/group/version/resource/scope, `Equivalent` vs `Exact` match policy across served
//! versions, and label selectors on the namespace and on the object.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{NamedRuleWithOperations, RuleWithOperations};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::attributes::Attributes;
use crate::apimachinery::labels::{Operator, Requirement, Selector};

/// One rule, whichever API type it came from.
pub struct Rule<'a> {
    pub operations: &'a [String],
    pub api_groups: &'a [String],
    pub api_versions: &'a [String],
    pub resources: &'a [String],
    pub scope: Option<&'a str>,
    /// Only in policies' NamedRuleWithOperations; empty matches any name.
    pub resource_names: &'a [String],
}

fn slice(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

impl<'a> From<&'a RuleWithOperations> for Rule<'a> {
    fn from(r: &'a RuleWithOperations) -> Self {
        Rule {
            operations: slice(&r.operations),
            api_groups: slice(&r.api_groups),
            api_versions: slice(&r.api_versions),
            resources: slice(&r.resources),
            scope: r.scope.as_deref(),
            resource_names: &[],
        }
    }
}

impl<'a> From<&'a NamedRuleWithOperations> for Rule<'a> {
    fn from(r: &'a NamedRuleWithOperations) -> Self {
        Rule {
            operations: slice(&r.operations),
            api_groups: slice(&r.api_groups),
            api_versions: slice(&r.api_versions),
            resources: slice(&r.resources),
            scope: r.scope.as_deref(),
            resource_names: slice(&r.resource_names),
        }
    }
}

fn any_or(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

impl Rule<'_> {
    /// Does this rule match the write `a` seen in `version` (Go's `rules.Matcher.Matches`)?
    /// wardle serves no subresources, so a request's subresource is always "".
    pub fn matches(&self, a: &Attributes<'_>, version: &str) -> bool {
        let scope_ok = match self.scope.unwrap_or("*") {
            "Cluster" => a.namespace.is_empty(),
            "Namespaced" => !a.namespace.is_empty(),
            _ => true,
        };
        let resource_ok = self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r, ""));
            (res == "*" || res == a.resource.plural()) && (sub == "*" || sub.is_empty())
        });
        let name_ok = self.resource_names.is_empty() || self.resource_names.contains(&a.name);
        scope_ok
            && resource_ok
            && name_ok
            && any_or(self.operations, a.operation.as_str())
            && any_or(self.api_groups, crate::api::GROUP)
            && any_or(self.api_versions, version)
    }
}

/// The version in which `rules` match `a`: the request's own version, else — with matchPolicy
/// `Equivalent` (the default) — the first other served version of the same resource that
/// matches, as Go's `ShouldCallHook` does. None: no match.
pub fn matched_version<'r>(
    a: &Attributes<'_>,
    match_policy: Option<&str>,
    rules: impl Iterator<Item = Rule<'r>> + Clone,
) -> Option<&'static str> {
    let matches_in = |v: &str| rules.clone().any(|r| r.matches(a, v));
    if matches_in(a.version) {
        return Some(a.version);
    }
    if match_policy == Some("Exact") {
        return None;
    }
    a.resource
        .versions()
        .iter()
        .map(|d| d.name)
        .find(|v| *v != a.version && matches_in(v))
}

/// A structured `metav1.LabelSelector` as a Selector; None or `{}` selects everything.
/// Errors are the requirement's validation message (an invalid selector in a configuration).
pub fn label_selector(sel: Option<&LabelSelector>) -> Result<Selector, String> {
    let Some(sel) = sel else {
        return Ok(Selector::everything());
    };
    let mut reqs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
    }
    for e in sel.match_expressions.iter().flatten() {
        let op = match e.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        reqs.push(Requirement::new(
            &e.key,
            op,
            e.values.clone().unwrap_or_default(),
        )?);
    }
    Ok(Selector::from_requirements(reqs))
}

/// Labels as the JSON map selectors match against.
pub fn labels_json(labels: Option<&BTreeMap<String, String>>) -> serde_json::Map<String, Value> {
    labels
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// objectSelector: matches when the new or the old object's labels match (Go's
/// `object.Matcher`), so that a DELETE or a label removal is still seen.
pub fn object_selector_matches(sel: &Selector, new: Option<&Value>, old: Option<&Value>) -> bool {
    sel.is_empty()
        || [new, old]
            .into_iter()
            .flatten()
            .any(|o| sel.matches_object(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::attributes::Operation;
    use crate::authn::UserInfo;
    use serde_json::json;

    fn attrs<'a>(user: &'a UserInfo, op: Operation, version: &'static str) -> Attributes<'a> {
        Attributes {
            operation: op,
            resource: crate::api::resource("flunders").unwrap(),
            version,
            namespace: "ns",
            name: "f".into(),
            user,
            dry_run: false,
            field_manager: None,
            old: None,
        }
    }

    fn rule(v: Value) -> RuleWithOperations {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rules_match_on_every_field_with_wildcards() {
        let u = UserInfo::anonymous();
        let a = attrs(&u, Operation::Create, "v1beta1");
        let yes = [
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
            json!({"operations": ["CREATE"], "apiGroups": ["wardle.example.com"], "apiVersions": ["v1beta1"], "resources": ["flunders"]}),
            json!({"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}),
            json!({"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["flunders"], "scope": "Namespaced"}),
        ];
        for r in &yes {
            assert!(Rule::from(&rule(r.clone())).matches(&a, "v1beta1"), "{r}");
        }
        let no = [
            json!({"operations": ["UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
            json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["*"]}),
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["v1alpha1"], "resources": ["*"]}),
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["fischers"]}),
            // A subresource rule does not match the main resource.
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["flunders/status"]}),
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}),
        ];
        for r in &no {
            assert!(!Rule::from(&rule(r.clone())).matches(&a, "v1beta1"), "{r}");
        }
        // flunders/* matches the main resource too (subresource "*" matches "").
        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["flunders/*"]}),
        );
        assert!(Rule::from(&r).matches(&a, "v1beta1"));
    }

    #[test]
    fn resource_names_restrict_named_rules() {
        let u = UserInfo::anonymous();
        let a = attrs(&u, Operation::Update, "v1alpha1");
        let named = |names: Value| -> NamedRuleWithOperations {
            serde_json::from_value(json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "resourceNames": names})).unwrap()
        };
        assert!(Rule::from(&named(json!(["f", "g"]))).matches(&a, "v1alpha1"));
        assert!(!Rule::from(&named(json!(["g"]))).matches(&a, "v1alpha1"));
        assert!(Rule::from(&named(json!([]))).matches(&a, "v1alpha1"));
    }

    #[test]
    fn equivalent_match_policy_finds_the_other_served_version() {
        let u = UserInfo::anonymous();
        let a = attrs(&u, Operation::Create, "v1beta1");
        let alpha_only = [rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["v1alpha1"], "resources": ["flunders"]}),
        )];
        let rules = || alpha_only.iter().map(Rule::from);
        assert_eq!(matched_version(&a, None, rules()), Some("v1alpha1"));
        assert_eq!(
            matched_version(&a, Some("Equivalent"), rules()),
            Some("v1alpha1")
        );
        assert_eq!(matched_version(&a, Some("Exact"), rules()), None);
        // The request's own version wins when it matches.
        let both = [rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["flunders"]}),
        )];
        assert_eq!(
            matched_version(&a, None, both.iter().map(Rule::from)),
            Some("v1beta1")
        );
    }

    #[test]
    fn selectors_match_labels_and_refuse_bad_operators() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"team": "a"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                 {"key": "skip", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        let s = label_selector(Some(&sel)).unwrap();
        let obj = |labels: Value| json!({"metadata": {"labels": labels}});
        assert!(s.matches_object(&obj(json!({"team": "a", "env": "prod"}))));
        assert!(!s.matches_object(&obj(json!({"team": "a", "env": "qa"}))));
        assert!(!s.matches_object(&obj(json!({"team": "a", "env": "dev", "skip": "1"}))));
        assert!(label_selector(None).unwrap().is_empty());
        let bad: LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}))
                .unwrap();
        assert!(label_selector(Some(&bad)).is_err());
        // The object selector sees old or new labels.
        let old = obj(json!({"team": "a", "env": "dev"}));
        let new = obj(json!({}));
        assert!(object_selector_matches(&s, Some(&new), Some(&old)));
        assert!(!object_selector_matches(&s, Some(&new), None));
        assert!(object_selector_matches(&Selector::everything(), None, None));
    }
}
