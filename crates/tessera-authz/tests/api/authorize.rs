//! The authorization code flow with PKCE: pages, CSRF, redirects and code redemption.

use chrono::Utc;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::Value;
use tessera_core::{ScopeSet, pkce, secret};
use tessera_store::{NewAuthorizationCode, NewLoginSession};

use crate::browser::*;
use crate::helpers::*;

fn assert_page_headers(headers: &HeaderMap) {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        get("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(get("cache-control").as_deref(), Some("no-store"));
    let csp = get("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(get("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(get("referrer-policy").as_deref(), Some("no-referrer"));
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "HTML pages send no CORS headers"
    );
}

/// Redeems `code` as the public client `web`.
async fn redeem(
    app: &TestApp,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> reqwest::Response {
    app.token(
        Auth::IdOnly("web"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn redeem_opaque(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    app.token(
        Auth::Basic("web-opaque", APP_SECRET),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn the_code_flow_signs_in_asks_consent_and_issues_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let state = "a b&c=d/é%20+~";
    let params = request("web", REDIRECT_URI, "basic admin", state, &pkce.challenge);
    let mut browser = Browser::new(&app);

    // The login page: the client's name, the security headers, a CSRF cookie.
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    assert_eq!(page.status().as_u16(), 200);
    assert_page_headers(page.headers());
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self'")
    );
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("tessera_csrf="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert!(!set_cookie.contains("Secure"), "the issuer is http");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Sign in") && html.contains("Acme Web"),
        "{html}"
    );
    assert!(html.contains(browser.cookie("tessera_csrf").unwrap()));

    // Signing in: a 303 back to the request, a session cookie, then the consent page.
    let consent = sign_in(&mut browser, &params, "alice").await;
    assert_eq!(consent.status().as_u16(), 200);
    assert_page_headers(consent.headers());
    assert!(browser.cookie("tessera_session").is_some());
    let csp = consent.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "the consent form may redirect to the client only: {csp}"
    );
    let html = consent.text().await.unwrap();
    assert!(html.contains("Allow") && html.contains("Deny"), "{html}");
    assert!(html.contains("See your profile"), "{html}");
    assert!(
        html.contains("Manage your company&#39;s users")
            || html.contains("Manage your company's users"),
        "{html}"
    );
    assert!(html.contains("alice"));

    // Allow: a 303 to the redirect URI with the code, the exact state and the issuer.
    let response = decide(&mut browser, &params, "allow").await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert!(location(&response).starts_with("http://127.0.0.1:9/callback?"));
    let back = redirect_params(&response);
    assert_eq!(back["state"], state, "state comes back byte for byte");
    assert_eq!(back["iss"], app.issuer);
    let code = &back["code"];
    assert_eq!(code.len(), 43, "256 bits, base64url");

    // The database holds only the digest.
    let contents = app.db().contents();
    assert!(!contents.is_empty());
    assert!(
        !contents.windows(code.len()).any(|w| w == code.as_bytes()),
        "the code is stored in clear"
    );

    // The token request: an RS256 JWT for alice and a refresh token.
    let body = assert_token(redeem(&app, code, REDIRECT_URI, &pkce.verifier).await).await;
    assert_eq!(body["scope"], "basic admin");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("tsrr_"));
    let claims = app
        .verify(body["access_token"].as_str().unwrap())
        .await
        .claims;
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "basic admin");
    assert_eq!(claims["company"], "acme");

    // A second authorization in the same browser skips the login page, and, for no
    // more than was allowed, the consent page too: the code comes back at once.
    let again = request("web", REDIRECT_URI, "basic", "s2", &Pkce::new().challenge);
    let back = browser
        .get(&format!("/oauth/authorize?{}", query(&again)))
        .await;
    assert_eq!(back.status().as_u16(), 302);
    let params = redirect_params(&back);
    assert_eq!(params.get("state").map(String::as_str), Some("s2"));
    assert!(params.contains_key("code"), "{params:?}");
    // prompt=consent asks again all the same.
    let mut asked = request("web", REDIRECT_URI, "basic", "s3", &Pkce::new().challenge);
    asked.push(("prompt", "consent".to_owned()));
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(&asked)))
        .await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Allow"));
}

