//! Schema migrations: refinery's async traits implemented over sqlx connections, so the project
//! runs its migrations through the same driver stack as everything else (no second SQL driver).
//! refinery itself does no locking; the Postgres dialect holds an advisory lock around the run.

use refinery_core::traits::r#async::{AsyncQuery, AsyncTransaction};
use refinery_core::{AsyncMigrate, Migration};
use sqlx::{AssertSqlSafe, Connection, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod embedded_pg {
    refinery::embed_migrations!("migrations/postgres");
}
mod embedded_sqlite {
    refinery::embed_migrations!("migrations/sqlite");
}

/// The migration runner for Postgres (`migrations/postgres`).
pub(crate) fn postgres_runner() -> refinery::Runner {
    embedded_pg::migrations::runner()
}

/// The migration runner for SQLite (`migrations/sqlite`).
pub(crate) fn sqlite_runner() -> refinery::Runner {
    embedded_sqlite::migrations::runner()
}

/// The database was migrated by a later wardle release: it has a migration this release does not
/// know (refinery's `MissingVersion`). Changing `--database-url` is not the fix; running that
/// release (or a later one) is. Earlier releases' replicas that are already running keep working
/// during a rolling upgrade (each migration says how); one that starts again must be the newer.
#[derive(Debug)]
pub struct SchemaNewer {
    /// The first migration this release does not know, as `V<version>__<name>`.
    pub migration: String,
}

impl std::fmt::Display for SchemaNewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database's schema is newer than this wardle: it has migration {}, which a later \
             release applied and this one does not know; run that release or a later one",
            self.migration
        )
    }
}

impl std::error::Error for SchemaNewer {}

/// refinery's error, with a schema newer than this release told as [`SchemaNewer`].
pub(crate) fn migration_error(e: refinery::Error) -> anyhow::Error {
    match e.kind() {
        refinery::error::Kind::MissingVersion(m) => SchemaNewer {
            migration: format!("V{}__{}", m.version(), m.name()),
        }
        .into(),
        _ => e.into(),
    }
}

/// A borrowed sqlx connection that refinery can drive.
pub(crate) struct MigrationConn<'c, C>(pub &'c mut C);

/// Turns one row of refinery's history table into an applied `Migration`.
/// The version column is int4 on Postgres and INTEGER (i64) on SQLite, so both are accepted.
fn applied_from_row<R>(row: &R) -> Result<Migration, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let version: i64 = match row.try_get::<i32, _>(0) {
        Ok(v) => i64::from(v),
        Err(_) => row.try_get::<i64, _>(0)?,
    };
    let version = i32::try_from(version).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let name: String = row.try_get(1)?;
    let applied_on: String = row.try_get(2)?;
    let checksum: String = row.try_get(3)?;
    let applied_on =
        OffsetDateTime::parse(&applied_on, &Rfc3339).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let checksum = checksum
        .parse::<u64>()
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(Migration::applied(version, name, applied_on, checksum))
}

/// Implements the refinery traits for one concrete sqlx connection type. `$begin` is the statement
/// that opens the migration transaction (SQLite takes the write lock up front with BEGIN IMMEDIATE
/// so a concurrent opener waits on busy_timeout instead of failing).
macro_rules! impl_migration_conn {
    ($conn:ty, $begin:expr) => {
        impl AsyncTransaction for MigrationConn<'_, $conn> {
            type Error = sqlx::Error;

            async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
                &'a mut self,
                queries: T,
            ) -> Result<usize, sqlx::Error> {
                // A migration and its history row commit together, or not at all.
                let mut tx = self.0.begin_with($begin).await?;
                let mut count = 0;
                for sql in queries {
                    // raw_sql: migration files hold several statements.
                    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                        .execute(&mut *tx)
                        .await?;
                    count += 1;
                }
                tx.commit().await?;
                Ok(count)
            }
        }

        impl AsyncQuery<Vec<Migration>> for MigrationConn<'_, $conn> {
            async fn query<'a>(&'a mut self, sql: &'a str) -> Result<Vec<Migration>, sqlx::Error> {
                let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut *self.0)
                    .await?;
                rows.iter().map(applied_from_row).collect()
            }
        }

        impl AsyncMigrate for MigrationConn<'_, $conn> {}
    };
}

impl_migration_conn!(sqlx::PgConnection, "BEGIN");
impl_migration_conn!(sqlx::SqliteConnection, "BEGIN IMMEDIATE");

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn listed(dir: &str) -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::read_dir(path)
            .expect("migration dir exists")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn both_engines_have_the_same_migrations() {
        let pg = listed("migrations/postgres");
        let lite = listed("migrations/sqlite");
        assert!(!pg.is_empty());
        assert_eq!(
            pg, lite,
            "migrations/postgres and migrations/sqlite must list the same files"
        );
        let names = |r: refinery::Runner| {
            r.get_migrations()
                .iter()
                .map(|m| (m.version(), m.name().to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(postgres_runner()), names(sqlite_runner()));
        assert_eq!(
            names(postgres_runner()).len(),
            pg.len(),
            "every file is embedded as a migration"
        );
    }

    #[tokio::test]
    async fn sqlite_migrations_apply_once() {
        let mut conn = <sqlx::SqliteConnection as Connection>::connect("sqlite::memory:")
            .await
            .expect("connect");
        let first = sqlite_runner()
            .run_async(&mut MigrationConn(&mut conn))
            .await
            .expect("migrate");
        assert_eq!(
            first.applied_migrations().len(),
            postgres_runner().get_migrations().len()
        );
        let second = sqlite_runner()
            .run_async(&mut MigrationConn(&mut conn))
            .await
            .expect("migrate again");
        assert!(second.applied_migrations().is_empty());
        let rv: i64 = sqlx::query_scalar("SELECT rv FROM rv_counter")
            .fetch_one(&mut conn)
            .await
            .expect("counter");
        assert_eq!(rv, 1, "a fresh store starts at a real resourceVersion");
    }
}
