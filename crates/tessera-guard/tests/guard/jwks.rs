use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_core::{AccessTokenClaims, Role, SigningKey};
use tessera_guard::testing::TestIssuer;
use tessera_guard::{
    Admin, Authenticated, Guard, JwksCache, JwksConfig, JwksSource, Scoped, ValidationConfig,
    Validator,
};

pub(crate) const KEY_A: &str = include_str!("../../../../testdata/keys/rsa-2048-a.pem");
pub(crate) const KEY_B: &str = include_str!("../../../../testdata/keys/rsa-2048-b.pem");

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(auth.claims().sub.clone())
}

async fn admin_only(auth: Scoped<Admin>) -> HttpResponse {
    HttpResponse::Ok().body(auth.claims().sub.clone())
}

/// An API protected by the guard, on a free loopback port.
struct Api {
    url: String,
    jwks: Arc<JwksCache>,
    http: reqwest::Client,
}

fn start_api(issuer: &str, config: JwksConfig) -> Api {
    let jwks = Arc::new(JwksCache::new(config).unwrap());
    let guard = web::Data::new(Guard::new(Validator::new(
        ValidationConfig::new(issuer, "tessera-api"),
        jwks.clone(),
    )));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(guard.clone())
            .route("/whoami", web::get().to(whoami))
            .route("/admin", web::get().to(admin_only))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    Api {
        url,
        jwks,
        http: reqwest::Client::new(),
    }
}

