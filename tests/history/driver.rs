//! The workload driver: wardle replicas on one database, concurrent writers (create, CAS update,
//! merge patch, delete) on a small key space, watchers that resume like client-go's reflector,
//! listers at every kind of RV, the ground truth copied out of the `events` table before a
//! staged compaction deletes it, and faults (replica kill, Postgres crash-restart, LISTEN
//! backend terminated). Everything observed is recorded into a `History` for the checker.

use super::checker::*;
use crate::common::Engine;
use crate::common::postgres;
use crate::common::server::Wardle;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const GROUP_PATH: &str = "/apis/wardle.example.com/v1alpha1";
const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
const NAMES: [&str; 4] = ["f0", "f1", "f2", "f3"];
const COLORS: [&str; 3] = ["red", "blue", "green"];
/// A plain request that takes longer than this counts as an unknown outcome.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// No frame for this long (bookmarks come every ~10 s) ends a stream as broken.
const FRAME_TIMEOUT: Duration = Duration::from_secs(40);
/// At the stop, the slow watcher drains until no frame comes for this long...
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// ...or at most this long (then whatever it has not seen is reported undelivered).
const DRAIN_MAX: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct Config {
    pub engine: Engine,
    pub seconds: u64,
    pub replicas: usize,
    pub writers: usize,
    pub watchers: usize,
    pub listers: usize,
    /// Compaction keeps this many RVs behind the head (staged every second through SQL).
    pub retain: u64,
    pub seed: u64,
}

pub struct Outcome {
    pub history: History,
    pub faults: Vec<String>,
    pub notes: Vec<String>,
    pub compactions: u64,
}

struct Replica {
    dir: PathBuf,
    client: RwLock<kube::Client>,
    server: tokio::sync::Mutex<Option<Wardle>>,
}

struct Shared {
    start: Instant,
    db_url: String,
    engine: Engine,
    replicas: Vec<Replica>,
    next_write: AtomicU64,
    /// Highest RV any write has returned (for read-your-writes checks of consistent lists).
    max_ok_rv: AtomicU64,
    /// Highest compaction horizon announced (set before the SQL runs).
    horizon: AtomicU64,
    stop_work: AtomicBool,
    stop_truth: AtomicBool,
    final_head: AtomicU64,
    writes: Mutex<Vec<WriteRecord>>,
    lists: Mutex<Vec<ListRecord>>,
    faults: Mutex<Vec<String>>,
    notes: Mutex<Vec<String>>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    fn client(&self, i: usize) -> kube::Client {
        self.replicas[i].client.read().expect("lock").clone()
    }
    fn fault(&self, what: String) {
        eprintln!(
            "history: t={:.1}s fault: {what}",
            self.start.elapsed().as_secs_f64()
        );
        self.faults.lock().expect("lock").push(what);
    }
    fn note(&self, what: String) {
        let mut n = self.notes.lock().expect("lock");
        if n.len() < 200 {
            n.push(what);
        }
    }
}

/// One plain request; Err = no answer (transport error or timeout).
async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Bytes), String> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    let body = body
        .map(|v| serde_json::to_vec(v).unwrap_or_default())
        .unwrap_or_default();
    let req = b
        .body(kube::client::Body::from(body))
        .map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.send(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| "timeout".to_string())?
}

fn outcome(res: &Result<(u16, Bytes), String>, with_object: bool) -> WriteOutcome {
    match res {
        Ok((code, body)) if (200..300).contains(code) => WriteOutcome::Ok {
            obj: with_object
                .then(|| serde_json::from_slice::<Value>(body).ok())
                .flatten()
                .and_then(|v| ObjState::from_json(&v, None)),
        },
        Ok((code, _)) if (400..500).contains(code) && *code != 408 && *code != 429 => {
            WriteOutcome::Failed(*code)
        }
        Ok((code, body)) => {
            WriteOutcome::Unknown(format!("{code}: {}", String::from_utf8_lossy(body)))
        }
        Err(e) => WriteOutcome::Unknown(e.clone()),
    }
}

