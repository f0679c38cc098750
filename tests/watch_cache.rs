//! The watch cache against real databases (a SQLite file and a throwaway Postgres): lists/gets
//! equal storage reads, watches deliver exactly RV+1..N in order under concurrent writers, two
//! replicas on one Postgres see one identical stream (LISTEN), a killed LISTEN connection loses
//! nothing, slow watchers end with TooSlow, compaction gives Compacted/Expired, and consistent
//! reads see another replica's write. Prints measured write→event latencies (`--nocapture`).

mod common;

use common::backend::Backend;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use wardle::storage::Storage;
use wardle::storage::cache::{Event, EventType, WatchCache, WatchEnd, Watcher};
use wardle::storage::types::*;

engine_tests!(
    list_and_get_equal_storage,
    watch_from_rv_is_exact_under_concurrent_writers,
    slow_watcher_ends_too_slow_others_continue,
    compaction_gives_compacted_and_old_watches_replay_from_the_log,
    falling_behind_compaction_reloads_and_expires_watchers,
    future_rv_waits_or_is_too_large,
);

fn obj(name: &str, ns: &str, n: i64) -> serde_json::Value {
    json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")}, "spec": {"n": n}})
}

async fn create(s: &Storage, resource: &str, ns: &str, name: &str) -> i64 {
    s.write(Write {
        key: Key::new(resource, ns, name),
        op: WriteOp::Create {
            object: obj(name, ns, 0),
        },
        actor: "test".into(),
        audit_id: String::new(),
    })
    .await
    .expect("create")
    .rv
}

async fn update(s: &Storage, resource: &str, ns: &str, name: &str, n: i64) -> i64 {
    s.write(Write {
        key: Key::new(resource, ns, name),
        op: WriteOp::Update {
            object: obj(name, ns, n),
            pre: Preconditions::default(),
        },
        actor: "test".into(),
        audit_id: String::new(),
    })
    .await
    .expect("update")
    .rv
}

async fn delete(s: &Storage, resource: &str, ns: &str, name: &str) -> i64 {
    s.write(Write {
        key: Key::new(resource, ns, name),
        op: WriteOp::Delete {
            pre: Preconditions::default(),
        },
        actor: "test".into(),
        audit_id: String::new(),
    })
    .await
    .expect("delete")
    .rv
}

/// Reads events until one with RV `until` arrived; panics on an end or after `limit`.
async fn collect(w: &mut Watcher, until: i64, limit: Duration) -> Vec<Arc<Event>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    while out.last().is_none_or(|e: &Arc<Event>| e.rv < until) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.next()).await {
            Ok(Some(Ok(ev))) => out.push(ev),
            Ok(other) => panic!("watch ended early: {other:?} after {}", w.last_rv()),
            Err(_) => panic!(
                "timed out waiting for rv {until}; got up to {}",
                w.last_rv()
            ),
        }
    }
    out
}

fn rvs(events: &[Arc<Event>]) -> Vec<i64> {
    events.iter().map(|e| e.rv).collect()
}

/// Mixed writes over two resources and several namespaces (names sorting in byte order).
async fn mixed_writes(s: &Storage, tag: &str) {
    for (i, ns) in ["a", "b-1", "b.2", "B", ""].iter().enumerate() {
        for name in ["x", "y-1", "y.2", "Z"] {
            let name = format!("{tag}{name}");
            create(s, "flunders", ns, &name).await;
            if i % 2 == 0 {
                update(s, "flunders", ns, &name, 7).await;
            }
        }
        delete(s, "flunders", ns, &format!("{tag}y-1")).await;
    }
    for name in ["f1", "f2"] {
        create(s, "fischers", "", &format!("{tag}{name}")).await;
    }
}

async fn assert_lists_equal(s: &Storage, cache: &WatchCache) {
    let rv = s.current_rv().await.expect("rv");
    cache
        .wait_for(rv, Duration::from_secs(5))
        .await
        .expect("cache reaches the horizon");
    for resource in ["flunders", "fischers", "nothing"] {
        for ns in [
            None,
            Some(""),
            Some("a"),
            Some("b-1"),
            Some("B"),
            Some("zz"),
        ] {
            for after in [None, Some(("a", "x")), Some(("b-1", "zzz")), Some(("", ""))] {
                for limit in [0, 1, 3, 100] {
                    let db = s
                        .list_chunk(resource, ns, None, after, limit)
                        .await
                        .expect("list_chunk");
                    let mem = cache.list(resource, ns, after, limit);
                    assert_eq!(mem, db, "{resource} {ns:?} {after:?} {limit}");
                }
            }
        }
    }
    let all = s
        .list_chunk("flunders", None, None, None, 0)
        .await
        .expect("list");
    for item in &all.items {
        assert_eq!(cache.get(&item.key).as_ref(), Some(item));
    }
    assert_eq!(cache.get(&Key::new("flunders", "a", "missing")), None);
}

