//! wardle-bench: measures a release wardle-apiserver next to its peers in the same run, driven
//! by the same load client: the Go sample-apiserver on etcd (the original), and pgbench doing
//! raw single-row INSERTs of the same JSON into the same Postgres (the ceiling). It prints
//! creates/s per concurrency with every ratio and the load average, get/list latency, RSS,
//! startup time, and commit -> watch event latency (wardle vs Go, and across wardle replicas).
//! Figures only: nothing here asserts a speed. Run through `scripts/bench.sh`, which starts a
//! throwaway Postgres and passes `--admin-url`, `--pgbench` and `--go-peers`.

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
#[command(
    about = "Benchmark wardle-apiserver against the Go sample-apiserver and raw Postgres INSERTs in the same run"
)]
struct Args {
    /// Superuser URL of the Postgres to use; the bench creates (and drops) its own database.
    #[arg(long, env = "WARDLE_BENCH_DATABASE_URL")]
    admin_url: String,
    /// The wardle-apiserver binary (default: next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Directory with the Go peers' `etcd` and `sample-apiserver` (scripts/go-peers.sh builds
    /// them); without it the Go column is left out.
    #[arg(long, env = "WARDLE_GO_PEERS")]
    go_peers: Option<PathBuf>,
    /// The pgbench binary for the raw INSERT ceiling (default: `pgbench` on PATH); without it
    /// the raw column is left out.
    #[arg(long, env = "WARDLE_BENCH_PGBENCH")]
    pgbench: Option<PathBuf>,
    /// Seconds per create-throughput cell (one peer at one concurrency).
    #[arg(long, default_value_t = 5)]
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
    /// Watchers of the wardle-vs-Go watch comparison (each server watched and written itself).
    #[arg(long, default_value_t = 100)]
    peer_watchers: usize,
    /// Concurrent watchers on the second wardle replica (cross-replica watch latency).
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Creates written while the watchers listen.
    #[arg(long, default_value_t = 200)]
    watch_events: usize,
    /// Pace of those creates, per second (latency under a steady load, not at saturation).
    #[arg(long, default_value_t = 20.0)]
    watch_rate: f64,
    /// Skip the watch sections.
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

/// What every section needs: the wardle replica on Postgres, a pool on its database, the
/// Postgres cluster's root process (for CPU figures) and the clock tick.
struct Bench<'a> {
    args: &'a Args,
    server_bin: &'a Path,
    tmp: &'a Path,
    db_url: &'a str,
    pool: sqlx::PgPool,
    postmaster: Option<u32>,
    tick: f64,
}

async fn run(args: &Args, server_bin: &Path, tmp: &Path, db_url: &str) -> anyhow::Result<()> {
    let mut rep = Report::default();
    machine_header(&mut rep, db_url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(db_url)
        .await?;
    let pg_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    let b = Bench {
        args,
        server_bin,
        tmp,
        db_url,
        pool,
        // The postmaster is every backend's parent: its tree is this Postgres cluster's CPU.
        postmaster: proc_stat(pg_pid as u32).map(|s| s.ppid),
        tick: clock_ticks(),
    };
    let mut a = b
        .wardle(WARDLE_PG, "replica-a", db_url, b.postmaster)
        .await?;
    let sqlite_url = format!("sqlite://{}?mode=rwc", tmp.join("wardle.db").display());
    let sqlite = b.wardle(WARDLE_SQLITE, "sqlite", &sqlite_url, None).await?;
    let go = match &args.go_peers {
        Some(bins) => Some(Server::go(bins, &tmp.join("go"), &a.dir).await?),
        None => None,
    };
    let object = stored_object(&b, &a).await?;
    let cells = creates_section(&mut rep, &b, &[&a, &sqlite], go.as_ref(), &object).await?;
    ratios(&mut rep, &cells, &args.clients);
    drop(sqlite);
    reads_section(&mut rep, &b, &a, go.as_ref()).await?;
    if args.skip_watch {
        rep.line("");
        rep.line("== Watch: skipped (--skip-watch) ==");
    } else {
        peer_watch_section(&mut rep, &b, &a, go.as_ref()).await?;
    }
    drop(go);
    let budget_mb = memory_section(&mut rep, &b, &mut a).await?;
    if !args.skip_watch {
        let replica_b = b
            .wardle("wardle replica B", "replica-b", db_url, b.postmaster)
            .await?;
        replica_watch_section(&mut rep, &b, &a, &replica_b, budget_mb).await?;
    }
    println!("\n==================== wardle-bench results ====================");
    print!("{}", rep.out);
    Ok(())
}

impl Bench<'_> {
    /// A wardle-apiserver labelled `name` with its cert dir in `tmp/<dir>`, storing in `db_url`.
    async fn wardle(
        &self,
        name: &'static str,
        dir: &str,
        db_url: &str,
        store_pid: Option<u32>,
    ) -> anyhow::Result<Server> {
        let dir = self.tmp.join(dir);
        std::fs::create_dir_all(&dir)?;
        Server::wardle(name, self.server_bin, &dir, db_url, store_pid).await
    }

    fn cpu(&self, s: &Server) -> CpuSnap {
        CpuSnap::take(s.pid, s.store_pid)
    }
}

