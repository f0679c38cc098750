//! Process-wide Prometheus metrics: kube-apiserver's series where the meaning matches (so the
//! dashboards people have for kube-apiserver work) and wardle's own storage series. Recording is
//! atomics only: each series family is a copy-on-write map behind `ArcSwap`, so the hot path
//! reads a snapshot without locking, and only the first request with a new label set takes the
//! (cold) mutex to add its series.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

/// apiserver_request_duration_seconds buckets, as kube-apiserver's.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Writes per group-commit transaction (the writer's limit is 64).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// A histogram with fixed buckets; `sum` is kept in microseconds so it can be an integer atomic.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for +Inf.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Series of one metric, keyed by their label values (a rendered label set, or static names).
struct Family<K, T> {
    series: ArcSwap<HashMap<K, Arc<T>>>,
    grow: Mutex<()>,
}

impl<K: std::hash::Hash + Eq + Clone + Ord, T> Family<K, T> {
    fn new() -> Family<K, T> {
        Family {
            series: ArcSwap::from_pointee(HashMap::new()),
            grow: Mutex::new(()),
        }
    }

    /// Runs `f` on the series for `labels`, creating it with `make` the first time.
    fn with<Q>(&self, labels: &Q, make: impl FnOnce() -> T, f: impl FnOnce(&T))
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(s) = self.series.load().get(labels) {
            return f(s);
        }
        let _guard = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.series.load_full();
        let s = match current.get(labels) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(make());
                let mut next = HashMap::clone(&current);
                next.insert(labels.to_owned(), s.clone());
                self.series.store(Arc::new(next));
                s
            }
        };
        f(&s)
    }

    /// Every series, sorted by labels so scrapes are stable.
    fn sorted(&self) -> Vec<(K, Arc<T>)> {
        let mut v: Vec<_> = self
            .series
            .load()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Everything this process records (gauges read from elsewhere are added at scrape time).
pub struct Metrics {
    requests: Family<String, AtomicU64>,
    durations: Family<String, Histogram>,
    /// Keyed by (resource, version): static names, so recording an event allocates nothing.
    watch_events: Family<(&'static str, &'static str), AtomicU64>,
    watchers: Family<(&'static str, &'static str), AtomicI64>,
    batch_size: Histogram,
    listen_reconnects: AtomicU64,
    audit_events: AtomicU64,
    /// Keyed by plugin (log, webhook, buffered).
    audit_errors: Family<&'static str, AtomicU64>,
    /// Keyed by policy level.
    audit_levels: Family<&'static str, AtomicU64>,
    audit_rejected: AtomicU64,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: Family::new(),
    durations: Family::new(),
    watch_events: Family::new(),
    watchers: Family::new(),
    batch_size: Histogram::new(BATCH_BUCKETS),
    listen_reconnects: AtomicU64::new(0),
    audit_events: AtomicU64::new(0),
    audit_errors: Family::new(),
    audit_levels: Family::new(),
    audit_rejected: AtomicU64::new(0),
});

/// Prometheus label value escaping.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The label values of one request, as kube-apiserver reports it (derived from the request by
/// `http::request_info`: Go's CleanScope, CanonicalVerb and cleanVerb).
#[derive(Debug, Clone, Copy)]
pub struct RequestLabelValues<'a> {
    /// `LIST`, `GET`, `WATCH`, `APPLY`, `POST`, ... or `other`.
    pub verb: &'a str,
    /// `All` or "".
    pub dry_run: &'a str,
    /// Group, version, resource, subresource: "" unless a resource this server has.
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    /// `resource`, `namespace`, `cluster` or "".
    pub scope: &'a str,
}

/// What a request is reported as, fixed before the handler runs.
#[derive(Debug, Clone)]
pub struct RequestLabels {
    /// verb, dry_run, group, version, resource, subresource, scope, component (rendered).
    base: String,
}

impl RequestLabels {
    pub fn new(v: RequestLabelValues<'_>) -> RequestLabels {
        RequestLabels {
            base: format!(
                "verb=\"{}\",dry_run=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\",scope=\"{}\",component=\"apiserver\"",
                v.verb, v.dry_run, v.group, v.version, v.resource, v.subresource, v.scope
            ),
        }
    }

    /// The rendered label set (without `code`).
    pub fn rendered(&self) -> &str {
        &self.base
    }

    /// Counts the request and observes its latency.
    pub fn record(&self, code: u16, elapsed: Duration) {
        let m = &*METRICS;
        let with_code = format!("{},code=\"{code}\"", self.base);
        m.requests.with(
            &with_code,
            || AtomicU64::new(0),
            |c| {
                c.fetch_add(1, Ordering::Relaxed);
            },
        );
        m.durations.with(
            &self.base,
            || Histogram::new(REQUEST_BUCKETS),
            |h| h.observe(elapsed.as_secs_f64()),
        );
    }
}