async fn list_and_get_equal_storage(b: Backend) {
    let s = b.open().await;
    mixed_writes(&s, "early-").await;
    // Loaded from a snapshot, then fed by the tailer.
    let cache = WatchCache::start(s.clone()).await.expect("cache");
    assert_eq!(cache.head(), s.current_rv().await.expect("rv"));
    mixed_writes(&s, "late-").await;
    assert_lists_equal(&s, &cache).await;
    // A second cache loaded from the final state agrees too.
    let fresh = WatchCache::start(s.clone()).await.expect("cache");
    assert_lists_equal(&s, &fresh).await;
    s.close().await;
}

async fn watch_from_rv_is_exact_under_concurrent_writers(b: Backend) {
    let s = b.open().await;
    create(&s, "flunders", "a", "seed").await;
    let cache = WatchCache::start(s.clone()).await.expect("cache");
    let start = cache.head();
    let mut all = cache
        .watch("flunders", None, start, 100_000)
        .await
        .expect("watch");
    let mut only_a = cache
        .watch("flunders", Some("a"), start, 100_000)
        .await
        .expect("watch");
    // Half-way the writers pause (`paused`) until the late watcher has joined (`go`): writes
    // are fast enough to be all done before a fixed sleep ends, and a watcher joining at the
    // end would wait for events that never come.
    let paused = Arc::new(tokio::sync::Barrier::new(9));
    let go = Arc::new(tokio::sync::Barrier::new(9));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            let (paused, go) = (paused.clone(), go.clone());
            tokio::spawn(async move {
                let ns = if w % 2 == 0 { "a" } else { "b" };
                for i in 0..25 {
                    if i == 12 {
                        paused.wait().await;
                        go.wait().await;
                    }
                    let name = format!("w{w}-{i}");
                    create(&s, "flunders", ns, &name).await;
                    update(&s, "flunders", ns, &name, i).await;
                    if i % 3 == 0 {
                        delete(&s, "flunders", ns, &name).await;
                    }
                }
            })
        })
        .collect();
    // A watcher that joins half-way resumes from an RV it did not see itself.
    paused.wait().await;
    let mid = cache.head();
    let mut late = cache
        .watch("flunders", None, mid, 100_000)
        .await
        .expect("watch");
    go.wait().await;
    for w in writers {
        w.await.expect("writer");
    }
    let end = s.current_rv().await.expect("rv");
    let got = collect(&mut all, end, Duration::from_secs(20)).await;
    assert_eq!(rvs(&got), ((start + 1)..=end).collect::<Vec<_>>());
    let got_late = collect(&mut late, end, Duration::from_secs(20)).await;
    assert_eq!(rvs(&got_late), ((mid + 1)..=end).collect::<Vec<_>>());
    // The namespace watch gets exactly the "a" subsequence of the full one.
    let want_a: Vec<i64> = got
        .iter()
        .filter(|e| e.key.namespace == "a")
        .map(|e| e.rv)
        .collect();
    let got_a = collect(
        &mut only_a,
        *want_a.last().expect("a events"),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(rvs(&got_a), want_a);
    // Objects carry their RVs; updates carry the previous state with its RV.
    for e in &got {
        assert_eq!(
            e.object.value()["metadata"]["resourceVersion"],
            e.rv.to_string()
        );
        match e.kind {
            EventType::Added => assert!(e.prev_object.is_none()),
            EventType::Modified | EventType::Deleted => {
                let prev = e.prev_object.as_ref().expect("prev_object");
                let prev_rv: i64 = prev.value()["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("prev rv");
                assert!(prev_rv < e.rv);
            }
        }
    }
    assert_eq!(all.last_rv(), end);
    s.close().await;
}

async fn slow_watcher_ends_too_slow_others_continue(b: Backend) {
    let s = b.open().await;
    let cache = WatchCache::start(s.clone()).await.expect("cache");
    let start = cache.head();
    let mut slow = cache
        .watch("flunders", None, start, 1)
        .await
        .expect("watch");
    let mut fine = cache
        .watch("flunders", None, start, 1000)
        .await
        .expect("watch");
    let mut last = 0;
    for i in 0..5 {
        last = create(&s, "flunders", "a", &format!("n{i}")).await;
    }
    let got = collect(&mut fine, last, Duration::from_secs(10)).await;
    assert_eq!(rvs(&got), ((start + 1)..=last).collect::<Vec<_>>());
    // Bookmarks never run ahead of delivery: the slow one has delivered nothing yet.
    assert_eq!(slow.bookmark_rv(), start);
    // A caught-up watcher of another namespace may bookmark at the head.
    let mut other_ns = cache
        .watch("flunders", Some("b"), start, 10)
        .await
        .expect("watch");
    assert_eq!(other_ns.bookmark_rv(), last);
    assert_eq!(other_ns.last_rv(), start);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), other_ns.next())
            .await
            .is_err()
    );
    // The slow one sees a complete prefix (its one queued event), then TooSlow: never a skip.
    match slow.next().await {
        Some(Ok(ev)) => assert_eq!(ev.rv, start + 1),
        other => panic!("expected the first event, got {other:?}"),
    }
    assert_eq!(slow.next().await, Some(Err(WatchEnd::TooSlow)));
    assert_eq!(slow.next().await, None);
    assert_eq!(slow.last_rv(), start + 1);
    // It resumes from its last RV and misses nothing.
    let mut resumed = cache
        .watch("flunders", None, slow.last_rv(), 10)
        .await
        .expect("resume");
    let got = collect(&mut resumed, last, Duration::from_secs(10)).await;
    assert_eq!(rvs(&got), ((start + 2)..=last).collect::<Vec<_>>());
    // The healthy watcher keeps receiving.
    let next = create(&s, "flunders", "a", "after").await;
    assert_eq!(
        rvs(&collect(&mut fine, next, Duration::from_secs(10)).await),
        vec![next]
    );
    s.close().await;
}

