//! Runs the real wardle-apiserver binary for a test and talks to it over HTTPS with the admin
//! client certificate it wrote (through kube's client), or through the real kubectl.

#![allow(dead_code)]

use super::Engine;
use super::procs::free_port;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The whole answer (a body cut short reads as what arrived, or empty).
    async fn read(resp: http::Response<kube::client::Body>) -> Response {
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Response {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
    }
    pub fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }
}

pub struct Wardle {
    child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub port: u16,
    pub db_url: String,
    pub kubeconfig: PathBuf,
    client: kube::Client,
    log: PathBuf,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Wardle {
    /// A new server on a new database of `engine`.
    pub async fn start(engine: Engine) -> Wardle {
        Wardle::start_flags(engine, &[]).await
    }

    /// A new server on a new database of `engine`, with the extra flags `args`; its cert dir
    /// (`dir`) is a temp dir it keeps.
    pub async fn start_flags(engine: Engine, args: &[&str]) -> Wardle {
        let tmp = tempfile::tempdir().expect("tempdir");
        let url = engine.fresh_url(tmp.path());
        let mut w = Wardle::start_with(tmp.path(), &url, args).await;
        w._tmp = Some(tmp);
        w
    }

    /// Two replicas on one new database of `engine`, each with its own cert dir.
    pub async fn pair(engine: Engine) -> (Wardle, Wardle) {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let url = engine.fresh_url(dir_a.path());
        let mut a = Wardle::start_with(dir_a.path(), &url, &[]).await;
        let mut b = Wardle::start_with(dir_b.path(), &url, &[]).await;
        (a._tmp, b._tmp) = (Some(dir_a), Some(dir_b));
        (a, b)
    }

    /// A server using `dir` as its cert dir (reused across restarts) and `db_url`.
    pub async fn start_with(dir: &Path, db_url: &str, extra_args: &[&str]) -> Wardle {
        let port = free_port();
        let log = dir.join(format!("wardle-{port}.log"));
        let logfile = std::fs::File::create(&log).expect("log file");
        Wardle::spawn(dir, port, db_url, extra_args, logfile.into(), log).await
    }

    /// A new SQLite server whose stderr is a pipe this process never reads (`logs()` is empty).
    pub async fn start_with_unread_stderr() -> Wardle {
        let tmp = tempfile::tempdir().expect("tempdir");
        let url = Engine::Sqlite.fresh_url(tmp.path());
        let port = free_port();
        let log = tmp.path().join("no-such.log");
        let mut w = Wardle::spawn(tmp.path(), port, &url, &[], Stdio::piped(), log).await;
        w._tmp = Some(tmp);
        w
    }

    async fn spawn(
        dir: &Path,
        port: u16,
        db_url: &str,
        extra_args: &[&str],
        stderr: Stdio,
        log: PathBuf,
    ) -> Wardle {
        install_crypto();
        let child = Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
            .args([
                "--secure-port",
                &port.to_string(),
                "--bind-address",
                "127.0.0.1",
            ])
            .arg("--cert-dir")
            .arg(dir)
            .args(["--database-url", db_url])
            .args(extra_args)
            .env("RUST_LOG", "info,wardle=debug,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn wardle-apiserver");
        Wardle::started(dir, port, db_url, Some(child), log).await
    }

    /// A server this test runs in its own process (`wardle::server::run_with`) on `port`, with
    /// `dir` as cert dir: waits for its kubeconfig and port, then for /readyz.
    pub async fn attach(dir: &Path, port: u16, db_url: &str) -> Wardle {
        install_crypto();
        Wardle::started(dir, port, db_url, None, dir.join("in-process.log")).await
    }

    /// Waits until the server on `port` wrote its kubeconfig, listens and is ready (`child`, if
    /// any, must not exit meanwhile); its logs are in `log`.
    async fn started(
        dir: &Path,
        port: u16,
        db_url: &str,
        mut child: Option<Child>,
        log: PathBuf,
    ) -> Wardle {
        let kubeconfig = dir.join("admin.kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "wardle exited early ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if kubeconfig.exists() && port_open(port) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "wardle did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = client_from(&kubeconfig, port).await;
        let w = Wardle {
            child,
            dir: dir.to_path_buf(),
            _tmp: None,
            port,
            db_url: db_url.into(),
            kubeconfig,
            client,
            log,
        };
        w.wait_ready().await;
        w
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.try_request(Method::GET, "/readyz", &[], None).await
                && r.status == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "wardle never became ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Stop the process (SIGKILL); the database and cert dir stay.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop gracefully (SIGTERM) and wait for the exit; its status, or None if it had to be
    /// killed after 15 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Some(status) = c.try_wait().ok().flatten() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        None
    }

    /// Keep the temp dir alive beyond this server (for restart tests).
    pub fn take_tempdir(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, kube::Error> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(kube::client::Body::from(body.unwrap_or_default()))
            .expect("request");
        Ok(Response::read(self.client.send(req).await?).await)
    }

    /// A request as the admin user (system:masters).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        self.try_request(method, path, headers, body)
            .await
            .expect("request failed at the transport level")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        let ct = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        self.request(
            method,
            path,
            &[("content-type", ct)],
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::PUT, path, body).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &str) -> Response {
        self.request(
            Method::PATCH,
            path,
            &[("content-type", content_type)],
            Some(body.as_bytes().to_vec()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> Response {
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        self.request(
            Method::DELETE,
            path,
            headers,
            body.map(|b| serde_json::to_vec(b).unwrap()),
        )
        .await
    }

    /// Run one SQL statement against this server's database (to stage states the API can't,
    /// such as a compaction horizon).
    pub async fn sql(&self, statement: &str) {
        super::backend::exec_sql(&self.db_url, statement).await
    }

    /// Open a watch (or any streaming GET) and read it line by line.
    pub async fn watch(&self, path: &str, accept: Option<&str>) -> WatchStream {
        let mut b = Request::builder().method(Method::GET).uri(path);
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        let req = b
            .body(kube::client::Body::from(Vec::new()))
            .expect("request");
        let resp = self.client.send(req).await.expect("watch request");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_string());
        WatchStream {
            status,
            content_type,
            body: resp.into_body(),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// A request with no client certificate at all (anonymous).
    pub async fn anonymous(&self, method: Method, path: &str) -> Response {
        let mut kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        for u in &mut kc.auth_infos {
            if let Some(a) = u.auth_info.as_mut() {
                a.client_certificate_data = None;
                a.client_key_data = None;
            }
        }
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        cfg.default_retry = false;
        let client = kube::Client::try_from(cfg).expect("client");
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(kube::client::Body::from(Vec::new()))
            .unwrap();
        Response::read(client.send(req).await.expect("anonymous request")).await
    }

    /// Run the real kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        // kubectl caches discovery per server under $HOME; keep each test's cache private.
        cmd.env("KUBECACHEDIR", self.dir.join("kubecache"));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl is installed");
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("kubectl ran")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.logs(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(100))
        .is_ok()
}

async fn client_from(kubeconfig: &Path, _port: u16) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kube config");
    // Tests look at raw answers: kube retries 429/503/504 by default, which would hide them.
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("kube client")
}

impl Drop for Wardle {
    fn drop(&mut self) {
        self.kill();
        // WARDLE_TEST_LOGS=1 prints each server's log when its test ends (run with --nocapture).
        if std::env::var_os("WARDLE_TEST_LOGS").is_some() {
            eprintln!(
                "---- wardle log ({}) ----\n{}",
                self.log.display(),
                self.logs()
            );
        }
    }
}

/// A streaming response read as newline-delimited JSON events.
pub struct WatchStream {
    pub status: StatusCode,
    pub content_type: Option<String>,
    body: kube::client::Body,
    buf: Vec<u8>,
    pub ended: bool,
}

impl WatchStream {
    /// The next event, or None if the stream ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("an event is one JSON line"));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(Err(_))) => self.ended = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Events until `n` have arrived (panics if they don't within 10 s).
    pub async fn take(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(Duration::from_secs(10)).await {
                Some(e) => out.push(e),
                None => panic!("expected {n} events, got {}: {out:#?}", out.len()),
            }
        }
        out
    }
}
