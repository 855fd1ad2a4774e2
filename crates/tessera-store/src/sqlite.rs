//! The SQLite dialect, the embedded default: connecting (a file created with mode 0600,
//! WAL, a busy timeout), migrating, the write lock, and values stored as text. The
//! operations are those of `sql/`, compiled here with this dialect.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tessera_core::ScopeSet;
use uuid::Uuid;

use crate::convert::{parse_scopes, parse_uuid, stored_time, words};
use crate::dialect::{Dialect, Lock};
use crate::model::{NewAuditEvent, audit_text};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Connections to a SQLite file, unless told otherwise (`--database-pool-size`). Every
/// hot path is one query now (clients come from memory, an opaque token brings its user),
/// so a request holds a connection for one query: at 64 concurrent requests, 4, 8 and 32
/// connections served introspection, `GET /me` with an opaque token and opaque issuance
/// at the same rate within the run-to-run noise (10-11.5 k, 10.7-11.5 k and 5.9-6.6 k a
/// second), with the fewest CPU microseconds a request at 4 and 8. Each connection is a
/// thread of sqlx's driver; 8 leaves room for writers (group commit, the audit log, the
/// purge) beside the readers.
pub const SQLITE_POOL_SIZE: u32 = 8;

/// A store on one SQLite database file, shared safely with other processes on the same
/// machine (WAL journal, busy timeout).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The clients read so far (see `client_cache`).
    clients: std::sync::Arc<crate::client_cache::ClientCache>,
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` (`sqlite://PATH` or
    /// `sqlite::memory:`). Does not migrate: see [`crate::Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool(url, None).await
    }

    /// [`connect`](Self::connect), with at most `pool_size` connections (default
    /// [`SQLITE_POOL_SIZE`]; an in-memory database always has one).
    pub async fn connect_with_pool(url: &str, pool_size: Option<u32>) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url}: {e}")))?;
        if !in_memory {
            create_private(options.get_filename())?;
        }
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit waits for its WAL frames to reach the disk: what a server answered
            // (an opaque token handed out, a revocation confirmed) survives a power cut.
            // Group commit (`TokenBatcher`, the audit writer) shares one sync among many.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database exists once per connection: keep exactly one. Connections
        // to a file open on demand; each is a thread and a SQLite handle.
        let max = if in_memory {
            1
        } else {
            pool_size.unwrap_or(SQLITE_POOL_SIZE)
        };
        // Switching a new file to WAL takes a lock that the busy timeout does not wait
        // for, so processes opening one new file together may be told "database is
        // locked" here: retry for as long as the busy timeout would have waited.
        let mut attempts = 0;
        let pool = loop {
            let connected = SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(5))
                // A file on this machine cannot hang up: a ping before each use would only
                // cost a trip to the connection's thread and back.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await;
            match connected {
                Ok(pool) => break pool,
                Err(sqlx::Error::Database(db))
                    if is_busy(db.code().as_deref()) && attempts < 50 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e @ (sqlx::Error::Database(_) | sqlx::Error::Io(_))) => {
                    return Err(StoreError::Config(
                        e.as_database_error()
                            .map(|d| d.message().to_owned())
                            .unwrap_or(e.to_string()),
                    ));
                }
                Err(other) => return Err(StoreError::Unavailable(other)),
            }
        };
        Ok(SqliteStore {
            pool,
            clients: Default::default(),
        })
    }
}

/// Begins a write transaction (`BEGIN IMMEDIATE`) on a task of its own. sqlx's SQLite
/// driver runs the `BEGIN` on the connection's worker thread, and a caller dropped while
/// it waits there (a request whose client went away while the write lock was busy, a
/// server stopping) would leave the connection in a transaction no one rolls back,
/// holding the database's one write lock for good. On its own task the `BEGIN` always
/// completes into a transaction, which is rolled back when the task drops it.
async fn begin_immediate(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    let pool = pool.clone();
    let began = tokio::spawn(async move { pool.begin_with("BEGIN IMMEDIATE").await }).await;
    match began {
        Ok(tx) => Ok(tx?),
        // The task panicked or its runtime is shutting down: no transaction to use.
        Err(_) => Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)),
    }
}

/// SQLITE_BUSY, primary (5) or extended (its low byte is 5): the file is locked.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

