//! Unit tests of `error`: every refusal's status, challenge and body, byte for byte.

use actix_web::body::MessageBody;

use super::*;

fn answer(err: GuardError) -> (u16, Option<String>, Option<String>, String) {
    let response = err.response("tessera");
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let challenge = header(header::WWW_AUTHENTICATE);
    let retry_after = header(header::RETRY_AFTER);
    let status = response.status().as_u16();
    let body = response.into_body().try_into_bytes().unwrap();
    (
        status,
        challenge,
        retry_after,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[test]
fn a_request_without_credentials_gets_a_bare_challenge_and_no_body() {
    assert_eq!(
        answer(GuardError::MissingCredentials),
        (
            401,
            Some(r#"Bearer realm="tessera""#.into()),
            None,
            String::new()
        )
    );
}

#[test]
fn a_malformed_request_is_invalid_request() {
    assert_eq!(
        answer(GuardError::InvalidRequest("two Authorization headers")),
        (
            400,
            Some(r#"Bearer realm="tessera", error="invalid_request""#.into()),
            None,
            r#"{"error":"invalid_request","error_description":"two Authorization headers"}"#.into()
        )
    );
}

#[test]
fn a_refused_token_is_invalid_token_whatever_the_reason() {
    for why in [
        Rejection::Expired,
        Rejection::Signature,
        Rejection::Inactive,
        Rejection::Revoked,
    ] {
        assert_eq!(
            answer(GuardError::InvalidToken(why)),
            (
                401,
                Some(r#"Bearer realm="tessera", error="invalid_token""#.into()),
                None,
                r#"{"error":"invalid_token","error_description":"the access token is invalid"}"#
                    .into()
            )
        );
    }
}

#[test]
fn a_missing_scope_is_named_in_the_challenge() {
    assert_eq!(
        answer(GuardError::InsufficientScope("admin")),
        (
            403,
            Some(
                r#"Bearer realm="tessera", error="insufficient_scope", scope="admin""#.into()
            ),
            None,
            r#"{"error":"insufficient_scope","error_description":"the access token lacks a required scope"}"#
                .into()
        )
    );
}

#[test]
fn a_forbidden_resource_is_insufficient_scope_naming_nothing() {
    assert_eq!(
        answer(GuardError::Forbidden),
        (
            403,
            Some(r#"Bearer realm="tessera", error="insufficient_scope""#.into()),
            None,
            r#"{"error":"insufficient_scope","error_description":"the access token does not grant access to this resource"}"#
                .into()
        )
    );
}

#[test]
fn an_unavailable_check_is_503_with_a_bare_challenge_and_retry_after() {
    assert_eq!(
        answer(GuardError::Unavailable),
        (
            503,
            Some(r#"Bearer realm="tessera""#.into()),
            Some("5".into()),
            r#"{"error":"temporarily_unavailable","error_description":"the token cannot be checked now; retry later"}"#
                .into()
        )
    );
}

#[test]
fn metric_outcomes_keep_their_spelling() {
    let outcomes: Vec<&str> = [
        GuardError::MissingCredentials,
        GuardError::InvalidRequest("x"),
        GuardError::InvalidToken(Rejection::TooLong),
        GuardError::InvalidToken(Rejection::Expired),
        GuardError::InsufficientScope("admin"),
        GuardError::Forbidden,
        GuardError::Unavailable,
    ]
    .iter()
    .map(GuardError::outcome)
    .collect();
    assert_eq!(
        outcomes,
        [
            "missing",
            "invalid_request",
            "too_long",
            "expired",
            "insufficient_scope",
            "forbidden",
            "unavailable"
        ]
    );
}
