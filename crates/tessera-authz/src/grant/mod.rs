//! The grant engine: what the token endpoint and the authorization endpoint decide, with no
//! web framework in sight.
//!
//! A handler reads the request, authenticates the client, hands the engine a parsed
//! [`TokenRequest`] with `now`, and renders what comes back: an [`Issued`] token or a
//! [`GrantError`], which maps to the same RFC 6749 §5.2 answer the handler always sent.
//! Every decision of a grant (which scope, which user, which token, which secret is spent
//! and when) is made here, against the store, so it can be tested without HTTP.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_core::{Clock, ErrorCode, GrantType, OAuthError, ScopeSet};
use tessera_store::{AuditLog, Client, NewAuditEvent, Store, StoreError, TokenBatcher, User};
use tessera_web::ratelimit::Limited;

use crate::feed_head::FeedHead;
use crate::keys::KeyManager;
use crate::passwords::Passwords;

mod authorization;
mod client_credentials;
mod code;
mod issue;
mod password;
mod refresh;
mod request;
mod scope;

pub use authorization::{AuthorizationRequest, CODE_TTL_SECS, Refusal, check};
pub use issue::{OPAQUE_PREFIX, REFRESH_PREFIX};
pub use request::{Parameters, TokenRequest};
pub use scope::ADMIN_NEEDS_ROLE;

/// The grants this server implements, in the order the metadata lists them.
pub const SUPPORTED_GRANTS: [GrantType; 4] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::Password,
    GrantType::ClientCredentials,
];

/// Why a public client may never use `grant`, or `None` when it may. A public client
/// keeps no secret, so it cannot act on its own behalf (RFC 6749 §4.4), and it must not
/// collect users' passwords (RFC 9700 §2.4): registration refuses such a client, and the
/// token endpoint refuses one stored by an older version (`unauthorized_client`, before
/// anything is checked).
pub fn refused_to_public_clients(grant: GrantType) -> Option<&'static str> {
    match grant {
        GrantType::ClientCredentials => {
            Some("a public client cannot use the client_credentials grant (RFC 6749 §4.4)")
        }
        GrantType::Password => {
            Some("a public client cannot use the password grant (RFC 9700 §2.4)")
        }
        GrantType::AuthorizationCode | GrantType::RefreshToken => None,
    }
}

/// Where `grant` stands in [`SUPPORTED_GRANTS`]. The match is exhaustive: a grant type
/// added to core does not compile here until the engine implements and lists it.
const fn listed_at(grant: GrantType) -> usize {
    match grant {
        GrantType::AuthorizationCode => 0,
        GrantType::RefreshToken => 1,
        GrantType::Password => 2,
        GrantType::ClientCredentials => 3,
    }
}

// Every grant type is listed exactly once, at its place: the list and the match above
// cannot drift apart without the build failing.
const _: () = {
    let mut i = 0;
    while i < SUPPORTED_GRANTS.len() {
        assert!(listed_at(SUPPORTED_GRANTS[i]) == i);
        i += 1;
    }
};

/// Why a grant was refused or failed. Each maps to the answer the token endpoint gives.
#[derive(Debug)]
pub enum GrantError {
    /// An RFC 6749 §5.2 error, with the status its code names.
    OAuth(OAuthError),
    /// A rate limit refused the request (429 with `Retry-After`).
    RateLimited(Limited),
    /// The store failed (503 when it is away, 500 otherwise).
    Store(StoreError),
    /// Something failed whose cause must not reach the client (500; the cause is logged).
    Internal {
        /// What was being done.
        context: &'static str,
        /// Why it failed.
        cause: Box<dyn StdError + Send + Sync>,
    },
}

impl GrantError {
    /// An OAuth error with `code` and `description`.
    pub fn new(code: ErrorCode, description: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        GrantError::OAuth(OAuthError::new(code, description))
    }

