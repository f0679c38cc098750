//! Storage against real databases: every case runs on SQLite (a temp file) and on Postgres (a
//! throwaway server, or WARDLE_TEST_DATABASE_URL): writes and preconditions, group commit with
//! gapless RVs, reads at an RV, several instances on one database, migrations, reporting views.

mod common;

use common::backend::Backend;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use wardle::storage::Storage;
use wardle::storage::types::*;

impl Backend {
    /// The RVs of the event log, in order.
    async fn event_rvs(&self) -> Vec<i64> {
        self.raw()
            .await
            .events()
            .await
            .into_iter()
            .map(|e| e.0)
            .collect()
    }

    async fn raw(&self) -> Raw {
        if self.is_pg() {
            Raw::Pg(
                sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("raw pg"),
            )
        } else {
            Raw::Lite(
                sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("raw sqlite"),
            )
        }
    }
}

/// A direct connection for looking at tables and views (the SQL used is valid on both engines).
enum Raw {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

macro_rules! raw_rows {
    ($raw:expr, $ty:ty, $sql:expr) => {
        match &mut $raw {
            Raw::Pg(c) => sqlx::query_as::<_, $ty>($sql)
                .fetch_all(c)
                .await
                .expect($sql),
            Raw::Lite(c) => sqlx::query_as::<_, $ty>($sql)
                .fetch_all(c)
                .await
                .expect($sql),
        }
    };
}

impl Raw {
    async fn exec(&mut self, sql: &'static str) {
        match self {
            Raw::Pg(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            Raw::Lite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .expect(sql);
    }

    /// Holds the write path at its serialisation point until `release`: the counter row on
    /// Postgres, the database write lock on SQLite.
    async fn block_writers(&mut self) {
        match self {
            Raw::Pg(_) => {
                self.exec("BEGIN; SELECT rv FROM rv_counter FOR UPDATE")
                    .await
            }
            Raw::Lite(_) => self.exec("BEGIN IMMEDIATE").await,
        }
    }

    async fn release(&mut self) {
        self.exec("COMMIT").await;
    }

    async fn events(&mut self) -> Vec<(i64, String, String, Option<i64>)> {
        raw_rows!(
            *self,
            (i64, String, String, Option<i64>),
            "SELECT rv, type, name, prev_rv FROM events ORDER BY rv"
        )
    }
}

engine_tests!(
    crud_with_preconditions,
    precondition_failures_stay_in_their_write,
    concurrent_creates_are_gapless_and_batched,
    lists_page_and_read_history,
    too_large_and_compacted,
    two_instances_share_one_counter,
    reopen_keeps_data,
    a_newer_schema_is_refused_as_such,
    concurrent_opens_migrate_once,
    reporting_views,
    a_refused_write_fails_alone,
    own_writes_reach_the_cache_without_reading_the_log,
);

/// This process's own commits reach its watch cache from the writer, not by reading the event
/// log back: read-your-own-writes waits (BanFlunder's, before every create) included. Until
/// 2026-11-30 each such wait woke the tailer into a read of the log: one read per create.
async fn own_writes_reach_the_cache_without_reading_the_log(b: Backend) {
    let s = b.open().await;
    let cache = wardle::storage::cache::WatchCache::start(s.clone())
        .await
        .expect("cache");
    // Let the start-up reads (first catch-up, LISTEN's wake-up) happen first.
    let first = s.write(create("ns", "first")).await.expect("create").rv;
    cache
        .wait_for(first, Duration::from_secs(5))
        .await
        .expect("cache caught up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = s.log_reads();
    let started = Instant::now();
    const WRITES: u64 = 40;
    for i in 0..WRITES {
        let rv = s
            .write(create("ns", &format!("own-{i}")))
            .await
            .expect("create")
            .rv;
        let seen = cache.caught_up_with_own_commits().await.expect("caught up");
        assert!(seen >= rv, "caught up to {seen}, wrote {rv}");
        assert!(
            cache
                .get(&Key::new("flunders", "ns", &format!("own-{i}")))
                .is_some()
        );
    }
    let reads = s.log_reads() - before;
    // The tailer's fallback timer may read once a second (SQLite: no NOTIFY); a read per write
    // is the fault.
    let timer = started.elapsed().as_secs() + 1;
    assert!(
        reads <= timer,
        "{WRITES} own writes made {reads} reads of the event log in {:?}",
        started.elapsed()
    );
    cache.shutdown();
}

fn flunder(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
           "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
                        "creationTimestamp": "2026-11-22T10:00:00Z", "labels": {"app": name}},
           "spec": spec})
}

fn create(ns: &str, name: &str) -> Write {
    Write {
        key: Key::new("flunders", ns, name),
        op: WriteOp::Create {
            object: flunder(ns, name, json!({})),
        },
        actor: "alice".into(),
        audit_id: String::new(),
    }
}

fn update(ns: &str, name: &str, spec: Value, pre: Preconditions) -> Write {
    Write {
        key: Key::new("flunders", ns, name),
        op: WriteOp::Update {
            object: flunder(ns, name, spec),
            pre,
        },
        actor: "bob".into(),
        audit_id: String::new(),
    }
}

fn delete(ns: &str, name: &str, pre: Preconditions) -> Write {
    Write {
        key: Key::new("flunders", ns, name),
        op: WriteOp::Delete { pre },
        actor: "carol".into(),
        audit_id: String::new(),
    }
}

fn rv_pre(rv: i64) -> Preconditions {
    Preconditions {
        rv: Some(rv),
        uid: None,
    }
}

fn names(chunk: &Chunk) -> Vec<String> {
    chunk
        .items
        .iter()
        .map(|s| format!("{}/{}", s.key.namespace, s.key.name))
        .collect()
}

async fn crud_with_preconditions(b: Backend) {
    let s = b.open().await;
    assert_eq!(s.engine(), if b.is_pg() { "postgres" } else { "sqlite" });
    s.ping().await.expect("ping");
    assert_eq!(s.current_rv().await, Ok(1));

    let mut commits = s.subscribe_commits();
    let created = s.write(create("ns", "a")).await.expect("create");
    assert_eq!(created.rv, 2);
    assert_eq!(created.object["metadata"]["resourceVersion"], "2");
    assert_eq!(*commits.borrow_and_update(), 2, "in-process commit signal");
    assert_eq!(
        s.write(create("ns", "a")).await,
        Err(StorageError::AlreadyExists)
    );

    let got = s
        .get(&Key::new("flunders", "ns", "a"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.rv, 2);
    assert_eq!(got.object.value(), created.object);
    assert_eq!(
        s.get(&Key::new("flunders", "ns", "missing")).await,
        Ok(None)
    );
    assert_eq!(
        s.get(&Key::new("flunders", "other", "a")).await,
        Ok(None),
        "namespace is part of the key"
    );

    let updated = s
        .write(update("ns", "a", json!({"reference": "x"}), rv_pre(2)))
        .await
        .expect("update");
    assert_eq!(updated.rv, 3);
    assert_eq!(updated.object["spec"]["reference"], "x");
    assert_eq!(
        s.write(update("ns", "a", json!({}), rv_pre(2))).await,
        Err(StorageError::Conflict { current: 3 })
    );
    let wrong_uid = Preconditions {
        rv: None,
        uid: Some("nope".into()),
    };
    assert_eq!(
        s.write(update("ns", "a", json!({}), wrong_uid.clone()))
            .await,
        Err(StorageError::UidMismatch {
            expected: "nope".into(),
            actual: "uid-ns-a".into()
        })
    );
    assert!(matches!(
        s.write(delete("ns", "a", wrong_uid)).await,
        Err(StorageError::UidMismatch { .. })
    ));
    assert_eq!(
        s.write(update("ns", "missing", json!({}), Preconditions::default()))
            .await,
        Err(StorageError::NotFound)
    );
    assert_eq!(
        s.write(delete("ns", "missing", Preconditions::default()))
            .await,
        Err(StorageError::NotFound)
    );

    let deleted = s
        .write(delete(
            "ns",
            "a",
            Preconditions {
                rv: Some(3),
                uid: Some("uid-ns-a".into()),
            },
        ))
        .await
        .expect("delete");
    assert_eq!(deleted.rv, 4);
    assert_eq!(
        deleted.object["spec"]["reference"], "x",
        "DELETED carries the last state"
    );
    assert_eq!(deleted.object["metadata"]["resourceVersion"], "4");
    assert_eq!(s.get(&Key::new("flunders", "ns", "a")).await, Ok(None));
    assert_eq!(s.current_rv().await, Ok(4));

    let mut raw = b.raw().await;
    assert_eq!(
        raw.events().await,
        vec![
            (2, "ADDED".into(), "a".into(), None),
            (3, "MODIFIED".into(), "a".into(), Some(2)),
            (4, "DELETED".into(), "a".into(), Some(3)),
        ]
    );
    let with_rv: Vec<(i64,)> = raw_rows!(
        raw,
        (i64,),
        "SELECT count(*) FROM events WHERE CAST(object AS TEXT) LIKE '%resourceVersion%' \
         OR CAST(prev_object AS TEXT) LIKE '%resourceVersion%'"
    );
    assert_eq!(
        with_rv,
        vec![(0,)],
        "stored JSON never contains resourceVersion"
    );
    let actors: Vec<(String,)> = raw_rows!(raw, (String,), "SELECT actor FROM events ORDER BY rv");
    assert_eq!(
        actors,
        vec![("alice".into(),), ("bob".into(),), ("carol".into(),)]
    );

    // Re-create after delete: a fresh object with its own create_rv.
    assert_eq!(s.write(create("ns", "a")).await.map(|o| o.rv), Ok(5));
    let create_rv: Vec<(i64, i64)> =
        raw_rows!(raw, (i64, i64), "SELECT rv, create_rv FROM objects");
    assert_eq!(create_rv, vec![(5, 5)]);
    s.write(update("ns", "a", json!({}), Preconditions::default()))
        .await
        .expect("update");
    let create_rv: Vec<(i64, i64)> =
        raw_rows!(raw, (i64, i64), "SELECT rv, create_rv FROM objects");
    assert_eq!(create_rv, vec![(6, 5)], "updates keep create_rv");
    s.close().await;
}

async fn precondition_failures_stay_in_their_write(b: Backend) {
    let s = b.open().await;
    s.write(create("ns", "exists")).await.expect("seed");
    s.write(create("ns", "victim")).await.expect("seed");
    // `first` is taken alone by the writer, which then waits at the held serialisation point
    // while the rest queue up; they then commit together as one batch.
    let mut results = in_one_batch(
        &b,
        &s,
        vec![
            create("ns", "first"),
            create("ns", "ok-1"),
            create("ns", "exists"), // AlreadyExists
            update("ns", "nobody", json!({}), Preconditions::default()), // NotFound
            update("ns", "victim", json!({}), rv_pre(999)), // Conflict
            delete(
                "ns",
                "exists",
                Preconditions {
                    rv: None,
                    uid: Some("x".into()),
                },
            ), // UidMismatch (deferred: same key)
            create("ns", "ok-2"),
        ],
    )
    .await;
    assert_eq!(results.remove(0).map(|o| o.rv), Ok(4));
    let ok_rvs: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|o| o.rv))
        .collect();
    assert_eq!(
        ok_rvs,
        vec![5, 6],
        "the successful writes get consecutive RVs in queue order"
    );
    assert_eq!(results[1], Err(StorageError::AlreadyExists));
    assert_eq!(results[2], Err(StorageError::NotFound));
    assert_eq!(results[3], Err(StorageError::Conflict { current: 3 }));
    assert_eq!(
        results[4],
        Err(StorageError::UidMismatch {
            expected: "x".into(),
            actual: "uid-ns-exists".into()
        })
    );

