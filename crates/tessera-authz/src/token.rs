//! `POST /oauth/token` (RFC 6749 §3.2).

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_core::{
    AccessTokenClaims, ErrorCode, GrantType, Scope, ScopeSet, SigningAlgorithm, SigningKey,
    TokenFormat, pkce, secret,
};
use tessera_store::{
    AuditKind, Client, NewAccessToken, NewAuditEvent, NewRefreshToken, Redemption, Rotation, User,
};
use uuid::Uuid;

use crate::client_auth;
use crate::error::{ApiError, no_store};
use crate::form::Form;
use crate::passwords::SignIn;
use crate::state::AppState;

/// The grants this server implements, in the order the metadata lists them. Keep in step
/// with [`Grant`].
pub const SUPPORTED_GRANTS: [GrantType; 4] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::Password,
    GrantType::ClientCredentials,
];

/// The prefix of every opaque access token: `tsr_` and 43 base64url characters, no `.`.
pub const OPAQUE_PREFIX: &str = "tsr_";

/// The prefix of every refresh token, so that secret scanners recognise one.
pub const REFRESH_PREFIX: &str = "tsrr_";

/// RFC 6749 §5.1 successful response.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: ScopeSet,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let address = state.address(&req);
    let form = Form::read(&req, payload).await?;
    let client = client_auth::authenticate(&req, &form, &state, address).await?;

    let grant = parse_grant(&form)?;
    if !client.allows_grant(grant.into()) {
        return Err(ApiError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client may not use the {} grant",
                GrantType::from(grant)
            ),
        ));
    }

    let (response, user) = match grant {
        Grant::Password => {
            let requested = requested_scope(&form, &client)?;
            let user = password_grant(&form, &state, requested, address, &client).await?;
            let response =
                issue_for_user(&state, &client, &user, requested, Family::New, now).await?;
            (response, Some(user))
        }
        Grant::ClientCredentials => {
            let requested = requested_scope(&form, &client)?;
            // RFC 6749 §4.4: only confidential clients act on their own behalf.
            if client.is_public() {
                return Err(ApiError::new(
                    ErrorCode::UnauthorizedClient,
                    "public clients may not use the client_credentials grant",
                ));
            }
            let (access_token, ttl) =
                access_token(&state, &client, Subject::Client, requested, None, now).await?;
            (token_response(access_token, ttl, requested, None), None)
        }
        Grant::AuthorizationCode => {
            let (response, user) = code_grant(&form, &state, &client, now, address).await?;
            (response, Some(user))
        }
        Grant::RefreshToken => {
            let (response, user) = refresh_grant(&form, &state, &client, now, address).await?;
            (response, Some(user))
        }
    };
    issued(&state, &client, grant.into(), user.as_ref(), address).await;
    Ok(response)
}

/// Counts and audits a delivered access token (never the token itself).
async fn issued(
    state: &AppState,
    client: &Client,
    grant: GrantType,
    user: Option<&User>,
    address: IpAddr,
) {
    let format = client.access_token_format.to_string();
    state.tokens_issued.inc(&[grant.as_str(), format.as_str()]);
    let mut event = NewAuditEvent::new(AuditKind::TokenIssued, state.now())
        .client_id(client.client_id.as_str())
        .address(address.to_string())
        .detail(format!("grant={grant} format={format}"));
    event = match user {
        Some(user) => event
            .actor(user.username.as_str())
            .company(user.company.as_str()),
        None => event.actor(client.client_id.as_str()),
    };
    state.audit(event).await;
}

/// The grants this server implements: what `grant_type` parses into.
#[derive(Clone, Copy)]
enum Grant {
    AuthorizationCode,
    RefreshToken,
    Password,
    ClientCredentials,
}

impl From<Grant> for GrantType {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::AuthorizationCode => GrantType::AuthorizationCode,
            Grant::RefreshToken => GrantType::RefreshToken,
            Grant::Password => GrantType::Password,
            Grant::ClientCredentials => GrantType::ClientCredentials,
        }
    }
}

