//! End to end behind a real kube-apiserver: kine as its etcd, kube-controller-manager for
//! namespace deletion, and wardle as a local process registered through an ExternalName Service
//! and APIServices, then driven with kubectl through the aggregator (the seed's flow, watch,
//! RBAC via SubjectAccessReview, impersonation, explain, NamespaceLifecycle, namespace deletion).
//!
//! The binaries come from scripts/kube-bins.sh (scripts/test.sh runs it first; it builds them
//! once from the Go module proxy and caches them). Without them this test fails, on purpose.

mod common;

use common::pki::{Ca, kubeconfig};
use common::procs::{Procs, free_port};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "admin-token-e2e";
const ALICE_TOKEN: &str = "alice-token-e2e";
const WARDLE_TOKEN: &str = "wardle-token-e2e";
const KCM_TOKEN: &str = "kcm-token-e2e";
/// What the test webhook server demands of wardle's webhook calls (from the webhook
/// kubeconfigs of --admission-control-config-file).
const VALIDATING_WEBHOOK_TOKEN: &str = "validating-webhook-token-e2e";
const MUTATING_WEBHOOK_TOKEN: &str = "mutating-webhook-token-e2e";

fn artifact(path: &str) -> String {
    format!("{}/artifacts/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The directory scripts/kube-bins.sh prints (building the binaries if they are missing).
fn kube_bins() -> PathBuf {
    let dir = match std::env::var_os("WARDLE_KUBE_BINS") {
        Some(d) => PathBuf::from(d),
        None => run_kube_bins(),
    };
    for b in ["kube-apiserver", "kube-controller-manager", "kine"] {
        assert!(
            dir.join(b).is_file(),
            "{b} missing in {} (WARDLE_KUBE_BINS or scripts/kube-bins.sh): this test needs the \
             real binaries; run scripts/kube-bins.sh",
            dir.display()
        );
    }
    dir
}

fn run_kube_bins() -> PathBuf {
    let script = format!("{}/scripts/kube-bins.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/kube-bins.sh");
    assert!(
        out.status.success(),
        "scripts/kube-bins.sh failed ({}): kube-apiserver, kube-controller-manager and kine are \
         needed for this test; run the script by hand to see why",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or("").trim())
}

struct Cluster {
    dir: PathBuf,
    /// wardle's own port, for requests that bypass the aggregator.
    wardle_port: u16,
    /// The Postgres wardle's port (started alongside, behind the aggregator at the end).
    pg_port: u16,
    admin: PathBuf,
    procs: Procs,
    /// The test webhook server: its port and CA.
    webhook_port: u16,
    webhook_ca: Ca,
}

impl Cluster {
    fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env("KUBECACHEDIR", self.dir.join("kubecache"))
            .stdin(Stdio::null())
            .output()
            .expect("kubectl is installed")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.admin, args)
    }

    fn kubectl_ok(&mut self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            panic!(
                "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.procs.report()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Retry `check` (which returns Err(last observation)) until it passes or `secs` pass.
    fn eventually<T>(
        &mut self,
        what: &str,
        secs: u64,
        mut check: impl FnMut(&Self) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match check(self) {
                Ok(v) => return v,
                Err(last) => {
                    self.procs.check_alive();
                    if Instant::now() > deadline {
                        panic!(
                            "{what}: not within {secs}s; last: {last}\n{}",
                            self.procs.report()
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn start() -> Cluster {
    let bins = kube_bins();
    let tmp = tempfile::Builder::new()
        .prefix("wardle-e2e")
        .tempdir()
        .expect("tempdir")
        .keep();
    let dir = tmp.as_path();
    let mut procs = Procs::default();

    // PKI: the cluster CA (serving + kubectl client certs), the front proxy's CA and client
    // cert, wardle's own serving CA, and the service-account signing key.
    let cluster_ca = Ca::new("e2e-cluster-ca");
    let ca_file = cluster_ca.write(dir, "ca.crt");
    let (apiserver_crt, apiserver_key) = cluster_ca
        .serving(&["localhost", "127.0.0.1", "kubernetes.default.svc"])
        .write(dir, "apiserver");
    let front_proxy_ca = Ca::new("e2e-front-proxy-ca");
    let fp_ca_file = front_proxy_ca.write(dir, "front-proxy-ca.crt");
    let (fp_crt, fp_key) = front_proxy_ca
        .client("front-proxy-client", &[])
        .write(dir, "front-proxy-client");
    let wardle_ca = Ca::new("e2e-wardle-ca");
    let (wardle_crt, wardle_key) = wardle_ca
        .serving(&["api.wardle.svc", "localhost", "127.0.0.1"])
        .write(dir, "wardle");
    let sa_key = dir.join("sa.key");
    let sa_pub = dir.join("sa.pub");
    let sa = rcgen::KeyPair::generate().expect("key");
    std::fs::write(&sa_key, sa.serialize_pem()).expect("sa key");
    std::fs::write(&sa_pub, sa.public_key_pem()).expect("sa public key");
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        format!(
            "{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n\
             {ALICE_TOKEN},alice,alice-uid\n\
             {WARDLE_TOKEN},system:serviceaccount:wardle:apiserver,wardle-uid,\"system:serviceaccounts,system:serviceaccounts:wardle\"\n\
             {KCM_TOKEN},system:kube-controller-manager,kcm-uid,\"system:masters\"\n"
        ),
    )
    .expect("tokens");

    let kine_port = free_port();
    std::fs::create_dir_all(dir.join("kine")).expect("kine dir");
    procs.spawn(
        "kine",
        Command::new(bins.join("kine"))
            .current_dir(dir.join("kine"))
            .arg(format!("--listen-address=127.0.0.1:{kine_port}"))
            .arg("--metrics-bind-address=0"),
        dir,
    );

    let api_port = free_port();
    let server = format!("https://127.0.0.1:{api_port}");
    let p = |p: &Path| p.to_str().expect("utf8 path").to_string();
    procs.spawn(
        "kube-apiserver",
        Command::new(bins.join("kube-apiserver")).args([
            format!("--etcd-servers=http://127.0.0.1:{kine_port}"),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", p(&apiserver_crt)),
            format!("--tls-private-key-file={}", p(&apiserver_key)),
            format!("--client-ca-file={}", p(&ca_file)),
            format!("--token-auth-file={}", p(&tokens)),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", p(&sa_pub)),
            format!("--service-account-signing-key-file={}", p(&sa_key)),
            "--service-cluster-ip-range=10.96.0.0/24".into(),
            format!("--requestheader-client-ca-file={}", p(&fp_ca_file)),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            format!("--proxy-client-cert-file={}", p(&fp_crt)),
            format!("--proxy-client-key-file={}", p(&fp_key)),
            format!("--cert-dir={}", p(&dir.join("apiserver-certs"))),
            "--profiling=false".into(),
            // Its own Endpoints would hold 127.0.0.1, which validation refuses (log noise only).
            "--endpoint-reconciler-type=none".into(),
        ]),
        dir,
    );

    let ca_pem = cluster_ca.cert_pem.clone();
    let admin = dir.join("admin.kubeconfig");
    kubeconfig(&admin, &server, &ca_pem, None, Some(ADMIN_TOKEN));
    let wardle_port = free_port();
    wardle_ca.write(dir, "wardle-ca.crt");
    let webhook_ca = Ca::new("e2e-webhook-ca");
    let webhook_port = webhook_server(&webhook_ca);
    let mut cluster = Cluster {
        dir: dir.to_path_buf(),
        wardle_port,
        pg_port: free_port(),
        admin,
        procs,
        webhook_port,
        webhook_ca,
    };
    cluster.eventually("kube-apiserver ready", 120, |c| {
        let o = c.kubectl(&["get", "--raw", "/readyz"]);
        if o.status.success() {
            Ok(())
        } else {
            Err(text(&o))
        }
    });

    // The artifacts: everything applies (server-side dry run); the identity and RBAC for
    // real. The Deployment, Service and APIServices stay dry-run: wardle runs here as a local
    // process behind an ExternalName Service instead (a pod needs a kubelet).
    cluster.kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-f",
        &artifact("example/ns.yaml"),
    ]);
    cluster.kubectl_ok(&["apply", "-f", &artifact("example/ns.yaml")]);
    cluster.kubectl_ok(&["apply", "--dry-run=server", "-f", &artifact("example")]);
    for f in [
        "sa.yaml",
        "auth-delegator.yaml",
        "auth-reader.yaml",
        "rbac.yaml",
        "rbac-bind.yaml",
    ] {
        cluster.kubectl_ok(&["apply", "-f", &artifact(&format!("example/{f}"))]);
    }

    let wardle_kc = dir.join("wardle.kubeconfig");
    kubeconfig(&wardle_kc, &server, &ca_pem, None, Some(WARDLE_TOKEN));
    // Audit wardle's own resources at Metadata level, nothing else.
    let audit_policy = dir.join("audit-policy.yaml");
    std::fs::write(
        &audit_policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources:\n  - group: wardle.example.com\n",
    )
    .expect("audit policy");
    let admission_config = admission_config_file(dir, cluster.webhook_port);
    let common_args = [
        "--bind-address=127.0.0.1".to_string(),
        format!("--tls-cert-file={}", p(&wardle_crt)),
        format!("--tls-private-key-file={}", p(&wardle_key)),
        format!("--authentication-kubeconfig={}", p(&wardle_kc)),
        format!("--authorization-kubeconfig={}", p(&wardle_kc)),
        format!("--kubeconfig={}", p(&wardle_kc)),
        format!("--audit-policy-file={}", p(&audit_policy)),
        format!("--admission-control-config-file={}", p(&admission_config)),
    ];
    // Both engines: a SQLite wardle (behind the aggregator first) and a Postgres one.
    let pg_url = common::postgres::fresh_database_url();
    for (name, port, db) in [
        (
            "wardle",
            wardle_port,
            format!("sqlite://{}?mode=rwc", p(&dir.join("wardle/wardle.db"))),
        ),
        ("wardle-pg", cluster.pg_port, pg_url),
    ] {
        let own = dir.join(name);
        std::fs::create_dir_all(&own).expect("wardle dir");
        cluster.procs.spawn(
            name,
            Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
                .args(&common_args)
                .args([
                    format!("--secure-port={port}"),
                    format!("--cert-dir={}", p(&own)),
                    format!("--database-url={db}"),
                    format!("--audit-log-path={}", p(&own.join("audit.log"))),
                ])
                .env("RUST_LOG", "info,sqlx=warn")
                .env("NO_COLOR", "1"),
            dir,
        );
    }

    let kcm_kc = dir.join("kcm.kubeconfig");
    kubeconfig(&kcm_kc, &server, &ca_pem, None, Some(KCM_TOKEN));
    cluster.procs.spawn(
        "kube-controller-manager",
        Command::new(bins.join("kube-controller-manager")).args([
            format!("--kubeconfig={}", p(&kcm_kc)),
            format!("--authentication-kubeconfig={}", p(&kcm_kc)),
            format!("--authorization-kubeconfig={}", p(&kcm_kc)),
            "--controllers=namespace".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
        ]),
        dir,
    );

    register(&mut cluster, wardle_port);
    cluster
}

/// Put the wardle on `port` behind the aggregator: an ExternalName Service (the aggregator's
/// default service resolver dials externalName:port; endpoints could not hold a loopback
/// address) and the two APIServices.
fn register(c: &mut Cluster, port: u16) {
    let ca = std::fs::read_to_string(c.dir.join("wardle-ca.crt")).expect("wardle ca");
    let ca_bundle = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(ca)
    };
    let mut objects = vec![serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "wardle"},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                  "ports": [{"port": port, "protocol": "TCP"}]}
    })];
    for (v, prio) in [("v1alpha1", 10), ("v1beta1", 15)] {
        objects.push(serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": format!("{v}.wardle.example.com")},
            "spec": {"group": "wardle.example.com", "version": v, "groupPriorityMinimum": 1000,
                      "versionPriority": prio, "caBundle": ca_bundle,
                      "service": {"name": "api", "namespace": "wardle", "port": port}}
        }));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let f = c.dir.join("register.json");
    std::fs::write(&f, serde_json::to_vec(&list).expect("json")).expect("write");
    c.kubectl_ok(&["apply", "-f", f.to_str().expect("utf8")]);
}

