//! Process-wide Prometheus metrics, kept by the Prometheus org's client (`prometheus-client`):
//! kube-apiserver's series where the meaning matches (so the dashboards people have for
//! kube-apiserver work) and wardle's own storage series, served as OpenMetrics text. Label sets
//! are structs of static strings, so recording a request allocates nothing.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`render`]'s page. prometheus-client writes OpenMetrics 1.0 text only
/// (not the 0.0.4 text kube-apiserver serves by default); Prometheus asks for and parses it, and
/// the sample names and labels are the same as in the 0.0.4 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// apiserver_request_duration_seconds buckets, as kube-apiserver's.
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Writes per group-commit transaction (the writer's limit is 64).
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// The label values of one request, as kube-apiserver reports it (derived from the request by
/// `http::request_info`: Go's CleanScope, CanonicalVerb and cleanVerb). Static strings only:
/// a value a client could make up would be a new series per request (unbounded memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLabelValues {
    /// `LIST`, `GET`, `WATCH`, `APPLY`, `POST`, ... or `other`.
    pub verb: &'static str,
    /// `All`, `invalid` or "".
    pub dry_run: &'static str,
    /// Group, version, resource, subresource: "" unless a resource this server has.
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// `resource`, `namespace`, `cluster` or "".
    pub scope: &'static str,
}

/// A label value that is a static string. Equal values are usually the same literal, so
/// equality compares addresses first: finding a request's series then costs nine pointer
/// comparisons rather than nine `memcmp`s (measured: a lookup ~6x faster). Hashing is by
/// content, so two copies of one text are still one series.
#[derive(Debug, Clone, Copy, Eq)]
struct Static(&'static str);

impl PartialEq for Static {
    fn eq(&self, other: &Static) -> bool {
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for Static {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl EncodeLabelValue for Static {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

/// What a request is reported as, fixed before the handler runs: its label values and
/// `component="apiserver"`, in kube-apiserver's label order (the labels of
/// apiserver_request_duration_seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    verb: Static,
    dry_run: Static,
    group: Static,
    version: Static,
    resource: Static,
    subresource: Static,
    scope: Static,
    component: Static,
}

/// apiserver_request_total's labels: the request's, then the response code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestCodeLabels {
    #[prometheus(flatten)]
    request: RequestLabels,
    code: u16,
}

/// The watch series' labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResourceLabels {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PluginLabels {
    plugin: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LevelLabels {
    level: &'static str,
}

/// apiserver_storage_objects' label: `<plural>.<group>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ObjectsLabels {
    resource: String,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// Everything this process records, and the registry that encodes it (values read from
/// elsewhere at scrape time are in [`Gauges`]). The handles share their values with the
/// registry's copies.
struct Metrics {
    registry: Registry,
    requests: Family<RequestCodeLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    watch_events: Family<ResourceLabels, Counter>,
    watchers: Family<ResourceLabels, Gauge>,
    batch_size: Histogram,
    listen_reconnects: Counter,
    audit_events: Counter,
    audit_errors: Family<PluginLabels, Counter>,
    audit_levels: Family<LevelLabels, Counter>,
    audit_rejected: Counter,
}

// Names are registered without the `_total` of counters and the unit: the encoder appends them.
// Help texts lack the final full stop for the same reason.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut m = Metrics {
        registry: Registry::default(),
        requests: Family::default(),
        durations: Family::new_with_constructor(request_histogram),
        watch_events: Family::default(),
        watchers: Family::default(),
        batch_size: Histogram::new(BATCH_BUCKETS),
        listen_reconnects: Counter::default(),
        audit_events: Counter::default(),
        audit_errors: Family::default(),
        audit_levels: Family::default(),
        audit_rejected: Counter::default(),
    };
    let r = &mut m.registry;
    r.register(
        "apiserver_request",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
        m.requests.clone(),
    );
    r.register_with_unit(
        "apiserver_request_duration",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
        Unit::Seconds,
        m.durations.clone(),
    );
    r.register(
        "apiserver_watch_events",
        "Number of events sent in watch clients",
        m.watch_events.clone(),
    );
    r.register(
        "apiserver_registered_watchers",
        "Number of currently registered watchers for a given resources",
        m.watchers.clone(),
    );
    r.register(
        "apiserver_audit_event",
        "Counter of audit events generated and sent to the audit backend",
        m.audit_events.clone(),
    );
    r.register(
        "apiserver_audit_error",
        "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error",
        m.audit_errors.clone(),
    );
    r.register(
        "apiserver_audit_level",
        "Counter of policy levels for audit events (1 per request)",
        m.audit_levels.clone(),
    );
    r.register(
        "apiserver_audit_requests_rejected",
        "Counter of apiserver requests rejected due to an error in audit logging backend",
        m.audit_rejected.clone(),
    );
    r.register(
        "wardle_storage_batch_size",
        "Writes per group-commit transaction",
        m.batch_size.clone(),
    );
    r.register(
        "wardle_listen_reconnects",
        "Times the Postgres LISTEN connection was lost and re-established",
        m.listen_reconnects.clone(),
    );
    m
});

