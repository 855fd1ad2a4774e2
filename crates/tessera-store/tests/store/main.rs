//! The store conformance suite: every adapter must pass it unchanged.

// Tests fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{SubsecRound, TimeZone, Utc};
use tessera_core::{GrantType, Role, Scope, ScopeSet, SigningKey, TokenFormat};
use tessera_store::testing::{Backend, TcpProxy, TestDatabase, postgres_server_addr};
use tessera_store::{
    KeyState, LoginSession, NewAccessToken, NewAuthorizationCode, NewClient, NewCompany, NewKey,
    NewLoginSession, NewRefreshToken, NewUser, RedeemedCode, Redemption, Rotation, Seed, Store,
    StoreError, on_each_backend,
};

mod audit;
mod keys;
mod oidc;
mod rate_limits;
mod revocations;

const KEY_A: &str = include_str!("../../../../testdata/keys/rsa-2048-a.pem");
const KEY_B: &str = include_str!("../../../../testdata/keys/rsa-2048-b.pem");

on_each_backend!(
    a_taken_company_slug_is_a_conflict_not_a_database_error,
    users_belong_to_an_existing_company_and_usernames_are_unique,
    users_can_be_listed_by_company_disabled_enabled_and_deleted,
    clients_round_trip_with_every_field_and_ids_are_unique,
    only_the_first_of_two_active_keys_is_kept,
    seeding_happens_once_and_only_on_an_empty_database,
    a_failing_seed_leaves_nothing_behind,
    user_lookups_and_changes_by_id_never_cross_companies,
    opaque_tokens_are_found_by_digest_and_revoked_only_by_their_client,
    migrations_are_idempotent_and_data_survives_a_reopen,
    concurrent_opaque_tokens_share_commits_and_one_bad_token_fails_alone,
    an_opaque_token_comes_with_its_user_as_they_are_now,
    clients_are_kept_in_memory_and_changes_reach_every_store,
);

/// A fresh, migrated database on `backend`, removed when this drops.
struct TestStore {
    store: Arc<dyn Store>,
    db: TestDatabase,
}

async fn fresh(backend: Backend) -> TestStore {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    TestStore { store, db }
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn company(slug: &str) -> NewCompany {
    NewCompany {
        slug: slug.parse().unwrap(),
        name: format!("{slug} Inc."),
    }
}

fn user(company: &str, username: &str, roles: &[Role]) -> NewUser {
    NewUser {
        company: company.parse().unwrap(),
        username: username.parse().unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        roles: roles.to_vec(),
        name: None,
        email: None,
    }
}

fn client(id: &str) -> NewClient {
    NewClient {
        client_id: id.parse().unwrap(),
        name: id.into(),
        secret_hash: Some(tessera_core::secret::digest("secret")),
        grant_types: vec![GrantType::Password, GrantType::ClientCredentials],
        scopes: "basic admin".parse().unwrap(),
        redirect_uris: vec!["https://app.example/cb".into()],
        access_token_format: TokenFormat::Jwt,
        access_token_ttl_secs: Some(600),
        refresh_token_ttl_secs: None,
        post_logout_redirect_uris: vec![],
    }
}

async fn a_taken_company_slug_is_a_conflict_not_a_database_error(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let err = t
        .store
        .create_company(&company("acme"), now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), "company acme already exists");
    assert_eq!(t.store.list_companies().await.unwrap().len(), 1);
}

async fn users_belong_to_an_existing_company_and_usernames_are_unique(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    t.store
        .create_company(&company("globex"), now())
        .await
        .unwrap();

    let err = t
        .store
        .create_user(&user("nowhere", "alice", &[Role::Admin]), now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "company nowhere does not exist");

    let alice = t
        .store
        .create_user(&user("acme", "alice", &[Role::Admin, Role::User]), now())
        .await
        .unwrap();
    let err = t
        .store
        .create_user(&user("globex", "alice", &[Role::User]), now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let found = t
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user, alice);
    assert_eq!(found.user.company.as_str(), "acme");
    assert_eq!(found.user.roles, [Role::Admin, Role::User]);
    assert!(found.password_hash.starts_with("$argon2id$"));
    assert!(
        t.store
            .find_user_credentials("Alice")
            .await
            .unwrap()
            .is_none()
    );
}

