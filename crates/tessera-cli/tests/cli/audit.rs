//! `tessera audit list`: the table, its filters and `--json`, on events recorded through
//! the store.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use tessera_store::on_each_backend;
use tessera_store::testing::Backend;
use tessera_store::{AuditKind, NewAuditEvent};

use crate::Workspace;

on_each_backend!(audit_list_prints_the_newest_events_filtered_as_a_table_or_json);

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
