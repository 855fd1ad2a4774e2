//! Signing-key rotation: the lifecycle on a pinned clock, JWKS caching headers, refused
//! schedules, sealed private keys and several servers on one database.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tessera_authz::keys::KeySchedule;
use tessera_core::{Clock, MasterKey, SigningAlgorithm};
use tessera_store::KeyState;

use crate::helpers::*;

on_each_backend!(
    the_jwks_has_an_etag_and_answers_304_to_it,
    a_key_is_published_then_signs_then_retires_then_leaves_on_schedule,
    the_jwks_max_age_never_reaches_past_the_next_activation,
    schedules_that_could_show_a_token_before_its_key_are_refused,
    private_keys_are_sealed_under_the_master_key_and_refused_without_it,
    two_servers_on_one_database_agree_on_the_signing_key,
    an_instance_that_cannot_load_the_keys_reports_unready_and_recovers,
    a_key_activated_elsewhere_is_known_at_once_to_introspection_revocation_and_the_jwks,
);

const MINUTE: Duration = Duration::from_secs(60);

/// Hourly rotation, keys published 10 minutes ahead and kept 20 minutes after retiring.
fn hourly() -> KeySchedule {
    KeySchedule {
        algorithm: SigningAlgorithm::ES256,
        rotation_period: 60 * MINUTE,
        publish_ahead: 10 * MINUTE,
        retire_after: 20 * MINUTE,
    }
}

/// An app on a clock pinned at a whole second, with the [`hourly`] schedule and 5-minute
/// tokens, on a database whose first key it creates itself (at the pinned time).
async fn pinned_app(backend: Backend) -> (TestApp, Clock, TestDatabase) {
    let clock = Clock::pinned(Clock::system().now_secs() * 1000);
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    store
        .seed_if_empty(&seed(), chrono::Utc::now())
        .await
        .unwrap();
    let app = start(store, pinned(&clock)).await;
    (app, clock, db)
}

fn pinned(clock: &Clock) -> impl FnOnce(&mut tessera_authz::Settings) {
    let clock = clock.clone();
    move |s| {
        s.clock = clock;
        s.keys = hourly();
        s.access_token_ttl = 5 * MINUTE;
    }
}

impl TestApp {
    /// A client_credentials token; returns its `kid`.
    async fn signing_kid_seen(&self) -> String {
        let body = assert_token(
            self.token(
                Auth::Basic("machine", APP_SECRET),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
        let token = body["access_token"].as_str().unwrap();
        // Checked independently, against what the JWKS publishes right now.
        let header = jsonwebtoken::decode_header(token).unwrap();
        let kid = header.kid.unwrap();
        assert!(
            self.jwks().await.find(&kid).is_some(),
            "a token was signed with unpublished key {kid}"
        );
        kid
    }

    async fn published(&self) -> Vec<(String, KeyState)> {
        self.store
            .published_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.state))
            .collect()
    }

    async fn jwks_kids(&self) -> Vec<String> {
        self.jwks()
            .await
            .keys
            .into_iter()
            .filter_map(|k| k.common.key_id)
            .collect()
    }

    async fn max_age(&self) -> String {
        let response = self.get("/.well-known/jwks.json").await;
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned()
    }
}

