//! The revocation feed: entries that make resource servers refuse JWTs they would accept
//! from the claims alone, written in the transaction of the change that causes them, and
//! read back by cursor.
//!
//! Every entry is inserted after [`Dialect::lock_feed`], the last lock its transaction
//! takes, so entries become visible in `seq` order: a reader that has seen the head at N
//! never finds an entry at or below N later. The purge keeps the newest entry, even
//! expired, so the head never moves back.

use chrono::{DurationRound as _, TimeDelta};
use sqlx::Row as _;
use uuid::Uuid;

use super::{Pool, Row, Time, users};
use crate::convert::{corrupt, stored_time};
use crate::dialect::{Dialect, Lock};
use crate::model::{Client, Revocation, RevocationPage, Revoked, TokenIdentity, User};
use crate::{Result, StoreError};

use super::D;

/// An entry, unless one in the feed already covers at least as much for at least as
/// long: revoking the same thing twice does not grow the feed.
const INSERT: &str = "INSERT INTO revocations (kind, value, issued_before, until, created_at) \
     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM revocations r \
     WHERE r.kind = $1 AND r.value = $2 AND r.until >= $4 \
     AND ($3 IS NULL OR r.issued_before >= $3))";
const HEAD: &str = "SELECT COALESCE(MAX(seq), 0) FROM revocations";
const AFTER: &str = "SELECT seq, kind, value, issued_before, until FROM revocations \
     WHERE seq > $1 AND seq <= $2 AND until > $3 ORDER BY seq";
const COVERS: &str = "SELECT COUNT(*) FROM revocations WHERE until > $1 AND (\
     (kind = 'jti' AND value = $2) OR (kind = 'sid' AND value = $3) \
     OR (kind IN ('sub', 'client_id') AND issued_before >= $6 \
         AND ((kind = 'sub' AND value = $4) OR (kind = 'client_id' AND value = $5))))";

/// What revoking everything of one user or client touches, `$col` naming the owner in
/// the token tables and `$mark` stamping the owner's `tokens_revoked_at`, with any
/// `$extra` statements: each statement with the time as `$1` and the owner as `$2`, or
/// (`false`) the owner alone as `$1`. The families are recorded first (a refresh token
/// stored later in one of them is stored revoked, and one of them is never spent), then
/// their tokens.
macro_rules! revoke_everything_of {
    ($col:literal, $mark:literal $(, $extra:expr)*) => {
        &[
            (
                concat!(
                    "INSERT INTO revoked_families (family_id, revoked_at) \
                     SELECT DISTINCT family_id, $1 FROM refresh_tokens WHERE ",
                    $col,
                    " = $2 ON CONFLICT (family_id) DO NOTHING"
                ),
                true,
            ),
            (
                concat!(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE ",
                    $col,
                    " = $2 AND revoked_at IS NULL"
                ),
                true,
            ),
            (
                concat!(
                    "UPDATE access_tokens SET revoked_at = $1 WHERE ",
                    $col,
                    " = $2 AND revoked_at IS NULL"
                ),
                true,
            ),
            (
                concat!(
                    "DELETE FROM authorization_codes WHERE ",
                    $col,
                    " = $1 AND redeemed_at IS NULL"
                ),
                false,
            ),
            $($extra,)*
            ($mark, true),
        ]
    };
}

const REVOKE_USER: &[(&str, bool)] = revoke_everything_of!(
    "user_id",
    "UPDATE users SET tokens_revoked_at = $1 WHERE id = $2",
    ("DELETE FROM login_sessions WHERE user_id = $1", false),
    ("DELETE FROM consents WHERE user_id = $1", false)
);
const REVOKE_CLIENT: &[(&str, bool)] = revoke_everything_of!(
    "client_id",
    "UPDATE clients SET tokens_revoked_at = $1 WHERE client_id = $2"
);
const CLIENT_REVOKED_AT: &str = "UPDATE clients SET tokens_revoked_at = $1 WHERE client_id = $2";
const ROTATE_SECRET: &str =
    "UPDATE clients SET secret_hash = $1 WHERE client_id = $2 AND secret_hash IS NOT NULL";
