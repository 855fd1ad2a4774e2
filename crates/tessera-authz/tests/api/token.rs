use serde_json::Value;

use crate::helpers::*;

async fn password_grant_issues_an_rs256_at_jwt_that_an_independent_verifier_accepts(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let body = assert_token(app.password_grant("alice", PASSWORD, Some("admin")).await).await;
    assert_eq!(body["scope"], "admin");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(app.kid.as_str()));

    let claims = app.verify(token).await.claims;
    let alice = app
        .store
        .find_user_credentials("alice")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["sub"], alice.id.to_string());
    assert_eq!(claims["aud"], "tessera-api");
    assert_eq!(claims["client_id"], "app");
    assert_eq!(claims["scope"], "admin");
    assert_eq!(claims["company"], "acme");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "user"]));
    assert_eq!(claims["username"], "alice");
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 60);
}

async fn every_token_has_its_own_jti(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let body = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
        let claims = app
            .verify(body["access_token"].as_str().unwrap())
            .await
            .claims;
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
}

async fn the_configured_lifetime_and_audience_are_what_tokens_carry(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.access_token_ttl = std::time::Duration::from_secs(120);
        s.audience = "billing-api".into();
    })
    .await;
    let body = assert_token(app.password_grant("bob", PASSWORD, None).await).await;
    assert_eq!(body["expires_in"], 120);
    let token = body["access_token"].as_str().unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    assert_eq!(claims["aud"], "billing-api");

    // A client's own lifetime wins over the server default.
    let body = assert_token(
        app.password_grant_as(
            Auth::Basic("short-lived", APP_SECRET),
            "bob",
            PASSWORD,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(body["expires_in"], 60);
}

async fn client_secret_post_authenticates_like_basic(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = assert_token(
        app.password_grant_as(Auth::Post("app", APP_SECRET), "bob", PASSWORD, None)
            .await,
    )
    .await;
    assert_eq!(
        app.verify(body["access_token"].as_str().unwrap())
            .await
            .claims["username"],
        "bob"
    );
}

async fn a_missing_scope_means_basic_and_nothing_is_widened(backend: Backend) {
    let app = spawn_app(backend).await;
    // alice is an admin, but asked for nothing: she gets basic, not admin.
    let body = assert_token(app.password_grant("alice", PASSWORD, None).await).await;
    assert_eq!(body["scope"], "basic");
    let claims = app
        .verify(body["access_token"].as_str().unwrap())
        .await
        .claims;
    assert_eq!(claims["scope"], "basic");

    let body = assert_token(
        app.password_grant("alice", PASSWORD, Some("admin basic"))
            .await,
    )
    .await;
    assert_eq!(body["scope"], "basic admin");
}

async fn client_credentials_issues_a_token_for_the_client_itself(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = assert_token(
        app.token(
            Auth::Basic("machine", APP_SECRET),
            &[("grant_type", "client_credentials"), ("scope", "admin")],
        )
        .await,
    )
    .await;
    let claims = app
        .verify(body["access_token"].as_str().unwrap())
        .await
        .claims;
    assert_eq!(claims["sub"], "machine");
    assert_eq!(claims["client_id"], "machine");
    assert_eq!(claims["scope"], "admin");
    for private in ["company", "roles", "username"] {
        assert!(claims.get(private).is_none(), "{private} in {claims}");
    }
}

async fn a_plain_user_asking_for_admin_gets_invalid_scope_and_can_still_get_basic(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let body = assert_oauth_error(
        app.password_grant("bob", PASSWORD, Some("admin")).await,
        400,
        "invalid_scope",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "the admin scope requires the admin role"
    );
    assert_oauth_error(
        app.password_grant("bob", PASSWORD, Some("basic admin"))
            .await,
        400,
        "invalid_scope",
    )
    .await;
    assert_token(app.password_grant("bob", PASSWORD, Some("basic")).await).await;
}

async fn look_alike_and_malformed_scopes_are_unknown_never_normalised(backend: Backend) {
    let app = spawn_app(backend).await;
    for scope in [
        "Admin",
        "ADMIN",
        "admin\t",
        " admin",
        "admin ",
        "\u{0430}dmin",
        "basic  admin",
        "openid",
        "basic,admin",
    ] {
        let response = app.password_grant("alice", PASSWORD, Some(scope)).await;
        assert_oauth_error(response, 400, "invalid_scope").await;
    }
    let body = assert_token(app.password_grant("alice", PASSWORD, Some("admin")).await).await;
    assert_eq!(body["scope"], "admin");
}

async fn a_scope_the_client_may_not_have_is_invalid_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .password_grant_as(
            Auth::Basic("basic-app", APP_SECRET),
            "alice",
            PASSWORD,
            Some("admin"),
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_scope").await;
    assert_eq!(
        body["error_description"],
        "this client may not request the scope admin"
    );
    let ok = app
        .password_grant_as(
            Auth::Basic("basic-app", APP_SECRET),
            "alice",
            PASSWORD,
            None,
        )
        .await;
    assert_token(ok).await;
}

async fn a_grant_the_client_may_not_use_is_unauthorized_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .token(
            Auth::Basic("basic-app", APP_SECRET),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(response, 400, "unauthorized_client").await;
    let response = app
        .password_grant_as(Auth::Basic("machine", APP_SECRET), "alice", PASSWORD, None)
        .await;
    assert_oauth_error(response, 400, "unauthorized_client").await;
    assert_token(
        app.token(
            Auth::Basic("machine", APP_SECRET),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
}

async fn unknown_and_missing_grant_types_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for grant in [
        "implicit",
        "PASSWORD",
        "urn:ietf:params:oauth:grant-type:device_code",
        "authorization_code ",
    ] {
        let response = app
            .token(Auth::Basic("app", APP_SECRET), &[("grant_type", grant)])
            .await;
        assert_oauth_error(response, 400, "unsupported_grant_type").await;
    }
    // Supported grants the client is not registered for.
    for grant in ["authorization_code", "refresh_token"] {
        let response = app
            .token(Auth::Basic("app", APP_SECRET), &[("grant_type", grant)])
            .await;
        assert_oauth_error(response, 400, "unauthorized_client").await;
    }
    let response = app
        .token(Auth::Basic("app", APP_SECRET), &[("username", "alice")])
        .await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "the parameter grant_type is missing"
    );
}

async fn wrong_password_unknown_user_and_disabled_user_get_the_same_invalid_grant(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut bodies = Vec::new();
    for (username, password) in [
        ("alice", "wrong password"),
        ("nobody", PASSWORD),
        ("dora", PASSWORD),
        ("ALICE", PASSWORD),
    ] {
        let response = app.password_grant(username, password, None).await;
        bodies.push(assert_oauth_error(response, 400, "invalid_grant").await);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "bodies differ: {bodies:?}"
    );
    assert_token(app.password_grant("alice", PASSWORD, None).await).await;
}

async fn an_oversized_password_is_invalid_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let huge = "x".repeat(10_000);
    assert_oauth_error(
        app.password_grant("alice", &huge, None).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn missing_username_or_password_is_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .token(
            Auth::Basic("app", APP_SECRET),
            &[("grant_type", "password"), ("username", "alice")],
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "the parameter password is missing"
    );
    // RFC 6749 §3.1: an empty value counts as omitted.
    let response = app
        .password_grant_as(Auth::Basic("app", APP_SECRET), "", PASSWORD, None)
        .await;
    assert_oauth_error(response, 400, "invalid_request").await;
}

async fn client_authentication_failures_are_all_the_same_401_invalid_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let grant = [("grant_type", "client_credentials")];
    let mut descriptions = Vec::new();
    for auth in [
        Auth::Basic("nobody", APP_SECRET),
        Auth::Basic("machine", "wrong-secret"),
        Auth::Basic("machine", ""),
        Auth::Post("nobody", APP_SECRET),
        Auth::Post("machine", "wrong-secret"),
        Auth::IdOnly("machine"),
        Auth::None,
        Auth::Post("spa", "a-public-client-has-no-secret"),
        Auth::Basic("spa", "a-public-client-has-no-secret"),
        // A NUL cannot be stored in PostgreSQL text: still just an unknown client.
        Auth::Basic("mach\0ine", APP_SECRET),
        Auth::Post("mach\0ine", APP_SECRET),
    ] {
        let response = app.token(auth, &grant).await;
        let basic = matches!(auth, Auth::Basic(..));
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = assert_oauth_error(response, 401, "invalid_client").await;
        if basic {
            assert_eq!(
                challenge.as_deref(),
                Some("Basic realm=\"tessera\", charset=\"UTF-8\""),
                "{auth:?}"
            );
        } else {
            assert_eq!(challenge, None, "{auth:?}");
        }
        descriptions.push(body["error_description"].clone());
    }
    assert!(
        descriptions.windows(2).all(|w| w[0] == w[1]),
        "descriptions differ: {descriptions:?}"
    );
    assert_token(app.token(Auth::Basic("machine", APP_SECRET), &grant).await).await;
}

