//! Unit tests of `error`: every API error's status and body, byte for byte.

use actix_web::body::MessageBody;

use super::*;

fn answer(err: ApiError) -> (u16, Option<String>, String) {
    let response = err.error_response();
    let retry_after = response
        .headers()
        .get(actix_web::http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let status = response.status().as_u16();
    let body = response.into_body().try_into_bytes().unwrap();
    (
        status,
        retry_after,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[test]
fn a_bad_request_is_invalid_request() {
    assert_eq!(
        answer(ApiError::invalid_request("a user needs at least one role")),
        (
            400,
            None,
            r#"{"error":"invalid_request","error_description":"a user needs at least one role"}"#
                .into()
        )
    );
}

#[test]
fn an_unknown_user_is_not_found_whatever_the_store_said() {
    let body = r#"{"error":"not_found","error_description":"no such user"}"#;
    assert_eq!(answer(ApiError::not_found()), (404, None, body.into()));
    assert_eq!(
        answer(StoreError::NotFound("company acme".into()).into()),
        (404, None, body.into())
    );
}

#[test]
fn a_taken_name_is_a_conflict_naming_it() {
    assert_eq!(
        answer(StoreError::Conflict("username \"alice\" is taken".into()).into()),
        (
            409,
            None,
            r#"{"error":"conflict","error_description":"username \"alice\" is taken"}"#.into()
        )
    );
}

#[test]
fn unreadable_bodies_are_invalid_request_and_oversized_ones_413() {
    use tessera_web::BodyError;
    assert_eq!(
        answer(ApiError::from_body(BodyError::TooLarge(16384))),
        (
            413,
            None,
            r#"{"error":"invalid_request","error_description":"the request body exceeds 16384 bytes"}"#
                .into()
        )
    );
    assert_eq!(
        answer(ApiError::from_body(BodyError::WrongMediaType(
            "application/json"
        )))
        .2,
        r#"{"error":"invalid_request","error_description":"the request body must be application/json"}"#
    );
    assert_eq!(
        answer(ApiError::from_body(BodyError::Unreadable)).2,
        r#"{"error":"invalid_request","error_description":"the request body could not be read"}"#
    );
}

#[test]
fn a_server_error_tells_the_client_nothing_of_its_cause() {
    let cause = StoreError::Corrupt("roles column holds \"root\"".into());
    let err = ApiError::from(cause);
    assert_eq!(
        err.to_string(),
        "server_error: the server could not complete the request"
    );
    assert_eq!(
        answer(err),
        (
            500,
            None,
            r#"{"error":"server_error","error_description":"the server could not complete the request"}"#
                .into()
        )
    );
}

#[test]
fn a_rate_limit_is_429_with_its_retry_after_and_a_busy_server_503_with_5_seconds() {
    let limited = tessera_web::ratelimit::Limited {
        retry_after: std::time::Duration::from_millis(59_001),
    };
    assert_eq!(
        answer(ApiError::rate_limited(limited, "too many failed user creations")),
        (
            429,
            Some("60".into()),
            r#"{"error":"temporarily_unavailable","error_description":"too many failed user creations; retry after 60 seconds"}"#
                .into()
        )
    );
    assert_eq!(
        answer(ApiError::busy("too many passwords are being hashed; retry later")),
        (
            503,
            Some("5".into()),
            r#"{"error":"temporarily_unavailable","error_description":"too many passwords are being hashed; retry later"}"#
                .into()
        )
    );
}
