//! What OpenID Connect keeps: users' names and addresses, clients' post-logout redirect
//! URIs, a code's nonce and auth_time carried to its refresh tokens, remembered consent,
//! and ending one login session.

use chrono::Utc;
use tessera_core::{Role, ScopeSet};
use tessera_store::{
    NewAuthorizationCode, NewLoginSession, NewRefreshToken, Redemption, Rotation, UserPatch,
    on_each_backend,
};

use super::{client, company, fresh, now, user};

on_each_backend!(
    names_and_addresses_are_stored_changed_and_cleared,
    post_logout_redirect_uris_round_trip,
    a_codes_nonce_and_auth_time_reach_every_refresh_token_of_its_family,
    consent_is_remembered_widened_and_forgotten_with_everything_else,
    a_login_session_ends_alone,
);

async fn names_and_addresses_are_stored_changed_and_cleared(
    backend: tessera_store::testing::Backend,
) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let mut new = user("acme", "ada", &[Role::User]);
    new.name = Some("Ada Lovelace".into());
    new.email = Some("ada@acme.example".into());
    let ada = t.store.create_user(&new, now()).await.unwrap();
    assert_eq!(ada.name.as_deref(), Some("Ada Lovelace"));
    let acme = "acme".parse().unwrap();
    let found = t.store.find_user(&acme, ada.id).await.unwrap().unwrap();
    assert_eq!(found, ada);
    assert_eq!(
        t.store.find_user_by_id(ada.id).await.unwrap(),
        Some(ada.clone())
    );
    // Listing and the opaque-token join read them too.
    let listed = t.store.list_users(Some(&acme)).await.unwrap();
    assert_eq!(listed[0].email.as_deref(), Some("ada@acme.example"));

    // A patch that leaves them out leaves them; a new name; null clears the address.
    let later = now() + chrono::Duration::seconds(5);
    let renamed = t
        .store
        .update_user(
            &acme,
            ada.id,
            &UserPatch {
                name: Some(Some("Augusta Ada King".into())),
                email: Some(None),
                ..UserPatch::default()
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Augusta Ada King"));
    assert_eq!(renamed.email, None);
    assert_eq!(renamed.updated_at, later);
    // A name change alone revokes nothing.
    assert_eq!(renamed.tokens_revoked_at, None);
    let readdressed = t
        .store
        .update_user(
            &acme,
            ada.id,
            &UserPatch {
                email: Some(Some("ada.king@acme.example".into())),
                ..UserPatch::default()
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(readdressed.name.as_deref(), Some("Augusta Ada King"));
    let untouched = t
        .store
        .update_user(
            &acme,
            ada.id,
            &UserPatch {
                disabled: Some(false),
                ..UserPatch::default()
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.name.as_deref(), Some("Augusta Ada King"));
    assert_eq!(untouched.email.as_deref(), Some("ada.king@acme.example"));
    // A user created without them has neither.
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    assert_eq!((bob.name, bob.email), (None, None));
}

async fn post_logout_redirect_uris_round_trip(backend: tessera_store::testing::Backend) {
    let t = fresh(backend).await;
    let mut new = client("wiki");
    new.post_logout_redirect_uris = vec![
        "https://wiki.example/".into(),
        "https://wiki.example/bye?from=tessera".into(),
    ];
    let created = t.store.create_client(&new, now()).await.unwrap();
    assert_eq!(created.registration, new);
    t.store.forget_clients();
    let found = t.store.find_client("wiki").await.unwrap().unwrap();
    assert_eq!(
        found.post_logout_redirect_uris,
        new.post_logout_redirect_uris
    );
    let plain = t
        .store
        .create_client(&client("plain"), now())
        .await
        .unwrap();
    assert!(plain.post_logout_redirect_uris.is_empty());
}

async fn a_codes_nonce_and_auth_time_reach_every_refresh_token_of_its_family(
    backend: tessera_store::testing::Backend,
) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let ada = t
        .store
        .create_user(&user("acme", "ada", &[Role::User]), now())
        .await
        .unwrap();
    t.store.create_client(&client("wiki"), now()).await.unwrap();
    let signed_in = now() - chrono::Duration::minutes(3);
    let code = NewAuthorizationCode {
        code_hash: "code".into(),
        client_id: "wiki".parse().unwrap(),
        user_id: ada.id,
        redirect_uri: "https://app.example/cb".into(),
        scope: "basic".parse().unwrap(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        expires_at: now() + chrono::Duration::seconds(60),
        nonce: Some("n-0S6 _WzA2Mj\u{e9}".into()),
        auth_time: Some(signed_in),
    };
    t.store
        .insert_authorization_code(&code, now())
        .await
        .unwrap();
    let family = uuid::Uuid::new_v4();
    let Redemption::First(redeemed) = t
        .store
        .redeem_authorization_code("code", family, now())
        .await
        .unwrap()
    else {
        panic!("the first redemption wins");
    };
    assert_eq!(redeemed.nonce, code.nonce);
    assert_eq!(redeemed.auth_time, Some(signed_in));

    let first = NewRefreshToken {
        token_hash: "r1".into(),
        family_id: family,
        client_id: "wiki".parse().unwrap(),
        user_id: ada.id,
        scope: code.scope,
        expires_at: now() + chrono::Duration::days(30),
        auth_time: redeemed.auth_time,
    };
    t.store.insert_refresh_token(&first, now()).await.unwrap();
    let found = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(found.auth_time, Some(signed_in));
    let mut previous = "r1".to_owned();
    for n in 2..5 {
        let next = format!("r{n}");
        let later = now() + chrono::Duration::minutes(n);
        let Rotation::Rotated(spent) = t
            .store
            .rotate_refresh_token(&previous, &next, later)
            .await
            .unwrap()
        else {
            panic!("a live token rotates");
        };
        assert_eq!(spent.auth_time, Some(signed_in));
        let successor = t.store.find_refresh_token(&next).await.unwrap().unwrap();
        assert_eq!(successor.auth_time, Some(signed_in), "rotation {n}");
        previous = next;
    }
}

async fn consent_is_remembered_widened_and_forgotten_with_everything_else(
    backend: tessera_store::testing::Backend,
) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let ada = t
        .store
        .create_user(&user("acme", "ada", &[Role::User]), now())
        .await
        .unwrap();
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    t.store.create_client(&client("wiki"), now()).await.unwrap();
    t.store.create_client(&client("blog"), now()).await.unwrap();
    let scopes = |s: &str| s.parse::<ScopeSet>().unwrap();

    assert_eq!(t.store.find_consent(ada.id, "wiki").await.unwrap(), None);
    let remembered = t
        .store
        .remember_consent(ada.id, "wiki", scopes("openid profile"), now())
        .await
        .unwrap();
    assert_eq!(remembered, scopes("openid profile"));
    // A second Allow adds to what was allowed; it never narrows it.
    let widened = t
        .store
        .remember_consent(ada.id, "wiki", scopes("openid email"), now())
        .await
        .unwrap();
    assert_eq!(widened, scopes("openid profile email"));
    assert_eq!(
        t.store.find_consent(ada.id, "wiki").await.unwrap(),
        Some(widened)
    );
    // Per user and per client.
    assert_eq!(t.store.find_consent(ada.id, "blog").await.unwrap(), None);
    assert_eq!(t.store.find_consent(bob.id, "wiki").await.unwrap(), None);
    t.store
        .remember_consent(bob.id, "wiki", scopes("openid"), now())
        .await
        .unwrap();
    t.store
        .remember_consent(ada.id, "blog", scopes("basic"), now())
        .await
        .unwrap();

    // Allows at once each add their scopes: none is lost to another's write.
    let mut writes = Vec::new();
    let bob_id = bob.id;
    for scope in ["basic", "admin", "openid", "profile", "email"] {
        let store = t.store.clone();
        writes.push(tokio::spawn(async move {
            store
                .remember_consent(bob_id, "blog", scope.parse().unwrap(), now())
                .await
                .unwrap()
        }));
    }
    for write in writes {
        write.await.unwrap();
    }
    assert_eq!(
        t.store.find_consent(bob.id, "blog").await.unwrap(),
        Some(scopes("basic admin openid profile email"))
    );

    // "Sign out everywhere" forgets ada's, and only hers.
    t.store.revoke_user(ada.id, Utc::now()).await.unwrap();
    assert_eq!(t.store.find_consent(ada.id, "wiki").await.unwrap(), None);
    assert_eq!(t.store.find_consent(ada.id, "blog").await.unwrap(), None);
    assert_eq!(
        t.store.find_consent(bob.id, "wiki").await.unwrap(),
        Some(scopes("openid"))
    );
    // Deleting the client takes its consents along.
    assert!(t.store.delete_client("wiki", Utc::now()).await.unwrap());
    assert_eq!(t.store.find_consent(bob.id, "wiki").await.unwrap(), None);
}

async fn a_login_session_ends_alone(backend: tessera_store::testing::Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let ada = t
        .store
        .create_user(&user("acme", "ada", &[Role::User]), now())
        .await
        .unwrap();
    for hash in ["s1", "s2"] {
        let session = NewLoginSession {
            session_hash: hash.into(),
            user_id: ada.id,
            expires_at: now() + chrono::Duration::minutes(30),
        };
        t.store.insert_login_session(&session, now()).await.unwrap();
    }
    assert!(t.store.delete_login_session("s1").await.unwrap());
    assert!(!t.store.delete_login_session("s1").await.unwrap());
    assert_eq!(t.store.find_login_session("s1").await.unwrap(), None);
    assert!(t.store.find_login_session("s2").await.unwrap().is_some());
}
