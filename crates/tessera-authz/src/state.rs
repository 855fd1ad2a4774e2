//! What every handler shares.

use std::net::IpAddr;
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, dev};
use tessera_store::NewAuditEvent;
use tessera_web::metrics::Counter;
use tessera_web::net::TrustedProxies;

use crate::grant::GrantEngine;
use crate::limits::RateLimits;

/// What every handler shares. Built once by [`crate::Application::build`].
#[derive(Debug)]
pub struct AppState {
    /// The grant decisions of the token and authorization endpoints, with the store, the
    /// signing keys, the clock, the issuer, the audience and the audit log they use.
    pub grants: GrantEngine,
    /// Whether cookies carry `Secure`: whenever the issuer is https.
    pub secure_cookies: bool,
    /// [`Settings::durable_token_audit`](crate::Settings).
    pub durable_token_audit: bool,
    /// The issuer's origin (`scheme://host[:port]`), which form posts must come from.
    pub origin: String,
    /// The RFC 8414 metadata document, serialised once from configuration.
    pub metadata: Bytes,
    /// Rate limits and brute-force protection.
    pub limits: Arc<RateLimits>,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
    /// `tessera_tokens_issued_total{grant, format}`.
    pub tokens_issued: Counter,
    /// `tessera_introspections_total{active}`.
    pub introspections: Counter,
    /// The digest of the in-memory secret of [`crate::FEED_READER`], if any.
    pub feed_reader: Option<String>,
}

impl AppState {
    /// The current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.grants.clock.now_utc()
    }

    /// The current time in Unix milliseconds, for rate limits.
    pub fn now_ms(&self) -> i64 {
        self.grants.clock.now_millis()
    }

    /// Where `req` comes from.
    pub fn address(&self, req: &HttpRequest) -> IpAddr {
        tessera_web::client_address(req, &self.proxies)
    }

    /// Records a security event (in the background: the request does not wait for the
    /// write, only for room in the queue).
    pub async fn audit(&self, event: NewAuditEvent) {
        self.grants.audit.record(event).await;
    }
}

/// The future of an extractor that reads a request's body.
pub type Extracting<T, E> = Pin<Box<dyn Future<Output = Result<T, E>>>>;

/// The start every extractor of a form POST shares: takes the body and finds the shared
/// state, then runs `read` with the request, the body and the state. Without the state
/// (never, once the server is built) the answer is `missing`.
pub fn extract<T, E, Read, Reading>(
    req: &HttpRequest,
    payload: &mut dev::Payload,
    missing: fn() -> E,
    read: Read,
) -> Extracting<T, E>
where
    Read: FnOnce(HttpRequest, web::Payload, web::Data<AppState>) -> Reading + 'static,
    Reading: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: 'static,
{
    let req = req.clone();
    let payload = web::Payload::from_request(&req, payload);
    Box::pin(async move {
        // Taking the body cannot fail; its error type is only actix's general one.
        let (Ok(payload), Some(state)) = (payload.await, req.app_data::<web::Data<AppState>>())
        else {
            return Err(missing());
        };
        let state = state.clone();
        read(req, payload, state).await
    })
}