impl RequestLabels {
    pub fn new(v: RequestLabelValues) -> RequestLabels {
        RequestLabels {
            verb: Static(v.verb),
            dry_run: Static(v.dry_run),
            group: Static(v.group),
            version: Static(v.version),
            resource: Static(v.resource),
            subresource: Static(v.subresource),
            scope: Static(v.scope),
            component: Static("apiserver"),
        }
    }

    pub fn values(&self) -> RequestLabelValues {
        RequestLabelValues {
            verb: self.verb.0,
            dry_run: self.dry_run.0,
            group: self.group.0,
            version: self.version.0,
            resource: self.resource.0,
            subresource: self.subresource.0,
            scope: self.scope.0,
        }
    }

    /// Counts the request and observes its latency.
    pub fn record(&self, code: u16, elapsed: Duration) {
        let m = &*METRICS;
        m.requests
            .get_or_create(&RequestCodeLabels {
                request: *self,
                code,
            })
            .inc();
        m.durations
            .get_or_create(self)
            .observe(elapsed.as_secs_f64());
    }
}

fn resource_labels(resource: &'static str, version: &'static str) -> ResourceLabels {
    ResourceLabels {
        group: crate::api::GROUP,
        version,
        resource,
    }
}

/// One watch stream's count of the events it sent (apiserver_watch_events_total of its resource
/// and version; every event type, bookmarks included, as upstream). The series is looked up once
/// per stream, not per event.
#[derive(Debug, Clone)]
pub struct WatchEvents(Counter);

impl WatchEvents {
    /// One event sent to the client.
    pub fn sent(&self) {
        self.0.inc();
    }
}

/// The event counter of a watch of `resource` (plural) shown in `version`.
pub fn watch_events(resource: &'static str, version: &'static str) -> WatchEvents {
    WatchEvents(
        METRICS
            .watch_events
            .get_or_create_owned(&resource_labels(resource, version)),
    )
}

/// Counts a watcher as registered until the returned guard is dropped.
pub fn register_watcher(resource: &'static str, version: &'static str) -> WatcherGuard {
    let gauge = METRICS
        .watchers
        .get_or_create_owned(&resource_labels(resource, version));
    gauge.inc();
    WatcherGuard(gauge)
}

/// A registered watcher (see [`register_watcher`]).
pub struct WatcherGuard(Gauge);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One group-commit transaction of `n` writes.
pub fn batch(n: usize) {
    METRICS.batch_size.observe(n as f64);
}

/// The Postgres LISTEN connection was lost and set up again.
pub fn listen_reconnect() {
    METRICS.listen_reconnects.inc();
}

/// One audit event (one stage of a request) handed to the audit backends.
pub fn audit_event() {
    METRICS.audit_events.inc();
}

/// `n` audit events a backend failed to record (or the batch buffer dropped: plugin `buffered`).
pub fn audit_error(plugin: &'static str, n: u64) {
    METRICS
        .audit_errors
        .get_or_create(&PluginLabels { plugin })
        .inc_by(n);
}

/// The audit policy's level for one request.
pub fn audit_level(level: &'static str) {
    METRICS
        .audit_levels
        .get_or_create(&LevelLabels { level })
        .inc();
}

