use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

async fn opaque_token(app: &TestApp, username: &str, scope: &str) -> String {
    let body = assert_token(
        app.password_grant_as(
            Auth::Basic("opaque-app", APP_SECRET),
            username,
            PASSWORD,
            Some(scope),
        )
        .await,
    )
    .await;
    body["access_token"].as_str().unwrap().to_owned()
}

async fn opaque_tokens_are_unique_random_strings_and_the_database_holds_none_in_clear(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut tokens = HashSet::new();
    for _ in 0..1000 {
        let body = assert_token(
            app.token(
                Auth::Basic("opaque-app", APP_SECRET),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
        let token = body["access_token"].as_str().unwrap().to_owned();
        let random = token.strip_prefix("tsr_").expect("the tsr_ prefix");
        assert_eq!(random.len(), 43, "{token}");
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert!(tokens.insert(token));
    }
    assert_eq!(tokens.len(), 1000);
    let database = app.db().contents();
    assert!(!database.is_empty());
    for token in tokens.iter().take(50) {
        let random = &token.as_bytes()[4..];
        assert!(
            !database.windows(random.len()).any(|w| w == random),
            "a token is stored in clear"
        );
        // The digest is what is stored, and it finds the token.
        let stored = app
            .store
            .find_access_token(&tessera_core::secret::digest(token))
            .await
            .unwrap();
        assert!(stored.is_some());
    }
}

async fn introspection_describes_active_opaque_tokens_and_our_jwts(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    let token = opaque_token(&app, "alice", "admin").await;
    let body = app.introspect(&token).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "admin");
    assert_eq!(body["client_id"], "opaque-app");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["sub"], alice.id.to_string());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], app.issuer);
    assert_eq!(body["aud"], "tessera-api");
    assert_eq!(
        body["exp"].as_i64().unwrap() - body["iat"].as_i64().unwrap(),
        900
    );

    let jwt = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    let body = app.introspect(jwt["access_token"].as_str().unwrap()).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["username"], "bob");
    assert_eq!(body["client_id"], "app");
    assert_eq!(body["scope"], "basic");
}

async fn inactive_tokens_of_every_kind_are_just_active_false(backend: Backend) {
    let app = spawn_app(backend).await;
    let revoked = opaque_token(&app, "alice", "basic").await;
    let revoke = app
        .post_form(
            "/oauth/revoke",
            Auth::Basic("opaque-app", APP_SECRET),
            &[("token", &revoked)],
        )
        .await;
    assert_eq!(revoke.status().as_u16(), 200);

    // Expired: stored with an expiry in the past, as the clock would leave it.
    let expired = "tsr_expired-token-for-the-test-0123456789abcdef";
    let record = tessera_store::NewAccessToken {
        token_hash: tessera_core::secret::digest(expired),
        client_id: "opaque-app".parse().unwrap(),
        user_id: None,
        subject: "opaque-app".into(),
        scope: "basic".parse().unwrap(),
        expires_at: chrono::Utc::now() - chrono::Duration::seconds(1),
        family_id: None,
    };
    app.store
        .insert_access_token(&record, chrono::Utc::now() - chrono::Duration::seconds(60))
        .await
        .unwrap();

    // A disabled user's tokens, opaque and JWT.
    let bobs = opaque_token(&app, "bob", "basic").await;
    let bobs_jwt = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    let bobs_jwt = bobs_jwt["access_token"].as_str().unwrap().to_owned();
    app.store
        .set_user_disabled(&"bob".parse().unwrap(), true, chrono::Utc::now())
        .await
        .unwrap();

    // A JWT with one character of its signature changed.
    let jwt = assert_token(app.password_grant("alice", PASSWORD, None).await).await;
    let jwt = jwt["access_token"].as_str().unwrap();
    let tampered = format!(
        "{}{}",
        &jwt[..jwt.len() - 2],
        if jwt.ends_with("AA") { "BB" } else { "AA" }
    );

    let huge = "x".repeat(10_000);
    for token in [
        revoked.as_str(),
        expired,
        bobs.as_str(),
        bobs_jwt.as_str(),
        &tampered,
        "garbage",
        "tsr_unknown",
        "a.b.c",
        &huge,
    ] {
        assert_eq!(
            app.introspect(token).await,
            json!({"active": false}),
            "{:.40}",
            token
        );
    }
}

async fn introspection_needs_an_authenticated_confidential_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = opaque_token(&app, "alice", "basic").await;
    for auth in [
        Auth::None,
        Auth::Basic("resource-server", "wrong"),
        Auth::IdOnly("spa"),
        Auth::Basic("nobody", APP_SECRET),
    ] {
        let response = app
            .post_form("/oauth/introspect", auth, &[("token", &token)])
            .await;
        assert_oauth_error(response, 401, "invalid_client").await;
    }
    let response = app
        .post_form(
            "/oauth/introspect",
            Auth::Basic("resource-server", APP_SECRET),
            &[],
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert_eq!(body["error_description"], "the parameter token is missing");
    assert_eq!(app.introspect(&token).await["active"], true);
}

