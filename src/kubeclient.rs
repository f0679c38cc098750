//! kube clients for the core cluster: from a kubeconfig flag, else the in-cluster config when
//! running in a pod, else none (standalone mode).

use std::path::Path;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client from `kubeconfig`, or the in-cluster config if there is a service host in the
/// environment, or None. `flag` names the flag in errors.
pub async fn client_for(kubeconfig: Option<&Path>, flag: &str) -> Result<Option<kube::Client>> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("{flag}: reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("{flag}: {}", path.display()))?
        }
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            kube::Config::incluster().context("in-cluster configuration")?
        }
        None => return Ok(None),
    };
    Ok(Some(
        kube::Client::try_from(config).with_context(|| format!("{flag}: building a client"))?,
    ))
}
