#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod audit;
mod batch;
mod client_cache;
mod convert;
mod dialect;
mod error;
mod model;
mod pool;
mod postgres;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tessera_core::{CompanySlug, ScopeSet, Username};
use uuid::Uuid;

pub use audit::{AuditLog, AuditWriter, DURABLE_WAIT as AUDIT_DURABLE_WAIT};
pub use batch::{TOKEN_BATCH, TokenBatcher};
pub use client_cache::CHECK_EVERY as CLIENT_CHECK_EVERY;
pub use error::StoreError;
pub use model::KeySealing;
pub use model::{
    AuditEvent, AuditFilter, AuditKind, Client, Company, KeyState, LoginSession, NewAccessToken,
    NewAuditEvent, NewAuthorizationCode, NewClient, NewCompany, NewKey, NewLoginSession,
    NewRefreshToken, NewUser, RedeemedCode, Redemption, Revocation, RevocationPage, Revoked,
    Rotation, Seed, StoredAccessToken, StoredKey, StoredRefreshToken, TokenIdentity,
    UnknownAuditKind, User, UserCredentials, UserPatch,
};
pub use pool::PoolStatus;
pub use postgres::{POSTGRES_POOL_SIZE, PgStore};
pub use sqlite::{SQLITE_POOL_SIZE, SqliteStore};

/// How long a spent or expired authorization code is kept to recognise a replay, and a
/// revoked family's record after its last token is gone.
pub const PURGE_GRACE: chrono::Duration = chrono::Duration::days(1);

/// The longest access-token lifetime Tessera issues (a day). An entry of the revocation
/// feed that covers every token issued up to a moment is kept this long after it, plus
/// [`REVOCATION_LEEWAY`].
pub const LONGEST_ACCESS_TOKEN: chrono::Duration = chrono::Duration::days(1);

/// How long past a token's expiry a revocation entry is kept: verifiers accept a token a
/// little after its `exp` (the guard's default leeway is 30 s).
pub const REVOCATION_LEEWAY: chrono::Duration = chrono::Duration::seconds(60);

/// The most audit events one statement of [`Store::purge_audit_events`] deletes: small
/// enough that no batch holds a lock for long, large enough that a backlog of millions
/// goes in a few thousand statements.
pub const AUDIT_PURGE_BATCH: i64 = 1000;

/// What a store operation returns.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A rate limit kept in the database: one more event every `period_ms`, up to
/// `tolerance_ms` (burst × period) ahead of now (the generic cell rate algorithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitRule {
    /// Milliseconds after which one more event is allowed. At least 1.
    pub period_ms: i64,
    /// How far ahead of now a key's `whole_at` may be: burst × period.
    pub tolerance_ms: i64,
}

/// What [`Store::acquire_rate_limit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitSlot {
    /// A slot was taken; the key's allowance is now whole at `whole_at` (Unix ms).
    Taken {
        /// When the key's allowance is whole again, this slot included.
        whole_at: i64,
    },
    /// The key is over its quota; nothing was taken. Its allowance is whole at
    /// `whole_at`, from which the caller computes `Retry-After`.
    Refused {
        /// When the key's allowance is whole again.
        whole_at: i64,
    },
}

