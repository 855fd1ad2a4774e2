//! OpenID Connect at the authorization server: the authorization request's `prompt`,
//! `max_age`, `login_hint` and `nonce`, remembered consent, ID tokens, UserInfo, discovery
//! and RP-Initiated Logout. The `openidconnect` crate drives the same flows against the
//! real binary in the CLI suite.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::Value;

use crate::browser::*;
use crate::helpers::*;

const WEB: &str = "web";
const OIDC_SCOPE: &str = "openid profile email basic";

/// An authorization request of `web` for `scope` with `extra` parameters.
fn oidc_request(
    scope: &str,
    state: &str,
    pkce: &Pkce,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut params = request(WEB, REDIRECT_URI, scope, state, &pkce.challenge);
    params.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    params
}

/// GET of the authorization endpoint for `params`.
async fn authorize(browser: &mut Browser, params: &[(&str, String)]) -> reqwest::Response {
    browser
        .get(&format!("/oauth/authorize?{}", query(params)))
        .await
}

/// Asserts a redirect to `web` with `error` (and the state and issuer) and no code.
fn assert_redirected_error(response: &reqwest::Response, app: &TestApp, state: &str, error: &str) {
    assert_eq!(response.status().as_u16(), 302, "a redirect, never a page");
    assert!(
        location(response).starts_with(REDIRECT_URI),
        "{}",
        location(response)
    );
    let params = redirect_params(response);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{params:?}"
    );
    assert!(
        params
            .get("error_description")
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(params.get("state").map(String::as_str), Some(state));
    assert_eq!(params.get("iss"), Some(&app.issuer));
    assert!(!params.contains_key("code"));
}

/// The code of a redirect to `web`.
fn code_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status().as_u16(), 302, "a redirect with a code");
    let params = redirect_params(response);
    params
        .get("code")
        .unwrap_or_else(|| panic!("no code: {params:?}"))
        .clone()
}

