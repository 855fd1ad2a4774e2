//! The SQLite adapter: the embedded default.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqliteExecutor, SqlitePool};
use tessera_core::{CompanySlug, Username};
use uuid::Uuid;

use crate::convert::{
    corrupt, from_json, parse_name, parse_scopes, parse_uuid, parse_words, stored_time, to_json,
    words,
};
use crate::model::*;
use crate::{PURGES, PoolStatus, Result, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Connections to a SQLite file.
const SQLITE_POOL_SIZE: u32 = 32;

/// A store on one SQLite database file, shared safely with other processes on the same
/// machine (WAL journal, busy timeout).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `url` (`sqlite://PATH` or
    /// `sqlite::memory:`). Does not migrate: see [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url}: {e}")))?;
        if !url.contains(":memory:") && !url.contains("mode=memory") {
            create_private(options.get_filename())?;
        }
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database exists once per connection: keep exactly one. A file gets
        // enough connections for the requests a busy server has in flight: a query's
        // connection goes back to the pool only when its request worker next runs, so a
        // pool the size of the worker count runs dry under load while the CPU idles
        // (ES256 client_credentials at 64 connections: 5,800 tokens/s with 8, 7,300-8,100
        // with 32). Connections open on demand; each is a thread and a SQLite handle.
        let max = if url.contains(":memory:") || url.contains("mode=memory") {
            1
        } else {
            SQLITE_POOL_SIZE
        };
        // Switching a new file to WAL takes a lock that the busy timeout does not wait
        // for, so processes opening one new file together may be told "database is
        // locked" here: retry for as long as the busy timeout would have waited.
        let mut attempts = 0;
        let pool = loop {
            let connected = SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(5))
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
        Ok(SqliteStore { pool })
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

fn join_words<T: std::fmt::Display>(items: &[T]) -> String {
    words(items).join(" ")
}

fn company_from_row(row: &SqliteRow) -> Result<Company> {
    Ok(Company {
        id: parse_uuid(row.try_get("id")?)?,
        slug: parse_name(row.try_get("slug")?, "company slug")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn insert_access_token_query(
    token: &NewAccessToken,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, client_id, user_id, subject, scope, created_at, expires_at, family_id, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT revoked_at FROM revoked_families WHERE family_id = ?8))",
    )
    .bind(&token.token_hash)
    .bind(token.client_id.as_str())
    .bind(token.user_id.map(|id| id.to_string()))
    .bind(&token.subject)
    .bind(token.scope.to_string())
    .bind(stored_time(now))
    .bind(stored_time(token.expires_at))
    .bind(token.family_id.map(|id| id.to_string()))
}

const USER_COLUMNS: &str = "u.id, c.slug AS company, u.username, u.password_hash, u.roles, \
     u.disabled, u.created_at, u.updated_at FROM users u JOIN companies c ON c.id = u.company_id";

fn user_from_row(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: parse_uuid(row.try_get("id")?)?,
        company: parse_name(row.try_get("company")?, "company")?,
        username: parse_name(row.try_get("username")?, "username")?,
        roles: parse_words(row.try_get::<&str, _>("roles")?.split_whitespace(), "roles")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, grant_types, scopes, redirect_uris, \
     access_token_format, access_token_ttl_secs, refresh_token_ttl_secs, created_at FROM clients";

fn client_from_row(row: &SqliteRow) -> Result<Client> {
    Ok(Client {
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        grant_types: parse_words(
            row.try_get::<&str, _>("grant_types")?.split_whitespace(),
            "grant types",
        )?,
        scopes: parse_scopes(row.try_get("scopes")?)?,
        redirect_uris: from_json(row.try_get("redirect_uris")?, "redirect URIs")?,
        access_token_format: parse_name(row.try_get("access_token_format")?, "token format")?,
        access_token_ttl_secs: row.try_get("access_token_ttl_secs")?,
        refresh_token_ttl_secs: row.try_get("refresh_token_ttl_secs")?,
        created_at: row.try_get("created_at")?,
    })
}

const KEY_COLUMNS: &str = "kid, algorithm, private_key, public_jwk, state, created_at, \
     activate_at, activated_at, retired_at, remove_at FROM signing_keys";

fn key_from_row(row: &SqliteRow) -> Result<StoredKey> {
    let state: &str = row.try_get("state")?;
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        algorithm: parse_name(row.try_get("algorithm")?, "algorithm")?,
        private_key: row.try_get("private_key")?,
        public_jwk: from_json(row.try_get("public_jwk")?, "JWK")?,
        state: KeyState::parse(state).ok_or_else(|| corrupt("key state", state))?,
        created_at: row.try_get("created_at")?,
        activate_at: row.try_get("activate_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
        remove_at: row.try_get("remove_at")?,
    })
}

const REFRESH_COLUMNS: &str = "token_hash, family_id, client_id, user_id, scope, created_at, \
     expires_at, used_at, revoked_at FROM refresh_tokens";

fn refresh_token_from_row(row: &SqliteRow) -> Result<StoredRefreshToken> {
    Ok(StoredRefreshToken {
        token_hash: row.try_get("token_hash")?,
        family_id: parse_uuid(row.try_get("family_id")?)?,
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        user_id: parse_uuid(row.try_get("user_id")?)?,
        scope: parse_scopes(row.try_get("scope")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const AUDIT_COLUMNS: &str =
    "id, at, kind, actor, client_id, company, target, address, detail FROM audit_events";

fn audit_event_from_row(row: &SqliteRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        event: NewAuditEvent {
            at: row.try_get("at")?,
            kind: parse_name(row.try_get("kind")?, "audit event kind")?,
            actor: row.try_get("actor")?,
            client_id: row.try_get("client_id")?,
            company: row.try_get("company")?,
            target: row.try_get("target")?,
            address: row.try_get("address")?,
            detail: row.try_get("detail")?,
        },
    })
}

async fn insert_company<'e>(
    ex: impl SqliteExecutor<'e>,
    new: &NewCompany,
    now: DateTime<Utc>,
) -> Result<Company> {
    let now = stored_time(now);
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO companies (id, slug, name, created_at) VALUES (?, ?, ?, ?)")
        .bind(id.to_string())
        .bind(new.slug.as_str())
        .bind(&new.name)
        .bind(now)
        .execute(ex)
        .await
        .map_err(|e| StoreError::from_sqlx(e, || format!("company {} already exists", new.slug)))?;
    Ok(new.stored(id, now))
}

async fn insert_user<'e>(
    ex: impl SqliteExecutor<'e>,
    new: &NewUser,
    now: DateTime<Utc>,
) -> Result<User> {
    let now = stored_time(now);
    let id = Uuid::new_v4();
    let done = sqlx::query(
        "INSERT INTO users (id, company_id, username, password_hash, roles, disabled, created_at, updated_at) \
         SELECT ?, c.id, ?, ?, ?, 0, ?, ? FROM companies c WHERE c.slug = ?",
    )
    .bind(id.to_string())
    .bind(new.username.as_str())
    .bind(&new.password_hash)
    .bind(join_words(&new.roles))
    .bind(now)
    .bind(now)
    .bind(new.company.as_str())
    .execute(ex)
    .await
    .map_err(|e| StoreError::from_sqlx(e, || format!("username {} is already taken", new.username)))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "company {} does not exist",
            new.company
        )));
    }
    Ok(new.stored(id, now))
}