impl Api {
    async fn status(&self, path: &str, token: &str) -> u16 {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

pub(crate) fn claims(issuer: &str, scope: &str) -> AccessTokenClaims {
    // From JSON, so that optional members added to the claims need no change here.
    serde_json::from_value(json!({
        "iss": issuer,
        "sub": "user-1",
        "aud": "tessera-api",
        "exp": now() + 900,
        "iat": now(),
        "jti": "jti-1",
        "client_id": "app",
        "scope": scope,
        "company": "acme",
        "roles": [Role::Admin],
        "username": "alice",
    }))
    .unwrap()
}

pub(crate) fn config(source: JwksSource) -> JwksConfig {
    JwksConfig::new(source)
}

#[tokio::test]
async fn a_new_signing_key_is_picked_up_without_a_restart() {
    let issuer = TestIssuer::start(SigningKey::from_pkcs8_pem(KEY_A).unwrap()).unwrap();
    let mut cfg = config(JwksSource::Issuer(issuer.issuer().to_owned()));
    cfg.cooldown = Duration::from_millis(200);
    let api = start_api(issuer.issuer(), cfg);
    let before = issuer.sign(&claims(issuer.issuer(), "basic"));
    assert_eq!(api.status("/whoami", &before).await, 200);

    issuer.rotate_to(SigningKey::from_pkcs8_pem(KEY_B).unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let after = issuer.sign(&claims(issuer.issuer(), "basic"));
    assert_ne!(jwt_kid(&before), jwt_kid(&after));
    assert_eq!(
        api.status("/whoami", &after).await,
        200,
        "the new key was not picked up"
    );
    assert_eq!(
        api.status("/whoami", &before).await,
        200,
        "the old key is still published"
    );
    assert_eq!(issuer.jwks_fetches(), 2);
}

fn jwt_kid(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_at_most_one_fetch_per_cooldown() {
    let issuer = TestIssuer::start(SigningKey::from_pkcs8_pem(KEY_A).unwrap()).unwrap();
    let mut cfg = config(JwksSource::Url(issuer.jwks_url()));
    cfg.cooldown = Duration::from_secs(1);
    let api = Arc::new(start_api(issuer.issuer(), cfg));
    let valid = issuer.sign(&claims(issuer.issuer(), "basic"));
    assert_eq!(api.status("/whoami", &valid).await, 200);
    assert_eq!(issuer.jwks_fetches(), 1);
    // Past the cooldown, so the flood may fetch: its concurrent misses share one fetch.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (header, rest) = valid.split_once('.').unwrap();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        header["kid"] = json!(format!("random-kid-{i}"));
        let token = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
        );
        let api = api.clone();
        tasks.push(tokio::spawn(
            async move { api.status("/whoami", &token).await },
        ));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "a flood of unknown kids: one fetch, shared"
    );
    assert_eq!(api.jwks.stats().fetches, issuer.jwks_fetches());
    assert_eq!(api.status("/whoami", &valid).await, 200);
}

/// A JWKS endpoint whose answer the test controls.
pub(crate) struct FakeJwks {
    pub(crate) url: String,
    answer: Arc<Mutex<(u16, String, String)>>,
    pub(crate) hits: Arc<AtomicU64>,
    /// While set, requests are held unanswered: an issuer that hangs.
    hold: Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) fn start_jwks(body: Value, cache_control: &str) -> FakeJwks {
    let answer = Arc::new(Mutex::new((
        200u16,
        body.to_string(),
        cache_control.to_owned(),
    )));
    let hits = Arc::new(AtomicU64::new(0));
    let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, h, held) = (answer.clone(), hits.clone(), hold.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let (a, h, held) = (a.clone(), h.clone(), held.clone());
        App::new().route(
            "/jwks",
            // Any method: the same fake answers JWKS GETs and introspection POSTs.
            web::route().to(move || {
                let (a, h, held) = (a.clone(), h.clone(), held.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    while held.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let (status, body, cache) = a.lock().unwrap().clone();
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .insert_header(("Cache-Control", cache))
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .listen(listener)
    .unwrap()
    .workers(2)
    .disable_signals()
    .run();
    tokio::spawn(server);
    FakeJwks {
        url,
        answer,
        hits,
        hold,
    }
}

/// Waits (up to 5 s) until the cache has counted `failures` failed fetches.
async fn until_failures(api: &Api, failures: u64) {
    for _ in 0..500 {
        if api.jwks.stats().failures >= failures {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "expected {failures} failed fetches, saw {:?}",
        api.jwks.stats()
    );
}

impl FakeJwks {
    pub(crate) fn answer(&self, status: u16, body: &str) {
        let mut a = self.answer.lock().unwrap();
        a.0 = status;
        a.1 = body.to_owned();
    }
}

pub(crate) const ISSUER: &str = "https://issuer.test";

#[tokio::test]
async fn the_last_good_keys_survive_an_issuer_that_fails_or_answers_garbage() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let jwks = start_jwks(json!({"keys": [key.public_jwk()]}), "max-age=0");
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    // Every lookup finds the set stale and refreshes it: the worst case for resilience.
    cfg.min_age = Duration::ZERO;
    cfg.cooldown = Duration::ZERO;
    let api = start_api(ISSUER, cfg);
    let token = key.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 200);

    let padded = format!(r#"{{"keys": [], "padding": "{}"}}"#, "x".repeat(100 * 1024));
    let oct_only = r#"{"keys": [{"kty": "oct", "kid": "k", "alg": "HS256", "k": "c2VjcmV0"}]}"#;
    let answers: [(u16, &str); 6] = [
        (500, "oops"),
        (200, "not json"),
        (200, r#"{"keys": "nope"}"#),
        (200, r#"{"keys": []}"#),
        (200, oct_only),
        (200, &padded),
    ];
    let mut failures = 0;
    for (status, body) in answers {
        jwks.answer(status, body);
        // Served from the stale set; each request starts a refresh, which fails.
        for when in ["during", "after"] {
            assert_eq!(
                api.status("/whoami", &token).await,
                200,
                "{when} a {status} {body:.20}"
            );
            failures += 1;
            until_failures(&api, failures).await;
        }
    }
}
#[tokio::test]
async fn symmetric_private_and_non_signing_keys_in_a_jwks_are_never_loaded() {
    let good = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let other = SigningKey::from_pkcs8_pem(KEY_B).unwrap();
    let secret = b"a-shared-secret-anyone-can-read";
    let mut with_private = serde_json::to_value(other.public_jwk()).unwrap();
    with_private["kid"] = json!("private");
    with_private["d"] = json!("AQAB");
    let mut for_encryption = serde_json::to_value(other.public_jwk()).unwrap();
    for_encryption["kid"] = json!("enc");
    for_encryption["use"] = json!("enc");
    let mut without_alg = serde_json::to_value(other.public_jwk()).unwrap();
    without_alg["kid"] = json!("no-alg");
    without_alg.as_object_mut().unwrap().remove("alg");
    let body = json!({"keys": [
        {"kty": "oct", "kid": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret)},
        with_private, for_encryption, without_alg, good.public_jwk(),
    ]});
    let jwks = start_jwks(body, "max-age=300");
    let api = start_api(ISSUER, config(JwksSource::Url(jwks.url.clone())));

    // HS256 with the oct key's secret.
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "oct"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(ISSUER, "admin")).unwrap())
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(api.status("/whoami", &forged).await, 401);

    // RS256 under the kids of the skipped RSA keys, really signed by that key.
    for kid in ["private", "enc", "no-alg"] {
        let token = other.sign_access_token(&claims(ISSUER, "admin")).unwrap();
        let (h, rest) = token.split_once('.').unwrap();
        let mut h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        h["kid"] = json!(kid);
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            rest.rsplit_once('.').unwrap().0
        );
        let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(other.pkcs8_der()).unwrap();
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(api.status("/whoami", &token).await, 401, "{kid}");
    }
    let valid = good.sign_access_token(&claims(ISSUER, "admin")).unwrap();
    assert_eq!(api.status("/whoami", &valid).await, 200);
    assert_eq!(api.status("/admin", &valid).await, 200);
}

#[tokio::test]
async fn max_age_decides_when_keys_are_refetched() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let jwks = start_jwks(json!({"keys": [key.public_jwk()]}), "public, max-age=1");
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    cfg.min_age = Duration::ZERO;
    cfg.cooldown = Duration::ZERO;
    let api = start_api(ISSUER, cfg);
    let token = key.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    for _ in 0..5 {
        assert_eq!(api.status("/whoami", &token).await, 200);
    }
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        1,
        "a fresh set is not refetched"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.status("/whoami", &token).await, 200);
    // The stale set is refreshed in the background.
    for _ in 0..500 {
        if jwks.hits.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        2,
        "a stale set is refetched"
    );
}
#[tokio::test]
async fn an_unreachable_issuer_with_no_cached_keys_is_a_503_not_a_401() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = start_api(
        ISSUER,
        config(JwksSource::Url(format!("http://127.0.0.1:{port}/jwks"))),
    );
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let token = key.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    let response = api
        .http
        .get(format!("{}/whoami", api.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="tessera""#
    );
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn an_issuer_that_comes_up_late_is_found_within_a_second_despite_the_cooldown() {
    // Reserve a port, start the API against it while nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/jwks");
    let api = start_api(ISSUER, config(JwksSource::Url(url)));
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let token = key.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 503);

    // The issuer comes up on that port.
    let body = json!({"keys": [key.public_jwk()]}).to_string();
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/jwks",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .bind(addr)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.status("/whoami", &token).await, 200);
}

#[tokio::test]
async fn the_scope_extractor_names_the_missing_scope() {
    let issuer = TestIssuer::start(SigningKey::from_pkcs8_pem(KEY_A).unwrap()).unwrap();
    let api = start_api(issuer.issuer(), config(JwksSource::Url(issuer.jwks_url())));
    let basic = issuer.sign(&claims(issuer.issuer(), "basic"));
    let response = api
        .http
        .get(format!("{}/admin", api.url))
        .bearer_auth(&basic)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="insufficient_scope", scope="admin""#
    );
    assert_eq!(api.status("/whoami", &basic).await, 200);
    assert_eq!(
        api.status(
            "/admin",
            &issuer.sign(&claims(issuer.issuer(), "basic admin"))
        )
        .await,
        200
    );
}

#[tokio::test]
async fn es256_keys_verify_and_a_zero_signature_does_not() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    let jwks = start_jwks(json!({"keys": [jwk]}), "max-age=300");
    let api = start_api(ISSUER, config(JwksSource::Url(jwks.url.clone())));

