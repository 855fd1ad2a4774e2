//! Security headers, CORS, metrics and the audit log of the company user API.

use reqwest::Method;
use serde_json::json;
use tessera_store::{AuditFilter, AuditKind, Store};
use tessera_web::net::TrustedProxies;

use crate::helpers::*;

on_each_backend!(
    every_response_carries_the_security_headers,
    cors_answers_only_the_configured_origins,
    metrics_count_requests_validation_outcomes_and_jwks_fetches,
    every_write_through_the_user_api_is_audited,
    the_open_listing_exists_only_when_asked_for,
);

fn assert_security_headers(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        assert_eq!(
            headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{name} on {what}"
        );
    }
}

async fn every_response_carries_the_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.alice_admin();
    let not_found = app.get("/nowhere", None).await;
    assert_eq!(not_found.status().as_u16(), 404);
    assert_security_headers(&not_found, "actix's 404");
    let wrong_method = app.send(Method::PUT, "/me", Some(&admin), None).await;
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_security_headers(&wrong_method, "actix's 405");
    let too_large = app
        .http
        .post(format!("{}/companies/acme/users", app.address))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status().as_u16(), 413);
    assert_security_headers(&too_large, "413");
    let refused = app.get("/me", Some("not-a-token")).await;
    assert_security_headers(&refused, "a 401");
    assert_rejected(
        refused,
        401,
        "Bearer realm=\"tessera\", error=\"invalid_token\"",
    )
    .await;
    app.assert_valid_token_still_works().await;
}

