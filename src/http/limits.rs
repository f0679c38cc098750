//! Protection of the server from its clients, as Go's generic apiserver filter chain does it:
//! at most N requests in flight (separately for reads and writes; watches are exempt), a deadline
//! for every request that is not long-running (it covers reading a slow body), and a catch-all
//! that turns a handler panic into a 500 Status instead of a dropped connection.
//!
//! Go: AS:`server/filters/maxinflight.go`, `server/filters/timeout.go`,
//! `server/filters/wrap.go` (WithPanicRecovery); the connection timeouts are in `tls::server`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::request_info::RequestInfo;
use crate::apimachinery::status::{ApiError, Reason};
use crate::apimachinery::verb::Verb;
use crate::authn::UserInfo;

/// The in-flight limits and the request deadline of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// get/list (and non-resource reads); `None` = unlimited (Go: a limit of 0).
    readonly: Option<Arc<Semaphore>>,
    /// Every other verb.
    mutating: Option<Arc<Semaphore>>,
    /// Deadline of a request that is not long-running (Go's `--request-timeout`).
    request_timeout: Duration,
}

/// Go's `BasicLongRunningRequestCheck(sets.NewString("watch"), …)` of the sample-apiserver.
pub fn long_running(info: &RequestInfo) -> bool {
    info.verb == Verb::Watch
}

/// Health probes never wait for a slot: a busy server must still answer its kubelet (Go's
/// priority-and-fairness puts them in the exempt "probes" flow schema).
fn probe(info: &RequestInfo) -> bool {
    !info.is_resource_request
        && ["/healthz", "/livez", "/readyz"]
            .iter()
            .any(|p| info.path == *p || info.path.starts_with(&format!("{p}/")))
}

impl Limits {
    /// Limits of 0 mean "no limit", as Go's flags do.
    pub fn new(max_readonly: usize, max_mutating: usize, request_timeout: Duration) -> Limits {
        let sem = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Limits {
            readonly: sem(max_readonly),
            mutating: sem(max_mutating),
            request_timeout,
        }
    }

    /// A slot for this request, held until its response is built; `Err` is Go's 429 when every
    /// slot is taken. Long-running requests and `system:masters` are let through without one.
    #[allow(clippy::result_large_err)]
    pub fn admit(
        &self,
        info: &RequestInfo,
        user: &UserInfo,
    ) -> Result<Option<OwnedSemaphorePermit>, Response> {
        if long_running(info) || probe(info) {
            return Ok(None);
        }
        // Go's `nonMutatingRequestVerbs`.
        let sem = if info.verb.is_read_only() {
            &self.readonly
        } else {
            &self.mutating
        };
        let Some(sem) = sem else { return Ok(None) };
        match sem.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) if user.in_group(crate::authn::SYSTEM_MASTERS) => Ok(None),
            Err(_) => Err(too_many_requests()),
        }
    }

    /// Runs `serve` under the request deadline unless the request is long-running; past the
    /// deadline the client gets Go's 504 (`timed_out`; the handler is dropped; a write already
    /// handed to storage still commits, as in Go). The deadline counts from `received`, the
    /// request's arrival (Go's WithRequestDeadline: received timestamp plus the timeout), so a
    /// deadline already past when the handler would start (`?timeout=1ns`) is a 504 without
    /// running it, as Go's timeout filter answers first. `user` (the `timeout` parameter)
    /// shortens the deadline, never lengthens it.
    pub async fn deadline(
        &self,
        info: &RequestInfo,
        user: Option<Duration>,
        received: std::time::Instant,
        serve: impl Future<Output = Response>,
    ) -> Response {
        if long_running(info) {
            return serve.await;
        }
        // A request timeout of 0 means none (the flag's documented meaning).
        let server = (!self.request_timeout.is_zero()).then_some(self.request_timeout);
        let timeout = match (server, user) {
            (Some(s), Some(u)) => s.min(u),
            (s, u) => match s.or(u) {
                Some(t) => t,
                None => return serve.await,
            },
        };
        let at = tokio::time::Instant::from_std(received) + timeout;
        if tokio::time::Instant::now() >= at {
            return timed_out();
        }
        match tokio::time::timeout_at(at, serve).await {
            Ok(resp) => resp,
            Err(_) => timed_out(),
        }
    }
}

/// The body Go's timeout filter writes: the Timeout Status as `json.Encoder` encodes
/// `errors.NewTimeoutError(msg, 0).ErrStatus` (no kind or apiVersion, `retryAfterSeconds` 0
/// omitted, a final newline).
const TIMED_OUT_BODY: &str = "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Timeout: \
    request did not complete within the allotted timeout\",\"reason\":\"Timeout\",\"details\":{},\
    \"code\":504}\n";

/// Go's answer past a request's deadline (AS:`server/filters/timeout.go`
/// `baseTimeoutWriter.timeout`): 504 with `TIMED_OUT_BODY` and no Content-Type of its own, so
/// net/http's sniffing makes it `text/plain; charset=utf-8`; no Retry-After, and not
/// re-encoded as the request negotiated (it is written below the negotiating handlers). The
/// audit event still gets the Status.
fn timed_out() -> Response {
    let status = ApiError::timeout("request did not complete within the allotted timeout", 0);
    tracing::warn!(code = 504, message = %status.message, "request failed");
    let mut resp = (http::StatusCode::GATEWAY_TIMEOUT, TIMED_OUT_BODY).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.extensions_mut()
        .insert(crate::audit::StatusObject(status.to_status()));
    resp
}