/// Redeems `code` for `web` and returns the token response.
async fn redeem(app: &TestApp, code: &str, pkce: &Pkce) -> Value {
    assert_token(
        app.post_form(
            "/oauth/token",
            Auth::IdOnly(WEB),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await,
    )
    .await
}

/// Signs alice in and allows `params` on the consent page (asked for with
/// `prompt=consent`, though an earlier test step was remembered); returns the code and the
/// browser.
async fn consented(app: &TestApp, params: &[(&str, String)]) -> (String, Browser) {
    let mut params = params.to_vec();
    if !params.iter().any(|(name, _)| *name == "prompt") {
        params.push(("prompt", "consent".to_owned()));
    }
    let params = params.as_slice();
    let mut browser = Browser::new(app);
    let consent = sign_in(&mut browser, params, "alice").await;
    assert_eq!(consent.status().as_u16(), 200, "the consent page");
    let csrf = form_token(&consent.text().await.unwrap());
    let mut form = borrowed(params);
    form.extend([("csrf", csrf.as_str()), ("decision", "allow")]);
    let response = browser.post("/oauth/authorize/consent", &form).await;
    assert_eq!(response.status().as_u16(), 303);
    let code = redirect_params(&response)["code"].clone();
    (code, browser)
}

/// The JOSE header and claims of a JWT, unverified.
fn parts(token: &str) -> (Value, Value) {
    let mut segments = token.split('.');
    let mut decode = || {
        let segment = segments.next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    };
    (decode(), decode())
}

/// The ID token verified with the JWKS: signature, issuer, audience `web`, expiry.
async fn verified_id_token(app: &TestApp, token: &str) -> Value {
    let jwks = app.jwks().await;
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[WEB]);
    validation.set_issuer(&[&app.issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

/// `at_hash` of `access_token` for an RS256 ID token, computed here (Core §3.1.3.6).
fn at_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

async fn userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/oauth/userinfo", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asserts an RFC 6750 refusal: status, the challenge with `error`, the JSON body.
async fn assert_bearer_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status().as_u16(), status);
    let challenge = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"tessera\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert_no_store(response.headers());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error);
}

async fn prompt_none_answers_by_redirect_and_never_shows_a_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let mut browser = Browser::new(&app);

    // Nobody signed in.
    let params = oidc_request(OIDC_SCOPE, "n1", &pkce, &[("prompt", "none")]);
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "n1",
        "login_required",
    );

    // Signed in, but nothing allowed yet.
    let plain = oidc_request(OIDC_SCOPE, "n2", &pkce, &[]);
    let consent = sign_in(&mut browser, &plain, "alice").await;
    assert_eq!(consent.status().as_u16(), 200);
    let params = oidc_request(OIDC_SCOPE, "n3", &pkce, &[("prompt", "none")]);
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "n3",
        "consent_required",
    );

    // The hint names someone else than the signed-in user.
    let params = oidc_request(
        OIDC_SCOPE,
        "n4",
        &pkce,
        &[("prompt", "none"), ("login_hint", "bob")],
    );
    let answer = authorize(&mut browser, &params).await;
    assert_redirected_error(&answer, &app, "n4", "interaction_required");

    // Allowed once: prompt=none now gets a code, for the same scopes or fewer.
    let csrf = form_token(&consent.text().await.unwrap());
    let mut form = borrowed(&plain);
    form.extend([("csrf", csrf.as_str()), ("decision", "allow")]);
    assert_eq!(
        browser
            .post("/oauth/authorize/consent", &form)
            .await
            .status()
            .as_u16(),
        303
    );
    for scope in [OIDC_SCOPE, "openid", "basic"] {
        let pkce = Pkce::new();
        let params = oidc_request(
            scope,
            "n5",
            &pkce,
            &[("prompt", "none"), ("login_hint", "alice")],
        );
        let code = code_of(&authorize(&mut browser, &params).await);
        let tokens = redeem(&app, &code, &pkce).await;
        assert_eq!(
            tokens["scope"],
            scope.parse::<tessera_core::ScopeSet>().unwrap().to_string()
        );
    }
    // max_age=0 is met by no earlier sign-in, however recent.
    let params = oidc_request(
        "openid",
        "n5b",
        &pkce,
        &[("prompt", "none"), ("max_age", "0")],
    );
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "n5b",
        "login_required",
    );
    // An ID token of another user as id_token_hint: that user is not signed in here.
    let bobs = {
        let mut bob_browser = Browser::new(&app);
        let pkce = Pkce::new();
        let params = oidc_request("openid", "b", &pkce, &[]);
        let consent = sign_in(&mut bob_browser, &params, "bob").await;
        let csrf = form_token(&consent.text().await.unwrap());
        let mut form = borrowed(&params);
        form.extend([("csrf", csrf.as_str()), ("decision", "allow")]);
        let back = bob_browser.post("/oauth/authorize/consent", &form).await;
        let code = redirect_params(&back)["code"].clone();
        redeem(&app, &code, &pkce).await["id_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let params = oidc_request(
        "openid",
        "n5c",
        &pkce,
        &[("prompt", "none"), ("id_token_hint", &bobs)],
    );
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "n5c",
        "login_required",
    );
    // alice's own ID token as the hint, and her address as login_hint: a code.
    let pkce = Pkce::new();
    let params = oidc_request(
        "openid",
        "n5d",
        &pkce,
        &[("prompt", "none"), ("login_hint", "Alice@ACME.example")],
    );
    let alices = redeem(
        &app,
        &code_of(&authorize(&mut browser, &params).await),
        &pkce,
    )
    .await;
    let pkce = Pkce::new();
    let hint = alices["id_token"].as_str().unwrap();
    let params = oidc_request(
        "openid",
        "n5e",
        &pkce,
        &[("prompt", "none"), ("id_token_hint", hint)],
    );
    code_of(&authorize(&mut browser, &params).await);

    // A wider scope was never allowed.
    let params = oidc_request("openid admin", "n6", &pkce, &[("prompt", "none")]);
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "n6",
        "consent_required",
    );

    // A sign-in older than max_age: prompt=none cannot ask for the password.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let params = oidc_request(
        "openid",
        "n7",
        &pkce,
        &[("prompt", "none"), ("max_age", "0")],
    );
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "n7",
        "login_required",
    );
    // max_age=60 is met by that sign-in.
    let pkce = Pkce::new();
    let params = oidc_request(
        "openid",
        "n8",
        &pkce,
        &[("prompt", "none"), ("max_age", "60")],
    );
    code_of(&authorize(&mut browser, &params).await);
}
on_each_backend!(prompt_none_answers_by_redirect_and_never_shows_a_page);

