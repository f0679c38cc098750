//! Authentication: who is making the request (front proxy, client certs, delegated tokens).
//!
//! Mirrors Go's delegating authenticator: a union of methods tried in order (requestheader,
//! x509 client cert; TokenReview slots in after them), `system:authenticated` added to whoever
//! succeeds, and anonymous only when no method *errored*. The method list sits behind an
//! `ArcSwap`, so CA bundles and header names can be reloaded without restarting.

pub mod cache;
pub mod requestheader;
pub mod source;
pub mod token;
pub mod x509;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use arc_swap::ArcSwap;
use http::HeaderMap;

use crate::apimachinery::status::ApiError;
pub use requestheader::{RequestHeaderAuthenticator, RequestHeaderConfig};
pub use token::TokenReviewAuthenticator;
pub use x509::X509Authenticator;

pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const SYSTEM_MASTERS: &str = "system:masters";

/// Go's `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS_USER.into(),
            groups: vec![ALL_UNAUTHENTICATED.into()],
            ..Default::default()
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS_USER
    }

    /// Is the user a member of `group` (e.g. `system:masters`)?
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What the authenticator chain is built from (flags, or later the
/// extension-apiserver-authentication ConfigMap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnConfig {
    /// `--client-ca-file` contents: certs signed by it authenticate as CN / O.
    pub client_ca_pem: Option<Vec<u8>>,
    /// `--requestheader-*`: front-proxy authentication.
    pub request_header: Option<RequestHeaderConfig>,
    /// `--anonymous-auth` (default true): unauthenticated requests proceed as system:anonymous.
    pub anonymous: bool,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        AuthnConfig {
            client_ca_pem: None,
            request_header: None,
            anonymous: true,
        }
    }
}

/// One member of the union. TokenReview becomes another variant (it needs an async call, so
/// `authenticate` turns async when it lands).
#[derive(Debug)]
enum Method {
    RequestHeader(RequestHeaderAuthenticator),
    X509(X509Authenticator),
}

impl Method {
    fn authenticate(
        &self,
        chain: &[Vec<u8>],
        headers: &mut HeaderMap,
    ) -> Result<Option<UserInfo>, String> {
        match self {
            Method::RequestHeader(a) => a.authenticate(chain, headers),
            Method::X509(a) => a.authenticate(chain),
        }
    }
}

#[derive(Debug)]
struct Chain {
    methods: Vec<Method>,
    anonymous: bool,
}

impl Chain {
    fn build(cfg: &AuthnConfig) -> Result<Chain> {
        let mut methods = Vec::new();
        if let Some(rh) = &cfg.request_header {
            methods.push(Method::RequestHeader(RequestHeaderAuthenticator::new(rh)?));
        }
        if let Some(pem) = &cfg.client_ca_pem {
            let ca =
                x509::CaVerifier::from_pem(pem).map_err(|e| anyhow::anyhow!("client CA: {e}"))?;
            methods.push(Method::X509(X509Authenticator { ca }));
        }
        Ok(Chain {
            methods,
            anonymous: cfg.anonymous,
        })
    }
}

/// The request authenticator. Cheap to share (`Arc<Authenticator>`); `reload` swaps the whole
/// chain atomically, so a request sees either the old or the new configuration, never a mix.
#[derive(Debug)]
pub struct Authenticator {
    chain: ArcSwap<Chain>,
    /// Bearer tokens via TokenReview (`--authentication-kubeconfig`); tried after the certs.
    token: Option<TokenReviewAuthenticator>,
}

impl Authenticator {
    /// Standalone mode: x509 client certs (if a client CA bundle is given), else anonymous.
    pub fn new(client_ca_pem: Option<&[u8]>) -> Result<Self> {
        Self::with_config(&AuthnConfig {
            client_ca_pem: client_ca_pem.map(<[u8]>::to_vec),
            ..Default::default()
        })
    }