    let sign_with = |alg: &str, signature: Option<Vec<u8>>| {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": "ec-1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(ISSUER, "basic")).unwrap())
        );
        let signature = signature.unwrap_or_else(|| {
            pair.sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        });
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    assert_eq!(api.status("/whoami", &sign_with("ES256", None)).await, 200);
    // CVE-2022-21449: r = s = 0 must never verify.
    assert_eq!(
        api.status("/whoami", &sign_with("ES256", Some(vec![0; 64])))
            .await,
        401
    );
    // The key's algorithm decides: RS256 or HS256 under an ES256 key's kid are refused.
    assert_eq!(
        api.status("/whoami", &sign_with("RS256", Some(vec![0; 256])))
            .await,
        401
    );
    assert_eq!(
        api.status("/whoami", &sign_with("HS256", Some(vec![0; 32])))
            .await,
        401
    );
    assert_eq!(api.status("/whoami", &sign_with("ES256", None)).await, 200);
}

#[tokio::test]
async fn a_hanging_refresh_never_holds_up_a_request_whose_key_is_cached() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let jwks = start_jwks(json!({"keys": [key.public_jwk()]}), "max-age=0");
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    cfg.min_age = Duration::ZERO;
    cfg.cooldown = Duration::ZERO;
    cfg.timeout = Duration::from_secs(60);
    let api = start_api(ISSUER, cfg);
    let token = key.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 200);

    // The set is stale at once and the issuer now hangs: requests must not wait for it.
    jwks.hold.store(true, Ordering::SeqCst);
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..4 {
        let response = quick
            .get(format!("{}/whoami", api.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        2,
        "one background refresh, still hanging"
    );
    jwks.hold.store(false, Ordering::SeqCst);
}

#[tokio::test]
async fn a_key_withdrawn_from_the_jwks_stops_verifying_once_the_set_is_refreshed() {
    let a = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let b = SigningKey::from_pkcs8_pem(KEY_B).unwrap();
    let jwks = start_jwks(json!({"keys": [a.public_jwk()]}), "max-age=0");
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    cfg.min_age = Duration::ZERO;
    cfg.cooldown = Duration::ZERO;
    let api = start_api(ISSUER, cfg);
    let token = a.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 200);

    jwks.answer(200, &json!({"keys": [b.public_jwk()]}).to_string());
    let mut refused = false;
    for _ in 0..50 {
        if api.status("/whoami", &token).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a withdrawn key kept verifying");
    let token_b = b.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert_eq!(api.status("/whoami", &token_b).await, 200);
}

#[tokio::test]
async fn plain_http_key_sources_off_loopback_are_refused_unless_allowed() {
    let err =
        JwksCache::new(config(JwksSource::Issuer("http://auth.example.com".into()))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "http://auth.example.com must use https (plain http is allowed only on loopback, or when allow_http is set)"
    );
    let mut cfg = config(JwksSource::Url(
        "http://authz:8080/.well-known/jwks.json".into(),
    ));
    assert!(JwksCache::new(cfg.clone()).is_err());
    cfg.allow_http = true;
    assert!(JwksCache::new(cfg).is_ok());
    assert!(
        JwksCache::new(config(JwksSource::Url(
            "https://auth.example.com/jwks".into()
        )))
        .is_ok()
    );
    assert!(JwksCache::new(config(JwksSource::Url("http://localhost:8080/jwks".into()))).is_ok());
}

#[tokio::test]
async fn introspection_answers_active_inactive_or_unavailable_never_a_guess() {
    use tessera_guard::{GuardError, Introspection};

    let fake = start_jwks(
        json!({"active": true, "sub": "u-1", "scope": "basic", "client_id": "app", "exp": 1}),
        "no-store",
    );
    let client = Introspection::new(
        fake.url.clone(),
        "rs",
        "secret",
        Duration::from_secs(2),
        false,
    )
    .unwrap();
    let active = client.introspect("tsr_x").await.unwrap().unwrap();
    assert_eq!(active.sub.as_deref(), Some("u-1"));
    assert_eq!(active.scope.as_deref(), Some("basic"));

    fake.answer(200, r#"{"active": false}"#);
    assert_eq!(client.introspect("tsr_x").await.unwrap(), None);
    // An endpoint that fails, refuses us, or answers garbage leaves the token unjudged: 503.
    for (status, body) in [
        (500, "oops"),
        (401, r#"{"error":"invalid_client"}"#),
        (200, "not json"),
        (200, r#"{"sub":"u-1"}"#),
    ] {
        fake.answer(status, body);
        assert_eq!(
            client.introspect("tsr_x").await,
            Err(GuardError::Unavailable),
            "{status} {body}"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Introspection::new(
        format!("http://127.0.0.1:{port}/introspect"),
        "rs",
        "secret",
        Duration::from_secs(2),
        false,
    )
    .unwrap();
    assert_eq!(down.introspect("tsr_x").await, Err(GuardError::Unavailable));
    assert!(
        Introspection::new(
            "http://auth.example.com/introspect",
            "rs",
            "s",
            Duration::from_secs(2),
            false
        )
        .is_err()
    );
}

/// A JWKS source with an entity tag: `304` (with its own `max-age`) to a matching
/// `If-None-Match`, the document otherwise. Records the `If-None-Match` of every request.
fn start_tagged_jwks(body: Value) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let recorded = seen.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let (seen, body) = (recorded.clone(), body.to_string());
        App::new().route(
            "/jwks",
            web::get().to(move |req: actix_web::HttpRequest| {
                let (seen, body) = (seen.clone(), body.clone());
                async move {
                    let tag = req
                        .headers()
                        .get("if-none-match")
                        .map(|v| v.to_str().unwrap().to_owned());
                    seen.lock().unwrap().push(tag.clone());
                    if tag.as_deref() == Some("\"v1\"") {
                        HttpResponse::NotModified()
                            .insert_header(("ETag", "\"v1\""))
                            .insert_header(("Cache-Control", "public, max-age=120"))
                            .finish()
                    } else {
                        HttpResponse::Ok()
                            .insert_header(("ETag", "\"v1\""))
                            .insert_header(("Cache-Control", "public, max-age=60"))
                            .content_type("application/json")
                            .body(body)
                    }
                }
            }),
        )
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    (url, seen)
}

#[tokio::test]
async fn an_unchanged_jwks_is_revalidated_with_its_etag_and_kept_for_the_new_max_age() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let (url, seen) = start_tagged_jwks(json!({"keys": [key.public_jwk()]}));
    let clock = tessera_core::Clock::pinned_now();
    let mut cfg = config(JwksSource::Url(url));
    cfg.min_age = Duration::ZERO;
    cfg.cooldown = Duration::ZERO;
    cfg.clock = clock.clone();
    let jwks = Arc::new(JwksCache::new(cfg).unwrap());
    jwks.prefetch().await;
    let kid = key.kid().to_owned();
    assert!(jwks.is_warm(&kid));
    assert_eq!(*seen.lock().unwrap(), [None]);

    // Within max-age (60 s) nothing is fetched; after it, the set is revalidated.
    clock.advance(Duration::from_secs(59));
    assert!(jwks.is_warm(&kid));
    clock.advance(Duration::from_secs(2));
    assert!(!jwks.is_warm(&kid));
    jwks.prefetch().await;
    assert_eq!(
        *seen.lock().unwrap(),
        [None, Some("\"v1\"".to_owned())],
        "the second request carries the entity tag"
    );
    let stats = jwks.stats();
    assert_eq!(
        (stats.fetches, stats.not_modified, stats.failures),
        (2, 1, 0)
    );
    // The 304 kept the keys and renewed them for its own max-age (120 s).
    assert!(jwks.is_warm(&kid));
    clock.advance(Duration::from_secs(119));
    assert!(jwks.is_warm(&kid));
    clock.advance(Duration::from_secs(2));
    assert!(!jwks.is_warm(&kid));

    // The kept keys still verify tokens.
    let validator = Validator::new(ValidationConfig::new(ISSUER, "tessera-api"), jwks.clone());
    let token = key.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    let now = clock.now_secs();
    assert_eq!(validator.validate(&token, now).await.unwrap().sub, "user-1");
}

#[tokio::test]
async fn a_key_set_past_its_hard_age_verifies_nothing_until_the_issuer_answers_again() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let good = json!({"keys": [key.public_jwk()]}).to_string();
    let jwks = start_jwks(serde_json::from_str(&good).unwrap(), "max-age=300");
    let clock = tessera_core::Clock::pinned_now();
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    cfg.clock = clock.clone();
    cfg.max_stale = Duration::from_secs(3600);
    let api = start_api(ISSUER, cfg);
    let mut long_lived = claims(ISSUER, "basic");
    long_lived.exp = now() + 4 * 3600;
    let token = key.sign_access_token(&long_lived).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 200);

    // The issuer goes down. Within the hard age the last good set still verifies.
    jwks.answer(500, "down");
    clock.advance(Duration::from_secs(59 * 60));
    assert_eq!(api.status("/whoami", &token).await, 200);
    until_failures(&api, 1).await;

    // Past it, the same valid token cannot be verified: 503, as with no keys at all.
    clock.advance(Duration::from_secs(2 * 60));
    assert!(api.jwks.is_too_old());
    for _ in 0..2 {
        let response = api
            .http
            .get(format!("{}/whoami", api.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="tessera""#
        );
        assert_eq!(response.headers()["retry-after"], "5");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        clock.advance(Duration::from_secs(2));
    }

    // The issuer answers again: a request starts a refresh in the background and is
    // refused meanwhile; once the refresh lands, the token works.
    jwks.answer(200, &good);
    clock.advance(Duration::from_secs(2));
    until_accepted(&api, &token).await;
    assert!(!api.jwks.is_too_old());
}

/// Sends `token` until it is accepted (up to 5 s); until then every answer must be 503.
async fn until_accepted(api: &Api, token: &str) {
    for _ in 0..500 {
        match api.status("/whoami", token).await {
            200 => return,
            503 => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("expected 503 until the refresh lands, then 200; got {other}"),
        }
    }
    panic!("the token was never accepted: {:?}", api.jwks.stats());
}

#[tokio::test]
async fn a_key_set_past_its_hard_age_is_refused_at_once_while_a_hanging_issuer_holds_the_fetch() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let jwks = start_jwks(json!({"keys": [key.public_jwk()]}), "max-age=300");
    let clock = tessera_core::Clock::pinned_now();
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    cfg.clock = clock.clone();
    cfg.max_stale = Duration::from_secs(3600);
    cfg.timeout = Duration::from_secs(10);
    let api = start_api(ISSUER, cfg);
    let mut long_lived = claims(ISSUER, "basic");
    long_lived.exp = now() + 4 * 3600;
    let token = key.sign_access_token(&long_lived).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 200);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1);

    // The issuer black-holes requests, and the set is past its hard age.
    jwks.hold.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(3601));
    assert!(api.jwks.is_too_old());
    assert_eq!(api.status("/whoami", &token).await, 503);
    // The 503 did not wait for the fetch: that fetch has neither failed nor timed out.
    let stats = api.jwks.stats();
    assert_eq!(
        stats.failures, 0,
        "the request waited for the fetch: {stats:?}"
    );
    assert!(api.jwks.is_too_old());
    // The refresh it started reaches the issuer, which holds it unanswered.
    for _ in 0..500 {
        if jwks.hits.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2, "no refresh started");

    // While that fetch hangs, more requests are refused at once and start no other fetch.
    clock.advance(Duration::from_secs(2));
    for _ in 0..4 {
        assert_eq!(api.status("/whoami", &token).await, 503);
    }
    let stats = api.jwks.stats();
    assert_eq!((stats.fetches, stats.failures), (2, 0), "{stats:?}");
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2);

    // The issuer answers the held fetch: the set is renewed and the token works again.
    jwks.hold.store(false, Ordering::SeqCst);
    until_accepted(&api, &token).await;
    assert!(!api.jwks.is_too_old());
}