    let stats = s.stats();
    assert_eq!(stats.failed_batches, 0);
    assert!(
        stats.max_batch >= 5,
        "the queued writes shared a transaction: {stats:?}"
    );
    assert_eq!(stats.writes, 5);
    let rvs: Vec<i64> = b.event_rvs().await;
    assert_eq!(rvs, vec![2, 3, 4, 5, 6]);
    s.close().await;
}

async fn concurrent_creates_are_gapless_and_batched(b: Backend) {
    const N: i64 = 240;
    let s = b.open().await;
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.write(create(&format!("ns-{}", i % 7), &format!("f-{i:03}")))
                    .await
            })
        })
        .collect();
    let mut rvs = Vec::new();
    for h in handles {
        rvs.push(h.await.expect("join").expect("create").rv);
    }
    rvs.sort_unstable();
    assert_eq!(
        rvs,
        (2..=N + 1).collect::<Vec<_>>(),
        "RVs are 2..N+1 (a fresh store is at 1) without gaps or duplicates"
    );
    let stats = s.stats();
    assert_eq!(stats.writes, N as u64);
    assert!(
        stats.batches < N as u64 && stats.max_batch > 1,
        "creates shared transactions: {stats:?}"
    );
    assert_eq!(
        stats.batch_sizes.iter().map(|(_, n)| n).sum::<u64>(),
        stats.batches
    );

    let mut raw = b.raw().await;
    let events = raw.events().await;
    assert_eq!(
        events.iter().map(|e| e.0).collect::<Vec<_>>(),
        (2..=N + 1).collect::<Vec<_>>()
    );
    assert!(events.iter().all(|e| e.1 == "ADDED"));
    assert_eq!(s.current_rv().await, Ok(N + 1));
    s.close().await;
}