/// `grant_type`, exactly as RFC 6749 spells it; anything else is `unsupported_grant_type`.
fn parse_grant(form: &Form) -> Result<Grant, ApiError> {
    match form.require("grant_type")? {
        "authorization_code" => Ok(Grant::AuthorizationCode),
        "refresh_token" => Ok(Grant::RefreshToken),
        "password" => Ok(Grant::Password),
        "client_credentials" => Ok(Grant::ClientCredentials),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "the grant type {other:?} is not supported; use authorization_code, \
                 refresh_token, password or client_credentials"
            ),
        )),
    }
}

/// The scope asked for (default `basic`), refused with `invalid_scope` when unknown,
/// malformed or not allowed for the client. Never widened, never normalised.
fn requested_scope(form: &Form, client: &Client) -> Result<ScopeSet, ApiError> {
    let requested = match form.get("scope") {
        None => ScopeSet::only(Scope::Basic),
        Some(raw) => parse_scope(raw)?,
    };
    within_client(requested, client)?;
    Ok(requested)
}

fn parse_scope(raw: &str) -> Result<ScopeSet, ApiError> {
    raw.parse::<ScopeSet>()
        .map_err(|e| ApiError::new(ErrorCode::InvalidScope, e.to_string()))
}

fn within_client(requested: ScopeSet, client: &Client) -> Result<(), ApiError> {
    let refused = requested.difference(client.scopes);
    if !refused.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidScope,
            format!("this client may not request the scope {refused}"),
        ));
    }
    Ok(())
}

/// Why a scope asked for by name is refused to a user without the admin role.
pub const ADMIN_NEEDS_ROLE: &str = "the admin scope requires the admin role";

/// Whether `user` may be granted everything in `requested`, by name: `admin` needs the
/// admin role (`invalid_scope` otherwise).
pub fn admits(requested: ScopeSet, user: &User) -> bool {
    !requested.contains(Scope::Admin) || user.is_admin()
}

fn within_roles(requested: ScopeSet, user: &User) -> Result<(), ApiError> {
    if admits(requested, user) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::InvalidScope, ADMIN_NEEDS_ROLE))
    }
}