#[tokio::test]
async fn a_healthy_issuer_keeps_a_set_verifying_past_a_hard_age_shorter_than_its_max_age() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    // The issuer says 5 minutes; the hard age is 2.
    let jwks = start_jwks(json!({"keys": [key.public_jwk()]}), "max-age=300");
    let clock = tessera_core::Clock::pinned_now();
    let mut cfg = config(JwksSource::Url(jwks.url.clone()));
    cfg.clock = clock.clone();
    cfg.max_stale = Duration::from_secs(120);
    let api = start_api(ISSUER, cfg);
    let mut long_lived = claims(ISSUER, "basic");
    long_lived.exp = now() + 4 * 3600;
    let token = key.sign_access_token(&long_lived).unwrap();
    assert_eq!(api.status("/whoami", &token).await, 200);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1);

    // Within half the hard age, nothing is fetched.
    clock.advance(Duration::from_secs(40));
    assert_eq!(api.status("/whoami", &token).await, 200);
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1);

    // Past half of it, each lookup's background refresh renews the set, so the set never
    // reaches the hard age although the issuer's max-age is longer: across six hard ages
    // the token always verifies.
    for round in 0..6u64 {
        clock.advance(Duration::from_secs(70));
        assert!(
            !api.jwks.is_too_old(),
            "round {round}: the set reached its hard age"
        );
        assert_eq!(api.status("/whoami", &token).await, 200, "round {round}");
        // The issuer counts the fetch when it answers; the guard stores the set a moment
        // later: wait for both.
        for _ in 0..500 {
            if jwks.hits.load(Ordering::SeqCst) == round + 2
                && api.jwks.age() == Some(Duration::ZERO)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(jwks.hits.load(Ordering::SeqCst), round + 2, "round {round}");
        assert_eq!(api.jwks.age(), Some(Duration::ZERO), "round {round}");
    }
    assert_eq!(api.jwks.stats().failures, 0);
}

#[test]
fn a_hard_age_below_the_minimum_age_is_refused() {
    let mut cfg = config(JwksSource::Url("https://issuer.test/jwks".into()));
    cfg.max_stale = Duration::from_secs(59);
    let err = JwksCache::new(cfg).unwrap_err().to_string();
    assert!(err.contains("hard maximum age"), "{err}");
}
