//! Audit backends and their modes, as Go's `plugin/pkg/audit/{log,webhook,buffered}`: the log
//! backend (a rotated file or stdout, `json` or `legacy` lines) and the webhook backend (an
//! `EventList` POSTed to the server of a kubeconfig), each either `blocking` (the request waits
//! for the write; errors are counted and ignored), `blocking-strict` (a failed RequestReceived
//! write fails the request) or `batch` (a bounded buffer drained by a background task: a full
//! buffer drops the event and counts it, so a dead backend never holds a request up).

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::event::{Event, event_list_json};
use super::options::{BatchOptions, LogFormat, Mode, TruncateOptions};

/// Batches a batch-mode webhook sends at once; the rest wait (and the buffer fills, then drops).
const MAX_SENDS_IN_FLIGHT: usize = 8;
/// One webhook POST may take this long (Go's webhook client timeout).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Go's `DefaultRetryBackoffWithInitialDelay`: attempts and growth factor.
const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_BACKOFF_FACTOR: f64 = 1.5;

/// Where events finally go.
enum Delegate {
    Log {
        out: Arc<Mutex<Box<dyn std::io::Write + Send>>>,
        format: LogFormat,
    },
    Webhook {
        client: kube::Client,
        /// The path of the kubeconfig's server URL (the client has its scheme and authority).
        path: String,
        initial_backoff: Duration,
    },
}

impl Delegate {
    /// Go's plugin name: the `plugin` label of `apiserver_audit_error_total`.
    fn name(&self) -> &'static str {
        match self {
            Delegate::Log { .. } => "log",
            Delegate::Webhook { .. } => "webhook",
        }
    }

    /// Write or send `events`; on failure they are counted and logged here.
    async fn process(&self, events: &[Event]) -> bool {
        let result = match self {
            Delegate::Log { out, format } => {
                let text: String = events
                    .iter()
                    .map(|e| match format {
                        LogFormat::Json => e.to_json_line(),
                        LogFormat::Legacy => e.legacy_line(),
                    })
                    .collect();
                let out = out.clone();
                // File writes (and gzip on rotation) must not stall the async workers.
                tokio::task::spawn_blocking(move || {
                    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
                    w.write_all(text.as_bytes()).and_then(|_| w.flush())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            }
            Delegate::Webhook {
                client,
                path,
                initial_backoff,
            } => send_with_backoff(client, path, *initial_backoff, event_list_json(events)).await,
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                plugin_error(self.name(), &e, events);
                false
            }
        }
    }
}

/// Go's `HandlePluginError`: count the events and log them, so they are not lost silently.
fn plugin_error(plugin: &'static str, error: &str, events: &[Event]) {
    crate::metrics::audit_error(plugin, events.len() as u64);
    let lines: String = events.iter().map(Event::legacy_line).collect();
    tracing::error!(
        plugin,
        error,
        events = events.len(),
        "audit backend failed; impacted events:\n{lines}"
    );
}

/// POST one EventList, retrying any failure with exponential backoff (Go retries every error).
async fn send_with_backoff(
    client: &kube::Client,
    path: &str,
    initial: Duration,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut delay = initial;
    let mut attempt = 1;
    loop {
        match post(client, path, body.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= WEBHOOK_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, attempt, "audit webhook failed, retrying");
                tokio::time::sleep(delay).await;
                delay = delay.mul_f64(WEBHOOK_BACKOFF_FACTOR);
                attempt += 1;
            }
        }
    }
}

async fn post(client: &kube::Client, path: &str, body: Vec<u8>) -> Result<(), String> {
    let req = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(WEBHOOK_TIMEOUT, client.send(req))
        .await
        .map_err(|_| "the audit webhook did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the audit webhook answered {}", resp.status()))
    }
}

