//! The checker on hand-made histories: a clean one passes, and each deliberately broken one
//! (lost, duplicated, reordered events, early bookmarks, wrong transitions, bad lists, bad
//! writes, diverging replicas) is caught by the validator meant for it.

use super::checker::*;

fn key(name: &str) -> Key {
    Key {
        ns: "ns-a".into(),
        name: name.into(),
    }
}

fn labels(color: &str) -> Labels {
    [("color".to_string(), color.to_string())].into()
}

/// Builds a log and the writes that produced it.
#[derive(Default)]
struct Script {
    h: History,
    current: std::collections::HashMap<Key, ObjState>,
    uids: u64,
}

impl Script {
    fn write(&mut self, kind: Kind, name: &str, color: &str) -> u64 {
        let rv = self.h.truth.len() as u64 + 1;
        let k = key(name);
        let prev = self.current.get(&k).cloned();
        let id = rv * 10;
        let obj = match (&prev, kind) {
            (Some(p), Kind::Deleted) => ObjState { rv, ..p.clone() },
            _ => {
                self.uids += u64::from(kind == Kind::Added);
                ObjState {
                    key: k.clone(),
                    uid: prev
                        .as_ref()
                        .map_or(format!("uid-{}", self.uids), |p| p.uid.clone()),
                    labels: labels(color),
                    write_id: Some(id),
                    rv,
                }
            }
        };
        let op = match kind {
            Kind::Added => Op::Create,
            Kind::Modified => Op::Update {
                expected: prev.as_ref().map_or(0, |p| p.rv),
            },
            Kind::Deleted => Op::Delete { precondition: None },
        };
        self.h.writes.push(WriteRecord {
            id: if kind == Kind::Deleted { id + 1 } else { id },
            key: k.clone(),
            op,
            replica: 0,
            invoked: rv * 100,
            returned: rv * 100 + 50,
            outcome: WriteOutcome::Ok {
                obj: (kind != Kind::Deleted).then(|| obj.clone()),
            },
        });
        self.h.truth.push(TruthEvent {
            rv,
            kind,
            obj: obj.clone(),
            prev_rv: prev.as_ref().map(|p| p.rv),
            prev: prev.clone(),
        });
        if kind == Kind::Deleted {
            self.current.remove(&k);
        } else {
            self.current.insert(k, obj);
        }
        rv
    }
}

/// 1 add a red, 2 add b blue, 3 a→blue, 4 b→red, 5 delete a, 6 add a red, 7 c green, 8 b→green.
fn base() -> Script {
    let mut s = Script::default();
    s.write(Kind::Added, "a", "red");
    s.write(Kind::Added, "b", "blue");
    s.write(Kind::Modified, "a", "blue");
    s.write(Kind::Modified, "b", "red");
    s.write(Kind::Deleted, "a", "");
    s.write(Kind::Added, "a", "red");
    s.write(Kind::Added, "c", "green");
    s.write(Kind::Modified, "b", "green");
    s
}

fn red() -> Filter {
    Filter {
        labels: vec![Req::Eq("color".into(), "red".into())],
        ..Filter::default()
    }
}

/// The frames a correct server sends a watcher with `f` from `from` up to `to`.
fn frames(h: &History, f: &Filter, from: u64, to: u64) -> Vec<Frame> {
    h.truth
        .iter()
        .filter(|e| e.rv > from && e.rv <= to)
        .filter_map(|e| {
            f.deliver(e).map(|kind| {
                Frame::Event(WatchEvent {
                    kind,
                    obj: e.delivered(kind),
                })
            })
        })
        .collect()
}

fn session(kind: SessionKind, from: Option<u64>, frames: Vec<Frame>, end: End) -> Session {
    Session {
        kind,
        from,
        frames,
        end,
    }
}

fn watcher(id: usize, replica: usize, filter: Filter, sessions: Vec<Session>) -> WatcherRecord {
    WatcherRecord {
        id,
        replica,
        filter,
        slow: false,
        sessions,
    }
}

fn stopped(h: u64) -> End {
    End::ClientStopped {
        complete_through: Some(h),
    }
}

