//! Admission plugins run on writes: NamespaceLifecycle (when a cluster is attached) and BanFlunder.

pub mod namespace;

use std::sync::Arc;

use crate::api::{Resource, fischer};
use crate::apimachinery::status::{ApiError, ApiResult};
use crate::storage::Storage;

/// Every admission plugin name the Go sample-apiserver registers (k8s.io/apiserver
/// `server.RegisterAllAdmissionPlugins` plus the sample's BanFlunder), so flags written for Go
/// work here. wardle runs NamespaceLifecycle and BanFlunder; the webhook and policy plugins have
/// no configuration objects to act on without a cluster's admissionregistration API, so naming
/// them changes nothing.
pub const PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "BanFlunder",
];

/// clap value parser of `--enable-admission-plugins`/`--disable-admission-plugins`: a
/// registered name (case-sensitive, as in Go's AdmissionOptions.Validate, which refuses unknown
/// names) or `""` (an empty list item, which pflag's string slices allow too).
pub fn plugin_name(name: &str) -> Result<String, String> {
    if name.is_empty() || PLUGINS.contains(&name) {
        return Ok(name.to_string());
    }
    let hint = PLUGINS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .map(|p| format!("did you mean {p}? "))
        .unwrap_or_default();
    Err(format!(
        "unknown admission plugin; {hint}known plugins (case-sensitive): {}",
        PLUGINS.join(", ")
    ))
}

/// The admission chain. Standalone mode has no namespace API to consult, so only BanFlunder runs.
#[derive(Clone, Debug)]
pub struct Admission {
    pub ban_flunder: bool,
    /// Set when a cluster kubeconfig is given (`--kubeconfig` or in-cluster).
    pub namespace_lifecycle: Option<Arc<namespace::NamespaceLifecycle>>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            ban_flunder: true,
            namespace_lifecycle: None,
        }
    }
}

impl Admission {
    /// Mutating admission for CREATE; `name` is empty for generateName creates (as in Go,
    /// which runs admission before generating the name, so generated names are never banned).
    pub async fn admit_create(
        &self,
        storage: &Storage,
        resource: &dyn Resource,
        namespace: &str,
        name: &str,
    ) -> ApiResult<()> {
        // Go's order: NamespaceLifecycle first.
        if let Some(nl) = &self.namespace_lifecycle
            && resource.namespaced()
            && !namespace.is_empty()
        {
            nl.admit_create(&resource.group_resource(), namespace, name)
                .await?;
        }
        if self.ban_flunder && resource.plural() == "flunders" && !name.is_empty() {
            ban_flunder(storage, resource, name).await?;
        }
        Ok(())
    }
}

/// BanFlunder: a Flunder may not be created with a name listed in any Fischer's disallowedFlunders.
async fn ban_flunder(storage: &Storage, flunders: &dyn Resource, name: &str) -> ApiResult<()> {
    let mut after: Option<(String, String)> = None;
    let mut at_rv = None;
    loop {
        let a = after.as_ref().map(|(n, m)| (n.as_str(), m.as_str()));
        let chunk = storage
            .list_chunk("fischers", None, at_rv, a, 500)
            .await
            .map_err(|e| {
                ApiError::forbidden(
                    &flunders.group_resource(),
                    name,
                    &format!("not yet ready to handle request: {e}"),
                )
            })?;
        at_rv = Some(chunk.rv);
        for f in &chunk.items {
            if fischer::disallowed(&f.object.value()).contains(&name) {
                return Err(ApiError::forbidden(
                    &flunders.group_resource(),
                    name,
                    "this name may not be used, please change the resource name",
                ));
            }
            after = Some((f.key.namespace.clone(), f.key.name.clone()));
        }
        if !chunk.more || chunk.items.is_empty() {
            return Ok(());
        }
    }
}