const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";

/// How much later than the change a client's cutoff and `tokens_revoked_at` lie. Servers
/// keep clients in memory and see a change made elsewhere within 250 ms (plus one read):
/// one that has not seen a deletion or a rotation with `--revoke-tokens` yet may still
/// issue the client a JWT meanwhile, and the cutoff must cover it. The servers that have
/// seen the change issue the client's next token only after this second.
const CLIENT_GRACE: TimeDelta = TimeDelta::seconds(1);

/// Whose tokens a cutoff covers: everything issued to one user, or to one client.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner<'a> {
    /// A user, by id (the tokens' `sub`).
    User(Uuid),
    /// A client, by id.
    Client(&'a str),
}

/// Adds, in the caller's transaction, the feed entry that cuts off every JWT of `owner`
/// issued up to `now` (its whole second, as `iat` counts), kept until the longest-lived
/// of them has expired, plus the verifiers' leeway. A client's cutoff reaches one second
/// further ([`CLIENT_GRACE`]).
pub(crate) async fn cut_off(
    tx: &mut <<D as Dialect>::Db as sqlx::Database>::Connection,
    owner: Owner<'_>,
    now: Time,
) -> Result<()> {
    let issued_before = match owner {
        Owner::User(_) => now,
        Owner::Client(_) => now + CLIENT_GRACE,
    };
    let issued_before = issued_before
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or(issued_before);
    let entry = match owner {
        Owner::User(id) => Revoked::Sub {
            sub: id.to_string(),
            issued_before,
        },
        Owner::Client(client_id) => Revoked::ClientId {
            client_id: client_id.to_owned(),
            issued_before,
        },
    };
    let until = now
        .checked_add_signed(crate::LONGEST_ACCESS_TOKEN + crate::REVOCATION_LEEWAY)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    record(tx, &entry, until, now).await
}

/// Appends `revoked` to the feed, in the caller's transaction, after taking the feed's
/// lock (the last lock the transaction takes), unless an entry covers it already.
pub(crate) async fn record(
    tx: &mut <<D as Dialect>::Db as sqlx::Database>::Connection,
    revoked: &Revoked,
    until: Time,
    now: Time,
) -> Result<()> {
    D::lock_feed(&mut *tx).await?;
    let (kind, value, issued_before) = match revoked {
        Revoked::Jti(jti) => ("jti", jti.as_str(), None),
        Revoked::Sid(sid) => ("sid", sid.as_str(), None),
        Revoked::Sub { sub, issued_before } => ("sub", sub.as_str(), Some(*issued_before)),
        Revoked::ClientId {
            client_id,
            issued_before,
        } => ("client_id", client_id.as_str(), Some(*issued_before)),
    };
    sqlx::query(INSERT)
        .bind(kind)
        .bind(value)
        .bind(issued_before.map(stored_time))
        .bind(stored_time(until))
        .bind(stored_time(now))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Revokes, in the caller's transaction, everything issued to `owner` up to `now`:
/// refresh families, opaque tokens, unredeemed codes, a user's login sessions, and
/// (through the feed) every JWT; and stamps the owner's `tokens_revoked_at`, which the
/// refresh grant and issuance read.
pub(crate) async fn revoke_everything(
    tx: &mut <<D as Dialect>::Db as sqlx::Database>::Connection,
    owner: Owner<'_>,
    now: Time,
) -> Result<()> {
    let now = stored_time(now);
    let statements = match owner {
        Owner::User(_) => REVOKE_USER,
        Owner::Client(_) => REVOKE_CLIENT,
    };
    for (sql, timed) in statements {
        let query = sqlx::query(sql);
        let query = if *timed { query.bind(now) } else { query };
        let query = match owner {
            Owner::User(id) => query.bind(D::id(id)),
            Owner::Client(client_id) => query.bind(client_id),
        };
        query.execute(&mut *tx).await?;
    }
    if let Owner::Client(client_id) = owner {
        // The client's tokens from servers that still hold it in memory (CLIENT_GRACE).
        sqlx::query(CLIENT_REVOKED_AT)
            .bind(stored_time(now + CLIENT_GRACE))
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
    }
    cut_off(tx, owner, now).await
}

pub async fn revoke_jwt(pool: &Pool, jti: &str, until: Time, now: Time) -> Result<()> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    record(&mut tx, &Revoked::Jti(jti.to_owned()), until, now).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn revoke_user(pool: &Pool, id: Uuid, now: Time) -> Result<Option<User>> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    if users::user_by_id(&mut *tx, id).await?.is_none() {
        return Ok(None);
    }
    revoke_everything(&mut tx, Owner::User(id), now).await?;
    let user = users::user_by_id(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn delete_client(pool: &Pool, client_id: &str, now: Time) -> Result<bool> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    // Its tokens, codes and families' rows go with it (ON DELETE CASCADE); its JWTs need
    // the feed.
    let done = sqlx::query(DELETE_CLIENT)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    cut_off(&mut tx, Owner::Client(client_id), stored_time(now)).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn rotate_client_secret(
    pool: &Pool,
    client_id: &str,
    secret_hash: &str,
    revoke_tokens: bool,
    now: Time,
) -> Result<Client> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    let done = sqlx::query(ROTATE_SECRET)
        .bind(secret_hash)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        let exists = super::clients::client_by_id(&mut *tx, client_id).await?;
        return Err(match exists {
            Some(_) => StoreError::Conflict(format!(
                "client {client_id} is public: it has no secret to rotate"
            )),
            None => StoreError::NotFound(format!("client {client_id} does not exist")),
        });
    }
    if revoke_tokens {
        revoke_everything(&mut tx, Owner::Client(client_id), now).await?;
    }
    let client = super::clients::client_by_id(&mut *tx, client_id)
        .await?
        .ok_or_else(|| corrupt("client", "gone within its own rotation"))?;
    tx.commit().await?;
    Ok(client)
}

