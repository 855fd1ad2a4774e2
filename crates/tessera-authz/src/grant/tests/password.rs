use tessera_store::on_each_backend;

use super::*;

on_each_backend!(
    the_right_password_gets_a_token_for_the_user_and_a_refresh_token,
    a_wrong_password_is_invalid_grant,
    the_admin_scope_without_the_admin_role_is_invalid_scope,
    a_sign_in_right_after_a_sign_out_everywhere_is_issued_after_the_cutoff_second,
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
    assert_eq!(claims.sid, Some(stored.family_id.to_string()));
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

/// A user's tokens are revoked up to a whole second (`iat` counts in seconds): a token
/// issued in that same second would be refused with them, so it is issued in the next.
async fn a_sign_in_right_after_a_sign_out_everywhere_is_issued_after_the_cutoff_second(
    backend: Backend,
) {
    let fx = Fixture::new(backend).await;
    let alice = fx
        .store()
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    let before = fx
        .grant(
            "app",
            &format!("grant_type=password&username=alice&password={PASSWORD}"),
        )
        .await
        .unwrap();
    let refresh = before.refresh_token.unwrap();
    fx.store()
        .revoke_user(alice.id, fx.clock.now_utc())
        .await
        .unwrap()
        .unwrap();
    let cutoff = fx.clock.now_utc().timestamp();
    let identity = |claims: &AccessTokenClaims| {
        (
            claims.jti.clone(),
            claims.sid.clone(),
            claims.sub.clone(),
            claims.iat,
        )
    };
    let store = fx.engine.store.clone();
    let now = fx.clock.now_utc();
    let covered = |(jti, sid, sub, iat): (String, Option<String>, String, i64)| {
        let store = store.clone();
        async move {
            store
                .jwt_revoked(
                    tessera_store::TokenIdentity {
                        jti: &jti,
                        sid: sid.as_deref(),
                        sub: &sub,
                        client_id: "app",
                        iat,
                    },
                    now,
                )
                .await
                .unwrap()
        }
    };
    assert!(covered(identity(&fx.claims(&before.access_token))).await);

    // The clock has not moved: the new token is dated the next second, and not covered.
    let after = fx
        .grant(
            "app",
            &format!("grant_type=password&username=alice&password={PASSWORD}"),
        )
        .await
        .unwrap();
    let claims = fx.claims(&after.access_token);
    assert_eq!(claims.iat, cutoff + 1);
    assert!(!covered(identity(&claims)).await);
    // The refresh token of before is refused, and stays so.
    let refused = refusal(
        fx.grant(
            "app",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await,
    );
    assert_eq!(refused.0, ErrorCode::InvalidGrant);
}
