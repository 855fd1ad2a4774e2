//! Everything a grant issues: authorization codes, refresh tokens and their grant
//! families, opaque access tokens and login sessions, and the purge of what has expired.
//!
//! A one-time secret is spent by one conditional statement (`UPDATE … WHERE … IS NULL
//! RETURNING …`), so of concurrent attempts exactly one wins. Writes that concern a grant
//! family take [`Lock::Family`], so a family's revocation and any token issued from it
//! take turns: the token is either seen by the revocation or stored already revoked.

use sqlx::Row as _;
use uuid::Uuid;

use super::users::{JOINED_USER_COLUMNS, user_from_columns};
use super::{D, Exec, Pool, Row, Time, find};
use crate::Result;
use crate::convert::{corrupt, parse_name, stored_time};
use crate::dialect::{Dialect, Lock};
use crate::model::{
    LoginSession, NewAccessToken, NewAuthorizationCode, NewLoginSession, NewRefreshToken,
    RedeemedCode, Redemption, Revoked, Rotation, StoredAccessToken, StoredRefreshToken, User,
};

/// The statements of [`purge_expired`], in order, each committed on its own (a backlog
/// never holds the write lock long) and each with exactly one cutoff parameter (`$1`):
/// `false` for now, `true` for now minus [`crate::PURGE_GRACE`]. PostgreSQL compares
/// `timestamptz` values; SQLite compares the RFC 3339 text sqlx writes, always in UTC,
/// whose byte order is time order (`+` sorts below `.` and the digits, so a shorter
/// fraction is a smaller one). Families go last, once nothing of theirs is left.
pub(crate) const PURGES: &[(&str, bool)] = &[
    ("DELETE FROM login_sessions WHERE expires_at < $1", false),
    // Refresh tokens before access tokens: the order revoke_family writes them in.
    ("DELETE FROM refresh_tokens WHERE expires_at < $1", false),
    ("DELETE FROM access_tokens WHERE expires_at < $1", false),
    (
        "DELETE FROM authorization_codes WHERE expires_at < $1",
        true,
    ),
    (
        "DELETE FROM revoked_families WHERE revoked_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = revoked_families.family_id) \
         AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = revoked_families.family_id) \
         AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.family_id = revoked_families.family_id)",
        true,
    ),
    // The newest entry stays, even expired, so that the feed's head never moves back.
    (
        "DELETE FROM revocations WHERE until < $1 \
         AND seq < (SELECT MAX(seq) FROM revocations)",
        false,
    ),
];

macro_rules! refresh_columns {
    () => {
        "token_hash, family_id, client_id, user_id, scope, created_at, expires_at, used_at, \
         revoked_at, auth_time"
    };
}

/// An opaque access token, stored revoked when its family is.
const INSERT_ACCESS: &str = "INSERT INTO access_tokens (token_hash, client_id, user_id, subject, \
     scope, created_at, expires_at, family_id, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
     $8, (SELECT revoked_at FROM revoked_families WHERE family_id = $8))";
const FIND_ACCESS: &str = "SELECT token_hash, client_id, user_id, subject, scope, created_at, \
     expires_at, revoked_at, family_id FROM access_tokens WHERE token_hash = $1";
/// An opaque token with its user (the `u_` columns, null for a client's token or a user
/// who is gone).
const FIND_ACCESS_WITH_USER: &str = concat!(
    "SELECT t.token_hash, t.client_id, t.user_id, t.subject, t.scope, t.created_at, \
     t.expires_at, t.revoked_at, t.family_id, ",
    joined_user!(),
    " FROM access_tokens t LEFT JOIN users u ON u.id = t.user_id \
     LEFT JOIN companies c ON c.id = u.company_id WHERE t.token_hash = $1"
);
const REVOKE_ACCESS: &str = "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $1) \
     WHERE token_hash = $2 AND client_id = $3";
const INSERT_CODE: &str = "INSERT INTO authorization_codes (code_hash, client_id, user_id, \
     redirect_uri, scope, code_challenge, created_at, expires_at, nonce, auth_time) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const REDEEM_CODE: &str = "UPDATE authorization_codes SET redeemed_at = $1, family_id = $2 \
     WHERE code_hash = $3 AND redeemed_at IS NULL \
     RETURNING client_id, user_id, redirect_uri, scope, code_challenge, created_at, expires_at, \
     nonce, auth_time";
const CODE_FAMILY: &str = "SELECT family_id FROM authorization_codes WHERE code_hash = $1";
const RECORD_REVOKED_FAMILY: &str = "INSERT INTO revoked_families (family_id, revoked_at) \
     VALUES ($1, $2) ON CONFLICT (family_id) DO NOTHING";
