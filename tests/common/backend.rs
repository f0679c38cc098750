//! One database to test storage-level code against (a SQLite temp file or a fresh database on
//! the throwaway Postgres); `engine_tests!` runs a case taking a `Backend` on both.

#![allow(dead_code)]

use super::Engine;
use sqlx::Connection;
use wardle::storage::Storage;

/// Keeps a SQLite temp dir alive for the test's duration.
pub struct Backend {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A fresh, empty database of `engine` (its SQLite file in a temp dir this value keeps).
    pub fn new(engine: Engine) -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        Backend {
            url: engine.fresh_url(dir.path()),
            _dir: Some(dir),
        }
    }

    pub fn sqlite() -> Backend {
        Backend::new(Engine::Sqlite)
    }

    pub fn postgres() -> Backend {
        Backend::new(Engine::Postgres)
    }

    pub fn is_pg(&self) -> bool {
        self.url.starts_with("postgres")
    }

    pub async fn open(&self) -> Storage {
        Storage::open(&self.url).await.expect("open storage")
    }

    /// Runs SQL on a connection of its own.
    pub async fn exec(&self, sql: &str) {
        exec_sql(&self.url, sql).await
    }
}

/// Run SQL (several statements allowed) on a new connection to `url`, either engine.
pub async fn exec_sql(url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.expect("pg connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("exec");
    } else {
        let mut c = sqlx::SqliteConnection::connect(url)
            .await
            .expect("sqlite connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("exec");
    }
}

/// What `engine_tests!` hands a storage-level case.
impl From<Engine> for Backend {
    fn from(engine: Engine) -> Backend {
        Backend::new(engine)
    }
}
