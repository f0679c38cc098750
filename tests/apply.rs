//! Server-side apply end to end: the real kubectl (`apply --server-side`, conflicts,
//! `--force-conflicts`, pruning, `--dry-run=server`, `diff`), raw PATCH answers, and a typed
//! kube-rs client, on both engines.

mod common;

use common::Engine;
use common::server::Wardle;
use http::StatusCode;
use serde_json::{Value, json};

const APPLY: &str = "application/apply-patch+yaml";
const BETA: &str = "/apis/wardle.example.com/v1beta1/namespaces/default/flunders";
const ALPHA: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";

fn manifest(labels: &str, reference: &str) -> String {
    format!(
        "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: ssa\n{labels}spec:\n  flunderReference: {reference}\n  referenceType: Flunder\n"
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn get_json(w: &Wardle, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&w.kubectl_ok(&all)).expect("kubectl prints JSON")
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_string(),
                e["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn kubectl_server_side_apply(engine: Engine) {
    let w = Wardle::start(engine).await;
    let labelled = manifest("  labels:\n    team: a\n    tier: gold\n", "one");

    // Create-on-apply.
    let out = w.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&labelled));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "flunder.wardle.example.com/ssa serverside-applied"
    );
    let obj = get_json(&w, &["flunder", "ssa"]);
    assert_eq!(managers(&obj), vec![("kubectl".into(), "Apply".into())]);
    assert_eq!(
        obj["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:team": {}, "f:tier": {}}},
               "f:spec": {"f:flunderReference": {}, "f:referenceType": {}}})
    );

    // Applying the same file again changes nothing.
    let rv = obj["metadata"]["resourceVersion"].clone();
    let out = w.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&labelled));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        get_json(&w, &["flunder", "ssa"])["metadata"]["resourceVersion"],
        rv
    );

    // Another manager wants another reference: a conflict, nothing written.
    let other = manifest("", "two");
    let out = w.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        Some(&other),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.flunderReference"#
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        w.kubectl_ok(&[
            "get",
            "flunder",
            "ssa",
            "-o",
            "jsonpath={.spec.flunderReference}"
        ]),
        "one"
    );

    // --force-conflicts takes the field over.
    let out = w.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let obj = get_json(&w, &["flunder", "ssa"]);
    assert_eq!(obj["spec"]["flunderReference"], "two");
    let mf = obj["metadata"]["managedFields"].as_array().unwrap();
    let kubectl = mf.iter().find(|e| e["manager"] == "kubectl").unwrap();
    assert_eq!(
        kubectl["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:team": {}, "f:tier": {}}}, "f:spec": {"f:referenceType": {}}})
    );
    let theirs = mf.iter().find(|e| e["manager"] == "other").unwrap();
    assert_eq!(
        theirs["fieldsV1"]["f:spec"],
        json!({"f:flunderReference": {}, "f:referenceType": {}})
    );

    // Dropping a label from kubectl's file removes it; the other label stays.
    let fewer = manifest("  labels:\n    team: a\n", "two");
    let out = w.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&fewer));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        get_json(&w, &["flunder", "ssa"])["metadata"]["labels"],
        json!({"team": "a"})
    );

    // An Update manager (kubectl label) owns a label: applying another value conflicts, named
    // with the version it used.
    w.kubectl_ok(&["label", "flunder", "ssa", "--overwrite", "team=b"]);
    let out = w.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&fewer));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"conflict with "kubectl-label" using wardle.example.com/v1beta1: .metadata.labels.team"#
        ),
        "{}",
        stderr(&out)
    );

    // --dry-run=server leaves storage alone, and says what would be.
    let before = get_json(&w, &["flunder", "ssa"]);
    let changed = manifest("  labels:\n    team: b\n    new: yes-please\n", "two");
    let out = w.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-o",
            "jsonpath={.metadata.labels.new}",
            "-f",
            "-",
        ],
        Some(&changed),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "yes-please");
    assert_eq!(get_json(&w, &["flunder", "ssa"]), before);

    // kubectl diff shows the change (exit 1) and writes nothing.
    for extra in [&["--server-side"][..], &[][..]] {
        let mut args = vec!["diff"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-f", "-"]);
        let out = w.kubectl_stdin(&args, Some(&changed));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("+    new: yes-please"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    assert_eq!(get_json(&w, &["flunder", "ssa"]), before);

    // An object made by client-side apply moves to server-side apply without conflicts
    // (kubectl hands the client-side manager's fields to its Apply entry first).
    let csa = manifest("", "one").replace("name: ssa", "name: csa");
    let out = w.kubectl_stdin(&["apply", "-f", "-"], Some(&csa));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some(&csa.replace("flunderReference: one", "flunderReference: three")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let moved = get_json(&w, &["flunder", "csa"]);
    assert_eq!(moved["spec"]["flunderReference"], "three");
    assert!(
        managers(&moved).contains(&("kubectl".into(), "Apply".into())),
        "{:?}",
        managers(&moved)
    );

    // Through the other version, managedFields keep the apiVersion each manager used.
    let alpha = get_json(&w, &["flunders.v1alpha1.wardle.example.com", "ssa"]);
    assert_eq!(alpha["spec"]["reference"], "two");
    assert_eq!(
        alpha["metadata"]["managedFields"],
        before["metadata"]["managedFields"]
    );
}

async fn raw_apply_answers(engine: Engine) {
    let w = Wardle::start(engine).await;
    let body = "apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata:\n  name: raw\nspec:\n  reference: x\n";
    // fieldManager is required.
    let r = w.patch(&format!("{ALPHA}/raw"), APPLY, body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    // dryRun create: 201 but nothing stored.
    let r = w
        .patch(
            &format!("{ALPHA}/raw?fieldManager=m&dryRun=All"),
            APPLY,
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        w.get(&format!("{ALPHA}/raw")).await.status,
        StatusCode::NOT_FOUND
    );
    // Create (201, defaulted, Apply entry) then 200.
    let r = w
        .patch(&format!("{ALPHA}/raw?fieldManager=m"), APPLY, body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    assert_eq!(created["spec"]["referenceType"], "Flunder");
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:reference": {}}})
    );
    let r = w
        .patch(&format!("{ALPHA}/raw?fieldManager=m"), APPLY, body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A v1beta1 applier changing the reference conflicts with m, named in m's version.
    let beta = "{\"apiVersion\":\"wardle.example.com/v1beta1\",\"kind\":\"Flunder\",\"metadata\":{\"name\":\"raw\"},\"spec\":{\"flunderReference\":\"y\",\"referenceType\":\"Flunder\"}}";
    let r = w
        .patch(&format!("{BETA}/raw?fieldManager=b"), APPLY, beta)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    let s = r.json();
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(
        s["message"],
        r#"Apply failed with 1 conflict: conflict with "m": .spec.reference"#
    );
    assert_eq!(
        s["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"m\"", "field": ".spec.reference"}])
    );
    let r = w
        .patch(
            &format!("{BETA}/raw?fieldManager=b&force=true"),
            APPLY,
            beta,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["spec"]["flunderReference"], "y");

    // A v1alpha1 merge patch of spec.reference takes the field from the v1beta1 applier (its
    // paths are judged in v1beta1), and b's next apply conflicts with that Update manager.
    let r = w
        .patch(
            &format!("{ALPHA}/raw?fieldManager=p"),
            "application/merge-patch+json",
            r#"{"spec":{"reference":"z"}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mf = r.json()["metadata"]["managedFields"].clone();
    let b_entry = mf
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "b")
        .cloned()
        .unwrap();
    assert_eq!(
        b_entry["fieldsV1"],
        json!({"f:spec": {"f:referenceType": {}}}),
        "{mf}"
    );
    let r = w
        .patch(&format!("{BETA}/raw?fieldManager=b"), APPLY, beta)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"Apply failed with 1 conflict: conflict with "p" using wardle.example.com/v1alpha1: .spec.reference"#
    );

    // A stale resourceVersion in the configuration is a precondition failure.
    let stale = body.replace("  name: raw\n", "  name: raw\n  resourceVersion: \"1\"\n");
    let r = w
        .patch(
            &format!("{ALPHA}/raw?fieldManager=m&force=true"),
            APPLY,
            &stale,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on flunders.wardle.example.com \"raw\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Fischer's disallowedFlunders is an atomic list: one owner for the whole list.
    const FISCHERS: &str = "/apis/wardle.example.com/v1alpha1/fischers";
    let fischer = |names: &str| {
        format!(
            "apiVersion: wardle.example.com/v1alpha1\nkind: Fischer\nmetadata:\n  name: fi\ndisallowedFlunders: [{names}]\n"
        )
    };
    let r = w
        .patch(
            &format!("{FISCHERS}/fi?fieldManager=one"),
            APPLY,
            &fischer("a, b"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.json()["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:disallowedFlunders": {}})
    );
    let r = w
        .patch(
            &format!("{FISCHERS}/fi?fieldManager=two"),
            APPLY,
            &fischer("c"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"Apply failed with 1 conflict: conflict with "one": .disallowedFlunders"#
    );
    let r = w
        .patch(
            &format!("{FISCHERS}/fi?fieldManager=two&force=true"),
            APPLY,
            &fischer("c"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["disallowedFlunders"], json!(["c"]));

    // Bad requests.
    let wrong = body.replace("v1alpha1", "v1beta1");
    let r = w
        .patch(&format!("{ALPHA}/raw?fieldManager=m"), APPLY, &wrong)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["message"],
        "invalid object type: wardle.example.com/v1beta1, Kind=Flunder"
    );
    for validation in ["Strict", "Ignore"] {
        let r = w
            .patch(
                &format!("{ALPHA}/raw?fieldManager=m&fieldValidation={validation}"),
                APPLY,
                &format!("{body}  bogus: 1\n"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert_eq!(
            r.json()["message"],
            "failed to create typed patch object (wardle.example.com/v1alpha1, Kind=Flunder; default/raw): .spec.bogus: field not declared in schema"
        );
    }
    let r = w
        .patch(
            &format!("{ALPHA}/raw?fieldManager=m"),
            APPLY,
            "- not\n- a map\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

async fn kube_client_apply(engine: Engine) {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let w = Wardle::start(engine).await;
    let gvk = GroupVersionKind::gvk("wardle.example.com", "v1beta1", "Flunder");
    let ar = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::namespaced_with(w.client(), "default", &ar);
    let desired = json!({
        "apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
        "metadata": {"name": "typed", "labels": {"owner": "rust"}},
        "spec": {"fischerReference": "f", "referenceType": "Fischer"},
    });
    let created = api
        .patch(
            "typed",
            &PatchParams::apply("rust-mgr"),
            &Patch::Apply(&desired),
        )
        .await
        .expect("apply creates");
    let mf = created.metadata.managed_fields.expect("managedFields");
    assert_eq!(mf[0].manager.as_deref(), Some("rust-mgr"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let mut other = desired.clone();
    other["spec"]["fischerReference"] = json!("g");
    let err = api
        .patch(
            "typed",
            &PatchParams::apply("intruder"),
            &Patch::Apply(&other),
        )
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains(r#"conflict with "rust-mgr""#),
                "{}",
                s.message
            );
        }
        e => panic!("unexpected {e}"),
    }
    let forced = api
        .patch(
            "typed",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data["spec"]["fischerReference"], "g");
}

engine_tests!(
    kubectl_server_side_apply,
    raw_apply_answers,
    kube_client_apply
);
