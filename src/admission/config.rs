//! `--admission-control-config-file`: Go's AdmissionConfiguration (k8s.io/apiserver
//! `pkg/admission/config.go`), each plugin's configuration embedded or in a file of its own.
//! Of wardle's plugins only the two webhook plugins take one (WebhookAdmissionConfiguration,
//! `pkg/admission/plugin/webhook/config`): the kubeconfig of their webhook client credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

use super::credentials::AuthInfoResolver;

/// The plugins' configurations, read at start-up.
#[derive(Default)]
pub struct PluginConfigs {
    /// MutatingAdmissionWebhook's kubeConfigFile, loaded.
    pub mutating_webhook_auth: Option<Arc<AuthInfoResolver>>,
    /// ValidatingAdmissionWebhook's kubeConfigFile, loaded.
    pub validating_webhook_auth: Option<Arc<AuthInfoResolver>>,
}

impl std::fmt::Debug for PluginConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginConfigs").finish_non_exhaustive()
    }
}

/// `apiserver.config.k8s.io/v1` (or the older `apiserver.k8s.io/v1alpha1`) AdmissionConfiguration,
/// decoded strictly as Go does (unknown fields are errors).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AdmissionConfiguration {
    api_version: String,
    kind: String,
    #[serde(default)]
    plugins: Vec<PluginConfiguration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginConfiguration {
    name: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    configuration: Option<Value>,
}

/// WebhookAdmissionConfiguration (`apiserver.config.k8s.io/v1`; `WebhookAdmission` in v1alpha1).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WebhookAdmission {
    api_version: String,
    kind: String,
    #[serde(default)]
    kube_config_file: String,
}

/// Read the AdmissionConfiguration at `path` (None: no file, every plugin unconfigured).
/// Errors: the file or a plugin's file cannot be read or decoded; a plugin name wardle does
/// not register (Go ignores those; wardle refuses them, as a misspelt name would otherwise
/// leave a plugin silently unconfigured); a webhook kubeConfigFile that is not an absolute
/// path or not a readable kubeconfig.
pub fn load(path: Option<&Path>) -> anyhow::Result<PluginConfigs> {
    let Some(path) = path else {
        return Ok(PluginConfigs::default());
    };
    let what = || format!("admission control configuration {}", path.display());
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", what()))?;
    let cfg: AdmissionConfiguration =
        serde_saphyr::from_str(&text).with_context(|| format!("decoding {}", what()))?;
    let known_version = matches!(
        cfg.api_version.as_str(),
        "apiserver.config.k8s.io/v1" | "apiserver.k8s.io/v1alpha1"
    );
    if !known_version || cfg.kind != "AdmissionConfiguration" {
        bail!(
            "{}: expected apiVersion apiserver.config.k8s.io/v1, kind AdmissionConfiguration; got {:?}, {:?}",
            what(),
            cfg.api_version,
            cfg.kind
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = PluginConfigs::default();
    for p in &cfg.plugins {
        super::plugin_name(&p.name)
            .map_err(|e| anyhow::anyhow!("{}: plugin {:?}: {e}", what(), p.name))?;
        let slot = match p.name.as_str() {
            "MutatingAdmissionWebhook" => &mut out.mutating_webhook_auth,
            "ValidatingAdmissionWebhook" => &mut out.validating_webhook_auth,
            // The other plugins take no configuration (Go's ignore theirs too).
            _ => continue,
        };
        // Go's ConfigFor: the first entry of a name counts.
        if slot.is_some() {
            continue;
        }
        let Some(raw) = plugin_config(p, base)? else {
            continue;
        };
        let kubeconfig =
            webhook_kubeconfig(&raw).with_context(|| format!("{}: plugin {}", what(), p.name))?;
        *slot = Some(Arc::new(AuthInfoResolver::load(&kubeconfig)?));
    }
    Ok(out)
}

/// Go's `GetAdmissionPluginConfigurationFor`: the embedded configuration, else the file at
/// `path` (relative to the AdmissionConfiguration's directory), else none.
fn plugin_config(p: &PluginConfiguration, base: &Path) -> anyhow::Result<Option<Value>> {
    if let Some(v) = p.configuration.as_ref().filter(|v| !v.is_null()) {
        return Ok(Some(v.clone()));
    }
    if p.path.is_empty() {
        return Ok(None);
    }
    let file = base.join(&p.path);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading plugin {}'s configuration {}",
            p.name,
            file.display()
        )
    })?;
    let v =
        serde_saphyr::from_str(&text).with_context(|| format!("decoding {}", file.display()))?;
    Ok(Some(v))
}

