//! Command-line flags, named as in the Go sample-apiserver where the meaning is the same.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wardle-apiserver",
    version,
    about = "The wardle.example.com API server on Postgres or SQLite"
)]
pub struct Config {
    /// The port on which to serve HTTPS.
    #[arg(long, default_value_t = 8443)]
    pub secure_port: u16,

    /// The IP address on which to listen.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,

    /// Where objects live: `postgres://…` or `sqlite://path` (default: a SQLite file in --cert-dir).
    #[arg(long, env = "WARDLE_DATABASE_URL")]
    pub database_url: Option<String>,

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
    #[arg(long, default_value = "5m", value_parser = crate::storage::compaction::parse_duration)]
    pub compaction_interval: std::time::Duration,

    /// How long the change history (the `change_history` view) keeps changes that compaction has
    /// moved out of the watch window; `0` keeps them forever. Pruned at each compaction run.
    #[arg(long, default_value = "168h", value_parser = crate::storage::compaction::parse_duration)]
    pub history_retention: std::time::Duration,

    /// Admission plugins to turn off: NamespaceLifecycle, MutatingAdmissionWebhook,
    /// ValidatingAdmissionPolicy, ValidatingAdmissionWebhook, BanFlunder.
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,

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
    #[arg(long, default_value = "10s", value_parser = crate::storage::compaction::parse_duration)]
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
    #[arg(long, default_value = "10s", value_parser = crate::storage::compaction::parse_duration)]
    pub authorization_webhook_cache_authorized_ttl: std::time::Duration,

    /// How long denied SubjectAccessReview answers are cached.
    #[arg(long, default_value = "10s", value_parser = crate::storage::compaction::parse_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: std::time::Duration,

    /// kubeconfig of the core cluster (namespaces for NamespaceLifecycle); in a pod the
    /// in-cluster config is used without it.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// How often certificate files and the authentication ConfigMap are re-read.
    #[arg(long, default_value = "10s", value_parser = crate::storage::compaction::parse_duration, hide = true)]
    pub config_reload_interval: std::time::Duration,

    /// The most non-mutating requests (get, list) in flight at once; beyond it clients get 429.
    /// 0 = no limit. Watches do not count.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,

    /// The most mutating requests in flight at once; beyond it clients get 429. 0 = no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,

    /// How long a request that is not a watch may take, reading its body included; then 504.
    #[arg(long, default_value = "60s", value_parser = crate::storage::compaction::parse_duration)]
    pub request_timeout: std::time::Duration,

    /// How long a client may take to send a request's headers (Go: ReadHeaderTimeout, fixed at
    /// 32 s); also how long an idle keep-alive connection stays open (hyper starts this timer
    /// when the connection waits for its next request; Go's IdleTimeout is 90 s).
    #[arg(long, default_value = "32s", value_parser = crate::storage::compaction::parse_duration, hide = true)]
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
            None => format!(
                "sqlite://{}?mode=rwc",
                self.cert_dir.join("wardle.db").display()
            ),
        }
    }

    /// Standalone mode: no serving cert given, so wardle runs its own PKI.
    pub fn standalone(&self) -> bool {
        self.tls_cert_file.is_none()
    }
}