async fn malformed_or_unsupported_parameters_are_refused_on_the_redirect(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let mut browser = Browser::new(&app);
    for (extra, error) in [
        (("prompt", "none login"), "invalid_request"),
        (("prompt", "none consent"), "invalid_request"),
        (("prompt", "sometimes"), "invalid_request"),
        (("prompt", "login  consent"), "invalid_request"),
        (("max_age", "-5"), "invalid_request"),
        (("max_age", "soon"), "invalid_request"),
        (("max_age", "99999999999"), "invalid_request"),
        (("nonce", "a\u{1}b"), "invalid_request"),
        (("login_hint", "alice\n"), "invalid_request"),
        (
            ("request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (
            ("request_uri", "https://rp.example/request.jwt"),
            "request_uri_not_supported",
        ),
        (("registration", "{}"), "registration_not_supported"),
    ] {
        let params = oidc_request(OIDC_SCOPE, "m1", &pkce, &[extra]);
        let answer = authorize(&mut browser, &params).await;
        assert_redirected_error(&answer, &app, "m1", error);
    }
    let long_nonce = "n".repeat(1025);
    let params = oidc_request(OIDC_SCOPE, "m2", &pkce, &[("nonce", &long_nonce)]);
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "m2",
        "invalid_request",
    );
    // An unknown scope is invalid_scope, as before.
    let params = oidc_request("openid offline_access", "m3", &pkce, &[]);
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "m3",
        "invalid_scope",
    );

    // And a sound request still gets the login page.
    let params = oidc_request(OIDC_SCOPE, "m4", &pkce, &[("nonce", &"n".repeat(1024))]);
    assert_eq!(
        authorize(&mut browser, &params).await.status().as_u16(),
        200
    );
}
on_each_backend!(malformed_or_unsupported_parameters_are_refused_on_the_redirect);

