//! Bearer tokens checked by the core cluster: a TokenReview per token (Go's delegated
//! `--authentication-kubeconfig` webhook), answers cached for `--authentication-token-webhook-cache-ttl`.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use super::UserInfo;
use super::cache::ReviewCache;

/// Go's cache holds at most this many entries; beyond that the oldest answers are dropped.
const MAX_CACHED: usize = 4096;

pub struct TokenReviewAuthenticator {
    api: Api<TokenReview>,
    ttl: Duration,
    /// sha256(token) → the answer. Hashed so the process never keeps tokens.
    cache: ReviewCache<[u8; 32], Option<UserInfo>>,
}

impl std::fmt::Debug for TokenReviewAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewAuthenticator")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenReviewAuthenticator {
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        TokenReviewAuthenticator {
            api: Api::all(client),
            ttl,
            cache: ReviewCache::new(MAX_CACHED),
        }
    }

    /// `Ok(Some(user))` for a token the cluster accepts, `Ok(None)` for one it rejects (the
    /// caller turns that into Go's "invalid bearer token" 401), `Err` when the review failed.
    /// Definite answers are cached for the TTL; failures to ask are not, so a blip of the core
    /// API does not lock users out for the TTL.
    pub async fn review(&self, token: &str) -> Result<Option<UserInfo>, String> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..Default::default()
        };
        let created = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("TokenReview failed: {e}"))?;
        let status = created.status.unwrap_or_default();
        if let Some(err) = status.error.filter(|e| !e.is_empty()) {
            return Err(err);
        }
        let answer = if status.authenticated == Some(true) {
            let u = status.user.unwrap_or_default();
            Some(UserInfo {
                name: u.username.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default().into_iter().collect(),
            })
        } else {
            None
        };
        self.cache.put(key, answer.clone(), self.ttl);
        Ok(answer)
    }
}

/// The token of an `Authorization: Bearer <token>` header, as Go's bearertoken authenticator
/// reads it: scheme case-insensitive, exactly one space, empty tokens ignored.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let v = v.trim();
    let mut parts = v.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return None;
    }
    Some(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_parsing_matches_go() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::AUTHORIZATION, v.parse().expect("header"));
            m
        };
        assert_eq!(bearer_token(&h("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&h("bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&h("Bearer ")), None);
        assert_eq!(bearer_token(&h("Basic abc")), None);
        assert_eq!(bearer_token(&h("Bearer")), None);
        assert_eq!(bearer_token(&http::HeaderMap::new()), None);
    }
}