fn random_labels(rng: &mut StdRng) -> Value {
    let mut l = serde_json::Map::new();
    l.insert(
        "color".into(),
        json!(COLORS[rng.random_range(0..COLORS.len())]),
    );
    if rng.random_bool(0.5) {
        l.insert(
            "tier".into(),
            json!(if rng.random_bool(0.5) { "a" } else { "b" }),
        );
    }
    Value::Object(l)
}

fn item_path(key: &Key) -> String {
    format!("{GROUP_PATH}/namespaces/{}/flunders/{}", key.ns, key.name)
}

async fn writer(sh: Arc<Shared>, wi: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let replica = wi % sh.replicas.len();
    while !sh.stop_work.load(Ordering::Relaxed) {
        let key = Key {
            ns: NAMESPACES[rng.random_range(0..NAMESPACES.len())].into(),
            name: NAMES[rng.random_range(0..NAMES.len())].into(),
        };
        let client = sh.client(replica);
        let dice = rng.random_range(0..100);
        let record = |op: Op, invoked: u64, id: u64, res: &Result<(u16, Bytes), String>| {
            let out = outcome(res, !matches!(op, Op::Delete { .. }));
            if let WriteOutcome::Ok { obj: Some(o) } = &out {
                sh.max_ok_rv.fetch_max(o.rv, Ordering::SeqCst);
            }
            let unknown = matches!(out, WriteOutcome::Unknown(_));
            sh.writes.lock().expect("lock").push(WriteRecord {
                id,
                key: key.clone(),
                op,
                replica,
                invoked,
                returned: sh.now(),
                outcome: out,
            });
            unknown
        };
        let mut unknown = false;
        if dice < 30 {
            let id = sh.next_write.fetch_add(1, Ordering::SeqCst);
            let body = json!({
                "apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
                "metadata": {"name": key.name, "namespace": key.ns, "labels": random_labels(&mut rng),
                             "annotations": {WRITE_ID: id.to_string()}},
                "spec": {}
            });
            let path = format!("{GROUP_PATH}/namespaces/{}/flunders", key.ns);
            let t = sh.now();
            let res = send(
                &client,
                Method::POST,
                &path,
                Some("application/json"),
                Some(&body),
            )
            .await;
            unknown = record(Op::Create, t, id, &res);
        } else if dice < 60 {
            // GuaranteedUpdate: GET, change, PUT with the RV read; retry on conflict.
            for _ in 0..3 {
                let Ok((200, got)) = send(&client, Method::GET, &item_path(&key), None, None).await
                else {
                    break;
                };
                let Ok(mut obj) = serde_json::from_slice::<Value>(&got) else {
                    break;
                };
                let Some(expected) = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                else {
                    break;
                };
                let id = sh.next_write.fetch_add(1, Ordering::SeqCst);
                obj["metadata"]["labels"] = random_labels(&mut rng);
                obj["metadata"]["annotations"] = json!({WRITE_ID: id.to_string()});
                let t = sh.now();
                let res = send(
                    &client,
                    Method::PUT,
                    &item_path(&key),
                    Some("application/json"),
                    Some(&obj),
                )
                .await;
                unknown = record(Op::Update { expected }, t, id, &res);
                if !matches!(res, Ok((409, _))) {
                    break;
                }
            }
        } else if dice < 85 {
            let id = sh.next_write.fetch_add(1, Ordering::SeqCst);
            let mut labels = random_labels(&mut rng);
            if labels.get("tier").is_none() {
                labels["tier"] = Value::Null; // merge patch: remove it
            }
            let body =
                json!({"metadata": {"labels": labels, "annotations": {WRITE_ID: id.to_string()}}});
            let t = sh.now();
            let res = send(
                &client,
                Method::PATCH,
                &item_path(&key),
                Some("application/merge-patch+json"),
                Some(&body),
            )
            .await;
            unknown = record(Op::Patch, t, id, &res);
        } else {
            let precondition = if rng.random_bool(0.5) {
                match send(&client, Method::GET, &item_path(&key), None, None).await {
                    Ok((200, got)) => serde_json::from_slice::<Value>(&got)
                        .ok()
                        .and_then(|o| o["metadata"]["resourceVersion"].as_str()?.parse().ok()),
                    _ => None,
                }
            } else {
                None
            };
            let id = sh.next_write.fetch_add(1, Ordering::SeqCst);
            let body = precondition.map(|rv: u64| {
                json!({"kind": "DeleteOptions", "apiVersion": "v1",
                       "preconditions": {"resourceVersion": rv.to_string()}})
            });
            let t = sh.now();
            let res = send(
                &client,
                Method::DELETE,
                &item_path(&key),
                body.as_ref().map(|_| "application/json"),
                body.as_ref(),
            )
            .await;
            unknown = record(Op::Delete { precondition }, t, id, &res);
        }
        // Back off while a replica or the database is down.
        let pause = if unknown {
            200
        } else {
            rng.random_range(0..10)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn collection_path(f: &Filter) -> String {
    match &f.ns {
        Some(ns) => format!("{GROUP_PATH}/namespaces/{ns}/flunders"),
        None => format!("{GROUP_PATH}/flunders"),
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn query(f: &Filter, mut params: Vec<String>) -> String {
    if let Some(sel) = f.label_selector() {
        params.push(format!("labelSelector={}", enc(&sel)));
    }
    if let Some(name) = &f.name {
        params.push(format!(
            "fieldSelector={}",
            enc(&format!("metadata.name={name}"))
        ));
    }
    format!("{}?{}", collection_path(f), params.join("&"))
}

/// A list (following continue tokens): Ok((rv, items, pages)), or the failed outcome.
async fn list(
    sh: &Shared,
    replica: usize,
    f: &Filter,
    rv_param: &str,
    exact: bool,
    limit: Option<u32>,
) -> (ListOutcome, Option<u64>, Vec<ObjState>, usize) {
    let client = sh.client(replica);
    let mut items = Vec::new();
    let mut cont: Option<String> = None;
    let mut list_rv = None;
    let mut pages = 0;
    loop {
        let mut p = Vec::new();
        match &cont {
            Some(c) => p.push(format!("continue={}", enc(c))),
            None => {
                if !rv_param.is_empty() {
                    p.push(format!("resourceVersion={rv_param}"));
                }
                if exact {
                    p.push("resourceVersionMatch=Exact".into());
                }
            }
        }
        if let Some(l) = limit {
            p.push(format!("limit={l}"));
        }
        let res = send(&client, Method::GET, &query(f, p), None, None).await;
        // Read after the answer: compaction announced meanwhile may justify a 410.
        let horizon = sh.horizon.load(Ordering::SeqCst);
        pages += 1;
        let body = match res {
            Ok((200, body)) => body,
            Ok((410, _)) => return (ListOutcome::Gone { horizon }, list_rv, items, pages),
            Ok((code, body)) => {
                return (
                    ListOutcome::Other(format!("{code}: {}", String::from_utf8_lossy(&body))),
                    None,
                    items,
                    pages,
                );
            }
            Err(e) => return (ListOutcome::Other(e), None, items, pages),
        };
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            return (ListOutcome::Other("not JSON".into()), None, items, pages);
        };
        let rv: Option<u64> = v["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok());
        if list_rv.is_none() {
            list_rv = rv;
        }
        for it in v["items"].as_array().into_iter().flatten() {
            match ObjState::from_json(it, None) {
                Some(o) => items.push(o),
                None => sh.note(format!("list item without name/rv: {it}")),
            }
        }
        match v["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = Some(c.to_string()),
            _ => return (ListOutcome::Ok, list_rv, items, pages),
        }
    }
}

async fn lister(sh: Arc<Shared>, filters: Vec<Filter>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !sh.stop_work.load(Ordering::Relaxed) {
        let replica = rng.random_range(0..sh.replicas.len());
        let f = filters[rng.random_range(0..filters.len())].clone();
        let min_rv = sh.max_ok_rv.load(Ordering::SeqCst);
        let horizon_before = sh.horizon.load(Ordering::SeqCst);
        let (rv_param, exact, limit) = match rng.random_range(0..4) {
            0 => (String::new(), false, None),
            1 => ("0".to_string(), false, None),
            2 => (
                min_rv
                    .saturating_sub(rng.random_range(0..250))
                    .max(1)
                    .to_string(),
                true,
                None,
            ),
            _ => (String::new(), false, Some(2)),
        };
        let (outcome, rv, items, pages) = list(&sh, replica, &f, &rv_param, exact, limit).await;
        if let ListOutcome::Other(why) = &outcome {
            sh.note(format!(
                "list rv={rv_param:?} exact={exact} on replica {replica}: {why}"
            ));
        }
        sh.lists.lock().expect("lock").push(ListRecord {
            replica,
            filter: f,
            rv_param,
            exact,
            min_rv,
            rv,
            items,
            pages,
            outcome,
            horizon_before,
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..120))).await;
    }
}

enum Next {
    /// resourceVersion "0" (Some) or unset (None): initial ADDEDs first.
    Initial(Option<&'static str>),
    From(u64, SessionKind),
    Relist(SessionKind),
}

/// One watcher, resuming like client-go's reflector until told to stop.
async fn watcher(
    sh: Arc<Shared>,
    id: usize,
    replica: usize,
    filter: Filter,
    slow: bool,
    seed: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> WatcherRecord {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rec = WatcherRecord {
        id,
        replica,
        filter: filter.clone(),
        slow,
        sessions: Vec::new(),
    };
    let mut next = match rng.random_range(0..3) {
        0 => Next::Initial(Some("0")),
        1 => Next::Initial(None),
        _ => Next::Relist(SessionKind::Start),
    };
    while !*stop.borrow() {
        let (kind, from, rv_param) = match &next {
            Next::Initial(p) => (SessionKind::Start, None, p.map(str::to_string)),
            Next::From(rv, k) => (k.clone(), Some(*rv), Some(rv.to_string())),
            Next::Relist(k) => {
                let min_rv = sh.max_ok_rv.load(Ordering::SeqCst);
                let horizon_before = sh.horizon.load(Ordering::SeqCst);
                let (out, rv, items, pages) = list(&sh, replica, &filter, "", false, None).await;
                let ok = out == ListOutcome::Ok;
                sh.lists.lock().expect("lock").push(ListRecord {
                    replica,
                    filter: filter.clone(),
                    rv_param: String::new(),
                    exact: false,
                    min_rv,
                    rv,
                    items,
                    pages,
                    outcome: out,
                    horizon_before,
                });
                match rv {
                    Some(rv) if ok => (k.clone(), Some(rv), Some(rv.to_string())),
                    _ => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                }
            }
        };
        let mut params = vec![
            "watch=true".to_string(),
            "allowWatchBookmarks=true".to_string(),
            format!("timeoutSeconds={}", rng.random_range(4..=12)),
        ];
        if let Some(p) = &rv_param {
            params.push(format!("resourceVersion={p}"));
        }
        let path = query(&filter, params);
        let mut session = Session {
            kind,
            from,
            frames: Vec::new(),
            end: End::ServerClosed,
        };
        let client = sh.client(replica);
        let req = Request::builder()
            .method(Method::GET)
            .uri(&path)
            .body(kube::client::Body::from(Vec::new()))
            .expect("request");
        let resp = match tokio::time::timeout(REQUEST_TIMEOUT, client.send(req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                session.end = End::Transport(e.to_string());
                rec.sessions.push(session);
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Err(_) => {
                session.end = End::Transport("timeout".into());
                rec.sessions.push(session);
                continue;
            }
        };
        if resp.status() != 200 {
            let code = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            sh.note(format!(
                "watch {path} on replica {replica}: HTTP {code}: {}",
                String::from_utf8_lossy(&body)
            ));
            session.end = End::Http(code);
            rec.sessions.push(session);
            if code == 410 {
                next = Next::Relist(SessionKind::Relist);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        // Where to resume: known once a bookmark or non-ADDED event arrives on an initial watch.
        let mut position = from;
        let mut known = from.is_some();
        let mut gone = false;
        // The slow watcher lags by design; at the stop it reads on at full speed until the
        // server has nothing more for it (no frame for DRAIN_IDLE) or it has seen the final
        // head, so "every committed event is delivered" is checked whatever the write rate.
        let mut draining: Option<(u64, tokio::time::Instant)> = None;
        loop {
            let frame_timeout = match draining {
                Some((_, until)) => {
                    DRAIN_IDLE.min(until.saturating_duration_since(tokio::time::Instant::now()))
                }
                None => FRAME_TIMEOUT,
            };
            let frame = tokio::select! {
                _ = stop.changed(), if draining.is_none() => {
                    let h = sh.final_head.load(Ordering::SeqCst);
                    if slow && position.is_none_or(|p| p < h) {
                        draining = Some((h, tokio::time::Instant::now() + DRAIN_MAX));
                        continue;
                    }
                    session.end = End::ClientStopped { complete_through: (h > 0).then_some(h) };
                    break;
                }
                f = tokio::time::timeout(frame_timeout, body.frame()) => f,
            };
            let data = match frame {
                Err(_) if draining.is_some() => {
                    let h = draining.map_or(0, |(h, _)| h);
                    session.end = End::ClientStopped {
                        complete_through: (h > 0).then_some(h),
                    };
                    break;
                }
                Err(_) => {
                    session.end = End::Transport("no frame for 40 s".into());
                    break;
                }
                Ok(None) => {
                    session.end = End::ServerClosed;
                    break;
                }
                Ok(Some(Err(e))) => {
                    session.end = End::Transport(e.to_string());
                    break;
                }
                Ok(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
            };
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        sh.note(format!(
                            "watch frame is not JSON: {}",
                            String::from_utf8_lossy(&line)
                        ));
                    }
                    continue;
                };
                let ty = v["type"].as_str().unwrap_or_default();
                let obj = &v["object"];
                match ty {
                    "BOOKMARK" => {
                        match obj["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                        {
                            Some(b) => {
                                session.frames.push(Frame::Bookmark(b));
                                known = true;
                                position = Some(position.map_or(b, |p: u64| p.max(b)));
                            }
                            None => sh.note(format!("bookmark without RV: {v}")),
                        }
                    }
                    "ERROR" => {
                        let code = obj["code"].as_u64().unwrap_or(0) as u16;
                        session.frames.push(Frame::Error {
                            code,
                            message: obj["message"].as_str().unwrap_or_default().to_string(),
                            horizon: sh.horizon.load(Ordering::SeqCst),
                        });
                        gone |= code == 410;
                        if code != 410 {
                            sh.note(format!("watch ERROR on replica {replica}: {v}"));
                        }
                    }
                    t => match (Kind::parse(t), ObjState::from_json(obj, None)) {
                        (Some(kind), Some(o)) => {
                            if kind != Kind::Added {
                                known = true;
                            }
                            if known {
                                position = Some(o.rv);
                            }
                            session
                                .frames
                                .push(Frame::Event(WatchEvent { kind, obj: o }));
                        }
                        _ => sh.note(format!("unreadable watch event: {v}")),
                    },
                }
            }
            if let Some((h, _)) = draining
                && position.is_some_and(|p| p >= h)
            {
                session.end = End::ClientStopped {
                    complete_through: Some(h),
                };
                break;
            }
            if slow && draining.is_none() {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        let stopped = matches!(session.end, End::ClientStopped { .. });
        rec.sessions.push(session);
        if stopped {
            break;
        }
        next = match (gone, position) {
            (true, _) | (false, None) => Next::Relist(SessionKind::Relist),
            (false, Some(p)) => Next::From(p, SessionKind::Resume),
        };
    }
    rec
}

/// rv, type, object, prev_rv, prev_object.
type EventRow = (i64, String, String, Option<i64>, Option<String>);

/// A fresh store's resourceVersion (migration V3): its first write is FRESH_RV + 1.
const FRESH_RV: u64 = 1;

/// A connection for the truth copier and the compactor.
enum Db {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

impl Db {
    async fn connect(url: &str) -> Result<Db, String> {
        if url.starts_with("sqlite") {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .busy_timeout(Duration::from_secs(10));
            Ok(Db::Lite(
                sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .map_err(|e| e.to_string())?,
            ))
        } else {
            Ok(Db::Pg(
                sqlx::PgConnection::connect(url)
                    .await
                    .map_err(|e| e.to_string())?,
            ))
        }
    }

    async fn events_after(&mut self, rv: u64) -> Result<Vec<TruthEvent>, String> {
        let sql = format!(
            "SELECT rv, type, CAST(object AS TEXT) AS object, prev_rv, CAST(prev_object AS TEXT) AS prev_object \
             FROM events WHERE resource = 'flunders' AND rv > {rv} ORDER BY rv LIMIT 20000"
        );
        let q = sqlx::AssertSqlSafe(sql);
        let rows: Vec<EventRow> = match self {
            Db::Pg(c) => sqlx::query_as(q).fetch_all(c).await,
            Db::Lite(c) => sqlx::query_as(q).fetch_all(c).await,
        }
        .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (rv, ty, obj, prev_rv, prev) in rows {
            let rv = rv as u64;
            let kind = Kind::parse(&ty).ok_or_else(|| format!("event {rv}: type {ty}"))?;
            let parse = |s: &str, rv: u64| {
                serde_json::from_str::<Value>(s)
                    .ok()
                    .and_then(|v| ObjState::from_json(&v, Some(rv)))
            };
            let o = parse(&obj, rv).ok_or_else(|| format!("event {rv}: unreadable object"))?;
            let prev_rv = prev_rv.map(|p| p as u64);
            let prev = match (&prev, prev_rv) {
                (Some(p), Some(prv)) => parse(p, prv),
                _ => None,
            };
            out.push(TruthEvent {
                rv,
                kind,
                obj: o,
                prev,
                prev_rv,
            });
        }
        Ok(out)
    }

    async fn exec(&mut self, sql: String) -> Result<(), String> {
        let q = sqlx::AssertSqlSafe(sql);
        match self {
            Db::Pg(c) => sqlx::raw_sql(q).execute(c).await.map(|_| ()),
            Db::Lite(c) => sqlx::raw_sql(q).execute(c).await.map(|_| ()),
        }
        .map_err(|e| e.to_string())
    }

    async fn head(&mut self) -> Result<u64, String> {
        let q = "SELECT rv FROM rv_counter";
        let v: i64 = match self {
            Db::Pg(c) => sqlx::query_scalar(q).fetch_one(c).await,
            Db::Lite(c) => sqlx::query_scalar(q).fetch_one(c).await,
        }
        .map_err(|e| e.to_string())?;
        Ok(v as u64)
    }

    /// Terminates the server's LISTEN sessions; returns how many.
    async fn terminate_listeners(&mut self) -> Result<i64, String> {
        let Db::Pg(c) = self else { return Ok(0) };
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(c)
        .await
        .map_err(|e| e.to_string())
    }
}

/// Copies the event log out every 250 ms and compacts behind it every second; returns the copy.
async fn truth_keeper(sh: Arc<Shared>) -> (Vec<TruthEvent>, u64) {
    let mut truth: Vec<TruthEvent> = Vec::new();
    let mut db: Option<Db> = None;
    let mut last_compact = Instant::now();
    let mut compactions = 0;
    let mut final_round = false;
    loop {
        if sh.stop_truth.load(Ordering::SeqCst) {
            final_round = true;
        }
        if db.is_none() {
            db = Db::connect(&sh.db_url).await.ok();
        }
        if let Some(c) = db.as_mut() {
            let last = truth.last().map_or(FRESH_RV, |e| e.rv);
            match c.events_after(last).await {
                Ok(rows) => {
                    for e in rows {
                        // Only a contiguous prefix while running: a missing RV may still commit.
                        // The final round takes everything, so a real hole shows in the checker.
                        if !final_round && e.rv != truth.last().map_or(FRESH_RV, |l| l.rv) + 1 {
                            break;
                        }
                        truth.push(e);
                    }
                }
                Err(e) => {
                    sh.note(format!("truth copy: {e}"));
                    db = None;
                }
            }
        }
        if final_round {
            return (truth, compactions);
        }
        if sh.retain_enabled()
            && last_compact.elapsed() >= Duration::from_secs(1)
            && let Some(c) = db.as_mut()
        {
            last_compact = Instant::now();
            let copied = truth.last().map_or(0, |e| e.rv);
            match c.head().await {
                Ok(head) => {
                    let target = copied.min(head.saturating_sub(sh.retain()));
                    if target > sh.horizon.load(Ordering::SeqCst) {
                        // Announce first: a 410 the server sends after this is justified.
                        sh.horizon.store(target, Ordering::SeqCst);
                        let sql = format!(
                            "UPDATE storage_meta SET compacted_rv = {target} WHERE compacted_rv < {target}; \
                             DELETE FROM events WHERE rv <= {target};"
                        );
                        match c.exec(sql).await {
                            Ok(()) => compactions += 1,
                            Err(e) => {
                                sh.note(format!("compaction: {e}"));
                                db = None;
                            }
                        }
                    }
                }
                Err(e) => {
                    sh.note(format!("head: {e}"));
                    db = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

static RETAIN: AtomicU64 = AtomicU64::new(0);

impl Shared {
    fn retain(&self) -> u64 {
        RETAIN.load(Ordering::Relaxed)
    }
    fn retain_enabled(&self) -> bool {
        self.retain() > 0
    }
}

async fn restart_replica(sh: &Shared, i: usize, down: Duration) {
    let r = &sh.replicas[i];
    let mut guard = r.server.lock().await;
    if let Some(mut w) = guard.take() {
        w.kill();
    }
    sh.fault(format!("replica {i} killed (SIGKILL)"));
    tokio::time::sleep(down).await;
    let w = Wardle::start_with(&r.dir, &sh.db_url, &[]).await;
    *r.client.write().expect("lock") = w.client();
    *guard = Some(w);
    sh.fault(format!("replica {i} restarted"));
}

async fn terminate_listen(sh: &Shared) {
    let res = match Db::connect(&sh.db_url).await {
        Ok(mut c) => c.terminate_listeners().await,
        Err(e) => Err(e),
    };
    sh.fault(format!("LISTEN backends terminated: {res:?}"));
}

async fn faults(sh: Arc<Shared>, total: Duration) {
    let at = |f: f64| sh.start + total.mul_f64(f);
    let until = |t: Instant| tokio::time::sleep_until(t.into());
    match sh.engine {
        Engine::Postgres => {
            until(at(0.2)).await;
            terminate_listen(&sh).await;
            until(at(0.35)).await;
            restart_replica(&sh, sh.replicas.len() - 1, Duration::from_millis(1500)).await;
            until(at(0.55)).await;
            sh.fault("postgres crash-restart (pg_ctl -m immediate) begins".into());
            let _ = tokio::task::spawn_blocking(postgres::restart_immediate).await;
            sh.fault("postgres back".into());
            until(at(0.75)).await;
            terminate_listen(&sh).await;
        }
        Engine::Sqlite => {
            until(at(0.35)).await;
            restart_replica(&sh, 0, Duration::from_millis(1000)).await;
            until(at(0.7)).await;
            restart_replica(&sh, 0, Duration::from_millis(500)).await;
        }
    }
}

/// The filters watchers and listers use: none, namespaced, every kind of label requirement,
/// a field selector.
pub fn filters() -> Vec<Filter> {
    let s = |x: &str| x.to_string();
    vec![
        Filter::default(),
        Filter {
            ns: Some(s("ns-a")),
            ..Filter::default()
        },
        Filter {
            labels: vec![Req::Eq(s("color"), s("red"))],
            ..Filter::default()
        },
        Filter {
            labels: vec![Req::Neq(s("color"), s("blue"))],
            ..Filter::default()
        },
        Filter {
            labels: vec![Req::Exists(s("tier"))],
            ..Filter::default()
        },
        Filter {
            ns: Some(s("ns-b")),
            labels: vec![Req::NotExists(s("tier"))],
            ..Filter::default()
        },
        Filter {
            labels: vec![Req::In(s("color"), vec![s("red"), s("green")])],
            ..Filter::default()
        },
        Filter {
            ns: Some(s("ns-b")),
            labels: vec![Req::Eq(s("tier"), s("a")), Req::Eq(s("color"), s("red"))],
            ..Filter::default()
        },
        Filter {
            labels: vec![Req::NotIn(s("color"), vec![s("green")])],
            ..Filter::default()
        },
        Filter {
            name: Some(s("f1")),
            ..Filter::default()
        },
    ]
}

pub async fn run(cfg: Config) -> Outcome {
    crate::common::server::install_crypto();
    RETAIN.store(cfg.retain, Ordering::Relaxed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = cfg.engine.fresh_url(tmp.path());
    let mut replicas = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..cfg.replicas {
        let dir = tmp.path().join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir).expect("replica dir");
        let w = Wardle::start_with(&dir, &url, &[]).await;
        dirs.push(dir.clone());
        replicas.push(Replica {
            dir,
            client: RwLock::new(w.client()),
            server: tokio::sync::Mutex::new(Some(w)),
        });
    }
    let sh = Arc::new(Shared {
        start: Instant::now(),
        db_url: url,
        engine: cfg.engine,
        replicas,
        next_write: AtomicU64::new(1),
        max_ok_rv: AtomicU64::new(0),
        horizon: AtomicU64::new(0),
        stop_work: AtomicBool::new(false),
        stop_truth: AtomicBool::new(false),
        final_head: AtomicU64::new(0),
        writes: Mutex::new(Vec::new()),
        lists: Mutex::new(Vec::new()),
        faults: Mutex::new(Vec::new()),
        notes: Mutex::new(Vec::new()),
    });
    let total = Duration::from_secs(cfg.seconds);
    let truth = tokio::spawn(truth_keeper(sh.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let fs = filters();
    let mut watchers = Vec::new();
    for i in 0..cfg.watchers {
        // Pairs share a filter on different replicas, for the cross-replica comparison.
        let f = fs[(i / 2) % fs.len()].clone();
        let replica = i % cfg.replicas;
        let slow = i == cfg.watchers - 1;
        watchers.push(tokio::spawn(watcher(
            sh.clone(),
            i,
            replica,
            f,
            slow,
            cfg.seed ^ (1000 + i as u64),
            stop_rx.clone(),
        )));
    }
    // Let some watches start before the first write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut work = Vec::new();
    for i in 0..cfg.writers {
        work.push(tokio::spawn(writer(sh.clone(), i, cfg.seed ^ i as u64)));
    }
    for i in 0..cfg.listers {
        work.push(tokio::spawn(lister(
            sh.clone(),
            fs.clone(),
            cfg.seed ^ (500 + i as u64),
        )));
    }
    let fault_task = tokio::spawn(faults(sh.clone(), total));
    tokio::time::sleep_until((sh.start + total).into()).await;
    sh.stop_work.store(true, Ordering::SeqCst);
    for w in work {
        w.await.expect("worker task");
    }
    fault_task.await.expect("fault task");
    // Quiesce: the head stops moving; give every watcher time (> the 1 s poll) to catch up.
    let head = loop {
        match Db::connect(&sh.db_url).await {
            Ok(mut c) => match c.head().await {
                Ok(h) => break h,
                Err(e) => sh.note(format!("final head: {e}")),
            },
            Err(e) => sh.note(format!("final head: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    sh.final_head.store(head, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let mut records = Vec::new();
    for w in watchers {
        records.push(w.await.expect("watcher task"));
    }
    sh.stop_truth.store(true, Ordering::SeqCst);
    let (truth, compactions) = truth.await.expect("truth task");
    for r in &sh.replicas {
        if let Some(mut w) = r.server.lock().await.take() {
            w.stop();
        }
    }
    let history = History {
        initial_rv: FRESH_RV,
        truth,
        writes: std::mem::take(&mut *sh.writes.lock().expect("lock")),
        watchers: records,
        lists: std::mem::take(&mut *sh.lists.lock().expect("lock")),
    };
    let faults = std::mem::take(&mut *sh.faults.lock().expect("lock"));
    let notes = std::mem::take(&mut *sh.notes.lock().expect("lock"));
    drop(dirs);
    drop(tmp);
    Outcome {
        history,
        faults,
        notes,
        compactions,
    }
}
