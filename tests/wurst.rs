//! A third kind as a fixture: `Wurst` (cluster-scoped, wardle.example.com/v1alpha1) is declared
//! in this one file and served with one line of registration (`server::run_with(config,
//! &[&Wurst])`). The test proves the generic machinery gives it discovery, OpenAPI v2 and v3,
//! every verb with its strategy hooks, Table, watch and rows in the SQL `objects` table, on both
//! engines. The server runs in this test's process (the kind lives here, not in the binary).

mod common;

use clap::Parser;
use common::Engine;
use common::server::Wardle;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use std::time::Duration;
use wardle::api::{Column, KindDecl, Resource, VersionDecl};
use wardle::apimachinery::status::FieldError;

/// A sausage: `spec.length` in cm, `spec.casing` fixed at creation; `status` is the server's.
struct Wurst;

static DECL: KindDecl = KindDecl {
    kind: "Wurst",
    plural: "wursts",
    singular: "wurst",
    namespaced: false,
    versions: &[VersionDecl {
        name: "v1alpha1",
        deprecation_warning: None,
    }],
    storage_version: "v1alpha1",
    description: "Wurst is a test kind: a sausage of some length in some casing.",
};

fn length(hub: &Value) -> i64 {
    hub["spec"]["length"].as_i64().unwrap_or(0)
}

fn casing(hub: &Value) -> &str {
    hub["spec"]["casing"].as_str().unwrap_or("")
}

impl Resource for Wurst {
    fn decl(&self) -> &'static KindDecl {
        &DECL
    }
    fn properties(&self, _version: &str) -> Value {
        json!({
            "spec": {"type": "object", "description": "spec of the Wurst.", "properties": {
                "length": {"type": "integer", "format": "int64", "description": "length in cm."},
                "casing": {"type": "string", "description": "casing, fixed at creation."},
            }},
            // `required`: Go's `json:"grilled"` without omitempty, so `false` is served.
            "status": {"type": "object", "description": "status, set by the server only.", "required": ["grilled"], "properties": {
                "grilled": {"type": "boolean", "description": "whether it was grilled."},
            }},
        })
    }
    fn prepare_for_create(&self, hub: &mut Value) {
        hub["status"] = json!({"grilled": false});
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        new["status"] = old["status"].clone();
    }
    fn validate(&self, hub: &Value) -> Vec<FieldError> {
        if length(hub) < 0 {
            return vec![FieldError::invalid(
                "spec.length",
                length(hub),
                "must be greater than or equal to 0",
            )];
        }
        Vec::new()
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        if casing(new) != casing(old) {
            errs.push(FieldError::invalid(
                "spec.casing",
                casing(new),
                "field is immutable",
            ));
        }
        errs
    }
    fn warnings_on_create(&self, hub: &Value) -> Vec<String> {
        if length(hub) > 100 {
            return vec!["a Wurst longer than 100 cm does not fit on the grill".into()];
        }
        Vec::new()
    }
    fn columns(&self) -> Vec<Column> {
        vec![
            Column {
                name: "Length",
                type_: "integer",
                format: "",
                description: "Length in cm.",
                priority: 0,
            },
            Column {
                name: "Casing",
                type_: "string",
                format: "",
                description: "The casing.",
                priority: 0,
            },
        ]
    }
    fn cells(&self, hub: &Value) -> Vec<Value> {
        vec![json!(length(hub)), json!(casing(hub))]
    }
}

const WURSTS: &str = "/apis/wardle.example.com/v1alpha1/wursts";

fn wurst(name: &str, length: i64, casing: &str) -> Value {
    json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Wurst", "metadata": {"name": name},
           "spec": {"length": length, "casing": casing}, "status": {"grilled": true}})
}

/// Runs wardle in this process with Wurst registered, on a fresh database of `engine`.
async fn start(engine: Engine, dir: &std::path::Path) -> Wardle {
    let url = engine.fresh_url(dir);
    let port = common::procs::free_port();
    let port_arg = port.to_string();
    let config = wardle::config::Config::parse_from([
        "wardle-apiserver",
        "--secure-port",
        &port_arg,
        "--bind-address",
        "127.0.0.1",
        "--cert-dir",
        dir.to_str().expect("utf-8 temp dir"),
        "--database-url",
        &url,
    ]);
    let server = tokio::spawn(wardle::server::run_with(config, &[&Wurst]));
    tokio::select! {
        w = Wardle::attach(dir, port, &url) => w,
        ended = server => panic!("the in-process server ended: {ended:?}"),
    }
}

/// Discovery and OpenAPI describe Wurst next to the built-in kinds.
async fn described(w: &Wardle) {
    let d = w.get("/apis/wardle.example.com/v1alpha1").await.json();
    let r = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "wursts")
        .unwrap_or_else(|| panic!("no wursts in discovery: {d}"));
    assert_eq!(
        (&r["kind"], &r["namespaced"], &r["singularName"]),
        (&json!("Wurst"), &json!(false), &json!("wurst"))
    );
    assert!(r["verbs"].as_array().unwrap().contains(&json!("watch")));
    let beta = w.get("/apis/wardle.example.com/v1beta1").await.json();
    assert!(!beta.to_string().contains("wursts"), "{beta}");

    let def = "io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Wurst";
    let v2 = w.get("/openapi/v2").await.json();
    assert_eq!(
        v2["definitions"][def]["properties"]["spec"]["properties"]["length"]["type"],
        "integer"
    );
    assert!(v2["paths"][WURSTS]["post"].is_object(), "no POST in v2");
    assert!(v2["paths"][format!("{WURSTS}/{{name}}")]["put"].is_object());
    let v3 = w
        .get("/openapi/v3/apis/wardle.example.com/v1alpha1")
        .await
        .json();
    assert_eq!(
        v3["components"]["schemas"][def]["x-kubernetes-group-version-kind"][0]["kind"],
        "Wurst"
    );
    assert!(v3["paths"][WURSTS]["get"].is_object(), "no list in v3");
}

