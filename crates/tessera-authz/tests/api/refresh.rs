//! Refresh tokens: rotation, reuse detection, scope narrowing, the user's current state,
//! and the absolute lifetime.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tessera_core::Role;
use tessera_store::UserPatch;

use crate::helpers::*;

async fn first_grant(app: &TestApp, client: &str, username: &str, scope: &str) -> Value {
    assert_token(
        app.password_grant_as(
            Auth::Basic(client, APP_SECRET),
            username,
            PASSWORD,
            Some(scope),
        )
        .await,
    )
    .await
}

async fn refresh(
    app: &TestApp,
    client: &str,
    token: &Value,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut params = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token["refresh_token"].as_str().unwrap()),
    ];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    app.token(Auth::Basic(client, APP_SECRET), &params).await
}

async fn set_roles(app: &TestApp, username: &str, roles: &[Role]) {
    let user = app
        .store
        .find_user_credentials(username)
        .await
        .unwrap()
        .unwrap()
        .user;
    app.store
        .update_user(
            &user.company,
            user.id,
            &UserPatch {
                roles: Some(roles.to_vec()),
                disabled: None,
                password_hash: None,
                name: None,
                email: None,
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
}

async fn refresh_rotates_and_reusing_a_spent_token_revokes_the_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = first_grant(&app, "refresher-opaque", "bob", "basic").await;
    let second = assert_token(refresh(&app, "refresher-opaque", &first, None).await).await;
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["scope"], "basic");
    let third = assert_token(refresh(&app, "refresher-opaque", &second, None).await).await;
    assert_eq!(
        app.introspect(third["access_token"].as_str().unwrap())
            .await["active"],
        true
    );

    // The first token again: it leaked. The whole family goes, the live tokens included.
    let reuse = refresh(&app, "refresher-opaque", &first, None).await;
    let body = assert_oauth_error(reuse, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert_eq!(
        app.introspect(third["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    let latest = refresh(&app, "refresher-opaque", &third, None).await;
    assert_oauth_error(latest, 400, "invalid_grant").await;

    // Another grant of the same user is untouched.
    let other = first_grant(&app, "refresher-opaque", "bob", "basic").await;
    assert_token(refresh(&app, "refresher-opaque", &other, None).await).await;
}

async fn ten_concurrent_refreshes_with_one_token_leave_no_live_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = first_grant(&app, "refresher-opaque", "bob", "basic").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (http, address) = (app.http.clone(), app.address.clone());
        let token = first["refresh_token"].as_str().unwrap().to_owned();
        tasks.spawn(async move {
            http.post(format!("{address}/oauth/token"))
                .basic_auth("refresher-opaque", Some(APP_SECRET))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                .send()
                .await
                .unwrap()
        });
    }
    let mut winners = Vec::new();
    while let Some(response) = tasks.join_next().await {
        let response = response.unwrap();
        if response.status().as_u16() == 200 {
            winners.push(response.json::<Value>().await.unwrap());
        } else {
            assert_oauth_error(response, 400, "invalid_grant").await;
        }
    }
    assert_eq!(winners.len(), 1, "one rotation wins");
    // The others were reuse: the family is revoked, the winner's tokens with it.
    let winner = &winners[0];
    assert_eq!(
        app.introspect(winner["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    assert_oauth_error(
        refresh(&app, "refresher-opaque", winner, None).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn a_refresh_may_narrow_the_scope_but_never_widen_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let both = first_grant(&app, "refresher", "alice", "basic admin").await;
    let narrowed = assert_token(refresh(&app, "refresher", &both, Some("basic")).await).await;
    assert_eq!(narrowed["scope"], "basic");
    let claims = app
        .verify(narrowed["access_token"].as_str().unwrap())
        .await
        .claims;
    assert_eq!(claims["scope"], "basic");
    // The grant itself is not narrowed: the next refresh may ask for all of it again.
    let again = assert_token(refresh(&app, "refresher", &narrowed, None).await).await;
    assert_eq!(again["scope"], "basic admin");

    let basic = first_grant(&app, "refresher", "alice", "basic").await;
    let widened = refresh(&app, "refresher", &basic, Some("basic admin")).await;
    let body = assert_oauth_error(widened, 400, "invalid_scope").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
    let unknown = refresh(&app, "refresher", &basic, Some("basic openid")).await;
    assert_oauth_error(unknown, 400, "invalid_scope").await;
    // A refused refresh does not spend the token.
    let still = assert_token(refresh(&app, "refresher", &basic, None).await).await;
    assert_eq!(still["scope"], "basic");
}

async fn a_demoted_user_loses_admin_and_a_disabled_or_deleted_user_gets_invalid_grant(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let granted = first_grant(&app, "refresher", "alice", "basic admin").await;
    set_roles(&app, "alice", &[Role::User]).await;

    // A change of roles revokes what was granted under the old ones: the refresh token
    // is refused, whatever scope it asks for.
    let explicit = refresh(&app, "refresher", &granted, Some("basic")).await;
    assert_oauth_error(explicit, 400, "invalid_grant").await;
    assert_oauth_error(
        refresh(&app, "refresher", &granted, None).await,
        400,
        "invalid_grant",
    )
    .await;
    // A new grant gets what the new roles allow.
    let demoted = first_grant(&app, "refresher", "alice", "basic").await;
    let refreshed = assert_token(refresh(&app, "refresher", &demoted, None).await).await;
    assert_eq!(refreshed["scope"], "basic");
    let claims = app
        .verify(refreshed["access_token"].as_str().unwrap())
        .await
        .claims;
    assert_eq!(claims["roles"], serde_json::json!(["user"]));

    // Promoted again: that revokes too, and a new grant may have admin.
    set_roles(&app, "alice", &[Role::Admin]).await;
    assert_oauth_error(
        refresh(&app, "refresher", &refreshed, None).await,
        400,
        "invalid_grant",
    )
    .await;
    let promoted = first_grant(&app, "refresher", "alice", "basic admin").await;
    let promoted = assert_token(refresh(&app, "refresher", &promoted, None).await).await;
    assert_eq!(promoted["scope"], "basic admin");

    // Disabled: invalid_grant, and the family does not come back when re-enabled.
    let alice: tessera_core::Username = "alice".parse().unwrap();
    app.store
        .set_user_disabled(&alice, true, Utc::now())
        .await
        .unwrap();
    let disabled = refresh(&app, "refresher", &promoted, None).await;
    assert_oauth_error(disabled, 400, "invalid_grant").await;
    app.store
        .set_user_disabled(&alice, false, Utc::now())
        .await
        .unwrap();
    let revived = refresh(&app, "refresher", &promoted, None).await;
    assert_oauth_error(revived, 400, "invalid_grant").await;

    // Deleted: invalid_grant.
    let bobs = first_grant(&app, "refresher", "bob", "basic").await;
    app.store
        .delete_user(&"bob".parse().unwrap(), chrono::Utc::now())
        .await
        .unwrap();
    assert_oauth_error(
        refresh(&app, "refresher", &bobs, None).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn a_refresh_token_belongs_to_its_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let granted = first_grant(&app, "refresher", "bob", "basic").await;
    let stolen = refresh(&app, "refresher-opaque", &granted, None).await;
    assert_oauth_error(stolen, 400, "invalid_grant").await;
    // The owner's token was not spent by the attempt.
    assert_token(refresh(&app, "refresher", &granted, None).await).await;
    // A client not allowed the grant gets no refresh token and may not refresh.
    let plain = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    assert!(plain.get("refresh_token").is_none(), "{plain}");
    let refused = app
        .token(
            Auth::Basic("app", APP_SECRET),
            &[("grant_type", "refresh_token"), ("refresh_token", "tsrr_x")],
        )
        .await;
    assert_oauth_error(refused, 400, "unauthorized_client").await;
    let missing = app
        .token(
            Auth::Basic("refresher", APP_SECRET),
            &[("grant_type", "refresh_token")],
        )
        .await;
    assert_oauth_error(missing, 400, "invalid_request").await;
}

async fn revoking_a_refresh_token_ends_its_family_for_its_client_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let granted = first_grant(&app, "refresher-opaque", "bob", "basic").await;
    let refresh_token = granted["refresh_token"].as_str().unwrap();
    // Another client: 200, and nothing changes.
    let response = app
        .post_form(
            "/oauth/revoke",
            Auth::Basic("refresher", APP_SECRET),
            &[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let rotated = assert_token(refresh(&app, "refresher-opaque", &granted, None).await).await;
    // The owner revokes the newest refresh token: the family ends, its access tokens too.
    let response = app
        .post_form(
            "/oauth/revoke",
            Auth::Basic("refresher-opaque", APP_SECRET),
            &[("token", rotated["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_no_store(response.headers());
    assert_eq!(
        app.introspect(rotated["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    let after = refresh(&app, "refresher-opaque", &rotated, None).await;
    let body = assert_oauth_error(after, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

on_each_backend!(
    revoking_a_refresh_token_ends_its_family_for_its_client_only,
    refresh_rotates_and_reusing_a_spent_token_revokes_the_family,
    ten_concurrent_refreshes_with_one_token_leave_no_live_family,
    a_refresh_may_narrow_the_scope_but_never_widen_it,
    a_demoted_user_loses_admin_and_a_disabled_or_deleted_user_gets_invalid_grant,
    a_refresh_token_belongs_to_its_client,
);

#[tokio::test]
async fn a_refresh_token_family_ends_at_its_absolute_lifetime() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.refresh_token_ttl = Duration::from_secs(3);
    })
    .await;
    let first = first_grant(&app, "refresher", "bob", "basic").await;
    // Rotation does not extend the family's life: a sliding lifetime would still have 3
    // seconds left after the second refresh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = assert_token(refresh(&app, "refresher", &first, None).await).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let expired = refresh(&app, "refresher", &second, None).await;
    let body = assert_oauth_error(expired, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn lifetimes_outside_their_bounds_are_refused_at_start() {
    let (_db, store) = seeded_store(Backend::Sqlite).await;
    let day = 86_400;
    for (access, refresh, message) in [
        (
            0,
            3600,
            "the access-token lifetime must be 1 to 86400 seconds",
        ),
        (
            day + 1,
            3600,
            "the access-token lifetime must be 1 to 86400 seconds",
        ),
        (
            900,
            0,
            "the refresh-token lifetime must be 1 to 31536000 seconds",
        ),
        (
            900,
            365 * day + 1,
            "the refresh-token lifetime must be 1 to 31536000 seconds",
        ),
    ] {
        let settings = tessera_authz::Settings {
            addr: "127.0.0.1:0".into(),
            access_token_ttl: Duration::from_secs(access),
            refresh_token_ttl: Duration::from_secs(refresh),
            ..tessera_authz::Settings::default()
        };
        let err = tessera_authz::Application::build(settings, store.clone())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}
