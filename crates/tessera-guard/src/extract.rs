//! Extractors whose types state the permission a handler needs.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::{TokenCache, TokenCacheStats, token_digest};
use crate::opaque::{OPAQUE_DISABLED, OpaqueTokens, is_jwt_shaped};
use crate::validate::Validator;
use crate::{Claims, GuardError, Rejection, bearer_token};

/// An opaque token that is unknown, expired or revoked.
const INACTIVE: GuardError = GuardError::InvalidToken(Rejection::Inactive);

/// The realm named in challenges unless configured otherwise.
pub const DEFAULT_REALM: &str = "tessera";

/// The guard an actix-web app registers with `app_data(web::Data::new(guard))`; the
/// extractors find it there.
#[derive(Debug, Clone)]
pub struct Guard {
    validator: Validator,
    realm: String,
    opaque: Option<Arc<dyn OpaqueTokens>>,
    /// Opaque tokens recently found inactive, by digest, and for how many seconds each is
    /// remembered.
    inactive: Option<(Arc<TokenCache<()>>, i64)>,
    outcomes: Arc<Outcomes>,
}

/// Counts of validation outcomes by name, shared by the clones of a [`Guard`].
#[derive(Debug, Default)]
struct Outcomes {
    counts: std::sync::RwLock<std::collections::BTreeMap<&'static str, Arc<AtomicU64>>>,
}

impl Outcomes {
    fn count(&self, outcome: &'static str) {
        let found = match self.counts.read() {
            Ok(counts) => counts.get(outcome).cloned(),
            Err(poisoned) => poisoned.into_inner().get(outcome).cloned(),
        };
        let counter = match found {
            Some(counter) => counter,
            None => {
                let mut counts = match self.counts.write() {
                    Ok(counts) => counts,
                    Err(poisoned) => poisoned.into_inner(),
                };
                Arc::clone(counts.entry(outcome).or_default())
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let counts = match self.counts.read() {
            Ok(counts) => counts,
            Err(poisoned) => poisoned.into_inner(),
        };
        counts
            .iter()
            .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Guard {
    /// A guard validating with `validator`, challenging with realm `tessera`.
    pub fn new(validator: Validator) -> Self {
        Guard {
            validator,
            realm: DEFAULT_REALM.to_owned(),
            opaque: None,
            inactive: None,
            outcomes: Arc::default(),
        }
    }

    /// How many requests each outcome had so far, by name: `valid`, `missing` (no bearer
    /// token), `invalid_request`, each [`Rejection`](crate::Rejection) by its name
    /// (`expired`, `signature`, `unknown_key`, `revoked`, …), `insufficient_scope`,
    /// `unavailable` (which includes a stale revocation list failing closed).
    /// Outcomes that never happened are absent. Shared by clones of this guard.
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        self.outcomes.snapshot()
    }

    /// The same guard with another realm in its challenges. Characters that cannot stand
    /// in a quoted header value (`"`, `\\`, control characters) are dropped.
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm
            .into()
            .chars()
            .filter(|c| !matches!(c, '"' | '\\') && !c.is_control())
            .collect();
        self
    }

    /// The same guard accepting opaque tokens through `opaque`. Without it, an opaque
    /// token is `invalid_token`.
    pub fn with_opaque(mut self, opaque: Arc<dyn OpaqueTokens>) -> Self {
        self.opaque = Some(opaque);
        self
    }

    /// The same guard remembering, for `ttl`, each opaque token its [`OpaqueTokens`]
    /// found inactive (unknown, expired, revoked), at most about `capacity` of them by
    /// SHA-256 digest: the same unknown token presented again is refused with no lookup.
    /// The price: a token that turns active within `ttl` of being refused (a disabled user
    /// enabled again) stays refused until its entry ages out. A zero `ttl` or `capacity`
    /// leaves it off.
    pub fn with_inactive_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.inactive = match TokenCache::new(capacity) {
            Some(cache) if ttl_secs > 0 => Some((Arc::new(cache), ttl_secs)),
            _ => None,
        };
        self
    }

    /// The inactive-token cache's counts (a hit is a refusal with no lookup); `None` when
    /// it is off.
    pub fn inactive_cache_stats(&self) -> Option<TokenCacheStats> {
        self.inactive.as_ref().map(|(cache, _)| cache.stats())
    }

    /// The claims of opaque `token` from `opaque`, unless the inactive-token cache
    /// remembers it; an inactive answer is remembered.
    async fn opaque_claims(
        &self,
        opaque: &dyn OpaqueTokens,
        token: &str,
        now: i64,
    ) -> (Result<Claims, GuardError>, u32) {
        let Some((cache, ttl)) = &self.inactive else {
            return opaque.claims(token, now).await;
        };
        let digest = token_digest(token);
        if cache.get(&digest, now).is_some() {
            cache.count(true);
            return (Err(INACTIVE), 0);
        }
        cache.count(false);
        let (result, lookups) = opaque.claims(token, now).await;
        if matches!(result, Err(GuardError::InvalidToken(Rejection::Inactive))) {
            cache.insert(digest, (), now.saturating_add(ttl.saturating_sub(1)), now);
        }
        (result, lookups)
    }

    /// The validator.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The challenge realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The response for `err` with this guard's realm.
    pub fn reject(&self, err: GuardError) -> actix_web::Error {
        let response = err.response(&self.realm);
        InternalError::from_response(err, response).into()
    }
}

/// How a request was authorized, left in the request's extensions for middleware that
/// reports it (e.g. `Server-Timing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthzReport {
    /// `jwt`, or the opaque method.
    pub method: &'static str,
    /// Round trips to a store or another service made to authorize the request.
    pub lookups: u32,
    /// Time spent authorizing.
    pub duration: Duration,
}

