//! Unit tests of `client_auth`.

use super::parse_basic;

#[test]
fn basic_credentials_are_form_urlencoded_inside_base64() {
    // base64("my%20app:s%3Acret+x")
    let header = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "my%20app:s%3Acret+x"
        )
    );
    assert_eq!(
        parse_basic(header.as_bytes()),
        Some(("my app".into(), "s:cret x".into()))
    );
    assert_eq!(parse_basic(b"Bearer abc"), None);
    assert_eq!(parse_basic(b"Basic !!!"), None);
    assert_eq!(parse_basic(b"Basic"), None);
}
