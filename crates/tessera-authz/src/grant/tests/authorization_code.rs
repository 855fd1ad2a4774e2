use tessera_store::on_each_backend;

use super::*;

on_each_backend!(
    a_code_is_redeemed_once_and_its_replay_revokes_the_family,
    a_code_redeemed_with_the_wrong_verifier_is_spent_and_refused,
);

/// A code that `alice` consented to for `web`, and its verifier.
async fn consented_code(fx: &Fixture, asked: &str) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let form = Form::parse(
        format!(
            "response_type=code&client_id=web&redirect_uri={}&scope={}&code_challenge={challenge}&code_challenge_method=S256",
            url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
            asked.replace(' ', "+"),
        )
        .as_bytes(),
    )
    .unwrap();
    let request = check(&form, fx.store()).await.unwrap();
    let alice = fx
        .store()
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert!(request.refused_to(&alice).is_none());
    let code = fx
        .engine
        .issue_code(&request, &alice, fx.clock.now_utc(), fx.clock.now_utc())
        .await
        .unwrap();
    (code, verifier)
}

fn redeem_form(code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}",
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
    )
}

async fn a_code_is_redeemed_once_and_its_replay_revokes_the_family(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (code, verifier) = consented_code(&fx, "basic admin").await;
    fx.clock.advance(Duration::from_secs(5));

    let issued = fx
        .grant("web", &redeem_form(&code, &verifier))
        .await
        .unwrap();
    assert_eq!(issued.scope, scope("basic admin"));
    let claims = fx.claims(&issued.access_token);
    assert_eq!(claims.username.as_deref(), Some("alice"));
    assert_eq!(claims.client_id, "web");
    assert_eq!(claims.iat, fx.start_secs + 5);
    assert_eq!(claims.exp, claims.iat + ACCESS_TTL_SECS);
    let refresh = issued.refresh_token.expect("web may refresh");
    let family = fx
        .store()
        .find_refresh_token(&secret::digest(&refresh))
        .await
        .unwrap()
        .unwrap()
        .family_id;
    assert_eq!(claims.sid, Some(family.to_string()), "sid names the grant");

    let replayed = refusal(fx.grant("web", &redeem_form(&code, &verifier)).await);
    assert_eq!(
        replayed,
        (
            ErrorCode::InvalidGrant,
            "the authorization code was already used".into()
        )
    );
    let family = fx
        .store()
        .find_refresh_token(&secret::digest(&refresh))
        .await
        .unwrap()
        .unwrap();
    assert!(
        family.revoked_at.is_some(),
        "the replay revokes what the code issued"
    );
    // And its JWTs, through the feed: a `sid` entry, kept as long as one can be valid.
    let feed = fx.store().revocations(0, fx.clock.now_utc()).await.unwrap();
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(
        feed.entries[0].revoked,
        tessera_store::Revoked::Sid(family.family_id.to_string())
    );
    assert_eq!(
        feed.entries[0].until.timestamp(),
        fx.clock.now_utc().timestamp() + 86_400 + 60
    );
    let after = refusal(
        fx.grant(
            "web",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await,
    );
    assert_eq!(after.0, ErrorCode::InvalidGrant);
}

async fn a_code_redeemed_with_the_wrong_verifier_is_spent_and_refused(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (code, _) = consented_code(&fx, "basic").await;
    let wrong = "x".repeat(43);
    let refused = refusal(fx.grant("web", &redeem_form(&code, &wrong)).await);
    assert_eq!(
        refused,
        (
            ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge".into()
        )
    );
}