/// The kubeConfigFile of a WebhookAdmissionConfiguration (Go's `config.LoadConfig`).
fn webhook_kubeconfig(raw: &Value) -> anyhow::Result<PathBuf> {
    let w: WebhookAdmission =
        serde_json::from_value(raw.clone()).context("decoding WebhookAdmissionConfiguration")?;
    let known = matches!(
        (w.api_version.as_str(), w.kind.as_str()),
        (
            "apiserver.config.k8s.io/v1",
            "WebhookAdmissionConfiguration"
        ) | ("apiserver.config.k8s.io/v1alpha1", "WebhookAdmission")
    );
    if !known {
        bail!(
            "expected apiVersion apiserver.config.k8s.io/v1, kind WebhookAdmissionConfiguration; got {:?}, {:?}",
            w.api_version,
            w.kind
        );
    }
    let p = PathBuf::from(&w.kube_config_file);
    if !p.is_absolute() {
        bail!(
            "kubeConfigFile: Invalid value: {:?}: must be an absolute file path",
            w.kube_config_file
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str =
        "apiVersion: v1\nkind: Config\nusers:\n- name: \"*\"\n  user: {token: from-file}\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn webhook_kubeconfigs_come_embedded_or_from_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let kc = write(dir.path(), "webhooks.kubeconfig", KUBECONFIG);
        write(
            dir.path(),
            "validating.yaml",
            &format!(
                "apiVersion: apiserver.config.k8s.io/v1alpha1\nkind: WebhookAdmission\nkubeConfigFile: {}\n",
                kc.display()
            ),
        );
        let cfg = write(
            dir.path(),
            "admission.yaml",
            &format!(
                r#"apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: {}
- name: ValidatingAdmissionWebhook
  path: validating.yaml
- name: NamespaceLifecycle
  configuration: {{anything: ignored}}
"#,
                kc.display()
            ),
        );
        let c = load(Some(&cfg)).unwrap();
        for auth in [&c.mutating_webhook_auth, &c.validating_webhook_auth] {
            let creds = auth.as_ref().expect("configured").resolve("h:443").unwrap();
            assert_eq!(creds.bearer_token.as_deref(), Some("from-file"));
        }
        assert!(load(None).unwrap().mutating_webhook_auth.is_none());
    }

    #[test]
    fn bad_configurations_fail_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let case = |text: &str| {
            let p = write(dir.path(), "a.yaml", text);
            format!("{:#}", load(Some(&p)).unwrap_err())
        };
        let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\n";
        let e = case(&format!("{head}plugins:\n- name: namespacelifecycle\n"));
        assert!(e.contains("did you mean NamespaceLifecycle"), "{e}");
        let e = case(&format!("{head}plugins:\n- name: PodSecurity\n"));
        assert!(e.contains("unknown admission plugin"), "{e}");
        let e = case(&format!("{head}plugin: []\n"));
        assert!(e.contains("unknown field"), "{e}");
        let e = case("apiVersion: v1\nkind: AdmissionConfiguration\n");
        assert!(e.contains("expected apiVersion"), "{e}");
        let e = case(&format!(
            "{head}plugins:\n- name: ValidatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: relative.kubeconfig\n"
        ));
        assert!(e.contains("must be an absolute file path"), "{e}");
        let e = case(&format!(
            "{head}plugins:\n- name: ValidatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: /nonexistent/kubeconfig\n"
        ));
        assert!(e.contains("/nonexistent/kubeconfig"), "{e}");
        let e = case(&format!(
            "{head}plugins:\n- name: MutatingAdmissionWebhook\n  path: missing.yaml\n"
        ));
        assert!(e.contains("missing.yaml"), "{e}");
        let missing = dir.path().join("none.yaml");
        assert!(load(Some(&missing)).is_err());
    }
}