async fn the_jwks_has_an_etag_and_answers_304_to_it(backend: Backend) {
    let (app, clock, _db) = pinned_app(backend).await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status().as_u16(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "{etag}"
    );
    let body = response.bytes().await.unwrap();

    let conditional = |value: String| {
        let http = app.http.clone();
        let url = format!("{}/.well-known/jwks.json", app.address);
        async move {
            http.get(url)
                .header("If-None-Match", value)
                .send()
                .await
                .unwrap()
        }
    };
    for matching in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let response = conditional(matching.clone()).await;
        assert_eq!(response.status().as_u16(), 304, "{matching}");
        assert_eq!(response.headers()["etag"], etag.as_str());
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let response = conditional("\"stale\"".into()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap(), body);

    // Publishing the next key changes the tag: the old one gets the new document.
    clock.advance(50 * MINUTE);
    app.keys.tick().await.unwrap();
    let response = conditional(etag.clone()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_ne!(response.headers()["etag"], etag.as_str());
    let jwks: Value = response.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

async fn a_key_is_published_then_signs_then_retires_then_leaves_on_schedule(backend: Backend) {
    let (app, clock, _db) = pinned_app(backend).await;
    let first = app.kid.clone();
    assert_eq!(app.signing_kid_seen().await, first);
    assert_eq!(app.published().await, [(first.clone(), KeyState::Active)]);

    // Ten minutes before the hour is up, the next key is published but does not sign.
    clock.advance(50 * MINUTE - Duration::from_secs(1));
    app.keys.tick().await.unwrap();
    assert_eq!(
        app.published().await.len(),
        1,
        "published a second too early"
    );
    clock.advance(Duration::from_secs(1));
    app.keys.tick().await.unwrap();
    let keys = app.store.published_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let next = keys.iter().find(|k| k.state == KeyState::Next).unwrap();
    let second = next.kid.clone();
    assert_eq!(next.algorithm, SigningAlgorithm::ES256);
    let activated = keys[0].activated_at.unwrap();
    assert_eq!(
        next.activate_at,
        Some(activated + chrono::Duration::minutes(60))
    );
    assert_eq!(app.jwks_kids().await, [first.clone(), second.clone()]);
    assert_eq!(app.signing_kid_seen().await, first);

    // At the activation time the new key signs, even before the store records it.
    clock.advance(10 * MINUTE - Duration::from_millis(1));
    assert_eq!(app.signing_kid_seen().await, first);
    clock.advance(Duration::from_millis(1));
    assert_eq!(app.signing_kid_seen().await, second);
    app.keys.tick().await.unwrap();
    let keys = app.store.published_keys().await.unwrap();
    let old = keys.iter().find(|k| k.kid == first).unwrap();
    assert_eq!(old.state, KeyState::Retired);
    assert_eq!(old.retired_at, next.activate_at);
    assert!(
        old.private_key.is_empty(),
        "a retired key keeps no private half"
    );
    assert_eq!(
        keys.iter().find(|k| k.kid == second).unwrap().state,
        KeyState::Active
    );
    // Retired, the old key is still published: its tokens are still valid.
    assert_eq!(app.jwks_kids().await, [first.clone(), second.clone()]);

    // Twenty minutes after retiring, it leaves the JWKS.
    clock.advance(20 * MINUTE - Duration::from_secs(1));
    app.keys.tick().await.unwrap();
    assert_eq!(app.jwks_kids().await.len(), 2);
    clock.advance(Duration::from_secs(1));
    app.keys.tick().await.unwrap();
    assert_eq!(app.jwks_kids().await, std::slice::from_ref(&second));
    assert_eq!(app.published().await, [(second.clone(), KeyState::Active)]);
    assert_eq!(app.signing_kid_seen().await, second);
}

async fn the_jwks_max_age_never_reaches_past_the_next_activation(backend: Backend) {
    let (app, clock, _db) = pinned_app(backend).await;
    assert_eq!(app.max_age().await, "public, max-age=300");
    // The next key is due in ten minutes: still the full five.
    clock.advance(50 * MINUTE);
    app.keys.tick().await.unwrap();
    assert_eq!(app.max_age().await, "public, max-age=300");
    // 100 seconds before the activation, a cache may keep the keys 100 seconds.
    clock.advance(10 * MINUTE - Duration::from_secs(100));
    assert_eq!(app.max_age().await, "public, max-age=100");
    clock.advance(Duration::from_secs(99));
    assert_eq!(app.max_age().await, "public, max-age=1");
    // From the activation on, the next activation is an hour away.
    clock.advance(Duration::from_secs(1));
    assert_eq!(app.max_age().await, "public, max-age=300");
    app.keys.tick().await.unwrap();
    assert_eq!(app.max_age().await, "public, max-age=300");
    // Near the end of that hour, with no key published yet, no key can activate before
    // the publish-ahead time (10 minutes) has passed: the full five again.
    clock.advance(60 * MINUTE - Duration::from_secs(42));
    assert_eq!(app.max_age().await, "public, max-age=300");
    // Once one is published, the bound is its activation.
    app.keys.tick().await.unwrap();
    assert_eq!(
        app.published().await.len(),
        2,
        "the old key left, the next arrived"
    );
    clock.advance(10 * MINUTE - Duration::from_secs(42));
    assert_eq!(app.max_age().await, "public, max-age=42");
}

async fn schedules_that_could_show_a_token_before_its_key_are_refused(backend: Backend) {
    let cases: [(KeySchedule, Duration, &str); 5] = [
        (
            KeySchedule {
                publish_ahead: Duration::from_secs(300),
                ..KeySchedule::default()
            },
            15 * MINUTE,
            "the key publish-ahead time (5m) must be at least 7m10s: the JWKS max-age (5m) \
             plus the key refresh interval (10s) plus twice the clock leeway (1m), or a \
             resource server could see a token before its key",
        ),
        (
            KeySchedule {
                rotation_period: Duration::from_secs(86_400),
                ..KeySchedule::default()
            },
            15 * MINUTE,
            "the key rotation period (1d) must be longer than the publish-ahead time (1d)",
        ),
        (
            KeySchedule {
                retire_after: 15 * MINUTE,
                ..KeySchedule::default()
            },
            15 * MINUTE,
            "the key retire time (15m) must be at least 17m40s: the access-token lifetime \
             (15m) plus the key refresh interval (10s), twice the clock leeway (1m) and the \
             verifiers' expiry leeway (30s), or tokens would outlive their key",
        ),
        (
            KeySchedule {
                retire_after: 2 * 3600 * Duration::from_secs(1),
                ..KeySchedule::default()
            },
            3 * 3600 * Duration::from_secs(1),
            "the key retire time (2h) must be at least 3h2m40s: the access-token lifetime \
             (3h) plus the key refresh interval (10s), twice the clock leeway (1m) and the \
             verifiers' expiry leeway (30s), or tokens would outlive their key",
        ),
        (
            KeySchedule {
                rotation_period: 4000 * 86_400 * Duration::from_secs(1),
                ..KeySchedule::default()
            },
            15 * MINUTE,
            "the key rotation period (4000d) may be at most 3650d",
        ),
    ];
    let (_db, store) = seeded_store(backend).await;
    for (schedule, ttl, message) in cases {
        let settings = tessera_authz::Settings {
            addr: "127.0.0.1:0".into(),
            keys: schedule,
            access_token_ttl: ttl,
            ..Default::default()
        };
        let err = tessera_authz::Application::build(settings, store.clone())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    // Nothing was changed: the fixture key is the only one.
    assert_eq!(store.published_keys().await.unwrap().len(), 1);
}

async fn private_keys_are_sealed_under_the_master_key_and_refused_without_it(backend: Backend) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    store
        .seed_if_empty(&seed(), chrono::Utc::now())
        .await
        .unwrap();
    let (master, encoded) = MasterKey::generate().unwrap();
    let master = Arc::new(master);
    let with = |master: Option<Arc<MasterKey>>| {
        move |s: &mut tessera_authz::Settings| {
            s.master_key = master;
            s.keys.algorithm = SigningAlgorithm::EdDSA;
        }
    };
    let app = start(store.clone(), with(Some(master.clone()))).await;
    let kid = app.signing_kid_seen().await;
    let stored = store.active_key().await.unwrap().unwrap();
    assert_eq!(stored.kid, kid);
    assert!(tessera_core::seal::is_sealed(&stored.private_key));
    drop(app);

    // The same master key opens it after a restart. Each restart reopens the store, as a
    // new process does: the stopped server's runtime took its pooled connections with it.
    let app = start(db.open().await, with(Some(master.clone()))).await;
    assert_eq!(app.signing_kid_seen().await, kid);
    drop(app);
    let store = db.open().await;

    // Without it, or with another, the server refuses to start and says why.
    for (master, message) in [
        (
            None,
            format!(
                "the private key of {kid} is encrypted: set TESSERA_MASTER_KEY to the master \
                 key it was stored under"
            ),
        ),
        (
            Some(Arc::new(MasterKey::generate().unwrap().0)),
            format!(
                "the sealed private key of kid \"{kid}\" does not open: wrong master key or damaged data"
            ),
        ),
    ] {
        let mut settings = tessera_authz::Settings {
            addr: "127.0.0.1:0".into(),
            ..Default::default()
        };
        with(master)(&mut settings);
        let err = tessera_authz::Application::build(settings, store.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&message), "{err}");
        assert!(!err.contains(&encoded), "{err}");
    }
}

async fn two_servers_on_one_database_agree_on_the_signing_key(backend: Backend) {
    let (one, clock, db) = pinned_app(backend).await;
    let two = start(db.open().await, pinned(&clock)).await;
    assert_eq!(one.kid, two.kid);

    for _ in 0..2 {
        // Both prepare the next rotation at once: one next key results.
        clock.advance(50 * MINUTE);
        let (a, b) = tokio::join!(one.keys.tick(), two.keys.tick());
        a.unwrap();
        b.unwrap();
        let keys = one.published().await;
        assert_eq!(
            keys.iter().filter(|(_, s)| *s == KeyState::Next).count(),
            1,
            "{keys:?}"
        );
        assert_eq!(one.jwks().await, two.jwks().await);
        let before = one.signing_kid_seen().await;
        assert_eq!(two.signing_kid_seen().await, before);

        // At the activation both switch, each by itself, and the store follows once.
        clock.advance(10 * MINUTE);
        let after = one.signing_kid_seen().await;
        assert_ne!(after, before);
        assert_eq!(two.signing_kid_seen().await, after);
        let (a, b) = tokio::join!(one.keys.tick(), two.keys.tick());
        a.unwrap();
        b.unwrap();
        let active: Vec<_> = one
            .published()
            .await
            .into_iter()
            .filter(|(_, s)| *s == KeyState::Active)
            .collect();
        assert_eq!(active, [(after.clone(), KeyState::Active)]);
        assert_eq!(two.signing_kid_seen().await, after);
        assert_eq!(one.jwks().await, two.jwks().await);
    }
}

async fn an_instance_that_cannot_load_the_keys_reports_unready_and_recovers(backend: Backend) {
    let (master, _) = MasterKey::generate().unwrap();
    let clock = Clock::pinned(Clock::system().now_secs() * 1000);
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    store
        .seed_if_empty(&seed(), chrono::Utc::now())
        .await
        .unwrap();
    let app = start(store.clone(), |s| {
        pinned(&clock)(s);
        s.master_key = Some(Arc::new(master));
    })
    .await;
    let kid = app.signing_kid_seen().await;
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);

    // Someone publishes a next key sealed under another master key.
    let (other, _) = MasterKey::generate().unwrap();
    let foreign = tessera_authz::keys::generate(SigningAlgorithm::ES256)
        .await
        .unwrap();
    let now = clock.now_utc();
    store
        .insert_next_key_if_none(
            &tessera_authz::keys::to_stored(&foreign, Some(&other)).unwrap(),
            now + chrono::Duration::minutes(30),
            now,
        )
        .await
        .unwrap();
    let err = app.keys.tick().await.unwrap_err().to_string();
    assert!(err.contains("wrong master key or damaged data"), "{err}");
    let response = app.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "10");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "unavailable", "database": "ok", "keys": "stale"})
    );
    // It keeps signing with the key it has.
    assert_eq!(app.signing_kid_seen().await, kid);

    // Once the foreign key is withdrawn, the next tick recovers.
    assert!(
        store
            .remove_key(foreign.kid(), now + chrono::Duration::minutes(1))
            .await
            .unwrap()
    );
    app.keys.tick().await.unwrap();
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    assert_eq!(app.signing_kid_seen().await, kid);
}

