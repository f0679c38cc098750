//! Start-up and wrong inputs, as a user meets them: the real binary with a busy port, an
//! unreachable or refusing Postgres, misspelt admission plugins, malformed durations, plain HTTP
//! on the TLS port, unknown paths. Each failure must name the cause and the fix, and exit non-zero
//! before creating any state.

mod common;

use common::Engine;
use common::procs::free_port;
use common::server::Wardle;
use http::{Method, StatusCode};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs wardle-apiserver with `args` to its end (every case here exits by itself).
fn wardle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
        .args(args)
        .env_remove("WARDLE_DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run wardle-apiserver")
}

/// Runs wardle-apiserver on a free port with `cert_dir` and `database_url`, plus `extra`.
fn wardle_on(cert_dir: &Path, database_url: &str, extra: &[&str]) -> Output {
    let port = free_port().to_string();
    let mut args = vec![
        "--secure-port",
        &port,
        "--cert-dir",
        path_arg(cert_dir),
        "--database-url",
        database_url,
    ];
    args.extend_from_slice(extra);
    wardle(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and that stderr says every one of `needles`.
fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn busy_port_is_named_before_any_state_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cert_dir = tmp.path().join("certs");
    let out = wardle(&["--secure-port", &port, "--cert-dir", path_arg(&cert_dir)]);
    assert_fails(
        &out,
        1,
        &[
            &format!("cannot listen on 127.0.0.1:{port}"),
            "in use",
            "--secure-port",
        ],
    );
    assert!(
        !cert_dir.exists(),
        "the cert dir (and the database in it) must not be created when the port is busy"
    );
}

#[test]
fn bind_address_must_be_an_ip() {
    let out = wardle(&["--bind-address", "localhost", "--secure-port", "0"]);
    assert_fails(
        &out,
        1,
        &[
            "--bind-address \"localhost\" is not an IP address",
            "0.0.0.0",
        ],
    );
}

#[test]
fn unreachable_postgres_shows_the_cause_while_waiting_then_gives_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Nothing listens on a port just freed: connection refused.
    let db_port = free_port();
    let url = format!("postgres://wardle:s3cret@127.0.0.1:{db_port}/wardle");
    let out = wardle_on(tmp.path(), &url, &["--storage-wait", "2100ms"]);
    let shown = format!("postgres://wardle:***@127.0.0.1:{db_port}/wardle");
    assert_fails(
        &out,
        1,
        &[
            "database not reachable yet",
            "Connection refused",
            &format!("cannot reach the database {shown}"),
            "--database-url",
            "--storage-wait",
        ],
    );
    let err = stderr(&out);
    assert!(!err.contains("s3cret"), "password leaked:\n{err}");
    assert!(
        err.matches("database not reachable yet").count() >= 2,
        "a progress line every 2 s:\n{err}"
    );
}

#[test]
fn refused_login_fails_at_once_with_the_fix() {
    // Same server, a user that does not exist: waiting cannot help.
    let url = common::postgres::with_user(&common::postgres::admin_url(), "no_such_user_i12:pw");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = wardle_on(tmp.path(), &url, &[]);
    assert_fails(
        &out,
        1,
        &[
            "refused the connection",
            "no_such_user_i12",
            "fix the user or password",
        ],
    );
    assert!(
        !stderr(&out).contains("not reachable yet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_admission_plugins_are_refused_with_the_known_names() {
    let out = wardle(&["--disable-admission-plugins", "banflunder"]);
    assert_fails(
        &out,
        2,
        &[
            "'banflunder'",
            "did you mean BanFlunder?",
            "NamespaceLifecycle",
            "ValidatingAdmissionWebhook",
        ],
    );
    let out = wardle(&[
        "--enable-admission-plugins",
        "NamespaceLifecycle,NoSuchPlugin",
    ]);
    assert_fails(&out, 2, &["'NoSuchPlugin'", "known plugins", "BanFlunder"]);
    let out = wardle(&[
        "--enable-admission-plugins",
        "BanFlunder",
        "--disable-admission-plugins",
        "BanFlunder",
        "--secure-port",
        "0",
    ]);
    assert_fails(
        &out,
        1,
        &["BanFlunder in both --enable-admission-plugins and --disable-admission-plugins"],
    );
}

#[test]
fn admission_configuration_errors_stop_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admission.yaml");
    let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n";
    let run = |plugins: &str| {
        std::fs::write(&file, format!("{head}{plugins}")).expect("write");
        let cert_dir = dir.path().join("certs");
        wardle(&[
            "--secure-port",
            "0",
            "--cert-dir",
            path_arg(&cert_dir),
            "--admission-control-config-file",
            path_arg(&file),
        ])
    };
    let out = run("- name: validatingadmissionwebhook\n");
    assert_fails(&out, 1, &["did you mean ValidatingAdmissionWebhook?"]);
    let out = run(
        "- name: ValidatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: webhooks.kubeconfig\n",
    );
    assert_fails(
        &out,
        1,
        &["kubeConfigFile", "must be an absolute file path"],
    );
    // Nothing was created before the error.
    assert!(!dir.path().join("certs").exists());
}

#[test]
fn durations_take_go_syntax_only() {
    for (flag, value) in [
        ("--compaction-interval", "1.5x"),
        ("--history-retention", "7d"),
        ("--storage-wait", "-5s"),
        ("--authentication-token-webhook-cache-ttl", "10"),
    ] {
        let out = wardle(&[&format!("{flag}={value}")]);
        assert_fails(
            &out,
            2,
            &[
                &format!("'{value}' for '{flag}"),
                "Go's duration syntax",
                "1.5h",
            ],
        );
    }
}

#[test]
fn report_without_a_database_says_how_to_get_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = wardle(&["report", "flunders", "--cert-dir", path_arg(tmp.path())]);
    assert_fails(
        &out,
        1,
        &["no database at", "wardle.db", "cargo run", "--database-url"],
    );
}

