//! `tessera audit list`: the table, its filters and `--json`, on events recorded through
//! the store; `tessera audit purge` and the retention of a running server.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use tessera_store::on_each_backend;
use tessera_store::testing::Backend;
use tessera_store::{AuditKind, NewAuditEvent};

use crate::{Server, Workspace, within_secs};

on_each_backend!(
    audit_list_prints_the_newest_events_filtered_as_a_table_or_json,
    audit_purge_deletes_the_events_before_a_duration_ago_or_a_time_and_says_how_many,
    a_running_server_purges_the_events_older_than_its_retention,
);

/// The rows of `tessera audit list ARGS` under its header, as words (every detail but the
/// last event's has no space in it).
fn rows(ws: &Workspace, args: &[&str]) -> Vec<Vec<String>> {
    let out = ws.ok(&[&["audit", "list"], args].concat(), "");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "AT", "KIND", "ACTOR", "CLIENT", "COMPANY", "TARGET", "ADDRESS", "DETAIL"
        ]
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn kinds(rows: &[Vec<String>]) -> Vec<&str> {
    rows.iter().map(|r| r[1].as_str()).collect()
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn audit_list_prints_the_newest_events_filtered_as_a_table_or_json(backend: Backend) {
    let ws = Workspace::new(backend);
    let now = Utc::now().trunc_subsecs(0);
    let minutes = chrono::Duration::minutes;
    let failed = NewAuditEvent::new(AuditKind::LoginFailed, now - minutes(180))
        .actor("mallory")
        .client_id("demo-jwt")
        .address("192.0.2.9")
        .detail("reason=bad_password");
    let login = NewAuditEvent::new(AuditKind::LoginSucceeded, now - minutes(2))
        .actor("alice")
        .client_id("demo-jwt")
        .company("acme")
        .target("alice")
        .address("192.0.2.7")
        .detail("grant=password");
    let rotated = NewAuditEvent::new(AuditKind::KeyRotated, now - minutes(1))
        .actor("cli")
        .target("kid-2");
    // A detail that came from a request and tries to steer the terminal.
    let issued = NewAuditEvent::new(AuditKind::TokenIssued, now - chrono::Duration::seconds(30))
        .actor("alice")
        .detail("scope=basic \u{1b}[2J\nforged line");
    let store = ws.db.open().await;
    store
        .record_audit_events(&[failed, login, rotated, issued])
        .await
        .unwrap();

    let all = rows(&ws, &[]);
    assert_eq!(
        kinds(&all),
        [
            "token.issued",
            "key.rotated",
            "login.succeeded",
            "login.failed"
        ],
        "newest first"
    );
    assert_eq!(
        all[2],
        [
            secs(now - minutes(2)).as_str(),
            "login.succeeded",
            "alice",
            "demo-jwt",
            "acme",
            "alice",
            "192.0.2.7",
            "grant=password"
        ]
    );
    assert_eq!(
        all[1],
        [
            secs(now - minutes(1)).as_str(),
            "key.rotated",
            "cli",
            "-",
            "-",
            "kid-2",
            "-",
            "-"
        ]
    );
    let table = ws.ok(&["audit", "list"], "");
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(
        table.contains(r"scope=basic \u{1b}[2J\nforged line"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 5);

    assert_eq!(
        kinds(&rows(&ws, &["--kind", "login.failed"])),
        ["login.failed"]
    );
    assert_eq!(
        kinds(&rows(&ws, &["--actor", "alice"])),
        ["token.issued", "login.succeeded"]
    );
    assert_eq!(
        kinds(&rows(&ws, &["--since", "1h"])),
        ["token.issued", "key.rotated", "login.succeeded"]
    );
    assert_eq!(
        kinds(&rows(&ws, &["--since", "90s", "--actor", "alice"])),
        ["token.issued"]
    );
    assert_eq!(
        kinds(&rows(&ws, &["--limit", "2"])),
        ["token.issued", "key.rotated"]
    );
    assert!(rows(&ws, &["--kind", "user.deleted"]).is_empty());

    let json = ws.ok(&["audit", "list", "--json", "--limit", "3"], "");
    let objects: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3);
    assert_eq!(
        objects[2],
        serde_json::json!({
            "at": secs(now - minutes(2)),
            "kind": "login.succeeded",
            "actor": "alice",
            "client": "demo-jwt",
            "company": "acme",
            "target": "alice",
            "address": "192.0.2.7",
            "detail": "grant=password",
        })
    );
    assert_eq!(objects[1]["client"], Value::Null);
    assert_eq!(
        objects[0]["detail"], "scope=basic \u{1b}[2J\nforged line",
        "JSON keeps the text exactly, escaped"
    );

    // An unknown kind is a usage error naming every valid one, on one line.
    let out = ws.run(&["audit", "list", "--kind", "login"], "");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: invalid value 'login'"),
        "{stderr}"
    );
    for kind in AuditKind::ALL {
        assert!(stderr.contains(kind.as_str()), "{stderr}");
    }
    for args in [&["--limit", "0"][..], &["--since", "yesterday"]] {
        let out = ws.run(&[&["audit", "list"], args].concat(), "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// `tessera audit list --json`, every event, newest first.
fn listed(ws: &Workspace) -> Vec<Value> {
    ws.ok(&["audit", "list", "--json", "--limit", "10000"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The actors of `events`, newest first.
fn actors(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["actor"].as_str().unwrap_or("-"))
        .collect()
}

async fn audit_purge_deletes_the_events_before_a_duration_ago_or_a_time_and_says_how_many(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let now = Utc::now().trunc_subsecs(0);
    let days = chrono::Duration::days;
    let event = |actor: &str, at: DateTime<Utc>| {
        NewAuditEvent::new(AuditKind::LoginFailed, at).actor(actor)
    };
    let store = ws.db.open().await;
    store
        .record_audit_events(&[
            event("ancient", now - days(400)),
            event("old", now - days(100)),
            event("recent", now - days(10)),
            event("today", now - chrono::Duration::minutes(5)),
        ])
        .await
        .unwrap();

    let out = ws.ok(&["audit", "purge", "--before", "90d"], "");
    let cutoff = out
        .trim_end()
        .strip_prefix("purged 2 audit events recorded before ")
        .unwrap_or_else(|| panic!("{out}"));
    let cutoff: DateTime<Utc> = cutoff.parse().unwrap();
    assert!(
        (cutoff - (now - days(90))).num_seconds().abs() < 600,
        "{out}"
    );
    let events = listed(&ws);
    assert_eq!(actors(&events), ["cli", "today", "recent"]);
    // The purge is in the log it purged, by `cli`, with how many and before when.
    assert_eq!(events[0]["kind"], "audit.purged");
    assert_eq!(
        events[0]["detail"],
        format!("purged=2 before={}", secs(cutoff))
    );

    // An RFC 3339 time: the event exactly at it stays.
    let at = secs(now - days(10));
    assert_eq!(
        ws.ok(&["audit", "purge", "--before", &at], "").trim_end(),
        format!("purged 0 audit events recorded before {at}")
    );
    let at = secs(now - days(10) + chrono::Duration::seconds(1));
    assert_eq!(
        ws.ok(&["audit", "purge", "--before", &at], "").trim_end(),
        format!("purged 1 audit events recorded before {at}")
    );
    assert_eq!(actors(&listed(&ws)), ["cli", "cli", "cli", "today"]);

    // Nonsense is a usage error on one line, and deletes nothing.
    let future = secs(now + days(1));
    for bad in [
        "yesterday",
        "0",
        "0s",
        "5y",
        "2026-13-01T00:00:00Z",
        future.as_str(),
    ] {
        let out = ws.run(&["audit", "purge", "--before", bad], "");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: invalid value '{bad}' for '--before")),
            "{stderr}"
        );
    }
    let out = ws.run(&["audit", "purge"], "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(listed(&ws).len(), 4);
}

async fn a_running_server_purges_the_events_older_than_its_retention(backend: Backend) {
    let ws = Workspace::new(backend);
    let now = Utc::now();
    let hours = chrono::Duration::hours;
    let store = ws.db.open().await;
    store
        .record_audit_events(&[
            NewAuditEvent::new(AuditKind::LoginFailed, now - hours(3)).actor("mallory"),
            NewAuditEvent::new(AuditKind::LoginFailed, now - hours(2)).actor("eve"),
            NewAuditEvent::new(
                AuditKind::LoginSucceeded,
                now - chrono::Duration::minutes(30),
            )
            .actor("alice"),
        ])
        .await
        .unwrap();

    // The retention from its environment twin (the flag is refused below when too short).
    let mut command = ws.command();
    command
        .args(["authz", "--authz-addr", "127.0.0.1:0"])
        .args(["--database-url", &ws.db_url()])
        .env("TESSERA_AUDIT_RETENTION", "1h");
    let server = Server::spawn(command, "authz");
    // Gone soon after start-up, without waiting for the hourly purge.
    let events = within_secs(20, || {
        let events = listed(&ws);
        events
            .iter()
            .any(|e| e["kind"] == "audit.purged")
            .then_some(events)
    })
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(!actors(&events).contains(&"mallory"), "{events:?}");
    assert!(!actors(&events).contains(&"eve"), "{events:?}");
    assert!(
        actors(&events).contains(&"alice"),
        "the recent event stays: {events:?}"
    );
    let purged = events.iter().find(|e| e["kind"] == "audit.purged").unwrap();
    assert_eq!(purged["actor"], "retention");
    assert!(
        purged["detail"]
            .as_str()
            .unwrap()
            .starts_with("purged=2 before="),
        "{purged}"
    );
    // The server's own events (its first signing key) are recorded and kept.
    assert!(kinds.contains(&"key.activated"), "{kinds:?}");
    let (status, _) = crate::get_json(&format!("{}/healthz", server.url), None).await;
    assert_eq!(status, 200);
    assert!(server.stop().success());
}

#[test]
fn an_audit_retention_shorter_than_an_hour_or_not_a_duration_is_a_usage_error() {
    let ws = Workspace::sqlite();
    for bad in ["10m", "59m59s", "forever", "1y"] {
        let out = ws.run(&["authz", "--audit-retention", bad], "");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{bad}' for '--audit-retention"
            )),
            "{stderr}"
        );
    }
    let out = ws.run(&["authz", "--audit-retention", "10m"], "");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("shorter than 1h; write off"),
    );
}
