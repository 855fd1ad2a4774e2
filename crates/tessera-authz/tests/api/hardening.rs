//! Brute-force limits, trusted proxies, request limits, security headers, CORS, metrics
//! and the audit log, against a running server.

use std::time::Duration;

use reqwest::header::HeaderMap;
use tessera_core::Clock;
use tessera_store::{AuditFilter, AuditKind, NewAuditEvent};
use tessera_web::net::TrustedProxies;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{Browser, Pkce, borrowed, obtain_code, query, request};
use crate::helpers::*;

on_each_backend!(
    wrong_passwords_for_one_account_are_refused_while_another_account_signs_in,
    concurrent_guesses_cannot_outrun_the_limit,
    the_login_form_refuses_a_guessed_account_and_lets_others_in,
    a_flood_of_bad_client_secrets_is_refused_and_the_right_secret_works_afterwards,
    a_rotating_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit,
    a_trusted_proxy_names_the_client_and_a_spoofed_prefix_changes_nothing,
    rate_limits_can_be_switched_off,
    every_response_carries_the_security_headers,
    cors_answers_only_the_configured_origins_and_never_with_credentials,
    metrics_show_requests_tokens_introspections_limits_and_the_pool,
    security_events_are_audited_without_secrets,
    slow_clients_time_out_and_oversized_heads_are_refused,
    junk_refresh_tokens_for_a_public_client_hold_back_their_sender_and_no_one_else,
    introspection_is_answered_after_the_token_endpoint_refuses_the_same_client,
    a_stored_public_client_with_the_password_grant_is_refused_before_any_password_is_checked,
);

/// A server on a pinned clock, so tests can wait out a `Retry-After` instantly.
async fn pinned_app(
    backend: Backend,
    configure: impl FnOnce(&mut tessera_authz::Settings),
) -> (TestApp, Clock) {
    let clock = Clock::pinned(Clock::system().now_secs() * 1000);
    let pinned = clock.clone();
    let app = spawn_app_with(backend, move |s| {
        s.clock = pinned;
        configure(s);
    })
    .await;
    (app, clock)
}

impl TestApp {
    /// A client_credentials request by `machine` with `secret`, over Basic.
    async fn machine(&self, secret: &str) -> reqwest::Response {
        self.token(
            Auth::Basic("machine", secret),
            &[("grant_type", "client_credentials")],
        )
        .await
    }

    /// The audit events of `kind` written so far, newest first.
    async fn audit_events(&self, kind: AuditKind) -> Vec<tessera_store::AuditEvent> {
        self.audit.flush().await;
        self.store
            .list_audit_events(&AuditFilter {
                kind: Some(kind),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }
}

/// Asserts a 429 with the error body and a `Retry-After`, and returns its seconds.
async fn assert_limited(response: reqwest::Response) -> u64 {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on a {}", response.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = assert_oauth_error(response, 429, "temporarily_unavailable").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("retry after {retry_after} seconds")),
        "{description}"
    );
    retry_after
}

async fn wrong_passwords_for_one_account_are_refused_while_another_account_signs_in(
    backend: Backend,
) {
    let (app, clock) = pinned_app(backend, |_| {}).await;
    let mut refused = 0;
    let mut retry_after = 0;
    for attempt in 0..50 {
        let response = app.password_grant("alice", "guess-123", None).await;
        if response.status().as_u16() == 429 {
            retry_after = assert_limited(response).await;
            refused += 1;
        } else {
            assert!(attempt < 10, "attempt {attempt} was not limited");
            assert_oauth_error(response, 400, "invalid_grant").await;
        }
    }
    // Ten guesses were checked; the other forty were refused before any hashing.
    assert_eq!(refused, 40);
    assert_eq!(retry_after, 30);

    // Another account from the same address signs in normally.
    assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    // The guessed account itself is held back, even with its right password, until the
    // wait is over; then it signs in: no permanent lockout.
    assert_limited(app.password_grant("alice", PASSWORD, None).await).await;
    clock.advance(Duration::from_secs(retry_after));
    assert_token(app.password_grant("alice", PASSWORD, None).await).await;

    // The audit log has the ten failures and one event for the limit, not forty refusals.
    assert_eq!(app.audit_events(AuditKind::LoginFailed).await.len(), 10);
    let limited = app.audit_events(AuditKind::RateLimited).await;
    assert_eq!(limited.len(), 1, "{limited:?}");
    assert_eq!(limited[0].event.actor.as_deref(), Some("alice"));
    assert_eq!(
        limited[0].event.detail.as_deref(),
        Some("password_account: 10 failures; one more allowed every 30 s")
    );
}

async fn concurrent_guesses_cannot_outrun_the_limit(backend: Backend) {
    let (app, _clock) = pinned_app(backend, |_| {}).await;
    // Thirty guesses at once: only ten are checked, however they interleave.
    let password = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "guess-123"),
    ];
    let statuses = at_once(&app, ("app", APP_SECRET), &password, 30).await;
    assert_eq!(statuses[..10], [400; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 20], "{statuses:?}");
    // The same for client secrets.
    let cc = [("grant_type", "client_credentials")];
    let statuses = at_once(&app, ("machine", "not-the-secret"), &cc, 30).await;
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 20], "{statuses:?}");
    assert_token(app.password_grant("bob", PASSWORD, None).await).await;
}