/// A token bucket for `--audit-*-batch-throttle-qps|burst` (client-go's rate limiter semantics:
/// `burst` batches at once, refilled at `qps` per second).
struct Throttle {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    fn new(qps: f32, burst: u32) -> Throttle {
        Throttle {
            qps: f64::from(qps),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    async fn accept(&mut self) {
        let wait = self.take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Take a token at `now`: how long to wait for it (zero if one is available).
    fn take(&mut self, now: Instant) -> Duration {
        self.tokens = (self.tokens
            + now.saturating_duration_since(self.last).as_secs_f64() * self.qps)
            .min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// One configured backend in its mode.
pub(super) struct Backend {
    mode: Mode,
    delegate: Arc<Delegate>,
    /// Batch mode: the bounded buffer.
    queue: Option<mpsc::Sender<Event>>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    truncate: TruncateOptions,
}

impl Backend {
    /// The log backend writing to `path` (`-` = stdout), rotated by size with file-rotate.
    pub fn log(
        path: &str,
        format: LogFormat,
        rotation: &Rotation,
        mode: Mode,
        batch: &BatchOptions,
        truncate: TruncateOptions,
    ) -> anyhow::Result<Backend> {
        let out: Box<dyn std::io::Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(rotation.open(Path::new(path))?)
        };
        let delegate = Delegate::Log {
            out: Arc::new(Mutex::new(out)),
            format,
        };
        Ok(Backend::new(delegate, mode, batch, truncate, false))
    }

    /// The webhook backend: POSTs to the server of the kubeconfig at `config`.
    pub async fn webhook(
        config: &Path,
        initial_backoff: Duration,
        mode: Mode,
        batch: &BatchOptions,
        truncate: TruncateOptions,
    ) -> anyhow::Result<Backend> {
        let kc = kube::config::Kubeconfig::read_from(config)
            .with_context(|| format!("--audit-webhook-config-file {}", config.display()))?;
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .with_context(|| format!("--audit-webhook-config-file {}", config.display()))?;
        // The client prefixes every request with the cluster URL's path; keep only scheme and
        // authority there and POST to the path itself, so the receiver sees exactly its URL.
        let url = cfg.cluster_url.clone();
        let path = url
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let mut base = http::uri::Builder::new();
        if let Some(s) = url.scheme() {
            base = base.scheme(s.clone());
        }
        if let Some(a) = url.authority() {
            base = base.authority(a.clone());
        }
        cfg.cluster_url = base
            .path_and_query("/")
            .build()
            .context("audit webhook server URL")?;
        cfg.default_retry = false;
        cfg.read_timeout = Some(WEBHOOK_TIMEOUT);
        cfg.connect_timeout = Some(Duration::from_secs(10));
        let client = kube::Client::try_from(cfg).context("building the audit webhook client")?;
        let delegate = Delegate::Webhook {
            client,
            path,
            initial_backoff,
        };
        Ok(Backend::new(delegate, mode, batch, truncate, true))
    }

    fn new(
        delegate: Delegate,
        mode: Mode,
        batch: &BatchOptions,
        truncate: TruncateOptions,
        async_delegate: bool,
    ) -> Backend {
        let delegate = Arc::new(delegate);
        let (stop, stopped) = watch::channel(false);
        let (queue, worker) = if mode == Mode::Batch {
            let (tx, rx) = mpsc::channel(batch.buffer_size.max(1));
            let worker = tokio::spawn(run_batches(
                delegate.clone(),
                rx,
                stopped,
                batch.clone(),
                async_delegate,
            ));
            (Some(tx), Some(worker))
        } else {
            (None, None)
        };
        Backend {
            mode,
            delegate,
            queue,
            worker: Mutex::new(worker),
            stop,
            truncate,
        }
    }

    /// Hand one event to the backend. False only in blocking-strict mode when it failed.
    pub async fn process(&self, ev: &Event) -> bool {
        let truncated;
        let ev = if self.truncate.enabled {
            match truncate(ev, self.truncate.max_event_size) {
                Ok(Some(t)) => {
                    truncated = t;
                    &truncated
                }
                Ok(None) => ev,
                Err(e) => {
                    plugin_error("truncate", &e, std::slice::from_ref(ev));
                    return self.mode != Mode::BlockingStrict;
                }
            }
        } else {
            ev
        };
        match self.mode {
            Mode::Batch => {
                if let Some(q) = &self.queue
                    && q.try_send(ev.clone()).is_err()
                {
                    plugin_error(
                        "buffered",
                        "audit buffer queue blocked",
                        std::slice::from_ref(ev),
                    );
                }
                true
            }
            Mode::Blocking => {
                self.delegate.process(std::slice::from_ref(ev)).await;
                true
            }
            Mode::BlockingStrict => self.delegate.process(std::slice::from_ref(ev)).await,
        }
    }

    /// Send what is buffered, waiting up to `grace` (Go's buffered backend `Shutdown`).
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = worker
            && tokio::time::timeout(grace, w).await.is_err()
        {
            tracing::warn!(
                plugin = self.delegate.name(),
                "audit events still buffered at shutdown were dropped"
            );
        }
    }
}

/// Go's truncate plugin: an event whose JSON is larger than `max` loses its request and response
/// objects (and says so in the `audit.k8s.io/truncated` annotation); `Ok(None)` = small enough
/// as it is, `Err` = too large even then (the event is dropped).
fn truncate(ev: &Event, max: i64) -> Result<Option<Event>, String> {
    let size = |e: &Event| serde_json::to_vec(e).map_or(i64::MAX, |v| v.len() as i64);
    if size(ev) <= max {
        return Ok(None);
    }
    let mut t = ev.clone();
    t.request_object = None;
    t.response_object = None;
    t.annotations
        .insert("audit.k8s.io/truncated".into(), "true".into());
    if size(&t) > max {
        return Err("event is too large even after truncating".into());
    }
    Ok(Some(t))
}

/// The batch-mode worker: a batch is sent when it has `max_size` events or `max_wait` after its
/// first; batches are throttled, and (webhook) sent concurrently up to MAX_SENDS_IN_FLIGHT.
async fn run_batches(
    delegate: Arc<Delegate>,
    mut rx: mpsc::Receiver<Event>,
    mut stop: watch::Receiver<bool>,
    cfg: BatchOptions,
    async_delegate: bool,
) {
    let mut throttle = cfg
        .throttle_enable
        .then(|| Throttle::new(cfg.throttle_qps, cfg.throttle_burst));
    let in_flight = Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT));
    let mut stopping = false;
    loop {
        let first = if stopping {
            match rx.try_recv() {
                Ok(e) => e,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                e = rx.recv() => match e { Some(e) => e, None => break },
                _ = stop.changed() => { stopping = true; continue; }
            }
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + cfg.max_wait;
        while batch.len() < cfg.max_size.max(1) {
            if stopping {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
                continue;
            }
            tokio::select! {
                e = tokio::time::timeout_at(deadline, rx.recv()) => match e {
                    Ok(Some(e)) => batch.push(e),
                    _ => break,
                },
                // Shutting down: stop waiting, take what is queued and send it.
                _ = stop.changed() => stopping = true,
            }
        }
        if let Some(t) = throttle.as_mut()
            && !stopping
        {
            t.accept().await;
        }
        if async_delegate {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let d = delegate.clone();
            tokio::spawn(async move {
                let _permit = permit;
                d.process(&batch).await;
            });
        } else {
            delegate.process(&batch).await;
        }
    }
    // Wait for the sends still running.
    let _ = in_flight.acquire_many(MAX_SENDS_IN_FLIGHT as u32).await;
}

/// `--audit-log-maxage|maxbackup|maxsize|compress`, applied with the file-rotate crate.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    pub max_age_days: u32,
    pub max_backups: u32,
    /// Megabytes; 0 means lumberjack's default, 100.
    pub max_size_mb: u32,
    pub compress: bool,
}

impl Rotation {
    /// Open (creating with mode 0600, as Go does) the log file at `path`.
    pub fn open(
        &self,
        path: &Path,
    ) -> anyhow::Result<file_rotate::FileRotate<file_rotate::suffix::AppendTimestamp>> {
        use file_rotate::suffix::{AppendTimestamp, FileLimit};
        use file_rotate::{ContentLimit, FileRotate, compression::Compression};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--audit-log-path: creating {}", dir.display()))?;
        }
        let mut open = std::fs::OpenOptions::new();
        open.read(true).create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        // Check the path is writable now: file-rotate would only fail at the first write.
        open.open(path)
            .with_context(|| format!("--audit-log-path: opening {}", path.display()))?;
        let limit = if self.max_backups > 0 {
            FileLimit::MaxFiles(self.max_backups as usize)
        } else if self.max_age_days > 0 {
            FileLimit::Age(chrono::Duration::days(i64::from(self.max_age_days)))
        } else {
            FileLimit::Unlimited
        };
        let mb = if self.max_size_mb == 0 {
            100
        } else {
            self.max_size_mb as usize
        };
        let compression = if self.compress {
            Compression::OnRotate(0)
        } else {
            Compression::None
        };
        Ok(FileRotate::new(
            path,
            AppendTimestamp::default(limit),
            ContentLimit::BytesSurpassed(mb * 1024 * 1024),
            compression,
            Some(open),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_events_lose_their_bodies_then_are_dropped() {
        let mut ev = Event::new(
            super::super::policy::Level::RequestResponse,
            "id".into(),
            std::time::SystemTime::UNIX_EPOCH,
        );
        assert!(truncate(&ev, 10_000).unwrap().is_none(), "small enough");
        ev.request_object = Some(serde_json::json!({"big": "x".repeat(20_000)}));
        let t = truncate(&ev, 10_000).unwrap().expect("truncated");
        assert!(t.request_object.is_none());
        assert_eq!(t.annotations["audit.k8s.io/truncated"], "true");
        ev.user.username = "u".repeat(20_000);
        assert!(
            truncate(&ev, 10_000).is_err(),
            "too large even without bodies"
        );
    }

    #[test]
    fn throttle_allows_a_burst_then_the_rate() {
        let mut t = Throttle::new(2.0, 3);
        let now = t.last;
        for _ in 0..3 {
            assert_eq!(t.take(now), Duration::ZERO, "the burst passes at once");
        }
        assert_eq!(t.take(now), Duration::from_millis(500));
        // The next one waits for the one before it too.
        assert_eq!(t.take(now), Duration::from_millis(1000));
        // After a second idle, two tokens are back... minus the debt of the two above.
        assert_eq!(t.take(now + Duration::from_secs(3)), Duration::ZERO);
    }

    /// Rotation by size keeps at most max_backups old files, gzipped with compress.
    #[test]
    fn log_files_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let rot = Rotation {
            max_backups: 2,
            max_size_mb: 1,
            compress: true,
            ..Default::default()
        };
        let mut f = rot.open(&path).unwrap();
        let line = format!("{}\n", "x".repeat(64 * 1024));
        for _ in 0..(5 * 16 + 1) {
            f.write_all(line.as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"audit.log".to_string()));
        assert!(
            names
                .iter()
                .filter(|n| n.as_str() != "audit.log")
                .all(|n| n.starts_with("audit.log.") && n.ends_with(".gz")),
            "{names:?}"
        );
    }
}