/// One create through the server gives the exact JSON it stores; the raw INSERTs insert that.
async fn stored_object(b: &Bench<'_>, a: &Server) -> anyhow::Result<String> {
    let (st, body) = post_flunder(&a.client, "bench-create", "warmup").await?;
    if st != StatusCode::CREATED {
        bail!(
            "warm-up create failed: {st} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let stored: String =
        sqlx::query_scalar("SELECT object::text FROM objects WHERE resource = 'flunders' LIMIT 1")
            .fetch_one(&b.pool)
            .await?;
    sqlx::raw_sql(
        "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, name text NOT NULL, object json NOT NULL)",
    )
    .execute(&b.pool)
    .await?;
    Ok(stored)
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
        load_average()
    ));
    rep.line(format!("postgres: {version} ({})", settings.trim_end()));
    rep.line("client  : this process, on the same machine (its CPU is shown where it matters)");
    Ok(())
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg ("?" without /proc).
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "?".into());
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
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
// Creates: every peer at every concurrency, then the ratios.

/// The peers of the create table, in print order.
const WARDLE_PG: &str = "wardle/Postgres";
const WARDLE_SQLITE: &str = "wardle/SQLite";
const GO_ETCD: &str = "Go/etcd";
const RAW_INSERT: &str = "raw INSERT (pgbench)";

/// One peer at one concurrency.
struct Cell {
    peer: &'static str,
    clients: usize,
    rate: f64,
}

/// Each concurrency level: every server, then pgbench, for `--seconds` each; one line per cell.
async fn creates_section(
    rep: &mut Report,
    b: &Bench<'_>,
    servers: &[&Server; 2],
    go: Option<&Server>,
    object: &str,
) -> anyhow::Result<Vec<Cell>> {
    rep.line("");
    rep.line(format!(
        "== Creates/s: POST a v1alpha1 flunder over HTTPS keep-alive with a client cert (same load client for every server); raw = pgbench single-row INSERT of the same {}-byte JSON into the same Postgres (autocommit); {} s per cell ==",
        object.len(),
        b.args.seconds
    ));
    rep.line(format!(
        "{:>7} | {:<20} | {:>8} {:>8} {:>8} {:>5} | {:<18} | {}",
        "clients", "peer", "ops/s", "p50 ms", "p99 ms", "errs", "cores srv/db/cli", "load1"
    ));
    let pgbench = b.args.pgbench.clone().or_else(|| which("pgbench"));
    let dur = Duration::from_secs(b.args.seconds);
    let mut cells = Vec::new();
    for &c in &b.args.clients {
        let mut targets: Vec<&Server> = servers.to_vec();
        targets.extend(go);
        for s in targets {
            let conns = create_conns(&s.kubeconfig, c).await?;
            let op = http_create_op(conns, "bench-create", &format!("c{c}"));
            let cpu0 = b.cpu(s);
            let run = load(c, Stop::After(dur), op).await;
            let cpu = b.cpu(s).since(&cpu0, b.tick, run.elapsed);
            cells.push(cell_line(rep, s.name, c, &run, &cpu));
        }
        if let Some(pgbench) = &pgbench {
            let snap = || CpuSnap::take(0, b.postmaster);
            let cpu0 = snap();
            let dir = b.tmp.join(format!("pgbench-{c}"));
            let run = pgbench_inserts(pgbench, b.db_url, object, c, b.args.seconds, &dir).await;
            let cpu = snap().since(&cpu0, b.tick, run.elapsed);
            cells.push(cell_line(rep, RAW_INSERT, c, &run, &cpu));
        }
    }
    rep.line("cores = CPU s per wall s of the server / its store (Postgres cluster or etcd; SQLite is in the server) / this client and pgbench");
    if pgbench.is_none() {
        rep.line("raw INSERT: skipped (no pgbench; pass --pgbench or put it on PATH)");
    }
    if go.is_none() {
        rep.line("Go/etcd: skipped (no --go-peers; run scripts/go-peers.sh)");
    }
    Ok(cells)
}

fn cell_line(rep: &mut Report, peer: &'static str, c: usize, run: &Run, cpu: &str) -> Cell {
    rep.line(format!(
        "{:>7} | {:<20} | {:>8.0} {:>8.2} {:>8.2} {:>5} | {:<18} | {}",
        c,
        peer,
        run.rate(),
        run.pct_ms(0.50),
        run.pct_ms(0.99),
        run.errors,
        cpu,
        load_average().split_whitespace().next().unwrap_or("?")
    ));
    if let Some(e) = &run.first_error {
        rep.line(format!("        first {peer} error: {e}"));
    }
    Cell {
        peer,
        clients: c,
        rate: run.rate(),
    }
}

