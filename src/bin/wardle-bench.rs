//! wardle-bench: measures a release wardle-apiserver (creates/s over HTTPS, get/list latency,
//! RSS, startup time, cross-replica watch latency) and prints each figure next to a baseline
//! measured in the same run on the same Postgres (raw single-row INSERTs through sqlx), so the
//! ratios mean something on whatever machine runs it. Figures only: nothing here asserts a speed.
//! Run through `scripts/bench.sh`, which starts a throwaway Postgres and passes `--admin-url`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use futures::future::BoxFuture;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::Connection;

const GROUP_VERSION: &str = "/apis/wardle.example.com/v1alpha1";

/// Command line. Every knob has a default that finishes in a few minutes on 2 cores.
#[derive(Parser, Debug)]
#[command(about = "Benchmark wardle-apiserver against raw Postgres INSERTs in the same run")]
struct Args {
    /// Superuser URL of the Postgres to use; the bench creates (and drops) its own database.
    #[arg(long, env = "WARDLE_BENCH_DATABASE_URL")]
    admin_url: String,
    /// The wardle-apiserver binary (default: next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Seconds per create-throughput level (wardle and raw each).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrency levels for the create throughput comparison.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Flunders in the namespace that LIST reads.
    #[arg(long, default_value_t = 10_000)]
    list_size: usize,
    /// Fill the database to 100k flunders for the RSS and startup figures (takes minutes).
    #[arg(long)]
    big: bool,
    /// Total flunders for the RSS and startup figures (overrides --big; default 20k).
    #[arg(long)]
    objects: Option<usize>,
    /// Concurrent watchers on the second replica.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Creates written (through the first replica) while the watchers listen.
    #[arg(long, default_value_t = 200)]
    watch_events: usize,
    /// Pace of those creates, per second (latency under a steady load, not at saturation).
    #[arg(long, default_value_t = 20.0)]
    watch_rate: f64,
    /// Skip the watch section.
    #[arg(long)]
    skip_watch: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("current exe has no directory"))?
            .join("wardle-apiserver"),
    };
    if !server_bin.is_file() {
        bail!(
            "{} not found (build it with cargo build --release)",
            server_bin.display()
        );
    }
    let tmp = TempDir::new()?;
    let db = format!("wardle_bench_{}", uuid::Uuid::new_v4().simple());
    exec(&args.admin_url, &format!("CREATE DATABASE {db}")).await?;
    let db_url = with_database(&args.admin_url, &db);
    let result = run(&args, &server_bin, &tmp.0, &db_url).await;
    // Best effort: a throwaway server is removed by bench.sh anyway, an external one is not.
    let _ = exec(
        &args.admin_url,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    result
}

/// Everything the final table needs, filled section by section.
#[derive(Default)]
struct Report {
    out: String,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        // Sections print as they finish (a long run shows progress) and again in the final table.
        eprintln!("{}", s.as_ref());
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }
}