    pub fn with_config(cfg: &AuthnConfig) -> Result<Self> {
        Ok(Authenticator {
            chain: ArcSwap::from_pointee(Chain::build(cfg)?),
            token: None,
        })
    }

    /// Add the TokenReview member (last in the union, as in Go).
    pub fn with_token_reviews(mut self, token: TokenReviewAuthenticator) -> Self {
        self.token = Some(token);
        self
    }

    /// Replace the configuration; on error the old chain stays in place.
    pub fn reload(&self, cfg: &AuthnConfig) -> Result<()> {
        self.chain.store(Arc::new(Chain::build(cfg)?));
        Ok(())
    }

    /// Every CA bundle the chain verifies against (client CA, requestheader CA), for the TLS
    /// layer's acceptable-CA hints (Go's `ClientCAs` is their union).
    pub fn ca_bundles(&self) -> Vec<Vec<u8>> {
        self.chain
            .load()
            .methods
            .iter()
            .map(|m| match m {
                Method::RequestHeader(a) => a.ca_pem().to_vec(),
                Method::X509(a) => a.ca.pem().to_vec(),
            })
            .collect()
    }

    /// Authenticate a request from its TLS peer chain (DER, leaf first; empty without a client
    /// cert) and headers, with the certificate methods only (no TokenReview). Headers used for
    /// authentication (X-Remote-*, Authorization) are removed. Any method failing with nobody
    /// succeeding is 401; nobody failing is anonymous (if enabled).
    pub fn authenticate(
        &self,
        peer_chain: &[Vec<u8>],
        headers: &mut HeaderMap,
    ) -> Result<UserInfo, ApiError> {
        let (found, errors) = self.by_certs(peer_chain, headers);
        self.conclude(found, errors, headers)
    }

    /// [`Authenticator::authenticate`] plus, when no certificate method succeeded, a bearer
    /// token checked by TokenReview: the whole union of Go's delegating authenticator.
    pub async fn authenticate_request(
        &self,
        peer_chain: &[Vec<u8>],
        headers: &mut HeaderMap,
    ) -> Result<UserInfo, ApiError> {
        let (mut found, mut errors) = self.by_certs(peer_chain, headers);
        if found.is_none()
            && let Some(tokens) = &self.token
            && let Some(token) = token::bearer_token(headers)
        {
            match tokens.review(&token).await {
                Ok(Some(user)) => found = Some(with_authenticated_group(user)),
                // Go: a token nobody accepts is an error (401), not anonymous.
                Ok(None) => errors.push("invalid bearer token".into()),
                Err(e) => errors.push(e),
            }
        }
        self.conclude(found, errors, headers)
    }

    fn by_certs(
        &self,
        peer_chain: &[Vec<u8>],
        headers: &mut HeaderMap,
    ) -> (Option<UserInfo>, Vec<String>) {
        let chain = self.chain.load();
        let mut errors = Vec::new();
        for m in &chain.methods {
            match m.authenticate(peer_chain, headers) {
                Ok(Some(user)) => return (Some(with_authenticated_group(user)), errors),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (None, errors)
    }

    fn conclude(
        &self,
        found: Option<UserInfo>,
        errors: Vec<String>,
        headers: &mut HeaderMap,
    ) -> Result<UserInfo, ApiError> {
        let user = match found {
            Some(u) => u,
            None if !errors.is_empty() => {
                tracing::debug!(errors = ?errors, "authentication failed");
                return Err(ApiError::unauthorized());
            }
            None if self.chain.load().anonymous => UserInfo::anonymous(),
            None => return Err(ApiError::unauthorized()),
        };
        // Go drops the credential once it has been used, so it never reaches handlers or logs.
        headers.remove(http::header::AUTHORIZATION);
        Ok(user)
    }
}

/// Go's `AuthenticatedGroupAdder`: add `system:authenticated` unless the user is anonymous or
/// already in one of the two all-users groups.
fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    if user.is_anonymous()
        || user
            .groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
    {
        return user;
    }
    user.groups.push(ALL_AUTHENTICATED.into());
    user
}