#[test]
fn version_names_the_commit() {
    let out = wardle(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!(
            "wardle-apiserver {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

/// A served start with Go-syntax durations, then plain HTTP, unknown paths and the log format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_gets_gos_400_and_unknown_paths_404_for_every_method() {
    let w = Wardle::start_flags(
        Engine::Sqlite,
        &[
            "--compaction-interval",
            "1.5h",
            "--history-retention",
            "1h30m",
            "--storage-wait",
            "500us",
        ],
    )
    .await;

    for request in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /apis HTTP/1.0\r\n\r\n",
    ] {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", w.port)).expect("connect");
        conn.write_all(request.as_bytes()).expect("write");
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer)
            .expect("read the answer, not a reset");
        assert_eq!(
            String::from_utf8_lossy(&answer),
            "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        );
    }
    // TLS clients are unaffected.
    assert_eq!(w.get("/healthz").await.status, StatusCode::OK);

    // kubectl create namespace: POST to a path this server does not serve is 404 like its GET.
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        let r = w
            .request(method.clone(), "/api/v1/namespaces", &[], None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {}", r.text());
        // Another group is no route of this server either (Go: the index, 404, any method).
        let r = w
            .request(method.clone(), "/apis/apps/v1/deployments", &[], None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
    }
    // A path it does serve keeps its 405 for other methods.
    let r = w.request(Method::POST, "/version", &[], None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let out = w.kubectl(&["create", "namespace", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(NotFound): the server could not find the requested resource"),
        "{err}"
    );

    let logs = w.logs();
    assert!(
        !logs.contains('\u{1b}'),
        "no colour codes in a log file:\n{logs}"
    );
    for line in [
        "using database",
        "watch cache loaded",
        "serving",
        "admin kubeconfig written",
    ] {
        assert!(
            logs.contains(line),
            "start-up line {line:?} missing:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_from_the_first_line() {
    let w = Wardle::start_flags(Engine::Sqlite, &["--log-format", "json"]).await;
    assert_eq!(w.get("/healthz").await.status, StatusCode::OK);
    let logs = w.logs();
    let mut messages = Vec::new();
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        messages.push(v["message"].as_str().unwrap_or_default().to_string());
    }
    for m in ["using database", "serving"] {
        assert!(messages.iter().any(|x| x == m), "{m:?} missing:\n{logs}");
    }
    assert!(
        messages
            .iter()
            .any(|x| x.starts_with("admin kubeconfig written")),
        "{logs}"
    );
}

#[test]
fn files_that_cannot_be_made_or_read_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A regular file where a directory is needed: nobody, root included, can create under it.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let under_file = file.join("dir");
    let port = free_port().to_string();
    let out = wardle(&["--secure-port", &port, "--cert-dir", path_arg(&under_file)]);
    assert_fails(
        &out,
        1,
        &[
            "cannot create --cert-dir",
            "a-file/dir",
            "choose a directory",
        ],
    );

    let url = format!("sqlite://{}/x.db?mode=rwc", under_file.display());
    let out = wardle_on(tmp.path(), &url, &[]);
    assert_fails(
        &out,
        1,
        &[
            "cannot open the database sqlite://",
            "--database-url",
            "directory must exist",
        ],
    );

    let out = wardle(&[
        "--secure-port",
        &port,
        "--cert-dir",
        path_arg(tmp.path()),
        "--tls-cert-file",
        path_arg(&tmp.path().join("missing.crt")),
        "--tls-private-key-file",
        path_arg(&file),
    ]);
    assert_fails(
        &out,
        1,
        &["cannot read --tls-cert-file", "missing.crt", "PEM file"],
    );
}
