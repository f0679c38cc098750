//! The two admission phases the registry calls on every write, in Go's plugin order: mutating
//! (after defaulting, before validation of the object) and validating (after validation,
//! before storage).

use serde_json::Value;

use super::attributes::{Attributes, Operation};
use super::{Admission, ban_flunder};
use crate::apimachinery::status::ApiResult;
use crate::storage::cache::WatchCache;

impl Admission {
    /// Mutating admission: NamespaceLifecycle, MutatingAdmissionWebhook, BanFlunder.
    /// `obj` is the new object in the request's version (None for DELETE); webhooks may
    /// change it. Ok(true) if a webhook changed it (the built-in plugins never do).
    pub async fn mutate(
        &self,
        cache: &WatchCache,
        a: &Attributes<'_>,
        obj: Option<&mut Value>,
    ) -> ApiResult<bool> {
        let create = a.operation == Operation::Create;
        if let Some(nl) = &self.namespace_lifecycle
            && create
            && a.resource.namespaced()
            && !a.namespace.is_empty()
        {
            nl.admit_create(&a.group_resource(), a.namespace, &a.name)
                .await?;
        }
        let changed = match &self.webhooks {
            Some(w) => w.mutate(a, obj).await?,
            None => false,
        };
        // BanFlunder sees the name as sent: a generateName create has none yet (as in Go).
        if self.ban_flunder && create && a.resource.plural() == "flunders" && !a.name.is_empty() {
            ban_flunder(cache, a.resource, &a.name).await?;
        }
        Ok(changed)
    }

    /// Validating admission: ValidatingAdmissionPolicy, ValidatingAdmissionWebhook. `obj` is
    /// the object about to be stored, in the request's version (None for DELETE).
    pub async fn validate(&self, a: &Attributes<'_>, obj: Option<&Value>) -> ApiResult<()> {
        if let Some(p) = &self.policies {
            p.validate(a, obj).await?;
        }
        if let Some(w) = &self.webhooks {
            w.validate(a, obj).await?;
        }
        Ok(())
    }
}