async fn a_malformed_authorization_header_is_invalid_client_with_a_basic_challenge(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    for value in [
        "Basic !!!not-base64",
        "Bearer abc",
        "Basic",
        "Basic Om5vLWlk",
    ] {
        let response = app
            .http
            .post(format!("{}/oauth/token", app.address))
            .header("Authorization", value)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().get("www-authenticate").is_some(),
            "{value}"
        );
        assert_oauth_error(response, 401, "invalid_client").await;
    }
}

async fn using_two_client_authentication_methods_is_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth("machine", Some(APP_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
            ("client_secret", APP_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
}

async fn public_clients_authenticate_with_their_id_and_may_not_use_client_credentials(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    // The id alone authenticates `spa` (unauthorized_client, not invalid_client): then the
    // grants no public client may use are refused, whatever it was registered with.
    let response = app
        .password_grant_as(Auth::IdOnly("spa"), "bob", PASSWORD, None)
        .await;
    assert_oauth_error(response, 400, "unauthorized_client").await;
    let response = app
        .token(Auth::IdOnly("spa"), &[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(response, 400, "unauthorized_client").await;
}

async fn a_json_body_is_an_oauth_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .raw_token(
            "application/json",
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "the request body must be application/x-www-form-urlencoded"
    );
    let response = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth("app", Some(APP_SECRET))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
}

async fn bad_utf8_in_the_body_is_an_oauth_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let form = "application/x-www-form-urlencoded";
    let raw = app
        .raw_token(
            form,
            b"grant_type=password&username=al\xffce&password=x".to_vec(),
        )
        .await;
    assert_oauth_error(raw, 400, "invalid_request").await;
    let escaped = app
        .raw_token(
            form,
            b"grant_type=password&username=al%FFce&password=x".to_vec(),
        )
        .await;
    let body = assert_oauth_error(escaped, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "the request body is not valid UTF-8"
    );
}

async fn an_oversized_body_is_an_oauth_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut body = b"grant_type=client_credentials&padding=".to_vec();
    body.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let response = app
        .raw_token("application/x-www-form-urlencoded", body)
        .await;
    assert_oauth_error(response, 413, "invalid_request").await;
}

async fn a_repeated_parameter_is_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .raw_token(
            "application/x-www-form-urlencoded; charset=UTF-8",
            b"grant_type=client_credentials&scope=basic&scope=admin".to_vec(),
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert_eq!(body["error_description"], "the parameter scope is repeated");
}

async fn the_token_endpoint_only_accepts_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/oauth/token").await;
    assert_eq!(response.status().as_u16(), 405);
}

