//! kubectl commands that wait on the server: `wait --for=delete` and `delete --wait` while a
//! finalizer holds the object, released later; and `get -o wide` columns. Both engines.

mod common;

use common::Engine;
use common::procs::succeeded;
use common::server::Wardle;
use std::process::{Child, Command, Stdio};

fn held(name: &str) -> String {
    format!(
        "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: {name}\n  finalizers: [example.com/hold]\n"
    )
}

fn spawn(w: &Wardle, args: &[&str]) -> Child {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&w.kubeconfig)
        .args(args)
        .env("KUBECACHEDIR", w.dir.join("kubecache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs")
}

/// `kubectl` (running `what`, which waits on `name`) must not have returned while the finalizer
/// held the object; then the finalizer is removed, and its stdout returned once it succeeded.
fn release_waiter(w: &Wardle, mut kubectl: Child, name: &str, what: &str) -> String {
    assert!(
        kubectl.try_wait().unwrap().is_none(),
        "{what} returned while the finalizer held the object"
    );
    w.kubectl_ok(&[
        "patch",
        "flunder",
        name,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    succeeded(what, &kubectl.wait_with_output().unwrap())
}

/// Waits (without a clock assertion) until the object shows a deletionTimestamp, so the
/// waiting kubectl is known to have started its delete.
async fn until_terminating(w: &Wardle, name: &str) {
    for _ in 0..300 {
        let ts = w.kubectl(&[
            "get",
            "flunder",
            name,
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        if !String::from_utf8_lossy(&ts.stdout).trim().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{name} never got a deletionTimestamp");
}

async fn wait_for_delete(engine: Engine) {
    let w = Wardle::start(engine).await;

    // kubectl wait --for=delete returns once the finalizer is removed.
    let out = w.kubectl_stdin(&["create", "-f", "-"], Some(&held("a")));
    assert!(out.status.success());
    let out = w.kubectl_ok(&["delete", "flunder", "a", "--wait=false"]);
    assert!(
        out.contains(r#"flunder.wardle.example.com "a" deleted"#),
        "{out}"
    );
    let waiter = spawn(&w, &["wait", "--for=delete", "flunder/a", "--timeout=60s"]);
    // The waiter is blocked while the finalizer holds the object.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        release_waiter(&w, waiter, "a", "kubectl wait").trim(),
        "flunder.wardle.example.com/a condition met"
    );

    // kubectl delete (which waits by default) returns once the finalizer is removed.
    let out = w.kubectl_stdin(&["create", "-f", "-"], Some(&held("b")));
    assert!(out.status.success());
    let deleter = spawn(&w, &["delete", "flunder", "b", "--timeout=60s"]);
    until_terminating(&w, "b").await;
    assert_eq!(
        release_waiter(&w, deleter, "b", "kubectl delete").trim(),
        r#"flunder.wardle.example.com "b" deleted"#
    );
    let out = w.kubectl(&["get", "flunder", "b"]);
    assert!(!out.status.success());
}

async fn get_wide(engine: Engine) {
    let w = Wardle::start(engine).await;
    let flunder = "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: wide\nspec:\n  flunderReference: other\n  referenceType: Flunder\n";
    let out = w.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(flunder));
    assert!(out.status.success());
    w.kubectl_ok(&["label", "flunder", "wide", "x=y"]);
    let fischer = "apiVersion: wardle.example.com/v1alpha1\nkind: Fischer\nmetadata:\n  name: f\ndisallowedFlunders: [a, b]\n";
    let out = w.kubectl_stdin(&["create", "-f", "-"], Some(fischer));
    assert!(out.status.success());

    let words = |s: &str| -> Vec<Vec<String>> {
        s.lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect()
            })
            .collect()
    };
    let narrow = words(&w.kubectl_ok(&["get", "flunders"]));
    assert_eq!(narrow[0], ["NAME", "REFERENCE TYPE", "REFERENCE", "AGE"]);
    let wide = words(&w.kubectl_ok(&["get", "flunders", "-o", "wide"]));
    assert_eq!(
        wide[0],
        ["NAME", "REFERENCE TYPE", "REFERENCE", "AGE", "MANAGERS"]
    );
    assert_eq!(wide[1][..3], ["wide", "Flunder", "other"]);
    assert_eq!(wide[1][4], "kubectl,kubectl-label");

    let wide = words(&w.kubectl_ok(&["get", "fischers", "-o", "wide"]));
    assert_eq!(wide[0], ["NAME", "DISALLOWED", "AGE", "COUNT", "MANAGERS"]);
    assert_eq!(wide[1][..2], ["f", "a,b"]);
    assert_eq!(wide[1][3..], ["2", "kubectl-create"]);
}

engine_tests!(wait_for_delete, get_wide);
