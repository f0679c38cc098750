//! Auditing like kube-apiserver, against the real server binary: a policy with several rules and
//! the event contents per level and stage (both engines), the SQL link from `events.audit_id` to
//! the request's Audit-Id, log rotation, a webhook receiving batches over HTTPS, and a dead
//! webhook that drops (and counts) events instead of holding requests up.

mod common;

use common::Engine;
use common::pki::{self, Ca};
use common::server::Wardle;
use http::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/readyz*", "/healthz*", "/livez*"]
  - level: RequestResponse
    resources:
      - group: wardle.example.com
        resources: ["fischers"]
  - level: Request
    verbs: ["create", "update", "patch"]
    resources:
      - group: wardle.example.com
        resources: ["flunders"]
    omitManagedFields: true
  - level: Metadata
"#;

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";

/// A policy of one catch-all rule at `level`.
fn everything_at(level: &str) -> String {
    format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: {level}\n")
}

/// wardle on a fresh database of `engine` with the audit `policy` and the flags `args`.
async fn start_audited(dir: &Path, engine: Engine, policy: &str, args: &[&str]) -> Wardle {
    let policy_file = dir.join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let policy_file = policy_file.display().to_string();
    let mut all = vec!["--audit-policy-file", policy_file.as_str()];
    all.extend_from_slice(args);
    Wardle::start_with(dir, &engine.fresh_url(dir), &all).await
}

/// wardle on SQLite auditing by `policy` to `dir/audit.log` (returned), with the flags `args`.
async fn start_logging(dir: &Path, policy: &str, args: &[&str]) -> (Wardle, PathBuf) {
    let log = dir.join("audit.log");
    let log_arg = log.display().to_string();
    let all = [&["--audit-log-path", log_arg.as_str()], args].concat();
    (start_audited(dir, Engine::Sqlite, policy, &all).await, log)
}

/// A v1alpha1 Flunder named `name`, with `extra` merged into its metadata.
fn flunder(name: &str, extra: Value) -> Value {
    let mut f = json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
                       "metadata": {"name": name}, "spec": {"reference": "x"}});
    if let (Some(m), Value::Object(e)) = (f["metadata"].as_object_mut(), extra) {
        m.extend(e);
    }
    f
}

/// Every JSON event in the log file so far.
fn log_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// The events of one request, in the order they were written.
fn of(events: &[Value], audit_id: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["auditID"] == audit_id)
        .cloned()
        .collect()
}

fn stages(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect()
}

/// Polls `f` until it returns Some (events written after the response, e.g. a watch's end).
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

