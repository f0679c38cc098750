//! Request bodies a handler leaves unread (a 413, a refusal before the body is read): over
//! HTTP/2 held until the answer has been sent, then drained for a moment, so that the client
//! reads the answer before its stream is reset; over HTTP/1 see below.
//!
//! h2 resets a stream whose request body is dropped unread (RST_STREAM NO_ERROR, as RFC 9113
//! §8.1 allows once the response is complete) in the same write as the response's last frame.
//! A client still uploading then gets the answer and the reset in one read, and curl 7.88
//! fails the transfer ("Stream error in the HTTP/2 framing layer", exit 92) without the 413
//! it had received. Go's http2 server resets too, but its reset is written after the response
//! (curl reads the 413 first: "HTTP error before end of send, stop sending"), and it keeps
//! granting flow-control window for data that still arrives. Here the unread body is read and
//! dropped after the response ends until the client ends or resets its stream, for at most
//! [`DRAIN_TIME`] and [`DRAIN_BYTES`], with at most [`DRAINING`] streams drained at once (past
//! that the body is dropped at once, as before).
//!
//! HTTP/1 has no stream to reset: hyper closes a connection whose request body was left unread
//! once the answer is written, and a pooling client that sent its next request on it meanwhile
//! sees the connection end without an answer (a POST is not retried). As Go's server does
//! (`net/http` `chunkWriter.writeHeader`), the rest of a small unread body (< 256 KiB) is read
//! and dropped before the answer, and the connection kept; otherwise (more declared or sent,
//! a slow client, or `Expect: 100-continue` never answered) the answer says
//! `Connection: close` and the connection layer (`tls::server::Lingering`) drains what still
//! comes.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Semaphore;

/// How long, and how many bytes, an unread body is drained after its response.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 16 << 20;

/// How many unread bodies may be drained at once, server-wide.
const DRAINING: usize = 128;
static DRAIN_SLOTS: Semaphore = Semaphore::const_new(DRAINING);

/// Where a request body dropped unread waits for its response to end.
type Slot = Arc<Mutex<Option<Body>>>;

/// Serves `req` with `serve`; a request body left unread is drained after the answer (HTTP/2),
/// or before it when small, else the answer says `Connection: close` (HTTP/1), as the module
/// says. Bodiless requests are served as they are.
pub async fn serve<F, Fut>(req: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if req.body().is_end_stream() {
        return serve(req).await;
    }
    let expects_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let http1 = req.version() < http::Version::HTTP_2;
    // The request body, dropped before its end, goes to the slot.
    let slot = Slot::default();
    let held = slot.clone();
    let req = req.map(|body| OnDrop::wrap(body, move |b| hold_unread(&held, b)));
    let mut resp = serve(req).await;
    if !http1 {
        // Once the response body is dropped (sent, or abandoned) what the slot holds is drained.
        return resp.map(|body| OnDrop::wrap(body, move |_| drain_held(&slot)));
    }
    let unread = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(body) = unread
        && (expects_continue || !discard_small(body).await)
    {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// A body passed through as it is, which runs `on_drop` on itself when dropped.
struct OnDrop<F: FnMut(&mut Body) + Send + Unpin + 'static> {
    body: Body,
    on_drop: F,
}

impl<F: FnMut(&mut Body) + Send + Unpin + 'static> OnDrop<F> {
    fn wrap(body: Body, on_drop: F) -> Body {
        Body::new(OnDrop { body, on_drop })
    }
}

impl<F: FnMut(&mut Body) + Send + Unpin + 'static> HttpBody for OnDrop<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<F: FnMut(&mut Body) + Send + Unpin + 'static> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.on_drop)(&mut self.body);
    }
}

/// Puts a request body dropped before its end into `slot`.
fn hold_unread(slot: &Slot, body: &mut Body) {
    if !body.is_end_stream() {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::mem::take(body));
    }
}

/// Go's `maxPostHandlerReadBytes`: what net/http reads of an unread HTTP/1 body after the
/// handler to keep the connection.
const DISCARD_BYTES: u64 = 256 << 10;

/// Reads and drops the rest of an unread HTTP/1 request body if it is small, as Go's server
/// does before answering (`chunkWriter.writeHeader`): true when it ended within
/// [`DISCARD_BYTES`] (and [`DRAIN_TIME`]), so the connection can be kept; false when more was
/// declared or came, or the client was slow.
async fn discard_small(mut body: Body) -> bool {
    use http_body_util::BodyExt;
    if body.size_hint().lower() >= DISCARD_BYTES {
        return false;
    }
    let read = async {
        let mut total = 0u64;
        while !body.is_end_stream() {
            match body.frame().await {
                Some(Ok(frame)) => {
                    total += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if total > DISCARD_BYTES {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
                None => break,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}

/// Drains the request body `slot` holds, if any, on a task of its own (at most
/// [`DRAINING`] at once; past that it is dropped at once).
fn drain_held(slot: &Slot) {
    let Some(body) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let (Ok(permit), Ok(runtime)) = (
        DRAIN_SLOTS.try_acquire(),
        tokio::runtime::Handle::try_current(),
    ) else {
        return;
    };
    runtime.spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(DRAIN_TIME, drain(body)).await;
    });
}

/// Reads and drops `body` until it ends, fails, or [`DRAIN_BYTES`] have come.
async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    let mut total = 0usize;
    while total < DRAIN_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => total += frame.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
}