/// Sends `n` identical token requests at once; returns their statuses, sorted.
async fn at_once(
    app: &TestApp,
    (client, secret): (&str, &str),
    form: &[(&str, &str)],
    n: usize,
) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = app
            .http
            .post(format!("{}/oauth/token", app.address))
            .basic_auth(client, Some(secret))
            .form(form);
        set.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = set.join_all().await;
    statuses.sort_unstable();
    statuses
}

async fn the_login_form_refuses_a_guessed_account_and_lets_others_in(backend: Backend) {
    let (app, _clock) = pinned_app(backend, |_| {}).await;
    let pkce = Pkce::new();
    let params = request("web", REDIRECT_URI, "basic", "s", &pkce.challenge);
    let mut browser = Browser::new(&app);
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    assert_eq!(page.status().as_u16(), 200);
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    let attempt = |username: &'static str, password: &'static str| {
        let mut form = borrowed(&params);
        form.extend([
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ]);
        form.into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect::<Vec<_>>()
    };
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..15 {
        let form = attempt("alice", "guess-123");
        let response = browser
            .post("/oauth/authorize/login", &borrowed(&form))
            .await;
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 5], "{statuses:?}");
    let last = last.unwrap();
    assert_eq!(last.headers()["retry-after"], "30");
    let html = last.text().await.unwrap();
    assert!(
        html.contains("Too many failed attempts. Try again in 30 seconds."),
        "{html}"
    );

    // bob signs in from the same browser and address.
    let form = attempt("bob", PASSWORD);
    let response = browser
        .post("/oauth/authorize/login", &borrowed(&form))
        .await;
    assert_eq!(response.status().as_u16(), 303);
}

async fn a_flood_of_bad_client_secrets_is_refused_and_the_right_secret_works_afterwards(
    backend: Backend,
) {
    let (app, clock) = pinned_app(backend, |_| {}).await;
    let mut codes = Vec::new();
    let mut retry_after = 0;
    for _ in 0..40 {
        let response = app.machine("not-the-secret").await;
        let status = response.status().as_u16();
        codes.push(status);
        if status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Basic realm=\"tessera\", charset=\"UTF-8\""
            );
            assert_oauth_error(response, 401, "invalid_client").await;
        } else {
            retry_after = assert_limited(response).await;
        }
    }
    assert_eq!(codes[..10], [401; 10], "{codes:?}");
    assert_eq!(codes[10..], [429; 30], "{codes:?}");
    assert_eq!(retry_after, 6);
    // The same goes for introspection and revocation: one limit per client and address.
    assert_limited(
        app.post_form(
            "/oauth/introspect",
            Auth::Basic("machine", "not-the-secret"),
            &[("token", "x")],
        )
        .await,
    )
    .await;

    // Another client from the same address is not affected.
    assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    // The flooded client waits out the limit, then its right secret works.
    assert_limited(app.machine(APP_SECRET).await).await;
    clock.advance(Duration::from_secs(retry_after));
    assert_token(app.machine(APP_SECRET).await).await;
}

