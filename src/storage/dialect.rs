//! What differs between Postgres and SQLite, and nothing else: the SQL text of each statement,
//! how transactions begin, and a thin engine-neutral way to run a statement (`Db`, `Tx`) with
//! engine-neutral parameters (`Param`) and rows (`Cell`). All storage logic sits above this and
//! is written once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Decode, Row, Type};

/// Which engine a database URL names. The one place that reads the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

impl Engine {
    /// `postgres://…`/`postgresql://…` → Postgres; `sqlite:…` → SQLite; anything else is refused.
    pub fn of(url: &str) -> anyhow::Result<Engine> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else {
            anyhow::bail!("unsupported storage URL (want postgres://, postgresql:// or sqlite:)")
        }
    }

    /// "postgres" | "sqlite".
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// How a process learns that another process committed (a dialect capability; the watch cache
/// only sees "wake up and read the log").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wakeup {
    /// The engine pushes a notification (Postgres LISTEN/NOTIFY, see `postgres::listen`).
    Notify,
    /// Read the log this often (SQLite: a cheap read of a local file).
    Poll(std::time::Duration),
}

/// How the writer applies a batch of writes (see `writer`).
#[derive(Debug)]
pub(crate) enum BatchPath {
    /// One statement does everything in one round trip, checks included, and queues the
    /// wake-up of other processes (Postgres: `wardle_apply_batch`, migrations V5-V8). `$1`..`$11`
    /// = one array per field of `writer::FunctionWrite`, one element per write, `$12` = the
    /// NOTIFY tag. One column: the JSON array of `writer::FunctionReply` (text).
    Function(&'static str),
    /// A write transaction (`begin_write`) of statements, the checks in Rust between them
    /// (SQLite: in-process, a round trip costs nothing).
    Statements {
        /// Current rows of a batch's keys. `$1` = JSON array of `{resource, namespace, name}`.
        /// Columns: resource, namespace, name, uid, rv, create_rv, object (text).
        read_current: &'static str,
        /// Applies a batch. Every statement gets `$1` = JSON array of rows (see `writer::row`)
        /// and `$2` = k, the number of rows. The first statement increments the counter by k
        /// and returns the new value (the last RV of the batch); row `ord` (1..=k) gets RV
        /// `top - k + ord`.
        apply: &'static [&'static str],
    },
}

/// The statements that differ between the engines; everything else is in `sql` and written once.
/// Parameter conventions are documented per statement and are the same on both engines, so the
/// shared logic binds the same values whichever engine runs.
#[derive(Debug)]
pub(crate) struct SqlSet {
    pub engine: Engine,
    /// Opens a write transaction (READ COMMITTED on Postgres, BEGIN IMMEDIATE on SQLite).
    pub begin_write: &'static str,
    /// Opens a read transaction whose statements share one snapshot.
    pub begin_read: &'static str,
    /// How the writer applies a batch.
    pub batch: BatchPath,
    /// How other processes' commits are noticed.
    pub wakeup: Wakeup,
    /// Deletes history rows committed more than `$1` seconds ago.
    pub prune_history: &'static str,
}

/// A statement parameter. Only the kinds both engines encode identically.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
    OptText(Option<String>),
}

/// One column value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> Result<i64, sqlx::Error> {
        match self {
            Cell::Int(v) => Ok(*v),
            other => Err(decode_error(format!(
                "expected an integer column, got {other:?}"
            ))),
        }
    }

    pub fn text(&self) -> Result<&str, sqlx::Error> {
        match self {
            Cell::Text(v) => Ok(v),
            other => Err(decode_error(format!(
                "expected a text column, got {other:?}"
            ))),
        }
    }
}

fn decode_error(msg: String) -> sqlx::Error {
    sqlx::Error::Decode(msg.into())
}

/// Reads a row into cells. The schema only has bigint and text columns (JSON is selected as
/// text), so "integer, else text" decodes every column without per-query type lists.
fn decode_row<R>(row: &R) -> Result<Vec<Cell>, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    (0..row.len())
        .map(|i| match row.try_get::<Option<i64>, _>(i) {
            Ok(Some(v)) => Ok(Cell::Int(v)),
            Ok(None) => Ok(Cell::Null),
            Err(_) => row
                .try_get::<Option<String>, _>(i)
                .map(|v| v.map_or(Cell::Null, Cell::Text)),
        })
        .collect()
}