async fn prompt_login_and_max_age_ask_for_the_password_and_login_hint_fills_the_username(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let plain = oidc_request(OIDC_SCOPE, "l1", &pkce, &[]);
    let (code, mut browser) = consented(&app, &plain).await;
    let first = parts(
        redeem(&app, &code, &pkce).await["id_token"]
            .as_str()
            .unwrap(),
    )
    .1;

    // The hint fills the username.
    let mut fresh = Browser::new(&app);
    let params = oidc_request(OIDC_SCOPE, "l2", &pkce, &[("login_hint", "alice")]);
    let page = authorize(&mut fresh, &params).await.text().await.unwrap();
    assert!(page.contains(r#"name="username" value="alice""#), "{page}");

    // A hint at another user shows alice's browser the login page; signing in as anyone
    // then goes on (the hint is dropped), never back to the login page.
    let pkce_b = Pkce::new();
    let params = oidc_request("openid", "l2b", &pkce_b, &[("login_hint", "bob")]);
    let page = authorize(&mut browser, &params).await.text().await.unwrap();
    assert!(page.contains(r#"name="username" value="bob""#), "{page}");
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    let mut form = borrowed(&params);
    form.extend([
        ("csrf", csrf.as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
    ]);
    let next = location(&browser.post("/oauth/authorize/login", &form).await);
    assert!(!next.contains("login_hint"), "{next}");
    code_of(&browser.get(&next).await);

    // Signed in and allowed, yet prompt=login shows the login page again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let pkce = Pkce::new();
    let params = oidc_request(OIDC_SCOPE, "l3", &pkce, &[("prompt", "login")]);
    let page = authorize(&mut browser, &params).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"action="/oauth/authorize/login""#)
    );
    // After the password, the request goes on without prompt=login: the remembered
    // consent sends the code at once, with the new sign-in's auth_time.
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    let mut form = borrowed(&params);
    form.extend([
        ("csrf", csrf.as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
    ]);
    let response = browser.post("/oauth/authorize/login", &form).await;
    assert_eq!(response.status().as_u16(), 303);
    let next = location(&response);
    assert!(!next.contains("prompt=login"), "{next}");
    let code = code_of(&browser.get(&next).await);
    let second = parts(
        redeem(&app, &code, &pkce).await["id_token"]
            .as_str()
            .unwrap(),
    )
    .1;
    assert!(
        second["auth_time"].as_i64() > first["auth_time"].as_i64(),
        "{first} {second}"
    );

    // max_age shorter than the sign-in's age: the login page, then on.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let pkce = Pkce::new();
    let params = oidc_request(OIDC_SCOPE, "l4", &pkce, &[("max_age", "0")]);
    let page = authorize(&mut browser, &params).await;
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"action="/oauth/authorize/login""#)
    );
    let mut form = borrowed(&params);
    form.extend([
        ("csrf", csrf.as_str()),
        ("username", "alice"),
        ("password", PASSWORD),
    ]);
    let next = location(&browser.post("/oauth/authorize/login", &form).await);
    assert!(!next.contains("max_age"), "{next}");
    let code = code_of(&browser.get(&next).await);
    let tokens = redeem(&app, &code, &pkce).await;
    let third = parts(tokens["id_token"].as_str().unwrap()).1;
    assert!(third["auth_time"].as_i64() > second["auth_time"].as_i64());
}
on_each_backend!(prompt_login_and_max_age_ask_for_the_password_and_login_hint_fills_the_username);

async fn the_code_flow_issues_an_id_token_and_a_refresh_keeps_its_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let nonce = "n-0S6_WzA2Mj";
    let params = oidc_request(OIDC_SCOPE, "i1", &pkce, &[("nonce", nonce)]);
    let (code, _) = consented(&app, &params).await;
    let tokens = redeem(&app, &code, &pkce).await;
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();

    let (header, _) = parts(id_token);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], app.kid);
    let claims = verified_id_token(&app, id_token).await;
    let access_claims = app.verify(access).await.claims;
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["aud"], WEB);
    assert_eq!(claims["sub"], alice.id.to_string());
    assert_eq!(claims["sub"], access_claims["sub"]);
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["at_hash"], at_hash(access));
    assert_eq!(claims["sid"], access_claims["sid"]);
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));
    let (iat, auth_time) = (
        claims["iat"].as_i64().unwrap(),
        claims["auth_time"].as_i64().unwrap(),
    );
    assert!(auth_time <= iat && iat - auth_time < 60, "{claims}");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - iat,
        access_claims["exp"].as_i64().unwrap() - access_claims["iat"].as_i64().unwrap()
    );
    assert_eq!(claims["name"], ALICE_NAME);
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["updated_at"], alice.updated_at.timestamp());
    assert_eq!(claims["email"], ALICE_EMAIL);
    assert_eq!(claims["email_verified"], false);

    // A refresh: a new ID token for the same sign-in, without the nonce.
    let refreshed = assert_token(
        app.post_form(
            "/oauth/token",
            Auth::IdOnly(WEB),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await,
    )
    .await;
    let again = verified_id_token(&app, refreshed["id_token"].as_str().unwrap()).await;
    for claim in ["sub", "auth_time", "sid", "aud", "email", "name"] {
        assert_eq!(again[claim], claims[claim], "{claim}");
    }
    assert!(again.get("nonce").is_none(), "{again}");
    assert_eq!(
        again["at_hash"],
        at_hash(refreshed["access_token"].as_str().unwrap())
    );
    // A narrower refresh without openid: no ID token.
    let narrowed = assert_token(
        app.post_form(
            "/oauth/token",
            Auth::IdOnly(WEB),
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    refreshed["refresh_token"].as_str().unwrap(),
                ),
                ("scope", "basic"),
            ],
        )
        .await,
    )
    .await;
    assert!(narrowed.get("id_token").is_none(), "{narrowed}");

    // Without profile and email, only who signed in.
    let pkce = Pkce::new();
    let params = oidc_request("openid", "i2", &pkce, &[("prompt", "consent")]);
    let (code, _) = consented(&app, &params).await;
    let bare = verified_id_token(
        &app,
        redeem(&app, &code, &pkce).await["id_token"]
            .as_str()
            .unwrap(),
    )
    .await;
    for absent in [
        "name",
        "preferred_username",
        "email",
        "email_verified",
        "nonce",
    ] {
        assert!(bare.get(absent).is_none(), "{absent} in {bare}");
    }
    // Without openid, no ID token at all.
    let pkce = Pkce::new();
    let params = oidc_request("basic profile", "i3", &pkce, &[]);
    let (code, _) = consented(&app, &params).await;
    assert!(redeem(&app, &code, &pkce).await.get("id_token").is_none());

    // An ID token is no access token: introspection calls it inactive, UserInfo refuses
    // it, and the access token still works at both.
    assert_eq!(
        app.introspect(id_token).await,
        serde_json::json!({"active": false})
    );
    assert_bearer_error(userinfo(&app, id_token).await, 401, "invalid_token").await;
    assert_eq!(app.introspect(access).await["active"], true);
    assert_eq!(userinfo(&app, access).await.status().as_u16(), 200);
}
on_each_backend!(the_code_flow_issues_an_id_token_and_a_refresh_keeps_its_sign_in);