/// What `user` may hold now of `granted`: `admin` only while they have the admin role, and
/// only what the client may still be granted. A demoted user's refresh loses `admin`.
pub fn current_scope(granted: ScopeSet, user: &User, client: &Client) -> ScopeSet {
    let mut lost = granted.difference(client.scopes);
    if !user.is_admin() {
        lost.insert(Scope::Admin);
    }
    granted.difference(lost)
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6: redeems an authorization code.
async fn code_grant(
    form: &Form,
    state: &AppState,
    client: &Client,
    now: DateTime<Utc>,
    address: IpAddr,
) -> Result<(HttpResponse, User), ApiError> {
    let code = form.require("code")?;
    let redirect_uri = form.require("redirect_uri")?;
    // Checked before the code is touched: a request without a verifier spends nothing.
    let verifier = form.require("code_verifier")?;
    let invalid = |why: &'static str| ApiError::new(ErrorCode::InvalidGrant, why);

    let family = Uuid::new_v4();
    let redeemed = match state
        .store
        .redeem_authorization_code(&secret::digest(code), family, now)
        .await?
    {
        Redemption::First(redeemed) => redeemed,
        Redemption::Replay { family_id } => {
            // RFC 6749 §4.1.2: a code used twice revokes what it issued.
            let revoked = state.store.revoke_family(family_id, now).await?;
            tracing::warn!(
                client_id = %client.client_id,
                %family_id,
                revoked,
                "authorization code replayed; its grant is revoked"
            );
            reuse_detected(
                state,
                client,
                family_id,
                address,
                format!("authorization code replayed; family revoked, {revoked} tokens"),
            )
            .await;
            return Err(invalid("the authorization code was already used"));
        }
        Redemption::Unknown => return Err(invalid("the authorization code is not valid")),
    };
    if redeemed.client_id != client.client_id {
        return Err(invalid(
            "the authorization code was issued to another client",
        ));
    }
    if now >= redeemed.expires_at {
        return Err(invalid("the authorization code has expired"));
    }
    if redeemed.redirect_uri != redirect_uri {
        return Err(invalid(
            "redirect_uri differs from the one in the authorization request",
        ));
    }
    if !pkce::verifier_matches(verifier, &redeemed.code_challenge) {
        return Err(invalid("code_verifier does not match the code_challenge"));
    }
    let user = active_user(state, redeemed.user_id).await?;
    let scope = current_scope(redeemed.scope, &user, client);
    if scope.is_empty() {
        return Err(invalid(
            "the user may no longer be granted the consented scope",
        ));
    }
    let response = issue_for_user(
        state,
        client,
        &user,
        scope,
        Family::Existing {
            id: redeemed.family_id,
            granted: redeemed.scope,
        },
        now,
    )
    .await?;
    Ok((response, user))
}

/// RFC 6749 §6: exchanges a refresh token for a new access token and a new refresh token.
async fn refresh_grant(
    form: &Form,
    state: &AppState,
    client: &Client,
    now: DateTime<Utc>,
    address: IpAddr,
) -> Result<(HttpResponse, User), ApiError> {
    let presented = form.require("refresh_token")?;
    let invalid = |why: &'static str| ApiError::new(ErrorCode::InvalidGrant, why);
    let digest = secret::digest(presented);

    // Everything that can refuse the request is checked before the token is spent, so a
    // refused refresh leaves the client its token.
    let Some(found) = state.store.find_refresh_token(&digest).await? else {
        return Err(invalid("the refresh token is not valid"));
    };
    if found.client_id != client.client_id {
        return Err(invalid("the refresh token was issued to another client"));
    }
    if now >= found.expires_at {
        return Err(invalid("the refresh token has expired"));
    }
    // Spent or revoked already: answered without making an access token first. The
    // rotation below checks again, atomically, for requests that race this one.
    if found.revoked_at.is_some() {
        return Err(invalid("the refresh token was revoked"));
    }
    if found.used_at.is_some() {
        return Err(reused(state, client, found.family_id, now, address).await);
    }
    let user = match state.store.find_user_by_id(found.user_id).await? {
        Some(user) if !user.disabled => user,
        _ => {
            state.store.revoke_family(found.family_id, now).await?;
            return Err(invalid("the user may no longer obtain tokens"));
        }
    };
    let scope = match form.get("scope") {
        // RFC 6749 §6: a refresh may narrow the scope, never widen it.
        Some(raw) => {
            let requested = parse_scope(raw)?;
            let widened = requested.difference(found.scope);
            if !widened.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidScope,
                    format!("the scope {widened} was not granted; a refresh cannot widen it"),
                ));
            }
            within_client(requested, client)?;
            within_roles(requested, &user)?;
            requested
        }
        None => current_scope(found.scope, &user, client),
    };
    if scope.is_empty() {
        return Err(invalid(
            "the user may no longer be granted any of the scopes",
        ));
    }

    // The access token exists before the old refresh token is spent: a failure while
    // making it (a database outage, say) leaves the client its refresh token to retry with,
    // where failing after the rotation would make the retry look like reuse. An opaque
    // token of a rotation that then loses is revoked with its family, or never delivered.
    let (access_token, ttl) = access_token(
        state,
        client,
        Subject::User(&user),
        scope,
        Some(found.family_id),
        now,
    )
    .await?;
    let successor = new_secret(REFRESH_PREFIX)?;
    match state
        .store
        .rotate_refresh_token(&digest, &secret::digest(&successor), now)
        .await?
    {
        Rotation::Rotated(_) => Ok((
            token_response(access_token, ttl, scope, Some(successor)),
            user,
        )),
        Rotation::Reused { family_id } => Err(reused(state, client, family_id, now, address).await),
        Rotation::Revoked => Err(invalid("the refresh token was revoked")),
        Rotation::Unknown => Err(invalid("the refresh token is not valid")),
    }
}

