//! Unit tests of `clients`.

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
        // What a parser rewrites would be compared in one form and followed in another.
        " https://app.example/cb",
        "https://app.example/a\tb",
        "https:app.example/cb",
        "https://app.example\\cb",
        "HTTPS://APP.example/cb",
        "https://app.example:443/cb",
        "https://app.example/cb/../x",
        "https://app.example",
    ] {
        assert!(check_redirect_uri(bad).is_err(), "{bad} accepted");
    }
    let err = check_redirect_uri("https://app.example")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("normal form, \"https://app.example/\""),
        "{err}"
    );
}

/// Property tests: registration must refuse every redirect URI the rules forbid, and
/// never panic on what an administrator types.
mod props {
    use proptest::prelude::*;

    use super::check_redirect_uri;

    /// Strings shaped like URIs, with the pieces the rules look at varied.
    fn uri_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            Just("https://"),
            Just("http://"),
            Just("HTTPS://"),
            Just("HtTp://"),
            Just("https:"),
            Just("https:\\\\"),
            Just("javascript:"),
            Just("data:"),
            Just("com.example.app:/"),
            Just("ftp://"),
            Just("//"),
            Just(""),
        ];
        let host = prop_oneof![
            Just("127.0.0.1"),
            Just("127.0.0.2"),
            Just("127.1"),
            Just("0x7f.1"),
            Just("[::1]"),
            Just("[::ffff:127.0.0.1]"),
            Just("localhost"),
            Just("LOCALHOST"),
            Just("localhost."),
            Just("localhost.evil.example"),
            Just("127.0.0.1.evil.example"),
            Just("app.example"),
            Just("user:pw@app.example"),
            Just("bücher.example"),
            Just(""),
        ];
        let port = prop_oneof![
            Just(""),
            Just(":0"),
            Just(":443"),
            Just(":65536"),
            Just(":x")
        ];
        let path = prop_oneof![Just(String::new()), "/[ -~]{0,12}", "/.{0,8}"];
        let query = proptest::option::of("[ -~]{0,12}");
        let fragment = proptest::option::of(".{0,6}");
        (scheme, host, port, path, query, fragment).prop_map(
            |(scheme, host, port, path, query, fragment)| {
                let mut uri = format!("{scheme}{host}{port}{path}");
                if let Some(q) = query {
                    uri.push('?');
                    uri.push_str(&q);
                }
                if let Some(f) = fragment {
                    uri.push('#');
                    uri.push_str(&f);
                }
                uri
            },
        )
    }

    /// What an accepted URI must satisfy (RFC 6749 §3.1.2, RFC 8252 §7.3), checked
    /// without the code's own host list.
    fn check_accepted(raw: &str) -> Result<(), TestCaseError> {
        prop_assert!(!raw.contains('#'), "a fragment was accepted: {raw:?}");
        let url = url::Url::parse(raw);
        prop_assert!(url.is_ok(), "not absolute: {raw:?}");
        let Ok(url) = url else { return Ok(()) };
        prop_assert!(url.fragment().is_none());
        prop_assert!(url.has_host(), "no host: {raw:?}");
        prop_assert_eq!(url.as_str(), raw, "stored unlike it is followed");
        match url.scheme() {
            "https" => {}
            "http" => {
                let loopback = match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(name)) => name == "localhost",
                    None => false,
                };
                prop_assert!(loopback, "plain http off loopback: {raw:?}");
            }
            other => prop_assert!(false, "scheme {other:?} accepted: {raw:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_never_panic(raw in ".{0,80}") {
            if check_redirect_uri(&raw).is_ok() {
                check_accepted(&raw)?;
            }
        }

        #[test]
        fn accepted_uris_follow_the_rules(raw in uri_like()) {
            if check_redirect_uri(&raw).is_ok() {
                check_accepted(&raw)?;
            }
        }

        #[test]
        fn https_uris_without_fragment_are_accepted(
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            // Written in normal form: a path, no default port, no dot segments.
            port in proptest::option::of((1u16..).prop_filter("not the default", |p| *p != 443)),
            path in "(/[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,7}){1,4}/?",
            query in proptest::option::of("[A-Za-z0-9=&._~-]{0,16}"),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            let raw = format!("https://{host}{port}{path}{query}");
            prop_assert!(check_redirect_uri(&raw).is_ok(), "{raw:?} refused");
        }
    }
}
