//! Revocation on the resource server: "sign out everywhere" through the API, and the guard
//! following a revocation feed (the test issuer's, over loopback HTTP).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tessera_guard::testing::{FEED_CLIENT_ID, FEED_CLIENT_SECRET, FeedFault};
use tessera_resource::RevocationFeed;
use tessera_store::testing::Backend;
use tessera_store::{AuditFilter, AuditKind, Revoked, Store as _, on_each_backend};

use crate::helpers::*;

on_each_backend!(
    an_admin_signs_a_user_of_their_company_out_everywhere_and_it_is_audited,
    a_token_the_feed_revokes_is_refused_and_health_and_metrics_show_the_list,
);

async fn an_admin_signs_a_user_of_their_company_out_everywhere_and_it_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.alice_admin();
    let bob = app.user("bob").id;
    let dave = app.user("dave").id;
    let revoke = |path: String, token: String| {
        let app = &app;
        async move { app.send(Method::POST, &path, Some(&token), None).await }
    };

    // Outside the admin's company, or without the admin scope: refused, nothing written.
    assert_rejected(
        revoke(
            format!("/companies/globex/users/{dave}/revoke"),
            admin.clone(),
        )
        .await,
        403,
        OTHER_COMPANY,
    )
    .await;
    let not_here = revoke(
        format!("/companies/acme/users/{dave}/revoke"),
        admin.clone(),
    )
    .await;
    assert_eq!(not_here.status().as_u16(), 404);
    assert_rejected(
        revoke(
            format!("/companies/acme/users/{bob}/revoke"),
            app.token("bob", "basic"),
        )
        .await,
        403,
        NEEDS_ADMIN,
    )
    .await;
    let wrong_method = app
        .get(&format!("/companies/acme/users/{bob}/revoke"), Some(&admin))
        .await;
    assert_eq!(wrong_method.status().as_u16(), 405);
    let feed = app.store.revocations(0, chrono::Utc::now()).await.unwrap();
    assert!(feed.entries.is_empty());

    let response = revoke(format!("/companies/acme/users/{bob}/revoke"), admin.clone()).await;
    assert_eq!(response.status().as_u16(), 204);
    assert!(response.text().await.unwrap().is_empty());
    let feed = app.store.revocations(0, chrono::Utc::now()).await.unwrap();
    assert_eq!(feed.entries.len(), 1);
    assert!(
        matches!(&feed.entries[0].revoked, Revoked::Sub { sub, .. } if *sub == bob.to_string())
    );
    let stored = app.store.find_user_by_id(bob).await.unwrap().unwrap();
    assert!(stored.tokens_revoked_at.is_some());

    app.audit.flush().await;
    let events = app
        .store
        .list_audit_events(&AuditFilter {
            kind: Some(AuditKind::UserSignedOut),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0].event;
    assert_eq!(event.actor.as_deref(), Some("alice"));
    assert_eq!(event.company.as_deref(), Some("acme"));
    assert_eq!(
        event.target.as_deref(),
        Some(format!("bob ({bob})").as_str())
    );
    app.assert_valid_token_still_works().await;
}

/// Polls `/me` with `token` until it gets `status`, for at most 30 s.
async fn eventually(app: &TestApp, token: &str, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.get("/me", Some(token)).await;
        if response.status().as_u16() == status {
            return response;
        }
        assert!(Instant::now() < deadline, "never {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_token_the_feed_revokes_is_refused_and_health_and_metrics_show_the_list(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |settings| {
        let mut feed = RevocationFeed::new(FEED_CLIENT_ID, FEED_CLIENT_SECRET);
        feed.url = Some(format!("{}/oauth/revocations", settings.issuer));
        feed.wait = Duration::from_secs(1);
        feed.max_stale = Duration::from_secs(12);
        settings.revocation = Some(feed);
    })
    .await;
    let bob = app.token("bob", "basic");
    let alice = app.token("alice", "basic admin");
    assert_eq!(app.get("/me", Some(&bob)).await.status().as_u16(), 200);

    app.issuer.revoke(json!({
        "sub": app.user("bob").id.to_string(),
        "issued_before": now(),
        "until": now() + 3600,
    }));
    let refused = eventually(&app, &bob, 401).await;
    let body = assert_rejected(refused, 401, INVALID_TOKEN).await;
    assert_eq!(body["error"], "invalid_token");
    app.assert_valid_token_still_works().await;
    assert_eq!(app.get("/me", Some(&alice)).await.status().as_u16(), 200);

    let health: Value = app.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["revocation_feed"]["state"], "ok");
    assert_eq!(health["revocation_feed"]["entries"], 1);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for series in [
        "tessera_revocation_entries 1\n",
        r#"tessera_token_validations_total{outcome="revoked"} "#,
        "# TYPE tessera_revocation_feed_age_seconds gauge",
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }

    // The feed fails: the list stays; past the bound, JWTs get 503 and health says so.
    app.issuer.set_feed_fault(FeedFault::Status(500));
    assert_eq!(app.get("/me", Some(&bob)).await.status().as_u16(), 401);
    let unavailable = eventually(&app, &alice, 503).await;
    assert!(unavailable.headers().contains_key("retry-after"));
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status().as_u16(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["revocation_feed"]["state"], "stale");
    app.issuer.set_feed_fault(FeedFault::None);
    eventually(&app, &alice, 200).await;
}