async fn lists_page_and_read_history(b: Backend) {
    let s = b.open().await;
    // Names chosen so byte order differs from most locale collations.
    for (ns, name) in [
        ("b", "x"),
        ("a", "a-1"),
        ("a", "a.1"),
        ("a", "A"),
        ("a", "a_1"),
        ("a", "B"),
    ] {
        s.write(create(ns, name)).await.expect("create");
    }
    let all = s
        .list_chunk("flunders", None, None, None, 0)
        .await
        .expect("list");
    assert_eq!(all.rv, 7);
    assert!(!all.more);
    assert_eq!(
        names(&all),
        ["a/A", "a/B", "a/a-1", "a/a.1", "a/a_1", "b/x"]
    );
    assert!(all.items.iter().all(|i| {
        i.object.value()["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            == Some(i.rv)
    }));

    // Pagination at a fixed RV.
    let p1 = s
        .list_chunk("flunders", None, None, None, 2)
        .await
        .expect("page 1");
    assert_eq!(
        (names(&p1), p1.more),
        (vec!["a/A".to_string(), "a/B".into()], true)
    );
    let last = p1.items.last().expect("item").key.clone();
    let after = Some((last.namespace.as_str(), last.name.as_str()));
    assert_eq!(
        s.count_after("flunders", None, p1.rv, (&last.namespace, &last.name))
            .await,
        Ok(4)
    );
    let p2 = s
        .list_chunk("flunders", None, Some(p1.rv), after, 4)
        .await
        .expect("page 2");
    assert_eq!(
        (names(&p2), p2.more, p2.rv),
        (
            vec!["a/a-1".into(), "a/a.1".into(), "a/a_1".into(), "b/x".into()],
            false,
            7
        )
    );
    let ns_a = s
        .list_chunk("flunders", Some("a"), None, None, 0)
        .await
        .expect("ns a");
    assert_eq!(ns_a.items.len(), 5);
    assert!(
        s.list_chunk("fischers", None, None, None, 0)
            .await
            .expect("empty")
            .items
            .is_empty()
    );

    // Change things after X = 7 and read at X again.
    let x = 7;
    s.write(update(
        "a",
        "A",
        json!({"reference": "new"}),
        Preconditions::default(),
    ))
    .await
    .expect("update");
    s.write(delete("a", "B", Preconditions::default()))
        .await
        .expect("delete");
    s.write(create("a", "C")).await.expect("create after x");
    s.write(delete("b", "x", Preconditions::default()))
        .await
        .expect("delete");
    s.write(create("b", "x")).await.expect("recreate");

    let now = s
        .list_chunk("flunders", None, None, None, 0)
        .await
        .expect("now");
    assert_eq!(now.rv, 12);
    assert_eq!(
        names(&now),
        ["a/A", "a/C", "a/a-1", "a/a.1", "a/a_1", "b/x"]
    );
    assert_eq!(now.items[0].object.value()["spec"]["reference"], "new");

    let then = s
        .list_chunk("flunders", None, Some(x), None, 0)
        .await
        .expect("at x");
    assert_eq!(then.rv, x);
    assert_eq!(
        names(&then),
        ["a/A", "a/B", "a/a-1", "a/a.1", "a/a_1", "b/x"],
        "state at X"
    );
    assert_eq!(
        then.items[0].object.value()["spec"],
        json!({}),
        "old content of A"
    );
    assert_eq!(then.items[0].rv, 5);
    assert_eq!(
        then.items[0].object.value()["metadata"]["resourceVersion"],
        "5"
    );
    assert_eq!(then.items[5].rv, 2, "b/x as it was before delete+recreate");

    // Paging through the past, including the deleted key as the cursor.
    let p = s
        .list_chunk("flunders", None, Some(x), Some(("a", "A")), 1)
        .await
        .expect("past page");
    assert_eq!((names(&p), p.more), (vec!["a/B".to_string()], true));
    assert_eq!(s.count_after("flunders", None, x, ("a", "B")).await, Ok(4));
    assert_eq!(
        s.count_after("flunders", Some("b"), x, ("", "")).await,
        Ok(1)
    );
    assert_eq!(
        s.count_after("flunders", None, 12, ("a", "a_1")).await,
        Ok(1)
    );
    let mid = s
        .list_chunk("flunders", Some("a"), Some(9), None, 0)
        .await
        .expect("at 9");
    assert_eq!(
        names(&mid),
        ["a/A", "a/a-1", "a/a.1", "a/a_1"],
        "after update+delete, before C"
    );
    s.close().await;
}

async fn too_large_and_compacted(b: Backend) {
    let s = b.open().await;
    for i in 0..5 {
        s.write(create("ns", &format!("n{i}")))
            .await
            .expect("create");
    }
    assert_eq!(
        s.list_chunk("flunders", None, Some(9), None, 0).await,
        Err(StorageError::TooLarge {
            requested: 9,
            current: 6
        })
    );
    assert_eq!(
        s.count_after("flunders", None, 7, ("", "")).await,
        Err(StorageError::TooLarge {
            requested: 7,
            current: 6
        })
    );
    let mut raw = b.raw().await;
    raw.exec("UPDATE storage_meta SET compacted_rv = 4").await;
    raw.exec("DELETE FROM events WHERE rv <= 4").await;
    assert_eq!(s.compacted_rv().await, Ok(4));
    assert_eq!(
        s.list_chunk("flunders", None, Some(3), None, 0).await,
        Err(StorageError::Compacted {
            requested: 3,
            compacted: 4
        })
    );
    // At the horizon the state is still exact (only events after it are needed).
    s.write(delete("ns", "n0", Preconditions::default()))
        .await
        .expect("delete");
    let at4 = s
        .list_chunk("flunders", None, Some(4), None, 0)
        .await
        .expect("at horizon");
    assert_eq!(names(&at4), ["ns/n0", "ns/n1", "ns/n2"]);
    s.close().await;
}

async fn two_instances_share_one_counter(b: Backend) {
    const EACH: usize = 60;
    let s1 = b.open().await;
    let s2 = b.open().await;
    let mut handles = Vec::new();
    for i in 0..EACH {
        for (tag, s) in [("one", &s1), ("two", &s2)] {
            let s = s.clone();
            // Both instances also update a shared key, so their per-key locks meet.
            handles.push(tokio::spawn(async move {
                let own = s.write(create(tag, &format!("o-{i}"))).await.map(|o| o.rv);
                let shared = if i == 0 && tag == "one" {
                    s.write(create("shared", "k")).await.map(|o| o.rv)
                } else {
                    loop {
                        match s
                            .write(update(
                                "shared",
                                "k",
                                json!({"i": i}),
                                Preconditions::default(),
                            ))
                            .await
                        {
                            Err(StorageError::NotFound) => {
                                tokio::time::sleep(Duration::from_millis(5)).await
                            }
                            other => break other.map(|o| o.rv),
                        }
                    }
                };
                (own, shared)
            }));
        }
    }
    let mut rvs = Vec::new();
    for h in handles {
        let (own, shared) = h.await.expect("join");
        rvs.push(own.expect("own create"));
        rvs.push(shared.expect("shared write"));
    }
    rvs.sort_unstable();
    let n = (EACH * 4) as i64;
    assert_eq!(
        rvs,
        (2..=n + 1).collect::<Vec<_>>(),
        "one gapless sequence across both instances"
    );
    assert_eq!(s1.stats().writes + s2.stats().writes, n as u64);

    // Each sees the other's writes.
    assert!(
        s1.get(&Key::new("flunders", "two", "o-7"))
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        s2.get(&Key::new("flunders", "one", "o-7"))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(s1.current_rv().await, Ok(n + 1));
    assert_eq!(
        s2.list_chunk("flunders", None, None, None, 0)
            .await
            .expect("list")
            .items
            .len(),
        EACH * 2 + 1
    );
    let events: Vec<i64> = b.event_rvs().await;
    assert_eq!(events, (2..=n + 1).collect::<Vec<_>>());
    s1.close().await;
    s2.close().await;
}

async fn reopen_keeps_data(b: Backend) {
    let s = b.open().await;
    s.write(create("ns", "a")).await.expect("create");
    s.write(create("ns", "b")).await.expect("create");
    s.close().await;
    assert!(matches!(
        s.write(create("ns", "c")).await,
        Err(StorageError::Unavailable(_))
    ));

    let s = b.open().await;
    assert_eq!(s.current_rv().await, Ok(3));
    assert_eq!(
        *s.subscribe_commits().borrow(),
        3,
        "commit signal starts at the stored horizon"
    );
    assert!(
        s.get(&Key::new("flunders", "ns", "a"))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(s.write(create("ns", "c")).await.map(|o| o.rv), Ok(4));
    s.close().await;
}

/// A database a later release migrated (a migration this one does not know) is refused with
/// `SchemaNewer`, which names that migration (the server then does not advise changing the URL).
async fn a_newer_schema_is_refused_as_such(b: Backend) {
    let s = b.open().await;
    s.close().await;
    b.exec(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (999, 'from_a_later_release', '2030-01-01T00:00:00Z', '1')",
    )
    .await;
    let Err(e) = Storage::open(&b.url).await else {
        panic!("a database with an unknown migration was opened");
    };
    let newer = e
        .downcast_ref::<wardle::storage::SchemaNewer>()
        .unwrap_or_else(|| panic!("not SchemaNewer: {e:#}"));
    assert_eq!(newer.migration, "V999__from_a_later_release");
    assert!(e.to_string().contains("newer than this wardle"), "{e}");
}

async fn concurrent_opens_migrate_once(b: Backend) {
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = b.url.clone();
            tokio::spawn(async move { Storage::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.expect("join").expect("concurrent open"));
    }
    let mut raw = b.raw().await;
    let history: Vec<(i64,)> =
        raw_rows!(raw, (i64,), "SELECT count(*) FROM refinery_schema_history");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations")
        .count() as i64;
    assert_eq!(
        history,
        vec![(files,)],
        "each migration applied exactly once"
    );
    let again = b.open().await;
    again
        .write(create("ns", "a"))
        .await
        .expect("write after re-open");
    let counters: Vec<(i64,)> = raw_rows!(raw, (i64,), "SELECT count(*) FROM rv_counter");
    assert_eq!(counters, vec![(1,)]);
    for s in stores {
        s.close().await;
    }
    again.close().await;
}

/// namespace, name, uid, resource_version, create_rv, created_at, reference, reference_type
type FlunderRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn reporting_views(b: Backend) {
    let s = b.open().await;
    let mut w = create("ns", "ref-flunder");
    w.op = WriteOp::Create {
        object: flunder("ns", "ref-flunder", json!({"reference": "target"})),
    };
    s.write(w).await.expect("create");
    let mut w = create("ns", "ref-fischer");
    w.op = WriteOp::Create {
        object: flunder(
            "ns",
            "ref-fischer",
            json!({"reference": "f1", "referenceType": "Fischer"}),
        ),
    };
    s.write(w).await.expect("create");
    s.write(create("ns", "plain")).await.expect("create");
    s.write(Write {
        key: Key::new("fischers", "", "f1"),
        op: WriteOp::Create {
            object: json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
                           "metadata": {"name": "f1", "uid": "uid-f1"}, "disallowedFlunders": ["bad", "worse"]}),
        },
        actor: "alice".into(),
        audit_id: String::new(),
    })
    .await
    .expect("fischer");

    let mut raw = b.raw().await;
    let flunders: Vec<FlunderRow> = raw_rows!(
        raw,
        FlunderRow,
        "SELECT namespace, name, uid, resource_version, create_rv, created_at, reference, reference_type \
         FROM flunders ORDER BY namespace, name"
    );
    let ts = Some("2026-11-22T10:00:00Z".to_string());
    assert_eq!(
        flunders,
        vec![
            (
                "ns".into(),
                "plain".into(),
                "uid-ns-plain".into(),
                4,
                4,
                ts.clone(),
                None,
                None
            ),
            (
                "ns".into(),
                "ref-fischer".into(),
                "uid-ns-ref-fischer".into(),
                3,
                3,
                ts.clone(),
                Some("f1".into()),
                Some("Fischer".into())
            ),
            (
                "ns".into(),
                "ref-flunder".into(),
                "uid-ns-ref-flunder".into(),
                2,
                2,
                ts,
                Some("target".into()),
                Some("Flunder".into())
            ),
        ]
    );
    let labels: Vec<(String,)> = raw_rows!(
        raw,
        (String,),
        "SELECT CAST(labels AS TEXT) FROM flunders WHERE name = 'plain'"
    );
    let labels: Value = serde_json::from_str(&labels[0].0).expect("labels json");
    assert_eq!(labels, json!({"app": "plain"}));

    let fischers: Vec<(String, String, i64, String, String)> = raw_rows!(
        raw,
        (String, String, i64, String, String),
        "SELECT name, uid, resource_version, CAST(disallowed_flunders AS TEXT), CAST(object AS TEXT) FROM fischers"
    );
    assert_eq!(fischers.len(), 1);
    let (name, uid, rv, disallowed, object) = &fischers[0];
    assert_eq!((name.as_str(), uid.as_str(), *rv), ("f1", "uid-f1", 5));
    assert_eq!(
        serde_json::from_str::<Value>(disallowed).expect("json"),
        json!(["bad", "worse"])
    );
    assert_eq!(
        serde_json::from_str::<Value>(object).expect("json")["kind"],
        "Fischer"
    );
    s.close().await;
}

/// Postgres only: connections refused and killed mid-life give `Unavailable`, and storage recovers
/// once the database accepts connections again (without touching the shared test server).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_is_unavailable_then_recovers() {
    let b = Backend::postgres();
    let s = b.open().await;
    s.write(create("ns", "before")).await.expect("create");
    common::postgres::refuse_connections(&b.url);
    assert!(matches!(
        s.write(create("ns", "during")).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        s.get(&Key::new("flunders", "ns", "before")).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        s.list_chunk("flunders", None, None, None, 0).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(s.ping().await.is_err());
    assert_eq!(s.stats().failed_batches, 1);

    common::postgres::allow_connections(&b.url);
    s.ping().await.expect("ping after recovery");
    let after = s
        .write(create("ns", "after"))
        .await
        .expect("write after recovery");
    assert_eq!(after.rv, 3, "the failed batch left no gap");
    s.close().await;
}

/// Postgres only: connections the server ended while they sat idle (an operator's
/// `pg_terminate_backend`, a restart) fail no batch: the writer's alone, then every connection,
/// with the next write at once, 200 ms or 1.5 s later. The writer keeps its connection between
/// batches (`dialect::BatchConn`), checks it after a second idle or a loss seen elsewhere, and
/// sends a batch again on a new connection when the server had ended the session before the
/// batch reached it. (When every connection is ended, a read of the cache's tailer that was in
/// flight fails for real and shuts the storage gate for a moment: a write the gate refuses is
/// sent again once it opens; the writer itself must fail nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_ended_while_idle_are_replaced() {
    let b = Backend::postgres();
    let s = b.open().await;
    // As in the server: the cache's LISTEN connection is one that notices a loss at once.
    let cache = wardle::storage::cache::WatchCache::start(s.clone())
        .await
        .expect("cache");
    let mut last = s.write(create("ns", "n0")).await.expect("create").rv;
    let rounds = [
        ("the writer's", 0),
        ("the writer's", 0),
        ("every", 0),
        ("every", 200),
        ("every", 1500),
    ];
    // Runs `op` again while the storage gate refuses it (see above); any other error is returned.
    async fn past_the_gate<T, F: std::future::Future<Output = StorageResult<T>>>(
        op: impl Fn() -> F,
    ) -> StorageResult<T> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match op().await {
                Err(StorageError::Unavailable(m))
                    if m.starts_with("the database is unreachable")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => return other,
            }
        }
    }
    for (round, (whose, pause_ms)) in rounds.into_iter().enumerate() {
        // Fewer tailer reads in flight when the connections end: the cache has read everything.
        cache
            .wait_for(last, Duration::from_secs(10))
            .await
            .expect("cache caught up");
        s.get(&Key::new("flunders", "ns", "n0")).await.expect("get");
        if whose == "every" {
            common::postgres::terminate_connections(&b.url);
        } else {
            common::postgres::terminate_writer(&b.url);
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let name = format!("n{}", round + 1);
        let gate_ok = whose == "every";
        let write = || s.write(create("ns", &name));
        let after = if gate_ok {
            past_the_gate(write).await
        } else {
            write().await
        }
        .unwrap_or_else(|e| {
            panic!("write {pause_ms} ms after the server ended {whose} connection: {e:?}")
        });
        assert_eq!(after.rv, last + 1);
        last = after.rv;
        let key = Key::new("flunders", "ns", &name);
        past_the_gate(|| s.get(&key))
            .await
            .unwrap_or_else(|e| panic!("read after the server ended {whose} connection: {e:?}"));
    }
    let listed = s
        .list_chunk("flunders", None, None, None, 0)
        .await
        .expect("list");
    assert_eq!(listed.items.len(), rounds.len() + 1);
    assert_eq!(s.stats().failed_batches, 0);
    s.close().await;
}