/// A spent refresh token came back: it leaked, or the client raced itself. Either way the
/// family can no longer be trusted (RFC 9700 §4.14.2): it is revoked, and the request gets
/// `invalid_grant` (or the store's error, when the revocation fails).
async fn reused(
    state: &AppState,
    client: &Client,
    family_id: Uuid,
    now: DateTime<Utc>,
    address: IpAddr,
) -> ApiError {
    match state.store.revoke_family(family_id, now).await {
        Ok(revoked) => {
            tracing::warn!(
                client_id = %client.client_id,
                %family_id,
                revoked,
                "refresh token reused; its family is revoked"
            );
            reuse_detected(
                state,
                client,
                family_id,
                address,
                format!("family revoked, {revoked} tokens"),
            )
            .await;
            ApiError::new(
                ErrorCode::InvalidGrant,
                "the refresh token was already used",
            )
        }
        Err(err) => err.into(),
    }
}

/// Audits a one-time secret (refresh token or authorization code) that came back.
async fn reuse_detected(
    state: &AppState,
    client: &Client,
    family_id: Uuid,
    address: IpAddr,
    detail: String,
) {
    state
        .audit(
            NewAuditEvent::new(AuditKind::RefreshReuse, state.now())
                .client_id(client.client_id.as_str())
                .address(address.to_string())
                .target(format!("family {family_id}"))
                .detail(detail),
        )
        .await;
}

/// The user `id`, unless deleted or disabled (`invalid_grant`).
async fn active_user(state: &AppState, id: Uuid) -> Result<User, ApiError> {
    match state.store.find_user_by_id(id).await? {
        Some(user) if !user.disabled => Ok(user),
        _ => Err(ApiError::new(
            ErrorCode::InvalidGrant,
            "the user may no longer obtain tokens",
        )),
    }
}

/// RFC 6749 §4.3: the resource owner password credentials grant.
async fn password_grant(
    form: &Form,
    state: &AppState,
    requested: ScopeSet,
    address: IpAddr,
    client: &Client,
) -> Result<User, ApiError> {
    let username = form.require("username")?;
    let candidate = form.require("password")?;
    let signed_in = crate::passwords::authenticate(
        state,
        username,
        candidate,
        address,
        client.client_id.as_str(),
    )
    .await?;
    let user = match signed_in {
        SignIn::Succeeded(user) => user,
        SignIn::Failed => {
            return Err(ApiError::new(
                ErrorCode::InvalidGrant,
                "invalid username or password",
            ));
        }
        SignIn::Limited(limited) => return Err(ApiError::rate_limited(limited)),
    };
    within_roles(requested, &user)?;
    Ok(user)
}

/// Who a token speaks for.
enum Subject<'a> {
    User(&'a User),
    Client,
}

/// The grant family of a user's tokens.
enum Family {
    /// A password grant: a family starts here if the client may refresh.
    New,
    /// A redeemed code's family, and the scope the user consented to.
    Existing { id: Uuid, granted: ScopeSet },
}

/// Issues an access token for `user` and, when the client may use the refresh grant, the
/// first refresh token of the family.
async fn issue_for_user(
    state: &AppState,
    client: &Client,
    user: &User,
    scope: ScopeSet,
    family: Family,
    now: DateTime<Utc>,
) -> Result<HttpResponse, ApiError> {
    let refreshable = client.allows_grant(GrantType::RefreshToken);
    let (family_id, granted) = match family {
        Family::Existing { id, granted } => (Some(id), granted),
        Family::New if refreshable => (Some(Uuid::new_v4()), scope),
        Family::New => (None, scope),
    };
    let (access_token, ttl) =
        access_token(state, client, Subject::User(user), scope, family_id, now).await?;
    let refresh_token = match family_id {
        Some(family_id) if refreshable => {
            let token = new_secret(REFRESH_PREFIX)?;
            let lifetime = client
                .refresh_token_ttl_secs
                .and_then(chrono::Duration::try_seconds)
                .or_else(|| chrono::Duration::from_std(state.refresh_token_ttl).ok())
                .unwrap_or(chrono::Duration::MAX);
            state
                .store
                .insert_refresh_token(
                    &NewRefreshToken {
                        token_hash: secret::digest(&token),
                        family_id,
                        client_id: client.client_id.clone(),
                        user_id: user.id,
                        scope: granted,
                        expires_at: now
                            .checked_add_signed(lifetime)
                            .unwrap_or(DateTime::<Utc>::MAX_UTC),
                    },
                    now,
                )
                .await?;
            Some(token)
        }
        _ => None,
    };
    Ok(token_response(access_token, ttl, scope, refresh_token))
}

