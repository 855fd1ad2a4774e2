//! The opaque-token path of a resource server in `store` mode: the token's SHA-256
//! digest, and the lookup by that digest among 10,000 stored tokens, on SQLite (and on
//! PostgreSQL when `TESSERA_TEST_POSTGRES_URL` names a server).
//!
//! `cargo bench -p tessera-store --bench opaque`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::{GrantType, TokenFormat, secret};
use tessera_store::testing::{Backend, TestDatabase};
use tessera_store::{NewAccessToken, NewClient, Store};

const STORED: usize = 10_000;

async fn filled(backend: Backend) -> (TestDatabase, Arc<dyn Store>, Vec<String>) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    let now = Utc::now();
    let client = NewClient {
        client_id: "bench".parse().unwrap(),
        name: "bench".into(),
        secret_hash: Some(secret::digest("secret")),
        grant_types: vec![GrantType::ClientCredentials],
        scopes: "basic admin".parse().unwrap(),
        redirect_uris: Vec::new(),
        access_token_format: TokenFormat::Opaque,
        access_token_ttl_secs: Some(3600),
        refresh_token_ttl_secs: None,
        post_logout_redirect_uris: vec![],
    };
    store.create_client(&client, now).await.expect("client");
    let mut tokens = Vec::with_capacity(STORED);
    for _ in 0..STORED {
        let token = secret::generate().expect("random");
        let stored = NewAccessToken {
            token_hash: secret::digest(&token),
            client_id: client.client_id.clone(),
            user_id: None,
            subject: "bench".into(),
            scope: "basic admin".parse().unwrap(),
            expires_at: now + Duration::hours(1),
            family_id: None,
        };
        store
            .insert_access_token(&stored, now)
            .await
            .expect("insert");
        tokens.push(token);
    }
    (db, store, tokens)
}

fn opaque(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let token = secret::generate().expect("random");
    c.bench_function("opaque/digest", |b| {
        b.iter(|| secret::digest(black_box(&token)))
    });
    let mut backends = vec![("sqlite", Backend::Sqlite)];
    if Backend::postgres_enabled() {
        backends.push(("postgres", Backend::Postgres));
    }
    for (name, backend) in backends {
        let (db, store, tokens) = runtime.block_on(filled(backend));
        let mut next = 0;
        c.bench_function(&format!("opaque/{name}/digest and lookup"), |b| {
            b.iter(|| {
                next = (next + 1) % tokens.len();
                let digest = secret::digest(black_box(&tokens[next]));
                runtime
                    .block_on(store.find_access_token(&digest))
                    .expect("lookup")
                    .expect("found")
            })
        });
        drop(store);
        drop(db);
    }
}

criterion_group!(benches, opaque);
criterion_main!(benches);