/// Go's answer when the in-flight limit is reached: 429 with `Retry-After: 1`. Go writes the
/// message as text/plain; wardle sends it as a Status (reason TooManyRequests) like every other
/// error, which kubectl and client-go read the same way.
pub fn too_many_requests() -> Response {
    let mut e = ApiError::new(
        429,
        Reason::TooManyRequests,
        "Too many requests, please try again later.",
    );
    e.details = Some(Box::new(crate::apimachinery::status::StatusDetails {
        retry_after_seconds: Some(1),
        ..Default::default()
    }));
    e.into_response()
}

/// Serves `fut`, turning a panic inside it into a 500 Status and an error log line (Go's
/// WithPanicRecovery). Panics are bugs to fix at their cause; this keeps one from costing the
/// client its answer or the server its connection handling.
pub async fn recover_panics(
    method: &http::Method,
    path: &str,
    fut: impl Future<Output = Response>,
) -> Response {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%method, path, panic = %what, "handler panicked; answered 500");
            ApiError::internal("the server could not complete the request").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn info(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::new(method, path, query)
    }

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "u".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_status() {
        let resp = recover_panics(&Method::GET, "/x", async {
            if true {
                panic!("boom");
            }
            ApiError::bad_request("unreachable").into_response()
        })
        .await;
        assert_eq!(resp.status(), 500);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let status: serde_json::Value = serde_json::from_slice(&body).expect("a Status");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "InternalError");
    }

    #[test]
    fn slots_are_per_kind_and_watches_probes_and_masters_pass() {
        const FLUNDERS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/a/flunders";
        let limits = Limits::new(1, 1, Duration::from_secs(60));
        let list = info(&Method::GET, FLUNDERS, None);
        let create = info(&Method::POST, FLUNDERS, None);
        let watch = info(&Method::GET, FLUNDERS, Some("watch=true"));
        let probe = info(&Method::GET, "/readyz/storage", None);
        let alice = user(&["system:authenticated"]);
        let admin = user(&["system:masters"]);

        let read_slot = limits.admit(&list, &alice).expect("free").expect("a slot");
        assert_eq!(limits.admit(&list, &alice).expect_err("full").status(), 429);
        // Another kind of request has its own slots.
        let write_slot = limits
            .admit(&create, &alice)
            .expect("free")
            .expect("a slot");
        assert_eq!(
            limits.admit(&create, &alice).expect_err("full").status(),
            429
        );
        for exempt in [&watch, &probe] {
            assert!(limits.admit(exempt, &alice).expect("exempt").is_none());
        }
        assert!(limits.admit(&list, &admin).expect("masters").is_none());
        drop((read_slot, write_slot));
        assert!(limits.admit(&list, &alice).expect("free again").is_some());
        // 0 = no limit.
        let open = Limits::new(0, 0, Duration::ZERO);
        assert!(open.admit(&create, &alice).expect("unlimited").is_none());
    }

    /// The `timeout` parameter shortens the server's deadline, never lengthens it, and applies
    /// when the server has none; watches have no deadline.
    #[tokio::test]
    async fn a_user_timeout_shortens_the_deadline() {
        const FLUNDERS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/a/flunders";
        let list = info(&Method::GET, FLUNDERS, None);
        let watch = info(&Method::GET, FLUNDERS, Some("watch=true"));
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ApiError::bad_request("finished").into_response()
        };
        let (short, long) = (Duration::from_millis(20), Duration::from_secs(60));
        for (server, user, want) in [
            (long, Some(short), 504),
            (short, Some(long), 504),
            (long, None, 400),
            (Duration::ZERO, Some(short), 504),
            (Duration::ZERO, None, 400),
        ] {
            let limits = Limits::new(0, 0, server);
            let resp = limits
                .deadline(&list, user, std::time::Instant::now(), slow())
                .await;
            assert_eq!(resp.status(), want, "{server:?} {user:?}");
        }
        // A deadline past before the handler starts is Go's 504 without running it, in the
        // shape Go's timeout filter writes.
        let limits = Limits::new(0, 0, long);
        let ran = std::sync::atomic::AtomicBool::new(false);
        let resp = limits
            .deadline(
                &list,
                Some(Duration::from_nanos(1)),
                std::time::Instant::now(),
                async {
                    ran.store(true, std::sync::atomic::Ordering::Relaxed);
                    ApiError::bad_request("finished").into_response()
                },
            )
            .await;
        assert!(!ran.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(resp.status(), 504);
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        assert!(resp.headers().get("retry-after").is_none());
        let body = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(
            std::str::from_utf8(&body).expect("utf-8"),
            "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Timeout: request did not \
             complete within the allotted timeout\",\"reason\":\"Timeout\",\"details\":{},\"code\":504}\n"
        );
        let limits = Limits::new(0, 0, short);
        let resp = limits
            .deadline(&watch, Some(short), std::time::Instant::now(), slow())
            .await;
        assert_eq!(resp.status(), 400, "a watch runs past both");
    }
}