/// Queues `writes` behind a held serialisation point so they share one batch, then releases it
/// and returns their results in order.
async fn in_one_batch(
    b: &Backend,
    s: &Storage,
    writes: Vec<Write>,
) -> Vec<StorageResult<WriteOutcome>> {
    let mut raw = b.raw().await;
    raw.block_writers().await;
    let mut handles = Vec::new();
    for w in writes {
        let s = s.clone();
        handles.push(tokio::spawn(async move { s.write(w).await }));
        // Spawned tasks race each other; a pause keeps the queue in the listed order.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    raw.release().await;
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.expect("join"));
    }
    results
}

/// Group commit isolates writes: when the database refuses one write's data (here a trigger
/// refuses a name, as a check constraint would; on Postgres also a key too large for the
/// primary-key index), that write fails alone with `Rejected` and the others of its batch commit
/// with consecutive RVs.
async fn a_refused_write_fails_alone(b: Backend) {
    let s = b.open().await;
    s.write(create("ns", "seed")).await.expect("seed");
    if b.is_pg() {
        b.exec(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.name = 'poison' THEN \
               RAISE EXCEPTION 'poison refused' USING ERRCODE = '22023'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT ON objects \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await;
    } else {
        b.exec(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON objects \
             WHEN NEW.name = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
        )
        .await;
    }
    let results = in_one_batch(
        &b,
        &s,
        vec![
            create("ns", "ok-1"),
            create("ns", "poison"),
            create("ns", "seed"), // AlreadyExists, as in any batch
            create("ns", "ok-2"),
        ],
    )
    .await;
    assert_eq!(results[0].as_ref().map(|o| o.rv), Ok(3));
    assert!(
        matches!(&results[1], Err(StorageError::Rejected(m)) if m.contains("poison refused")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Err(StorageError::AlreadyExists));
    assert_eq!(results[3].as_ref().map(|o| o.rv), Ok(4));

    if b.is_pg() {
        // ~2.7 KB of random characters do not compress below the btree's 2704-byte entry limit.
        let long: String = (0..2700)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        let results = in_one_batch(&b, &s, vec![create("ns", "ok-3"), create("ns", &long)]).await;
        assert_eq!(results[0].as_ref().map(|o| o.rv), Ok(5));
        assert!(
            matches!(&results[1], Err(StorageError::Rejected(m)) if m.contains("index row")),
            "{:?}",
            results[1]
        );
    }
    let rvs: Vec<i64> = b.event_rvs().await;
    // A fresh store starts at resourceVersion 1; the first write is 2.
    assert_eq!(
        rvs,
        (2..=rvs.len() as i64 + 1).collect::<Vec<_>>(),
        "no gap"
    );
    let names = names(
        &s.list_chunk("flunders", None, None, None, 0)
            .await
            .expect("list"),
    );
    assert!(!names.contains(&"ns/poison".to_string()), "{names:?}");
    s.close().await;
}

/// SQLite on a full disk (a 2 MiB tmpfs): writes fail with `Unavailable` and readiness fails;
/// once space is freed, readiness and writes come back on the same Storage (no connection left
/// stuck in a failed transaction). Needs `mount` (root); skipped with a message otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_disk_full_then_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("SKIPPED sqlite_disk_full_then_recovers: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            // Lazy: the pool may still be closing its files.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mnt.clone());

    let url = format!("sqlite://{}?mode=rwc", mnt.join("wardle.db").display());
    let s = Storage::open(&url).await.expect("open");
    s.write(create("ns", "before")).await.expect("first write");
    // Empty the write-ahead log (its file is reused in place, which needs no new space), then
    // fill the disk to the last byte: the next write cannot grow the log.
    {
        let mut raw = sqlx::SqliteConnection::connect(&url).await.expect("raw");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut raw)
            .await
            .expect("checkpoint");
    }
    let filler = mnt.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).expect("filler");
        while f.write_all(&[0u8; 65536]).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }
    let mut failure = None;
    for i in 0..50 {
        if let Err(e) = s.write(create("ns", &format!("full-{i}"))).await {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("a write failed on the full disk");
    assert!(
        matches!(&failure, StorageError::Unavailable(m) if m.contains("full")),
        "{failure:?}"
    );
    assert!(
        s.ready().await.is_err(),
        "not ready while writes cannot commit"
    );
    // Reads still work.
    assert!(
        s.get(&Key::new("flunders", "ns", "before"))
            .await
            .expect("get")
            .is_some()
    );

    std::fs::remove_file(&filler).expect("free space");
    s.ready().await.expect("ready again once space returns");
    let after = s
        .write(create("ns", "after"))
        .await
        .expect("write after recovery");
    let again = s
        .write(create("ns", "after-2"))
        .await
        .expect("and the next");
    assert_eq!(again.rv, after.rv + 1);
    let rvs: Vec<i64> = {
        let mut raw = sqlx::SqliteConnection::connect(&url).await.expect("raw");
        sqlx::query_as::<_, (i64,)>("SELECT rv FROM events ORDER BY rv")
            .fetch_all(&mut raw)
            .await
            .expect("events")
            .into_iter()
            .map(|r| r.0)
            .collect()
    };
    assert_eq!(
        rvs,
        (2..=again.rv).collect::<Vec<_>>(),
        "no gap, no lost write"
    );
    s.close().await;
}

/// Postgres only: the write path reads `objects` by key, never by scanning it, whatever the
/// planner believed when it cached the plan. wardle_apply_batch's plans are cached for the
/// writer connection's life; planned on a fresh (small, never analyzed) table, V5 joined the
/// batch to `objects` with a full scan that stayed in the plan as the table grew (Postgres CPU
/// per write grew with the number of objects). Creates, updates and deletes, in batches of one
/// and of many, must leave the table's sequential-scan count where it was, and fetch at most
/// the rows they read by key: a join over a full *index* scan (what the planner picks instead
/// when sequential scans are off) counts as index scans but fetches every row each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_never_scan_the_objects_table() {
    let b = Backend::postgres();
    let s = b.open().await;
    let mut raw = sqlx::PgConnection::connect(&b.url).await.expect("raw pg");
    // Statistics of other sessions reach pg_stat_user_tables when a session flushes them: at
    // the end of a transaction at least 1 s after its previous flush. A write after a pause
    // flushes the writer's counts so far.
    async fn flushed(s: &Storage, raw: &mut sqlx::PgConnection, name: &str) -> (i64, i64, i64) {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        s.write(create("flush", name)).await.expect("flush write");
        let counts: (i64, i64, i64) = sqlx::query_as(
            "SELECT seq_scan, coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0) \
             FROM pg_stat_user_tables WHERE relname = 'objects'",
        )
        .fetch_one(raw)
        .await
        .expect("pg_stat_user_tables");
        counts
    }
    let (seq_before, idx_before, fetched_before) = flushed(&s, &mut raw, "before").await;

    // One write per batch, then many writes per batch (concurrent), of every kind.
    for i in 0..20 {
        s.write(create("ns", &format!("one-{i}")))
            .await
            .expect("create");
    }
    let many = (0..200).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.write(create("ns", &format!("many-{i}"))).await })
    });
    for h in many.collect::<Vec<_>>() {
        h.await.expect("join").expect("create");
    }
    let updates = (0..100).map(|i| {
        let s = s.clone();
        let w = update(
            "ns",
            &format!("many-{i}"),
            json!({"reference": "x"}),
            Preconditions::default(),
        );
        tokio::spawn(async move { s.write(w).await })
    });
    for h in updates.collect::<Vec<_>>() {
        h.await.expect("join").expect("update");
    }
    let deletes = (100..200).map(|i| {
        let s = s.clone();
        let w = delete("ns", &format!("many-{i}"), Preconditions::default());
        tokio::spawn(async move { s.write(w).await })
    });
    for h in deletes.collect::<Vec<_>>() {
        h.await.expect("join").expect("delete");
    }

    let (seq_after, idx_after, fetched_after) = flushed(&s, &mut raw, "after").await;
    assert!(
        idx_after >= idx_before + 320,
        "the writer's statistics were not flushed (index scans {idx_before} -> {idx_after})"
    );
    assert_eq!(
        seq_after, seq_before,
        "writes scanned the objects table (index scans {idx_before} -> {idx_after})"
    );
    // 421 writes: each reads at most its own row, and an update or delete touches it once more.
    let fetched = fetched_after - fetched_before;
    assert!(
        fetched <= 2 * 421,
        "writes fetched {fetched} rows of objects: more than their own keys' rows"
    );
    s.close().await;
}

