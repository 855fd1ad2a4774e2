//! OpenID Connect end to end, with real relying parties: the `openidconnect` crate
//! (discovery, the code flow with PKCE and a nonce, ID token validation, UserInfo, refresh,
//! RP-Initiated Logout), the cookie-jar browser of `flows.rs`, and headless Chromium.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, CsrfToken,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LoginHint,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope,
    TokenResponse,
};
use serde_json::{Value, json};
use tessera_store::on_each_backend;
use tessera_store::testing::Backend;
use url::Url;

use super::flows::{
    Callback, Chromedriver, FormClient, Session, location, oauth_http, refused_within_seconds,
};
use super::{Server, Workspace, demo_token, get_json, http};

/// The user who signs in: a member of the seeded company acme, with a display name and
/// an email address.
const ADA: &str = "ada";
const ADA_PASSWORD: &str = "analytical engine";
const ADA_NAME: &str = "Ada Lovelace";
const ADA_EMAIL: &str = "ada@example.com";

/// The relying party: a public client of the code flow with the OpenID scopes.
const CLIENT_ID: &str = "lovelace";
const CLIENT_NAME: &str = "Lovelace Notes";

/// What tells the login and the consent page apart: where their forms post.
const LOGIN_FORM: &str = r#"action="/oauth/authorize/login""#;
const CONSENT_FORM: &str = r#"action="/oauth/authorize/consent""#;

/// The `openidconnect` crate's client as discovery configures it: an authorization
/// endpoint, and a token and UserInfo endpoint if the provider metadata names them.
type RelyingParty = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Where the relying party wants the browser back after a logout: another path of the
/// callback listener, so that the test sees whether the browser went there.
fn signed_out_uri(callback: &Callback) -> String {
    let uri = callback.url.replace("/callback", "/signed-out");
    assert_ne!(uri, callback.url);
    uri
}

/// Adds Ada to acme (seeded by `serve`, so call this after the server started), and
/// registers [`CLIENT_ID`]: public, the code flow with refresh, the OpenID scopes and
/// `basic`, redirecting to `callback` and, after a logout, to `signed_out`.
fn register_ada_and_client(ws: &Workspace, callback: &str, signed_out: &str) {
    ws.ok(
        &[
            "user",
            "add",
            ADA,
            "--company",
            "acme",
            "--role",
            "user",
            "--name",
            ADA_NAME,
            "--email",
            ADA_EMAIL,
        ],
        &format!("{ADA_PASSWORD}\n"),
    );
    let out = ws.ok(
        &[
            "client",
            "add",
            CLIENT_ID,
            "--public",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            "openid",
            "--scope",
            "profile",
            "--scope",
            "email",
            "--scope",
            "basic",
            "--redirect-uri",
            callback,
            "--post-logout-redirect-uri",
            signed_out,
            "--name",
            CLIENT_NAME,
        ],
        "",
    );
    assert!(out.starts_with(&format!("client_id: {CLIENT_ID}")), "{out}");
}

/// OpenID Connect Discovery through the `openidconnect` crate (the document, then the
/// JWKS it names): the relying party for [`CLIENT_ID`] redirecting to `callback`, and the
/// provider's end-session endpoint.
async fn discover(server: &Server, callback: &str) -> (RelyingParty, EndSessionUrl) {
    let issuer = IssuerUrl::new(server.issuer.clone()).unwrap();
    let metadata = ProviderMetadataWithLogout::discover_async(issuer, &oauth_http)
        .await
        .unwrap();
    let end_session = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .expect("the metadata names an end_session_endpoint");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(CLIENT_ID.into()), None)
            .set_redirect_uri(RedirectUrl::new(callback.to_owned()).unwrap());
    (client, end_session)
}

/// One authorization request of the relying party, and what it keeps to finish it.
struct Authorization {
    url: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

/// An authorization request for `openid` (which the crate always adds) and `scopes`,
/// with PKCE, a nonce and a state, and `prompt` when given.
fn authorization(
    client: &RelyingParty,
    scopes: &[&str],
    prompt: Option<CoreAuthPrompt>,
) -> Authorization {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    if let Some(prompt) = prompt {
        request = request.add_prompt(prompt);
    }
    let (url, state, nonce) = request.url();
    Authorization {
        url,
        state,
        nonce,
        verifier,
    }
}

/// A page the authorization endpoint showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Login,
    Consent,
}

