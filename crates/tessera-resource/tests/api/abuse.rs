//! Abuse of the resource server's costly paths: garbage opaque tokens, floods of invalid
//! tokens, bursts of password hashing and probing for usernames of other companies.

use reqwest::Method;
use serde_json::{Value, json};
use tessera_web::net::TrustedProxies;

use crate::helpers::*;

on_each_backend!(
    a_malformed_opaque_token_is_refused_with_no_lookup,
    a_repeated_unknown_opaque_token_is_refused_from_the_inactive_cache,
    a_flood_of_invalid_tokens_from_one_address_gets_429_while_others_still_work,
    a_burst_of_user_creations_hashes_in_bounded_concurrency_and_refuses_the_excess,
    an_admin_probing_taken_usernames_gets_429_and_another_admin_still_creates,
    healthz_says_when_the_key_set_is_past_its_hard_age,
    an_ipv6_subscriber_rotating_addresses_is_limited_by_its_64,
    concurrent_invalid_tokens_from_an_address_over_its_allowance_cannot_pass_together,
    concurrent_probes_for_taken_usernames_cannot_pass_together,
);

/// The value of an unlabelled or labelled series in a `/metrics` page, 0 when absent.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let page = app.get("/metrics", None).await.text().await.unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// A token shaped like the opaque tokens the authorization server issues that names no
/// token at all.
fn unknown_opaque_token() -> String {
    format!("tsr_{}", tessera_core::secret::generate().unwrap())
}

async fn a_malformed_opaque_token_is_refused_with_no_lookup(backend: Backend) {
    let app = spawn_app(backend).await;
    let well_shaped = unknown_opaque_token();
    for token in [
        "garbage".to_owned(),
        "tsr_".to_owned(),
        format!("{}A", well_shaped),
        well_shaped[..well_shaped.len() - 1].to_owned(),
        format!("tsr_{}", "~".repeat(43)),
        format!("rt_{}", &well_shaped[4..]),
        "x".repeat(4000),
    ] {
        let calls = app.store.calls();
        let response = app.get("/companies/acme/users", Some(&token)).await;
        assert_eq!(response.headers()["tessera-authz-lookups"], "0", "{token}");
        assert_rejected(response, 401, INVALID_TOKEN).await;
        assert_eq!(app.store.calls(), calls, "{token} reached the token store");
    }
    assert_eq!(
        metric(
            &app,
            r#"tessera_token_validations_total{outcome="malformed"}"#
        )
        .await,
        7.0
    );
    // A real opaque token still costs its one lookup (the token with its user) and works.
    let token = app.token_as(Format::Opaque, "alice", "admin", false).await;
    let response = app.get("/companies/acme/users", Some(&token)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["tessera-authz-lookups"], "1");
}

async fn a_repeated_unknown_opaque_token_is_refused_from_the_inactive_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = unknown_opaque_token();
    let calls = app.store.calls();
    let first = app.get("/companies/acme/users", Some(&unknown)).await;
    assert_eq!(first.headers()["tessera-authz-lookups"], "1");
    assert_rejected(first, 401, INVALID_TOKEN).await;
    assert_eq!(app.store.calls(), calls + 1, "the first time, one lookup");
    for _ in 0..3 {
        let again = app.get("/companies/acme/users", Some(&unknown)).await;
        assert_eq!(again.headers()["tessera-authz-lookups"], "0");
        assert_rejected(again, 401, INVALID_TOKEN).await;
    }
    assert_eq!(app.store.calls(), calls + 1, "repeats cost no lookup");
    let hits = r#"tessera_opaque_inactive_cache_lookups_total{result="hit"}"#;
    assert_eq!(metric(&app, hits).await, 3.0);

    // A valid opaque token is never cached as inactive, and still works every time.
    let token = app.token_as(Format::Opaque, "alice", "admin", false).await;
    for _ in 0..2 {
        let response = app.get("/companies/acme/users", Some(&token)).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["tessera-authz-lookups"], "1");
    }
    assert_eq!(metric(&app, hits).await, 3.0);
}

