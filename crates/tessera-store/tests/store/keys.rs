//! The signing-key lifecycle: next → active → retired → removed, on every backend.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tessera_core::{Jwk, SigningAlgorithm, SigningKey};
use tessera_store::testing::Backend;
use tessera_store::{KeySealing, KeyState, NewKey, Store, StoredKey, on_each_backend};

use super::{KEY_A, fresh, now};

on_each_backend!(
    a_next_key_is_published_and_only_one_waits,
    a_due_key_activates_once_as_of_its_scheduled_time_and_the_old_key_is_retired,
    a_key_not_yet_due_stays_next,
    retired_keys_are_removed_when_their_time_comes_and_never_the_active_one,
    an_emergency_activation_retires_the_active_key_at_once,
    two_instances_activating_together_leave_one_active_key,
    private_keys_are_sealed_in_place_only_where_the_row_still_holds_the_plaintext,
);

/// A key to store. Only the kid has to differ between keys; the store keeps the bytes as
/// they come.
fn key(kid: &str) -> NewKey {
    let signing = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let mut jwk: Jwk = signing.public_jwk().clone();
    jwk.common.key_id = Some(kid.to_owned());
    NewKey {
        kid: kid.to_owned(),
        algorithm: SigningAlgorithm::RS256,
        private_key: format!("private-{kid}").into_bytes(),
        public_jwk: jwk,
    }
}

async fn states(store: &Arc<dyn Store>) -> Vec<(String, KeyState)> {
    store
        .published_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect()
}

fn find(keys: &[StoredKey], kid: &str) -> StoredKey {
    keys.iter().find(|k| k.kid == kid).unwrap().clone()
}

fn at(minutes: i64) -> DateTime<Utc> {
    now() + Duration::minutes(minutes)
}

async fn a_next_key_is_published_and_only_one_waits(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    let next = t
        .store
        .insert_next_key_if_none(&key("two"), at(60), at(1))
        .await
        .unwrap();
    assert_eq!(next.kid, "two");
    assert_eq!(next.state, KeyState::Next);
    assert_eq!(next.created_at, at(1));
    assert_eq!(next.activate_at, Some(at(60)));
    assert_eq!(next.activated_at, None);
    assert_eq!(next.private_key, b"private-two");

    let again = t
        .store
        .insert_next_key_if_none(&key("three"), at(90), at(2))
        .await
        .unwrap();
    assert_eq!(
        again.kid, "two",
        "a second next key must not replace the first"
    );
    assert_eq!(
        states(&t.store).await,
        [
            ("one".into(), KeyState::Active),
            ("two".into(), KeyState::Next)
        ]
    );
    // The active key still signs until the next one is due.
    assert_eq!(t.store.active_key().await.unwrap().unwrap().kid, "one");
}

