//! The example of docs/guard.md: an actix-web API protected by tessera-guard.
//!
//! Run `tessera serve`, then `cargo run -p tessera-guard --example protected_api`.

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use tessera_guard::{
    Admin, Authenticated, Guard, JwksCache, JwksConfig, JwksSource, Scoped, ValidationConfig,
    Validator,
};

/// Any valid token.
async fn profile(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": auth.claims().sub }))
}

/// Only tokens carrying the `admin` scope reach this handler: the type says so, and the
/// handler cannot forget the check.
async fn audit_log(auth: Scoped<Admin>) -> HttpResponse {
    let company = auth.claims().company.clone().unwrap_or_default();
    HttpResponse::Ok().body(format!("audit log of {company}"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = "http://127.0.0.1:8080";
    // Keys come from the issuer's RFC 8414 metadata (jwks_uri); use JwksSource::Url to
    // name a JWKS directly.
    let jwks = Arc::new(
        JwksCache::new(JwksConfig::new(JwksSource::Issuer(issuer.into())))
            .map_err(std::io::Error::other)?,
    );
    jwks.prefetch().await; // optional: the first request finds the keys warm
    let validator = Validator::new(ValidationConfig::new(issuer, "tessera-api"), jwks);
    let guard = web::Data::new(Guard::new(validator).with_realm("reports"));

    HttpServer::new(move || {
        App::new()
            .app_data(guard.clone())
            .route("/profile", web::get().to(profile))
            .route("/audit", web::get().to(audit_log))
    })
    .bind("127.0.0.1:9000")?
    .run()
    .await
}
