//! Every known trick against bearer JWTs and the company check. Each asserts the exact
//! status and challenge, then that a valid token still works.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::SigningKey;
use tessera_guard::testing::TestIssuer;

use crate::helpers::*;

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, claims, it.next().unwrap().to_owned())
}

/// `base` with the members of `change` set, or removed where `change` says `null`.
fn edited(base: &Value, change: &Value) -> Value {
    let mut out = base.clone();
    for (member, value) in change.as_object().unwrap() {
        if value.is_null() {
            out.as_object_mut().unwrap().remove(member);
        } else {
            out[member] = value.clone();
        }
    }
    out
}

/// A token whose signing input is `header.claims` and whose signature is `signature`.
fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{}", b64(header), b64(claims), signature)
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Sends `token` to alice's own company listing and expects 401 invalid_token.
async fn assert_invalid(app: &TestApp, token: &str, what: &str) {
    let response = app.get("/companies/acme/users", Some(token)).await;
    assert_eq!(response.status().as_u16(), 401, "{what}");
    let body = assert_rejected(response, 401, INVALID_TOKEN).await;
    assert_eq!(body["error"], "invalid_token", "{what}");
    let text = body.to_string();
    assert!(
        !text.contains(token) && !text.contains("kid"),
        "{what}: the response echoes internals: {text}"
    );
}