/// Where an authorization request ended: the redirect back to the client, its query, and
/// the pages shown on the way.
struct Visit {
    redirect: Url,
    params: BTreeMap<String, String>,
    pages: Vec<Page>,
}

/// Ada's browser following `authorize_url`: she signs in on the login page and allows on
/// the consent page, whichever of them show, until the server sends her back to the
/// client.
async fn visit(browser: &mut FormClient, server: &Server, authorize_url: &str) -> Visit {
    let mut pages = Vec::new();
    let mut response = browser.get(authorize_url).await;
    for _ in 0..8 {
        assert!(
            pages.len() <= 2,
            "more pages than login and consent: {pages:?}"
        );
        if response.status().is_redirection() {
            let to = location(&response);
            if to.starts_with('/') {
                response = browser.get(&format!("{}{to}", server.url)).await;
                continue;
            }
            if to.starts_with(&format!("{}/", server.url)) {
                response = browser.get(&to).await;
                continue;
            }
            let redirect = Url::parse(&to).unwrap();
            let params = redirect.query_pairs().into_owned().collect();
            return Visit {
                redirect,
                params,
                pages,
            };
        }
        let status = response.status().as_u16();
        let page = response.text().await.unwrap();
        assert_eq!(status, 200, "{page}");
        response = if page.contains(LOGIN_FORM) {
            pages.push(Page::Login);
            browser
                .submit(
                    &page,
                    "/oauth/authorize/login",
                    &[("username", ADA), ("password", ADA_PASSWORD)],
                )
                .await
        } else if page.contains(CONSENT_FORM) {
            pages.push(Page::Consent);
            browser
                .submit(&page, "/oauth/authorize/consent", &[("decision", "allow")])
                .await
        } else {
            panic!("neither the login nor the consent page:\n{page}");
        };
    }
    panic!("still not back at the client after 8 steps: {pages:?}");
}

/// The query of `response`, which must be a redirect straight back to the client at
/// `callback`: no page on the way.
fn sent_back(response: &reqwest::Response, callback: &str) -> BTreeMap<String, String> {
    assert!(
        response.status().is_redirection(),
        "expected a redirect back to the client, got {}",
        response.status()
    );
    let to = Url::parse(&location(response)).unwrap();
    assert!(to.as_str().starts_with(callback), "{to}");
    to.query_pairs().into_owned().collect()
}

/// The HTML of `response`, which must be a `200` page.
async fn page_of(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let page = response.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    page
}

/// The relying party redeems `code` with its PKCE verifier.
async fn redeem(
    client: &RelyingParty,
    code: &str,
    verifier: PkceCodeVerifier,
) -> CoreTokenResponse {
    client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&oauth_http)
        .await
        .unwrap()
}

/// The claims of a JWT, read without checking it: for what the `openidconnect` crate's
/// standard claims leave out (`sid`), and for the access token.
fn payload(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .unwrap()
        .claims
}

/// The relying party's `max_age` check (OpenID Connect Core §3.1.3.7, step 13): the ID
/// token has an `auth_time`, no more than `max_age` before `now`.
fn signed_in_within(
    auth_time: Option<DateTime<Utc>>,
    max_age: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let auth_time = auth_time.ok_or_else(|| "no auth_time, though max_age was sent".to_owned())?;
    if now - auth_time > max_age {
        return Err(format!(
            "signed in at {auth_time}, more than {max_age} before {now}"
        ));
    }
    Ok(())
}

/// The end-session request of the relying party: log out the session of `id_token`, then
/// back to `signed_out` with `state`.
fn logout_url(
    end_session: &EndSessionUrl,
    id_token: &CoreIdToken,
    signed_out: &str,
    state: &str,
) -> Url {
    LogoutRequest::from(end_session.clone())
        .set_id_token_hint(id_token)
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(signed_out.to_owned()).unwrap())
        .set_state(CsrfToken::new(state.to_owned()))
        .http_get_url()
}

