//! `GET` and `POST /oauth/userinfo` (OpenID Connect Core §5.3): the signed-in user's
//! claims, for an access token granted `openid`.
//!
//! The token is checked as introspection checks it (a JWT of ours, not revoked through the
//! feed; or an opaque token in the store) and its user read as they are now. Errors are
//! RFC 6750's, as on the resource server: a bare challenge without a token, 401
//! `invalid_token` for one that is not active, 403 `insufficient_scope` without `openid`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use tessera_core::{ErrorCode, OAuthError, Scope};

use crate::error::no_store;
use crate::introspect::active_token;
use crate::state::AppState;

/// The realm of the challenge, the resource server's own.
const REALM: &str = "tessera";

/// A refusal per RFC 6750 §3: the status, the challenge (with `error` and, for a missing
/// scope, `scope`) and the JSON body; no code at all when no token came.
fn refuse(status: StatusCode, error: Option<(ErrorCode, &str)>) -> HttpResponse {
    let mut challenge = format!("Bearer realm=\"{REALM}\"");
    if let Some((code, _)) = error {
        challenge.push_str(&format!(", error=\"{code}\""));
        if code == ErrorCode::InsufficientScope {
            challenge.push_str(", scope=\"openid\"");
        }
    }
    let mut response = HttpResponse::build(status);
    no_store(&mut response);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.insert_header((header::WWW_AUTHENTICATE, value));
    }
    match error {
        Some((code, description)) => response.json(OAuthError::new(code, description.to_owned())),
        None => response.finish(),
    }
}

/// Why the request carries no usable bearer token.
enum NoToken {
    /// No `Authorization` header, or another scheme: a bare challenge.
    Missing,
    /// Two `Authorization` headers.
    Twice,
    /// A `Bearer` header whose token cannot be one.
    Malformed,
}

impl NoToken {
    fn response(self) -> HttpResponse {
        match self {
            NoToken::Missing => refuse(StatusCode::UNAUTHORIZED, None),
            NoToken::Twice => refuse(
                StatusCode::BAD_REQUEST,
                Some((ErrorCode::InvalidRequest, "send one Authorization header")),
            ),
            NoToken::Malformed => invalid_token(),
        }
    }
}

/// `401 invalid_token`.
fn invalid_token() -> HttpResponse {
    refuse(
        StatusCode::UNAUTHORIZED,
        Some((ErrorCode::InvalidToken, "the access token is invalid")),
    )
}

/// The bearer token of the request's one `Authorization` header.
fn bearer(req: &HttpRequest) -> Result<&str, NoToken> {
    let mut headers = req.headers().get_all(header::AUTHORIZATION);
    let value = headers.next().ok_or(NoToken::Missing)?;
    if headers.next().is_some() {
        return Err(NoToken::Twice);
    }
    let value = value.to_str().map_err(|_| NoToken::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(NoToken::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(NoToken::Missing);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(NoToken::Malformed);
    }
    Ok(token)
}

/// `GET` or `POST /oauth/userinfo`.
pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = state.now();
    let token = match bearer(&req) {
        Ok(token) => token,
        Err(no_token) => return no_token.response(),
    };
    let active = match active_token(&state, token, now).await {
        Ok(active) => active,
        Err(err) => return actix_web::ResponseError::error_response(&err),
    };
    let Some(active) = active else {
        return invalid_token();
    };
    if !active.scope.contains(Scope::OpenId) {
        return refuse(
            StatusCode::FORBIDDEN,
            Some((
                ErrorCode::InsufficientScope,
                "the access token was not granted the openid scope",
            )),
        );
    }
    // A client's own token speaks for no user.
    let Some(user) = active.user else {
        return invalid_token();
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id.to_string()));
    if active.scope.contains(Scope::Profile) {
        if let Some(name) = &user.name {
            claims.insert("name".into(), json!(name));
        }
        claims.insert("preferred_username".into(), json!(user.username.as_str()));
        claims.insert("updated_at".into(), json!(user.updated_at.timestamp()));
    }
    if active.scope.contains(Scope::Email)
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        // Tessera does not verify addresses.
        claims.insert("email_verified".into(), json!(false));
    }
    claims.insert("company".into(), json!(user.company.as_str()));
    claims.insert("roles".into(), json!(user.roles));
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    response.json(Value::Object(claims))
}
