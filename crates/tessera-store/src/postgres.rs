//! The PostgreSQL dialect: one database shared by any number of Tessera processes.
//! Connecting, migrating (under sqlx's advisory lock), advisory locks for what row locks
//! cannot serialise, and the native types (uuid, timestamptz, text[], jsonb, bytea). The
//! operations are those of `sql/`, compiled here with this dialect.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tessera_core::ScopeSet;
use uuid::Uuid;

use crate::convert::{parse_scopes, scope_words, stored_time, words};
use crate::dialect::{Dialect, Lock};
use crate::model::{NewAuditEvent, audit_text};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections each process keeps open at most, unless told otherwise. N processes need
/// N × this below the server's `max_connections` (100 by default).
pub const POSTGRES_POOL_SIZE: u32 = 10;

/// A connection idle for longer than this is pinged before it is used: one that the server
/// or the network dropped meanwhile is replaced instead of failing a request. A busy
/// connection is not: a ping before each use put a second round trip on every request's
/// path (sqlx also pings a connection as it goes back to the pool, off that path)...
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// ...except for this long after a call found a connection broken: connections that
/// broke in the outage may wait in the pool, and each is pinged (and replaced) before use
/// rather than fail the first request after the database is back.
const PING_AFTER_OUTAGE: Duration = Duration::from_secs(10);

/// How long a request waits for a connection before it is answered 503: also how long it
/// takes to notice that the database is away.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the first connection at start-up may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store on one PostgreSQL database, shared by every process pointed at it.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// The clients read so far (see `client_cache`).
    clients: std::sync::Arc<crate::client_cache::ClientCache>,
    /// Until when every connection is pinged before use (see [`PING_AFTER_OUTAGE`]).
    suspect: std::sync::Arc<Suspect>,
    pool: PgPool,
}

/// The end of the window in which connections are pinged before every use, in
/// milliseconds since the store was opened (0: none).
#[derive(Debug)]
struct Suspect {
    opened: std::time::Instant,
    until_ms: std::sync::atomic::AtomicU64,
}

impl Suspect {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn holds(&self) -> bool {
        self.now_ms() < self.until_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn begin(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(PING_AFTER_OUTAGE.as_millis()).unwrap_or(u64::MAX));
        self.until_ms
            .fetch_max(until, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`,
    /// with `?sslmode=require` or `verify-full` for TLS). One connection is made at once so
    /// that an unreachable server, a missing database or refused credentials are reported
    /// now, in the server's words; later connections are opened on demand and reopened
    /// after an outage. Does not migrate: see [`crate::Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool(url, None).await
    }