async fn compaction_gives_compacted_and_old_watches_replay_from_the_log(b: Backend) {
    let s = b.open().await;
    for i in 0..10 {
        create(&s, "flunders", "a", &format!("n{i}")).await;
    }
    // Loaded after the writes (RVs 2..=11: a fresh store is at 1): its window starts at 11,
    // older watches replay from `events`.
    let cache = WatchCache::start(s.clone()).await.expect("cache");
    assert_eq!(cache.oldest_rv(), 11);
    // From 1, the point a fresh store starts at (nothing was ever written at 1).
    let mut old = cache.watch("flunders", None, 1, 4).await.expect("watch");
    let next = create(&s, "flunders", "a", "live").await;
    // Queue of 4, yet 11 events: the replay from the log is paced by the reader, not queued.
    let got = collect(&mut old, next, Duration::from_secs(10)).await;
    assert_eq!(rvs(&got), (2..=next).collect::<Vec<_>>());

    b.exec("UPDATE storage_meta SET compacted_rv = 6").await;
    // Any read of the log tells the cache about the new horizon.
    let head = create(&s, "flunders", "a", "after-compaction").await;
    cache
        .wait_for(head, Duration::from_secs(5))
        .await
        .expect("head");
    assert_eq!(cache.oldest_rv(), 11);
    for from in [0, 3, 5] {
        match cache.watch("flunders", None, from, 10).await {
            Err(StorageError::Compacted {
                requested,
                compacted,
            }) => assert_eq!((requested, compacted), (from, 6)),
            other => panic!("watch from {from}: expected Compacted, got {other:?}"),
        }
    }
    // At the horizon and above it, still served (from the log, then the window).
    let mut at = cache.watch("flunders", None, 6, 10).await.expect("watch");
    assert_eq!(
        rvs(&collect(&mut at, head, Duration::from_secs(10)).await),
        (7..=head).collect::<Vec<_>>()
    );
    s.close().await;
}