/// wardle ÷ Go and wardle ÷ raw INSERT for both engines, per concurrency ("-" where a peer
/// did not run).
fn ratios(rep: &mut Report, cells: &[Cell], levels: &[usize]) {
    let rate = |peer: &str, c: usize| {
        cells
            .iter()
            .find(|x| x.peer == peer && x.clients == c)
            .map(|x| x.rate)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    rep.line("");
    rep.line(format!(
        "== Ratios (same run; load average now {}) ==",
        load_average()
    ));
    rep.line(format!(
        "{:>7} | {:>12} {:>12} | {:>12} {:>12}",
        "clients", "wardle/PG÷Go", "wardle/PG÷raw", "SQLite÷Go", "SQLite÷raw"
    ));
    for &c in levels {
        let (pg, sq) = (rate(WARDLE_PG, c), rate(WARDLE_SQLITE, c));
        let (go, raw) = (rate(GO_ETCD, c), rate(RAW_INSERT, c));
        rep.line(format!(
            "{:>7} | {:>12} {:>12} | {:>12} {:>12}",
            c,
            ratio(pg, go),
            ratio(pg, raw),
            ratio(sq, go),
            ratio(sq, raw)
        ));
    }
    rep.line("targets (issue 13): wardle/PG÷Go >= 1.5 at 1 client and >= 3 at 32; wardle/PG÷raw >= 0.5 at 32");
}

/// pgbench with `clients` connections inserting `object` for `seconds`, one row per
/// transaction; latencies come from its per-transaction log (`--log`, microseconds).
async fn pgbench_inserts(
    pgbench: &Path,
    db_url: &str,
    object: &str,
    clients: usize,
    seconds: u64,
    dir: &Path,
) -> Run {
    let failed = |e: String| Run {
        ops: 0,
        errors: 1,
        elapsed: Duration::from_secs(seconds),
        lat: Vec::new(),
        first_error: Some(e),
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return failed(e.to_string());
    }
    let script = dir.join("insert.sql");
    let sql = "\\set n random(1, 2000000000)\nINSERT INTO bench_raw (name, object) VALUES (:n, CAST(:obj AS json));\n";
    if let Err(e) = std::fs::write(&script, sql) {
        return failed(e.to_string());
    }
    let threads = clients.min(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut cmd = tokio::process::Command::new(pgbench);
    cmd.current_dir(dir)
        .args(["-n", "-M", "prepared", "--log", "--log-prefix=tx"])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg("-D")
        .arg(format!("obj={object}"))
        .arg(db_url);
    let out = match cmd.output().await {
        Ok(o) => o,
        Err(e) => return failed(format!("{}: {e}", pgbench.display())),
    };
    if !out.status.success() {
        return failed(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let (lat, errors) = pgbench_log(dir);
    Run {
        ops: lat.len(),
        errors,
        elapsed: Duration::from_secs(seconds),
        lat,
        first_error: None,
    }
}

/// Latencies of the transactions in pgbench's logs (`tx.*` in `dir`): the third field of each
/// line, in microseconds; a non-numeric one (a failed transaction) counts as an error.
fn pgbench_log(dir: &Path) -> (Vec<Duration>, usize) {
    let mut lat = Vec::new();
    let mut errors = 0;
    let files = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for f in files.filter(|f| f.file_name().to_string_lossy().starts_with("tx.")) {
        let text = std::fs::read_to_string(f.path()).unwrap_or_default();
        for line in text.lines() {
            match line.split_whitespace().nth(2).map(str::parse::<u64>) {
                Some(Ok(us)) => lat.push(Duration::from_micros(us)),
                _ => errors += 1,
            }
        }
    }
    (lat, errors)
}

/// The first `name` on PATH that is a file.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// Reads, memory and startup.

/// GET one and LIST of `list_size` in one namespace, wardle and (when running) Go, then the
/// same rows by SQL.
async fn reads_section(
    rep: &mut Report,
    b: &Bench<'_>,
    a: &Server,
    go: Option<&Server>,
) -> anyhow::Result<()> {
    rep.line("");
    rep.line(format!(
        "== Reads: a namespace with {} flunders (GET and LIST one after another) ==",
        b.args.list_size
    ));
    let mut wardle_list = f64::NAN;
    for s in std::iter::once(a).chain(go) {
        let list_p50 = reads_of(rep, b, s).await?;
        if s.name == WARDLE_PG {
            wardle_list = list_p50;
        }
    }
    let ns = "bench-list";
    let mut raw = Vec::new();
    let t = Instant::now();
    while raw.len() < 50 && t.elapsed() < Duration::from_secs(20) {
        let t1 = Instant::now();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT object::text FROM objects WHERE resource = 'flunders' AND namespace = $1 ORDER BY name",
        )
        .bind(ns)
        .fetch_all(&b.pool)
        .await?;
        std::hint::black_box(rows);
        raw.push(t1.elapsed().as_secs_f64());
    }
    let raw_p50 = pct_f(&mut raw, 0.50) * 1e3;
    rep.line(format!(
        "baseline SELECT of wardle's rows (sqlx): p50 {raw_p50:>8.2} ms  p99 {:>8.2} ms  -> wardle LIST/SELECT p50 ratio {:.1}",
        pct_f(&mut raw, 0.99) * 1e3,
        wardle_list / raw_p50.max(1e-9)
    ));
    rep.line("target: LIST of 10k <= 50 ms");
    Ok(())
}

/// Fill `bench-list` on `s`, then serial GETs and LISTs; returns the LIST p50 in ms.
async fn reads_of(rep: &mut Report, b: &Bench<'_>, s: &Server) -> anyhow::Result<f64> {
    let (ns, fill_c) = ("bench-list", 32);
    let t = Instant::now();
    let conns = create_conns(&s.kubeconfig, fill_c).await?;
    let op = http_create_op(conns, ns, "l");
    let f = load(fill_c, Stop::Count(b.args.list_size), op).await;
    rep.line(format!(
        "{}: filled in {:.1} s at {:.0}/s, {} errors",
        s.name,
        t.elapsed().as_secs_f64(),
        f.rate(),
        f.errors
    ));
    let get_path = format!("{GROUP_VERSION}/namespaces/{ns}/flunders/l-0");
    let cpu0 = b.cpu(s);
    let g = serial(&s.client, &get_path, 2000, Duration::from_secs(10)).await?;
    let cpu = b.cpu(s).since(&cpu0, b.tick, g.elapsed);
    rep.line(format!(
        "  GET one flunder      : p50 {:>8.2} ms  p99 {:>8.2} ms  ({} requests; cores srv/db/cli {cpu})",
        g.pct_ms(0.50),
        g.pct_ms(0.99),
        g.ops
    ));
    let list_path = format!("{GROUP_VERSION}/namespaces/{ns}/flunders");
    let (st, body) = send(&s.client, Method::GET, &list_path, None).await?;
    let items = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .unwrap_or(0);
    let cpu0 = b.cpu(s);
    let l = serial(&s.client, &list_path, 50, Duration::from_secs(20)).await?;
    let cpu = b.cpu(s).since(&cpu0, b.tick, l.elapsed);
    rep.line(format!(
        "  LIST {:>6} flunders: p50 {:>8.2} ms  p99 {:>8.2} ms  ({} requests; {items} items, {:.1} MB, status {}; cores {cpu})",
        b.args.list_size,
        l.pct_ms(0.50),
        l.pct_ms(0.99),
        l.ops,
        body.len() as f64 / 1e6,
        st.as_u16()
    ));
    Ok(l.pct_ms(0.50))
}

/// RSS after N flunders, the cached JSON's size, restart time; returns the RSS budget in MB.
async fn memory_section(rep: &mut Report, b: &Bench<'_>, a: &mut Server) -> anyhow::Result<f64> {
    let args = b.args;
    let target = args
        .objects
        .unwrap_or(if args.big { 100_000 } else { 20_000 });
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM objects WHERE resource = 'flunders'")
        .fetch_one(&b.pool)
        .await?;
    let missing = target.saturating_sub(have as usize);
    let t = Instant::now();
    if missing > 0 {
        let conns = create_conns(&a.kubeconfig, 32).await?;
        let op = http_create_op(conns, "bench-fill", "f");
        load(32, Stop::Count(missing), op).await;
    }
    let fill_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (count, json_bytes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(length(object::text)), 0)::bigint FROM objects WHERE resource = 'flunders'",
    )
    .fetch_one(&b.pool)
    .await?;
    let rss_a = vm_rss(a.pid);
    rep.line("");
    let how = if args.big || args.objects.is_some() {
        "as asked"
    } else {
        "default target 20k, more if the create runs made more; --big for 100k"
    };
    rep.line(format!(
        "== Memory and startup with {count} flunders ({how}; filled {missing} in {fill_s:.1} s) =="
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
    *a = b
        .wardle(WARDLE_PG, "replica-a", b.db_url, b.postmaster)
        .await?;
    rep.line(format!(
        "restart: start -> /readyz 200          : {:.2} s",
        a.startup.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    rep.line(format!(
        "RSS after restart (idle)               : {}",
        fmt_rss(vm_rss(a.pid), budget_mb)
    ));
    Ok(budget_mb)
}

// ---------------------------------------------------------------------------------------------
// Watch latency.

/// wardle and Go each watched by `--peer-watchers` clients while the same server takes paced
/// creates: the Done-when comparison of issue 13.
async fn peer_watch_section(
    rep: &mut Report,
    b: &Bench<'_>,
    a: &Server,
    go: Option<&Server>,
) -> anyhow::Result<()> {
    let n = b.args.peer_watchers;
    rep.line("");
    rep.line(format!(
        "== Watch, wardle vs Go: {n} watchers on each server while it takes {} creates at {}/s ==",
        b.args.watch_events, b.args.watch_rate
    ));
    rep.line("sent = POST sent, answered = POST response; the commit lies between the two");
    for s in std::iter::once(a).chain(go) {
        match watch_run(b.args, s, s, "bench-peer-watch", n).await? {
            Ok(w) => watch_lines(rep, s.name, &w, None),
            Err(skipped) => rep.line(format!("{}: skipped: {skipped}", s.name)),
        }
    }
    Ok(())
}

/// Watchers on replica B while replica A takes the creates: the event crosses Postgres.
async fn replica_watch_section(
    rep: &mut Report,
    b: &Bench<'_>,
    a: &Server,
    replica_b: &Server,
    budget_mb: f64,
) -> anyhow::Result<()> {
    let n = b.args.watchers;
    let rss_before = vm_rss(replica_b.pid);
    rep.line("");
    rep.line(format!(
        "== Watch across replicas: {n} watchers on replica B (started in {:.2} s), {} creates through replica A at {}/s ==",
        replica_b.startup.as_secs_f64(),
        b.args.watch_events,
        b.args.watch_rate
    ));
    let w = match watch_run(b.args, replica_b, a, "bench-watch", n).await? {
        Ok(w) => w,
        Err(skipped) => {
            rep.line(format!("skipped: {skipped}"));
            return Ok(());
        }
    };
    let rvs: Vec<i64> = w.written.keys().copied().collect();
    let committed: HashMap<i64, f64> = sqlx::query_as::<_, (i64, f64)>(
        "SELECT rv, extract(epoch FROM committed_at)::float8 FROM events WHERE rv = ANY($1)",
    )
    .bind(&rvs)
    .fetch_all(&b.pool)
    .await?
    .into_iter()
    .collect();
    watch_lines(rep, "wardle A -> B", &w, Some(&committed));
    rep.line(format!(
        "RSS of replica B: before watchers {}, with watchers {}",
        fmt_rss(rss_before, budget_mb),
        fmt_rss(w.rss_watching, budget_mb)
    ));
    rep.line("target: watch p99 <= 50 ms across replicas");
    Ok(())
}

/// One watch measurement: who saw what, when.
struct WatchRun {
    watchers: usize,
    connected: usize,
    setup_s: f64,
    /// resourceVersion -> (POST sent, POST answered), Unix seconds.
    written: HashMap<i64, (f64, f64)>,
    write_errors: usize,
    /// (resourceVersion, arrival) of every event every watcher saw.
    seen: Vec<(i64, f64)>,
    /// Watchers that saw every written event.
    complete: usize,
    rss_watching: Option<u64>,
}

/// `n` watchers on `watched` (from the current resourceVersion), then paced creates through
/// `writer`. `Ok(Err(reason))` when the server cannot be watched.
async fn watch_run(
    args: &Args,
    watched: &Server,
    writer: &Server,
    ns: &str,
    n: usize,
) -> anyhow::Result<Result<WatchRun, String>> {
    let watch_path = match watch_path(watched, ns).await? {
        Ok(p) => p,
        Err(skipped) => return Ok(Err(skipped)),
    };
    let want = args.watch_events;
    let t = Instant::now();
    let watchers = Watchers::open(&watched.kubeconfig, &watch_path, n, want).await?;
    let connected = watchers.wait_connected(n).await;
    let setup_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_watching = vm_rss(watched.pid);
    let client = make_client(&writer.kubeconfig).await?;
    let (written, write_errors) = paced_creates(&client, ns, want, args.watch_rate).await;
    let (seen, complete) = watchers.collect(written.len()).await;
    Ok(Ok(WatchRun {
        watchers: n,
        connected,
        setup_s,
        written,
        write_errors,
        seen,
        complete,
        rss_watching,
    }))
}

/// The watch URL from the namespace's current resourceVersion, after checking that a watch
/// gets its response headers (`Err(reason)` otherwise).
async fn watch_path(s: &Server, ns: &str) -> anyhow::Result<Result<String, String>> {
    let path = format!("{GROUP_VERSION}/namespaces/{ns}/flunders");
    let (st, body) = send(&s.client, Method::GET, &format!("{path}?limit=1"), None).await?;
    let rv = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        })
        .ok_or_else(|| {
            anyhow!(
                "list on {}: {st} {}",
                s.name,
                String::from_utf8_lossy(&body)
            )
        })?;
    let watch_path = format!("{path}?watch=true&resourceVersion={rv}");
    let probe = tokio::time::timeout(
        Duration::from_secs(10),
        s.client.send(request(Method::GET, &watch_path, None)?),
    )
    .await;
    Ok(match probe {
        Ok(Ok(resp)) if resp.status() == StatusCode::OK => Ok(watch_path),
        Ok(Ok(resp)) => Err(format!("the server answers a watch with {}", resp.status())),
        Ok(Err(e)) => Err(format!("watch request failed: {e}")),
        Err(_) => Err("no response headers to a watch within 10 s".into()),
    })
}

/// `want` creates one every 1/`rate` s; returns each created object's resourceVersion with the
/// Unix times its POST was sent and answered, and the number of failed creates.
async fn paced_creates(
    client: &kube::Client,
    ns: &str,
    want: usize,
    rate: f64,
) -> (HashMap<i64, (f64, f64)>, usize) {
    let mut written = HashMap::new();
    let mut errors = 0usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = Instant::now();
    for i in 0..want {
        tokio::time::sleep_until((start + gap * i as u32).into()).await;
        let sent = unix_now();
        match post_flunder(client, ns, &format!("w-{i}")).await {
            Ok((StatusCode::CREATED, body)) => {
                let answered = unix_now();
                let rv = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["metadata"]["resourceVersion"].as_str()?.parse().ok());
                match rv {
                    Some(rv) => {
                        written.insert(rv, (sent, answered));
                    }
                    None => errors += 1,
                }
            }
            _ => errors += 1,
        }
    }
    (written, errors)
}

fn watch_lines(rep: &mut Report, name: &str, w: &WatchRun, committed: Option<&HashMap<i64, f64>>) {
    let (mut from_sent, mut from_answer, mut from_commit) = (Vec::new(), Vec::new(), Vec::new());
    for (rv, at) in &w.seen {
        if let Some((sent, answered)) = w.written.get(rv) {
            from_sent.push(at - sent);
            from_answer.push(at - answered);
        }
        if let Some(c) = committed.and_then(|c| c.get(rv)) {
            from_commit.push(at - c);
        }
    }
    rep.line(format!(
        "{name}: {}/{} watchers connected in {:.1} s; events delivered {}/{}; watchers that saw every event {}; write errors {}; load1 {}",
        w.connected,
        w.watchers,
        w.setup_s,
        from_sent.len(),
        w.written.len() * w.connected,
        w.complete,
        w.write_errors,
        load_average().split_whitespace().next().unwrap_or("?")
    ));
    let mut quantiles = |label: &str, v: &mut Vec<f64>| {
        rep.line(format!(
            "  {label:<38}: p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            pct_f(v, 0.50) * 1e3,
            pct_f(v, 0.99) * 1e3,
            pct_f(v, 1.0) * 1e3
        ))
    };
    quantiles("POST sent -> watcher (upper bound)", &mut from_sent);
    quantiles("POST answered -> watcher (lower bound)", &mut from_answer);
    if committed.is_some() {
        quantiles("events.committed_at -> watcher", &mut from_commit);
        rep.line("  (committed_at is taken inside the writing transaction, before COMMIT)");
    }
}

/// (resourceVersion, Unix arrival time) of the events one watcher saw, in order.
type Arrivals = Vec<(i64, f64)>;

/// The watcher tasks of one measurement and their shared counters.
struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Arrivals>>>,
    ready: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Watchers {
    async fn open(kubeconfig: &Path, path: &str, n: usize, want: usize) -> anyhow::Result<Self> {
        // A few clients so connections spread over several hyper pools (one connection per stream).
        let clients = make_clients(kubeconfig, n.div_ceil(100).max(1)).await?;
        let w = Watchers {
            tasks: Vec::with_capacity(n),
            ready: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicUsize::new(0)),
            done: Arc::new(AtomicBool::new(false)),
        };
        let gate = Arc::new(tokio::sync::Semaphore::new(50));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let client = clients[i % clients.len()].clone();
            let (ready, failed) = (w.ready.clone(), w.failed.clone());
            let (done, gate, path) = (w.done.clone(), gate.clone(), path.to_string());
            tasks.push(tokio::spawn(async move {
                watcher(client, path, want, ready, failed, done, gate).await
            }));
        }
        Ok(Watchers { tasks, ..w })
    }

    /// Waits (up to 120 s) until every watcher has its response headers or failed.
    async fn wait_connected(&self, n: usize) -> usize {
        let t = Instant::now();
        while self.ready.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) < n
            && t.elapsed() < Duration::from_secs(120)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.ready.load(Ordering::Relaxed)
    }

    /// Lets stragglers arrive (up to 30 s), stops the watchers, and returns every (rv, arrival)
    /// with the number of watchers that saw at least `written` events.
    async fn collect(self, written: usize) -> (Vec<(i64, f64)>, usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !self.tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.done.store(true, Ordering::Relaxed);
        let mut seen = Vec::new();
        let mut complete = 0usize;
        for t in self.tasks {
            if let Ok(Ok(Ok(v))) = tokio::time::timeout(Duration::from_secs(5), t).await {
                complete += usize::from(v.len() >= written);
                seen.extend(v);
            }
        }
        (seen, complete)
    }
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
) -> anyhow::Result<Arrivals> {
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

fn http_create_op(conns: Vec<CreateConn>, ns: &str, prefix: &str) -> Op {
    let conns: Arc<Vec<tokio::sync::Mutex<CreateConn>>> =
        Arc::new(conns.into_iter().map(tokio::sync::Mutex::new).collect());
    let path: Arc<str> = format!("{GROUP_VERSION}/namespaces/{ns}/flunders").into();
    let (ns, prefix) = (ns.to_string(), prefix.to_string());
    Arc::new(move |w, i| {
        let (conns, path) = (conns.clone(), path.clone());
        let body = serde_json::to_vec(&flunder(&ns, &format!("{prefix}-{i}")));
        Box::pin(async move {
            let body = body.map_err(|e| e.to_string())?;
            // Worker w is the only user of connection w: the lock is never contended.
            let mut conn = conns[w % conns.len()].lock().await;
            match conn.post(&path, body).await {
                Ok((StatusCode::CREATED, _)) => Ok(()),
                Ok((st, body)) => Err(format!("{st}: {}", String::from_utf8_lossy(&body))),
                Err(e) => Err(format!("{e:#}")),
            }
        })
    })
}

type TlsConn = hyper::client::conn::http1::Connection<
    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    http_body_util::Full<Bytes>,
>;

/// One load worker's keep-alive HTTPS connection (HTTP/1.1, the kubeconfig's client
/// certificate), driven inside the worker's own task. kube::Client would pass every request
/// through a tower Buffer task, hyper-util's pool and a connection task; on 2 shared cores those
/// hops took CPU the servers under test then lacked (the load client's CPU per create at 32
/// clients: ~22-26 us through kube::Client, ~17-19 us this way). The same connection type
/// drives every peer.
struct CreateConn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    conn: TlsConn,
    /// `host:port` for the Host header.
    authority: String,
}