/// Binds engine-neutral parameters to a sqlx query of either engine.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                Param::Int(v) => q.bind(*v),
                Param::Text(s) => q.bind(s.clone()),
                Param::OptText(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

/// Runs the same body on whichever engine `$self` holds; the body is engine-agnostic sqlx code.
macro_rules! on_engine {
    ($self:expr, $Pg:path, $Lite:path, |$x:ident| $body:expr) => {
        match $self {
            $Pg($x) => $body,
            $Lite($x) => $body,
        }
    };
}

/// The connection pools of one engine.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// Postgres: `writer` has exactly one connection, the writer task's own, so a batch never
    /// waits for a pool connection behind reads; `pool` serves everything else.
    Postgres {
        pool: sqlx::PgPool,
        writer: sqlx::PgPool,
    },
    /// SQLite: `writer` has exactly one connection (the writer task's); `reader` serves reads
    /// (for `sqlite::memory:` it is the same single-connection pool, as memory DBs are per connection).
    Sqlite {
        writer: sqlx::SqlitePool,
        reader: sqlx::SqlitePool,
    },
}

/// How long a Postgres statement waits for a pool connection (sqlx's ping of it included)
/// before it fails `Unavailable`.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer task's Postgres connection, kept from one batch to the next. Taken from its pool
/// per batch it cost two round trips more than the batch itself (sqlx pings a connection when
/// the pool hands it out and again when it is given back, and the next batch waited for both):
/// ~0.5 ms of a ~1.8 ms batch cycle at 32 clients. Held, it is pinged first (for at most
/// `PING_TIMEOUT`, as long as the pool's acquire waited) when it sat idle for `IDLE_CHECK` or
/// when a connection was seen lost since its last batch (`losses`: an outage, a Postgres restart,
/// the LISTEN connection dropped). A connection the server ended between batches otherwise shows
/// when the next batch reaches it, which `Db::fetch_batch` then runs again on a new connection
/// (see there why that is safe). It is given up after any failed batch. SQLite's writer
/// connection is shared with compaction and the health probe, so it goes back to its pool after
/// each batch.
pub(crate) struct BatchConn {
    held: Option<Held>,
    losses: Arc<AtomicU64>,
}

struct Held {
    conn: PoolConnection<sqlx::Postgres>,
    last_used: Instant,
    losses_seen: u64,
}

impl BatchConn {
    /// How long the held connection may sit unused before a batch pings it first.
    const IDLE_CHECK: Duration = Duration::from_secs(1);
    /// How long that ping may take: longer, the connection is gone without a word (a dropped
    /// TCP flow) and is replaced. The pool's acquire timeout, which bounded its own ping.
    const PING_TIMEOUT: Duration = ACQUIRE_TIMEOUT;

    /// `losses`: the count of connections seen lost (`health::DbHealth::losses`).
    pub fn new(losses: Arc<AtomicU64>) -> Self {
        BatchConn { held: None, losses }
    }

    /// The connection for the next batch, and the count of losses seen before it runs.
    async fn take_or_acquire(
        &mut self,
        pool: &sqlx::PgPool,
    ) -> Result<(PoolConnection<sqlx::Postgres>, u64), sqlx::Error> {
        use sqlx::Connection;
        let losses = self.losses.load(Ordering::Acquire);
        if let Some(mut h) = self.held.take() {
            let trusted = h.last_used.elapsed() < Self::IDLE_CHECK && h.losses_seen == losses;
            if trusted
                || matches!(
                    tokio::time::timeout(Self::PING_TIMEOUT, h.conn.ping()).await,
                    Ok(Ok(()))
                )
            {
                return Ok((h.conn, losses));
            }
            h.conn.close_on_drop();
        }
        Ok((pool.acquire().await?, losses))
    }

    /// Keeps `conn` after a batch; `losses_seen` is the count taken before the batch ran.
    fn put(&mut self, conn: PoolConnection<sqlx::Postgres>, losses_seen: u64) {
        self.held = Some(Held {
            conn,
            last_used: Instant::now(),
            losses_seen,
        });
    }
}

