//! `--metrics-addr`, `--authz-metrics-addr` and `--resource-metrics-addr`: `/metrics` and
//! a copy of `/healthz` on an address of their own, and no `/metrics` on the main one.

use serde_json::Value;
use tessera_store::on_each_backend;
use tessera_store::testing::Backend;

use crate::{Server, Workspace, demo_token, get_json, http};

on_each_backend!(
    authz_with_a_metrics_address_serves_metrics_and_health_there_and_no_metrics_on_its_main_address,
    serve_gives_each_server_its_own_metrics_address_and_each_serves_its_own_registry,
);

/// The metrics URL that `tessera` printed for `server` ("authorization" or "resource"):
/// "<server> server metrics listening on http://ADDR (/metrics, /healthz)".
fn metrics_url(server: &Server, which: &str) -> String {
    let prefix = format!("{which} server metrics listening on ");
    let line = server
        .stdout
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", server.stdout));
    line.split_whitespace().next().unwrap().to_owned()
}

/// `GET url`: its status and body.
async fn get_text(url: &str) -> (u16, String) {
    let response = http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn authz_with_a_metrics_address_serves_metrics_and_health_there_and_no_metrics_on_its_main_address(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let server = Server::start_command(&ws, "authz", &["--authz-metrics-addr", "127.0.0.1:0"]);
    let metrics = metrics_url(&server, "authorization");
    assert_ne!(metrics, server.url);

    // The main address: no metrics, everything else as before.
    let (status, _) = get_text(&format!("{}/metrics", server.url)).await;
    assert_eq!(status, 404, "the main address no longer serves /metrics");
    let ok = serde_json::json!({"status": "ok", "database": "ok"});
    assert_eq!(
        get_json(&format!("{}/healthz", server.url), None).await,
        (200, ok.clone())
    );
    let (status, metadata) = get_json(
        &format!("{}/.well-known/oauth-authorization-server", server.url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(metadata["issuer"], server.issuer);

    // The metrics address: the server's registry, with the main address's traffic in it.
    let response = http()
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for series in [
        r#"tessera_http_requests_total{route="/.well-known/oauth-authorization-server",status="200"} 1"#,
        r#"tessera_http_requests_total{route="/healthz",status="200"} 1"#,
        r#"tessera_http_requests_total{route="unmatched",status="404"} 1"#,
        "# TYPE tessera_tokens_issued_total counter",
        "tessera_db_pool_max_connections ",
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    // Its scrapes are not counted: the main address's series are all there is.
    assert!(!text.contains(r#"route="/metrics""#), "{text}");
    assert_eq!(
        get_json(&format!("{metrics}/healthz"), None).await,
        (200, ok)
    );
    // Nothing else of the server is there.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/oauth/token",
        "/",
    ] {
        let (status, _) = get_text(&format!("{metrics}{path}")).await;
        assert_eq!(status, 404, "{path}");
    }
    assert!(server.stop().success());
}

async fn serve_gives_each_server_its_own_metrics_address_and_each_serves_its_own_registry(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    // One address from its flag, the other from its environment twin.
    let mut command = ws.command();
    command
        .args([
            "serve",
            "--authz-addr",
            "127.0.0.1:0",
            "--resource-addr",
            "127.0.0.1:0",
        ])
        .args(["--database-url", &ws.db_url()])
        .args(["--authz-metrics-addr", "127.0.0.1:0"])
        .env("TESSERA_RESOURCE_METRICS_ADDR", "127.0.0.1:0");
    let server = Server::spawn(command, "serve");
    let authz_metrics = metrics_url(&server, "authorization");
    let resource_metrics = metrics_url(&server, "resource");
    assert_ne!(authz_metrics, resource_metrics);
    for main in [&server.url, &server.resource_url] {
        let (status, _) = get_text(&format!("{main}/metrics")).await;
        assert_eq!(status, 404, "{main}/metrics");
    }

    // Real traffic on the main addresses, seen on the metrics addresses.
    let alice = demo_token(&server.url, "alice", "basic").await;
    let (status, _) = get_json(&format!("{}/me", server.resource_url), Some(&alice)).await;
    assert_eq!(status, 200);
    let (status, authz) = get_text(&format!("{authz_metrics}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        authz.contains(r#"tessera_tokens_issued_total{grant="password",format="jwt"} 1"#),
        "{authz}"
    );
    assert!(
        !authz.contains("tessera_token_validations_total"),
        "{authz}"
    );
    let (status, resource) = get_text(&format!("{resource_metrics}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        resource.contains(r#"tessera_token_validations_total{outcome="valid"} 1"#),
        "{resource}"
    );
    assert!(
        !resource.contains("tessera_tokens_issued_total"),
        "{resource}"
    );

    // Each health copy is its own server's: the resource server's reports the feed.
    let (status, health) = get_json(&format!("{resource_metrics}/healthz"), None).await;
    assert_eq!(status, 200);
    assert_eq!(health["revocation_feed"]["state"], "ok", "{health}");
    let (status, health): (u16, Value) = get_json(&format!("{authz_metrics}/healthz"), None).await;
    assert_eq!((status, &health["status"]), (200, &"ok".into()));
    assert!(health.get("revocation_feed").is_none(), "{health}");
    assert!(server.stop().success());
}

/// Without the flags, `/metrics` stays on each main address (as it always was).
#[tokio::test]
async fn without_a_metrics_address_metrics_stay_on_the_main_addresses() {
    let ws = Workspace::sqlite();
    let server = Server::start(&ws, &[]);
    assert!(
        !server
            .stdout
            .iter()
            .any(|l| l.contains("metrics listening")),
        "{:?}",
        server.stdout
    );
    for main in [&server.url, &server.resource_url] {
        let (status, text) = get_text(&format!("{main}/metrics")).await;
        assert_eq!(status, 200, "{main}/metrics");
        assert!(text.contains("# TYPE tessera_http_requests_total counter"));
    }
}

/// `--metrics-addr` is the metrics address of the one server `tessera authz` (or
/// `resource`) runs; `serve`, which runs two, refuses it, and so does a server given it
/// beside its own flag.
#[tokio::test]
async fn a_server_run_alone_takes_metrics_addr_and_serve_refuses_it() {
    let ws = Workspace::sqlite();
    let server = Server::start_command(&ws, "authz", &["--metrics-addr", "127.0.0.1:0"]);
    let metrics = metrics_url(&server, "authorization");
    let (status, text) = get_text(&format!("{metrics}/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE tessera_tokens_issued_total counter"));
    let (status, _) = get_text(&format!("{}/metrics", server.url)).await;
    assert_eq!(status, 404, "the main address no longer serves /metrics");
    assert!(server.stop().success());

    let refused = |args: &[&str]| {
        let out = ws
            .command()
            .args(args)
            .args(["--database-url", &ws.db_url()])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            !out.stdout.windows(9).any(|w| w == b"listening"),
            "{args:?}"
        );
        stderr
    };
    let stderr = refused(&[
        "serve",
        "--authz-addr",
        "127.0.0.1:0",
        "--resource-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    assert!(
        stderr.contains("give --authz-metrics-addr and --resource-metrics-addr"),
        "{stderr}"
    );
    let stderr = refused(&[
        "authz",
        "--authz-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--authz-metrics-addr",
        "127.0.0.1:0",
    ]);
    assert!(
        stderr.contains("the metrics address is given twice: use either --metrics-addr"),
        "{stderr}"
    );
}
