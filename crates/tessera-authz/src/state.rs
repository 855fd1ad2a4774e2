use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use tessera_core::SigningKey;
use tessera_store::Store;

use crate::passwords::PasswordVerifier;

/// What every handler shares. Built once by [`crate::Application::build`].
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signing_key: SigningKey,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Whether cookies carry `Secure`: whenever the issuer is https.
    pub secure_cookies: bool,
    /// The issuer's origin (`scheme://host[:port]`), which form posts must come from.
    pub origin: String,
    pub passwords: PasswordVerifier,
    /// The JWKS document, serialised once: it changes only when keys change.
    pub jwks: Bytes,
    /// The RFC 8414 metadata document, serialised once from configuration.
    pub metadata: Bytes,
}