/// Creates the database file readable and writable by its owner only, when it does not
/// exist yet. It holds the private signing key and the password hashes; SQLite gives its
/// `-wal` and `-shm` files the same mode.
fn create_private(path: &std::path::Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "cannot create the database file: {e}"
        ))),
    }
}

/// The SQLite dialect: ids are hyphenated text, word lists and scopes space-separated
/// text, times RFC 3339 text in UTC (sqlx's encoding of `DateTime<Utc>`, whose byte order
/// is time order), and every write transaction takes the database's one write lock.
#[derive(Debug)]
pub(crate) struct Sqlite;

type D = Sqlite;
type Adapter = SqliteStore;

impl SqliteStore {
    /// A file on this machine has no connections to weed out after an outage.
    fn saw_outage(&self, _err: &StoreError) {}
}

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;
    type Id = String;
    type Words = String;
    // One machine: each process keeps its limits in memory.
    const SHARES_RATE_LIMITS: bool = false;

    fn id(id: Uuid) -> String {
        id.to_string()
    }

    fn get_id(row: &SqliteRow, col: &str) -> Result<Uuid> {
        parse_uuid(row.try_get(col)?)
    }

    fn get_opt_id(row: &SqliteRow, col: &str) -> Result<Option<Uuid>> {
        row.try_get::<Option<&str>, _>(col)?
            .map(parse_uuid)
            .transpose()
    }

    fn words<T: std::fmt::Display>(items: &[T]) -> String {
        words(items).join(" ")
    }

    fn get_words(row: &SqliteRow, col: &str) -> Result<Vec<String>> {
        let words: &str = row.try_get(col)?;
        Ok(words.split_whitespace().map(str::to_owned).collect())
    }

    fn scopes(scopes: ScopeSet) -> String {
        scopes.to_string()
    }

    fn get_scopes(row: &SqliteRow, col: &str) -> Result<ScopeSet> {
        parse_scopes(row.try_get(col)?)
    }

    async fn begin(
        pool: &SqlitePool,
        _lock: Lock,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        // IMMEDIATE takes the write lock before the first read: writers queue on the busy
        // timeout instead of reading a state that another writer is about to change (a
        // deferred transaction that reads first could also be refused the upgrade).
        begin_immediate(pool).await
    }

    async fn lock_family_of_refresh_token(
        _tx: &mut SqliteConnection,
        _token_hash: &str,
    ) -> Result<bool> {
        // The write lock, taken when the transaction began, already serialises every
        // family; an unknown token is found out by the rotation itself.
        Ok(true)
    }

    async fn lock_feed(_tx: &mut SqliteConnection) -> Result<()> {
        // The write lock, taken when the transaction began, already makes writers of the
        // feed take turns.
        Ok(())
    }

    async fn migrate(pool: &SqlitePool) -> Result<()> {
        // SQLite has no advisory lock: hold the write lock for the whole run, so that
        // processes starting together on one file apply each migration once (sqlx nests
        // each migration's own transaction as a savepoint).
        let mut tx = begin_immediate(pool).await?;
        MIGRATOR.run_direct(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_audit_events(pool: &SqlitePool, events: &[NewAuditEvent]) -> Result<()> {
        let mut tx = begin_immediate(pool).await?;
        // Several rows per statement, few enough to stay far below SQLite's limit on
        // bound parameters (32766).
        for chunk in events.chunks(crate::audit::BATCH) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO audit_events (at, kind, actor, client_id, company, target, address, detail) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(stored_time(event.at))
                    .push_bind(event.kind.as_str())
                    .push_bind(audit_text(event.actor.as_deref()))
                    .push_bind(audit_text(event.client_id.as_deref()))
                    .push_bind(audit_text(event.company.as_deref()))
                    .push_bind(audit_text(event.target.as_deref()))
                    .push_bind(audit_text(event.address.as_deref()))
                    .push_bind(audit_text(event.detail.as_deref()));
            });
            // One statement text per batch size: not worth a place in the statement cache.
            insert.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A bound JSON text is stored as it is.
macro_rules! jsonb {
    () => {
        ""
    };
}

/// A JSON column is text already.
macro_rules! json_text {
    ($col:literal) => {
        $col
    };
}

/// The empty blob.
macro_rules! empty_bytes {
    () => {
        "X''"
    };
}

/// SQLite compares text by bytes (its BINARY collation) unless told otherwise.
macro_rules! by_bytes {
    () => {
        ""
    };
}

// The operations are compiled once per dialect on purpose: see `dialect.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
pub(crate) mod sql;