async fn a_body_client_id_that_differs_from_the_basic_one_is_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth("machine", Some(APP_SECRET))
        .form(&[("grant_type", "client_credentials"), ("client_id", "app")])
        .send()
        .await
        .unwrap();
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "client_id in the body differs from the Authorization header"
    );
    // The same id in both places is fine.
    let response = app
        .http
        .post(format!("{}/oauth/token", app.address))
        .basic_auth("machine", Some(APP_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
        ])
        .send()
        .await
        .unwrap();
    assert_token(response).await;
}

async fn an_oversized_chunked_body_without_content_length_is_an_oauth_413(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(backend).await;
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "a".repeat(8192);
    for _ in 0..4 {
        // Later chunks may meet a closed connection once the server has answered.
        if stream
            .write_all(format!("2000\r\n{chunk}\r\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("cache-control: no-store"), "{response}");
    assert!(
        lower.contains("content-type: application/json"),
        "{response}"
    );
    assert!(
        response.contains(r#""error":"invalid_request""#),
        "{response}"
    );
}

async fn a_username_no_database_can_hold_is_an_unknown_user_not_a_server_error(backend: Backend) {
    let app = spawn_app(backend).await;
    for username in ["bo\0b", "\0", "bob\u{0}"] {
        let response = app.password_grant(username, PASSWORD, None).await;
        let body = assert_oauth_error(response, 400, "invalid_grant").await;
        assert!(!body.to_string().contains("22021"), "{body}");
    }
    assert_token(app.password_grant("bob", PASSWORD, None).await).await;
}

on_each_backend!(
    a_client_deleted_by_another_process_gets_invalid_client_not_a_server_error,
    a_username_no_database_can_hold_is_an_unknown_user_not_a_server_error,
    password_grant_issues_an_rs256_at_jwt_that_an_independent_verifier_accepts,
    every_token_has_its_own_jti,
    the_configured_lifetime_and_audience_are_what_tokens_carry,
    client_secret_post_authenticates_like_basic,
    a_missing_scope_means_basic_and_nothing_is_widened,
    client_credentials_issues_a_token_for_the_client_itself,
    a_plain_user_asking_for_admin_gets_invalid_scope_and_can_still_get_basic,
    look_alike_and_malformed_scopes_are_unknown_never_normalised,
    a_scope_the_client_may_not_have_is_invalid_scope,
    a_grant_the_client_may_not_use_is_unauthorized_client,
    unknown_and_missing_grant_types_are_refused,
    wrong_password_unknown_user_and_disabled_user_get_the_same_invalid_grant,
    an_oversized_password_is_invalid_grant,
    missing_username_or_password_is_invalid_request,
    client_authentication_failures_are_all_the_same_401_invalid_client,
    a_malformed_authorization_header_is_invalid_client_with_a_basic_challenge,
    using_two_client_authentication_methods_is_invalid_request,
    public_clients_authenticate_with_their_id_and_may_not_use_client_credentials,
    a_json_body_is_an_oauth_invalid_request,
    bad_utf8_in_the_body_is_an_oauth_invalid_request,
    an_oversized_body_is_an_oauth_413,
    a_repeated_parameter_is_invalid_request,
    the_token_endpoint_only_accepts_post,
    a_body_client_id_that_differs_from_the_basic_one_is_invalid_request,
    an_oversized_chunked_body_without_content_length_is_an_oauth_413,
);

/// A client deleted through another process (`tessera client delete`), asking for an opaque
/// token from a server that read it a moment before and may still hold it in memory: the
/// token cannot be stored, and the answer is `401 invalid_client` with the Basic challenge,
/// as it is once the server has seen the deletion; never a server error.
async fn a_client_deleted_by_another_process_gets_invalid_client_not_a_server_error(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let grant = [("grant_type", "client_credentials"), ("scope", "basic")];
    assert_token(
        app.token(Auth::Basic("opaque-app", APP_SECRET), &grant)
            .await,
    )
    .await;
    // Another process: a store of its own on the same database.
    let elsewhere = app.db().open().await;
    assert!(
        elsewhere
            .delete_client("opaque-app", chrono::Utc::now())
            .await
            .unwrap()
    );
    let response = app
        .token(Auth::Basic("opaque-app", APP_SECRET), &grant)
        .await;
    let challenge = response.headers().get("www-authenticate").cloned();
    assert_oauth_error(response, 401, "invalid_client").await;
    assert!(
        challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Basic")),
        "the Basic challenge"
    );
    // Others are untouched.
    assert_token(app.token(Auth::Basic("machine", APP_SECRET), &grant).await).await;
}
