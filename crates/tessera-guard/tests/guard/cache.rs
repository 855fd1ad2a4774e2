//! The verified-token cache and the introspection answer cache.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tessera_core::SigningKey;
use tessera_guard::{
    GuardError, Introspection, JwksCache, JwksSource, Rejection, ValidationConfig, Validator,
};

use crate::jwks::{ISSUER, KEY_A, KEY_B, claims, config, now, start_jwks};

fn validator(jwks: &Arc<JwksCache>, capacity: usize) -> Validator {
    let mut config = ValidationConfig::new(ISSUER, "tessera-api");
    config.cache_capacity = capacity;
    Validator::new(config, jwks.clone())
}

#[tokio::test]
async fn a_token_seen_again_is_answered_from_the_cache_until_it_expires() {
    let a = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let source = start_jwks(json!({"keys": [a.public_jwk()]}), "max-age=300");
    let jwks = Arc::new(JwksCache::new(config(JwksSource::Url(source.url.clone()))).unwrap());
    let v = validator(&jwks, 100);
    let claims = claims(ISSUER, "basic admin");
    let exp = claims.exp;
    let token = a.sign_access_token(&claims).unwrap();

    let first = v.validate(&token, now()).await.unwrap();
    let again = v.validate(&token, now()).await.unwrap();
    assert_eq!(first, again);
    let stats = v.cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1));

    // Within the leeway (30 s) after `exp` it still holds; past it, the full check refuses.
    assert!(v.validate(&token, exp + 30).await.is_ok());
    assert_eq!(
        v.validate(&token, exp + 31).await,
        Err(GuardError::InvalidToken(Rejection::Expired))
    );
    assert_eq!(
        v.cache_stats().unwrap().hits,
        2,
        "an expired entry is not a hit"
    );
    // Without the cache, nothing is remembered.
    let off = validator(&jwks, 0);
    assert!(off.validate(&token, now()).await.is_ok());
    assert_eq!(off.cache_stats(), None);
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_leaves_the_jwks() {
    let a = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let b = SigningKey::from_pkcs8_pem(KEY_B).unwrap();
    let source = start_jwks(json!({"keys": [a.public_jwk()]}), "max-age=0");
    let v = validator(&always_refreshed(&source.url), 100);
    let token = a.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert!(v.validate(&token, now()).await.is_ok());
    assert!(v.validate(&token, now()).await.is_ok());
    assert_eq!(v.cache_stats().unwrap().hits, 1);

    // The issuer withdraws key A. Only cache hits follow, yet the stale set is refreshed
    // behind them and the token is refused once the new set is in.
    source.answer(200, &json!({"keys": [b.public_jwk()]}).to_string());
    assert_eq!(
        first_refusal(&v, &token).await,
        Some(GuardError::InvalidToken(Rejection::UnknownKey)),
        "a token whose key was withdrawn kept validating from the cache"
    );
    let token_b = b.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert!(v.validate(&token_b, now()).await.is_ok());
}

#[tokio::test]
async fn the_cache_stays_within_its_capacity_and_never_answers_for_an_altered_token() {
    let a = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let source = start_jwks(json!({"keys": [a.public_jwk()]}), "max-age=300");
    let jwks = Arc::new(JwksCache::new(config(JwksSource::Url(source.url.clone()))).unwrap());
    let v = validator(&jwks, 32);
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            let mut c = claims(ISSUER, "basic");
            c.jti = format!("jti-{i}");
            a.sign_access_token(&c).unwrap()
        })
        .collect();
    for token in &tokens {
        assert!(v.validate(token, now()).await.is_ok());
    }
    let stats = v.cache_stats().unwrap();
    assert_eq!(stats.capacity, 32);
    assert!(stats.entries <= 32, "{stats:?}");
    // Evicted tokens are simply checked again.
    for token in &tokens {
        assert!(v.validate(token, now()).await.is_ok());
    }

    // A cached token with one character of its signature or claims changed is another
    // token: checked in full, and refused.
    let token = &tokens[0];
    assert!(v.validate(token, now()).await.is_ok());
    let mut signature = token.clone();
    let last = signature.pop().unwrap();
    signature.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        v.validate(&signature, now()).await,
        Err(GuardError::InvalidToken(Rejection::Signature))
    );
    let dot = token.find('.').unwrap();
    let mut claims_changed = token.clone().into_bytes();
    claims_changed[dot + 5] = if claims_changed[dot + 5] == b'x' {
        b'y'
    } else {
        b'x'
    };
    let claims_changed = String::from_utf8(claims_changed).unwrap();
    assert!(matches!(
        v.validate(&claims_changed, now()).await,
        Err(GuardError::InvalidToken(_))
    ));
    assert!(
        v.validate(token, now()).await.is_ok(),
        "the real token still works"
    );
}