/// The family's tables, refresh tokens first: the order every family write takes.
const REVOKE_FAMILY: [&str; 2] = [
    "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    "UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
];
/// The first refresh token of a family, stored revoked when the family is.
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, \
     user_id, scope, created_at, expires_at, auth_time, revoked_at) VALUES ($1, $2, $3, $4, $5, \
     $6, $7, $8, (SELECT revoked_at FROM revoked_families WHERE family_id = $2))";
/// A successor, of a family that the rotation holds the lock of and found live.
const INSERT_SUCCESSOR: &str = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, \
     user_id, scope, created_at, expires_at, auth_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const FIND_REFRESH: &str = concat!(
    "SELECT ",
    refresh_columns!(),
    " FROM refresh_tokens WHERE token_hash = $1"
);
/// Spends a live token of a family not recorded as revoked: revoking everything of a
/// user or a client records the families first, and on PostgreSQL a successor that a
/// concurrent rotation was storing is not among the rows its update saw.
const SPEND_REFRESH: &str = concat!(
    "UPDATE refresh_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM revoked_families f \
     WHERE f.family_id = refresh_tokens.family_id) RETURNING ",
    refresh_columns!()
);
const INSERT_SESSION: &str = "INSERT INTO login_sessions (session_hash, user_id, created_at, \
     expires_at) VALUES ($1, $2, $3, $4)";
const FIND_SESSION: &str =
    "SELECT user_id, created_at, expires_at FROM login_sessions WHERE session_hash = $1";
const DELETE_SESSION: &str = "DELETE FROM login_sessions WHERE session_hash = $1";
/// Remembers the consent, widening what was remembered: the scopes are the union of the
/// two, computed in the transaction that holds the user's consent lock.
const FIND_CONSENT: &str = "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2";
const UPSERT_CONSENT: &str = "INSERT INTO consents (user_id, client_id, scope, granted_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) \
     DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at";

fn access_token_from_row(row: &Row) -> Result<StoredAccessToken> {
    Ok(StoredAccessToken {
        token_hash: row.try_get("token_hash")?,
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        user_id: D::get_opt_id(row, "user_id")?,
        subject: row.try_get("subject")?,
        scope: D::get_scopes(row, "scope")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        family_id: D::get_opt_id(row, "family_id")?,
    })
}

fn refresh_token_from_row(row: &Row) -> Result<StoredRefreshToken> {
    Ok(StoredRefreshToken {
        token_hash: row.try_get("token_hash")?,
        family_id: D::get_id(row, "family_id")?,
        client_id: parse_name(row.try_get("client_id")?, "client_id")?,
        user_id: D::get_id(row, "user_id")?,
        scope: D::get_scopes(row, "scope")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        auth_time: row.try_get("auth_time")?,
    })
}

