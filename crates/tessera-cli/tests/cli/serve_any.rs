//! `tessera serve` listening on every interface, as in a container: its resource server
//! reaches its own authorization server over loopback (keys, revocation feed), whatever
//! issuer the tokens carry.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tessera_store::on_each_backend;
use tessera_store::testing::Backend;

use crate::{Server, Workspace, demo_token, get_json, http, revoke_as};

on_each_backend!(serve_on_every_interface_checks_tokens_and_revocations_over_loopback);

/// A port free on every interface now.
fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve_on_every_interface_checks_tokens_and_revocations_over_loopback(backend: Backend) {
    let ws = Workspace::new(backend);
    let master = ws.ok(&["keys", "master-key"], "");
    // Without --issuer (a container on a published port), and with a public https issuer
    // that does not lead to this machine (a container behind a TLS proxy).
    for issuer in [None, Some("https://auth.example.test")] {
        let (authz_port, resource_port) = (free_port(), free_port());
        let authz_addr = format!("0.0.0.0:{authz_port}");
        let resource_addr = format!("0.0.0.0:{resource_port}");
        let mut args = vec![
            "--authz-addr",
            &authz_addr,
            "--resource-addr",
            &resource_addr,
        ];
        args.extend(issuer.iter().flat_map(|issuer| ["--issuer", issuer]));
        let server = Server::start_with(
            &ws,
            "serve",
            &[("TESSERA_MASTER_KEY", master.trim())],
            &args,
        );
        let expected = issuer.map_or(format!("http://localhost:{authz_port}"), str::to_owned);
        assert_eq!(server.issuer, expected);
        let authz = format!("http://127.0.0.1:{authz_port}");
        let resource = format!("http://127.0.0.1:{resource_port}");
        let (status, metadata) = get_json(
            &format!("{authz}/.well-known/oauth-authorization-server"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(metadata["issuer"], expected.as_str());

        // A token from the authorization port works on the resource port.
        let bob = demo_token(&authz, "bob", "basic").await;
        let alice = demo_token(&authz, "alice", "basic").await;
        let (status, me) = get_json(&format!("{resource}/me"), Some(&bob)).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["username"], "bob");

        // Revoked, it is refused through the in-process revocation feed.
        assert_eq!(
            revoke_as(&authz, ("demo-jwt", "demo-jwt-secret"), &bob).await,
            200
        );
        let started = Instant::now();
        let refused = loop {
            let response = http()
                .get(format!("{resource}/me"))
                .bearer_auth(&bob)
                .send()
                .await
                .unwrap();
            if response.status().as_u16() == 401 {
                break response;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the revoked token still works"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            refused.headers()["www-authenticate"],
            r#"Bearer realm="tessera", error="invalid_token""#
        );
        let (status, _) = get_json(&format!("{resource}/me"), Some(&alice)).await;
        assert_eq!(status, 200, "another user's token keeps working");
        assert!(
            !server
                .stdout
                .iter()
                .any(|line| line.contains("NOT enforced"))
        );
        server.stop();
    }
}
