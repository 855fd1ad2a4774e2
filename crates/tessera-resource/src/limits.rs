//! The resource server's rate limits: invalid bearer tokens per client address, and
//! failed user creations (a taken username) per admin. Both count failures only and
//! answer `429` with `Retry-After` once a key is over its quota, before any work is done.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use tessera_core::{Clock, ErrorCode, OAuthError};
use tessera_guard::{AuthzReport, Guard};
use tessera_web::net::TrustedProxies;
use tessera_web::ratelimit::{Limited, Quota, RateLimiter};

use crate::error::ApiError;

/// Invalid bearer tokens (`401 invalid_token`) one client address may present: a burst
/// of 100, then 20 a second.
pub const INVALID_TOKEN_QUOTA: Quota = Quota::new(100, Duration::from_millis(50));

/// User creations refused because the username is taken (`409`) one admin (token `sub`)
/// may have: 10, then one a minute.
pub const FAILED_CREATE_QUOTA: Quota = Quota::new(10, Duration::from_secs(60));

/// The limits, shared by every worker as app data.
#[derive(Debug)]
pub struct Limits {
    /// Whether the limits apply; off only to measure raw throughput.
    enabled: bool,
    /// Invalid tokens per client address.
    invalid_tokens: RateLimiter<IpAddr>,
    /// Failed creations per admin.
    failed_creates: RateLimiter<String>,
    /// Whose `X-Forwarded-For` names the client.
    proxies: TrustedProxies,
    clock: Clock,
    /// Requests refused with 429, by limit.
    refused_invalid_tokens: AtomicU64,
    refused_creates: AtomicU64,
}

impl Limits {
    /// The limits (applied when `enabled`), reading addresses through `proxies` and the
    /// time from `clock`.
    pub fn new(enabled: bool, proxies: TrustedProxies, clock: Clock) -> Self {
        Limits {
            enabled,
            invalid_tokens: RateLimiter::new(INVALID_TOKEN_QUOTA),
            failed_creates: RateLimiter::new(FAILED_CREATE_QUOTA),
            proxies,
            clock,
            refused_invalid_tokens: AtomicU64::new(0),
            refused_creates: AtomicU64::new(0),
        }
    }

    /// Requests refused with 429 so far: `(limit, count)` for `invalid_token` and
    /// `failed_create`.
    pub fn refused(&self) -> [(&'static str, u64); 2] {
        [
            (
                "invalid_token",
                self.refused_invalid_tokens.load(Ordering::Relaxed),
            ),
            (
                "failed_create",
                self.refused_creates.load(Ordering::Relaxed),
            ),
        ]
    }

    /// Begins a user creation by admin `subject`: `429` when they are over their quota of
    /// taken usernames; once they have any to their name, the attempt holds a slot while it
    /// runs, so concurrent probes cannot pass together. Settle it with
    /// [`end_create`](Self::end_create).
    pub fn begin_create(&self, subject: &str) -> Result<Slot, ApiError> {
        if !self.enabled {
            return Ok(Slot(false));
        }
        let subject = subject.to_owned();
        self.failed_creates
            .acquire_if_owing(&subject, self.clock.now_millis())
            .map(Slot)
            .map_err(|limited| {
                self.refused_creates.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(admin = %subject, "user creation refused: too many taken usernames");
                ApiError::rate_limited(limited, "too many user creations refused as taken")
            })
    }

    /// Ends a creation begun with [`begin_create`](Self::begin_create): `taken` when it
    /// was refused because the username was taken (a failure, counted), anything else gives
    /// its slot back.
    pub fn end_create(&self, subject: &str, slot: Slot, taken: bool) {
        if self.enabled {
            self.failed_creates
                .settle(&subject.to_owned(), slot.0, taken, self.clock.now_millis());
        }
    }
}

/// Whether an attempt took a slot of its limit before it ran.
#[derive(Debug)]
#[must_use = "settle the attempt"]
pub struct Slot(bool);

/// Middleware on the API's routes: an address that presented too many invalid tokens
/// gets `429` before its token is looked at (no store query, no introspection call); any
/// other request runs, and a `401` for a token it presented counts against its address.
pub async fn invalid_tokens(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limits = req.app_data::<web::Data<Limits>>().cloned();
    let Some(limits) = limits.filter(|limits| limits.enabled) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let address = tessera_web::client_address(req.request(), &limits.proxies);
    let key = tessera_web::net::limit_key(address);
    let taken = limits
        .invalid_tokens
        .acquire_if_owing(&key, limits.clock.now_millis());
    let taken = match taken {
        Ok(taken) => taken,
        Err(limited) => {
            limits
                .refused_invalid_tokens
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%address, "request refused: too many invalid tokens from this address");
            let realm = req
                .app_data::<web::Data<Guard>>()
                .map_or(tessera_guard::DEFAULT_REALM, |guard| guard.realm())
                .to_owned();
            let response = too_many_invalid_tokens(limited, &realm);
            return Ok(req.into_response(response));
        }
    };
    let response = next.call(req).await;
    // A refused token (not a missing one: the guard reports only presented tokens).
    let failed = response.as_ref().is_ok_and(|response| {
        response.status() == StatusCode::UNAUTHORIZED
            && response
                .request()
                .extensions()
                .get::<AuthzReport>()
                .is_some()
    });
    limits
        .invalid_tokens
        .settle(&key, taken, failed, limits.clock.now_millis());
    Ok(response?.map_into_boxed_body())
}

/// `429` with `Retry-After`, the bare bearer challenge and an RFC 6750-style body.
fn too_many_invalid_tokens(limited: Limited, realm: &str) -> HttpResponse {
    let secs = limited.retry_after_secs();
    let mut response = HttpResponse::TooManyRequests();
    response.insert_header((header::RETRY_AFTER, secs.to_string()));
    if let Ok(challenge) = HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"")) {
        response.insert_header((header::WWW_AUTHENTICATE, challenge));
    }
    response.json(OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("too many invalid tokens from this address; retry after {secs} seconds"),
    ))
}