/// Stores `token` through `ex`, a pool or a transaction, issued at `now`.
async fn store_access_token(ex: impl Exec<'_>, token: &NewAccessToken, now: Time) -> Result<()> {
    sqlx::query(INSERT_ACCESS)
        .bind(&token.token_hash)
        .bind(token.client_id.as_str())
        .bind(token.user_id.map(D::id))
        .bind(&token.subject)
        .bind(D::scopes(token.scope))
        .bind(stored_time(now))
        .bind(stored_time(token.expires_at))
        .bind(token.family_id.map(D::id))
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn insert_access_token(pool: &Pool, token: &NewAccessToken, now: Time) -> Result<()> {
    let Some(family) = token.family_id else {
        // No family, nothing to race: one statement.
        return store_access_token(pool, token, now).await;
    };
    // Taking turns with revoke_family: either it has recorded the family and the insert
    // finds it, or it runs after this commit and revokes the token.
    let mut tx = D::begin(pool, Lock::Family(family)).await?;
    store_access_token(&mut *tx, token, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Rows per statement of [`insert_access_tokens`]: far below either database's limit on
/// bound parameters (8 a row).
const TOKENS_PER_INSERT: usize = 128;

pub async fn insert_access_tokens(pool: &Pool, tokens: &[(NewAccessToken, Time)]) -> Result<()> {
    if tokens.iter().any(|(token, _)| token.family_id.is_some()) {
        // A family's token takes turns with the family's revocation, under the family's
        // lock: one at a time (the batcher never sends these).
        for (token, now) in tokens {
            insert_access_token(pool, token, *now).await?;
        }
        return Ok(());
    }
    // Tokens of no family: many rows per statement, one transaction, one sync.
    let mut tx = D::begin(pool, Lock::Rows).await?;
    for chunk in tokens.chunks(TOKENS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO access_tokens (token_hash, client_id, user_id, subject, scope, \
             created_at, expires_at, family_id) ",
        );
        insert.push_values(chunk, |mut row, (token, now)| {
            row.push_bind(&token.token_hash)
                .push_bind(token.client_id.as_str())
                .push_bind(token.user_id.map(D::id))
                .push_bind(&token.subject)
                .push_bind(D::scopes(token.scope))
                .push_bind(stored_time(*now))
                .push_bind(stored_time(token.expires_at))
                .push_bind(None::<<D as Dialect>::Id>);
        });
        // One statement text per batch size: not worth a place in the statement cache.
        insert.build().persistent(false).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn find_access_token(pool: &Pool, token_hash: &str) -> Result<Option<StoredAccessToken>> {
    let query = sqlx::query(FIND_ACCESS).bind(token_hash);
    find(pool, query, access_token_from_row).await
}

pub async fn find_access_token_with_user(
    pool: &Pool,
    token_hash: &str,
) -> Result<Option<(StoredAccessToken, Option<User>)>> {
    let query = sqlx::query(FIND_ACCESS_WITH_USER).bind(token_hash);
    find(pool, query, |row| {
        let token = access_token_from_row(row)?;
        let user = match D::get_opt_id(row, JOINED_USER_COLUMNS.id)? {
            Some(_) => Some(user_from_columns(row, &JOINED_USER_COLUMNS)?),
            None => None,
        };
        Ok((token, user))
    })
    .await
}

pub async fn revoke_access_token(
    pool: &Pool,
    token_hash: &str,
    client_id: &str,
    now: Time,
) -> Result<bool> {
    let done = sqlx::query(REVOKE_ACCESS)
        .bind(stored_time(now))
        .bind(token_hash)
        .bind(client_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert_authorization_code(
    pool: &Pool,
    code: &NewAuthorizationCode,
    now: Time,
) -> Result<()> {
    sqlx::query(INSERT_CODE)
        .bind(&code.code_hash)
        .bind(code.client_id.as_str())
        .bind(D::id(code.user_id))
        .bind(&code.redirect_uri)
        .bind(D::scopes(code.scope))
        .bind(&code.code_challenge)
        .bind(stored_time(now))
        .bind(stored_time(code.expires_at))
        .bind(&code.nonce)
        .bind(code.auth_time.map(stored_time))
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn redeem_authorization_code(
    pool: &Pool,
    code_hash: &str,
    family_id: Uuid,
    now: Time,
) -> Result<Redemption> {
    // One conditional UPDATE: of concurrent redemptions only the first sees
    // `redeemed_at IS NULL` (SQLite runs writers one at a time; on PostgreSQL the others
    // wait for the row lock, then re-check and find it set).
    let row = sqlx::query(REDEEM_CODE)
        .bind(stored_time(now))
        .bind(D::id(family_id))
        .bind(code_hash)
        .fetch_optional(pool)
        .await?;
    if let Some(row) = row {
        return Ok(Redemption::First(RedeemedCode {
            client_id: parse_name(row.try_get("client_id")?, "client_id")?,
            user_id: D::get_id(&row, "user_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            scope: D::get_scopes(&row, "scope")?,
            code_challenge: row.try_get("code_challenge")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            family_id,
            nonce: row.try_get("nonce")?,
            auth_time: row.try_get("auth_time")?,
        }));
    }
    let earlier = sqlx::query(CODE_FAMILY)
        .bind(code_hash)
        .fetch_optional(pool)
        .await?;
    let Some(earlier) = earlier else {
        return Ok(Redemption::Unknown);
    };
    match D::get_opt_id(&earlier, "family_id")? {
        Some(family_id) => Ok(Redemption::Replay { family_id }),
        None => Err(corrupt("authorization code", "redeemed without a family")),
    }
}

pub async fn revoke_family(
    pool: &Pool,
    family_id: Uuid,
    now: Time,
    jwt_until: Option<Time>,
) -> Result<u64> {
    let now = stored_time(now);
    let mut tx = D::begin(pool, Lock::Family(family_id)).await?;
    let first = sqlx::query(RECORD_REVOKED_FAMILY)
        .bind(D::id(family_id))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    let mut revoked = 0;
    for sql in REVOKE_FAMILY {
        let done = sqlx::query(sql)
            .bind(now)
            .bind(D::id(family_id))
            .execute(&mut *tx)
            .await?;
        revoked += done.rows_affected();
    }
    // A family revoked again (a spent refresh token presented once more, say) adds
    // nothing to the feed: its entry is there already.
    if let Some(until) = jwt_until.filter(|_| first) {
        let entry = Revoked::Sid(family_id.to_string());
        super::revocations::record(&mut tx, &entry, until, now).await?;
    }
    tx.commit().await?;
    Ok(revoked)
}

pub async fn insert_refresh_token(pool: &Pool, token: &NewRefreshToken, now: Time) -> Result<()> {
    let mut tx = D::begin(pool, Lock::Family(token.family_id)).await?;
    sqlx::query(INSERT_REFRESH)
        .bind(&token.token_hash)
        .bind(D::id(token.family_id))
        .bind(token.client_id.as_str())
        .bind(D::id(token.user_id))
        .bind(D::scopes(token.scope))
        .bind(stored_time(now))
        .bind(stored_time(token.expires_at))
        .bind(token.auth_time.map(stored_time))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn find_refresh_token(pool: &Pool, hash: &str) -> Result<Option<StoredRefreshToken>> {
    let query = sqlx::query(FIND_REFRESH).bind(hash);
    find(pool, query, refresh_token_from_row).await
}

pub async fn rotate_refresh_token(
    pool: &Pool,
    token_hash: &str,
    successor_hash: &str,
    now: Time,
) -> Result<Rotation> {
    let now = stored_time(now);
    // Rotations and revocations of one family take turns, so only the first rotation
    // finds the token unspent, and a revocation either precedes a rotation (which then
    // finds the token revoked) or reaches its successor.
    let mut tx = D::begin(pool, Lock::Rows).await?;
    if !D::lock_family_of_refresh_token(&mut tx, token_hash).await? {
        return Ok(Rotation::Unknown);
    }
    let spent = sqlx::query(SPEND_REFRESH)
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(spent) = spent else {
        let found = sqlx::query(FIND_REFRESH)
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
        let found = found.as_ref().map(refresh_token_from_row).transpose()?;
        return Ok(Rotation::not_spent(found));
    };
    let spent = refresh_token_from_row(&spent)?;
    sqlx::query(INSERT_SUCCESSOR)
        .bind(successor_hash)
        .bind(D::id(spent.family_id))
        .bind(spent.client_id.as_str())
        .bind(D::id(spent.user_id))
        .bind(D::scopes(spent.scope))
        .bind(now)
        .bind(spent.expires_at)
        .bind(spent.auth_time)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated(spent))
}

pub async fn insert_login_session(pool: &Pool, session: &NewLoginSession, now: Time) -> Result<()> {
    sqlx::query(INSERT_SESSION)
        .bind(&session.session_hash)
        .bind(D::id(session.user_id))
        .bind(stored_time(now))
        .bind(stored_time(session.expires_at))
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn find_login_session(pool: &Pool, session_hash: &str) -> Result<Option<LoginSession>> {
    let row = sqlx::query(FIND_SESSION)
        .bind(session_hash)
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok(LoginSession {
            user_id: D::get_id(&row, "user_id")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        })
    })
    .transpose()
}

pub async fn delete_login_session(pool: &Pool, session_hash: &str) -> Result<bool> {
    let done = sqlx::query(DELETE_SESSION)
        .bind(session_hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn find_consent(
    pool: &Pool,
    user_id: Uuid,
    client_id: &str,
) -> Result<Option<tessera_core::ScopeSet>> {
    let row = sqlx::query(FIND_CONSENT)
        .bind(D::id(user_id))
        .bind(client_id)
        .fetch_optional(pool)
        .await?;
    row.map(|row| D::get_scopes(&row, "scope")).transpose()
}

pub async fn remember_consent(
    pool: &Pool,
    user_id: Uuid,
    client_id: &str,
    scope: tessera_core::ScopeSet,
    now: Time,
) -> Result<tessera_core::ScopeSet> {
    // The union is computed here, so concurrent Allows of one user take turns.
    let mut tx = D::begin(pool, Lock::Consent(user_id)).await?;
    let earlier = sqlx::query(FIND_CONSENT)
        .bind(D::id(user_id))
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
    let mut remembered = scope;
    if let Some(row) = earlier {
        for granted in D::get_scopes(&row, "scope")?.iter() {
            remembered.insert(granted);
        }
    }
    sqlx::query(UPSERT_CONSENT)
        .bind(D::id(user_id))
        .bind(client_id)
        .bind(D::scopes(remembered))
        .bind(stored_time(now))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(remembered)
}

pub async fn purge_expired(pool: &Pool, now: Time) -> Result<u64> {
    let grace = now - crate::PURGE_GRACE;
    let mut purged = 0;
    for (sql, after_grace) in PURGES {
        purged += sqlx::query(sql)
            .bind(stored_time(if *after_grace { grace } else { now }))
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(purged)
}
