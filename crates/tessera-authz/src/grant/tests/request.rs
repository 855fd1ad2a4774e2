use super::*;

fn parse(form: &str, client: &Client) -> Result<TokenRequest, GrantError> {
    TokenRequest::parse(&Form::parse(form.as_bytes()).unwrap(), client)
}

/// A client that may use every grant, without touching a store.
fn any_grant_client() -> Client {
    Client {
        registration: any_grant_registration(),
        created_at: Utc::now(),
        tokens_revoked_at: None,
    }
}

fn any_grant_registration() -> NewClient {
    NewClient {
        client_id: "any".parse().unwrap(),
        name: "any".into(),
        secret_hash: Some(secret::digest(SECRET)),
        grant_types: SUPPORTED_GRANTS.to_vec(),
        scopes: scope("basic admin"),
        redirect_uris: vec![],
        access_token_format: TokenFormat::Jwt,
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
        post_logout_redirect_uris: vec![],
    }
}

#[test]
fn an_unknown_grant_type_is_unsupported_and_the_answer_names_the_supported_ones() {
    let client = any_grant_client();
    for unknown in [
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "PASSWORD",
    ] {
        let error = parse(&format!("grant_type={unknown}"), &client).unwrap_err();
        assert_eq!(error.code(), ErrorCode::UnsupportedGrantType);
        assert_eq!(
            error.to_string(),
            format!(
                "unsupported_grant_type: the grant type {unknown:?} is not supported; use \
                 authorization_code, refresh_token, password or client_credentials"
            )
        );
    }
    let missing = parse("scope=basic", &client).unwrap_err();
    assert_eq!(missing.code(), ErrorCode::InvalidRequest);
    assert_eq!(
        missing.to_string(),
        "invalid_request: the parameter grant_type is missing"
    );
}

#[test]
fn every_supported_grant_parses_into_its_own_variant() {
    let client = any_grant_client();
    for (form, grant) in [
        (
            "grant_type=client_credentials",
            GrantType::ClientCredentials,
        ),
        (
            "grant_type=password&username=u&password=p",
            GrantType::Password,
        ),
        (
            "grant_type=authorization_code&code=c&redirect_uri=r&code_verifier=v",
            GrantType::AuthorizationCode,
        ),
        (
            "grant_type=refresh_token&refresh_token=t",
            GrantType::RefreshToken,
        ),
    ] {
        assert_eq!(parse(form, &client).unwrap().grant_type(), grant);
    }
    assert_eq!(SUPPORTED_GRANTS.len(), 4);
}

#[test]
fn a_grant_the_client_may_not_use_is_unauthorized_client_before_its_parameters_are_read() {
    let client = Client {
        registration: NewClient {
            grant_types: vec![GrantType::ClientCredentials],
            ..any_grant_registration()
        },
        ..any_grant_client()
    };
    let error = parse("grant_type=password", &client).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unauthorized_client: this client may not use the password grant"
    );
}

#[test]
fn the_password_grant_checks_the_scope_before_the_credentials() {
    let client = Client {
        registration: NewClient {
            scopes: scope("basic"),
            ..any_grant_registration()
        },
        ..any_grant_client()
    };
    let error = parse("grant_type=password&scope=admin", &client).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid_scope: this client may not request the scope admin"
    );
}
