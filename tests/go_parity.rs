//! Regression tests for differences a differential run against the Go sample-apiserver found
//! (issue 10): each test pins Go's answer for a kind of request, on SQLite and on Postgres.

mod common;

use common::Engine;
use common::server::Wardle;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const NS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";
const NS_BETA: &str = "/apis/wardle.example.com/v1beta1/namespaces/default/flunders";
const FISCHERS: &str = "/apis/wardle.example.com/v1alpha1/fischers";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

async fn created(w: &Wardle, path: &str, obj: &Value) -> Value {
    let r = w.post(path, obj).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()
}

/// Whether a `Warning: 299 - "..."` header carries `text`.
fn warned(warnings: &[String], text: &str) -> bool {
    let want = format!("299 - \"{}\"", text.replace('"', "\\\""));
    warnings.contains(&want)
}

/// Every `"f:bogus"`/`"bogus"` key anywhere in a value.
fn mentions_bogus(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "bogus" || k == "f:bogus" || mentions_bogus(v)),
        Value::Array(a) => a.iter().any(mentions_bogus),
        _ => false,
    }
}

/// Unknown fields are dropped wherever they are (Go's typed decoding), with a warning under
/// Warn, silently under Ignore, and a 400 under Strict; they never reach storage or managedFields.
async fn unknown_fields_are_pruned(engine: Engine) {
    let w = Wardle::start(engine).await;
    let owner = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "6d4f1b9e-0000-4000-8000-000000000001", "bogus": 1});
    let body = json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder", "bogus": 1,
        "metadata": {"name": "u1", "bogus": {"x": 1}, "ownerReferences": [owner]},
        "spec": {"bogus": "x", "referenceType": "Flunder", "flunderReference": "f"}, "status": {"bogus": true}});
    let r = w.post(NS_BETA, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let warnings = r.warnings();
    for path in [
        "bogus",
        "metadata.bogus",
        "metadata.ownerReferences[0].bogus",
        "spec.bogus",
        "status.bogus",
    ] {
        assert!(
            warned(&warnings, &format!("unknown field {path:?}")),
            "{warnings:?}"
        );
    }
    assert!(!mentions_bogus(&r.json()), "{}", r.text());
    let got = w.get(&format!("{NS_BETA}/u1")).await.json();
    assert!(!mentions_bogus(&got), "{got}");
    assert_eq!(got["spec"]["flunderReference"], "f");
    assert_eq!(got["metadata"]["ownerReferences"][0]["name"], "o");

    // Ignore: dropped without a word; a cluster-scoped kind in another version alike.
    let fischer = json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
        "metadata": {"name": "fi", "bogus": 1}, "disallowedFlunders": ["a"], "bogus": [1]});
    let r = w
        .post(&format!("{FISCHERS}?fieldValidation=Ignore"), &fischer)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(
        !r.warnings().iter().any(|w| w.contains("unknown field")),
        "{:?}",
        r.warnings()
    );
    assert!(!mentions_bogus(
        &w.get(&format!("{FISCHERS}/fi")).await.json()
    ));

    // Strict: Go's 400.
    let r = w
        .post(
            &format!("{NS}?fieldValidation=Strict"),
            &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": "u2"}, "bogus": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["reason"], "BadRequest");
    assert_eq!(
        r.json()["message"],
        r#"Flunder in version "v1alpha1" cannot be handled as a Flunder: strict decoding error: unknown field "bogus""#
    );

    // PUT and merge PATCH drop them too.
    let mut put = got.clone();
    put["spec"]["bogus"] = json!(1);
    put["metadata"]["labels"] = json!({"a": "b", "keep": "kept"});
    let r = w.put(&format!("{NS_BETA}/u1"), &put).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(warned(&r.warnings(), r#"unknown field "spec.bogus""#));
    assert_eq!(r.json()["metadata"]["labels"]["keep"], "kept");
    assert!(r.json()["spec"].get("bogus").is_none());
    let r = w
        .patch(
            &format!("{NS_BETA}/u1"),
            MERGE,
            r#"{"spec":{"bogus":2,"flunderReference":"g"},"metadata":{"ownerReferences":null,"bogus":1}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let patched = r.json();
    assert_eq!(patched["spec"]["flunderReference"], "g");
    assert!(patched["spec"].get("bogus").is_none() && patched["metadata"].get("bogus").is_none());
    let mf = &patched["metadata"]["managedFields"];
    assert!(mf.as_array().is_some_and(|a| !a.is_empty()));
    assert!(!mentions_bogus(mf), "{mf}");
}

/// Strict-decoding warnings belong to the request, not to its success (Go's decoder adds them
/// to the request context): a create, update or patch under Warn that then fails (already
/// exists, a stale resourceVersion, invalid) still says which fields it dropped.
async fn unknown_field_warnings_outlive_failures(engine: Engine) {
    let w = Wardle::start(engine).await;
    let body = json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
        "metadata": {"name": "wf"}, "spec": {"referenceType": "Flunder", "flunderReference": "x"}});
    let live = created(&w, NS_BETA, &body).await;
    let stale = live["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut update = live.clone();
    update["metadata"]["labels"] = json!({"a": "b"});
    let r = w.put(&format!("{NS_BETA}/wf"), &update).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let mut again = body.clone();
    again["bogus"] = json!(1);
    let r = w
        .post(&format!("{NS_BETA}?fieldValidation=Warn"), &again)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(
        warned(&r.warnings(), r#"unknown field "bogus""#),
        "{:?}",
        r.warnings()
    );

    let mut put = live.clone();
    put["spec"]["bogus"] = json!(1);
    let r = w
        .put(&format!("{NS_BETA}/wf?fieldValidation=Warn"), &put)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(
        warned(&r.warnings(), r#"unknown field "spec.bogus""#),
        "{:?}",
        r.warnings()
    );

    // A merge patch with a stale resourceVersion (409), and one that is invalid after decoding
    // (a Fischer reference with a Flunder name set, 422): both still warned.
    for (patch, code) in [
        (
            json!({"metadata": {"resourceVersion": stale}, "spec": {"bogus": 1}}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"spec": {"referenceType": "Fischer", "flunderReference": "x", "fischerReference": "y", "bogus": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = w
            .patch(&format!("{NS_BETA}/wf"), MERGE, &patch.to_string())
            .await;
        assert_eq!(r.status, code, "{}", r.text());
        assert!(
            warned(&r.warnings(), r#"unknown field "spec.bogus""#),
            "{:?}",
            r.warnings()
        );
    }
}

/// A create naming a resourceVersion is refused (Go: 500 from storage, its dry run succeeds;
/// wardle: 422 on the field, dry run alike, README `create-with-resource-version`); "0" is no
/// resourceVersion (Go's storage check is for non-zero numbers).
async fn create_refuses_a_resource_version(engine: Engine) {
    let w = Wardle::start(engine).await;
    let with_rv = |name: &str, rv: &str| {
        json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
            "metadata": {"name": name, "resourceVersion": rv}, "spec": {}})
    };
    for path in [NS_BETA.to_string(), format!("{NS_BETA}?dryRun=All")] {
        let r = w.post(&path, &with_rv("rv1", "5")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
        let s = r.json();
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(
            s["details"]["causes"][0]["field"],
            "metadata.resourceVersion"
        );
        assert_eq!(
            s["message"],
            r#"Flunder.wardle.example.com "rv1" is invalid: metadata.resourceVersion: Invalid value: "5": resourceVersion should not be set on objects to be created"#
        );
    }
    assert_eq!(
        w.get(&format!("{NS_BETA}/rv1")).await.status,
        StatusCode::NOT_FOUND
    );
    let made = created(&w, NS_BETA, &with_rv("rv0", "0")).await;
    assert_ne!(made["metadata"]["resourceVersion"], "0");
}

/// PATCH errors as Go words them: go-restful's 415 (empty details) for a body type the PATCH
/// routes do not consume, missing Content-Type included; a JSON patch whose operation is unknown
/// or incomplete fails when applied (422 Invalid); truncated JSON is encoding/json's "unexpected
/// end of JSON input" (400).
async fn patch_errors(engine: Engine) {
    let w = Wardle::start(engine).await;
    let body = json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
        "metadata": {"name": "pe"}, "spec": {}});
    created(&w, NS_BETA, &body).await;
    let path = format!("{NS_BETA}/pe");
    for headers in [
        &[("content-type", "application/json")][..],
        &[("content-type", "text/plain; charset=utf-8")][..],
        &[][..],
    ] {
        let r = w
            .request(Method::PATCH, &path, headers, Some(b"{}".to_vec()))
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
        let s = r.json();
        assert_eq!(s["message"], "415: Unsupported Media Type");
        assert_eq!(s["reason"], "UnsupportedMediaType");
        assert_eq!(s["details"], json!({}));
    }
    for ops in [
        r#"[{"op":"frobnicate","path":"/spec"}]"#,
        r#"[{"op":"add","value":1}]"#,
    ] {
        let r = w.patch(&path, "application/json-patch+json", ops).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
        assert_eq!(r.json()["reason"], "Invalid");
        assert_eq!(
            r.json()["message"],
            "the server rejected our request due to an error in our request"
        );
    }
    for (ct, truncated) in [
        ("application/json-patch+json", r#"[{"op":"#),
        (MERGE, r#"{"spec":"#),
    ] {
        let r = w.patch(&path, ct, truncated).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert_eq!(
            r.json()["message"],
            "error decoding patch: unexpected end of JSON input"
        );
    }
}

/// An apply that changes nothing records a manager new to the object without a time (Go sets
/// the time only when the object changes), and that entry sorts first; the stored object says
/// the same afterwards.
async fn noop_apply_records_no_time(engine: Engine) {
    let w = Wardle::start(engine).await;
    let config = "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: sa\n  labels:\n    shared: x\n";
    let r = w
        .patch(&format!("{NS_BETA}/sa?fieldManager=alice"), APPLY, config)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = w
        .patch(&format!("{NS_BETA}/sa?fieldManager=carol"), APPLY, config)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for obj in [r.json(), w.get(&format!("{NS_BETA}/sa")).await.json()] {
        let mf = &obj["metadata"]["managedFields"];
        assert_eq!(mf[0]["manager"], "carol", "{mf}");
        assert!(mf[0].get("time").is_none(), "{mf}");
        assert_eq!(mf[1]["manager"], "alice", "{mf}");
        assert!(mf[1]["time"].is_string(), "{mf}");
        assert_eq!(mf[0]["fieldsV1"], mf[1]["fieldsV1"], "{mf}");
    }
}

/// PUT: missing object → 404 even without resourceVersion; another uid → 409 (a storage
/// precondition); creationTimestamp/generation from the body are ignored; `managedFields: []`
/// clears managed fields; merge PATCH of the uid → 422 (immutable).
async fn update_rules(engine: Engine) {
    let w = Wardle::start(engine).await;
    let r = w
        .put(
            &format!("{NS}/missing"),
            &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": "missing"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"flunders.wardle.example.com "missing" not found"#
    );

    let o = created(
        &w,
        NS,
        &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
            "metadata": {"name": "p", "generation": 3, "uid": "ignored", "selfLink": "/x"}, "spec": {"reference": "r"}}),
    )
    .await;
    assert_eq!(
        o["metadata"]["generation"], 3,
        "Go keeps a create's generation"
    );
    assert!(o["metadata"].get("selfLink").is_none());
    assert_ne!(o["metadata"]["uid"], "ignored");
    let uid = o["metadata"]["uid"].as_str().unwrap().to_string();
    let created_at = o["metadata"]["creationTimestamp"].clone();

    let mut other_uid = o.clone();
    other_uid["metadata"]["uid"] = json!("11111111-2222-4333-8444-555555555555");
    let r = w.put(&format!("{NS}/p"), &other_uid).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.json()["reason"], "Conflict");
    assert_eq!(
        r.json()["message"],
        format!(
            "Operation cannot be fulfilled on flunders.wardle.example.com \"p\": StorageError: invalid object, Code: 4, Key: /registry/wardle.example.com/wardle.example.com/flunders/default/p, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: 11111111-2222-4333-8444-555555555555, UID in object meta: {uid}"
        )
    );
    // Even without a resourceVersion, the uid precondition comes first.
    other_uid["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let r = w.put(&format!("{NS}/p"), &other_uid).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());

    let r = w
        .patch(
            &format!("{NS}/p"),
            MERGE,
            r#"{"metadata":{"uid":"11111111-2222-4333-8444-555555555555"}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"Flunder.wardle.example.com "p" is invalid: metadata.uid: Invalid value: "11111111-2222-4333-8444-555555555555": field is immutable"#
    );

    // System-owned fields in the body: reset silently (restoring from a backup works).
    let mut restored = o.clone();
    restored["metadata"]["creationTimestamp"] = json!("2001-02-03T04:05:06Z");
    restored["metadata"]["generation"] = json!(7);
    restored["metadata"]["labels"] = json!({"restored": "yes"});
    let r = w.put(&format!("{NS}/p"), &restored).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let after = r.json();
    assert_eq!(after["metadata"]["creationTimestamp"], created_at);
    assert_eq!(
        after["metadata"]["generation"], 3,
        "updates keep the stored generation"
    );
    assert_eq!(after["metadata"]["labels"]["restored"], "yes");
    assert_eq!(after["metadata"]["uid"], uid.as_str());
    // A deletionTimestamp on an object not being deleted is refused (immutable).
    let mut deleting = after.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
    let r = w.put(&format!("{NS}/p"), &deleting).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());

    // managedFields: [] clears them, with a new resourceVersion; later updates track nothing.
    let mut reset = after.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let r = w.put(&format!("{NS}/p"), &reset).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cleared = r.json();
    assert!(
        cleared["metadata"].get("managedFields").is_none(),
        "{cleared}"
    );
    assert_ne!(
        cleared["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    let got = w.get(&format!("{NS}/p")).await.json();
    assert!(got["metadata"].get("managedFields").is_none(), "{got}");
    let r = w
        .patch(
            &format!("{NS}/p"),
            MERGE,
            r#"{"metadata":{"labels":{"b":"c"}}}"#,
        )
        .await;
    assert!(r.json()["metadata"].get("managedFields").is_none());
}

/// Removing the last finalizer of a terminating object answers the object as updated.
async fn finalizer_removal_answers_the_update(engine: Engine) {
    let w = Wardle::start(engine).await;
    for (name, via_patch) in [("fin-put", false), ("fin-patch", true)] {
        created(
            &w,
            NS,
            &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
                "metadata": {"name": name, "finalizers": ["example.com/hold"]}}),
        )
        .await;
        let r = w.delete(&format!("{NS}/{name}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let pending = r.json();
        assert!(pending["metadata"]["deletionTimestamp"].is_string());
        let r = if via_patch {
            w.patch(
                &format!("{NS}/{name}"),
                MERGE,
                r#"{"metadata":{"finalizers":null,"labels":{"last":"words"}}}"#,
            )
            .await
        } else {
            let mut put = pending.clone();
            put["metadata"]["finalizers"] = json!([]);
            put["metadata"]["labels"] = json!({"last": "words"});
            w.put(&format!("{NS}/{name}"), &put).await
        };
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let last = r.json();
        assert_eq!(last["metadata"]["labels"]["last"], "words", "{last}");
        assert!(last["metadata"].get("finalizers").is_none(), "{last}");
        assert_eq!(
            last["metadata"]["deletionTimestamp"],
            pending["metadata"]["deletionTimestamp"]
        );
        assert_eq!(
            last["metadata"]["resourceVersion"],
            pending["metadata"]["resourceVersion"]
        );
        assert_eq!(
            w.get(&format!("{NS}/{name}")).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

/// Server-side apply checks the configuration's group, version and kind first.
async fn apply_needs_the_endpoint_type(engine: Engine) {
    let w = Wardle::start(engine).await;
    for (body, gvk) in [
        (
            "apiVersion: wardle.example.com/v1alpha1\nmetadata:\n  name: a\n",
            "wardle.example.com/v1alpha1, Kind=",
        ),
        ("kind: Flunder\nmetadata:\n  name: a\n", "/, Kind=Flunder"),
        (
            "apiVersion: v1\nkind: Flunder\nmetadata:\n  name: a\n",
            "/v1, Kind=Flunder",
        ),
        (
            "apiVersion: wardle.example.com/v1alpha1\nkind: Fischer\nmetadata:\n  name: a\n",
            "wardle.example.com/v1alpha1, Kind=Fischer",
        ),
    ] {
        let r = w
            .patch(&format!("{NS}/a?fieldManager=m"), APPLY, body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert_eq!(r.json()["message"], format!("invalid object type: {gvk}"));
    }
    assert_eq!(
        w.get(&format!("{NS}/a")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Paths: unserved verbs are 405, unknown paths 404, names are percent-decoded, and a name that
/// cannot be a path segment is a 400.
async fn routes_and_names(engine: Engine) {
    let w = Wardle::start(engine).await;
    let o = json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": "x"}});
    created(&w, NS, &o).await;
    let not_allowed = [
        (Method::POST, format!("{NS}/x")),
        (Method::PUT, NS.to_string()),
        (Method::PATCH, NS.to_string()),
        (Method::POST, format!("{FISCHERS}/f")),
        (Method::PUT, FISCHERS.to_string()),
        (
            Method::DELETE,
            "/apis/wardle.example.com/v1alpha1/flunders".into(),
        ),
        (
            Method::POST,
            "/apis/wardle.example.com/v1alpha1/flunders".into(),
        ),
        (
            Method::POST,
            "/apis/wardle.example.com/v1alpha1/watch/namespaces/default/flunders".to_string(),
        ),
    ];
    for (method, path) in not_allowed {
        let r = w
            .request(
                method.clone(),
                &path,
                &[("content-type", "application/json")],
                Some(serde_json::to_vec(&o).unwrap()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            r.text()
        );
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server does not allow this method on the requested resource",
                "reason": "MethodNotAllowed", "details": {}, "code": 405})
        );
    }
    let r = w.get("/apis/wardle.example.com/v1alpha1/flunders/x").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    // Non-resource paths: go-restful's (version, discovery) are GET-only, the rest any method.
    for (method, path, code) in [
        (Method::POST, "/version", StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, "/apis", StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::DELETE,
            "/apis/wardle.example.com/v1beta1",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::POST, "/healthz", StatusCode::OK),
        (Method::POST, "/openapi/v2", StatusCode::OK),
    ] {
        let r = w.request(method.clone(), path, &[], None).await;
        assert_eq!(r.status, code, "{method} {path}: {}", r.text());
    }

    // Names that need escaping in a URL, through every verb.
    for (name, escaped) in [("a b", "a%20b"), ("grüße", "gr%C3%BC%C3%9Fe")] {
        let body = json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": name}});
        created(&w, NS, &body).await;
        let got = w.get(&format!("{NS}/{escaped}")).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
        assert_eq!(got.json()["metadata"]["name"], name);
        let mut put = got.json();
        put["metadata"]["labels"] = json!({"put": "1"});
        let r = w.put(&format!("{NS}/{escaped}"), &put).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let r = w
            .patch(
                &format!("{NS}/{escaped}"),
                MERGE,
                r#"{"metadata":{"labels":{"patched":"1"}}}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let r = w
            .get(&format!("{NS}?fieldSelector=metadata.name%3D{escaped}"))
            .await;
        assert_eq!(r.json()["items"][0]["metadata"]["labels"]["patched"], "1");
        let r = w.delete(&format!("{NS}/{escaped}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["details"]["name"], name);
    }
    let r = w.get(&format!("{NS}/a%25b")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"Name parameter invalid: "a%b": may not contain '%'"#
    );
    // An escaped slash separates segments, as in Go: a subresource nobody serves.
    let r = w.get(&format!("{NS}/x%2Fy")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    // A decoded U+0000 names nothing that can exist (as on etcd): 404 for every verb on the
    // object, an empty list in such a namespace — never the database's 503 for a NUL parameter.
    let merge = [("content-type", "application/merge-patch+json")];
    for (method, headers, body) in [
        (Method::GET, &[][..], None),
        (Method::PATCH, &merge[..], Some(b"{}".to_vec())),
        (Method::DELETE, &[][..], None),
    ] {
        let r = w
            .request(method.clone(), &format!("{NS}/a%00b"), headers, body)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.text());
    }
    let r = w
        .get("/apis/wardle.example.com/v1alpha1/namespaces/a%00b/flunders?resourceVersion=")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["items"], json!([]));
}

/// Errors come in the negotiated format; GET at a future resourceVersion is a 504; /apis with
/// only the removed aggregated-discovery v2beta1 acceptable is a 406.
async fn negotiated_errors_and_reads(engine: Engine) {
    let w = Wardle::start(engine).await;
    // A fresh store's LIST answers a real resourceVersion (never "0", which means "any" to a
    // watch); a watch from it sees the first write.
    let list = w.get(NS).await.json();
    let fresh = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fresh.parse::<u64>().unwrap() >= 1, "{list}");
    let mut s = w
        .watch(&format!("{NS}?watch=true&resourceVersion={fresh}"), None)
        .await;
    created(
        &w,
        NS,
        &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": "first"}}),
    )
    .await;
    let first = s.take(1).await;
    assert_eq!(first[0]["type"], "ADDED");
    assert_eq!(first[0]["object"]["metadata"]["name"], "first");
    let yaml = [("accept", "application/yaml")];
    let status_of = |body: &[u8]| -> Value { serde_saphyr::from_slice(body).expect("YAML Status") };
    for (method, path, ct) in [
        (Method::GET, format!("{NS}/nope"), "application/json"),
        (
            Method::GET,
            "/apis/wardle.example.com/v1alpha1/bars".to_string(),
            "application/json",
        ),
        (Method::POST, format!("{NS}/nope"), "application/json"),
        (Method::POST, NS.to_string(), "text/plain"),
    ] {
        let mut headers = yaml.to_vec();
        headers.push(("content-type", ct));
        let r = w
            .request(method.clone(), &path, &headers, Some(b"{}".to_vec()))
            .await;
        assert!(r.status.is_client_error(), "{method} {path}: {}", r.text());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/yaml")
        );
        let s = status_of(&r.body);
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], r.status.as_u16());
    }
    // Not acceptable at all: Go's raw JSON Status.
    let r = w
        .request(
            Method::GET,
            &format!("{NS}/nope"),
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json()["reason"], "NotAcceptable");

    let o = created(
        &w,
        NS,
        &json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder", "metadata": {"name": "g"}}),
    )
    .await;
    let rv: u64 = o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // At the create's resourceVersion (waits for the cache), then at any (the cache as it is).
    for at in [rv.to_string(), "0".to_string()] {
        let r = w.get(&format!("{NS}/g?resourceVersion={at}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let future = rv + 1000;
    let r = w.get(&format!("{NS}/g?resourceVersion={future}")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    let s = r.json();
    assert_eq!(s["reason"], "Timeout");
    assert!(
        s["message"].as_str().unwrap().starts_with(&format!(
            "Timeout: Too large resource version: {future}, current: "
        )),
        "{s}"
    );
    let r = w.get(&format!("{NS}/g?resourceVersion=abc")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    let r = w
        .request(Method::GET, "/apis", &[("accept", beta)], None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text());
    assert_eq!(r.json()["kind"], "Status");
    assert_eq!(
        r.json()["message"],
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    let both = format!("{beta},application/json");
    let r = w
        .request(Method::GET, "/apis", &[("accept", &both)], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["kind"], "APIGroupList");
}

/// `kubectl explain --output plaintext-openapiv2` reads /openapi/v2 as gnostic protobuf.
async fn kubectl_explain_reads_protobuf_openapi_v2(engine: Engine) {
    let w = Wardle::start(engine).await;
    let out = w.kubectl_ok(&[
        "explain",
        "flunders.spec",
        "--api-version=wardle.example.com/v1alpha1",
        "--output",
        "plaintext-openapiv2",
    ]);
    assert!(out.contains("KIND:") && out.contains("Flunder"), "{out}");
    assert!(out.contains("reference"), "{out}");
    let out = w.kubectl_ok(&["explain", "fischers", "--output", "plaintext-openapiv2"]);
    assert!(out.contains("disallowedFlunders"), "{out}");
}

/// An update must name the stored resourceVersion whichever way it is written: a patch that
/// removes it (JSON patch remove, merge null, SMP `$patch: replace` / `$retainKeys`), a PUT or
/// apply naming "", "0" or null, is Go's 422 "must be specified for an update" and changes
/// nothing (Flunder and Fischer refuse unconditional updates); a stale one is a 409.
async fn updates_need_a_resource_version(engine: Engine) {
    let w = Wardle::start(engine).await;
    let body = json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
        "metadata": {"name": "rv", "labels": {"a": "1"}}, "spec": {}});
    let rv = created(&w, NS_BETA, &body).await["metadata"]["resourceVersion"].clone();
    let fischer = json!({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
        "metadata": {"name": "rv-fi"}, "disallowedFlunders": ["a"]});
    created(&w, FISCHERS, &fischer).await;
    let path = format!("{NS_BETA}/rv");
    let fi_path = format!("{FISCHERS}/rv-fi");
    let must_be_specified = |r: &common::server::Response, what: &str| {
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            r.text()
        );
        let s = r.json();
        assert_eq!(
            s["details"]["causes"][0]["field"], "metadata.resourceVersion",
            "{what}"
        );
        assert_eq!(
            s["details"]["causes"][0]["message"],
            "Invalid value: 0: must be specified for an update",
            "{what}"
        );
    };
    let json_patch = "application/json-patch+json";
    let smp = "application/strategic-merge-patch+json";
    for (target, ct, patch) in [
        (
            &path,
            json_patch,
            r#"[{"op":"remove","path":"/metadata/resourceVersion"},{"op":"add","path":"/metadata/labels","value":{"z":"1"}}]"#,
        ),
        (
            &path,
            json_patch,
            r#"[{"op":"replace","path":"/metadata/resourceVersion","value":"0"}]"#,
        ),
        (
            &path,
            MERGE,
            r#"{"metadata":{"resourceVersion":null,"labels":{"z":"1"}}}"#,
        ),
        (
            &path,
            smp,
            r#"{"$patch":"replace","metadata":{"name":"rv"}}"#,
        ),
        (&path, smp, r#"{"metadata":{"$retainKeys":["name"]}}"#),
        (
            &fi_path,
            MERGE,
            r#"{"metadata":{"resourceVersion":""},"disallowedFlunders":[]}"#,
        ),
    ] {
        let r = w.patch(target, ct, patch).await;
        must_be_specified(&r, patch);
    }
    let r = w
        .put(
            &path,
            &json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
            "metadata": {"name": "rv", "resourceVersion": "0"}}),
        )
        .await;
    must_be_specified(&r, "PUT 0");
    for rv_value in [json!(""), json!("0"), Value::Null] {
        let config = json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
            "metadata": {"name": "rv", "resourceVersion": rv_value}});
        let r = w
            .patch(
                &format!("{path}?fieldManager=pt"),
                APPLY,
                &config.to_string(),
            )
            .await;
        must_be_specified(&r, &format!("apply {rv_value}"));
    }
    let r = w
        .patch(
            &path,
            MERGE,
            r#"{"metadata":{"resourceVersion":"1","labels":{"z":"1"}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    let now = w.get(&path).await.json();
    assert_eq!(
        now["metadata"]["resourceVersion"], rv,
        "nothing was written"
    );
    assert_eq!(now["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(
        w.get(&fi_path).await.json()["disallowedFlunders"],
        json!(["a"])
    );
    // A patch without its own resourceVersion still applies to the stored object.
    let r = w
        .patch(&path, MERGE, r#"{"metadata":{"labels":{"z":"1"}}}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// A DELETE's options (hostile sweep 2026-11-30): a body field of the wrong JSON type is Go's
/// 400 and deletes nothing (one object or a collection); a body is read instead of the query;
/// `?dryRun=` is refused; a deletecollection lists as the request says (a bad continue token is
/// its 400 before anything is deleted; a limit deletes one page and answers its continue token).
async fn delete_options_are_decoded_as_go_does(engine: Engine) {
    let w = Wardle::start(engine).await;
    for name in ["d1", "d2", "d3"] {
        let body = json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
            "metadata": {"name": name, "labels": {"qa": "x"}}});
        created(&w, NS_BETA, &body).await;
    }
    let one = format!("{NS_BETA}/d1");
    for (body, message) in [
        (
            json!({"dryRun": "All"}),
            "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string",
        ),
        (
            json!({"preconditions": {"uid": 5}}),
            "json: cannot unmarshal number into Go struct field Preconditions.preconditions.uid of type types.UID",
        ),
        (
            json!({"gracePeriodSeconds": "0"}),
            "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
        ),
        (
            json!({"propagationPolicy": 5}),
            "json: cannot unmarshal number into Go struct field DeleteOptions.propagationPolicy of type v1.DeletionPropagation",
        ),
    ] {
        let r = w.delete(&one, Some(&body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert_eq!(r.json()["message"], message);
        let r = w
            .delete(&format!("{NS_BETA}?labelSelector=qa%3Dx"), Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
    }
    // With a body the query is not read: its bad values neither fail nor dry-run the delete.
    let r = w
        .delete(
            &format!("{one}?dryRun=All&gracePeriodSeconds=x"),
            Some(&json!({"dryRun": ["All"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = w.delete(&format!("{one}?dryRun="), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let text_plain = [("content-type", "text/plain")];
    let r = w
        .request(Method::DELETE, &one, &text_plain, Some(b"{}".to_vec()))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert_eq!(
        w.get(&one).await.status,
        StatusCode::OK,
        "nothing deleted d1 yet"
    );
    // deletecollection: a bad continue token fails first; a limit deletes one page.
    let r = w.delete(&format!("{NS_BETA}?continue=zzz"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = w
        .delete(&format!("{NS_BETA}?labelSelector=qa%3Dx&limit=1"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    let left = w.get(NS_BETA).await.json();
    assert_eq!(left["items"].as_array().map(Vec::len), Some(2), "{left}");
    let r = w.delete(&format!("{NS_BETA}?continue={token}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(2));
    // A watch with a negative timeoutSeconds ends at once, empty (Go: empty or a 500 ERROR
    // event, as its expired timer races the stream); a list takes any int64.
    let r = w.get(&format!("{NS_BETA}?watch=1&timeoutSeconds=-1")).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, String::new()));
    let r = w.get(&format!("{NS_BETA}?timeoutSeconds=-5")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // `null` is a body with no options: a real delete, whatever the query says.
    created(&w, NS_BETA, &json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder", "metadata": {"name": "d4"}})).await;
    let json_ct = [("content-type", "application/json")];
    let d4 = format!("{NS_BETA}/d4?dryRun=All");
    let r = w
        .request(Method::DELETE, &d4, &json_ct, Some(b"null".to_vec()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        w.get(&format!("{NS_BETA}/d4")).await.status,
        StatusCode::NOT_FOUND
    );
}

engine_tests!(
    unknown_fields_are_pruned,
    unknown_field_warnings_outlive_failures,
    create_refuses_a_resource_version,
    patch_errors,
    noop_apply_records_no_time,
    update_rules,
    finalizer_removal_answers_the_update,
    apply_needs_the_endpoint_type,
    routes_and_names,
    negotiated_errors_and_reads,
    kubectl_explain_reads_protobuf_openapi_v2,
    updates_need_a_resource_version,
    delete_options_are_decoded_as_go_does,
);