impl CreateConn {
    async fn open(kubeconfig: &Path) -> anyhow::Result<CreateConn> {
        use kube::client::ConfigExt;
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let tls = Arc::new(cfg.rustls_client_config()?);
        let host = cfg
            .cluster_url
            .host()
            .context("server URL without a host")?;
        let port = cfg.cluster_url.port_u16().unwrap_or(443);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls_pki_types::ServerName::try_from(host.clone())?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        let authority = format!("{}:{port}", cfg.cluster_url.host().unwrap_or_default());
        Ok(CreateConn {
            sender,
            conn,
            authority,
        })
    }

    /// POST `body` (JSON) to `path`: the status and the whole response body.
    async fn post(&mut self, path: &str, body: Vec<u8>) -> anyhow::Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body)))?;
        let resp = drive(&mut self.conn, self.sender.send_request(req)).await??;
        let status = resp.status();
        let body = drive(&mut self.conn, resp.into_body().collect()).await??;
        Ok((status, body.to_bytes()))
    }
}

/// Polls `work` while the connection it needs makes progress in the same task; the
/// connection ending first is an error.
async fn drive<F: std::future::Future>(conn: &mut TlsConn, work: F) -> anyhow::Result<F::Output> {
    let work = std::pin::pin!(work);
    match futures::future::select(work, conn).await {
        futures::future::Either::Left((out, _)) => Ok(out),
        futures::future::Either::Right((end, _)) => {
            Err(anyhow!("connection ended: {:?}", end.err()))
        }
    }
}