/// A correct history with resumes, bookmarks, an initial state, transitions and lists.
fn clean() -> History {
    let s = base();
    let mut h = s.h;
    let all = Filter::default();
    // Watcher 0: all events from 0, split at 4 with a bookmark, resumed.
    let mut first = frames(&h, &all, 0, 4);
    first.push(Frame::Bookmark(4));
    let w0 = watcher(
        0,
        0,
        all.clone(),
        vec![
            session(SessionKind::Start, Some(0), first, End::ServerClosed),
            session(
                SessionKind::Resume,
                Some(4),
                frames(&h, &all, 4, 8),
                stopped(8),
            ),
        ],
    );
    // Watcher 1: same on the other replica, one stream.
    let w1 = watcher(
        1,
        1,
        all.clone(),
        vec![session(
            SessionKind::Start,
            Some(0),
            frames(&h, &all, 0, 8),
            stopped(8),
        )],
    );
    // Watcher 2: color=red from 2 — sees a→blue as DELETED, b→red as ADDED, etc.
    let w2 = watcher(
        2,
        0,
        red(),
        vec![session(
            SessionKind::Start,
            Some(2),
            frames(&h, &red(), 2, 8),
            stopped(8),
        )],
    );
    // Watcher 3: initial state at rv 3 (b blue only with all), then events.
    let mut init: Vec<Frame> = vec![
        Frame::Event(WatchEvent {
            kind: Kind::Added,
            obj: h.truth[2].obj.clone(),
        }),
        Frame::Event(WatchEvent {
            kind: Kind::Added,
            obj: h.truth[1].obj.clone(),
        }),
    ];
    init.extend(frames(&h, &all, 3, 8));
    let w3 = watcher(
        3,
        1,
        all.clone(),
        vec![session(SessionKind::Start, None, init, stopped(8))],
    );
    // Watcher 4: 410, relist at 6, watch from 6.
    let w4 = watcher(
        4,
        0,
        red(),
        vec![
            session(
                SessionKind::Start,
                Some(1),
                vec![Frame::Error {
                    code: 410,
                    message: "too old".into(),
                    horizon: 3,
                }],
                End::ServerClosed,
            ),
            session(
                SessionKind::Relist,
                Some(6),
                frames(&h, &red(), 6, 8),
                stopped(8),
            ),
        ],
    );
    h.watchers = vec![w0, w1, w2, w3, w4];
    let model = Model::new(&h.truth);
    for (rv, f) in [(4, all.clone()), (6, red()), (8, red())] {
        h.lists.push(ListRecord {
            replica: 1,
            rv_param: String::new(),
            exact: false,
            min_rv: rv,
            rv: Some(rv),
            items: model.filtered_at(rv, &f),
            filter: f,
            pages: 1,
            outcome: ListOutcome::Ok,
            horizon_before: 0,
        });
    }
    h
}

fn assert_caught(h: &History, validator: &str) {
    let r = check(h);
    assert!(
        r.has(validator),
        "{validator} did not fire; report: {}\n{:#?}",
        r.summary(),
        r.violations
    );
}

fn events_of(h: &mut History, w: usize, s: usize) -> &mut Vec<Frame> {
    &mut h.watchers[w].sessions[s].frames
}

#[test]
fn clean_history_passes() {
    let h = clean();
    let r = check(&h);
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.events_checked > 20, "{}", r.summary());
    assert!(r.transitions_checked >= 2, "{}", r.summary());
    assert_eq!(r.resumes, 1);
    assert_eq!(r.relists, 1);
    assert_eq!(r.gone, 1);
    assert_eq!(r.replica_pairs, 2);
}

