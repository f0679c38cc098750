//! The `--audit-*` flags, with the names and defaults of Go's
//! `k8s.io/apiserver/pkg/server/options/audit.go`.

use clap::{ArgAction, Args};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::parse_duration;

/// `--audit-<plugin>-mode`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Batch,
    Blocking,
    BlockingStrict,
}

/// `--audit-log-format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Legacy,
}

/// The batch-mode settings of one backend (Go's `BatchConfig`).
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Events buffered before new ones are dropped (and counted).
    pub buffer_size: usize,
    /// Most events per batch.
    pub max_size: usize,
    /// How long a batch waits for more events after its first.
    pub max_wait: Duration,
    pub throttle_enable: bool,
    /// Batches per second.
    pub throttle_qps: f32,
    /// Batches sent at once when the rate was not used before.
    pub throttle_burst: u32,
}

/// The truncate settings of one backend (Go's `plugin/pkg/audit/truncate` Config).
#[derive(Debug, Clone, Copy)]
pub struct TruncateOptions {
    pub enabled: bool,
    /// Bytes; must be at least `max_event_size`.
    pub max_batch_size: i64,
    /// Bytes of an event's JSON: above it the bodies are dropped, and if that is not enough the
    /// event is (and counted as an error of plugin `truncate`).
    pub max_event_size: i64,
}

/// All audit flags (flattened into the server's `Config`).
#[derive(Args, Debug, Clone)]
pub struct AuditOptions {
    /// Path to the file that defines the audit policy configuration. Without it nothing is audited.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,

    /// If set, all requests coming to the apiserver will be logged to this file. '-' means standard out.
    #[arg(long)]
    pub audit_log_path: Option<String>,
    /// The maximum number of days to retain old audit log files based on the timestamp encoded in their filename.
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxage: u32,
    /// The maximum number of old audit log files to retain. 0 means no restriction.
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: u32,
    /// The maximum size in megabytes of the audit log file before it gets rotated (0: 100).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u32,
    /// Format of saved audits: "legacy" (1-line text) or "json" (structured).
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub audit_log_format: LogFormat,
    /// If set, the rotated log files will be compressed using gzip.
    #[arg(long, action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub audit_log_compress: bool,
    /// API group and version used for serializing audit events written to log.
    #[arg(long, default_value = "audit.k8s.io/v1", value_parser = ["audit.k8s.io/v1"])]
    pub audit_log_version: String,
    /// Strategy for sending audit events to the log: blocking, blocking-strict or batch.
    #[arg(long, value_enum, default_value_t = Mode::Blocking)]
    pub audit_log_mode: Mode,
    /// The size of the buffer to store events before batching and writing. Only used in batch mode.
    #[arg(long, default_value_t = 10000)]
    pub audit_log_batch_buffer_size: usize,
    /// The maximum size of a batch. Only used in batch mode.
    #[arg(long, default_value_t = 1)]
    pub audit_log_batch_max_size: usize,
    /// The amount of time to wait before force writing the batch that hadn't reached the max size.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub audit_log_batch_max_wait: Duration,
    /// Whether batching throttling is enabled. Only used in batch mode.
    #[arg(long, action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub audit_log_batch_throttle_enable: bool,
    /// Maximum average number of batches per second. Only used in batch mode.
    #[arg(long, default_value_t = 0.0)]
    pub audit_log_batch_throttle_qps: f32,
    /// Maximum number of requests sent at the same moment if ThrottleQPS was not utilized before.
    #[arg(long, default_value_t = 0)]
    pub audit_log_batch_throttle_burst: u32,
    /// Whether event and batch truncating is enabled.
    #[arg(long, action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub audit_log_truncate_enabled: bool,
    /// Maximum size of the batch sent to the underlying backend.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub audit_log_truncate_max_batch_size: i64,
    /// Maximum size of the audit event sent to the underlying backend. If the size of an event is
    /// greater than this number, first request and response are removed, and if this doesn't
    /// reduce the size enough, event is discarded.
    #[arg(long, default_value_t = 100 * 1024)]
    pub audit_log_truncate_max_event_size: i64,