/// `response` ends the login session (its cookie is cleared) and sends the browser to
/// `signed_out` with `state` (`303`).
fn assert_signed_out(response: &reqwest::Response, signed_out: &str, state: &str) {
    assert_eq!(response.status().as_u16(), 303);
    let mut to = Url::parse(&location(response)).unwrap();
    let params: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
    to.set_query(None);
    assert_eq!(to.as_str(), signed_out, "back where the client registered");
    assert_eq!(
        params.get("state").map(String::as_str),
        Some(state),
        "{params:?}"
    );
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("tessera_session=")
            && (c.starts_with("tessera_session=;") || c.contains("Max-Age=0"))),
        "the session cookie is cleared: {cookies:?}"
    );
}

/// The refresh token `refresh` is refused with `invalid_grant`, as the crate reports it.
async fn assert_invalid_grant(client: &RelyingParty, refresh: &openidconnect::RefreshToken) {
    let refused = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&oauth_http)
        .await
        .unwrap_err();
    match refused {
        RequestTokenError::ServerResponse(body) => {
            assert_eq!(body.error().as_ref(), "invalid_grant");
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

async fn the_openidconnect_crate_signs_in_verifies_the_id_token_refreshes_and_logs_out(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &[]);
    let callback = Callback::start();
    let signed_out = signed_out_uri(&callback);
    register_ada_and_client(&ws, &callback.url, &signed_out);
    let issuer = server.issuer.clone();

    // The discovery document, as any relying party reads it.
    let (status, discovery) = get_json(
        &format!("{}/.well-known/openid-configuration", server.url),
        None,
    )
    .await;
    assert_eq!(status, 200, "{discovery}");
    assert_eq!(discovery["issuer"], issuer);
    for (field, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("userinfo_endpoint", "/oauth/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("end_session_endpoint", "/oauth/logout"),
    ] {
        assert_eq!(discovery[field], format!("{issuer}{path}"), "{field}");
    }
    let list = |field: &str| -> Vec<String> {
        discovery[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} is a list: {discovery}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let scopes = list("scopes_supported");
    for scope in ["openid", "profile", "email", "basic", "admin"] {
        assert!(scopes.iter().any(|s| s == scope), "{scope}: {scopes:?}");
    }
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    assert!(list("id_token_signing_alg_values_supported").contains(&"RS256".to_owned()));
    let claims_supported = list("claims_supported");
    for claim in [
        "sub",
        "name",
        "preferred_username",
        "updated_at",
        "email",
        "email_verified",
    ] {
        assert!(
            claims_supported.iter().any(|c| c == claim),
            "{claim}: {claims_supported:?}"
        );
    }
    let grants = list("grant_types_supported");
    assert!(
        grants.contains(&"authorization_code".to_owned())
            && grants.contains(&"refresh_token".to_owned())
    );
    assert!(list("token_endpoint_auth_methods_supported").contains(&"none".to_owned()));

    // The relying party: discovery through the crate, then the authorization request with
    // a nonce, PKCE, the scopes, max_age and a login hint.
    let (client, end_session) = discover(&server, &callback.url).await;
    assert_eq!(end_session.as_str(), format!("{issuer}/oauth/logout"));
    let max_age = chrono::Duration::seconds(300);
    let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("basic".into()))
        .set_pkce_challenge(challenge)
        .set_max_age(Duration::from_secs(300))
        .set_login_hint(LoginHint::new(ADA.into()))
        .url();
    let sent: BTreeMap<String, String> = authorize_url.query_pairs().into_owned().collect();
    assert_eq!(sent["scope"], "openid profile email basic");
    assert_eq!(sent["max_age"], "300");

    // Ada's side: the login page, then the consent page, then back to the client.
    let mut browser = FormClient::new(&server.url);
    let before_sign_in = Utc::now().timestamp();
    let visited = visit(&mut browser, &server, authorize_url.as_str()).await;
    let after_sign_in = Utc::now().timestamp();
    assert_eq!(visited.pages, [Page::Login, Page::Consent]);
    assert!(
        visited.redirect.as_str().starts_with(&callback.url),
        "{}",
        visited.redirect
    );
    assert_eq!(&visited.params["state"], csrf_state.secret());
    assert_eq!(visited.params["iss"], issuer);

    // The crate redeems the code, and validates the ID token: signature (the provider's
    // keys and algorithms), iss, aud, exp, the nonce, and auth_time against max_age.
    let token = redeem(&client, &visited.params["code"], pkce_verifier).await;
    let mut granted: Vec<String> = token
        .scopes()
        .expect("the token response names the scope")
        .iter()
        .map(|s| s.to_string())
        .collect();
    granted.sort();
    assert_eq!(granted, ["basic", "email", "openid", "profile"]);
    let id_token = token.id_token().expect("an ID token for the openid scope");
    let verifier = client
        .id_token_verifier()
        .set_auth_time_verifier_fn(move |auth_time| {
            signed_in_within(auth_time, max_age, Utc::now())
        });
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(claims.issuer().as_str(), issuer);
    let audiences: Vec<&str> = claims.audiences().iter().map(|a| a.as_str()).collect();
    assert_eq!(audiences, [CLIENT_ID]);
    assert_eq!(
        claims.nonce().map(|n| n.secret().as_str()),
        Some(nonce.secret().as_str())
    );
    let auth_time = claims.auth_time().expect("auth_time");
    assert!(
        (before_sign_in..=after_sign_in).contains(&auth_time.timestamp()),
        "auth_time {auth_time} is when Ada signed in"
    );
    assert!(claims.issue_time() < claims.expiration());
    // The same token checked as if max_age had since passed: the crate refuses it, so the
    // check above did read auth_time.
    let too_late = client
        .id_token_verifier()
        .set_auth_time_verifier_fn(move |auth_time| {
            signed_in_within(
                auth_time,
                max_age,
                Utc::now() + max_age + chrono::Duration::seconds(5),
            )
        });
    match id_token.claims(&too_late, &nonce) {
        Err(ClaimsVerificationError::InvalidAuthTime(_)) => {}
        other => panic!("expected InvalidAuthTime, got {other:?}"),
    }
    // A nonce other than the one sent is refused.
    assert!(matches!(
        id_token.claims(&verifier, &Nonce::new("another nonce".into())),
        Err(ClaimsVerificationError::InvalidNonce(_))
    ));

    // The JWS header: typ JWT, the active key's alg and kid, published in the JWKS.
    let raw_id_token = id_token.to_string();
    let header = jsonwebtoken::decode_header(&raw_id_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.expect("the ID token names its key");
    let (_, jwks) = get_json(&format!("{}/.well-known/jwks.json", server.url), None).await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    assert!(jwks.find(&kid).is_some(), "{kid} is published");
    let access = token.access_token().secret().clone();
    assert_eq!(
        jsonwebtoken::decode_header(&access).unwrap().kid.as_deref(),
        Some(kid.as_str()),
        "the access token and the ID token are signed by the same active key"
    );

    // at_hash: the left half of the access token's hash, with the hash of the ID token's
    // algorithm.
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual_hash = AccessTokenHash::from_token(
        token.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual_hash, expected_hash);

    // Who signed in: sub is Ada's user id, as in the access token; profile and email.
    let sub = claims.subject().as_str().to_owned();
    let access_claims = payload(&access);
    assert_eq!(access_claims["sub"], sub);
    assert_eq!(access_claims["username"], ADA);
    let users = ws.ok(&["user", "list", "--company", "acme"], "");
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("ada ") && l.split_whitespace().any(|w| w == sub)),
        "sub {sub} is Ada's id:\n{users}"
    );
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some(ADA_NAME)
    );
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some(ADA));
    assert_eq!(claims.email().map(|e| e.as_str()), Some(ADA_EMAIL));
    assert_eq!(claims.email_verified(), Some(false));
    assert!(claims.updated_at().is_some(), "updated_at");
    let id_claims = payload(&raw_id_token);
    let sid = id_claims["sid"].clone();
    assert!(sid.as_str().is_some_and(|s| !s.is_empty()), "{id_claims}");
    assert_eq!(
        access_claims["sid"], sid,
        "the grant session of both tokens"
    );
    assert_eq!(id_claims["nonce"], nonce.secret().as_str());

    // UserInfo, through the crate (checking sub), then as JSON by GET and POST: the
    // granted scopes' claims, and the company and roles.
    let info: CoreUserInfoClaims = client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&oauth_http)
        .await
        .unwrap();
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some(ADA_NAME)
    );
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some(ADA));
    assert_eq!(info.email().map(|e| e.as_str()), Some(ADA_EMAIL));
    assert_eq!(info.email_verified(), Some(false));
    let userinfo = format!("{issuer}/oauth/userinfo");
    let (status, by_get) = get_json(&userinfo, Some(&access)).await;
    assert_eq!(status, 200, "{by_get}");
    let by_post = http()
        .post(&userinfo)
        .bearer_auth(&access)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(by_post.status().as_u16(), 200);
    let by_post: Value = by_post.json().await.unwrap();
    assert_eq!(by_post, by_get);
    assert_eq!(by_get["sub"], sub);
    assert_eq!(by_get["name"], ADA_NAME);
    assert_eq!(by_get["preferred_username"], ADA);
    assert!(by_get["updated_at"].is_i64(), "{by_get}");
    assert_eq!(by_get["email"], ADA_EMAIL);
    assert_eq!(by_get["email_verified"], false);
    assert_eq!(by_get["company"], "acme");
    assert_eq!(by_get["roles"], json!(["user"]));
    // A token without openid may not read it.
    let basic_only = demo_token(&server.url, "alice", "basic").await;
    let refused = http()
        .get(&userinfo)
        .bearer_auth(&basic_only)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );

    // The access token calls the API; the ID token, which is for the client, does not.
    let me = format!("{}/me", server.resource_url);
    let (status, body) = get_json(&me, Some(&access)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], ADA);
    let refused = http()
        .get(&me)
        .bearer_auth(&raw_id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="invalid_token""#
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{body}");

    // A refresh through the crate: a new ID token of the same sign-in and grant session,
    // without a nonce, its at_hash that of the new access token.
    let refresh = token.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&oauth_http)
        .await
        .unwrap();
    let new_id_token = refreshed.id_token().expect("a new ID token on refresh");
    let new_claims = new_id_token
        .claims(&verifier, |nonce: Option<&Nonce>| match nonce {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token carries no nonce".to_owned()),
        })
        .unwrap();
    assert_eq!(new_claims.subject(), claims.subject());
    assert_eq!(new_claims.auth_time(), claims.auth_time());
    let new_access = refreshed.access_token().secret().clone();
    assert_ne!(new_access, access);
    let new_hash = AccessTokenHash::from_token(
        refreshed.access_token(),
        new_id_token.signing_alg().unwrap(),
        new_id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(Some(&new_hash), new_claims.access_token_hash());
    assert_ne!(&new_hash, expected_hash);
    let new_id_claims = payload(&new_id_token.to_string());
    assert_eq!(new_id_claims["sid"], sid);
    assert_eq!(new_id_claims["nonce"], Value::Null);
    assert_eq!(payload(&new_access)["sid"], sid);
    let current_refresh = refreshed
        .refresh_token()
        .expect("a rotated refresh token")
        .clone();
    assert_ne!(current_refresh.secret(), refresh.secret(), "rotated");

    // RP-Initiated Logout with the ID token as hint, in the browser that signed in: the
    // session ends and the browser goes back to the registered URI with the state.
    let state = "signed out & back/é";
    let logout = logout_url(&end_session, new_id_token, &signed_out, state);
    let response = browser.get(logout.as_str()).await;
    assert_signed_out(&response, &signed_out, state);

    // The grant of the hint's sid is revoked: its refresh token is refused, and its JWTs
    // (both generations) are refused by the resource server, which follows the feed.
    assert_invalid_grant(&client, &current_refresh).await;
    refused_within_seconds(&server.resource_url, &new_access).await;
    refused_within_seconds(&server.resource_url, &access).await;
    // UserInfo refuses them too.
    let (status, _) = get_json(&userinfo, Some(&new_access)).await;
    assert_eq!(status, 401);

    // And the browser is signed out: the same request shows the login page again.
    let page = page_of(browser.get(authorize_url.as_str()).await).await;
    assert!(page.contains(LOGIN_FORM), "{page}");
    assert!(
        callback.seen.lock().unwrap().is_empty(),
        "no browser went to the client"
    );
}