/// The strategy hooks: status is the server's, casing is immutable, length validated, a
/// warning for a long one.
async fn strategy(w: &Wardle) -> Value {
    let r = w.post(WURSTS, &wurst("lang", 120, "natural")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.warnings(),
        vec![r#"299 - "a Wurst longer than 100 cm does not fit on the grill""#]
    );
    let created = r.json();
    assert_eq!(created["status"], json!({"grilled": false}));
    assert_eq!(created["metadata"].get("namespace"), None);

    let r = w.post(WURSTS, &wurst("kurz", -1, "natural")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["details"]["causes"][0]["field"], "spec.length");

    let mut changed = created.clone();
    changed["spec"]["casing"] = json!("synthetic");
    let r = w.put(&format!("{WURSTS}/lang"), &changed).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"Wurst.wardle.example.com "lang" is invalid: spec.casing: Invalid value: "synthetic": field is immutable"#
    );

    let r = w
        .patch(
            &format!("{WURSTS}/lang"),
            "application/merge-patch+json",
            r#"{"spec": {"length": 90}, "status": {"grilled": true}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let patched = r.json();
    assert_eq!(patched["spec"]["length"], 90);
    assert_eq!(patched["status"], json!({"grilled": false}));

    // Server-side apply runs the same update hooks: a new casing, forced past the owner of
    // the field, is refused there too.
    let r = w
        .patch(
            &format!("{WURSTS}/lang?fieldManager=grill&force=true"),
            "application/apply-patch+yaml",
            "apiVersion: wardle.example.com/v1alpha1\nkind: Wurst\nmetadata: {name: lang}\nspec: {casing: synthetic}\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["details"]["causes"][0]["field"], "spec.casing");
    patched
}

/// get, list and Table.
async fn read(w: &Wardle, lang: &Value) {
    let got = w.get(&format!("{WURSTS}/lang")).await.json();
    assert_eq!(&got, lang);
    let list = w.get(WURSTS).await.json();
    assert_eq!(list["kind"], "WurstList");
    // List items carry no apiVersion/kind, as Go's typed lists.
    let mut item = lang.clone();
    item.as_object_mut()
        .unwrap()
        .retain(|k, _| k != "apiVersion" && k != "kind");
    assert_eq!(list["items"], json!([item]));
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let t = w
        .request(Method::GET, WURSTS, &[("accept", accept)], None)
        .await
        .json();
    let columns = ["Name", "Length", "Casing", "Age"];
    assert_eq!(
        t["columnDefinitions"].as_array().map(Vec::len),
        Some(4),
        "{t}"
    );
    for (i, name) in columns.iter().enumerate() {
        assert_eq!(t["columnDefinitions"][i]["name"], *name);
    }
    let cells = t["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(cells[..3], [json!("lang"), json!(90), json!("natural")]);
    // The real kubectl finds the kind by discovery and prints its columns.
    let out = w.kubectl(&["get", "wursts"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "LENGTH", "CASING", "AGE"], "{text}");
    assert_eq!(lines[1][..3], ["lang", "90", "natural"], "{text}");
}

/// A watch from the list's resourceVersion sees the next writes, in order.
async fn watched(w: &Wardle) {
    let rv = w.get(WURSTS).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = w
        .watch(&format!("{WURSTS}?watch=1&resourceVersion={rv}"), None)
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    let r = w.post(WURSTS, &wurst("mittel", 30, "natural")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        w.delete(&format!("{WURSTS}/mittel"), None).await.status,
        StatusCode::OK
    );
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = stream
            .next(Duration::from_secs(30))
            .await
            .expect("a watch event");
        assert_eq!(e["object"]["kind"], "Wurst");
        seen.push((e["type"].clone(), e["object"]["metadata"]["name"].clone()));
    }
    assert_eq!(
        seen,
        [
            (json!("ADDED"), json!("mittel")),
            (json!("DELETED"), json!("mittel"))
        ]
    );
}

/// The rows of Wurst in the SQL `objects` table: (name, uid, rv).
async fn stored_rows(url: &str) -> Vec<(String, String, i64)> {
    const SQL: &str = "SELECT name, uid, rv FROM objects WHERE resource = 'wursts' AND namespace = '' ORDER BY name";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        sqlx::query_as(SQL).fetch_all(&mut c).await.expect(SQL)
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
        sqlx::query_as(SQL).fetch_all(&mut c).await.expect(SQL)
    }
}

async fn third_kind(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = start(engine, dir.path()).await;
    described(&w).await;
    let lang = strategy(&w).await;
    read(&w, &lang).await;
    watched(&w).await;
    let rv: i64 = lang["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let uid = lang["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        stored_rows(&w.db_url).await,
        [("lang".to_string(), uid, rv)]
    );
}

engine_tests!(third_kind);