async fn missing_credentials_wrong_scheme_and_empty_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = format!("{}/companies/acme/users", app.address);
    let response = app.http.get(&url).send().await.unwrap();
    let body = assert_rejected(response, 401, NO_CREDENTIALS).await;
    assert_eq!(
        body,
        Value::Null,
        "no error without credentials (RFC 6750 §3.1)"
    );

    let response = app
        .http
        .get(&url)
        .header("Authorization", format!("Basic {}", app.alice_admin()))
        .send()
        .await
        .unwrap();
    assert_rejected(response, 401, NO_CREDENTIALS).await;

    for value in ["Bearer", "Bearer ", "Bearer    ", "Bearer a b", "Bearer ä"] {
        let response = app
            .http
            .get(&url)
            .header("Authorization", value)
            .send()
            .await
            .unwrap();
        assert_rejected(response, 401, INVALID_TOKEN).await;
    }
    // The scheme is case-insensitive.
    let response = app
        .http
        .get(&url)
        .header("Authorization", format!("bEaReR {}", app.alice_admin()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    app.assert_valid_token_still_works().await;
}

async fn tokens_in_the_query_or_in_two_places_are_not_honoured(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.alice_admin();
    let response = app
        .http
        .get(format!(
            "{}/companies/acme/users?access_token={token}",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_rejected(response, 401, NO_CREDENTIALS).await;

    let response = app
        .http
        .get(format!(
            "{}/companies/acme/users?access_token={token}",
            app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_rejected(
        response,
        400,
        r#"Bearer realm="tessera", error="invalid_request""#,
    )
    .await;

    let response = app
        .http
        .get(format!("{}/companies/acme/users", app.address))
        .header("Authorization", format!("Bearer {token}"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_rejected(
        response,
        400,
        r#"Bearer realm="tessera", error="invalid_request""#,
    )
    .await;
    app.assert_valid_token_still_works().await;
}

async fn unsigned_and_signature_stripped_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (header, claims, signature) = parts(&app.alice_admin());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let mut h = header.clone();
        h["alg"] = json!(alg);
        assert_invalid(&app, &assemble(&h, &claims, ""), alg).await;
        assert_invalid(&app, &assemble(&h, &claims, &signature), alg).await;
    }
    assert_invalid(&app, &assemble(&header, &claims, ""), "empty signature").await;
    assert_invalid(
        &app,
        &assemble(&header, &claims, &URL_SAFE_NO_PAD.encode([0u8; 256])),
        "zero signature",
    )
    .await;
    assert_invalid(
        &app,
        &format!("{}.{}", b64(&header), b64(&claims)),
        "two segments",
    )
    .await;
    app.assert_valid_token_still_works().await;
}

async fn an_edited_payload_with_the_original_signature_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (header, mut claims, signature) = parts(&app.token("bob", "basic"));
    claims["scope"] = json!("admin");
    claims["roles"] = json!(["admin"]);
    assert_invalid(
        &app,
        &assemble(&header, &claims, &signature),
        "escalated claims",
    )
    .await;
    app.assert_valid_token_still_works().await;
}

async fn hs256_signed_with_the_public_key_in_any_form_is_refused(backend: Backend) {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};

    let app = spawn_app(backend).await;
    let (mut header, claims, _) = parts(&app.alice_admin());
    header["alg"] = json!("HS256");
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(KEY_A)
        .unwrap()
        .to_public_key();
    let pem = public
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let der = public.to_public_key_der().unwrap();
    let jwk =
        serde_json::to_string(SigningKey::from_pkcs8_pem(KEY_A).unwrap().public_jwk()).unwrap();
    for (what, secret) in [
        ("PEM", pem.as_bytes()),
        ("DER", der.as_bytes()),
        ("JWK", jwk.as_bytes()),
        ("empty", &b""[..]),
    ] {
        assert_invalid(&app, &hs256(&header, &claims, secret), what).await;
    }
    app.assert_valid_token_still_works().await;
}

async fn attacker_keys_embedded_named_or_unknown_are_never_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let attacker = SigningKey::from_pkcs8_pem(KEY_B).unwrap();
    let attacker_site = TestIssuer::start(SigningKey::from_pkcs8_pem(KEY_B).unwrap()).unwrap();
    let mut claims = app.issuer.user_claims(
        "alice",
        "acme",
        &[tessera_core::Role::Admin],
        "admin",
        now(),
    );
    claims.sub = app.user("alice").id.to_string();
    let forged = attacker.sign_access_token(&claims).unwrap();
    let (header, claims_json, _) = parts(&forged);

    // Signed by the attacker under its own kid, which the JWKS does not hold.
    assert_invalid(&app, &forged, "unknown kid").await;
    // The attacker's public key embedded in the header, or its JWKS named by jku/x5u.
    for (member, value) in [
        ("jwk", serde_json::to_value(attacker.public_jwk()).unwrap()),
        ("jku", json!(attacker_site.jwks_url())),
        ("x5u", json!(attacker_site.jwks_url())),
    ] {
        let mut h = header.clone();
        h[member] = value;
        let input = format!("{}.{}", b64(&h), b64(&claims_json));
        let token = resign(&attacker, &input);
        assert_invalid(&app, &token, member).await;
    }
    // The attacker's signature under the real kid.
    let mut h = header.clone();
    h["kid"] = json!(app.issuer_kid());
    let token = resign(&attacker, &format!("{}.{}", b64(&h), b64(&claims_json)));
    assert_invalid(&app, &token, "real kid, attacker signature").await;
    assert_eq!(
        attacker_site.jwks_fetches(),
        0,
        "the guard fetched an attacker's JWKS"
    );
    app.assert_valid_token_still_works().await;
}

/// Signs an arbitrary signing input with `key` (RS256), as an attacker with their own key can.
fn resign(key: &SigningKey, input: &str) -> String {
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    let pair = RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

impl TestApp {
    fn issuer_kid(&self) -> String {
        SigningKey::from_pkcs8_pem(KEY_A).unwrap().kid().to_owned()
    }
}

async fn kid_injections_are_just_unknown_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let (header, claims, signature) = parts(&app.alice_admin());
    // The very first request has an unknown kid: the refusal reports the true round trips
    // (the issuer's metadata, then its JWKS).
    let mut h = header.clone();
    h["kid"] = json!("unknown");
    let response = app
        .get(
            "/companies/acme/users",
            Some(&assemble(&h, &claims, &signature)),
        )
        .await;
    assert_eq!(response.headers()["tessera-authz-lookups"], "2");
    assert!(
        response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .starts_with("authz;desc=\"jwt\"")
    );
    assert_rejected(response, 401, INVALID_TOKEN).await;
    for kid in [
        json!("../../../../etc/passwd"),
        json!("' OR '1'='1' --"),
        json!("$(touch /tmp/pwned); `id`"),
        json!("x".repeat(10 * 1024)),
        json!(12345),
        json!(null),
        json!(["a"]),
    ] {
        let mut h = header.clone();
        h["kid"] = kid.clone();
        let response = app
            .get(
                "/companies/acme/users",
                Some(&assemble(&h, &claims, &signature)),
            )
            .await;
        assert_rejected(response, 401, INVALID_TOKEN).await;
    }
    // At most one refetch for all those unknown kids (one per cooldown), after the first load.
    assert!(
        app.issuer.jwks_fetches() <= 2,
        "{} JWKS fetches",
        app.issuer.jwks_fetches()
    );
    app.assert_valid_token_still_works().await;
}

async fn header_rules_typ_and_crit_are_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let (header, claims, _) = parts(&app.alice_admin());
    for (what, change) in [
        ("typ JWT", json!({"typ": "JWT"})),
        ("no typ", json!({"typ": null})),
        ("crit", json!({"crit": ["exp"], "exp": 1})),
        ("alg ES256 for an RSA key", json!({"alg": "ES256"})),
        ("alg PS256 for an RS256 key", json!({"alg": "PS256"})),
    ] {
        let token = resign(
            &key,
            &format!("{}.{}", b64(&edited(&header, &change)), b64(&claims)),
        );
        assert_invalid(&app, &token, what).await;
    }
    // A crit of null is still a crit; a header that is an array is not a JSON object.
    let mut h = header.clone();
    h["crit"] = Value::Null;
    assert_invalid(
        &app,
        &resign(&key, &format!("{}.{}", b64(&h), b64(&claims))),
        "crit: null",
    )
    .await;
    let positional = json!(["RS256", "at+jwt", header["kid"]]);
    assert_invalid(
        &app,
        &resign(&key, &format!("{}.{}", b64(&positional), b64(&claims))),
        "array header",
    )
    .await;
    // ES256 with r = s = 0 (CVE-2022-21449) under the RSA key's kid.
    let mut h = header.clone();
    h["alg"] = json!("ES256");
    assert_invalid(
        &app,
        &assemble(&h, &claims, &URL_SAFE_NO_PAD.encode([0u8; 64])),
        "ES256 r=s=0",
    )
    .await;
    // application/at+jwt and any case are the same media type.
    for typ in ["application/at+jwt", "AT+JWT"] {
        let mut h = header.clone();
        h["typ"] = json!(typ);
        let token = resign(&key, &format!("{}.{}", b64(&h), b64(&claims)));
        assert_eq!(
            app.get("/companies/acme/users", Some(&token))
                .await
                .status()
                .as_u16(),
            200,
            "{typ}"
        );
    }
    app.assert_valid_token_still_works().await;
}

async fn claim_rules_issuer_audience_time_and_types_are_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let (header, claims, _) = parts(&app.alice_admin());
    let now = now();
    for (what, change) in [
        ("wrong iss", json!({"iss": "http://evil.example"})),
        (
            "iss with a trailing slash",
            json!({"iss": format!("{}/", app.issuer.issuer())}),
        ),
        ("missing iss", json!({"iss": null})),
        ("wrong aud", json!({"aud": "other-api"})),
        ("missing aud", json!({"aud": null})),
        ("aud array without us", json!({"aud": ["a", "b"]})),
        ("expired", json!({"exp": now - 120})),
        ("missing exp", json!({"exp": null})),
        ("exp as a string", json!({"exp": (now + 900).to_string()})),
        ("future nbf", json!({"nbf": now + 120})),
        ("missing sub", json!({"sub": null})),
        ("scope as an array", json!({"scope": ["admin"]})),
    ] {
        let token = resign(
            &key,
            &format!("{}.{}", b64(&header), b64(&edited(&claims, &change))),
        );
        assert_invalid(&app, &token, what).await;
    }
    // null is not absent, and claims are an object, not a positional array.
    let mut c = claims.clone();
    c["nbf"] = Value::Null;
    assert_invalid(
        &app,
        &resign(&key, &format!("{}.{}", b64(&header), b64(&c))),
        "nbf: null",
    )
    .await;
    let o = claims.as_object().unwrap();
    let positional = json!([o["iss"], o["sub"], o["aud"], o["exp"]]);
    assert_invalid(
        &app,
        &resign(&key, &format!("{}.{}", b64(&header), b64(&positional))),
        "array claims",
    )
    .await;
    // Within the 30-second leeway, and with aud as an array that holds us, it passes.
    let mut c = claims.clone();
    c["exp"] = json!(now - 10);
    c["aud"] = json!(["other", "tessera-api"]);
    let token = resign(&key, &format!("{}.{}", b64(&header), b64(&c)));
    assert_eq!(
        app.get("/companies/acme/users", Some(&token))
            .await
            .status()
            .as_u16(),
        200
    );
    // A duplicated claim is refused, even with a valid signature.
    let duplicated = format!(
        "{}.{}",
        b64(&header),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims).unwrap().replacen(
            '{',
            r#"{"company":"globex","#,
            1
        ))
    );
    let response = app
        .get("/companies/globex/users", Some(&resign(&key, &duplicated)))
        .await;
    assert_rejected(response, 401, INVALID_TOKEN).await;
    app.assert_valid_token_still_works().await;
}

