//! Hostile input, generated: a seeded stream of malformed and adversarial requests (bodies,
//! patches of every type, selectors, continue tokens, query parameters, headers, paths with odd
//! percent-encoding) against the real server on both engines. Asserts: no 5xx, no panic in the
//! log, no hang (every request has a client deadline), and afterwards the stored Flunders equal a
//! model built from the acknowledged writes. `WARDLE_FUZZ_SEED` replays a run;
//! `WARDLE_FUZZ_REQUESTS` (HTTP) and `WARDLE_FUZZ_CASES` (in-process parsers) lengthen it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Engine;
use common::server::Wardle;
use http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders";
const NS_BETA: &str = "/apis/wardle.example.com/v1beta1/namespaces/fuzz/flunders";
const FISCHERS: &str = "/apis/wardle.example.com/v1alpha1/fischers";

/// What the model remembers of a Flunder: the state its last acknowledged write returned.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    rv: String,
    labels: Value,
    spec: Value,
    finalizers: Value,
}

fn seen(obj: &Value) -> Seen {
    let m = &obj["metadata"];
    Seen {
        rv: m["resourceVersion"].as_str().unwrap_or("").to_string(),
        labels: m.get("labels").cloned().unwrap_or(Value::Null),
        spec: obj.get("spec").cloned().unwrap_or(Value::Null),
        finalizers: m.get("finalizers").cloned().unwrap_or(Value::Null),
    }
}

/// A small name pool makes collisions (409s, updates of existing objects) common.
const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

struct Gen {
    rng: StdRng,
}