async fn revocation_acts_on_the_clients_own_opaque_tokens_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = opaque_token(&app, "alice", "basic").await;

    // Another client cannot revoke it, and learns nothing: 200, token still active.
    let response = app
        .post_form(
            "/oauth/revoke",
            Auth::Basic("app", APP_SECRET),
            &[("token", &token)],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.introspect(&token).await["active"], true);

    // Unknown and invalid tokens, dotted or not: 200 (RFC 7009 §2.2).
    for unknown in ["tsr_never-issued", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let response = app
            .post_form(
                "/oauth/revoke",
                Auth::Basic("opaque-app", APP_SECRET),
                &[("token", unknown)],
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "{unknown}");
        assert_no_store(response.headers());
    }

    // Without client authentication: 401.
    let response = app
        .post_form("/oauth/revoke", Auth::None, &[("token", &token)])
        .await;
    assert_oauth_error(response, 401, "invalid_client").await;
    assert_eq!(app.introspect(&token).await["active"], true);

    // The owner revokes it: inactive on the very next request, and revoking again is fine.
    for _ in 0..2 {
        let response = app
            .post_form(
                "/oauth/revoke",
                Auth::Basic("opaque-app", APP_SECRET),
                &[("token", &token)],
            )
            .await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(app.introspect(&token).await, json!({"active": false}));
    }
}

/// RFC 7009 for a JWT: its client revokes it (200, a `jti` entry in the feed, inactive to
/// introspection); another client's attempt answers 200 and changes nothing.
async fn a_jwt_is_revoked_by_its_own_client_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let jwt = assert_token(app.password_grant("alice", PASSWORD, None).await).await;
    let jwt = jwt["access_token"].as_str().unwrap();
    let other = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    let other = other["access_token"].as_str().unwrap();
    let revoke = |client: &'static str, token: &'static str| {
        let app = &app;
        async move {
            app.post_form(
                "/oauth/revoke",
                Auth::Basic(client, APP_SECRET),
                &[("token", token)],
            )
            .await
        }
    };
    let jwt: &'static str = Box::leak(jwt.to_owned().into_boxed_str());
    let other: &'static str = Box::leak(other.to_owned().into_boxed_str());
    let response = revoke("machine", jwt).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        app.introspect(jwt).await["active"],
        true,
        "another client's: unchanged"
    );

    let response = revoke("app", jwt).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        app.introspect(jwt).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(app.introspect(other).await["active"], true);

    let claims: Value = {
        use base64::Engine as _;
        let payload = jwt.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    // (The seed's disabled user has a `sub` entry of their own.)
    let feed = app.store.revocations(0, chrono::Utc::now()).await.unwrap();
    let jtis: Vec<_> = feed
        .entries
        .iter()
        .filter(|e| matches!(e.revoked, tessera_store::Revoked::Jti(_)))
        .collect();
    assert_eq!(jtis.len(), 1);
    assert_eq!(
        jtis[0].revoked,
        tessera_store::Revoked::Jti(claims["jti"].as_str().unwrap().to_owned())
    );
    assert_eq!(
        jtis[0].until.timestamp(),
        claims["exp"].as_i64().unwrap() + 60,
        "kept until the token expires, plus the verifiers' leeway"
    );
}

async fn metadata_names_the_introspection_and_revocation_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    let body: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["introspection_endpoint"],
        format!("{}/oauth/introspect", app.issuer)
    );
    assert_eq!(
        body["revocation_endpoint"],
        format!("{}/oauth/revoke", app.issuer)
    );
}

async fn a_clients_own_token_introspects_without_a_username(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = assert_token(
        app.token(
            Auth::Basic("opaque-app", APP_SECRET),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    let answer = app.introspect(body["access_token"].as_str().unwrap()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], "opaque-app");
    assert!(answer.get("username").is_none(), "{answer}");
}

on_each_backend!(
    opaque_tokens_are_unique_random_strings_and_the_database_holds_none_in_clear,
    introspection_describes_active_opaque_tokens_and_our_jwts,
    inactive_tokens_of_every_kind_are_just_active_false,
    introspection_needs_an_authenticated_confidential_client,
    revocation_acts_on_the_clients_own_opaque_tokens_at_once,
    a_jwt_is_revoked_by_its_own_client_only,
    metadata_names_the_introspection_and_revocation_endpoints,
    a_clients_own_token_introspects_without_a_username,
);
