//! `wardle-apiserver report`: runs the named SQL queries of `reports/` (compiled into the binary)
//! against a wardle database, read-only, and prints the answer as a table, CSV or JSON. A report
//! is one `reports/<name>.sql` for both engines, or `reports/{postgres,sqlite}/<name>.sql` where
//! the engines' JSON functions differ; the first line (`-- …`) says what it answers.

use std::fmt::Write as _;
use std::str::FromStr;

use crate::storage::Engine;
use anyhow::{Context, bail};
use sqlx::{Column, Connection, Executor, Row, Statement, TypeInfo, ValueRef};

/// One report: its name and the SQL for each engine.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub name: &'static str,
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

impl Report {
    /// The first line's comment.
    pub fn description(&self) -> &'static str {
        self.postgres
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("--"))
            .map(str::trim)
            .unwrap_or("")
    }

    /// The SQL for `engine`.
    pub fn sql_for(&self, engine: Engine) -> &'static str {
        match engine {
            Engine::Postgres => self.postgres,
            Engine::Sqlite => self.sqlite,
        }
    }
}

/// A report whose SQL is the same on both engines.
macro_rules! shared {
    ($name:literal) => {
        Report {
            name: $name,
            postgres: include_str!(concat!("../reports/", $name, ".sql")),
            sqlite: include_str!(concat!("../reports/", $name, ".sql")),
        }
    };
}

/// A report with one SQL file per engine.
macro_rules! per_engine {
    ($name:literal) => {
        Report {
            name: $name,
            postgres: include_str!(concat!("../reports/postgres/", $name, ".sql")),
            sqlite: include_str!(concat!("../reports/sqlite/", $name, ".sql")),
        }
    };
}

/// Every report, in the order `report --list` shows them.
pub static REPORTS: &[Report] = &[
    shared!("flunders"),
    per_engine!("fischers"),
    shared!("flunders-per-namespace"),
    shared!("references"),
    shared!("dangling-references"),
    shared!("fischer-referrers"),
    shared!("banned-flunders"),
    shared!("change-history"),
    shared!("changes-by-user"),
    per_engine!("spec-changes"),
];

pub fn find(name: &str) -> Option<&'static Report> {
    REPORTS.iter().find(|r| r.name == name)
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Csv,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// The report to run (see --list).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,

    /// List the reports and what each answers.
    #[arg(long)]
    pub list: bool,

    /// The database: `postgres://…` (a read-only role is enough) or `sqlite://path`; without it,
    /// the server's default (the SQLite file in --cert-dir).
    #[arg(long, env = "WARDLE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// The server's --cert-dir, whose `wardle.db` is read when no --database-url is given.
    #[arg(long, default_value = ".wardle")]
    pub cert_dir: std::path::PathBuf,

    /// How to print the answer.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Datum {
    fn plain(&self) -> String {
        match self {
            Datum::Null => String::new(),
            Datum::Bool(b) => b.to_string(),
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => f.to_string(),
            Datum::Text(s) => s.clone(),
        }
    }

    fn json(&self) -> String {
        match self {
            Datum::Null => "null".into(),
            Datum::Bool(b) => b.to_string(),
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => {
                serde_json::Number::from_f64(*f).map_or_else(|| "null".into(), |n| n.to_string())
            }
            Datum::Text(s) => serde_json::Value::String(s.clone()).to_string(),
        }
    }
}

/// A query's answer: column names (also for an empty answer) and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Datum>>,
}

/// Prepares `sql` on `conn` (a connection of either engine), reads every row through `row`
/// (that engine's decoder) and closes the connection. A macro, as sqlx's connection, statement
/// and row types differ by engine.
macro_rules! read_table {
    ($conn:expr, $sql:expr, $row:path) => {{
        let mut conn = $conn;
        let stmt = (&mut conn).prepare($sql).await?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let rows = stmt.query().fetch_all(&mut conn).await?;
        let rows = rows.iter().map($row).collect::<anyhow::Result<_>>()?;
        conn.close().await?;
        Ok(Table { columns, rows })
    }};
}

/// Runs `sql` on a read-only connection to `url`.
pub async fn query(url: &str, sql: &str) -> anyhow::Result<Table> {
    let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_owned()));
    if Engine::of(url)? == Engine::Postgres {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?
            .application_name("wardle-report")
            .options([("default_transaction_read_only", "on")]);
        read_table!(
            sqlx::PgConnection::connect_with(&options).await?,
            sql,
            pg_row
        )
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .read_only(true);
        read_table!(
            sqlx::SqliteConnection::connect_with(&options).await?,
            sql,
            sqlite_row
        )
    }
}

/// Postgres sends typed binary values: decode by the column's type.
fn pg_row(row: &sqlx::postgres::PgRow) -> anyhow::Result<Vec<Datum>> {
    (0..row.len())
        .map(|i| {
            if row.try_get_raw(i)?.is_null() {
                return Ok(Datum::Null);
            }
            let column = &row.columns()[i];
            Ok(match column.type_info().name() {
                "BOOL" => Datum::Bool(row.try_get(i)?),
                "INT2" => Datum::Int(row.try_get::<i16, _>(i)?.into()),
                "INT4" => Datum::Int(row.try_get::<i32, _>(i)?.into()),
                "INT8" => Datum::Int(row.try_get(i)?),
                "FLOAT4" => Datum::Float(row.try_get::<f32, _>(i)?.into()),
                "FLOAT8" => Datum::Float(row.try_get(i)?),
                "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => Datum::Text(row.try_get(i)?),
                "JSON" | "JSONB" => {
                    Datum::Text(row.try_get::<serde_json::Value, _>(i)?.to_string())
                }
                other => bail!(
                    "column {:?} has type {other}; cast it to text (::text) in the query",
                    column.name()
                ),
            })
        })
        .collect()
}

