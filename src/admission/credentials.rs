//! Webhook client credentials from a webhook plugin's `kubeConfigFile` (Go's
//! `webhookutil.defaultAuthenticationInfoResolver`, k8s.io/apiserver `pkg/util/webhook/
//! authentication.go`): the kubeconfig's `users` are named after the webhook endpoints they
//! authenticate to (`host:port`, `*.suffix`, `*`), and each call presents the matching one.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use kube::config::{AuthInfo, Kubeconfig};
use secrecy::ExposeSecret;

/// The kubeconfig of one webhook plugin, as Go's resolver reads it (users by name, the
/// current context's user as the fallback).
#[derive(Default)]
pub struct AuthInfoResolver {
    users: HashMap<String, AuthInfo>,
    current_user: Option<String>,
}

/// What one webhook call presents. `user` names the kubeconfig user it came from ("" for
/// anonymous); clients are cached per user, since a client certificate is part of the TLS
/// configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    pub user: String,
    pub bearer_token: Option<String>,
    pub basic: Option<(String, String)>,
    /// PEM client certificate chain and private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// `Impersonate-*` headers: (header name, value) pairs.
    pub impersonate: Vec<(String, String)>,
}

impl AuthInfoResolver {
    /// Read `path` (Go's `NewDefaultAuthenticationInfoResolver`). Errors: the file cannot be
    /// read or is not a kubeconfig.
    pub fn load(path: &Path) -> anyhow::Result<AuthInfoResolver> {
        let kc = Kubeconfig::read_from(path).map_err(|e| {
            anyhow::anyhow!("reading webhook kubeConfigFile {}: {e}", path.display())
        })?;
        let current_user = kc.current_context.as_ref().and_then(|cur| {
            kc.contexts
                .iter()
                .find(|c| &c.name == cur)
                .and_then(|c| c.context.as_ref()?.user.clone())
                .filter(|u| !u.is_empty())
        });
        let users = kc
            .auth_infos
            .into_iter()
            .filter_map(|u| Some((u.name, u.auth_info?)))
            .collect();
        Ok(AuthInfoResolver {
            users,
            current_user,
        })
    }

    /// The credentials for a call to `target` (`host:port`): the user named exactly so, then
    /// `*.` + each shorter domain suffix, then both again without a `:443` port, then `*`,
    /// then the current context's user; anonymous when none matches. Errors are Go's (an auth
    /// provider) or a file that cannot be read.
    pub fn resolve(&self, target: &str) -> Result<Credentials, String> {
        let without_443 = target.strip_suffix(":443");
        let by_name = |t: &str| {
            let steps: Vec<&str> = t.split('.').collect();
            std::iter::once(t.to_string())
                .chain((1..steps.len()).map(|i| format!("*.{}", steps[i..].join("."))))
                .find(|n| self.users.contains_key(n))
        };
        let name = by_name(target)
            .or_else(|| without_443.and_then(by_name))
            .or_else(|| self.users.contains_key("*").then(|| "*".to_string()))
            .or_else(|| {
                self.current_user
                    .clone()
                    .filter(|u| self.users.contains_key(u))
            });
        match name {
            None => Ok(Credentials::default()),
            Some(n) => credentials(&n, &self.users[&n]),
        }
    }
}

/// Go's `restConfigFromKubeconfig` for one user.
fn credentials(name: &str, u: &AuthInfo) -> Result<Credentials, String> {
    if u.auth_provider.is_some() {
        return Err("auth provider not supported".into());
    }
    if u.exec.is_some() {
        return Err(format!(
            "user {name:?}: exec credential plugins are not supported for webhook clients"
        ));
    }
    let mut c = Credentials {
        user: name.to_string(),
        ..Credentials::default()
    };
    c.bearer_token = match (&u.token, &u.token_file) {
        (Some(t), _) if !t.expose_secret().is_empty() => Some(t.expose_secret().to_string()),
        (_, Some(f)) if !f.is_empty() => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("reading tokenFile {f}: {e}"))?
                .trim()
                .to_string(),
        ),
        _ => None,
    };
    let cert = data_or_file(u.client_certificate_data.as_deref(), &u.client_certificate)?;
    let key_data = u.client_key_data.as_ref().map(|k| k.expose_secret());
    let key = data_or_file(key_data, &u.client_key)?;
    match (cert, key) {
        (Some(cert), Some(key)) => c.identity = Some((cert, key)),
        (None, None) => {}
        _ => return Err(format!("user {name:?}: a client certificate needs its key")),
    }
    let username = u.username.clone().unwrap_or_default();
    let password = u.password.as_ref().map(|p| p.expose_secret().to_string());
    if !username.is_empty() || password.as_deref().is_some_and(|p| !p.is_empty()) {
        c.basic = Some((username, password.unwrap_or_default()));
    }
    if let Some(user) = u.impersonate.as_ref().filter(|s| !s.is_empty()) {
        c.impersonate
            .push(("Impersonate-User".into(), user.clone()));
        if let Some(uid) = u.impersonate_uid.as_ref().filter(|s| !s.is_empty()) {
            c.impersonate.push(("Impersonate-Uid".into(), uid.clone()));
        }
        for g in u.impersonate_groups.iter().flatten() {
            c.impersonate.push(("Impersonate-Group".into(), g.clone()));
        }
        for (k, vs) in u.impersonate_user_extra.iter().flatten() {
            for v in vs {
                c.impersonate
                    .push((format!("Impersonate-Extra-{k}"), v.clone()));
            }
        }
    }
    Ok(c)
}