    /// [`connect`](Self::connect), with at most `pool_size` connections (default
    /// [`POSTGRES_POOL_SIZE`]).
    pub async fn connect_with_pool(url: &str, pool_size: Option<u32>) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        let options = options.application_name("tessera");
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => {
                // Only a probe; the pool opens its own connections.
                let _ = conn.close().await;
            }
            Ok(Err(e)) => return Err(StoreError::Connect(describe_connect_error(&e))),
            Err(_) => {
                return Err(StoreError::Connect(format!(
                    "no answer within {} seconds",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        }
        let suspect = std::sync::Arc::new(Suspect {
            opened: std::time::Instant::now(),
            until_ms: std::sync::atomic::AtomicU64::new(0),
        });
        let outage = std::sync::Arc::clone(&suspect);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.unwrap_or(POSTGRES_POOL_SIZE))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let ping = meta.idle_for > PING_AFTER_IDLE || outage.holds();
                Box::pin(async move {
                    if ping {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(PgStore {
            suspect,
            pool,
            clients: Default::default(),
        })
    }
}

/// The reason a connection failed, without the URL (the caller names it, redacted).
fn describe_connect_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

/// The PostgreSQL dialect: native uuid, text[] and timestamptz values; a write
/// transaction relies on row locks, plus an advisory lock where rows alone cannot make
/// writers take turns.
#[derive(Debug)]
pub(crate) struct Postgres;

type D = Postgres;
type Adapter = PgStore;

impl PgStore {
    /// A call failed with `err`: when a connection broke (not a pool merely busy, nor a
    /// statement refused), ping connections before use for a while.
    fn saw_outage(&self, err: &StoreError) {
        let StoreError::Unavailable(err) = err else {
            return;
        };
        let broken = match err {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
            // Connection exceptions (class 08) and the server shutting down (57P).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        };
        if broken {
            self.suspect.begin();
        }
    }
}

impl Dialect for Postgres {
    type Db = sqlx::Postgres;
    type Id = Uuid;
    type Words = Vec<String>;
    // Any number of servers share one PostgreSQL database.
    const SHARES_RATE_LIMITS: bool = true;

    fn id(id: Uuid) -> Uuid {
        id
    }

    fn get_id(row: &PgRow, col: &str) -> Result<Uuid> {
        Ok(row.try_get(col)?)
    }

    fn get_opt_id(row: &PgRow, col: &str) -> Result<Option<Uuid>> {
        Ok(row.try_get(col)?)
    }

    fn words<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
        words(items)
    }

    fn get_words(row: &PgRow, col: &str) -> Result<Vec<String>> {
        Ok(row.try_get(col)?)
    }

    fn scopes(scopes: ScopeSet) -> Vec<String> {
        scope_words(scopes)
    }

    fn get_scopes(row: &PgRow, col: &str) -> Result<ScopeSet> {
        parse_scopes(&row.try_get::<Vec<String>, _>(col)?.join(" "))
    }

    async fn begin(
        pool: &PgPool,
        lock: Lock,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = pool.begin().await?;
        let advisory = match lock {
            Lock::Rows => return Ok(tx),
            Lock::Family(family) => {
                lock_family(&mut tx, family).await?;
                return Ok(tx);
            }
            Lock::Consent(user) => {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("tessera.consent:{user}"))
                    .execute(&mut *tx)
                    .await?;
                return Ok(tx);
            }
            // Two processes seeding at once: the second waits here, then finds data.
            Lock::Seed => "SELECT pg_advisory_xact_lock(hashtext('tessera.seed'))",
            Lock::Keys => {
                "SELECT pg_advisory_xact_lock(hashtextextended('tessera.signing_keys', 0))"
            }
        };
        sqlx::query(advisory).execute(&mut *tx).await?;
        Ok(tx)
    }

    async fn lock_family_of_refresh_token(tx: &mut PgConnection, token_hash: &str) -> Result<bool> {
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(family) = family else {
            return Ok(false);
        };
        // Rotations and revocations of one family take turns: a revocation that starts
        // while this rotation runs waits for it and then reaches the successor; a
        // rotation that starts after a revocation finds the token revoked.
        lock_family(tx, family).await?;
        Ok(true)
    }

    async fn lock_feed(tx: &mut PgConnection) -> Result<()> {
        // A sequence hands out numbers at insert, not at commit: without turns, a reader
        // could see entry N+1 committed before N and move its cursor past N.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('tessera.revocations', 0))")
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn migrate(pool: &PgPool) -> Result<()> {
        // sqlx holds a PostgreSQL advisory lock while it migrates, so processes starting
        // together on one database apply each migration once.
        MIGRATOR.run(pool).await?;
        Ok(())
    }

    async fn insert_audit_events(pool: &PgPool, events: &[NewAuditEvent]) -> Result<()> {
        // One array per column and one statement for any number of rows: a single
        // statement is atomic by itself, and its text, hence its prepared plan, never
        // changes with the batch size. Ids are drawn in the order of `events`.
        let column = |field: fn(&NewAuditEvent) -> Option<&str>| -> Vec<Option<String>> {
            events.iter().map(|e| audit_text(field(e))).collect()
        };
        sqlx::query(
            "INSERT INTO audit_events (at, kind, actor, client_id, company, target, address, detail) \
             SELECT at, kind, actor, client_id, company, target, address, detail \
             FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[]) WITH ORDINALITY \
             AS e (at, kind, actor, client_id, company, target, address, detail, n) ORDER BY n",
        )
        .bind(events.iter().map(|e| stored_time(e.at)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(column(|e| e.actor.as_deref()))
        .bind(column(|e| e.client_id.as_deref()))
        .bind(column(|e| e.company.as_deref()))
        .bind(column(|e| e.target.as_deref()))
        .bind(column(|e| e.address.as_deref()))
        .bind(column(|e| e.detail.as_deref()))
        .execute(pool)
        .await?;
        Ok(())
    }
}

/// Serialises the writes to one grant family until the transaction ends.
async fn lock_family(tx: &mut PgConnection, family_id: Uuid) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(family_id.to_string())
        .execute(tx)
        .await?;
    Ok(())
}

/// A bound JSON text becomes jsonb.
macro_rules! jsonb {
    () => {
        "::jsonb"
    };
}

/// A jsonb column read back as the text it was stored from.
macro_rules! json_text {
    ($col:literal) => {
        concat!($col, "::text AS ", $col)
    };
}

/// The empty bytea.
macro_rules! empty_bytes {
    () => {
        "''::bytea"
    };
}

/// Orders text by bytes, as SQLite does, whatever the database's locale.
macro_rules! by_bytes {
    () => {
        " COLLATE \"C\""
    };
}

// The operations are compiled once per dialect on purpose: see `dialect.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
pub(crate) mod sql;
