//! Several processes on one database, and restarts: the data outlives the process.

mod common;

use common::Engine;
use common::server::Wardle;
use serde_json::json;

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_see_each_other() {
    let (a, b) = Wardle::pair(Engine::Postgres).await;
    // Interleaved writes through both replicas: one gapless RV sequence, read-your-writes on the other.
    for i in 0..10 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let r = writer
            .post(NS, &json!({"metadata": {"name": format!("f{i}")}}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["metadata"]["resourceVersion"], (i + 2).to_string());
        let g = reader.get(&format!("{NS}/f{i}")).await;
        assert_eq!(g.status, 200, "replica sees the other's write at once");
    }
    let la = a.get(NS).await.json();
    let lb = b.get(NS).await.json();
    assert_eq!(la["items"], lb["items"]);
    assert_eq!(la["metadata"]["resourceVersion"], "11");
    // A conflicting update through the other replica is a 409.
    let obj = a.get(&format!("{NS}/f0")).await.json();
    let mut x = obj.clone();
    x["metadata"]["labels"] = json!({"by": "a"});
    assert_eq!(a.put(&format!("{NS}/f0"), &x).await.status, 200);
    x["metadata"]["labels"] = json!({"by": "b"});
    assert_eq!(b.put(&format!("{NS}/f0"), &x).await.status, 409);
}

async fn restart_keeps_data(engine: Engine) {
    let mut w = Wardle::start(engine).await;
    let tmp = w.take_tempdir().unwrap();
    let r = w
        .post(
            NS,
            &json!({"metadata": {"name": "keep"}, "spec": {"reference": "x"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let before = r.json();
    let kubeconfig = std::fs::read_to_string(&w.kubeconfig).unwrap();
    let url = w.db_url.clone();
    w.stop();
    let w2 = Wardle::start_with(tmp.path(), &url, &[]).await;
    // Same PKI (the old kubeconfig still works) and the same object.
    let ca = |k: &str| {
        k.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .map(str::to_string)
    };
    assert_eq!(
        ca(&kubeconfig),
        ca(&std::fs::read_to_string(&w2.kubeconfig).unwrap()),
        "the CA is reused"
    );
    let after = w2.get(&format!("{NS}/keep")).await.json();
    assert_eq!(after, before);
    let r = w2.post(NS, &json!({"metadata": {"name": "next"}})).await;
    assert_eq!(
        r.json()["metadata"]["resourceVersion"],
        "3",
        "RVs continue after a restart"
    );
}

engine_tests!(restart_keeps_data);

/// BanFlunder reads Fischers from the watch cache: a Fischer created through a replica bans at
/// once on that replica (it waits for its own commits), and on another replica as soon as the
/// commit's NOTIFY has reached its cache (milliseconds, as Go's informer; no database read per
/// create). The other replica's first attempts may pass; within seconds one must be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_flunder_follows_fischers_of_every_replica() {
    const FISCHERS: &str = "/apis/wardle.example.com/v1alpha1/fischers";
    let (a, b) = Wardle::pair(Engine::Postgres).await;
    let banned: Vec<String> = (0..200).map(|i| format!("banned-{i}")).collect();
    let r = a
        .post(
            FISCHERS,
            &json!({"metadata": {"name": "guard"}, "disallowedFlunders": banned}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The same replica: refused on the first try.
    let r = a.post(NS, &json!({"metadata": {"name": "banned-0"}})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The other replica: refused once the Fischer has reached its cache.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for name in &banned[1..] {
        let r = b.post(NS, &json!({"metadata": {"name": name}})).await;
        match r.status.as_u16() {
            403 => return,
            201 => assert!(
                std::time::Instant::now() < deadline,
                "replica b still admits {name} 5 s after the Fischer was created on a"
            ),
            other => panic!("{other}: {}", r.text()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("replica b admitted every banned name");
}
