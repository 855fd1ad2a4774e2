//! The opaque-token path: the token says nothing, so the server asks who the caller is
//! (the token store, or the issuer's introspection endpoint) and then the user database
//! which company they belong to and which roles they hold now.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use tessera_core::{Scope, ScopeSet, secret};
use tessera_guard::{Audience, Claims, GuardError, Introspection, OpaqueTokens, Rejection};
use tessera_store::{Store, User};
use uuid::Uuid;

const INACTIVE: GuardError = GuardError::InvalidToken(Rejection::Inactive);

/// What every opaque path builds its claims from.
struct Facts {
    subject: String,
    client_id: String,
    scope: ScopeSet,
    iat: i64,
    exp: i64,
}

/// Claims for an opaque token, from the token's facts and the user as they are now: a
/// disabled user's tokens stop working at once, and `admin` is dropped from the scope of a
/// user who no longer holds the admin role.
fn claims(
    issuer: &str,
    audience: &str,
    facts: Facts,
    user: Option<User>,
) -> Result<Claims, GuardError> {
    let mut scope = facts.scope;
    let (company, roles, username) = match user {
        Some(user) if user.disabled => return Err(INACTIVE),
        Some(user) => {
            if !user.is_admin() {
                scope = scope.iter().filter(|s| *s != Scope::Admin).collect();
            }
            let roles = user.roles.iter().map(|r| r.as_str().to_owned()).collect();
            (
                Some(user.company.to_string()),
                Some(roles),
                Some(user.username.to_string()),
            )
        }
        None => (None, None, None),
    };
    Ok(Claims {
        iss: issuer.to_owned(),
        sub: facts.subject,
        aud: Audience::One(audience.to_owned()),
        exp: facts.exp,
        nbf: None,
        iat: Some(facts.iat),
        jti: None,
        client_id: Some(facts.client_id),
        scope: Some(scope.to_string()),
        company,
        roles,
        username,
    })
}

/// Looks opaque tokens up in the token store the authorization server writes to (by
/// SHA-256 digest), then the user: two round trips per request for a user's token.
#[derive(Debug)]
pub struct StoreOpaque {
    pub store: Arc<dyn Store>,
    pub issuer: String,
    pub audience: String,
}

#[async_trait]
impl OpaqueTokens for StoreOpaque {
    fn method(&self) -> &'static str {
        "opaque-store"
    }

    async fn claims(&self, token: &str, now: i64) -> (Result<Claims, GuardError>, u32) {
        let now = Utc.timestamp_opt(now, 0).single().unwrap_or_else(Utc::now);
        let stored = match self.store.find_access_token(&secret::digest(token)).await {
            Ok(Some(stored)) if stored.is_active(now) => stored,
            Ok(_) => return (Err(INACTIVE), 1),
            Err(err) => return (Err(unavailable(&err)), 1),
        };
        let facts = Facts {
            subject: stored.subject,
            client_id: stored.client_id.to_string(),
            scope: stored.scope,
            iat: stored.created_at.timestamp(),
            exp: stored.expires_at.timestamp(),
        };
        let Some(user_id) = stored.user_id else {
            return (claims(&self.issuer, &self.audience, facts, None), 1);
        };
        match self.store.find_user_by_id(user_id).await {
            Ok(Some(user)) => (claims(&self.issuer, &self.audience, facts, Some(user)), 2),
            Ok(None) => (Err(INACTIVE), 2),
            Err(err) => (Err(unavailable(&err)), 2),
        }
    }
}

/// Asks the issuer's introspection endpoint (RFC 7662) about each opaque token, then the
/// user database for the company and current roles.
#[derive(Debug)]
pub struct IntrospectedOpaque {
    pub introspection: Introspection,
    pub store: Arc<dyn Store>,
    pub issuer: String,
    pub audience: String,
}

#[async_trait]
impl OpaqueTokens for IntrospectedOpaque {
    fn method(&self) -> &'static str {
        "opaque-introspection"
    }

    async fn claims(&self, token: &str, now: i64) -> (Result<Claims, GuardError>, u32) {
        // A kept answer (the optional introspection cache) costs no round trip.
        let (answer, asked) = self.introspection.introspect_at(token, now).await;
        let asked = u32::from(asked);
        let answer = match answer {
            Ok(Some(answer)) => answer,
            Ok(None) => return (Err(INACTIVE), asked),
            Err(err) => return (Err(err), asked),
        };
        let (Some(subject), Some(client_id), Some(exp)) =
            (answer.sub, answer.client_id, answer.exp)
        else {
            return (Err(INACTIVE), asked);
        };
        let facts = Facts {
            scope: answer
                .scope
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            iat: answer.iat.unwrap_or(0),
            exp,
            subject,
            client_id,
        };
        // A user's token names its user (`username`, and the user id as `sub`); a client's
        // names no user. A client id that happens to look like a user id must not make a
        // client's token speak for that user, so both must agree.
        let Some(username) = answer.username else {
            return (claims(&self.issuer, &self.audience, facts, None), asked);
        };
        let Ok(user_id) = Uuid::parse_str(&facts.subject) else {
            return (Err(INACTIVE), asked);
        };
        match self.store.find_user_by_id(user_id).await {
            Ok(Some(user)) if user.username.as_str() == username => (
                claims(&self.issuer, &self.audience, facts, Some(user)),
                asked + 1,
            ),
            Ok(_) => (Err(INACTIVE), asked + 1),
            Err(err) => (Err(unavailable(&err)), asked + 1),
        }
    }
}

fn unavailable(err: &tessera_store::StoreError) -> GuardError {
    tracing::warn!(error = %err, "token store unavailable");
    GuardError::Unavailable
}