fn gvr((resource, version): (&str, &str)) -> String {
    format!(
        "group=\"{}\",version=\"{}\",resource=\"{}\"",
        crate::api::GROUP,
        esc(version),
        esc(resource)
    )
}

/// One event (of any type, bookmarks included, as upstream) sent to a watch client.
pub fn watch_event(resource: &'static str, version: &'static str) {
    METRICS.watch_events.with(
        &(resource, version),
        || AtomicU64::new(0),
        |c| {
            c.fetch_add(1, Ordering::Relaxed);
        },
    );
}

/// Counts a watcher as registered until the returned guard is dropped.
pub fn register_watcher(resource: &'static str, version: &'static str) -> WatcherGuard {
    let labels = (resource, version);
    METRICS.watchers.with(
        &labels,
        || AtomicI64::new(0),
        |g| {
            g.fetch_add(1, Ordering::Relaxed);
        },
    );
    WatcherGuard { labels }
}

pub struct WatcherGuard {
    labels: (&'static str, &'static str),
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        METRICS.watchers.with(
            &self.labels,
            || AtomicI64::new(0),
            |g| {
                g.fetch_sub(1, Ordering::Relaxed);
            },
        );
    }
}

/// One group-commit transaction of `n` writes.
pub fn batch(n: usize) {
    METRICS.batch_size.observe(n as f64);
}

/// The Postgres LISTEN connection was lost and set up again.
pub fn listen_reconnect() {
    METRICS.listen_reconnects.fetch_add(1, Ordering::Relaxed);
}

