//! WATCH: where a watch starts (resourceVersion rules), what it reports first (initial events),
//! and the typed events after that — selector transitions, bookmarks, expiry — read from the
//! watch cache. The HTTP layer only encodes them (`http::watch`). Mirrors Go's cacher
//! (`k8s.io/apiserver/pkg/storage/cacher`: `Watch`, `cacheWatcher`).

use super::{Ctx, Store, selected};
use crate::api::Resource;
use crate::apimachinery::fields;
use crate::apimachinery::options::{ListOptions, Rv};
use crate::apimachinery::status::{ApiError, ApiResult, Reason};
use crate::apimachinery::verb::Verb;
use crate::storage::cache::{Event, EventType, WatchEnd, Watcher};
use crate::storage::types::{Obj, StorageError};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::{Instant, Interval};

/// Events a watcher may have queued in the cache before it counts as too slow.
const WATCHER_QUEUE: usize = 1000;
/// How often an idle stream gets a bookmark (Go's cacher: about once a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// How long a watch from a future resourceVersion waits for it (Go's cacher: 3 s).
const FUTURE_RV_WAIT: Duration = Duration::from_secs(3);

/// One event of a watch, objects as storage JSON.
pub enum WatchEvent {
    Added(Obj),
    Modified(Obj),
    /// A deletion: the object's last state, at the deletion's resourceVersion.
    Deleted(Obj),
    /// An object that stopped matching the selectors: DELETED with its last matching content,
    /// stamped with the resourceVersion of the change that moved it out.
    Left(Value),
    /// Everything up to `rv` has been sent; `initial_events_end` marks the end of the initial
    /// events of a watch-list (`sendInitialEvents=true`).
    Bookmark {
        rv: i64,
        initial_events_end: bool,
    },
    /// The stream cannot go on (410 Expired: the client must relist). The last event.
    Error(ApiError),
}

/// An open watch: `next` yields its events until the timeout, the client's departure (dropping
/// it), or the end of the cache's stream (too slow, shutdown: the client resumes from the last
/// resourceVersion it saw).
pub struct Watch {
    resource: &'static dyn Resource,
    opts: ListOptions,
    /// Initial events still to be reported as ADDED, then the initial-events-end bookmark.
    initial: VecDeque<Obj>,
    initial_end: Option<i64>,
    /// None once the stream has ended (or when it expired before starting).
    watcher: Option<Watcher>,
    expired: Option<ApiError>,
    last_rv: i64,
    tick: Option<Interval>,
    /// None: no deadline (a timeout past what the clock can hold).
    deadline: Option<Instant>,
}

impl Store {
    /// WATCH of the collection (`name` "") or one object of it. The start follows Go's rules:
    /// resourceVersion unset is the latest committed state, `0` whatever the cache holds, `N`
    /// the changes after N (a future N waits up to 3 s, then 504); initial events (the state as
    /// ADDED) are sent when `sendInitialEvents=true`, or by default for `""`/`0`. Errors: 400 for
    /// a fieldSelector naming another object, the storage mapping's errors (504, 503); a start
    /// below the compaction horizon is not an error but a stream of one 410 ERROR event.
    pub async fn watch(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        mut opts: ListOptions,
    ) -> ApiResult<Watch> {
        if !name.is_empty() {
            opts.field_selector = by_name(&opts, name)?;
        }
        let cache = &self.cache;
        let plural = ctx.resource.plural();
        let ns = (!ctx.namespace.is_empty()).then_some(ctx.namespace);
        let storage_err = |e: StorageError| ctx.storage_error(name, e);
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
        let send_initial = match (opts.send_initial_events, opts.resource_version) {
            (Some(send), _) => send,
            // Go defaults a watch from "" or "0" to the current state first.
            (None, Rv::Latest | Rv::Any) => true,
            (None, Rv::At(_)) => false,
        };
        let mut initial = VecDeque::new();
        let mut from_rv = start_rv;
        if send_initial {
            // The snapshot and the subscription must meet exactly: list at the cache's head,
            // then watch everything after that head.
            let chunk = cache.list(plural, ns, None, 0);
            from_rv = chunk.rv;
            initial = chunk
                .items
                .into_iter()
                .filter(|s| selected(&opts, &s.key, &s.object))
                .map(|s| s.object)
                .collect();
        }
        let initial_end = (opts.send_initial_events == Some(true) && opts.allow_watch_bookmarks)
            .then_some(from_rv);
        let (watcher, expired) = match cache.watch(plural, ns, from_rv, WATCHER_QUEUE).await {
            Ok(w) => (Some(w), None),
            Err(e) => match storage_err(e) {
                // Go answers 200 and an ERROR event, so clients relist.
                e if e.reason == Reason::Expired => (None, Some(e)),
                e => return Err(e),
            },
        };
        let deadline = Instant::now().checked_add(watch_timeout(opts.timeout_seconds));
        Ok(Watch {
            resource: ctx.resource,
            opts,
            initial: if expired.is_some() {
                VecDeque::new()
            } else {
                initial
            },
            initial_end: initial_end.filter(|_| expired.is_none()),
            watcher,
            expired,
            last_rv: from_rv,
            tick: None,
            deadline,
        })
    }
}

