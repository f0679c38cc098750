//! The core cluster's namespaces, as admission needs them: NamespaceLifecycle (no creates in a
//! namespace that does not exist (404) or is being deleted (403)) and the namespace labels of
//! webhooks' namespaceSelector and policies' `namespaceObject`. Served from an informer, with a
//! live lookup on a cache miss as Go does (the namespace may be newer than the cache).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use super::informer::Informer;
use crate::apimachinery::status::{ApiError, ApiResult, GroupResource, StatusCause};

/// The namespaces of the core cluster: an informer plus live lookups.
pub struct Namespaces {
    api: Api<Namespace>,
    informer: Arc<Informer<Namespace>>,
}

impl std::fmt::Debug for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaces").finish_non_exhaustive()
    }
}

impl Namespaces {
    /// Start the list+watch in the background; lookups work (live) before the first list.
    pub fn start(client: kube::Client) -> Arc<Self> {
        let api: Api<Namespace> = Api::all(client);
        Arc::new(Namespaces {
            informer: Informer::start(api.clone()),
            api,
        })
    }

    /// The namespace `name`: from the cache, else from the cluster. `Ok(None)`: it does not exist.
    pub async fn get(&self, name: &str) -> ApiResult<Option<Arc<Namespace>>> {
        if let Some(ns) = self.informer.get(name) {
            return Ok(Some(ns));
        }
        match self.api.get_opt(name).await {
            Ok(ns) => Ok(ns.map(Arc::new)),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }
}

fn terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// The NamespaceLifecycle admission plugin.
#[derive(Debug)]
pub struct NamespaceLifecycle {
    namespaces: Arc<Namespaces>,
}

impl NamespaceLifecycle {
    pub fn new(namespaces: Arc<Namespaces>) -> Arc<Self> {
        Arc::new(NamespaceLifecycle { namespaces })
    }

    /// Admit a create of `resource` named `name` (empty for generateName) in `namespace`.
    pub async fn admit_create(
        &self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> ApiResult<()> {
        let Some(ns) = self.namespaces.get(namespace).await? else {
            return Err(ApiError::not_found(
                &GroupResource::new("", "namespaces"),
                namespace,
            ));
        };
        if terminating(&ns) {
            let mut e = ApiError::forbidden(
                gr,
                name,
                &format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            );
            if let Some(d) = e.details.as_mut() {
                d.causes.push(StatusCause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {namespace} is being terminated"),
                    field: "metadata.namespace".into(),
                });
            }
            return Err(e);
        }
        Ok(())
    }
}
