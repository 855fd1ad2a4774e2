//! The resource server's hardening through the real binary: garbage opaque tokens never
//! reach the introspection endpoint, and the open benchmark listing only ever listens on
//! loopback.

use tessera_store::on_each_backend;
use tessera_store::testing::Backend;

use super::{OPAQUE_MODES, Server, Workspace, demo_token_of, http};

on_each_backend!(garbage_and_repeated_unknown_opaque_tokens_cost_no_introspection,);

/// The sum of every sample of `name` on a `/metrics` page.
async fn metric_sum(base: &str, name: &str) -> f64 {
    let page = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn garbage_and_repeated_unknown_opaque_tokens_cost_no_introspection(backend: Backend) {
    let ws = Workspace::new(backend);
    let (mode, extra) = OPAQUE_MODES[1];
    assert_eq!(mode, "opaque-introspection");
    let server = Server::start(&ws, extra);
    let call = |token: String| {
        http()
            .get(format!("{}/companies/acme/users", server.resource_url))
            .bearer_auth(token)
            .send()
    };
    let introspections = || metric_sum(&server.url, "tessera_introspections_total");
    let before = introspections().await;

    // Garbage: not `tsr_` and 43 base64url characters. Refused at once.
    let secret = tessera_core::secret::generate().unwrap();
    for token in [
        "garbage".to_owned(),
        format!("tsr_{secret}x"),
        format!("tsr_{}", &secret[1..]),
        format!("rt_{secret}"),
    ] {
        let response = call(token.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{token}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="tessera", error="invalid_token""#
        );
        assert_eq!(response.headers()["tessera-authz-lookups"], "0", "{token}");
    }
    assert_eq!(introspections().await, before, "garbage was introspected");

    // A well-shaped unknown token is introspected once, then refused from the cache.
    let unknown = format!("tsr_{secret}");
    for n in 0..3 {
        let response = call(unknown.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "attempt {n}");
    }
    assert_eq!(introspections().await, before + 1.0);
    assert_eq!(
        metric_sum(
            &server.resource_url,
            r#"tessera_opaque_inactive_cache_lookups_total{result="hit"}"#
        )
        .await,
        2.0
    );

    // A real opaque token is introspected and works.
    let token = demo_token_of(
        &server.url,
        ("demo-opaque", "demo-opaque-secret"),
        "alice",
        "admin",
    )
    .await;
    // One definition of the shape: what the authorization server issues passes it.
    assert_eq!(
        tessera_authz::OPAQUE_PREFIX,
        tessera_core::secret::OPAQUE_ACCESS_TOKEN_PREFIX
    );
    assert!(tessera_core::secret::has_secret_shape(
        &token,
        tessera_core::secret::OPAQUE_ACCESS_TOKEN_PREFIX
    ));
    let response = call(token).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(introspections().await, before + 2.0);
}

#[test]
fn the_open_listing_is_refused_unless_the_resource_server_listens_on_loopback_only() {
    let ws = Workspace::sqlite();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8081"] {
        let error = ws.fails(
            &[
                "resource",
                "--issuer",
                "http://127.0.0.1:1",
                "--benchmark-open-listing",
                "--resource-addr",
                addr,
            ],
            "",
        );
        assert!(
            error.starts_with("error: the open benchmark listing (--benchmark-open-listing)")
                && error.contains("needs a loopback listen address (127.0.0.0/8 or ::1)")
                && error.contains(&format!("{addr} is not")),
            "{addr}: {error}"
        );
    }
    // `serve` refuses it too, from the environment as well, and exits non-zero.
    let out = ws
        .command()
        .args([
            "serve",
            "--authz-addr",
            "127.0.0.1:0",
            "--resource-addr",
            "0.0.0.0:0",
        ])
        .args(["--database-url", &ws.db_url()])
        .env("TESSERA_BENCHMARK_OPEN_LISTING", "1")
        // Past the refusal of plaintext keys off loopback, to reach this one.
        .env("TESSERA_ALLOW_PLAINTEXT_KEYS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("needs a loopback listen address"),
        "{stderr}"
    );

    // On loopback it starts.
    let mut command = ws.command();
    command
        .args(["resource", "--issuer", "http://127.0.0.1:1"])
        .args(["--benchmark-open-listing", "--resource-addr", "127.0.0.1:0"])
        .args(["--database-url", &ws.db_url()]);
    let server = Server::spawn(command, "resource");
    assert!(server.resource_url.starts_with("http://127.0.0.1:"));
}
