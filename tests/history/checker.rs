//! The history checker: a recorded run (ground-truth event log, writes, watch streams, lists) is
//! checked against a model folded from the ground truth, with the etcd robustness suite's watch
//! validators (Ordered, Unique, Atomic/Reliable, Bookmarkable, Resumable) plus list-at-RV,
//! write/truth consistency, cross-replica identity and selector transitions.

#![allow(dead_code)] // the synthetic tests and the driver use different parts

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The annotation every write carries: a unique id tying each stored version to the write
/// that produced it (so a duplicate or phantom application is visible).
pub const WRITE_ID: &str = "history.wardle.test/write";

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub ns: String,
    pub name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ns, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Added,
    Modified,
    Deleted,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "ADDED" => Some(Kind::Added),
            "MODIFIED" => Some(Kind::Modified),
            "DELETED" => Some(Kind::Deleted),
            _ => None,
        }
    }
}

/// What the checker compares of one version of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjState {
    pub key: Key,
    pub uid: String,
    pub labels: Labels,
    pub write_id: Option<u64>,
    /// The resourceVersion of this version (for truth rows: the event's RV).
    pub rv: u64,
}

impl ObjState {
    /// Reads the compared fields from an object's JSON; `rv` overrides metadata.resourceVersion
    /// (stored objects omit it). None when the JSON is not an object with name and namespace.
    pub fn from_json(v: &Value, rv: Option<u64>) -> Option<ObjState> {
        let m = v.get("metadata")?;
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let labels = m
            .get("labels")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let write_id = m
            .get("annotations")
            .and_then(|a| a.get(WRITE_ID))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let rv = match rv {
            Some(rv) => rv,
            None => s("resourceVersion")?.parse().ok()?,
        };
        Some(ObjState {
            key: Key {
                ns: s("namespace").unwrap_or_default(),
                name: s("name")?,
            },
            uid: s("uid").unwrap_or_default(),
            labels,
            write_id,
            rv,
        })
    }
}

/// One row of the server's `events` table, copied out before compaction deletes it.
#[derive(Clone, Debug)]
pub struct TruthEvent {
    pub rv: u64,
    pub kind: Kind,
    /// State after the change (DELETED: the last state).
    pub obj: ObjState,
    pub prev: Option<ObjState>,
    pub prev_rv: Option<u64>,
}

impl TruthEvent {
    /// The object a watcher gets when this event is delivered as `k`: a MODIFIED that leaves the
    /// selector arrives as DELETED carrying the previous content at this event's RV (as the Go
    /// cacher does); everything else carries the new state.
    pub fn delivered(&self, k: Kind) -> ObjState {
        match (self.kind, k, &self.prev) {
            (Kind::Modified, Kind::Deleted, Some(p)) => ObjState {
                rv: self.rv,
                ..p.clone()
            },
            _ => self.obj.clone(),
        }
    }
}

/// One label requirement (the subset of selector syntax the workload uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req {
    Eq(String, String),
    Neq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Req {
    /// Kubernetes semantics: `!=` and `notin` also match objects without the key.
    pub fn matches(&self, l: &Labels) -> bool {
        match self {
            Req::Eq(k, v) => l.get(k) == Some(v),
            Req::Neq(k, v) => l.get(k) != Some(v),
            Req::In(k, vs) => l.get(k).is_some_and(|x| vs.contains(x)),
            Req::NotIn(k, vs) => !l.get(k).is_some_and(|x| vs.contains(x)),
            Req::Exists(k) => l.contains_key(k),
            Req::NotExists(k) => !l.contains_key(k),
        }
    }

    pub fn to_query(&self) -> String {
        match self {
            Req::Eq(k, v) => format!("{k}={v}"),
            Req::Neq(k, v) => format!("{k}!={v}"),
            Req::In(k, vs) => format!("{k} in ({})", vs.join(",")),
            Req::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
            Req::Exists(k) => k.clone(),
            Req::NotExists(k) => format!("!{k}"),
        }
    }
}

/// What a watcher or list asks for: a namespace (path), label requirements, a name (field selector).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub ns: Option<String>,
    pub labels: Vec<Req>,
    pub name: Option<String>,
}

impl Filter {
    pub fn matches(&self, o: &ObjState) -> bool {
        self.ns.as_ref().is_none_or(|ns| *ns == o.key.ns)
            && self.name.as_ref().is_none_or(|n| *n == o.key.name)
            && self.labels.iter().all(|r| r.matches(&o.labels))
    }

