//! Unit tests of `oauth`.

use super::*;

#[test]
fn errors_serialise_as_rfc6749_bodies() {
    let e = OAuthError::new(ErrorCode::InvalidScope, "scope \"x\" is unknown");
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"error":"invalid_scope","error_description":"scope \"x\" is unknown"}"#
    );
    assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
    assert_eq!(ErrorCode::InvalidGrant.http_status(), 400);
}

#[test]
fn every_code_has_its_wire_spelling_and_status() {
    let all = [
        (ErrorCode::InvalidRequest, "invalid_request", 400),
        (ErrorCode::InvalidClient, "invalid_client", 401),
        (ErrorCode::InvalidGrant, "invalid_grant", 400),
        (ErrorCode::UnauthorizedClient, "unauthorized_client", 400),
        (
            ErrorCode::UnsupportedGrantType,
            "unsupported_grant_type",
            400,
        ),
        (
            ErrorCode::UnsupportedResponseType,
            "unsupported_response_type",
            400,
        ),
        (ErrorCode::InvalidScope, "invalid_scope", 400),
        (ErrorCode::AccessDenied, "access_denied", 403),
        (ErrorCode::ServerError, "server_error", 500),
        (
            ErrorCode::TemporarilyUnavailable,
            "temporarily_unavailable",
            503,
        ),
        (ErrorCode::InvalidToken, "invalid_token", 401),
        (ErrorCode::InsufficientScope, "insufficient_scope", 403),
        (
            ErrorCode::UnsupportedTokenType,
            "unsupported_token_type",
            400,
        ),
        (ErrorCode::NotFound, "not_found", 404),
        (ErrorCode::Conflict, "conflict", 409),
    ];
    for (code, wire, status) in all {
        assert_eq!(code.as_str(), wire);
        assert_eq!(code.to_string(), wire);
        assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{wire}\""));
        assert_eq!(code.http_status(), status, "{wire}");
    }
}

#[test]
fn tesseras_own_codes_serialise_like_the_rfc_ones() {
    let e = OAuthError::new(ErrorCode::NotFound, "no such user");
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"error":"not_found","error_description":"no such user"}"#
    );
    assert_eq!(e.http_status(), 404);
    assert_eq!(
        OAuthError::new(ErrorCode::Conflict, "taken").to_string(),
        "conflict: taken"
    );
}