async fn run(args: &Args, server_bin: &Path, tmp: &Path, db_url: &str) -> anyhow::Result<()> {
    let mut rep = Report::default();
    let tick = clock_ticks();
    machine_header(&mut rep, db_url).await?;

    let dir_a = tmp.join("replica-a");
    std::fs::create_dir_all(&dir_a)?;
    let mut a = Server::start(server_bin, &dir_a, db_url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.clients.iter().copied().max().unwrap_or(1).max(2) as u32)
        .connect(db_url)
        .await?;
    let pg_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    // The postmaster is every backend's parent: its tree is this Postgres cluster's CPU.
    let postmaster = proc_stat(pg_pid as u32).map(|s| s.ppid);

    // One create through the server gives the exact JSON it stores; the baseline inserts that.
    let ns_create = "bench-create";
    let (st, body) = post_flunder(&a.client, ns_create, "warmup").await?;
    if st != StatusCode::CREATED {
        bail!(
            "warm-up create failed: {st} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let stored: String =
        sqlx::query_scalar("SELECT object::text FROM objects WHERE resource = 'flunders' LIMIT 1")
            .fetch_one(&pool)
            .await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, name text NOT NULL, object json NOT NULL)",
    )
    .execute(&pool)
    .await?;

    // 1 + 2: create throughput, wardle vs raw INSERT, per concurrency level.
    rep.line("");
    rep.line(format!(
        "== Creates: POST flunder over HTTPS vs raw INSERT (autocommit, 1 row/tx, same {}-byte JSON), {} s per run ==",
        stored.len(),
        args.seconds
    ));
    rep.line(format!(
        "{:>7} | {:>9} {:>8} {:>8} {:>5} | {:>9} {:>8} {:>8} | {:>6} | {:<18} | {}",
        "clients",
        "wardle/s",
        "p50 ms",
        "p99 ms",
        "errs",
        "raw tx/s",
        "p50 ms",
        "p99 ms",
        "ratio",
        "cores: srv/pg/cli",
        "cores in raw run"
    ));
    let dur = Duration::from_secs(args.seconds);
    for &c in &args.clients {
        let clients = make_clients(&a.kubeconfig, c).await?;
        let prefix = format!("c{c}");
        let cpu0 = CpuSnap::take(a.pid, postmaster);
        let w = load(
            c,
            Stop::After(dur),
            http_create_op(clients, ns_create, &prefix),
        )
        .await;
        let cpu = CpuSnap::take(a.pid, postmaster).since(&cpu0, tick, w.elapsed);
        let cpu0 = CpuSnap::take(a.pid, postmaster);
        let r = load(
            c,
            Stop::After(dur),
            raw_insert_op(pool.clone(), &prefix, &stored),
        )
        .await;
        let raw_cpu = CpuSnap::take(a.pid, postmaster).since(&cpu0, tick, r.elapsed);
        let ratio = w.rate() / r.rate().max(f64::MIN_POSITIVE);
        rep.line(format!(
            "{:>7} | {:>9.0} {:>8.2} {:>8.2} {:>5} | {:>9.0} {:>8.2} {:>8.2} | {:>6.2} | {:<18} | {}",
            c,
            w.rate(),
            w.pct_ms(0.50),
            w.pct_ms(0.99),
            w.errors,
            r.rate(),
            r.pct_ms(0.50),
            r.pct_ms(0.99),
            ratio,
            cpu,
            raw_cpu
        ));
        if let Some(e) = &w.first_error {
            rep.line(format!("        first wardle error: {e}"));
        }
        if let Some(e) = &r.first_error {
            rep.line(format!("        first raw error: {e}"));
        }
    }
    rep.line("cores = CPU s per wall s of the server / the Postgres cluster / this client; ratio = wardle/raw");
    rep.line("target: wardle/raw >= 1.0 at 32 clients");

    // 3: GET one and LIST of list_size in one namespace.
    let ns_list = "bench-list";
    let fill_c = 32;
    let t = Instant::now();
    let clients = make_clients(&a.kubeconfig, fill_c).await?;
    let f = load(
        fill_c,
        Stop::Count(args.list_size),
        http_create_op(clients, ns_list, "l"),
    )
    .await;
    rep.line("");
    rep.line(format!(
        "== Reads (namespace with {} flunders, filled in {:.1} s at {:.0}/s, {} errors) ==",
        args.list_size,
        t.elapsed().as_secs_f64(),
        f.rate(),
        f.errors
    ));
    let single = make_clients(&a.kubeconfig, 1).await?;
    let get_path = format!("{GROUP_VERSION}/namespaces/{ns_list}/flunders/l-0");
    let cpu0 = CpuSnap::take(a.pid, postmaster);
    let g = serial(&single[0], &get_path, 2000, Duration::from_secs(10)).await?;
    let cpu = CpuSnap::take(a.pid, postmaster).since(&cpu0, tick, g.elapsed);
    rep.line(format!(
        "GET one flunder      : p50 {:>8.2} ms  p99 {:>8.2} ms  ({} requests, serial; cores srv/pg/cli {cpu})",
        g.pct_ms(0.50),
        g.pct_ms(0.99),
        g.ops
    ));
    let list_path = format!("{GROUP_VERSION}/namespaces/{ns_list}/flunders");
    let (st, body) = send(&single[0], Method::GET, &list_path, None).await?;
    let items = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .unwrap_or(0);
    let cpu0 = CpuSnap::take(a.pid, postmaster);
    let l = serial(&single[0], &list_path, 50, Duration::from_secs(20)).await?;
    let cpu = CpuSnap::take(a.pid, postmaster).since(&cpu0, tick, l.elapsed);
    rep.line(format!(
        "LIST {:>6} flunders: p50 {:>8.2} ms  p99 {:>8.2} ms  ({} requests, serial; {} items, {:.1} MB, status {})",
        args.list_size,
        l.pct_ms(0.50),
        l.pct_ms(0.99),
        l.ops,
        items,
        body.len() as f64 / 1e6,
        st.as_u16()
    ));
    rep.line(format!(
        "                      (cores srv/pg/cli during LIST: {cpu})"
    ));
    // Baseline: the same rows straight from SQL, as text, to this process.
    let mut raw = Vec::new();
    let t = Instant::now();
    while raw.len() < 50 && t.elapsed() < Duration::from_secs(20) {
        let t1 = Instant::now();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT object::text FROM objects WHERE resource = 'flunders' AND namespace = $1 ORDER BY name",
        )
        .bind(ns_list)
        .fetch_all(&pool)
        .await?;
        std::hint::black_box(rows);
        raw.push(t1.elapsed().as_secs_f64());
    }
    rep.line(format!(
        "baseline SELECT of the same rows (sqlx): p50 {:>8.2} ms  p99 {:>8.2} ms  -> LIST/SELECT p50 ratio {:.1}",
        pct_f(&mut raw, 0.50) * 1e3,
        pct_f(&mut raw, 0.99) * 1e3,
        l.pct_ms(0.50) / (pct_f(&mut raw, 0.50) * 1e3).max(1e-9)
    ));
    rep.line("target: LIST of 10k <= 50 ms");

    // 4: RSS after N flunders, cached JSON size, restart time.
    let target = args
        .objects
        .unwrap_or(if args.big { 100_000 } else { 20_000 });
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM objects WHERE resource = 'flunders'")
        .fetch_one(&pool)
        .await?;
    let missing = target.saturating_sub(have as usize);
    let t = Instant::now();
    if missing > 0 {
        let clients = make_clients(&a.kubeconfig, fill_c).await?;
        load(
            fill_c,
            Stop::Count(missing),
            http_create_op(clients, "bench-fill", "f"),
        )
        .await;
    }
    let fill_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (count, json_bytes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(length(object::text)), 0)::bigint FROM objects WHERE resource = 'flunders'",
    )
    .fetch_one(&pool)
    .await?;
    let rss_a = vm_rss(a.pid);
    rep.line("");
    rep.line(format!(
        "== Memory and startup with {count} flunders ({}; filled {missing} in {fill_s:.1} s) ==",
        if args.big || args.objects.is_some() {
            "as asked"
        } else {
            "default target 20k, more if the create runs made more; --big for 100k"
        }
    ));
    let json_mb = json_bytes as f64 / 1e6;
    let budget_mb = 2.0 * json_mb + 40.0;
    rep.line(format!(
        "objects' JSON (sum length(object::text)): {json_mb:.1} MB; budget 2 x JSON + 40 MB = {budget_mb:.1} MB"
    ));
    rep.line(format!(
        "RSS of the server that wrote them      : {}",
        fmt_rss(rss_a, budget_mb)
    ));
    a.stop();
    a = Server::start(server_bin, &dir_a, db_url).await?;
    rep.line(format!(
        "restart: start -> /readyz 200          : {:.2} s",
        a.startup.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    rep.line(format!(
        "RSS after restart (idle)               : {}",
        fmt_rss(vm_rss(a.pid), budget_mb)
    ));

    // 5: watch latency across replicas.
    rep.line("");
    if args.skip_watch {
        rep.line("== Watch: skipped (--skip-watch) ==");
    } else {
        let dir_b = tmp.join("replica-b");
        std::fs::create_dir_all(&dir_b)?;
        let b = Server::start(server_bin, &dir_b, db_url).await?;
        watch_section(&mut rep, args, &a, &b, &pool, budget_mb).await?;
    }

    println!("\n==================== wardle-bench results ====================");
    print!("{}", rep.out);
    Ok(())
}

async fn machine_header(rep: &mut Report, db_url: &str) -> anyhow::Result<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut c = sqlx::PgConnection::connect(db_url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut c)
        .await?;
    let mut settings = String::new();
    for s in [
        "fsync",
        "synchronous_commit",
        "shared_buffers",
        "max_connections",
    ] {
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {s}")))
            .fetch_one(&mut c)
            .await?;
        let _ = write!(settings, "{s}={v} ");
    }
    let _ = c.close().await;
    rep.line(format!("machine : nproc {nproc}, {model}, kernel {kernel}"));
    rep.line(format!(
        "loadavg : {} (other work on the machine skews every figure)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    rep.line(format!("postgres: {version} ({})", settings.trim_end()));
    rep.line("client  : this process, on the same machine (its CPU is shown where it matters)");
    Ok(())
}

fn fmt_rss(kb: Option<u64>, budget_mb: f64) -> String {
    match kb {
        Some(kb) => {
            let mb = kb as f64 / 1024.0;
            format!(
                "{mb:.1} MB ({:.2} x budget)",
                mb / budget_mb.max(f64::MIN_POSITIVE)
            )
        }
        None => "unknown (no /proc)".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Watch across replicas.

async fn watch_section(
    rep: &mut Report,
    args: &Args,
    a: &Server,
    b: &Server,
    pool: &sqlx::PgPool,
    budget_mb: f64,
) -> anyhow::Result<()> {
    let ns = "bench-watch";
    let path = format!("{GROUP_VERSION}/namespaces/{ns}/flunders");
    let (st, body) = send(&b.client, Method::GET, &format!("{path}?limit=1"), None).await?;
    let rv = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
        .ok_or_else(|| anyhow!("list on replica B: {st} {}", String::from_utf8_lossy(&body)))?;
    let watch_path = format!("{path}?watch=true&resourceVersion={rv}");
    // Probe: a server without the watch endpoint answers at once with an error status.
    let probe = tokio::time::timeout(
        Duration::from_secs(10),
        b.client.send(request(Method::GET, &watch_path, None)?),
    )
    .await;
    match probe {
        Ok(Ok(resp)) if resp.status() == StatusCode::OK => {}
        Ok(Ok(resp)) => {
            rep.line(format!(
                "== Watch: skipped: the server answers a watch with {} (endpoint not there yet) ==",
                resp.status()
            ));
            return Ok(());
        }
        Ok(Err(e)) => {
            rep.line(format!("== Watch: skipped: watch request failed: {e} =="));
            return Ok(());
        }
        Err(_) => {
            rep.line("== Watch: skipped: no response headers to a watch within 10 s ==");
            return Ok(());
        }
    }

    let n = args.watchers;
    let want = args.watch_events;
    // A few clients so connections spread over several hyper pools (one connection per stream).
    let clients = make_clients(&b.kubeconfig, n.div_ceil(100).max(1)).await?;
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let connect_gate = Arc::new(tokio::sync::Semaphore::new(50));
    let rss_before = vm_rss(b.pid);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let client = clients[i % clients.len()].clone();
        let (ready, failed, done, gate) = (
            ready.clone(),
            failed.clone(),
            done.clone(),
            connect_gate.clone(),
        );
        let watch_path = watch_path.clone();
        tasks.push(tokio::spawn(async move {
            watcher(client, watch_path, want, ready, failed, done, gate).await
        }));
    }
    let t = Instant::now();
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        if t.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = ready.load(Ordering::Relaxed);
    let setup_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_watching = vm_rss(b.pid);

    // Paced writer on replica A; each create's RV and the wall time its response arrived.
    let writer = make_clients(&a.kubeconfig, 1).await?.remove(0);
    let mut written: HashMap<i64, f64> = HashMap::new();
    let gap = Duration::from_secs_f64(1.0 / args.watch_rate.max(0.1));
    let start = Instant::now();
    let mut write_errors = 0usize;
    for i in 0..want {
        let due = start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        match post_flunder(&writer, ns, &format!("w-{i}")).await {
            Ok((StatusCode::CREATED, body)) => {
                if let Some(rv) = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["metadata"]["resourceVersion"].as_str()?.parse().ok())
                {
                    written.insert(rv, unix_now());
                }
            }
            _ => write_errors += 1,
        }
    }
    // Let the stragglers arrive, then stop the watchers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut seen: Vec<(i64, f64)> = Vec::new();
    let mut complete = 0usize;
    for t in tasks {
        if let Ok(Ok(Ok(v))) = tokio::time::timeout(Duration::from_secs(5), t).await {
            if v.len() >= written.len() {
                complete += 1;
            }
            seen.extend(v);
        }
    }

    let rvs: Vec<i64> = written.keys().copied().collect();
    let committed: HashMap<i64, f64> = sqlx::query_as::<_, (i64, f64)>(
        "SELECT rv, extract(epoch FROM committed_at)::float8 FROM events WHERE rv = ANY($1)",
    )
    .bind(&rvs)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut from_commit = Vec::new();
    let mut from_response = Vec::new();
    for (rv, at) in &seen {
        if let Some(c) = committed.get(rv) {
            from_commit.push(at - c);
        }
        if let Some(w) = written.get(rv) {
            from_response.push(at - w);
        }
    }
    let expected = written.len() * connected;
    rep.line(format!(
        "== Watch: {connected}/{n} watchers on replica B (started in {:.2} s; connected in {setup_s:.1} s), {} creates through replica A at {}/s ==",
        b.startup.as_secs_f64(),
        written.len(),
        args.watch_rate
    ));
    rep.line(format!(
        "events delivered: {}/{expected}; watchers that saw every event: {complete}; write errors: {write_errors}",
        from_response.len()
    ));
    rep.line(format!(
        "events.committed_at -> watcher (upper bound): p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        pct_f(&mut from_commit, 0.50) * 1e3,
        pct_f(&mut from_commit, 0.99) * 1e3,
        pct_f(&mut from_commit, 1.0) * 1e3
    ));
    rep.line(format!(
        "POST response -> watcher (lower bound)      : p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        pct_f(&mut from_response, 0.50) * 1e3,
        pct_f(&mut from_response, 0.99) * 1e3,
        pct_f(&mut from_response, 1.0) * 1e3
    ));
    rep.line("(committed_at is taken inside the writing transaction, before COMMIT; the response comes after it)");
    rep.line(format!(
        "RSS of replica B: before watchers {}, with watchers {}",
        fmt_rss(rss_before, budget_mb),
        fmt_rss(rss_watching, budget_mb)
    ));
    rep.line("target: watch p99 <= 50 ms across replicas");
    Ok(())
}

/// One watcher: open the stream, count as ready once headers arrive, then record (rv, wall time)
/// of each event line until `want` events or `done`.
async fn watcher(
    client: kube::Client,
    path: String,
    want: usize,
    ready: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    gate: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<Vec<(i64, f64)>> {
    let permit = gate.acquire_owned().await?;
    let resp = match client.send(request(Method::GET, &path, None)?).await {
        Ok(r) if r.status() == StatusCode::OK => r,
        other => {
            failed.fetch_add(1, Ordering::Relaxed);
            bail!("watch failed: {:?}", other.map(|r| r.status()));
        }
    };
    drop(permit);
    ready.fetch_add(1, Ordering::Relaxed);
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::with_capacity(want);
    while out.len() < want && !done.load(Ordering::Relaxed) {
        let frame = tokio::time::timeout(Duration::from_millis(500), body.frame()).await;
        let frame = match frame {
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(f)) => f?,
        };
        let now = unix_now();
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if let Some(rv) = event_rv(&line) {
                    out.push((rv, now));
                }
            }
        }
    }
    Ok(out)
}