async fn a_rotating_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(
    backend: Backend,
) {
    let (app, _clock) = pinned_app(backend, |_| {}).await;
    let mut codes = Vec::new();
    for i in 0..20 {
        let response = app
            .http
            .post(format!("{}/oauth/token", app.address))
            .basic_auth("machine", Some("not-the-secret"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        codes.push(response.status().as_u16());
    }
    assert_eq!(codes[..10], [401; 10], "{codes:?}");
    assert_eq!(codes[10..], [429; 10], "{codes:?}");
    // Passwords too: guesses at 31 accounts (so no account's own limit interferes), each
    // claiming another address, hit the one limit of the real peer.
    for i in 0..31 {
        let username = format!("user{i}");
        let response = app
            .http
            .post(format!("{}/oauth/token", app.address))
            .basic_auth("app", Some(APP_SECRET))
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .form(&[
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("password", "guess-123"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, if i < 30 { 400 } else { 429 }, "attempt {i}");
    }
    // The audit log names the real peer, not what the header claimed.
    let failed = app.audit_events(AuditKind::ClientAuthFailed).await;
    assert_eq!(failed.len(), 10);
    assert!(
        failed
            .iter()
            .all(|e| e.event.address.as_deref() == Some("127.0.0.1")),
        "{failed:?}"
    );
}

async fn a_trusted_proxy_names_the_client_and_a_spoofed_prefix_changes_nothing(backend: Backend) {
    let (app, _clock) = pinned_app(backend, |s| {
        s.trusted_proxies = TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]);
    })
    .await;
    let attempt = |forwarded: String| {
        app.http
            .post(format!("{}/oauth/token", app.address))
            .basic_auth("machine", Some("not-the-secret"))
            .header("X-Forwarded-For", forwarded)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    // One client behind the proxy: whatever it puts in front, the proxy's entry counts.
    for i in 0..10 {
        let response = attempt(format!("10.9.9.{i}, 198.51.100.7")).await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    assert_limited(attempt("1.2.3.4, 198.51.100.7".into()).await.unwrap()).await;
    // Another client behind the same proxy has its own allowance, also through a chain of
    // trusted proxies, which the walk skips.
    let response = attempt("198.51.100.8, 127.0.0.5".into()).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let failed = app.audit_events(AuditKind::ClientAuthFailed).await;
    assert_eq!(failed[0].event.address.as_deref(), Some("198.51.100.8"));
    assert_eq!(failed[1].event.address.as_deref(), Some("198.51.100.7"));
}

async fn rate_limits_can_be_switched_off(backend: Backend) {
    let (app, _clock) = pinned_app(backend, |s| s.rate_limits = false).await;
    for _ in 0..30 {
        let response = app.machine("not-the-secret").await;
        assert_oauth_error(response, 401, "invalid_client").await;
    }
    assert_token(app.machine(APP_SECRET).await).await;
}

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        assert_eq!(
            headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{name} on {what}"
        );
    }
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("no CSP on {what}"))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    // Plain http: no HSTS.
    assert!(headers.get("strict-transport-security").is_none(), "{what}");
}

async fn every_response_carries_the_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let not_found = app.get("/no/such/path").await;
    assert_eq!(not_found.status().as_u16(), 404);
    assert_security_headers(not_found.headers(), "actix's 404");
    let wrong_method = app.get("/oauth/token").await;
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_security_headers(wrong_method.headers(), "actix's 405");
    let too_large = app
        .raw_token("application/x-www-form-urlencoded", vec![b'a'; 64 * 1024])
        .await;
    assert_eq!(too_large.status().as_u16(), 413);
    assert_security_headers(too_large.headers(), "413");
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status().as_u16(), 200);
    assert_security_headers(jwks.headers(), "the JWKS");
    let error = app
        .token(Auth::Basic("app", APP_SECRET), &[("grant_type", "nope")])
        .await;
    assert_security_headers(error.headers(), "an OAuth error");
    assert_oauth_error(error, 400, "unsupported_grant_type").await;
    // The HTML pages keep their own policy.
    let page = app.get("/").await;
    assert_eq!(
        page.headers()["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'none'"
    );
    // An https issuer adds HSTS.
    let https = spawn_app_with(backend, |s| s.issuer = Some("https://tessera.test".into())).await;
    let jwks = https.get("/.well-known/jwks.json").await;
    assert_eq!(
        jwks.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // And a valid request still works.
    assert_token(app.password_grant("bob", PASSWORD, None).await).await;
}

async fn cors_answers_only_the_configured_origins_and_never_with_credentials(backend: Backend) {
    let allowed = "https://app.example.com";
    let app = spawn_app_with(backend, |s| s.cors_origins = vec![allowed.to_owned()]).await;
    let preflight = |origin: &str, path: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.address))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight(allowed, "/oauth/token").await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], allowed);
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    let evil = preflight("https://evil.example", "/oauth/token")
        .await
        .unwrap();
    assert_eq!(evil.status().as_u16(), 403);
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    // Actual requests: the configured origin is named, another is not reflected.
    let token = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .header("Origin", allowed)
        .basic_auth("machine", Some(APP_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.headers()["access-control-allow-origin"], allowed);
    assert_eq!(token.headers()["vary"], "Origin");
    assert!(
        token
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    assert_token(token).await;
    // UserInfo is called from such pages too, with the bearer token in a header.
    let userinfo = preflight(allowed, "/oauth/userinfo").await.unwrap();
    assert_eq!(userinfo.status().as_u16(), 204);
    assert_eq!(userinfo.headers()["access-control-allow-origin"], allowed);
    let evil = preflight("https://evil.example", "/oauth/userinfo")
        .await
        .unwrap();
    assert_eq!(evil.status().as_u16(), 403);
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .header("Origin", allowed)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            allowed,
            "{path}"
        );
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}"
        );
    }
    // The HTML pages never answer cross-origin, even to the configured origin.
    let page = app
        .http
        .get(format!("{}/oauth/authorize?client_id=web", app.address))
        .header("Origin", allowed)
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());
    let preflight_page = preflight(allowed, "/oauth/authorize/login").await.unwrap();
    assert!(
        preflight_page
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_ne!(preflight_page.status().as_u16(), 204);
}

