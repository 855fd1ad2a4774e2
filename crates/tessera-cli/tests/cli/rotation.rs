//! Key rotation seen from outside: the authorization server rotates on schedule while a
//! resource server, through the guard and its own JWKS cache, keeps accepting every valid
//! token. Both servers read one pinned clock that the test moves through hours of
//! schedule in seconds.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tessera_authz::keys::{KeyManager, KeySchedule};
use tessera_core::{
    Clock, GrantType, Role, Scope, ScopeSet, SigningAlgorithm, TokenFormat, password,
};
use tessera_store::testing::{Backend, TestDatabase};
use tessera_store::{NewClient, NewCompany, NewUser, Store, on_each_backend};

on_each_backend!(
    continuous_traffic_across_two_scheduled_rotations_never_sees_a_valid_token_refused,
    every_algorithm_signs_tokens_the_resource_server_accepts,
);

const PASSWORD: &str = "correct horse battery staple";
const CLIENT: &str = "rotation-app";
const CLIENT_SECRET: &str = "rotation-secret";
const MINUTE: Duration = Duration::from_secs(60);

/// The two servers of one test, sharing a database and a clock.
struct Stack {
    _db: TestDatabase,
    store: Arc<dyn Store>,
    clock: Clock,
    keys: Arc<KeyManager>,
    authz: String,
    api: String,
    api_jwks: Arc<tessera_guard::JwksCache>,
    http: reqwest::Client,
    handles: Vec<actix_web::dev::ServerHandle>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for handle in &self.handles {
            drop(handle.stop(false));
        }
    }
}

/// A company `acme` with admin `alice`, and a confidential JWT client that may use the
/// password and refresh grants.
async fn seeded(backend: Backend) -> (TestDatabase, Arc<dyn Store>) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    let now = Utc::now();
    store
        .create_company(
            &NewCompany {
                slug: "acme".parse().unwrap(),
                name: "Acme".into(),
            },
            now,
        )
        .await
        .unwrap();
    store
        .create_user(
            &NewUser {
                company: "acme".parse().unwrap(),
                username: "alice".parse().unwrap(),
                password_hash: password::hash(PASSWORD).unwrap(),
                roles: vec![Role::Admin],
                name: None,
                email: None,
            },
            now,
        )
        .await
        .unwrap();
    let mut scopes = ScopeSet::only(Scope::Basic);
    scopes.insert(Scope::Admin);
    store
        .create_client(
            &NewClient {
                client_id: CLIENT.parse().unwrap(),
                name: "Rotation".into(),
                secret_hash: Some(tessera_core::secret::digest(CLIENT_SECRET)),
                grant_types: vec![GrantType::Password, GrantType::RefreshToken],
                scopes,
                redirect_uris: vec![],
                access_token_format: TokenFormat::Jwt,
                access_token_ttl_secs: None,
                refresh_token_ttl_secs: None,
                post_logout_redirect_uris: vec![],
            },
            now,
        )
        .await
        .unwrap();
    (db, store)
}

async fn stack(backend: Backend, schedule: KeySchedule, token_ttl: Duration) -> Stack {
    let (db, store) = seeded(backend).await;
    let clock = Clock::pinned_now();
    let settings = tessera_authz::Settings {
        addr: "127.0.0.1:0".into(),
        workers: Some(1),
        access_token_ttl: token_ttl,
        keys: schedule,
        clock: clock.clone(),
        ..Default::default()
    };
    let authz = tessera_authz::Application::build(settings, store.clone())
        .await
        .unwrap();
    let authz_url = format!("http://{}", authz.addr());
    let keys = authz.keys().clone();
    let mut handles = vec![authz.handle()];
    let issuer = authz.issuer().to_owned();
    tokio::spawn(authz.run_until_stopped());

    let mut settings = tessera_resource::Settings::new(&issuer);
    settings.addr = "127.0.0.1:0".into();
    settings.workers = Some(1);
    settings.jwks_url = Some(format!("{authz_url}/.well-known/jwks.json"));
    settings.clock = clock.clone();
    let api = tessera_resource::Application::build(settings, store.clone())
        .await
        .unwrap();
    api.prefetch_keys().await;
    let api_url = format!("http://{}", api.addr());
    let api_jwks = api.jwks().clone();
    handles.push(api.handle());
    tokio::spawn(api.run_until_stopped());
    Stack {
        _db: db,
        store,
        clock,
        keys,
        authz: authz_url,
        api: api_url,
        api_jwks,
        http: reqwest::Client::new(),
        handles,
    }
}

impl Stack {
    async fn token_request(&self, form: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.authz))
            .basic_auth(CLIENT, Some(CLIENT_SECRET))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }

    /// Signs alice in: an admin access token and a refresh token.
    async fn sign_in(&self) -> (String, String) {
        let body = self
            .token_request(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "admin"),
            ])
            .await;
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A fresh access token by refreshing; returns it and the next refresh token.
    async fn refresh(&self, refresh_token: &str) -> (String, String) {
        let body = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await;
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// `GET /companies/acme/users` with `token`: the status and `WWW-Authenticate`.
    async fn call_api(&self, token: &str) -> (u16, Option<String>) {
        let response = self
            .http
            .get(format!("{}/companies/acme/users", self.api))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), challenge)
    }

    /// What the authorization server's background loop does every few seconds, done now.
    async fn tick(&self) {
        self.keys.tick().await.unwrap();
    }
}