/// The AdmissionConfiguration wardle reads: each webhook plugin gets a kubeconfig with the
/// bearer token the test webhook server demands of it — the validating one through a file
/// (`path`) and a user named after the server's `host:port`, the mutating one embedded with
/// a `*` user.
fn admission_config_file(dir: &Path, webhook_port: u16) -> PathBuf {
    let kc = |file: &str, user: &str, token: &str| {
        let path = dir.join(file);
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Config",
            "users": [{"name": user, "user": {"token": token}}]});
        std::fs::write(&path, body.to_string()).expect("webhook kubeconfig");
        path
    };
    let validating = kc(
        "validating-webhooks.kubeconfig",
        &format!("127.0.0.1:{webhook_port}"),
        VALIDATING_WEBHOOK_TOKEN,
    );
    let mutating = kc("mutating-webhooks.kubeconfig", "*", MUTATING_WEBHOOK_TOKEN);
    std::fs::write(
        dir.join("validating-webhooks.yaml"),
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: WebhookAdmissionConfiguration\nkubeConfigFile: {}\n",
            validating.display()
        ),
    )
    .expect("webhook admission config");
    let path = dir.join("admission-config.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n\
             - name: ValidatingAdmissionWebhook\n  path: validating-webhooks.yaml\n\
             - name: MutatingAdmissionWebhook\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    \
             kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {}\n",
            mutating.display()
        ),
    )
    .expect("admission config");
    path
}

