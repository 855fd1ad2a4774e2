//! The revocation feed, and revoking everything of a user or a client: each in the
//! transaction of its cause, on both dialects.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use tessera_core::Role;
use tessera_store::testing::Backend;
use tessera_store::{
    NewAccessToken, NewLoginSession, Revoked, Rotation, Store, StoreError, TokenIdentity,
    UserPatch, on_each_backend,
};

use super::{fresh, now, user, with_a_refresh_token};

on_each_backend!(
    the_feed_answers_in_order_after_a_cursor_and_forgets_entries_past_until,
    signing_out_a_user_revokes_every_token_session_and_code_of_theirs_only,
    a_new_password_changed_roles_or_disabling_revoke_and_other_changes_do_not,
    deleting_a_user_or_a_client_leaves_an_entry_for_their_jwts,
    a_rotated_secret_replaces_the_old_one_and_revokes_only_when_asked,
    an_entry_covers_exactly_the_tokens_it_names,
    concurrent_writers_never_put_an_entry_behind_a_cursor_a_reader_passed,
    revoking_the_same_thing_again_does_not_grow_the_feed,
    a_live_token_of_a_family_recorded_as_revoked_is_never_spent,
);

fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

fn jti(n: u32) -> String {
    format!("jti-{n}")
}

async fn the_feed_answers_in_order_after_a_cursor_and_forgets_entries_past_until(backend: Backend) {
    let t = fresh(backend).await;
    let empty = t.store.revocations(0, now()).await.unwrap();
    assert_eq!((empty.head, empty.entries.len()), (0, 0));

    t.store
        .revoke_jwt(&jti(1), now() + minutes(5), now())
        .await
        .unwrap();
    let family = uuid::Uuid::new_v4();
    t.store
        .revoke_family(family, now(), Some(now() + minutes(30)))
        .await
        .unwrap();
    let first = t.store.revocations(0, now()).await.unwrap();
    let kinds: Vec<_> = first.entries.iter().map(|e| e.revoked.clone()).collect();
    assert_eq!(
        kinds,
        [Revoked::Jti(jti(1)), Revoked::Sid(family.to_string())]
    );
    assert_eq!(first.entries[0].until, now() + minutes(5));
    assert!(first.entries[0].seq < first.entries[1].seq);
    assert_eq!(first.head, first.entries[1].seq);

    // After the cursor: only what is new.
    t.store
        .revoke_jwt(&jti(2), now() + minutes(60), now())
        .await
        .unwrap();
    let next = t.store.revocations(first.head, now()).await.unwrap();
    assert_eq!(
        next.entries
            .iter()
            .map(|e| e.revoked.clone())
            .collect::<Vec<_>>(),
        [Revoked::Jti(jti(2))]
    );
    let none = t.store.revocations(next.head, now()).await.unwrap();
    assert!(none.entries.is_empty());
    assert_eq!(none.head, next.head);

    // Past `until` an entry is no longer answered, and the purge deletes it; the newest
    // entry stays (expired or not), so the head never moves back.
    let later = now() + minutes(45);
    let whole = t.store.revocations(0, later).await.unwrap();
    assert_eq!(
        whole
            .entries
            .iter()
            .map(|e| e.revoked.clone())
            .collect::<Vec<_>>(),
        [Revoked::Jti(jti(2))]
    );
    t.store.purge_expired(now() + minutes(120)).await.unwrap();
    assert_eq!(t.store.revocation_head().await.unwrap(), next.head);
    assert!(
        t.store
            .revocations(0, now() + minutes(120))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    t.store
        .revoke_jwt(&jti(3), now() + minutes(200), now() + minutes(120))
        .await
        .unwrap();
    let after_purge = t
        .store
        .revocations(next.head, now() + minutes(120))
        .await
        .unwrap();
    assert_eq!(after_purge.entries.len(), 1);
    assert!(after_purge.head > next.head);
}

/// A user with a refresh family, an opaque token of it, a login session and an unredeemed
/// code; and another user with the same.
async fn signing_out_a_user_revokes_every_token_session_and_code_of_theirs_only(backend: Backend) {
    let (t, refresh) = with_a_refresh_token(backend).await;
    let alice = t
        .store
        .find_user_by_id(refresh.user_id)
        .await
        .unwrap()
        .unwrap();
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    for (owner, tag) in [(alice.id, "a"), (bob.id, "b")] {
        t.store
            .insert_access_token(
                &NewAccessToken {
                    token_hash: format!("access-{tag}"),
                    client_id: "demo".parse().unwrap(),
                    user_id: Some(owner),
                    subject: owner.to_string(),
                    scope: "basic".parse().unwrap(),
                    expires_at: now() + minutes(15),
                    family_id: None,
                },
                now(),
            )
            .await
            .unwrap();
        t.store
            .insert_login_session(
                &NewLoginSession {
                    session_hash: format!("session-{tag}"),
                    user_id: owner,
                    expires_at: now() + minutes(60),
                },
                now(),
            )
            .await
            .unwrap();
    }
    let at = now() + Duration::milliseconds(1_500);
    let revoked = t.store.revoke_user(alice.id, at).await.unwrap().unwrap();
    assert_eq!(revoked.tokens_revoked_at, Some(at));

    let stored = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(at));
    assert!(matches!(
        t.store
            .rotate_refresh_token("r1", "r2", at + minutes(1))
            .await
            .unwrap(),
        Rotation::Revoked
    ));
    let access = t
        .store
        .find_access_token("access-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(access.revoked_at, Some(at));
    assert!(
        t.store
            .find_login_session("session-a")
            .await
            .unwrap()
            .is_none()
    );
    // The code issued before the sign-out can no longer be redeemed.
    assert!(matches!(
        t.store
            .redeem_authorization_code("code", uuid::Uuid::new_v4(), at)
            .await
            .unwrap(),
        tessera_store::Redemption::Unknown
    ));
    // Bob keeps everything.
    let bobs = t
        .store
        .find_access_token("access-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bobs.revoked_at, None);
    assert!(
        t.store
            .find_login_session("session-b")
            .await
            .unwrap()
            .is_some()
    );

    // The feed says: every token of alice's issued in or before that second.
    let page = t.store.revocations(0, at).await.unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|e| e.revoked.clone())
            .collect::<Vec<_>>(),
        [Revoked::Sub {
            sub: alice.id.to_string(),
            issued_before: now() + Duration::seconds(1),
        }]
    );
    assert_eq!(
        page.entries[0].until,
        at + tessera_store::LONGEST_ACCESS_TOKEN + tessera_store::REVOCATION_LEEWAY
    );
    // An unknown user: nothing, and no entry.
    assert!(
        t.store
            .revoke_user(uuid::Uuid::new_v4(), at)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(t.store.revocations(0, at).await.unwrap().entries.len(), 1);
}

async fn a_new_password_changed_roles_or_disabling_revoke_and_other_changes_do_not(
    backend: Backend,
) {
    let (t, refresh) = with_a_refresh_token(backend).await;
    let alice = t
        .store
        .find_user_by_id(refresh.user_id)
        .await
        .unwrap()
        .unwrap();
    let acme = alice.company.clone();
    let entries = |store: Arc<dyn Store>| async move {
        store.revocations(0, now()).await.unwrap().entries.len()
    };
    // Each change a minute after the last, so that each revocation is a new cutoff.
    let patch = |patch: UserPatch, minute: i64| {
        let store = t.store.clone();
        let acme = acme.clone();
        async move {
            store
                .update_user(&acme, alice.id, &patch, now() + minutes(minute))
                .await
                .unwrap()
                .unwrap()
        }
    };
    // The same roles again, and enabling an enabled user: nothing revoked.
    patch(
        UserPatch {
            roles: Some(vec![Role::Admin]),
            disabled: Some(false),
            ..UserPatch::default()
        },
        0,
    )
    .await;
    assert_eq!(entries(t.store.clone()).await, 0);
    let live = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(live.revoked_at, None);

    let changed = patch(
        UserPatch {
            roles: Some(vec![Role::User]),
            ..UserPatch::default()
        },
        0,
    )
    .await;
    assert_eq!(changed.tokens_revoked_at, Some(now()));
    assert_eq!(entries(t.store.clone()).await, 1);
    let revoked = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(now()));

    patch(
        UserPatch {
            password_hash: Some("$argon2id$v=19$new".into()),
            ..UserPatch::default()
        },
        1,
    )
    .await;
    assert_eq!(entries(t.store.clone()).await, 2);
    patch(
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
        2,
    )
    .await;
    assert_eq!(entries(t.store.clone()).await, 3);
    // Disabling by name (the command line) revokes too; enabling does not.
    t.store
        .set_user_disabled(&alice.username, false, now() + minutes(3))
        .await
        .unwrap();
    assert_eq!(entries(t.store.clone()).await, 3);
    let disabled = t
        .store
        .set_user_disabled(&alice.username, true, now() + minutes(4))
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.tokens_revoked_at, Some(now() + minutes(4)));
    assert_eq!(entries(t.store.clone()).await, 4);
}