async fn users_can_be_listed_by_company_disabled_enabled_and_deleted(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    t.store
        .create_company(&company("globex"), now())
        .await
        .unwrap();
    t.store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    t.store
        .create_user(&user("acme", "alice", &[Role::Admin]), now())
        .await
        .unwrap();
    t.store
        .create_user(&user("globex", "carol", &[Role::Admin]), now())
        .await
        .unwrap();

    let acme = t
        .store
        .list_users(Some(&"acme".parse().unwrap()))
        .await
        .unwrap();
    let names: Vec<_> = acme.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(t.store.list_users(None).await.unwrap().len(), 3);

    let later = now() + chrono::Duration::minutes(5);
    let bob = t
        .store
        .set_user_disabled(&"bob".parse().unwrap(), true, later)
        .await
        .unwrap();
    assert!(bob.disabled);
    assert_eq!(bob.updated_at, later);
    assert!(
        !t.store
            .set_user_disabled(&"bob".parse().unwrap(), false, later)
            .await
            .unwrap()
            .disabled
    );

    t.store
        .delete_user(&"bob".parse().unwrap(), now())
        .await
        .unwrap();
    assert!(
        t.store
            .find_user_credentials("bob")
            .await
            .unwrap()
            .is_none()
    );
    let err = t
        .store
        .delete_user(&"bob".parse().unwrap(), now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = t
        .store
        .set_user_disabled(&"nobody".parse().unwrap(), true, now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn clients_round_trip_with_every_field_and_ids_are_unique(backend: Backend) {
    let t = fresh(backend).await;
    let created = t.store.create_client(&client("app"), now()).await.unwrap();
    let found = t.store.find_client("app").await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(found.scopes, "basic admin".parse::<ScopeSet>().unwrap());
    assert_eq!(
        found.grant_types,
        [GrantType::Password, GrantType::ClientCredentials]
    );
    assert_eq!(found.redirect_uris, ["https://app.example/cb"]);
    assert_eq!(found.access_token_ttl_secs, Some(600));
    assert!(!found.is_public());

    let mut public = client("spa");
    public.secret_hash = None;
    public.scopes = ScopeSet::only(Scope::Basic);
    assert!(
        t.store
            .create_client(&public, now())
            .await
            .unwrap()
            .is_public()
    );

    let err = t
        .store
        .create_client(&client("app"), now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(t.store.find_client("nope").await.unwrap().is_none());
    assert_eq!(t.store.list_clients().await.unwrap().len(), 2);
}

async fn only_the_first_of_two_active_keys_is_kept(backend: Backend) {
    let t = fresh(backend).await;
    assert!(t.store.active_key().await.unwrap().is_none());
    let a = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let b = SigningKey::from_pkcs8_pem(KEY_B).unwrap();

    let first = t
        .store
        .insert_active_key_if_none(&NewKey::from(&a), now())
        .await
        .unwrap();
    assert_eq!(first.kid, a.kid());
    assert_eq!(first.state, KeyState::Active);
    assert_eq!(first.activated_at, Some(now()));

    let second = t
        .store
        .insert_active_key_if_none(&NewKey::from(&b), now())
        .await
        .unwrap();
    assert_eq!(
        second.kid,
        a.kid(),
        "a second key must not replace the active one"
    );

    let published = t.store.published_keys().await.unwrap();
    assert_eq!(published.len(), 1);
    let reloaded = SigningKey::from_pkcs8_der(&published[0].private_key).unwrap();
    assert_eq!(reloaded.kid(), a.kid());
    assert_eq!(&published[0].public_jwk, a.public_jwk());
}

async fn seeding_happens_once_and_only_on_an_empty_database(backend: Backend) {
    let t = fresh(backend).await;
    let seed = Seed {
        companies: vec![company("acme"), company("globex")],
        users: vec![user("acme", "alice", &[Role::Admin])],
        clients: vec![client("demo")],
    };
    assert!(t.store.seed_if_empty(&seed, now()).await.unwrap());
    assert!(!t.store.seed_if_empty(&seed, now()).await.unwrap());
    assert_eq!(t.store.list_companies().await.unwrap().len(), 2);
    assert_eq!(t.store.list_users(None).await.unwrap().len(), 1);
}

async fn a_failing_seed_leaves_nothing_behind(backend: Backend) {
    let t = fresh(backend).await;
    let seed = Seed {
        companies: vec![company("acme")],
        // The second user names a company that the seed does not create.
        users: vec![
            user("acme", "alice", &[Role::Admin]),
            user("initech", "peter", &[Role::User]),
        ],
        clients: vec![],
    };
    let err = t.store.seed_if_empty(&seed, now()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(t.store.list_companies().await.unwrap().is_empty());
    assert!(t.store.list_users(None).await.unwrap().is_empty());
}

async fn migrations_are_idempotent_and_data_survives_a_reopen(backend: Backend) {
    let db = TestDatabase::new(backend);
    let url = db.url().to_owned();
    let store = tessera_store::open(&url).await.unwrap();
    store.create_company(&company("acme"), now()).await.unwrap();
    drop(store);
    let store = tessera_store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        store.list_companies().await.unwrap()[0].slug.as_str(),
        "acme"
    );
    store.ping().await.unwrap();
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_a_clear_message() {
    let err = tessera_store::open("mysql://root:pw@localhost/db")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database URL: expected sqlite://PATH or postgres://USER@HOST/DATABASE"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = tessera_store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.create_company(&company("acme"), now()).await.unwrap();
    for file in ["tessera.db", "tessera.db-wal", "tessera.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {:o}", mode & 0o777);
    }
}

async fn user_lookups_and_changes_by_id_never_cross_companies(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    t.store
        .create_company(&company("globex"), now())
        .await
        .unwrap();
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    let acme: tessera_core::CompanySlug = "acme".parse().unwrap();
    let globex: tessera_core::CompanySlug = "globex".parse().unwrap();

    assert_eq!(
        t.store.find_user(&acme, bob.id).await.unwrap(),
        Some(bob.clone())
    );
    assert_eq!(t.store.find_user(&globex, bob.id).await.unwrap(), None);

    let patch = tessera_store::UserPatch {
        roles: Some(vec![Role::Admin]),
        disabled: Some(true),
        password_hash: None,
        name: None,
        email: None,
    };
    assert_eq!(
        t.store
            .update_user(&globex, bob.id, &patch, now())
            .await
            .unwrap(),
        None
    );
    assert!(
        !t.store
            .delete_user_in(&globex, bob.id, now())
            .await
            .unwrap()
    );
    let unchanged = t.store.find_user(&acme, bob.id).await.unwrap().unwrap();
    assert_eq!(unchanged.roles, [Role::User]);

    let later = now() + chrono::Duration::minutes(1);
    let changed = t
        .store
        .update_user(&acme, bob.id, &patch, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.roles, [Role::Admin]);
    assert!(changed.disabled);
    assert_eq!(changed.updated_at, later);
    let hash_before = t
        .store
        .find_user_credentials("bob")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let new_password = tessera_store::UserPatch {
        password_hash: Some("$argon2id$new".into()),
        ..Default::default()
    };
    let same_roles = t
        .store
        .update_user(&acme, bob.id, &new_password, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        same_roles.roles,
        [Role::Admin],
        "fields left out stay as they were"
    );
    let hash_after = t
        .store
        .find_user_credentials("bob")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert_ne!(hash_before, hash_after);

    assert!(t.store.delete_user_in(&acme, bob.id, now()).await.unwrap());
    assert!(t.store.find_user(&acme, bob.id).await.unwrap().is_none());
}

async fn opaque_tokens_are_found_by_digest_and_revoked_only_by_their_client(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    t.store.create_client(&client("app"), now()).await.unwrap();
    t.store
        .create_client(&client("other"), now())
        .await
        .unwrap();
    let token = tessera_store::NewAccessToken {
        token_hash: tessera_core::secret::digest("tsr_token"),
        client_id: "app".parse().unwrap(),
        user_id: Some(bob.id),
        subject: bob.id.to_string(),
        scope: "basic".parse().unwrap(),
        expires_at: now() + chrono::Duration::minutes(15),
        family_id: None,
    };
    t.store.insert_access_token(&token, now()).await.unwrap();

    let found = t
        .store
        .find_access_token(&token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, Some(bob.id));
    assert_eq!(found.created_at, now());
    assert!(found.is_active(now()));
    assert!(
        !found.is_active(now() + chrono::Duration::minutes(15)),
        "expired at expires_at"
    );
    assert!(
        t.store
            .find_access_token("no-such-digest")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.store
            .find_user_by_id(bob.id)
            .await
            .unwrap()
            .unwrap()
            .username
            .as_str(),
        "bob"
    );

    assert!(
        !t.store
            .revoke_access_token(&token.token_hash, "other", now())
            .await
            .unwrap()
    );
    assert!(
        t.store
            .find_access_token(&token.token_hash)
            .await
            .unwrap()
            .unwrap()
            .is_active(now())
    );
    let later = now() + chrono::Duration::minutes(1);
    assert!(
        t.store
            .revoke_access_token(&token.token_hash, "app", later)
            .await
            .unwrap()
    );
    assert!(
        t.store
            .revoke_access_token(
                &token.token_hash,
                "app",
                later + chrono::Duration::minutes(1)
            )
            .await
            .unwrap()
    );
    let revoked = t
        .store
        .find_access_token(&token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(later),
        "the first revocation time is kept"
    );
    assert!(!revoked.is_active(later));

    // The same digest cannot be stored twice.
    let err = t
        .store
        .insert_access_token(&token, now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn two_processes_on_one_database_agree_on_the_key_and_seed_once(backend: Backend) {
    let t = fresh(backend).await;
    let other = t.db.open().await;
    let a = NewKey::from(&SigningKey::from_pkcs8_pem(KEY_A).unwrap());
    let b = NewKey::from(&SigningKey::from_pkcs8_pem(KEY_B).unwrap());
    let (ka, kb) = tokio::join!(
        t.store.insert_active_key_if_none(&a, now()),
        other.insert_active_key_if_none(&b, now()),
    );
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(ka.kid, kb.kid, "both processes must sign with one key");
    assert_eq!(t.store.published_keys().await.unwrap().len(), 1);

    let seed = Seed {
        companies: vec![company("acme")],
        users: vec![user("acme", "alice", &[Role::Admin])],
        clients: vec![client("demo")],
    };
    let (sa, sb) = tokio::join!(
        t.store.seed_if_empty(&seed, now()),
        other.seed_if_empty(&seed, now()),
    );
    let seeded = [sa.unwrap(), sb.unwrap()];
    assert_eq!(
        seeded.iter().filter(|s| **s).count(),
        1,
        "exactly one process seeds: {seeded:?}"
    );
    assert_eq!(other.list_users(None).await.unwrap().len(), 1);
}

async fn a_change_made_through_one_handle_is_seen_through_another(backend: Backend) {
    // Rows written through one handle are read through another: nothing is cached in the
    // adapter, which is what lets many servers share one database.
    let t = fresh(backend).await;
    let other = t.db.open().await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    t.store
        .create_user(&user("acme", "alice", &[Role::Admin]), now())
        .await
        .unwrap();
    other
        .set_user_disabled(&"alice".parse().unwrap(), true, now())
        .await
        .unwrap();
    let seen = t
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap();
    assert!(seen.user.disabled);
}

async fn what_an_insert_returns_is_what_a_read_finds_to_the_microsecond(backend: Backend) {
    let t = fresh(backend).await;
    let at = now() + chrono::Duration::nanoseconds(123_456_789);
    let company = t.store.create_company(&company("acme"), at).await.unwrap();
    assert_eq!(t.store.list_companies().await.unwrap(), vec![company]);
    let alice = t
        .store
        .create_user(&user("acme", "alice", &[Role::Admin]), at)
        .await
        .unwrap();
    assert_eq!(
        alice.created_at,
        at.trunc_subsecs(6),
        "microseconds, on every backend"
    );
    assert_eq!(
        t.store.find_user_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    let disabled = t
        .store
        .set_user_disabled(&alice.username, true, at)
        .await
        .unwrap();
    assert_eq!(
        t.store.find_user_by_id(alice.id).await.unwrap(),
        Some(disabled)
    );
    let created = t.store.create_client(&client("demo"), at).await.unwrap();
    let found = t.store.find_client("demo").await.unwrap().unwrap();
    assert_eq!(
        (
            found.created_at,
            found.scopes,
            found.registration.redirect_uris
        ),
        (
            created.created_at,
            created.scopes,
            created.registration.redirect_uris
        )
    );
    let token = NewAccessToken {
        token_hash: tessera_core::secret::digest("tsr_x"),
        client_id: "demo".parse().unwrap(),
        user_id: Some(alice.id),
        subject: alice.id.to_string(),
        scope: ScopeSet::only(Scope::Basic),
        expires_at: at + chrono::Duration::seconds(60),
        family_id: None,
    };
    t.store.insert_access_token(&token, at).await.unwrap();
    let stored = t
        .store
        .find_access_token(&token.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.created_at, stored.expires_at),
        (at.trunc_subsecs(6), token.expires_at.trunc_subsecs(6))
    );
}

async fn a_name_no_database_can_hold_finds_nothing(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    t.store
        .create_user(&user("acme", "alice", &[Role::Admin]), now())
        .await
        .unwrap();
    t.store.create_client(&client("demo"), now()).await.unwrap();
    for raw in ["alice\0", "\0", "de\0mo"] {
        assert!(t.store.find_user_credentials(raw).await.unwrap().is_none());
        assert!(t.store.find_client(raw).await.unwrap().is_none());
    }
    assert!(t.store.find_client("demo").await.unwrap().is_some());
}

async fn processes_opening_a_new_database_together_migrate_it_once(backend: Backend) {
    let db = TestDatabase::new(backend);
    let url = db.url();
    let opened = tokio::join!(
        tessera_store::open(url),
        tessera_store::open(url),
        tessera_store::open(url),
    );
    let stores = [opened.0.unwrap(), opened.1.unwrap(), opened.2.unwrap()];
    stores[0]
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    for store in &stores {
        assert_eq!(store.list_companies().await.unwrap().len(), 1);
    }
}

/// acme, alice, the client `demo`, and a code for alice at `demo` with digest `code_hash`.
async fn with_a_code(backend: Backend, code_hash: &str) -> (TestStore, NewAuthorizationCode) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let alice = t
        .store
        .create_user(&user("acme", "alice", &[Role::Admin]), now())
        .await
        .unwrap();
    t.store.create_client(&client("demo"), now()).await.unwrap();
    let code = NewAuthorizationCode {
        code_hash: code_hash.into(),
        client_id: "demo".parse().unwrap(),
        user_id: alice.id,
        redirect_uri: "https://app.example/cb".into(),
        scope: "basic admin".parse().unwrap(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        expires_at: now() + chrono::Duration::seconds(60),
        nonce: None,
        auth_time: None,
    };
    t.store
        .insert_authorization_code(&code, now())
        .await
        .unwrap();
    (t, code)
}

async fn an_authorization_code_is_redeemed_once_and_a_replay_names_its_family(backend: Backend) {
    let (t, code) = with_a_code(backend, "code-digest").await;
    let first_family = uuid::Uuid::new_v4();
    let later = now() + chrono::Duration::seconds(5);
    let redeemed = t
        .store
        .redeem_authorization_code("code-digest", first_family, later)
        .await
        .unwrap();
    assert_eq!(
        redeemed,
        Redemption::First(RedeemedCode {
            client_id: code.client_id.clone(),
            user_id: code.user_id,
            redirect_uri: code.redirect_uri.clone(),
            scope: code.scope,
            code_challenge: code.code_challenge.clone(),
            created_at: now(),
            expires_at: code.expires_at,
            family_id: first_family,
            nonce: None,
            auth_time: None,
        })
    );
    // What the first redemption issued, and a token of another grant.
    let issued = |hash: &str, family_id| NewAccessToken {
        token_hash: hash.into(),
        client_id: "demo".parse().unwrap(),
        user_id: Some(code.user_id),
        subject: code.user_id.to_string(),
        scope: ScopeSet::only(Scope::Basic),
        expires_at: now() + chrono::Duration::minutes(15),
        family_id,
    };
    t.store
        .insert_access_token(&issued("from-code", Some(first_family)), later)
        .await
        .unwrap();
    t.store
        .insert_access_token(&issued("from-password", None), later)
        .await
        .unwrap();

    let replay = t
        .store
        .redeem_authorization_code("code-digest", uuid::Uuid::new_v4(), later)
        .await
        .unwrap();
    assert_eq!(
        replay,
        Redemption::Replay {
            family_id: first_family
        }
    );
    assert_eq!(
        t.store
            .revoke_family(first_family, later, None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        t.store
            .revoke_family(first_family, later, None)
            .await
            .unwrap(),
        0
    );
    let revoked = t
        .store
        .find_access_token("from-code")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    assert_eq!(revoked.family_id, Some(first_family));
    let other = t
        .store
        .find_access_token("from-password")
        .await
        .unwrap()
        .unwrap();
    assert!(other.is_active(later), "another grant's token stays valid");

    assert_eq!(
        t.store
            .redeem_authorization_code("no-such-digest", uuid::Uuid::new_v4(), later)
            .await
            .unwrap(),
        Redemption::Unknown
    );
}

async fn ten_concurrent_redemptions_of_one_code_have_exactly_one_winner(backend: Backend) {
    let (t, _) = with_a_code(backend, "raced").await;
    // Two handles, as two servers would hold, each with its own connections.
    let handles = [t.store.clone(), t.db.open().await];
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let family = uuid::Uuid::new_v4();
            let outcome = store
                .redeem_authorization_code("raced", family, now())
                .await
                .unwrap();
            (family, outcome)
        }));
    }
    let mut winners = Vec::new();
    let mut replays = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (family, Redemption::First(code)) => {
                assert_eq!(code.family_id, family);
                winners.push(family);
            }
            (_, Redemption::Replay { family_id }) => replays.push(family_id),
            (_, Redemption::Unknown) => panic!("the code exists"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    assert_eq!(replays.len(), 9);
    assert!(
        replays.iter().all(|f| *f == winners[0]),
        "every replay names the winner's family"
    );
}

/// A store with a code (see [`with_a_code`]) and the first refresh token of a family.
async fn with_a_refresh_token(backend: Backend) -> (TestStore, NewRefreshToken) {
    let (t, code) = with_a_code(backend, "code").await;
    let token = NewRefreshToken {
        token_hash: "r1".into(),
        family_id: uuid::Uuid::new_v4(),
        client_id: code.client_id,
        user_id: code.user_id,
        scope: code.scope,
        expires_at: now() + chrono::Duration::days(30),
        auth_time: None,
    };
    t.store.insert_refresh_token(&token, now()).await.unwrap();
    (t, token)
}

async fn a_refresh_token_rotates_once_and_its_reuse_names_the_family(backend: Backend) {
    let (t, first) = with_a_refresh_token(backend).await;
    let family = first.family_id;
    let later = now() + chrono::Duration::minutes(10);

    let Rotation::Rotated(spent) = t
        .store
        .rotate_refresh_token("r1", "r2", later)
        .await
        .unwrap()
    else {
        panic!("a live token rotates");
    };
    assert_eq!(
        (
            spent.family_id,
            spent.user_id,
            spent.scope,
            spent.created_at
        ),
        (family, first.user_id, first.scope, now())
    );
    let r1 = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!((r1.used_at, r1.revoked_at), (Some(later), None));
    let r2 = t.store.find_refresh_token("r2").await.unwrap().unwrap();
    assert_eq!(
        (
            r2.family_id,
            r2.scope,
            r2.created_at,
            r2.expires_at,
            r2.used_at
        ),
        (family, first.scope, later, first.expires_at, None),
        "the successor keeps the family, the grant and the absolute end"
    );
    assert!(matches!(
        t.store
            .rotate_refresh_token("r2", "r3", later)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));

    // r1 again: reuse. Nothing new is stored.
    assert_eq!(
        t.store
            .rotate_refresh_token("r1", "r4", later)
            .await
            .unwrap(),
        Rotation::Reused { family_id: family }
    );
    assert!(t.store.find_refresh_token("r4").await.unwrap().is_none());

    // Revoking the family reaches every refresh token and the opaque access tokens of it.
    t.store
        .insert_access_token(
            &NewAccessToken {
                token_hash: "access".into(),
                client_id: first.client_id.clone(),
                user_id: Some(first.user_id),
                subject: first.user_id.to_string(),
                scope: first.scope,
                expires_at: later + chrono::Duration::minutes(15),
                family_id: Some(family),
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!(t.store.revoke_family(family, later, None).await.unwrap(), 4);
    assert_eq!(
        t.store
            .rotate_refresh_token("r3", "r5", later)
            .await
            .unwrap(),
        Rotation::Revoked
    );
    let access = t.store.find_access_token("access").await.unwrap().unwrap();
    assert!(!access.is_active(later));
    assert_eq!(
        t.store
            .rotate_refresh_token("nope", "r6", later)
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

async fn ten_concurrent_refreshes_with_one_token_leave_at_most_one_live_successor(
    backend: Backend,
) {
    let (t, first) = with_a_refresh_token(backend).await;
    let handles = [t.store.clone(), t.db.open().await];
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let successor = format!("successor-{i}");
            let outcome = store
                .rotate_refresh_token("r1", &successor, now())
                .await
                .unwrap();
            (successor, outcome)
        }));
    }
    let mut rotated = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (successor, Rotation::Rotated(_)) => rotated.push(successor),
            (_, Rotation::Reused { family_id }) => assert_eq!(family_id, first.family_id),
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one refresh wins");
    let mut live = Vec::new();
    for i in 0..10 {
        if let Some(t) = t
            .store
            .find_refresh_token(&format!("successor-{i}"))
            .await
            .unwrap()
        {
            live.push(t.token_hash);
        }
    }
    assert_eq!(live, rotated, "only the winner's successor exists");
    // The losers saw reuse; revoking the family leaves nothing live.
    t.store
        .revoke_family(first.family_id, now(), None)
        .await
        .unwrap();
    let successor = t.store.find_refresh_token(&live[0]).await.unwrap().unwrap();
    assert!(successor.revoked_at.is_some());
}

async fn nothing_more_is_issued_from_a_revoked_family(backend: Backend) {
    let (t, first) = with_a_refresh_token(backend).await;
    let later = now() + chrono::Duration::seconds(5);
    let access = |hash: &str, family| NewAccessToken {
        token_hash: hash.into(),
        client_id: first.client_id.clone(),
        user_id: Some(first.user_id),
        subject: first.user_id.to_string(),
        scope: first.scope,
        expires_at: later + chrono::Duration::minutes(15),
        family_id: family,
    };
    t.store
        .revoke_family(first.family_id, later, None)
        .await
        .unwrap();

    // A request that redeemed or rotated before the revocation and issues after it gets
    // nothing live: both kinds of token are stored revoked.
    t.store
        .insert_access_token(&access("late-access", Some(first.family_id)), later)
        .await
        .unwrap();
    let late = t
        .store
        .find_access_token("late-access")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late.revoked_at, Some(later));
    assert!(!late.is_active(later));
    t.store
        .insert_refresh_token(
            &NewRefreshToken {
                token_hash: "late-refresh".into(),
                ..first.clone()
            },
            later + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    let late = t
        .store
        .find_refresh_token("late-refresh")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late.revoked_at, Some(later), "revoked when the family was");
    assert_eq!(
        t.store
            .rotate_refresh_token("late-refresh", "successor", later)
            .await
            .unwrap(),
        Rotation::Revoked
    );

    // Other families and tokens without one are untouched.
    t.store
        .insert_access_token(&access("other-family", Some(uuid::Uuid::new_v4())), later)
        .await
        .unwrap();
    t.store
        .insert_access_token(&access("no-family", None), later)
        .await
        .unwrap();
    assert!(
        t.store
            .find_access_token("no-family")
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_login_session_is_found_by_its_digest(backend: Backend) {
    let (t, first) = with_a_refresh_token(backend).await;
    let expires_at = now() + chrono::Duration::minutes(30);
    t.store
        .insert_login_session(
            &NewLoginSession {
                session_hash: "session".into(),
                user_id: first.user_id,
                expires_at,
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        t.store.find_login_session("session").await.unwrap(),
        Some(LoginSession {
            user_id: first.user_id,
            created_at: now(),
            expires_at,
        })
    );
    assert_eq!(t.store.find_login_session("other").await.unwrap(), None);
}

async fn purging_deletes_only_what_can_no_longer_be_used(backend: Backend) {
    let (t, first) = with_a_refresh_token(backend).await;
    let minutes = chrono::Duration::minutes;
    let millis = chrono::Duration::milliseconds;
    // The first purge runs at `at`, a whole second; some rows end half a second either side.
    let at = now() + minutes(60) + chrono::Duration::seconds(1);
    let access = |hash: &str, expires_at| NewAccessToken {
        token_hash: hash.into(),
        client_id: first.client_id.clone(),
        user_id: Some(first.user_id),
        subject: first.user_id.to_string(),
        scope: first.scope,
        expires_at,
        family_id: None,
    };
    for (hash, expires_at) in [("a-live", at + millis(500)), ("a-dead", at - millis(500))] {
        t.store
            .insert_access_token(&access(hash, expires_at), now())
            .await
            .unwrap();
    }
    for (hash, expires_at) in [
        ("s-live", now() + minutes(120)),
        ("s-dead", now() + minutes(30)),
    ] {
        t.store
            .insert_login_session(
                &NewLoginSession {
                    session_hash: hash.into(),
                    user_id: first.user_id,
                    expires_at,
                },
                now(),
            )
            .await
            .unwrap();
    }
    // A second family that ends in an hour, revoked after ten minutes.
    let old = NewRefreshToken {
        token_hash: "r-old".into(),
        family_id: uuid::Uuid::new_v4(),
        expires_at: now() + minutes(60),
        ..first.clone()
    };
    t.store.insert_refresh_token(&old, now()).await.unwrap();
    t.store
        .revoke_family(old.family_id, now() + minutes(10), None)
        .await
        .unwrap();

    assert_eq!(t.store.purge_expired(at).await.unwrap(), 3);
    assert!(t.store.find_access_token("a-dead").await.unwrap().is_none());
    assert!(t.store.find_access_token("a-live").await.unwrap().is_some());
    assert!(
        t.store
            .find_login_session("s-dead")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.store
            .find_login_session("s-live")
            .await
            .unwrap()
            .is_some()
    );
    assert!(t.store.find_refresh_token("r-old").await.unwrap().is_none());
    assert!(t.store.find_refresh_token("r1").await.unwrap().is_some());
    // The code expired long ago but is kept a day, to recognise a replay.
    assert!(matches!(
        t.store
            .redeem_authorization_code("code", uuid::Uuid::new_v4(), at)
            .await
            .unwrap(),
        Redemption::First(_)
    ));
    // The revoked family's record stays a day too: a late request still issues nothing
    // live from it.
    t.store
        .insert_access_token(
            &NewAccessToken {
                family_id: Some(old.family_id),
                ..access("a-late", at + minutes(15))
            },
            at,
        )
        .await
        .unwrap();
    let late = t.store.find_access_token("a-late").await.unwrap().unwrap();
    assert!(late.revoked_at.is_some());

    // Weeks later everything has ended: the rest goes, the family's record last.
    let much_later = now() + chrono::Duration::days(33);
    assert_eq!(t.store.purge_expired(much_later).await.unwrap(), 6);
    assert!(t.store.find_refresh_token("r1").await.unwrap().is_none());
    assert!(
        t.store
            .find_login_session("s-live")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.store
            .redeem_authorization_code("code", uuid::Uuid::new_v4(), much_later)
            .await
            .unwrap(),
        Redemption::Unknown
    );
    assert_eq!(t.store.purge_expired(much_later).await.unwrap(), 0);
}

on_each_backend!(
    purging_deletes_only_what_can_no_longer_be_used,
    nothing_more_is_issued_from_a_revoked_family,
    a_login_session_is_found_by_its_digest,
    a_refresh_token_rotates_once_and_its_reuse_names_the_family,
    ten_concurrent_refreshes_with_one_token_leave_at_most_one_live_successor,
    an_authorization_code_is_redeemed_once_and_a_replay_names_its_family,
    ten_concurrent_redemptions_of_one_code_have_exactly_one_winner,
    processes_opening_a_new_database_together_migrate_it_once,
    what_an_insert_returns_is_what_a_read_finds_to_the_microsecond,
    a_name_no_database_can_hold_finds_nothing,
    two_processes_on_one_database_agree_on_the_key_and_seed_once,
    a_change_made_through_one_handle_is_seen_through_another,
);

#[tokio::test]
async fn an_unreachable_server_is_reported_at_once_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let err = tessera_store::open("postgres://tessera:hunter2@127.0.0.1:1/tessera")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("cannot connect: ") && message.contains("refused"),
        "{message}"
    );
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn a_missing_postgres_database_is_named_by_the_server() {
    if !Backend::postgres_enabled() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres);
    let url = db.url().replace("tessera_test_", "tessera_missing_");
    let err = tessera_store::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    assert!(
        err.to_string().contains("does not exist"),
        "the server's own reason: {err}"
    );
}

#[tokio::test]
async fn while_postgres_is_away_calls_fail_as_unavailable_and_recover_without_reopening() {
    if !Backend::postgres_enabled() {
        return;
    }
    let (_db, proxy, store) = behind_proxy().await;
    store.create_company(&company("acme"), now()).await.unwrap();

    proxy.cut();
    let err = store.list_companies().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    proxy.restore();
    let companies = store.list_companies().await.unwrap();
    assert_eq!(companies[0].slug.as_str(), "acme");
    store.ping().await.unwrap();
}

fn opaque(client: &str, n: usize) -> (String, NewAccessToken) {
    let token = format!("tsr_batch_{client}_{n}");
    let record = NewAccessToken {
        token_hash: tessera_core::secret::digest(&token),
        client_id: client.parse().unwrap(),
        user_id: None,
        subject: client.into(),
        scope: "basic".parse().unwrap(),
        expires_at: now() + chrono::Duration::hours(1),
        family_id: None,
    };
    (token, record)
}

/// Group commit: 300 tokens inserted at once through the batcher are all stored, each
/// caller hears back only after its own token is committed, and a token naming a client
/// that does not exist fails alone, not the batch it travelled in.
async fn concurrent_opaque_tokens_share_commits_and_one_bad_token_fails_alone(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_client(&client("batch-client"), now())
        .await
        .unwrap();
    let batcher = tessera_store::TokenBatcher::spawn(t.store.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..300 {
        let batcher = batcher.clone();
        let store = t.store.clone();
        // Every 50th names a client that does not exist.
        let client = if n % 50 == 7 {
            "no-such-client"
        } else {
            "batch-client"
        };
        tasks.spawn(async move {
            let (token, record) = opaque(client, n);
            let result = batcher.insert(record, now()).await;
            // Committed by the time the caller is answered.
            let found = store
                .find_access_token(&tessera_core::secret::digest(&token))
                .await
                .unwrap();
            (client, result.is_ok(), found.is_some())
        });
    }
    let mut stored = 0;
    while let Some(done) = tasks.join_next().await {
        let (client, ok, found) = done.unwrap();
        if client == "batch-client" {
            assert!(ok && found, "a good token was lost with a bad one");
            stored += 1;
        } else {
            assert!(!ok && !found, "a token of an unknown client was stored");
        }
    }
    assert_eq!(stored, 294);
    // The batch path itself: all or nothing.
    let good = opaque("batch-client", 1000).1;
    let bad = opaque("no-such-client", 1001).1;
    assert!(
        t.store
            .insert_access_tokens(&[(good.clone(), now()), (bad, now())])
            .await
            .is_err()
    );
    assert!(
        t.store
            .find_access_token(&good.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    t.store
        .insert_access_tokens(&[(good.clone(), now())])
        .await
        .unwrap();
    let found = t
        .store
        .find_access_token(&good.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.client_id.as_str(), "batch-client");
    drop(t.db);
}

/// With the database away, a batch of opaque tokens fails at once, as unavailable, and
/// does not retry each token behind its own timeout; issuance works again once it is back.
#[tokio::test]
async fn while_postgres_is_away_a_batch_of_opaque_tokens_fails_together_and_fast() {
    if !Backend::postgres_enabled() {
        return;
    }
    let (_db, proxy, store) = behind_proxy().await;
    store
        .create_client(&client("batch-client"), now())
        .await
        .unwrap();
    let batcher = tessera_store::TokenBatcher::spawn(store.clone());
    batcher
        .insert(opaque("batch-client", 0).1, now())
        .await
        .unwrap();

    proxy.cut();
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=40 {
        let batcher = batcher.clone();
        tasks.spawn(async move { batcher.insert(opaque("batch-client", n).1, now()).await });
    }
    while let Some(done) = tasks.join_next().await {
        let err = done.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    // One pool timeout per batch (a few seconds), not one per token (40 of them).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    proxy.restore();
    batcher
        .insert(opaque("batch-client", 100).1, now())
        .await
        .unwrap();
}

/// A fresh PostgreSQL database, reached through a proxy a test can cut.
async fn behind_proxy() -> (TestDatabase, TcpProxy, Arc<dyn Store>) {
    let db = TestDatabase::new(Backend::Postgres);
    let proxy = TcpProxy::start(postgres_server_addr());
    let store = tessera_store::open(&db.url_via(proxy.addr()))
        .await
        .unwrap();
    (db, proxy, store)
}

/// Existing SQLite files hold ids as hyphenated text, times as RFC 3339 text in UTC at
/// microseconds (whose byte order the purge cutoffs rely on), lists as space-separated
/// words, booleans as integers and an erased private key as an empty blob: what the store
/// writes now must be byte for byte what it always wrote.
#[tokio::test]
async fn sqlite_writes_values_in_the_formats_existing_databases_hold() {
    use sqlx::{Connection, Row};

    let t = fresh(Backend::Sqlite).await;
    let at = now() + chrono::Duration::nanoseconds(123_456_789);
    let acme = t.store.create_company(&company("acme"), at).await.unwrap();
    let alice = t
        .store
        .create_user(&user("acme", "alice", &[Role::Admin, Role::User]), at)
        .await
        .unwrap();
    t.store.create_client(&client("web"), at).await.unwrap();
    let a = NewKey::from(&SigningKey::from_pkcs8_pem(KEY_A).unwrap());
    let b = NewKey::from(&SigningKey::from_pkcs8_pem(KEY_B).unwrap());
    t.store.insert_active_key_if_none(&a, at).await.unwrap();
    t.store
        .activate_key_now(&b, at, at + chrono::Duration::days(1))
        .await
        .unwrap();

    let mut conn = sqlx::SqliteConnection::connect(t.db.url()).await.unwrap();
    let row = sqlx::query("SELECT id, created_at FROM companies")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("id"), acme.id.to_string());
    assert_eq!(
        row.get::<String, _>("created_at"),
        "2026-11-27T12:00:00.123456+00:00"
    );
    let row = sqlx::query(
        "SELECT id, company_id, roles, typeof(disabled) AS kind, disabled, updated_at FROM users",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("id"), alice.id.to_string());
    assert_eq!(row.get::<String, _>("company_id"), acme.id.to_string());
    assert_eq!(row.get::<String, _>("roles"), "admin user");
    assert_eq!(row.get::<String, _>("kind"), "integer");
    assert_eq!(row.get::<i64, _>("disabled"), 0);
    assert_eq!(
        row.get::<String, _>("updated_at"),
        "2026-11-27T12:00:00.123456+00:00"
    );
    let row = sqlx::query("SELECT grant_types, scopes, redirect_uris FROM clients")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        row.get::<String, _>("grant_types"),
        "password client_credentials"
    );
    assert_eq!(
        row.get::<String, _>("scopes"),
        "basic admin".parse::<ScopeSet>().unwrap().to_string()
    );
    assert_eq!(
        row.get::<String, _>("redirect_uris"),
        r#"["https://app.example/cb"]"#
    );
    let row = sqlx::query(
        "SELECT typeof(private_key) AS kind, length(private_key) AS len, retired_at \
         FROM signing_keys WHERE state = 'retired'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("kind"), "blob");
    assert_eq!(row.get::<i64, _>("len"), 0);
    assert_eq!(
        row.get::<String, _>("retired_at"),
        "2026-11-27T12:00:00.123456+00:00"
    );
    conn.close().await.unwrap();
}

async fn an_opaque_token_comes_with_its_user_as_they_are_now(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .create_company(&company("acme"), now())
        .await
        .unwrap();
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::Admin]), now())
        .await
        .unwrap();
    t.store.create_client(&client("app"), now()).await.unwrap();
    let issue = |hash: &str, user_id: Option<uuid::Uuid>| NewAccessToken {
        token_hash: hash.into(),
        client_id: "app".parse().unwrap(),
        user_id,
        subject: user_id.map_or("app".to_owned(), |id| id.to_string()),
        scope: "basic admin".parse().unwrap(),
        expires_at: now() + chrono::Duration::minutes(15),
        family_id: None,
    };
    // Stored through the group-commit path (many rows in one statement) and alone.
    t.store
        .insert_access_tokens(&[
            (issue("bob-token", Some(bob.id)), now()),
            (issue("app-token", None), now()),
        ])
        .await
        .unwrap();

    let (token, found) = t
        .store
        .find_access_token_with_user("bob-token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        token,
        t.store
            .find_access_token("bob-token")
            .await
            .unwrap()
            .unwrap()
    );
    assert_eq!(token.revoked_at, None);
    assert_eq!(token.created_at, now());
    let found = found.expect("a user's token comes with its user");
    assert_eq!(
        found,
        t.store.find_user_by_id(bob.id).await.unwrap().unwrap()
    );
    assert_eq!(found.company.as_str(), "acme");
    assert!(!found.disabled);

    let (token, nobody) = t
        .store
        .find_access_token_with_user("app-token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.user_id, None);
    assert_eq!(nobody, None, "a client's own token speaks for no user");
    assert!(
        t.store
            .find_access_token_with_user("no-such-digest")
            .await
            .unwrap()
            .is_none()
    );

    // The user as they are now: disabled, then deleted.
    t.store
        .set_user_disabled(&"bob".parse().unwrap(), true, now())
        .await
        .unwrap();
    let (_, disabled) = t
        .store
        .find_access_token_with_user("bob-token")
        .await
        .unwrap()
        .unwrap();
    assert!(disabled.unwrap().disabled);
    t.store
        .delete_user(&"bob".parse().unwrap(), now())
        .await
        .unwrap();
    match t
        .store
        .find_access_token_with_user("bob-token")
        .await
        .unwrap()
    {
        None => {}
        Some((token, user)) => {
            assert_eq!(token.user_id, Some(bob.id));
            assert_eq!(user, None, "a deleted user is gone");
        }
    }
}

/// A client read once is answered from memory; a change made through the same store
/// shows at once, and one made through another store on the same database (another
/// server, the `tessera client` commands) within `CLIENT_CHECK_EVERY`, well inside the
/// second the contract promises.
async fn clients_are_kept_in_memory_and_changes_reach_every_store(backend: Backend) {
    let t = fresh(backend).await;
    let other = t.db.open().await;
    t.store.create_client(&client("app"), now()).await.unwrap();
    let first = t.store.find_client("app").await.unwrap().unwrap();
    assert_eq!(first.secret_hash, client("app").secret_hash);

    // Through the same store: at once.
    t.store
        .rotate_client_secret("app", "digest-2", false, now())
        .await
        .unwrap();
    assert_eq!(
        t.store
            .find_client("app")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .as_deref(),
        Some("digest-2")
    );

    // Through another store: within the bound. `other` reads the client first, so that
    // the change below must reach a store that has it in memory.
    assert!(other.find_client("app").await.unwrap().is_some());
    let changed = std::time::Instant::now();
    t.store
        .rotate_client_secret("app", "digest-3", false, now())
        .await
        .unwrap();
    let seen = loop {
        let secret = other
            .find_client("app")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .clone();
        if secret.as_deref() == Some("digest-3") {
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(1),
            "a rotated secret was still served from memory after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        seen <= tessera_store::CLIENT_CHECK_EVERY + std::time::Duration::from_millis(200),
        "seen after {seen:?}"
    );

    // Deleted elsewhere: gone within the bound too, and with the rate limits' read.
    assert!(other.delete_client("app", now()).await.unwrap());
    assert!(
        other.find_client("app").await.unwrap().is_none(),
        "at once where deleted"
    );
    let deleted = std::time::Instant::now();
    loop {
        let (found, limits) = t
            .store
            .find_client_with_rate_limits("app", ["k1", "k2"])
            .await
            .unwrap();
        assert_eq!(limits, [None, None]);
        if found.is_none() {
            break;
        }
        assert!(
            deleted.elapsed() < std::time::Duration::from_secs(1),
            "a deleted client was still served from memory after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // And a client registered elsewhere is found at once (nothing is kept for an
    // unknown id).
    other.create_client(&client("new"), now()).await.unwrap();
    assert!(t.store.find_client("new").await.unwrap().is_some());
}