async fn cors_answers_only_the_configured_origins(backend: Backend) {
    let allowed = "http://localhost:3000";
    let app = spawn_app_with(backend, |s| s.cors_origins = vec![allowed.to_owned()]).await;
    let admin = app.alice_admin();
    let preflight = |origin: &'static str| {
        app.http
            .request(
                Method::OPTIONS,
                format!("{}/companies/acme/users", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "DELETE")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let ok = preflight(allowed).await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], allowed);
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("DELETE")
    );
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert_eq!(evil.status().as_u16(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    let listed = app
        .http
        .get(format!("{}/companies/acme/users", app.address))
        .bearer_auth(&admin)
        .header("Origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    assert_eq!(listed.headers()["access-control-allow-origin"], allowed);
    let exposed = listed.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("Tessera-Authz-Lookups"), "{exposed}");
    let reflected = app
        .http
        .get(format!("{}/me", app.address))
        .bearer_auth(app.token("alice", "basic"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(reflected.status().as_u16(), 200);
    assert!(
        reflected
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // A refusal to an allowed origin is readable by its page, challenge included.
    let refused = app
        .http
        .get(format!("{}/me", app.address))
        .header("Origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["access-control-allow-origin"], allowed);
    assert_rejected(refused, 401, "Bearer realm=\"tessera\"").await;
}

fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

async fn metrics_count_requests_validation_outcomes_and_jwks_fetches(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.alice_admin();
    for _ in 0..3 {
        let response = app.get("/companies/acme/users", Some(&admin)).await;
        assert_eq!(response.status().as_u16(), 200);
    }
    app.get("/me", None).await;
    let mut expired = app
        .issuer
        .user_claims("alice", "acme", &[], "admin", now() - 3600);
    expired.exp = now() - 600;
    app.get("/me", Some(&app.issuer.sign(&expired))).await;
    app.get("/me", Some(&app.token("bob", "admin"))).await;
    app.get("/companies/acme/users", Some(&app.token("bob", "basic")))
        .await;

    let response = app.get("/metrics", None).await;
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    assert_eq!(
        sample(
            &body,
            r#"tessera_http_requests_total{route="/companies/{company}/users",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &body,
            r#"tessera_http_requests_total{route="/me",status="401"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(&body, r#"tessera_token_validations_total{outcome="valid"}"#),
        5.0
    );
    assert_eq!(
        sample(
            &body,
            r#"tessera_token_validations_total{outcome="missing"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            r#"tessera_token_validations_total{outcome="expired"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            r#"tessera_token_validations_total{outcome="insufficient_scope"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(&body, r#"tessera_jwks_fetches_total{result="updated"}"#),
        1.0
    );
    assert_eq!(
        sample(&body, r#"tessera_jwks_fetches_total{result="failed"}"#),
        0.0
    );
    assert_eq!(
        sample(&body, "tessera_jwks_unknown_kid_refetches_total"),
        0.0
    );
    assert!(sample(&body, "tessera_db_pool_max_connections") >= 1.0);
    assert!(body.contains("tessera_http_request_duration_seconds_bucket{"));
    // Alice's token was checked in full once and answered from the cache twice; every
    // other token was seen once (the expired one is never kept).
    assert_eq!(
        sample(&body, r#"tessera_token_cache_lookups_total{result="hit"}"#),
        2.0
    );
    assert_eq!(
        sample(&body, r#"tessera_token_cache_lookups_total{result="miss"}"#),
        4.0
    );
}

/// The benchmark's ceiling route: the listing without authorization, only on a server
/// started for it, answering exactly what an admin of that company sees.
async fn the_open_listing_exists_only_when_asked_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let open = app.get("/open/companies/acme/users", None).await;
    assert_eq!(open.status().as_u16(), 404);

    let app = spawn_app_with(backend, |s| s.open_listing = true).await;
    let open = app.get("/open/companies/acme/users", None).await;
    assert_eq!(open.status().as_u16(), 200);
    let open: serde_json::Value = open.json().await.unwrap();
    let authorized = app
        .get("/companies/acme/users", Some(&app.alice_admin()))
        .await;
    assert_eq!(authorized.status().as_u16(), 200);
    assert_eq!(open, authorized.json::<serde_json::Value>().await.unwrap());
    assert_eq!(open.as_array().unwrap().len(), 2);
    // Only the listing: no other method, no single user, and no bad slug gets a 500.
    let post = app
        .send(
            Method::POST,
            "/open/companies/acme/users",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(post.status().as_u16(), 405);
    let bad = app.get("/open/companies/NOT%20A%20SLUG/users", None).await;
    assert_eq!(bad.status().as_u16(), 400);
    app.assert_valid_token_still_works().await;
}

async fn every_write_through_the_user_api_is_audited(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    let admin = app.alice_admin();
    let created = app
        .http
        .post(format!("{}/companies/acme/users", app.address))
        .bearer_auth(&admin)
        .header("X-Forwarded-For", "203.0.113.50")
        .json(&json!({"username": "erin", "password": "a long enough password", "roles": ["user"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let erin: serde_json::Value = created.json().await.unwrap();
    let path = format!("/companies/acme/users/{}", erin["id"].as_str().unwrap());
    let patched = app
        .send(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"roles": ["admin", "user"], "password": "another long password"})),
        )
        .await;
    assert_eq!(patched.status().as_u16(), 200);
    let deleted = app.send(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(deleted.status().as_u16(), 204);
    // A refused write is not a write.
    let refused = app
        .send(
            Method::DELETE,
            &path.replace("acme", "globex"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(refused.status().as_u16(), 403);

    app.audit.flush().await;
    let events = app
        .store
        .list_audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let kinds: Vec<AuditKind> = events.iter().rev().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::UserCreated,
            AuditKind::UserUpdated,
            AuditKind::UserDeleted
        ]
    );
    let target = format!("erin ({})", erin["id"].as_str().unwrap());
    for event in &events {
        let event = &event.event;
        assert_eq!(event.actor.as_deref(), Some("alice"));
        assert_eq!(event.company.as_deref(), Some("acme"));
        assert_eq!(event.target.as_deref(), Some(target.as_str()));
        assert_eq!(event.client_id.as_deref(), Some("test-client"));
    }
    // From where: the trusted proxy's client for the first, the peer for the others.
    assert_eq!(events[2].event.address.as_deref(), Some("203.0.113.50"));
    assert_eq!(events[0].event.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(events[2].event.detail.as_deref(), Some("roles=user"));
    assert_eq!(
        events[1].event.detail.as_deref(),
        Some("roles=admin,user password changed")
    );
    let dump = format!("{events:?}");
    assert!(!dump.contains("long enough password") && !dump.contains("another long"));
    app.assert_valid_token_still_works().await;
}
