//! Revocation that reaches JWTs: two authorization servers and two resource servers on
//! one database, the resource servers following the revocation feed of different
//! authorization servers. Every trigger makes a JWT that was working get `401` at both
//! resource servers, without a restart, while another user's token keeps working.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_store::on_each_backend;
use tessera_store::testing::{Backend, TcpProxy};

use super::{Server, Workspace, get_json, http, revoke_as};

const ISSUER: &str = "https://auth.tessera.test";
const PASSWORD: &str = "tessera-demo";
/// The challenge a revoked token gets.
const REVOKED: &str = r#"Bearer realm="tessera", error="invalid_token""#;

on_each_backend!(every_revocation_reaches_jwts_at_two_resource_servers_without_a_restart);

/// Tokens from the password grant (with a refresh token) of client `web`.
struct Grant {
    access: String,
    refresh: String,
}

async fn password_grant(authz: &str, client: (&str, &str), username: &str) -> Grant {
    let response = http()
        .post(format!("{authz}/oauth/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
            ("scope", "basic"),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{username}: {body}");
    Grant {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn client_token(authz: &str, client: (&str, &str)) -> String {
    let body: Value = http()
        .post(format!("{authz}/oauth/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "client_credentials"), ("scope", "basic")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_owned()
}

async fn refresh(authz: &str, client: (&str, &str), token: &str) -> (u16, Value) {
    let response = http()
        .post(format!("{authz}/oauth/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The two resource servers.
struct Resources([Server; 2]);

impl Resources {
    /// `token` works at both.
    async fn accept(&self, token: &str, what: &str) {
        for server in &self.0 {
            let (status, body) =
                get_json(&format!("{}/me", server.resource_url), Some(token)).await;
            assert_eq!(status, 200, "{what} at {}: {body}", server.resource_url);
        }
    }

    /// `token` is refused at both within a few seconds (the feed's propagation, with a
    /// wide margin for a loaded machine), with `invalid_token`.
    async fn refuse(&self, token: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for server in &self.0 {
            loop {
                let response = http()
                    .get(format!("{}/me", server.resource_url))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                if response.status().as_u16() == 401 {
                    assert_eq!(response.headers()["www-authenticate"], REVOKED, "{what}");
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"], "invalid_token", "{what}");
                    break;
                }
                assert_eq!(response.status().as_u16(), 200, "{what}");
                assert!(
                    Instant::now() < deadline,
                    "{what}: still accepted at {}",
                    server.resource_url
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn every_revocation_reaches_jwts_at_two_resource_servers_without_a_restart(backend: Backend) {
    let ws = Workspace::new(backend);
    let authz = [0, 1].map(|_| Server::start_command(&ws, "authz", &["--issuer", ISSUER]));
    ws.ok(&["company", "add", "acme", "--name", "Acme"], "");
    let users = [
        "bob", "pw-api", "pw-cli", "off-api", "off-cli", "roles", "gone-api", "gone-cli",
        "out-api", "out-cli", "family", "reuse",
    ];
    ws.ok(
        &[
            "user",
            "add",
            "alice",
            "--company",
            "acme",
            "--role",
            "admin",
            "--role",
            "user",
        ],
        "tessera-demo\n",
    );
    for user in users {
        ws.ok(
            &["user", "add", user, "--company", "acme", "--role", "user"],
            "tessera-demo\n",
        );
    }
    let web_secret = ws.add_client(&[
        "web",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--scope",
        "basic",
        "--scope",
        "admin",
    ]);
    let web = ("web", web_secret.as_str());
    let other_secret = ws.add_client(&["other", "--grant", "password", "--scope", "basic"]);
    let other = ("other", other_secret.as_str());
    let machine_secret = ws.add_machine_client("machine");
    let rotated_secret = ws.add_machine_client("rotated");
    let feed_secret = ws.add_client(&["rs", "--scope", "basic"]);
    let resources = Resources([&authz[0], &authz[1]].map(|a| {
        Server::start_command(
            &ws,
            "resource",
            &[
                "--issuer",
                ISSUER,
                "--jwks-url",
                &format!("{}/.well-known/jwks.json", a.url),
                "--revocation-feed-url",
                &format!("{}/oauth/revocations", a.url),
                "--client-id",
                "rs",
                "--client-secret",
                // A generated secret may begin with `-`: taken as the value all the same.
                &feed_secret,
            ],
        )
    }));
    let (a, b) = (&authz[0].url, &authz[1].url);
    let bob = password_grant(a, web, "bob").await;
    resources.accept(&bob.access, "bob").await;

    // One JWT, revoked through the other authorization server by the client it was issued
    // to; another client's attempt changes nothing.
    let own = password_grant(a, other, "bob").await;
    assert_eq!(revoke_as(b, web, &own.access).await, 200);
    resources.accept(&own.access, "another client's JWT").await;
    assert_eq!(revoke_as(b, other, &own.access).await, 200);
    resources.refuse(&own.access, "a revoked JWT").await;
    resources
        .accept(&bob.access, "bob after a JWT revocation")
        .await;

    // A refresh token revoked: its family's JWTs (sid) go with it.
    let family = password_grant(a, web, "family").await;
    resources.accept(&family.access, "family").await;
    assert_eq!(revoke_as(a, web, &family.refresh).await, 200);
    resources
        .refuse(&family.access, "a revoked family's JWT")
        .await;

    // A refresh token reused: the family, the JWT from before and the one from the
    // rotation are all revoked.
    let reuse = password_grant(b, web, "reuse").await;
    let (status, rotated) = refresh(b, web, &reuse.refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["access_token"].as_str().unwrap().to_owned();
    resources.accept(&second, "the rotated token").await;
    let (status, body) = refresh(a, web, &reuse.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    resources
        .refuse(&reuse.access, "a reused family's first JWT")
        .await;
    resources
        .refuse(&second, "a reused family's rotated JWT")
        .await;

    // Changes to users through the API, by their company's admin.
    let admin = {
        let response = http()
            .post(format!("{a}/oauth/token"))
            .basic_auth(web.0, Some(web.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", "basic admin"),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let api = &resources.0[0].resource_url;
    let id_of = |name: &'static str| {
        let admin = admin.clone();
        async move {
            let (_, users) = get_json(&format!("{api}/companies/acme/users"), Some(&admin)).await;
            users
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["username"] == name)
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let patch = |name: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            let id = id_of(name).await;
            let response = http()
                .patch(format!("{api}/companies/acme/users/{id}"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "PATCH {name} {body}");
        }
    };
    for (name, body) in [
        (
            "pw-api",
            serde_json::json!({"password": "a-new-passphrase-9"}),
        ),
        ("off-api", serde_json::json!({"disabled": true})),
        ("roles", serde_json::json!({"roles": ["admin", "user"]})),
    ] {
        let token = password_grant(a, web, name).await;
        resources.accept(&token.access, name).await;
        patch(name, body.clone()).await;
        resources
            .refuse(&token.access, &format!("{name} after {body}"))
            .await;
    }
    // Signed out everywhere: 204; then a new sign-in works at once.
    let out = password_grant(b, web, "out-api").await;
    resources.accept(&out.access, "out-api").await;
    let id = id_of("out-api").await;
    let response = http()
        .post(format!("{api}/companies/acme/users/{id}/revoke"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    resources
        .refuse(&out.access, "signed out through the API")
        .await;
    let (status, body) = refresh(a, web, &out.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let again = password_grant(a, web, "out-api").await;
    resources
        .accept(&again.access, "a sign-in after signing out")
        .await;
    // Deleted.
    let gone = password_grant(a, web, "gone-api").await;
    let id = id_of("gone-api").await;
    let response = http()
        .delete(format!("{api}/companies/acme/users/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    resources.refuse(&gone.access, "a deleted user's JWT").await;

    // The same through the command line, while the servers run.
    let pw = password_grant(a, web, "pw-cli").await;
    ws.ok(
        &["user", "set-password", "pw-cli"],
        "another-passphrase-7\n",
    );
    resources
        .refuse(&pw.access, "after user set-password")
        .await;
    let off = password_grant(a, web, "off-cli").await;
    ws.ok(&["user", "disable", "off-cli"], "");
    resources.refuse(&off.access, "after user disable").await;
    let gone = password_grant(a, web, "gone-cli").await;
    ws.ok(&["user", "delete", "gone-cli"], "");
    resources.refuse(&gone.access, "after user delete").await;
    let out = password_grant(b, web, "out-cli").await;
    let printed = ws.ok(&["user", "revoke", "out-cli"], "");
    assert_eq!(printed, "revoked every token and session of out-cli\n");
    resources.refuse(&out.access, "after user revoke").await;
    let again = password_grant(b, web, "out-cli").await;
    resources
        .accept(&again.access, "a sign-in after user revoke")
        .await;

    // Clients: deleted, and a secret rotated with --revoke-tokens.
    let machine = client_token(a, ("machine", &machine_secret)).await;
    resources.accept(&machine, "machine").await;
    ws.ok(&["client", "delete", "machine"], "");
    resources.refuse(&machine, "a deleted client's JWT").await;
    let rotated = client_token(b, ("rotated", &rotated_secret)).await;
    resources.accept(&rotated, "rotated").await;
    let printed = ws.ok(
        &["client", "rotate-secret", "rotated", "--revoke-tokens"],
        "",
    );
    let new_secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_owned();
    resources
        .refuse(&rotated, "after rotate-secret --revoke-tokens")
        .await;
    // The servers keep clients in memory: a change made by another process reaches them
    // within a second (docs/security.md), and the old secret then gets 401.
    let rotated_at = std::time::Instant::now();
    loop {
        let old = http()
            .post(format!("{a}/oauth/token"))
            .basic_auth("rotated", Some(&rotated_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        if old.status().as_u16() == 401 {
            let challenge = old.headers()[reqwest::header::WWW_AUTHENTICATE].clone();
            assert!(
                challenge.to_str().unwrap().starts_with("Basic"),
                "{challenge:?}"
            );
            break;
        }
        assert_eq!(old.status().as_u16(), 200);
        assert!(
            rotated_at.elapsed() < std::time::Duration::from_secs(1),
            "the old secret still worked a second after the rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let fresh = client_token(a, ("rotated", &new_secret)).await;
    resources
        .accept(&fresh, "a token from the new secret")
        .await;

    // Bob's token was never touched; introspection agrees with the resource servers.
    resources.accept(&bob.access, "bob at the end").await;
    for (token, active) in [
        (&bob.access, true),
        (&own.access, false),
        (&gone.access, false),
    ] {
        let body: Value = http()
            .post(format!("{b}/oauth/introspect"))
            .basic_auth("rs", Some(&feed_secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["active"], active, "{body}");
    }
    // And the resource servers report their lists.
    for server in &resources.0 {
        let (status, health) = get_json(&format!("{}/healthz", server.resource_url), None).await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["revocation_feed"]["state"], "ok", "{health}");
        // One jti, two families, nine users, two clients.
        assert_eq!(health["revocation_feed"]["entries"], 14, "{health}");
    }
}

/// The feed itself: client authentication, a cursor that answers only what is new, the
/// long-poll, and bad parameters.
#[tokio::test]
async fn the_feed_needs_a_confidential_client_and_a_cursor_answers_only_what_is_new() {
    let ws = Workspace::new(Backend::Sqlite);
    let server = Server::start(&ws, &[]);
    let feed = format!("{}/oauth/revocations", server.url);
    let read = |query: &'static str, client: Option<(&'static str, &'static str)>| {
        let feed = feed.clone();
        async move {
            let mut request = http().get(format!("{feed}{query}"));
            if let Some((id, secret)) = client {
                request = request.basic_auth(id, Some(secret));
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.json::<Value>().await.unwrap())
        }
    };
    let resource = Some(("demo-resource", "demo-resource-secret"));
    for client in [None, Some(("demo-resource", "wrong"))] {
        let (status, headers, body) = read("", client).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=\"tessera\"")
        );
    }
    let (status, headers, first) = read("", resource).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(first["reset"], true);
    assert_eq!(first["revoked"], serde_json::json!([]));
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    // A long-poll held open answers as soon as an entry arrives through the CLI.
    let held = {
        let feed = feed.clone();
        let cursor = cursor.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = http()
                .get(format!("{feed}?after={cursor}&wait=20"))
                .basic_auth("demo-resource", Some("demo-resource-secret"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.ok(&["user", "revoke", "bob"], "");
    let (news, waited) = held.await.unwrap();
    assert!(waited < Duration::from_secs(15), "answered on the news");
    assert_eq!(news["reset"], false);
    let entries = news["revoked"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{news}");
    assert!(entries[0]["sub"].is_string() && entries[0]["issued_before"].is_i64());
    let next = news["cursor"].as_str().unwrap().to_owned();
    assert_ne!(next, cursor);

    // After that cursor: nothing new; without one: everything, again.
    let path = format!("?after={next}");
    let (_, _, nothing) = read(Box::leak(path.into_boxed_str()), resource).await;
    assert_eq!(
        (
            nothing["reset"].as_bool(),
            nothing["revoked"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    let (_, _, all) = read("", resource).await;
    assert_eq!(all["revoked"].as_array().unwrap().len(), 1);
    // A cursor this feed never gave out (ahead of it): the whole list, as a reset.
    let (_, _, ahead) = read("?after=999999", resource).await;
    assert_eq!(ahead["reset"], true);
    assert_eq!(ahead["revoked"].as_array().unwrap().len(), 1);
    for query in ["?after=nope", "?wait=31", "?wait=-1", "?after=1&after=2"] {
        let (status, _, body) = read(query, resource).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{query}: {body}"
        );
    }
    // A public client cannot read it.
    let (status, _, _) = read("", Some(("nobody", ""))).await;
    assert_eq!(status, 401);
}

/// A resource server whose feed is cut keeps the list it has, then past the staleness
/// bound refuses JWTs with 503 (closed) or keeps serving them (open).
#[tokio::test]
async fn a_resource_server_whose_feed_is_cut_keeps_its_list_then_behaves_as_configured() {
    let ws = Workspace::new(Backend::Sqlite);
    let authz = Server::start_command(&ws, "authz", &[]);
    ws.ok(&["company", "add", "acme", "--name", "Acme"], "");
    for user in ["alice", "bob"] {
        ws.ok(
            &["user", "add", user, "--company", "acme", "--role", "user"],
            "tessera-demo\n",
        );
    }
    let web_secret = ws.add_client(&["web", "--grant", "password", "--scope", "basic"]);
    let web = ("web", web_secret.as_str());
    let feed_secret = ws.add_client(&["rs", "--scope", "basic"]);
    let proxy = TcpProxy::start(authz.url.trim_start_matches("http://").parse().unwrap());
    let resources = ["closed", "open"].map(|policy| {
        Server::start_command(
            &ws,
            "resource",
            &[
                "--issuer",
                &authz.issuer,
                "--revocation-feed-url",
                &format!("http://{}/oauth/revocations", proxy.addr()),
                "--client-id",
                "rs",
                &format!("--client-secret={feed_secret}"),
                "--revocation-wait",
                "1s",
                "--revocation-max-stale",
                "12s",
                "--revocation-on-stale",
                policy,
            ],
        )
    });
    let alice = password_grant(&authz.url, web, "alice").await;
    let bob = password_grant(&authz.url, web, "bob").await;
    let both = Resources(resources);
    both.accept(&bob.access, "bob").await;
    assert_eq!(revoke_as(&authz.url, web, &alice.access).await, 200);
    both.refuse(&alice.access, "alice, revoked").await;

    proxy.cut();
    // The list stays in force while the feed is away.
    both.refuse(&alice.access, "alice, feed cut").await;
    both.accept(&bob.access, "bob, feed cut").await;
    let [closed, open] = &both.0;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let response = http()
            .get(format!("{}/me", closed.resource_url))
            .bearer_auth(&bob.access)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 503 {
            assert!(response.headers().contains_key("retry-after"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "temporarily_unavailable");
            break;
        }
        assert_eq!(response.status().as_u16(), 200);
        assert!(Instant::now() < deadline, "never turned stale");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, health) = get_json(&format!("{}/healthz", closed.resource_url), None).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["revocation_feed"]["state"], "stale");
    // Open: bob still served, alice still refused, health degraded but up.
    let (status, _) = get_json(&format!("{}/me", open.resource_url), Some(&bob.access)).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&format!("{}/me", open.resource_url), Some(&alice.access)).await;
    assert_eq!(status, 401);
    let (status, health) = get_json(&format!("{}/healthz", open.resource_url), None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")));

    // Back: the closed one serves again.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = get_json(&format!("{}/me", closed.resource_url), Some(&bob.access)).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The Python consumer of docs/examples follows the real feed: a JWT it accepts is refused
/// once revoked. It needs Python with requests, PyJWT and cryptography: set
/// `TESSERA_TEST_PYTHON=1` (CI does) to run it, and to fail when they are missing.
#[tokio::test]
async fn the_python_consumer_follows_the_real_feed() {
    if std::env::var("TESSERA_TEST_PYTHON").as_deref() != Ok("1") {
        eprintln!("skipped: set TESSERA_TEST_PYTHON=1 to run the Python feed consumer");
        return;
    }
    let ws = Workspace::new(Backend::Sqlite);
    let server = Server::start(&ws, &[]);
    let demo = ("demo-jwt", "demo-jwt-secret");
    let alice = password_grant(&server.url, demo, "alice").await;
    let bob = password_grant(&server.url, demo, "bob").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/revocation_consumer.py"
    );
    let consumer = |token: &str, until_revoked: bool| {
        let mut command = std::process::Command::new("python3");
        command
            .arg(script)
            .args(["--issuer", &server.issuer, "--check", token])
            .env("TESSERA_CLIENT_ID", "demo-resource")
            .env("TESSERA_CLIENT_SECRET", "demo-resource-secret")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if until_revoked {
            command.args(["--until-revoked", "30"]);
        }
        command.spawn().unwrap()
    };
    let mut watching = consumer(&alice.access, true);
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(watching.stdout.take().unwrap()));
    let first = lines.next().expect("a first line").unwrap();
    assert_eq!(
        first, r#"{"valid": true}"#,
        "synced and valid before the revocation"
    );
    assert_eq!(revoke_as(&server.url, demo, &alice.access).await, 200);
    let last: Value = serde_json::from_str(&lines.next().expect("a second line").unwrap()).unwrap();
    assert_eq!(last["valid"], false, "{last}");
    assert_eq!(last["reason"], "revoked", "{last}");
    let status = watching.wait().unwrap();
    assert!(status.success(), "{status}");
    // Another token is still valid to it, and a revoked one is refused from the start.
    for (token, expected, code) in [
        (&bob.access, serde_json::json!({"valid": true}), 0),
        (
            &alice.access,
            serde_json::json!({"valid": false, "reason": "revoked"}),
            1,
        ),
    ] {
        let out = consumer(token, false).wait_with_output().unwrap();
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(
            printed,
            expected,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code));
    }
}
