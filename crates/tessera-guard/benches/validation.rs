//! Access-token validation against a warm JWKS (fetched once from an issuer on loopback):
//! a signature verified on every call, a hit of the verified-token cache, and a miss of
//! it (the lookup, the full check and the insertion), per algorithm.
//!
//! `cargo bench -p tessera-guard --bench validation`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::{Role, SigningAlgorithm, SigningKey};
use tessera_guard::testing::TestIssuer;
use tessera_guard::{JwksCache, JwksConfig, JwksSource, ValidationConfig, Validator};

const RSA_PEM: &str = include_str!("../../../testdata/keys/rsa-2048-a.pem");
/// Distinct tokens cycled through for the miss case: many more than that cache holds.
const MISS_TOKENS: usize = 256;

fn validator(issuer: &TestIssuer, jwks: &Arc<JwksCache>, cache_capacity: usize) -> Validator {
    let mut config = ValidationConfig::new(issuer.issuer(), "tessera-api");
    config.cache_capacity = cache_capacity;
    Validator::new(config, Arc::clone(jwks))
}

fn validation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rsa = SigningKey::from_pkcs8_pem(RSA_PEM).expect("RSA fixture");
    let keys = [
        rsa,
        SigningKey::generate(SigningAlgorithm::ES256).expect("ES256"),
        SigningKey::generate(SigningAlgorithm::EdDSA).expect("EdDSA"),
    ];
    let mut group = c.benchmark_group("validate");
    for key in keys {
        let algorithm = key.algorithm();
        let _enter = runtime.enter();
        let issuer = TestIssuer::start(key).expect("issuer");
        let now = 1_900_000_000;
        let tokens: Vec<String> = (0..MISS_TOKENS)
            .map(|i| {
                let mut claims =
                    issuer.user_claims("alice", "acme", &[Role::Admin], "basic admin", now);
                claims.jti = format!("token-{i}");
                issuer.sign(&claims)
            })
            .collect();
        let jwks = Arc::new(
            JwksCache::new(JwksConfig::new(JwksSource::Url(issuer.jwks_url()))).expect("cache"),
        );
        let uncached = validator(&issuer, &jwks, 0);
        let cached = validator(&issuer, &jwks, 10_000);
        // A cache far smaller than the tokens cycled through: every lookup misses.
        let missing = validator(&issuer, &jwks, 16);
        runtime
            .block_on(uncached.validate(&tokens[0], now))
            .expect("a valid token, and the JWKS warm");

        group.bench_function(format!("{algorithm}/verified every time"), |b| {
            b.iter(|| runtime.block_on(uncached.validate(black_box(&tokens[0]), now)))
        });
        group.bench_function(format!("{algorithm}/cache hit"), |b| {
            b.iter(|| runtime.block_on(cached.validate(black_box(&tokens[0]), now)))
        });
        let mut next = 0;
        group.bench_function(format!("{algorithm}/cache miss"), |b| {
            b.iter(|| {
                next = (next + 1) % tokens.len();
                runtime.block_on(missing.validate(black_box(&tokens[next]), now))
            })
        });
        drop(issuer);
    }
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
