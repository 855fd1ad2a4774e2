//! Discovery documents and health.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use serde_json::json;
use tessera_core::{JwkSet, Scope};
use tessera_store::StoredKey;

use crate::state::AppState;
use crate::token::SUPPORTED_GRANTS;

/// How long resource servers may cache the JWKS. Keys are published before they sign, so
/// a cached copy never misses a key that is in use.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// The RFC 8414 metadata for `issuer`: every URL derives from configuration, never from
/// the request's `Host` header.
pub fn metadata(issuer: &str) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "grant_types_supported": SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        // RFC 7636: PKCE is required of every client, and plain is refused.
        "code_challenge_methods_supported": [tessera_core::pkce::METHOD_S256],
        // RFC 9207: the redirect carries `iss`, against mix-up attacks.
        "authorization_response_iss_parameter_supported": true,
    })
}

/// The JWKS document: the public halves of the published keys, and nothing private.
pub fn jwks(keys: &[StoredKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.public_jwk.clone()).collect(),
    }
}

pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type(ContentType::json())
        .body(state.metadata.clone())
}

pub async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .content_type(ContentType::json())
        .body(state.jwks.clone())
}

/// Liveness and readiness: 200 when the database answers, 503 when it does not.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"status": "ok", "database": "ok"})),
        Err(err) => {
            tracing::warn!(error = %crate::error::ErrorChain(&err), "health check: database unavailable");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::RETRY_AFTER, "5"))
                .json(json!({"status": "unavailable", "database": "unavailable"}))
        }
    }
}
