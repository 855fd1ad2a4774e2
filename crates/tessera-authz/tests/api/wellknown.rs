use serde_json::Value;

use crate::helpers::*;

async fn the_jwks_publishes_the_signing_key_and_nothing_private(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<_> = key.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["e"], "AQAB");
    assert_eq!(key["kid"], app.kid);
}

async fn metadata_comes_from_configuration_not_the_host_header(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.issuer = Some("https://auth.example.com/".into())
    })
    .await;
    let response = app
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            app.address
        ))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issuer"], "https://auth.example.com");
    assert_eq!(
        body["token_endpoint"],
        "https://auth.example.com/oauth/token"
    );
    assert_eq!(
        body["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "password",
            "client_credentials"
        ])
    );
    assert_eq!(
        body["authorization_endpoint"],
        "https://auth.example.com/oauth/authorize"
    );
    assert_eq!(
        body["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        body["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(body["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        body["scopes_supported"],
        serde_json::json!(["basic", "admin", "openid", "profile", "email"])
    );
    assert_eq!(
        body["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert!(!body.to_string().contains("evil"));

    // Tokens carry the configured issuer too.
    let token = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    let claims = app
        .verify(token["access_token"].as_str().unwrap())
        .await
        .claims;
    assert_eq!(claims["iss"], "https://auth.example.com");
}

async fn the_default_issuer_is_the_bound_address(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.issuer, app.address);
    let body: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["issuer"], app.address);
}

async fn healthz_reports_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok", "database": "ok"}));
}

async fn the_signing_key_is_created_on_first_start_and_kept_across_restarts(backend: Backend) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    store
        .seed_if_empty(&seed(), chrono::Utc::now())
        .await
        .unwrap();
    assert!(store.active_key().await.unwrap().is_none());

    let issuer = Some("http://tessera.test".to_owned());
    let first = start(store.clone(), |s| s.issuer = issuer.clone()).await;
    let token = assert_token(first.password_grant("bob", PASSWORD, None).await).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let kid = first.kid.clone();
    drop(first);

    // A new process on the same database: reopen the store from the URL.
    let store = db.open().await;
    let second = start(store, |s| s.issuer = issuer).await;
    assert_eq!(second.kid, kid);
    // The token from before the restart still verifies against the new process's JWKS.
    let jwks = second.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    verify_with(&jwks, &token, &second.issuer);
}

async fn a_bad_issuer_stops_start_up_with_a_clear_message(backend: Backend) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    let settings = tessera_authz::Settings {
        addr: "127.0.0.1:0".into(),
        issuer: Some("ftp://auth.example.com".into()),
        ..Default::default()
    };
    let err = tessera_authz::Application::build(settings, store)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid issuer \"ftp://auth.example.com\": the scheme must be http or https"
    );
}

async fn the_index_page_names_the_issuer_and_carries_the_html_security_headers(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.issuer = Some("https://auth.example.com".into())
    })
    .await;
    let response = app.get("/").await;
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(headers.get("access-control-allow-origin").is_none());
    let body = response.text().await.unwrap();
    assert!(
        body.contains("https://auth.example.com/.well-known/jwks.json"),
        "{body}"
    );
    assert!(body.contains("tessera-api"));
}

async fn listening_on_every_interface_without_an_issuer_is_refused(backend: Backend) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    let settings = tessera_authz::Settings {
        addr: "0.0.0.0:0".into(),
        ..Default::default()
    };
    let err = tessera_authz::Application::build(settings, store)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "listening on 0.0.0.0:0 needs an explicit issuer (--issuer or TESSERA_ISSUER): \
         the public URL clients use to reach this server"
    );
}

on_each_backend!(
    the_jwks_publishes_the_signing_key_and_nothing_private,
    metadata_comes_from_configuration_not_the_host_header,
    the_default_issuer_is_the_bound_address,
    healthz_reports_the_database,
    the_signing_key_is_created_on_first_start_and_kept_across_restarts,
    a_bad_issuer_stops_start_up_with_a_clear_message,
    the_index_page_names_the_issuer_and_carries_the_html_security_headers,
    listening_on_every_interface_without_an_issuer_is_refused,
);
