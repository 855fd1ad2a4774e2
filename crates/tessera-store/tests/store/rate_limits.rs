//! Rate limits kept in the database: atomic under concurrency, refunds, retry times, the
//! purge, and the client read that carries its limits along.

use tessera_store::testing::Backend;
use tessera_store::{LimitRule, RateLimitSlot, Store, on_each_backend};

use super::{client, fresh, now};

on_each_backend!(
    fifty_concurrent_acquires_of_a_quota_of_ten_take_exactly_ten,
    a_refused_key_says_when_it_is_whole_refunds_give_slots_back_and_the_purge_forgets_whole_keys,
    a_client_and_the_state_of_its_limits_come_back_in_one_read,
    only_postgres_shares_its_limits,
);

/// Ten at once, then one more every second.
const TEN_PER_SECOND: LimitRule = LimitRule {
    period_ms: 1_000,
    tolerance_ms: 10_000,
};

const T0: i64 = 1_800_000_000_000;

async fn fifty_concurrent_acquires_of_a_quota_of_ten_take_exactly_ten(backend: Backend) {
    let t = fresh(backend).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = t.store.clone();
        set.spawn(async move {
            store
                .acquire_rate_limit("pw-account:alice", TEN_PER_SECOND, T0)
                .await
                .unwrap()
        });
    }
    let slots = set.join_all().await;
    let taken = slots
        .iter()
        .filter(|s| matches!(s, RateLimitSlot::Taken { .. }))
        .count();
    assert_eq!(taken, 10, "{slots:?}");
    // Every refusal sees the allowance used up: whole ten seconds from now.
    for slot in &slots {
        if let RateLimitSlot::Refused { whole_at } = slot {
            assert_eq!(*whole_at, T0 + 10_000);
        }
    }
    // Another key has its own allowance.
    assert!(matches!(
        t.store
            .acquire_rate_limit("pw-account:bob", TEN_PER_SECOND, T0)
            .await
            .unwrap(),
        RateLimitSlot::Taken { whole_at } if whole_at == T0 + 1_000
    ));
}

async fn a_refused_key_says_when_it_is_whole_refunds_give_slots_back_and_the_purge_forgets_whole_keys(
    backend: Backend,
) {
    let t = fresh(backend).await;
    let store = t.store.as_ref();
    let acquire = |at: i64| store.acquire_rate_limit("k", TEN_PER_SECOND, at);
    for n in 1..=10 {
        assert_eq!(
            acquire(T0).await.unwrap(),
            RateLimitSlot::Taken {
                whole_at: T0 + n * 1_000
            }
        );
    }
    assert_eq!(
        acquire(T0).await.unwrap(),
        RateLimitSlot::Refused {
            whole_at: T0 + 10_000
        }
    );
    // A refund gives one slot back, which the next attempt takes.
    store
        .refund_rate_limit("k", TEN_PER_SECOND, T0)
        .await
        .unwrap();
    assert!(matches!(
        acquire(T0).await.unwrap(),
        RateLimitSlot::Taken { .. }
    ));
    assert!(matches!(
        acquire(T0).await.unwrap(),
        RateLimitSlot::Refused { .. }
    ));
    // One period later one more slot has grown back, and only one.
    assert!(matches!(
        acquire(T0 + 1_000).await.unwrap(),
        RateLimitSlot::Taken { .. }
    ));
    assert!(matches!(
        acquire(T0 + 1_000).await.unwrap(),
        RateLimitSlot::Refused { .. }
    ));
    // Refunds never credit more than was taken: a key whole again stays at now.
    for _ in 0..20 {
        store
            .refund_rate_limit("k", TEN_PER_SECOND, T0 + 30_000)
            .await
            .unwrap();
    }
    // A refund of a key never taken changes nothing and fails nothing.
    store
        .refund_rate_limit("never", TEN_PER_SECOND, T0)
        .await
        .unwrap();
    assert_eq!(store.purge_rate_limits(T0 + 29_999).await.unwrap(), 0);
    assert_eq!(store.purge_rate_limits(T0 + 30_000).await.unwrap(), 1);
    // After the purge the key starts from a whole allowance.
    assert_eq!(
        acquire(T0 + 30_000).await.unwrap(),
        RateLimitSlot::Taken {
            whole_at: T0 + 31_000
        }
    );
}

async fn a_client_and_the_state_of_its_limits_come_back_in_one_read(backend: Backend) {
    let t = fresh(backend).await;
    let store = t.store.as_ref();
    let created = store.create_client(&client("app"), now()).await.unwrap();
    let keys = ["client:192.0.2.1/app", "client-address:192.0.2.1"];
    let (found, limits) = store
        .find_client_with_rate_limits("app", keys)
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&created));
    assert_eq!(limits, [None, None]);

    store
        .acquire_rate_limit(keys[1], TEN_PER_SECOND, T0)
        .await
        .unwrap();
    let (found, limits) = store
        .find_client_with_rate_limits("app", keys)
        .await
        .unwrap();
    assert_eq!(found, Some(created));
    assert_eq!(limits, [None, Some(T0 + 1_000)]);

    // An unknown client (or one no database could store) still brings its limits.
    for unknown in ["nope", "nul\0byte"] {
        let (found, limits) = store
            .find_client_with_rate_limits(unknown, keys)
            .await
            .unwrap();
        assert_eq!(found, None);
        assert_eq!(limits, [None, Some(T0 + 1_000)]);
    }
}

async fn only_postgres_shares_its_limits(backend: Backend) {
    let t = fresh(backend).await;
    let store: &dyn Store = t.store.as_ref();
    assert_eq!(store.shares_rate_limits(), backend == Backend::Postgres);
}
