//! Admission plugins run on writes, in Go's order (k8s.io/apiserver `options/admission.go`):
//! NamespaceLifecycle, MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
//! ValidatingAdmissionWebhook (these four when a cluster is attached) and BanFlunder.

pub mod attributes;
pub mod cel;
mod cel_library;
mod cel_meter;
mod chain;
pub mod config;
pub mod credentials;
pub mod informer;
pub mod matching;
pub mod namespace;
pub mod policy;
pub mod warnings;
pub mod webhook;

use std::sync::Arc;

use crate::api::{Resource, fischer};
use crate::apimachinery::gofmt::go_json_escape;
use crate::apimachinery::status::{ApiError, ApiResult};
use crate::apimachinery::verb::Verb;
use crate::storage::cache::WatchCache;
use serde_json::Value;

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
/// Go reads the Fischers from an informer's cache; wardle reads its watch cache, after it has
/// applied every write of this process (a Fischer created through this replica just before
/// counts), without a database read per create: Fischers written through another replica count
/// once the cache has them (milliseconds, by NOTIFY), as in Go's informer.
async fn ban_flunder(cache: &WatchCache, flunders: &dyn Resource, name: &str) -> ApiResult<()> {
    // Go's lister cannot fail (an informer's cache); the wait here fails only if the cache
    // stalls, mapped as any storage error, never a 403 a client would take as final.
    cache.caught_up_with_own_commits().await.map_err(|e| {
        let (gr, gk) = (flunders.group_resource(), flunders.group_kind());
        ApiError::from_storage(&Verb::Create, &gr, &gk, name, e)
    })?;
    // A Fischer can only list the name if its JSON text holds it as a string (the text is
    // serialized the same way), so most Fischers are ruled out without parsing them.
    let needle = go_json_escape(Value::String(name.to_string()).to_string());
    let fischers = cache.list("fischers", None, None, 0);
    for f in &fischers.items {
        if f.object.json().contains(&needle)
            && fischer::disallowed(&f.object.value()).contains(&name)
        {
            return Err(ApiError::forbidden(
                &flunders.group_resource(),
                name,
                "this name may not be used, please change the resource name",
            ));
        }
    }
    Ok(())
}