/// The object's resourceVersion in one watch event line, without parsing the whole object (1000
/// watchers parse every event on the same 2 cores the server uses). Bookmarks and errors: None.
fn event_rv(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?;
    if !(text.contains("\"ADDED\"")
        || text.contains("\"MODIFIED\"")
        || text.contains("\"DELETED\""))
    {
        return None;
    }
    let key = "\"resourceVersion\":\"";
    let start = text.find(key)? + key.len();
    let end = text[start..].find('"')? + start;
    text[start..end].parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Load generation.

enum Stop {
    After(Duration),
    Count(usize),
}

/// One operation of a worker: (worker index, global sequence number) -> Ok or an error text.
type Op = Arc<dyn Fn(usize, usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

struct Run {
    ops: usize,
    errors: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
    first_error: Option<String>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn pct_ms(&self, q: f64) -> f64 {
        let mut v: Vec<f64> = self.lat.iter().map(Duration::as_secs_f64).collect();
        pct_f(&mut v, q) * 1e3
    }
}

/// `concurrency` workers run `op` back to back until the stop condition; successful operations
/// count towards the rate and their latencies are kept.
async fn load(concurrency: usize, stop: Stop, op: Op) -> Run {
    let seq = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let (deadline, limit) = match stop {
        Stop::After(d) => (Some(start + d), usize::MAX),
        Stop::Count(n) => (None, n),
    };
    let mut handles = Vec::new();
    for w in 0..concurrency {
        let (seq, op) = (seq.clone(), op.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = seq.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                match op(w, i).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut run = Run {
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        lat: Vec::new(),
        first_error: None,
    };
    for h in handles {
        if let Ok((lat, errors, first)) = h.await {
            run.ops += lat.len();
            run.lat.extend(lat);
            run.errors += errors;
            if run.first_error.is_none() {
                run.first_error = first;
            }
        }
    }
    run.elapsed = start.elapsed();
    run
}

fn http_create_op(clients: Vec<kube::Client>, ns: &str, prefix: &str) -> Op {
    let clients = Arc::new(clients);
    let (ns, prefix) = (ns.to_string(), prefix.to_string());
    Arc::new(move |w, i| {
        let client = clients[w % clients.len()].clone();
        let (ns, name) = (ns.clone(), format!("{prefix}-{i}"));
        Box::pin(async move {
            match post_flunder(&client, &ns, &name).await {
                Ok((StatusCode::CREATED, _)) => Ok(()),
                Ok((st, body)) => Err(format!("{st}: {}", String::from_utf8_lossy(&body))),
                Err(e) => Err(e.to_string()),
            }
        })
    })
}

fn raw_insert_op(pool: sqlx::PgPool, prefix: &str, object: &str) -> Op {
    let (prefix, object) = (prefix.to_string(), Arc::new(object.to_string()));
    Arc::new(move |_w, i| {
        let (pool, object, name) = (pool.clone(), object.clone(), format!("{prefix}-{i}"));
        Box::pin(async move {
            sqlx::query("INSERT INTO bench_raw (name, object) VALUES ($1, $2::json)")
                .bind(name)
                .bind(object.as_str())
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// `n` GETs of `path` one after another (or until `max`), each must be 200.
async fn serial(client: &kube::Client, path: &str, n: usize, max: Duration) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    let mut first_error = None;
    while lat.len() + errors < n && start.elapsed() < max {
        let t = Instant::now();
        let (st, body) = send(client, Method::GET, path, None).await?;
        if st == StatusCode::OK {
            lat.push(t.elapsed());
        } else {
            errors += 1;
            first_error.get_or_insert_with(|| format!("{st}: {}", String::from_utf8_lossy(&body)));
        }
    }
    if let Some(e) = &first_error {
        eprintln!("GET {path}: {errors} errors, first: {e}");
    }
    Ok(Run {
        ops: lat.len(),
        errors,
        elapsed: start.elapsed(),
        lat,
        first_error,
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP client and the server process.

fn flunder(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "wardle.example.com/v1alpha1",
        "kind": "Flunder",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "wardle-bench", "tier": "load"}},
        "spec": {"reference": "bench-reference"}
    })
}

async fn post_flunder(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let body = serde_json::to_vec(&flunder(ns, name))?;
    send(
        client,
        Method::POST,
        &format!("{GROUP_VERSION}/namespaces/{ns}/flunders"),
        Some(body),
    )
    .await
}

fn request(
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Request<kube::client::Body>> {
    let mut b = Request::builder().method(method).uri(path);
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    Ok(b.body(kube::client::Body::from(body.unwrap_or_default()))?)
}

async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let resp = client.send(request(method, path, body)?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// `n` independent clients (each its own connection pool, like separate processes would be).
async fn make_clients(kubeconfig: &Path, n: usize) -> anyhow::Result<Vec<kube::Client>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(make_client(kubeconfig).await?);
    }
    Ok(out)
}

async fn make_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    // A benchmark counts what the server answers; kube's retries of 429/503 would hide it.
    cfg.default_retry = false;
    cfg.read_timeout = None;
    Ok(kube::Client::try_from(cfg)?)
}

struct Server {
    child: Option<Child>,
    pid: u32,
    kubeconfig: PathBuf,
    client: kube::Client,
    /// Spawn -> first 200 from /readyz.
    startup: Duration,
}

impl Server {
    async fn start(bin: &Path, dir: &Path, db_url: &str) -> anyhow::Result<Server> {
        let port = free_port()?;
        let log = dir.join(format!("wardle-{port}.log"));
        let t0 = Instant::now();
        let mut child = Command::new(bin)
            .args(["--secure-port", &port.to_string()])
            .args(["--bind-address", "127.0.0.1"])
            .arg("--cert-dir")
            .arg(dir)
            .args(["--database-url", db_url])
            // The server's own default filter, pinned so runs compare.
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let pid = child.id();
        let kubeconfig = dir.join("admin.kubeconfig");
        let deadline = t0 + Duration::from_secs(600);
        let mut client: Option<kube::Client> = None;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "wardle-apiserver exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "wardle-apiserver not ready after 600 s; log {}",
                    log.display()
                );
            }
            if client.is_none() && kubeconfig.exists() && port_open(port) {
                client = make_client(&kubeconfig).await.ok();
            }
            if let Some(c) = &client
                && let Ok((StatusCode::OK, _)) = send(c, Method::GET, "/readyz", None).await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let startup = t0.elapsed();
        Ok(Server {
            child: Some(child),
            pid,
            kubeconfig,
            client: client.ok_or_else(|| anyhow!("no client"))?,
            startup,
        })
    }

    /// SIGTERM, then SIGKILL after 15 s.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(100))
        .is_ok()
}

/// A temp dir removed on drop (tempfile is only a dev-dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let p = std::env::temp_dir().join(format!(
            "wardle-bench-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// SQL helpers.

async fn exec(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| "connect to the admin URL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .with_context(|| sql.to_string())?;
    let _ = c.close().await;
    Ok(())
}

/// Replaces the database name in a postgres URL, keeping any query string.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{db}?{q}"),
        None => format!("{host}/{db}"),
    }
}

// ---------------------------------------------------------------------------------------------
// /proc: RSS and CPU time.

fn vm_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&s)
}

