//! Brute-force limits shared by several `tessera authz` processes on one PostgreSQL
//! database: three servers allow what one does.

use std::time::Duration;

use serde_json::Value;
use tessera_store::testing::Backend;

use super::{Server, Workspace, http};

/// A token request to `server` as `client`; returns the status, `Retry-After` and body.
async fn token(
    server: &Server,
    (client, secret): (&str, &str),
    form: &[(&str, &str)],
) -> (u16, Option<u64>, Value) {
    let response = http()
        .post(format!("{}/oauth/token", server.url))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

async fn password(server: &Server, client: (&str, &str), pw: &str) -> (u16, Option<u64>, Value) {
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", pw),
    ];
    token(server, client, &form).await
}

/// Asserts what a limited request gets: 429, `temporarily_unavailable`, a `Retry-After`
/// of at most `longest` seconds; returns it.
fn limited((status, retry_after, body): (u16, Option<u64>, Value), longest: u64) -> u64 {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let retry_after = retry_after.expect("a 429 has Retry-After");
    assert!((1..=longest).contains(&retry_after), "{retry_after}");
    retry_after
}

#[tokio::test]
async fn three_authorization_servers_on_one_postgres_database_share_the_brute_force_limits() {
    if !Backend::postgres_enabled() {
        return;
    }
    let ws = Workspace::new(Backend::Postgres);
    ws.ok(&["company", "add", "acme", "--name", "Acme"], "");
    ws.ok(
        &[
            "user",
            "add",
            "alice",
            "--company",
            "acme",
            "--role",
            "user",
        ],
        "tessera-demo\n",
    );
    let secret = ws.add_client(&["app", "--grant", "password", "--scope", "basic"]);
    let app = ("app", secret.as_str());
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::start_command(&ws, "authz", &[]))
        .collect();

    // Thirty wrong passwords for alice, round-robin across the three servers: ten are
    // checked, wherever they land; the other twenty are refused before any hashing.
    let mut retry_after = 0;
    for i in 0..30 {
        let answer = password(&servers[i % 3], app, "guess-123").await;
        if i < 10 {
            assert_eq!(answer.0, 400, "attempt {i}: {}", answer.2);
            assert_eq!(answer.2["error"], "invalid_grant");
        } else {
            retry_after = limited(answer, 30);
        }
    }
    // Her right password waits too, on every server.
    for server in &servers {
        limited(password(server, app, "tessera-demo").await, 30);
    }

    // Thirty wrong client secrets, round-robin: ten are checked, twenty refused.
    let wrong = ("app", "not-the-secret");
    let cc = [("grant_type", "client_credentials")];
    for i in 0..30 {
        let answer = token(&servers[i % 3], wrong, &cc).await;
        if i < 10 {
            assert_eq!(answer.0, 401, "attempt {i}: {}", answer.2);
            assert_eq!(answer.2["error"], "invalid_client");
        } else {
            limited(answer, 6);
        }
    }

    // No lockout: once the wait is over, alice signs in through every server.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    for server in &servers {
        let (status, _, body) = password(server, app, "tessera-demo").await;
        assert_eq!(status, 200, "{}: {body}", server.url);
        assert!(body["access_token"].as_str().is_some(), "{body}");
    }
}