async fn oversized_and_malformed_tokens_are_refused_before_any_key_lookup(backend: Backend) {
    let app = spawn_app(backend).await;
    app.assert_valid_token_still_works().await;
    let fetches = app.issuer.jwks_fetches();
    for token in [
        "a".repeat(9000),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!!.###.$$$".into(),
        format!("{}.e30.AAAA", b64(&json!([1, 2]))),
    ] {
        let response = app.get("/companies/acme/users", Some(&token)).await;
        assert_rejected(response, 401, INVALID_TOKEN).await;
    }
    assert_eq!(app.issuer.jwks_fetches(), fetches);
    app.assert_valid_token_still_works().await;
}

async fn basic_only_tokens_are_refused_even_for_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    for (user, scope) in [("alice", "basic"), ("bob", "basic")] {
        let response = app
            .get("/companies/acme/users", Some(&app.token(user, scope)))
            .await;
        let body = assert_rejected(response, 403, NEEDS_ADMIN).await;
        assert_eq!(body["error"], "insufficient_scope");
    }
    app.assert_valid_token_still_works().await;
}

async fn another_companys_admin_is_refused_on_every_verb_and_learns_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let carol = app.token("carol", "admin");
    let bob = app.user("bob").id;
    let routes = [
        (Method::GET, "/companies/acme/users".to_owned(), None),
        (
            Method::POST,
            "/companies/acme/users".to_owned(),
            Some(json!({"username": "mallory", "password": "a long password", "roles": ["admin"]})),
        ),
        (Method::GET, format!("/companies/acme/users/{bob}"), None),
        (
            Method::PATCH,
            format!("/companies/acme/users/{bob}"),
            Some(json!({"roles": ["admin"]})),
        ),
        (Method::DELETE, format!("/companies/acme/users/{bob}"), None),
        (Method::GET, "/companies/initech/users".to_owned(), None),
        (Method::GET, format!("/companies/initech/users/{bob}"), None),
        (Method::GET, "/companies/ACME/users".to_owned(), None),
    ];
    let mut bodies = Vec::new();
    for (method, path, body) in routes {
        let response = app.send(method.clone(), &path, Some(&carol), body).await;
        bodies.push(assert_rejected(response, 403, OTHER_COMPANY).await);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "responses differ: {bodies:?}"
    );
    // Nothing changed.
    let alice = app.alice_admin();
    let bob_now: Value = app
        .get(&format!("/companies/acme/users/{bob}"), Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bob_now["roles"], json!(["user"]));
    let listed: Vec<Value> = app
        .get("/companies/acme/users", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}

