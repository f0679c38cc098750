//! README.md's `console` blocks, run as written against a fresh standalone server, so the README
//! cannot drift from what the commands print. In a block, a `$ ` line is a command (a trailing
//! `\` continues it) and the lines up to the next command are its expected output (stdout and
//! stderr together); a `...` line stands for any number of lines. The blocks run in order in one
//! directory, like a reader's shell: `.wardle/` is the server's --cert-dir (its default, on its
//! default SQLite database), `artifacts/` is the repository's, `wardle-apiserver` is on PATH and
//! `export` lines carry over. Volatile output is normalised: AGE values, runs of spaces and
//! blank lines.
//! The server listens on a free port rather than 8443; the kubeconfig it writes names that port.

mod common;

use common::procs::succeeded;
use common::server::Wardle;
use std::path::Path;
use std::process::{Command, Stdio};

const README: &str = include_str!("../README.md");

/// One command of a console block and the output shown under it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
}

/// The steps of every ```console block, in order.
fn console_steps(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut continuing = false;
    for line in readme.lines() {
        if !in_console {
            in_console = line.trim() == "```console";
            continue;
        }
        if line.trim() == "```" {
            in_console = false;
            continue;
        }
        if continuing {
            let step = steps.last_mut().expect("continued command");
            step.command.push('\n');
            step.command.push_str(line);
            continuing = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_string(),
                expected: Vec::new(),
            });
            continuing = command.ends_with('\\');
        } else {
            let step = steps.last_mut().expect("a console block starts with `$ `");
            step.expected.push(line.to_string());
        }
    }
    steps
}

/// kubectl's AGE values (`0s`, `5m3s`, `2d`): digits and unit letters, starting with a digit.
fn is_age(token: &str) -> bool {
    token.starts_with(|c: char| c.is_ascii_digit())
        && token.ends_with(|c: char| "smhdy".contains(c))
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || "smhdy".contains(c))
}

/// A line as compared: ages replaced, spaces collapsed, trailing space dropped.
fn normalise(line: &str) -> String {
    line.split_whitespace()
        .map(|t| if is_age(t) { "<age>" } else { t })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lines as compared, blank ones left out (kubectl pads with them; a README block cannot end
/// with them).
fn normalised_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines.map(normalise).filter(|l| !l.is_empty()).collect()
}

/// Whether `actual` matches `expected`, where an expected `...` matches any run of lines.
fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual.first() == Some(first) && matches(rest, &actual[1..]),
    }
}

#[test]
fn step_parsing_and_matching() {
    let steps = console_steps(
        "text\n```console\n$ a \\\n  b\nout 1\n...\n$ c\n```\n```sh\n$ not run\n```\n",
    );
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].command, "a \\\n  b");
    assert_eq!(steps[0].expected, vec!["out 1", "..."]);
    assert!(steps[1].expected.is_empty());
    let lines = |v: &[&str]| normalised_lines(v.iter().copied());
    let exp = lines(&["x   0s", "...", "z"]);
    assert!(matches(&exp, &lines(&["x 12m", "y", "  ", "y", "z"])));
    assert!(matches(&exp, &lines(&["x 3d", "z"])));
    assert!(!matches(&exp, &lines(&["x 1s", "z", "extra"])));
    assert!(!matches(&exp, &lines(&["x now", "z"])));
}