/// `tessera keys rotate --now` (or another instance) activates a key: an instance that has
/// not ticked since must still introspect and revoke tokens signed with it, and publish it
/// in its JWKS within a second, or a resource server that fetches the JWKS there refuses
/// good tokens until its cooldown ends (the reliability soak found both).
async fn a_key_activated_elsewhere_is_known_at_once_to_introspection_revocation_and_the_jwks(
    backend: Backend,
) {
    let first = spawn_app(backend).await;
    let store = first.store.clone();
    let new_key = tessera_core::SigningKey::generate(SigningAlgorithm::ES256).unwrap();
    let now = chrono::Utc::now();
    store
        .activate_key_now(
            &tessera_store::NewKey::from(&new_key),
            now,
            now + chrono::Duration::hours(2),
        )
        .await
        .unwrap();
    // A second instance, started now, signs with the new key; the first has not ticked.
    let issuer = first.issuer.clone();
    let second = start(store.clone(), |s| s.issuer = Some(issuer)).await;
    assert_eq!(second.kid, new_key.kid());
    assert_ne!(first.kid, new_key.kid());
    async fn token(app: &TestApp) -> reqwest::Response {
        app.token(
            Auth::Basic("machine", APP_SECRET),
            &[("grant_type", "client_credentials")],
        )
        .await
    }
    let body = assert_token(token(&second).await).await;
    let signed_elsewhere = body["access_token"].as_str().unwrap().to_owned();

    // Introspection at the first instance knows the key.
    assert_eq!(first.introspect(&signed_elsewhere).await["active"], true);
    // Its JWKS publishes it (within a second of the activation).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let jwks = first.jwks().await;
    assert!(
        jwks.find(new_key.kid()).is_some(),
        "the new key is published"
    );
    assert!(
        jwks.find(&first.kid).is_some(),
        "the old one still verifies its tokens"
    );
    // And RFC 7009 revocation there reaches the token: inactive afterwards.
    let revoked = first
        .post_form(
            "/oauth/revoke",
            Auth::Basic("machine", APP_SECRET),
            &[("token", &signed_elsewhere)],
        )
        .await;
    assert_eq!(revoked.status().as_u16(), 200);
    assert_eq!(
        second.introspect(&signed_elsewhere).await,
        serde_json::json!({"active": false})
    );
    // A token the first instance signs is still good.
    let body = assert_token(token(&first).await).await;
    assert_eq!(
        first
            .introspect(body["access_token"].as_str().unwrap())
            .await["active"],
        true
    );
}

/// After a database outage made the keys stale (a tick failed), the instance is ready
/// again as soon as the database is back, not at its next tick up to 10 s later: the
/// reliability soak saw both instances out of the balancer that long after a cut.
#[tokio::test]
async fn an_instance_whose_keys_went_stale_in_an_outage_is_ready_once_the_database_is_back() {
    if !Backend::postgres_enabled() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres);
    let proxy =
        tessera_store::testing::TcpProxy::start(tessera_store::testing::postgres_server_addr());
    let store = tessera_store::open(&db.url_via(proxy.addr()))
        .await
        .unwrap();
    store
        .seed_if_empty(&seed(), chrono::Utc::now())
        .await
        .unwrap();
    let app = start(store, |_| {}).await;
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);

    proxy.cut();
    assert!(app.keys.tick().await.is_err());
    assert_eq!(app.get("/healthz").await.status().as_u16(), 503);
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app.get("/healthz").await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "ready without waiting for a tick"
    );
    // And it signs as before.
    assert_token(
        app.token(
            Auth::Basic("machine", APP_SECRET),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
}
