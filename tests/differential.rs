//! Differential test: the same request sequence (tests/differential/requests.yaml) goes to the
//! real Go sample-apiserver v0.35.4 on etcd 3.6.5 and to wardle on SQLite; the answers are
//! normalised (uids, timestamps, resourceVersions as "k-th write", generated names, continue
//! tokens) and compared: status, Content-Type, Warning headers and body (Status reason, message,
//! details and causes included). Differences are only accepted where tests/differential/allow.yaml
//! lists them, each with a reason; its `deliberate` entries must be named in the README's
//! "Differences from the Go sample-apiserver" section. An allow-list entry (or one of its request
//! patterns) that excuses nothing fails the test too, so fixed differences leave the list.
//!
//! The Go peers come from scripts/go-peers.sh (scripts/test.sh runs it and exports
//! WARDLE_GO_PEERS). Without them the test skips loudly, except under CI where it fails.
//!
//! The one test double: the Go server's core-cluster kubeconfigs (--kubeconfig and the delegated
//! authentication/authorization ones) point at a closed port. Nothing here reaches them: both
//! servers authenticate the same client certificate (wardle's admin, group system:masters, which
//! Go's delegated authorizer allows without a SubjectAccessReview); the admission plugins that
//! read core objects are off on Go as they are absent from standalone wardle (NamespaceLifecycle
//! and the webhook/policy plugins), and so is priority-and-fairness, which needs core informers.

mod common;

use common::Engine;
use common::pki::{Ca, kubeconfig};
use common::procs::{Procs, free_port};
use common::server::{Wardle, install_crypto};
use http::{Method, Request};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SAMPLE_VERSION: &str = "v0.35.4";
const ETCD_VERSION: &str = "v3.6.5";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/differential")
        .join(name)
}

// ---------------------------------------------------------------------------------------------
// The request table and the allow-list.

