//! Admission plugins run on writes, in Go's order (k8s.io/apiserver `options/admission.go`):
//! NamespaceLifecycle, MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
//! ValidatingAdmissionWebhook (these four when a cluster is attached) and BanFlunder.

pub mod attributes;
pub mod cel;
mod chain;
pub mod informer;
pub mod matching;
pub mod namespace;
pub mod policy;
pub mod warnings;
pub mod webhook;

use std::sync::Arc;

use crate::api::{Resource, fischer};
use crate::apimachinery::status::{ApiError, ApiResult};
use crate::storage::Storage;

/// Every admission plugin name the Go sample-apiserver registers (k8s.io/apiserver
/// `server.RegisterAllAdmissionPlugins` plus the sample's BanFlunder), so flags written for Go
/// work here. All but MutatingAdmissionPolicy run (see the module docs); that one is accepted
/// and does nothing.
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
    /// MutatingAdmissionWebhook + ValidatingAdmissionWebhook (cluster attached).
    pub webhooks: Option<Arc<webhook::Webhooks>>,
    /// ValidatingAdmissionPolicy (cluster attached).
    pub policies: Option<Arc<policy::Policies>>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            ban_flunder: true,
            namespace_lifecycle: None,
            webhooks: None,
            policies: None,
        }
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
