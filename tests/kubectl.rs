//! The newcomer's flow with the real kubectl against the standalone server, on both engines.

mod common;

use common::Engine;
use common::procs::succeeded;
use common::server::Wardle;

fn artifact(path: &str) -> String {
    format!("{}/artifacts/{path}", env!("CARGO_MANIFEST_DIR"))
}

async fn seed_flow(engine: Engine) {
    let w = Wardle::start(engine).await;
    let out = w.kubectl_ok(&[
        "api-resources",
        "--api-group=wardle.example.com",
        "--no-headers",
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        rows[0],
        vec![
            "fischers",
            "wardle.example.com/v1alpha1",
            "false",
            "Fischer"
        ],
        "{out}"
    );
    assert_eq!(
        rows[1],
        vec!["flunders", "wardle.example.com/v1beta1", "true", "Flunder"],
        "{out}"
    );

    let out = w.kubectl(&["create", "-f", &artifact("flunders/01-flunder.yaml")]);
    assert_eq!(
        succeeded("kubectl create", &out).trim(),
        "flunder.wardle.example.com/my-first-flunder created"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deprecated"),
        "the v1alpha1 warning reaches the user"
    );

    let out = w.kubectl_ok(&["get", "flunder", "-A"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE")
            && lines[0].contains("REFERENCE TYPE")
            && lines[0].contains("AGE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("default") && lines[1].contains("my-first-flunder"),
        "{out}"
    );

    // apply (client-side: strategic merge patch) creates, configures, and is idempotent.
    let manifest = "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: applied\nspec:\n  flunderReference: my-first-flunder\n  referenceType: Flunder\n";
    let out = w.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
    assert!(
        succeeded("kubectl apply", &out).contains("flunder.wardle.example.com/applied created")
    );
    let out = w.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unchanged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let changed = manifest.replace(
        "  name: applied\n",
        "  name: applied\n  labels:\n    tier: gold\n",
    );
    let out = w.kubectl_stdin(&["apply", "-f", "-"], Some(&changed));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        w.kubectl_ok(&[
            "get",
            "flunder",
            "applied",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "gold"
    );

    // patch, label, get -o yaml in the other version.
    w.kubectl_ok(&[
        "patch",
        "flunder",
        "applied",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"a":"b"}}}"#,
    ]);
    w.kubectl_ok(&[
        "patch",
        "flunder",
        "applied",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/x","value":"y"}]"#,
    ]);
    w.kubectl_ok(&[
        "patch",
        "flunder",
        "applied",
        "-p",
        r#"{"metadata":{"labels":{"z":"1"}}}"#,
    ]);
    w.kubectl_ok(&["label", "flunder", "applied", "color=blue"]);
    let labels = w.kubectl_ok(&[
        "get",
        "flunders.v1alpha1.wardle.example.com",
        "applied",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    for l in ["tier", "x", "z", "color"] {
        assert!(labels.contains(l), "{labels}");
    }
    let yaml = w.kubectl_ok(&[
        "get",
        "flunders.v1alpha1.wardle.example.com",
        "applied",
        "-o",
        "yaml",
    ]);
    assert!(yaml.contains("reference: my-first-flunder"), "{yaml}");
    let out = w.kubectl_ok(&["get", "flunders", "-l", "color=blue", "-o", "name"]);
    assert_eq!(out.trim(), "flunder.wardle.example.com/applied");

    // Fischers, BanFlunder through kubectl, explain.
    let out = w.kubectl_stdin(&["apply", "-f", "-"], Some("apiVersion: wardle.example.com/v1alpha1\nkind: Fischer\nmetadata:\n  name: strict\ndisallowedFlunders: [forbidden-name]\n"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fischer.wardle.example.com/strict created"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.kubectl_stdin(&["create", "-f", "-"], Some("apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: forbidden-name\n"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("this name may not be used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let explain = w.kubectl_ok(&["explain", "flunders.spec"]);
    assert!(
        explain.contains("flunderReference") && explain.contains("referenceType"),
        "{explain}"
    );

    // delete (kubectl waits for the object to disappear).
    let out = w.kubectl_ok(&["delete", "flunder", "applied"]);
    assert_eq!(
        out.trim(),
        r#"flunder.wardle.example.com "applied" deleted"#
    );
    let out = w.kubectl(&["get", "flunder", "applied"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(r#"flunders.wardle.example.com "applied" not found"#)
    );
    w.kubectl_ok(&["delete", "fischer", "strict"]);
}

engine_tests!(seed_flow);

/// `kubectl get -w` against replica B shows what is written through replica A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_shows_changes_from_another_replica() {
    use std::io::Read;
    let (a, b) = Wardle::pair(Engine::Postgres).await;
    a.kubectl_ok(&["create", "-f", &artifact("flunders/01-flunder.yaml")]);
    let mut watch = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&b.kubeconfig)
        .args(["get", "flunders", "-w", "--output-watch-events"])
        .env("KUBECACHEDIR", b.dir.join("kubecache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let second =
        "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: second\n";
    assert!(
        a.kubectl_stdin(&["create", "-f", "-"], Some(second))
            .status
            .success()
    );
    a.kubectl_ok(&["label", "flunder", "my-first-flunder", "color=blue"]);
    a.kubectl_ok(&["delete", "flunder", "second"]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _ = watch.kill();
    let mut out = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = watch.wait();
    let rows: Vec<(String, String)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    let expected = [
        ("ADDED", "my-first-flunder"),
        ("ADDED", "second"),
        ("MODIFIED", "my-first-flunder"),
        ("DELETED", "second"),
    ];
    assert_eq!(
        rows,
        expected
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect::<Vec<_>>(),
        "kubectl get -w output:\n{out}"
    );
}