async fn userinfo_gives_the_granted_claims_and_rfc6750_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let pkce = Pkce::new();
    let params = oidc_request(OIDC_SCOPE, "u1", &pkce, &[]);
    let (code, _) = consented(&app, &params).await;
    let tokens = redeem(&app, &code, &pkce).await;
    let access = tokens["access_token"].as_str().unwrap();
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;

    // No token: a bare challenge, no error code.
    let bare = app
        .http
        .get(format!("{}/oauth/userinfo", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 401);
    assert_eq!(bare.headers()[WWW_AUTHENTICATE], "Bearer realm=\"tessera\"");
    // Another scheme is no bearer token either; two headers are a malformed request.
    let basic_auth = app
        .http
        .get(format!("{}/oauth/userinfo", app.address))
        .basic_auth("web", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic_auth.status().as_u16(), 401);
    assert_eq!(
        basic_auth.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"tessera\""
    );
    let twice = app
        .http
        .get(format!("{}/oauth/userinfo", app.address))
        .header("authorization", format!("Bearer {access}"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_bearer_error(twice, 400, "invalid_request").await;
    // Garbage, and a token of a client that does not exist.
    for junk in [
        "x",
        "a.b.c",
        "tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_bearer_error(userinfo(&app, junk).await, 401, "invalid_token").await;
    }
    // A token without openid: 403 naming the scope.
    let basic = assert_token(app.password_grant("alice", PASSWORD, Some("basic")).await).await;
    let response = userinfo(&app, basic["access_token"].as_str().unwrap()).await;
    assert!(
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("scope=\"openid\"")
    );
    assert_bearer_error(response, 403, "insufficient_scope").await;

    // The claims, by GET and by POST alike.
    let expected = serde_json::json!({
        "sub": alice.id.to_string(),
        "name": ALICE_NAME,
        "preferred_username": "alice",
        "updated_at": alice.updated_at.timestamp(),
        "email": ALICE_EMAIL,
        "email_verified": false,
        "company": "acme",
        "roles": ["admin", "user"],
    });
    let got = userinfo(&app, access).await;
    assert_eq!(got.status().as_u16(), 200);
    assert_no_store(got.headers());
    assert_eq!(got.json::<Value>().await.unwrap(), expected);
    let posted = app
        .http
        .post(format!("{}/oauth/userinfo", app.address))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.json::<Value>().await.unwrap(), expected);

    // Only what was granted: openid alone gives sub, company and roles.
    let pkce = Pkce::new();
    let params = oidc_request("openid", "u2", &pkce, &[]);
    let (code, _) = consented(&app, &params).await;
    let narrow = redeem(&app, &code, &pkce).await;
    let claims: Value = userinfo(&app, narrow["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let names: BTreeMap<_, _> = claims.as_object().unwrap().iter().collect();
    assert_eq!(
        names.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["company", "roles", "sub"]
    );

    // An opaque token with openid works the same way.
    let pkce = Pkce::new();
    let params = request(
        "web-opaque",
        REDIRECT_URI,
        "openid email",
        "u3",
        &pkce.challenge,
    );
    let (code, _) = consented(&app, &params).await;
    let opaque = assert_token(
        app.post_form(
            "/oauth/token",
            Auth::Basic("web-opaque", APP_SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await,
    )
    .await;
    let opaque_access = opaque["access_token"].as_str().unwrap();
    assert!(!opaque_access.contains('.'));
    let claims: Value = userinfo(&app, opaque_access).await.json().await.unwrap();
    assert_eq!(claims["email"], ALICE_EMAIL);
    assert_eq!(claims["sub"], alice.id.to_string());
    assert!(opaque["id_token"].as_str().is_some());

    // Once alice is disabled, her tokens get invalid_token; another's still work.
    app.store
        .set_user_disabled(&"alice".parse().unwrap(), true, chrono::Utc::now())
        .await
        .unwrap();
    assert_bearer_error(userinfo(&app, access).await, 401, "invalid_token").await;
    assert_bearer_error(userinfo(&app, opaque_access).await, 401, "invalid_token").await;
}
on_each_backend!(userinfo_gives_the_granted_claims_and_rfc6750_errors);

async fn discovery_is_built_from_configuration(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.address))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let document: Value = response.json().await.unwrap();
    let issuer = app.issuer.as_str();
    assert_eq!(document["issuer"], issuer);
    assert_eq!(
        document["authorization_endpoint"],
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(document["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(
        document["userinfo_endpoint"],
        format!("{issuer}/oauth/userinfo")
    );
    assert_eq!(
        document["end_session_endpoint"],
        format!("{issuer}/oauth/logout")
    );
    assert_eq!(
        document["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert_eq!(
        document["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        document["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        document["scopes_supported"],
        serde_json::json!(["basic", "admin", "openid", "profile", "email"])
    );
    for claim in [
        "sub",
        "auth_time",
        "nonce",
        "sid",
        "name",
        "email",
        "email_verified",
    ] {
        assert!(
            document["claims_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == claim),
            "{claim}"
        );
    }
    // The RFC 8414 document says the same of what both hold.
    let oauth: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    for (name, value) in oauth.as_object().unwrap() {
        assert_eq!(&document[name], value, "{name}");
    }
}
on_each_backend!(discovery_is_built_from_configuration);

/// A full sign-in of alice with `openid`; returns the browser and the token response.
async fn signed_in_with_openid(app: &TestApp) -> (Browser, Value) {
    let pkce = Pkce::new();
    let params = oidc_request(OIDC_SCOPE, "s", &pkce, &[]);
    let (code, browser) = consented(app, &params).await;
    (browser, redeem(app, &code, &pkce).await)
}

fn logout_query(params: &[(&str, &str)]) -> String {
    let owned: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    format!("/oauth/logout?{}", query(&owned))
}

/// Whether `response` clears the login session's cookie.
fn clears_session(response: &reqwest::Response) -> bool {
    response.headers().get_all(SET_COOKIE).iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("tessera_session=;") && v.contains("Max-Age=0")
    })
}

async fn a_logout_with_the_signed_in_users_hint_ends_the_session_and_revokes_the_grant(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (mut browser, tokens) = signed_in_with_openid(&app).await;
    let (_, other) = signed_in_with_openid(&app).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    let response = browser
        .get(&logout_query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", LOGOUT_URI),
            ("state", "bye"),
        ]))
        .await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response), format!("{LOGOUT_URI}?state=bye"));
    assert!(clears_session(&response));

    // The grant is gone: its refresh token, and its JWT (through the feed).
    assert_oauth_error(
        app.post_form(
            "/oauth/token",
            Auth::IdOnly(WEB),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.introspect(access).await,
        serde_json::json!({"active": false})
    );
    assert_bearer_error(userinfo(&app, access).await, 401, "invalid_token").await;
    // Another grant of the same user lives on.
    assert_eq!(
        app.introspect(other["access_token"].as_str().unwrap())
            .await["active"],
        true
    );

    // The browser is signed out: the login page again.
    let pkce = Pkce::new();
    let page = authorize(&mut browser, &oidc_request(OIDC_SCOPE, "s2", &pkce, &[])).await;
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"action="/oauth/authorize/login""#)
    );

    // A relying party may POST the same parameters; with no redirect asked for, the
    // browser gets the signed-out page.
    let (mut browser, tokens) = signed_in_with_openid(&app).await;
    let response = browser
        .post_from(
            "/oauth/logout",
            &[("id_token_hint", tokens["id_token"].as_str().unwrap())],
            &[],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(clears_session(&response));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out")
    );
}
on_each_backend!(a_logout_with_the_signed_in_users_hint_ends_the_session_and_revokes_the_grant);

async fn a_logout_without_a_matching_hint_asks_first_and_refuses_unregistered_uris(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (mut browser, tokens) = signed_in_with_openid(&app).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    // Refused at the server, never redirected.
    for (params, why) in [
        (
            vec![
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
            "not registered",
        ),
        (
            vec![
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/signed-out/"),
            ],
            "not registered",
        ),
        (
            vec![("post_logout_redirect_uri", LOGOUT_URI)],
            "needs id_token_hint or client_id",
        ),
        (
            vec![("id_token_hint", id_token), ("client_id", "app")],
            "not the audience",
        ),
        (vec![("client_id", "nobody")], "not registered"),
    ] {
        let response = browser.get(&logout_query(&params)).await;
        assert_eq!(response.status().as_u16(), 400, "{params:?}");
        assert!(response.headers().get("location").is_none());
        assert!(!clears_session(&response));
        assert!(response.text().await.unwrap().contains(why), "{why}");
    }
    // None of that signed anyone out.
    assert_eq!(app.introspect(access).await["active"], true);
    // A hint that is no ID token of ours (an access token, junk) counts as none: the
    // user is asked, and the relying party's redirect URI is not trusted on its word.
    for junk in [access, "e30.e30."] {
        let response = browser
            .get(&logout_query(&[
                ("id_token_hint", junk),
                ("post_logout_redirect_uri", LOGOUT_URI),
            ]))
            .await;
        assert_eq!(
            response.status().as_u16(),
            400,
            "no client vouches for the URI"
        );
        let response = browser.get(&logout_query(&[("id_token_hint", junk)])).await;
        assert_eq!(response.status().as_u16(), 200);
        assert!(!clears_session(&response));
        let html = response.text().await.unwrap();
        assert!(html.contains("Sign out?"), "{html}");
        assert!(!html.contains(junk), "the junk hint is not carried on");
    }

    // No hint: the confirmation page, whose form needs this browser's CSRF token.
    let query = logout_query(&[
        ("client_id", WEB),
        ("post_logout_redirect_uri", LOGOUT_URI),
        ("state", "s9"),
    ]);
    let page = browser.get(&query).await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"action="/oauth/logout""#), "{html}");
    assert!(html.contains("Acme Web"));
    let csrf = form_token(&html);
    let fields = [
        ("client_id", WEB),
        ("post_logout_redirect_uri", LOGOUT_URI),
        ("state", "s9"),
        ("decision", "logout"),
    ];
    let mut forged = fields.to_vec();
    forged.push(("csrf", "forged-forged-forged-forged-forged-forged-12"));
    assert_eq!(
        browser
            .post("/oauth/logout", &forged)
            .await
            .status()
            .as_u16(),
        403
    );
    let mut cross_site = fields.to_vec();
    cross_site.push(("csrf", csrf.as_str()));
    let response = browser
        .post_from(
            "/oauth/logout",
            &cross_site,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 403);
    // Still signed in.
    let pkce = Pkce::new();
    let params = oidc_request(OIDC_SCOPE, "s", &pkce, &[("prompt", "none")]);
    code_of(&authorize(&mut browser, &params).await);

    let response = browser.post("/oauth/logout", &cross_site).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response), format!("{LOGOUT_URI}?state=s9"));
    assert!(clears_session(&response));
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "s",
        "login_required",
    );
    // Without a hint there is no grant to name: the tokens live on.
    assert_eq!(app.introspect(access).await["active"], true);
}
on_each_backend!(a_logout_without_a_matching_hint_asks_first_and_refuses_unregistered_uris);