on_each_backend!(the_openidconnect_crate_signs_in_verifies_the_id_token_refreshes_and_logs_out);

async fn prompt_none_and_remembered_consent_through_a_real_relying_party(backend: Backend) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &[]);
    let callback = Callback::start();
    register_ada_and_client(&ws, &callback.url, &signed_out_uri(&callback));
    let (client, _) = discover(&server, &callback.url).await;
    let scopes = ["profile", "basic"];
    let mut browser = FormClient::new(&server.url);
    let error_of = |params: &BTreeMap<String, String>| params.get("error").cloned();

    // Nobody is signed in here: prompt=none answers login_required at once.
    let silent = authorization(&client, &scopes, Some(CoreAuthPrompt::None));
    let params = sent_back(&browser.get(silent.url.as_str()).await, &callback.url);
    assert_eq!(
        error_of(&params).as_deref(),
        Some("login_required"),
        "{params:?}"
    );
    assert_eq!(&params["state"], silent.state.secret());
    assert!(!params.contains_key("code"), "{params:?}");

    // One sign-in, with consent.
    let first = authorization(&client, &scopes, None);
    let visited = visit(&mut browser, &server, first.url.as_str()).await;
    assert_eq!(visited.pages, [Page::Login, Page::Consent]);
    let first_token = redeem(&client, &visited.params["code"], first.verifier).await;
    let first_claims = first_token
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &first.nonce)
        .unwrap();

    // The same request with prompt=none: a code without any page, for the same sign-in.
    let again = authorization(&client, &scopes, Some(CoreAuthPrompt::None));
    let params = sent_back(&browser.get(again.url.as_str()).await, &callback.url);
    assert_eq!(error_of(&params), None, "{params:?}");
    assert_eq!(&params["state"], again.state.secret());
    let again_token = redeem(&client, &params["code"], again.verifier).await;
    let again_claims = again_token
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &again.nonce)
        .unwrap();
    assert_eq!(again_claims.subject(), first_claims.subject());
    assert_eq!(
        again_claims.auth_time(),
        first_claims.auth_time(),
        "one sign-in"
    );

    // A narrower request, without prompt: remembered consent skips the page.
    let narrower = authorization(&client, &[], None);
    let params = sent_back(&browser.get(narrower.url.as_str()).await, &callback.url);
    assert!(params.contains_key("code"), "{params:?}");

    // prompt=consent asks again all the same.
    let ask = authorization(&client, &scopes, Some(CoreAuthPrompt::Consent));
    let page = page_of(browser.get(ask.url.as_str()).await).await;
    assert!(page.contains(CONSENT_FORM), "{page}");

    // A wider request with prompt=none: consent_required, since email was never allowed.
    let wider = authorization(
        &client,
        &["profile", "email", "basic"],
        Some(CoreAuthPrompt::None),
    );
    let params = sent_back(&browser.get(wider.url.as_str()).await, &callback.url);
    assert_eq!(
        error_of(&params).as_deref(),
        Some("consent_required"),
        "{params:?}"
    );
    assert_eq!(&params["state"], wider.state.secret());
    assert!(!params.contains_key("code"), "{params:?}");

    // Last, as it may end the session: prompt=login shows the login page to a signed-in
    // browser.
    let relogin = authorization(&client, &scopes, Some(CoreAuthPrompt::Login));
    let page = page_of(browser.get(relogin.url.as_str()).await).await;
    assert!(page.contains(LOGIN_FORM), "{page}");
}

