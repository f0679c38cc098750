//! The watch cache (one per process): current objects and a window of recent events, fed by one
//! tailer reading the `events` log in RV order; serves lists/gets at its head and watches.
//!
//! Correctness rests on one rule: the tailer applies events strictly as `head+1, head+2, …` read
//! from the log in one snapshot with the counter, so a missing RV is always noticed; it is either
//! compaction (reload, end watchers with `Expired`) or a bug (logged, retried, never skipped).
//! Wake-ups (in-process commits, the engine's news of other commits, a timer) only decide *when*
//! the tailer reads, never *what* it applies, so a lost wake-up costs latency, not events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};

use super::Storage;
use super::types::{Chunk, EventPage, Key, StorageError, StorageResult, Stored};
pub use super::types::{Event, EventType};

/// Rows per read of the event log.
const PAGE: usize = 1000;
/// Rows per page while loading the objects.
const LOAD_PAGE: usize = 1000;
/// Events younger than this stay in the window (the k8s cacher's `eventFreshDuration`).
const FRESH: Duration = Duration::from_secs(75);
/// The window keeps at least this many events, whatever their age…
const MIN_WINDOW: usize = 100;
/// …and at most this many (the k8s cacher's upper capacity).
const MAX_WINDOW: usize = 100 * 1024;
/// The tailer reads the log at least this often, whatever wake-ups were lost.
const FALLBACK: Duration = Duration::from_secs(1);
/// How long a consistent read waits for the cache to reach the committed horizon.
const CONSISTENT_WAIT: Duration = Duration::from_secs(3);
/// How long a watch from a future RV waits for the cache to reach it.
const FUTURE_WAIT: Duration = Duration::from_secs(3);
/// Pause after a failed database read, doubling up to `MAX_BACKOFF`.
const BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a watch ended. After the events already queued for it, a watcher yields one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// Its queue was full: it fell behind. Resume from `Watcher::last_rv()`.
    TooSlow,
    /// The events after `requested` were compacted before they could be delivered (410: relist).
    Expired { requested: i64, compacted: i64 },
    /// The cache stopped.
    Shutdown,
}

/// The process's watch cache; cheap to clone. The tailer stops when the last clone is dropped
/// or on [`WatchCache::shutdown`].
#[derive(Clone)]
pub struct WatchCache {
    shared: Arc<Shared>,
    /// Dropping the last clone drops the sender, which stops the background tasks.
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("head", &self.head())
            .finish_non_exhaustive()
    }
}

struct Shared {
    storage: Storage,
    state: Mutex<State>,
    /// The cache's head, for `wait_for`.
    head: watch::Sender<i64>,
    /// Wakes the tailer (another process committed, or may have: see `Storage::wake_on_commits`).
    wake: Arc<Notify>,
}

/// Everything the tailer changes, under one lock, so registering a watcher, replaying the
/// window to it and dispatching live events can never interleave.
struct State {
    /// The last RV applied.
    head: i64,
    /// Every event with RV above this is in `window`.
    window_start: i64,
    /// The compaction horizon as of the tailer's last read.
    compacted: i64,
    window: VecDeque<(Instant, Arc<Event>)>,
    /// resource → (namespace, name) → object, in byte order like the SQL `COLLATE "C"` order.
    objects: HashMap<String, BTreeMap<(String, String), Stored>>,
    watchers: HashMap<u64, Slot>,
    next_id: u64,
    stopped: bool,
}

/// A registered watcher as the tailer sees it.
struct Slot {
    resource: String,
    namespace: Option<String>,
    /// Events at or below this RV were already handed to the watcher (from the log or window).
    after: i64,
    tx: mpsc::Sender<Arc<Event>>,
    /// Set before `tx` is dropped, so the watcher learns why its queue closed.
    end: Arc<OnceLock<WatchEnd>>,
}

impl Slot {
    fn wants(&self, ev: &Event) -> bool {
        ev.rv > self.after && matches_filter(&self.resource, self.namespace.as_deref(), &ev.key)
    }
}