/// One request of the sequence. `{{var}}` in path, headers and body is replaced per server by
/// a value captured from an earlier answer of that server (or a predefined one).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Step {
    id: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    /// A JSON body (sent as `application/json` unless `content_type` says otherwise).
    #[serde(default)]
    json: Option<Value>,
    /// A body sent as is.
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    accept: Option<String>,
    /// Read a streaming answer (watch) to its end; the path must bound it with timeoutSeconds.
    #[serde(default)]
    watch: bool,
    /// Compare only this JSON pointer of the body (e.g. one OpenAPI definition).
    #[serde(default)]
    select: Option<String>,
    /// Compare status and Content-Type only (documents whose bodies differ by construction).
    #[serde(default)]
    skip_body: bool,
    /// Wait before sending (Go's BanFlunder admission reads Fischers from an informer).
    #[serde(default)]
    sleep_ms: u64,
    /// Variables to capture from the JSON answer: name -> JSON pointer.
    #[serde(default)]
    capture: BTreeMap<String, String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AllowList {
    /// Differences where wardle is deliberately different (and better); each id is in the README.
    deliberate: Vec<Allow>,
    /// Differences that are wardle bugs not fixed yet; each goes once its fix lands.
    #[serde(default)]
    pending: Vec<Allow>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Allow {
    id: String,
    /// For `pending`: the issue-10 kind number, or `new` for a fault that list lacks.
    #[serde(default)]
    kind: Option<Value>,
    reason: String,
    /// Request ids (`*` matches any run of characters).
    requests: Vec<String>,
    /// Aspects that may differ: `status`, `content-type`, `warning`, or `body` / `body/…`
    /// parts of the normalised body, with what lies below them (`*` matches any characters,
    /// e.g. `body/items/*/bogus`); empty = everything.
    #[serde(default)]
    paths: Vec<String>,
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

impl Allow {
    fn covers(&self, request: &str, path: &str) -> bool {
        self.requests.iter().any(|p| glob(p, request))
            && (self.paths.is_empty()
                || self
                    .paths
                    .iter()
                    .any(|p| glob(p, path) || glob(&format!("{p}/*"), path)))
    }
}

fn load_allow_list() -> AllowList {
    let text = std::fs::read_to_string(data("allow.yaml")).expect("read allow.yaml");
    serde_saphyr::from_str(&text).expect("allow.yaml parses")
}

/// The sequence: tests/differential/requests.yaml, or the file WARDLE_DIFF_REQUESTS names (to run
/// another sequence against the same allow-list).
fn sequence_path() -> PathBuf {
    std::env::var_os("WARDLE_DIFF_REQUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| data("requests.yaml"))
}

fn load_steps(path: &Path) -> Vec<Step> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let steps: Vec<Step> = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    let mut seen = BTreeSet::new();
    for s in &steps {
        assert!(seen.insert(s.id.clone()), "duplicate request id {}", s.id);
    }
    steps
}

/// Every deliberate difference is explained in the README (by its id), and every pending one
/// names its issue-10 kind.
#[test]
fn allow_list_matches_readme() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("## Differences from the Go sample-apiserver")
        .expect("README has a Differences section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let allow = load_allow_list();
    let steps: BTreeSet<String> = load_steps(&data("requests.yaml"))
        .into_iter()
        .map(|s| s.id)
        .collect();
    for a in allow.deliberate.iter().chain(&allow.pending) {
        assert!(!a.reason.trim().is_empty(), "{} has no reason", a.id);
        for r in &a.requests {
            assert!(
                steps.iter().any(|s| glob(r, s)),
                "allow-list entry {} names request {r}, which requests.yaml does not have",
                a.id
            );
        }
    }
    for a in &allow.deliberate {
        assert!(
            section.contains(&format!("`{}`", a.id)),
            "allow-list entry `{}` is not explained in the README's Differences section",
            a.id
        );
    }
    for a in &allow.pending {
        assert!(a.kind.is_some(), "pending entry {} names no kind", a.id);
    }
}

// ---------------------------------------------------------------------------------------------
// The Go peers.

/// The directory of scripts/go-peers.sh's binaries, or None (skip) when they are absent and
/// this is not CI.
fn go_peers() -> Option<PathBuf> {
    let dir = match std::env::var_os("WARDLE_GO_PEERS") {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("WARDLE_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wardle")))
                .unwrap_or_default();
            cache.join(format!("go-peers-{SAMPLE_VERSION}-{ETCD_VERSION}"))
        }
    };
    if dir.join("sample-apiserver").is_file() && dir.join("etcd").is_file() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "differential test: the Go peers are missing in {} and CI is set; scripts/test.sh runs \
         scripts/go-peers.sh to build them",
        dir.display()
    );
    // Straight to stderr, not through eprintln!: the test harness would capture (hide) it.
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!! SKIPPED: differential test against the Go sample-apiserver NOT RUN.\n!! The Go \
         peers (sample-apiserver, etcd) are missing in {}.\n!! Run scripts/go-peers.sh (or set \
         WARDLE_GO_PEERS) to run it.\n{bar}\n",
        dir.display(),
        bar = "!".repeat(78)
    );
    None
}

/// etcd and the Go sample-apiserver, and the port the latter serves on.
struct GoPeers {
    procs: Procs,
    port: u16,
}

