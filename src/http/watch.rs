//! Watch on the wire: a session that encodes the registry's typed watch events as Kubernetes
//! frames — JSON lines (or YAML documents) of `{"type", "object"}`, objects as the client asked
//! (the version's object, a Table row, PartialObjectMetadata). Where a watch starts and which
//! events it gets is the registry's (`registry::watch`).

use super::negotiate::{Negotiated, Target};
use super::table::{self, IncludeObject};
use crate::api::{GROUP, Resource};
use crate::apimachinery::options::ListOptions;
use crate::apimachinery::query::query_param;
use crate::apimachinery::status::{ApiError, ApiResult};
use crate::registry::{Ctx, Obj, Store, Watch, WatchEvent};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Encoded frames buffered between the session and the connection.
const FRAMES_BUFFERED: usize = 64;

/// One watch stream's encoder: the resource and version its objects are shown in, the
/// negotiated form, (for Tables) whether the column headers went out yet, and the count of
/// events sent.
struct Session {
    resource: &'static dyn Resource,
    version: &'static str,
    sent: crate::metrics::WatchEvents,
    neg: Negotiated,
    include: IncludeObject,
    headers_sent: bool,
}

/// WATCH: opens the registry's watch (its errors are the response) and streams its events as
/// a 200 response whose body ends with the watch.
pub async fn serve(
    store: &Store,
    ctx: &Ctx<'_>,
    name: &str,
    opts: ListOptions,
    neg: Negotiated,
    query: Option<&str>,
) -> ApiResult<Response> {
    let include = match neg.target {
        Target::Table => {
            table::parse_include_object(query_param(query, "includeObject").as_deref())?
        }
        _ => IncludeObject::Metadata,
    };
    let watch = store.watch(ctx, name, opts).await?;
    let session = Session {
        resource: ctx.resource,
        version: ctx.version,
        sent: crate::metrics::watch_events(ctx.resource.plural(), ctx.version),
        neg,
        include,
        headers_sent: false,
    };
    // JSON only: `negotiate::watch_stream` refused every other form, as Go does.
    let content_type = "application/json";
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(FRAMES_BUFFERED);
    tokio::spawn(session.run(watch, tx));
    let body = Body::from_stream(ReceiverStream::new(rx));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

impl Session {
    /// Sends the watch's events until it ends or the client goes away.
    async fn run(mut self, mut watch: Watch, tx: mpsc::Sender<Result<Bytes, std::io::Error>>) {
        let _registered = watch
            .is_live()
            .then(|| crate::metrics::register_watcher(self.resource.plural(), self.version));
        loop {
            let event = tokio::select! {
                ev = watch.next() => ev,
                _ = tx.closed() => return,
            };
            let Some(event) = event else { return };
            if tx.send(Ok(self.encode(event))).await.is_err() {
                return;
            }
        }
    }

    /// One event as a frame.
    fn encode(&mut self, event: WatchEvent) -> Bytes {
        match event {
            WatchEvent::Added(obj) => self.frame_stored("ADDED", &obj),
            WatchEvent::Modified(obj) => self.frame_stored("MODIFIED", &obj),
            WatchEvent::Deleted(obj) => self.frame_stored("DELETED", &obj),
            WatchEvent::Left(last) => self.frame_object("DELETED", last),
            WatchEvent::Bookmark {
                rv,
                initial_events_end,
            } => self.bookmark(rv, initial_events_end),
            WatchEvent::Error(e) => self.error(&e),
        }
    }

    /// One framed event: a JSON line.
    fn frame(&self, kind: &str, object: Value) -> Bytes {
        self.sent.sent();
        let ev = json!({"type": kind, "object": object});
        let mut b = crate::apimachinery::gofmt::go_json_escape(ev.to_string());
        b.push('\n');
        Bytes::from(b)
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
        if self.neg.target != Target::Object {
            return self.frame_object(kind, obj.value());
        }
        let (r, version) = (self.resource, self.version);
        // This path bypasses frame(), which counts the others.
        self.sent.sent();
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
        obj["apiVersion"] = json!(format!("{GROUP}/{}", self.version));
        match self.neg.target {
            Target::Object => self.frame("BOOKMARK", obj),
            _ => self.frame_object("BOOKMARK", obj),
        }
    }

    /// An ERROR event: the Status of why the stream ends.
    fn error(&self, e: &ApiError) -> Bytes {
        self.frame("ERROR", e.to_status())
    }
}