fn matches_filter(resource: &str, namespace: Option<&str>, key: &Key) -> bool {
    key.resource == resource && namespace.is_none_or(|ns| key.namespace == ns)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update of State is completed before anything that could panic; a poisoned lock
    // still holds a consistent cache.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn new(rv: i64, items: Vec<Stored>) -> State {
        let mut state = State {
            head: rv,
            window_start: rv,
            compacted: 0,
            window: VecDeque::new(),
            objects: HashMap::new(),
            watchers: HashMap::new(),
            next_id: 0,
            stopped: false,
        };
        state.load(rv, items);
        state
    }

    fn load(&mut self, rv: i64, items: Vec<Stored>) {
        self.objects.clear();
        for item in items {
            self.objects
                .entry(item.key.resource.clone())
                .or_default()
                .insert((item.key.namespace.clone(), item.key.name.clone()), item);
        }
        self.head = rv;
        self.window_start = rv;
        self.window.clear();
    }

    /// The oldest RV a watch can start from in memory.
    fn replay_floor(&self) -> i64 {
        self.window_start.max(self.compacted)
    }

    /// Applies one event (the caller guarantees `ev.rv == head + 1`) and hands it to watchers.
    fn apply(&mut self, ev: Event, now: Instant) {
        let resource_map = self.objects.entry(ev.key.resource.clone()).or_default();
        let name = (ev.key.namespace.clone(), ev.key.name.clone());
        match ev.kind {
            EventType::Deleted => {
                resource_map.remove(&name);
            }
            EventType::Added | EventType::Modified => {
                resource_map.insert(
                    name,
                    Stored {
                        key: ev.key.clone(),
                        rv: ev.rv,
                        object: ev.object.clone(),
                    },
                );
            }
        }
        self.head = ev.rv;
        let ev = Arc::new(ev);
        self.dispatch(&ev);
        self.window.push_back((now, ev));
    }

    /// Queues `ev` for every interested watcher; a full queue ends that watcher (never blocks,
    /// never skips: the watcher sees everything before `ev`, then `TooSlow`).
    fn dispatch(&mut self, ev: &Arc<Event>) {
        let mut gone = Vec::new();
        for (id, slot) in &mut self.watchers {
            if !slot.wants(ev) {
                continue;
            }
            match slot.tx.try_send(ev.clone()) {
                Ok(()) => slot.after = ev.rv,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = slot.end.set(WatchEnd::TooSlow);
                    gone.push(*id);
                }
                // The watcher was dropped; its Drop also unregisters.
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            self.watchers.remove(&id);
        }
    }

    /// Drops events that are both old and beyond the minimum, or beyond the maximum.
    fn evict(&mut self, now: Instant) {
        while let Some((at, ev)) = self.window.front() {
            let too_many = self.window.len() > MAX_WINDOW;
            let stale = self.window.len() > MIN_WINDOW && now.duration_since(*at) > FRESH;
            if !(too_many || stale) {
                break;
            }
            self.window_start = ev.rv;
            self.window.pop_front();
        }
    }

    /// Ends every watcher with `end` (their queued events are still delivered first).
    fn end_all(&mut self, end: impl Fn(&Slot) -> WatchEnd) {
        for (_, slot) in self.watchers.drain() {
            let _ = slot.end.set(end(&slot));
        }
    }
}

/// Where a page of the log stops continuing `after`.
#[derive(Debug, PartialEq, Eq)]
struct Continuity {
    /// How many leading events are exactly `after+1, after+2, …`.
    usable: usize,
    /// The first RV that should have been in the page but is not.
    missing: Option<i64>,
}

fn continuity(after: i64, page: &EventPage, limit: usize) -> Continuity {
    let usable = page
        .events
        .iter()
        .zip(after + 1..)
        .take_while(|(ev, want)| ev.rv == *want)
        .count();
    let next = after + 1 + i64::try_from(usable).unwrap_or(i64::MAX);
    // A page cut by the limit may simply end there; otherwise it must reach the counter.
    let missing =
        if usable < page.events.len() || (page.events.len() < limit && next <= page.current) {
            Some(next)
        } else {
            None
        };
    Continuity { usable, missing }
}

/// What a read of the log found.
enum Step {
    /// Applied this many events; more may follow if it equals the page size.
    Applied(usize),
    /// Compaction passed the cache: reloaded, watchers expired.
    Reloaded,
    /// A hole that is not compaction: nothing after it was applied.
    Hole(i64),
}

