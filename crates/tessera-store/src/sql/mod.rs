//! The store's operations, written once for both dialects, one file per area: `users`
//! (with companies), `clients`, `tokens` (authorization codes, refresh tokens and their
//! families, opaque access tokens, login sessions, the purge), `revocations` (the feed,
//! and revoking everything of a user or a client), `keys`, `audit` and `rate_limits`
//! (brute-force limits shared by every process on the database).
//!
//! This directory is compiled once per dialect: `sqlite.rs` and `postgres.rs` each mount
//! it as their child module `sql`, with their `D` (a [`crate::dialect::Dialect`]),
//! their `Adapter` (the store type) and their SQL fragment macros in scope. Every
//! statement is a `concat!` of literals with `$N` placeholders: one static text per
//! dialect, prepared once per connection.

mod audit;
#[macro_use]
mod clients;
mod keys;
mod rate_limits;
mod revocations;
#[macro_use]
mod users;
pub(crate) mod tokens;

use crate::dialect::Dialect;
use crate::{PoolStatus, Result, StoreError};

use super::{Adapter, D};

/// The dialect's driver.
type Db = <D as Dialect>::Db;
/// The dialect's pool.
type Pool = sqlx::Pool<Db>;
/// A row of the dialect.
type Row = <Db as sqlx::Database>::Row;
/// A pool, or a transaction's connection, of the dialect.
trait Exec<'e>: sqlx::Executor<'e, Database = Db> {}
impl<'e, E: sqlx::Executor<'e, Database = Db>> Exec<'e> for E {}
/// A statement with its arguments bound.
type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// A point in time, as every operation takes it.
type Time = chrono::DateTime<chrono::Utc>;
/// How a row becomes a value.
type FromRow<T> = fn(&Row) -> Result<T>;