/// VmRSS in kB from /proc/<pid>/status.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, PartialEq)]
struct ProcStat {
    ppid: u32,
    /// utime + stime, in clock ticks.
    own: u64,
    /// cutime + cstime (reaped children), in clock ticks.
    children: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields of /proc/<pid>/stat; the command name may hold spaces and ')' so parse after the last ')'.
fn parse_proc_stat(s: &str) -> Option<ProcStat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        ppid: num(1)? as u32,
        own: num(11)? + num(12)?,
        children: num(13)? + num(14)?,
    })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU ticks used so far by the server, the Postgres cluster (postmaster, its live children and
/// the ones it reaped) and this process.
struct CpuSnap {
    server: Option<u64>,
    postgres: Option<u64>,
    bench: Option<u64>,
}

impl CpuSnap {
    fn take(server: u32, postmaster: Option<u32>) -> CpuSnap {
        let postgres = postmaster.and_then(|pm| {
            let root = proc_stat(pm)?;
            let kids: u64 = std::fs::read_dir("/proc")
                .ok()?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(proc_stat)
                .filter(|s| s.ppid == pm)
                .map(|s| s.own)
                .sum();
            Some(root.own + root.children + kids)
        });
        CpuSnap {
            server: proc_stat(server).map(|s| s.own),
            postgres,
            bench: proc_stat(std::process::id()).map(|s| s.own),
        }
    }

    /// "server / postgres / bench" in cores (CPU seconds per wall second) since `before`.
    fn since(&self, before: &CpuSnap, tick: f64, wall: Duration) -> String {
        let cores = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!(
                "{:.2}",
                a.saturating_sub(b) as f64 / tick / wall.as_secs_f64().max(1e-9)
            ),
            _ => "?".into(),
        };
        format!(
            "{} / {} / {}",
            cores(self.server, before.server),
            cores(self.postgres, before.postgres),
            cores(self.bench, before.bench)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Small numeric helpers.

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The q-quantile (nearest rank) of `v`, sorting it in place; NaN when empty.
fn pct_f(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(pct_f(&mut v, 0.50), 50.0);
        assert_eq!(pct_f(&mut v, 0.99), 99.0);
        assert_eq!(pct_f(&mut v, 1.0), 100.0);
        assert_eq!(pct_f(&mut v, 0.0), 1.0);
        assert!(pct_f(&mut [], 0.5).is_nan());
        assert_eq!(pct_f(&mut [7.0], 0.99), 7.0);
    }

    #[test]
    fn event_rv_reads_added_modified_deleted_only() {
        let added = br#"{"type":"ADDED","object":{"kind":"Flunder","metadata":{"name":"a","resourceVersion":"42"}}}"#;
        assert_eq!(event_rv(added), Some(42));
        let bookmark =
            br#"{"type":"BOOKMARK","object":{"kind":"Flunder","metadata":{"resourceVersion":"9"}}}"#;
        assert_eq!(event_rv(bookmark), None);
        assert_eq!(event_rv(br#"{"type":"ERROR","object":{}}"#), None);
        assert_eq!(
            event_rv(br#"{"type":"ADDED","object":{"metadata":{"resourceVersion":"x"}}}"#),
            None
        );
        assert_eq!(event_rv(b"\xff\xfe"), None);
        assert_eq!(event_rv(b""), None);
    }

    #[test]
    fn proc_stat_parses_names_with_spaces_and_parens() {
        let s = "1234 (tokio (rt) w) S 99 1 1 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 8 0 100 0 0";
        assert_eq!(
            parse_proc_stat(s),
            Some(ProcStat {
                ppid: 99,
                own: 200,
                children: 10
            })
        );
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_proc_stat("1 (x) S"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kb() {
        let s = "Name:\twardle\nVmPeak:\t 9999 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(s), Some(51234));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }

    #[test]
    fn flunder_bodies_have_distinct_names_in_their_namespace() {
        let f = flunder("ns1", "n1");
        assert_eq!(f["metadata"]["name"], "n1");
        assert_eq!(f["metadata"]["namespace"], "ns1");
        assert_eq!(f["kind"], "Flunder");
    }
}
