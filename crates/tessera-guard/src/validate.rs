//! RFC 9068 access-token validation.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::cache::{TokenCache, TokenCacheStats, Verified, token_digest};
use crate::jwks::JwksCache;
use crate::{GuardError, Rejection, RevocationList};

/// The longest token accepted, in bytes. Larger ones are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many verified tokens a [`Validator`] remembers by default (about 4 MB).
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 10_000;

/// What a valid token must say.
#[derive(Clone, Debug)]
pub struct ValidationConfig {
    /// The exact `iss` expected (no trailing-slash folding).
    pub issuer: String,
    /// The audience that must be in `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`. Default 30 s; larger values keep expired
    /// tokens alive longer.
    pub leeway: Duration,
    /// How many verified tokens to remember, by SHA-256 digest, so that a token seen again
    /// costs a hash and a map lookup instead of a signature verification. An entry lasts
    /// until the token expires and never outlives the key that signed it: once the JWKS no
    /// longer holds that key, the token is checked in full again (and refused). Default
    /// [`DEFAULT_TOKEN_CACHE_CAPACITY`]; 0 verifies every request.
    pub cache_capacity: usize,
}

impl ValidationConfig {
    /// Issuer and audience with the default leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        ValidationConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
        }
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// The claims of a valid access token. Types are strict: a claim of the wrong type or a
/// duplicated member makes the token invalid.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: a user id, or a client id for client credentials.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before.
    #[serde(default, deserialize_with = "present")]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(default, deserialize_with = "present")]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(default)]
    pub jti: Option<String>,
    /// The grant session id: the same for every token of one grant (the access tokens
    /// and refresh tokens of one login), so that revoking the session revokes them all.
    #[serde(default)]
    pub sid: Option<String>,
    /// The client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// The user's company slug (Tessera private claim).
    #[serde(default)]
    pub company: Option<String>,
    /// The user's roles (Tessera private claim).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The user's login name (Tessera private claim).
    #[serde(default)]
    pub username: Option<String>,
}

impl Claims {
    /// Whether the space-separated `scope` claim holds `scope`, compared exactly.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|t| t == scope))
    }
}

/// The JOSE header members that matter. Unknown members (including `jwk`, `jku`, `x5u`,
/// `x5c`) are ignored: keys come only from the configured JWKS.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// Any `crit`, even `null`, is `Some`: its presence alone refuses the token.
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde_json::Value>,
}

/// For optional members that, when present, must hold a value of their type: `null` is
/// not "absent" (a `null` `nbf` is refused, a `null` `crit` is still a `crit`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Parses a JOSE header or claims set: a JSON object (not an array, which serde would
/// map onto the struct by position), with no member twice.
fn parse_object<T: serde::de::DeserializeOwned>(
    json: &[u8],
    rejection: Rejection,
) -> Result<T, GuardError> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(GuardError::InvalidToken(rejection));
    }
    serde_json::from_slice(json).map_err(|_| GuardError::InvalidToken(rejection))
}

/// Validates access tokens against a [`JwksCache`].
#[derive(Debug, Clone)]
pub struct Validator {
    config: ValidationConfig,
    /// The leeway in whole seconds, converted once.
    leeway: i64,
    jwks: Arc<JwksCache>,
    cache: Option<Arc<TokenCache<Verified>>>,
    revocations: Option<Arc<RevocationList>>,
}

impl Validator {
    /// A validator for `config`, taking keys from `jwks`.
    pub fn new(config: ValidationConfig, jwks: Arc<JwksCache>) -> Self {
        Validator {
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            cache: TokenCache::new(config.cache_capacity).map(Arc::new),
            config,
            jwks,
            revocations: None,
        }
    }

    /// The same validator refusing tokens that `revocations` names
    /// ([`Rejection::Revoked`]), and every token while that list is stale under
    /// [`StalePolicy::FailClosed`](crate::StalePolicy). Every JWT is checked against the
    /// list once it is otherwise valid, those answered from the verified-token cache
    /// too.
    pub fn with_revocations(mut self, revocations: Arc<RevocationList>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// The revocation list, when one is checked.
    pub fn revocations(&self) -> Option<&Arc<RevocationList>> {
        self.revocations.as_ref()
    }

    /// The key cache.
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// The verified-token cache's counts; `None` when it is off.
    pub fn cache_stats(&self) -> Option<TokenCacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
    }

    /// Validates `token` at time `now` (seconds since the epoch).
    pub async fn validate(&self, token: &str, now: i64) -> Result<Claims, GuardError> {
        self.validate_counted(token, now)
            .await
            .0
            .map(Arc::unwrap_or_clone)
    }

