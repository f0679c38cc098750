//! End to end behind a real kube-apiserver: kine as its etcd, kube-controller-manager for
//! namespace deletion, and wardle as a local process registered through an ExternalName Service
//! and APIServices, then driven with kubectl through the aggregator (the seed's flow, watch,
//! RBAC via SubjectAccessReview, impersonation, explain, NamespaceLifecycle, namespace deletion).
//!
//! The binaries come from scripts/kube-bins.sh (scripts/test.sh runs it first; it builds them
//! once from the Go module proxy and caches them). Without them this test fails, on purpose.

mod common;

use common::pki::{Ca, kubeconfig};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "admin-token-e2e";
const ALICE_TOKEN: &str = "alice-token-e2e";
const WARDLE_TOKEN: &str = "wardle-token-e2e";
const KCM_TOKEN: &str = "kcm-token-e2e";

fn artifact(path: &str) -> String {
    format!("{}/artifacts/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
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

/// Child processes killed when the test ends, with their logs for failure messages.
struct Procs {
    children: Vec<(String, Child, PathBuf)>,
}

impl Procs {
    fn spawn(&mut self, name: &str, cmd: &mut Command, dir: &Path) {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push((name.to_string(), child, log));
    }

    /// Panic (with the logs) if a process has exited: no point waiting for it.
    fn check_alive(&mut self) {
        let dead: Vec<String> = self
            .children
            .iter_mut()
            .filter_map(|(n, c, _)| c.try_wait().ok().flatten().map(|_| n.clone()))
            .collect();
        if !dead.is_empty() {
            panic!("{dead:?} exited\n{}", self.report());
        }
    }

    /// The last lines of every log, and which processes have died.
    fn report(&mut self) -> String {
        let mut s = String::new();
        for (name, child, log) in &mut self.children {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let exited = child.try_wait().ok().flatten();
            s.push_str(&format!(
                "---- {name} ({}) ----\n{}\n",
                exited.map_or("running".to_string(), |e| format!("exited: {e}")),
                lines[lines.len().saturating_sub(25)..]
                    .iter()
                    .map(|l| l.chars().take(400).collect::<String>())
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        s
    }

    fn log_of(&self, name: &str) -> String {
        self.children
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, l)| std::fs::read_to_string(l).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        // Reverse order: wardle and the controller manager before the apiserver before kine.
        for (_, child, _) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Cluster {
    dir: PathBuf,
    /// wardle's own port, for requests that bypass the aggregator.
    wardle_port: u16,
    admin: PathBuf,
    procs: Procs,
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
    let mut procs = Procs {
        children: Vec::new(),
    };

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
    let mut cluster = Cluster {
        dir: dir.to_path_buf(),
        wardle_port,
        admin,
        procs,
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
    std::fs::create_dir_all(dir.join("wardle")).expect("wardle dir");
    cluster.procs.spawn(
        "wardle",
        Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
            .args([
                format!("--secure-port={wardle_port}"),
                "--bind-address=127.0.0.1".into(),
                format!("--cert-dir={}", p(&dir.join("wardle"))),
                format!(
                    "--database-url=sqlite://{}?mode=rwc",
                    p(&dir.join("wardle/wardle.db"))
                ),
                format!("--tls-cert-file={}", p(&wardle_crt)),
                format!("--tls-private-key-file={}", p(&wardle_key)),
                format!("--authentication-kubeconfig={}", p(&wardle_kc)),
                format!("--authorization-kubeconfig={}", p(&wardle_kc)),
                format!("--kubeconfig={}", p(&wardle_kc)),
            ])
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1"),
        dir,
    );

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

    // wardle behind the aggregator: an ExternalName Service (the aggregator's default service
    // resolver dials externalName:port; endpoints could not hold a loopback address).
    let ca_bundle = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&wardle_ca.cert_pem)
    };
    let mut objects = vec![serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "wardle"},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                  "ports": [{"port": wardle_port, "protocol": "TCP"}]}
    })];
    for (v, prio) in [("v1alpha1", 10), ("v1beta1", 15)] {
        objects.push(serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": format!("{v}.wardle.example.com")},
            "spec": {"group": "wardle.example.com", "version": v, "groupPriorityMinimum": 1000,
                      "versionPriority": prio, "caBundle": ca_bundle,
                      "service": {"name": "api", "namespace": "wardle", "port": wardle_port}}
        }));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let f = dir.join("register.json");
    std::fs::write(&f, serde_json::to_vec(&list).expect("json")).expect("write");
    cluster.kubectl_ok(&["apply", "-f", &p(&f)]);
    cluster
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

    cluster_admission(&mut c);

    eprintln!(
        "aggregated e2e took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}

/// The test webhook server (a real HTTPS server with its own CA; it stands in for a platform
/// team's webhook such as Gatekeeper): `/validate` denies flunders labelled `deny`,
/// `/mutate` adds the label `mutated: "yes"`, `/versions` denies flunders labelled
/// `check-version` naming the version it was sent and the version requested.
fn webhook_server(ca: &Ca) -> u16 {
    use base64::Engine as _;
    use serde_json::{Value, json};
    let pair = ca.serving(&["127.0.0.1"]);
    let cfg = wardle::tls::server::server_config(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes())
        .expect("webhook tls");
    let review = |path: &str, r: &Value| -> Value {
        let labels = &r["request"]["object"]["metadata"]["labels"];
        let mut resp = json!({"uid": r["request"]["uid"], "allowed": true});
        match path {
            "/validate" if labels.get("deny").is_some() => {
                resp["allowed"] = json!(false);
                resp["status"] = json!({"code": 403, "reason": "Forbidden",
                    "message": "flunders labelled deny are not allowed"});
            }
            "/validate" => resp["warnings"] = json!(["the validating webhook saw this"]),
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
            "/versions" if labels.get("check-version").is_some() => {
                let msg = format!(
                    "seen as {}, requested as {}",
                    r["request"]["kind"]["version"].as_str().unwrap_or(""),
                    r["request"]["requestKind"]["version"]
                        .as_str()
                        .unwrap_or("")
                );
                resp["allowed"] = json!(false);
                resp["status"] = json!({"message": msg});
            }
            _ => {}
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
    };
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| async move {
        let path = req.uri().path().to_string();
        let body = axum::body::to_bytes(req.into_body(), 4 << 20)
            .await
            .unwrap_or_default();
        let r: Value = serde_json::from_slice(&body).unwrap_or_default();
        (
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

/// The cluster's admission reaches wardle: webhooks (validating, mutating, matchPolicy
/// Equivalent, failurePolicy with the webhook down, dryRun) and ValidatingAdmissionPolicies
/// (Deny with the message, Warn as a Warning, params from a ConfigMap).
fn cluster_admission(c: &mut Cluster) {
    use base64::Engine as _;
    use serde_json::json;
    let ca = Ca::new("e2e-webhook-ca");
    let port = webhook_server(&ca);
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem);
    let dead_port = free_port();
    let rules = |versions: &[&str]| {
        json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["wardle.example.com"],
                "apiVersions": versions, "resources": ["flunders"]}])
    };
    let hook = |name: &str, url: String, rules: serde_json::Value, extra: serde_json::Value| {
        let mut h = json!({"name": name, "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": rules, "sideEffects": "None", "admissionReviewVersions": ["v1"]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            h[k] = v.clone();
        }
        h
    };
    let base = format!("https://127.0.0.1:{port}");
    let dead = format!("https://127.0.0.1:{dead_port}/down");
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "wardle-e2e"},
         "webhooks": [
            hook("deny.wardle.test", format!("{base}/validate"), rules(&["*"]), json!({})),
            hook("versions.wardle.test", format!("{base}/versions"), rules(&["v1alpha1"]),
                 json!({"matchPolicy": "Equivalent"})),
            hook("down-fail.wardle.test", dead.clone(), rules(&["*"]),
                 json!({"failurePolicy": "Fail", "objectSelector": {"matchLabels": {"down": "fail"}}})),
            hook("down-ignore.wardle.test", dead, rules(&["*"]),
                 json!({"failurePolicy": "Ignore", "objectSelector": {"matchLabels": {"down": "ignore"}}})),
         ]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "wardle-e2e"},
         "webhooks": [hook("label.wardle.test", format!("{base}/mutate"), rules(&["*"]),
                           json!({"objectSelector": {"matchLabels": {"mutate": "me"}}}))]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "no-vap-deny"},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": rules(&["*"])},
                  "validations": [{"expression": "!has(object.metadata.labels) || !('vap-deny' in object.metadata.labels)",
                                   "message": "flunders may not carry vap-deny"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "no-vap-deny-binding"},
         "spec": {"policyName": "no-vap-deny", "validationActions": ["Deny"]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "warn-names"},
         "spec": {"matchConstraints": {"resourceRules": rules(&["*"])},
                  "validations": [{"expression": "!object.metadata.name.startsWith('warn-')",
                                   "messageExpression": "'name ' + object.metadata.name + ' is discouraged'"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "warn-names-binding"},
         "spec": {"policyName": "warn-names", "validationActions": ["Warn"]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "label-limit"},
         "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                  "matchConstraints": {"resourceRules": rules(&["*"])},
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

    let labelled = |name: &str, labels: serde_json::Value| {
        json!({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
               "metadata": {"name": name, "labels": labels}, "spec": {}})
        .to_string()
    };
    // A validating webhook denies; its message reaches kubectl as Go formats it (also on dryRun:
    // sideEffects None webhooks are called for dry runs).
    for dry in [&["--dry-run=server"][..], &[]] {
        c.eventually("the validating webhook denies", 60, |c| {
            let o = create_from_str(c, None, "default", &labelled("denied", json!({"deny": "1"})), dry);
            let t = text(&o);
            if !o.status.success() && t.contains(r#"admission webhook "deny.wardle.test" denied the request: flunders labelled deny are not allowed"#) {
                Ok(())
            } else {
                let _ = c.kubectl(&["delete", "flunder", "denied", "-n", "default", "--ignore-not-found"]);
                Err(t)
            }
        });
    }
    // Its warnings reach kubectl.
    let o = create_from_str(c, None, "default", &labelled("warned", json!({})), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Warning: the validating webhook saw this"),
        "{}",
        text(&o)
    );

    // A mutating webhook adds a label that is stored.
    c.eventually("the mutating webhook labels", 60, |c| {
        let _ = c.kubectl(&[
            "delete",
            "flunder",
            "mutant",
            "-n",
            "default",
            "--ignore-not-found",
        ]);
        let o = create_from_str(
            c,
            None,
            "default",
            &labelled("mutant", json!({"mutate": "me"})),
            &[],
        );
        let got = c.kubectl(&[
            "get",
            "flunder",
            "mutant",
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.labels.mutated}",
        ]);
        if o.status.success() && text(&got).trim() == "yes" {
            Ok(())
        } else {
            Err(format!("{}{}", text(&o), text(&got)))
        }
    });

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
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(r#"Internal error occurred: failed calling webhook "down-fail.wardle.test": failed to call webhook: Post"#),
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

    // ValidatingAdmissionPolicy: Deny with its message, Warn as a Warning, params.
    let o = create_from_str(
        c,
        None,
        "default",
        &labelled("vap", json!({"vap-deny": "1"})),
        &[],
    );
    assert!(
        text(&o).contains(// Reason Invalid (422) with the message as the one cause: kubectl prints it as Go's does.
        r#"The flunders "vap" is invalid: : ValidatingAdmissionPolicy 'no-vap-deny' with binding 'no-vap-deny-binding' denied request: flunders may not carry vap-deny"#),
        "{}", text(&o)
    );
    let o = create_from_str(c, None, "default", &labelled("warn-me", json!({})), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Warning: Validation failed for ValidatingAdmissionPolicy 'warn-names' with binding 'warn-names-binding': name warn-me is discouraged"),
        "{}", text(&o)
    );
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
}
