//! The audit log: appending and listing events, and the buffered writer in front of it,
//! on every backend.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use tessera_store::testing::Backend;
use tessera_store::{
    AuditEvent, AuditFilter, AuditKind, AuditLog, NewAuditEvent, Store, on_each_backend,
};

use super::{fresh, now};

on_each_backend!(
    events_are_listed_newest_first_with_every_field_as_recorded,
    the_filter_selects_by_kind_actor_and_time_and_bounds_the_count,
    text_no_database_can_hold_or_without_bound_is_stored_cleaned_and_cut,
    events_recorded_through_the_log_are_written_in_order_by_flush,
    more_events_than_one_batch_all_arrive,
    the_writer_writes_everything_then_ends_when_every_handle_is_dropped,
    a_full_queue_makes_record_wait_instead_of_dropping_events,
    a_failed_batch_is_retried_and_one_that_keeps_failing_is_skipped,
    a_durable_record_is_stored_before_it_returns_and_says_when_it_is_not,
    the_purge_deletes_the_events_before_the_cutoff_and_keeps_those_at_or_after_it,
    a_purge_of_many_batches_run_twice_at_once_deletes_and_counts_each_event_once,
);

fn at(seconds: i64) -> DateTime<Utc> {
    now() + chrono::Duration::seconds(seconds)
}

