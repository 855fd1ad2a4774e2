//! Decision parity: every authorization case through both token formats. Where the formats
//! differ by design (a disabled, demoted or revoked user's token acts at once when opaque,
//! at expiry when a JWT), the difference is asserted too.

use reqwest::Method;
use serde_json::json;
use tessera_core::Role;
use tessera_store::{Store, UserPatch};

use crate::helpers::*;

const FORMATS: [Format; 2] = [Format::Jwt, Format::Opaque];

/// (what, method, path, token, body, expected status)
type Case<'a> = (
    &'a str,
    Method,
    String,
    &'a str,
    Option<serde_json::Value>,
    u16,
);

async fn both_formats_make_the_same_decisions(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.user("bob").id;
    let dave = app.user("dave").id;
    for format in FORMATS {
        let alice = app.token_as(format, "alice", "admin", false).await;
        let alice_basic = app.token_as(format, "alice", "basic", false).await;
        let bob_basic = app.token_as(format, "bob", "basic", false).await;
        let carol = app.token_as(format, "carol", "admin", false).await;
        let expired = app.token_as(format, "alice", "admin", true).await;
        let own = format!("/companies/acme/users/{bob}");
        let foreign_id = format!("/companies/acme/users/{dave}");
        let new_user = json!({"username": format!("erin-{format:?}").to_lowercase(), "password": "a long password", "roles": ["user"]});
        let cases: Vec<Case> = vec![
            (
                "admin lists own company",
                Method::GET,
                "/companies/acme/users".into(),
                &alice,
                None,
                200,
            ),
            (
                "admin reads own user",
                Method::GET,
                own.clone(),
                &alice,
                None,
                200,
            ),
            (
                "admin patches own user",
                Method::PATCH,
                own.clone(),
                &alice,
                Some(json!({"disabled": false})),
                200,
            ),
            (
                "admin creates in own company",
                Method::POST,
                "/companies/acme/users".into(),
                &alice,
                Some(new_user),
                201,
            ),
            (
                "admin deletes a missing user",
                Method::DELETE,
                format!("/companies/acme/users/{}", uuid::Uuid::new_v4()),
                &alice,
                None,
                404,
            ),
            (
                "admin on another company",
                Method::GET,
                "/companies/globex/users".into(),
                &alice,
                None,
                403,
            ),
            (
                "another company's admin lists",
                Method::GET,
                "/companies/acme/users".into(),
                &carol,
                None,
                403,
            ),
            (
                "another company's admin reads",
                Method::GET,
                own.clone(),
                &carol,
                None,
                403,
            ),
            (
                "another company's admin patches",
                Method::PATCH,
                own.clone(),
                &carol,
                Some(json!({"roles": ["admin"]})),
                403,
            ),
            (
                "another company's admin deletes",
                Method::DELETE,
                own.clone(),
                &carol,
                None,
                403,
            ),
            (
                "another company's user id",
                Method::GET,
                foreign_id,
                &alice,
                None,
                404,
            ),
            (
                "admin with only basic",
                Method::GET,
                "/companies/acme/users".into(),
                &alice_basic,
                None,
                403,
            ),
            (
                "plain user",
                Method::GET,
                "/companies/acme/users".into(),
                &bob_basic,
                None,
                403,
            ),
            (
                "plain user's profile",
                Method::GET,
                "/me".into(),
                &bob_basic,
                None,
                200,
            ),
            (
                "expired token",
                Method::GET,
                "/companies/acme/users".into(),
                &expired,
                None,
                401,
            ),
            (
                "expired token's profile",
                Method::GET,
                "/me".into(),
                &expired,
                None,
                401,
            ),
        ];
        for (what, method, path, token, body, status) in cases {
            let response = app.send(method, &path, Some(token), body).await;
            assert_eq!(response.status().as_u16(), status, "{format:?}: {what}");
            let expected_method = match format {
                Format::Jwt => "jwt",
                Format::Opaque => "opaque-store",
            };
            let timing = response.headers()["server-timing"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                timing.starts_with(&format!("authz;desc=\"{expected_method}\"")),
                "{format:?}: {what}: {timing}"
            );
        }
    }
    // The user created through each format exists once.
    let carol = app.token_as(Format::Jwt, "alice", "admin", false).await;
    let users: Vec<serde_json::Value> = app
        .get("/companies/acme/users", Some(&carol))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 4);
}