async fn falling_behind_compaction_reloads_and_expires_watchers(b: Backend) {
    let s = b.open().await;
    create(&s, "flunders", "a", "before").await;
    let cache = WatchCache::start(s.clone()).await.expect("cache");
    let mut w = cache
        .watch("flunders", None, cache.head(), 10)
        .await
        .expect("watch");
    // A write whose event is compacted away in the same transaction: the tailer can never read
    // it and must notice the hole is compaction.
    b.exec(
        "UPDATE rv_counter SET rv = rv + 1; \
         INSERT INTO objects (resource, namespace, name, uid, rv, create_rv, object) \
           SELECT 'flunders', 'a', 'ghost', 'u-ghost', rv, rv, '{\"metadata\":{\"name\":\"ghost\"}}' FROM rv_counter; \
         UPDATE storage_meta SET compacted_rv = (SELECT rv FROM rv_counter);",
    )
    .await;
    let ghost = Key::new("flunders", "a", "ghost");
    match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
        Ok(Some(Err(WatchEnd::Expired {
            requested,
            compacted,
        }))) => assert_eq!((requested, compacted), (2, 3)),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_eq!(cache.head(), 3);
    assert_eq!(cache.get(&ghost).map(|o| o.rv), Some(3));
    // The reloaded cache keeps tailing.
    let mut w = cache.watch("flunders", None, 3, 10).await.expect("watch");
    let next = create(&s, "flunders", "a", "after").await;
    assert_eq!(
        rvs(&collect(&mut w, next, Duration::from_secs(5)).await),
        vec![next]
    );
    s.close().await;
}

async fn future_rv_waits_or_is_too_large(b: Backend) {
    let s = b.open().await;
    let cache = WatchCache::start(s.clone()).await.expect("cache");
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            create(&s, "flunders", "a", "one").await;
            create(&s, "flunders", "a", "two").await
        })
    };
    // Waits for RV 2 (the first write: a fresh store is at 1), then streams what follows it.
    let mut w = cache.watch("flunders", None, 2, 10).await.expect("watch");
    let two = writer.await.expect("writer");
    assert_eq!(
        rvs(&collect(&mut w, two, Duration::from_secs(5)).await),
        vec![two]
    );
    match cache.watch("flunders", None, 1000, 10).await {
        Err(StorageError::TooLarge { requested, current }) => {
            assert_eq!((requested, current), (1000, two))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        cache.wait_for(two + 1, Duration::from_millis(50)).await,
        Err(StorageError::TooLarge { .. })
    ));
    // Dropping the cache ends watchers with Shutdown.
    cache.shutdown();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .ok()
            .flatten(),
        Some(Err(WatchEnd::Shutdown))
    );
    s.close().await;
}

/// Median and max of durations, in ms, for the report.
fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, max {:.1} ms over {}",
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1]),
        d.len()
    )
}