/// Start etcd and the sample-apiserver in `dir`, trusting `client_ca` for client certificates.
fn start_go(bins: &Path, dir: &Path, client_ca: &Path, serving_ca: &Ca) -> GoPeers {
    let etcd_port = free_port();
    let peer_port = free_port();
    let port = free_port();
    let mut peers = GoPeers {
        procs: Procs::default(),
        port,
    };
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    peers.procs.spawn(
        "etcd",
        Command::new(bins.join("etcd"))
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--log-level=warn"),
        dir,
    );
    let (crt, key) = serving_ca
        .serving(&["127.0.0.1", "localhost"])
        .write(dir, "go-serving");
    // The core cluster the Go server would ask: a closed port (see the file's first comment).
    let nowhere = dir.join("nowhere.kubeconfig");
    kubeconfig(
        &nowhere,
        "https://127.0.0.1:1",
        &serving_ca.cert_pem,
        None,
        None,
    );
    let p = |p: &Path| p.display().to_string();
    peers.procs.spawn(
        "sample-apiserver",
        Command::new(bins.join("sample-apiserver")).args([
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", p(&crt)),
            format!("--tls-private-key-file={}", p(&key)),
            format!("--cert-dir={}", p(&dir.join("go-certs"))),
            format!("--client-ca-file={}", p(client_ca)),
            format!("--kubeconfig={}", p(&nowhere)),
            format!("--authentication-kubeconfig={}", p(&nowhere)),
            format!("--authorization-kubeconfig={}", p(&nowhere)),
            "--authentication-skip-lookup".into(),
            "--enable-priority-and-fairness=false".into(),
            "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,\
             ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy"
                .into(),
        ]),
        dir,
    );
    peers
}

// ---------------------------------------------------------------------------------------------
// Sending.

/// One server under comparison, with the variables captured from its answers.
struct Peer {
    name: &'static str,
    client: kube::Client,
    vars: HashMap<String, String>,
}

/// An answer as compared: status, Content-Type, Warning headers, and the body as JSON (a watch
/// stream is an array of its events; YAML is parsed; other text is a string).
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    content_type: String,
    warnings: Vec<String>,
    body: Value,
}

fn substitute(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find("}}").expect("unclosed {{ in requests.yaml");
        let name = &after[..end];
        // A value this server never answered: a marker the other server will not see, so the
        // difference shows in the answers rather than stopping the sequence.
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => out.push_str(&format!("uncaptured-{name}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn parse_body(content_type: &str, bytes: &[u8], watch: bool) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Value::String(format!("<{} bytes of binary>", bytes.len()));
    };
    if watch && content_type.contains("json") {
        return Value::Array(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.into())))
                .collect(),
        );
    }
    if content_type.contains("json")
        && let Ok(v) = serde_json::from_str(text)
    {
        return v;
    }
    if content_type.contains("yaml")
        && let Ok(v) = serde_saphyr::from_str::<Value>(text)
    {
        return v;
    }
    Value::String(text.into())
}

impl Peer {
    async fn send(&mut self, step: &Step) -> Answer {
        let path = substitute(&step.path, &self.vars);
        let method = Method::from_bytes(step.method.as_bytes()).expect("method");
        let mut b = Request::builder().method(method).uri(path);
        let body = match (&step.json, &step.raw) {
            (Some(j), _) => {
                let text = substitute(&serde_json::to_string(j).expect("json"), &self.vars);
                b = b.header(
                    "content-type",
                    step.content_type.as_deref().unwrap_or("application/json"),
                );
                text.into_bytes()
            }
            (None, Some(r)) => {
                if let Some(ct) = &step.content_type {
                    b = b.header("content-type", ct.as_str());
                }
                substitute(r, &self.vars).into_bytes()
            }
            (None, None) => Vec::new(),
        };
        if let Some(a) = &step.accept {
            b = b.header("accept", a.as_str());
        }
        let req = b
            .body(kube::client::Body::from(body))
            .expect("request builds");
        let resp = tokio::time::timeout(Duration::from_secs(20), self.client.send(req))
            .await
            .unwrap_or_else(|_| panic!("{}: {} got no answer within 20 s", self.name, step.id))
            .unwrap_or_else(|e| panic!("{}: {} failed: {e}", self.name, step.id));
        let (parts, body) = resp.into_parts();
        // A bounded read: a watch must end by its timeoutSeconds.
        let bytes = tokio::time::timeout(Duration::from_secs(20), body.collect())
            .await
            .unwrap_or_else(|_| panic!("{}: {}'s body did not end within 20 s", self.name, step.id))
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        let content_type = header("content-type");
        let warnings = parts
            .headers
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect();
        let body = parse_body(&content_type, &bytes, step.watch);
        for (var, pointer) in &step.capture {
            if let Some(v) = body.pointer(pointer) {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.vars.insert(var.clone(), v);
            }
        }
        Answer {
            status: parts.status.as_u16(),
            content_type,
            warnings,
            body,
        }
    }
}