#[test]
fn transitions_follow_the_selector() {
    let h = clean();
    let red_frames: Vec<(u64, Kind)> = frames(&h, &red(), 0, 8)
        .iter()
        .filter_map(|f| match f {
            Frame::Event(e) => Some((e.obj.rv, e.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        red_frames,
        vec![
            (1, Kind::Added),   // a red
            (3, Kind::Deleted), // a turned blue
            (4, Kind::Added),   // b turned red
            (6, Kind::Added),   // a re-created red
            (8, Kind::Deleted), // b turned green
        ]
    );
}

#[test]
fn lost_event_is_caught() {
    let mut h = clean();
    events_of(&mut h, 1, 0).remove(3);
    assert_caught(&h, "reliable");
}

#[test]
fn lost_tail_before_stop_is_caught() {
    let mut h = clean();
    events_of(&mut h, 1, 0).pop();
    assert_caught(&h, "reliable");
}

#[test]
fn duplicate_is_caught() {
    let mut h = clean();
    let f = events_of(&mut h, 1, 0);
    let dup = f[2].clone();
    f.insert(3, dup);
    assert_caught(&h, "unique");
}

#[test]
fn duplicate_across_resume_is_caught() {
    let mut h = clean();
    // The resumed stream (from 4) repeats event 4.
    let again = h.watchers[0].sessions[0].frames[3].clone();
    events_of(&mut h, 0, 1).insert(0, again);
    assert_caught(&h, "resumable");
}

#[test]
fn reordering_is_caught() {
    let mut h = clean();
    events_of(&mut h, 1, 0).swap(4, 5);
    assert_caught(&h, "ordered");
}

#[test]
fn bookmark_ahead_of_delivered_events_is_caught() {
    let mut h = clean();
    // Watcher 0's stream: events 1..4, then bookmark 4. Move the bookmark before event 4.
    let f = events_of(&mut h, 0, 0);
    let bm = f.pop().unwrap();
    f.insert(3, bm);
    assert_caught(&h, "bookmarkable");
}

#[test]
fn bookmark_beyond_head_is_caught() {
    let mut h = clean();
    events_of(&mut h, 1, 0).push(Frame::Bookmark(99));
    assert_caught(&h, "bookmarkable");
}

#[test]
fn wrong_transition_is_caught() {
    let mut h = clean();
    // a→blue must be DELETED for color=red; deliver MODIFIED.
    if let Frame::Event(e) = &mut events_of(&mut h, 2, 0)[0] {
        assert_eq!(e.obj.rv, 3);
        e.kind = Kind::Modified;
    }
    assert_caught(&h, "atomic");
}

#[test]
fn non_matching_event_is_caught() {
    let mut h = clean();
    // c (green, rv 7) delivered to the color=red watcher.
    let c = h.truth[6].obj.clone();
    let f = events_of(&mut h, 2, 0);
    let at = f.len() - 1;
    f.insert(
        at,
        Frame::Event(WatchEvent {
            kind: Kind::Added,
            obj: c,
        }),
    );
    assert_caught(&h, "atomic");
}

#[test]
fn wrong_resume_point_is_caught() {
    let mut h = clean();
    h.watchers[0].sessions[1].from = Some(3);
    assert_caught(&h, "resumable");
}

#[test]
fn needless_410_is_caught() {
    let mut h = clean();
    if let Frame::Error { horizon, .. } = &mut events_of(&mut h, 4, 0)[0] {
        *horizon = 1; // watching from 1 with events > 1 all retained
    }
    assert_caught(&h, "resumable");
}

#[test]
fn bad_initial_state_is_caught() {
    let mut h = clean();
    // Drop b from the initial state of watcher 3: matches no state.
    events_of(&mut h, 3, 0).remove(1);
    assert_caught(&h, "atomic");
}

#[test]
fn wrong_list_is_caught() {
    let mut h = clean();
    h.lists[0].items.pop();
    assert_caught(&h, "list");
}

#[test]
fn stale_consistent_list_is_caught() {
    let mut h = clean();
    h.lists[0].min_rv = 5; // a write had returned rv 5 before the list at rv 4
    assert_caught(&h, "list");
}

#[test]
fn refused_write_applied_is_caught() {
    let mut h = clean();
    h.writes[3].outcome = WriteOutcome::Failed(409);
    assert_caught(&h, "writes");
}

#[test]
fn write_applied_twice_is_caught() {
    let mut h = clean();
    let id = h.truth[2].obj.write_id;
    h.truth[3].obj.write_id = id;
    assert_caught(&h, "writes");
}

#[test]
fn lost_update_is_caught() {
    let mut h = clean();
    h.writes[2].op = Op::Update { expected: 7 };
    assert_caught(&h, "writes");
}

#[test]
fn real_time_order_is_checked() {
    let mut h = clean();
    // Write at rv 5's successor (rv 6) sent after rv 7's write returned.
    h.writes[5].invoked = h.writes[6].returned + 1;
    assert_caught(&h, "writes");
}

#[test]
fn hole_in_the_log_is_caught() {
    let mut h = clean();
    h.truth.remove(4);
    assert_caught(&h, "truth");
}

#[test]
fn diverging_replicas_are_caught() {
    let mut h = clean();
    // Replica 1's watcher gets rv 5 with the wrong type; replica 0's is right.
    if let Frame::Event(e) = &mut events_of(&mut h, 1, 0)[4] {
        e.kind = Kind::Modified;
    }
    assert_caught(&h, "replicas");
}

#[test]
fn selector_semantics_match_kubernetes() {
    let l = labels("red");
    assert!(Req::Neq("tier".into(), "a".into()).matches(&l));
    assert!(Req::NotIn("tier".into(), vec!["a".into()]).matches(&l));
    assert!(!Req::In("tier".into(), vec!["a".into()]).matches(&l));
    assert!(Req::NotExists("tier".into()).matches(&l));
    assert!(Req::Exists("color".into()).matches(&l));
    assert_eq!(
        Req::NotIn("a".into(), vec!["x".into(), "y".into()]).to_query(),
        "a notin (x,y)"
    );
}
