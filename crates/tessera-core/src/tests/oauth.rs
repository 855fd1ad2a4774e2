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