async fn deny_sends_access_denied_and_no_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let params = request(
        "web",
        REDIRECT_URI_WITH_QUERY,
        "basic",
        "st",
        &pkce.challenge,
    );
    let mut browser = Browser::new(&app);
    sign_in(&mut browser, &params, "bob").await;
    let response = decide(&mut browser, &params, "deny").await;
    assert_eq!(response.status().as_u16(), 303);
    let back = redirect_params(&response);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "st");
    assert_eq!(back["tenant"], "acme", "the registered query is kept");
    assert!(!back.contains_key("code"));
}

async fn a_code_is_redeemed_once_and_a_replay_revokes_what_it_issued(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web-opaque", REDIRECT_URI, "basic", "bob", &pkce).await;
    let first = assert_token(redeem_opaque(&app, &code, &pkce.verifier).await).await;
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(access).await["active"], true);

    let replay = redeem_opaque(&app, &code, &pkce.verifier).await;
    let body = assert_oauth_error(replay, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // What the first redemption issued is revoked with it.
    assert_eq!(app.introspect(access).await["active"], false);
    let refreshed = app
        .token(
            Auth::Basic("web-opaque", APP_SECRET),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_oauth_error(refreshed, 400, "invalid_grant").await;

    // A fresh code still works.
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web-opaque", REDIRECT_URI, "basic", "bob", &pkce).await;
    assert_token(redeem_opaque(&app, &code, &pkce.verifier).await).await;
}

async fn ten_parallel_redemptions_of_one_code_have_exactly_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web-opaque", REDIRECT_URI, "basic", "bob", &pkce).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (http, address) = (app.http.clone(), app.address.clone());
        let (code, verifier) = (code.clone(), pkce.verifier.clone());
        tasks.spawn(async move {
            http.post(format!("{address}/oauth/token"))
                .basic_auth("web-opaque", Some(APP_SECRET))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ])
                .send()
                .await
                .unwrap()
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(response) = tasks.join_next().await {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => winners.push(response.json::<Value>().await.unwrap()),
            _ => {
                assert_oauth_error(response, 400, "invalid_grant").await;
                losers += 1;
            }
        }
    }
    assert_eq!((winners.len(), losers), (1, 9));
    // The replays revoked the winner's grant: nothing issued from the code stays live.
    let winner = &winners[0];
    assert_eq!(
        app.introspect(winner["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    let refreshed = app
        .token(
            Auth::Basic("web-opaque", APP_SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", winner["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_oauth_error(refreshed, 400, "invalid_grant").await;
}

async fn an_expired_code_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    let code = secret::generate().unwrap();
    let issued = Utc::now() - chrono::Duration::seconds(61);
    app.store
        .insert_authorization_code(
            &NewAuthorizationCode {
                code_hash: secret::digest(&code),
                client_id: "web".parse().unwrap(),
                user_id: alice.id,
                redirect_uri: REDIRECT_URI.into(),
                scope: "basic".parse::<ScopeSet>().unwrap(),
                code_challenge: pkce.challenge.clone(),
                expires_at: issued + chrono::Duration::seconds(tessera_authz::CODE_TTL_SECS),
                nonce: None,
                auth_time: None,
            },
            issued,
        )
        .await
        .unwrap();
    let body = assert_oauth_error(
        redeem(&app, &code, REDIRECT_URI, &pkce.verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

async fn the_verifier_must_be_present_and_match(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web", REDIRECT_URI, "basic", "bob", &pkce).await;

    // Missing: a malformed request that leaves the code unspent.
    let missing = app
        .token(
            Auth::IdOnly("web"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await;
    let body = assert_oauth_error(missing, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );

    // The right code with a wrong verifier (another pair's), or the challenge itself as
    // `plain` would send it: invalid_grant, and the code is spent.
    let wrong = redeem(&app, &code, REDIRECT_URI, &Pkce::new().verifier).await;
    let body = assert_oauth_error(wrong, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    let after = redeem(&app, &code, REDIRECT_URI, &pkce.verifier).await;
    assert_oauth_error(after, 400, "invalid_grant").await;

    let pkce = Pkce::new();
    let code = obtain_code(&app, "web", REDIRECT_URI, "basic", "bob", &pkce).await;
    let plain = redeem(&app, &code, REDIRECT_URI, &pkce.challenge).await;
    assert_oauth_error(plain, 400, "invalid_grant").await;

    // A valid code and verifier still work.
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web", REDIRECT_URI, "basic", "bob", &pkce).await;
    assert_token(redeem(&app, &code, REDIRECT_URI, &pkce.verifier).await).await;
}

async fn the_token_request_must_repeat_the_redirect_uri_and_come_from_the_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let code = obtain_code(&app, "web", REDIRECT_URI, "basic", "bob", &pkce).await;
    let other = redeem(&app, &code, REDIRECT_URI_WITH_QUERY, &pkce.verifier).await;
    let body = assert_oauth_error(other, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri")
    );

    let pkce = Pkce::new();
    let code = obtain_code(&app, "web", REDIRECT_URI, "basic", "bob", &pkce).await;
    let stolen = redeem_opaque(&app, &code, &pkce.verifier).await;
    assert_oauth_error(stolen, 400, "invalid_grant").await;
}

async fn login_consent_and_redemption_may_each_reach_another_instance(backend: Backend) {
    let (_db, store) = seeded_store(backend).await;
    // Two servers of one issuer on one database, as behind a load balancer.
    let first = start(store.clone(), |_| {}).await;
    let issuer = first.issuer.clone();
    let second = start(store.clone(), |s| s.issuer = Some(issuer)).await;
    let pkce = Pkce::new();
    let params = request("web", REDIRECT_URI, "basic", "s", &pkce.challenge);
    let mut browser = Browser::new(&first);
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    assert_eq!(page.status().as_u16(), 200);
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    let mut form = borrowed(&params);
    form.extend([
        ("csrf", csrf.as_str()),
        ("username", "bob"),
        ("password", PASSWORD),
    ]);
    // The second server's origin is not the issuer's: post as a no-referrer page does.
    browser.switch_to(&second);
    let response = browser
        .post_from("/oauth/authorize/login", &form, &[("Origin", "null")])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    browser.switch_to(&first);
    let response = decide(&mut browser, &params, "allow").await;
    let code = redirect_params(&response)["code"].clone();
    let body = assert_token(redeem(&second, &code, REDIRECT_URI, &pkce.verifier).await).await;
    assert_eq!(body["scope"], "basic");
    // And the replay, at the first server, is recognised.
    let replay = redeem(&first, &code, REDIRECT_URI, &pkce.verifier).await;
    assert_oauth_error(replay, 400, "invalid_grant").await;
}

on_each_backend!(
    login_consent_and_redemption_may_each_reach_another_instance,
    the_code_flow_signs_in_asks_consent_and_issues_tokens,
    deny_sends_access_denied_and_no_code,
    a_code_is_redeemed_once_and_a_replay_revokes_what_it_issued,
    ten_parallel_redemptions_of_one_code_have_exactly_one_winner,
    an_expired_code_is_refused,
    the_verifier_must_be_present_and_match,
    the_token_request_must_repeat_the_redirect_uri_and_come_from_the_client,
);

/// The front-channel checks below touch the database only to find the client: one
/// backend is enough.
async fn sqlite_app() -> TestApp {
    spawn_app(Backend::Sqlite).await
}

fn assert_error_page(response: &reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    assert!(
        response.headers().get(LOCATION).is_none(),
        "never a redirect to an unverified URI"
    );
    assert_page_headers(response.headers());
}

#[tokio::test]
async fn an_unknown_client_or_unregistered_redirect_uri_gets_an_error_page_never_a_redirect() {
    let app = sqlite_app().await;
    let challenge = Pkce::new().challenge;
    let mut browser = Browser::new(&app);
    let variants = [
        "http://127.0.0.1:9/callback/",               // trailing slash
        "http://127.0.0.1:9/Callback",                // case of the path
        "HTTP://127.0.0.1:9/callback",                // case of the scheme
        "http://127.0.0.1:9/callback?x=1",            // extra query
        "http://evil@127.0.0.1:9/callback",           // userinfo
        "http://127.0.0.1:8080/callback",             // other port
        "http://127.0.0.1:9/callback/%2e%2e/cb",      // encoded dots
        "http://127.0.0.1:9/%2e%2e/callback",         // encoded dots before the path
        "http://127.0.0.1:9/callback#frag",           // fragment
        "https://app.example.com/cb?tenant=acme&x=1", // more query on a registered query
        "https://app.example.com/cb",                 // registered query dropped
    ];
    for redirect_uri in variants {
        let params = request("web", redirect_uri, "basic", "s", &challenge);
        let response = browser
            .get(&format!("/oauth/authorize?{}", query(&params)))
            .await;
        assert_error_page(&response, 400);
        let html = response.text().await.unwrap();
        assert!(
            html.contains("redirect_uri is not registered"),
            "{redirect_uri}: {html}"
        );
    }

    let unknown = request("nobody", REDIRECT_URI, "basic", "s", &challenge);
    let response = browser
        .get(&format!("/oauth/authorize?{}", query(&unknown)))
        .await;
    assert_error_page(&response, 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("not registered here")
    );

    let mut missing = request("web", REDIRECT_URI, "basic", "s", &challenge);
    missing.retain(|(k, _)| *k != "redirect_uri");
    let response = browser
        .get(&format!("/oauth/authorize?{}", query(&missing)))
        .await;
    assert_error_page(&response, 400);

    // A repeated parameter cannot be trusted either.
    let repeated = format!(
        "{}&redirect_uri={}",
        query(&request("web", REDIRECT_URI, "basic", "s", &challenge)),
        "https%3A%2F%2Fevil.example%2F"
    );
    let response = browser.get(&format!("/oauth/authorize?{repeated}")).await;
    assert_error_page(&response, 400);

    // The registered URI itself is accepted.
    let good = request("web", REDIRECT_URI, "basic", "s", &challenge);
    let response = browser
        .get(&format!("/oauth/authorize?{}", query(&good)))
        .await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn pkce_is_required_s256_only_and_errors_go_back_with_the_exact_state() {
    let app = sqlite_app().await;
    let challenge = Pkce::new().challenge;
    let mut browser = Browser::new(&app);
    let state = "x y&z=%41";
    let mut cases: Vec<(Vec<(&str, String)>, &str)> = Vec::new();
    let base = || request("web", REDIRECT_URI, "basic", state, &challenge);

    let mut no_challenge = base();
    no_challenge.retain(|(k, _)| *k != "code_challenge");
    cases.push((no_challenge, "invalid_request"));
    let mut plain = base();
    plain.retain(|(k, _)| *k != "code_challenge_method");
    plain.push(("code_challenge_method", "plain".into()));
    cases.push((plain, "invalid_request"));
    let mut no_method = base();
    no_method.retain(|(k, _)| *k != "code_challenge_method");
    cases.push((no_method, "invalid_request"));
    let mut short = base();
    short.retain(|(k, _)| *k != "code_challenge");
    short.push(("code_challenge", challenge[..42].to_owned()));
    cases.push((short, "invalid_request"));
    let mut not_base64url = base();
    not_base64url.retain(|(k, _)| *k != "code_challenge");
    not_base64url.push(("code_challenge", format!("{}+", &challenge[..42])));
    cases.push((not_base64url, "invalid_request"));
    let mut token_type = base();
    token_type.retain(|(k, _)| *k != "response_type");
    token_type.push(("response_type", "token".into()));
    cases.push((token_type, "unsupported_response_type"));
    let mut no_type = base();
    no_type.retain(|(k, _)| *k != "response_type");
    cases.push((no_type, "invalid_request"));
    let mut bad_scope = base();
    bad_scope.retain(|(k, _)| *k != "scope");
    bad_scope.push(("scope", "basic offline_access".into()));
    cases.push((bad_scope, "invalid_scope"));

    for (params, error) in cases {
        let response = browser
            .get(&format!("/oauth/authorize?{}", query(&params)))
            .await;
        assert_eq!(response.status().as_u16(), 302, "{params:?}");
        assert!(location(&response).starts_with("http://127.0.0.1:9/callback?"));
        let back = redirect_params(&response);
        assert_eq!(back["error"], error, "{params:?}");
        assert_eq!(back["state"], state, "{params:?}");
        assert_eq!(back["iss"], app.issuer);
        assert!(!back.contains_key("code"));
    }

    // A verifier sent for a code that no challenge protects: there is no such code.
    let response = redeem(
        &app,
        &secret::generate().unwrap(),
        REDIRECT_URI,
        &Pkce::new().verifier,
    )
    .await;
    assert_oauth_error(response, 400, "invalid_grant").await;

    // The same request with S256 reaches the login page.
    let response = browser
        .get(&format!("/oauth/authorize?{}", query(&base())))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(pkce::is_valid_challenge(&challenge));
}

#[tokio::test]
async fn a_post_without_this_browsers_csrf_token_or_from_another_site_gets_403_and_issues_nothing()
{
    let app = sqlite_app().await;
    let pkce = Pkce::new();
    let params = request("web", REDIRECT_URI, "basic", "s", &pkce.challenge);
    let mut browser = Browser::new(&app);
    browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    let mut other = Browser::new(&app);
    other
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    let others_csrf = other.cookie("tessera_csrf").unwrap().to_owned();
    assert_ne!(csrf, others_csrf);

    let login = |csrf: Option<&str>| {
        let mut form: Vec<(&str, String)> = params.clone();
        form.extend([("username", "alice".into()), ("password", PASSWORD.into())]);
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf.into()));
        }
        form
    };
    let refused = [
        (login(None), None),
        (login(Some(&others_csrf)), None),
        (login(Some(&csrf)), Some(("Origin", "https://evil.example"))),
        (login(Some(&csrf)), Some(("Origin", "http://127.0.0.1:9"))),
        (login(Some(&csrf)), Some(("Sec-Fetch-Site", "cross-site"))),
        (login(Some(&csrf)), Some(("Sec-Fetch-Site", "same-site"))),
    ];
    for (form, header) in refused {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let response = browser
            .post_from("/oauth/authorize/login", &borrowed(&form), &headers)
            .await;
        assert_error_page(&response, 403);
        assert!(response.headers().get("set-cookie").is_none(), "no session");
    }
    assert!(browser.cookie("tessera_session").is_none());

    // The right token signs in, also with the `Origin: null` that a browser sends from a
    // no-referrer page, with or without `Sec-Fetch-Site`.
    for headers in [
        vec![("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        vec![("Origin", "null")],
    ] {
        let response = browser
            .post_from(
                "/oauth/authorize/login",
                &borrowed(&login(Some(&csrf))),
                &headers,
            )
            .await;
        assert_eq!(response.status().as_u16(), 303, "{headers:?}");
    }

    // The consent form's token is bound to the login session: neither the login token
    // (the CSRF cookie, which a sibling site could plant) nor another browser's passes.
    let token = consent_token(&mut browser, &params).await;
    assert_ne!(token, csrf);
    let consent = |csrf: Option<&str>| {
        let mut form: Vec<(&str, String)> = params.clone();
        form.push(("decision", "allow".into()));
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf.into()));
        }
        form
    };
    for form in [
        consent(None),
        consent(Some(&csrf)),
        consent(Some(&others_csrf)),
    ] {
        let response = browser
            .post("/oauth/authorize/consent", &borrowed(&form))
            .await;
        assert_error_page(&response, 403);
    }
    let response = browser
        .post_from(
            "/oauth/authorize/consent",
            &borrowed(&consent(Some(&token))),
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_error_page(&response, 403);

    // Signing in again (as someone else, in another tab) changes the session: the page
    // that showed the first account can no longer grant anything.
    let response = browser
        .post("/oauth/authorize/login", &borrowed(&login(Some(&csrf))))
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let response = browser
        .post(
            "/oauth/authorize/consent",
            &borrowed(&consent(Some(&token))),
        )
        .await;
    assert_error_page(&response, 403);

    let response = decide(&mut browser, &params, "allow").await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(redirect_params(&response).contains_key("code"));
}

#[tokio::test]
async fn a_wrong_password_shows_the_login_page_again_without_a_session() {
    let app = sqlite_app().await;
    let params = request("web", REDIRECT_URI, "basic", "s", &Pkce::new().challenge);
    let mut browser = Browser::new(&app);
    browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    for (username, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("dora", PASSWORD)] {
        let mut form = borrowed(&params);
        form.extend([
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ]);
        let response = browser.post("/oauth/authorize/login", &form).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_page_headers(response.headers());
        let html = response.text().await.unwrap();
        assert!(html.contains("Invalid username or password"), "{html}");
        assert!(browser.cookie("tessera_session").is_none());
    }
    // A consent post without a session goes back to the login page.
    let response = decide(&mut browser, &params, "allow").await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(location(&response).starts_with("/oauth/authorize?"));
}

#[tokio::test]
async fn a_user_without_the_admin_role_cannot_consent_to_admin() {
    let app = sqlite_app().await;
    let params = request(
        "web",
        REDIRECT_URI,
        "basic admin",
        "s",
        &Pkce::new().challenge,
    );
    let mut browser = Browser::new(&app);
    let response = sign_in(&mut browser, &params, "bob").await;
    assert_eq!(response.status().as_u16(), 302);
    let back = redirect_params(&response);
    assert_eq!(back["error"], "invalid_scope");
    assert_eq!(back["state"], "s");

    // A consent form edited to ask for admin is refused at the POST too.
    let basic = request("web", REDIRECT_URI, "basic", "s", &Pkce::new().challenge);
    let token = consent_token(&mut browser, &basic).await;
    let mut form = borrowed(&params);
    form.extend([("csrf", token.as_str()), ("decision", "allow")]);
    let response = browser.post("/oauth/authorize/consent", &form).await;
    assert_eq!(response.status().as_u16(), 303);
    let back = redirect_params(&response);
    assert_eq!(back["error"], "invalid_scope");
    assert!(!back.contains_key("code"));
}

#[tokio::test]
async fn a_state_with_control_characters_gets_an_error_page() {
    let app = sqlite_app().await;
    let mut browser = Browser::new(&app);
    for state in ["a\rb", "nul\0", "tab\t"] {
        let params = request("web", REDIRECT_URI, "basic", state, &Pkce::new().challenge);
        let response = browser
            .get(&format!("/oauth/authorize?{}", query(&params)))
            .await;
        assert_error_page(&response, 400);
    }
}

#[tokio::test]
async fn the_consent_page_may_redirect_to_an_ipv6_loopback_client() {
    let app = sqlite_app().await;
    let params = request(
        "web",
        REDIRECT_URI_IPV6,
        "basic",
        "s",
        &Pkce::new().challenge,
    );
    let mut browser = Browser::new(&app);
    let page = sign_in(&mut browser, &params, "bob").await;
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    // CSP cannot name an IPv6 host; the scheme is the narrowest source that works.
    assert!(csp.ends_with("form-action 'self' http:"), "{csp}");
    let response = decide(&mut browser, &params, "allow").await;
    assert!(location(&response).starts_with("http://[::1]:9/callback?code="));
}

#[tokio::test]
async fn cookies_are_secure_when_the_issuer_is_https() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.issuer = Some("https://auth.example.com".into());
    })
    .await;
    let params = request("web", REDIRECT_URI, "basic", "s", &Pkce::new().challenge);
    let mut browser = Browser::new(&app);
    let response = browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    // `__Host-`: only this host can set it (a sibling subdomain cannot plant one), which
    // browsers accept only with `Secure`, `Path=/` and no `Domain`.
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-tessera_csrf="), "{cookie}");
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");

    let csrf = browser.cookie("__Host-tessera_csrf").unwrap().to_owned();
    let mut form = borrowed(&params);
    form.extend([
        ("csrf", csrf.as_str()),
        ("username", "bob"),
        ("password", PASSWORD),
    ]);
    let response = browser
        .post_from(
            "/oauth/authorize/login",
            &form,
            &[("Origin", "https://auth.example.com")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let session = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(session.starts_with("__Host-tessera_session="), "{session}");
    assert!(
        session.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=1800; Secure"),
        "{session}"
    );
    // The signed-in browser gets the consent page; a cookie under the plain name, as a
    // sibling site could plant it, is not ours.
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    assert!(page.text().await.unwrap().contains("Allow"));
    let mut planted = Browser::new(&app);
    planted
        .get(&format!("/oauth/authorize?{}", query(&params)))
        .await;
    let value = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    let page = planted
        .get_with_cookie(
            &format!("/oauth/authorize?{}", query(&params)),
            &format!("tessera_session={value}"),
        )
        .await;
    assert!(page.text().await.unwrap().contains("Sign in"));
}

#[tokio::test]
async fn a_starting_server_purges_expired_sessions() {
    let (_db, store) = seeded_store(Backend::Sqlite).await;
    let alice = store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    let ended = Utc::now() - chrono::Duration::seconds(1);
    store
        .insert_login_session(
            &NewLoginSession {
                session_hash: secret::digest("ended"),
                user_id: alice.id,
                expires_at: ended,
            },
            ended - chrono::Duration::minutes(30),
        )
        .await
        .unwrap();
    let _app = start(store.clone(), |_| {}).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store
        .find_login_session(&secret::digest("ended"))
        .await
        .unwrap()
        .is_some()
    {
        assert!(std::time::Instant::now() < deadline, "not purged");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