    /// Path to a kubeconfig formatted file that defines the audit webhook configuration.
    #[arg(long)]
    pub audit_webhook_config_file: Option<PathBuf>,
    /// The amount of time to wait before retrying the first failed request.
    #[arg(long, alias = "audit-webhook-batch-initial-backoff", default_value = "10s", value_parser = parse_duration)]
    pub audit_webhook_initial_backoff: Duration,
    /// API group and version used for serializing audit events written to webhook.
    #[arg(long, default_value = "audit.k8s.io/v1", value_parser = ["audit.k8s.io/v1"])]
    pub audit_webhook_version: String,
    /// Strategy for sending audit events to the webhook: blocking, blocking-strict or batch.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    pub audit_webhook_mode: Mode,
    /// The size of the buffer to store events before batching and writing. Only used in batch mode.
    #[arg(long, default_value_t = 10000)]
    pub audit_webhook_batch_buffer_size: usize,
    /// The maximum size of a batch. Only used in batch mode.
    #[arg(long, default_value_t = 400)]
    pub audit_webhook_batch_max_size: usize,
    /// The amount of time to wait before force writing the batch that hadn't reached the max size.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub audit_webhook_batch_max_wait: Duration,
    /// Whether batching throttling is enabled. Only used in batch mode.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub audit_webhook_batch_throttle_enable: bool,
    /// Maximum average number of batches per second. Only used in batch mode.
    #[arg(long, default_value_t = 10.0)]
    pub audit_webhook_batch_throttle_qps: f32,
    /// Maximum number of requests sent at the same moment if ThrottleQPS was not utilized before.
    #[arg(long, default_value_t = 15)]
    pub audit_webhook_batch_throttle_burst: u32,
    /// Whether event and batch truncating is enabled.
    #[arg(long, action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub audit_webhook_truncate_enabled: bool,
    /// Maximum size of the batch sent to the underlying backend.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub audit_webhook_truncate_max_batch_size: i64,
    /// Maximum size of the audit event sent to the underlying backend (see the log flag).
    #[arg(long, default_value_t = 100 * 1024)]
    pub audit_webhook_truncate_max_event_size: i64,
}

impl AuditOptions {
    pub(super) fn log_batch(&self) -> BatchOptions {
        BatchOptions {
            buffer_size: self.audit_log_batch_buffer_size,
            max_size: self.audit_log_batch_max_size,
            max_wait: self.audit_log_batch_max_wait,
            throttle_enable: self.audit_log_batch_throttle_enable,
            throttle_qps: self.audit_log_batch_throttle_qps,
            throttle_burst: self.audit_log_batch_throttle_burst,
        }
    }

    pub(super) fn webhook_batch(&self) -> BatchOptions {
        BatchOptions {
            buffer_size: self.audit_webhook_batch_buffer_size,
            max_size: self.audit_webhook_batch_max_size,
            max_wait: self.audit_webhook_batch_max_wait,
            throttle_enable: self.audit_webhook_batch_throttle_enable,
            throttle_qps: self.audit_webhook_batch_throttle_qps,
            throttle_burst: self.audit_webhook_batch_throttle_burst,
        }
    }

    pub(super) fn log_truncate(&self) -> TruncateOptions {
        TruncateOptions {
            enabled: self.audit_log_truncate_enabled,
            max_batch_size: self.audit_log_truncate_max_batch_size,
            max_event_size: self.audit_log_truncate_max_event_size,
        }
    }

    pub(super) fn webhook_truncate(&self) -> TruncateOptions {
        TruncateOptions {
            enabled: self.audit_webhook_truncate_enabled,
            max_batch_size: self.audit_webhook_truncate_max_batch_size,
            max_event_size: self.audit_webhook_truncate_max_event_size,
        }
    }