async fn signing_out_everywhere_forgets_remembered_consent(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut browser, _) = signed_in_with_openid(&app).await;
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    let remembered = app.store.find_consent(alice.id, WEB).await.unwrap();
    assert_eq!(remembered, Some(OIDC_SCOPE.parse().unwrap()));

    app.store
        .revoke_user(alice.id, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(app.store.find_consent(alice.id, WEB).await.unwrap(), None);
    let pkce = Pkce::new();
    let params = oidc_request(OIDC_SCOPE, "e1", &pkce, &[("prompt", "none")]);
    assert_redirected_error(
        &authorize(&mut browser, &params).await,
        &app,
        "e1",
        "login_required",
    );
    // Signed in again, the consent page is back.
    let params = oidc_request(OIDC_SCOPE, "e2", &pkce, &[]);
    let page = sign_in(&mut browser, &params, "alice").await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Allow"));
}
on_each_backend!(signing_out_everywhere_forgets_remembered_consent);

async fn a_hint_revokes_its_grant_only_for_the_user_signed_in_or_with_nobody_signed_in(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, alices) = signed_in_with_openid(&app).await;
    let hint = alices["id_token"].as_str().unwrap();
    let alices_access = alices["access_token"].as_str().unwrap();

    // bob is signed in at this browser and confirms a logout carrying alice's hint: his
    // session ends, alice's grant lives on.
    let mut bobs_browser = Browser::new(&app);
    let pkce = Pkce::new();
    let consent = sign_in(
        &mut bobs_browser,
        &oidc_request("openid", "b", &pkce, &[]),
        "bob",
    )
    .await;
    assert_eq!(consent.status().as_u16(), 200);
    let page = bobs_browser
        .get(&logout_query(&[("id_token_hint", hint)]))
        .await;
    let html = page.text().await.unwrap();
    assert!(html.contains("Signed in as <strong>bob</strong>"), "{html}");
    let csrf = form_token(&html);
    let response = bobs_browser
        .post(
            "/oauth/logout",
            &[
                ("id_token_hint", hint),
                ("decision", "logout"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(clears_session(&response));
    assert_eq!(app.introspect(alices_access).await["active"], true);
    let params = oidc_request("openid", "b2", &pkce, &[("prompt", "none")]);
    assert_redirected_error(
        &authorize(&mut bobs_browser, &params).await,
        &app,
        "b2",
        "login_required",
    );

    // With nobody signed in, the confirmed logout of a current hint revokes its grant,
    // and the audit log says so.
    let mut empty = Browser::new(&app);
    let page = empty.get(&logout_query(&[("id_token_hint", hint)])).await;
    let csrf = form_token(&page.text().await.unwrap());
    let response = empty
        .post(
            "/oauth/logout",
            &[
                ("id_token_hint", hint),
                ("decision", "logout"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        app.introspect(alices_access).await,
        serde_json::json!({"active": false})
    );
    app.audit.flush().await;
    let events = app
        .store
        .list_audit_events(&tessera_store::AuditFilter {
            kind: Some(tessera_store::AuditKind::UserSignedOut),
            ..Default::default()
        })
        .await
        .unwrap();
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    let revoked = events
        .iter()
        .find(|e| e.event.target.as_deref() == Some(&format!("user {}", alice.id)))
        .unwrap_or_else(|| panic!("{events:?}"));
    let sid = parts(hint).1["sid"].as_str().unwrap().to_owned();
    assert!(
        revoked.event.detail.as_deref().unwrap().contains(&sid),
        "{revoked:?}"
    );
    assert_eq!(revoked.event.client_id.as_deref(), Some(WEB));
    // bob's own logout was recorded too, naming him.
    assert!(
        events
            .iter()
            .any(|e| e.event.actor.as_deref() == Some("bob"))
    );
}
on_each_backend!(a_hint_revokes_its_grant_only_for_the_user_signed_in_or_with_nobody_signed_in);

async fn the_client_credentials_grant_refuses_the_openid_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    // A client that may have every scope and the client_credentials grant.
    app.store
        .create_client(
            &tessera_store::NewClient {
                client_id: "robot".parse().unwrap(),
                name: "robot".into(),
                secret_hash: Some(tessera_core::secret::digest(APP_SECRET)),
                grant_types: vec![tessera_core::GrantType::ClientCredentials],
                scopes: "basic openid profile email".parse().unwrap(),
                redirect_uris: vec![],
                post_logout_redirect_uris: vec![],
                access_token_format: tessera_core::TokenFormat::Jwt,
                access_token_ttl_secs: None,
                refresh_token_ttl_secs: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    for scope in ["openid", "basic profile", "email"] {
        let response = app
            .token(
                Auth::Basic("robot", APP_SECRET),
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        let body = assert_oauth_error(response, 400, "invalid_scope").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("describe a user"),
            "{body}"
        );
    }
    let token = app
        .token(
            Auth::Basic("robot", APP_SECRET),
            &[("grant_type", "client_credentials"), ("scope", "basic")],
        )
        .await;
    assert_token(token).await;
}
on_each_backend!(the_client_credentials_grant_refuses_the_openid_scopes);