/// The value of the series `name{labels}` in a Prometheus text body.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

async fn metrics_show_requests_tokens_introspections_limits_and_the_pool(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        assert_token(app.machine(APP_SECRET).await).await;
    }
    let opaque = assert_token(
        app.password_grant_as(Auth::Basic("opaque-app", APP_SECRET), "bob", PASSWORD, None)
            .await,
    )
    .await;
    app.introspect(opaque["access_token"].as_str().unwrap())
        .await;
    app.introspect("tsr_unknown").await;
    for _ in 0..11 {
        app.machine("not-the-secret").await;
    }
    app.get("/no/such/path").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let value =
        |series: &str| sample(&body, series).unwrap_or_else(|| panic!("no {series} in\n{body}"));
    assert_eq!(
        value(r#"tessera_http_requests_total{route="/oauth/token",status="200"}"#),
        4.0
    );
    assert_eq!(
        value(r#"tessera_http_requests_total{route="/oauth/token",status="401"}"#),
        10.0
    );
    assert_eq!(
        value(r#"tessera_http_requests_total{route="/oauth/token",status="429"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tessera_http_requests_total{route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tessera_http_request_duration_seconds_count{route="/oauth/token",status="200"}"#),
        4.0
    );
    assert!(body.contains(r#"tessera_http_request_duration_seconds_bucket{route="/oauth/token",status="200",le="+Inf"} 4"#), "{body}");
    assert_eq!(
        value(r#"tessera_tokens_issued_total{grant="client_credentials",format="jwt"}"#),
        3.0
    );
    assert_eq!(
        value(r#"tessera_tokens_issued_total{grant="password",format="opaque"}"#),
        1.0
    );
    assert_eq!(value(r#"tessera_introspections_total{active="true"}"#), 1.0);
    assert_eq!(
        value(r#"tessera_introspections_total{active="false"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tessera_rate_limited_total{limit="client_failures"}"#),
        1.0
    );
    assert!(value("tessera_db_pool_max_connections") >= 1.0);
    assert!(value(r#"tessera_db_pool_connections{state="idle"}"#) >= 0.0);
    // The path never becomes a label: unknown paths share one series.
    assert!(!body.contains("/no/such/path"), "{body}");
}

async fn security_events_are_audited_without_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    assert_oauth_error(
        app.password_grant("bob", "guess-123", None).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(app.machine("not-the-secret").await, 401, "invalid_client").await;
    let opaque = assert_token(
        app.password_grant_as(
            Auth::Basic("opaque-app", APP_SECRET),
            "alice",
            PASSWORD,
            None,
        )
        .await,
    )
    .await;
    let token = opaque["access_token"].as_str().unwrap();
    let revoked = app
        .post_form(
            "/oauth/revoke",
            Auth::Basic("opaque-app", APP_SECRET),
            &[("token", token)],
        )
        .await;
    assert_eq!(revoked.status().as_u16(), 200);
    // A refresh token used twice.
    let first = assert_token(
        app.password_grant_as(Auth::Basic("refresher", APP_SECRET), "bob", PASSWORD, None)
            .await,
    )
    .await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    assert_token(
        app.token(Auth::Basic("refresher", APP_SECRET), &grant)
            .await,
    )
    .await;
    assert_oauth_error(
        app.token(Auth::Basic("refresher", APP_SECRET), &grant)
            .await,
        400,
        "invalid_grant",
    )
    .await;

    app.audit.flush().await;
    let events = app
        .store
        .list_audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let kinds: Vec<AuditKind> = events.iter().rev().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::LoginSucceeded,
            AuditKind::TokenIssued,
            AuditKind::LoginFailed,
            AuditKind::ClientAuthFailed,
            AuditKind::LoginSucceeded,
            AuditKind::TokenIssued,
            AuditKind::TokenRevoked,
            AuditKind::LoginSucceeded,
            AuditKind::TokenIssued,
            AuditKind::TokenIssued,
            AuditKind::RefreshReuse,
        ],
        "{events:#?}"
    );
    let find = |kind: AuditKind| -> &NewAuditEvent {
        &events
            .iter()
            .rev()
            .find(|e| e.event.kind == kind)
            .unwrap()
            .event
    };
    let login = find(AuditKind::LoginSucceeded);
    assert_eq!(login.actor.as_deref(), Some("bob"));
    assert_eq!(login.client_id.as_deref(), Some("app"));
    assert_eq!(login.company.as_deref(), Some("acme"));
    assert_eq!(login.address.as_deref(), Some("127.0.0.1"));
    let issued = find(AuditKind::TokenIssued);
    assert_eq!(issued.detail.as_deref(), Some("grant=password format=jwt"));
    let failed = find(AuditKind::LoginFailed);
    assert_eq!(failed.actor.as_deref(), Some("bob"));
    assert_eq!(failed.detail.as_deref(), Some("wrong password"));
    let client = find(AuditKind::ClientAuthFailed);
    assert_eq!(client.client_id.as_deref(), Some("machine"));
    assert_eq!(client.detail.as_deref(), Some("/oauth/token"));
    let revocation = find(AuditKind::TokenRevoked);
    assert_eq!(revocation.client_id.as_deref(), Some("opaque-app"));
    // No password, secret or token is ever written.
    let dump = format!("{events:?}");
    for secret in [
        PASSWORD,
        "guess-123",
        "not-the-secret",
        APP_SECRET,
        token,
        refresh,
    ] {
        assert!(!dump.contains(secret), "{secret} in the audit log");
    }
}

async fn slow_clients_time_out_and_oversized_heads_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.request_timeout = Duration::from_secs(1)).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    // A head that never ends: 408 and the connection closed, within a few seconds.
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer))
        .await
        .expect("the server waited more than 10 s for a slow client")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A head larger than the server reads: 431, and nothing reaches a handler.
    let huge = "a".repeat(tessera_web::MAX_HEAD_BYTES + 1);
    let response = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.address))
        .header("X-Padding", huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 431);
    // Too many scopes are refused before any lookup.
    let scope = "basic ".repeat(30);
    let response = app
        .token(
            Auth::Basic("machine", APP_SECRET),
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope.trim()),
            ],
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_scope").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("longer than 128 bytes"),
        "{body}"
    );
    // The server still answers.
    assert_token(app.machine(APP_SECRET).await).await;
}

/// A server behind a trusted proxy on loopback: `X-Forwarded-For` names the client.
async fn behind_a_proxy(backend: Backend) -> (TestApp, Clock) {
    pinned_app(backend, |s| {
        s.trusted_proxies = TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]);
    })
    .await
}

