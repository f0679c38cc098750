//! A throwaway Postgres for integration tests: `WARDLE_TEST_DATABASE_URL` if set, otherwise a
//! private server started from the machine's binaries (initdb/pg_ctl) in a temp dir on a free port,
//! once per test binary, run as an unprivileged user when the tests run as root (initdb refuses
//! root), and stopped by a watchdog once the test process is gone.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::Connection;

/// A server this process started (None when an external URL is used).
struct Local {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    /// `Some("nobody")` when running as root.
    run_as: Option<&'static str>,
}

struct Server {
    admin_url: String,
    local: Option<Local>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("WARDLE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server {
            admin_url: url,
            local: None,
        },
        _ => start_local(),
    })
}

/// URL of a database the tests may create databases with (superuser).
pub fn admin_url() -> String {
    server().admin_url.clone()
}

/// `url` with its user info (`user` or `user:password`) replaced by `user`.
pub fn with_user(url: &str, user: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{}{user}@{host}", &url[..scheme_end])
}

/// A new, empty database on the test server; every call gives a different one.
pub fn fresh_database_url() -> String {
    let admin = admin_url();
    let name = format!("wardle_test_{}", uuid::Uuid::new_v4().simple());
    run_sql(&admin, format!("CREATE DATABASE {name}"));
    with_database(&admin, &name)
}

/// An outage of one test database (`url`), without touching the shared server: new connections
/// are refused and open ones terminated, until [`allow_connections`]. Returns once those
/// backends are gone.
pub fn refuse_connections(url: &str) {
    let db = url.rsplit('/').next().expect("database name");
    run_sql(
        &admin_url(),
        format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"),
    );
    terminate_connections(url);
}

/// Ends every open connection to one test database (as a server restart or an operator's
/// `pg_terminate_backend` would) and returns once those backends are gone (a pooled connection
/// whose backend had not exited yet could still answer); new connections are still accepted.
pub fn terminate_connections(url: &str) {
    terminate_where(url, "true");
}

/// Ends only the writer's connection to one test database (the session whose last statement
/// called `wardle_apply_batch`), as [`terminate_connections`] does.
pub fn terminate_writer(url: &str) {
    terminate_where(url, "query LIKE '%wardle_apply_batch(%'");
}

fn terminate_where(url: &str, condition: &str) {
    let db = url.rsplit('/').next().expect("database name");
    run_sql(
        &admin_url(),
        format!(
            "DO $$ DECLARE victims int[]; BEGIN \
               SELECT array_agg(pid) INTO victims FROM pg_stat_activity \
                WHERE datname = '{db}' AND {condition}; \
               PERFORM pg_terminate_backend(v) FROM unnest(victims) v; \
               FOR i IN 1..1000 LOOP \
                 PERFORM pg_stat_clear_snapshot(); \
                 EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ANY(victims)); \
                 PERFORM pg_sleep(0.01); \
               END LOOP; END $$"
        ),
    );
}

/// Ends [`refuse_connections`].
pub fn allow_connections(url: &str) {
    let db = url.rsplit('/').next().expect("database name");
    run_sql(
        &admin_url(),
        format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
    );
}

/// Runs SQL on a URL from synchronous code (also from inside a tokio test: it uses its own thread).
pub fn run_sql(url: &str, sql: String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("connect to test postgres");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("run sql");
            let _ = conn.close().await;
        })
    })
    .join()
    .expect("sql thread");
}

/// Replaces the database name in a postgres URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// Stops the local server the hard way (like a crash), for fault tests.
pub fn stop_immediate() {
    let local = local();
    pg_ctl(local, &["stop", "-m", "immediate", "-w"]);
}

/// Starts the local server again after `stop_immediate`.
pub fn start() {
    let local = local();
    let ok = pg_ctl_start(local);
    assert!(
        ok,
        "restarting test postgres failed; log in {}",
        local.dir.display()
    );
}

/// Crash-restarts the local server (`pg_ctl restart -m immediate`).
pub fn restart_immediate() {
    stop_immediate();
    start();
}

fn local() -> &'static Local {
    server().local.as_ref().expect(
        "this helper needs the locally started test postgres (WARDLE_TEST_DATABASE_URL is set)",
    )
}

fn find_bin_dir() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("initdb"))
            .find(|p| p.is_file())
    });
    if let Some(initdb) = from_path {
        // Follow symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) so
        // pg_ctl and postgres come from the same installation.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = real.parent()
            && dir.join("pg_ctl").is_file()
        {
            return dir.to_path_buf();
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no Postgres binaries (initdb) found on PATH or in /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command(local_bin: &Path, run_as: Option<&str>, program: &str) -> Command {
    let exe = local_bin.join(program);
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

fn pg_ctl(local: &Local, args: &[&str]) -> bool {
    command(&local.bin, local.run_as, "pg_ctl")
        .arg("-D")
        .arg(&local.data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn pg_ctl_start(local: &Local) -> bool {
    let opts = format!(
        "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
        local.port,
        local.dir.display()
    );
    let log = local.dir.join("postgres.log");
    command(&local.bin, local.run_as, "pg_ctl")
        .arg("-D")
        .arg(&local.data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &opts, "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn start_local() -> Server {
    let bin = find_bin_dir();
    let run_as = is_root().then_some("nobody");
    let dir = std::env::temp_dir().join(format!(
        "wardle-pg-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create postgres temp dir");
    if let Some(user) = run_as {
        let ok = Command::new("chown")
            .arg("-R")
            .arg(user)
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "chown {} to {user} failed", dir.display());
    }
    let data = dir.join("data");
    let ok = command(&bin, run_as, "initdb")
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "initdb failed in {}", dir.display());

    // Another test binary may grab the same free port between our probe and the bind: retry.
    let mut local = Local {
        bin,
        dir,
        data,
        port: 0,
        run_as,
    };
    let started = (0..5).any(|_| {
        local.port = super::procs::free_port();
        pg_ctl_start(&local)
    });
    assert!(
        started,
        "could not start test postgres; see {}",
        local.dir.join("postgres.log").display()
    );

    // Watchdog: once this test process is gone, stop the server and remove its files.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas} {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runas = run_as
            .map(|u| format!("runuser -u {u} --"))
            .unwrap_or_default(),
        pg_ctl = local.bin.join("pg_ctl").display(),
        data = local.data.display(),
        dir = local.dir.display(),
    );
    {
        use std::os::unix::process::CommandExt;
        let mut watchdog = Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0) // not killed with the test's process group by a Ctrl-C
            .spawn()
            .expect("spawn postgres watchdog");
        // Reap it if it ever ends while we still run (it normally outlives this process).
        std::thread::spawn(move || watchdog.wait());
    }
    Server {
        admin_url: format!("postgres://postgres@127.0.0.1:{}/postgres", local.port),
        local: Some(local),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced() {
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
}