/// Whether the server ended the session on purpose (SQLSTATE 57P01: `pg_terminate_backend`, a
/// fast shutdown). It says so with an error message, sent after whatever output was pending.
fn ended_by_server(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| pg.code() == "57P01"))
}

/// A Postgres statement and its bound arguments (`Db::fetch_batch` binds them per attempt).
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs one statement, keeping the rows that arrived before a failure.
async fn fetch_rows(
    conn: &mut sqlx::PgConnection,
    query: PgQuery<'static>,
) -> (Vec<sqlx::postgres::PgRow>, Option<sqlx::Error>) {
    use futures::StreamExt;
    let mut rows = Vec::new();
    let mut stream = query.fetch(conn);
    while let Some(next) = stream.next().await {
        match next {
            Ok(row) => rows.push(row),
            Err(e) => return (rows, Some(e)),
        }
    }
    (rows, None)
}

/// An open transaction on either engine. Dropping it rolls back.
pub(crate) enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// A single-statement executor on either engine (for reads outside a transaction).
enum Pool<'a> {
    Postgres(&'a sqlx::PgPool),
    Sqlite(&'a sqlx::SqlitePool),
}

impl Db {
    fn read_pool(&self) -> Pool<'_> {
        match self {
            Db::Postgres { pool, .. } => Pool::Postgres(pool),
            Db::Sqlite { reader, .. } => Pool::Sqlite(reader),
        }
    }

    /// Where writes other than batches go (compaction, probes): any connection on Postgres,
    /// the one writer connection on SQLite (which serialises writers anyway).
    fn write_pool(&self) -> Pool<'_> {
        match self {
            Db::Postgres { pool, .. } => Pool::Postgres(pool),
            Db::Sqlite { writer, .. } => Pool::Sqlite(writer),
        }
    }

    /// The writer task's own connection.
    fn batch_pool(&self) -> Pool<'_> {
        match self {
            Db::Postgres { writer, .. } => Pool::Postgres(writer),
            Db::Sqlite { writer, .. } => Pool::Sqlite(writer),
        }
    }

    /// Begins a write transaction (not a batch: see `begin_batch`).
    pub async fn begin_write(&self, begin: &'static str) -> Result<Tx, sqlx::Error> {
        Self::begin_on(self.write_pool(), begin).await
    }

    /// Begins a batch's write transaction on the writer task's connection.
    pub async fn begin_batch(&self, begin: &'static str) -> Result<Tx, sqlx::Error> {
        Self::begin_on(self.batch_pool(), begin).await
    }

    async fn begin_on(pool: Pool<'_>, begin: &'static str) -> Result<Tx, sqlx::Error> {
        Ok(match pool {
            Pool::Postgres(p) => Tx::Postgres(p.begin_with(begin).await?),
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with(begin).await?),
        })
    }

    /// One statement on the writer task's connection in autocommit mode (a batch in one call).
    /// On Postgres the connection stays in `held` for the next batch (see `BatchConn`), and a
    /// batch is sent once more, on a new connection, when the server had ended the session
    /// (57P01) before any row of the answer came: the function's one row is produced before its
    /// COMMIT, and the server sends what it had buffered before that error, so no row means
    /// nothing committed (a connection lost without that message is not retried: a commit may
    /// have landed). Without this, a session ended between batches failed the next batch, where
    /// the pool's ping used to replace it.
    ///
    /// `bind` binds the statement's arguments (Postgres types: the batch function takes arrays).
    pub async fn fetch_batch(
        &self,
        held: &mut BatchConn,
        sql: &'static str,
        bind: impl Fn(PgQuery<'static>) -> PgQuery<'static>,
    ) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        let Db::Postgres { writer, .. } = self else {
            return Err(sqlx::Error::Configuration(
                "a batch function call needs Postgres".into(),
            ));
        };
        let mut retried = false;
        loop {
            let (mut conn, losses) = held.take_or_acquire(writer).await?;
            let (rows, failure) = fetch_rows(&mut conn, bind(sqlx::query(sql))).await;
            let Some(e) = failure else {
                held.put(conn, losses);
                return rows.iter().map(decode_row).collect();
            };
            // After a failure the next batch starts on a new connection rather than sorting out
            // whether this one survived.
            conn.close_on_drop();
            if retried || !rows.is_empty() || !ended_by_server(&e) {
                return Err(e);
            }
            tracing::info!(error = %e, "the writer's connection had been ended; sending the batch again on a new one");
            retried = true;
        }
    }

    async fn fetch_on(
        pool: Pool<'_>,
        sql: &'static str,
        params: &[Param],
    ) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        on_engine!(pool, Pool::Postgres, Pool::Sqlite, |p| {
            let rows = bind_params!(sqlx::query(sql), params).fetch_all(p).await?;
            rows.iter().map(decode_row).collect()
        })
    }

    /// Begins a read transaction (one snapshot for all its statements).
    pub async fn begin_read(&self, begin: &'static str) -> Result<Tx, sqlx::Error> {
        Self::begin_on(self.read_pool(), begin).await
    }

    /// One read statement in autocommit mode.
    pub async fn fetch(
        &self,
        sql: &'static str,
        params: &[Param],
    ) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        Self::fetch_on(self.read_pool(), sql, params).await
    }

    /// One statement on the write side in autocommit mode, rows ignored.
    pub async fn execute(&self, sql: &'static str, params: &[Param]) -> Result<(), sqlx::Error> {
        on_engine!(self.write_pool(), Pool::Postgres, Pool::Sqlite, |p| {
            bind_params!(sqlx::query(sql), params)
                .execute(p)
                .await
                .map(|_| ())
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres { pool, writer } => {
                writer.close().await;
                pool.close().await;
            }
            Db::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
        }
    }
}

