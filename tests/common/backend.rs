//! One database to test storage-level code against (a SQLite temp file or a fresh database on
//! the throwaway Postgres), and a macro that runs a case on both.

#![allow(dead_code)]

use sqlx::Connection;
use wardle::storage::Storage;

/// Keeps a SQLite temp dir alive for the test's duration.
pub struct Backend {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("wardle.db").display()
        );
        Backend {
            url,
            _dir: Some(dir),
        }
    }

    pub fn postgres() -> Backend {
        Backend {
            url: super::postgres::fresh_database_url(),
            _dir: None,
        }
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

/// Runs each case as `<case>::sqlite` and `<case>::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$case(&$crate::common::backend::Backend::sqlite()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$case(&$crate::common::backend::Backend::postgres()).await;
            }
        }
    )*};
}
