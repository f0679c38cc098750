//! The requestheader (front-proxy) authenticator: a client cert from the requestheader CA with an
//! allowed CN vouches for the user named in `X-Remote-User` / `-Group` / `-Extra-*` headers.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use http::HeaderMap;
use http::header::HeaderName;

use super::UserInfo;
use super::x509::CaVerifier;

/// `--requestheader-*` settings (or the same keys of the extension-apiserver-authentication
/// ConfigMap). Header names are matched case-insensitively, as Go canonicalises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// PEM bundle of the front-proxy CA (`--requestheader-client-ca-file`).
    pub client_ca_pem: Vec<u8>,
    /// Allowed CNs of the front-proxy cert; empty allows any CN that verifies.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefixes: Vec<String>,
}

impl RequestHeaderConfig {
    /// The kube-apiserver's usual header names, no CN restriction, no UID header.
    pub fn new(client_ca_pem: Vec<u8>) -> Self {
        RequestHeaderConfig {
            client_ca_pem,
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: Vec::new(),
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }
}

#[derive(Debug)]
pub struct RequestHeaderAuthenticator {
    ca: CaVerifier,
    allowed_names: Vec<String>,
    username_headers: Vec<HeaderName>,
    uid_headers: Vec<HeaderName>,
    group_headers: Vec<HeaderName>,
    /// Lower-cased, compared against lower-case header names.
    extra_prefixes: Vec<String>,
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>> {
    names
        .iter()
        .map(|n| {
            HeaderName::from_bytes(n.trim().as_bytes())
                .map_err(|_| anyhow!("invalid header name {n:?}"))
        })
        .collect()
}

impl RequestHeaderAuthenticator {
    pub fn new(cfg: &RequestHeaderConfig) -> Result<Self> {
        Ok(RequestHeaderAuthenticator {
            ca: CaVerifier::from_pem(&cfg.client_ca_pem)
                .map_err(|e| anyhow!("requestheader client CA: {e}"))?,
            allowed_names: cfg.allowed_names.clone(),
            username_headers: header_names(&cfg.username_headers)?,
            uid_headers: header_names(&cfg.uid_headers)?,
            group_headers: header_names(&cfg.group_headers)?,
            extra_prefixes: cfg
                .extra_headers_prefixes
                .iter()
                .map(|p| p.trim().to_ascii_lowercase())
                .collect(),
        })
    }

    pub fn ca_pem(&self) -> &[u8] {
        self.ca.pem()
    }

    /// No cert → skipped. Cert not from the requestheader CA, or CN not allowed → error (the
    /// union still lets a client-CA cert succeed). No username header → skipped. Otherwise the
    /// user comes from the headers, which are then removed so handlers never see them.
    pub fn authenticate(
        &self,
        chain: &[Vec<u8>],
        headers: &mut HeaderMap,
    ) -> Result<Option<UserInfo>, String> {
        if chain.is_empty() {
            return Ok(None);
        }
        let leaf = self.ca.verify(chain)?;
        if !self.allowed_names.is_empty() {
            let cn = leaf.common_name.clone()?;
            if !self.allowed_names.contains(&cn) {
                return Err(format!(
                    "x509: subject with cn={cn} is not in the allowed list"
                ));
            }
        }

        let name = first_value(headers, &self.username_headers);
        if name.is_empty() {
            return Ok(None);
        }
        let uid = first_value(headers, &self.uid_headers);
        let mut groups = Vec::new();
        for h in &self.group_headers {
            for v in headers.get_all(h) {
                let v = lossy(v.as_bytes());
                if !v.trim().is_empty() {
                    groups.push(v);
                }
            }
        }
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut extra_names = Vec::new();
        // Prefixes first, so values of one key keep the order of the configured prefixes.
        for prefix in &self.extra_prefixes {
            for hname in headers.keys() {
                let Some(suffix) = hname.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                let key = unescape_extra_key(suffix);
                let values = headers.get_all(hname).iter().map(|v| lossy(v.as_bytes()));
                extra.entry(key).or_default().extend(values);
                extra_names.push(hname.clone());
            }
        }

        for h in self
            .username_headers
            .iter()
            .chain(&self.uid_headers)
            .chain(&self.group_headers)
            .chain(&extra_names)
        {
            headers.remove(h);
        }
        Ok(Some(UserInfo {
            name,
            uid,
            groups,
            extra,
        }))
    }
}

/// Go's `headerValue`: the first header (in configured order) whose first value is non-empty.
fn first_value(headers: &HeaderMap, names: &[HeaderName]) -> String {
    names
        .iter()
        .filter_map(|n| headers.get(n))
        .map(|v| lossy(v.as_bytes()))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

/// Go keeps header bytes as they are; invalid UTF-8 is replaced rather than rejected.
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Go's `url.PathUnescape`, falling back to the raw key when an escape is malformed.
fn unescape_extra_key(key: &str) -> String {
    let b = key.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return key.to_string();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_unescape_like_go() {
        assert_eq!(unescape_extra_key("foo%2fbar"), "foo/bar");
        assert_eq!(unescape_extra_key("foo%2Fbar"), "foo/bar");
        assert_eq!(unescape_extra_key("plain"), "plain");
        assert_eq!(unescape_extra_key("bad%zz"), "bad%zz");
        assert_eq!(unescape_extra_key("trailing%2"), "trailing%2");
    }

    #[test]
    fn bad_header_name_is_a_config_error() {
        let mut cfg = RequestHeaderConfig::new(Vec::new());
        cfg.username_headers = vec!["bad header".into()];
        assert!(header_names(&cfg.username_headers).is_err());
        // And an empty CA bundle is rejected before any header is looked at.
        assert!(
            RequestHeaderAuthenticator::new(&RequestHeaderConfig::new(b"nothing".to_vec()))
                .is_err()
        );
    }
}