/// The row that `query` finds, if any, converted by `from_row`.
async fn find<T>(pool: &Pool, query: Query<'_>, from_row: FromRow<T>) -> Result<Option<T>> {
    query
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every row that `query` finds, in its order, converted by `from_row`.
async fn find_all<T>(pool: &Pool, query: Query<'_>, from_row: FromRow<T>) -> Result<Vec<T>> {
    query.fetch_all(pool).await?.iter().map(from_row).collect()
}

/// Implements [`crate::Store`] for the dialect's adapter: apart from the first few
/// methods, each hands the pool to the function of the same name in its area's module.
/// Every call that finds the database unavailable tells the adapter (`saw_outage`), and a
/// call marked `clients` (a change to the clients) empties the adapter's client cache.
macro_rules! store {
    ($( $area:ident :: $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(, $changes:ident)?; )*) => {
        #[async_trait::async_trait]
        impl crate::Store for Adapter {
            async fn migrate(&self) -> Result<()> {
                D::migrate(&self.pool).await
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::Unavailable)?;
                Ok(())
            }

            fn shares_rate_limits(&self) -> bool {
                D::SHARES_RATE_LIMITS
            }

            fn forget_clients(&self) {
                self.clients.empty();
            }

            fn pool_status(&self) -> PoolStatus {
                PoolStatus {
                    open: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn find_client(&self, client_id: &str) -> Result<Option<crate::Client>> {
                self.observed(self.find_client_kept(client_id).await)
            }

            async fn find_client_with_rate_limits(
                &self,
                client_id: &str,
                keys: [&str; 2],
            ) -> Result<(Option<crate::Client>, [Option<i64>; 2])> {
                self.observed(self.find_client_with_rate_limits_kept(client_id, keys).await)
            }

            $(
                async fn $name(&self, $( $arg: $ty ),*) -> Result<$ret> {
                    let done = self.observed($area::$name(&self.pool, $( $arg ),*).await);
                    // A change to the clients: what this store kept may be stale now.
                    $( store!(@$changes self); )?
                    done
                }
            )*
        }
    };
    (@clients $store:ident) => {
        $store.clients.empty()
    };
}

/// Clients from memory (see `crate::client_cache`), and what every call's outcome tells.
impl Adapter {
    /// `done`, after telling the adapter when it found the database away.
    fn observed<T>(&self, done: Result<T>) -> Result<T> {
        if let Err(err) = &done {
            self.saw_outage(err);
        }
        done
    }

    /// The client `client_id` from memory, once the cache reflects the changes made
    /// elsewhere; else the epoch to keep it under once read.
    async fn kept_client(
        &self,
        client_id: &str,
    ) -> Result<std::result::Result<crate::Client, u64>> {
        self.clients
            .check(|| clients::client_generation(&self.pool))
            .await?;
        Ok(self.clients.get(client_id))
    }

    async fn find_client_kept(&self, client_id: &str) -> Result<Option<crate::Client>> {
        let epoch = match self.kept_client(client_id).await? {
            Ok(client) => return Ok(Some(client)),
            Err(epoch) => epoch,
        };
        let found = clients::find_client(&self.pool, client_id).await?;
        if let Some(client) = &found {
            self.clients.keep(epoch, client);
        }
        Ok(found)
    }

    async fn find_client_with_rate_limits_kept(
        &self,
        client_id: &str,
        keys: [&str; 2],
    ) -> Result<(Option<crate::Client>, [Option<i64>; 2])> {
        let epoch = match self.kept_client(client_id).await? {
            Ok(client) => {
                let limits = rate_limits::rate_limits(&self.pool, keys).await?;
                return Ok((Some(client), limits));
            }
            Err(epoch) => epoch,
        };
        let found = rate_limits::find_client_with_rate_limits(&self.pool, client_id, keys).await?;
        if let (Some(client), _) = &found {
            self.clients.keep(epoch, client);
        }
        Ok(found)
    }
}

store! {
    users::seed_if_empty(seed: &crate::Seed, now: Time) -> bool, clients;
    users::create_company(new: &crate::NewCompany, now: Time) -> crate::Company;
    users::list_companies() -> Vec<crate::Company>;
    users::create_user(new: &crate::NewUser, now: Time) -> crate::User;
    users::find_user_credentials(username: &str) -> Option<crate::UserCredentials>;
    users::list_users(company: Option<&tessera_core::CompanySlug>) -> Vec<crate::User>;
    users::set_user_disabled(username: &tessera_core::Username, disabled: bool, now: Time) -> crate::User;
    users::delete_user(username: &tessera_core::Username, now: Time) -> ();
    users::find_user(company: &tessera_core::CompanySlug, id: uuid::Uuid) -> Option<crate::User>;
    users::update_user(company: &tessera_core::CompanySlug, id: uuid::Uuid, patch: &crate::UserPatch, now: Time) -> Option<crate::User>;
    users::delete_user_in(company: &tessera_core::CompanySlug, id: uuid::Uuid, now: Time) -> bool;
    users::update_company_user(company: &tessera_core::CompanySlug, id: uuid::Uuid, patch: &crate::UserPatch, now: Time) -> Option<crate::User>;
    users::delete_company_user(company: &tessera_core::CompanySlug, id: uuid::Uuid, now: Time) -> bool;
    users::find_user_by_id(id: uuid::Uuid) -> Option<crate::User>;
    tokens::insert_access_token(token: &crate::NewAccessToken, now: Time) -> ();
    tokens::find_access_token(token_hash: &str) -> Option<crate::StoredAccessToken>;
    tokens::find_access_token_with_user(token_hash: &str) -> Option<(crate::StoredAccessToken, Option<crate::User>)>;
    tokens::insert_access_tokens(tokens: &[(crate::NewAccessToken, Time)]) -> ();
    tokens::revoke_access_token(token_hash: &str, client_id: &str, now: Time) -> bool;
    tokens::insert_authorization_code(code: &crate::NewAuthorizationCode, now: Time) -> ();
    tokens::redeem_authorization_code(code_hash: &str, family_id: uuid::Uuid, now: Time) -> crate::Redemption;
    tokens::revoke_family(family_id: uuid::Uuid, now: Time, jwt_until: Option<Time>) -> u64;
    tokens::insert_refresh_token(token: &crate::NewRefreshToken, now: Time) -> ();
    tokens::find_refresh_token(token_hash: &str) -> Option<crate::StoredRefreshToken>;
    tokens::rotate_refresh_token(token_hash: &str, successor_hash: &str, now: Time) -> crate::Rotation;
    tokens::insert_login_session(session: &crate::NewLoginSession, now: Time) -> ();
    tokens::find_login_session(session_hash: &str) -> Option<crate::LoginSession>;
    tokens::delete_login_session(session_hash: &str) -> bool;
    tokens::find_consent(user_id: uuid::Uuid, client_id: &str) -> Option<tessera_core::ScopeSet>;
    tokens::remember_consent(user_id: uuid::Uuid, client_id: &str, scope: tessera_core::ScopeSet, now: Time) -> tessera_core::ScopeSet;
    tokens::purge_expired(now: Time) -> u64;
    clients::create_client(new: &crate::NewClient, now: Time) -> crate::Client, clients;
    clients::list_clients() -> Vec<crate::Client>;
    keys::published_keys() -> Vec<crate::StoredKey>;
    keys::active_key() -> Option<crate::StoredKey>;
    keys::insert_active_key_if_none(key: &crate::NewKey, now: Time) -> crate::StoredKey;
    keys::insert_next_key_if_none(key: &crate::NewKey, activate_at: Time, now: Time) -> crate::StoredKey;
    keys::activate_due_key(now: Time, retire_after: chrono::Duration) -> Option<String>;
    keys::activate_key_now(key: &crate::NewKey, now: Time, remove_at: Time) -> crate::StoredKey;
    keys::remove_expired_keys(now: Time) -> u64;
    keys::remove_key(kid: &str, activates_after: Time) -> bool;
    keys::seal_private_keys(keys: &[crate::KeySealing]) -> u64;
    revocations::revoke_jwt(jti: &str, until: Time, now: Time) -> ();
    revocations::revoke_user(id: uuid::Uuid, now: Time) -> Option<crate::User>;
    revocations::delete_client(client_id: &str, now: Time) -> bool, clients;
    revocations::rotate_client_secret(client_id: &str, secret_hash: &str, revoke_tokens: bool, now: Time) -> crate::Client, clients;
    revocations::revocations(after: i64, now: Time) -> crate::RevocationPage;
    revocations::revocation_head() -> i64;
    revocations::jwt_revoked(token: crate::TokenIdentity<'_>, now: Time) -> bool;
    audit::record_audit_events(events: &[crate::NewAuditEvent]) -> ();
    audit::list_audit_events(filter: &crate::AuditFilter) -> Vec<crate::AuditEvent>;
    audit::purge_audit_events(before: Time) -> u64;
    rate_limits::acquire_rate_limit(key: &str, rule: crate::LimitRule, now_ms: i64) -> crate::RateLimitSlot;
    rate_limits::refund_rate_limit(key: &str, rule: crate::LimitRule, now_ms: i64) -> ();
    rate_limits::purge_rate_limits(now_ms: i64) -> u64;
}
