//! Command-line flags, named as in the Go sample-apiserver where the meaning is the same.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wardle-apiserver",
    version = crate::VERSION,
    next_line_help = true,
    about = "The wardle.example.com API server on Postgres or SQLite"
)]
pub struct Config {
    /// The port on which to serve HTTPS.
    #[arg(long, default_value_t = 8443)]
    pub secure_port: u16,

    /// The IP address on which to listen: `0.0.0.0` (or `::`) for every interface. The default
    /// keeps a standalone server local; containers and pods pass `0.0.0.0` (Go's default).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: String,

    /// Where objects live: `postgres://…` or `sqlite://path` (default: a SQLite file in --cert-dir).
    #[arg(long, env = "WARDLE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// How long to keep retrying a database that does not answer at start-up (a progress line
    /// every 2 s) before giving up; `0` tries once.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub storage_wait: std::time::Duration,

    /// Directory for the standalone CA, serving cert, admin client cert and admin.kubeconfig.
    #[arg(long, default_value = ".wardle")]
    pub cert_dir: PathBuf,

    /// Serving certificate (PEM); without it wardle makes its own under --cert-dir.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA bundle for client certificates: CN is the user, O the groups.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,

    /// Host name or IP clients use to reach this server (kubeconfig and discovery addresses).
    #[arg(long, default_value = "127.0.0.1")]
    pub external_hostname: String,

    /// Non-resource paths anyone may GET.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,

    /// How often the event log is compacted to the resourceVersion seen one interval earlier
    /// (like kube-apiserver's --etcd-compaction-interval); `0` turns compaction off.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub compaction_interval: std::time::Duration,

    /// How long the change history (the `change_history` view) keeps changes that compaction has
    /// moved out of the watch window; `0` keeps them forever. Pruned at each compaction run.
    #[arg(long, default_value = "168h", value_parser = parse_duration)]
    pub history_retention: std::time::Duration,

    /// Admission plugins to turn on in addition to the default ones (all are on by default, as in
    /// Go). Go's names: NamespaceLifecycle, MutatingAdmissionWebhook, BanFlunder,
    /// ValidatingAdmissionPolicy, ValidatingAdmissionWebhook, MutatingAdmissionPolicy (accepted,
    /// not implemented).
    #[arg(long, value_delimiter = ',', value_parser = crate::admission::plugin_name)]
    pub enable_admission_plugins: Vec<String>,

    /// Admission plugins to turn off although they are on by default (any name
    /// --enable-admission-plugins knows).
    #[arg(long, value_delimiter = ',', value_parser = crate::admission::plugin_name)]
    pub disable_admission_plugins: Vec<String>,

    /// AdmissionConfiguration file (apiserver.config.k8s.io/v1, as Go's): per plugin an
    /// embedded `configuration` or a `path`. MutatingAdmissionWebhook and
    /// ValidatingAdmissionWebhook take a WebhookAdmissionConfiguration whose `kubeConfigFile`
    /// holds the credentials wardle presents to webhooks; the other plugins take none.
    #[arg(long)]
    pub admission_control_config_file: Option<PathBuf>,

    /// Log line format on stderr: `text` (human) or `json` (one JSON object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    // --- Delegated authentication / authorization and the core cluster (as Go's flags) ---
    /// CA bundle of the front proxy (kube-aggregator) client certificate. Without it the
    /// requestheader settings come from kube-system/extension-apiserver-authentication.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// CNs the front proxy certificate may have; empty allows any that --requestheader-client-ca-file signed.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,

    /// Headers holding the user name.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-user")]
    pub requestheader_username_headers: Vec<String>,

    /// Headers holding the groups.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-group")]
    pub requestheader_group_headers: Vec<String>,

    /// Header prefixes of the user's extra attributes.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,

    /// Headers holding the user's UID (none by default).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,

    /// kubeconfig of the cluster that reviews bearer tokens (TokenReview) and holds
    /// extension-apiserver-authentication; in a pod the in-cluster config is used without it.
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,

    /// How long TokenReview answers are cached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authentication_token_webhook_cache_ttl: std::time::Duration,

    /// Don't read kube-system/extension-apiserver-authentication for missing settings.
    #[arg(long)]
    pub authentication_skip_lookup: bool,

    /// Start even if extension-apiserver-authentication cannot be read.
    #[arg(long)]
    pub authentication_tolerate_lookup_failure: bool,

    /// kubeconfig of the cluster that answers SubjectAccessReviews; in a pod the in-cluster
    /// config is used without it. With neither, only system:masters and the always-allow paths pass.
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,

    /// How long allowed SubjectAccessReview answers are cached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_authorized_ttl: std::time::Duration,

    /// How long denied SubjectAccessReview answers are cached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: std::time::Duration,

