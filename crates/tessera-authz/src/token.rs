//! `POST /oauth/token` (RFC 6749 §3.2).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_core::{
    AccessTokenClaims, ErrorCode, GrantType, Role, Scope, ScopeSet, TokenFormat, password, secret,
};
use tessera_store::{Client, NewAccessToken, User};

use crate::client_auth;
use crate::error::{ApiError, no_store};
use crate::form::Form;
use crate::state::AppState;

/// The grants this server implements, in the order the metadata lists them. Keep in step
/// with [`Grant`].
pub const SUPPORTED_GRANTS: [GrantType; 2] = [GrantType::Password, GrantType::ClientCredentials];

/// The prefix of every opaque access token: `tsr_` and 43 base64url characters, no `.`.
pub const OPAQUE_PREFIX: &str = "tsr_";

/// RFC 6749 §5.1 successful response.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: ScopeSet,
}

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let form = Form::read(&req, payload).await?;
    let client = client_auth::authenticate(&req, &form, state.store.as_ref()).await?;

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
    let requested = requested_scope(&form, &client)?;

    let subject = match grant {
        Grant::Password => Subject::User(password_grant(&form, &state, requested).await?),
        Grant::ClientCredentials => {
            // RFC 6749 §4.4: only confidential clients act on their own behalf.
            if client.is_public() {
                return Err(ApiError::new(
                    ErrorCode::UnauthorizedClient,
                    "public clients may not use the client_credentials grant",
                ));
            }
            Subject::Client
        }
    };
    issue(&state, &client, subject, requested, now).await
}

/// The grants this server implements: what `grant_type` parses into.
#[derive(Clone, Copy)]
enum Grant {
    Password,
    ClientCredentials,
}

impl From<Grant> for GrantType {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::Password => GrantType::Password,
            Grant::ClientCredentials => GrantType::ClientCredentials,
        }
    }
}

/// `grant_type`, exactly as RFC 6749 spells it; anything else is `unsupported_grant_type`.
fn parse_grant(form: &Form) -> Result<Grant, ApiError> {
    match form.require("grant_type")? {
        "password" => Ok(Grant::Password),
        "client_credentials" => Ok(Grant::ClientCredentials),
        other => Err(ApiError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "the grant type {other:?} is not supported; use password or client_credentials"
            ),
        )),
    }
}

/// The scope asked for (default `basic`), refused with `invalid_scope` when unknown,
/// malformed or not allowed for the client. Never widened, never normalised.
fn requested_scope(form: &Form, client: &Client) -> Result<ScopeSet, ApiError> {
    let requested = match form.get("scope") {
        None => ScopeSet::only(Scope::Basic),
        Some(raw) => raw
            .parse::<ScopeSet>()
            .map_err(|e| ApiError::new(ErrorCode::InvalidScope, e.to_string()))?,
    };
    let refused = requested.difference(client.scopes);
    if !refused.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidScope,
            format!("this client may not request the scope {refused}"),
        ));
    }
    Ok(requested)
}

/// RFC 6749 §4.3: the resource owner password credentials grant.
async fn password_grant(
    form: &Form,
    state: &AppState,
    requested: ScopeSet,
) -> Result<User, ApiError> {
    let username = form.require("username")?;
    let candidate = form.require("password")?;
    let invalid = || ApiError::new(ErrorCode::InvalidGrant, "invalid username or password");
    if candidate.len() > password::MAX_BYTES {
        // Longer than any password we accept: no account matches, and no hashing is done.
        return Err(invalid());
    }
    let credentials = state.store.find_user_credentials(username).await?;
    // Unknown users still pay one argon2 verification, so timing does not reveal them.
    let matched = state
        .passwords
        .verify(
            candidate,
            credentials.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await;
    let user = match credentials {
        Some(c) if matched && !c.user.disabled => c.user,
        _ => return Err(invalid()),
    };
    if requested.contains(Scope::Admin) && !user.roles.contains(&Role::Admin) {
        return Err(ApiError::new(
            ErrorCode::InvalidScope,
            "the admin scope requires the admin role",
        ));
    }
    Ok(user)
}

/// Who a token speaks for.
enum Subject {
    User(User),
    Client,
}

async fn issue(
    state: &AppState,
    client: &Client,
    subject: Subject,
    scope: ScopeSet,
    now: DateTime<Utc>,
) -> Result<HttpResponse, ApiError> {
    let ttl = client
        .access_token_ttl_secs
        .unwrap_or(i64::try_from(state.access_token_ttl.as_secs()).unwrap_or(i64::MAX));
    let iat = now.timestamp();
    let access_token = match client.access_token_format {
        TokenFormat::Jwt => {
            let (sub, company, roles, username) = match subject {
                Subject::User(user) => (
                    user.id.to_string(),
                    Some(user.company.to_string()),
                    Some(user.roles),
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
                jti: uuid::Uuid::new_v4().to_string(),
                client_id: client.client_id.to_string(),
                scope,
                company,
                roles,
                username,
            };
            state
                .signing_key
                .sign_access_token(&claims)
                .map_err(|e| ApiError::internal("signing an access token failed", &e))?
        }
        TokenFormat::Opaque => {
            // 256 bits from the OS CSPRNG; only the digest is stored. The prefix lets
            // secret scanners recognise a leaked token; it carries no meaning.
            let token = format!(
                "{OPAQUE_PREFIX}{}",
                secret::generate()
                    .map_err(|e| ApiError::internal("generating a token failed", &e))?
            );
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
                family_id: None,
            };
            state.store.insert_access_token(&record, now).await?;
            token
        }
    };
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
    }))
}
