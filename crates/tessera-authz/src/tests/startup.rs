//! Unit tests of `startup`.

use super::parse_issuer;

#[test]
fn issuers_are_http_urls_without_query_fragment_or_trailing_slash() {
    assert_eq!(
        parse_issuer("https://auth.example.com/").unwrap(),
        "https://auth.example.com"
    );
    assert_eq!(
        parse_issuer("http://127.0.0.1:8080").unwrap(),
        "http://127.0.0.1:8080"
    );
    for bad in [
        "ftp://x",
        "https://x/?a=b",
        "https://x/#f",
        "not a url",
        "https://u:p@x",
        "https://example.com/tenant",
    ] {
        assert!(parse_issuer(bad).is_err(), "{bad} accepted");
    }
}
