//! NamespaceLifecycle admission (when wardle is attached to a cluster): no creates in a
//! namespace that does not exist (404) or is being deleted (403), from a namespace cache kept
//! by a list+watch of the core cluster, with a live lookup on a cache miss as Go does (the
//! namespace may be newer than the cache).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};

use crate::apimachinery::status::{ApiError, ApiResult, GroupResource, StatusCause};

/// Namespace name → terminating?
type Phases = HashMap<String, bool>;

pub struct NamespaceLifecycle {
    api: Api<Namespace>,
    phases: Arc<RwLock<Phases>>,
}

impl std::fmt::Debug for NamespaceLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceLifecycle").finish_non_exhaustive()
    }
}

fn terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

impl NamespaceLifecycle {
    /// Start the list+watch in the background; admission works (by live lookups) before the
    /// first list completes.
    pub fn start(client: kube::Client) -> Arc<Self> {
        let me = Arc::new(NamespaceLifecycle {
            api: Api::all(client),
            phases: Arc::new(RwLock::new(HashMap::new())),
        });
        let api = me.api.clone();
        let phases = me.phases.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = list_and_watch(&api, &phases).await {
                    tracing::warn!(error = %e, "namespace watch ended; relisting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        me
    }

    /// Admit a create of `resource` named `name` (empty for generateName) in `namespace`.
    pub async fn admit_create(
        &self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> ApiResult<()> {
        let cached = self
            .phases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
            .copied();
        let is_terminating = match cached {
            Some(t) => t,
            None => match self.api.get_opt(namespace).await {
                Ok(Some(ns)) => terminating(&ns),
                Ok(None) => {
                    return Err(ApiError::not_found(
                        &GroupResource::new("", "namespaces"),
                        namespace,
                    ));
                }
                Err(e) => return Err(ApiError::internal(e.to_string())),
            },
        };
        if is_terminating {
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

/// One list, then a watch from its resourceVersion until the stream ends or fails.
async fn list_and_watch(api: &Api<Namespace>, phases: &RwLock<Phases>) -> anyhow::Result<()> {
    let list = api.list(&ListParams::default()).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    {
        let mut p = phases.write().unwrap_or_else(|p| p.into_inner());
        p.clear();
        for ns in &list.items {
            if let Some(n) = &ns.metadata.name {
                p.insert(n.clone(), terminating(ns));
            }
        }
    }
    let mut rv = rv;
    loop {
        let params = WatchParams::default().timeout(290);
        let mut stream = api.watch(&params, &rv).await?.boxed();
        while let Some(ev) = stream.try_next().await? {
            match ev {
                WatchEvent::Added(ns) | WatchEvent::Modified(ns) => {
                    if let Some(n) = &ns.metadata.name {
                        phases
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(n.clone(), terminating(&ns));
                    }
                    rv = ns.metadata.resource_version.clone().unwrap_or(rv);
                }
                WatchEvent::Deleted(ns) => {
                    if let Some(n) = &ns.metadata.name {
                        phases.write().unwrap_or_else(|p| p.into_inner()).remove(n);
                    }
                    rv = ns.metadata.resource_version.clone().unwrap_or(rv);
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Error(e) => anyhow::bail!("watch error: {}", e.message),
            }
        }
    }
}