/// `n` connections for `n` load workers.
async fn create_conns(kubeconfig: &Path, n: usize) -> anyhow::Result<Vec<CreateConn>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(CreateConn::open(kubeconfig).await?);
    }
    Ok(out)
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

/// An API server under test (wardle, or the Go sample-apiserver with its etcd) and a client.
struct Server {
    /// The peer's label in the tables.
    name: &'static str,
    /// Its cert dir (wardle) or work dir (Go).
    dir: PathBuf,
    /// The processes, stopped last first (Go: the apiserver, then etcd).
    children: Vec<Child>,
    /// The API server's process.
    pid: u32,
    /// The store's root process for CPU figures: the postmaster or etcd; None for SQLite.
    store_pid: Option<u32>,
    kubeconfig: PathBuf,
    client: kube::Client,
    /// Spawn -> first 200 from /readyz.
    startup: Duration,
}

impl Server {
    async fn wardle(
        name: &'static str,
        bin: &Path,
        dir: &Path,
        db_url: &str,
        store_pid: Option<u32>,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let t0 = Instant::now();
        let child = spawn(
            Command::new(bin)
                .args(["--secure-port", &port.to_string()])
                .args(["--bind-address", "127.0.0.1"])
                .arg("--cert-dir")
                .arg(dir)
                .args(["--database-url", db_url])
                // The server's own default filter, pinned so runs compare.
                .env("RUST_LOG", "info,sqlx=warn"),
            &dir.join(format!("wardle-{port}.log")),
        )?;
        let starting = Server::starting(name, dir, vec![child], store_pid);
        starting.ready(port, dir.join("admin.kubeconfig"), t0).await
    }

