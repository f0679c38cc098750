//! Watch over HTTP against the real server, on SQLite and Postgres: event framing, resourceVersion
//! rules, selector transitions, bookmarks, watch-list, Table events, and replicas.

mod common;

use common::Engine;
use common::server::Wardle;
use http::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";

fn summary(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                e["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn ev(t: &str, name: &str, rv: i64) -> (String, String, String) {
    (t.to_string(), name.to_string(), rv.to_string())
}

async fn create(w: &Wardle, name: &str, labels: Value) -> i64 {
    let r = w
        .post(NS, &json!({"metadata": {"name": name, "labels": labels}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Sets label `key=value` on Flunder `name` with a merge patch.
async fn label(w: &Wardle, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"labels": {key: value}}}).to_string();
    let r = w
        .patch(
            &format!("{NS}/{name}"),
            "application/merge-patch+json",
            &patch,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

async fn list_rv(w: &Wardle) -> i64 {
    w.get(NS).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn events_from_rv(engine: Engine) {
    let w = Wardle::start(engine).await;
    create(&w, "a", json!({})).await;
    let rv = list_rv(&w).await;
    // 39: from a list's RV, strictly the later changes, in order, with their own RVs.
    let mut s = w
        .watch(&format!("{NS}?watch=true&resourceVersion={rv}"), None)
        .await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    create(&w, "b", json!({})).await;
    label(&w, "a", "x", "1").await;
    w.delete(&format!("{NS}/b"), None).await;
    let got = s.take(3).await;
    assert_eq!(
        summary(&got),
        vec![
            ev("ADDED", "b", 3),
            ev("MODIFIED", "a", 4),
            ev("DELETED", "b", 5)
        ]
    );
    assert_eq!(got[0]["object"]["kind"], "Flunder");
    assert!(
        s.next(Duration::from_millis(300)).await.is_none(),
        "nothing else"
    );
    // 40: no RV → the current state as ADDED, then live changes; the legacy /watch/ path too.
    let mut s = w
        .watch(
            "/apis/wardle.example.com/v1beta1/watch/namespaces/default/flunders",
            None,
        )
        .await;
    let got = s.take(1).await;
    assert_eq!(summary(&got), vec![ev("ADDED", "a", 4)]);
    assert_eq!(got[0]["object"]["apiVersion"], "wardle.example.com/v1beta1");
    create(&w, "c", json!({})).await;
    assert_eq!(summary(&s.take(1).await), vec![ev("ADDED", "c", 6)]);
    // Watching one object by name: only the legacy /watch/ path does (Go's RequestInfo makes a
    // named GET a get whatever `?watch` says).
    let legacy_a = "/apis/wardle.example.com/v1alpha1/watch/namespaces/default/flunders/a";
    let mut one = w
        .watch(&format!("{legacy_a}?resourceVersion=6"), None)
        .await;
    create(&w, "d", json!({})).await;
    label(&w, "a", "x", "2").await;
    assert_eq!(summary(&one.take(1).await), vec![ev("MODIFIED", "a", 8)]);
    let r = w
        .get(&format!("{legacy_a}?fieldSelector=metadata.name%3Db"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w.get(&format!("{NS}/a?watch=true")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["kind"],
        "Flunder",
        "a named GET with ?watch is a plain GET"
    );
}

async fn selector_transitions(engine: Engine) {
    let w = Wardle::start(engine).await;
    let rv = create(&w, "a", json!({"tier": "gold"})).await;
    let mut s = w
        .watch(
            &format!("{NS}?watch=true&resourceVersion={rv}&labelSelector=tier%3Dgold"),
            None,
        )
        .await;
    // Leaves the selector → DELETED; enters again → ADDED; stays (another label) → MODIFIED.
    label(&w, "a", "tier", "silver").await;
    label(&w, "a", "tier", "gold").await;
    label(&w, "a", "x", "y").await;
    create(&w, "other", json!({"tier": "silver"})).await; // never matches → nothing
    let got = s.take(2).await;
    assert_eq!(
        summary(&got),
        vec![ev("DELETED", "a", rv + 1), ev("ADDED", "a", rv + 2)]
    );
    assert_eq!(
        got[0]["object"]["metadata"]["labels"]["tier"], "gold",
        "DELETED carries the last matching state"
    );
    let next = s.take(1).await;
    assert_eq!(next[0]["type"], "MODIFIED");
    assert!(s.next(Duration::from_millis(300)).await.is_none());
}

async fn bookmarks_and_watch_list(engine: Engine) {
    let w = Wardle::start(engine).await;
    create(&w, "a", json!({})).await;
    create(&w, "b", json!({})).await;
    // 41: client-go's watch-list: initial state, the end bookmark at the snapshot RV, then live.
    let mut s = w
        .watch(&format!("{NS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"), None)
        .await;
    let got = s.take(3).await;
    assert_eq!(
        summary(&got[..2]),
        vec![ev("ADDED", "a", 2), ev("ADDED", "b", 3)]
    );
    assert_eq!(got[2]["type"], "BOOKMARK");
    assert_eq!(got[2]["object"]["metadata"]["resourceVersion"], "3");
    assert_eq!(
        got[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    create(&w, "c", json!({})).await;
    assert_eq!(summary(&s.take(1).await), vec![ev("ADDED", "c", 4)]);
    // 42: sendInitialEvents without the match rule is invalid.
    let r = w
        .get(&format!("{NS}?watch=true&sendInitialEvents=true"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // 44: timeoutSeconds ends the stream; a bookmark with the last delivered RV comes before.
    let mut s = w
        .watch(
            &format!("{NS}?watch=true&resourceVersion=4&allowWatchBookmarks=true&timeoutSeconds=1"),
            None,
        )
        .await;
    let b = s
        .next(Duration::from_secs(5))
        .await
        .expect("a bookmark before the timeout");
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["metadata"]["resourceVersion"], "4");
    assert!(s.next(Duration::from_secs(5)).await.is_none());
    assert!(s.ended, "the stream ends after timeoutSeconds");
}

async fn too_old_and_too_new(engine: Engine) {
    let w = Wardle::start(engine).await;
    for n in ["a", "b", "c"] {
        create(&w, n, json!({})).await;
    }
    // 43: below the compaction horizon → 200 and one ERROR event with a 410 Status.
    w.sql("UPDATE storage_meta SET compacted_rv = 3; DELETE FROM events WHERE rv <= 3")
        .await;
    // A fresh process: its in-memory window starts at the head, so older RVs come from the DB.
    let mut w = w;
    let tmp = w.take_tempdir().unwrap();
    let url = w.db_url.clone();
    w.stop();
    let w = Wardle::start_with(tmp.path(), &url, &[]).await;
    let mut s = w
        .watch(&format!("{NS}?watch=true&resourceVersion=1"), None)
        .await;
    assert_eq!(s.status, StatusCode::OK);
    let e = s.take(1).await;
    assert_eq!(e[0]["type"], "ERROR");
    assert_eq!(e[0]["object"]["code"], 410);
    assert_eq!(e[0]["object"]["reason"], "Expired");
    assert!(
        e[0]["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 1")
    );
    // From exactly the horizon it works.
    let mut s = w
        .watch(&format!("{NS}?watch=true&resourceVersion=3"), None)
        .await;
    assert_eq!(summary(&s.take(1).await), vec![ev("ADDED", "c", 4)]);
    // Far in the future → 504 after a short wait.
    let r = w
        .get(&format!("{NS}?watch=true&resourceVersion=1000"))
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
}

async fn table_events(engine: Engine) {
    let w = Wardle::start(engine).await;
    let rv = create(&w, "a", json!({})).await;
    // 45: what `kubectl get -w` asks for: Table events, headers on the first only.
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let mut s = w
        .watch(
            &format!("{NS}?watch=true&resourceVersion={rv}"),
            Some(accept),
        )
        .await;
    create(&w, "b", json!({})).await;
    create(&w, "c", json!({})).await;
    let got = s.take(2).await;
    assert_eq!(got[0]["object"]["kind"], "Table");
    assert!(got[0]["object"]["columnDefinitions"].is_array());
    assert_eq!(got[0]["object"]["rows"][0]["cells"][0], "b");
    assert!(got[1]["object"]["columnDefinitions"].is_null());
    // PartialObjectMetadata events (the GC's and namespace controller's metadata informers).
    let pom = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
    let mut s = w
        .watch(&format!("{NS}?watch=true&resourceVersion={rv}"), Some(pom))
        .await;
    let got = s.take(1).await;
    assert_eq!(got[0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_replica_sees_writes_through_another() {
    let (a, b) = Wardle::pair(Engine::Postgres).await;
    let mut s = b
        .watch(&format!("{NS}?watch=true&resourceVersion=0"), None)
        .await;
    let mut expected = Vec::new();
    for i in 0..20 {
        let rv = create(&a, &format!("f{i}"), json!({})).await;
        expected.push(ev("ADDED", &format!("f{i}"), rv));
    }
    let started = std::time::Instant::now();
    assert_eq!(summary(&s.take(20).await), expected);
    eprintln!(
        "20 cross-replica events arrived within {:?} of the last write",
        started.elapsed()
    );
    // Read-your-writes across replicas: a consistent list on B right after a write on A.
    let rv = create(&a, "last", json!({})).await;
    let list = b.get(NS).await.json();
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= rv
    );
}

engine_tests!(
    compaction_runs,
    events_from_rv,
    selector_transitions,
    bookmarks_and_watch_list,
    too_old_and_too_new,
    table_events
);

async fn compaction_runs(engine: Engine) {
    let w = Wardle::start_flags(engine, &["--compaction-interval", "1s"]).await;
    for n in ["a", "b", "c"] {
        create(&w, n, json!({})).await;
    }
    let page = w.get(&format!("{NS}?limit=1")).await.json();
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    create(&w, "d", json!({})).await;
    create(&w, "e", json!({})).await;
    // Each run compacts to the head seen one interval earlier: after a few runs the horizon is
    // past the token's RV (4), and continuing is a 410 with a fresh token.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = w.get(&format!("{NS}?limit=1&continue={token}")).await;
        if r.status == StatusCode::GONE {
            assert!(r.json()["metadata"]["continue"].is_string());
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(
            std::time::Instant::now() < deadline,
            "compaction never passed RV 4"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = w.get("/metrics").await.text();
    assert!(
        !metrics.contains("wardle_compaction_runs_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wardle_compaction_errors_total 0\n"),
        "{metrics}"
    );
    let gauge = |name: &str| -> i64 {
        let line = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")));
        line.unwrap_or_else(|| panic!("{name} missing"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(gauge("wardle_storage_head_rv"), 6);
    assert!(gauge("wardle_storage_compacted_rv") > 4);
    assert_eq!(gauge("wardle_watch_cache_lag"), 0);
    // Lists, gets and watches from the cache are unaffected.
    assert_eq!(w.get(NS).await.json()["items"].as_array().unwrap().len(), 5);
    let mut s = w
        .watch(&format!("{NS}?watch=true&resourceVersion=6"), None)
        .await;
    create(&w, "f", json!({})).await;
    assert_eq!(summary(&s.take(1).await), vec![ev("ADDED", "f", 7)]);
}