impl Tx {
    pub async fn fetch(
        &mut self,
        sql: &'static str,
        params: &[Param],
    ) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        on_engine!(self, Tx::Postgres, Tx::Sqlite, |tx| {
            let rows = bind_params!(sqlx::query(sql), params)
                .fetch_all(&mut **tx)
                .await?;
            rows.iter().map(decode_row).collect()
        })
    }

    /// One statement; returns the number of rows it changed.
    pub async fn execute_count(
        &mut self,
        sql: &'static str,
        params: &[Param],
    ) -> Result<u64, sqlx::Error> {
        on_engine!(self, Tx::Postgres, Tx::Sqlite, |tx| {
            bind_params!(sqlx::query(sql), params)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected())
        })
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        on_engine!(self, Tx::Postgres, Tx::Sqlite, |tx| tx.commit().await)
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        on_engine!(self, Tx::Postgres, Tx::Sqlite, |tx| tx.rollback().await)
    }
}

/// The database's message when `e` says the statement's *data* is at fault rather than the
/// database: Postgres SQLSTATE classes 22 (data exception), 23 (integrity constraint) and 54
/// (program limit exceeded, e.g. an index row too large); SQLite's TOOBIG, CONSTRAINT and
/// MISMATCH. None for anything else (connection lost, disk full, …). A statement that fails so
/// aborts its transaction, so nothing of it was committed.
pub(crate) fn refused_input(e: &sqlx::Error) -> Option<String> {
    let db = e.as_database_error()?;
    let code = db.code()?;
    let refused = if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        matches!(code.get(..2), Some("22" | "23" | "54"))
    } else {
        // SQLite reports the extended result code; the primary code is its low byte.
        let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
        matches!(primary, 18..=20)
    };
    refused.then(|| db.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_refuse_the_wrong_kind() {
        assert_eq!(Cell::Int(7).int().ok(), Some(7));
        assert!(Cell::Int(7).text().is_err());
        assert_eq!(Cell::Text("x".into()).text().ok(), Some("x"));
        assert!(Cell::Null.int().is_err());
        assert!(Cell::Null.text().is_err());
    }

    #[tokio::test]
    async fn sqlite_rows_decode_to_cells() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("pool");
        let db = Db::Sqlite {
            writer: pool.clone(),
            reader: pool,
        };
        let rows = db
            .fetch(
                "SELECT $1 + 1, $2, NULL, $3",
                &[
                    Param::Int(41),
                    Param::Text("a".into()),
                    Param::OptText(None),
                ],
            )
            .await
            .expect("query");
        assert_eq!(
            rows,
            vec![vec![
                Cell::Int(42),
                Cell::Text("a".into()),
                Cell::Null,
                Cell::Null
            ]]
        );
    }
}