impl WatchCache {
    /// Loads every object at one RV (one snapshot) and starts the tailer, woken by this process's
    /// commits, by the engine's news of other processes' commits, and at least every second.
    pub async fn start(storage: Storage) -> anyhow::Result<WatchCache> {
        let (rv, items) = storage.all_objects(LOAD_PAGE).await?;
        tracing::info!(rv, objects = items.len(), "watch cache loaded");
        let shared = Arc::new(Shared {
            storage: storage.clone(),
            state: Mutex::new(State::new(rv, items)),
            head: watch::channel(rv).0,
            wake: Arc::new(Notify::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let poll = storage.wake_on_commits(shared.wake.clone(), stop_rx.clone());
        tokio::spawn(tail(shared.clone(), stop_rx, poll.unwrap_or(FALLBACK)));
        Ok(WatchCache {
            shared,
            stop: Arc::new(stop),
        })
    }

    /// Stops the tailer and ends every watcher with `Shutdown`.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// The last RV applied to the cache.
    pub fn head(&self) -> i64 {
        lock(&self.shared.state).head
    }

    /// The oldest RV a watch can be replayed from in memory; older ones are read from the log.
    pub fn oldest_rv(&self) -> i64 {
        lock(&self.shared.state).replay_floor()
    }

    /// Waits until the cache has applied `rv`; `TooLarge` if it does not within `timeout`.
    pub async fn wait_for(&self, rv: i64, timeout: Duration) -> StorageResult<()> {
        let mut head = self.shared.head.subscribe();
        match tokio::time::timeout(timeout, head.wait_for(|h| *h >= rv)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StorageError::TooLarge {
                requested: rv,
                current: self.head(),
            }),
        }
    }

    /// Read-your-own-writes without a database read: waits (≤ 3 s) until the cache has applied
    /// every batch this process committed, and returns that RV. Commits of other replicas
    /// arrive as they do for any watcher (LISTEN/NOTIFY or polling, milliseconds), as an
    /// informer's cache trails its server. On timeout `TooLarge`.
    ///
    /// No wake-up of the tailer here: the commit that raised `rv` already woke it to take its
    /// events from the writer's journal, while a wake-up would make it read the log back from
    /// the database (what the per-create BanFlunder check did until 2026-11-30: a read
    /// transaction for about every other create, ~6 % of the server's CPU at 32 clients).
    pub async fn caught_up_with_own_commits(&self) -> StorageResult<i64> {
        let rv = *self.shared.storage.subscribe_commits().borrow();
        if rv > self.head() {
            self.wait_for(rv, CONSISTENT_WAIT).await?;
        }
        Ok(rv)
    }

    /// Read-your-writes across replicas: reads the committed horizon R from the database and
    /// waits (≤ 3 s) until the cache has applied it; returns R (then `head() >= R`). On timeout
    /// `TooLarge`: the caller may read from the database instead.
    pub async fn consistent_rv(&self) -> StorageResult<i64> {
        let rv = self.shared.storage.current_rv().await?;
        if rv > self.head() {
            // The tailer may be asleep until its next tick; reading now is cheap and faster.
            self.shared.wake.notify_one();
            self.wait_for(rv, CONSISTENT_WAIT).await?;
        }
        Ok(rv)
    }

    /// Up to `limit` objects (0 = no limit) of `resource` (in `namespace`, or all) after the key
    /// `after`, in (namespace, name) byte order, at `head()` (the chunk's `rv`).
    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Chunk {
        let state = lock(&self.shared.state);
        let mut chunk = Chunk {
            rv: state.head,
            items: Vec::new(),
            more: false,
        };
        let Some(map) = state.objects.get(resource) else {
            return chunk;
        };
        let after = after.map(|(ns, n)| (ns.to_owned(), n.to_owned()));
        // Start at the later of `after` and the namespace's first key.
        let lower = match (after, namespace) {
            (Some(a), Some(ns)) if a.0.as_str() < ns => {
                Bound::Included((ns.to_owned(), String::new()))
            }
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut matching = map
            .range((lower, Bound::Unbounded))
            .take_while(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, stored)| stored);
        for stored in matching.by_ref() {
            if limit != 0 && chunk.items.len() == limit {
                chunk.more = true;
                break;
            }
            chunk.items.push(stored.clone());
        }
        chunk
    }

    /// The object as of `head()`.
    pub fn get(&self, key: &Key) -> Option<Stored> {
        lock(&self.shared.state)
            .objects
            .get(&key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
            .cloned()
    }

    /// Every event of `resource` (in `namespace`, or all) with RV above `from_rv`, in RV order,
    /// then live ones, through a queue of `queue` events. `Compacted` if events after `from_rv`
    /// may be gone; `TooLarge` if the cache does not reach `from_rv` within a few seconds.
    pub async fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        from_rv: i64,
        queue: usize,
    ) -> StorageResult<Watcher> {
        if from_rv > self.head() {
            self.shared.wake.notify_one();
            self.wait_for(from_rv, FUTURE_WAIT).await?;
        }
        let mut w = Watcher {
            shared: self.shared.clone(),
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
            queue: queue.max(1),
            last_rv: from_rv,
            pending: VecDeque::new(),
            phase: Phase::CatchUp { cursor: from_rv },
        };
        if !w.try_register()? {
            // Older than the window: the first page now, so a compacted RV fails the request
            // itself (410 before any streaming) rather than the stream.
            w.fill_from_log().await?;
        }
        Ok(w)
    }
}

/// Where a watcher gets its next events from.
enum Phase {
    /// Reading the log after `cursor` (older than the window); not registered yet.
    CatchUp {
        cursor: i64,
    },
    /// Registered: live events arrive through `rx`.
    Live {
        id: u64,
        rx: mpsc::Receiver<Arc<Event>>,
        end: Arc<OnceLock<WatchEnd>>,
    },
    Done,
}

/// One watch: yields events in RV order, then (possibly) why it ended. Dropping it unregisters.
pub struct Watcher {
    shared: Arc<Shared>,
    resource: String,
    namespace: Option<String>,
    queue: usize,
    last_rv: i64,
    /// Replayed events (from the log or the window), delivered before anything in `rx`.
    pending: VecDeque<Arc<Event>>,
    phase: Phase,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("resource", &self.resource)
            .field("namespace", &self.namespace)
            .field("last_rv", &self.last_rv)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// The next event, or why the watch ended (once), then `None`. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>, WatchEnd>> {
        let mut backoff = BACKOFF;
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.last_rv = ev.rv;
                return Some(Ok(ev));
            }
            match &mut self.phase {
                Phase::Done => return None,
                Phase::Live { rx, end, .. } => match rx.recv().await {
                    Some(ev) => {
                        self.last_rv = ev.rv;
                        return Some(Ok(ev));
                    }
                    None => {
                        let why = end.get().cloned().unwrap_or(WatchEnd::Shutdown);
                        self.finish();
                        return Some(Err(why));
                    }
                },
                Phase::CatchUp { .. } => match self.fill_from_log().await {
                    Ok(()) => backoff = BACKOFF,
                    Err(StorageError::Compacted {
                        requested,
                        compacted,
                    }) => {
                        self.finish();
                        return Some(Err(WatchEnd::Expired {
                            requested,
                            compacted,
                        }));
                    }
                    Err(_) if lock(&self.shared.state).stopped => {
                        self.finish();
                        return Some(Err(WatchEnd::Shutdown));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watch replay from the event log failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
            }
        }
    }

    /// The RV of the last event delivered (or the RV the watch started from): resume from here.
    pub fn last_rv(&self) -> i64 {
        self.last_rv
    }

    /// The RV a bookmark may carry: every event of this watch up to it has been delivered.
    /// That is the cache's head when nothing is left queued for a still-registered watcher
    /// (checked under the dispatch lock), else `last_rv()`. Never ahead of delivered events.
    pub fn bookmark_rv(&self) -> i64 {
        if let Phase::Live { id, rx, .. } = &self.phase
            && self.pending.is_empty()
        {
            let state = lock(&self.shared.state);
            if rx.is_empty() && state.watchers.contains_key(id) {
                return state.head.max(self.last_rv);
            }
        }
        self.last_rv
    }

    fn finish(&mut self) {
        self.unregister();
        self.phase = Phase::Done;
    }

    fn unregister(&mut self) {
        if let Phase::Live { id, .. } = self.phase {
            lock(&self.shared.state).watchers.remove(&id);
        }
    }

    /// In catch-up at `cursor`: if the window covers everything after it, queue the window's
    /// events after it and register, all under the lock that dispatch takes, so no event falls
    /// between replay and live. Returns whether it registered.
    fn try_register(&mut self) -> StorageResult<bool> {
        let Phase::CatchUp { cursor } = self.phase else {
            return Ok(true);
        };
        let mut state = lock(&self.shared.state);
        if state.stopped {
            return Err(StorageError::Unavailable(
                "the watch cache has stopped".into(),
            ));
        }
        if cursor < state.replay_floor() {
            return Ok(false);
        }
        // The window is in RV order; skip to the first event after the cursor.
        let start = state.window.partition_point(|(_, ev)| ev.rv <= cursor);
        let (resource, namespace) = (&self.resource, self.namespace.as_deref());
        self.pending.extend(
            state
                .window
                .range(start..)
                .filter(|(_, ev)| matches_filter(resource, namespace, &ev.key))
                .map(|(_, ev)| ev.clone()),
        );
        let (tx, rx) = mpsc::channel(self.queue);
        let end = Arc::new(OnceLock::new());
        let id = state.next_id;
        state.next_id += 1;
        let after = cursor.max(state.head);
        state.watchers.insert(
            id,
            Slot {
                resource: self.resource.clone(),
                namespace: self.namespace.clone(),
                // The log may have been read beyond the cache's head: those events are pending
                // already and must not come again live.
                after,
                tx,
                end: end.clone(),
            },
        );
        drop(state);
        self.phase = Phase::Live { id, rx, end };
        Ok(true)
    }

    /// In catch-up: reads one page of the log after the cursor into `pending`, then tries to
    /// register. `Compacted` if the log no longer holds everything after the cursor.
    async fn fill_from_log(&mut self) -> StorageResult<()> {
        let Phase::CatchUp { cursor } = self.phase else {
            return Ok(());
        };
        let page = self.shared.storage.events_after(cursor, PAGE).await?;
        // Nothing below changes state before this point, so cancelling the await is harmless.
        let compacted = StorageError::Compacted {
            requested: cursor,
            compacted: page.compacted,
        };
        if cursor < page.compacted {
            return Err(compacted);
        }
        let c = continuity(cursor, &page, PAGE);
        if let Some(missing) = c.missing {
            if missing <= page.compacted {
                return Err(compacted);
            }
            tracing::error!(
                missing,
                after = cursor,
                "hole in the event log that is not compaction; retrying (never skipped)"
            );
        }
        let (resource, namespace) = (&self.resource, self.namespace.as_deref());
        let mut next = cursor;
        for ev in page.events.into_iter().take(c.usable) {
            next = ev.rv;
            if matches_filter(resource, namespace, &ev.key) {
                self.pending.push_back(Arc::new(ev));
            }
        }
        self.phase = Phase::CatchUp { cursor: next };
        if c.missing.is_some() {
            return Err(StorageError::Unavailable(format!(
                "hole in the event log at {}",
                next + 1
            )));
        }
        self.try_register()?;
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Applies this process's own commits that continue the head (handed over by the writer), then,
/// unless `own_only` and nothing is left of them, reads the log after the head and applies it,
/// page by page, until it is exhausted. `own_only`: woken only by this process's commits, so
/// the log holds nothing else new unless an own batch did not continue the head.
async fn catch_up(shared: &Shared, own_only: bool, holes: &mut u64) -> StorageResult<()> {
    let committed = shared.storage.subscribe_commits();
    loop {
        let after = lock(&shared.state).head;
        if let Some(own) = shared.storage.own_events_after(after) {
            let compacted = lock(&shared.state).compacted;
            let events = own.to_vec();
            let current = events.last().map_or(after, |e| e.rv);
            let page = EventPage {
                current,
                compacted,
                events,
            };
            apply_page(shared, after, page);
            continue;
        }
        if own_only && after >= *committed.borrow() {
            return Ok(());
        }
        let page = shared.storage.events_after(after, PAGE).await?;
        match apply_page(shared, after, page) {
            Step::Applied(n) => {
                *holes = 0;
                if n < PAGE {
                    return Ok(());
                }
            }
            Step::Reloaded => {
                // Events after the compaction point are not in the snapshot: reload.
                let (rv, items) = shared.storage.all_objects(LOAD_PAGE).await?;
                let compacted = {
                    let mut state = lock(&shared.state);
                    let compacted = state.compacted;
                    state.end_all(|slot| WatchEnd::Expired {
                        requested: slot.after,
                        compacted,
                    });
                    state.load(rv, items);
                    compacted
                };
                shared.head.send_replace(rv);
                tracing::warn!(
                    rv,
                    compacted,
                    "watch cache fell behind compaction; reloaded, watchers expired"
                );
                *holes = 0;
            }
            Step::Hole(missing) => {
                // Loud, but not every 100 ms: first time, then every 50th retry.
                if (*holes).is_multiple_of(50) {
                    tracing::error!(
                        missing,
                        after,
                        "hole in the event log that is not compaction: not skipping it, retrying"
                    );
                }
                *holes += 1;
                return Ok(());
            }
        }
    }
}

/// Applies the contiguous part of a page read after `after`.
fn apply_page(shared: &Shared, after: i64, page: EventPage) -> Step {
    let c = continuity(after, &page, PAGE);
    let mut state = lock(&shared.state);
    state.compacted = page.compacted;
    if state.head != after {
        // Someone reloaded meanwhile (only the tailer writes, so this cannot happen; be safe).
        return Step::Applied(PAGE);
    }
    if let Some(missing) = c.missing
        && missing <= page.compacted
    {
        return Step::Reloaded;
    }
    let now = Instant::now();
    for ev in page.events.into_iter().take(c.usable) {
        state.apply(ev, now);
    }
    state.evict(now);
    let head = state.head;
    drop(state);
    shared.head.send_replace(head);
    match c.missing {
        Some(missing) => Step::Hole(missing),
        None => Step::Applied(c.usable),
    }
}

/// The tailer: reads the log whenever woken, and at least every poll interval.
async fn tail(shared: Arc<Shared>, mut stop: watch::Receiver<bool>, tick: Duration) {
    let mut commits = shared.storage.subscribe_commits();
    let mut commits_open = true;
    let mut holes = 0;
    let mut failures = 0u32;
    // The first pass reads the log; later ones only when something other than this process's
    // own commits woke the tailer (or the last read failed).
    let mut own_only = false;
    loop {
        if *stop.borrow() {
            break;
        }
        match catch_up(&shared, own_only, &mut holes).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(failures, "watch cache tailer reads the event log again");
                }
                failures = 0;
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "watch cache tailer cannot read the event log; retrying");
                }
                failures = failures.saturating_add(1);
            }
        }
        let wait = if failures == 0 {
            tick
        } else {
            (BACKOFF * 2u32.saturating_pow(failures.min(6))).min(MAX_BACKOFF)
        };
        own_only = tokio::select! {
            changed = stop.changed() => if changed.is_err() { break } else { false },
            changed = commits.changed(), if commits_open => {
                if changed.is_err() { commits_open = false }
                failures == 0
            }
            _ = shared.wake.notified() => false,
            _ = tokio::time::sleep(wait) => false,
        };
    }
    let mut state = lock(&shared.state);
    state.stopped = true;
    state.end_all(|_| WatchEnd::Shutdown);
    tracing::debug!("watch cache tailer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::types::Obj;
    use serde_json::json;

    fn ev(rv: i64, kind: EventType, ns: &str, name: &str) -> Event {
        Event {
            rv,
            kind,
            key: Key::new("flunders", ns, name),
            object: Obj::from_value(
                &json!({"metadata": {"name": name, "resourceVersion": rv.to_string()}}),
            ),
            prev_object: None,
        }
    }

    fn page(current: i64, compacted: i64, rvs: &[i64]) -> EventPage {
        EventPage {
            current,
            compacted,
            events: rvs
                .iter()
                .map(|&rv| ev(rv, EventType::Added, "ns", "x"))
                .collect(),
        }
    }

    #[test]
    fn continuity_accepts_contiguous_pages() {
        assert_eq!(
            continuity(4, &page(7, 0, &[5, 6, 7]), 10),
            Continuity {
                usable: 3,
                missing: None
            }
        );
        // Cut by the limit: more may follow, nothing is missing.
        assert_eq!(
            continuity(4, &page(9, 0, &[5, 6]), 2),
            Continuity {
                usable: 2,
                missing: None
            }
        );
        assert_eq!(
            continuity(4, &page(4, 0, &[]), 10),
            Continuity {
                usable: 0,
                missing: None
            }
        );
    }

    #[test]
    fn continuity_finds_holes() {
        // Gap in the middle.
        assert_eq!(
            continuity(4, &page(8, 0, &[5, 7, 8]), 10),
            Continuity {
                usable: 1,
                missing: Some(6)
            }
        );
        // Gap at the start (e.g. compaction passed us).
        assert_eq!(
            continuity(4, &page(8, 6, &[7, 8]), 10),
            Continuity {
                usable: 0,
                missing: Some(5)
            }
        );
        // Everything deleted although the counter is ahead.
        assert_eq!(
            continuity(4, &page(8, 8, &[]), 10),
            Continuity {
                usable: 0,
                missing: Some(5)
            }
        );
        // Short page that stops before the counter.
        assert_eq!(
            continuity(4, &page(8, 0, &[5, 6]), 10),
            Continuity {
                usable: 2,
                missing: Some(7)
            }
        );
        // Duplicates or disorder are holes too.
        assert_eq!(continuity(4, &page(6, 0, &[5, 5, 6]), 10).missing, Some(6));
    }

    fn state_with_watcher(
        queue: usize,
    ) -> (State, mpsc::Receiver<Arc<Event>>, Arc<OnceLock<WatchEnd>>) {
        let mut state = State::new(0, Vec::new());
        let (tx, rx) = mpsc::channel(queue);
        let end = Arc::new(OnceLock::new());
        state.watchers.insert(
            0,
            Slot {
                resource: "flunders".into(),
                namespace: Some("a".into()),
                after: 0,
                tx,
                end: end.clone(),
            },
        );
        (state, rx, end)
    }

    #[test]
    fn apply_updates_objects_and_filters_dispatch() {
        let (mut state, mut rx, end) = state_with_watcher(10);
        let now = Instant::now();
        state.apply(ev(1, EventType::Added, "a", "x"), now);
        state.apply(ev(2, EventType::Added, "b", "y"), now);
        state.apply(ev(3, EventType::Deleted, "a", "x"), now);
        assert_eq!(state.head, 3);
        let map = &state.objects["flunders"];
        assert_eq!(map.len(), 1);
        assert!(map.contains_key(&("b".to_string(), "y".to_string())));
        assert_eq!(rx.try_recv().map(|e| e.rv).ok(), Some(1));
        assert_eq!(rx.try_recv().map(|e| e.rv).ok(), Some(3));
        assert!(rx.try_recv().is_err());
        assert!(end.get().is_none());
        assert_eq!(state.window.len(), 3);
    }

    #[test]
    fn a_full_queue_ends_the_watcher_after_a_complete_prefix() {
        let (mut state, mut rx, end) = state_with_watcher(1);
        let now = Instant::now();
        state.apply(ev(1, EventType::Added, "a", "x"), now);
        state.apply(ev(2, EventType::Modified, "a", "x"), now);
        assert!(state.watchers.is_empty());
        assert_eq!(end.get(), Some(&WatchEnd::TooSlow));
        assert_eq!(rx.try_recv().map(|e| e.rv).ok(), Some(1));
        // Closed after the prefix: nothing skipped silently.
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn eviction_keeps_the_minimum_and_moves_the_window_start() {
        let mut state = State::new(0, Vec::new());
        let old = Instant::now();
        for rv in 1..=(MIN_WINDOW as i64 + 5) {
            state.apply(ev(rv, EventType::Added, "a", &format!("n{rv}")), old);
        }
        state.evict(old + FRESH + Duration::from_secs(1));
        assert_eq!(state.window.len(), MIN_WINDOW);
        assert_eq!(state.window_start, 5);
        assert_eq!(state.window.front().map(|(_, e)| e.rv), Some(6));
        // Fresh events are kept.
        state.evict(old);
        assert_eq!(state.window.len(), MIN_WINDOW);
    }
}