impl TestApp {
    /// POSTs `form` to `path` as `client` from `address` (through the trusted proxy).
    async fn post_from(
        &self,
        path: &str,
        address: &str,
        auth: Auth<'_>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = form.to_vec();
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
            .header("X-Forwarded-For", address);
        match auth {
            Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
            Auth::IdOnly(id) => form.push(("client_id", id)),
            Auth::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
            Auth::None => {}
        }
        request.form(&form).send().await.unwrap()
    }
}

async fn junk_refresh_tokens_for_a_public_client_hold_back_their_sender_and_no_one_else(
    backend: Backend,
) {
    let (app, _clock) = behind_a_proxy(backend).await;
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web", REDIRECT_URI, "basic", "bob", &pkce).await;

    // Anyone can send the single-page app's id. An attacker sends junk refresh tokens
    // from one address, more than the token endpoint's per-client allowance (2,000).
    let attacker = "198.51.100.66";
    let mut statuses = Vec::new();
    let mut retry_after = 0;
    for i in 0..2_100 {
        let junk = format!("junk-{i}");
        let response = app
            .post_from(
                "/oauth/token",
                attacker,
                Auth::IdOnly("web"),
                &[("grant_type", "refresh_token"), ("refresh_token", &junk)],
            )
            .await;
        let status = response.status().as_u16();
        if status == 429 && retry_after == 0 {
            retry_after = assert_limited(response).await;
        } else if status == 400 {
            assert_oauth_error(response, 400, "invalid_grant").await;
        }
        statuses.push(status);
    }
    // Thirty refused grants, then the sender is held back.
    assert_eq!(statuses[..30], [400; 30], "{:?}", &statuses[..40]);
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(retry_after, 2);

    // The app's users, elsewhere, redeem their codes and refresh as if nothing happened.
    let user = "203.0.113.5";
    let response = app
        .post_from(
            "/oauth/token",
            user,
            Auth::IdOnly("web"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    let body = assert_token(response).await;
    let refresh = body["refresh_token"].as_str().unwrap();
    let response = app
        .post_from(
            "/oauth/token",
            user,
            Auth::IdOnly("web"),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    let body = assert_token(response).await;
    assert!(body["refresh_token"].as_str().is_some());
    // The held-back address gets nothing, even with a real refresh token.
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_limited(
        app.post_from(
            "/oauth/token",
            attacker,
            Auth::IdOnly("web"),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
    )
    .await;
    let limited = app.audit_events(AuditKind::RateLimited).await;
    assert_eq!(limited.len(), 1, "{limited:?}");
    assert_eq!(
        limited[0].event.detail.as_deref(),
        Some("public_grant_failures: 30 failures; one more allowed every 2 s")
    );
    assert_eq!(limited[0].event.address.as_deref(), Some(attacker));
}

async fn introspection_is_answered_after_the_token_endpoint_refuses_the_same_client(
    backend: Backend,
) {
    let (app, _clock) = behind_a_proxy(backend).await;
    let token = assert_token(
        app.password_grant_as(Auth::Basic("opaque-app", APP_SECRET), "bob", PASSWORD, None)
            .await,
    )
    .await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let rs = Auth::Basic("resource-server", APP_SECRET);

    // The resource server's client uses up the token endpoint's per-client allowance
    // (2,000 at once), from four addresses so that no address's own allowance runs out.
    for i in 0..2_000 {
        let address = format!("10.0.0.{}", i % 4 + 1);
        let response = app
            .post_from(
                "/oauth/token",
                &address,
                rs,
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(response.status().as_u16(), 400, "request {i}");
    }
    assert_limited(
        app.post_from(
            "/oauth/token",
            "10.0.0.5",
            rs,
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;

    // Its introspection calls are answered: more of them, from one address, than the
    // token endpoint allows a client or an address.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, token) = (
            app.http.clone(),
            format!("{}/oauth/introspect", app.address),
            token.clone(),
        );
        set.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..300 {
                let response = http
                    .post(&url)
                    .header("X-Forwarded-For", "10.0.0.5")
                    .basic_auth("resource-server", Some(APP_SECRET))
                    .form(&[("token", token.as_str())])
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap();
                statuses.push((status, body["active"].as_bool()));
            }
            statuses
        });
    }
    let answers: Vec<_> = set.join_all().await.into_iter().flatten().collect();
    assert_eq!(answers.len(), 2_400);
    assert!(
        answers.iter().all(|a| *a == (200, Some(true))),
        "{:?}",
        answers.iter().find(|a| **a != (200, Some(true)))
    );
    // The token endpoint still refuses the client: the allowances are separate.
    assert_limited(
        app.post_from(
            "/oauth/token",
            "10.0.0.6",
            rs,
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
}

async fn a_stored_public_client_with_the_password_grant_is_refused_before_any_password_is_checked(
    backend: Backend,
) {
    // `spa` is public and was stored with the password grant, as an older version
    // allowed.
    let (app, _clock) = pinned_app(backend, |_| {}).await;
    let spa = app.store.find_client("spa").await.unwrap().unwrap();
    assert!(spa.is_public() && spa.allows_grant(tessera_core::GrantType::Password));
    let body = assert_oauth_error(
        app.password_grant_as(Auth::IdOnly("spa"), "bob", PASSWORD, None)
            .await,
        400,
        "unauthorized_client",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "a public client cannot use the password grant (RFC 9700 §2.4)"
    );
    // Nothing is checked: fifteen wrong passwords for alice through it are all the same
    // refusal, none counts against her account, and no sign-in is recorded.
    for _ in 0..15 {
        assert_oauth_error(
            app.password_grant_as(Auth::IdOnly("spa"), "alice", "guess-123", None)
                .await,
            400,
            "unauthorized_client",
        )
        .await;
    }
    assert!(app.audit_events(AuditKind::LoginFailed).await.is_empty());
    assert!(app.audit_events(AuditKind::LoginSucceeded).await.is_empty());
    // Through a confidential client alice signs in as ever.
    assert_token(app.password_grant("alice", PASSWORD, None).await).await;
}

async fn with_durable_audit_a_token_is_delivered_only_once_its_record_is_stored(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.durable_token_audit = true).await;
    for (client, format) in [("machine", "jwt"), ("opaque-app", "opaque")] {
        let body = assert_token(
            app.token(
                Auth::Basic(client, APP_SECRET),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
        let token = body["access_token"].as_str().unwrap();
        let expected = if format == "jwt" {
            let jti = app.verify(token).await.claims["jti"]
                .as_str()
                .unwrap()
                .to_owned();
            format!("jti {jti}")
        } else {
            let digest = tessera_core::secret::digest(token);
            format!("sha256 {}", &digest[..16])
        };
        // No flush: the record is in the table by the time the token is.
        let events = app
            .store
            .list_audit_events(&AuditFilter {
                kind: Some(AuditKind::TokenIssued),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.event.target.as_deref() == Some(expected.as_str())),
            "{expected} not in {events:?}"
        );
    }
}
on_each_backend!(with_durable_audit_a_token_is_delivered_only_once_its_record_is_stored);
