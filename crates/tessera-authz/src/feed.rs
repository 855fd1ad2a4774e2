//! `GET /oauth/revocations`: the revocation feed that resource servers follow, so that a
//! revoked JWT is refused without a lookup per request (docs/revocation.md).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tessera_core::secret;
use tessera_store::{Revocation, RevocationPage, Revoked};

use crate::client_auth::authenticate;
use crate::error::{ApiError, no_store};
use crate::form::Form;
use crate::state::AppState;

/// The longest a request may ask to be held open (`wait`), in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// Answers the entries in force after `after` (all of them without it), holding the
/// request open up to `wait` seconds while there is nothing new. Only an authenticated
/// confidential client may read it, with HTTP Basic (a GET has no body to carry a secret).
pub async fn revocations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !reads_in_process(&req, &state) {
        // RFC 9110 §11.6.1: a 401 names the scheme to use, here HTTP Basic.
        if !req.headers().contains_key(header::AUTHORIZATION) {
            return Err(ApiError::invalid_client(true));
        }
        let address = state.address(&req);
        let client = authenticate(&req, &Form::default(), &state, address).await?;
        if client.is_public() {
            return Err(ApiError::invalid_client(true));
        }
    }
    let query = Form::parse(req.query_string().as_bytes())?;
    let after = match query.get("after") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| ApiError::invalid_request("after is not a cursor of this feed"))?,
        ),
    };
    let wait = match query.get("wait") {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_WAIT_SECS)
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"
                ))
            })?,
    };
    let (mut page, mut reset) = read(&state, after, state.now()).await?;
    // Nothing new yet: wait for the head to move, then read again (which may be a reset,
    // should the feed have moved back meanwhile).
    if after.is_some()
        && !reset
        && page.entries.is_empty()
        && wait > 0
        && state
            .grants
            .feed
            .wait_past(page.head, Duration::from_secs(wait))
            .await
    {
        (page, reset) = read(&state, Some(page.head), state.now()).await?;
    }
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.json(json!({
        "cursor": page.head.to_string(),
        "reset": reset,
        "revoked": page.entries.iter().map(entry).collect::<Vec<_>>(),
    })))
}

/// Whether the request comes from this process's own resource server (`tessera serve`),
/// with the in-memory secret of [`crate::FEED_READER`].
fn reads_in_process(req: &HttpRequest, state: &AppState) -> bool {
    let Some(digest) = &state.feed_reader else {
        return false;
    };
    match crate::client_auth::basic_credentials(req) {
        Some((id, secret)) => id == crate::FEED_READER && secret::matches_digest(&secret, digest),
        None => false,
    }
}

/// The page after `after`, or the whole list (`true`) when there is no cursor or the
/// cursor is ahead of the feed (another database, or one restored from a backup).
async fn read(
    state: &AppState,
    after: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(RevocationPage, bool), ApiError> {
    let store = &state.grants.store;
    if let Some(after) = after {
        let page = store.revocations(after, now).await?;
        if after <= page.head {
            return Ok((page, false));
        }
    }
    Ok((store.revocations(0, now).await?, true))
}

/// One entry as the feed writes it.
fn entry(revocation: &Revocation) -> Value {
    let until = revocation.until.timestamp();
    match &revocation.revoked {
        Revoked::Jti(jti) => json!({"jti": jti, "until": until}),
        Revoked::Sid(sid) => json!({"sid": sid, "until": until}),
        Revoked::Sub { sub, issued_before } => {
            json!({"sub": sub, "issued_before": issued_before.timestamp(), "until": until})
        }
        Revoked::ClientId {
            client_id,
            issued_before,
        } => json!({
            "client_id": client_id,
            "issued_before": issued_before.timestamp(),
            "until": until,
        }),
    }
}