/// A request with a valid access token (any scope).
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: Arc<Claims>,
}

impl Authenticated {
    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The claims, owned.
    pub fn into_claims(self) -> Claims {
        Arc::unwrap_or_clone(self.claims)
    }
}

async fn authenticate(req: HttpRequest) -> Result<Authenticated, actix_web::Error> {
    let Some(guard) = req.app_data::<web::Data<Guard>>().cloned() else {
        tracing::error!("tessera_guard::Guard is not registered as app data");
        return Err(reject(&req, GuardError::Unavailable));
    };
    let started = Instant::now();
    let now = guard.validator.jwks().clock().now_secs();
    let token = bearer_token(&req);
    if let Err(GuardError::MissingCredentials) = token {
        guard
            .outcomes
            .count(GuardError::MissingCredentials.outcome());
        return Err(guard.reject(GuardError::MissingCredentials));
    }
    // A bearer token was presented (well-formed or not): its shape picks the path.
    let (method, (result, lookups)) = match token {
        Ok(token) if token.len() > crate::MAX_TOKEN_BYTES => (
            "jwt",
            (Err(GuardError::InvalidToken(crate::Rejection::TooLong)), 0),
        ),
        Ok(token) if !is_jwt_shaped(token) => match &guard.opaque {
            Some(opaque) => {
                let (result, lookups) = guard.opaque_claims(opaque.as_ref(), token, now).await;
                (opaque.method(), (result.map(Arc::new), lookups))
            }
            None => ("jwt", (Err(OPAQUE_DISABLED), 0)),
        },
        Ok(token) => ("jwt", guard.validator.validate_counted(token, now).await),
        Err(err) => ("jwt", (Err(err), 0)),
    };
    req.extensions_mut().insert(AuthzReport {
        method,
        lookups,
        duration: started.elapsed(),
    });
    guard.outcomes.count(match &result {
        Ok(_) => "valid",
        Err(err) => err.outcome(),
    });
    result
        .map(|claims| Authenticated { claims })
        .map_err(|err| {
            tracing::debug!(reason = %err, "bearer token refused");
            guard.reject(err)
        })
}

/// The response for `err`, challenging with the realm of the request's [`Guard`] (or the
/// default realm when none is registered).
pub fn reject(req: &HttpRequest, err: GuardError) -> actix_web::Error {
    match req.app_data::<web::Data<Guard>>() {
        Some(guard) => guard.reject(err),
        None => {
            let response = err.response(DEFAULT_REALM);
            InternalError::from_response(err, response).into()
        }
    }
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// A scope a handler can require through [`Scoped`].
pub trait ScopeRequirement {
    /// The scope token, compared exactly.
    const SCOPE: &'static str;
}

/// The `basic` scope.
#[derive(Debug, Clone, Copy)]
pub struct Basic;
impl ScopeRequirement for Basic {
    const SCOPE: &'static str = "basic";
}

/// The `admin` scope.
#[derive(Debug, Clone, Copy)]
pub struct Admin;
impl ScopeRequirement for Admin {
    const SCOPE: &'static str = "admin";
}

/// A request with a valid access token carrying scope `S`; otherwise 403
/// `insufficient_scope` naming `S`.
#[derive(Debug, Clone)]
pub struct Scoped<S: ScopeRequirement> {
    auth: Authenticated,
    _scope: PhantomData<S>,
}

impl<S: ScopeRequirement> Scoped<S> {
    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        self.auth.claims()
    }
}

impl<S: ScopeRequirement + 'static> FromRequest for Scoped<S> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = authenticate(req.clone()).await?;
            if !auth.claims().has_scope(S::SCOPE) {
                let err = GuardError::InsufficientScope(S::SCOPE);
                if let Some(guard) = req.app_data::<web::Data<Guard>>() {
                    guard.outcomes.count(err.outcome());
                }
                return Err(reject(&req, err));
            }
            Ok(Scoped {
                auth,
                _scope: PhantomData,
            })
        })
    }
}