    pub fn label_selector(&self) -> Option<String> {
        (!self.labels.is_empty()).then(|| {
            self.labels
                .iter()
                .map(Req::to_query)
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// What a watcher with this filter should receive for `e`, by selector transition rules:
    /// matched before and now → MODIFIED, only now → ADDED, only before → DELETED.
    pub fn deliver(&self, e: &TruthEvent) -> Option<Kind> {
        let before = match e.kind {
            Kind::Added => false,
            Kind::Deleted => self.matches(e.prev.as_ref().unwrap_or(&e.obj)),
            Kind::Modified => e.prev.as_ref().is_some_and(|p| self.matches(p)),
        };
        let now = e.kind != Kind::Deleted && self.matches(&e.obj);
        match (before, now) {
            (true, true) => Some(Kind::Modified),
            (false, true) => Some(Kind::Added),
            (true, false) => Some(Kind::Deleted),
            (false, false) => None,
        }
    }
}

/// A watch event as received: the object's fields and the event type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: Kind,
    pub obj: ObjState,
}

#[derive(Clone, Debug)]
pub enum Frame {
    Event(WatchEvent),
    Bookmark(u64),
    /// An ERROR event. `horizon` = the highest compaction horizon announced when it arrived.
    Error {
        code: u16,
        message: String,
        horizon: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// The watcher's first stream.
    Start,
    /// Re-watch from the last RV seen after a stream ended.
    Resume,
    /// Re-watch from a fresh list's RV after a 410 (or when no position was known).
    Relist,
}

#[derive(Clone, Debug)]
pub enum End {
    /// The server ended the stream (EOF).
    ServerClosed,
    /// The test stopped the watcher; every matching event <= `complete_through` was committed
    /// well before, so it must have been delivered.
    ClientStopped { complete_through: Option<u64> },
    /// Connection refused/reset, or the body broke off.
    Transport(String),
    /// The watch request got a non-200 answer.
    Http(u16),
}

#[derive(Clone, Debug)]
pub struct Session {
    pub kind: SessionKind,
    /// `Some(R)`: watch from R. `None`: resourceVersion 0 or unset (synthetic ADDEDs first).
    pub from: Option<u64>,
    pub frames: Vec<Frame>,
    pub end: End,
}

#[derive(Clone, Debug)]
pub struct WatcherRecord {
    pub id: usize,
    pub replica: usize,
    pub filter: Filter,
    pub slow: bool,
    pub sessions: Vec<Session>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListOutcome {
    Ok,
    /// 410 Gone; `horizon` as in Frame::Error.
    Gone {
        horizon: u64,
    },
    /// Anything else (transport error, 5xx): not judged.
    Other(String),
}

#[derive(Clone, Debug)]
pub struct ListRecord {
    pub replica: usize,
    pub filter: Filter,
    /// The resourceVersion parameter: "" (consistent), "0" (any), or an exact RV.
    pub rv_param: String,
    pub exact: bool,
    /// The highest RV a write had returned before this list was sent (read-your-writes).
    pub min_rv: u64,
    pub rv: Option<u64>,
    pub items: Vec<ObjState>,
    pub pages: usize,
    pub outcome: ListOutcome,
    /// The compaction horizon announced before the list was sent.
    pub horizon_before: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    /// PUT with metadata.resourceVersion = expected.
    Update {
        expected: u64,
    },
    Patch,
    Delete {
        precondition: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// 2xx; `obj` is the returned object when the answer carries one (not for deletes).
    Ok { obj: Option<ObjState> },
    /// A definite refusal (4xx): must never be applied.
    Failed(u16),
    /// Transport error or 5xx: maybe applied.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct WriteRecord {
    pub id: u64,
    pub key: Key,
    pub op: Op,
    pub replica: usize,
    /// Microseconds since the run started.
    pub invoked: u64,
    pub returned: u64,
    pub outcome: WriteOutcome,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The store's resourceVersion when the run began (a fresh store is at 1): the log must
    /// start right after it.
    pub initial_rv: u64,
    pub truth: Vec<TruthEvent>,
    pub writes: Vec<WriteRecord>,
    pub watchers: Vec<WatcherRecord>,
    pub lists: Vec<ListRecord>,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub validator: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub truth_events: usize,
    pub events_checked: usize,
    pub bookmarks_checked: usize,
    pub transitions_checked: usize,
    pub watchers: usize,
    pub sessions: usize,
    pub resumes: usize,
    pub relists: usize,
    pub gone: usize,
    pub other_errors: usize,
    pub lists_checked: usize,
    pub lists_gone: usize,
    /// Exact lists below the compaction horizon that were served (from the watch cache window).
    pub lists_below_horizon: usize,
    pub writes_ok: usize,
    pub writes_failed: usize,
    pub writes_unknown: usize,
    pub replica_pairs: usize,
    /// Streams stopped by the test whose full catch-up to the final head was checked.
    pub caught_up: usize,
}

impl Report {
    fn fail(&mut self, validator: &'static str, detail: String) {
        self.violations.push(Violation { validator, detail });
    }

    /// Validators that failed, with counts.
    pub fn failed(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for v in &self.violations {
            *m.entry(v.validator).or_insert(0) += 1;
        }
        m
    }

    pub fn has(&self, validator: &str) -> bool {
        self.violations.iter().any(|v| v.validator == validator)
    }

    pub fn summary(&self) -> String {
        format!(
            "truth events {}, events checked {}, bookmarks {}, selector transitions {}, watchers {}, \
             sessions {} (resumes {}, relists {}, 410s {}, other errors {}), lists checked {} (410 {}, served below the horizon {}), \
             writes ok {} / refused {} / unknown {}, replica pairs compared {}, streams checked complete at stop {}, violations {} {:?}",
            self.truth_events,
            self.events_checked,
            self.bookmarks_checked,
            self.transitions_checked,
            self.watchers,
            self.sessions,
            self.resumes,
            self.relists,
            self.gone,
            self.other_errors,
            self.lists_checked,
            self.lists_gone,
            self.lists_below_horizon,
            self.writes_ok,
            self.writes_failed,
            self.writes_unknown,
            self.replica_pairs,
            self.caught_up,
            self.violations.len(),
            self.failed(),
        )
    }
}

pub type State = BTreeMap<Key, ObjState>;

/// The ground truth with checkpoints, so the state at any RV is cheap to compute.
pub struct Model<'a> {
    truth: &'a [TruthEvent],
    /// `checkpoints[i]` = state after `truth[..i * STRIDE]`.
    checkpoints: Vec<State>,
    by_rv: HashMap<u64, usize>,
}

const STRIDE: usize = 64;

fn apply(state: &mut State, e: &TruthEvent) {
    match e.kind {
        Kind::Deleted => {
            state.remove(&e.obj.key);
        }
        _ => {
            state.insert(e.obj.key.clone(), e.obj.clone());
        }
    }
}

impl<'a> Model<'a> {
    pub fn new(truth: &'a [TruthEvent]) -> Model<'a> {
        let mut checkpoints = vec![State::new()];
        let mut s = State::new();
        for (i, e) in truth.iter().enumerate() {
            apply(&mut s, e);
            if (i + 1) % STRIDE == 0 {
                checkpoints.push(s.clone());
            }
        }
        let by_rv = truth.iter().enumerate().map(|(i, e)| (e.rv, i)).collect();
        Model {
            truth,
            checkpoints,
            by_rv,
        }
    }

    pub fn head(&self) -> u64 {
        self.truth.last().map_or(0, |e| e.rv)
    }

    /// Index of the first truth event with rv > `rv`.
    fn first_after(&self, rv: u64) -> usize {
        self.truth.partition_point(|e| e.rv <= rv)
    }

    pub fn state_at(&self, rv: u64) -> State {
        let end = self.first_after(rv);
        let cp = end / STRIDE;
        let mut s = self.checkpoints[cp].clone();
        for e in &self.truth[cp * STRIDE..end] {
            apply(&mut s, e);
        }
        s
    }

    pub fn filtered_at(&self, rv: u64, f: &Filter) -> Vec<ObjState> {
        self.state_at(rv)
            .into_values()
            .filter(|o| f.matches(o))
            .collect()
    }

    /// The deliveries a watcher with `f` must see after `rv`, in order.
    fn expected_after(
        &self,
        rv: u64,
        f: &'a Filter,
    ) -> impl Iterator<Item = (&'a TruthEvent, Kind)> + 'a {
        let start = self.first_after(rv);
        self.truth[start..]
            .iter()
            .filter_map(move |e| f.deliver(e).map(|k| (e, k)))
    }
}

/// Runs every validator over `h`.
pub fn check(h: &History) -> Report {
    let mut r = Report {
        truth_events: h.truth.len(),
        watchers: h.watchers.len(),
        ..Report::default()
    };
    let model = Model::new(&h.truth);
    check_truth(h, &mut r);
    check_writes(h, &mut r);
    for w in &h.watchers {
        check_watcher(&model, w, &mut r);
    }
    for l in &h.lists {
        check_list(&model, l, &mut r);
    }
    check_replicas(&model, h, &mut r);
    r
}

/// The log itself: RVs gapless and increasing (row 3: no holes), one write id applied at most once.
fn check_truth(h: &History, r: &mut Report) {
    for pair in h.truth.windows(2) {
        if pair[1].rv != pair[0].rv + 1 {
            r.fail(
                "truth",
                format!(
                    "event log not gapless: rv {} followed by {}",
                    pair[0].rv, pair[1].rv
                ),
            );
        }
    }
    if let Some(first) = h.truth.first()
        && first.rv != h.initial_rv + 1
    {
        r.fail(
            "truth",
            format!(
                "event log starts at rv {}, not {}",
                first.rv,
                h.initial_rv + 1
            ),
        );
    }
    // prev_rv must name the key's previous version (row 7: lost update / chain integrity).
    let mut cur: HashMap<&Key, u64> = HashMap::new();
    for e in &h.truth {
        let before = cur.get(&e.obj.key).copied();
        match e.kind {
            Kind::Added if before.is_some() => r.fail(
                "truth",
                format!(
                    "rv {}: ADDED {} which exists since rv {:?}",
                    e.rv, e.obj.key, before
                ),
            ),
            Kind::Modified | Kind::Deleted if before != e.prev_rv || before.is_none() => r.fail(
                "truth",
                format!(
                    "rv {}: {:?} {} with prev_rv {:?}, but its version was {:?}",
                    e.rv, e.kind, e.obj.key, e.prev_rv, before
                ),
            ),
            _ => {}
        }
        if e.kind == Kind::Deleted {
            cur.remove(&e.obj.key);
        } else {
            cur.insert(&e.obj.key, e.rv);
        }
    }
}

/// Writes against the log: every stored version comes from exactly one write that succeeded or
/// may have; refused writes never appear; returned RVs are in the log; CAS updates applied on the
/// version they named; real-time order of successful writes matches RV order.
fn check_writes(h: &History, r: &mut Report) {
    let writes: HashMap<u64, &WriteRecord> = h.writes.iter().map(|w| (w.id, w)).collect();
    for w in &h.writes {
        match w.outcome {
            WriteOutcome::Ok { .. } => r.writes_ok += 1,
            WriteOutcome::Failed(_) => r.writes_failed += 1,
            WriteOutcome::Unknown(_) => r.writes_unknown += 1,
        }
    }
    let mut applied: HashMap<u64, u64> = HashMap::new();
    let mut deletes_in_log: HashMap<&Key, usize> = HashMap::new();
    for e in &h.truth {
        if e.kind == Kind::Deleted {
            *deletes_in_log.entry(&e.obj.key).or_default() += 1;
            continue;
        }
        let Some(id) = e.obj.write_id else {
            r.fail(
                "writes",
                format!("rv {}: version of {} has no write id", e.rv, e.obj.key),
            );
            continue;
        };
        if let Some(first) = applied.insert(id, e.rv) {
            r.fail(
                "writes",
                format!("write {id} applied twice: rv {first} and rv {}", e.rv),
            );
        }
        let Some(w) = writes.get(&id) else {
            r.fail("writes", format!("rv {}: write {id} was never sent", e.rv));
            continue;
        };
        if w.key != e.obj.key {
            r.fail(
                "writes",
                format!(
                    "rv {}: write {id} was for {}, stored as {}",
                    e.rv, w.key, e.obj.key
                ),
            );
        }
        let kind_ok = match w.op {
            Op::Create => e.kind == Kind::Added,
            Op::Update { .. } | Op::Patch => e.kind == Kind::Modified,
            Op::Delete { .. } => false,
        };
        if !kind_ok {
            r.fail(
                "writes",
                format!(
                    "rv {}: write {id} ({:?}) logged as {:?}",
                    e.rv, w.op, e.kind
                ),
            );
        }
        if let Op::Update { expected } = w.op
            && e.prev_rv != Some(expected)
        {
            r.fail(
                "writes",
                format!(
                    "rv {}: update {id} with resourceVersion {expected} applied over version {:?} (lost update)",
                    e.rv, e.prev_rv
                ),
            );
        }
        match &w.outcome {
            WriteOutcome::Failed(code) => r.fail(
                "writes",
                format!(
                    "rv {}: write {id} was refused with {code} but applied",
                    e.rv
                ),
            ),
            WriteOutcome::Ok { obj: Some(o) } if o.rv != e.rv => r.fail(
                "writes",
                format!(
                    "write {id} returned rv {} but is logged at rv {}",
                    o.rv, e.rv
                ),
            ),
            _ => {}
        }
    }
    let mut ok_deletes: HashMap<&Key, usize> = HashMap::new();
    let mut maybe_deletes: HashMap<&Key, usize> = HashMap::new();
    for w in &h.writes {
        let is_delete = matches!(w.op, Op::Delete { .. });
        match &w.outcome {
            WriteOutcome::Ok { obj } if !is_delete && !applied.contains_key(&w.id) => r.fail(
                "writes",
                format!(
                    "write {} succeeded ({:?}) but is not in the log",
                    w.id,
                    obj.as_ref().map(|o| o.rv)
                ),
            ),
            WriteOutcome::Ok { .. } if !is_delete => {}
            WriteOutcome::Ok { .. } => *ok_deletes.entry(&w.key).or_default() += 1,
            WriteOutcome::Unknown(_) if is_delete => *maybe_deletes.entry(&w.key).or_default() += 1,
            _ => {}
        }
    }
    for (key, n) in &deletes_in_log {
        let ok = ok_deletes.get(key).copied().unwrap_or(0);
        let maybe = maybe_deletes.get(key).copied().unwrap_or(0);
        if *n < ok || *n > ok + maybe {
            r.fail(
                "writes",
                format!("{key}: {n} deletions logged, {ok} succeeded and {maybe} may have"),
            );
        }
    }
    for (key, ok) in &ok_deletes {
        if !deletes_in_log.contains_key(key) {
            r.fail(
                "writes",
                format!("{key}: {ok} deletions succeeded, none logged"),
            );
        }
    }
    // Real time: a write that returned before another was sent has the smaller RV.
    let mut done: Vec<(u64, u64)> = h
        .writes
        .iter()
        .filter_map(|w| {
            Some((
                w.returned,
                *applied
                    .get(&w.id)
                    .filter(|_| matches!(w.outcome, WriteOutcome::Ok { .. }))?,
            ))
        })
        .collect();
    done.sort();
    let mut sent: Vec<(u64, u64, u64)> = h
        .writes
        .iter()
        .filter_map(|w| Some((w.invoked, *applied.get(&w.id)?, w.id)))
        .collect();
    sent.sort();
    let (mut i, mut max_before) = (0, 0u64);
    for (invoked, rv, id) in sent {
        while i < done.len() && done[i].0 < invoked {
            max_before = max_before.max(done[i].1);
            i += 1;
        }
        if rv < max_before {
            r.fail(
                "writes",
                format!("write {id} got rv {rv} though a write with rv {max_before} had returned before it was sent"),
            );
        }
    }
}

/// One watcher across all its streams.
fn check_watcher(model: &Model, w: &WatcherRecord, r: &mut Report) {
    let who = |s: usize| {
        format!(
            "watcher {} (replica {}, {:?}) session {s}",
            w.id, w.replica, w.filter
        )
    };
    // The last RV this watcher has seen (event or bookmark): a resume must start there.
    let mut position: Option<u64> = None;
    let mut last_event: Option<u64> = None;
    for (si, s) in w.sessions.iter().enumerate() {
        // A request that never got a stream says nothing about the server's history.
        if s.frames.is_empty() && matches!(s.end, End::Transport(_) | End::Http(_)) {
            continue;
        }
        r.sessions += 1;
        match s.kind {
            SessionKind::Resume => {
                r.resumes += 1;
                if s.from != position || s.from.is_none() {
                    r.fail(
                        "resumable",
                        format!(
                            "{}: resumed from {:?} but the last RV seen was {:?}",
                            who(si),
                            s.from,
                            position
                        ),
                    );
                }
            }
            SessionKind::Relist => {
                r.relists += 1;
                if let (Some(from), Some(last)) = (s.from, last_event)
                    && from < last
                {
                    r.fail(
                        "ordered",
                        format!(
                            "{}: relisted at rv {from}, below delivered event rv {last}",
                            who(si)
                        ),
                    );
                }
            }
            SessionKind::Start => {}
        }
        let (start, skip) = match s.from {
            Some(rv) => (rv, 0),
            None => match initial_split(model, w, s) {
                Some(split) => split,
                None => {
                    r.fail(
                        "atomic",
                        format!(
                            "{}: the initial ADDED events match the filtered state at no RV",
                            who(si)
                        ),
                    );
                    continue;
                }
            },
        };
        // From RV 0/unset the client learns its position only from a bookmark or a non-ADDED
        // event (an ADDED may still be initial state); until then a broken stream means relist.
        let synthetic = s.from.is_none();
        if synthetic {
            r.events_checked += skip;
            position = None;
        } else {
            position = Some(start);
        }
        let mut cursor = Cursor {
            position: &mut position,
            last_event: &mut last_event,
            known: !synthetic,
        };
        walk(model, w, s, start, skip, &mut cursor, r, &who(si));
    }
}

/// For a watch from RV 0/unset: how many leading ADDEDs are the synthetic initial state, and the
/// RV L that state was taken at (the stream then continues with the events after L).
fn initial_split(model: &Model, w: &WatcherRecord, s: &Session) -> Option<(u64, usize)> {
    let added = s
        .frames
        .iter()
        .take_while(|f| matches!(f, Frame::Event(e) if e.kind == Kind::Added))
        .count();
    let mut first_fit = None;
    for k in (0..=added).rev() {
        let mut set: Vec<&ObjState> = s.frames[..k]
            .iter()
            .filter_map(|f| match f {
                Frame::Event(e) => Some(&e.obj),
                _ => None,
            })
            .collect();
        set.sort_by(|a, b| a.key.cmp(&b.key));
        let m = set.iter().map(|o| o.rv).max().unwrap_or(0);
        // L lies before the first later event and at or before the first bookmark.
        let upper = s.frames[k..]
            .iter()
            .find_map(|f| match f {
                Frame::Event(e) => Some(e.obj.rv.saturating_sub(1)),
                Frame::Bookmark(b) => Some(*b),
                _ => None,
            })
            .unwrap_or(model.head())
            .min(model.head());
        let mut l = m;
        // Bound the search: the filtered state only changes at matching events.
        let mut tries = 0;
        while l <= upper && tries < 4096 {
            tries += 1;
            let state = model.filtered_at(l, &w.filter);
            if state.len() == set.len() && state.iter().zip(&set).all(|(a, b)| a == *b) {
                if first_fit.is_none() {
                    first_fit = Some((l, k));
                }
                if rest_fits(model, w, s, l, k) {
                    return Some((l, k));
                }
            }
            l += 1;
        }
    }
    first_fit
}

/// Whether the frames after the first `skip` are exactly the deliveries after `start` (a prefix).
fn rest_fits(model: &Model, w: &WatcherRecord, s: &Session, start: u64, skip: usize) -> bool {
    let mut exp = model.expected_after(start, &w.filter);
    for f in &s.frames[skip..] {
        if let Frame::Event(ev) = f {
            match exp.next() {
                Some((e, k)) if e.rv == ev.obj.rv && k == ev.kind && e.delivered(k) == ev.obj => {}
                _ => return false,
            }
        }
    }
    true
}

/// Where a watcher stands: the RV it would resume from, and the last event RV it got.
struct Cursor<'a> {
    position: &'a mut Option<u64>,
    last_event: &'a mut Option<u64>,
    /// Whether `position` is known (see check_watcher).
    known: bool,
}

/// Checks one stream's frames after the initial state against the deliveries after `start`.
#[allow(clippy::too_many_arguments)]
fn walk(
    model: &Model,
    w: &WatcherRecord,
    s: &Session,
    start: u64,
    skip: usize,
    c: &mut Cursor,
    r: &mut Report,
    who: &str,
) {
    let mut exp = model.expected_after(start, &w.filter).peekable();
    for (fi, f) in s.frames.iter().enumerate().skip(skip) {
        match f {
            Frame::Event(ev) => {
                r.events_checked += 1;
                let rv = ev.obj.rv;
                if rv <= start {
                    r.fail(
                        "resumable",
                        format!(
                            "{who} frame {fi}: event rv {rv} delivered on a watch from rv {start}"
                        ),
                    );
                    continue;
                }
                if let Some(last) = *c.last_event
                    && rv <= last
                {
                    let v = if rv == last { "unique" } else { "ordered" };
                    r.fail(
                        v,
                        format!("{who} frame {fi}: event rv {rv} after event rv {last}"),
                    );
                    continue;
                }
                while let Some((e, k)) = exp.peek()
                    && e.rv < rv
                {
                    r.fail(
                        "reliable",
                        format!(
                            "{who} frame {fi}: lost event rv {} ({k:?} {}), next delivered was rv {rv}",
                            e.rv, e.obj.key
                        ),
                    );
                    exp.next();
                }
                match exp.peek() {
                    Some((e, k)) if e.rv == rv => {
                        if *k != ev.kind || e.delivered(*k) != ev.obj {
                            r.fail(
                                "atomic",
                                format!("{who} frame {fi}: rv {rv} delivered as {:?} {:?}, expected {k:?} {:?}", ev.kind, ev.obj, e.delivered(*k)),
                            );
                        } else if *k != e.kind {
                            r.transitions_checked += 1;
                        }
                        exp.next();
                    }
                    _ => {
                        let what = match model.by_rv.get(&rv) {
                            Some(i) => format!(
                                "truth has {:?} {} (labels {:?})",
                                model.truth[*i].kind,
                                model.truth[*i].obj.key,
                                model.truth[*i].obj.labels
                            ),
                            None => "not in the event log".into(),
                        };
                        r.fail(
                            "atomic",
                            format!(
                                "{who} frame {fi}: unexpected {:?} rv {rv} {}: {what}",
                                ev.kind, ev.obj.key
                            ),
                        );
                    }
                }
                *c.last_event = Some(rv);
                if ev.kind != Kind::Added {
                    c.known = true;
                }
                if c.known {
                    *c.position = Some(rv);
                }
            }
            Frame::Bookmark(b) => {
                r.bookmarks_checked += 1;
                if let Some(last) = *c.last_event
                    && *b < last
                {
                    r.fail(
                        "bookmarkable",
                        format!("{who} frame {fi}: bookmark rv {b} after event rv {last}"),
                    );
                }
                if *b > model.head() {
                    r.fail(
                        "bookmarkable",
                        format!(
                            "{who} frame {fi}: bookmark rv {b} beyond the last committed rv {}",
                            model.head()
                        ),
                    );
                }
                while let Some((e, k)) = exp.peek()
                    && e.rv <= *b
                {
                    r.fail(
                        "bookmarkable",
                        format!("{who} frame {fi}: bookmark rv {b} ahead of undelivered event rv {} ({k:?} {})", e.rv, e.obj.key),
                    );
                    exp.next();
                }
                c.known = true;
                *c.position = Some(c.position.map_or(*b, |p| p.max(*b)));
            }
            Frame::Error {
                code,
                message,
                horizon,
            } => {
                if *code == 410 {
                    r.gone += 1;
                    let at = c.position.unwrap_or(start);
                    if at >= *horizon {
                        r.fail(
                            "resumable",
                            format!("{who} frame {fi}: 410 at rv {at} though the compaction horizon was {horizon}: {message}"),
                        );
                    }
                } else {
                    r.other_errors += 1;
                }
            }
        }
    }
    if let End::ClientStopped {
        complete_through: Some(h),
    } = s.end
    {
        r.caught_up += 1;
        for (e, k) in exp.take_while(|(e, _)| e.rv <= h) {
            r.fail(
                "reliable",
                format!("{who}: stopped with rv {} ({k:?} {}) committed long before (head {h}) but never delivered", e.rv, e.obj.key),
            );
        }
    }
}

/// A list at RV R equals the filtered fold of the log up to R (rows 2, 14, 21).
fn check_list(model: &Model, l: &ListRecord, r: &mut Report) {
    match &l.outcome {
        ListOutcome::Other(_) => return,
        ListOutcome::Gone { horizon } => {
            r.lists_gone += 1;
            let asked = l.rv.or_else(|| l.rv_param.parse().ok()).unwrap_or(0);
            if l.rv_param.is_empty() && l.pages <= 1 || asked >= *horizon {
                r.fail(
                    "list",
                    format!(
                        "list rv={:?} (pages {}) got 410 though the horizon was {horizon}",
                        l.rv_param, l.pages
                    ),
                );
            }
            return;
        }
        ListOutcome::Ok => {}
    }
    r.lists_checked += 1;
    if l.exact
        && l.rv_param
            .parse::<u64>()
            .is_ok_and(|x| x < l.horizon_before)
    {
        r.lists_below_horizon += 1;
    }
    let Some(rv) = l.rv else {
        r.fail(
            "list",
            format!("list rv={:?} has no resourceVersion", l.rv_param),
        );
        return;
    };
    if rv > model.head() {
        r.fail(
            "list",
            format!("list RV {rv} is beyond the log's head {}", model.head()),
        );
    }
    if l.exact && l.rv_param != rv.to_string() {
        r.fail(
            "list",
            format!("exact list at {} answered at rv {rv}", l.rv_param),
        );
    }
    if l.rv_param.is_empty() && rv < l.min_rv {
        r.fail(
            "list",
            format!(
                "consistent list on replica {} at rv {rv}, but a write had already returned rv {}",
                l.replica, l.min_rv
            ),
        );
    }
    let mut items = l.items.clone();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    let want = model.filtered_at(rv, &l.filter);
    if items != want {
        let got: Vec<_> = items.iter().map(|o| (o.key.to_string(), o.rv)).collect();
        let exp: Vec<_> = want.iter().map(|o| (o.key.to_string(), o.rv)).collect();
        r.fail(
            "list",
            format!(
                "list rv={:?} {:?} on replica {} at rv {rv}: got {got:?}, the log says {exp:?}",
                l.rv_param, l.filter, l.replica
            ),
        );
    }
}

/// Per stream: the RV range it covered without a break, and its events in that range.
type Coverage = Vec<(u64, u64, Vec<(u64, Kind, Key)>)>;

fn coverage(model: &Model, w: &WatcherRecord) -> Coverage {
    let mut out = Vec::new();
    for s in &w.sessions {
        // After an initial state, the stream covers what follows the RV that state was taken at.
        let (lo, skip) = match s.from {
            Some(rv) => (rv, 0),
            None => match initial_split(model, w, s) {
                Some(split) => split,
                None => continue,
            },
        };
        let mut evs: Vec<(u64, Kind, Key)> = Vec::new();
        let mut hi = lo;
        for f in &s.frames[skip..] {
            match f {
                Frame::Event(e) => {
                    evs.push((e.obj.rv, e.kind, e.obj.key.clone()));
                    hi = hi.max(e.obj.rv);
                }
                Frame::Bookmark(b) => hi = hi.max(*b),
                Frame::Error { .. } => {}
            }
        }
        out.push((lo, hi, evs));
    }
    out
}

/// Watchers with the same filter on different replicas saw the same events where both streams
/// covered the same RV range (all replicas emit one sequence).
fn check_replicas(model: &Model, h: &History, r: &mut Report) {
    let covs: Vec<Coverage> = h.watchers.iter().map(|w| coverage(model, w)).collect();
    for (i, a) in h.watchers.iter().enumerate() {
        for (j, b) in h.watchers.iter().enumerate().skip(i + 1) {
            if a.replica == b.replica || a.filter != b.filter {
                continue;
            }
            r.replica_pairs += 1;
            for (alo, ahi, aev) in &covs[i] {
                for (blo, bhi, bev) in &covs[j] {
                    let (lo, hi) = ((*alo).max(*blo), (*ahi).min(*bhi));
                    if lo >= hi {
                        continue;
                    }
                    let pick = |v: &[(u64, Kind, Key)]| -> Vec<(u64, Kind, Key)> {
                        v.iter()
                            .filter(|e| e.0 > lo && e.0 <= hi)
                            .cloned()
                            .collect()
                    };
                    let (pa, pb) = (pick(aev), pick(bev));
                    if pa != pb {
                        let first = pa
                            .iter()
                            .zip(&pb)
                            .position(|(x, y)| x != y)
                            .unwrap_or(pa.len().min(pb.len()));
                        r.fail(
                            "replicas",
                            format!(
                                "watchers {} (replica {}) and {} (replica {}) with {:?} differ in ({lo}, {hi}] at index {first}: {:?} vs {:?}",
                                a.id, a.replica, b.id, b.replica, a.filter, pa.get(first), pb.get(first)
                            ),
                        );
                    }
                }
            }
        }
    }
}
