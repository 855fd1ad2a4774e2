//! Unit tests of `admin`.

use super::check_redirect_uri;

#[test]
fn redirect_uris_are_https_or_loopback_http_without_fragment() {
    assert!(check_redirect_uri("https://app.example/cb").is_ok());
    assert!(check_redirect_uri("http://127.0.0.1:9000/cb").is_ok());
    for bad in [
        "http://app.example/cb",
        "https://app.example/cb#x",
        "/relative",
        "javascript:alert(1)",
    ] {
        assert!(check_redirect_uri(bad).is_err(), "{bad} accepted");
    }
}
