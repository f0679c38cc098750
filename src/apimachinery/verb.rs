//! The request verb (Go's `RequestInfo.Verb`): what authorization, audit, metrics, the
//! dispatcher and the storage-error mapping all key on.

use std::fmt;

/// A request's verb. Resource requests have one of the eight API verbs; a non-resource request
/// (or a resource path asked with a method no verb serves) has its lower-cased HTTP method, as
/// in Go (`get`, `post`, `put`, `head`, `options`, ...), `get`/`patch`/`delete` sharing the
/// API verbs' variants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Verb {
    #[default]
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// Any other lower-cased method (`post`, `put`, `head`, ... on a non-resource path).
    Other(String),
}

impl Verb {
    /// The verb of a lower-cased method name (`get`, `post`, ...): what a non-resource request
    /// is authorized and audited as.
    pub fn of_method(method: &str) -> Verb {
        match method.to_ascii_lowercase().as_str() {
            "get" => Verb::Get,
            "patch" => Verb::Patch,
            "delete" => Verb::Delete,
            other => Verb::Other(other.to_string()),
        }
    }

    /// Go's verb string: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or the method.
    pub fn as_str(&self) -> &str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other(m) => m,
        }
    }

    /// Verbs that change nothing (Go's read-only set for max-in-flight).
    pub fn is_read_only(&self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_share_the_api_verbs_names() {
        assert_eq!(Verb::of_method("GET"), Verb::Get);
        assert_eq!(Verb::of_method("PATCH"), Verb::Patch);
        assert_eq!(Verb::of_method("POST").as_str(), "post");
        assert_eq!(Verb::DeleteCollection.to_string(), "deletecollection");
    }
}
