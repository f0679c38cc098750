//! /healthz, /livez and /readyz with verbose and exclude, and the storage check.
//!
//! Bodies and codes follow Go's `healthz` package byte for byte: scripts and probes grep for
//! `[+]ping ok` and `readyz check passed`, and failure reasons are withheld from the public
//! root endpoints (they go to the log) but shown on the per-check sub-paths.

use crate::apimachinery::gofmt::go_quote;
use crate::apimachinery::query::query_params;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode, header};
use std::collections::BTreeSet;
use std::sync::Arc;

/// One named health check: `Ok(())` when healthy, `Err(reason)` otherwise.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The three health endpoints.
const ROOTS: [&str; 3] = ["healthz", "livez", "readyz"];

/// Name of the readyz-only check that fails once shutdown has begun.
const SHUTDOWN: &str = "shutdown";

/// The set of checks behind /healthz, /livez and /readyz.
#[derive(Clone)]
pub struct Health {
    checks: Vec<(String, Check)>,
    /// Checks left out of /livez: a dependency's outage (the database) makes the server not
    /// ready, but restarting it would not help (Go: `AddReadyzChecks`).
    not_live: BTreeSet<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// A check that always passes (`ping`; `log` too, since our logging cannot stall like klog's).
fn always_ok() -> Check {
    Arc::new(|| Box::pin(async { Ok(()) }))
}

impl Health {
    /// `ping` and `log` (the checks every Go apiserver has), then `checks` in order
    /// (e.g. `storage`). readyz adds `shutdown` last.
    pub fn new(checks: Vec<(String, Check)>) -> Self {
        let mut all = vec![
            ("ping".to_string(), always_ok()),
            ("log".to_string(), always_ok()),
        ];
        all.extend(checks);
        Health {
            checks: all,
            not_live: BTreeSet::new(),
        }
    }

    /// Leaves the named check out of /livez (it still runs for /healthz and /readyz).
    pub fn not_for_liveness(mut self, name: &str) -> Self {
        self.not_live.insert(name.to_string());
        self
    }

    /// The checks of one endpoint, in order.
    fn checks_of(&self, root: &str) -> impl Iterator<Item = (&str, &Check)> {
        self.checks
            .iter()
            .filter(move |(n, _)| root != "livez" || !self.not_live.contains(n))
            .map(|(n, c)| (n.as_str(), c))
    }

    /// `(root, Some(check))` for `/readyz/<check>`, `(root, None)` for `/readyz`.
    fn split<'a>(&self, path: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        let trimmed = path.strip_prefix('/')?;
        let (root, rest) = match trimmed.split_once('/') {
            Some((r, rest)) => (r, Some(rest)),
            None => (trimmed, None),
        };
        if !ROOTS.contains(&root) {
            return None;
        }
        match rest {
            None => Some((root, None)),
            Some(name) => {
                let known = self.checks_of(root).any(|(n, _)| n == name)
                    || (root == "readyz" && name == SHUTDOWN);
                known.then_some((root, Some(name)))
            }
        }
    }

    /// Serve a health path: `/healthz`, `/livez`, `/readyz` or one of their checks, exactly
    /// (Go registers each as a path of its non-go-restful mux); None for any other path (a
    /// trailing slash, an unknown check), which the mux answers. `query` is the raw query
    /// string; `shutting_down` makes readyz's `shutdown` check fail, as Go does once the
    /// server starts draining.
    pub async fn handle(
        &self,
        path: &str,
        query: Option<&str>,
        shutting_down: bool,
    ) -> Option<Response> {
        let (root, check) = self.split(path)?;
        Some(self.serve(root, check, query, shutting_down).await)
    }

    async fn serve(
        &self,
        root: &str,
        check: Option<&str>,
        query: Option<&str>,
        shutting_down: bool,
    ) -> Response {
        let shutdown: Check = Arc::new(move || {
            Box::pin(async move {
                if shutting_down {
                    Err("process is shutting down".to_string())
                } else {
                    Ok(())
                }
            })
        });
        let mut checks: Vec<(&str, &Check)> = self.checks_of(root).collect();
        if root == "readyz" {
            checks.push((SHUTDOWN, &shutdown));
        }

        if let Some(name) = check {
            let Some((_, c)) = checks.iter().find(|(n, _)| *n == name) else {
                // `split` admits known checks only.
                return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
            };
            return match c().await {
                Ok(()) => text(StatusCode::OK, "ok".into()),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: {e}\n"),
                ),
            };
        }