fn peer_client(name: &'static str, kubeconfig_path: &Path) -> impl Future<Output = Peer> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig_path).expect("kubeconfig");
    async move {
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        cfg.default_retry = false;
        cfg.read_timeout = Some(Duration::from_secs(30));
        let mut vars = HashMap::new();
        vars.insert("a".into(), "/apis/wardle.example.com/v1alpha1".into());
        vars.insert("b".into(), "/apis/wardle.example.com/v1beta1".into());
        Peer {
            name,
            client: kube::Client::try_from(cfg).expect("client"),
            vars,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Normalising.

/// What makes one server's answers comparable with the other's. Volatile values are named by
/// the object they belong to, so that a write one server accepts and the other refuses does not
/// shift every later value: a uid becomes `<uid:ns/name>` (the object it first appeared on), an
/// object's resourceVersion `<rv:ns/name#k>` (its k-th write seen), any other resourceVersion
/// (a list's, an error message's) `<rv:after ns/name#k>` (the latest write before it);
/// generated names keep their generateName prefix; continue tokens, timestamps and this server's port are
/// masked.
#[derive(Default)]
struct Normaliser {
    uids: HashMap<String, String>,
    /// resourceVersion -> the write it names, ascending.
    writes: BTreeMap<u64, String>,
    /// generateName prefixes the requests use: a prefix and five more name characters is a
    /// generated name.
    prefixes: Vec<String>,
    port: u16,
}

fn visit_objects(v: &Value, f: &mut impl FnMut(&Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(meta)) = m.get("metadata") {
                f(meta);
            }
            for x in m.values() {
                visit_objects(x, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| visit_objects(x, f)),
        _ => {}
    }
}

impl Normaliser {
    fn learn(&mut self, answers: &[Answer]) {
        // resourceVersion -> object key, then numbered per object in resourceVersion order.
        let mut rvs: BTreeMap<u64, String> = BTreeMap::new();
        for a in answers {
            visit_objects(&a.body, &mut |meta| {
                let Some(Value::String(name)) = meta.get("name") else {
                    return;
                };
                let key = match meta.get("namespace") {
                    Some(Value::String(ns)) => format!("{ns}/{name}"),
                    _ => name.clone(),
                };
                if let Some(Value::String(uid)) = meta.get("uid") {
                    self.uids.entry(uid.clone()).or_insert(key.clone());
                }
                if let Some(rv) = meta
                    .get("resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    rvs.entry(rv).or_insert(key);
                }
            });
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (rv, key) in rvs {
            let k = counts.entry(key.clone()).or_insert(0);
            *k += 1;
            self.writes.insert(rv, format!("{key}#{k}"));
        }
    }

    fn rv(&self, s: &str) -> String {
        match s.parse::<u64>() {
            Ok(0) | Err(_) => s.to_string(),
            Ok(r) => match self.writes.range(..=r).next_back() {
                Some((w, name)) if *w == r => format!("<rv:{}>", self.names(name)),
                Some((_, name)) => format!("<rv:after {}>", self.names(name)),
                None => "<rv:before any write>".into(),
            },
        }
    }

    /// `s` with generated names masked: `<prefix><suffix>`.
    fn names(&self, s: &str) -> String {
        let mut out = s.to_string();
        for p in &self.prefixes {
            let mut done = String::new();
            let mut rest = out.as_str();
            while let Some(i) = rest.find(p.as_str()) {
                let after = &rest[i + p.len()..];
                let n = after
                    .chars()
                    .take(5)
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    .count();
                done.push_str(&rest[..i + p.len()]);
                if n == 5 {
                    done.push_str("<suffix>");
                    rest = &after[5..];
                } else {
                    rest = after;
                }
            }
            done.push_str(rest);
            out = done;
        }
        out
    }

    fn string(&self, s: &str) -> String {
        let mut out = self.names(s);
        for (uid, key) in &self.uids {
            out = out.replace(uid.as_str(), &format!("<uid:{}>", self.names(key)));
        }
        out = out.replace(&format!(":{}", self.port), ":<port>");
        // resourceVersions quoted in messages (preconditions, too-large resourceVersion), and
        // the content hash in OpenAPI v3 URLs.
        for marker in [
            "ResourceVersion in precondition: ",
            "ResourceVersion in object meta: ",
            "Too large resource version: ",
            ", current: ",
            "the ResourceVersion in the precondition (",
            "the ResourceVersion in record (",
            "?hash=",
        ] {
            let mut done = String::new();
            let mut rest = out.as_str();
            while let Some(i) = rest.find(marker) {
                let after = &rest[i + marker.len()..];
                let n = after.len()
                    - after
                        .trim_start_matches(|c: char| c.is_ascii_alphanumeric())
                        .len();
                done.push_str(&rest[..i + marker.len()]);
                if marker == "?hash=" {
                    done.push_str("<hash>");
                } else {
                    done.push_str(&self.rv(&after[..n]));
                }
                rest = &after[n..];
            }
            done.push_str(rest);
            out = done;
        }
        out
    }

    fn value(&self, key: Option<&str>, v: &Value) -> Value {
        // managedFields are ordered by their (masked) times: compare them in a time-free order.
        if key == Some("managedFields")
            && let Value::Array(entries) = v
        {
            let mut entries: Vec<Value> = entries.iter().map(|e| self.value(None, e)).collect();
            entries.sort_by_key(|e| {
                ["operation", "manager", "apiVersion", "subresource"]
                    .map(|k| e.get(k).and_then(Value::as_str).unwrap_or("").to_string())
            });
            return Value::Array(entries);
        }
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.value(Some(k), x)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(key, x)).collect()),
            Value::String(s) => Value::String(match key {
                Some("resourceVersion") => self.rv(s),
                Some("continue") if !s.is_empty() => "<continue>".into(),
                Some(
                    "creationTimestamp" | "deletionTimestamp" | "time" | "lastTransitionTime"
                    | "buildDate",
                ) => "<time>".into(),
                Some("uid") => match self.uids.get(s) {
                    Some(key) => format!("<uid:{}>", self.names(key)),
                    None => s.clone(),
                },
                _ => self.string(s),
            }),
            other => other.clone(),
        }
    }

    fn answer(&self, step: &Step, a: &Answer) -> Answer {
        let mut body = self.value(None, &a.body);
        if let Some(p) = &step.select {
            body = body.pointer(p).cloned().unwrap_or(Value::Null);
        }
        if step.skip_body {
            body = Value::Null;
        }
        Answer {
            status: a.status,
            content_type: a.content_type.clone(),
            warnings: a.warnings.iter().map(|w| self.string(w)).collect(),
            body,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing.

/// A difference at `path` (`status`, `content-type`, `warning`, `body/…`).
struct Diff {
    path: String,
    go: String,
    wardle: String,
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 300 {
                format!("{}…", s.chars().take(300).collect::<String>())
            } else {
                s
            }
        }
    }
}

fn diff_values(path: &str, go: Option<&Value>, wardle: Option<&Value>, out: &mut Vec<Diff>) {
    match (go, wardle) {
        (Some(Value::Object(g)), Some(Value::Object(w))) => {
            let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
            for k in keys {
                diff_values(&format!("{path}/{k}"), g.get(k), w.get(k), out);
            }
        }
        (Some(Value::Array(g)), Some(Value::Array(w))) => {
            for i in 0..g.len().max(w.len()) {
                diff_values(&format!("{path}/{i}"), g.get(i), w.get(i), out);
            }
        }
        (g, w) if g != w => out.push(Diff {
            path: path.into(),
            go: short(g),
            wardle: short(w),
        }),
        _ => {}
    }
}

fn diff_answers(go: &Answer, wardle: &Answer) -> Vec<Diff> {
    let mut out = Vec::new();
    if go.status != wardle.status {
        out.push(Diff {
            path: "status".into(),
            go: go.status.to_string(),
            wardle: wardle.status.to_string(),
        });
    }
    if go.content_type != wardle.content_type {
        out.push(Diff {
            path: "content-type".into(),
            go: go.content_type.clone(),
            wardle: wardle.content_type.clone(),
        });
    }
    if go.warnings != wardle.warnings {
        out.push(Diff {
            path: "warning".into(),
            go: format!("{:?}", go.warnings),
            wardle: format!("{:?}", wardle.warnings),
        });
    }
    diff_values("body", Some(&go.body), Some(&wardle.body), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_like_the_go_sample_apiserver() {
    let Some(bins) = go_peers() else { return };
    install_crypto();
    let steps = load_steps(&sequence_path());
    let allow = load_allow_list();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    let serving_ca = Ca::new("differential-serving-ca");
    let wardle_dir = dir.join("wardle");
    std::fs::create_dir_all(&wardle_dir).expect("wardle dir");
    let wardle = Wardle::start_with(&wardle_dir, &Engine::Sqlite.fresh_url(&wardle_dir), &[]).await;
    // Go trusts wardle's CA for client certificates: both see the same admin user.
    let mut go = start_go(&bins, dir, &wardle_dir.join("ca.crt"), &serving_ca);
    let admin = common::pki::Pair {
        cert_pem: std::fs::read_to_string(wardle_dir.join("admin.crt")).expect("admin.crt"),
        key_pem: std::fs::read_to_string(wardle_dir.join("admin.key")).expect("admin.key"),
    };
    let go_kubeconfig = dir.join("go.kubeconfig");
    kubeconfig(
        &go_kubeconfig,
        &format!("https://127.0.0.1:{}", go.port),
        &serving_ca.cert_pem,
        Some(&admin),
        None,
    );
    let mut gp = peer_client("go", &go_kubeconfig).await;
    let mut wp = peer_client("wardle", &wardle.kubeconfig).await;

    // The Go server is ready once /readyz answers 200 (etcd up, informers synced).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let req = Request::get("/readyz")
            .body(kube::client::Body::from(Vec::new()))
            .unwrap();
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), gp.client.send(req)).await
            && r.status() == 200
        {
            break;
        }
        go.procs.check_alive();
        if Instant::now() > deadline {
            panic!(
                "the Go sample-apiserver never became ready\n{}",
                go.procs.report()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut go_answers = Vec::new();
    let mut wardle_answers = Vec::new();
    for step in &steps {
        if step.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(step.sleep_ms)).await;
        }
        let (g, w) = tokio::join!(gp.send(step), wp.send(step));
        go_answers.push(g);
        wardle_answers.push(w);
    }

    let mut prefixes = Vec::new();
    for step in &steps {
        if let Some(Value::String(g)) = step
            .json
            .as_ref()
            .and_then(|j| j.pointer("/metadata/generateName"))
        {
            // An empty generateName generates nothing (and as a prefix would match everywhere).
            if !g.is_empty() {
                prefixes.push(g.clone());
            }
        }
    }
    let mut gn = Normaliser {
        port: go.port,
        prefixes: prefixes.clone(),
        ..Default::default()
    };
    gn.learn(&go_answers);
    let mut wn = Normaliser {
        port: wardle.port,
        prefixes,
        ..Default::default()
    };
    wn.learn(&wardle_answers);

    let mut identical = 0;
    let mut allowed_only = 0;
    let mut report = String::new();
    let mut answers = String::new();
    let mut failures = String::new();
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, step) in steps.iter().enumerate() {
        let g = gn.answer(step, &go_answers[i]);
        let w = wn.answer(step, &wardle_answers[i]);
        let _ = writeln!(
            answers,
            "=== [{i}] {} {} {}\n--- go: {} {} {:?}\n{}\n--- wardle: {} {} {:?}\n{}",
            step.id,
            step.method,
            step.path,
            g.status,
            g.content_type,
            g.warnings,
            serde_json::to_string_pretty(&g.body).unwrap_or_default(),
            w.status,
            w.content_type,
            w.warnings,
            serde_json::to_string_pretty(&w.body).unwrap_or_default(),
        );
        let diffs = diff_answers(&g, &w);
        if diffs.is_empty() {
            identical += 1;
            continue;
        }
        let mut text = format!("--- [{i}] {}: {} {}\n", step.id, step.method, step.path);
        let mut unexplained = String::new();
        for d in &diffs {
            let by = allow
                .deliberate
                .iter()
                .chain(&allow.pending)
                .find(|a| a.covers(&step.id, &d.path));
            let line = format!(
                "    {}{}\n      go:     {}\n      wardle: {}\n",
                d.path,
                by.map_or(String::new(), |a| format!("  [allowed: {}]", a.id)),
                d.go,
                d.wardle
            );
            text.push_str(&line);
            match by {
                Some(a) => {
                    for r in a.requests.iter().filter(|r| glob(r, &step.id)) {
                        used.insert((a.id.clone(), r.clone()));
                    }
                }
                None => unexplained.push_str(&line),
            }
        }
        report.push_str(&text);
        if unexplained.is_empty() {
            allowed_only += 1;
        } else {
            let _ = write!(
                failures,
                "--- [{i}] {}: {} {}\n{unexplained}",
                step.id, step.method, step.path
            );
        }
    }
    // An entry, or one of its request patterns, that excused nothing is stale: the difference
    // is gone (fixed), so the entry must go too, or it would hide the fault coming back. Only the
    // sequence the allow-list was written for can tell; another one (WARDLE_DIFF_REQUESTS) may
    // simply not exercise an entry.
    let stale: Vec<String> = allow
        .deliberate
        .iter()
        .chain(&allow.pending)
        .flat_map(|a| {
            let unused: Vec<&String> = a
                .requests
                .iter()
                .filter(|r| !used.contains(&(a.id.clone(), (*r).clone())))
                .collect();
            if unused.len() == a.requests.len() {
                vec![a.id.clone()]
            } else {
                unused
                    .into_iter()
                    .map(|r| format!("{} (request {r})", a.id))
                    .collect()
            }
        })
        .collect();
    let summary = format!(
        "differential: {} requests, {identical} identical, {allowed_only} different only as the \
         allow-list says, {} with unexplained differences; allow-list entries that matched \
         nothing: {stale:?}",
        steps.len(),
        steps.len() - identical - allowed_only,
    );
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-report.txt");
    let _ = std::fs::write(&report_path, format!("{summary}\n\n{report}"));
    let _ = std::fs::write(
        report_path.with_file_name("differential-answers.txt"),
        answers,
    );
    let _ = writeln!(
        std::io::stderr(),
        "{summary}\n(every difference, allowed ones too: {}; every answer: \
         differential-answers.txt beside it)",
        report_path.display()
    );
    drop(wardle);
    assert!(
        failures.is_empty(),
        "answers differ from the Go sample-apiserver's outside tests/differential/allow.yaml:\n\
         {failures}\n{summary}"
    );
    if std::env::var_os("WARDLE_DIFF_REQUESTS").is_none() {
        assert!(
            stale.is_empty(),
            "tests/differential/allow.yaml has entries (or request patterns of entries) that \
             matched no difference: {stale:?}. The difference is gone; remove them from \
             allow.yaml (and a deliberate entry's README paragraph) so they cannot hide the \
             fault if it comes back.\n{summary}"
        );
    }
    drop(go);
}
