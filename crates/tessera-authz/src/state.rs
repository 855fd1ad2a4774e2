use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use tessera_core::Clock;
use tessera_store::Store;

use crate::keys::KeyManager;
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
}

impl AppState {
    /// The current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        crate::keys::to_utc(self.clock.now_millis())
    }
}
