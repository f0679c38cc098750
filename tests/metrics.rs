//! Operating wardle, on both engines: /metrics after some traffic (kube-apiserver's request,
//! storage and watch series plus wardle's own; authorized like Go's), JSON request logs, and
//! graceful shutdown (open batch committed, watches ended).

mod common;

use common::Engine;
use common::server::Wardle;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";

/// The value of the series whose name+labels line starts with `prefix`.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} missing in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

const GROUP: &str = "group=\"wardle.example.com\"";

engine_tests!(series_after_traffic, graceful_shutdown);

async fn series_after_traffic(engine: Engine) {
    let w = Wardle::start_flags(engine, &["--log-format", "json"]).await;
    let mut watch = w.watch(&format!("{NS}?watch=true"), None).await;
    assert_eq!(watch.status, StatusCode::OK);
    for name in ["a", "b"] {
        let r = w
            .post(NS, &json!({"metadata": {"name": name}, "spec": {}}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    assert_eq!(watch.take(2).await.len(), 2);
    assert_eq!(w.get(NS).await.status, StatusCode::OK);
    assert_eq!(w.get(&format!("{NS}/a")).await.status, StatusCode::OK);
    assert_eq!(
        w.get(&format!("{NS}/nope")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = w
        .post(
            &format!("{NS}?dryRun=All"),
            &json!({"metadata": {"name": "dry"}, "spec": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let m = w.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    // OpenMetrics text (what prometheus-client writes); the sample names and labels are those
    // of kube-apiserver's 0.0.4 text.
    assert_eq!(
        m.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let m = m.text();
    assert!(m.ends_with("\n# EOF\n"), "{m}");
    let req = |verb: &str, dry: &str, scope: &str, code: u16| {
        format!(
            "apiserver_request_total{{verb=\"{verb}\",dry_run=\"{dry}\",{GROUP},version=\"v1alpha1\",resource=\"flunders\",subresource=\"\",scope=\"{scope}\",component=\"apiserver\",code=\"{code}\"}}"
        )
    };
    assert_eq!(value(&m, &req("POST", "", "resource", 201)), 2.0);
    assert_eq!(value(&m, &req("POST", "All", "resource", 201)), 1.0);
    assert_eq!(value(&m, &req("LIST", "", "namespace", 200)), 1.0);
    assert_eq!(value(&m, &req("GET", "", "resource", 200)), 1.0);
    assert_eq!(value(&m, &req("GET", "", "resource", 404)), 1.0);
    assert_eq!(value(&m, &req("WATCH", "", "namespace", 200)), 1.0);
    let lat = format!(
        "verb=\"POST\",dry_run=\"\",{GROUP},version=\"v1alpha1\",resource=\"flunders\",subresource=\"\",scope=\"resource\",component=\"apiserver\""
    );
    assert_eq!(
        value(
            &m,
            &format!("apiserver_request_duration_seconds_count{{{lat}}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            // prometheus-client writes `le` first (the order of labels carries no meaning).
            &format!("apiserver_request_duration_seconds_bucket{{le=\"+Inf\",{lat}}}")
        ),
        2.0
    );
    assert!(m.contains("# TYPE apiserver_request_duration_seconds histogram"));
    assert_eq!(
        value(
            &m,
            "apiserver_storage_objects{resource=\"flunders.wardle.example.com\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "apiserver_storage_objects{resource=\"fischers.wardle.example.com\"}"
        ),
        0.0
    );
    let gvr = format!("{{{GROUP},version=\"v1alpha1\",resource=\"flunders\"}}");
    assert!(value(&m, &format!("apiserver_watch_events_total{gvr}")) >= 2.0);
    assert_eq!(
        value(&m, &format!("apiserver_registered_watchers{gvr}")),
        1.0
    );
    assert!(value(&m, "wardle_storage_batch_size_count") >= 1.0);
    assert!(value(&m, "wardle_storage_batch_size_sum") >= 2.0);
    assert_eq!(value(&m, "wardle_storage_writer_queue_depth"), 0.0);
    assert_eq!(value(&m, "wardle_listen_reconnects_total"), 0.0);
    assert_eq!(value(&m, "wardle_history_pruned_total"), 0.0);
    assert_eq!(
        value(&m, "wardle_storage_head_rv"),
        3.0,
        "two writes after a fresh store's 1"
    );

    // A closed watch is no longer registered.
    drop(watch);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = w.get("/metrics").await.text();
        if value(&m, &format!("apiserver_registered_watchers{gvr}")) == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watcher never unregistered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Like Go: /metrics is a non-resource GET that needs authorization.
    let anon = w.anonymous(Method::GET, "/metrics").await;
    assert_eq!(anon.status, StatusCode::FORBIDDEN, "{}", anon.text());

    // --log-format json: one JSON object per request with who, what and how it went.
    let logs = w.logs();
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "request" && l["verb"] == "create")
        .unwrap_or_else(|| panic!("no JSON request line in:\n{logs}"));
    assert_eq!(line["resource"], "flunders");
    assert_eq!(line["namespace"], "default");
    assert_eq!(line["user"], "wardle-admin");
    assert_eq!(line["code"], 201);
    assert!(line["latency_ms"].as_f64().is_some());
}

/// SIGTERM while writes are in flight: every write that was answered 201 is stored, open watches
/// end (rather than being cut off by the drain timeout), and the process exits cleanly.
async fn graceful_shutdown(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let url = engine.fresh_url(dir.path());
    let mut w = Wardle::start_with(dir.path(), &url, &[]).await;
    let mut watch = w.watch(&format!("{NS}?watch=true"), None).await;
    let client = w.client();
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                let body = json!({"metadata": {"name": format!("f{i}")}, "spec": {}});
                let req = http::Request::builder()
                    .method(Method::POST)
                    .uri(NS)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                let ok = matches!(c.send(req).await, Ok(r) if r.status() == StatusCode::CREATED);
                (format!("f{i}"), ok)
            })
        })
        .collect();
    let status = tokio::task::block_in_place(|| w.stop());
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}:\n{}",
        w.logs()
    );
    while watch.next(Duration::from_secs(10)).await.is_some() {}
    assert!(
        watch.ended,
        "the watch stream was not ended by the shutdown"
    );
    let mut created = Vec::new();
    for t in writes {
        let (name, ok) = t.await.unwrap();
        if ok {
            created.push(name);
        }
    }
    let w = Wardle::start_with(dir.path(), &url, &[]).await;
    let list = w.get(NS).await.json();
    let stored: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    for name in &created {
        assert!(
            stored.contains(&name.as_str()),
            "{name} was acknowledged but not stored"
        );
    }
}