async fn a_flood_of_invalid_tokens_from_one_address_gets_429_while_others_still_work(
    backend: Backend,
) {
    // The server's clock stands still: the quota does not refill during the test.
    let app = spawn_app_with(backend, |s| {
        s.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
        s.clock = tessera_core::Clock::pinned_now();
    })
    .await;
    let from = |address: &str, token: &str| {
        app.http
            .get(format!("{}/companies/acme/users", app.address))
            .bearer_auth(token)
            .header("X-Forwarded-For", address)
            .send()
    };
    let flooder = "203.0.113.7";
    let mut refused = None;
    for n in 0..200 {
        let response = from(flooder, &unknown_opaque_token()).await.unwrap();
        match response.status().as_u16() {
            401 => continue,
            429 => {
                refused = Some((n, response));
                break;
            }
            other => panic!("request {n}: {other}"),
        }
    }
    let (n, response) = refused.expect("the flood was never limited");
    assert_eq!(n, 100, "a burst of 100 is allowed, not more");
    // The next one is allowed 50 ms later: `Retry-After` rounds up to a second.
    assert_eq!(response.headers()["retry-after"], "1");
    let body = assert_rejected(response, 429, NO_CREDENTIALS).await;
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("too many invalid tokens"),
        "{body}"
    );
    // While limited, the address's tokens are not even looked up, a good one included.
    let calls = app.store.calls();
    let good = app.token_as(Format::Opaque, "alice", "admin", false).await;
    let calls_after_issuing = app.store.calls();
    assert_eq!(from(flooder, &good).await.unwrap().status().as_u16(), 429);
    assert_eq!(app.store.calls(), calls_after_issuing);
    assert!(calls_after_issuing > calls);
    assert_eq!(
        metric(&app, r#"tessera_rate_limited_total{limit="invalid_token"}"#).await,
        2.0
    );
    // Another address is not limited: its valid opaque token works, and so do JWTs.
    let response = from("203.0.113.8", &good).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = from("203.0.113.8", &app.alice_admin()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn a_burst_of_user_creations_hashes_in_bounded_concurrency_and_refuses_the_excess(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.hash_threads = Some(1);
        s.hash_queue = 1;
    })
    .await;
    let admin = app.alice_admin();
    let create = |n: usize| {
        let (app, admin) = (&app, &admin);
        async move {
            let response = app
                .send(
                    Method::POST,
                    "/companies/acme/users",
                    Some(admin),
                    Some(json!({
                        "username": format!("burst-{n}"),
                        "password": "a long enough password",
                        "roles": ["user"],
                    })),
                )
                .await;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (n, status, retry_after, body)
        }
    };
    let answers = futures_join_all((0..24).map(create)).await;
    let created: Vec<usize> = answers
        .iter()
        .filter(|(_, status, _, _)| *status == 201)
        .map(|(n, ..)| *n)
        .collect();
    let busy: Vec<&(usize, u16, Option<String>, Value)> = answers
        .iter()
        .filter(|(_, status, _, _)| *status == 503)
        .collect();
    assert_eq!(created.len() + busy.len(), 24, "{answers:?}");
    assert!(!created.is_empty(), "some creations are served");
    assert!(
        !busy.is_empty(),
        "a burst beyond one thread and a queue of one is refused"
    );
    for (_, _, retry_after, body) in &busy {
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    assert_eq!(metric(&app, "tessera_password_hashes_peak").await, 1.0);
    assert_eq!(
        metric(&app, "tessera_password_hashes_refused_total").await,
        busy.len() as f64
    );
    // Every accepted creation is durable; no refused one left a user behind.
    let listed: Vec<Value> = app
        .get("/companies/acme/users", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = listed
        .iter()
        .filter_map(|u| {
            u["username"]
                .as_str()?
                .strip_prefix("burst-")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = created.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    // Once the burst is over, a creation is served again.
    let (_, status, _, _) = create(99).await;
    assert_eq!(status, 201);
}

/// Runs every future concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    // Poll them all together: a join of a vector, with no extra dependency.
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in pending.iter_mut() {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => {
                        outputs.push(Some(output));
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

async fn an_admin_probing_taken_usernames_gets_429_and_another_admin_still_creates(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.alice_admin();
    let app = &app;
    let probe = |token: String, username: &'static str| async move {
        app.send(
            Method::POST,
            "/companies/acme/users",
            Some(&token),
            Some(json!({
                "username": username,
                "password": "a long enough password",
                "roles": ["user"],
            })),
        )
        .await
    };
    // Ten taken names (another company's among them) are ten 409s.
    for n in 0..10 {
        let taken = if n % 2 == 0 { "carol" } else { "dave" };
        let response = probe(alice.clone(), taken).await;
        assert_eq!(response.status().as_u16(), 409, "probe {n}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "conflict");
    }
    // The eleventh is refused before anything is checked, even a free name.
    for username in ["carol", "frank"] {
        let response = probe(alice.clone(), username).await;
        assert_eq!(response.status().as_u16(), 429, "{username}");
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    assert_eq!(
        metric(app, r#"tessera_rate_limited_total{limit="failed_create"}"#).await,
        2.0
    );
    // Another admin (another token subject) is not limited; alice still reads.
    let other = app.token("bob", "admin");
    let response = probe(other.clone(), "frank").await;
    assert_eq!(response.status().as_u16(), 201);
    app.assert_valid_token_still_works().await;
}

async fn healthz_says_when_the_key_set_is_past_its_hard_age(backend: Backend) {
    let clock = tessera_core::Clock::pinned_now();
    let app = spawn_app_with(backend, |s| {
        s.clock = clock.clone();
        s.jwks_max_stale = std::time::Duration::from_secs(120);
    })
    .await;
    let health: Value = app.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["jwks"]["state"], "waiting");
    app.assert_valid_token_still_works().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status().as_u16(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["jwks"]["state"], "ok");

    // Nothing refreshed the keys for longer than the hard age.
    clock.advance(std::time::Duration::from_secs(121));
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status().as_u16(), 503);
    assert_eq!(health.headers()["retry-after"], "5");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["jwks"]["state"], "expired");
    assert_eq!(health["jwks"]["age_seconds"], 121);

    // The issuer answers: a request starts a refresh in the background (it gets 503 until
    // the refresh lands), and health is back.
    let token = app.alice_admin();
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let status = app
            .get("/companies/acme/users", Some(&token))
            .await
            .status()
            .as_u16();
        statuses.push(status);
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (last, before) = statuses.split_last().unwrap();
    assert_eq!(*last, 200, "{statuses:?}");
    assert!(before.iter().all(|s| *s == 503), "{statuses:?}");
    let health: Value = app.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["jwks"]["state"], "ok");
    assert_eq!(health["status"], "ok");
}

async fn an_ipv6_subscriber_rotating_addresses_is_limited_by_its_64(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
        s.clock = tessera_core::Clock::pinned_now();
    })
    .await;
    let from = |address: String, token: String| {
        app.http
            .get(format!("{}/companies/acme/users", app.address))
            .bearer_auth(token)
            .header("X-Forwarded-For", address)
            .send()
    };
    // A fresh address of one /64 for every request: the limit is the /64's.
    let mut statuses = Vec::new();
    for n in 0..102u32 {
        let address = format!("2001:db8:1:2:{:x}:{:x}::1", n / 7 + 1, n % 7 + 1);
        let response = from(address, unknown_opaque_token()).await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 100);
    assert_eq!(&statuses[100..], &[429, 429]);
    // Another /64 is someone else, and its valid token works.
    let good = app.token_as(Format::Opaque, "alice", "admin", false).await;
    let response = from("2001:db8:1:3::1".into(), good).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn concurrent_invalid_tokens_from_an_address_over_its_allowance_cannot_pass_together(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
        s.clock = tessera_core::Clock::pinned_now();
    })
    .await;
    let app = &app;
    let from = |address: &'static str, token: String| async move {
        app.http
            .get(format!("{}/companies/acme/users", app.address))
            .bearer_auth(token)
            .header("X-Forwarded-For", address)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for n in 0..99 {
        assert_eq!(
            from("203.0.113.9", unknown_opaque_token()).await,
            401,
            "{n}"
        );
    }
    // One failure is left; twenty at once get exactly that one.
    let statuses =
        futures_join_all((0..20).map(|_| from("203.0.113.9", unknown_opaque_token()))).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        19,
        "{statuses:?}"
    );
    // A busy address of good requests is never limited, however many run at once.
    let good = app.alice_admin();
    let statuses = futures_join_all((0..150).map(|_| from("203.0.113.10", good.clone()))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

async fn concurrent_probes_for_taken_usernames_cannot_pass_together(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.clock = tessera_core::Clock::pinned_now()).await;
    let alice = app.alice_admin();
    let app = &app;
    let probe = |token: String| async move {
        app.send(
            Method::POST,
            "/companies/acme/users",
            Some(&token),
            Some(json!({
                "username": "carol",
                "password": "a long enough password",
                "roles": ["user"],
            })),
        )
        .await
        .status()
        .as_u16()
    };
    for n in 0..9 {
        assert_eq!(probe(alice.clone()).await, 409, "probe {n}");
    }
    // One probe is left; five at once get exactly that one.
    let statuses = futures_join_all((0..5).map(|_| probe(alice.clone()))).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        4,
        "{statuses:?}"
    );
    app.assert_valid_token_still_works().await;
}