/// SQLite values carry their own storage class.
fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Vec<Datum>> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Datum::Null);
            }
            let class = raw.type_info().name().to_string();
            Ok(match class.as_str() {
                "INTEGER" => Datum::Int(row.try_get(i)?),
                "REAL" => Datum::Float(row.try_get(i)?),
                "BLOB" => Datum::Text(format!("<{} bytes>", row.try_get::<Vec<u8>, _>(i)?.len())),
                _ => Datum::Text(row.try_get(i)?),
            })
        })
        .collect()
}

impl Table {
    /// Aligned columns with upper-case headers, like kubectl's tables.
    pub fn to_table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|d| match d {
                        Datum::Null => "<none>".into(),
                        other => other.plain().replace('\n', " "),
                    })
                    .collect()
            })
            .collect();
        let header: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&cells) {
            let mut line = String::new();
            for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}   ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV with a header row.
    pub fn to_csv(&self) -> String {
        fn field(s: &str) -> String {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        }
        let mut out = String::new();
        let line =
            |cells: Vec<String>| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
        out.push_str(&line(self.columns.clone()));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.iter().map(Datum::plain).collect()));
            out.push('\n');
        }
        out
    }

    /// A JSON array of objects whose keys keep the column order.
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (n, r) in self.rows.iter().enumerate() {
            out.push_str(if n == 0 { "\n  {" } else { ",\n  {" });
            for (i, (c, d)) in self.columns.iter().zip(r).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(
                    out,
                    "{}: {}",
                    serde_json::Value::String(c.clone()),
                    d.json()
                );
            }
            out.push('}');
        }
        out.push_str(if self.rows.is_empty() { "]\n" } else { "\n]\n" });
        out
    }

    pub fn render(&self, output: Output) -> String {
        match output {
            Output::Table => self.to_table(),
            Output::Csv => self.to_csv(),
            Output::Json => self.to_json(),
        }
    }
}

/// The `report` subcommand.
pub async fn main(args: ReportArgs) -> anyhow::Result<()> {
    if args.list {
        let width = REPORTS.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in REPORTS {
            println!("{:<width$}   {}", r.name, r.description());
        }
        return Ok(());
    }
    let name = args.name.as_deref().unwrap_or_default();
    let Some(report) = find(name) else {
        bail!("no report named {name:?}; `wardle-apiserver report --list` shows them")
    };
    let url = match args.database_url {
        Some(url) => url,
        None => {
            let file = args.cert_dir.join("wardle.db");
            if !file.exists() {
                bail!(
                    "no database at {} (the server's default); start the server first (`cargo run`), \
                     or name the database with --database-url or --cert-dir",
                    file.display()
                );
            }
            crate::storage::default_url(&args.cert_dir)
        }
    };
    let table = query(&url, report.sql_for(Engine::of(&url)?))
        .await
        .with_context(|| format!("running report {name}"))?;
    print!("{}", table.render(args.output));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_file_is_listed_and_described() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/reports");
        let mut on_disk = std::collections::BTreeSet::new();
        for sub in ["", "postgres", "sqlite"] {
            for e in std::fs::read_dir(format!("{dir}/{sub}")).expect("reports dir") {
                let path = e.expect("entry").path();
                if path.extension().is_some_and(|x| x == "sql") {
                    let stem = path
                        .file_stem()
                        .expect("stem")
                        .to_string_lossy()
                        .into_owned();
                    on_disk.insert(stem);
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            REPORTS.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(on_disk, listed);
        for r in REPORTS {
            assert!(!r.description().is_empty(), "{} has no description", r.name);
            assert_eq!(
                r.postgres.lines().next(),
                r.sqlite.lines().next(),
                "{}: both engines' files must start with the same description",
                r.name
            );
        }
    }

    #[test]
    fn renderings() {
        let t = Table {
            columns: vec!["name".into(), "n".into(), "note".into()],
            rows: vec![
                vec![Datum::Text("a,b".into()), Datum::Int(10), Datum::Null],
                vec![
                    Datum::Text("say \"hi\"".into()),
                    Datum::Bool(true),
                    Datum::Float(1.5),
                ],
            ],
        };
        assert_eq!(
            t.to_table(),
            "NAME       N      NOTE\na,b        10     <none>\nsay \"hi\"   true   1.5\n"
        );
        assert_eq!(
            t.to_csv(),
            "name,n,note\n\"a,b\",10,\n\"say \"\"hi\"\"\",true,1.5\n"
        );
        assert_eq!(
            t.to_json(),
            "[\n  {\"name\": \"a,b\", \"n\": 10, \"note\": null},\n  {\"name\": \"say \\\"hi\\\"\", \"n\": true, \"note\": 1.5}\n]\n"
        );
        let empty = Table {
            columns: vec!["x".into()],
            rows: vec![],
        };
        assert_eq!(empty.to_json(), "[]\n");
        assert_eq!(empty.to_table(), "X\n");
    }
}