/// Time from a write's return to its event arriving at `w`.
async fn latency(s: &Storage, w: &mut Watcher, tag: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let rv = create(s, "flunders", "lat", &format!("{tag}{i}")).await;
        let got = collect(w, rv, Duration::from_secs(5)).await;
        assert_eq!(got.last().map(|e| e.rv), Some(rv));
        out.push(t.elapsed());
        // A random pause, so writes do not fall into step with the poll tick.
        tokio::time::sleep(Duration::from_millis(rand::random_range(5..120))).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_local_and_cross_process_latency() {
    let b = Backend::sqlite();
    let (a, other) = (b.open().await, b.open().await);
    let cache = WatchCache::start(a.clone()).await.expect("cache");
    let mut w = cache
        .watch("flunders", Some("lat"), cache.head(), 100)
        .await
        .expect("watch");
    let local = latency(&a, &mut w, "l", 20).await;
    // `other` is a separate Storage on the file: no in-process wake, only the poll.
    let remote = latency(&other, &mut w, "r", 20).await;
    eprintln!("sqlite write→event: local {}", summary(local));
    eprintln!("sqlite write→event: other process {}", summary(remote));
    a.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_see_one_identical_stream() {
    let b = Backend::postgres();
    let (sa, sb) = (b.open().await, b.open().await);
    let (ca, cb) = (
        WatchCache::start(sa.clone()).await.expect("cache a"),
        WatchCache::start(sb.clone()).await.expect("cache b"),
    );
    let mut wa = ca
        .watch("flunders", None, 1, 100_000)
        .await
        .expect("watch a");
    let mut wb = cb
        .watch("flunders", None, 1, 100_000)
        .await
        .expect("watch b");
    let writers: Vec<_> = [sa.clone(), sb.clone()]
        .into_iter()
        .enumerate()
        .flat_map(|(r, s)| {
            (0..4).map(move |w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        let name = format!("r{r}-w{w}-{i}");
                        create(&s, "flunders", "ns", &name).await;
                        update(&s, "flunders", "ns", &name, 1).await;
                    }
                })
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let end = sa.current_rv().await.expect("rv");
    assert_eq!(end, 401, "400 writes after the fresh store's 1");
    let got_a = collect(&mut wa, end, Duration::from_secs(20)).await;
    let got_b = collect(&mut wb, end, Duration::from_secs(20)).await;
    assert_eq!(rvs(&got_a), (2..=end).collect::<Vec<_>>());
    let key = |e: &Arc<Event>| (e.rv, e.kind, e.key.clone(), e.object.clone());
    assert_eq!(
        got_a.iter().map(key).collect::<Vec<_>>(),
        got_b.iter().map(key).collect::<Vec<_>>()
    );

    let mut la = ca
        .watch("flunders", Some("lat"), ca.head(), 100)
        .await
        .expect("watch");
    let mut lb = cb
        .watch("flunders", Some("lat"), cb.head(), 100)
        .await
        .expect("watch");
    let local = latency(&sa, &mut la, "l", 20).await;
    let cross = latency(&sa, &mut lb, "x", 20).await;
    eprintln!("postgres write→event: local {}", summary(local));
    eprintln!(
        "postgres write→event: other replica (LISTEN) {}",
        summary(cross)
    );
    sa.close().await;
    sb.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_rv_reads_another_replicas_write() {
    let b = Backend::postgres();
    let (sa, sb) = (b.open().await, b.open().await);
    let cb = WatchCache::start(sb.clone()).await.expect("cache b");
    for i in 0..20 {
        let name = format!("ryw{i}");
        let rv = create(&sa, "flunders", "a", &name).await;
        let seen = cb.consistent_rv().await.expect("consistent rv");
        assert!(seen >= rv, "consistent_rv {seen} < write {rv}");
        assert!(cb.head() >= rv);
        assert_eq!(
            cb.get(&Key::new("flunders", "a", &name)).map(|o| o.rv),
            Some(rv)
        );
        let list = cb.list("flunders", Some("a"), None, 0);
        assert!(list.rv >= rv && list.items.iter().any(|o| o.rv == rv));
    }
    sa.close().await;
    sb.close().await;
}

/// Finds this database's LISTEN backends.
async fn listen_pids(url: &str) -> Vec<i32> {
    let mut c = sqlx::PgConnection::connect(url).await.expect("pg");
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut c)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_listen_connection_loses_nothing() {
    let b = Backend::postgres();
    let (sa, sb) = (b.open().await, b.open().await);
    let cache = WatchCache::start(sa.clone()).await.expect("cache");
    let start = cache.head();
    let mut w = cache
        .watch("flunders", None, start, 100_000)
        .await
        .expect("watch");
    let mut pids = Vec::new();
    for _ in 0..50 {
        pids = listen_pids(&b.url).await;
        if !pids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pids.len(), 1, "one LISTEN connection");
    // Writes go through the other Storage: only NOTIFY or the fallback poll can wake the cache.
    let writer = {
        let sb = sb.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..60 {
                last = create(&sb, "flunders", "a", &format!("k{i}")).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            last
        })
    };
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut killer = sqlx::PgConnection::connect(&b.url).await.expect("pg");
        for pid in listen_pids(&b.url).await {
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&mut killer)
                .await
                .unwrap_or_else(|e| panic!("terminate round {round}: {e}"));
        }
    }
    let last = writer.await.expect("writer");
    let got = collect(&mut w, last, Duration::from_secs(10)).await;
    assert_eq!(rvs(&got), ((start + 1)..=last).collect::<Vec<_>>());
    // The listener came back, and NOTIFY wakes the cache again (well under the 1 s poll).
    let mut back = Vec::new();
    for _ in 0..50 {
        back = listen_pids(&b.url).await;
        if !back.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back.len(), 1, "LISTEN re-established");
    assert!(!pids.contains(&back[0]));
    let t = Instant::now();
    let rv = create(&sb, "flunders", "a", "after-kill").await;
    collect(&mut w, rv, Duration::from_secs(5)).await;
    eprintln!(
        "postgres write→event after LISTEN reconnect: {:?}",
        t.elapsed()
    );
    sa.close().await;
    sb.close().await;
}
