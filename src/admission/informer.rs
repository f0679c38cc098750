//! A list+watch cache of one core-cluster kind (client-go's informer, reduced to what admission
//! needs): the current objects by name, replaced on relist, updated by watch events.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;

/// Objects keyed by `namespace/name` (just `name` for cluster-scoped kinds).
pub struct Informer<K> {
    items: RwLock<Arc<BTreeMap<String, Arc<K>>>>,
    /// True once the first list has completed.
    synced: std::sync::atomic::AtomicBool,
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or("")),
        _ => meta.name.clone().unwrap_or_default(),
    }
}

impl<K> Informer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Start listing and watching `api` in the background; relists after any failure.
    pub fn start(api: Api<K>) -> Arc<Self> {
        let me = Arc::new(Informer {
            items: RwLock::new(Arc::new(BTreeMap::new())),
            synced: Default::default(),
        });
        let inf = me.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = inf.list_and_watch(&api).await {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch ended; relisting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        me
    }

    /// A snapshot of all objects (cheap: shared until the next change).
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<K>>> {
        self.items.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The object `key` (`namespace/name` or `name`), if cached.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.snapshot().get(key).cloned()
    }

    pub fn has_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    fn edit(&self, f: impl FnOnce(&mut BTreeMap<String, Arc<K>>)) {
        let mut guard = self.items.write().unwrap_or_else(|p| p.into_inner());
        f(Arc::make_mut(&mut guard));
    }

    async fn list_and_watch(&self, api: &Api<K>) -> anyhow::Result<()> {
        let list = api.list(&ListParams::default()).await?;
        let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
        let fresh: BTreeMap<String, Arc<K>> = list
            .items
            .into_iter()
            .map(|o| (key_of(o.meta()), Arc::new(o)))
            .collect();
        *self.items.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        self.synced
            .store(true, std::sync::atomic::Ordering::Release);
        loop {
            let params = WatchParams::default().timeout(290);
            let mut stream = api.watch(&params, &rv).await?.boxed();
            while let Some(ev) = stream.try_next().await? {
                match ev {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                        rv = o.meta().resource_version.clone().unwrap_or(rv);
                        let k = key_of(o.meta());
                        self.edit(|m| {
                            m.insert(k, Arc::new(o));
                        });
                    }
                    WatchEvent::Deleted(o) => {
                        rv = o.meta().resource_version.clone().unwrap_or(rv);
                        let k = key_of(o.meta());
                        self.edit(|m| {
                            m.remove(&k);
                        });
                    }
                    WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                    WatchEvent::Error(e) => anyhow::bail!("watch error: {}", e.message),
                }
            }
        }
    }
}
