//! Signing keys and their schedule: `next`, then `active`, then `retired`, then gone.
//! Partial unique indexes keep one key in each of the first two states.

use sqlx::Row as _;

use super::{D, Pool, Query, Row, Time, find, find_all};
use crate::convert::{corrupt, from_json, parse_name, stored_time, to_json};
use crate::dialect::{Dialect, Lock, storable};
use crate::model::{KeySealing, KeyState, NewKey, StoredKey};
use crate::{Result, StoreError};

macro_rules! key_columns {
    () => {
        concat!(
            "kid, algorithm, private_key, ",
            json_text!("public_jwk"),
            ", state, created_at, activate_at, activated_at, retired_at, remove_at"
        )
    };
}

/// A new key, `$1` to `$4` its kid, algorithm, sealed private key and JWK, `$5` now.
macro_rules! insert_key {
    ($state:literal, $since:literal, $at:literal) => {
        concat!(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, state, created_at, ",
            $since,
            ") VALUES ($1, $2, $3, $4",
            jsonb!(),
            ", '",
            $state,
            "', $5, ",
            $at,
            ")"
        )
    };
}

const PUBLISHED: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM signing_keys ORDER BY created_at, kid",
    by_bytes!()
);
const ACTIVE: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM signing_keys WHERE state = 'active'"
);
const NEXT: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM signing_keys WHERE state = 'next'"
);
// The partial unique index on the state makes these a no-op when another process got
// there first; the SELECT that follows returns the winner.
const INSERT_ACTIVE_IF_NONE: &str = concat!(
    insert_key!("active", "activated_at", "$5"),
    " ON CONFLICT DO NOTHING"
);
const INSERT_NEXT_IF_NONE: &str = concat!(
    insert_key!("next", "activate_at", "$6"),
    " ON CONFLICT DO NOTHING"
);
const INSERT_ACTIVE: &str = concat!(
    insert_key!("active", "activated_at", "$5"),
    " RETURNING ",
    key_columns!()
);
/// Retires the active key as of `$1`, to be removed at `$2`, erasing its private key.
const RETIRE_ACTIVE: &str = concat!(
    "UPDATE signing_keys SET state = 'retired', retired_at = $1, remove_at = $2, private_key = ",
    empty_bytes!(),
    " WHERE state = 'active'"
);

fn key_from_row(row: &Row) -> Result<StoredKey> {
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

/// `sql` (one of the `INSERT_*` statements) with `key`'s four columns bound.
fn insert<'q>(sql: &'static str, key: &'q NewKey) -> Result<Query<'q>> {
    Ok(sqlx::query(sql)
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(&key.private_key)
        .bind(to_json(&key.public_jwk, "JWK")?))
}

pub async fn published_keys(pool: &Pool) -> Result<Vec<StoredKey>> {
    find_all(pool, sqlx::query(PUBLISHED), key_from_row).await
}

pub async fn active_key(pool: &Pool) -> Result<Option<StoredKey>> {
    find(pool, sqlx::query(ACTIVE), key_from_row).await
}

pub async fn insert_active_key_if_none(pool: &Pool, key: &NewKey, now: Time) -> Result<StoredKey> {
    insert(INSERT_ACTIVE_IF_NONE, key)?
        .bind(stored_time(now))
        .execute(pool)
        .await?;
    active_key(pool)
        .await?
        .ok_or_else(|| StoreError::Corrupt("no active signing key after inserting one".into()))
}

pub async fn insert_next_key_if_none(
    pool: &Pool,
    key: &NewKey,
    activate_at: Time,
    now: Time,
) -> Result<StoredKey> {
    insert(INSERT_NEXT_IF_NONE, key)?
        .bind(stored_time(now))
        .bind(stored_time(activate_at))
        .execute(pool)
        .await?;
    find(pool, sqlx::query(NEXT), key_from_row)
        .await?
        .ok_or_else(|| StoreError::Corrupt("no next signing key after inserting one".into()))
}

pub async fn activate_due_key(
    pool: &Pool,
    now: Time,
    retire_after: chrono::Duration,
) -> Result<Option<String>> {
    // The key lock first: two instances cannot both see the key as due.
    let mut tx = D::begin(pool, Lock::Keys).await?;
    let due: Option<(String, Time)> = sqlx::query_as(
        "SELECT kid, activate_at FROM signing_keys WHERE state = 'next' AND activate_at <= $1",
    )
    .bind(stored_time(now))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((kid, at)) = due else {
        return Ok(None);
    };
    let remove_at = at.checked_add_signed(retire_after).unwrap_or(at);
    sqlx::query(RETIRE_ACTIVE)
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

pub async fn activate_key_now(
    pool: &Pool,
    key: &NewKey,
    now: Time,
    remove_at: Time,
) -> Result<StoredKey> {
    let now = stored_time(now);
    let mut tx = D::begin(pool, Lock::Keys).await?;
    sqlx::query(RETIRE_ACTIVE)
        .bind(now)
        .bind(stored_time(remove_at))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM signing_keys WHERE state = 'next'")
        .execute(&mut *tx)
        .await?;
    let row = insert(INSERT_ACTIVE, key)?
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    let stored = key_from_row(&row)?;
    tx.commit().await?;
    Ok(stored)
}

pub async fn remove_expired_keys(pool: &Pool, now: Time) -> Result<u64> {
    let mut tx = D::begin(pool, Lock::Keys).await?;
    let done = sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND remove_at <= $1")
        .bind(stored_time(now))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

pub async fn remove_key(pool: &Pool, kid: &str, activates_after: Time) -> Result<bool> {
    if !storable(kid) {
        return Ok(false);
    }
    // Under the key lock: a removal cannot slip between an activation's read of the
    // next key and its update.
    let mut tx = D::begin(pool, Lock::Keys).await?;
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

pub async fn seal_private_keys(pool: &Pool, keys: &[KeySealing]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    // Under the key lock, and only where the row still holds the plaintext: a retirement
    // (which erases it) or another instance sealing it first wins.
    let mut tx = D::begin(pool, Lock::Keys).await?;
    let mut sealed = 0;
    for key in keys {
        let done = sqlx::query(
            "UPDATE signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3",
        )
        .bind(&key.sealed)
        .bind(&key.kid)
        .bind(&key.plaintext)
        .execute(&mut *tx)
        .await?;
        sealed += done.rows_affected();
    }
    tx.commit().await?;
    Ok(sealed)
}
