//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009), and the checks of
//! this server's own tokens they and UserInfo, logout and the authorization endpoint share.

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use serde_json::{Value, json};
use tessera_core::{AccessTokenClaims, IdTokenClaims, ScopeSet, secret};
use tessera_store::{AuditKind, NewAuditEvent, REVOCATION_LEEWAY, TokenIdentity, User};

use crate::client_auth::ClientRequest;
use crate::error::{ApiError, no_store};
use crate::state::AppState;

/// Tokens longer than this are not ours: inactive at once, no lookup.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

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

/// An access token this server issued that is active now: not expired, not revoked, and
/// its user (if it speaks for one) still there and enabled.
pub(crate) struct ActiveToken {
    /// The scope granted.
    pub scope: ScopeSet,
    /// The client it was issued to.
    pub client_id: String,
    /// `sub`: the user's id, or the client's for a client's own token.
    pub sub: String,
    /// The username, for a user's token.
    pub username: Option<String>,
    /// Expiry and issue time, in seconds.
    pub exp: i64,
    pub iat: i64,
    /// `jti`, for a JWT.
    pub jti: Option<String>,
    /// The user as they are now, for a user's token.
    pub user: Option<User>,
}

/// `token` if it is one of ours and active at `now`, or `None`, whatever made it
/// inactive.
pub(crate) async fn active_token(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<ActiveToken>, ApiError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Ok(None);
    }
    if token.contains('.') {
        let Some(claims) = inspect_jwt_fresh(state, token).await else {
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
        // A JWT's user that is gone or disabled makes it inactive, as for opaque tokens.
        let user = match claims.username {
            None => None,
            Some(_) => {
                let user = match uuid::Uuid::parse_str(&claims.sub) {
                    Ok(id) => state.grants.store.find_user_by_id(id).await?,
                    Err(_) => None,
                };
                match user {
                    Some(user) if !user.disabled => Some(user),
                    _ => return Ok(None),
                }
            }
        };
        return Ok(Some(ActiveToken {
            scope: claims.scope,
            client_id: claims.client_id,
            sub: claims.sub,
            username: claims.username,
            exp: claims.exp,
            iat: claims.iat,
            jti: Some(claims.jti),
            user,
        }));
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
    let user = match (stored.user_id, user) {
        (None, _) => None,
        (Some(_), Some(user)) if !user.disabled => Some(user),
        // A disabled or deleted user's tokens are inactive at once.
        (Some(_), _) => return Ok(None),
    };
    Ok(Some(ActiveToken {
        scope: stored.scope,
        client_id: stored.client_id.to_string(),
        sub: stored.subject,
        username: user.as_ref().map(|user| user.username.to_string()),
        exp: stored.expires_at.timestamp(),
        iat: stored.created_at.timestamp(),
        jti: None,
        user,
    }))
}

/// The introspection response of an active token, or `None`.
async fn inspect(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Value>, ApiError> {
    let Some(active) = active_token(state, token, now).await? else {
        return Ok(None);
    };
    Ok(Some(without_nulls(json!({
        "active": true,
        "token_type": "Bearer",
        "scope": active.scope,
        "client_id": active.client_id,
        "username": active.username,
        "sub": active.sub,
        "exp": active.exp,
        "iat": active.iat,
        "iss": state.grants.issuer,
        "aud": state.grants.audience,
        "jti": active.jti,
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

/// [`inspect_jwt`], after re-reading the keys when the token names a key this server has
/// not loaded yet (one another instance has just started signing with).
pub(crate) async fn inspect_jwt_fresh(state: &AppState, token: &str) -> Option<AccessTokenClaims> {
    if let Some(claims) = inspect_jwt(state, token) {
        return Some(claims);
    }
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    state.grants.keys.reload_for_unknown_kid(&kid).await;
    inspect_jwt(state, token)
}

/// Our own access token, verified with our signing key: `typ` (so an ID token never
/// passes for one), signature, issuer, audience, expiry.
pub(crate) fn inspect_jwt(state: &AppState, token: &str) -> Option<AccessTokenClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if !header.typ.as_deref().is_some_and(|typ| {
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return None;
    }
    let kid = header.kid?;
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

/// An ID token this server issued, verified as a hint (a logout's or an authorization
/// request's `id_token_hint`): `typ` `JWT` (an access token is not
/// a hint), a published key's signature, our issuer, an audience. Expiry is not checked:
/// an expired ID token still says who signed in where (RP-Initiated Logout §2).
pub(crate) fn verify_hint(state: &AppState, token: &str) -> Option<IdTokenClaims> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("JWT") {
        return None;
    }
    let (algorithm, key) = state.grants.keys.verifying_key(&header.kid?)?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&state.grants.issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    jsonwebtoken::decode::<IdTokenClaims>(token, &key, &validation)
        .ok()
        .map(|data| data.claims)
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
        && let Some(claims) = inspect_jwt_fresh(&state, token).await
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