async fn insert_client<'e>(
    ex: impl SqliteExecutor<'e>,
    new: &NewClient,
    now: DateTime<Utc>,
) -> Result<Client> {
    let now = stored_time(now);
    let redirect_uris = to_json(&new.redirect_uris, "redirect URIs")?;
    sqlx::query(
        "INSERT INTO clients (client_id, name, secret_hash, grant_types, scopes, redirect_uris, \
         access_token_format, access_token_ttl_secs, refresh_token_ttl_secs, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.client_id.as_str())
    .bind(&new.name)
    .bind(&new.secret_hash)
    .bind(join_words(&new.grant_types))
    .bind(new.scopes.to_string())
    .bind(redirect_uris)
    .bind(new.access_token_format.as_str())
    .bind(new.access_token_ttl_secs)
    .bind(new.refresh_token_ttl_secs)
    .bind(now)
    .execute(ex)
    .await
    .map_err(|e| StoreError::from_sqlx(e, || format!("client {} already exists", new.client_id)))?;
    Ok(new.stored(now))
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        // SQLite has no advisory lock: hold the write lock for the whole run, so that
        // processes starting together on one file apply each migration once (sqlx nests
        // each migration's own transaction as a savepoint).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        MIGRATOR.run_direct(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    async fn seed_if_empty(&self, seed: &Seed, now: DateTime<Utc>) -> Result<bool> {
        // IMMEDIATE takes the write lock before the count: two processes seeding at once
        // queue on the busy timeout instead of both reading "empty".
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM companies) + (SELECT COUNT(*) FROM users) \
             + (SELECT COUNT(*) FROM clients)",
        )
        .fetch_one(&mut *tx)
        .await?;
        if existing > 0 {
            return Ok(false);
        }
        for company in &seed.companies {
            insert_company(&mut *tx, company, now).await?;
        }
        for user in &seed.users {
            insert_user(&mut *tx, user, now).await?;
        }
        for client in &seed.clients {
            insert_client(&mut *tx, client, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn create_company(&self, new: &NewCompany, now: DateTime<Utc>) -> Result<Company> {
        insert_company(&self.pool, new, now).await
    }

    async fn list_companies(&self) -> Result<Vec<Company>> {
        let rows = sqlx::query("SELECT id, slug, name, created_at FROM companies ORDER BY slug")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(company_from_row).collect()
    }

    async fn create_user(&self, new: &NewUser, now: DateTime<Utc>) -> Result<User> {
        insert_user(&self.pool, new, now).await
    }

    async fn find_user_credentials(&self, username: &str) -> Result<Option<UserCredentials>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} WHERE u.username = ?"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from_row(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn list_users(&self, company: Option<&CompanySlug>) -> Result<Vec<User>> {
        let rows = match company {
            Some(slug) => {
                sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} WHERE c.slug = ? ORDER BY u.username"
                ))
                .bind(slug.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {USER_COLUMNS} ORDER BY u.username"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let now = stored_time(now);
        let done = sqlx::query("UPDATE users SET disabled = ?, updated_at = ? WHERE username = ?")
            .bind(disabled)
            .bind(now)
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "user {username} does not exist"
            )));
        }
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} WHERE u.username = ?"))
            .bind(username.as_str())
            .fetch_one(&self.pool)
            .await?;
        user_from_row(&row)
    }

    async fn delete_user(&self, username: &Username) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(username.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "user {username} does not exist"
            )));
        }
        Ok(())
    }

    async fn find_user(&self, company: &CompanySlug, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} WHERE c.slug = ? AND u.id = ?"
        ))
        .bind(company.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<User>> {
        let now = stored_time(now);
        let done = sqlx::query(
            "UPDATE users SET roles = COALESCE(?, roles), disabled = COALESCE(?, disabled), \
             password_hash = COALESCE(?, password_hash), updated_at = ? \
             WHERE id = ? AND company_id = (SELECT id FROM companies WHERE slug = ?)",
        )
        .bind(patch.roles.as_deref().map(join_words))
        .bind(patch.disabled)
        .bind(&patch.password_hash)
        .bind(now)
        .bind(id.to_string())
        .bind(company.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.find_user(company, id).await
    }

    async fn delete_user_in(&self, company: &CompanySlug, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM users WHERE id = ? AND company_id = (SELECT id FROM companies WHERE slug = ?)",
        )
        .bind(id.to_string())
        .bind(company.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} WHERE u.id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn insert_access_token(&self, token: &NewAccessToken, now: DateTime<Utc>) -> Result<()> {
        let query = insert_access_token_query(token, now);
        if token.family_id.is_none() {
            // No family, nothing to race: one statement.
            query.execute(&self.pool).await?;
            return Ok(());
        }
        // A family token is checked against revoked_families under the write lock, so a
        // concurrent revoke_family either comes first and is seen, or comes after and
        // revokes this token.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_access_tokens(&self, tokens: &[(NewAccessToken, DateTime<Utc>)]) -> Result<()> {
        // Take the write lock at once: a deferred transaction that reads first could be
        // refused the upgrade by another writer instead of waiting for it.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (token, now) in tokens {
            insert_access_token_query(token, *now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_access_token(&self, token_hash: &str) -> Result<Option<StoredAccessToken>> {
        let row = sqlx::query(
            "SELECT token_hash, client_id, user_id, subject, scope, created_at, expires_at, revoked_at, \
             family_id FROM access_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: Option<String> = row.try_get("user_id")?;
        let family_id: Option<String> = row.try_get("family_id")?;
        Ok(Some(StoredAccessToken {
            token_hash: row.try_get("token_hash")?,
            client_id: parse_name(row.try_get("client_id")?, "client_id")?,
            user_id: user_id.as_deref().map(parse_uuid).transpose()?,
            subject: row.try_get("subject")?,
            scope: parse_scopes(row.try_get("scope")?)?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            family_id: family_id.as_deref().map(parse_uuid).transpose()?,
        }))
    }

    async fn revoke_access_token(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now = stored_time(now);
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE token_hash = ? AND client_id = ?",
        )
        .bind(now)
        .bind(token_hash)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_authorization_code(
        &self,
        code: &NewAuthorizationCode,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = stored_time(now);
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scope, \
             code_challenge, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(code.client_id.as_str())
        .bind(code.user_id.to_string())
        .bind(&code.redirect_uri)
        .bind(code.scope.to_string())
        .bind(&code.code_challenge)
        .bind(now)
        .bind(stored_time(code.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Redemption> {
        let now = stored_time(now);
        // One conditional UPDATE: SQLite runs writers one at a time, so of concurrent
        // redemptions only the first sees `redeemed_at IS NULL`.
        let row = sqlx::query(
            "UPDATE authorization_codes SET redeemed_at = ?, family_id = ? \
             WHERE code_hash = ? AND redeemed_at IS NULL \
             RETURNING client_id, user_id, redirect_uri, scope, code_challenge, created_at, expires_at",
        )
        .bind(now)
        .bind(family_id.to_string())
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Redemption::First(RedeemedCode {
                client_id: parse_name(row.try_get("client_id")?, "client_id")?,
                user_id: parse_uuid(row.try_get("user_id")?)?,
                redirect_uri: row.try_get("redirect_uri")?,
                scope: parse_scopes(row.try_get("scope")?)?,
                code_challenge: row.try_get("code_challenge")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                family_id,
            }));
        }
        let earlier: Option<Option<String>> =
            sqlx::query_scalar("SELECT family_id FROM authorization_codes WHERE code_hash = ?")
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?;
        match earlier {
            Some(Some(family)) => Ok(Redemption::Replay {
                family_id: parse_uuid(&family)?,
            }),
            Some(None) => Err(corrupt("authorization code", "redeemed without a family")),
            None => Ok(Redemption::Unknown),
        }
    }

    async fn revoke_family(&self, family_id: Uuid, now: DateTime<Utc>) -> Result<u64> {
        let now = stored_time(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO revoked_families (family_id, revoked_at) VALUES (?, ?) \
             ON CONFLICT (family_id) DO NOTHING",
        )
        .bind(family_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut revoked = 0;
        for table in ["refresh_tokens", "access_tokens"] {
            let done = sqlx::query(&format!(
                "UPDATE {table} SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
            ))
            .bind(now)
            .bind(family_id.to_string())
            .execute(&mut *tx)
            .await?;
            revoked += done.rows_affected();
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn insert_refresh_token(
        &self,
        token: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = stored_time(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, \
             created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
             (SELECT revoked_at FROM revoked_families WHERE family_id = ?2))",
        )
        .bind(&token.token_hash)
        .bind(token.family_id.to_string())
        .bind(token.client_id.as_str())
        .bind(token.user_id.to_string())
        .bind(token.scope.to_string())
        .bind(now)
        .bind(stored_time(token.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_login_session(
        &self,
        session: &NewLoginSession,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO login_sessions (session_hash, user_id, created_at, expires_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&session.session_hash)
        .bind(session.user_id.to_string())
        .bind(stored_time(now))
        .bind(stored_time(session.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_login_session(&self, session_hash: &str) -> Result<Option<LoginSession>> {
        let row = sqlx::query(
            "SELECT user_id, created_at, expires_at FROM login_sessions WHERE session_hash = ?",
        )
        .bind(session_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get("user_id")?;
        Ok(Some(LoginSession {
            user_id: parse_uuid(&user_id)?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<StoredRefreshToken>> {
        let row = sqlx::query(&format!("SELECT {REFRESH_COLUMNS} WHERE token_hash = ?"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(refresh_token_from_row).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation> {
        let now = stored_time(now);
        // The write lock first: rotations and family revocations run one after another,
        // so only the first rotation finds the token unspent, and a revocation either
        // precedes a rotation (which then finds the token revoked) or reaches its
        // successor.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let spent = sqlx::query(&format!(
            "UPDATE refresh_tokens SET used_at = ? \
             WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL \
             RETURNING {}",
            REFRESH_COLUMNS.trim_end_matches(" FROM refresh_tokens")
        ))
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            let found = sqlx::query(&format!("SELECT {REFRESH_COLUMNS} WHERE token_hash = ?"))
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
            let found = found.as_ref().map(refresh_token_from_row).transpose()?;
            return Ok(Rotation::not_spent(found));
        };
        let spent = refresh_token_from_row(&spent)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(successor_hash)
        .bind(spent.family_id.to_string())
        .bind(spent.client_id.as_str())
        .bind(spent.user_id.to_string())
        .bind(spent.scope.to_string())
        .bind(now)
        .bind(spent.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(spent))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let grace = now - crate::PURGE_GRACE;
        let mut purged = 0;
        for (sql, after_grace) in PURGES {
            purged += sqlx::query(sql)
                .bind(stored_time(if *after_grace { grace } else { now }))
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(purged)
    }

    async fn create_client(&self, new: &NewClient, now: DateTime<Utc>) -> Result<Client> {
        insert_client(&self.pool, new, now).await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<Client>> {
        let row = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} WHERE client_id = ?"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        let rows = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} ORDER BY client_id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn published_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} ORDER BY created_at, kid"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn active_key(&self) -> Result<Option<StoredKey>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} WHERE state = 'active'"))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn insert_active_key_if_none(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey> {
        let now = stored_time(now);
        let jwk = to_json(&key.public_jwk, "JWK")?;
        // The partial unique index on state = 'active' makes this a no-op when another
        // process got there first; the SELECT then returns the winner.
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, state, created_at, activated_at) \
             VALUES (?, ?, ?, ?, 'active', ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.private_key)
        .bind(jwk)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.active_key()
            .await?
            .ok_or_else(|| StoreError::Corrupt("no active signing key after inserting one".into()))
    }

    async fn insert_next_key_if_none(
        &self,
        key: &NewKey,
        activate_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<StoredKey> {
        // The partial unique index on state = 'next' keeps one waiting key.
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, state, created_at, activate_at) \
             VALUES (?, ?, ?, ?, 'next', ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.private_key)
        .bind(to_json(&key.public_jwk, "JWK")?)
        .bind(stored_time(now))
        .bind(stored_time(activate_at))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} WHERE state = 'next'"))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(key_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt("no next signing key after inserting one".into()))
    }

    async fn activate_due_key(
        &self,
        now: DateTime<Utc>,
        retire_after: chrono::Duration,
    ) -> Result<Option<String>> {
        // BEGIN IMMEDIATE takes the write lock first: two instances cannot both see the
        // key as due.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let due: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT kid, activate_at FROM signing_keys WHERE state = 'next' AND activate_at <= ?",
        )
        .bind(stored_time(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((kid, at)) = due else {
            return Ok(None);
        };
        let remove_at = at.checked_add_signed(retire_after).unwrap_or(at);
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = ?, remove_at = ?, private_key = X'' \
             WHERE state = 'active'",
        )
        .bind(at)
        .bind(stored_time(remove_at))
        .execute(&mut *tx)
        .await?;
        let activated = sqlx::query(
            "UPDATE signing_keys SET state = 'active', activated_at = activate_at \
             WHERE kid = ? AND state = 'next'",
        )
        .bind(&kid)
        .execute(&mut *tx)
        .await?;
        if activated.rows_affected() != 1 {
            // Dropping the transaction rolls the retirement back.
            return Err(StoreError::Corrupt(format!(
                "the next key {kid} vanished while activating it"
            )));
        }
        tx.commit().await?;
        Ok(Some(kid))
    }

    async fn activate_key_now(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
        remove_at: DateTime<Utc>,
    ) -> Result<StoredKey> {
        let now = stored_time(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = ?, remove_at = ?, private_key = X'' \
             WHERE state = 'active'",
        )
        .bind(now)
        .bind(stored_time(remove_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM signing_keys WHERE state = 'next'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, state, created_at, activated_at) \
             VALUES (?, ?, ?, ?, 'active', ?, ?)",
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.private_key)
        .bind(to_json(&key.public_jwk, "JWK")?)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} WHERE state = 'active'"))
            .fetch_one(&mut *tx)
            .await?;
        let stored = key_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn remove_expired_keys(&self, now: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND remove_at <= ?")
                .bind(stored_time(now))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn remove_key(&self, kid: &str, activates_after: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM signing_keys WHERE kid = ? \
             AND (state = 'retired' OR (state = 'next' AND activate_at > ?))",
        )
        .bind(kid)
        .bind(stored_time(activates_after))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_audit_events(&self, events: &[NewAuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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

    async fn list_audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let mut query = sqlx::QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} WHERE 1 = 1"));
        if let Some(kind) = filter.kind {
            query.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(actor) = audit_text(filter.actor.as_deref()) {
            query.push(" AND actor = ").push_bind(actor);
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(stored_time(since));
        }
        // The id is the rowid, which every index ends with: the (at) and (kind, at)
        // indexes deliver this order without sorting the log.
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.effective_limit()));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(audit_event_from_row).collect()
    }
}