fn revocation_from_row(row: &Row) -> Result<Revocation> {
    let value: String = row.try_get("value")?;
    let issued_before: Option<Time> = row.try_get("issued_before")?;
    let kind: String = row.try_get("kind")?;
    let revoked = match (kind.as_str(), issued_before) {
        ("jti", None) => Revoked::Jti(value),
        ("sid", None) => Revoked::Sid(value),
        ("sub", Some(issued_before)) => Revoked::Sub {
            sub: value,
            issued_before,
        },
        ("client_id", Some(issued_before)) => Revoked::ClientId {
            client_id: value,
            issued_before,
        },
        _ => return Err(corrupt("revocation", "unknown kind")),
    };
    Ok(Revocation {
        seq: row.try_get("seq")?,
        revoked,
        until: row.try_get("until")?,
    })
}

pub async fn revocations(pool: &Pool, after: i64, now: Time) -> Result<RevocationPage> {
    // The head first: entries written after it are left for the next read, so the cursor
    // handed out never passes an entry the reader has not seen.
    let head: i64 = sqlx::query_scalar(HEAD).fetch_one(pool).await?;
    if after >= head {
        return Ok(RevocationPage {
            head,
            entries: Vec::new(),
        });
    }
    let rows = sqlx::query(AFTER)
        .bind(after)
        .bind(head)
        .bind(stored_time(now))
        .fetch_all(pool)
        .await?;
    let entries = rows
        .iter()
        .map(revocation_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(RevocationPage { head, entries })
}

pub async fn revocation_head(pool: &Pool) -> Result<i64> {
    Ok(sqlx::query_scalar(HEAD).fetch_one(pool).await?)
}

pub async fn jwt_revoked(pool: &Pool, token: TokenIdentity<'_>, now: Time) -> Result<bool> {
    let iat = chrono::DateTime::from_timestamp(token.iat, 0)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let found: i64 = sqlx::query_scalar(COVERS)
        .bind(stored_time(now))
        .bind(token.jti)
        .bind(token.sid.unwrap_or(""))
        .bind(token.sub)
        .bind(token.client_id)
        .bind(stored_time(iat))
        .fetch_one(pool)
        .await?;
    Ok(found > 0)
}