on_each_backend!(prompt_none_and_remembered_consent_through_a_real_relying_party);

async fn logout_without_a_hint_asks_first_and_never_redirects_to_an_unregistered_uri(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &[]);
    let callback = Callback::start();
    let signed_out = signed_out_uri(&callback);
    register_ada_and_client(&ws, &callback.url, &signed_out);
    let (client, end_session) = discover(&server, &callback.url).await;
    let mut browser = FormClient::new(&server.url);
    let request = authorization(&client, &["profile"], None);
    let visited = visit(&mut browser, &server, request.url.as_str()).await;
    let token = redeem(&client, &visited.params["code"], request.verifier).await;
    let id_token = token.id_token().unwrap();

    // A post-logout URI the client did not register, exactly, is never redirected to.
    for unregistered in [
        "http://127.0.0.1:1/signed-out".to_owned(),
        format!("{signed_out}/elsewhere"),
        format!("{signed_out}?next=elsewhere"),
    ] {
        let url = logout_url(&end_session, id_token, &unregistered, "s");
        let response = browser.get(url.as_str()).await;
        assert_eq!(response.status().as_u16(), 400, "{unregistered}");
        assert!(
            response.headers().get("location").is_none(),
            "{unregistered}"
        );
    }
    // Nothing was ended: the browser is still signed in, with its consent remembered.
    let again = authorization(&client, &["profile"], None);
    let params = sent_back(&browser.get(again.url.as_str()).await, &callback.url);
    assert!(params.contains_key("code"), "{params:?}");

    // Without a hint, the server asks before it signs anyone out.
    let state = "asked & answered/é";
    let url = LogoutRequest::from(end_session.clone())
        .set_client_id(ClientId::new(CLIENT_ID.into()))
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(signed_out.clone()).unwrap())
        .set_state(CsrfToken::new(state.into()))
        .http_get_url();
    let page = page_of(browser.get(url.as_str()).await).await;
    assert!(page.contains(r#"action="/oauth/logout""#), "{page}");
    assert!(page.contains(r#"name="csrf""#), "{page}");
    assert!(
        page.contains(r#"<button type="submit" name="decision" value="logout""#),
        "{page}"
    );
    let response = browser
        .submit(&page, "/oauth/logout", &[("decision", "logout")])
        .await;
    assert_signed_out(&response, &signed_out, state);

    let page = page_of(browser.get(request.url.as_str()).await).await;
    assert!(page.contains(LOGIN_FORM), "{page}");
}

on_each_backend!(logout_without_a_hint_asks_first_and_never_redirects_to_an_unregistered_uri);

/// Waits up to 10 s for `browser` to be at a URL starting with `prefix`, and returns it.
async fn landed_at(browser: &Session<'_>, prefix: &str) -> Url {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.current_url().await;
        if url.starts_with(prefix) {
            return Url::parse(&url).unwrap();
        }
        if Instant::now() >= deadline {
            let source = browser.page_source().await;
            panic!("still at {url}, not {prefix}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn headless_chromium_signs_in_with_openid_and_signs_out_through_the_logout_endpoint() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let ws = Workspace::sqlite();
    let server = Server::start(&ws, &[]);
    let callback = Callback::start();
    let signed_out = signed_out_uri(&callback);
    register_ada_and_client(&ws, &callback.url, &signed_out);

    let verifier = tessera_core::secret::generate().unwrap();
    let challenge = tessera_core::pkce::challenge_of(&verifier);
    let nonce = tessera_core::secret::generate().unwrap();
    let state = "sign in & out/é";
    let mut authorize = Url::parse(&format!("{}/oauth/authorize", server.url)).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &callback.url)
        .append_pair("scope", "openid profile email")
        .append_pair("state", state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;
    browser.goto(authorize.as_str()).await;
    browser.find("#username").await;
    let login = browser.page_source().await;
    assert!(login.contains(CLIENT_NAME), "{login}");
    browser.type_into("#username", ADA).await;
    browser.type_into("#password", ADA_PASSWORD).await;
    browser.click("button[type=submit]").await;

    browser.find("button[value=allow]").await;
    let consent = browser.page_source().await;
    assert!(consent.contains(CLIENT_NAME), "{consent}");
    browser.screenshot("openid-consent").await;
    browser.click("button[value=allow]").await;

    // The browser lands on the client's redirect URI with the code, which the client
    // redeems over HTTP for an ID token of the nonce it sent.
    let landed = landed_at(&browser, &callback.url).await;
    let params: BTreeMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(params["state"], state);
    let token: Value = http()
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("redirect_uri", callback.url.as_str()),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = token["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {token}"))
        .to_owned();
    let claims = payload(&id_token);
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["preferred_username"], ADA);
    assert_eq!(claims["email"], ADA_EMAIL);
    let refresh = token["refresh_token"].as_str().unwrap().to_owned();

    // Chromium goes to the logout endpoint with the hint: it is signed out there and sent
    // straight back to the client with the state, no page on the way.
    let goodbye = "signed out & gone/é";
    let mut logout = Url::parse(&format!("{}/oauth/logout", server.url)).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", &signed_out)
        .append_pair("state", goodbye);
    browser.goto(logout.as_str()).await;
    let back = landed_at(&browser, &signed_out).await;
    let params: BTreeMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(params["state"], goodbye);

    // The authorization request shows the login form again.
    browser.goto(authorize.as_str()).await;
    browser.find("#username").await;
    browser.screenshot("openid-signed-out").await;
    browser.close().await;

    let seen = callback.seen.lock().unwrap().clone();
    let count = |prefix: &str| seen.iter().filter(|p| p.starts_with(prefix)).count();
    assert_eq!(count("/callback"), 1, "{seen:?}");
    assert_eq!(count("/signed-out"), 1, "{seen:?}");

    // The logout revoked the grant of the hint: its refresh token is refused.
    let response = http()
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}
