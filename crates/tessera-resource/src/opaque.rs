//! The opaque-token path: the token says nothing, so the server asks who the caller is
//! (the token store, or the issuer's introspection endpoint) and then the user database
//! which company they belong to and which roles they hold now.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::{ScopeSet, millis_to_utc, secret};
use tessera_guard::{Audience, Claims, GuardError, Introspection, OpaqueTokens, Rejection};
use tessera_store::{Store, User};
use uuid::Uuid;

const INACTIVE: GuardError = GuardError::InvalidToken(Rejection::Inactive);

/// A token the authorization server never issued: not `tsr_` and a generated secret.
const MALFORMED: GuardError = GuardError::InvalidToken(Rejection::Malformed);

/// What every opaque path builds its claims from.
struct Facts {
    subject: String,
    client_id: String,
    scope: ScopeSet,
    iat: i64,
    exp: i64,
}

/// Where an opaque token's facts come from.
#[derive(Debug)]
pub enum Source {
    /// The token store the authorization server writes to, by SHA-256 digest: the token
    /// and its user in one round trip per request.
    Store,
    /// The issuer's introspection endpoint (RFC 7662): with the user, two round trips per
    /// request for a user's token, one when the introspection cache keeps its answer.
    Introspection(Introspection),
}

/// The resource server's [`OpaqueTokens`]: the token's facts from its [`Source`], then
/// the user as they are now from the user database (`store`), into claims that name
/// `issuer` and `audience`.
#[derive(Debug)]
pub struct UserOpaque {
    pub source: Source,
    pub store: Arc<dyn Store>,
    pub issuer: String,
    pub audience: String,
}

#[async_trait]
impl OpaqueTokens for UserOpaque {
    fn method(&self) -> &'static str {
        match self.source {
            Source::Store => "opaque-store",
            Source::Introspection(_) => "opaque-introspection",
        }
    }

    /// Refuses at once, with no lookup, a token not shaped like those the authorization
    /// server issues (`tsr_` and 43 base64url characters): garbage never reaches the store
    /// or the introspection endpoint.
    async fn claims(&self, token: &str, now: i64) -> (Result<Claims, GuardError>, u32) {
        if !secret::has_secret_shape(token, secret::OPAQUE_ACCESS_TOKEN_PREFIX) {
            return (Err(MALFORMED), 0);
        }
        match &self.source {
            Source::Store => self.stored(token, now).await,
            Source::Introspection(introspection) => {
                self.introspected(introspection, token, now).await
            }
        }
    }
}

impl UserOpaque {
    async fn stored(&self, token: &str, now: i64) -> (Result<Claims, GuardError>, u32) {
        let now = millis_to_utc(now.saturating_mul(1000));
        // The token and its user in one round trip.
        let digest = secret::digest(token);
        let (stored, user) = match self.store.find_access_token_with_user(&digest).await {
            Ok(Some((stored, user))) if stored.is_active(now) => (stored, user),
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
        let claims = match stored.user_id {
            None => Ok(self.claims(facts, None)),
            Some(_) => self.claims_of_user(facts, user, None),
        };
        (claims, 1)
    }

    async fn introspected(
        &self,
        introspection: &Introspection,
        token: &str,
        now: i64,
    ) -> (Result<Claims, GuardError>, u32) {
        // A kept answer (the optional introspection cache) costs no round trip.
        let (answer, asked) = introspection.introspect_at(token, now).await;
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
            return (Ok(self.claims(facts, None)), asked);
        };
        let Ok(user_id) = Uuid::parse_str(&facts.subject) else {
            return (Err(INACTIVE), asked);
        };
        let claims = self.user_claims(facts, user_id, Some(&username)).await;
        (claims, asked + 1)
    }

    /// Claims for the token of user `user_id`, from the user as they are now (one round
    /// trip): a disabled user's tokens stop working at once, and a scope the user's
    /// current roles no longer permit (`admin` without the admin role) is dropped. With
    /// `username`, the stored user must also bear that name.
    async fn user_claims(
        &self,
        facts: Facts,
        user_id: Uuid,
        username: Option<&str>,
    ) -> Result<Claims, GuardError> {
        match self.store.find_user_by_id(user_id).await {
            Ok(user) => self.claims_of_user(facts, user, username),
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// Claims for a user's token from `user` as they are now (`None`: deleted): a disabled
    /// or deleted user's tokens stop working at once. With `username`, the user must also
    /// bear that name.
    fn claims_of_user(
        &self,
        facts: Facts,
        user: Option<User>,
        username: Option<&str>,
    ) -> Result<Claims, GuardError> {
        match user {
            Some(user)
                if !user.disabled && username.is_none_or(|name| user.username.as_str() == name) =>
            {
                Ok(self.claims(facts, Some(user)))
            }
            _ => Err(INACTIVE),
        }
    }

    /// Claims from the token's facts and, for a user's token, the user; a client's token
    /// speaks for no user.
    fn claims(&self, facts: Facts, user: Option<User>) -> Claims {
        let (scope, company, roles, username) = match user {
            Some(user) => (
                facts.scope.permitted_for(&user.roles),
                Some(user.company.to_string()),
                Some(user.roles.iter().map(|r| r.as_str().to_owned()).collect()),
                Some(user.username.to_string()),
            ),
            None => (facts.scope, None, None, None),
        };
        Claims {
            iss: self.issuer.clone(),
            sub: facts.subject,
            aud: Audience::One(self.audience.clone()),
            exp: facts.exp,
            nbf: None,
            iat: Some(facts.iat),
            jti: None,
            client_id: Some(facts.client_id),
            scope: Some(scope.to_string()),
            company,
            roles,
            username,
            // An opaque token is looked up on every request: revocation needs no `sid`.
            sid: None,
        }
    }
}

fn unavailable(err: &tessera_store::StoreError) -> GuardError {
    tracing::warn!(error = %err, "token store unavailable");
    GuardError::Unavailable
}