    /// Go's `validateBackendBatchOptions` and truncate `Validate` for the enabled backends.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let truncate = |plugin: &str, t: TruncateOptions| -> anyhow::Result<()> {
            if t.max_event_size <= 0 {
                anyhow::bail!(
                    "invalid audit truncate {plugin} max event size {}, must be a positive number",
                    t.max_event_size
                );
            }
            if t.max_batch_size < t.max_event_size {
                anyhow::bail!(
                    "invalid audit truncate {plugin} max batch size {}, must be greater than max event size ({})",
                    t.max_batch_size,
                    t.max_event_size
                );
            }
            Ok(())
        };
        let check = |plugin: &str, mode: Mode, b: &BatchOptions| -> anyhow::Result<()> {
            if mode != Mode::Batch {
                return Ok(());
            }
            if b.buffer_size == 0 {
                anyhow::bail!(
                    "invalid audit batch {plugin} buffer size 0, must be a positive number"
                );
            }
            if b.max_size == 0 {
                anyhow::bail!(
                    "invalid audit batch {plugin} max batch size 0, must be a positive number"
                );
            }
            if b.throttle_enable && (b.throttle_qps.is_nan() || b.throttle_qps <= 0.0) {
                anyhow::bail!(
                    "invalid audit batch {plugin} throttle QPS {}, must be a positive number",
                    b.throttle_qps
                );
            }
            if b.throttle_enable && b.throttle_burst == 0 {
                anyhow::bail!(
                    "invalid audit batch {plugin} throttle burst 0, must be a positive number"
                );
            }
            Ok(())
        };
        if self.audit_log_path.is_some() {
            check("log", self.audit_log_mode, &self.log_batch())?;
            truncate("log", self.log_truncate())?;
        }
        if self.audit_webhook_config_file.is_some() {
            check("webhook", self.audit_webhook_mode, &self.webhook_batch())?;
            truncate("webhook", self.webhook_truncate())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> AuditOptions {
        let mut all = vec!["wardle-apiserver"];
        all.extend_from_slice(args);
        crate::config::Config::try_parse_from(all)
            .expect("flags parse")
            .audit
    }

    /// Go's defaults (NewAuditOptions, defaultWebhookBatchConfig, defaultLogBatchConfig).
    #[test]
    fn defaults_are_gos() {
        let o = parse(&[]);
        assert_eq!(o.audit_log_format, LogFormat::Json);
        assert_eq!(o.audit_log_mode, Mode::Blocking);
        assert_eq!(o.audit_log_batch_buffer_size, 10000);
        assert_eq!(o.audit_log_batch_max_size, 1);
        assert!(!o.audit_log_batch_throttle_enable);
        assert_eq!(
            (
                o.audit_log_maxage,
                o.audit_log_maxbackup,
                o.audit_log_maxsize
            ),
            (0, 0, 0)
        );
        assert!(!o.audit_log_compress);
        assert_eq!(o.audit_webhook_mode, Mode::Batch);
        assert_eq!(o.audit_webhook_initial_backoff, Duration::from_secs(10));
        let b = o.webhook_batch();
        assert_eq!((b.buffer_size, b.max_size), (10000, 400));
        assert_eq!(b.max_wait, Duration::from_secs(30));
        assert!(b.throttle_enable);
        assert_eq!((b.throttle_qps, b.throttle_burst), (10.0, 15));
        let t = o.webhook_truncate();
        assert!(!t.enabled);
        assert_eq!((t.max_batch_size, t.max_event_size), (10485760, 102400));
        assert_eq!(o.audit_log_version, "audit.k8s.io/v1");
    }

    #[test]
    fn go_style_flags_parse() {
        let o = parse(&[
            "--audit-log-compress",
            "--audit-webhook-batch-throttle-enable=false",
            "--audit-webhook-mode=blocking-strict",
            "--audit-log-format=legacy",
            "--audit-webhook-batch-initial-backoff=5s",
        ]);
        assert!(o.audit_log_compress);
        assert!(!o.audit_webhook_batch_throttle_enable);
        assert_eq!(o.audit_webhook_mode, Mode::BlockingStrict);
        assert_eq!(o.audit_log_format, LogFormat::Legacy);
        assert_eq!(o.audit_webhook_initial_backoff, Duration::from_secs(5));
        assert!(
            crate::config::Config::try_parse_from([
                "wardle-apiserver",
                "--audit-log-version=audit.k8s.io/v1beta1"
            ])
            .is_err()
        );
    }

    #[test]
    fn bad_batch_and_truncate_settings_are_refused() {
        let err = |args: &[&str]| parse(args).validate().unwrap_err().to_string();
        assert!(
            err(&[
                "--audit-webhook-config-file=x",
                "--audit-webhook-batch-buffer-size=0"
            ])
            .contains("buffer size")
        );
        assert!(
            err(&[
                "--audit-webhook-config-file=x",
                "--audit-webhook-batch-throttle-qps=0"
            ])
            .contains("throttle QPS")
        );
        assert!(
            err(&[
                "--audit-log-path=x",
                "--audit-log-truncate-max-batch-size=10",
            ])
            .contains("max batch size")
        );
        // Settings of a backend that is off are not checked (as in Go).
        assert!(
            parse(&["--audit-webhook-batch-buffer-size=0"])
                .validate()
                .is_ok()
        );
        // Nor batch settings outside batch mode.
        assert!(
            parse(&["--audit-log-path=x", "--audit-log-batch-max-size=0"])
                .validate()
                .is_ok()
        );
    }
}
