//! SQL reporting: the views of migrations/*/V2 and the named reports of reports/, run by
//! `wardle-apiserver report` on objects made through the API by two users, on both engines: the
//! answers are checked, must agree between Postgres and SQLite, and must survive compaction.

mod common;

use common::Engine;
use common::backend::Backend;
use common::procs::succeeded;
use common::server::Wardle;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wardle::storage::{Key, Write, WriteOp};

const FLUNDERS: &str = "/apis/wardle.example.com/v1alpha1/namespaces";
const FISCHERS: &str = "/apis/wardle.example.com/v1alpha1/fischers";

/// Runs `wardle-apiserver report <args…> --database-url <url>` and returns stdout.
fn report(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
        .arg("report")
        .args(args)
        .args(["--database-url", url])
        .output()
        .expect("run report");
    succeeded(&format!("report {args:?}"), &out)
}

fn report_json(url: &str, name: &str) -> Value {
    let text = report(url, &[name, "-o", "json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
}

fn all_reports(url: &str) -> BTreeMap<String, Value> {
    wardle::report::REPORTS
        .iter()
        .map(|r| (r.name.to_string(), report_json(url, r.name)))
        .collect()
}

/// A CA of the test's own, passed as --client-ca-file, and a client cert for `alice`
/// (group system:masters) written as a kubeconfig next to the admin's.
fn alice_kubeconfig(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "reports-test-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "alice");
    p.distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("alice-ca.crt");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let kc = dir.join("alice.kubeconfig");
    std::fs::write(dir.join("alice.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("alice.key"), key.serialize_pem()).unwrap();
    (ca_file, kc)
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

async fn send(c: &kube::Client, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
    let ct = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let resp = c.send(req).await.expect("request");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn flunder(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
           "metadata": {"name": name}, "spec": spec})
}

/// The same API history on any engine; returns the server (still running) and the database URL.
async fn scenario(engine: Engine, dir: &Path) -> (Wardle, String) {
    let url = engine.fresh_url(dir);
    let (ca_file, alice_kc) = alice_kubeconfig(dir);
    let ca_arg = ca_file.display().to_string();
    let w = Wardle::start_with(
        dir,
        &url,
        &["--client-ca-file", &ca_arg, "--compaction-interval", "1s"],
    )
    .await;
    // alice's kubeconfig: the server's CA from the admin kubeconfig, alice's own cert.
    let server_ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    wardle::tls::pki::write_kubeconfig(
        &alice_kc,
        &w.base_url(),
        &server_ca,
        &std::fs::read_to_string(dir.join("alice.crt")).unwrap(),
        &std::fs::read_to_string(dir.join("alice.key")).unwrap(),
        "alice",
    )
    .unwrap();
    let admin = w.client();
    let alice = client(&alice_kc).await;
    let steps: Vec<(&kube::Client, Method, String, Value)> = vec![
        (
            &admin,
            Method::POST,
            FISCHERS.into(),
            json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
                   "metadata": {"name": "fx"}, "disallowedFlunders": ["never"]}),
        ),
        (
            &admin,
            Method::POST,
            format!("{FLUNDERS}/default/flunders"),
            flunder("a", json!({})),
        ),
        (
            &admin,
            Method::POST,
            format!("{FLUNDERS}/default/flunders"),
            flunder("b", json!({"reference": "a"})),
        ),
        (
            &alice,
            Method::POST,
            format!("{FLUNDERS}/default/flunders"),
            flunder("c", json!({"reference": "fx", "referenceType": "Fischer"})),
        ),
        (
            &alice,
            Method::POST,
            format!("{FLUNDERS}/team-a/flunders"),
            flunder(
                "d",
                json!({"reference": "missing", "referenceType": "Fischer"}),
            ),
        ),
        (
            &admin,
            Method::POST,
            format!("{FLUNDERS}/team-a/flunders"),
            flunder("late", json!({})),
        ),
        // fx now bans a flunder that already exists.
        (
            &alice,
            Method::PATCH,
            format!("{FISCHERS}/fx"),
            json!({"disallowedFlunders": ["never", "late"]}),
        ),
        (
            &admin,
            Method::POST,
            format!("{FLUNDERS}/default/flunders"),
            flunder("e", json!({"reference": "gone"})),
        ),
        // b's reference dangles from here on.
        (
            &alice,
            Method::DELETE,
            format!("{FLUNDERS}/default/flunders/a"),
            json!({}),
        ),
    ];
    for (c, method, path, body) in steps {
        let (status, answer) = send(c, method.clone(), &path, &body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
    (w, url)
}

/// Waits until compaction has moved every event (RVs 2..=10) out of the watch window.
async fn wait_compacted(w: &Wardle, rv: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = w.get("/metrics").await.text();
        let compacted = metrics
            .lines()
            .find_map(|l| l.strip_prefix("wardle_storage_compacted_rv "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        if compacted >= rv {
            return;
        }
        assert!(Instant::now() < deadline, "compaction never reached {rv}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Times differ between runs; everything else must not.
fn without_times(mut reports: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    for v in reports.values_mut() {
        for row in v.as_array_mut().unwrap() {
            if let Some(t) = row.get_mut("committed_at") {
                assert!(
                    t.as_str()
                        .is_some_and(|s| s.len() == 24 && s.ends_with('Z')),
                    "committed_at is UTC with milliseconds: {t}"
                );
                *t = json!("T");
            }
        }
    }
    reports
}

fn rows(v: &Value, cols: &[&str]) -> Vec<Vec<Value>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| cols.iter().map(|c| r[*c].clone()).collect())
        .collect()
}

fn check_answers(r: &BTreeMap<String, Value>) {
    let admin = "wardle-admin";
    assert_eq!(
        rows(
            &r["flunders"],
            &["namespace", "name", "reference_type", "reference"]
        ),
        vec![
            vec![json!("default"), json!("b"), json!("Flunder"), json!("a")],
            vec![json!("default"), json!("c"), json!("Fischer"), json!("fx")],
            vec![
                json!("default"),
                json!("e"),
                json!("Flunder"),
                json!("gone")
            ],
            vec![
                json!("team-a"),
                json!("d"),
                json!("Fischer"),
                json!("missing")
            ],
            vec![json!("team-a"), json!("late"), Value::Null, Value::Null],
        ]
    );
    assert_eq!(
        r["fischers"],
        json!([{"name": "fx", "resource_version": 8, "disallowed_flunders": "late,never"}])
    );
    assert_eq!(
        r["flunders-per-namespace"],
        json!([{"namespace": "default", "flunders": 3, "last_change_rv": 9},
               {"namespace": "team-a", "flunders": 2, "last_change_rv": 7}])
    );
    assert_eq!(
        rows(&r["references"], &["flunder", "target", "target_exists"]),
        vec![
            vec![json!("b"), json!("a"), json!("no")],
            vec![json!("c"), json!("fx"), json!("yes")],
            vec![json!("e"), json!("gone"), json!("no")],
            vec![json!("d"), json!("missing"), json!("no")],
        ]
    );
    assert_eq!(
        rows(&r["dangling-references"], &["namespace", "flunder"]),
        vec![
            vec![json!("default"), json!("b")],
            vec![json!("default"), json!("e")],
            vec![json!("team-a"), json!("d")],
        ]
    );
    assert_eq!(
        r["fischer-referrers"],
        json!([{"fischer": "fx", "referencing_flunders": 1}])
    );
    assert_eq!(
        r["banned-flunders"],
        json!([{"namespace": "team-a", "name": "late", "banned_by": "fx"}])
    );
    assert_eq!(
        rows(
            &r["change-history"],
            &["rv", "actor", "type", "kind", "namespace", "name"]
        ),
        vec![
            vec![
                json!(2),
                json!(admin),
                json!("ADDED"),
                json!("Fischer"),
                json!(""),
                json!("fx")
            ],
            vec![
                json!(3),
                json!(admin),
                json!("ADDED"),
                json!("Flunder"),
                json!("default"),
                json!("a")
            ],
            vec![
                json!(4),
                json!(admin),
                json!("ADDED"),
                json!("Flunder"),
                json!("default"),
                json!("b")
            ],
            vec![
                json!(5),
                json!("alice"),
                json!("ADDED"),
                json!("Flunder"),
                json!("default"),
                json!("c")
            ],
            vec![
                json!(6),
                json!("alice"),
                json!("ADDED"),
                json!("Flunder"),
                json!("team-a"),
                json!("d")
            ],
            vec![
                json!(7),
                json!(admin),
                json!("ADDED"),
                json!("Flunder"),
                json!("team-a"),
                json!("late")
            ],
            vec![
                json!(8),
                json!("alice"),
                json!("MODIFIED"),
                json!("Fischer"),
                json!(""),
                json!("fx")
            ],
            vec![
                json!(9),
                json!(admin),
                json!("ADDED"),
                json!("Flunder"),
                json!("default"),
                json!("e")
            ],
            vec![
                json!(10),
                json!("alice"),
                json!("DELETED"),
                json!("Flunder"),
                json!("default"),
                json!("a")
            ],
        ]
    );
    assert_eq!(
        r["changes-by-user"],
        json!([
            {"actor": "alice", "type": "MODIFIED", "changes": 1, "last_rv": 8},
            {"actor": admin, "type": "ADDED", "changes": 5, "last_rv": 9},
            {"actor": "alice", "type": "ADDED", "changes": 2, "last_rv": 6},
            {"actor": "alice", "type": "DELETED", "changes": 1, "last_rv": 10},
        ])
        .as_array()
        .map(|a| {
            let mut a = a.clone();
            a.sort_by_key(|r| r["last_rv"].as_i64());
            Value::Array(a)
        })
        .unwrap()
    );
    let spec = rows(
        &r["spec-changes"],
        &["rv", "type", "name", "before_spec", "after_spec"],
    );
    assert_eq!(spec.len(), 7, "{spec:?}");
    assert_eq!(spec[0][0], json!(3));
    assert_eq!(spec[0][3], json!(""), "a creation has no before");
    let after_c: Value = serde_json::from_str(spec[2][4].as_str().unwrap()).unwrap();
    assert_eq!(
        after_c,
        json!({"reference": "fx", "referenceType": "Fischer"})
    );
    let deleted = spec.last().unwrap();
    assert_eq!(deleted[1], json!("DELETED"));
    assert_eq!(
        deleted[3], deleted[4],
        "a deletion's after is the last state"
    );
}

/// Same API history on SQLite and Postgres: every report answers the same (times aside), the
/// answers are the expected ones, and compaction moving the events to `history` changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_agree_across_engines_and_survive_compaction() {
    let mut answers = Vec::new();
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let (w, url) = scenario(engine, dir.path()).await;
        let before = without_times(all_reports(&url));
        check_answers(&before);
        wait_compacted(&w, 10).await;
        let moved = wardle::report::query(
            &url,
            "SELECT (SELECT count(*) FROM events) AS live, (SELECT count(*) FROM history) AS kept",
        )
        .await
        .unwrap();
        assert_eq!(
            moved.rows,
            vec![vec![
                wardle::report::Datum::Int(0),
                wardle::report::Datum::Int(9)
            ]],
            "{engine:?}: compaction moves events to history"
        );
        let after = without_times(all_reports(&url));
        assert_eq!(before, after, "{engine:?}: reports changed by compaction");
        // The watch window itself is compacted: reading at an old RV is 410 Gone as before.
        let r = w
            .get(&format!(
                "{FLUNDERS}/default/flunders?resourceVersion=3&resourceVersionMatch=Exact"
            ))
            .await;
        assert_eq!(r.status, StatusCode::GONE, "{engine:?}: {}", r.text());
        answers.push(after);
        drop(w);
    }
    assert_eq!(answers[0], answers[1], "SQLite and Postgres disagree");
}

/// The other output formats and the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_cli_formats() {
    let b = Backend::sqlite();
    let s = b.open().await;
    for name in ["x", "y,z"] {
        s.write(Write {
            key: Key::new("flunders", "ns", name),
            op: WriteOp::Create {
                object: json!({"metadata": {"name": name, "namespace": "ns", "uid": name},
                               "spec": {"reference": "q\"uote"}}),
            },
            actor: "t".into(),
            audit_id: String::new(),
        })
        .await
        .unwrap();
    }
    s.close().await;
    let list = report(&b.url, &["--list"]);
    for r in wardle::report::REPORTS {
        assert!(
            list.contains(r.name) && list.contains(r.description()),
            "{list}"
        );
    }
    assert_eq!(
        report(&b.url, &["dangling-references"]),
        "NAMESPACE   FLUNDER   REFERENCE_TYPE   TARGET\n\
         ns          x         Flunder          q\"uote\n\
         ns          y,z       Flunder          q\"uote\n"
    );
    assert_eq!(
        report(&b.url, &["dangling-references", "-o", "csv"]),
        "namespace,flunder,reference_type,target\n\
         ns,x,Flunder,\"q\"\"uote\"\n\
         ns,\"y,z\",Flunder,\"q\"\"uote\"\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
        .args(["report", "no-such-report", "--database-url", &b.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("report --list"));
}

/// History outlives compaction until --history-retention prunes it by age; each change keeps the
/// audit ID of its request (NULL without one) in events, history and change_history alike.
async fn history_retention(b: Backend) {
    let s = b.open().await;
    let write = |name: &str, audit_id: &str| Write {
        key: Key::new("fischers", "", name),
        op: WriteOp::Create {
            object: json!({"metadata": {"name": name, "uid": name}}),
        },
        actor: "t".into(),
        audit_id: audit_id.into(),
    };
    for (name, audit_id) in [("a", "req-a"), ("b", "req-b"), ("c", "")] {
        s.write(write(name, audit_id)).await.unwrap();
    }
    assert_eq!(s.compact(4).await, Ok(4));
    // Still in the live event log, not compacted.
    s.write(write("d", "req-d")).await.unwrap();
    let backdate = if b.is_pg() {
        "UPDATE history SET committed_at = now() - interval '2 hours' WHERE rv = 2"
    } else {
        "UPDATE history SET committed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7200 seconds') WHERE rv = 2"
    };
    b.exec(backdate).await;
    assert_eq!(s.prune_history(Duration::from_secs(3600)).await, Ok(1));
    assert_eq!(s.prune_history(Duration::from_secs(3600)).await, Ok(0));
    let t = wardle::report::query(
        &b.url,
        "SELECT rv, name, audit_id FROM change_history ORDER BY rv",
    )
    .await
    .unwrap();
    use wardle::report::Datum::{Int, Null, Text};
    assert_eq!(
        t.rows,
        vec![
            vec![Int(3), Text("b".into()), Text("req-b".into())],
            vec![Int(4), Text("c".into()), Null],
            vec![Int(5), Text("d".into()), Text("req-d".into())],
        ]
    );
    s.close().await;
}

engine_tests!(history_retention);

/// The README's read-only Postgres role runs the reports and cannot write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_postgres_role() {
    let b = Backend::postgres();
    let s = b.open().await;
    s.write(Write {
        key: Key::new("flunders", "ns", "x"),
        op: WriteOp::Create {
            object: json!({"metadata": {"name": "x", "namespace": "ns", "uid": "u"}, "spec": {}}),
        },
        actor: "t".into(),
        audit_id: String::new(),
    })
    .await
    .unwrap();
    s.close().await;
    let (base, db) = b
        .url
        .split_once('?')
        .map_or(b.url.as_str(), |(u, _)| u)
        .rsplit_once('/')
        .unwrap();
    let role = format!("reader_{}", uuid::Uuid::new_v4().simple());
    b.exec(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'change-me';
         GRANT CONNECT ON DATABASE {db} TO {role};
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role};
         ALTER ROLE {role} SET default_transaction_read_only = on;"
    ))
    .await;
    // Same server and database, the reader's credentials.
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = format!("{scheme}://{role}:change-me@{host}/{db}");
    assert_eq!(
        report_json(&url, "flunders-per-namespace"),
        json!([{"namespace": "ns", "flunders": 1, "last_change_rv": 2}])
    );
    let denied = wardle::report::query(&url, "DELETE FROM objects").await;
    assert!(denied.is_err(), "the reader could write");
}