/// The field selector of a watch of one object: `metadata.name=<name>` and the request's own
/// (400 if that names another object).
fn by_name(opts: &ListOptions, name: &str) -> ApiResult<fields::FieldSelector> {
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
    fields::parse(&combined)
}

/// Go's default watch timeout: a random time between MinRequestTimeout and twice it.
fn default_timeout() -> u64 {
    1800 + rand::random::<u64>() % 1800
}

/// How long a watch runs: `timeoutSeconds` as given (any positive i64 is accepted: a duration
/// holds it), Go's random default when absent or 0 (Go: `if timeout == 0 && minRequestTimeout >
/// 0`), none at all when negative (Go's timer fires at once: `Watch::next` ends the stream).
fn watch_timeout(timeout_seconds: Option<i64>) -> Duration {
    match timeout_seconds {
        None | Some(0) => Duration::from_secs(default_timeout()),
        Some(n) => Duration::from_secs(n.max(0).unsigned_abs()),
    }
}

/// Waits until `deadline`, or forever when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Watch {
    /// Whether the watch is open (false: it started below the compaction horizon and only
    /// reports that).
    pub fn is_live(&self) -> bool {
        self.watcher.is_some()
    }

    /// The next event; None when the stream has ended. Initial events come first, then the
    /// initial-events-end bookmark, then changes, with a bookmark every 10 s when idle (if the
    /// client allows bookmarks) and one at the timeout.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        // A negative timeoutSeconds: Go's 200 with an empty stream.
        if self.opts.timeout_seconds.is_some_and(|t| t < 0) {
            self.watcher = None;
            return None;
        }
        if let Some(e) = self.expired.take() {
            return Some(WatchEvent::Error(e));
        }
        if let Some(obj) = self.initial.pop_front() {
            return Some(WatchEvent::Added(obj));
        }
        if let Some(rv) = self.initial_end.take() {
            return Some(WatchEvent::Bookmark {
                rv,
                initial_events_end: true,
            });
        }
        let bookmarks = self.opts.allow_watch_bookmarks;
        let tick = self.tick.get_or_insert_with(|| {
            tokio::time::interval_at(Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY)
        });
        let w = self.watcher.as_mut()?;
        // Idle and fully delivered, the cache head is a valid bookmark.
        let bookmark = |last_rv: i64, w: &Watcher| WatchEvent::Bookmark {
            rv: last_rv.max(w.bookmark_rv()),
            initial_events_end: false,
        };
        let event = loop {
            tokio::select! {
                ev = w.next() => match ev {
                    Some(Ok(ev)) => {
                        self.last_rv = ev.rv;
                        if let Some(out) = transition(&self.opts, &ev) {
                            return Some(out);
                        }
                    }
                    Some(Err(WatchEnd::Expired { requested, compacted })) => {
                        let e = StorageError::Compacted { requested, compacted };
                        let r = self.resource;
                        break Some(WatchEvent::Error(ApiError::from_storage(
                            &Verb::Watch,
                            &r.group_resource(),
                            &r.group_kind(),
                            "",
                            e,
                        )));
                    }
                    // Too slow or shutting down: the client resumes from the last
                    // resourceVersion it saw.
                    Some(Err(_)) | None => break None,
                },
                _ = tick.tick(), if bookmarks => return Some(bookmark(self.last_rv, w)),
                _ = until(self.deadline) => break bookmarks.then(|| bookmark(self.last_rv, w)),
            }
        };
        // The stream ends with this event.
        self.watcher = None;
        event
    }
}

/// A cache event through the selectors: an object leaving them is DELETED (with its last
/// matching content and the event's RV), one entering them ADDED.
fn transition(opts: &ListOptions, ev: &Event) -> Option<WatchEvent> {
    let now = ev.kind != EventType::Deleted && selected(opts, &ev.key, &ev.object);
    let before = ev
        .prev_object
        .as_ref()
        .is_some_and(|p| selected(opts, &ev.key, p));
    match (before, now) {
        (false, true) => Some(WatchEvent::Added(ev.object.clone())),
        (true, true) => Some(WatchEvent::Modified(ev.object.clone())),
        // A deletion's object is already the last state at the event's RV.
        (true, false) if ev.kind == EventType::Deleted => {
            Some(WatchEvent::Deleted(ev.object.clone()))
        }
        (true, false) => {
            let mut last = ev.prev_object.as_ref().unwrap_or(&ev.object).value();
            last["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
            Some(WatchEvent::Left(last))
        }
        (false, false) => None,
    }
}