/// Relative links must point into the repository (a reader of a clone has nothing beside it).
#[test]
fn links_stay_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (i, _) in README.match_indices("](") {
        let target = &README[i + 2..];
        let target = &target[..target.find(')').expect("closed link")];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let path = target.split('#').next().unwrap_or_default();
        assert!(
            root.join(path).exists() && !path.starts_with(".."),
            "README links to {target}, which is not a file of the repository"
        );
    }
    assert!(
        !README.contains("../"),
        "README names a path outside the repository"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_console_blocks_run_as_written() {
    let steps = console_steps(README);
    assert!(steps.len() >= 10, "README lost its console blocks");
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts"),
        dir.join("artifacts"),
    )
    .expect("symlink artifacts");
    let cert_dir = dir.join(".wardle");
    std::fs::create_dir(&cert_dir).expect("cert dir");
    // The server's default database for --cert-dir .wardle.
    let db_url = wardle::storage::default_url(&cert_dir);
    let server = Wardle::start_with(&cert_dir, &db_url, &[]).await;

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut exports = String::new();
    for step in &steps {
        let script = format!("exec 2>&1\nset -o pipefail\n{exports}{}\n", step.command);
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(dir)
            .env("PATH", &path)
            .env("HOME", dir)
            .env("KUBECACHEDIR", dir.join("kubecache"))
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .env_remove("WARDLE_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let actual = normalised_lines(text.lines());
        let expected = normalised_lines(step.expected.iter().map(String::as_str));
        let shows_error = step.expected.iter().any(|l| l.starts_with("Error"));
        assert!(
            matches(&expected, &actual) && (out.status.success() || shows_error),
            "README command `{}` ({}) printed:\n{text}\nbut the README shows:\n{}\nserver log:\n{}",
            step.command,
            out.status,
            step.expected.join("\n"),
            server.logs()
        );
        if step.command.starts_with("export ") {
            exports.push_str(&step.command);
            exports.push('\n');
        }
    }
}

/// The ```sql blocks of the README, in order.
fn sql_blocks(readme: &str) -> Vec<String> {
    readme
        .split("```sql\n")
        .skip(1)
        .map(|rest| rest[..rest.find("```").expect("closed block")].to_string())
        .collect()
}

/// Runs `sql` (several statements) on `url`.
async fn try_sql(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// The read-only role recipe as the README tells it: the role made by a superuser, the grants by
/// the database owner wardle connects as, who is NOT a superuser and has no CREATEROLE. Then
/// `report` works as the reader, and the reader cannot write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_role_recipe_works_for_a_plain_database_owner() {
    let admin = common::postgres::admin_url();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (owner, db, reader) = (
        format!("owner_{id}"),
        format!("db_{id}"),
        format!("reader_{id}"),
    );
    // Two calls: CREATE DATABASE cannot share a transaction (a multi-statement string is one).
    for sql in [
        format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE"),
        format!("CREATE DATABASE {db} OWNER {owner}"),
    ] {
        try_sql(&admin, &sql).await.expect("owner and database");
    }
    let url_as = |user: &str| {
        common::postgres::with_database(&common::postgres::with_user(&admin, user), &db)
    };
    // wardle, connected as the owner, creates and migrates the schema.
    wardle::tls::server::install_crypto_provider();
    let storage = wardle::storage::Storage::open(&url_as(&owner))
        .await
        .expect("wardle migrates as the owner");
    storage.close().await;

    let blocks = sql_blocks(README);
    assert_eq!(blocks.len(), 2, "the recipe is two ```sql blocks");
    let recipe = |sql: &str| {
        sql.replace("wardle_reader", &reader)
            .replace("DATABASE wardle", &format!("DATABASE {db}"))
    };
    // The first part really needs more than ownership, as the README says.
    assert!(try_sql(&url_as(&owner), &recipe(&blocks[0])).await.is_err());
    // Roles are cluster-wide: any database of the superuser's will do.
    try_sql(&admin, &recipe(&blocks[0]))
        .await
        .expect("part 1 as a superuser");
    try_sql(&url_as(&owner), &recipe(&blocks[1]))
        .await
        .expect("part 2 as the database owner");

    let out = Command::new(env!("CARGO_BIN_EXE_wardle-apiserver"))
        .args(["report", "flunders", "--database-url", &url_as(&reader)])
        .output()
        .expect("run report");
    succeeded("report as the reader", &out);
    let write = try_sql(&url_as(&reader), "DELETE FROM objects").await;
    assert!(write.is_err(), "the reader must not write");
}