async fn deleting_a_user_or_a_client_leaves_an_entry_for_their_jwts(backend: Backend) {
    let (t, refresh) = with_a_refresh_token(backend).await;
    let alice = t
        .store
        .find_user_by_id(refresh.user_id)
        .await
        .unwrap()
        .unwrap();
    let bob = t
        .store
        .create_user(&user("acme", "bob", &[Role::User]), now())
        .await
        .unwrap();
    t.store.delete_user(&bob.username, now()).await.unwrap();
    assert!(
        t.store
            .delete_user_in(&alice.company, alice.id, now())
            .await
            .unwrap()
    );
    assert!(t.store.delete_client("demo", now()).await.unwrap());
    assert!(!t.store.delete_client("demo", now()).await.unwrap());
    assert!(t.store.find_client("demo").await.unwrap().is_none());
    let page = t.store.revocations(0, now()).await.unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|e| e.revoked.clone())
            .collect::<Vec<_>>(),
        [
            Revoked::Sub {
                sub: bob.id.to_string(),
                issued_before: now()
            },
            Revoked::Sub {
                sub: alice.id.to_string(),
                issued_before: now()
            },
            // A client's cutoff reaches a second past the change: servers that still
            // hold the client in memory may issue it a token meanwhile.
            Revoked::ClientId {
                client_id: "demo".into(),
                issued_before: now() + chrono::Duration::seconds(1)
            },
        ]
    );
    // A failed delete writes nothing.
    assert!(matches!(
        t.store.delete_user(&bob.username, now()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        t.store.revocations(0, now()).await.unwrap().entries.len(),
        3
    );
}

async fn a_rotated_secret_replaces_the_old_one_and_revokes_only_when_asked(backend: Backend) {
    let (t, _refresh) = with_a_refresh_token(backend).await;
    let digest = |s: &str| tessera_core::secret::digest(s);
    let client = t
        .store
        .rotate_client_secret("demo", &digest("second"), false, now())
        .await
        .unwrap();
    assert_eq!(client.secret_hash, Some(digest("second")));
    assert_eq!(client.tokens_revoked_at, None);
    let live = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(live.revoked_at, None);
    assert!(
        t.store
            .revocations(0, now())
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    let later = now() + minutes(1);
    let client = t
        .store
        .rotate_client_secret("demo", &digest("third"), true, later)
        .await
        .unwrap();
    assert_eq!(client.secret_hash, Some(digest("third")));
    assert_eq!(
        client.tokens_revoked_at,
        Some(later + chrono::Duration::seconds(1)),
        "issuance waits past the second in which other servers may still hold the client"
    );
    let revoked = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    let page = t.store.revocations(0, later).await.unwrap();
    assert_eq!(
        page.entries[0].revoked,
        Revoked::ClientId {
            client_id: "demo".into(),
            issued_before: later + chrono::Duration::seconds(1)
        }
    );

    assert!(matches!(
        t.store
            .rotate_client_secret("nobody", &digest("x"), true, later)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let mut public = super::client("spa");
    public.secret_hash = None;
    t.store.create_client(&public, now()).await.unwrap();
    assert!(matches!(
        t.store
            .rotate_client_secret("spa", &digest("x"), true, later)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        t.store.revocations(0, later).await.unwrap().entries.len(),
        1
    );
}

async fn an_entry_covers_exactly_the_tokens_it_names(backend: Backend) {
    let (t, refresh) = with_a_refresh_token(backend).await;
    let alice = refresh.user_id.to_string();
    let family = uuid::Uuid::new_v4().to_string();
    let token = |iat: i64| TokenIdentity {
        jti: "j-live",
        sid: Some(family.as_str()),
        sub: alice.as_str(),
        client_id: "demo",
        iat,
    };
    let cut = now().timestamp();
    let covered = |identity| {
        let store = t.store.clone();
        async move { store.jwt_revoked(identity, now()).await.unwrap() }
    };
    assert!(!covered(token(cut)).await);

    t.store
        .revoke_jwt("j-dead", now() + minutes(5), now())
        .await
        .unwrap();
    assert!(
        covered(TokenIdentity {
            jti: "j-dead",
            ..token(cut)
        })
        .await
    );
    assert!(!covered(token(cut)).await);

    t.store
        .revoke_family(family.parse().unwrap(), now(), Some(now() + minutes(5)))
        .await
        .unwrap();
    assert!(covered(token(cut + 100)).await);
    assert!(
        !covered(TokenIdentity {
            sid: None,
            ..token(cut)
        })
        .await
    );

    t.store
        .revoke_user(refresh.user_id, now())
        .await
        .unwrap()
        .unwrap();
    let no_sid = |iat| TokenIdentity {
        sid: None,
        ..token(iat)
    };
    assert!(covered(no_sid(cut)).await, "iat at the cutoff is revoked");
    assert!(covered(no_sid(cut - 60)).await);
    assert!(!covered(no_sid(cut + 1)).await, "a later token is not");

    // A client's cutoff reaches its own tokens, whoever they speak for.
    t.store
        .rotate_client_secret("demo", "d", true, now() + minutes(1))
        .await
        .unwrap();
    let clients = |iat| TokenIdentity {
        sub: "someone-else",
        ..no_sid(iat)
    };
    // A minute later, plus the second a stale server may still issue in.
    assert!(covered(clients(cut + 61)).await);
    assert!(!covered(clients(cut + 62)).await);
    assert!(
        !covered(TokenIdentity {
            client_id: "other",
            ..clients(cut + 60)
        })
        .await
    );
}

/// Twenty writers at once while a reader follows the cursor: the reader sees every entry
/// exactly once, none behind its cursor.
async fn concurrent_writers_never_put_an_entry_behind_a_cursor_a_reader_passed(backend: Backend) {
    let t = fresh(backend).await;
    let writers: Vec<_> = (0..20)
        .map(|n| {
            let store = t.store.clone();
            tokio::spawn(async move {
                store
                    .revoke_jwt(&jti(n), now() + minutes(5), now())
                    .await
                    .unwrap();
            })
        })
        .collect();
    let reader = {
        let store = t.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while seen.len() < 20 && std::time::Instant::now() < deadline {
                let page = store.revocations(cursor, now()).await.unwrap();
                seen.extend(page.entries.into_iter().map(|e| e.revoked));
                cursor = page.head;
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let distinct: BTreeSet<_> = seen
        .iter()
        .map(|r| match r {
            Revoked::Jti(jti) => jti.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(seen.len(), 20, "each entry exactly once");
    assert_eq!(distinct, (0..20).map(jti).collect::<BTreeSet<_>>());
}

/// The same JWT, family, user or client revoked again: no new entry (a client replaying a
/// spent refresh token or revoking one JWT in a loop cannot grow the feed), unless the new
/// one reaches further.
async fn revoking_the_same_thing_again_does_not_grow_the_feed(backend: Backend) {
    let (t, refresh) = with_a_refresh_token(backend).await;
    let count = |store: Arc<dyn Store>| async move {
        store.revocations(0, now()).await.unwrap().entries.len()
    };
    for _ in 0..3 {
        t.store
            .revoke_jwt(&jti(1), now() + minutes(5), now())
            .await
            .unwrap();
        t.store
            .revoke_family(refresh.family_id, now(), Some(now() + minutes(30)))
            .await
            .unwrap();
        t.store.revoke_user(refresh.user_id, now()).await.unwrap();
    }
    assert_eq!(count(t.store.clone()).await, 3, "one each");
    // A later cutoff, or a later `until`, is new information.
    t.store
        .revoke_user(refresh.user_id, now() + minutes(1))
        .await
        .unwrap();
    t.store
        .revoke_jwt(&jti(1), now() + minutes(10), now())
        .await
        .unwrap();
    assert_eq!(count(t.store.clone()).await, 5);
}

/// On PostgreSQL a rotation racing "sign out everywhere" can store its successor after
/// the revocation's update ran; the family is recorded as revoked first, so the successor
/// is never spent. The state is made here directly.
async fn a_live_token_of_a_family_recorded_as_revoked_is_never_spent(backend: Backend) {
    let (t, refresh) = with_a_refresh_token(backend).await;
    let id = refresh.family_id.to_string();
    let at = "2026-11-27T12:00:00+00:00";
    super::audit::execute(
        backend,
        t.db.url(),
        &format!("INSERT INTO revoked_families (family_id, revoked_at) VALUES ('{id}', '{at}')"),
    )
    .await;
    assert!(matches!(
        t.store
            .rotate_refresh_token("r1", "r2", now() + minutes(1))
            .await
            .unwrap(),
        Rotation::Revoked
    ));
    let token = t.store.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(token.used_at, None, "not spent");
    assert!(t.store.find_refresh_token("r2").await.unwrap().is_none());
}