fn flunder(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"wardle.example.com/v1beta1","kind":"Flunder","metadata":{{"name":"{name}"}},"spec":{{}}}}"#
    )
}

fn create_from_str(
    c: &Cluster,
    kubeconfig: Option<&Path>,
    ns: &str,
    body: &str,
    extra: &[&str],
) -> Output {
    let f = c.dir.join(format!("obj-{}.json", rand_suffix()));
    std::fs::write(&f, body).expect("write");
    let fs = f.to_str().expect("utf8").to_string();
    let mut args = vec!["create", "-n", ns, "-f", &fs];
    args.extend_from_slice(extra);
    let kc = kubeconfig
        .map(Path::to_path_buf)
        .unwrap_or_else(|| c.admin.clone());
    c.kubectl_as(&kc, &args)
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ std::process::id() as u128 ^ rand_seed()
    )
}

fn rand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[test]
fn wardle_behind_a_real_kube_apiserver() {
    let started = Instant::now();
    let mut c = start();

    // Both APIServices become Available: the aggregator reached wardle with its front-proxy
    // cert as system:kube-aggregator in system:masters.
    for v in ["v1alpha1", "v1beta1"] {
        let name = format!("{v}.wardle.example.com");
        c.eventually(&format!("APIService {name} Available"), 120, |c| {
            let o = c.kubectl(&[
                "get", "apiservice", &name, "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Available")].status} {.status.conditions[?(@.type=="Available")].message}"#,
            ]);
            let t = text(&o);
            if t.starts_with("True") { Ok(()) } else { Err(t) }
        });
    }

    // The seed flow: discovery through the aggregator, create the sample, list everywhere.
    c.eventually("api-resources lists flunders", 90, |c| {
        let o = c.kubectl(&[
            "api-resources",
            "--api-group=wardle.example.com",
            "--no-headers",
        ]);
        let t = text(&o);
        if o.status.success() && t.contains("flunders") && t.contains("fischers") {
            Ok(())
        } else {
            Err(t)
        }
    });
    let out = c.kubectl_ok(&[
        "create",
        "-n",
        "default",
        "-f",
        &artifact("flunders/01-flunder.yaml"),
    ]);
    assert!(
        out.contains("flunder.wardle.example.com/my-first-flunder created"),
        "{out}"
    );
    let out = c.kubectl_ok(&["get", "flunder", "-A"]);
    assert!(
        out.contains("default") && out.contains("my-first-flunder"),
        "{out}"
    );

    // The identity wardle saw came from the aggregator's headers, and it was admin's.
    assert!(
        c.procs
            .log_of("wardle")
            .lines()
            .any(|l| l.contains("\"admin\"") && l.contains("flunders")),
        "wardle never served admin:\n{}",
        c.procs.report()
    );

    // kubectl get -w through the aggregator sees a create.
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&c.admin)
        .args(["get", "flunders", "-n", "default", "-w", "-o", "name"])
        .env("KUBECACHEDIR", c.dir.join("kubecache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial state arrives first, then the create.
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("watch lists the existing flunder");
    assert!(first.contains("my-first-flunder"), "{first}");
    let o = create_from_str(&c, None, "default", &flunder("watched"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => {
                let done = l.contains("watched");
                seen.push(l);
                if done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("watch ended: {e}; saw {seen:?}"),
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.iter()
            .any(|l| l.trim() == "flunder.wardle.example.com/watched"),
        "{seen:?}"
    );

    // RBAC decides: alice (no bindings) is forbidden, then allowed after a RoleBinding.
    let alice = c.dir.join("alice.kubeconfig");
    let server = format!(
        "https://127.0.0.1:{}",
        kube::config::Kubeconfig::read_from(&c.admin)
            .expect("kc")
            .clusters[0]
            .cluster
            .as_ref()
            .and_then(|cl| cl.server.clone())
            .expect("server")
            .rsplit(':')
            .next()
            .expect("port")
    );
    let ca_pem = std::fs::read_to_string(c.dir.join("ca.crt")).expect("ca");
    kubeconfig(&alice, &server, &ca_pem, None, Some(ALICE_TOKEN));
    let o = c.kubectl_as(&alice, &["get", "flunders", "-n", "default"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(r#"flunders.wardle.example.com is forbidden: User "alice" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "default""#),
        "{}",
        text(&o)
    );
    c.kubectl_ok(&[
        "create",
        "role",
        "flunder-reader",
        "-n",
        "default",
        "--verb=get,list,watch",
        "--resource=flunders.wardle.example.com",
    ]);
    c.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-reads-flunders",
        "-n",
        "default",
        "--role=flunder-reader",
        "--user=alice",
    ]);
    let out = c.eventually("alice may list after the RoleBinding", 60, |c| {
        let o = c.kubectl_as(&alice, &["get", "flunders", "-n", "default", "-o", "name"]);
        if o.status.success() {
            Ok(text(&o))
        } else {
            Err(text(&o))
        }
    });
    assert!(
        out.contains("flunder.wardle.example.com/my-first-flunder"),
        "{out}"
    );
    // Reading is all the role grants: wardle's SubjectAccessReview says no to a create.
    let o = create_from_str(&c, Some(&alice), "default", &flunder("by-alice"), &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(r#"User "alice" cannot create resource "flunders""#),
        "{}",
        text(&o)
    );

    // Straight to wardle with alice's bearer token: wardle asks the cluster (TokenReview) who
    // that is, then SubjectAccessReview whether she may list; a token nobody knows is a 401.
    let wardle_ca = std::fs::read_to_string(c.dir.join("wardle-ca.crt")).expect("wardle ca");
    let direct = format!("https://127.0.0.1:{}", c.wardle_port);
    let alice_direct = c.dir.join("alice-direct.kubeconfig");
    kubeconfig(&alice_direct, &direct, &wardle_ca, None, Some(ALICE_TOKEN));
    let path = "/apis/wardle.example.com/v1beta1/namespaces/default/flunders";
    let o = c.kubectl_as(&alice_direct, &["get", "--raw", path]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("my-first-flunder"), "{}", text(&o));
    let o = c.kubectl_as(
        &alice_direct,
        &["get", "--raw", "/apis/wardle.example.com/v1alpha1/fischers"],
    );
    assert!(
        text(&o).contains(
            r#"fischers.wardle.example.com is forbidden: User "alice" cannot list resource "fischers" in API group "wardle.example.com" at the cluster scope"#
        ),
        "{}",
        text(&o)
    );
    let nobody = c.dir.join("nobody-direct.kubeconfig");
    kubeconfig(&nobody, &direct, &wardle_ca, None, Some("no-such-token"));
    let o = c.kubectl_as(&nobody, &["get", "--raw", path]);
    assert!(!o.status.success());
    assert!(text(&o).contains("Unauthorized"), "{}", text(&o));

    // Impersonation: admin acting as alice gets alice's rights; as bob, none.
    let out = c.kubectl_ok(&[
        "--as=alice",
        "get",
        "flunders",
        "-n",
        "default",
        "-o",
        "name",
    ]);
    assert!(out.contains("my-first-flunder"), "{out}");
    let o = c.kubectl(&[
        "--as=bob",
        "--as-group=devs",
        "get",
        "flunders",
        "-n",
        "default",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(r#"User "bob" cannot list resource "flunders""#),
        "{}",
        text(&o)
    );
    assert!(
        c.procs
            .log_of("wardle")
            .lines()
            .any(|l| l.contains("\"alice\"")),
        "wardle never saw alice (impersonated or not)"
    );

    // kubectl explain reads the OpenAPI the aggregator merged from wardle.
    let out = c.eventually("explain flunders.spec", 120, |c| {
        let o = c.kubectl(&["explain", "flunders.spec"]);
        let t = text(&o);
        if o.status.success() && t.contains("referenceType") {
            Ok(t)
        } else {
            Err(t)
        }
    });
    assert!(out.contains("FIELDS") || out.contains("FIELD"), "{out}");

    // NamespaceLifecycle in wardle: a create in a missing namespace is 404.
    let o = create_from_str(&c, None, "nope", &flunder("x"), &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(r#"namespaces "nope" not found"#),
        "{}",
        text(&o)
    );

    // Deleting a namespace with flunders completes: the namespace controller deletes them
    // through the aggregator. A ConfigMap finalizer holds it in Terminating first, to see
    // creates refused there.
    c.kubectl_ok(&["create", "namespace", "doomed"]);
    for n in ["f1", "f2"] {
        let o = create_from_str(&c, None, "doomed", &flunder(n), &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let hold = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"hold","finalizers":["example.com/hold"]}}"#;
    let o = create_from_str(&c, None, "doomed", hold, &[]);
    assert!(o.status.success(), "{}", text(&o));
    c.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let msg = c.eventually("create refused in a terminating namespace", 60, |c| {
        let body = flunder("late");
        let f = c.dir.join("late.json");
        std::fs::write(&f, body).expect("write");
        let o = c.kubectl(&["create", "-n", "doomed", "-f", f.to_str().expect("utf8")]);
        let t = text(&o);
        if t.contains("because it is being terminated") {
            Ok(t)
        } else {
            Err(t)
        }
    });
    assert!(
        msg.contains(r#"flunders.wardle.example.com "late" is forbidden: unable to create new content in namespace doomed because it is being terminated"#),
        "{msg}"
    );
    c.eventually("flunders in doomed deleted", 120, |c| {
        let o = c.kubectl(&["get", "flunders", "-n", "doomed", "-o", "name"]);
        let t = text(&o);
        if o.status.success() && t.trim().is_empty() {
            Ok(())
        } else {
            Err(t)
        }
    });
    c.kubectl_ok(&[
        "patch",
        "configmap",
        "hold",
        "-n",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    c.eventually("namespace doomed gone", 120, |c| {
        let o = c.kubectl(&["get", "namespace", "doomed", "-o", "name"]);
        let t = text(&o);
        if t.contains("NotFound") {
            Ok(())
        } else {
            Err(t)
        }
    });

    // kube-apiserver hands its audit ID to wardle (Audit-Id request header), so one ID names
    // the request in both servers' audit logs.
    let o = c.kubectl(&[
        "get",
        "flunder",
        "my-first-flunder",
        "-n",
        "default",
        "-v=8",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let kube_audit_id = String::from_utf8_lossy(&o.stderr)
        .lines()
        .find_map(|l| {
            l.split_once("Audit-Id: ")
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("kubectl -v=8 shows no Audit-Id:\n{}", text(&o)));
    // The audit log names the real users (from the front proxy headers), not the aggregator's
    // identity, and the stored change leads to its audit event.
    let audit: Vec<serde_json::Value> = std::fs::read_to_string(c.dir.join("wardle/audit.log"))
        .expect("wardle wrote an audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit event per line"))
        .collect();
    let created = audit
        .iter()
        .find(|e| {
            e["stage"] == "ResponseComplete"
                && e["verb"] == "create"
                && e["objectRef"]["name"] == "my-first-flunder"
        })
        .unwrap_or_else(|| panic!("no audit event for the create: {audit:#?}"));
    assert_eq!(created["user"]["username"], "admin", "{created}");
    assert_eq!(created["responseStatus"]["code"], 201, "{created}");
    assert_eq!(
        created["annotations"]["authorization.k8s.io/decision"], "allow",
        "{created}"
    );
    assert!(
        audit
            .iter()
            .all(|e| e["user"]["username"] != "system:kube-aggregator"),
        "the aggregator's own requests are not wardle resources, and proxied ones are the user's"
    );
    let kube_id = kube_audit_id.split(',').next().unwrap_or("").trim();
    assert!(
        audit.iter().any(|e| e["auditID"] == kube_id
            && e["verb"] == "get"
            && e["user"]["username"] == "admin"),
        "no wardle audit event with kube-apiserver's audit ID {kube_id}"
    );
    // Denied by wardle's own SubjectAccessReview (alice straight to wardle; through the
    // aggregator kube-apiserver denies first): the decision annotation says so.
    let denied = audit
        .iter()
        .find(|e| {
            e["stage"] == "ResponseComplete"
                && e["user"]["username"] == "alice"
                && e["objectRef"]["resource"] == "fischers"
        })
        .unwrap_or_else(|| panic!("no audit event for alice's denied list: {audit:#?}"));
    assert_eq!(denied["responseStatus"]["code"], 403, "{denied}");
    assert_eq!(denied["responseStatus"]["reason"], "Forbidden", "{denied}");
    assert_eq!(
        denied["annotations"]["authorization.k8s.io/decision"], "forbid",
        "{denied}"
    );
    // The unknown token: one ResponseStarted event with the 401, as Go's failed-authn audit.
    assert!(
        audit.iter().any(|e| e["stage"] == "ResponseStarted"
            && e["responseStatus"]["code"] == 401
            && e["responseStatus"]["message"] == "Authentication failed, attempted: bearer"),
        "no audit event for the 401: {audit:#?}"
    );
    let db = format!("sqlite://{}", c.dir.join("wardle/wardle.db").display());
    let rows = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(wardle::report::query(
            &db,
            "SELECT audit_id FROM change_history WHERE name = 'my-first-flunder' AND type = 'ADDED'",
        ))
        .expect("change_history");
    assert_eq!(
        rows.rows,
        vec![vec![wardle::report::Datum::Text(
            created["auditID"].as_str().expect("auditID").to_string()
        )]],
        "events.audit_id is the create's auditID"
    );

    cluster_admission(&mut c);

    eprintln!(
        "aggregated e2e took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}

/// The test webhook server (a real HTTPS server with its own CA; it stands in for a platform
/// team's webhook such as Gatekeeper). It answers 401 to a call without the bearer token of
/// its plugin (`/mutate`: the mutating one, others: the validating one), so every call that
/// gets through proves --admission-control-config-file's credentials. `/validate` denies
/// flunders labelled `deny` (with a reason of its own), `/mutate` adds the label
/// `mutated: "yes"`, `/versions` denies flunders labelled `check-version` naming the version
/// it was sent and the version requested, `/guard` denies every DELETE naming the name it was
/// given.
fn webhook_server(ca: &Ca) -> u16 {
    use base64::Engine as _;
    use serde_json::{Value, json};
    let pair = ca.serving(&["127.0.0.1"]);
    let cfg = wardle::tls::server::server_config(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes())
        .expect("webhook tls");
    let review = |path: &str, r: &Value| -> Value {
        let req = &r["request"];
        let labels = &req["object"]["metadata"]["labels"];
        let mut resp = json!({"uid": req["uid"], "allowed": true});
        let mut deny = |status: Value| {
            resp["allowed"] = json!(false);
            resp["status"] = status;
        };
        match path {
            "/validate" if labels.get("deny").is_some() => {
                deny(json!({"code": 403, "reason": "PolicyViolation",
                    "message": "flunders labelled deny are not allowed"}));
            }
            "/versions" if labels.get("check-version").is_some() => {
                let v = |k: &str| req[k]["version"].as_str().unwrap_or("").to_string();
                let msg = format!("seen as {}, requested as {}", v("kind"), v("requestKind"));
                deny(json!({"message": msg}));
            }
            "/guard" => {
                let name = req["name"].as_str().unwrap_or("");
                deny(json!({"code": 403, "message": format!("delete of name {name:?}")}));
            }
            "/validate" => {
                resp["warnings"] = json!(["the validating webhook saw this ✓"]);
                resp["auditAnnotations"] = json!({"checked": "yes"});
            }
            "/mutate" => {
                let mut l = labels.clone();
                if !l.is_object() {
                    l = json!({});
                }
                l["mutated"] = json!("yes");
                let patch = json!([{"op": "add", "path": "/metadata/labels", "value": l}]);
                resp["patchType"] = json!("JSONPatch");
                resp["patch"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            }
            _ => {}
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
    };
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| async move {
        let path = req.uri().path().to_string();
        let token = if path == "/mutate" {
            MUTATING_WEBHOOK_TOKEN
        } else {
            VALIDATING_WEBHOOK_TOKEN
        };
        let authorized = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == format!("Bearer {token}").as_bytes());
        let body = axum::body::to_bytes(req.into_body(), 4 << 20)
            .await
            .unwrap_or_default();
        if !authorized {
            return (
                http::StatusCode::UNAUTHORIZED,
                [(http::header::CONTENT_TYPE, "text/plain")],
                String::new(),
            );
        }
        let r: Value = serde_json::from_slice(&body).unwrap_or_default();
        (
            http::StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            review(&path, &r).to_string(),
        )
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let rc = axum_server::tls_rustls::RustlsConfig::from_config(std::sync::Arc::new(cfg));
            axum_server::from_tcp_rustls(listener, rc)
                .expect("webhook listener")
                .serve(app.into_make_service())
                .await
                .expect("webhook server");
        });
    });
    port
}

/// A v1beta1 Flunder with `labels`, as JSON.
fn labelled(name: &str, labels: serde_json::Value) -> String {
    serde_json::json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
           "metadata": {"name": name, "labels": labels}, "spec": {}})
    .to_string()
}

/// The cluster's webhook configurations and policies for wardle's flunders (applied once;
/// every wardle sees them through its informers).
fn admission_objects(c: &mut Cluster) {
    use base64::Engine as _;
    use serde_json::json;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&c.webhook_ca.cert_pem);
    let dead_port = free_port();
    let rules = |ops: &[&str], versions: &[&str]| {
        json!([{"operations": ops, "apiGroups": ["wardle.example.com"],
                "apiVersions": versions, "resources": ["flunders"]}])
    };
    let writes = |versions: &[&str]| rules(&["CREATE", "UPDATE"], versions);
    let hook = |name: &str, url: String, rules: serde_json::Value, extra: serde_json::Value| {
        let mut h = json!({"name": name, "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": rules, "sideEffects": "None", "admissionReviewVersions": ["v1"]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            h[k] = v.clone();
        }
        h
    };
    let base = format!("https://127.0.0.1:{}", c.webhook_port);
    let dead = format!("https://127.0.0.1:{dead_port}/down");
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "wardle-e2e"},
         "webhooks": [
            hook("deny.wardle.test", format!("{base}/validate"), writes(&["*"]), json!({})),
            hook("versions.wardle.test", format!("{base}/versions"), writes(&["v1alpha1"]),
                 json!({"matchPolicy": "Equivalent"})),
            hook("guard.wardle.test", format!("{base}/guard"), rules(&["DELETE"], &["*"]),
                 json!({"objectSelector": {"matchLabels": {"guard": "1"}}})),
            hook("down-fail.wardle.test", dead.clone(), writes(&["*"]),
                 json!({"failurePolicy": "Fail", "objectSelector": {"matchLabels": {"down": "fail"}}})),
            hook("down-ignore.wardle.test", dead, writes(&["*"]),
                 json!({"failurePolicy": "Ignore", "objectSelector": {"matchLabels": {"down": "ignore"}}})),
         ]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "wardle-e2e"},
         "webhooks": [hook("label.wardle.test", format!("{base}/mutate"), writes(&["*"]),
                           json!({"objectSelector": {"matchLabels": {"mutate": "me"}}}))]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "no-vap-deny"},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": writes(&["*"])},
                  "validations": [{"expression": "!has(object.metadata.labels) || !('vap-deny' in object.metadata.labels)",
                                   "message": "flunders may not carry vap-deny"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "no-vap-deny-binding"},
         "spec": {"policyName": "no-vap-deny", "validationActions": ["Deny"]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "warn-names"},
         "spec": {"matchConstraints": {"resourceRules": writes(&["*"])},
                  "validations": [{"expression": "!object.metadata.name.contains('warn-')",
                                   "messageExpression": "'name ' + object.metadata.name + ' is discouraged'"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "warn-names-binding"},
         "spec": {"policyName": "warn-names", "validationActions": ["Warn"]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "label-limit"},
         "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                  "matchConstraints": {"resourceRules": writes(&["*"])},
                  "validations": [{"expression": "!has(object.metadata.labels) || size(object.metadata.labels) <= int(params.data.max)",
                                   "messageExpression": "'at most ' + params.data.max + ' labels'"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "label-limit-binding"},
         "spec": {"policyName": "label-limit", "validationActions": ["Deny"],
                  "paramRef": {"name": "label-limit", "parameterNotFoundAction": "Allow"}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "label-limit", "namespace": "default"},
         "data": {"max": "3"}},
        // wardle reads the params as its service account (Go's needs the same grant).
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "wardle-params", "namespace": "default"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "wardle-params", "namespace": "default"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "wardle-params"},
         "subjects": [{"kind": "ServiceAccount", "name": "apiserver", "namespace": "wardle"}]},
    ]});
    let f = c.dir.join("admission.json");
    std::fs::write(&f, objects.to_string()).expect("write");
    c.kubectl_ok(&["apply", "-f", f.to_str().expect("utf8")]);
}

/// The cases every engine × path runs, through `via` (a kubeconfig: the aggregator, or wardle
/// itself with a bearer token), names prefixed with `p`: a validating webhook's denial (its
/// message and own reason) and warning reach the client, a mutating webhook's label is
/// stored, a ValidatingAdmissionPolicy denies with its message and warns, and a
/// deletecollection's items reach webhooks with name "" (a DELETE of one, with its name).
fn admission_cases(c: &mut Cluster, via: &Path, p: &str) {
    use serde_json::json;
    let create = |c: &Cluster, name: &str, labels: serde_json::Value| {
        let o = create_from_str(
            c,
            Some(via),
            "default",
            &labelled(&format!("{p}-{name}"), labels),
            &[],
        );
        (o.status.success(), text(&o))
    };
    // The first case waits for this wardle's informers to hold the webhooks.
    c.eventually(&format!("{p}: the validating webhook denies"), 60, |c| {
        let _ = c.kubectl_as(via, &["delete", "flunder", &format!("{p}-denied"), "-n", "default", "--ignore-not-found"]);
        match create(c, "denied", json!({"deny": "1"})) {
            (false, t) if t.contains(r#"Error from server (PolicyViolation)"#)
                && t.contains(r#"admission webhook "deny.wardle.test" denied the request: flunders labelled deny are not allowed"#) => Ok(()),
            (_, t) => Err(t),
        }
    });
    let (ok, t) = create(c, "warned", json!({}));
    assert!(
        ok && t.contains("Warning: the validating webhook saw this ✓"),
        "{p}: {t}"
    );

    let name = format!("{p}-mutant");
    c.eventually(
        &format!("{p}: the mutating webhook's label is stored"),
        60,
        |c| {
            let _ = c.kubectl_as(
                via,
                &[
                    "delete",
                    "flunder",
                    &name,
                    "-n",
                    "default",
                    "--ignore-not-found",
                ],
            );
            let (ok, t) = create(c, "mutant", json!({"mutate": "me"}));
            let got = c.kubectl_as(
                via,
                &[
                    "get",
                    "flunder",
                    &name,
                    "-n",
                    "default",
                    "-o",
                    "jsonpath={.metadata.labels.mutated}",
                ],
            );
            if ok && text(&got).trim() == "yes" {
                Ok(())
            } else {
                Err(format!("{t}{}", text(&got)))
            }
        },
    );

    let (ok, t) = create(c, "vap", json!({"vap-deny": "1"}));
    // Reason Invalid (422) with the message as the one cause: kubectl prints it as Go's does.
    let want = format!(
        r#"The flunders "{p}-vap" is invalid: : ValidatingAdmissionPolicy 'no-vap-deny' with binding 'no-vap-deny-binding' denied request: flunders may not carry vap-deny"#
    );
    assert!(!ok && t.contains(&want), "{p}: {t}");
    let (ok, t) = create(c, "warn-me", json!({}));
    let want = format!(
        "Warning: Validation failed for ValidatingAdmissionPolicy 'warn-names' with binding 'warn-names-binding': name {p}-warn-me is discouraged"
    );
    assert!(ok && t.contains(&want), "{p}: {t}");

    let (ok, t) = create(c, "guarded", json!({"guard": "1"}));
    assert!(ok, "{p}: {t}");
    let guarded = format!("{p}-guarded");
    let o = c.kubectl_as(via, &["delete", "flunder", &guarded, "-n", "default"]);
    assert!(
        text(&o).contains(&format!("delete of name {guarded:?}")),
        "{p}: {}",
        text(&o)
    );
    let collection =
        "/apis/wardle.example.com/v1beta1/namespaces/default/flunders?labelSelector=guard%3D1";
    let o = c.kubectl_as(via, &["delete", "--raw", collection]);
    assert!(
        text(&o).contains(r#"delete of name """#),
        "{p}: {}",
        text(&o)
    );
}

/// The cluster's admission reaches wardle: webhooks (validating, mutating, matchPolicy
/// Equivalent, failurePolicy with the webhook down, dryRun) and ValidatingAdmissionPolicies
/// (Deny with the message, Warn as a Warning, params from a ConfigMap) — on both engines,
/// through the aggregator and straight to wardle with a bearer token (TokenReview).
fn cluster_admission(c: &mut Cluster) {
    use serde_json::json;
    admission_objects(c);
    let wardle_ca = std::fs::read_to_string(c.dir.join("wardle-ca.crt")).expect("wardle ca");
    let direct = |c: &Cluster, port: u16, file: &str| {
        let kc = c.dir.join(file);
        kubeconfig(
            &kc,
            &format!("https://127.0.0.1:{port}"),
            &wardle_ca,
            None,
            Some(ADMIN_TOKEN),
        );
        kc
    };
    let sqlite_direct = direct(c, c.wardle_port, "admin-direct.kubeconfig");
    let pg_direct = direct(c, c.pg_port, "admin-direct-pg.kubeconfig");
    let admin = c.admin.clone();
    admission_cases(c, &admin, "agg-sqlite");
    admission_cases(c, &sqlite_direct, "direct-sqlite");
    admission_cases(c, &pg_direct, "direct-pg");

    // The rest once (the dispatch is the same for every path and engine).
    // A dryRun is sent to sideEffects None webhooks too.
    let o = create_from_str(
        c,
        None,
        "default",
        &labelled("denied", json!({"deny": "1"})),
        &["--dry-run=server"],
    );
    assert!(
        text(&o).contains(r#"admission webhook "deny.wardle.test" denied the request: flunders labelled deny are not allowed"#),
        "{}", text(&o)
    );
    // The validating webhook's auditAnnotations go into wardle's audit event as
    // `<webhook>/<key>` (Go's dispatcher).
    let audit = std::fs::read_to_string(c.dir.join("wardle/audit.log")).expect("audit log");
    assert!(
        audit.lines().any(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("an audit event");
            e["stage"] == "ResponseComplete"
                && e["objectRef"]["name"] == "agg-sqlite-warned"
                && e["annotations"]["deny.wardle.test/checked"] == "yes"
        }),
        "no audit event of the warned create with the webhook's annotation"
    );
    // matchPolicy Equivalent: a webhook for v1alpha1 sees a v1beta1 request, in v1alpha1.
    let o = create_from_str(
        c,
        None,
        "default",
        &labelled("versioned", json!({"check-version": "1"})),
        &[],
    );
    assert!(
        text(&o).contains(r#"admission webhook "versions.wardle.test" denied the request: seen as v1alpha1, requested as v1beta1"#),
        "{}", text(&o)
    );
    // The webhook is down: failurePolicy Fail refuses, Ignore admits.
    let o = create_from_str(
        c,
        None,
        "default",
        &labelled("down-fail", json!({"down": "fail"})),
        &[],
    );
    assert!(
        !o.status.success() && text(&o).contains(r#"Internal error occurred: failed calling webhook "down-fail.wardle.test": failed to call webhook: Post"#),
        "{}", text(&o)
    );
    let o = create_from_str(
        c,
        None,
        "default",
        &labelled("down-ignore", json!({"down": "ignore"})),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    // A policy with params (a ConfigMap in the request's namespace).
    let o = create_from_str(
        c,
        None,
        "default",
        &labelled("many", json!({"a": "1", "b": "2", "c": "3", "d": "4"})),
        &[],
    );
    assert!(
        text(&o).contains("ValidatingAdmissionPolicy 'label-limit' with binding 'label-limit-binding' denied request: at most 3 labels"),
        "{}", text(&o)
    );

    // Last, the Postgres wardle behind the aggregator.
    let pg_port = c.pg_port;
    register(c, pg_port);
    c.eventually("the aggregator proxies to the Postgres wardle", 120, |c| {
        let o = c.kubectl(&["get", "flunders", "-n", "default", "-o", "name"]);
        let t = text(&o);
        if o.status.success() && t.contains("direct-pg-warned") && !t.contains("direct-sqlite") {
            Ok(())
        } else {
            Err(t)
        }
    });
    admission_cases(c, &admin, "agg-pg");
}