/// Tessera's persistence, one implementation per database dialect.
///
/// Every method that records a time takes `now` from the caller, so that tests can pin the
/// clock and every process agrees on what it wrote.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Applies the embedded migrations that the database has not seen yet.
    async fn migrate(&self) -> Result<()>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// The connection pool's state now, for the metrics.
    fn pool_status(&self) -> PoolStatus;

    /// Inserts `seed` in one transaction if the database has no company, user or client
    /// yet. Returns whether it did.
    async fn seed_if_empty(&self, seed: &Seed, now: DateTime<Utc>) -> Result<bool>;

    /// Creates a company. A taken slug is a [`StoreError::Conflict`].
    async fn create_company(&self, new: &NewCompany, now: DateTime<Utc>) -> Result<Company>;

    /// All companies, by slug.
    async fn list_companies(&self) -> Result<Vec<Company>>;

    /// Creates a user in an existing company. An unknown company is a
    /// [`StoreError::NotFound`]; a taken username a [`StoreError::Conflict`].
    async fn create_user(&self, new: &NewUser, now: DateTime<Utc>) -> Result<User>;

    /// The user with this exact username and their password hash, if any. The username is
    /// not parsed first, so that a malformed one costs the same as an unknown one.
    async fn find_user_credentials(&self, username: &str) -> Result<Option<UserCredentials>>;

    /// Users, by username; only those of `company` when given.
    async fn list_users(&self, company: Option<&CompanySlug>) -> Result<Vec<User>>;

    /// Disables or enables a user. Disabling revokes everything issued to them, as
    /// [`Store::revoke_user`] does, in the same transaction. An unknown user is a
    /// [`StoreError::NotFound`].
    async fn set_user_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<User>;

    /// Deletes a user and everything issued to them, and adds a `sub` entry to the
    /// revocation feed for their JWTs, in one transaction. An unknown user is a
    /// [`StoreError::NotFound`].
    async fn delete_user(&self, username: &Username, now: DateTime<Utc>) -> Result<()>;

    /// The user with this id in `company`; `None` when there is none there (whether or
    /// not the id exists in another company).
    async fn find_user(&self, company: &CompanySlug, id: Uuid) -> Result<Option<User>>;

    /// Applies `patch` to the user with this id in `company`; `None` when there is none.
    /// A new password, changed roles or disabling revokes everything issued to the user
    /// (as [`Store::revoke_user`]) in the same transaction.
    async fn update_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<User>>;

    /// Deletes the user with this id in `company`, with a `sub` entry in the revocation
    /// feed as [`Store::delete_user`]; whether there was one.
    async fn delete_user_in(
        &self,
        company: &CompanySlug,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// [`update_user`](Store::update_user) for a company's own admins: a patch that would
    /// leave `company` with no enabled admin (demoting or disabling the last one) is a
    /// [`StoreError::Conflict`] and changes nothing. The check and the write are one
    /// transaction, with the company's changes taking turns, so two admins demoting each
    /// other at once cannot both succeed.
    async fn update_company_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<User>>;

    /// [`delete_user_in`](Store::delete_user_in) for a company's own admins: deleting the
    /// company's last enabled admin is a [`StoreError::Conflict`] and changes nothing.
    async fn delete_company_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// The user with this id, in whichever company.
    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>>;

    /// Stores an opaque access token's digest. A token of a grant family that is already
    /// revoked is stored revoked: a request that redeemed a code or rotated a refresh
    /// token just before a replay revoked its family still answers, but with tokens that
    /// are dead, as if the revocation had come after it.
    async fn insert_access_token(&self, token: &NewAccessToken, now: DateTime<Utc>) -> Result<()>;

    /// The opaque access token with this digest, active or not.
    async fn find_access_token(&self, token_hash: &str) -> Result<Option<StoredAccessToken>>;

    /// The opaque access token with this digest, active or not, with its user as they are
    /// now when it was issued to one (`None` for a client's own token, or when the user is
    /// gone): one round trip for what a resource server and introspection need.
    async fn find_access_token_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(StoredAccessToken, Option<User>)>>;

    /// Stores several opaque access tokens of no grant family (each with the time it was
    /// issued) in one transaction: all or none. [`TokenBatcher`] uses it for group commit.
    async fn insert_access_tokens(&self, tokens: &[(NewAccessToken, DateTime<Utc>)]) -> Result<()>;

    /// Revokes the token with this digest if `client_id` owns it; whether one was found.
    /// Revoking twice keeps the first time.
    async fn revoke_access_token(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Stores an authorization code's digest.
    async fn insert_authorization_code(
        &self,
        code: &NewAuthorizationCode,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Spends the code with this digest, atomically: of any number of concurrent calls
    /// for one code exactly one gets [`Redemption::First`], stamped with `family_id`; the
    /// others, and every later call, get [`Redemption::Replay`] with that family. Expiry
    /// is the caller's to check.
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Redemption>;

    /// Revokes the grant family `family_id`: its refresh tokens and the opaque access
    /// tokens issued from it, in one transaction, and records the family so that nothing
    /// more can be issued from it. With `jwt_until`, the same transaction adds a `sid`
    /// entry to the revocation feed for its JWTs, kept until then. Returns how many tokens
    /// were still unrevoked.
    async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
        jwt_until: Option<DateTime<Utc>>,
    ) -> Result<u64>;

    /// Stores the first refresh token of a family; stored revoked when the family is.
    async fn insert_refresh_token(&self, token: &NewRefreshToken, now: DateTime<Utc>)
    -> Result<()>;

    /// The refresh token with this digest, spent, revoked or not.
    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<StoredRefreshToken>>;

    /// Spends the live refresh token `token_hash` and stores `successor_hash` in its place
    /// (same family, client, user, scope and absolute end), in one transaction: of
    /// concurrent rotations of one token exactly one gets [`Rotation::Rotated`]; the others,
    /// and every later one, get [`Rotation::Reused`]. Expiry is the caller's to check.
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation>;

    /// Stores a signed-in browser's session digest.
    async fn insert_login_session(
        &self,
        session: &NewLoginSession,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The login session with this digest, expired or not: expiry is the caller's to check.
    async fn find_login_session(&self, session_hash: &str) -> Result<Option<LoginSession>>;

    /// Ends the login session with this digest (a logout). Whether there was one.
    async fn delete_login_session(&self, session_hash: &str) -> Result<bool>;

    /// The scopes `user_id` has allowed `client_id`, remembered from the consent page.
    async fn find_consent(&self, user_id: Uuid, client_id: &str) -> Result<Option<ScopeSet>>;

    /// Remembers that `user_id` allowed `client_id` the scopes `scope`, beside what was
    /// remembered before. Returns everything now remembered.
    async fn remember_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: ScopeSet,
        now: DateTime<Utc>,
    ) -> Result<ScopeSet>;

    /// Deletes what can no longer be used, and returns how many rows went: login sessions,
    /// opaque access tokens and refresh-token families past their end; authorization codes
    /// a day after they expired (kept that long so that a late replay is still recognised
    /// and revokes its grant); and the records of revoked families that have no token or
    /// code left, a day after the revocation. Each kind is deleted in a statement of its
    /// own, so a purge interrupted halfway leaves nothing inconsistent.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Registers a client. A taken client id is a [`StoreError::Conflict`].
    async fn create_client(&self, new: &NewClient, now: DateTime<Utc>) -> Result<Client>;

    /// The client with this exact id, if any. Stores keep clients in memory: a change made
    /// through this store shows at once, one made elsewhere within
    /// [`CLIENT_CHECK_EVERY`] plus one read.
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>>;

    /// Forgets the clients kept in memory, so that the next lookup reads the database:
    /// for a caller that has reason to think one changed elsewhere (a secret that does not
    /// match may have been rotated a moment ago).
    fn forget_clients(&self) {}

    /// All clients, by id.
    async fn list_clients(&self) -> Result<Vec<Client>>;

    /// Adds a `jti` entry to the revocation feed: that one JWT is refused until `until`.
    async fn revoke_jwt(&self, jti: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Result<()>;

    /// "Sign out everywhere": revokes, in one transaction, every refresh family, opaque
    /// token, unredeemed authorization code and login session of the user `id`, marks the
    /// user's `tokens_revoked_at`, and adds a `sub` entry to the feed for every JWT issued
    /// to them up to `now`. Returns the user, or `None` when there is none.
    async fn revoke_user(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<User>>;

    /// Deletes a client, with every token and code issued to it, and adds a `client_id`
    /// entry to the feed for its JWTs, in one transaction; whether there was one.
    async fn delete_client(&self, client_id: &str, now: DateTime<Utc>) -> Result<bool>;

    /// Replaces a confidential client's secret digest: the old secret stops working at
    /// once. With `revoke_tokens`, the same transaction revokes everything issued to the
    /// client, as [`Store::revoke_user`] does for a user. An unknown client is a
    /// [`StoreError::NotFound`], a public one (no secret) a [`StoreError::Conflict`].
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        revoke_tokens: bool,
        now: DateTime<Utc>,
    ) -> Result<Client>;

    /// The revocation entries in force (`until` after `now`) written after the cursor
    /// `after` (0 for all), with the feed's head.
    async fn revocations(&self, after: i64, now: DateTime<Utc>) -> Result<RevocationPage>;

    /// The feed's head: the highest `seq` written (0 when none).
    async fn revocation_head(&self) -> Result<i64>;

    /// Whether an entry in force covers a JWT with these claims.
    async fn jwt_revoked(&self, token: TokenIdentity<'_>, now: DateTime<Utc>) -> Result<bool>;

    /// The keys to publish in the JWKS (every state), oldest first.
    async fn published_keys(&self) -> Result<Vec<StoredKey>>;

    /// The key that signs now, if there is one.
    async fn active_key(&self) -> Result<Option<StoredKey>>;

    /// Stores `key` as the active key unless one is active already, atomically, and
    /// returns whichever key is active afterwards. Two processes starting on an empty
    /// database at once agree on one key.
    async fn insert_active_key_if_none(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey>;

    /// Stores `key` as the `next` key, published from `now` and signing from
    /// `activate_at`, unless a key is next already; returns whichever key is next
    /// afterwards. Instances racing to prepare a rotation agree on one key.
    async fn insert_next_key_if_none(
        &self,
        key: &NewKey,
        activate_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<StoredKey>;

    /// Carries out a scheduled activation whose time (`activate_at`) is at or before
    /// `now`, in one transaction: the active key is retired (its private key erased, its
    /// removal set to `retire_after` after the activation) and the next key becomes
    /// active, both as of `activate_at`, whoever runs it and however late. Returns the kid
    /// now active, or `None` when nothing was due (or another instance did it first).
    async fn activate_due_key(
        &self,
        now: DateTime<Utc>,
        retire_after: chrono::Duration,
    ) -> Result<Option<String>>;

    /// Emergency rotation: stores `key` as active at `now` and retires the active key at
    /// once (private key erased, removal at `remove_at`), in one transaction. A `next` key
    /// is deleted in the same transaction: it could be due already, and it may have leaked
    /// with the key being replaced.
    async fn activate_key_now(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
        remove_at: DateTime<Utc>,
    ) -> Result<StoredKey>;

    /// Deletes the retired keys whose `remove_at` is at or before `now`; returns how many.
    async fn remove_expired_keys(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Deletes the `retired` key `kid`, or the `next` key `kid` if it activates after
    /// `activates_after`, at once, taking it out of the JWKS. The active key, and a next
    /// key that may be signing already by some instance's clock, are never removed.
    /// Returns whether a key was deleted.
    async fn remove_key(&self, kid: &str, activates_after: DateTime<Utc>) -> Result<bool>;

    /// Seals stored private keys in place, in one transaction under the key lock: the row
    /// of each `kid` that still holds its `plaintext` gets `sealed`; a key erased, removed
    /// or sealed meanwhile is left as it is. Returns how many rows were sealed.
    async fn seal_private_keys(&self, keys: &[KeySealing]) -> Result<u64>;

    /// Appends `events` to the audit log in one transaction: all or none, so a batch that
    /// failed can be retried whole without writing anything twice. Their ids follow the
    /// order of `events`. Only [`Store::purge_audit_events`] ever deletes them. Servers
    /// record through an [`AuditLog`], which batches events off the request path, rather
    /// than call this per event.
    async fn record_audit_events(&self, events: &[NewAuditEvent]) -> Result<()>;

    /// The audit events that `filter` selects, newest first (ties by id, highest
    /// first), at most [`AuditFilter::effective_limit`] of them.
    async fn list_audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;

    /// Deletes the audit events recorded before `before` (those at `before` or later
    /// stay), in batches of [`AUDIT_PURGE_BATCH`] each committed on its own, and returns
    /// how many went. Purging concurrently from several processes is harmless: each
    /// event is deleted, and counted, once. Recording that a purge happened is the
    /// caller's ([`AuditKind::AuditPurged`]).
    async fn purge_audit_events(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Whether brute-force limits belong in this store's database rather than in each
    /// process's memory: true for PostgreSQL, which any number of servers share; false
    /// for SQLite (one machine) and for stores that keep no limits.
    fn shares_rate_limits(&self) -> bool {
        false
    }

    /// Takes one slot of `key` under `rule` at `now_ms`, atomically across every process
    /// on the database: of concurrent calls on a key, exactly as many succeed as its
    /// allowance holds. Refuses (taking nothing) when the key is over its quota.
    async fn acquire_rate_limit(
        &self,
        key: &str,
        rule: LimitRule,
        now_ms: i64,
    ) -> Result<RateLimitSlot> {
        let _ = (key, rule, now_ms);
        Err(StoreError::Config(
            "this store keeps no shared rate limits".into(),
        ))
    }

    /// Gives back one slot of `key` (the attempt was not a failure); never credits more
    /// than the key had taken. A key with no row is left alone.
    async fn refund_rate_limit(&self, key: &str, rule: LimitRule, now_ms: i64) -> Result<()> {
        let _ = (key, rule, now_ms);
        Ok(())
    }

    /// The client `client_id` (as [`Store::find_client`]) and the stored `whole_at` of
    /// each of `keys` (`None` when it has none), in one round trip: what a client
    /// authentication reads when its failures are limited in the database.
    async fn find_client_with_rate_limits(
        &self,
        client_id: &str,
        keys: [&str; 2],
    ) -> Result<(Option<Client>, [Option<i64>; 2])> {
        let _ = keys;
        Ok((self.find_client(client_id).await?, [None, None]))
    }

    /// Deletes the limits whose allowance is whole at or before `now_ms` (they hold
    /// nothing); returns how many.
    async fn purge_rate_limits(&self, now_ms: i64) -> Result<u64> {
        let _ = now_ms;
        Ok(0)
    }
}

/// Connects to the database named by `url` and applies pending migrations.
///
/// The scheme picks the adapter: `sqlite://PATH` (created when missing) or
/// `sqlite::memory:` for SQLite, `postgres://` or `postgresql://` for PostgreSQL (the
/// database must exist; it may be empty).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with_pool(url, None).await
}

/// [`open`], with at most `pool_size` connections open at once, or the backend's default
/// ([`SQLITE_POOL_SIZE`], [`POSTGRES_POOL_SIZE`]) when `None`.
pub async fn open_with_pool(url: &str, pool_size: Option<u32>) -> Result<Arc<dyn Store>> {
    if pool_size == Some(0) {
        return Err(StoreError::Config(
            "the database pool size must be at least 1".into(),
        ));
    }
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect_with_pool(url, pool_size).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PgStore::connect_with_pool(url, pool_size).await?)
    } else {
        return Err(StoreError::Config(
            "unsupported database URL: expected sqlite://PATH or postgres://USER@HOST/DATABASE"
                .into(),
        ));
    };
    store.migrate().await?;
    Ok(store)
}

/// `url` with any password replaced by `***`, fit for logs and error messages.
///
/// Errs on the side of hiding: everything between `user:` and the last `@` goes (a password
/// may hold an unencoded `/`, `?` or `#`), and so does everything from a `password=` query
/// parameter on. A value that is neither a SQLite path nor a `scheme://` URL (say, a
/// `key=value` connection string) is not shown at all.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a value that is not a database URL)".to_owned();
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let mut kept = Vec::new();
            for pair in query.split('&') {
                let key = pair.split_once('=').map_or(pair, |(key, _)| key);
                if percent_decoded(key).eq_ignore_ascii_case("password") {
                    // An unencoded `&` may belong to the password: hide the rest too.
                    kept.push(format!("{key}=***"));
                    break;
                }
                kept.push(pair.to_owned());
            }
            format!("{path}?{}", kept.join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// `%XX` escapes decoded, for comparing a query key as the driver will read it.
fn percent_decoded(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "tests/lib.rs"]
mod tests;
