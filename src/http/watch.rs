//! Watch: streaming changes to a client from the watch cache — JSON (or YAML) event framing,
//! Table and PartialObjectMetadata events, selector transitions, bookmarks, initial events.

use super::negotiate::{self, Format, Negotiated, Target};
use super::router::AppState;
use super::table::{self, IncludeObject};
use crate::api::{GROUP, Resource};
use crate::apimachinery::fields;
use crate::apimachinery::options::{ListOptions, Rv};
use crate::apimachinery::status::{ApiError, ApiResult};
use crate::registry::{self, Ctx};
use crate::storage::cache::{Event, EventType, WatchCache, WatchEnd};
use crate::storage::types::Obj;
use crate::storage::types::StorageError;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Events a watcher may have queued in the cache before it counts as too slow.
const WATCHER_QUEUE: usize = 1000;
/// How often an idle stream gets a bookmark (Go's cacher: about once a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// How long a watch from a future resourceVersion waits for it (Go's cacher: 3 s).
const FUTURE_RV_WAIT: Duration = Duration::from_secs(3);

/// One watch request's fixed parts, moved into the streaming task.
struct Stream {
    resource: &'static dyn Resource,
    version: &'static str,
    neg: Negotiated,
    include: IncludeObject,
    opts: ListOptions,
    headers_sent: bool,
}