async fn opaque_tokens_cost_one_lookup_and_jwts_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let jwt = app.token_as(Format::Jwt, "alice", "admin", false).await;
    let opaque = app.token_as(Format::Opaque, "alice", "admin", false).await;
    assert_eq!(
        app.get("/companies/acme/users", Some(&jwt))
            .await
            .status()
            .as_u16(),
        200
    );
    // An opaque token is read with its user in one query.
    for (token, lookups) in [(&jwt, "0"), (&opaque, "1")] {
        let before = app.store.calls();
        let response = app.get("/companies/acme/users", Some(token)).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["tessera-authz-lookups"], lookups);
        // The listing is one more store call either way.
        assert_eq!(
            app.store.calls() - before,
            lookups.parse::<u64>().unwrap() + 1
        );
    }
}

async fn disabling_demoting_and_revoking_act_at_once_on_opaque_tokens_and_at_expiry_on_jwts(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let acme: tessera_core::CompanySlug = "acme".parse().unwrap();
    let globex: tessera_core::CompanySlug = "globex".parse().unwrap();

    // Disabled after issue.
    let (jwt, opaque) = (
        app.token_as(Format::Jwt, "bob", "basic", false).await,
        app.token_as(Format::Opaque, "bob", "basic", false).await,
    );
    let patch = UserPatch {
        disabled: Some(true),
        ..Default::default()
    };
    app.store
        .update_user(&acme, app.user("bob").id, &patch, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        app.get("/me", Some(&jwt)).await.status().as_u16(),
        200,
        "a JWT lives until it expires"
    );
    let response = app.get("/me", Some(&opaque)).await;
    assert_rejected(response, 401, INVALID_TOKEN).await;

    // Demoted after issue.
    let (jwt, opaque) = (
        app.token_as(Format::Jwt, "carol", "admin", false).await,
        app.token_as(Format::Opaque, "carol", "admin", false).await,
    );
    let patch = UserPatch {
        roles: Some(vec![Role::User]),
        ..Default::default()
    };
    app.store
        .update_user(&globex, app.user("carol").id, &patch, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        app.get("/companies/globex/users", Some(&jwt))
            .await
            .status()
            .as_u16(),
        200,
        "a JWT keeps its scope (this server follows no revocation feed)"
    );
    // A change of roles revokes what was issued under the old ones.
    let response = app.get("/companies/globex/users", Some(&opaque)).await;
    assert_rejected(response, 401, INVALID_TOKEN).await;

    // Revoked after issue: only opaque tokens can be.
    let opaque = app.token_as(Format::Opaque, "alice", "admin", false).await;
    assert_eq!(
        app.get("/companies/acme/users", Some(&opaque))
            .await
            .status()
            .as_u16(),
        200
    );
    let digest = tessera_core::secret::digest(&opaque);
    assert!(
        app.store
            .revoke_access_token(&digest, "test-client", chrono::Utc::now())
            .await
            .unwrap()
    );
    let response = app.get("/companies/acme/users", Some(&opaque)).await;
    assert_rejected(response, 401, INVALID_TOKEN).await;
    app.assert_valid_token_still_works().await;
}

async fn with_opaque_validation_off_an_opaque_token_is_invalid(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.opaque = tessera_resource::OpaqueValidation::Off
    })
    .await;
    let opaque = app.token_as(Format::Opaque, "alice", "admin", false).await;
    let before = app.store.calls();
    let response = app.get("/companies/acme/users", Some(&opaque)).await;
    assert_rejected(response, 401, INVALID_TOKEN).await;
    assert_eq!(
        app.store.calls(),
        before,
        "no lookup when opaque validation is off"
    );
    app.assert_valid_token_still_works().await;
}

on_each_backend!(
    both_formats_make_the_same_decisions,
    opaque_tokens_cost_one_lookup_and_jwts_none,
    disabling_demoting_and_revoking_act_at_once_on_opaque_tokens_and_at_expiry_on_jwts,
    with_opaque_validation_off_an_opaque_token_is_invalid,
);
