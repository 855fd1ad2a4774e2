use tessera_store::on_each_backend;

use super::*;

on_each_backend!(
    the_right_password_gets_a_token_for_the_user_and_a_refresh_token,
    a_wrong_password_is_invalid_grant,
    the_admin_scope_without_the_admin_role_is_invalid_scope,
);

async fn the_right_password_gets_a_token_for_the_user_and_a_refresh_token(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let issued = fx
        .grant(
            "app",
            &format!("grant_type=password&username=alice&password={PASSWORD}&scope=basic+admin"),
        )
        .await
        .unwrap();
    let user = issued.user.as_ref().expect("the token speaks for a user");
    assert_eq!(user.username.as_str(), "alice");
    assert_eq!(issued.scope, scope("basic admin"));
    let claims = fx.claims(&issued.access_token);
    assert_eq!(claims.sub, user.id.to_string());
    assert_eq!(claims.username.as_deref(), Some("alice"));
    assert_eq!(claims.company.as_deref(), Some("acme"));
    assert_eq!(claims.roles, Some(vec![Role::Admin, Role::User]));
    assert_eq!(claims.scope, scope("basic admin"));
    assert_eq!(claims.exp - claims.iat, ACCESS_TTL_SECS);
    let refresh = issued.refresh_token.expect("app may refresh");
    assert!(refresh.starts_with(REFRESH_PREFIX));
    let stored = fx
        .store()
        .find_refresh_token(&secret::digest(&refresh))
        .await
        .unwrap()
        .expect("the refresh token is stored");
    assert_eq!(stored.scope, scope("basic admin"));
    assert_eq!(stored.expires_at.timestamp(), fx.start_secs + 86_400);
}

async fn a_wrong_password_is_invalid_grant(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let refused = refusal(
        fx.grant("app", "grant_type=password&username=alice&password=wrong")
            .await,
    );
    assert_eq!(
        refused,
        (
            ErrorCode::InvalidGrant,
            "invalid username or password".into()
        )
    );
}

async fn the_admin_scope_without_the_admin_role_is_invalid_scope(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let refused = refusal(
        fx.grant(
            "app",
            &format!("grant_type=password&username=bob&password={PASSWORD}&scope=admin"),
        )
        .await,
    );
    assert_eq!(refused, (ErrorCode::InvalidScope, ADMIN_NEEDS_ROLE.into()));
    assert_eq!(ADMIN_NEEDS_ROLE, "the admin scope requires the admin role");
}