async fn a_due_key_activates_once_as_of_its_scheduled_time_and_the_old_key_is_retired(
    backend: Backend,
) {
    let t = fresh(backend).await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    t.store
        .insert_next_key_if_none(&key("two"), at(60), at(1))
        .await
        .unwrap();

    // Run late: the transition is still dated at the scheduled time.
    let activated = t
        .store
        .activate_due_key(at(75), Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(activated.as_deref(), Some("two"));
    let keys = t.store.published_keys().await.unwrap();
    let old = find(&keys, "one");
    assert_eq!(old.state, KeyState::Retired);
    assert_eq!(old.retired_at, Some(at(60)));
    assert_eq!(old.remove_at, Some(at(180)));
    assert!(
        old.private_key.is_empty(),
        "a retired key keeps no private half"
    );
    let new = find(&keys, "two");
    assert_eq!(new.state, KeyState::Active);
    assert_eq!(new.activated_at, Some(at(60)));
    assert_eq!(new.private_key, b"private-two");

    // Nothing is due any more.
    assert_eq!(
        t.store
            .activate_due_key(at(76), Duration::hours(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(t.store.active_key().await.unwrap().unwrap().kid, "two");
}

async fn a_key_not_yet_due_stays_next(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    t.store
        .insert_next_key_if_none(&key("two"), at(60), at(1))
        .await
        .unwrap();
    let early = at(60) - Duration::milliseconds(1);
    assert_eq!(
        t.store
            .activate_due_key(early, Duration::hours(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        states(&t.store).await,
        [
            ("one".into(), KeyState::Active),
            ("two".into(), KeyState::Next)
        ]
    );
    // Exactly at the scheduled time it is due.
    assert!(
        t.store
            .activate_due_key(at(60), Duration::hours(2))
            .await
            .unwrap()
            .is_some()
    );
}

async fn retired_keys_are_removed_when_their_time_comes_and_never_the_active_one(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    t.store
        .insert_next_key_if_none(&key("two"), at(60), at(1))
        .await
        .unwrap();
    t.store
        .activate_due_key(at(60), Duration::minutes(30))
        .await
        .unwrap();

    assert_eq!(t.store.remove_expired_keys(at(89)).await.unwrap(), 0);
    assert_eq!(states(&t.store).await.len(), 2);
    assert_eq!(t.store.remove_expired_keys(at(90)).await.unwrap(), 1);
    assert_eq!(states(&t.store).await, [("two".into(), KeyState::Active)]);

    // By hand: a next key can be withdrawn while its activation is still ahead, never the
    // active key, nor a next key that some instance's clock may already sign with.
    t.store
        .insert_next_key_if_none(&key("three"), at(200), at(100))
        .await
        .unwrap();
    assert!(!t.store.remove_key("two", at(100)).await.unwrap());
    assert!(!t.store.remove_key("nope", at(100)).await.unwrap());
    assert!(!t.store.remove_key("three", at(200)).await.unwrap());
    assert!(t.store.remove_key("three", at(199)).await.unwrap());
    assert_eq!(states(&t.store).await, [("two".into(), KeyState::Active)]);
}

async fn an_emergency_activation_retires_the_active_key_at_once(backend: Backend) {
    let t = fresh(backend).await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    t.store
        .insert_next_key_if_none(&key("two"), at(60), at(1))
        .await
        .unwrap();
    let active = t
        .store
        .activate_key_now(&key("urgent"), at(5), at(65))
        .await
        .unwrap();
    assert_eq!(active.kid, "urgent");
    assert_eq!(active.state, KeyState::Active);
    assert_eq!(active.activated_at, Some(at(5)));
    let keys = t.store.published_keys().await.unwrap();
    let old = find(&keys, "one");
    assert_eq!(old.state, KeyState::Retired);
    assert_eq!(old.retired_at, Some(at(5)));
    assert_eq!(old.remove_at, Some(at(65)));
    assert!(old.private_key.is_empty());
    assert!(
        keys.iter().all(|k| k.kid != "two"),
        "the pending next key goes with the emergency"
    );
    assert_eq!(keys.len(), 2);
    assert_eq!(t.store.active_key().await.unwrap().unwrap().kid, "urgent");
}

async fn two_instances_activating_together_leave_one_active_key(backend: Backend) {
    let t = fresh(backend).await;
    let other = t.db.open().await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    let (two_a, two_b) = (key("two-a"), key("two-b"));
    let (a, b) = tokio::join!(
        t.store.insert_next_key_if_none(&two_a, at(60), at(1)),
        other.insert_next_key_if_none(&two_b, at(61), at(1)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.kid, b.kid,
        "both instances must prepare the same next key"
    );

    let (a, b) = tokio::join!(
        t.store.activate_due_key(at(70), Duration::hours(1)),
        other.activate_due_key(at(70), Duration::hours(1)),
    );
    let winners: Vec<String> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one instance carries out the activation"
    );
    let keys = t.store.published_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(find(&keys, &winners[0]).state, KeyState::Active);
    assert_eq!(find(&keys, "one").state, KeyState::Retired);
    assert_eq!(
        other.active_key().await.unwrap().unwrap().kid,
        t.store.active_key().await.unwrap().unwrap().kid
    );
}

async fn private_keys_are_sealed_in_place_only_where_the_row_still_holds_the_plaintext(
    backend: Backend,
) {
    let t = fresh(backend).await;
    t.store
        .insert_active_key_if_none(&key("one"), now())
        .await
        .unwrap();
    t.store
        .insert_next_key_if_none(&key("two"), at(60), at(1))
        .await
        .unwrap();
    let sealing = |kid: &str, plaintext: &str| KeySealing {
        kid: kid.to_owned(),
        plaintext: plaintext.as_bytes().to_vec(),
        sealed: format!("sealed-{kid}").into_bytes(),
    };
    // "two" no longer holds what the caller read (another instance changed it): untouched.
    let sealed = t
        .store
        .seal_private_keys(&[
            sealing("one", "private-one"),
            sealing("two", "something-else"),
            sealing("gone", "private-gone"),
        ])
        .await
        .unwrap();
    assert_eq!(sealed, 1);
    let keys = t.store.published_keys().await.unwrap();
    assert_eq!(find(&keys, "one").private_key, b"sealed-one");
    assert_eq!(find(&keys, "two").private_key, b"private-two");
    assert_eq!(
        find(&keys, "one").state,
        KeyState::Active,
        "nothing else changes"
    );

    // Sealing again what is sealed already changes nothing; nothing to seal is no-op.
    assert_eq!(
        t.store
            .seal_private_keys(&[sealing("one", "private-one")])
            .await
            .unwrap(),
        0
    );
    assert_eq!(t.store.seal_private_keys(&[]).await.unwrap(), 0);
    assert_eq!(
        find(&t.store.published_keys().await.unwrap(), "one").private_key,
        b"sealed-one"
    );
}
