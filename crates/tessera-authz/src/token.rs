//! `POST /oauth/token` (RFC 6749 §3.2): reads the request, has the grant engine decide,
//! and renders the answer.

use std::net::IpAddr;

use actix_web::HttpResponse;
use serde::Serialize;
use tessera_core::{ErrorCode, GrantType, ScopeSet};
use tessera_store::{AuditKind, Client, NewAuditEvent, User};

use crate::client_auth::ClientRequest;
use crate::error::{ApiError, no_store};
use crate::grant::{GrantError, Issued, TokenRequest};
use crate::limits::Attempt;
use crate::state::AppState;

/// RFC 6749 §5.1 successful response.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: ScopeSet,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// The token endpoint.
pub async fn token(request: ClientRequest) -> Result<HttpResponse, ApiError> {
    let (state, client, address) = (&request.state, &request.client, request.address);
    let parsed = TokenRequest::parse(&request.form, client)?;
    let grant = parsed.grant_type();
    // Anyone can send a public client's id: its refused grants are limited per address,
    // so that a flood of junk refresh tokens or codes holds back its sender only.
    let attempt = if client.is_public() {
        let attempt = state
            .limits
            .begin_public_grant(client.client_id.as_str(), address, state.now_ms())
            .map_err(|(_, limited)| ApiError::rate_limited(limited))?;
        Some(attempt)
    } else {
        None
    };
    let outcome = state
        .grants
        .grant(client, parsed, request.now, address)
        .await;
    if let Some(attempt) = attempt {
        public_grant_decided(state, client, &attempt, &outcome, address).await;
    }
    let issued = match outcome {
        Err(GrantError::Store(err)) if err.is_missing_reference() => {
            return Err(client_gone(state, client, request.used_basic, err).await);
        }
        outcome => outcome?,
    };
    let recorded = self::issued(
        state,
        client,
        grant,
        issued.user.as_ref(),
        &issued.token_id,
        address,
    )
    .await;
    // A token is delivered only once the audit log holds its issuance, so that no token
    // given out goes unrecorded, even if this process is killed a moment later. When the
    // record cannot be stored in time (the database is away), the token is not delivered
    // and the client retries. A refresh is the exception: its old refresh token is spent
    // already, and a retry would look like reuse and revoke the grant; its record stays
    // queued and is written when the database is back.
    if !recorded && grant != GrantType::RefreshToken {
        return Err(ApiError::new(
            ErrorCode::TemporarilyUnavailable,
            "the token could not be recorded in the audit log; retry later",
        ));
    }
    Ok(render(issued))
}

/// The answer to a grant whose token could not be stored because a row it names is gone.
/// A server keeps clients in memory and sees a deletion made elsewhere within a second:
/// when the client itself is gone, the request is `invalid_client`, as it would have been
/// a moment later; anything else stays the error it was.
async fn client_gone(
    state: &AppState,
    client: &Client,
    used_basic: bool,
    err: tessera_store::StoreError,
) -> ApiError {
    let store = state.grants.store.as_ref();
    store.forget_clients();
    match store.find_client(client.client_id.as_str()).await {
        Ok(None) => ApiError::invalid_client(used_basic),
        Ok(Some(_)) => err.into(),
        Err(lookup) => lookup.into(),
    }
}

/// Settles a public client's grant `attempt`: a refused grant keeps its slot (and says
/// so in the audit log when it used up the allowance); anything else gives it back.
async fn public_grant_decided(
    state: &AppState,
    client: &Client,
    attempt: &Attempt,
    outcome: &Result<Issued, GrantError>,
    address: IpAddr,
) {
    if !matches!(outcome, Err(GrantError::OAuth(_))) {
        state.limits.refund(attempt, state.now_ms()).await;
        return;
    }
    for limit in attempt.exhausted() {
        state
            .audit(
                state
                    .limits
                    .exhausted_event(*limit, address, state.now())
                    .client_id(client.client_id.as_str()),
            )
            .await;
    }
}

impl From<GrantError> for ApiError {
    fn from(err: GrantError) -> Self {
        match err {
            GrantError::OAuth(error) => Self::new(error.error, error.error_description),
            GrantError::RateLimited(limited) => Self::rate_limited(limited),
            GrantError::Store(err) => err.into(),
            GrantError::Internal { context, cause } => Self::internal(context, cause.as_ref()),
        }
    }
}

/// Counts and audits an issued access token (never the token itself): whether the audit
/// log stored the record in time.
async fn issued(
    state: &AppState,
    client: &Client,
    grant: GrantType,
    user: Option<&User>,
    token_id: &str,
    address: IpAddr,
) -> bool {
    let format = client.access_token_format.to_string();
    state.tokens_issued.inc(&[grant.as_str(), format.as_str()]);
    let mut event = NewAuditEvent::new(AuditKind::TokenIssued, state.now())
        .client_id(client.client_id.as_str())
        .address(address.to_string())
        .target(token_id)
        .detail(format!("grant={grant} format={format}"));
    event = match user {
        Some(user) => event
            .actor(user.username.as_str())
            .company(user.company.as_str()),
        None => event.actor(client.client_id.as_str()),
    };
    if state.durable_token_audit {
        state.grants.audit.record_durable(event).await
    } else {
        state.audit(event).await;
        true
    }
}

/// The RFC 6749 §5.1 response for `issued`, never to be cached.
fn render(issued: Issued) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    response.json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: issued.scope,
        refresh_token: issued.refresh_token,
        id_token: issued.id_token,
    })
}