async fn audit_id_of_rows(w: &Wardle, name: &str) -> Vec<Option<String>> {
    let t = wardle::report::query(
        &w.db_url,
        &format!("SELECT audit_id FROM change_history WHERE name = '{name}' ORDER BY rv"),
    )
    .await
    .expect("query change_history");
    t.rows
        .into_iter()
        .map(|r| match &r[0] {
            wardle::report::Datum::Text(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

async fn levels_stages_and_the_sql_link(engine: Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit").join("audit.log");
    let w = start_audited(
        tmp.path(),
        engine,
        POLICY,
        &["--audit-log-path", log.to_str().unwrap()],
    )
    .await;

    // Request level: the body is recorded, the response is not; objectRef names the object.
    let created = w.post(NS, &flunder("f1", json!({}))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.header("audit-id").expect("Audit-Id header");
    let events = of(&log_events(&log), &id);
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    let done = &events[1];
    assert_eq!(done["kind"], "Event");
    assert_eq!(done["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(done["level"], "Request");
    assert_eq!(done["verb"], "create");
    assert_eq!(done["requestURI"], NS);
    assert_eq!(done["user"]["username"], "wardle-admin");
    assert!(
        done["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:masters"))
    );
    assert_eq!(done["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(
        done["objectRef"],
        json!({"resource": "flunders", "namespace": "default", "name": "f1",
               "apiGroup": "wardle.example.com", "apiVersion": "v1alpha1"})
    );
    assert_eq!(done["responseStatus"], json!({"metadata": {}, "code": 201}));
    assert_eq!(done["requestObject"]["spec"]["reference"], "x");
    assert!(done.get("responseObject").is_none(), "{done}");
    assert_eq!(
        done["annotations"],
        json!({"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""})
    );
    assert!(events[0].get("responseStatus").is_none());
    assert_eq!(
        events[0]["stageTimestamp"], events[0]["requestReceivedTimestamp"],
        "RequestReceived is stamped when the request arrived"
    );
    let ts = done["stageTimestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2024-01-01T00:00:00.000000Z".len(), "{ts}");

    // An incoming Audit-Id is kept (Go's WithAuditInit) and lands in the SQL row too.
    let patched = w
        .request(
            Method::PATCH,
            &format!("{NS}/f1"),
            &[
                ("content-type", "application/merge-patch+json"),
                ("audit-id", "my-own-audit-id"),
            ],
            Some(br#"{"spec":{"reference":"y"}}"#.to_vec()),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(
        patched.header("audit-id").as_deref(),
        Some("my-own-audit-id")
    );
    let events = of(&log_events(&log), "my-own-audit-id");
    assert_eq!(events[1]["verb"], "patch");
    assert_eq!(
        events[1]["requestObject"],
        json!({"spec": {"reference": "y"}})
    );
    assert_eq!(
        audit_id_of_rows(&w, "f1").await,
        vec![Some(id.clone()), Some("my-own-audit-id".into())],
        "every change records its request's audit ID"
    );

    // A YAML body (server-side apply) is recorded as JSON.
    let applied = w
        .patch(
            &format!("{NS}/f2?fieldManager=audit-test"),
            "application/apply-patch+yaml",
            "apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata:\n  name: f2\nspec:\n  reference: z\n",
        )
        .await;
    assert_eq!(applied.status, 201, "{}", applied.text());
    let events = of(&log_events(&log), &applied.header("audit-id").unwrap());
    assert_eq!(
        events[1]["requestObject"],
        json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
               "metadata": {"name": "f2"}, "spec": {"reference": "z"}})
    );

    // Metadata level: neither body.
    let got = w.get(&format!("{NS}/f1")).await;
    let events = of(&log_events(&log), &got.header("audit-id").unwrap());
    assert_eq!(events[1]["level"], "Metadata");
    assert_eq!(events[1]["verb"], "get");
    assert!(events[1].get("requestObject").is_none());
    assert!(events[1].get("responseObject").is_none());

    // RequestResponse level: the response object too.
    let fischer = w
        .post(
            "/apis/wardle.example.com/v1alpha1/fischers",
            &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
                    "metadata": {"name": "fi"}, "disallowedFlunders": ["bad"]}),
        )
        .await;
    assert_eq!(fischer.status, 201, "{}", fischer.text());
    let events = of(&log_events(&log), &fischer.header("audit-id").unwrap());
    assert_eq!(events[1]["level"], "RequestResponse");
    assert_eq!(
        events[1]["requestObject"]["disallowedFlunders"],
        json!(["bad"])
    );
    let uid = &fischer.json()["metadata"]["uid"];
    assert_eq!(&events[1]["responseObject"]["metadata"]["uid"], uid);
    assert!(
        events[1]["responseObject"]["metadata"]["managedFields"].is_array(),
        "this rule keeps managedFields"
    );

    // A request the policy's first rule excludes leaves no event at all.
    let before = log_events(&log).len();
    let ready = w.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert!(of(&log_events(&log), &ready.header("audit-id").unwrap()).is_empty());
    assert!(log_events(&log).len() >= before);

    // A denied request: 403 with the authorizer's decision.
    let denied = w.anonymous(Method::GET, NS).await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let events = of(&log_events(&log), &denied.header("audit-id").unwrap());
    let done = events.last().unwrap();
    assert_eq!(done["user"]["username"], "system:anonymous");
    assert_eq!(
        done["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(done["annotations"]["authorization.k8s.io/reason"], "");
    assert_eq!(done["responseStatus"]["code"], 403);
    assert_eq!(done["responseStatus"]["reason"], "Forbidden");
    assert_eq!(done["responseStatus"]["status"], "Failure");
    assert!(
        done["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("system:anonymous")
    );

    // A watch: ResponseStarted when the stream starts, ResponseComplete when it ends.
    let mut watch = w
        .watch(&format!("{NS}?watch=true&timeoutSeconds=1"), None)
        .await;
    assert_eq!(watch.status, 200);
    while watch.next(Duration::from_secs(10)).await.is_some() {}
    assert!(
        watch.ended,
        "the server ends the watch after timeoutSeconds"
    );
    let watches = eventually("the watch's ResponseComplete", || {
        let all = log_events(&log);
        let id = all
            .iter()
            .find(|e| e["verb"] == "watch")?
            .get("auditID")?
            .as_str()?
            .to_string();
        let events = of(&all, &id);
        (events.len() == 3).then_some(events)
    })
    .await;
    assert_eq!(
        stages(&watches),
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );
    assert_eq!(watches[1]["responseStatus"]["code"], 200);
    assert!(watches[2]["stageTimestamp"].as_str() >= watches[1]["stageTimestamp"].as_str());

    // A delete answers with a Success Status, which the event keeps as Go does.
    let deleted = w.delete(&format!("{NS}/f1"), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let del_id = deleted.header("audit-id").unwrap();
    let events = of(&log_events(&log), &del_id);
    let status = &events[1]["responseStatus"];
    assert_eq!(status["status"], "Success", "{status}");
    assert_eq!(status["code"], 200);
    assert_eq!(status["details"]["name"], "f1");
    assert!(
        status.get("kind").is_none(),
        "only Go's bounded copy: {status}"
    );
    assert_eq!(
        audit_id_of_rows(&w, "f1").await.last(),
        Some(&Some(del_id)),
        "the DELETED row too"
    );

    let metrics = w.get("/metrics").await.text();
    assert!(
        metrics.contains("apiserver_audit_level_total{level=\"None\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("apiserver_audit_event_total "));
}

engine_tests!(levels_stages_and_the_sql_link);

/// A small --audit-log-maxsize rotates the file; backups are gzipped and every line of the live
/// file is a whole event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, log) = start_logging(
        tmp.path(),
        &everything_at("RequestResponse"),
        &[
            "--audit-log-maxsize",
            "1",
            "--audit-log-maxbackup",
            "2",
            "--audit-log-compress",
        ],
    )
    .await;
    // ~200 KB per object, recorded twice per request at RequestResponse level.
    let big = "x".repeat(200 * 1024);
    for i in 0..8 {
        let r = w
            .post(
                NS,
                &flunder(&format!("big{i}"), json!({"annotations": {"a": big}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let backups = eventually("two gzipped backups", || {
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("audit.log.") && n.ends_with(".gz"))
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(backups.len(), 2, "--audit-log-maxbackup 2 keeps two");
    let live = log_events(&log);
    assert!(
        std::fs::metadata(&log).unwrap().len() < 3 * 1024 * 1024,
        "the live file was cut"
    );
    assert!(live.iter().all(|e| e["kind"] == "Event"));
}

/// A test HTTPS receiver with its own CA: every POSTed body (path, JSON) goes to the channel.
async fn receiver(
    dir: &Path,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) {
    common::server::install_crypto();
    let ca = Ca::new("audit-receiver-ca");
    let serving = ca.serving(&["127.0.0.1"]);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let tx = tx.clone();
        async move {
            let path = req.uri().path().to_string();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let _ = tx.send((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            "ok"
        }
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        serving.cert_pem.into_bytes(),
        serving.key_pem.into_bytes(),
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls)
            .unwrap()
            .serve(app.into_make_service())
            .await
    });
    let kubeconfig = dir.join("webhook.kubeconfig");
    pki::kubeconfig(
        &kubeconfig,
        &format!("https://127.0.0.1:{port}/audit"),
        &ca.cert_pem,
        None,
        None,
    );
    (kubeconfig.display().to_string(), rx)
}

/// Batch mode: EventLists of at most --audit-webhook-batch-max-size events reach the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receives_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let (kubeconfig, mut rx) = receiver(tmp.path()).await;
    let w = start_audited(
        tmp.path(),
        Engine::Sqlite,
        POLICY,
        &[
            "--audit-webhook-config-file",
            &kubeconfig,
            "--audit-webhook-batch-max-size",
            "5",
            "--audit-webhook-batch-max-wait",
            "2s",
        ],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let r = w.post(NS, &flunder(&format!("w{i}"), json!({}))).await;
        assert_eq!(r.status, 201);
        ids.push(r.header("audit-id").unwrap());
    }
    let mut seen = Vec::new();
    let mut batches = Vec::new();
    while ids
        .iter()
        .any(|id| seen.iter().filter(|s| *s == id).count() < 2)
    {
        let (path, list) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the receiver got every event")
            .unwrap();
        assert_eq!(path, "/audit", "POSTed to the kubeconfig's server URL");
        assert_eq!(list["kind"], "EventList");
        assert_eq!(list["apiVersion"], "audit.k8s.io/v1");
        let items = list["items"].as_array().unwrap();
        for e in items {
            assert_eq!(e["kind"], "Event");
            seen.push(e["auditID"].as_str().unwrap().to_string());
        }
        batches.push(items.len());
    }
    assert!(batches.iter().all(|n| (1..=5).contains(n)), "{batches:?}");
    assert!(
        batches.iter().any(|n| *n > 1),
        "events are batched: {batches:?}"
    );
}

/// A webhook that accepts connections and never answers: requests still complete, the log
/// backend still gets every event, and the webhook's overflow is counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_webhook_does_not_hold_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    // Keep accepted sockets open and silent.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in black_hole.incoming() {
            held.push(s);
        }
    });
    let ca = Ca::new("unused");
    let kubeconfig = tmp.path().join("dead.kubeconfig");
    pki::kubeconfig(
        &kubeconfig,
        &format!("https://127.0.0.1:{port}"),
        &ca.cert_pem,
        None,
        None,
    );
    let (w, log) = start_logging(
        tmp.path(),
        &everything_at("Metadata"),
        &[
            "--audit-log-format",
            "legacy",
            "--audit-webhook-config-file",
            kubeconfig.to_str().unwrap(),
            "--audit-webhook-batch-buffer-size",
            "3",
            "--audit-webhook-batch-max-size",
            "1",
            "--audit-webhook-batch-throttle-enable=false",
        ],
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = w.get(NS).await;
        assert_eq!(r.status, 200);
        ids.push(r.header("audit-id").unwrap());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for id in &ids {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("AUDIT: id=\"{id}\"")))
            .collect();
        assert_eq!(lines.len(), 2, "legacy lines of {id}:\n{text}");
        assert!(lines[1].contains("stage=\"ResponseComplete\""));
        assert!(lines[1].ends_with("response=\"200\""), "{}", lines[1]);
    }
    let metrics = w.get("/metrics").await.text();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("apiserver_audit_error_total{plugin=\"buffered\"} "))
        .unwrap_or_else(|| panic!("no buffered drops counted:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(dropped >= 1.0, "{dropped}");
}

/// blocking-strict: a request whose RequestReceived event cannot be delivered is refused (500),
/// counted in apiserver_audit_requests_rejected_total, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_strict_refuses_unaudited_requests() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nobody listens on: every POST is refused at once.
    let closed = common::procs::free_port();
    let kubeconfig = tmp.path().join("refused.kubeconfig");
    pki::kubeconfig(
        &kubeconfig,
        &format!("https://127.0.0.1:{closed}"),
        &Ca::new("unused").cert_pem,
        None,
        None,
    );
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n\
                  - level: None\n  nonResourceURLs: [\"/readyz*\", \"/metrics\"]\n\
                  - level: Metadata\n";
    let w = start_audited(
        tmp.path(),
        Engine::Sqlite,
        policy,
        &[
            "--audit-webhook-config-file",
            kubeconfig.to_str().unwrap(),
            "--audit-webhook-mode",
            "blocking-strict",
            "--audit-webhook-initial-backoff",
            "10ms",
        ],
    )
    .await;
    let r = w.post(NS, &flunder("never", json!({}))).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("failed to store audit event"),
        "{}",
        r.text()
    );
    assert!(r.header("audit-id").is_some());
    let rows = audit_id_of_rows(&w, "never").await;
    assert!(rows.is_empty(), "nothing was written: {rows:?}");
    let metrics = w.get("/metrics").await.text();
    assert!(
        metrics.contains("apiserver_audit_requests_rejected_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_audit_error_total{plugin=\"webhook\"} 1\n"),
        "{metrics}"
    );
}

/// Batch mode holds events until a batch is full or old enough; a graceful shutdown sends what
/// is buffered before the process exits (Go's buffered backend Shutdown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_events_are_written_at_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut w, log) = start_logging(
        tmp.path(),
        POLICY,
        &[
            "--audit-log-mode",
            "batch",
            "--audit-log-batch-max-size",
            "1000",
            "--audit-log-batch-max-wait",
            "1h",
        ],
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = w.post(NS, &flunder(&format!("s{i}"), json!({}))).await;
        assert_eq!(r.status, 201, "{}", r.text());
        ids.push(r.header("audit-id").unwrap());
    }
    assert!(
        log_events(&log).is_empty(),
        "a batch waits for 1000 events or an hour"
    );
    let status = w.stop().expect("wardle stops on SIGTERM");
    assert!(status.success(), "{status}");
    let events = log_events(&log);
    for id in &ids {
        assert_eq!(
            stages(&of(&events, id)),
            ["RequestReceived", "ResponseComplete"]
        );
    }
}

/// Max-in-flight runs inside the audit filter (Go's DefaultBuildHandlerChain: WithAudit wraps
/// WithMaxInFlightLimit), so a request refused with 429 is audited, with no authorization
/// annotations: authorization runs inside max-in-flight and never saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, log) = start_logging(
        tmp.path(),
        &everything_at("Metadata"),
        &["--max-mutating-requests-inflight", "1"],
    )
    .await;
    // A POST whose body never finishes holds the only mutating slot until the request deadline.
    let mut slow = common::raw::connect(tmp.path(), w.port).await;
    common::raw::send(
        &mut slow,
        format!(
            "POST {NS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await;
    // Anonymous is not system:masters, so it does not pass a full server. Until the slow POST
    // has its slot, an anonymous POST is refused by authorization instead (403).
    let mut refused = None;
    for _ in 0..200 {
        let r = w.anonymous(Method::POST, NS).await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 403, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = refused.expect("an anonymous POST got 429 while the slot was held");
    let id = r.header("audit-id").expect("Audit-Id header");
    let events = eventually("the 429 is audited", || {
        let e = of(&log_events(&log), &id);
        (e.len() == 2).then_some(e)
    })
    .await;
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    let done = &events[1];
    assert_eq!(done["verb"], "create");
    assert_eq!(done["user"]["username"], "system:anonymous");
    assert_eq!(done["objectRef"]["resource"], "flunders");
    assert_eq!(done["responseStatus"]["code"], 429);
    assert_eq!(done["responseStatus"]["reason"], "TooManyRequests");
    assert!(
        done.get("annotations")
            .and_then(|a| a.get("authorization.k8s.io/decision"))
            .is_none(),
        "authorization never ran: {done}"
    );
}

/// A policy file kube-apiserver would refuse stops wardle at startup, with the reason.
#[test]
fn a_bad_policy_stops_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
        .arg("--cert-dir")
        .arg(tmp.path())
        .arg("--audit-policy-file")
        .arg(&policy)
        .args(["--audit-log-path", "-"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading audit policy file"), "{err}");
    assert!(err.contains("Loud"), "{err}");
    assert!(
        !tmp.path().join("wardle.db").exists(),
        "nothing was set up before the policy was checked"
    );
}
