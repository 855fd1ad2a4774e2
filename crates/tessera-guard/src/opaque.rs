//! Opaque (non-JWT) access tokens: their meaning lives with the issuer, so every request
//! costs a lookup, through a token store the API shares or RFC 7662 introspection.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::cache::{TokenCache, TokenCacheStats, token_digest};
use crate::jwks::{JwksError, check_url};
use crate::{Claims, GuardError, Rejection};

/// How an API turns an opaque token into claims. The guard calls it for every bearer token
/// that is not shaped like a JWT (no `.`).
#[async_trait]
pub trait OpaqueTokens: Send + Sync + std::fmt::Debug {
    /// The method named in reports (`Server-Timing`), e.g. `opaque-store`.
    fn method(&self) -> &'static str;

    /// The claims of an active token at `now`, or [`GuardError::InvalidToken`]; and the
    /// round trips (to a store or another service) that answering took.
    async fn claims(&self, token: &str, now: i64) -> (Result<Claims, GuardError>, u32);
}

/// An RFC 7662 introspection response: the members Tessera uses, in the order of RFC 7662
/// §2.2. A member that is absent (or `null`) is `None`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IntrospectionResponse {
    /// Whether the token is active; every other member is absent when it is not.
    pub active: bool,
    /// Granted scopes, space-separated as in the `scope` parameter (RFC 6749 §3.3), in
    /// any order.
    pub scope: Option<String>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The resource owner's login name: present for a user's token, absent for a
    /// client's.
    pub username: Option<String>,
    /// Expiry, in seconds since the epoch: a kept answer is never served at or after it.
    pub exp: Option<i64>,
    /// Issued at, in seconds since the epoch.
    pub iat: Option<i64>,
    /// Subject: the user id for a user's token, the client id for a client's.
    pub sub: Option<String>,
}

/// A client of an RFC 7662 introspection endpoint, authenticating with
/// `client_secret_basic`.
pub struct Introspection {
    client: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: String,
    /// Active answers kept for a short time, when enabled.
    cache: Option<(Arc<TokenCache<IntrospectionResponse>>, i64)>,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("cache_ttl", &self.cache.as_ref().map(|(_, ttl)| ttl))
            .finish()
    }
}

impl Introspection {
    /// An introspection client for `url` (https, or http on loopback unless `allow_http`),
    /// giving up after `timeout`.
    pub fn new(
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        timeout: Duration,
        allow_http: bool,
    ) -> Result<Self, JwksError> {
        let url = url.into();
        check_url(&url, allow_http)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwksError::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(Introspection {
            client,
            url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            cache: None,
        })
    }

    /// The same client keeping each *active* answer for up to `ttl` (never past the
    /// token's `exp`), at most `capacity` of them. Off by default, because it has a price:
    /// a token revoked at the issuer keeps working here until its answer ages out, up to
    /// `ttl` later. Inactive answers are never kept. A zero `ttl` or `capacity` leaves the
    /// cache off.
    pub fn with_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.cache = match TokenCache::new(capacity) {
            Some(cache) if ttl_secs > 0 => Some((Arc::new(cache), ttl_secs)),
            _ => None,
        };
        self
    }

    /// The answer cache's counts; `None` when it is off.
    pub fn cache_stats(&self) -> Option<TokenCacheStats> {
        self.cache.as_ref().map(|(cache, _)| cache.stats())
    }

    /// [`introspect`](Self::introspect) through the answer cache at time `now` (seconds
    /// since the epoch), saying whether the endpoint was asked (`true`) or a kept answer
    /// served (`false`).
    pub async fn introspect_at(
        &self,
        token: &str,
        now: i64,
    ) -> (Result<Option<IntrospectionResponse>, GuardError>, bool) {
        let Some((cache, ttl)) = &self.cache else {
            return (self.introspect(token).await, true);
        };
        let digest = token_digest(token);
        if let Some(answer) = cache.get(&digest, now) {
            cache.count(true);
            return (Ok(Some(answer)), false);
        }
        cache.count(false);
        let result = self.introspect(token).await;
        if let Ok(Some(answer)) = &result {
            // Served while `now <= until`: through the last second of the TTL, and never
            // at `exp` itself (the issuer calls a token inactive from `exp` on).
            let until = now
                .saturating_add(ttl.saturating_sub(1))
                .min(answer.exp.unwrap_or(i64::MAX).saturating_sub(1));
            if until >= now {
                cache.insert(digest, answer.clone(), until, now);
            }
        }
        (result, true)
    }

    /// Asks the endpoint about `token`: `Ok(None)` when it is not active,
    /// [`GuardError::Unavailable`] when the endpoint cannot answer.
    pub async fn introspect(
        &self,
        token: &str,
    ) -> Result<Option<IntrospectionResponse>, GuardError> {
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "introspection request failed");
                GuardError::Unavailable
            })?;
        if !response.status().is_success() {
            tracing::warn!(status = %response.status(), "introspection refused");
            return Err(GuardError::Unavailable);
        }
        let body: IntrospectionResponse = response.json().await.map_err(|e| {
            tracing::warn!(error = %e, "introspection answered garbage");
            GuardError::Unavailable
        })?;
        Ok(body.active.then_some(body))
    }
}

/// Whether a bearer token is shaped like a JWT (three dot-separated parts) rather than an
/// opaque string.
pub(crate) fn is_jwt_shaped(token: &str) -> bool {
    token.contains('.')
}

/// The refusal for an opaque token when no [`OpaqueTokens`] is configured.
pub(crate) const OPAQUE_DISABLED: GuardError = GuardError::InvalidToken(Rejection::Opaque);
