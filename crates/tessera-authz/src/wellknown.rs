//! Discovery documents and health.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tessera_core::Scope;

use crate::grant::SUPPORTED_GRANTS;
use crate::state::AppState;

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

/// The claims an ID token or the UserInfo endpoint may carry (OpenID Connect Discovery
/// `claims_supported`); `company` and `roles` come from UserInfo only.
pub const CLAIMS_SUPPORTED: [&str; 16] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "name",
    "preferred_username",
    "updated_at",
    "email",
    "email_verified",
    "company",
    "roles",
];

/// The OpenID Connect Discovery 1.0 document for `issuer`: the RFC 8414 metadata and what
/// OpenID Connect adds, `algorithms` being those of the published keys. Like the
/// metadata, built from configuration, never from the request.
pub fn openid_configuration(issuer: &str, algorithms: &[String]) -> serde_json::Value {
    let mut document = metadata(issuer);
    if let Some(members) = document.as_object_mut() {
        for (name, value) in [
            (
                "userinfo_endpoint",
                json!(format!("{issuer}/oauth/userinfo")),
            ),
            (
                "end_session_endpoint",
                json!(format!("{issuer}/oauth/logout")),
            ),
            ("subject_types_supported", json!(["public"])),
            ("id_token_signing_alg_values_supported", json!(algorithms)),
            ("claims_supported", json!(CLAIMS_SUPPORTED)),
            ("claims_parameter_supported", json!(false)),
            ("request_parameter_supported", json!(false)),
            ("request_uri_parameter_supported", json!(false)),
            (
                "prompt_values_supported",
                json!(["none", "login", "consent", "select_account"]),
            ),
        ] {
            members.insert(name.to_owned(), value);
        }
    }
    document
}

/// `GET /.well-known/openid-configuration`.
pub async fn get_openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let document = openid_configuration(&state.grants.issuer, &state.grants.keys.algorithms());
    HttpResponse::Ok()
        // Short: the signing algorithms follow the published keys.
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(document)
}

pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type(ContentType::json())
        .body(state.metadata.clone())
}

/// The JWKS, with `Cache-Control: public, max-age=N` (N never reaching past the next key
/// activation) and a strong `ETag`; `If-None-Match` with that tag gets `304`.
pub async fn get_jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    state.grants.keys.reload_if_older_than_a_second().await;
    let jwks = state.grants.keys.jwks();
    let cache_control = format!("public, max-age={}", jwks.max_age);
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| etag_matches(v, &jwks.etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::ETAG, jwks.etag));
    if fresh {
        response.finish()
    } else {
        response.content_type(ContentType::json()).body(jwks.body)
    }
}

/// RFC 9110 §13.1.2: `If-None-Match` is `*` or a list of entity tags, compared weakly.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Liveness and readiness: 200 when the database answers, 503 when it does not.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    // Keys that could not be loaded (the database was away at the last tick) are tried
    // again here, at most once a second: an instance is back in rotation as soon as the
    // database is, not at its next tick up to 10 s later.
    if state.grants.keys.is_stale() {
        state.grants.keys.reload_if_older_than_a_second().await;
    }
    if state.grants.keys.is_stale() {
        // The database may answer, but this instance could not load the current keys
        // (e.g. a key sealed under another master key): take it out of rotation.
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::RETRY_AFTER, "10"))
            .json(json!({"status": "unavailable", "database": "ok", "keys": "stale"}));
    }
    match state.grants.store.ping().await {
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
