//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use serde_json::{Value, json};
use tessera_core::{AccessTokenClaims, secret};
use tessera_store::{AuditKind, NewAuditEvent, REVOCATION_LEEWAY, TokenIdentity};

use crate::client_auth::ClientRequest;
use crate::error::{ApiError, no_store};
use crate::state::AppState;

/// Tokens longer than this are not ours: inactive at once, no lookup.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// RFC 7662 §2: for resource servers. Any authenticated confidential client may ask;
/// public clients cannot authenticate and get `invalid_client`.
pub async fn introspect(request: ClientRequest) -> Result<HttpResponse, ApiError> {
    let ClientRequest {
        state,
        now,
        form,
        client,
        ..
    } = request;
    if client.is_public() {
        return Err(ApiError::invalid_client(false));
    }
    let token = form.require("token")?;
    // RFC 7662 §2.2: an inactive token is `{"active": false}` and nothing else, whatever
    // made it inactive.
    let body = inspect(&state, token, now).await?;
    state
        .introspections
        .inc(&[if body.is_some() { "true" } else { "false" }]);
    let body = body.unwrap_or_else(|| json!({"active": false}));
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.json(body))
}

/// The introspection response of an active token, or `None`.
async fn inspect(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Value>, ApiError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Ok(None);
    }
    if token.contains('.') {
        let Some(claims) = inspect_jwt(state, token) else {
            return Ok(None);
        };
        // Revoked through the feed: inactive here too.
        let identity = TokenIdentity {
            jti: &claims.jti,
            sid: claims.sid.as_deref(),
            sub: &claims.sub,
            client_id: &claims.client_id,
            iat: claims.iat,
        };
        if state.grants.store.jwt_revoked(identity, now).await? {
            return Ok(None);
        }
        // Introspection also says that a JWT's user is gone or disabled, as it does for
        // opaque tokens.
        if claims.username.is_some() {
            let user = match uuid::Uuid::parse_str(&claims.sub) {
                Ok(id) => state.grants.store.find_user_by_id(id).await?,
                Err(_) => None,
            };
            if user.is_none_or(|u| u.disabled) {
                return Ok(None);
            }
        }
        return Ok(Some(without_nulls(json!({
                "active": true,
                "token_type": "Bearer",
                "scope": claims.scope,
                "client_id": claims.client_id,
                "username": claims.username,
                "sub": claims.sub,
                "exp": claims.exp,
                "iat": claims.iat,
                "iss": claims.iss,
                "aud": claims.aud,
                "jti": claims.jti,
        }))));
    }
    // The token and its user in one round trip.
    let found = state
        .grants
        .store
        .find_access_token_with_user(&secret::digest(token))
        .await?
        .filter(|(stored, _)| stored.is_active(now));
    let Some((stored, user)) = found else {
        return Ok(None);
    };
    let username = match (stored.user_id, user) {
        (None, _) => None,
        (Some(_), Some(user)) if !user.disabled => Some(user.username.to_string()),
        // A disabled or deleted user's tokens are inactive at once.
        (Some(_), _) => return Ok(None),
    };
    Ok(Some(without_nulls(json!({
        "active": true,
        "token_type": "Bearer",
        "scope": stored.scope,
        "client_id": stored.client_id,
        "username": username,
        "sub": stored.subject,
        "exp": stored.expires_at.timestamp(),
        "iat": stored.created_at.timestamp(),
        "iss": state.grants.issuer,
        "aud": state.grants.audience,
    }))))
}

/// Drops members with no value (e.g. `username` for a client's own token) instead of
/// sending `null`.
fn without_nulls(mut value: Value) -> Value {
    if let Some(members) = value.as_object_mut() {
        members.retain(|_, v| !v.is_null());
    }
    value
}

/// Our own JWT, verified with our signing key: signature, issuer, audience, expiry.
fn inspect_jwt(state: &AppState, token: &str) -> Option<AccessTokenClaims> {
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    let (algorithm, key) = state.grants.keys.verifying_key(&kid)?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&state.grants.issuer]);
    validation.set_audience(&[&state.grants.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Expiry is checked against the server's clock below, with no leeway.
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
        .ok()?
        .claims;
    (state.now().timestamp() < claims.exp).then_some(claims)
}

/// RFC 7009: revokes an access token of the calling client (opaque, or a JWT through the
/// revocation feed), or a refresh token of it with its whole family.
///
/// Unknown tokens, and tokens of another client, get 200 and change nothing: the answer
/// never tells a client whether someone else's token exists.
pub async fn revoke(request: ClientRequest) -> Result<HttpResponse, ApiError> {
    let ClientRequest {
        state,
        now,
        address,
        form,
        client,
        ..
    } = request;
    let token = form.require("token")?;
    let event = |detail: String| {
        NewAuditEvent::new(AuditKind::TokenRevoked, now)
            .actor(client.client_id.as_str())
            .client_id(client.client_id.as_str())
            .address(address.to_string())
            .detail(detail)
    };
    // A JWT this server issued and would still accept: its `jti` joins the feed, kept
    // until no verifier would accept it anyway. Anything else with dots is an invalid
    // token, which RFC 7009 §2.2 answers with 200.
    if token.contains('.')
        && token.len() <= MAX_TOKEN_BYTES
        && let Some(claims) = inspect_jwt(&state, token)
        && claims.client_id == client.client_id.as_str()
    {
        let until = chrono::DateTime::from_timestamp(claims.exp, 0)
            .and_then(|exp| exp.checked_add_signed(REVOCATION_LEEWAY))
            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
        state
            .grants
            .store
            .revoke_jwt(&claims.jti, until, now)
            .await?;
        state.grants.feed.wrote();
        tracing::info!(client_id = %client.client_id, "JWT access token revoked");
        state
            .audit(event("JWT access token".to_owned()).target(format!("jti {}", claims.jti)))
            .await;
    }
    if !token.contains('.') && token.len() <= MAX_TOKEN_BYTES {
        let digest = secret::digest(token);
        let revoked = state
            .grants
            .store
            .revoke_access_token(&digest, client.client_id.as_str(), now)
            .await?;
        if revoked {
            tracing::info!(client_id = %client.client_id, "access token revoked");
            state.audit(event("opaque access token".to_owned())).await;
        } else if let Some(refresh) = state.grants.store.find_refresh_token(&digest).await?
            && refresh.client_id == client.client_id
        {
            // RFC 7009 §2.1: revoking a refresh token ends its grant, with the opaque
            // access tokens issued from it.
            let revoked = state
                .grants
                .revoke_family(Some(&client), refresh.family_id, now)
                .await?;
            tracing::info!(
                client_id = %client.client_id,
                family_id = %refresh.family_id,
                revoked,
                "refresh token revoked with its family"
            );
            state
                .audit(
                    event(format!("refresh token and its family, {revoked} tokens"))
                        .target(format!("family {}", refresh.family_id)),
                )
                .await;
        }
    }
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.finish())
}