/// PEM from base64 `data`, else from the file `path`.
fn data_or_file(data: Option<&str>, path: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map(Some)
            .map_err(|e| format!("invalid base64 certificate data: {e}"));
    }
    match path.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => std::fs::read(p)
            .map(Some)
            .map_err(|e| format!("reading {p}: {e}")),
        None => Ok(None),
    }
}

/// The `host:port` Go's resolver is asked about for a webhook URL: the URL's authority, with
/// `:443` added when it names no port.
pub fn target_of(url: &str) -> String {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let has_port = match host_port.rfind(']') {
        Some(close) => host_port[close..].contains(':'),
        None => host_port.contains(':'),
    };
    if has_port {
        host_port.to_string()
    } else {
        format!("{host_port}:443")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(yaml: &str) -> AuthInfoResolver {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kc.yaml");
        std::fs::write(&p, yaml).unwrap();
        AuthInfoResolver::load(&p).unwrap()
    }

    #[test]
    fn users_are_chosen_as_go_chooses_them() {
        let r = resolver(
            r#"apiVersion: v1
kind: Config
users:
- name: hook.example.com:8443
  user: {token: exact}
- name: "*.example.com"
  user: {token: wildcard}
- name: plain.test
  user: {username: u, password: p}
- name: "*"
  user: {token: star, as: someone, as-groups: [g1, g2]}
"#,
        );
        let token = |t: &str| r.resolve(t).unwrap().bearer_token;
        assert_eq!(token("hook.example.com:8443").as_deref(), Some("exact"));
        assert_eq!(token("other.example.com:443").as_deref(), Some("wildcard"));
        // A port other than 443 is part of every name tried: only "*" matches.
        assert_eq!(token("other.example.com:8443").as_deref(), Some("star"));
        assert_eq!(token("a.b.example.com:443").as_deref(), Some("wildcard"));
        let plain = r.resolve("plain.test:443").unwrap();
        assert_eq!(plain.basic, Some(("u".into(), "p".into())));
        assert_eq!(plain.user, "plain.test");
        // Without :443 the port is part of the name, so only "*" matches.
        let star = r.resolve("plain.test:8443").unwrap();
        assert_eq!(star.bearer_token.as_deref(), Some("star"));
        assert_eq!(
            star.impersonate,
            [
                ("Impersonate-User".to_string(), "someone".to_string()),
                ("Impersonate-Group".to_string(), "g1".to_string()),
                ("Impersonate-Group".to_string(), "g2".to_string()),
            ]
        );
        // No match and no "*", no current context: anonymous.
        let r = resolver("apiVersion: v1\nkind: Config\nusers:\n- name: x:1\n  user: {token: t}\n");
        assert_eq!(r.resolve("y:1").unwrap(), Credentials::default());
        let r = resolver(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: me}\nusers:\n- name: me\n  user: {auth-provider: {name: gcp}}\n",
        );
        assert_eq!(r.resolve("y:1").unwrap_err(), "auth provider not supported");
    }

    #[test]
    fn targets_are_host_and_port() {
        assert_eq!(target_of("https://hook.test/validate"), "hook.test:443");
        assert_eq!(target_of("https://hook.test:8443/v?x=1"), "hook.test:8443");
        assert_eq!(target_of("https://[::1]:9443/v"), "[::1]:9443");
        assert_eq!(target_of("https://[::1]/v"), "[::1]:443");
    }
}