/// A new random secret: `prefix` and 256 bits from the OS CSPRNG, base64url.
fn new_secret(prefix: &str) -> Result<String, ApiError> {
    let random =
        secret::generate().map_err(|e| ApiError::internal("generating a token failed", &e))?;
    Ok(format!("{prefix}{random}"))
}

fn token_response(
    access_token: String,
    expires_in: i64,
    scope: ScopeSet,
    refresh_token: Option<String>,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    response.json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        scope,
        refresh_token,
    })
}

/// Issues one access token in the client's format; the opaque kind is stored, tagged with
/// its grant family. Returns the token and its lifetime in seconds.
async fn access_token(
    state: &AppState,
    client: &Client,
    subject: Subject<'_>,
    scope: ScopeSet,
    family_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(String, i64), ApiError> {
    // A client's own lifetime is bounded by what the key schedule keeps verifiable.
    let longest =
        i64::try_from(state.keys.schedule().longest_token_lifetime().as_secs()).unwrap_or(0);
    let ttl = client.access_token_ttl_secs.map_or(
        i64::try_from(state.access_token_ttl.as_secs()).unwrap_or(i64::MAX),
        |own| own.min(longest),
    );
    let iat = now.timestamp();
    let token = match client.access_token_format {
        TokenFormat::Jwt => {
            let (sub, company, roles, username) = match subject {
                Subject::User(user) => (
                    user.id.to_string(),
                    Some(user.company.to_string()),
                    Some(user.roles.clone()),
                    Some(user.username.to_string()),
                ),
                Subject::Client => (client.client_id.to_string(), None, None, None),
            };
            let claims = AccessTokenClaims {
                iss: state.issuer.clone(),
                sub,
                aud: state.audience.clone(),
                exp: iat.saturating_add(ttl),
                iat,
                jti: Uuid::new_v4().to_string(),
                client_id: client.client_id.to_string(),
                scope,
                company,
                roles,
                username,
            };
            sign(state.keys.signer(), claims).await?
        }
        TokenFormat::Opaque => {
            // Only the digest is stored. The prefix lets secret scanners recognise a
            // leaked token; it carries no meaning.
            let token = new_secret(OPAQUE_PREFIX)?;
            let (user_id, subject) = match subject {
                Subject::User(user) => (Some(user.id), user.id.to_string()),
                Subject::Client => (None, client.client_id.to_string()),
            };
            let record = NewAccessToken {
                token_hash: secret::digest(&token),
                client_id: client.client_id.clone(),
                user_id,
                subject,
                scope,
                expires_at: chrono::Duration::try_seconds(ttl)
                    .and_then(|d| now.checked_add_signed(d))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
                family_id,
            };
            state.opaque_tokens.insert(record, now).await?;
            token
        }
    };
    Ok((token, ttl))
}

/// Signs `claims`. An RSA signature takes the better part of a millisecond: it runs on the
/// blocking pool, so the request worker meanwhile serves other requests and hands back the
/// database connections they hold instead of keeping them until it is done signing.
/// ES256 and EdDSA sign in microseconds, in place.
async fn sign(key: Arc<SigningKey>, claims: AccessTokenClaims) -> Result<String, ApiError> {
    let failed =
        |e: &dyn std::error::Error| ApiError::internal("signing an access token failed", e);
    if !matches!(
        key.algorithm(),
        SigningAlgorithm::RS256 | SigningAlgorithm::PS256
    ) {
        return key.sign_access_token(&claims).map_err(|e| failed(&e));
    }
    match tokio::task::spawn_blocking(move || key.sign_access_token(&claims)).await {
        Ok(signed) => signed.map_err(|e| failed(&e)),
        Err(e) => Err(failed(&e)),
    }
}
