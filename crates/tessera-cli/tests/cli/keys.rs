//! `tessera keys`: listing, rotating (scheduled and emergency), removing, master keys,
//! and a running server picking up what the commands change.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_store::on_each_backend;
use tessera_store::testing::Backend;

use crate::{Server, Workspace, demo_token, get_json, http};

on_each_backend!(
    blocking:
    sealed_keys_need_their_master_key_and_bad_schedules_are_refused_in_one_line,
);

on_each_backend!(
    a_running_server_follows_rotate_rotate_now_and_remove_within_seconds,
    serve_warns_when_no_master_key_is_set_and_not_when_one_is,
    off_loopback_keys_are_sealed_unless_plaintext_keys_are_allowed,
    keys_stored_unencrypted_are_sealed_in_place_when_a_master_key_is_first_given,
    sealed_keys_get_no_plaintext_neighbour_from_rotate_or_behind_a_running_server,
);

/// The rows of `tessera keys list` under its header, as words.
fn key_rows(ws: &Workspace) -> Vec<Vec<String>> {
    ws.ok(&["keys", "list"], "")
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The kids in the server's JWKS.
async fn jwks_kids(server: &Server) -> Vec<String> {
    let (status, jwks) = get_json(&format!("{}/.well-known/jwks.json", server.url), None).await;
    assert_eq!(status, 200);
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The `kid` of a fresh client_credentials token.
async fn signing_kid(server: &Server, secret: &str) -> String {
    let body: Value = http()
        .post(format!("{}/oauth/token", server.url))
        .basic_auth("robot", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Polls `check` until it holds; running servers re-read keys every 10 seconds and the
/// documented bound is 30.
async fn within_30s<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not within 30 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn a_running_server_follows_rotate_rotate_now_and_remove_within_seconds(backend: Backend) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &["--no-demo"]);
    let secret = ws.add_machine_client("robot");
    let rows = key_rows(&ws);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let first = rows[0][0].clone();
    assert_eq!(&rows[0][1..3], ["RS256", "active"]);
    assert_eq!(rows[0].last().unwrap(), "plaintext");
    assert_eq!(signing_kid(&server, &secret).await, first);

    // A scheduled rotation publishes first: the new key does not sign for a day.
    let out = ws.ok(&["keys", "rotate", "--key-algorithm", "ES256"], "");
    let second = out
        .strip_prefix("published key ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert!(out.contains("(ES256); it starts signing at "), "{out}");
    let rows = key_rows(&ws);
    assert_eq!(rows[1][0], second);
    assert_eq!(&rows[1][1..3], ["ES256", "next"]);
    assert_eq!(
        ws.fails(&["keys", "rotate"], ""),
        format!(
            "error: a rotation is already under way: key {second} starts signing at {}",
            rows[1][4]
        )
    );
    within_30s("the server publishes the next key", || async {
        jwks_kids(&server).await == [first.clone(), second.clone()]
    })
    .await;
    assert_eq!(signing_kid(&server, &secret).await, first);

    // An emergency rotation signs at once, on every running server within seconds.
    let out = ws.run(&["keys", "rotate", "--now", "--key-algorithm", "EdDSA"], "");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let third = stdout
        .strip_prefix("key ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("key {third} (EdDSA) signs now"));
    let retired = format!("key {first} is retired and stays published until ");
    assert!(
        lines[1..].iter().any(|l| l.starts_with(&retired)),
        "{stdout}"
    );
    let withdrawn = format!("key {second}, which was to sign from ");
    assert!(
        lines[1..]
            .iter()
            .any(|l| l.starts_with(&withdrawn) && l.ends_with(" is withdrawn")),
        "{stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("warning: resource servers whose cached JWKS lacks"),
        "{stderr}"
    );
    within_30s("the server signs with the emergency key", || async {
        signing_kid(&server, &secret).await == third
    })
    .await;
    let states: Vec<(String, String)> = key_rows(&ws)
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    // The pending next key went with the emergency: it may have leaked too, and it could
    // have been due before the emergency key.
    assert_eq!(
        states,
        [
            (first.clone(), "retired".into()),
            (third.clone(), "active".into())
        ]
    );
    let erased = key_rows(&ws).into_iter().find(|r| r[0] == first).unwrap();
    assert_eq!(erased.last().unwrap(), "erased");

    // The compromised key leaves the JWKS at once; the active key cannot be removed.
    assert_eq!(
        ws.fails(&["keys", "remove", &third], ""),
        format!(
            "error: key {third} is the active key: run `tessera keys rotate --now` first, then remove it"
        )
    );
    assert_eq!(
        ws.fails(&["keys", "remove", "nope"], ""),
        "error: no published key has the id \"nope\""
    );
    // Kids are base64url and may start with '-': they are never taken for a flag.
    assert_eq!(
        ws.fails(&["keys", "remove", "-nope"], ""),
        "error: no published key has the id \"-nope\""
    );
    assert!(
        ws.ok(&["keys", "remove", &first], "")
            .starts_with(&format!("removed key {first}"))
    );
    within_30s("the removed key leaves the JWKS", || async {
        !jwks_kids(&server).await.contains(&first)
    })
    .await;
    assert_eq!(signing_kid(&server, &secret).await, third);

    // Each change made here is in the audit log, with the server's own transitions.
    let audit = ws.ok(&["audit", "list", "--json"], "");
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let by_cli: Vec<(&str, &str)> = events
        .iter()
        .rev()
        .filter(|e| e["actor"] == "cli")
        .map(|e| (e["kind"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_cli,
        [
            ("key.rotated", second.as_str()),
            ("key.rotated", third.as_str()),
            ("key.removed", first.as_str()),
        ],
        "{audit}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "key.activated" && e["actor"].is_null()),
        "the server's first key is recorded: {audit}"
    );
}

fn sealed_keys_need_their_master_key_and_bad_schedules_are_refused_in_one_line(backend: Backend) {
    let ws = Workspace::new(backend);
    let master = ws.ok(&["keys", "master-key"], "");
    let master = master.trim();
    assert_eq!(master.len(), 44, "32 bytes in padded base64: {master}");
    assert_ne!(ws.ok(&["keys", "master-key"], "").trim(), master);

    // A scheduled rotation needs a key that signs already.
    assert_eq!(
        ws.fails(&["keys", "rotate"], ""),
        "error: no key signs yet: start the authorization server once (it creates the first \
         key), or use `tessera keys rotate --now`"
    );

    // A key created under a master key is stored sealed.
    let mut command = ws.command();
    command
        .args(["keys", "rotate", "--now", "--database-url", &ws.db_url()])
        .env("TESSERA_MASTER_KEY", master);
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = key_rows(&ws);
    assert_eq!(rows.len(), 1);
    let kid = rows[0][0].clone();
    assert_eq!(rows[0].last().unwrap(), "encrypted");

    // Without the master key the server does not start, and says why, in one line.
    let err = ws.fails(&["authz", "--authz-addr", "127.0.0.1:0"], "");
    assert_eq!(
        err,
        format!(
            "error: the private key of {kid} is encrypted: set TESSERA_MASTER_KEY to the \
             master key it was stored under"
        )
    );
    // A master key that is not one is refused without being echoed.
    let mut command = ws.command();
    command
        .args(["keys", "rotate", "--database-url", &ws.db_url()])
        .env("TESSERA_MASTER_KEY", "not-a-key-at-all");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        "error: TESSERA_MASTER_KEY must be 32 bytes: 64 hex digits or base64"
    );

    // A schedule under which a token could reach a resource server before its key.
    assert_eq!(
        ws.fails(
            &[
                "authz",
                "--authz-addr",
                "127.0.0.1:0",
                "--key-publish-ahead",
                "5m"
            ],
            ""
        ),
        "error: the key publish-ahead time (5m) must be at least 7m10s: the JWKS max-age (5m) \
         plus the key refresh interval (10s) plus twice the clock leeway (1m), or a resource \
         server could see a token before its key"
    );
    assert_eq!(
        ws.fails(&["keys", "rotate", "--key-publish-ahead", "1m"], ""),
        "error: the key publish-ahead time (1m) must be at least 7m10s: the JWKS max-age (5m) \
         plus the key refresh interval (10s) plus twice the clock leeway (1m), or a resource \
         server could see a token before its key"
    );
    let out = ws.run(&["keys", "list", "--key-rotation-period", "soon"], "");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("\"soon\" is not a duration: write e.g. 30d, 25h, 90m or 600s")
    );
    // Nothing was added by the refused commands.
    assert_eq!(key_rows(&ws).len(), 1);
}

async fn serve_warns_when_no_master_key_is_set_and_not_when_one_is(backend: Backend) {
    let ws = Workspace::new(backend);
    let master = ws.ok(&["keys", "master-key"], "");
    for (key, warns) in [(None, true), (Some(master.trim()), false)] {
        let mut command = ws.command();
        command
            .args([
                "authz",
                "--authz-addr",
                "127.0.0.1:0",
                "--database-url",
                &ws.db_url(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(key) = key {
            command.env("TESSERA_MASTER_KEY", key);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        assert!(
            line.starts_with("authorization server listening on "),
            "{line}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(
            stderr.contains(
                "TESSERA_MASTER_KEY is not set: private signing keys are stored unencrypted"
            ),
            warns,
            "{stderr}"
        );
        if let Some(key) = key {
            assert!(!stderr.contains(key), "the master key must never be logged");
        }
    }
}

/// The refusal of `authz` and `serve` listening on `addr` without a master key.
fn plaintext_refusal(addr: &str) -> String {
    format!(
        "error: refusing to keep private signing keys unencrypted while listening on {addr}, \
         which is not loopback: set TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE) to a \
         master key made with `tessera keys master-key`, or pass --allow-plaintext-keys \
         (TESSERA_ALLOW_PLAINTEXT_KEYS=true) to accept them unencrypted"
    )
}

const NO_MASTER_KEY_WARNING: &str =
    "TESSERA_MASTER_KEY is not set: private signing keys are stored unencrypted";

async fn off_loopback_keys_are_sealed_unless_plaintext_keys_are_allowed(backend: Backend) {
    let ws = Workspace::new(backend);
    let issuer = ["--issuer", "https://auth.tessera.test"];
    // Every interface, IPv4 or IPv6, or an address of some other interface: refused
    // before anything is stored.
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        assert_eq!(
            ws.fails(
                &[&["authz", "--authz-addr", addr], &issuer[..]].concat(),
                ""
            ),
            plaintext_refusal(addr)
        );
    }
    assert_eq!(
        ws.fails(&["serve", "--resource-addr", "0.0.0.0:0"], ""),
        plaintext_refusal("0.0.0.0:0")
    );
    assert_eq!(key_rows(&ws).len(), 0, "no key was created");

    // Allowed by the flag or its environment twin, it starts, and warns.
    let everywhere = [&["--authz-addr", "0.0.0.0:0"], &issuer[..]].concat();
    for (env, flag) in [
        (None, Some("--allow-plaintext-keys")),
        (Some(("TESSERA_ALLOW_PLAINTEXT_KEYS", "true")), None),
    ] {
        let args = [&everywhere[..], flag.as_slice()].concat();
        let server = Server::start_with(&ws, "authz", env.as_slice(), &args);
        assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
        assert!(server.logged().contains(NO_MASTER_KEY_WARNING));
        server.stop();
    }
    assert_eq!(key_rows(&ws)[0].last().unwrap(), "plaintext");

    // With a master key it starts without the flag, and without the warning.
    let master = ws.ok(&["keys", "master-key"], "");
    let server = Server::start_with(
        &ws,
        "authz",
        &[("TESSERA_MASTER_KEY", master.trim())],
        &everywhere,
    );
    assert!(!server.logged().contains(NO_MASTER_KEY_WARNING));
    server.stop();

    // Loopback needs neither, by address or by a name that resolves to loopback only:
    // the README's quick start.
    let db = tempfile::tempdir().unwrap();
    let other = format!("sqlite://{}", db.path().join("quick.db").display());
    for addr in ["127.0.0.1:0", "[::1]:0", "localhost:0"] {
        let mut command = ws.command();
        command.args(["authz", "--authz-addr", addr, "--database-url", &other]);
        let server = Server::spawn(command, "authz");
        assert!(server.logged().contains(NO_MASTER_KEY_WARNING));
        server.stop();
    }
}

/// Each stored key's id and private key, read from the database itself.
async fn stored_private_keys(ws: &Workspace) -> Vec<(String, Vec<u8>)> {
    let store = tessera_store::open(&ws.db_url()).await.unwrap();
    store
        .published_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.private_key))
        .collect()
}

async fn keys_stored_unencrypted_are_sealed_in_place_when_a_master_key_is_first_given(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let master = ws.ok(&["keys", "master-key"], "");
    let master = master.trim();
    // A database that ran without a master key: an active and a next key in the clear.
    // One issuer across restarts, whose ports change.
    let issuer = ["--issuer", "https://auth.tessera.test"];
    let server = Server::start(&ws, &issuer);
    let before = demo_token(&server.url, "bob", "basic").await;
    let kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();
    ws.ok(&["keys", "rotate"], "");
    server.stop();
    let plaintext = stored_private_keys(&ws).await;
    assert_eq!(plaintext.len(), 2);
    for (kid, key) in &plaintext {
        assert!(!tessera_core::seal::is_sealed(key), "{kid}");
        assert_eq!(key.first(), Some(&0x30), "{kid}: PKCS#8 DER in the clear");
    }

    // The first start with a master key seals both in place.
    let with_key = [("TESSERA_MASTER_KEY", master), ("TESSERA_LOG", "info")];
    let loopback = [
        "--authz-addr",
        "127.0.0.1:0",
        "--resource-addr",
        "127.0.0.1:0",
        issuer[0],
        issuer[1],
    ];
    let server = Server::start_with(&ws, "serve", &with_key, &loopback);
    let sealed = stored_private_keys(&ws).await;
    assert_eq!(
        sealed.iter().map(|(kid, _)| kid).collect::<Vec<_>>(),
        plaintext.iter().map(|(kid, _)| kid).collect::<Vec<_>>()
    );
    for ((kid, key), (_, clear)) in sealed.iter().zip(&plaintext) {
        assert!(tessera_core::seal::is_sealed(key), "{kid} is sealed");
        assert_ne!(key.first(), Some(&0x30), "{kid}");
        assert!(
            !key.windows(clear.len()).any(|w| w == clear.as_slice()),
            "{kid}: no plaintext left inside"
        );
        assert!(
            !String::from_utf8_lossy(key).contains("PRIVATE KEY"),
            "{kid}"
        );
    }
    assert!(
        key_rows(&ws)
            .iter()
            .all(|row| row.last().unwrap() == "encrypted")
    );
    let logged = server.logged();
    assert!(
        logged.contains("sealed the private signing keys stored unencrypted"),
        "{logged}"
    );
    assert!(!logged.contains(master), "the master key is never logged");

    // The same key signs on, and the token it signed before still works.
    let (status, me) = get_json(&format!("{}/me", server.resource_url), Some(&before)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "bob");
    let after = demo_token(&server.url, "alice", "basic").await;
    assert_eq!(
        jsonwebtoken::decode_header(&after).unwrap().kid.unwrap(),
        kid
    );
    server.stop();

    // It restarts with the key as before; without it, it refuses in one line.
    let server = Server::start_with(&ws, "serve", &with_key, &loopback);
    let (status, _) = get_json(&format!("{}/me", server.resource_url), Some(&before)).await;
    assert_eq!(status, 200);
    server.stop();
    assert_eq!(
        ws.fails(&["authz", "--authz-addr", "127.0.0.1:0"], ""),
        format!(
            "error: the private key of {kid} is encrypted: set TESSERA_MASTER_KEY to the \
             master key it was stored under"
        )
    );
}

/// The refusal of `keys rotate` without the master key on a database of sealed keys.
const ROTATE_WITHOUT_MASTER_KEY: &str = "error: the stored private signing keys are \
     encrypted, and a new key would be stored unencrypted: set TESSERA_MASTER_KEY (or \
     TESSERA_MASTER_KEY_FILE) to the master key they were stored under";

async fn sealed_keys_get_no_plaintext_neighbour_from_rotate_or_behind_a_running_server(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let master = ws.ok(&["keys", "master-key"], "");
    let master = master.trim();
    let with_key = [("TESSERA_MASTER_KEY", master), ("TESSERA_LOG", "info")];
    let server = Server::start_with(&ws, "authz", &with_key, &["--authz-addr", "127.0.0.1:0"]);
    let before = stored_private_keys(&ws).await;
    assert_eq!(before.len(), 1);
    assert!(tessera_core::seal::is_sealed(&before[0].1));

    // Without the master key, neither rotation stores a key, in the clear or at all.
    for args in [&["keys", "rotate"][..], &["keys", "rotate", "--now"]] {
        assert_eq!(ws.fails(args, ""), ROTATE_WITHOUT_MASTER_KEY, "{args:?}");
        assert_eq!(stored_private_keys(&ws).await, before, "{args:?}");
    }

    // A key stored in the clear behind the running server's back (here through the store
    // itself) is sealed in place at the server's next refresh.
    let key = tessera_core::SigningKey::generate(tessera_core::SigningAlgorithm::ES256).unwrap();
    let kid = key.kid().to_owned();
    let store = tessera_store::open(&ws.db_url()).await.unwrap();
    let now = chrono::Utc::now();
    store
        .insert_next_key_if_none(
            &tessera_store::NewKey::from(&key),
            now + chrono::Duration::days(1),
            now,
        )
        .await
        .unwrap();
    let private_key = |keys: Vec<(String, Vec<u8>)>| {
        keys.into_iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, key)| key)
            .unwrap()
    };
    assert_eq!(private_key(stored_private_keys(&ws).await), key.pkcs8_der());
    let started = Instant::now();
    let sealed = loop {
        let stored = private_key(stored_private_keys(&ws).await);
        if tessera_core::seal::is_sealed(&stored) {
            break stored;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the running server left {kid} in the clear for 20 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        !sealed
            .windows(key.pkcs8_der().len())
            .any(|w| w == key.pkcs8_der()),
        "no plaintext left inside"
    );
    // The same key, under the master key and bound to its kid.
    let opened = tessera_core::MasterKey::parse(master)
        .unwrap()
        .open(&kid, &sealed)
        .unwrap();
    assert_eq!(opened, key.pkcs8_der());
    assert!(
        key_rows(&ws)
            .iter()
            .all(|row| row.last().unwrap() == "encrypted")
    );
    within_30s("the server publishes the sealed key", || async {
        jwks_kids(&server).await.contains(&kid)
    })
    .await;
    // The kid is logged, never key material.
    let logged = server.logged();
    let line = logged
        .lines()
        .find(|l| l.contains("sealed private signing keys found stored unencrypted"))
        .unwrap_or_else(|| panic!("{logged}"));
    assert!(line.contains(&kid), "{line}");
    assert!(!logged.contains(master), "the master key is never logged");
    server.stop();
}