async fn user_ids_of_another_company_are_not_found_under_ones_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.alice_admin();
    let dave = app.user("dave").id;
    let path = format!("/companies/acme/users/{dave}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        let response = app.send(method, &path, Some(&alice), body).await;
        assert_eq!(response.status().as_u16(), 404);
    }
    let carol = app.token("carol", "admin");
    let dave_now: Value = app
        .get(&format!("/companies/globex/users/{dave}"), Some(&carol))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dave_now["disabled"], false);
    assert_eq!(
        app.get("/companies/acme/users/not-a-uuid", Some(&alice))
            .await
            .status()
            .as_u16(),
        404
    );
}

async fn encoded_and_dotted_paths_never_reach_another_company(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(backend).await;
    let alice = app.alice_admin();
    let addr = app.address.trim_start_matches("http://").to_owned();
    for (path, expected) in [
        // Dot segments are not routes: nothing matches, nothing is authorized.
        ("/companies/acme/../globex/users", 404),
        ("/companies/globex/../acme/users/../../globex/users", 404),
        ("/companies//acme/users", 404),
        // Encoded segments are compared, decoded or not, byte for byte with the claim.
        ("/companies/acme%2F..%2Fglobex/users", 403),
        ("/companies/%67lobex/users", 403),
        ("/companies/acme%00/users", 403),
        ("/companies/ACME/users", 403),
        ("/companies/acme%20/users", 403),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {alice}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response).to_string();
        let status: u16 = response[9..12].parse().unwrap();
        assert_eq!(status, expected, "{path}");
        let challenge = response
            .lines()
            .find_map(|l| l.strip_prefix("www-authenticate: "))
            .map(str::to_owned);
        if expected == 403 {
            assert_eq!(challenge.as_deref(), Some(OTHER_COMPANY), "{path}");
        } else {
            assert_eq!(challenge, None, "{path}");
        }
        assert!(
            !response.contains("carol") && !response.contains("dave"),
            "{path} leaked globex users"
        );
    }
    app.assert_valid_token_still_works().await;
}

on_each_backend!(
    missing_credentials_wrong_scheme_and_empty_tokens,
    tokens_in_the_query_or_in_two_places_are_not_honoured,
    unsigned_and_signature_stripped_tokens_are_refused,
    an_edited_payload_with_the_original_signature_is_refused,
    hs256_signed_with_the_public_key_in_any_form_is_refused,
    attacker_keys_embedded_named_or_unknown_are_never_used,
    kid_injections_are_just_unknown_keys,
    header_rules_typ_and_crit_are_enforced,
    claim_rules_issuer_audience_time_and_types_are_enforced,
    oversized_and_malformed_tokens_are_refused_before_any_key_lookup,
    basic_only_tokens_are_refused_even_for_admins,
    another_companys_admin_is_refused_on_every_verb_and_learns_nothing,
    user_ids_of_another_company_are_not_found_under_ones_own,
    encoded_and_dotted_paths_never_reach_another_company,
);
