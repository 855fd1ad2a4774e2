//! Client authentication at the token endpoint (RFC 6749 §2.3).

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use tessera_core::secret;
use tessera_store::{AuditKind, Client, NewAuditEvent};

use crate::error::ApiError;
use crate::form::Form;
use crate::limits::{Endpoint, Refused};
use crate::state::{AppState, Extracting, extract};

/// The opening every endpoint that authenticates clients shares (token, introspection,
/// revocation): the time, read once; where the request comes from; its form body; and
/// the client, authenticated by [`authenticate`]. Extracting it answers every failure
/// with an RFC 6749 §5.2 error.
pub struct ClientRequest {
    /// What every handler shares.
    pub state: web::Data<AppState>,
    /// The time of the request.
    pub now: DateTime<Utc>,
    /// The client's address.
    pub address: IpAddr,
    /// The form body.
    pub form: Form,
    /// The authenticated client.
    pub client: Client,
    /// Whether the client authenticated with HTTP Basic (a `401` then carries the
    /// `WWW-Authenticate: Basic` challenge).
    pub used_basic: bool,
}

impl FromRequest for ClientRequest {
    type Error = ApiError;
    type Future = Extracting<Self, ApiError>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let missing = || {
            ApiError::internal(
                "reading a client request",
                &std::io::Error::other("the request body or the server state is missing"),
            )
        };
        extract(req, payload, missing, |req, payload, state| async move {
            let now = state.now();
            let address = state.address(&req);
            let form = Form::read(&req, payload).await?;
            let client = authenticate(&req, &form, &state, address).await?;
            // Authentication succeeded: an Authorization header was well-formed Basic.
            let used_basic = req.headers().contains_key(header::AUTHORIZATION);
            Ok(ClientRequest {
                state,
                now,
                address,
                form,
                client,
                used_basic,
            })
        })
    }
}

/// What the client presented.
enum Presented {
    /// `client_secret_basic`: `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
    Basic { id: String, secret: String },
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    Post { id: String, secret: String },
    /// Only a `client_id` in the body: a public client, or a confidential one that forgot
    /// its secret.
    IdOnly { id: String },
}

impl Presented {
    fn used_basic(&self) -> bool {
        matches!(self, Presented::Basic { .. })
    }
}

/// A digest no secret hashes to, compared when the client is unknown so that an unknown
/// client takes as long as a wrong secret.
const NO_CLIENT_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Authenticates the client of a token, introspection or revocation request from
/// `address`. Every failure (unknown client, wrong secret, missing secret, secret sent by
/// a public client) is the same `invalid_client`, recorded for the rate limits and the
/// audit log. Too many requests from the address, too many failures for the client from
/// it, or too many requests by the client get 429 before any secret is compared.
pub async fn authenticate(
    req: &HttpRequest,
    form: &Form,
    state: &AppState,
    address: IpAddr,
) -> Result<Client, ApiError> {
    let now_ms = state.now_ms();
    let endpoint = Endpoint::of(req.path());
    state
        .limits
        .request_from(address, endpoint, now_ms)
        .map_err(|(_, limited)| ApiError::rate_limited(limited))?;
    let presented = presented(req, form)?;
    let basic = presented.used_basic();
    let (id, secret) = match &presented {
        Presented::Basic { id, secret } | Presented::Post { id, secret } => (id, Some(secret)),
        Presented::IdOnly { id } => (id, None),
    };
    let mut attempt = state
        .limits
        .begin_client_secret(id, address, now_ms)
        .map_err(|(_, limited)| ApiError::rate_limited(limited))?;
    let store = state.grants.store.as_ref();
    let mut read_again = false;
    let (client, authenticated) = loop {
        let client = match state.limits.find_client(store, &attempt, id, now_ms).await {
            Ok(client) => client,
            Err(refused) => {
                return Err(refused_before_checking(state, &attempt, refused, now_ms).await);
            }
        };
        let authenticated = matches_client(client.as_ref(), secret);
        if authenticated || read_again || client.is_none() || secret.is_none() {
            break (client, authenticated);
        }
        // The client came from memory: its secret may have been rotated elsewhere a moment
        // ago (servers see that within a second). Read it again before refusing, so that
        // a new secret works at once everywhere.
        store.forget_clients();
        read_again = true;
    };
    match client {
        Some(client) if authenticated => {
            state.limits.refund(&attempt, now_ms).await;
            state
                .limits
                .request_by(&client, endpoint, now_ms)
                .map_err(|(_, limited)| ApiError::rate_limited(limited))?;
            Ok(client)
        }
        _ => {
            state.limits.failed(&mut attempt, now_ms).await;
            let shown: String = id.chars().take(64).filter(|c| !c.is_control()).collect();
            for limit in attempt.exhausted() {
                state
                    .audit(
                        state
                            .limits
                            .exhausted_event(*limit, address, state.now())
                            .client_id(shown.as_str()),
                    )
                    .await;
            }
            state
                .audit(
                    NewAuditEvent::new(AuditKind::ClientAuthFailed, state.now())
                        .client_id(shown)
                        .address(address.to_string())
                        .detail(req.path().to_owned()),
                )
                .await;
            Err(ApiError::invalid_client(basic))
        }
    }
}

/// Whether `secret` (or its absence, for a public client) authenticates `client`. An
/// unknown client compares against a digest no secret hashes to, so that it takes as long
/// as a wrong secret.
fn matches_client(client: Option<&Client>, secret: Option<&String>) -> bool {
    match (client, secret) {
        (Some(client), Some(secret)) => match &client.secret_hash {
            Some(digest) => secret::matches_digest(secret, digest),
            // RFC 6749 §2.1: a public client has no secret to present.
            None => false,
        },
        (Some(client), None) => client.is_public(),
        (None, secret) => {
            let _ = secret::matches_digest(secret.map_or("", |s| s.as_str()), NO_CLIENT_DIGEST);
            false
        }
    }
}

/// The answer when the client could not be looked up (the database away, or a limit
/// refused first): nothing was checked, so a store failure is not a failed guess.
async fn refused_before_checking(
    state: &AppState,
    attempt: &crate::limits::Attempt,
    refused: Refused,
    now_ms: i64,
) -> ApiError {
    if matches!(refused, Refused::Store(_)) {
        state.limits.refund(attempt, now_ms).await;
    }
    refused.into()
}

fn presented(req: &HttpRequest, form: &Form) -> Result<Presented, ApiError> {
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let (id, secret) =
            parse_basic(value.as_bytes()).ok_or_else(|| ApiError::invalid_client(true))?;
        // RFC 6749 §2.3: a client must not use more than one authentication method.
        if body_secret.is_some() {
            return Err(ApiError::invalid_request(
                "the client authenticated with more than one method",
            ));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(ApiError::invalid_request(
                "client_id in the body differs from the Authorization header",
            ));
        }
        return Ok(Presented::Basic { id, secret });
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (Some(id), None) => Ok(Presented::IdOnly { id: id.to_owned() }),
        (None, _) => Err(ApiError::invalid_client(false)),
    }
}

/// The id and secret of the request's HTTP Basic credentials, if it has well-formed ones.
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    parse_basic(req.headers().get(header::AUTHORIZATION)?.as_bytes())
}

/// Parses `Basic base64(id:secret)`, where id and secret are form-urlencoded
/// (RFC 6749 §2.3.1). `None` for any other scheme or a malformed value.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    let (id, secret) = (unescape(id)?, unescape(secret)?);
    if id.is_empty() {
        return None;
    }
    Some((id, secret))
}

#[cfg(test)]
#[path = "tests/client_auth.rs"]
mod tests;
