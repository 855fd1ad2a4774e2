//! The PostgreSQL adapter: one database shared by any number of Tessera processes.
//!
//! The schema uses native types (uuid, timestamptz, text[], jsonb, bytea); everything
//! dialect-specific stays in this file and in `migrations/postgres`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgExecutor, PgPool, Row};
use tessera_core::{CompanySlug, Username};
use uuid::Uuid;

use crate::convert::{
    corrupt, from_json, parse_name, parse_scopes, parse_words, scope_words, stored_time, to_json,
    words,
};
use crate::model::*;
use crate::{PURGES, PoolStatus, Result, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections each process keeps open at most. N processes need N × this below the
/// server's `max_connections` (100 by default).
pub const MAX_CONNECTIONS: u32 = 10;

/// How long a request waits for a connection before it is answered 503: also how long it
/// takes to notice that the database is away.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the first connection at start-up may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store on one PostgreSQL database, shared by every process pointed at it.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`,
    /// with `?sslmode=require` or `verify-full` for TLS). One connection is made at once so
    /// that an unreachable server, a missing database or refused credentials are reported
    /// now, in the server's words; later connections are opened on demand and reopened
    /// after an outage. Does not migrate: see [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
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
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(PgStore { pool })
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

/// PostgreSQL text cannot hold NUL, so a lookup by a raw, unparsed name containing one
/// (say, `%00` in a form) finds nothing, instead of failing as a bad query.
fn storable(raw: &str) -> bool {
    !raw.contains('\0')
}

fn company_from_row(row: &PgRow) -> Result<Company> {
    Ok(Company {
        id: row.try_get("id")?,
        slug: parse_name(row.try_get("slug")?, "company slug")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

const USER_COLUMNS: &str = "u.id, c.slug AS company, u.username, u.password_hash, u.roles, \
     u.disabled, u.created_at, u.updated_at FROM users u JOIN companies c ON c.id = u.company_id";

fn user_from_row(row: &PgRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        company: parse_name(row.try_get("company")?, "company")?,
        username: parse_name(row.try_get("username")?, "username")?,
        roles: parse_words(row.try_get::<Vec<String>, _>("roles")?, "roles")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, grant_types, scopes, \
     redirect_uris::text AS redirect_uris, access_token_format, access_token_ttl_secs, \
     refresh_token_ttl_secs, created_at FROM clients";

fn client_from_row(row: &PgRow) -> Result<Client> {
    Ok(Client {
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        grant_types: parse_words(row.try_get::<Vec<String>, _>("grant_types")?, "grant types")?,
        scopes: parse_scopes(&row.try_get::<Vec<String>, _>("scopes")?.join(" "))?,
        redirect_uris: from_json(row.try_get("redirect_uris")?, "redirect URIs")?,
        access_token_format: parse_name(row.try_get("access_token_format")?, "token format")?,
        access_token_ttl_secs: row.try_get("access_token_ttl_secs")?,
        refresh_token_ttl_secs: row.try_get("refresh_token_ttl_secs")?,
        created_at: row.try_get("created_at")?,
    })
}

const KEY_COLUMNS: &str = "kid, algorithm, private_key, public_jwk::text AS public_jwk, state, \
     created_at, activate_at, activated_at, retired_at, remove_at FROM signing_keys";

fn key_from_row(row: &PgRow) -> Result<StoredKey> {
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

fn access_token_from_row(row: &PgRow) -> Result<StoredAccessToken> {
    Ok(StoredAccessToken {
        token_hash: row.try_get("token_hash")?,
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        user_id: row.try_get("user_id")?,
        subject: row.try_get("subject")?,
        scope: parse_scopes(&row.try_get::<Vec<String>, _>("scope")?.join(" "))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        family_id: row.try_get("family_id")?,
    })
}

const AUDIT_COLUMNS: &str =
    "id, at, kind, actor, client_id, company, target, address, detail FROM audit_events";

fn audit_event_from_row(row: &PgRow) -> Result<AuditEvent> {
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

/// Serialises the writes to one grant family until the transaction ends.
async fn lock_family(tx: &mut sqlx::PgConnection, family_id: Uuid) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(family_id.to_string())
        .execute(tx)
        .await?;
    Ok(())
}

const REFRESH_COLUMNS: &str = "token_hash, family_id, client_id, user_id, scope, created_at, \
     expires_at, used_at, revoked_at FROM refresh_tokens";

fn refresh_token_from_row(row: &PgRow) -> Result<StoredRefreshToken> {
    Ok(StoredRefreshToken {
        token_hash: row.try_get("token_hash")?,
        family_id: row.try_get("family_id")?,
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        user_id: row.try_get("user_id")?,
        scope: parse_scopes(&row.try_get::<Vec<String>, _>("scope")?.join(" "))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Inserts an opaque access token unless its family is revoked.
fn insert_access_token_query(
    token: &NewAccessToken,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, client_id, user_id, subject, scope, created_at, expires_at, family_id, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT revoked_at FROM revoked_families WHERE family_id = $8))",
    )
    .bind(&token.token_hash)
    .bind(token.client_id.as_str())
    .bind(token.user_id)
    .bind(&token.subject)
    .bind(scope_words(token.scope))
    .bind(stored_time(now))
    .bind(stored_time(token.expires_at))
    .bind(token.family_id)
}

async fn insert_company<'e>(
    ex: impl PgExecutor<'e>,
    new: &NewCompany,
    now: DateTime<Utc>,
) -> Result<Company> {
    let now = stored_time(now);
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO companies (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(new.slug.as_str())
        .bind(&new.name)
        .bind(now)
        .execute(ex)
        .await
        .map_err(|e| StoreError::from_sqlx(e, || format!("company {} already exists", new.slug)))?;
    Ok(new.stored(id, now))
}

async fn insert_user<'e>(
    ex: impl PgExecutor<'e>,
    new: &NewUser,
    now: DateTime<Utc>,
) -> Result<User> {
    let now = stored_time(now);
    let id = Uuid::new_v4();
    let done = sqlx::query(
        "INSERT INTO users (id, company_id, username, password_hash, roles, disabled, created_at, updated_at) \
         SELECT $1, c.id, $2, $3, $4, false, $5, $5 FROM companies c WHERE c.slug = $6",
    )
    .bind(id)
    .bind(new.username.as_str())
    .bind(&new.password_hash)
    .bind(words(&new.roles))
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
    ex: impl PgExecutor<'e>,
    new: &NewClient,
    now: DateTime<Utc>,
) -> Result<Client> {
    let now = stored_time(now);
    sqlx::query(
        "INSERT INTO clients (client_id, name, secret_hash, grant_types, scopes, redirect_uris, \
         access_token_format, access_token_ttl_secs, refresh_token_ttl_secs, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)",
    )
    .bind(new.client_id.as_str())
    .bind(&new.name)
    .bind(&new.secret_hash)
    .bind(words(&new.grant_types))
    .bind(scope_words(new.scopes))
    .bind(to_json(&new.redirect_uris, "redirect URIs")?)
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
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        // sqlx holds a PostgreSQL advisory lock while it migrates, so processes starting
        // together on one database apply each migration once.
        MIGRATOR.run(&self.pool).await?;
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
        let mut tx = self.pool.begin().await?;
        // Two processes seeding at once: the second waits here, then finds data.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tessera.seed'))")
            .execute(&mut *tx)
            .await?;
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
        let rows = sqlx::query(
            "SELECT id, slug, name, created_at FROM companies ORDER BY slug COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(company_from_row).collect()
    }

    async fn create_user(&self, new: &NewUser, now: DateTime<Utc>) -> Result<User> {
        insert_user(&self.pool, new, now).await
    }

    async fn find_user_credentials(&self, username: &str) -> Result<Option<UserCredentials>> {
        if !storable(username) {
            return Ok(None);
        }
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} WHERE u.username = $1"))
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
        // `COLLATE "C"` orders by bytes, as SQLite does, whatever the database's locale.
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} WHERE $1::text IS NULL OR c.slug = $1 \
             ORDER BY u.username COLLATE \"C\""
        ))
        .bind(company.map(|c| c.as_str()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let now = stored_time(now);
        let row = sqlx::query(&format!(
            "WITH changed AS (UPDATE users SET disabled = $1, updated_at = $2 \
             WHERE username = $3 RETURNING *) \
             SELECT {} ",
            USER_COLUMNS.replace("FROM users u", "FROM changed u")
        ))
        .bind(disabled)
        .bind(now)
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => user_from_row(&row),
            None => Err(StoreError::NotFound(format!(
                "user {username} does not exist"
            ))),
        }
    }

    async fn delete_user(&self, username: &Username) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE username = $1")
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
            "SELECT {USER_COLUMNS} WHERE c.slug = $1 AND u.id = $2"
        ))
        .bind(company.as_str())
        .bind(id)
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
        let row = sqlx::query(&format!(
            "WITH changed AS (UPDATE users SET roles = COALESCE($1, roles), \
             disabled = COALESCE($2, disabled), password_hash = COALESCE($3, password_hash), \
             updated_at = $4 \
             WHERE id = $5 AND company_id = (SELECT id FROM companies WHERE slug = $6) \
             RETURNING *) \
             SELECT {}",
            USER_COLUMNS.replace("FROM users u", "FROM changed u")
        ))
        .bind(patch.roles.as_deref().map(words))
        .bind(patch.disabled)
        .bind(&patch.password_hash)
        .bind(now)
        .bind(id)
        .bind(company.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn delete_user_in(&self, company: &CompanySlug, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM users WHERE id = $1 \
             AND company_id = (SELECT id FROM companies WHERE slug = $2)",
        )
        .bind(id)
        .bind(company.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} WHERE u.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn insert_access_token(&self, token: &NewAccessToken, now: DateTime<Utc>) -> Result<()> {
        let Some(family) = token.family_id else {
            // No family, nothing to race: one round trip.
            insert_access_token_query(token, now)
                .execute(&self.pool)
                .await?;
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        // Taking turns with revoke_family: either it has recorded the family and the
        // insert below finds it, or it runs after this commit and revokes the token.
        lock_family(&mut tx, family).await?;
        insert_access_token_query(token, now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_access_tokens(&self, tokens: &[(NewAccessToken, DateTime<Utc>)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
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
             family_id FROM access_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(access_token_from_row).transpose()
    }

    async fn revoke_access_token(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now = stored_time(now);
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE token_hash = $2 AND client_id = $3",
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
             code_challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&code.code_hash)
        .bind(code.client_id.as_str())
        .bind(code.user_id)
        .bind(&code.redirect_uri)
        .bind(scope_words(code.scope))
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
        // One conditional UPDATE: a concurrent redemption waits for the row lock, then
        // re-checks `redeemed_at IS NULL` and finds it set.
        let row = sqlx::query(
            "UPDATE authorization_codes SET redeemed_at = $1, family_id = $2 \
             WHERE code_hash = $3 AND redeemed_at IS NULL \
             RETURNING client_id, user_id, redirect_uri, scope, code_challenge, created_at, expires_at",
        )
        .bind(now)
        .bind(family_id)
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Redemption::First(RedeemedCode {
                client_id: parse_name(row.try_get("client_id")?, "client_id")?,
                user_id: row.try_get("user_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                scope: parse_scopes(&row.try_get::<Vec<String>, _>("scope")?.join(" "))?,
                code_challenge: row.try_get("code_challenge")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                family_id,
            }));
        }
        let earlier: Option<Option<Uuid>> =
            sqlx::query_scalar("SELECT family_id FROM authorization_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?;
        match earlier {
            Some(Some(family_id)) => Ok(Redemption::Replay { family_id }),
            Some(None) => Err(corrupt("authorization code", "redeemed without a family")),
            None => Ok(Redemption::Unknown),
        }
    }

    async fn revoke_family(&self, family_id: Uuid, now: DateTime<Utc>) -> Result<u64> {
        let now = stored_time(now);
        let mut tx = self.pool.begin().await?;
        lock_family(&mut tx, family_id).await?;
        sqlx::query(
            "INSERT INTO revoked_families (family_id, revoked_at) VALUES ($1, $2) \
             ON CONFLICT (family_id) DO NOTHING",
        )
        .bind(family_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut revoked = 0;
        for table in ["refresh_tokens", "access_tokens"] {
            let done = sqlx::query(&format!(
                "UPDATE {table} SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL"
            ))
            .bind(now)
            .bind(family_id)
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
        let mut tx = self.pool.begin().await?;
        lock_family(&mut tx, token.family_id).await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, \
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             (SELECT revoked_at FROM revoked_families WHERE family_id = $2))",
        )
        .bind(&token.token_hash)
        .bind(token.family_id)
        .bind(token.client_id.as_str())
        .bind(token.user_id)
        .bind(scope_words(token.scope))
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
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.session_hash)
        .bind(session.user_id)
        .bind(stored_time(now))
        .bind(stored_time(session.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_login_session(&self, session_hash: &str) -> Result<Option<LoginSession>> {
        let row = sqlx::query(
            "SELECT user_id, created_at, expires_at FROM login_sessions WHERE session_hash = $1",
        )
        .bind(session_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(LoginSession {
                user_id: row.try_get("user_id")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<StoredRefreshToken>> {
        let row = sqlx::query(&format!("SELECT {REFRESH_COLUMNS} WHERE token_hash = $1"))
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
        let mut tx = self.pool.begin().await?;
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(family) = family else {
            return Ok(Rotation::Unknown);
        };
        // Rotations and revocations of one family take turns: a revocation that starts
        // while this rotation runs waits for it and then reaches the successor; a
        // rotation that starts after a revocation finds the token revoked. Among
        // rotations of one token, the conditional UPDATE lets only the first through.
        lock_family(&mut tx, family).await?;
        let spent = sqlx::query(&format!(
            "UPDATE refresh_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
             RETURNING {}",
            REFRESH_COLUMNS.trim_end_matches(" FROM refresh_tokens")
        ))
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            let found = sqlx::query(&format!("SELECT {REFRESH_COLUMNS} WHERE token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
            let found = found.as_ref().map(refresh_token_from_row).transpose()?;
            return Ok(Rotation::not_spent(found));
        };
        let spent = refresh_token_from_row(&spent)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(successor_hash)
        .bind(spent.family_id)
        .bind(spent.client_id.as_str())
        .bind(spent.user_id)
        .bind(scope_words(spent.scope))
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
            purged += sqlx::query(&sql.replace('?', "$1"))
                .bind(if *after_grace { grace } else { now })
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
        if !storable(client_id) {
            return Ok(None);
        }
        let row = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} WHERE client_id = $1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} ORDER BY client_id COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn published_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} ORDER BY created_at, kid COLLATE \"C\""
        ))
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
        // The partial unique index on state = 'active' makes this a no-op when another
        // process got there first; the SELECT then returns the winner.
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, state, created_at, activated_at) \
             VALUES ($1, $2, $3, $4::jsonb, 'active', $5, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.private_key)
        .bind(to_json(&key.public_jwk, "JWK")?)
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
             VALUES ($1, $2, $3, $4::jsonb, 'next', $5, $6) ON CONFLICT DO NOTHING",
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
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        let due: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT kid, activate_at FROM signing_keys WHERE state = 'next' AND activate_at <= $1",
        )
        .bind(stored_time(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((kid, at)) = due else {
            return Ok(None);
        };
        let remove_at = at.checked_add_signed(retire_after).unwrap_or(at);
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, remove_at = $2, \
             private_key = ''::bytea WHERE state = 'active'",
        )
        .bind(at)
        .bind(stored_time(remove_at))
        .execute(&mut *tx)
        .await?;
        let activated = sqlx::query(
            "UPDATE signing_keys SET state = 'active', activated_at = activate_at \
             WHERE kid = $1 AND state = 'next'",
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
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, remove_at = $2, \
             private_key = ''::bytea WHERE state = 'active'",
        )
        .bind(now)
        .bind(stored_time(remove_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM signing_keys WHERE state = 'next'")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, state, created_at, activated_at) \
             VALUES ($1, $2, $3, $4::jsonb, 'active', $5, $5) RETURNING {}",
            KEY_COLUMNS.trim_end_matches(" FROM signing_keys")
        ))
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.private_key)
        .bind(to_json(&key.public_jwk, "JWK")?)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let stored = key_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn remove_expired_keys(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND remove_at <= $1")
                .bind(stored_time(now))
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn remove_key(&self, kid: &str, activates_after: DateTime<Utc>) -> Result<bool> {
        if !storable(kid) {
            return Ok(false);
        }
        // Under the key lock: a removal cannot slip between an activation's read of the
        // next key and its update.
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        let done = sqlx::query(
            "DELETE FROM signing_keys WHERE kid = $1 \
             AND (state = 'retired' OR (state = 'next' AND activate_at > $2))",
        )
        .bind(kid)
        .bind(stored_time(activates_after))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_audit_events(&self, events: &[NewAuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let mut query = sqlx::QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} WHERE true"));
        if let Some(kind) = filter.kind {
            query.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(actor) = audit_text(filter.actor.as_deref()) {
            query.push(" AND actor = ").push_bind(actor);
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(stored_time(since));
        }
        // The (at) and (kind, at) indexes deliver the time order; only events of one
        // instant are sorted by id.
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.effective_limit()));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(audit_event_from_row).collect()
    }
}

/// Serialises key transitions across every instance on the database until the
/// transaction ends.
async fn lock_keys(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('tessera.signing_keys', 0))")
        .execute(tx)
        .await?;
    Ok(())
}