async fn all(store: &Arc<dyn Store>) -> Vec<AuditEvent> {
    store
        .list_audit_events(&AuditFilter {
            limit: AuditFilter::MAX_LIMIT,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

fn actors(events: &[AuditEvent]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.event.actor.as_deref().unwrap_or("-"))
        .collect()
}

/// The log and its writer, running on the test's runtime.
fn spawn_log(store: &Arc<dyn Store>) -> (AuditLog, tokio::task::JoinHandle<()>) {
    let (log, writer) = AuditLog::new(store.clone());
    (log, tokio::spawn(writer.run()))
}

/// Runs one statement on a connection of its own, outside the store.
pub(crate) async fn execute(backend: Backend, url: &str, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

async fn events_are_listed_newest_first_with_every_field_as_recorded(backend: Backend) {
    let t = fresh(backend).await;
    assert!(all(&t.store).await.is_empty());
    t.store.record_audit_events(&[]).await.unwrap();

    let login = NewAuditEvent::new(
        AuditKind::LoginSucceeded,
        at(1) + chrono::Duration::microseconds(123_456),
    )
    .actor("alice")
    .client_id("demo-jwt")
    .company("acme")
    .target("alice")
    .address("192.0.2.7")
    .detail("grant=password format=jwt scope=basic");
    let issued = NewAuditEvent::new(AuditKind::TokenIssued, at(2)).actor("alice");
    let rotated = NewAuditEvent::new(AuditKind::KeyRotated, at(0)).actor("cli");
    t.store
        .record_audit_events(&[login.clone(), issued.clone(), rotated.clone()])
        .await
        .unwrap();

    let listed = all(&t.store).await;
    let events: Vec<&NewAuditEvent> = listed.iter().map(|e| &e.event).collect();
    assert_eq!(events, [&issued, &login, &rotated], "newest first");
    assert_eq!(listed[2].event.client_id, None);
    // Ids follow the order the events were given in.
    assert!(listed[1].id < listed[0].id && listed[0].id < listed[2].id);

    // Events of one instant come newest-recorded first.
    let same: Vec<NewAuditEvent> = (0..5)
        .map(|i| NewAuditEvent::new(AuditKind::TokenRevoked, at(10)).actor(format!("r{i}")))
        .collect();
    t.store.record_audit_events(&same).await.unwrap();
    assert_eq!(
        actors(&all(&t.store).await)[..5],
        ["r4", "r3", "r2", "r1", "r0"]
    );
}

async fn the_filter_selects_by_kind_actor_and_time_and_bounds_the_count(backend: Backend) {
    let t = fresh(backend).await;
    let mut events = Vec::new();
    for i in 0..120 {
        let (kind, actor) = match i % 3 {
            0 => (AuditKind::LoginFailed, "mallory"),
            1 => (AuditKind::LoginSucceeded, "alice"),
            _ => (AuditKind::TokenIssued, "alice"),
        };
        events.push(NewAuditEvent::new(kind, at(i)).actor(actor));
    }
    t.store.record_audit_events(&events).await.unwrap();
    let list = |filter: AuditFilter| {
        let store = t.store.clone();
        async move { store.list_audit_events(&filter).await.unwrap() }
    };

    // No limit given: the default.
    let newest = list(AuditFilter::default()).await;
    assert_eq!(newest.len(), 100);
    assert_eq!(newest[0].event.at, at(119));
    assert_eq!(newest[99].event.at, at(20));

    let failed = list(AuditFilter {
        kind: Some(AuditKind::LoginFailed),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(failed.len(), 40);
    assert!(
        failed
            .iter()
            .all(|e| e.event.kind == AuditKind::LoginFailed)
    );

    let alice = list(AuditFilter {
        actor: Some("alice".into()),
        limit: 1000,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(alice.len(), 80);
    // The actor is matched exactly.
    let nobody = list(AuditFilter {
        actor: Some("Alice".into()),
        ..AuditFilter::default()
    })
    .await;
    assert!(nobody.is_empty());

    // `since` includes its own instant.
    let recent = list(AuditFilter {
        since: Some(at(110)),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(recent.len(), 10);
    assert_eq!(recent.last().unwrap().event.at, at(110));

    let combined = list(AuditFilter {
        kind: Some(AuditKind::TokenIssued),
        actor: Some("alice".into()),
        since: Some(at(100)),
        limit: 3,
    })
    .await;
    let times: Vec<_> = combined.iter().map(|e| e.event.at).collect();
    assert_eq!(times, [at(119), at(116), at(113)]);

    assert_eq!(AuditFilter::default().effective_limit(), 100);
    let huge = AuditFilter {
        limit: u32::MAX,
        ..AuditFilter::default()
    };
    assert_eq!(huge.effective_limit(), 10_000);
    assert_eq!(list(huge).await.len(), 120);
}

async fn text_no_database_can_hold_or_without_bound_is_stored_cleaned_and_cut(backend: Backend) {
    let t = fresh(backend).await;
    let actor = "eve\0'; DROP TABLE audit_events; --";
    let long = "é".repeat(2000);
    t.store
        .record_audit_events(&[NewAuditEvent::new(AuditKind::LoginFailed, at(0))
            .actor(actor)
            .detail(long.clone())])
        .await
        .unwrap();
    // Filtering by the same raw name finds it.
    let found = t
        .store
        .list_audit_events(&AuditFilter {
            actor: Some(actor.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let event = &found[0].event;
    assert_eq!(
        event.actor.as_deref(),
        Some("eve\u{FFFD}'; DROP TABLE audit_events; --")
    );
    let detail = event.detail.as_deref().unwrap();
    assert_eq!(detail.chars().count(), NewAuditEvent::MAX_FIELD_CHARS);
    assert!(long.starts_with(detail));
}

async fn events_recorded_through_the_log_are_written_in_order_by_flush(backend: Backend) {
    let t = fresh(backend).await;
    let (log, _writer) = spawn_log(&t.store);
    for i in 0..10 {
        log.record(NewAuditEvent::new(AuditKind::TokenIssued, at(0)).actor(format!("u{i}")))
            .await;
    }
    log.flush().await;
    assert_eq!(
        actors(&all(&t.store).await),
        ["u9", "u8", "u7", "u6", "u5", "u4", "u3", "u2", "u1", "u0"]
    );
    // Flushing with nothing queued returns too.
    log.flush().await;
}

async fn more_events_than_one_batch_all_arrive(backend: Backend) {
    let t = fresh(backend).await;
    let (log, _writer) = spawn_log(&t.store);
    // Four handles record at once, 1000 events in all: several batches of at most 256.
    let mut tasks = Vec::new();
    for task in 0..4 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                log.record(
                    NewAuditEvent::new(AuditKind::LoginSucceeded, at(i)).actor(format!("t{task}")),
                )
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    log.flush().await;
    let events = all(&t.store).await;
    assert_eq!(events.len(), 1000);
    for task in 0..4 {
        let name = format!("t{task}");
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.event.actor.as_deref() == Some(&name))
            .collect();
        assert_eq!(mine.len(), 250, "{name}");
        // Each handle's events keep their order: newest time, highest id.
        assert!(mine.windows(2).all(|w| w[0].id > w[1].id), "{name}");
    }
}

async fn the_writer_writes_everything_then_ends_when_every_handle_is_dropped(backend: Backend) {
    let t = fresh(backend).await;
    let (log, writer) = spawn_log(&t.store);
    let other = log.clone();
    for i in 0..300 {
        other
            .record(NewAuditEvent::new(AuditKind::UserCreated, at(i)).target(format!("u{i}")))
            .await;
    }
    drop(other);
    assert!(!writer.is_finished(), "one handle is still held");
    drop(log);
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer ends once every handle is gone")
        .unwrap();
    assert_eq!(all(&t.store).await.len(), 300);

    // A handle whose writer is gone loses the event, logging it, and flush returns.
    let (log, writer) = AuditLog::new(t.store.clone());
    drop(writer);
    log.record(NewAuditEvent::new(AuditKind::UserDeleted, at(0)))
        .await;
    log.flush().await;
    assert_eq!(all(&t.store).await.len(), 300);
}

async fn a_full_queue_makes_record_wait_instead_of_dropping_events(backend: Backend) {
    let t = fresh(backend).await;
    let (log, writer) = AuditLog::new(t.store.clone());
    let queue = tessera_store::audit::QUEUE;
    for i in 0..queue {
        log.record(NewAuditEvent::new(AuditKind::RateLimited, at(0)).detail(i.to_string()))
            .await;
    }
    let one_more = log.record(NewAuditEvent::new(AuditKind::RateLimited, at(1)));
    tokio::pin!(one_more);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut one_more)
            .await
            .is_err(),
        "record waits while the queue is full"
    );
    tokio::spawn(writer.run());
    one_more.await;
    log.flush().await;
    let events = all(&t.store).await;
    assert_eq!(events.len(), queue + 1);
    assert_eq!(events[0].event.at, at(1));
}

async fn a_failed_batch_is_retried_and_one_that_keeps_failing_is_skipped(backend: Backend) {
    let t = fresh(backend).await;
    let url = t.db.url().to_owned();
    let away = "ALTER TABLE audit_events RENAME TO audit_events_away";
    let back = "ALTER TABLE audit_events_away RENAME TO audit_events";
    let (log, _writer) = spawn_log(&t.store);

    // Away for a moment: the retries (after 100 ms, then 400 ms more) get it in.
    execute(backend, &url, away).await;
    let restore = {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            execute(backend, &url, back).await;
        })
    };
    log.record(NewAuditEvent::new(AuditKind::KeyPublished, at(0)).target("kid-1"))
        .await;
    log.flush().await;
    restore.await.unwrap();
    assert_eq!(all(&t.store).await.len(), 1);

    // Away for longer than every retry: that batch is lost, and the writer goes on.
    execute(backend, &url, away).await;
    let started = std::time::Instant::now();
    log.record(NewAuditEvent::new(AuditKind::KeyActivated, at(1)).target("kid-1"))
        .await;
    log.flush().await;
    assert!(
        started.elapsed() >= Duration::from_millis(2100),
        "three retries, after 100, 400 and 1600 ms"
    );
    execute(backend, &url, back).await;
    log.record(NewAuditEvent::new(AuditKind::KeyRemoved, at(2)).target("kid-0"))
        .await;
    log.flush().await;
    let kinds: Vec<_> = all(&t.store).await.iter().map(|e| e.event.kind).collect();
    assert_eq!(kinds, [AuditKind::KeyRemoved, AuditKind::KeyPublished]);
}

async fn a_durable_record_is_stored_before_it_returns_and_says_when_it_is_not(backend: Backend) {
    let t = fresh(backend).await;
    let (log, _writer) = spawn_log(&t.store);
    // Stored by the time it returns: no flush, no wait for a batch to fill.
    let started = std::time::Instant::now();
    assert!(
        log.record_durable(NewAuditEvent::new(AuditKind::TokenIssued, at(0)).target("jti a"))
            .await
    );
    assert!(started.elapsed() < tessera_store::AUDIT_DURABLE_WAIT);
    assert_eq!(actors_or_targets(&all(&t.store).await), ["jti a"]);

    // A table that cannot take it: `false` within the wait, and nothing half-written.
    let url = t.db.url().to_owned();
    execute(
        backend,
        &url,
        "ALTER TABLE audit_events RENAME TO audit_events_away",
    )
    .await;
    let started = std::time::Instant::now();
    assert!(
        !log.record_durable(NewAuditEvent::new(AuditKind::TokenIssued, at(1)).target("jti b"))
            .await
    );
    assert!(started.elapsed() <= tessera_store::AUDIT_DURABLE_WAIT + Duration::from_millis(500));
    execute(
        backend,
        &url,
        "ALTER TABLE audit_events_away RENAME TO audit_events",
    )
    .await;
    log.flush().await;
    assert!(
        log.record_durable(NewAuditEvent::new(AuditKind::TokenIssued, at(2)).target("jti c"))
            .await
    );
    let targets = actors_or_targets(&all(&t.store).await);
    assert!(targets.contains(&"jti c".to_owned()), "{targets:?}");
}

fn actors_or_targets(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.event.target.clone())
        .collect()
}

#[test]
fn every_kind_parses_back_from_its_name_and_an_unknown_name_lists_them() {
    let mut names = std::collections::HashSet::new();
    for kind in AuditKind::ALL {
        assert_eq!(kind.as_str().parse::<AuditKind>().unwrap(), *kind);
        assert_eq!(kind.to_string(), kind.as_str());
        assert!(names.insert(kind.as_str()), "{kind} twice");
    }
    assert_eq!(names.len(), 18);
    assert_eq!(AuditKind::RefreshReuse.as_str(), "refresh.reuse_detected");
    let err = "Login.Failed".parse::<AuditKind>().unwrap_err().to_string();
    assert!(
        err.starts_with("\"Login.Failed\" is not one of login.succeeded, login.failed, "),
        "{err}"
    );
    assert!(
        err.ends_with(", client.secret_rotated, audit.purged"),
        "{err}"
    );
}

async fn the_purge_deletes_the_events_before_the_cutoff_and_keeps_those_at_or_after_it(
    backend: Backend,
) {
    let t = fresh(backend).await;
    assert_eq!(t.store.purge_audit_events(at(0)).await.unwrap(), 0);
    let micros = chrono::Duration::microseconds;
    // Around the cutoff, with fractions of every length SQLite's text may hold.
    let times = [
        ("old", at(-3600)),
        ("second-before", at(-1)),
        ("half-before", at(0) - micros(500_000)),
        ("micro-before", at(0) - micros(1)),
        ("cutoff", at(0)),
        ("micro-after", at(0) + micros(1)),
        ("milli-after", at(0) + micros(1000)),
        ("later", at(60)),
    ];
    let events: Vec<NewAuditEvent> = times
        .iter()
        .map(|(name, t)| NewAuditEvent::new(AuditKind::TokenIssued, *t).actor(*name))
        .collect();
    t.store.record_audit_events(&events).await.unwrap();

    assert_eq!(t.store.purge_audit_events(at(0)).await.unwrap(), 4);
    assert_eq!(
        actors(&all(&t.store).await),
        ["later", "milli-after", "micro-after", "cutoff"],
        "the events at the cutoff and after it stay"
    );
    // Purging again finds nothing; the log still takes and lists events.
    assert_eq!(t.store.purge_audit_events(at(0)).await.unwrap(), 0);
    t.store
        .record_audit_events(&[NewAuditEvent::new(AuditKind::AuditPurged, at(61)).actor("cli")])
        .await
        .unwrap();
    assert_eq!(all(&t.store).await.len(), 5);
    assert_eq!(all(&t.store).await[0].event.kind, AuditKind::AuditPurged);
}

async fn a_purge_of_many_batches_run_twice_at_once_deletes_and_counts_each_event_once(
    backend: Backend,
) {
    let t = fresh(backend).await;
    let old = 2 * tessera_store::AUDIT_PURGE_BATCH + 345;
    let events: Vec<NewAuditEvent> = (0..old)
        .map(|i| NewAuditEvent::new(AuditKind::LoginFailed, at(-100_000 + i)).actor("mallory"))
        .chain((0..3).map(|i| NewAuditEvent::new(AuditKind::LoginSucceeded, at(i)).actor("alice")))
        .collect();
    t.store.record_audit_events(&events).await.unwrap();

    // Two instances purging at once (concurrently on PostgreSQL, taking turns on SQLite):
    // every old event goes, and each is counted by one of them.
    let (first, second) = tokio::join!(
        t.store.purge_audit_events(at(0)),
        t.store.purge_audit_events(at(0))
    );
    assert_eq!(first.unwrap() + second.unwrap(), old.unsigned_abs());
    assert_eq!(actors(&all(&t.store).await), ["alice", "alice", "alice"]);
}

/// A database cut longer than the retries of a refused batch (about 2 s) loses no audit
/// event: the writer keeps trying while the database is unavailable (the reliability soak
/// lost events to a 7-second cut before).
#[tokio::test]
async fn an_outage_longer_than_the_retries_loses_no_event() {
    if !Backend::postgres_enabled() {
        return;
    }
    let (db, proxy, store) = super::behind_proxy().await;
    let (log, _writer) = spawn_log(&store);
    proxy.cut();
    log.record(NewAuditEvent::new(AuditKind::TokenIssued, at(0)).target("during the cut"))
        .await;
    let flushed = tokio::spawn({
        let log = log.clone();
        async move { log.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!flushed.is_finished(), "the writer is still trying");
    proxy.restore();
    tokio::time::timeout(Duration::from_secs(10), flushed)
        .await
        .unwrap()
        .unwrap();
    let direct = db.open().await;
    let events = all(&direct).await;
    assert_eq!(
        events
            .iter()
            .filter_map(|e| e.event.target.as_deref())
            .collect::<Vec<_>>(),
        ["during the cut"]
    );
}