/// The `kid` and `exp` of a JWT, read without verifying.
fn kid_and_exp(token: &str) -> (String, i64) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    (header.kid.unwrap(), claims["exp"].as_i64().unwrap())
}

async fn continuous_traffic_across_two_scheduled_rotations_never_sees_a_valid_token_refused(
    backend: Backend,
) {
    // A rotation every hour, keys published 10 minutes ahead and kept 20 minutes after
    // they stop signing; tokens live 10 minutes.
    let schedule = KeySchedule {
        algorithm: SigningAlgorithm::ES256,
        rotation_period: 60 * MINUTE,
        publish_ahead: 10 * MINUTE,
        retire_after: 20 * MINUTE,
    };
    let s = stack(backend, schedule, 10 * MINUTE).await;
    let (first, mut refresh_token) = s.sign_in().await;
    let mut live: Vec<(String, String, i64)> = Vec::new();
    let (kid, exp) = kid_and_exp(&first);
    live.push((first, kid, exp));

    let mut kids_seen: Vec<String> = Vec::new();
    let mut calls = 0;
    // Two and a half rotation periods, 37 seconds at a time (so that steps do not line up
    // with the JWKS max-age); every step issues a token and presents every token that has
    // not expired.
    for _ in 0..250 {
        s.clock.advance(Duration::from_secs(37));
        s.tick().await;
        let (token, next_refresh) = s.refresh(&refresh_token).await;
        refresh_token = next_refresh;
        let (kid, exp) = kid_and_exp(&token);
        if kids_seen.last() != Some(&kid) {
            kids_seen.push(kid.clone());
        }
        live.push((token, kid, exp));
        let now = s.clock.now_secs();
        live.retain(|(_, _, exp)| *exp > now);
        for (token, kid, exp) in &live {
            let (status, challenge) = s.call_api(token).await;
            calls += 1;
            assert_eq!(
                status,
                200,
                "a valid token was refused: kid {kid}, {} s before expiry, challenge {challenge:?}",
                exp - now
            );
        }
    }
    assert!(calls > 2_000, "only {calls} calls were made");
    assert!(
        kids_seen.len() >= 3,
        "two rotations must have happened, signing keys seen: {kids_seen:?}"
    );
    let stats = s.api_jwks.stats();
    assert_eq!(stats.failures, 0);
    assert_eq!(
        stats.unknown_kid, 0,
        "every key was in the guard's cache before it signed: no token forced a fetch"
    );
    assert!(
        stats.not_modified > 0,
        "the guard revalidates an unchanged JWKS with If-None-Match"
    );

    // A key taken out of the JWKS takes its tokens with it: rotate at once, withdraw the
    // previous key, and once the guard's copy is stale its tokens are refused.
    let (old_token, _) = s.refresh(&refresh_token).await;
    let (old_kid, _) = kid_and_exp(&old_token);
    let urgent = tessera_authz::keys::generate(SigningAlgorithm::EdDSA)
        .await
        .unwrap();
    s.store
        .activate_key_now(
            &tessera_authz::keys::to_stored(&urgent, None).unwrap(),
            s.clock.now_utc(),
            s.clock.now_utc() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert!(
        s.store
            .remove_key(&old_kid, s.clock.now_utc())
            .await
            .unwrap()
    );
    s.tick().await;
    let (new_token, _) = s.sign_in().await;
    assert_eq!(kid_and_exp(&new_token).0, urgent.kid());
    // Past any max-age the JWKS was served with, within the old token's lifetime.
    s.clock.advance(Duration::from_secs(301));
    // The first request after the cache went stale may still be served from it while it
    // refreshes in the background; the refresh then lands.
    let _ = s.call_api(&old_token).await;
    let mut refused = None;
    for _ in 0..50 {
        let (status, challenge) = s.call_api(&old_token).await;
        if status == 401 {
            refused = challenge;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let challenge = refused.expect("a token of a removed key must be refused");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(s.call_api(&new_token).await.0, 200);
}

async fn every_algorithm_signs_tokens_the_resource_server_accepts(backend: Backend) {
    for algorithm in SigningAlgorithm::ALL {
        let schedule = KeySchedule {
            algorithm,
            ..KeySchedule::default()
        };
        let s = stack(backend, schedule, 5 * MINUTE).await;
        let (token, _) = s.sign_in().await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), algorithm.as_str());
        let (status, jwks) =
            crate::get_json(&format!("{}/.well-known/jwks.json", s.authz), None).await;
        assert_eq!(status, 200);
        assert_eq!(jwks["keys"][0]["alg"], algorithm.as_str());
        assert_eq!(s.call_api(&token).await.0, 200, "{algorithm}");
        // The guard takes the algorithm from the key: the same token relabelled with
        // another algorithm is refused.
        let other = if algorithm == SigningAlgorithm::RS256 {
            "PS256"
        } else {
            "RS256"
        };
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[0] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(
                r#"{{"alg":"{other}","typ":"at+jwt","kid":"{}"}}"#,
                header.kid.unwrap()
            ),
        );
        let (status, challenge) = s.call_api(&parts.join(".")).await;
        assert_eq!(status, 401, "{algorithm}");
        assert!(challenge.unwrap().contains("error=\"invalid_token\""));
        assert_eq!(s.call_api(&token).await.0, 200, "{algorithm}");
    }
}
