//! Delegated authorization: a SubjectAccessReview to the core cluster per distinct request
//! (`--authorization-kubeconfig`), allowed and denied answers cached for their own TTLs
//! (`--authorization-webhook-cache-authorized-ttl` / `-unauthorized-ttl`, 10 s as in Go).

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::{Attributes, Decision};
use crate::authn::cache::ReviewCache;

const MAX_CACHED: usize = 8192;

pub struct SubjectAccessReviewer {
    api: Api<SubjectAccessReview>,
    allow_ttl: Duration,
    deny_ttl: Duration,
    /// JSON of the review's spec → (decision, reason).
    cache: ReviewCache<String, (Decision, String)>,
}

impl std::fmt::Debug for SubjectAccessReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectAccessReviewer")
            .field("allow_ttl", &self.allow_ttl)
            .field("deny_ttl", &self.deny_ttl)
            .finish_non_exhaustive()
    }
}

/// The review's spec for a request, as Go's webhook authorizer fills it.
pub fn review_spec(a: &Attributes) -> SubjectAccessReviewSpec {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut spec = SubjectAccessReviewSpec {
        user: Some(a.user.name.clone()),
        uid: non_empty(&a.user.uid),
        groups: Some(a.user.groups.clone()),
        extra: (!a.user.extra.is_empty()).then(|| a.user.extra.clone().into_iter().collect()),
        ..Default::default()
    };
    if a.resource_request {
        spec.resource_attributes = Some(ResourceAttributes {
            namespace: Some(a.namespace.clone()),
            verb: Some(a.verb.clone()),
            group: Some(a.api_group.clone()),
            version: Some(a.api_version.clone()),
            resource: Some(a.resource.clone()),
            subresource: Some(a.subresource.clone()),
            name: Some(a.name.clone()),
            ..Default::default()
        });
    } else {
        spec.non_resource_attributes = Some(NonResourceAttributes {
            path: Some(a.path.clone()),
            verb: Some(a.verb.clone()),
        });
    }
    spec
}

impl SubjectAccessReviewer {
    pub fn new(client: kube::Client, allow_ttl: Duration, deny_ttl: Duration) -> Self {
        SubjectAccessReviewer {
            api: Api::all(client),
            allow_ttl,
            deny_ttl,
            cache: ReviewCache::new(MAX_CACHED),
        }
    }

    /// Allow, Deny or NoOpinion with the cluster's reason; `Err` when the review could not be
    /// made (Go answers that with a 500, not a 403).
    pub async fn decide(&self, attrs: &Attributes) -> Result<(Decision, String), String> {
        let spec = review_spec(attrs);
        let key = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        if let Some(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let created = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("SubjectAccessReview failed: {e}"))?;
        let status = created.status.unwrap_or_default();
        let reason = status.reason.unwrap_or_default();
        let decision = if status.allowed {
            Decision::Allow
        } else if status.denied == Some(true) {
            Decision::Deny(reason.clone())
        } else {
            Decision::NoOpinion
        };
        let ttl = if decision == Decision::Allow {
            self.allow_ttl
        } else {
            self.deny_ttl
        };
        self.cache.put(key, (decision.clone(), reason.clone()), ttl);
        Ok((decision, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;

    #[test]
    fn spec_for_resource_and_path_requests() {
        let mut a = Attributes {
            user: UserInfo {
                name: "alice".into(),
                groups: vec!["system:authenticated".into()],
                extra: [("scopes".to_string(), vec!["x".to_string()])].into(),
                ..Default::default()
            },
            verb: "list".into(),
            resource_request: true,
            api_group: "wardle.example.com".into(),
            api_version: "v1alpha1".into(),
            resource: "flunders".into(),
            namespace: "default".into(),
            path: "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(review_spec(&a)).expect("json");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["extra"]["scopes"][0], "x");
        assert_eq!(v["resourceAttributes"]["verb"], "list");
        assert_eq!(v["resourceAttributes"]["resource"], "flunders");
        assert_eq!(v["resourceAttributes"]["namespace"], "default");
        assert!(v.get("uid").is_none() && v.get("nonResourceAttributes").is_none());

        a.resource_request = false;
        a.verb = "get".into();
        a.path = "/metrics".into();
        let v = serde_json::to_value(review_spec(&a)).expect("json");
        assert_eq!(
            v["nonResourceAttributes"],
            serde_json::json!({"path": "/metrics", "verb": "get"})
        );
        assert!(v.get("resourceAttributes").is_none());
    }
}