/// A request refused because a blocking-strict audit backend failed.
pub fn audit_request_rejected() {
    METRICS.audit_rejected.inc();
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

impl Gauges {
    /// A registry of this scrape's values (kept elsewhere, so not in the process registry).
    fn registry(&self) -> Registry {
        let mut r = Registry::default();
        let gauges: [(&str, &str, u64); 7] = [
            (
                "wardle_storage_head_rv",
                "The committed resourceVersion (the database's counter)",
                self.head_rv,
            ),
            (
                "wardle_storage_compacted_rv",
                "Events at or below this resourceVersion may have been compacted away",
                self.compacted_rv,
            ),
            (
                "wardle_watch_cache_lag",
                "Committed resourceVersions the watch cache has not applied yet",
                self.head_rv.saturating_sub(self.cache_head_rv),
            ),
            (
                "wardle_storage_batch_size_max",
                "The largest batch committed in one transaction",
                self.max_batch,
            ),
            (
                "wardle_watch_cache_head_rv",
                "The resourceVersion the watch cache has applied",
                self.cache_head_rv,
            ),
            (
                "wardle_watch_cache_oldest_rv",
                "The oldest resourceVersion a watch can resume from without the database",
                self.cache_oldest_rv,
            ),
            (
                "wardle_storage_writer_queue_depth",
                "Writes queued for the group-commit writer",
                self.writer_queue_depth as u64,
            ),
        ];
        for (name, help, value) in gauges {
            r.register(name, help, ConstGauge::new(value));
        }
        let counters: [(&str, &str, u64); 6] = [
            (
                "wardle_storage_batches",
                "Write transactions committed by the group-commit writer",
                self.batches,
            ),
            (
                "wardle_storage_writes",
                "Writes committed (each write is one event)",
                self.writes,
            ),
            (
                "wardle_compaction_runs",
                "Compaction runs of this process",
                self.compaction_runs,
            ),
            (
                "wardle_compaction_errors",
                "Compaction runs that failed (retried next interval)",
                self.compaction_errors,
            ),
            (
                "wardle_storage_log_reads",
                "Reads of the event log from the database (watch cache catch-up, replayed watches); \
                 this process's own writes reach its cache without one",
                self.log_reads,
            ),
            (
                "wardle_history_pruned",
                "Change-history rows deleted by --history-retention",
                self.history_pruned,
            ),
        ];
        for (name, help, value) in counters {
            r.register(name, help, ConstCounter::new(value));
        }
        // Every resource this server has, 0 included, as kube-apiserver reports its resources.
        let objects = Family::<ObjectsLabels, Gauge>::default();
        for res in crate::api::resources() {
            let n = self
                .objects
                .iter()
                .find(|(p, _)| p == res.plural())
                .map_or(0, |(_, n)| *n);
            let resource = format!("{}.{}", res.plural(), crate::api::GROUP);
            objects.get_or_create(&ObjectsLabels { resource }).set(n);
        }
        r.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            objects,
        );
        r
    }
}

