use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::web::Bytes;
use tessera_core::Clock;
use tessera_store::{AuditLog, NewAuditEvent, Store};
use tessera_web::metrics::Counter;
use tessera_web::net::TrustedProxies;

use crate::keys::KeyManager;
use crate::limits::RateLimits;
use crate::passwords::PasswordVerifier;

/// What every handler shares. Built once by [`crate::Application::build`].
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The signing keys, kept in step with the store.
    pub keys: Arc<KeyManager>,
    /// The time.
    pub clock: Clock,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Whether cookies carry `Secure`: whenever the issuer is https.
    pub secure_cookies: bool,
    /// The issuer's origin (`scheme://host[:port]`), which form posts must come from.
    pub origin: String,
    pub passwords: PasswordVerifier,
    /// The RFC 8414 metadata document, serialised once from configuration.
    pub metadata: Bytes,
    /// Rate limits and brute-force protection.
    pub limits: RateLimits,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
    /// Security events, written to the store in the background.
    pub audit: AuditLog,
    /// Opaque access tokens, stored by group commit.
    pub opaque_tokens: tessera_store::TokenBatcher,
    /// `tessera_tokens_issued_total{grant, format}`.
    pub tokens_issued: Counter,
    /// `tessera_introspections_total{active}`.
    pub introspections: Counter,
}

impl AppState {
    /// The current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        crate::keys::to_utc(self.clock.now_millis())
    }

    /// The current time in Unix milliseconds, for rate limits.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Where `req` comes from.
    pub fn address(&self, req: &HttpRequest) -> IpAddr {
        tessera_web::client_address(req, &self.proxies)
    }

    /// Records a security event (in the background: the request does not wait for the
    /// write, only for room in the queue).
    pub async fn audit(&self, event: NewAuditEvent) {
        self.audit.record(event).await;
    }
}