impl Gen {
    fn pick<'a, T: ?Sized>(&mut self, xs: &'a [&'a T]) -> &'a T {
        xs.choose(&mut self.rng).expect("non-empty")
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn name(&mut self) -> String {
        if self.chance(0.9) {
            self.pick(&NAMES).to_string()
        } else {
            self.weird_string()
        }
    }

    /// Strings that stress parsers: separators, escapes, control and non-ASCII characters.
    fn weird_string(&mut self) -> String {
        let parts = [
            "",
            "a",
            "-",
            ".",
            "..",
            "/",
            "%",
            "%2F",
            "%00",
            "\u{0}",
            "\n",
            "é",
            "😀",
            "\u{202e}",
            "=",
            "!=",
            ",",
            "(",
            ")",
            " in ",
            "notin",
            "x".repeat(300).leak(),
            "\\",
            "\"",
            "'",
            "$patch",
            "*",
            "~1",
            "~0",
            "🦀🦀",
        ];
        let n = self.rng.random_range(0..5);
        (0..n).map(|_| self.pick(&parts).to_string()).collect()
    }

    /// Percent-encodes a string for a URL path segment or query value.
    fn enc(s: &str) -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn json_value(&mut self, depth: usize) -> Value {
        match self.rng.random_range(0..if depth > 3 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.chance(0.5)),
            2 => json!(self.rng.random_range(-1_000_000i64..1_000_000)),
            3 => json!(self.pick(&[&1e308, &-0.0, &1.5, &9.007_199_254_740_993e15])),
            4 => json!(self.weird_string()),
            5 => Value::Array(
                (0..self.rng.random_range(0..4))
                    .map(|_| self.json_value(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.rng.random_range(0..4) {
                    let k = if self.chance(0.5) {
                        self.pick(&["spec", "metadata", "labels", "reference", "$patch", "x"])
                            .to_string()
                    } else {
                        self.weird_string()
                    };
                    m.insert(k, self.json_value(depth + 1));
                }
                Value::Object(m)
            }
        }
    }

    fn labels(&mut self) -> Value {
        let mut m = serde_json::Map::new();
        for _ in 0..self.rng.random_range(0..3) {
            let k = if self.chance(0.8) {
                self.pick(&["app", "tier", "example.com/x"]).to_string()
            } else {
                self.weird_string()
            };
            let v = if self.chance(0.8) {
                json!(self.pick(&["web", "db", "1", ""]))
            } else {
                self.json_value(3)
            };
            m.insert(k, v);
        }
        Value::Object(m)
    }

    fn spec(&mut self) -> Value {
        if self.chance(0.7) {
            json!({"reference": self.pick(&["r", "s", ""]), "referenceType": self.pick(&["Flunder", "Fischer", "Nope"])})
        } else {
            self.json_value(1)
        }
    }

    /// A body for create/update: mostly a Flunder, sometimes a broken one, sometimes not JSON.
    fn object_body(&mut self, name: &str) -> Vec<u8> {
        match self.rng.random_range(0..10) {
            0 => self.garbage(),
            1 => {
                // Deep nesting: the decoder's depth bound answers it.
                let d = self.rng.random_range(100..3000);
                format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()
            }
            2 => serde_json::to_vec(&self.json_value(0)).unwrap(),
            _ => {
                let mut meta = json!({"name": name, "labels": self.labels()});
                if self.chance(0.1) {
                    meta["finalizers"] = json!([self.pick(&["example.com/f", "bad finalizer"])]);
                }
                if self.chance(0.1) {
                    meta["resourceVersion"] = json!(self.pick(&["1", "abc", "99999999999", "-1"]));
                }
                if self.chance(0.1) {
                    meta["generateName"] = json!(self.weird_string());
                    meta.as_object_mut().unwrap().remove("name");
                }
                let (api_version, kind) = if self.chance(0.8) {
                    ("wardle.example.com/v1alpha1", "Flunder")
                } else {
                    (
                        self.pick(&["wardle.example.com/v1beta1", "v1", ""]),
                        self.pick(&["Flunder", "Fischer", ""]),
                    )
                };
                serde_json::to_vec(&json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": meta,
                    "spec": self.spec(),
                }))
                .unwrap()
            }
        }
    }

    fn garbage(&mut self) -> Vec<u8> {
        let n = self.rng.random_range(0..200);
        let mut v: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
        if self.chance(0.5) {
            v.splice(0..0, b"{\"metadata\":".iter().copied());
        }
        v
    }

    fn pointer(&mut self) -> String {
        self.pick(&[
            "",
            "/",
            "/metadata",
            "/metadata/labels",
            "/metadata/labels/app",
            "/metadata/name",
            "/metadata/finalizers",
            "/metadata/finalizers/0",
            "/metadata/finalizers/-",
            "/spec",
            "/spec/reference",
            "/spec/x",
            "/spec/x/y",
            "/status",
            "/nope/deeper",
            "/metadata/labels/a~1b",
            "/spec/list/99999999999999999999",
            "/spec/list/-1",
            "/apiVersion",
            "/kind",
        ])
        .to_string()
    }

    fn json_patch(&mut self) -> String {
        let n = self.rng.random_range(0..6);
        let ops: Vec<Value> = (0..n)
            .map(|_| {
                let op = self.pick(&["add", "remove", "replace", "move", "copy", "test", "frob"]);
                let mut o = json!({"op": op, "path": self.pointer()});
                if matches!(op, "move" | "copy") || self.chance(0.1) {
                    o["from"] = json!(self.pointer());
                }
                if matches!(op, "add" | "replace" | "test") || self.chance(0.1) {
                    o["value"] = self.json_value(1);
                }
                o
            })
            .collect();
        if self.chance(0.05) {
            return self.weird_string();
        }
        Value::Array(ops).to_string()
    }

    fn merge_patch(&mut self) -> String {
        if self.chance(0.1) {
            return self.weird_string();
        }
        json!({"metadata": {"labels": self.labels()}, "spec": self.spec()}).to_string()
    }

    fn strategic_patch(&mut self) -> String {
        let fins: Vec<Value> = (0..self.rng.random_range(0..5))
            .map(|i| json!(format!("example.com/f{i}")))
            .collect();
        let mut meta = serde_json::Map::new();
        match self.rng.random_range(0..7) {
            0 => {
                meta.insert("$setElementOrder/finalizers".into(), json!(fins.clone()));
                meta.insert("finalizers".into(), json!(fins));
            }
            1 => {
                meta.insert("$deleteFromPrimitiveList/finalizers".into(), json!(fins));
            }
            2 => {
                meta.insert("$retainKeys".into(), json!(["labels", "name"]));
                meta.insert("labels".into(), self.labels());
            }
            3 => {
                meta.insert(
                    "$patch".into(),
                    json!(self.pick(&["replace", "delete", "merge", "x"])),
                );
            }
            4 => {
                meta.insert(
                    "ownerReferences".into(),
                    json!([{"uid": "u1", "$patch": self.pick(&["delete", "replace", "merge"])}, {"uid": "u2", "name": "x", "kind": "K", "apiVersion": "v1"}]),
                );
            }
            5 => {
                meta.insert("labels".into(), self.labels());
            }
            _ => return serde_json::to_string(&self.json_value(0)).unwrap(),
        }
        json!({"metadata": meta, "spec": self.spec()}).to_string()
    }

    fn apply_patch(&mut self, name: &str) -> String {
        match self.rng.random_range(0..4) {
            0 => self.weird_string(),
            1 => "a: [b\n  c: {".to_string(),
            _ => format!(
                "apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata:\n  name: {name}\n  labels:\n    app: {}\nspec:\n  reference: {}\n",
                self.pick(&["web", "db"]),
                self.pick(&["r", "\"\"", "[1, 2]", "{a: b}"])
            ),
        }
    }

    fn query(&mut self) -> String {
        let keys = [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "timeoutSeconds",
            "watch",
            "allowWatchBookmarks",
            "sendInitialEvents",
            "fieldValidation",
            "fieldManager",
            "force",
            "gracePeriodSeconds",
            "propagationPolicy",
            "orphanDependents",
            "pretty",
            "includeObject",
            "as",
            "unknown",
        ];
        let values = [
            "",
            "0",
            "1",
            "-1",
            "9223372036854775807",
            "99999999999999999999",
            "true",
            "false",
            "app=web",
            "app in (web,db)",
            "!app",
            "app!=",
            "metadata.name=a",
            "metadata.namespace!=x",
            "spec.nope=1",
            "Exact",
            "NotOlderThan",
            "Strict",
            "Warn",
            "Ignore",
            "Table",
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJhXHUwMDAwIn0",
            "bm90IGpzb24",
            "%%%",
            "Background",
            "Foreground",
            "Orphan",
        ];
        let n = self.rng.random_range(0..4);
        (0..n)
            .map(|_| {
                let k = self.pick(&keys);
                // A list never becomes a watch here: watches are exercised with a deadline below.
                let v = if k == "watch" {
                    "false".to_string()
                } else if self.chance(0.85) {
                    self.pick(&values).to_string()
                } else {
                    self.weird_string()
                };
                format!("{k}={}", Self::enc(&v))
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    fn odd_path(&mut self) -> String {
        let paths = [
            "/",
            "/apis",
            "/apis/wardle.example.com",
            "/apis/wardle.example.com/v1alpha1",
            "/apis/wardle.example.com/v9",
            "/api",
            "/api/v1",
            "/apis/x/y/z/w/v/u",
            "/apis/wardle.example.com/v1alpha1/namespaces",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/a/status",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/a/nope",
            "/apis/wardle.example.com/v1alpha1/watch/namespaces/fuzz/flunders?timeoutSeconds=1",
            "/apis/wardle.example.com/v1alpha1/fischers/a/b/c",
            "/openapi/v2",
            "/openapi/v3",
            "/openapi/v3/apis/wardle.example.com/v1alpha1",
            "/openapi/v3/nope",
            "/version",
            "/healthz/nope",
            "/readyz/storage",
            "/livez?verbose",
            "/metrics",
            "/apis/wardle.example.com/v1alpha1/namespaces/%2E%2E/flunders",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/%2E%2E",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/a%2Fb",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/%00",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/%C3%28",
            "//apis///wardle.example.com//v1alpha1",
            "/apis/wardle.example.com/v1alpha1/namespaces/fuzz/flunders/",
        ];
        let p = self.pick(&paths).to_string();
        if self.chance(0.3) {
            format!("{NS}/{}", Self::enc(&self.weird_string()))
        } else {
            p
        }
    }

    fn accept(&mut self) -> String {
        self.pick(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
            "*/*",
            "text/html",
            ";;;",
            "application/json;as=Nope",
        ])
        .to_string()
    }
}

/// One generated request.
struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// The Flunder this request writes, when it is a write to one.
    target: Option<String>,
}

fn generate(g: &mut Gen) -> Req {
    let name = g.name();
    let item = format!(
        "{}/{}",
        if g.chance(0.8) { NS } else { NS_BETA },
        Gen::enc(&name)
    );
    let mut headers = Vec::new();
    let req = match g.rng.random_range(0..12) {
        0 | 1 => {
            let ct = if g.chance(0.8) {
                "application/json"
            } else {
                g.pick(&[
                    "application/yaml",
                    "text/plain",
                    "application/json; charset=utf-8",
                ])
            };
            headers.push(("content-type".into(), ct.to_string()));
            Req {
                method: Method::POST,
                path: format!("{NS}?{}", g.query()),
                headers: vec![],
                body: Some(g.object_body(&name)),
                target: Some(name),
            }
        }
        2 => {
            headers.push(("content-type".into(), "application/json".into()));
            Req {
                method: Method::PUT,
                path: format!("{item}?{}", g.query()),
                headers: vec![],
                body: Some(g.object_body(&name)),
                target: Some(name),
            }
        }
        3..=6 => {
            let (ct, body) = match g.rng.random_range(0..4) {
                0 => ("application/json-patch+json", g.json_patch()),
                1 => ("application/merge-patch+json", g.merge_patch()),
                2 => (
                    "application/strategic-merge-patch+json",
                    g.strategic_patch(),
                ),
                _ => ("application/apply-patch+yaml", g.apply_patch(&name)),
            };
            let ct = if g.chance(0.05) {
                "application/nope"
            } else {
                ct
            };
            headers.push(("content-type".into(), ct.to_string()));
            let mut q = g.query();
            if ct.starts_with("application/apply") && g.chance(0.8) {
                q = format!("fieldManager=fuzz&{q}");
            }
            Req {
                method: Method::PATCH,
                path: format!("{item}?{q}"),
                headers: vec![],
                body: Some(body.into_bytes()),
                target: Some(name),
            }
        }
        7 => {
            let body = match g.rng.random_range(0..4) {
                0 => None,
                1 => Some(g.garbage()),
                2 => Some(serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": g.pick(&["1", "x", ""]), "uid": g.weird_string()}, "gracePeriodSeconds": g.pick(&[&0i64, &-5, &i64::MAX])})).unwrap()),
                _ => Some(serde_json::to_vec(&g.json_value(0)).unwrap()),
            };
            if body.is_some() {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Req {
                method: Method::DELETE,
                path: format!("{item}?{}", g.query()),
                headers: vec![],
                body,
                target: Some(name),
            }
        }
        8 => Req {
            method: Method::GET,
            path: format!("{NS}?{}", g.query()),
            headers: vec![],
            body: None,
            target: None,
        },
        9 => Req {
            method: Method::GET,
            path: format!("{item}?{}", g.query()),
            headers: vec![],
            body: None,
            target: None,
        },
        10 => {
            let m = g
                .pick(&[
                    &Method::GET,
                    &Method::POST,
                    &Method::PUT,
                    &Method::DELETE,
                    &Method::OPTIONS,
                    &Method::HEAD,
                    &Method::PATCH,
                ])
                .clone();
            let body = (m != Method::GET && m != Method::HEAD).then(|| g.garbage());
            Req {
                method: m,
                path: g.odd_path(),
                headers: vec![],
                body,
                target: None,
            }
        }
        _ => {
            // Fischers (cluster-scoped): creates with odd disallowed lists feed BanFlunder.
            headers.push(("content-type".into(), "application/json".into()));
            let body = json!({"metadata": {"name": g.name()}, "disallowedFlunders": [g.pick(&NAMES), g.weird_string()]});
            let body = if g.chance(0.2) {
                serde_json::to_vec(&g.json_value(0)).unwrap()
            } else {
                serde_json::to_vec(&body).unwrap()
            };
            Req {
                method: Method::POST,
                path: FISCHERS.into(),
                headers: vec![],
                body: Some(body),
                target: None,
            }
        }
    };
    // Writes answer in JSON so the model can read them; reads get any Accept.
    if req.method == Method::GET && g.chance(0.3) {
        headers.push(("accept".into(), g.accept()));
    }
    if g.chance(0.05) {
        headers.push(("x-junk".into(), "v".repeat(g.rng.random_range(0..20000))));
    }
    Req { headers, ..req }
}

/// Applies the outcome of an acknowledged write of `name` to the model.
async fn record(
    w: &Wardle,
    model: &mut BTreeMap<String, Seen>,
    name: &str,
    req: &Req,
    body: &[u8],
) {
    if req.path.contains("dryRun") {
        return;
    }
    // The state the write acknowledged: its answer when that is a v1alpha1 Flunder in JSON, else
    // (a DELETE's Status or object, another version, YAML) the object as read right after.
    let answered: Option<Value> = serde_json::from_slice::<Value>(body).ok().filter(|v| {
        req.method != Method::DELETE
            && v["kind"] == "Flunder"
            && v["apiVersion"] == "wardle.example.com/v1alpha1"
            && v["metadata"]["namespace"] == "fuzz"
            && v["metadata"]["name"].is_string()
    });
    let (name, obj) = match answered {
        Some(obj) => (
            obj["metadata"]["name"].as_str().unwrap().to_string(),
            Some(obj),
        ),
        None => {
            let r = w
                .request(Method::GET, &format!("{NS}/{}", Gen::enc(name)), &[], None)
                .await;
            match r.status {
                StatusCode::OK => (name.to_string(), Some(r.json())),
                StatusCode::NOT_FOUND => (name.to_string(), None),
                other => panic!("reading {name} back: {other} {}", r.text()),
            }
        }
    };
    // Deleted: absent, or marked for deletion with no finalizer left to wait for.
    let gone = obj.as_ref().is_none_or(|o| {
        let m = &o["metadata"];
        !m["deletionTimestamp"].is_null() && m["finalizers"].as_array().is_none_or(|f| f.is_empty())
    });
    match obj {
        Some(o) if !gone => {
            model.insert(name, seen(&o));
        }
        _ => {
            model.remove(&name);
        }
    }
}

/// The Flunders of the fuzz namespace as the server lists them.
async fn stored_flunders(w: &Wardle) -> BTreeMap<String, Seen> {
    let list = w.get(NS).await;
    assert_eq!(list.status, StatusCode::OK);
    list.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().unwrap().to_string(), seen(o)))
        .collect()
}

async fn hostile_requests(engine: Engine) {
    let seed: u64 = std::env::var("WARDLE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261129);
    let count: usize = std::env::var("WARDLE_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    eprintln!("hostile_requests({engine:?}): seed {seed}, {count} requests");
    let w = Wardle::start(engine).await;
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut model: BTreeMap<String, Seen> = BTreeMap::new();
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for i in 0..count {
        let req = generate(&mut g);
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = tokio::time::timeout(
            Duration::from_secs(20),
            w.try_request(req.method.clone(), &req.path, &headers, req.body.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("request {i} hung: {} {}", req.method, req.path));
        let resp = match resp {
            Ok(r) => r,
            // The client refused to send it (e.g. a header it cannot encode): not the server's.
            Err(kube::Error::HttpError(_)) => continue,
            Err(e) => panic!(
                "request {i} failed: {} {}: {e}\n{}",
                req.method,
                req.path,
                w.logs()
            ),
        };
        *codes.entry(resp.status.as_u16()).or_default() += 1;
        // The one documented 5xx: a resourceVersion from the future (Go's 504 after 3 s).
        let documented = resp.status == StatusCode::GATEWAY_TIMEOUT
            && resp.text().contains("ResourceVersionTooLarge");
        assert!(
            resp.status.as_u16() < 500 || documented,
            "request {i} (seed {seed}): {} {} -> {}: {}",
            req.method,
            req.path,
            resp.status,
            resp.text()
        );
        if resp.status.is_success() && req.method != Method::GET {
            match req.target.as_deref() {
                Some(name) if !name.is_empty() => {
                    record(&w, &mut model, name, &req, &resp.body).await
                }
                // A write to the collection (a DELETE of `…/flunders/` is a deletecollection):
                // the model takes the list as it now stands.
                _ if req.path.contains("/flunders") => model = stored_flunders(&w).await,
                _ => {}
            }
        }
    }
    eprintln!(
        "answers by code: {codes:?}; {} Flunders in the model",
        model.len()
    );
    // A short watch with hostile parameters ends by itself.
    let mut s = w
        .watch(
            &format!("{NS}?watch=true&timeoutSeconds=1&labelSelector=app%3Dweb"),
            None,
        )
        .await;
    assert_eq!(s.status, StatusCode::OK);
    while s.next(Duration::from_secs(10)).await.is_some() {}
    assert!(s.ended, "the watch ended at its timeout");

    let stored = stored_flunders(&w).await;
    assert_eq!(
        stored, model,
        "stored Flunders differ from the acknowledged writes (seed {seed})"
    );
    let logs = w.logs();
    assert!(
        !logs.contains("panicked"),
        "a panic in the log (seed {seed}):\n{logs}"
    );
    assert_eq!(w.get("/readyz").await.status, StatusCode::OK);
}

engine_tests!(hostile_requests);

/// The parsers behind every query parameter and header, and every patch type, fed a seeded
/// stream of hostile strings in-process (many more cases per second than over HTTP): each
/// answers `Ok` or an error, never a panic.
#[test]
fn parsers_and_patches_never_panic() {
    use base64::Engine as _;
    use wardle::apimachinery::decode::FieldValidation;
    use wardle::apimachinery::patch::{PatchType, apply_patch};
    use wardle::apimachinery::{continue_token, fields, labels, options};
    use wardle::http::{negotiate, request_info::RequestInfo};

    let seed: u64 = std::env::var("WARDLE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261129);
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
    };
    let doc = json!({
        "apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
        "metadata": {"name": "a", "namespace": "fuzz", "labels": {"app": "web"},
                     "finalizers": ["example.com/f0", "example.com/f1"],
                     "ownerReferences": [{"uid": "u1", "name": "o", "kind": "K", "apiVersion": "v1"}]},
        "spec": {"reference": "r", "list": [1, 2, 3]}
    });
    let cases: usize = std::env::var("WARDLE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    for _ in 0..cases {
        let s = if g.chance(0.5) {
            g.weird_string()
        } else {
            g.query()
        };
        let _ = labels::parse(&s);
        let _ = fields::parse(&s);
        let _ = fields::unescape_value(&s);
        let _ = options::parse_rv(Some(&s));
        let _ = continue_token::decode(&s, g.chance(0.5));
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&g.json_value(0)).unwrap());
        let _ = continue_token::decode(&token, false);
        let _ = negotiate::negotiate(Some(&s), g.chance(0.5));
        let _ = negotiate::negotiate(Some(&g.accept()), true);
        let _ = negotiate::body_format(Some(&s));
        let path = if g.chance(0.5) {
            g.odd_path()
        } else {
            format!("/{s}")
        };
        let _ = RequestInfo::new(&Method::GET, &path, Some(&s));
        let _ = RequestInfo::new(&Method::DELETE, &path, None);

        let (ty, body) = match g.rng.random_range(0..3) {
            0 => (PatchType::Json, g.json_patch()),
            1 => (PatchType::Merge, g.merge_patch()),
            _ => (PatchType::StrategicMerge, g.strategic_patch()),
        };
        let mode = *[
            FieldValidation::Ignore,
            FieldValidation::Warn,
            FieldValidation::Strict,
        ]
        .choose(&mut g.rng)
        .unwrap();
        let _ = apply_patch(ty, &doc, body.as_bytes(), mode);
        let _ = apply_patch(
            PatchType::Json,
            &g.json_value(0),
            g.json_patch().as_bytes(),
            mode,
        );
    }
}