    /// `invalid_grant` with `description`.
    fn invalid_grant(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// A failure whose cause is kept for the log only.
    fn internal(context: &'static str, cause: impl StdError + Send + Sync + 'static) -> Self {
        GrantError::Internal {
            context,
            cause: Box::new(cause),
        }
    }

    /// The OAuth error code the client is sent.
    #[cfg(test)]
    pub fn code(&self) -> ErrorCode {
        match self {
            GrantError::OAuth(error) => error.error,
            GrantError::RateLimited(_) => ErrorCode::TemporarilyUnavailable,
            GrantError::Store(StoreError::Unavailable(_)) => ErrorCode::TemporarilyUnavailable,
            GrantError::Store(_) | GrantError::Internal { .. } => ErrorCode::ServerError,
        }
    }
}

impl std::fmt::Display for GrantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantError::OAuth(error) => error.fmt(f),
            GrantError::RateLimited(limited) => write!(
                f,
                "refused by a rate limit for {} s",
                limited.retry_after_secs()
            ),
            GrantError::Store(err) => err.fmt(f),
            GrantError::Internal { context, .. } => f.write_str(context),
        }
    }
}

impl StdError for GrantError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            GrantError::Store(err) => err.source(),
            GrantError::Internal { cause, .. } => Some(cause.as_ref()),
            GrantError::OAuth(_) | GrantError::RateLimited(_) => None,
        }
    }
}

impl From<StoreError> for GrantError {
    fn from(err: StoreError) -> Self {
        GrantError::Store(err)
    }
}

/// An issued access token, with the refresh token of its family when there is one: what
/// the handler renders as an RFC 6749 §5.1 response.
#[derive(Debug)]
pub struct Issued {
    /// The access token (a JWT or an opaque token).
    pub access_token: String,
    /// What the audit log names the access token by, never the token itself: `jti <jti>`
    /// for a JWT, `sha256 <the first 16 hex digits of its digest>` for an opaque token.
    pub token_id: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The scope granted.
    pub scope: ScopeSet,
    /// The next refresh token, when the client may refresh.
    pub refresh_token: Option<String>,
    /// The OpenID Connect ID token, when `openid` was granted through the code flow.
    pub id_token: Option<String>,
    /// The user the token speaks for; `None` for a client's own token.
    pub user: Option<User>,
}

/// Everything a grant decision needs: the store, the signing keys, the configured issuer,
/// audience and lifetimes, the opaque-token writer, the password checks and the audit log.
#[derive(Debug, Clone)]
pub struct GrantEngine {
    /// Clients, users, codes and tokens.
    pub store: Arc<dyn Store>,
    /// The signing keys.
    pub keys: Arc<KeyManager>,
    /// The time, for events recorded after the request's `now`.
    pub clock: Clock,
    /// `iss` of every token.
    pub issuer: String,
    /// `aud` of every token.
    pub audience: String,
    /// The default access-token lifetime.
    pub access_token_ttl: Duration,
    /// The default refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// Opaque access tokens, stored by group commit.
    pub opaque_tokens: TokenBatcher,
    /// Password checks for the password grant (and the login form).
    pub passwords: Passwords,
    /// Security events, written in the background.
    pub audit: AuditLog,
    /// The revocation feed's head, told of every entry this instance writes.
    pub feed: Arc<FeedHead>,
}

impl GrantEngine {
    /// Decides `request` by the authenticated `client` from `address` at `now`: issues a
    /// token, or says why not.
    pub async fn grant(
        &self,
        client: &Client,
        request: TokenRequest,
        now: DateTime<Utc>,
        address: std::net::IpAddr,
    ) -> Result<Issued, GrantError> {
        match request {
            TokenRequest::Password {
                username,
                password,
                scope,
            } => {
                self.password_grant(client, &username, &password, scope, now, address)
                    .await
            }
            TokenRequest::ClientCredentials { scope } => {
                self.client_credentials_grant(client, scope, now).await
            }
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                self.code_grant(client, &code, &redirect_uri, &code_verifier, now, address)
                    .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                self.refresh_grant(client, &refresh_token, scope.as_deref(), now, address)
                    .await
            }
        }
    }

    /// Records a security event (in the background: the request waits only for room in
    /// the queue).
    async fn audit(&self, event: NewAuditEvent) {
        self.audit.record(event).await;
    }
}

#[cfg(test)]
mod tests;
