//! Rate limits shared by every process on the database: the generic cell rate algorithm's
//! state, one row per key (`whole_at`, the time in Unix milliseconds at which the key's
//! allowance is whole again), changed by single atomic statements.

use sqlx::Row as _;

use super::clients::client_from_row;
use super::{Pool, Row};
use crate::dialect::storable;
use crate::model::Client;
use crate::{LimitRule, RateLimitSlot, Result};

/// Takes a slot unless that would put the key more than the tolerance ahead of now; no
/// row comes back when it would. Concurrent statements on one key take turns on its row.
const ACQUIRE: &str = "INSERT INTO rate_limits (key, whole_at) VALUES ($1, $2 + $3) \
     ON CONFLICT (key) DO UPDATE SET whole_at = \
     (CASE WHEN rate_limits.whole_at > $2 THEN rate_limits.whole_at ELSE $2 END) + $3 \
     WHERE (CASE WHEN rate_limits.whole_at > $2 THEN rate_limits.whole_at ELSE $2 END) + $3 - $2 <= $4 \
     RETURNING whole_at";
const READ: &str = "SELECT whole_at FROM rate_limits WHERE key = $1";
/// The state of the keys `$1` and `$2`, for a client already known.
const LIMITS: &str = "SELECT (SELECT whole_at FROM rate_limits WHERE key = $1) AS limit_a, \
     (SELECT whole_at FROM rate_limits WHERE key = $2) AS limit_b";
const REFUND: &str = "UPDATE rate_limits SET whole_at = \
     CASE WHEN whole_at - $2 > $3 THEN whole_at - $2 ELSE $3 END WHERE key = $1";
const PURGE: &str = "DELETE FROM rate_limits WHERE whole_at <= $1";
/// The client `$1` (columns null when there is none) with the state of the keys `$2` and
/// `$3`: one round trip for what every client authentication needs.
const CLIENT_WITH_LIMITS: &str = concat!(
    "SELECT c.*, l.limit_a, l.limit_b FROM (SELECT \
     (SELECT whole_at FROM rate_limits WHERE key = $2) AS limit_a, \
     (SELECT whole_at FROM rate_limits WHERE key = $3) AS limit_b) AS l \
     LEFT JOIN (",
    select_client!(),
    " WHERE client_id = $1) AS c ON 1 = 1"
);

pub async fn acquire_rate_limit(
    pool: &Pool,
    key: &str,
    rule: LimitRule,
    now_ms: i64,
) -> Result<RateLimitSlot> {
    let taken: Option<i64> = sqlx::query_scalar(ACQUIRE)
        .bind(key)
        .bind(now_ms)
        .bind(rule.period_ms)
        .bind(rule.tolerance_ms)
        .fetch_optional(pool)
        .await?;
    if let Some(whole_at) = taken {
        return Ok(RateLimitSlot::Taken { whole_at });
    }
    // Refused: the row exists (an insert is never refused). A purge in between leaves
    // nothing to wait for.
    let whole_at: Option<i64> = sqlx::query_scalar(READ)
        .bind(key)
        .fetch_optional(pool)
        .await?;
    Ok(RateLimitSlot::Refused {
        whole_at: whole_at.unwrap_or(now_ms),
    })
}

pub async fn refund_rate_limit(pool: &Pool, key: &str, rule: LimitRule, now_ms: i64) -> Result<()> {
    sqlx::query(REFUND)
        .bind(key)
        .bind(rule.period_ms)
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn purge_rate_limits(pool: &Pool, now_ms: i64) -> Result<u64> {
    Ok(sqlx::query(PURGE)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected())
}

pub async fn find_client_with_rate_limits(
    pool: &Pool,
    client_id: &str,
    keys: [&str; 2],
) -> Result<(Option<Client>, [Option<i64>; 2])> {
    let row = sqlx::query(CLIENT_WITH_LIMITS)
        .bind(if storable(client_id) { client_id } else { "" })
        .bind(keys[0])
        .bind(keys[1])
        .fetch_one(pool)
        .await?;
    let limits = [row.try_get("limit_a")?, row.try_get("limit_b")?];
    Ok((client_from_row_if_any(&row)?, limits))
}

/// The stored `whole_at` of each of `keys`, in one round trip.
pub async fn rate_limits(pool: &Pool, keys: [&str; 2]) -> Result<[Option<i64>; 2]> {
    let row = sqlx::query(LIMITS)
        .bind(keys[0])
        .bind(keys[1])
        .fetch_one(pool)
        .await?;
    Ok([row.try_get("limit_a")?, row.try_get("limit_b")?])
}

/// The client of a left-joined row, `None` when the join found none.
fn client_from_row_if_any(row: &Row) -> Result<Option<Client>> {
    if row.try_get::<Option<String>, _>("client_id")?.is_none() {
        return Ok(None);
    }
    client_from_row(row).map(Some)
}
