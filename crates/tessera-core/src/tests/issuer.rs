//! Unit tests of `issuer`.

use super::parse_issuer;

#[test]
fn issuers_are_normalised_http_origins() {
    assert_eq!(
        parse_issuer("https://auth.example.com/").unwrap(),
        "https://auth.example.com"
    );
    assert_eq!(
        parse_issuer("http://127.0.0.1:8080").unwrap(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        parse_issuer("HTTP://Auth.Example.COM:80/").unwrap(),
        "http://auth.example.com"
    );
    assert_eq!(
        parse_issuer("https://auth.example.com:443").unwrap(),
        "https://auth.example.com"
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
    assert_eq!(
        parse_issuer("ftp://x").unwrap_err().to_string(),
        "invalid issuer: the scheme must be http or https"
    );
}