    /// kubeconfig of the core cluster (namespaces for NamespaceLifecycle); in a pod the
    /// in-cluster config is used without it.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// How often certificate files and the authentication ConfigMap are re-read.
    #[arg(long, default_value = "10s", value_parser = parse_duration, hide = true)]
    pub config_reload_interval: std::time::Duration,

    /// The most non-mutating requests (get, list) in flight at once; beyond it clients get 429.
    /// 0 = no limit. Watches do not count.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,

    /// The most mutating requests in flight at once; beyond it clients get 429. 0 = no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,

    /// How long a request that is not a watch may take, reading its body included; then 504.
    #[arg(long, default_value = "60s", value_parser = crate::config::parse_duration)]
    pub request_timeout: std::time::Duration,

    /// How long a client may take to send a request's headers (Go: ReadHeaderTimeout, fixed at
    /// 32 s); also how long an idle keep-alive connection stays open (hyper starts this timer
    /// when the connection waits for its next request; Go's IdleTimeout is 90 s).
    #[arg(long, default_value = "32s", value_parser = crate::config::parse_duration, hide = true)]
    pub http_header_read_timeout: std::time::Duration,

    /// `--audit-*`: policy, log and webhook backends, as kube-apiserver's.
    #[command(flatten)]
    pub audit: crate::audit::AuditOptions,

    /// Without a subcommand, wardle-apiserver serves.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Run a named SQL report (reports/*.sql) against a wardle database, read-only.
    Report(crate::report::ReportArgs),
}

impl Config {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => crate::storage::default_url(&self.cert_dir),
        }
    }

    /// Whether admission plugin `name` runs: on unless disabled (Go's enabledPluginNames, where
    /// every registered plugin is on by default and an explicit enable wins).
    pub fn admission_plugin_enabled(&self, name: &str) -> bool {
        let listed = |list: &[String]| list.iter().any(|p| p == name);
        listed(&self.enable_admission_plugins) || !listed(&self.disable_admission_plugins)
    }

    /// Errors clap cannot see: the same plugin both enabled and disabled (Go's AdmissionOptions
    /// Validate refuses that too).
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut both: Vec<&str> = self
            .enable_admission_plugins
            .iter()
            .filter(|p| !p.is_empty() && self.disable_admission_plugins.contains(p))
            .map(String::as_str)
            .collect();
        both.sort_unstable();
        both.dedup();
        if !both.is_empty() {
            anyhow::bail!(
                "{} in both --enable-admission-plugins and --disable-admission-plugins; name each plugin in one of them only",
                both.join(", ")
            );
        }
        Ok(())
    }

    /// Standalone mode: no serving cert given, so wardle runs its own PKI.
    pub fn standalone(&self) -> bool {
        self.tls_cert_file.is_none()
    }
}

/// Parses a duration flag in Go's `time.ParseDuration` syntax (`1.5h`, `1h30m`, `500us`, `250ms`,
/// `0`) through kube-core's `Duration`, which mirrors it. Refused: negative and empty durations,
/// and values beyond Go's ~292 years (`time.Duration` is int64 nanoseconds). The screening
/// before parsing bounds the input so that kube-core's float arithmetic cannot overflow (it
/// panics on that) — at most 64 bytes, at most 15 digits in a row.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    const HINT: &str = "use Go's duration syntax, e.g. 30s, 5m, 1.5h, 1h30m, 500ms, 500us, or 0";
    const GO_MAX: std::time::Duration = std::time::Duration::from_nanos(i64::MAX as u64);
    let longest_digit_run = s
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if s.len() > 64 || longest_digit_run > 15 {
        return Err(format!("duration {s:?} is out of range; {HINT}"));
    }
    if s.trim().is_empty() {
        return Err(format!("empty duration; {HINT}"));
    }
    let d: kube::core::Duration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?} ({e}); {HINT}"))?;
    let negative = d.is_negative();
    let d = std::time::Duration::from(d);
    if negative && !d.is_zero() {
        return Err(format!("duration {s:?} is negative; {HINT}"));
    }
    if d > GO_MAX {
        return Err(format!("duration {s:?} is out of range; {HINT}"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_duration_syntax() {
        let ok = [
            ("5m", Duration::from_secs(300)),
            ("1m30s", Duration::from_secs(90)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("250ms", Duration::from_millis(250)),
            ("500us", Duration::from_micros(500)),
            ("500µs", Duration::from_micros(500)),
            ("10ns", Duration::from_nanos(10)),
            ("0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("-0s", Duration::ZERO),
            ("2562047h", Duration::from_secs(2562047 * 3600)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            " ",
            "5",
            "m",
            "5x",
            "1.5",
            "-5s",
            "5m ",
            "1e3s",
            "2562048h",
            "9999999999999999h",
            "99999999999999h99999999999999h99999999999999h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("Go's duration syntax"), "{bad}: {err}");
        }
    }
}
