use tessera_store::on_each_backend;

use super::*;

on_each_backend!(
    a_refresh_rotates_the_token_and_keeps_the_scope,
    a_reused_refresh_token_revokes_its_family,
    a_refused_refresh_leaves_the_client_its_token,
);

/// A refresh token of `alice` for `app`, with `asked`.
async fn first_refresh_token(fx: &Fixture, asked: &str) -> String {
    fx.grant(
        "app",
        &format!(
            "grant_type=password&username=alice&password={PASSWORD}&scope={}",
            asked.replace(' ', "+")
        ),
    )
    .await
    .unwrap()
    .refresh_token
    .unwrap()
}

fn refresh_form(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}")
}

async fn a_refresh_rotates_the_token_and_keeps_the_scope(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let first = first_refresh_token(&fx, "basic admin").await;
    fx.clock.advance(Duration::from_secs(60));

    let issued = fx.grant("app", &refresh_form(&first)).await.unwrap();
    assert_eq!(issued.scope, scope("basic admin"));
    let claims = fx.claims(&issued.access_token);
    assert_eq!(claims.username.as_deref(), Some("alice"));
    assert_eq!(claims.iat, fx.start_secs + 60);
    assert_eq!(claims.exp, claims.iat + ACCESS_TTL_SECS);
    let second = issued
        .refresh_token
        .expect("a rotation hands out a successor");
    assert_ne!(second, first);
    let spent = fx
        .store()
        .find_refresh_token(&secret::digest(&first))
        .await
        .unwrap()
        .unwrap();
    assert!(spent.used_at.is_some());

    // A refresh may narrow the scope, never widen it.
    let narrowed = fx
        .grant("app", &format!("{}&scope=basic", refresh_form(&second)))
        .await
        .unwrap();
    assert_eq!(narrowed.scope, scope("basic"));
    assert_eq!(fx.claims(&narrowed.access_token).scope, scope("basic"));
}

async fn a_reused_refresh_token_revokes_its_family(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let first = first_refresh_token(&fx, "basic").await;
    let second = fx
        .grant("app", &refresh_form(&first))
        .await
        .unwrap()
        .refresh_token
        .unwrap();

    let reused = refusal(fx.grant("app", &refresh_form(&first)).await);
    assert_eq!(
        reused,
        (
            ErrorCode::InvalidGrant,
            "the refresh token was already used".into()
        )
    );
    let successor = fx
        .store()
        .find_refresh_token(&secret::digest(&second))
        .await
        .unwrap()
        .unwrap();
    assert!(
        successor.revoked_at.is_some(),
        "the whole family is revoked"
    );
    let after = refusal(fx.grant("app", &refresh_form(&second)).await);
    assert_eq!(
        after,
        (
            ErrorCode::InvalidGrant,
            "the refresh token was revoked".into()
        )
    );
}

async fn a_refused_refresh_leaves_the_client_its_token(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let first = first_refresh_token(&fx, "basic").await;
    let widened = refusal(
        fx.grant(
            "app",
            &format!("{}&scope=basic+admin", refresh_form(&first)),
        )
        .await,
    );
    assert_eq!(
        widened,
        (
            ErrorCode::InvalidScope,
            "the scope admin was not granted; a refresh cannot widen it".into()
        )
    );
    let kept = fx
        .store()
        .find_refresh_token(&secret::digest(&first))
        .await
        .unwrap()
        .unwrap();
    assert!(kept.used_at.is_none() && kept.revoked_at.is_none());
    assert!(fx.grant("app", &refresh_form(&first)).await.is_ok());
}
