//! OAuth clients.

use sqlx::Row as _;

use super::{D, Exec, Pool, Row, Time, find_all};
use crate::convert::{from_json, parse_name, parse_words, stored_time, to_json};
use crate::dialect::{Dialect, storable};
use crate::model::{Client, NewClient};
use crate::{Result, StoreError};

macro_rules! select_client {
    () => {
        concat!(
            "SELECT client_id, name, secret_hash, grant_types, scopes, ",
            json_text!("redirect_uris"),
            ", ",
            json_text!("post_logout_redirect_uris"),
            ", access_token_format, access_token_ttl_secs, refresh_token_ttl_secs, created_at, \
             tokens_revoked_at FROM clients"
        )
    };
}

const INSERT: &str = concat!(
    "INSERT INTO clients (client_id, name, secret_hash, grant_types, scopes, redirect_uris, \
     access_token_format, access_token_ttl_secs, refresh_token_ttl_secs, created_at, \
     post_logout_redirect_uris) VALUES ($1, $2, $3, $4, $5, $6",
    jsonb!(),
    ", $7, $8, $9, $10, $11",
    jsonb!(),
    ")"
);
const BY_ID: &str = concat!(select_client!(), " WHERE client_id = $1");
const ALL: &str = concat!(select_client!(), " ORDER BY client_id", by_bytes!());
const GENERATION: &str = "SELECT generation FROM client_generation WHERE id = 1";

pub(super) fn client_from_row(row: &Row) -> Result<Client> {
    Ok(Client {
        registration: NewClient {
            client_id: parse_name(row.try_get("client_id")?, "client_id")?,
            name: row.try_get("name")?,
            secret_hash: row.try_get("secret_hash")?,
            grant_types: parse_words(D::get_words(row, "grant_types")?, "grant types")?,
            scopes: D::get_scopes(row, "scopes")?,
            redirect_uris: from_json(row.try_get("redirect_uris")?, "redirect URIs")?,
            post_logout_redirect_uris: from_json(
                row.try_get("post_logout_redirect_uris")?,
                "post-logout redirect URIs",
            )?,
            access_token_format: parse_name(row.try_get("access_token_format")?, "token format")?,
            access_token_ttl_secs: row.try_get("access_token_ttl_secs")?,
            refresh_token_ttl_secs: row.try_get("refresh_token_ttl_secs")?,
        },
        created_at: row.try_get("created_at")?,
        tokens_revoked_at: row.try_get("tokens_revoked_at")?,
    })
}

/// Registers `new` through `ex`, a pool or the seeding transaction.
pub async fn create_client(ex: impl Exec<'_>, new: &NewClient, now: Time) -> Result<Client> {
    let now = stored_time(now);
    sqlx::query(INSERT)
        .bind(new.client_id.as_str())
        .bind(&new.name)
        .bind(&new.secret_hash)
        .bind(D::words(&new.grant_types))
        .bind(D::scopes(new.scopes))
        .bind(to_json(&new.redirect_uris, "redirect URIs")?)
        .bind(new.access_token_format.as_str())
        .bind(new.access_token_ttl_secs)
        .bind(new.refresh_token_ttl_secs)
        .bind(now)
        .bind(to_json(
            &new.post_logout_redirect_uris,
            "post-logout redirect URIs",
        )?)
        .execute(ex)
        .await
        .map_err(|e| {
            StoreError::from_sqlx(e, || format!("client {} already exists", new.client_id))
        })?;
    Ok(new.stored(now))
}

pub async fn find_client(pool: &Pool, client_id: &str) -> Result<Option<Client>> {
    if !storable(client_id) {
        return Ok(None);
    }
    client_by_id(pool, client_id).await
}

/// The client `client_id`, through a pool or a transaction.
pub(crate) async fn client_by_id(ex: impl Exec<'_>, client_id: &str) -> Result<Option<Client>> {
    let row = sqlx::query(BY_ID)
        .bind(client_id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(client_from_row).transpose()
}

/// The counter that every change to `clients` raises (see `crate::client_cache`).
pub async fn client_generation(pool: &Pool) -> Result<i64> {
    let generation: Option<i64> = sqlx::query_scalar(GENERATION).fetch_optional(pool).await?;
    // The row is made by its migration and never deleted; without it, every read is a
    // change, so nothing stale is ever kept.
    Ok(generation.unwrap_or_else(never_read_generation))
}

/// A value no read of the counter returned before: forgets what the cache kept.
fn never_read_generation() -> i64 {
    static MISSING: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
    MISSING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub async fn list_clients(pool: &Pool) -> Result<Vec<Client>> {
    find_all(pool, sqlx::query(ALL), client_from_row).await
}