#[tokio::test]
async fn introspection_answers_are_kept_only_when_enabled_only_if_active_and_never_past_exp() {
    let now = now();
    let fake = start_jwks(
        json!({"active": true, "sub": "u-1", "scope": "basic", "client_id": "app",
               "exp": now + 20}),
        "no-store",
    );
    let asked = || fake.hits.load(Ordering::SeqCst);
    let plain =
        Introspection::new(&fake.url, "rs", "secret", Duration::from_secs(2), false).unwrap();
    for _ in 0..3 {
        let (answer, called) = plain.introspect_at("tsr_x", now).await;
        assert!(answer.unwrap().is_some());
        assert!(called, "without a cache every request asks");
    }
    assert_eq!(asked(), 3);
    assert_eq!(plain.cache_stats(), None);

    let cached = Introspection::new(&fake.url, "rs", "secret", Duration::from_secs(2), false)
        .unwrap()
        .with_cache(Duration::from_secs(60), 100);
    let (answer, called) = cached.introspect_at("tsr_x", now).await;
    assert!(called && answer.unwrap().is_some());
    let (answer, called) = cached.introspect_at("tsr_x", now + 5).await;
    assert!(!called, "a kept answer is served");
    assert_eq!(answer.unwrap().unwrap().sub.as_deref(), Some("u-1"));
    assert_eq!(asked(), 4);

    // The price: revoked at the issuer, the token is still active here while its answer
    // is kept; never past the token's own `exp` (20 s, shorter than the 60 s TTL).
    fake.answer(200, r#"{"active": false}"#);
    let (answer, called) = cached.introspect_at("tsr_x", now + 19).await;
    assert!(!called && answer.unwrap().is_some());
    // From `exp` on the issuer calls it inactive, and so does the cache.
    let (answer, called) = cached.introspect_at("tsr_x", now + 20).await;
    assert!(called);
    assert_eq!(answer.unwrap(), None);
    // Inactive answers are never kept.
    let (_, called) = cached.introspect_at("tsr_x", now + 20).await;
    assert!(called);
    assert_eq!(asked(), 6);
    let stats = cached.cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (2, 3));

    // The TTL is exact too: kept for 2 s means served at +1, asked again at +2.
    fake.answer(
        200,
        &json!({"active": true, "sub": "u-1", "client_id": "app", "exp": now + 600}).to_string(),
    );
    let short = Introspection::new(&fake.url, "rs", "secret", Duration::from_secs(2), false)
        .unwrap()
        .with_cache(Duration::from_secs(2), 100);
    assert!(short.introspect_at("tsr_y", now).await.1);
    assert!(!short.introspect_at("tsr_y", now + 1).await.1);
    assert!(short.introspect_at("tsr_y", now + 2).await.1);
}

#[tokio::test]
async fn a_cache_hit_still_checks_nbf_and_a_key_replaced_under_its_kid() {
    let a = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let b = SigningKey::from_pkcs8_pem(KEY_B).unwrap();
    let source = start_jwks(json!({"keys": [a.public_jwk()]}), "max-age=0");
    let v = validator(&always_refreshed(&source.url), 100);

    // Valid from +100 (leeway 30 s): accepted and kept at +100, refused at +60 although it
    // is in the cache (a clock that went back).
    let t = now();
    let mut early = serde_json::to_value(claims(ISSUER, "basic")).unwrap();
    early["nbf"] = json!(t + 100);
    let token = resigned(&a, &early);
    assert!(v.validate(&token, t + 100).await.is_ok());
    assert_eq!(v.cache_stats().unwrap().entries, 1);
    assert_eq!(
        v.validate(&token, t + 60).await,
        Err(GuardError::InvalidToken(Rejection::NotYetValid))
    );

    // Key B published under key A's kid: a token kept from key A no longer verifies.
    let kept = a.sign_access_token(&claims(ISSUER, "basic")).unwrap();
    assert!(v.validate(&kept, now()).await.is_ok());
    let mut impostor = serde_json::to_value(b.public_jwk()).unwrap();
    impostor["kid"] = json!(a.kid());
    source.answer(200, &json!({"keys": [impostor]}).to_string());
    assert_eq!(
        first_refusal(&v, &kept).await,
        Some(GuardError::InvalidToken(Rejection::Signature)),
        "a token kept from the replaced key kept validating"
    );
}

/// A key cache that refetches `url` whenever asked: a JWKS change shows at once.
fn always_refreshed(url: &str) -> Arc<JwksCache> {
    let mut cfg = config(JwksSource::Url(url.to_owned()));
    cfg.min_age = Duration::ZERO;
    cfg.cooldown = Duration::ZERO;
    Arc::new(JwksCache::new(cfg).unwrap())
}

/// Validates `token` every 20 ms for up to 2 s; the first refusal, if any.
async fn first_refusal(v: &Validator, token: &str) -> Option<GuardError> {
    for _ in 0..100 {
        if let Err(err) = v.validate(token, now()).await {
            return Some(err);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// An RS256 access token with exactly `claims`, signed by `key` under its kid.
fn resigned(key: &SigningKey, claims: &serde_json::Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid()});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}