    /// The Go sample-apiserver on its own etcd, serving with wardle's serving certificate and
    /// trusting wardle's client CA (`wardle_dir`), so the same client and admin user talk to
    /// both. Its core-cluster kubeconfigs point at a closed port, as in tests/differential.rs:
    /// the admin is in system:masters, which delegated authorization allows without asking.
    async fn go(bins: &Path, dir: &Path, wardle_dir: &Path) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        let (etcd_port, peer_port, port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = spawn(
            Command::new(bins.join("etcd"))
                .arg(format!("--data-dir={}", dir.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=default={peer_url}"))
                .arg("--log-level=warn"),
            &dir.join("etcd.log"),
        )?;
        let store_pid = Some(etcd.id());
        let mut starting = Server::starting(GO_ETCD, dir, vec![etcd], store_pid);
        let pem = |f: &str| std::fs::read_to_string(wardle_dir.join(f));
        let (ca, cert, key) = (pem("ca.crt")?, pem("admin.crt")?, pem("admin.key")?);
        let kubeconfig = dir.join("go.kubeconfig");
        let url = format!("https://127.0.0.1:{port}");
        wardle::tls::pki::write_kubeconfig(&kubeconfig, &url, &ca, &cert, &key, "go")?;
        let nowhere = dir.join("nowhere.kubeconfig");
        wardle::tls::pki::write_kubeconfig(&nowhere, "https://127.0.0.1:1", &ca, &cert, &key, "x")?;
        let p = |p: PathBuf| p.display().to_string();
        let t0 = Instant::now();
        starting.children.push(spawn(
            Command::new(bins.join("sample-apiserver")).args([
                format!("--etcd-servers={etcd_url}"),
                format!("--secure-port={port}"),
                "--bind-address=127.0.0.1".into(),
                format!("--tls-cert-file={}", p(wardle_dir.join("apiserver.crt"))),
                format!(
                    "--tls-private-key-file={}",
                    p(wardle_dir.join("apiserver.key"))
                ),
                format!("--cert-dir={}", p(dir.join("go-certs"))),
                format!("--client-ca-file={}", p(wardle_dir.join("ca.crt"))),
                format!("--kubeconfig={}", p(nowhere.clone())),
                format!("--authentication-kubeconfig={}", p(nowhere.clone())),
                format!("--authorization-kubeconfig={}", p(nowhere)),
                "--authentication-skip-lookup".into(),
                "--enable-priority-and-fairness=false".into(),
                "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,\
                 ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy"
                    .into(),
            ]),
            &dir.join("sample-apiserver.log"),
        )?);
        starting.pid = starting.children[1].id();
        starting.ready(port, kubeconfig, t0).await
    }

    /// A server whose processes run but which has not answered yet.
    fn starting(
        name: &'static str,
        dir: &Path,
        children: Vec<Child>,
        store_pid: Option<u32>,
    ) -> Starting {
        let pid = children.last().map_or(0, Child::id);
        Starting {
            name,
            dir: dir.to_path_buf(),
            children,
            pid,
            store_pid,
        }
    }
}

/// [`Server`] before its first 200 from /readyz.
struct Starting {
    name: &'static str,
    dir: PathBuf,
    children: Vec<Child>,
    pid: u32,
    store_pid: Option<u32>,
}

impl Starting {
    /// Polls /readyz on `port` (up to 600 s; any process exiting is an error with the logs).
    async fn ready(
        mut self,
        port: u16,
        kubeconfig: PathBuf,
        t0: Instant,
    ) -> anyhow::Result<Server> {
        let deadline = t0 + Duration::from_secs(600);
        let mut client: Option<kube::Client> = None;
        loop {
            for c in &mut self.children {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!(
                        "{} exited ({status}); logs in {}",
                        self.name,
                        self.dir.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after 600 s; logs in {}",
                    self.name,
                    self.dir.display()
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
        let children = std::mem::take(&mut self.children);
        Ok(Server {
            name: self.name,
            dir: self.dir.clone(),
            children,
            pid: self.pid,
            store_pid: self.store_pid,
            kubeconfig,
            client: client.ok_or_else(|| anyhow!("no client"))?,
            startup,
        })
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        stop_all(&mut self.children);
    }
}

impl Server {
    fn stop(&mut self) {
        stop_all(&mut self.children);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM to each process, last first, then SIGKILL after 15 s.
fn stop_all(children: &mut Vec<Child>) {
    while let Some(mut c) = children.pop() {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Starts `cmd` with stdin and stdout closed and stderr into `log`.
fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))
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

/// CPU ticks used so far by the server, its store (the postmaster or etcd, with its live
/// children and the ones it reaped) and this process (with reaped children such as pgbench).
struct CpuSnap {
    server: Option<u64>,
    postgres: Option<u64>,
    bench: Option<u64>,
}

impl CpuSnap {
    fn take(server: u32, store: Option<u32>) -> CpuSnap {
        let postgres = store.and_then(|pm| {
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
            // Reaped children too: pgbench's CPU lands there once it exits.
            bench: proc_stat(std::process::id()).map(|s| s.own + s.children),
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