    /// Validates `token` and says how many round trips (JWKS or metadata fetches) that
    /// took, whether or not the token was valid.
    pub(crate) async fn validate_counted(
        &self,
        token: &str,
        now: i64,
    ) -> (Result<Arc<Claims>, GuardError>, u32) {
        if token.len() > MAX_TOKEN_BYTES {
            return (Err(GuardError::InvalidToken(Rejection::TooLong)), 0);
        }
        let Some(cache) = &self.cache else {
            let mut round_trips = 0;
            let result = self.check(token, now, &mut round_trips).await;
            let result = result.and_then(|verified| self.not_revoked(verified.claims, now));
            return (result, round_trips);
        };
        let digest = token_digest(token);
        if let Some(verified) = cache.get(&digest, now) {
            if self.still_valid(&verified, now) {
                cache.count(true);
                return (self.not_revoked(verified.claims, now), 0);
            }
            cache.remove(&digest);
        }
        cache.count(false);
        let mut round_trips = 0;
        let result = self.check(token, now, &mut round_trips).await;
        // A verified token is kept even when it is revoked: the list is checked on every
        // hit, and a revoked token presented again costs a lookup, not a signature.
        let result = result.and_then(|verified| {
            let claims = Arc::clone(&verified.claims);
            let until = claims.exp.saturating_add(self.leeway);
            cache.insert(digest, verified, until, now);
            self.not_revoked(claims, now)
        });
        (result, round_trips)
    }

    /// `claims` unless the revocation list refuses them at `now`.
    fn not_revoked(&self, claims: Arc<Claims>, now: i64) -> Result<Arc<Claims>, GuardError> {
        match &self.revocations {
            Some(list) => list.check(&claims, now).map(|()| claims),
            None => Ok(claims),
        }
    }

    /// Whether a token verified earlier would pass a full check now: within its time
    /// window, and its key still the one published under its `kid`. Issuer, audience and
    /// signature cannot have changed: they are this validator's and the token's own.
    fn still_valid(&self, verified: &Verified, now: i64) -> bool {
        let claims = &verified.claims;
        now <= claims.exp.saturating_add(self.leeway)
            && claims
                .nbf
                .is_none_or(|nbf| nbf.saturating_sub(self.leeway) <= now)
            && self.jwks.still_current(&verified.kid, &verified.key)
    }

    async fn check(
        &self,
        token: &str,
        now: i64,
        round_trips: &mut u32,
    ) -> Result<Verified, GuardError> {
        let invalid = GuardError::InvalidToken;
        // Cheap rejections first: nothing here touches a key or the network.
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(Rejection::Malformed));
        };
        let header_json = decode_segment(header_b64)?;
        let claims_json = decode_segment(claims_b64)?;
        if signature_b64.is_empty() {
            return Err(invalid(Rejection::Malformed));
        }
        let header: Header = parse_object(&header_json, Rejection::BadHeader)?;
        // Only asymmetric algorithms; `none` and HMAC (in any spelling) never pass.
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "PS256" => Algorithm::PS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            _ => return Err(invalid(Rejection::Algorithm)),
        };
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
            return Err(invalid(Rejection::Critical));
        }
        // RFC 9068 §4: the type must be at+jwt (media types compare case-insensitively).
        let typ = header.typ.as_deref().unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(invalid(Rejection::Type));
        }
        let claims: Claims = parse_object(&claims_json, Rejection::BadClaims)?;
        if claims.iss != self.config.issuer {
            return Err(invalid(Rejection::Issuer));
        }
        let Some(kid) = header.kid else {
            return Err(invalid(Rejection::UnknownKey));
        };

        let lookup = self.jwks.key(&kid).await;
        *round_trips = lookup.round_trips;
        let Some(key) = lookup.key else {
            return Err(if lookup.have_keys {
                invalid(Rejection::UnknownKey)
            } else {
                GuardError::Unavailable
            });
        };
        // One key, one algorithm: the key decides, never the token.
        if key.algorithm != alg {
            return Err(invalid(Rejection::Algorithm));
        }
        let message_len = header_b64.len() + 1 + claims_b64.len();
        let verified = jsonwebtoken::crypto::verify(
            signature_b64,
            &token.as_bytes()[..message_len],
            &key.key,
            alg,
        )
        .unwrap_or(false);
        if !verified {
            return Err(invalid(Rejection::Signature));
        }

        let leeway = self.leeway;
        if now > claims.exp.saturating_add(leeway) {
            return Err(invalid(Rejection::Expired));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
        {
            return Err(invalid(Rejection::NotYetValid));
        }
        if !claims.aud.contains(&self.config.audience) {
            return Err(invalid(Rejection::Audience));
        }
        Ok(Verified {
            claims: Arc::new(claims),
            kid: Arc::from(kid),
            key,
        })
    }
}

/// Decodes one base64url segment (no padding, RFC 7515 §2).
fn decode_segment(segment: &str) -> Result<Vec<u8>, GuardError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| GuardError::InvalidToken(Rejection::Malformed))
}

#[cfg(test)]
#[path = "tests/proptest_validate.rs"]
mod proptest_validate;
