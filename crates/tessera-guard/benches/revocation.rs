//! The cost of checking tokens against a revocation list: `validate` with no list and
//! with 10,000 entries in force, for a token answered from the verified-token cache and
//! for one verified every time (RS256); the check alone; and the memory a list of
//! 100,000 entries holds (resident memory before and after it is built, Linux only).
//!
//! `cargo bench -p tessera-guard --bench revocation`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::{Role, SigningKey};
use tessera_guard::testing::TestIssuer;
use tessera_guard::{
    JwksCache, JwksConfig, JwksSource, RevocationEntry, RevocationList, ValidationConfig, Validator,
};

const RSA_PEM: &str = include_str!("../../../testdata/keys/rsa-2048-a.pem");
const NOW: i64 = 1_900_000_000;

/// `n` entries as a feed would send them: mostly single tokens (`jti`), then grant
/// sessions, subjects and clients, with identifiers as long as Tessera's (UUIDs).
fn entries(n: usize) -> Vec<RevocationEntry> {
    let until = NOW + 3600;
    (0..n)
        .map(|i| {
            let id = format!("{i:08x}-7c1e-4b8a-9f3d-0a1b2c3d4e5f");
            match i % 100 {
                0..70 => RevocationEntry::Jti { jti: id, until },
                70..90 => RevocationEntry::Sid { sid: id, until },
                90..98 => RevocationEntry::Sub {
                    sub: format!("user-{id}"),
                    issued_before: NOW - 60,
                    until,
                },
                _ => RevocationEntry::ClientId {
                    client_id: format!("client-{id}"),
                    issued_before: NOW - 60,
                    until,
                },
            }
        })
        .collect()
}

fn list_of(n: usize) -> Arc<RevocationList> {
    let list = RevocationList::new();
    list.apply(true, entries(n), NOW);
    Arc::new(list)
}

fn validation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _enter = runtime.enter();
    let issuer = TestIssuer::start(SigningKey::from_pkcs8_pem(RSA_PEM).expect("RSA fixture"))
        .expect("issuer");
    let claims = issuer.user_claims("alice", "acme", &[Role::Admin], "basic admin", NOW);
    let mut claims = serde_json::to_value(claims).expect("claims");
    claims["sid"] = "0badc0de-7c1e-4b8a-9f3d-0a1b2c3d4e5f".into();
    let token = issuer.sign_value(&claims);
    let jwks = Arc::new(
        JwksCache::new(JwksConfig::new(JwksSource::Url(issuer.jwks_url()))).expect("cache"),
    );
    let list = list_of(10_000);
    let validator = |cache_capacity, list: Option<&Arc<RevocationList>>| {
        let mut config = ValidationConfig::new(issuer.issuer(), "tessera-api");
        config.cache_capacity = cache_capacity;
        let validator = Validator::new(config, Arc::clone(&jwks));
        match list {
            Some(list) => validator.with_revocations(Arc::clone(list)),
            None => validator,
        }
    };
    let cases = [
        ("cache hit/no list", validator(10_000, None)),
        ("cache hit/10k entries", validator(10_000, Some(&list))),
        ("verified every time/no list", validator(0, None)),
        ("verified every time/10k entries", validator(0, Some(&list))),
    ];
    for (_, v) in &cases {
        runtime
            .block_on(v.validate(&token, NOW))
            .expect("a valid token, not revoked, and the JWKS warm");
    }
    let mut group = c.benchmark_group("revocation");
    for (name, v) in &cases {
        group.bench_function(format!("validate/RS256/{name}"), |b| {
            b.iter(|| runtime.block_on(v.validate(black_box(&token), NOW)))
        });
    }
    let parsed = runtime.block_on(cases[0].1.validate(&token, NOW)).unwrap();
    group.bench_function("check alone/10k entries", |b| {
        b.iter(|| list.check(black_box(&parsed), NOW))
    });
    group.finish();
    drop(issuer);
}

/// Resident memory of this process, in bytes (`VmRSS`); `None` off Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Prints the memory a list of 100,000 entries takes: resident memory before the entries
/// exist and after the list holds them (their strings move into it).
fn memory() {
    const N: usize = 100_000;
    let Some(before) = resident_bytes() else {
        println!("revocation list memory: not measured (no /proc/self/status)");
        return;
    };
    let list = list_of(N);
    let after = resident_bytes().unwrap_or(before);
    assert_eq!(list.stats().entries, N);
    let total = after.saturating_sub(before);
    println!(
        "revocation list memory: {N} entries (70% jti, 20% sid, 8% sub, 2% client_id; \
         36-byte ids) hold {:.1} MiB resident, {} bytes per entry",
        total as f64 / (1024.0 * 1024.0),
        total / N as u64
    );
    drop(list);
}

fn benches(c: &mut Criterion) {
    memory();
    validation(c);
}

criterion_group!(revocation, benches);
criterion_main!(revocation);