/// The whole `/metrics` page, OpenMetrics text ([`CONTENT_TYPE`]): the process's series, then
/// this scrape's storage, watch-cache and compaction values, then `# EOF`.
pub fn render(gauges: &Gauges) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail, nor can encoding these metrics.
    let _ = encode_registry(&mut out, &METRICS.registry)
        .and_then(|()| encode_registry(&mut out, &gauges.registry()))
        .and_then(|()| encode_eof(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: RequestLabelValues = RequestLabelValues {
        verb: "LIST",
        dry_run: "",
        group: "wardle.example.com",
        version: "v1alpha1",
        resource: "flunders",
        subresource: "",
        scope: "namespace",
    };

    fn sample<'a>(page: &'a str, series: &str) -> &'a str {
        page.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{series} missing in:\n{page}"))
    }

    /// kube-apiserver's names and label order, whatever the encoding's families are called.
    #[test]
    fn request_series_keep_kube_apiserver_names_and_labels() {
        // Labels no other test records (the process registry is shared).
        let values = RequestLabelValues {
            dry_run: "invalid",
            ..LABELS
        };
        let labels = RequestLabels::new(values);
        labels.record(418, Duration::from_millis(30));
        labels.record(418, Duration::from_millis(30));
        labels.record(200, Duration::from_secs(100));
        let page = render(&Gauges::default());
        let base = "verb=\"LIST\",dry_run=\"invalid\",group=\"wardle.example.com\",version=\"v1alpha1\",resource=\"flunders\",subresource=\"\",scope=\"namespace\",component=\"apiserver\"";
        assert_eq!(
            sample(
                &page,
                &format!("apiserver_request_total{{{base},code=\"418\"}}")
            ),
            "2"
        );
        assert_eq!(
            sample(
                &page,
                &format!("apiserver_request_total{{{base},code=\"200\"}}")
            ),
            "1"
        );
        let hist = "apiserver_request_duration_seconds";
        assert_eq!(sample(&page, &format!("{hist}_count{{{base}}}")), "3");
        // Cumulative buckets with kube-apiserver's bounds; 100 s is past the last one. The
        // encoder writes `le` first (the order of labels carries no meaning).
        assert_eq!(
            sample(&page, &format!("{hist}_bucket{{le=\"0.025\",{base}}}")),
            "0"
        );
        assert_eq!(
            sample(&page, &format!("{hist}_bucket{{le=\"0.05\",{base}}}")),
            "2"
        );
        assert_eq!(
            sample(&page, &format!("{hist}_bucket{{le=\"60.0\",{base}}}")),
            "2"
        );
        assert_eq!(
            sample(&page, &format!("{hist}_bucket{{le=\"+Inf\",{base}}}")),
            "3"
        );
        assert!(page.contains("# TYPE apiserver_request counter\n"));
        assert!(page.contains("# TYPE apiserver_request_duration_seconds histogram\n"));
    }

    /// Equal text at another address is the same label value (one series, not two).
    #[test]
    fn static_label_values_compare_by_content() {
        use std::hash::BuildHasher;
        let copy: &'static str = String::from("LIST").leak();
        let a = RequestLabels::new(LABELS);
        let b = RequestLabels::new(RequestLabelValues {
            verb: copy,
            ..LABELS
        });
        assert!(!std::ptr::eq(a.verb.0, b.verb.0));
        assert_eq!(a, b);
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(a), h.hash_one(b));
        assert_ne!(
            a,
            RequestLabels::new(RequestLabelValues {
                verb: "GET",
                ..LABELS
            })
        );
    }

    #[test]
    fn scrape_values_are_integers_and_the_page_is_openmetrics() {
        let watcher = register_watcher("fischers", "v1alpha1");
        let page = render(&Gauges {
            head_rv: 7,
            cache_head_rv: 5,
            batches: 3,
            objects: vec![("flunders".into(), 2)],
            ..Gauges::default()
        });
        assert_eq!(sample(&page, "wardle_storage_head_rv"), "7");
        assert_eq!(sample(&page, "wardle_watch_cache_lag"), "2");
        assert_eq!(sample(&page, "wardle_storage_batches_total"), "3");
        assert_eq!(sample(&page, "wardle_compaction_errors_total"), "0");
        assert_eq!(sample(&page, "wardle_listen_reconnects_total"), "0");
        assert_eq!(
            sample(
                &page,
                "apiserver_storage_objects{resource=\"flunders.wardle.example.com\"}"
            ),
            "2"
        );
        assert_eq!(
            sample(
                &page,
                "apiserver_storage_objects{resource=\"fischers.wardle.example.com\"}"
            ),
            "0"
        );
        let gvr = "{group=\"wardle.example.com\",version=\"v1alpha1\",resource=\"fischers\"}";
        assert_eq!(
            sample(&page, &format!("apiserver_registered_watchers{gvr}")),
            "1"
        );
        drop(watcher);
        let page = render(&Gauges::default());
        assert_eq!(
            sample(&page, &format!("apiserver_registered_watchers{gvr}")),
            "0"
        );
        // OpenMetrics: each family once, and the page ends with `# EOF`.
        let mut types: Vec<&str> = page.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let n = types.len();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), n, "{page}");
        assert!(page.ends_with("\n# EOF\n"), "{page}");
    }
}