        let (verbose, mut excluded) = parse_query(query.unwrap_or(""));
        let mut out = String::new();
        let mut failed = Vec::new();
        for (name, c) in &checks {
            if excluded.remove(*name) {
                out.push_str(&format!("[+]{name} excluded: ok\n"));
                continue;
            }
            match c().await {
                Ok(()) => out.push_str(&format!("[+]{name} ok\n")),
                Err(e) => {
                    // The reason stays out of this public body; Go logs it instead.
                    tracing::info!(check = %name, endpoint = %root, reason = %e, "health check failed");
                    out.push_str(&format!("[-]{name} failed: reason withheld\n"));
                    failed.push(*name);
                }
            }
        }
        if !excluded.is_empty() {
            let names: Vec<String> = excluded.iter().map(|n| go_quote(n)).collect();
            out.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for {}\n",
                names.join(",")
            ));
        }
        if !failed.is_empty() {
            // Always verbose on failure (Go's http.Error adds the final newline).
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{out}{root} check failed\n"),
            );
        }
        if !verbose {
            return text(StatusCode::OK, "ok".into());
        }
        text(StatusCode::OK, format!("{out}{root} check passed\n"))
    }
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `verbose` present (any value, as Go checks only presence) and the set of `exclude` values.
fn parse_query(q: &str) -> (bool, BTreeSet<String>) {
    let mut verbose = false;
    let mut excluded = BTreeSet::new();
    for (k, v) in query_params(Some(q)) {
        match k.as_str() {
            "verbose" => verbose = true,
            "exclude" => {
                excluded.insert(v);
            }
            _ => {}
        }
    }
    (verbose, excluded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(reason: &'static str) -> Check {
        Arc::new(move || Box::pin(async move { Err(reason.to_string()) }))
    }

    async fn call(h: &Health, path: &str, q: Option<&str>, shutting: bool) -> (u16, String) {
        let Some(r) = h.handle(path, q, shutting).await else {
            return (404, String::new());
        };
        let status = r.status().as_u16();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(b.to_vec()).unwrap())
    }

    fn healthy() -> Health {
        Health::new(vec![("storage".to_string(), always_ok())])
    }

    #[tokio::test]
    async fn plain_ok() {
        for p in ["/healthz", "/livez", "/readyz"] {
            assert_eq!(call(&healthy(), p, None, false).await, (200, "ok".into()));
        }
    }

    #[tokio::test]
    async fn verbose_lists_checks() {
        let (code, body) = call(&healthy(), "/readyz", Some("verbose"), false).await;
        assert_eq!(code, 200);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]storage ok\n[+]shutdown ok\nreadyz check passed\n"
        );
        let (_, body) = call(&healthy(), "/livez", Some("verbose=false"), false).await;
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]storage ok\nlivez check passed\n"
        );
    }

    #[tokio::test]
    async fn exclude_and_unknown_exclude() {
        let (code, body) = call(
            &healthy(),
            "/readyz",
            Some("exclude=ping&verbose&exclude=nope&exclude=a%20b"),
            false,
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(
            body,
            "[+]ping excluded: ok\n[+]log ok\n[+]storage ok\n[+]shutdown ok\nwarn: some health checks cannot be excluded: no matches for \"a b\",\"nope\"\nreadyz check passed\n"
        );
    }

    #[tokio::test]
    async fn readiness_only_checks_stay_out_of_livez() {
        // A database outage makes the server unready, never "dead" (no livenessProbe restarts).
        let h = Health::new(vec![("storage".to_string(), failing("db down"))])
            .not_for_liveness("storage");
        assert_eq!(call(&h, "/livez", None, false).await, (200, "ok".into()));
        let (_, body) = call(&h, "/livez", Some("verbose"), false).await;
        assert_eq!(body, "[+]ping ok\n[+]log ok\nlivez check passed\n");
        assert_eq!(call(&h, "/livez/storage", None, false).await.0, 404);
        assert_eq!(call(&h, "/readyz", None, false).await.0, 500);
        assert_eq!(call(&h, "/healthz", None, false).await.0, 500);
    }

    #[tokio::test]
    async fn failure_withholds_reason() {
        let h = Health::new(vec![("storage".to_string(), failing("db down"))]);
        let (code, body) = call(&h, "/readyz", None, false).await;
        assert_eq!(code, 500);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[-]storage failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
        );
        let (code, body) = call(&h, "/livez", None, false).await;
        assert_eq!(code, 500);
        assert!(body.ends_with("livez check failed\n"));
        // Excluding the failing check makes it pass.
        assert_eq!(
            call(&h, "/healthz", Some("exclude=storage"), false).await,
            (200, "ok".into())
        );
        // The sub-path shows the reason.
        assert_eq!(
            call(&h, "/readyz/storage", None, false).await,
            (500, "internal server error: db down\n".into())
        );
        assert_eq!(
            call(&h, "/readyz/ping", None, false).await,
            (200, "ok".into())
        );
    }

    #[tokio::test]
    async fn shutdown_only_affects_readyz() {
        let (code, body) = call(&healthy(), "/readyz", None, true).await;
        assert_eq!(code, 500);
        assert!(body.contains("[-]shutdown failed: reason withheld\n"));
        assert_eq!(
            call(&healthy(), "/livez", None, true).await,
            (200, "ok".into())
        );
        assert_eq!(
            call(&healthy(), "/readyz/shutdown", None, true).await.0,
            500
        );
    }

    #[tokio::test]
    async fn unknown_paths() {
        let h = healthy();
        for known in ["/readyz", "/livez/storage", "/readyz/shutdown"] {
            assert_eq!(call(&h, known, None, false).await.0, 200, "{known}");
        }
        // shutdown is a readyz check only; /livez leaves it out.
        // Paths are exact, as Go's mux matches them: no trailing or doubled slashes.
        for unknown in [
            "/livez/shutdown",
            "/readyz/nope",
            "/health",
            "/nothing",
            "/healthz/",
            "/healthz//",
            "/livez//ping",
            "/readyz/ping/",
            "//healthz",
        ] {
            assert!(h.handle(unknown, None, false).await.is_none(), "{unknown}");
        }
    }
}