pub async fn serve(
    state: &AppState,
    ctx: &Ctx<'_>,
    name: &str,
    mut opts: ListOptions,
    neg: Negotiated,
    query: Option<&str>,
) -> ApiResult<Response> {
    let r = ctx.resource;
    if !name.is_empty() {
        // Watching one object is a watch with a metadata.name selector.
        if let Some(n) = opts.field_selector.name_equals()
            && n != name
        {
            return Err(ApiError::bad_request(
                "fieldSelector metadata.name doesn't match requested name",
            ));
        }
        let by_name = format!("metadata.name={}", fields::escape_value(name));
        let combined = if opts.field_selector.is_empty() {
            by_name
        } else {
            format!("{by_name},{}", opts.field_selector)
        };
        opts.field_selector = fields::parse(&combined)?;
    }
    let include = match neg.target {
        Target::Table => table::parse_include_object(
            crate::http::request_info::query_param(query, "includeObject").as_deref(),
        )?,
        _ => IncludeObject::Metadata,
    };
    let cache: &WatchCache = &state.cache;
    let ns = (!ctx.namespace.is_empty()).then(|| ctx.namespace.to_string());
    let timeout = watch_timeout(opts.timeout_seconds);

    // Where the stream starts, and which objects it first reports as ADDED.
    let initial_events = match (opts.send_initial_events, opts.resource_version) {
        (Some(send), _) => send,
        // Go defaults a watch from "" or "0" to the current state first.
        (None, Rv::Latest | Rv::Any) => true,
        (None, Rv::At(_)) => false,
    };
    let storage_err = |e: StorageError| match e {
        StorageError::TooLarge { requested, current } => {
            ApiError::too_large_resource_version(requested, current)
        }
        other => ApiError::service_unavailable(other.to_string()),
    };
    let start_rv = match opts.resource_version {
        Rv::Latest => cache.consistent_rv().await.map_err(storage_err)?,
        Rv::Any => cache.head(),
        Rv::At(n) => {
            cache
                .wait_for(n, FUTURE_RV_WAIT)
                .await
                .map_err(storage_err)?;
            n
        }
    };
    let mut initial = Vec::new();
    let mut from_rv = start_rv;
    if initial_events {
        // The snapshot and the subscription must meet exactly: list at the cache's head, then
        // watch everything after that head.
        let chunk = cache.list(r.plural(), ns.as_deref(), None, 0);
        from_rv = chunk.rv;
        initial = chunk
            .items
            .into_iter()
            .filter(|s| registry::selected(&opts, &s.key, &s.object))
            .map(|s| s.object)
            .collect();
    }
    let content_type = match neg.format {
        Format::Json => "application/json",
        Format::Yaml => "application/yaml;stream=watch",
    };
    let mut stream = Stream {
        resource: r,
        version: ctx.version,
        neg,
        include,
        opts,
        headers_sent: false,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);

    let watcher = cache
        .watch(r.plural(), ns.as_deref(), from_rv, WATCHER_QUEUE)
        .await;
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(StorageError::Compacted {
            requested,
            compacted,
        }) => {
            // Go answers 200 and an ERROR event, so clients relist.
            let err = ApiError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            ));
            let frame = stream.frame("ERROR", err.to_status());
            let _ = tx.send(Ok(frame)).await;
            None
        }
        Err(e) => return Err(storage_err(e)),
    };

    if let Some(mut w) = watcher.take() {
        let registered = crate::metrics::register_watcher(r.plural(), ctx.version);
        tokio::spawn(async move {
            let _registered = registered;
            // A deadline past what the clock can hold is no deadline at all.
            let deadline = tokio::time::Instant::now().checked_add(timeout);
            let mut last_rv = from_rv;
            for obj in initial {
                if tx
                    .send(Ok(stream.frame_stored("ADDED", &obj)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if stream.opts.send_initial_events == Some(true) && stream.opts.allow_watch_bookmarks {
                let b = stream.bookmark(from_rv, true);
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_EVERY,
                BOOKMARK_EVERY,
            );
            loop {
                tokio::select! {
                    ev = w.next() => match ev {
                        Some(Ok(ev)) => {
                            last_rv = ev.rv;
                            if let Some(frame) = stream.event(&ev)
                                && tx.send(Ok(frame)).await.is_err() {
                                    return;
                                }
                        }
                        Some(Err(WatchEnd::Expired { requested, compacted })) => {
                            let err = ApiError::gone(format!("too old resource version: {requested} ({compacted})"));
                            let _ = tx.send(Ok(stream.frame("ERROR", err.to_status()))).await;
                            return;
                        }
                        // Too slow or shutting down: end the stream; the client resumes from
                        // the last resourceVersion it saw.
                        Some(Err(_)) | None => return,
                    },
                    _ = tick.tick() => {
                        if stream.opts.allow_watch_bookmarks {
                            // Idle and fully delivered: the cache head is a valid bookmark.
                            let rv = last_rv.max(w.bookmark_rv());
                            if tx.send(Ok(stream.bookmark(rv, false))).await.is_err() {
                                return;
                            }
                        }
                    }
                    _ = until(deadline) => {
                        if stream.opts.allow_watch_bookmarks {
                            let rv = last_rv.max(w.bookmark_rv());
                            let _ = tx.send(Ok(stream.bookmark(rv, false))).await;
                        }
                        return;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
    }

    let body = Body::from_stream(ReceiverStream::new(rx));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

/// Go's default watch timeout: a random time between MinRequestTimeout and twice it.
fn default_timeout() -> u64 {
    1800 + rand::random::<u64>() % 1800
}

/// How long a watch runs: `timeoutSeconds` as given (any u64 is accepted: a duration holds it),
/// or Go's random default when absent or 0 (Go: `if timeout == 0 && minRequestTimeout > 0`).
fn watch_timeout(timeout_seconds: Option<u64>) -> Duration {
    match timeout_seconds {
        None | Some(0) => Duration::from_secs(default_timeout()),
        Some(n) => Duration::from_secs(n),
    }
}

/// Waits until `deadline`, or forever when there is none.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Stream {
    fn api_version(&self) -> String {
        format!("{GROUP}/{}", self.version)
    }

    /// One framed event: a JSON line (or a YAML document).
    fn frame(&self, kind: &str, object: Value) -> Bytes {
        crate::metrics::watch_event(self.resource.plural(), self.version);
        let ev = json!({"type": kind, "object": object});
        match self.neg.format {
            Format::Json => {
                let mut b = crate::apimachinery::gofmt::go_json_escape(ev.to_string());
                b.push('\n');
                Bytes::from(b)
            }
            Format::Yaml => {
                let (doc, _) = negotiate::encode(&ev, Format::Yaml, false);
                let mut b = b"---\n".to_vec();
                b.extend_from_slice(&doc);
                Bytes::from(b)
            }
        }
    }

    /// An object (storage JSON) in the form the client asked for.
    fn frame_object(&mut self, kind: &str, obj: Value) -> Bytes {
        let r = self.resource;
        let out = match self.neg.target {
            Target::Table => {
                let t = table::table(
                    r,
                    self.version,
                    self.neg.target_version,
                    &[obj],
                    None,
                    self.include,
                    !self.headers_sent,
                );
                self.headers_sent = true;
                t
            }
            Target::PartialObjectMetadata | Target::PartialObjectMetadataList => {
                table::partial_object_metadata(&obj, self.neg.target_version)
            }
            Target::Object => r.storage_to_version(self.version, obj),
        };
        self.frame(kind, out)
    }

    /// A cached object's event: as plain JSON it is spliced in from the object's stored text.
    fn frame_stored(&mut self, kind: &str, obj: &Obj) -> Bytes {
        if self.neg.target != Target::Object || self.neg.format != Format::Json {
            return self.frame_object(kind, obj.value());
        }
        let (r, version) = (self.resource, self.version);
        // This path bypasses frame(), which counts the others.
        crate::metrics::watch_event(r.plural(), version);
        let text = obj.json_in(version, r.storage_version(), |v| {
            r.storage_to_version(version, v)
        });
        // Keys in sorted order, as serializing {"type", "object"} gives.
        let mut b = Vec::with_capacity(text.len() + kind.len() + 24);
        b.extend_from_slice(b"{\"object\":");
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(b",\"type\":\"");
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(b"\"}\n");
        Bytes::from(b)
    }

    /// A cache event through the selectors: an object leaving them is DELETED (with its last
    /// matching content and the event's RV), one entering them ADDED.
    fn event(&mut self, ev: &Event) -> Option<Bytes> {
        let now =
            ev.kind != EventType::Deleted && registry::selected(&self.opts, &ev.key, &ev.object);
        let before = ev
            .prev_object
            .as_ref()
            .is_some_and(|p| registry::selected(&self.opts, &ev.key, p));
        match (before, now) {
            (false, true) => Some(self.frame_stored("ADDED", &ev.object)),
            (true, true) => Some(self.frame_stored("MODIFIED", &ev.object)),
            // A deletion's object is already the last state at the event's RV.
            (true, false) if ev.kind == EventType::Deleted => {
                Some(self.frame_stored("DELETED", &ev.object))
            }
            (true, false) => {
                let mut last = ev.prev_object.as_ref().unwrap_or(&ev.object).value();
                last["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                Some(self.frame_object("DELETED", last))
            }
            (false, false) => None,
        }
    }

    /// A BOOKMARK: the kind's empty object (as Go encodes it: a Flunder keeps `spec: {}` and
    /// `status: {}`) carrying only the resourceVersion.
    fn bookmark(&mut self, rv: i64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let mut obj = self
            .resource
            .hub_to_version(self.version, json!({"metadata": {}}));
        obj["metadata"] = meta;
        obj["kind"] = json!(self.resource.kind());
        obj["apiVersion"] = json!(self.api_version());
        match self.neg.target {
            Target::Object => self.frame("BOOKMARK", obj),
            _ => self.frame_object("BOOKMARK", obj),
        }
    }
}
