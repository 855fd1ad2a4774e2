//! The dialect layer: everything SQLite and PostgreSQL do differently, and nothing else.
//!
//! The operations in `sql/` are written once and compiled once per dialect: `sqlite.rs`
//! and `postgres.rs` each mount that directory as a child module, after defining
//!
//! - `D`, their implementation of [`Dialect`] (stored value types, conversions, locks,
//!   migration, the audit batch insert), and `Adapter`, their store type (a struct with
//!   a `pool` field), which the operations implement [`crate::Store`] for;
//! - four macros that expand to SQL fragments, so that every statement is one `concat!`
//!   of literals, a `&'static str` that sqlx's statement cache keys on:
//!   `jsonb!()` (the cast a bound JSON text needs: `::jsonb`, or nothing),
//!   `json_text!("col")` (a JSON column read back as text), `empty_bytes!()` (the empty
//!   byte string: `X''` or `''::bytea`) and `by_bytes!()` (the collation that orders
//!   text by bytes, as SQLite always does: ` COLLATE "C"`, or nothing).
//!
//! Placeholders are `$N` in both dialects: SQLite reads `$N` as the N-th argument too.

use std::future::Future;

use tessera_core::ScopeSet;
use uuid::Uuid;

use crate::Result;
use crate::model::NewAuditEvent;

/// What a write transaction takes turns on. SQLite has one lock for every write (`BEGIN
/// IMMEDIATE`), whatever is named here; PostgreSQL locks rows by itself and takes an
/// advisory lock for what rows alone cannot serialise.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lock {
    /// Nothing beyond the rows the statements touch.
    Rows,
    /// Seeding an empty database: two processes must not both find it empty.
    Seed,
    /// The writes to one grant family: a token of a family being revoked is either seen
    /// by the revocation or stored already revoked.
    Family(Uuid),
    /// Signing-key transitions, across every instance on the database.
    Keys,
    /// One user's remembered consents: two Allows at once each add their scopes.
    Consent(Uuid),
}

/// One SQL dialect: how its schema stores ids, word lists and scopes, how it takes the
/// write lock, how it migrates and how it appends audit events in bulk.
pub(crate) trait Dialect {
    /// The sqlx driver.
    type Db: sqlx::Database;
    /// An id as bound to a statement (hyphenated text, or a native uuid).
    type Id;
    /// A list of words as bound (space-separated text, or a text array).
    type Words;

    /// Whether brute-force limits are kept in the database, shared by the processes on
    /// it ([`crate::Store::shares_rate_limits`]).
    const SHARES_RATE_LIMITS: bool;

    /// `id` as the schema stores it.
    fn id(id: Uuid) -> Self::Id;
    /// The id in column `col`.
    fn get_id(row: &<Self::Db as sqlx::Database>::Row, col: &str) -> Result<Uuid>;
    /// The id, if any, in column `col`.
    fn get_opt_id(row: &<Self::Db as sqlx::Database>::Row, col: &str) -> Result<Option<Uuid>>;

    /// `items` as a stored word list.
    fn words<T: std::fmt::Display>(items: &[T]) -> Self::Words;
    /// The words of the list in column `col`.
    fn get_words(row: &<Self::Db as sqlx::Database>::Row, col: &str) -> Result<Vec<String>>;

    /// `scopes` as stored.
    fn scopes(scopes: ScopeSet) -> Self::Words;
    /// The scopes in column `col`.
    fn get_scopes(row: &<Self::Db as sqlx::Database>::Row, col: &str) -> Result<ScopeSet>;

    /// Begins a write transaction holding `lock`.
    fn begin(
        pool: &sqlx::Pool<Self::Db>,
        lock: Lock,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>>> + Send;

    /// Before a refresh token is spent in `tx` (begun with [`Lock::Rows`]): takes the
    /// lock on its family, so that a rotation and a revocation of one family take turns.
    /// Returns `false` when there is no such token.
    fn lock_family_of_refresh_token(
        tx: &mut <Self::Db as sqlx::Database>::Connection,
        token_hash: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Before a revocation entry is inserted in `tx`, as the transaction's last lock:
    /// writers of the feed take turns, so entries become visible in `seq` order.
    fn lock_feed(
        tx: &mut <Self::Db as sqlx::Database>::Connection,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Applies the embedded migrations, once however many processes start together.
    fn migrate(pool: &sqlx::Pool<Self::Db>) -> impl Future<Output = Result<()>> + Send;

    /// Appends `events` (not empty) to the audit log, all or none, ids in their order.
    fn insert_audit_events(
        pool: &sqlx::Pool<Self::Db>,
        events: &[NewAuditEvent],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// PostgreSQL text cannot hold NUL, so a lookup by a raw, unparsed name containing one
/// (say, `%00` in a form) finds nothing, instead of failing as a bad query. Nothing
/// stored on SQLite holds one either, so both dialects answer such a lookup at once.
pub(crate) fn storable(raw: &str) -> bool {
    !raw.contains('\0')
}
