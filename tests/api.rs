//! Protocol tests against the real server binary, on SQLite and on a throwaway Postgres:
//! the conformance cases of reference/apiserver-behaviour.md §7 that need no kube-apiserver.

mod common;

use common::Engine;
use common::server::Wardle;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";
const NS_BETA: &str = "/apis/wardle.example.com/v1beta1/namespaces/default/flunders";
const FISCHERS: &str = "/apis/wardle.example.com/v1alpha1/fischers";

fn flunder(name: &str) -> Value {
    json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": name}, "spec": {}})
}

fn labelled(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": name, "labels": labels}})
}

async fn create_ok(w: &Wardle, path: &str, obj: &Value) -> Value {
    let r = w.post(path, obj).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn create_and_read(engine: Engine) {
    let w = Wardle::start(engine).await;
    // 20-22: create, server-set fields, deprecation warning on v1alpha1 only.
    let r = w.post(NS, &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
        "metadata": {"name": "my-first-flunder", "labels": {"sample-label": "true"}}, "spec": {"reference": "a"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(
        r.warnings().iter().any(|w| w.contains(
            "wardle.example.com/v1alpha1 Flunder is deprecated in v1.3+, unavailable in v1.10+"
        )),
        "{:?}",
        r.warnings()
    );
    let o = r.json();
    // The answer to a create is the text a GET serves for the object, byte for byte.
    let g = w.get(&format!("{NS}/my-first-flunder")).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(r.text(), g.text(), "create answer vs GET");
    assert!(r.text().ends_with("}\n"), "{}", r.text());
    let meta = &o["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert!(meta["uid"].as_str().unwrap().len() == 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert!(
        meta["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert!(meta.get("selfLink").is_none() && meta.get("generation").is_none());
    assert_eq!(meta["managedFields"][0]["operation"], "Update");
    assert_eq!(
        meta["managedFields"][0]["apiVersion"],
        "wardle.example.com/v1alpha1"
    );
    assert_eq!(
        meta["managedFields"][0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:sample-label": {}}}, "f:spec": {"f:reference": {}, "f:referenceType": {}}}),
        "Go's set for a create: defaulted fields included, no f:status, no \".\" on spec"
    );
    assert_eq!(
        o["spec"],
        json!({"reference": "a", "referenceType": "Flunder"})
    );
    assert_eq!(o["status"], json!({}));
    // 70: readable in both versions.
    let b = w.get(&format!("{NS_BETA}/my-first-flunder")).await;
    assert_eq!(b.status, StatusCode::OK);
    assert!(
        b.warnings().is_empty(),
        "v1beta1 is not deprecated: {:?}",
        b.warnings()
    );
    assert_eq!(
        b.json()["spec"],
        json!({"flunderReference": "a", "referenceType": "Flunder"})
    );
    assert_eq!(b.json()["apiVersion"], "wardle.example.com/v1beta1");
    // 23: AlreadyExists.
    let r = w.post(NS, &flunder("my-first-flunder")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let s = r.json();
    assert_eq!(s["reason"], "AlreadyExists");
    assert_eq!(
        s["message"],
        r#"flunders.wardle.example.com "my-first-flunder" already exists"#
    );
    // 47: NotFound.
    let r = w.get(&format!("{NS}/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json()["message"],
        r#"flunders.wardle.example.com "nope" not found"#
    );
    assert_eq!(
        r.json()["details"],
        json!({"name": "nope", "group": "wardle.example.com", "kind": "flunders"})
    );
    // 38: all-namespaces list. Created in v1beta1 (not the storage version): the answer is
    // still what a v1beta1 GET serves; a pretty or YAML answer is the same object.
    let beta_other = "/apis/wardle.example.com/v1beta1/namespaces/other/flunders";
    let r = w
        .post(beta_other, &json!({"metadata": {"name": "b"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let g = w.get(&format!("{beta_other}/b")).await;
    assert_eq!(r.text(), g.text(), "v1beta1 create answer vs GET");
    assert_eq!(r.json()["apiVersion"], "wardle.example.com/v1beta1");
    let r = w
        .post(
            &format!("{beta_other}?pretty=true"),
            &json!({"metadata": {"name": "c"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.text().starts_with("{\n  \""), "{}", r.text());
    assert_eq!(r.json(), w.get(&format!("{beta_other}/c")).await.json());
    let body = serde_json::to_vec(&json!({"metadata": {"name": "d"}})).unwrap();
    let r = w
        .request(
            Method::POST,
            beta_other,
            &[
                ("content-type", "application/json"),
                ("accept", "application/yaml"),
            ],
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/yaml")
    );
    assert!(r.text().contains("name: d\n"), "{}", r.text());
    for n in ["c", "d"] {
        let d = w.delete(&format!("{beta_other}/{n}"), None).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    }
    let all = w
        .get("/apis/wardle.example.com/v1alpha1/flunders")
        .await
        .json();
    assert_eq!(all["kind"], "FlunderList");
    assert_eq!(names(&all), vec!["my-first-flunder", "b"]);
    // list RV is the committed horizon (a fresh store is at 1: four creates and two deletes
    // make it 7).
    let rv: i64 = all["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rv, 7);
    // 66-67: namespace mismatch; cluster-scoped namespace cleared.
    let r = w
        .post(
            NS,
            &json!({"metadata": {"name": "x", "namespace": "other"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    let f = create_ok(
        &w,
        FISCHERS,
        &json!({"metadata": {"name": "f", "namespace": "foo"}, "disallowedFlunders": []}),
    )
    .await;
    assert!(f["metadata"].get("namespace").is_none());
    // POST on the all-namespaces path is not allowed.
    let r = w
        .post("/apis/wardle.example.com/v1alpha1/flunders", &flunder("z"))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn validation(engine: Engine) {
    let w = Wardle::start(engine).await;
    // 68-69: the six rules on create.
    let r = w.post(NS_BETA, &json!({"metadata": {"name": "x"}, "spec": {"flunderReference": "a", "fischerReference": "b", "referenceType": "Flunder"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["message"],
        r#"Flunder.wardle.example.com "x" is invalid: spec.fischerReference: Invalid value: "b": cannot be set with flunderReference at the same time"#
    );
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "spec.fischerReference"
    );
    let r = w
        .post(
            NS_BETA,
            &json!({"metadata": {"name": "x"}, "spec": {"referenceType": "Fischer"}}),
        )
        .await;
    assert_eq!(
        r.json()["message"],
        r#"Flunder.wardle.example.com "x" is invalid: spec.fischerReference: Invalid value: "": cannot be empty if referenceType is Fischer"#
    );
    let r = w
        .post(
            NS_BETA,
            &json!({"metadata": {"name": "x"}, "spec": {"referenceType": "Foo"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("must be Flunder or Fischer")
    );
    // Deviation: v1alpha1 with an unknown referenceType is rejected, not silently emptied.
    let r = w
        .post(
            NS,
            &json!({"metadata": {"name": "x"}, "spec": {"reference": "a", "referenceType": "Foo"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // Deviation: validation also runs on update.
    let created = create_ok(&w, NS_BETA, &json!({"metadata": {"name": "ok"}, "spec": {"flunderReference": "a", "referenceType": "Flunder"}})).await;
    let mut bad = created.clone();
    bad["spec"] =
        json!({"flunderReference": "a", "fischerReference": "b", "referenceType": "Flunder"});
    let r = w.put(&format!("{NS_BETA}/ok"), &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // 63-64: names.
    let r = w.post(NS, &json!({"metadata": {}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("metadata.name: Required value: name or generateName is required")
    );
    for bad in ["a/b", "..", "a%b"] {
        let r = w.post(NS, &flunder(bad)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text()
        );
    }
    create_ok(&w, NS, &flunder("Upper_Case")).await;
    // 62: generateName.
    let g = create_ok(&w, NS, &json!({"metadata": {"generateName": "f-"}})).await;
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("f-") && name.len() == 7, "{name}");
    // Namespaces must be DNS labels.
    let r = w
        .post(
            "/apis/wardle.example.com/v1alpha1/namespaces/Bad_NS/flunders",
            &flunder("x"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // Body apiVersion of another version.
    let r = w.post(NS, &json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder", "metadata": {"name": "x"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("does not match the expected API version")
    );
}

async fn field_validation(engine: Engine) {
    let w = Wardle::start(engine).await;
    let body = json!({"metadata": {"name": "s"}, "spec": {"reference": "a", "foo": 1}});
    // 61: Strict, Warn (default) and Ignore.
    let r = w.post(&format!("{NS}?fieldValidation=Strict"), &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"Flunder in version "v1alpha1" cannot be handled as a Flunder: strict decoding error: unknown field "spec.foo""#
    );
    let r = w.post(NS, &body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        r.warnings()
            .iter()
            .any(|x| x.contains(r#"unknown field \"spec.foo\""#)),
        "{:?}",
        r.warnings()
    );
    assert!(
        r.json()["spec"].get("foo").is_none(),
        "unknown fields are dropped"
    );
    let r = w
        .post(
            &format!("{NS}?fieldValidation=Ignore"),
            &json!({"metadata": {"name": "i"}, "spec": {"foo": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.warnings().len(),
        1,
        "only the deprecation warning: {:?}",
        r.warnings()
    );
    // Duplicate fields are strict errors too.
    let r = w
        .request(
            Method::POST,
            &format!("{NS}?fieldValidation=Strict"),
            &[("content-type", "application/json")],
            Some(br#"{"metadata":{"name":"d"},"spec":{"reference":"a","reference":"b"}}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("duplicate field"), "{}", r.text());
    // Malformed JSON and wrong types are 400, never 500.
    let r = w
        .request(
            Method::POST,
            NS,
            &[("content-type", "application/json")],
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = w
        .post(NS, &json!({"metadata": {"name": "t"}, "spec": "string"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = w.post(NS, &json!({"metadata": {"name": 5}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = w
        .post(
            NS,
            &json!({"metadata": {"name": "nul", "annotations": {"a": "x\u{0}y"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = w.post(NS, &json!([1, 2])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // YAML bodies.
    let r = w
        .request(Method::POST, NS, &[("content-type", "application/yaml")],
            Some(b"apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata:\n  name: from-yaml\nspec:\n  reference: a\n".to_vec()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // 30: unknown content type → 415; huge body → 413.
    let r = w
        .request(
            Method::POST,
            NS,
            &[("content-type", "text/plain")],
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json()["kind"], "Status");
    let big = json!({"metadata": {"name": "big", "annotations": {"a": "x".repeat(3 * 1024 * 1024 + 10)}}});
    let r = w.post(NS, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert_eq!(r.json()["kind"], "Status");
    // 60: dryRun.
    let r = w.post(&format!("{NS}?dryRun=All"), &flunder("dry")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let d = r.json();
    assert!(d["metadata"]["uid"].is_string());
    assert!(d["metadata"].get("resourceVersion").is_none());
    assert_eq!(
        w.get(&format!("{NS}/dry")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.post(&format!("{NS}?dryRun=Foo"), &flunder("dry"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn update_patch_delete(engine: Engine) {
    let w = Wardle::start(engine).await;
    let o = create_ok(
        &w,
        NS,
        &json!({"metadata": {"name": "u", "labels": {"a": "1"}}, "spec": {"reference": "r"}}),
    )
    .await;
    let rv0 = o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // 51: PUT without resourceVersion.
    let mut body = o.clone();
    body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let r = w.put(&format!("{NS}/u"), &body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["message"],
        r#"flunders.wardle.example.com "u" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"#
    );
    // A no-op PUT keeps the RV.
    let r = w.put(&format!("{NS}/u"), &o).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["metadata"]["resourceVersion"], rv0.as_str());
    // A real PUT bumps it; the old RV is then stale (52).
    let mut changed = o.clone();
    changed["spec"]["reference"] = json!("r2");
    let r = w.put(&format!("{NS}/u"), &changed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rv1 = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rv0, rv1);
    let r = w.put(&format!("{NS}/u"), &changed).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["message"],
        r#"Operation cannot be fulfilled on flunders.wardle.example.com "u": the object has been modified; please apply your changes to the latest version and try again"#
    );
    // 53-54: missing object; name mismatch.
    let mut other = changed.clone();
    other["metadata"]["name"] = json!("missing");
    assert_eq!(
        w.put(&format!("{NS}/missing"), &other).await.status,
        StatusCode::NOT_FOUND
    );
    let r = w.put(&format!("{NS}/u2"), &changed).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["message"],
        "the name of the object (u) does not match the name on the URL (u2)"
    );
    // 58-59: json patch, merge patch, strategic merge patch; no-op patch keeps RV.
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/json-patch+json",
            r#"[{"op":"add","path":"/metadata/labels/b","value":"2"}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/json-patch+json",
            r#"[{"op":"test","path":"/spec/reference","value":"nope"}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/json-patch+json",
            "not json",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"a":null}}}"#,
        )
        .await;
    assert_eq!(r.json()["metadata"]["labels"], json!({"b": "2"}));
    let before = r.json()["metadata"]["resourceVersion"].clone();
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"b":"2"}}}"#,
        )
        .await;
    assert_eq!(
        r.json()["metadata"]["resourceVersion"],
        before,
        "no-op patch must not bump the RV"
    );
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"finalizers":["example.com/f"]}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"finalizers":["example.com/g"]}}"#,
        )
        .await;
    assert_eq!(
        r.json()["metadata"]["finalizers"],
        json!(["example.com/g", "example.com/f"]),
        "finalizers merge in SMP (patch items first, as Go orders them)"
    );
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/g"]}}"#,
        )
        .await;
    assert_eq!(
        r.json()["metadata"]["finalizers"],
        json!(["example.com/f"]),
        "{}",
        r.text()
    );
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/merge-patch+json",
            r#"{"metadata":{"resourceVersion":"1"}}"#,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a stale RV in a patch is a conflict"
    );
    assert_eq!(
        w.patch(&format!("{NS}/nope"), "application/merge-patch+json", "{}")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.patch(&format!("{NS}/u"), "text/plain", "{}").await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    // 48: finalizers hold a delete; removing the last one completes it.
    let r = w
        .delete(
            &format!("{NS}/u"),
            Some(&json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let held = r.json();
    assert_eq!(held["kind"], "Flunder");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(w.get(&format!("{NS}/u")).await.status, StatusCode::OK);
    let r = w
        .patch(
            &format!("{NS}/u"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        w.get(&format!("{NS}/u")).await.status,
        StatusCode::NOT_FOUND
    );
    // 46, 49: delete returns a Success Status; uid precondition.
    let o = create_ok(&w, NS, &flunder("d")).await;
    let r = w
        .delete(
            &format!("{NS}/d"),
            Some(&json!({"preconditions": {"uid": "wrong"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["message"].as_str().unwrap().starts_with(r#"Operation cannot be fulfilled on Flunder.wardle.example.com "d": the UID in the precondition (wrong) does not match the UID in record"#), "{}", r.text());
    let r = w.delete(&format!("{NS}/d"), Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.json();
    assert_eq!(s["status"], "Success");
    assert_eq!(
        s["details"],
        json!({"name": "d", "group": "wardle.example.com", "kind": "flunders", "uid": o["metadata"]["uid"]})
    );
    assert_eq!(
        w.delete(&format!("{NS}/d"), None).await.status,
        StatusCode::NOT_FOUND
    );
    // 50: deletecollection with a selector.
    for (n, l) in [("c1", "x"), ("c2", "x"), ("c3", "y")] {
        create_ok(&w, NS, &labelled(n, json!({"a": l}))).await;
    }
    let r = w.delete(&format!("{NS}?labelSelector=a%3Dx"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(names(&r.json()), vec!["c1", "c2"]);
    assert_eq!(names(&w.get(NS).await.json()), vec!["c3"]);
}

async fn selectors_and_pages(engine: Engine) {
    let w = Wardle::start(engine).await;
    for (n, l) in [
        ("a", json!({"sample-label": "true", "size": "5"})),
        ("b", json!({"env": "a", "size": "2"})),
        ("c", json!({})),
    ] {
        create_ok(&w, NS, &labelled(n, l)).await;
    }
    // 31: label selectors.
    let q = |s: &str| format!("{NS}?labelSelector={}", percent(s));
    assert_eq!(
        names(&w.get(&q("sample-label=true")).await.json()),
        vec!["a"]
    );
    assert_eq!(
        names(&w.get(&q("sample-label!=true")).await.json()),
        vec!["b", "c"]
    );
    assert_eq!(
        names(&w.get(&q("!sample-label")).await.json()),
        vec!["b", "c"]
    );
    assert_eq!(names(&w.get(&q("env in (a,b)")).await.json()), vec!["b"]);
    assert_eq!(
        names(&w.get(&q("env notin (a)")).await.json()),
        vec!["a", "c"]
    );
    assert_eq!(names(&w.get(&q("size>3")).await.json()), vec!["a"]);
    assert_eq!(w.get(&q("a in (b")).await.status, StatusCode::BAD_REQUEST);
    // 32: field selectors.
    assert_eq!(
        names(
            &w.get(&format!("{NS}?fieldSelector=metadata.name%3Db"))
                .await
                .json()
        ),
        vec!["b"]
    );
    let r = w
        .get(&format!("{NS}?fieldSelector=spec.reference%3Dx"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["message"],
        r#""spec.reference" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
    create_ok(
        &w,
        "/apis/wardle.example.com/v1alpha1/namespaces/other/flunders",
        &flunder("o"),
    )
    .await;
    let all = w.get("/apis/wardle.example.com/v1alpha1/flunders?fieldSelector=metadata.namespace!%3Ddefault").await.json();
    assert_eq!(names(&all), vec!["o"]);
    // 33: pagination pinned to the first page's RV.
    let p1 = w.get(&format!("{NS}?limit=1")).await.json();
    assert_eq!(names(&p1), vec!["a"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 2);
    let rv = p1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // A change after page 1 must not show on page 2.
    w.delete(&format!("{NS}/b"), None).await;
    create_ok(&w, NS, &flunder("bb")).await;
    let p2 = w
        .get(&format!("{NS}?limit=1&continue={token}"))
        .await
        .json();
    assert_eq!(
        names(&p2),
        vec!["b"],
        "page 2 is read at the first page's RV"
    );
    assert_eq!(p2["metadata"]["resourceVersion"], rv.as_str());
    let p3 = w
        .get(&format!(
            "{NS}?limit=5&continue={}",
            p2["metadata"]["continue"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(names(&p3), vec!["c"]);
    assert!(p3["metadata"].get("continue").is_none());
    // 34, 36, 37: bad tokens and RV rules.
    let r = w.get(&format!("{NS}?continue=garbage")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid continue token")
    );
    assert_eq!(
        w.get(&format!("{NS}?continue={token}&resourceVersion=5"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        w.get(&format!("{NS}?resourceVersionMatch=Exact"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = w
        .get(&format!(
            "{NS}?resourceVersion=999999&resourceVersionMatch=NotOlderThan"
        ))
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Timeout: Too large resource version: 999999")
    );
    assert_eq!(
        w.get(&format!("{NS}?resourceVersion=abc")).await.status,
        StatusCode::BAD_REQUEST
    );
    // Exact list at an old RV shows the old state.
    let old = w
        .get(&format!(
            "{NS}?resourceVersion={rv}&resourceVersionMatch=Exact"
        ))
        .await
        .json();
    assert_eq!(names(&old), vec!["a", "b", "c"]);
    // 35: once history before the token's RV is compacted, continuing is 410 with a fresh token.
    let head: i64 = w.get(NS).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.sql(&format!("UPDATE storage_meta SET compacted_rv = {head}"))
        .await;
    let r = w.get(&format!("{NS}?limit=1&continue={token}")).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text());
    let s = r.json();
    assert_eq!(s["reason"], "Expired");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old")
    );
    let fresh = s["metadata"]["continue"]
        .as_str()
        .expect("a fresh continue token")
        .to_string();
    let rest = w.get(&format!("{NS}?continue={fresh}")).await.json();
    assert_eq!(
        names(&rest),
        vec!["bb", "c"],
        "the fresh token continues after the last key, at the latest state"
    );
    let r = w
        .get(&format!(
            "{NS}?resourceVersion={rv}&resourceVersionMatch=Exact"
        ))
        .await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(
        r.json()["message"],
        "The resourceVersion for the provided list is too old."
    );
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn negotiation_and_tables(engine: Engine) {
    let w = Wardle::start(engine).await;
    create_ok(
        &w,
        NS,
        &json!({"metadata": {"name": "t"}, "spec": {"reference": "r"}}),
    )
    .await;
    // 25-27: Table, includeObject, PartialObjectMetadata.
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let t = w
        .request(Method::GET, NS, &[("accept", table_accept)], None)
        .await
        .json();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        vec!["Name", "Reference Type", "Reference", "Age", "Managers"]
    );
    assert_eq!(t["rows"][0]["cells"][0], "t");
    assert_eq!(t["rows"][0]["cells"][1], "Flunder");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let t = w
        .request(
            Method::GET,
            &format!("{NS}?includeObject=Object"),
            &[("accept", table_accept)],
            None,
        )
        .await
        .json();
    assert_eq!(t["rows"][0]["object"]["kind"], "Flunder");
    let r = w
        .request(
            Method::GET,
            &format!("{NS}?includeObject=Bogus"),
            &[("accept", table_accept)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let p = w
        .request(
            Method::GET,
            &format!("{NS}/t"),
            &[(
                "accept",
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            )],
            None,
        )
        .await
        .json();
    assert_eq!(p["kind"], "PartialObjectMetadata");
    let p = w.request(Method::GET, NS, &[("accept", "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")], None).await.json();
    assert_eq!(p["kind"], "PartialObjectMetadataList");
    // 28-29: protobuf falls back to JSON; HTML only is 406.
    let r = w
        .request(
            Method::GET,
            NS,
            &[(
                "accept",
                "application/vnd.kubernetes.protobuf, application/json",
            )],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["kind"], "FlunderList");
    let r = w
        .request(Method::GET, NS, &[("accept", "text/html")], None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    // YAML output.
    let r = w
        .request(
            Method::GET,
            &format!("{NS}/t"),
            &[("accept", "application/yaml")],
            None,
        )
        .await;
    assert!(r.text().contains("kind: Flunder"), "{}", r.text());
    // Fischer table column.
    create_ok(
        &w,
        FISCHERS,
        &json!({"metadata": {"name": "f"}, "disallowedFlunders": ["x", "y"]}),
    )
    .await;
    let t = w
        .request(Method::GET, FISCHERS, &[("accept", table_accept)], None)
        .await
        .json();
    assert_eq!(t["rows"][0]["cells"][1], "x,y");
}

async fn ban_flunder(engine: Engine) {
    let w = Wardle::start(engine).await;
    create_ok(
        &w,
        FISCHERS,
        &json!({"metadata": {"name": "f"}, "disallowedFlunders": ["bad"]}),
    )
    .await;
    // 71: banned in either version; generateName is never banned.
    for path in [NS, NS_BETA] {
        let r = w.post(path, &json!({"metadata": {"name": "bad"}})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(
            r.json()["message"],
            r#"flunders.wardle.example.com "bad" is forbidden: this name may not be used, please change the resource name"#
        );
    }
    create_ok(&w, NS, &flunder("good")).await;
    create_ok(&w, NS, &json!({"metadata": {"generateName": "bad"}})).await;
}

async fn discovery_and_health(engine: Engine) {
    let w = Wardle::start(engine).await;
    // 1-7.
    let apis = w
        .request(
            Method::GET,
            "/apis",
            &[("accept", "application/json")],
            None,
        )
        .await
        .json();
    assert_eq!(apis["kind"], "APIGroupList");
    assert_eq!(apis["groups"][0]["preferredVersion"]["version"], "v1beta1");
    let agg_accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = w
        .request(Method::GET, "/apis", &[("accept", agg_accept)], None)
        .await;
    assert_eq!(
        r.header("content-type").unwrap(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let etag = r.header("etag").expect("etag");
    assert_eq!(r.json()["kind"], "APIGroupDiscoveryList");
    let r = w
        .request(
            Method::GET,
            "/apis",
            &[("accept", agg_accept), ("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let v1 = w.get("/apis/wardle.example.com/v1alpha1").await.json();
    let hashes: Vec<(&str, &str)> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["storageVersionHash"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hashes,
        vec![("fischers", "YS5qRiSxzNM="), ("flunders", "UHqNx5H3K7A=")]
    );
    let g = w.get("/apis/wardle.example.com").await.json();
    assert_eq!(g["preferredVersion"]["version"], "v1beta1");
    // 8: unknown resource.
    let r = w.get("/apis/wardle.example.com/v1alpha1/foos").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json()["message"],
        "the server could not find the requested resource"
    );
    assert_eq!(
        w.get("/apis/wardle.example.com/v1beta1/fischers")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // 10-12: OpenAPI.
    let v2 = w.get("/openapi/v2").await.json();
    assert!(v2["definitions"]["io.k8s.sample-apiserver.pkg.apis.wardle.v1alpha1.Flunder"]["x-kubernetes-group-version-kind"].is_array());
    let v3 = w.get("/openapi/v3").await.json();
    let url = v3["paths"]["apis/wardle.example.com/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.contains("?hash="));
    let r = w.get(&url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    let stale = w
        .get("/openapi/v3/apis/wardle.example.com/v1alpha1?hash=0000")
        .await;
    assert_eq!(stale.status, StatusCode::MOVED_PERMANENTLY);
    // 14-18.
    let v = w.get("/version").await.json();
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("2"))
    );
    for p in ["/healthz", "/livez", "/readyz"] {
        let r = w.anonymous(Method::GET, p).await;
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"), "{p}");
    }
    let verbose = w.get("/readyz?verbose").await.text();
    assert!(
        verbose.contains("[+]ping ok")
            && verbose.contains("[+]storage ok")
            && verbose.ends_with("readyz check passed\n"),
        "{verbose}"
    );
    assert!(
        w.get("/readyz?exclude=ping&verbose")
            .await
            .text()
            .contains("[+]ping excluded: ok")
    );
    // 19: anonymous users get 403s with Go's messages.
    let r = w.anonymous(Method::GET, "/metrics").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"forbidden: User "system:anonymous" cannot get path "/metrics""#
    );
    let r = w.anonymous(Method::GET, NS).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"flunders.wardle.example.com is forbidden: User "system:anonymous" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "default""#
    );
    assert_eq!(w.get("/metrics").await.status, StatusCode::OK);
    // Unknown non-API paths list the served paths.
    let r = w.get("/api").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["paths"].is_array());
}

async fn concurrent_creates_share_transactions(engine: Engine) {
    let w = Wardle::start(engine).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = w.client();
        tasks.push(tokio::spawn(async move {
            let body = serde_json::to_vec(&json!({"metadata": {"name": format!("c{i}")}})).unwrap();
            let req = http::Request::post(NS)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(body))
                .unwrap();
            client.send(req).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let list = w.get(NS).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 64);
    // Gapless: 64 creates on a fresh store (at 1) → RVs 2..=65, the list RV is 65.
    assert_eq!(list["metadata"]["resourceVersion"], "65");
    let mut rvs: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    rvs.sort();
    assert_eq!(rvs, (2..=65).collect::<Vec<_>>());
    let metrics = w.get("/metrics").await.text();
    let batches: u64 = metric(&metrics, "wardle_storage_batches_total");
    let max: u64 = metric(&metrics, "wardle_storage_batch_size_max");
    eprintln!(
        "{engine:?}: 64 concurrent creates committed in {batches} transactions (largest batch {max})"
    );
    assert!(
        batches < 64 && max > 1,
        "concurrent creates should share transactions:\n{metrics}"
    );
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

engine_tests!(
    create_and_read,
    validation,
    field_validation,
    update_patch_delete,
    selectors_and_pages,
    negotiation_and_tables,
    ban_flunder,
    discovery_and_health,
    concurrent_creates_share_transactions,
);