/// Postgres only: `objects.labels` (written by the writer since migration V8, generated from the
/// object before) always equals what the generated column computed from the row's object, after
/// creates, updates and deletes, in batches of one and of many, for labels of every shape. And a
/// replica on an earlier release, which calls the JSON form of `wardle_apply_batch`, still writes
/// rows, events and RVs the current writer continues from.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_labels_column_follows_the_object() {
    let b = Backend::postgres();
    let s = b.open().await;
    let shapes = [
        json!({"app": "a", "tier": "x\"y\\z", "é": "\u{2028}<>&"}),
        json!({}),
        json!(null),
        json!(["not", "a", "map"]),
        json!({"n": 1.50, "big": 12345678901234567890_u64, "nested": {"k": [true, null]}}),
    ];
    let object = |name: &str, labels: Option<&Value>| {
        let mut o = flunder("ns", name, json!({}));
        match labels {
            Some(l) => o["metadata"]["labels"] = l.clone(),
            None => {
                o["metadata"].as_object_mut().unwrap().remove("labels");
            }
        }
        o
    };
    let write = |name: String, op: WriteOp| Write {
        key: Key::new("flunders", "ns", &name),
        op,
        actor: "alice".into(),
        audit_id: String::new(),
    };
    // Creates of every shape (and without labels), one at a time and concurrently.
    let mut names = Vec::new();
    for (i, l) in shapes.iter().map(Some).chain([None]).enumerate() {
        for j in 0..8 {
            let name = format!("s{i}-{j}");
            let w = write(
                name.clone(),
                WriteOp::Create {
                    object: object(&name, l),
                },
            );
            if j == 0 {
                s.write(w).await.expect("create");
            } else {
                let s = s.clone();
                names.push(tokio::spawn(async move { s.write(w).await }));
            }
        }
    }
    for h in names {
        h.await.expect("join").expect("create");
    }
    // Every object updated to the next shape; some deleted.
    let mut done = Vec::new();
    for (i, _) in shapes.iter().enumerate() {
        for j in 0..8 {
            let name = format!("s{i}-{j}");
            let op = if j == 7 {
                WriteOp::Delete {
                    pre: Preconditions::default(),
                }
            } else {
                let next = shapes.get(i + 1);
                WriteOp::Update {
                    object: object(&name, next),
                    pre: Preconditions::default(),
                }
            };
            let (s, w) = (s.clone(), write(name, op));
            done.push(tokio::spawn(async move { s.write(w).await }));
        }
    }
    for h in done {
        h.await.expect("join").expect("update or delete");
    }

    let mut raw = sqlx::PgConnection::connect(&b.url).await.expect("raw pg");
    const DIFFERENT: &str = "SELECT count(*) FILTER (WHERE labels IS DISTINCT FROM \
         coalesce((object->'metadata'->'labels')::jsonb, '{}'::jsonb)), count(*) FROM objects";
    let (different, rows): (i64, i64) = sqlx::query_as(DIFFERENT)
        .fetch_one(&mut raw)
        .await
        .expect("labels");
    assert_eq!(
        (different, rows),
        (0, 6 * 8 - 5),
        "rows whose labels differ from their object's"
    );

    // The JSON form, as a replica on V5-V7 calls it: a create with labels, an update that
    // drops them, a delete, and a create that fails.
    let head = s.current_rv().await.expect("rv");
    let batch = json!([
        {"ord": 1, "op": "create", "resource": "flunders", "namespace": "ns", "name": "old-1",
         "uid": "u-old-1", "object": object("old-1", Some(&json!({"from": "old"}))),
         "actor": "old-replica"},
        {"ord": 2, "op": "update", "resource": "flunders", "namespace": "ns", "name": "s0-1",
         "uid": "uid-ns-s0-1", "object": object("s0-1", None), "pre_rv": null, "actor": "old-replica"},
        {"ord": 3, "op": "delete", "resource": "flunders", "namespace": "ns", "name": "s0-2",
         "actor": "old-replica"},
        {"ord": 4, "op": "create", "resource": "flunders", "namespace": "ns", "name": "s0-3",
         "uid": "x", "object": object("s0-3", None), "actor": "old-replica"},
    ]);
    let (reply,): (String,) = sqlx::query_as(
        "SELECT CAST(wardle_apply_batch(CAST($1 AS json), CAST('[]' AS json), 'old:') AS text)",
    )
    .bind(batch.to_string())
    .fetch_one(&mut raw)
    .await
    .expect("the JSON form");
    let reply: Value = serde_json::from_str(&reply).expect("reply");
    let statuses: Vec<&str> = reply
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["ok", "ok", "ok", "exists"]);
    assert_eq!(reply[0]["rv"], json!(head + 1));
    assert_eq!(reply[2]["rv"], json!(head + 3));
    let (different, rows): (i64, i64) = sqlx::query_as(DIFFERENT)
        .fetch_one(&mut raw)
        .await
        .expect("labels");
    assert_eq!((different, rows), (0, 6 * 8 - 5), "after the JSON form");
    let (labels,): (String,) =
        sqlx::query_as("SELECT CAST(labels AS TEXT) FROM objects WHERE name = 'old-1'")
            .fetch_one(&mut raw)
            .await
            .expect("old-1");
    assert_eq!(labels, r#"{"from": "old"}"#);
    // The current writer carries on from the old replica's RVs, without a gap.
    let next = s
        .write(write(
            "after".into(),
            WriteOp::Create {
                object: object("after", None),
            },
        ))
        .await
        .expect("create after");
    assert_eq!(next.rv, head + 4);
    s.close().await;
}