/// One audit event (one stage of a request) handed to the audit backends.
pub fn audit_event() {
    METRICS.audit_events.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to the counter of `family` labelled `key`.
fn count(family: &Family<&'static str, AtomicU64>, key: &'static str, n: u64) {
    family.with(
        &key,
        || AtomicU64::new(0),
        |c| {
            c.fetch_add(n, Ordering::Relaxed);
        },
    );
}

/// `n` audit events a backend failed to record (or the batch buffer dropped: plugin `buffered`).
pub fn audit_error(plugin: &'static str, n: u64) {
    count(&METRICS.audit_errors, plugin, n);
}

/// The audit policy's level for one request.
pub fn audit_level(level: &'static str) {
    count(&METRICS.audit_levels, level, 1);
}

/// A request refused because a blocking-strict audit backend failed.
pub fn audit_request_rejected() {
    METRICS.audit_rejected.fetch_add(1, Ordering::Relaxed);
}

/// Values read at scrape time from storage, the watch cache and compaction.
#[derive(Debug, Default)]
pub struct Gauges {
    /// The committed resourceVersion (the database's counter) and the compaction horizon.
    pub head_rv: u64,
    pub compacted_rv: u64,
    /// The resourceVersion the watch cache has applied, and the oldest it can replay from.
    pub cache_head_rv: u64,
    pub cache_oldest_rv: u64,
    /// This process's group-commit writer: transactions, writes, largest batch.
    pub batches: u64,
    pub writes: u64,
    pub max_batch: u64,
    /// Compaction runs of this process, and failed ones.
    pub compaction_runs: u64,
    pub compaction_errors: u64,
    /// (resource plural, count) of current objects.
    pub objects: Vec<(String, i64)>,
    pub writer_queue_depth: usize,
    /// History rows pruned by --history-retention since start.
    pub history_pruned: u64,
    /// Reads of the event log by this process (watch cache catch-up, replayed watches).
    pub log_reads: u64,
}

/// The whole `/metrics` page in Prometheus text format (version 0.0.4): storage and watch-cache
/// gauges first, then the request, watch, audit and writer series.
pub fn render(gauges: &Gauges) -> String {
    let mut out = String::new();
    render_storage(&mut out, gauges);
    render_requests(&mut out);
    render_watch(&mut out, gauges);
    render_audit_and_writer(&mut out, gauges);
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// wardle's own storage and watch-cache series.
fn render_storage(out: &mut String, g: &Gauges) {
    let series: [(&str, &str, &str, u64); 11] = [
        (
            "wardle_storage_head_rv",
            "gauge",
            "The committed resourceVersion (the database's counter).",
            g.head_rv,
        ),
        (
            "wardle_storage_compacted_rv",
            "gauge",
            "Events at or below this resourceVersion may have been compacted away.",
            g.compacted_rv,
        ),
        (
            "wardle_watch_cache_lag",
            "gauge",
            "Committed resourceVersions the watch cache has not applied yet.",
            g.head_rv.saturating_sub(g.cache_head_rv),
        ),
        (
            "wardle_storage_batches_total",
            "counter",
            "Write transactions committed by the group-commit writer.",
            g.batches,
        ),
        (
            "wardle_storage_writes_total",
            "counter",
            "Writes committed (each write is one event).",
            g.writes,
        ),
        (
            "wardle_storage_batch_size_max",
            "gauge",
            "The largest batch committed in one transaction.",
            g.max_batch,
        ),
        (
            "wardle_watch_cache_head_rv",
            "gauge",
            "The resourceVersion the watch cache has applied.",
            g.cache_head_rv,
        ),
        (
            "wardle_watch_cache_oldest_rv",
            "gauge",
            "The oldest resourceVersion a watch can resume from without the database.",
            g.cache_oldest_rv,
        ),
        (
            "wardle_compaction_runs_total",
            "counter",
            "Compaction runs of this process.",
            g.compaction_runs,
        ),
        (
            "wardle_compaction_errors_total",
            "counter",
            "Compaction runs that failed (retried next interval).",
            g.compaction_errors,
        ),
        (
            "wardle_storage_log_reads_total",
            "counter",
            "Reads of the event log from the database (watch cache catch-up, replayed watches); \
             this process's own writes reach its cache without one.",
            g.log_reads,
        ),
    ];
    for (name, kind, help, value) in series {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// kube-apiserver's request counter and latency histogram.
fn render_requests(out: &mut String) {
    let m = &*METRICS;
    header(
        out,
        "apiserver_request_total",
        "counter",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
    );
    for (labels, c) in m.requests.sorted() {
        let _ = writeln!(
            out,
            "apiserver_request_total{{{labels}}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    header(
        out,
        "apiserver_request_duration_seconds",
        "histogram",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
    );
    for (labels, h) in m.durations.sorted() {
        h.render(out, "apiserver_request_duration_seconds", &labels);
    }
}

/// Stored objects per resource, watch events sent and watchers registered.
fn render_watch(out: &mut String, gauges: &Gauges) {
    let m = &*METRICS;
    header(
        out,
        "apiserver_storage_objects",
        "gauge",
        "Number of stored objects at the time of last check split by kind.",
    );
    for r in crate::api::resources() {
        let n = gauges
            .objects
            .iter()
            .find(|(p, _)| p == r.plural())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "apiserver_storage_objects{{resource=\"{}.{}\"}} {n}",
            r.plural(),
            crate::api::GROUP
        );
    }
    header(
        out,
        "apiserver_watch_events_total",
        "counter",
        "Number of events sent in watch clients",
    );
    for (key, c) in m.watch_events.sorted() {
        let _ = writeln!(
            out,
            "apiserver_watch_events_total{{{}}} {}",
            gvr(key),
            c.load(Ordering::Relaxed)
        );
    }
    header(
        out,
        "apiserver_registered_watchers",
        "gauge",
        "Number of currently registered watchers for a given resources",
    );
    for (key, g) in m.watchers.sorted() {
        let _ = writeln!(
            out,
            "apiserver_registered_watchers{{{}}} {}",
            gvr(key),
            g.load(Ordering::Relaxed)
        );
    }
}

/// The audit series, the writer's batch sizes and the scalar counters.
fn render_audit_and_writer(out: &mut String, gauges: &Gauges) {
    let m = &*METRICS;
    for (name, label, help, family) in [
        (
            "apiserver_audit_error_total",
            "plugin",
            "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
            &m.audit_errors,
        ),
        (
            "apiserver_audit_level_total",
            "level",
            "Counter of policy levels for audit events (1 per request).",
            &m.audit_levels,
        ),
    ] {
        header(out, name, "counter", help);
        for (key, c) in family.sorted() {
            let _ = writeln!(
                out,
                "{name}{{{label}=\"{key}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
    }
    header(
        out,
        "wardle_storage_batch_size",
        "histogram",
        "Writes per group-commit transaction.",
    );
    m.batch_size.render(out, "wardle_storage_batch_size", "");
    let scalars: [(&str, &str, &str, u64); 5] = [
        (
            "apiserver_audit_event_total",
            "counter",
            "Counter of audit events generated and sent to the audit backend.",
            m.audit_events.load(Ordering::Relaxed),
        ),
        (
            "apiserver_audit_requests_rejected_total",
            "counter",
            "Counter of apiserver requests rejected due to an error in audit logging backend.",
            m.audit_rejected.load(Ordering::Relaxed),
        ),
        (
            "wardle_storage_writer_queue_depth",
            "gauge",
            "Writes queued for the group-commit writer.",
            gauges.writer_queue_depth as u64,
        ),
        (
            "wardle_history_pruned_total",
            "counter",
            "Change-history rows deleted by --history-retention.",
            gauges.history_pruned,
        ),
        (
            "wardle_listen_reconnects_total",
            "counter",
            "Times the Postgres LISTEN connection was lost and re-established.",
            m.listen_reconnects.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in scalars {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 2\nx_bucket{a=\"b\",le=\"2\"} 3\nx_bucket{a=\"b\",le=\"+Inf\"} 4\n\
             x_sum{a=\"b\"} 6\nx_count{a=\"b\"} 4\n"
        );
    }
}
