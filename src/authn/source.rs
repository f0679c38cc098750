//! Where the authenticator's configuration comes from: the `--client-ca-file` and
//! `--requestheader-*` flags, else the core cluster's `kube-system/extension-apiserver-authentication`
//! ConfigMap (as Go's delegating authentication does), re-read periodically so CA bundles and
//! header names change without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::{Authenticator, AuthnConfig, RequestHeaderConfig};

pub const AUTH_CONFIGMAP_NAMESPACE: &str = "kube-system";
pub const AUTH_CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// The `--requestheader-*` flags; `client_ca_file` None means "take them all from the cluster".
#[derive(Debug, Clone, Default)]
pub struct RequestHeaderFlags {
    pub client_ca_file: Option<PathBuf>,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefixes: Vec<String>,
}

/// Everything the authentication configuration is assembled from.
#[derive(Clone, Default)]
pub struct AuthnSources {
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// A CA that always signs acceptable client certs (standalone mode's own CA).
    pub extra_client_ca_pem: Option<Vec<u8>>,
    pub request_header: RequestHeaderFlags,
    /// Client for the core cluster; None (standalone) or with `--authentication-skip-lookup`
    /// nothing is looked up.
    pub cluster: Option<kube::Client>,
    pub anonymous: bool,
}

impl AuthnSources {
    /// Read the files and (where a flag leaves a gap) the ConfigMap, and assemble the config.
    pub async fn load(&self) -> Result<AuthnConfig> {
        let cm = match (&self.cluster, self.needs_lookup()) {
            (Some(client), true) => lookup(client).await?,
            _ => None,
        };
        let cm_value = |key: &str| -> Option<&str> {
            cm.as_ref()
                .and_then(|c| c.data.as_ref())
                .and_then(|d| d.get(key))
                .map(String::as_str)
                .filter(|v| !v.trim().is_empty())
        };

        let mut client_ca: Vec<u8> = self.extra_client_ca_pem.clone().unwrap_or_default();
        match &self.client_ca_file {
            Some(f) => client_ca
                .extend(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?),
            None => {
                if let Some(pem) = cm_value("client-ca-file") {
                    client_ca.extend_from_slice(pem.as_bytes());
                }
            }
        }

        let rh = &self.request_header;
        let request_header = match &rh.client_ca_file {
            Some(f) => Some(RequestHeaderConfig {
                client_ca_pem: std::fs::read(f)
                    .with_context(|| format!("reading {}", f.display()))?,
                allowed_names: rh.allowed_names.clone(),
                username_headers: rh.username_headers.clone(),
                uid_headers: rh.uid_headers.clone(),
                group_headers: rh.group_headers.clone(),
                extra_headers_prefixes: rh.extra_headers_prefixes.clone(),
            }),
            None => {
                match cm_value("requestheader-client-ca-file") {
                    Some(pem) => {
                        let list = |key: &str| -> Result<Vec<String>> {
                            match cm_value(key) {
                            None => Ok(Vec::new()),
                            Some(v) => serde_json::from_str(v).map_err(|e| {
                                anyhow!("{AUTH_CONFIGMAP_NAME} key {key}: not a JSON string list: {e}")
                            }),
                        }
                        };
                        Some(RequestHeaderConfig {
                            client_ca_pem: pem.as_bytes().to_vec(),
                            allowed_names: list("requestheader-allowed-names")?,
                            username_headers: list("requestheader-username-headers")?,
                            uid_headers: list("requestheader-uid-headers")?,
                            group_headers: list("requestheader-group-headers")?,
                            extra_headers_prefixes: list("requestheader-extra-headers-prefix")?,
                        })
                    }
                    None => None,
                }
            }
        };
        Ok(AuthnConfig {
            client_ca_pem: (!client_ca.is_empty()).then_some(client_ca),
            request_header,
            anonymous: self.anonymous,
        })
    }

    /// Go only reads the ConfigMap for what the flags leave unset.
    fn needs_lookup(&self) -> bool {
        self.client_ca_file.is_none() || self.request_header.client_ca_file.is_none()
    }

    /// Re-read the sources every `interval` and swap a changed configuration into `auth`.
    /// Failures keep the configuration in force (and are logged), as Go's controllers do.
    pub async fn keep_fresh(
        self,
        auth: Arc<Authenticator>,
        mut current: AuthnConfig,
        interval: Duration,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.load().await {
                Ok(cfg) if cfg != current => match auth.reload(&cfg) {
                    Ok(()) => {
                        tracing::info!("reloaded the authentication configuration");
                        current = cfg;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "authentication configuration not reloaded")
                    }
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the authentication configuration"),
            }
        }
    }
}

/// The ConfigMap, or None when it does not exist (Go warns and goes on without it).
async fn lookup(client: &kube::Client) -> Result<Option<ConfigMap>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), AUTH_CONFIGMAP_NAMESPACE);
    let cm = api.get_opt(AUTH_CONFIGMAP_NAME).await.with_context(|| {
        format!("reading configmap {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME}")
    })?;
    if cm.is_none() {
        tracing::warn!(
            "configmap {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME} not found: client certificates and the front proxy are not trusted"
        );
    }
    Ok(cm)
}
