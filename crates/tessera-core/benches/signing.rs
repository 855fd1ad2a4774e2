//! Access-token signing per algorithm, with the key held parsed for its life (what the
//! authorization server does), beside `jsonwebtoken::encode`, which parses an RSA key
//! again on every call.
//!
//! The `openid` group: what a token response of the code flow costs with OpenID Connect
//! (the access token, then an ID token carrying its `at_hash`) beside the access token
//! alone.
//!
//! `cargo bench -p tessera-core --bench signing`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::{AccessTokenClaims, IdTokenClaims, SigningAlgorithm, SigningKey};

const RSA_PEM: &str = include_str!("../../../testdata/keys/rsa-2048-a.pem");

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "2f1c6a59-4a4e-4c53-9d0c-0f5a1e3b2c11".into(),
        aud: "tessera-api".into(),
        exp: 1_900_000_900,
        iat: 1_900_000_000,
        jti: "0b3c5e1d-8f5e-4a0b-9c1d-6e7f8a9b0c1d".into(),
        client_id: "demo-jwt".into(),
        scope: "basic admin".parse().unwrap(),
        company: Some("acme".into()),
        roles: Some(vec![tessera_core::Role::Admin]),
        username: Some("alice".into()),
        sid: Some("5d0e1c4b-7a8f-4e2d-9b3c-1f6a8e7d2c40".into()),
    }
}

fn signing(c: &mut Criterion) {
    let claims = claims();
    let rsa = SigningKey::from_pkcs8_pem(RSA_PEM).expect("RSA fixture");
    let keys = [
        SigningKey::from_pkcs8(SigningAlgorithm::RS256, rsa.pkcs8_der()).expect("RS256"),
        SigningKey::from_pkcs8(SigningAlgorithm::PS256, rsa.pkcs8_der()).expect("PS256"),
        SigningKey::generate(SigningAlgorithm::ES256).expect("ES256"),
        SigningKey::generate(SigningAlgorithm::EdDSA).expect("EdDSA"),
    ];
    let mut group = c.benchmark_group("sign_access_token");
    for key in &keys {
        key.sign_access_token(&claims).expect("signs");
        group.bench_function(key.algorithm().as_str(), |b| {
            b.iter(|| key.sign_access_token(black_box(&claims)))
        });
    }
    // The trap: jsonwebtoken's RS256 `encode` builds the aws-lc key pair from DER on
    // every call, on top of the signature.
    let pkcs1 = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM)
            .expect("RSA fixture")
            .to_pkcs1_der()
            .expect("PKCS#1")
    };
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(pkcs1.as_bytes());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, &encoding).expect("jsonwebtoken signs");
    group.bench_function(
        "RS256 via jsonwebtoken::encode (key parsed per call)",
        |b| b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding)),
    );
    group.finish();
}

/// An ID token as the code flow issues it with `openid profile email`.
fn id_claims(at_hash: String) -> IdTokenClaims {
    IdTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "2f1c6a59-4a4e-4c53-9d0c-0f5a1e3b2c11".into(),
        aud: "wiki".into(),
        exp: 1_900_000_900,
        iat: 1_900_000_000,
        auth_time: 1_899_999_000,
        nonce: Some("n-0S6_WzA2Mj".into()),
        at_hash: Some(at_hash),
        sid: "5d0e1c4b-7a8f-4e2d-9b3c-1f6a8e7d2c40".into(),
        name: Some("Ada Lovelace".into()),
        preferred_username: Some("ada".into()),
        updated_at: Some(1_899_000_000),
        email: Some("ada@acme.example".into()),
        email_verified: Some(false),
    }
}

fn openid(c: &mut Criterion) {
    let claims = claims();
    let keys = [
        SigningKey::from_pkcs8_pem(RSA_PEM).expect("RSA fixture"),
        SigningKey::generate(SigningAlgorithm::ES256).expect("ES256"),
        SigningKey::generate(SigningAlgorithm::EdDSA).expect("EdDSA"),
    ];
    let mut group = c.benchmark_group("openid");
    for key in &keys {
        let alg = key.algorithm().as_str();
        group.bench_function(format!("{alg} access token alone"), |b| {
            b.iter(|| key.sign_access_token(black_box(&claims)))
        });
        group.bench_function(format!("{alg} access token + ID token"), |b| {
            b.iter(|| {
                let access = key.sign_access_token(black_box(&claims)).expect("signs");
                let id = key.sign_id_token(&id_claims(key.token_hash(&access)));
                (access, id)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, signing, openid);
criterion_main!(benches);
