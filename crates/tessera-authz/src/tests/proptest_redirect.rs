//! Property tests of the redirect back to the client (`redirect_to_client`): whatever
//! redirect URI is stored and whatever `state` or error text rides along, the answer is
//! a redirect to that URI with exactly those parameters appended, or an error page;
//! never a panic, never a parameter injected.

use proptest::prelude::*;

use super::*;

/// Stored redirect URIs: registered shapes and shapes registration refuses (a stored URI
/// may predate a rule), plus raw noise.
fn redirect_uri() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("https://"),
        Just("http://"),
        Just("HTTPS://"),
        Just("com.example.app:/"),
        Just("javascript:"),
        Just("mailto:"),
        Just(""),
    ];
    let host = prop_oneof![
        Just("app.example"),
        Just("127.0.0.1:9000"),
        Just("[::1]"),
        Just("localhost"),
        Just("bücher.example"),
        Just("u:p@app.example"),
        Just(""),
    ];
    let path = prop_oneof![Just(String::new()), "/[ -~]{0,12}", "/.{0,8}"];
    let query = proptest::option::of("[ -~]{0,16}");
    let fragment = proptest::option::of(".{0,6}");
    let shaped =
        (scheme, host, path, query, fragment).prop_map(|(scheme, host, path, query, fragment)| {
            let mut uri = format!("{scheme}{host}{path}");
            if let Some(q) = query {
                uri.push('?');
                uri.push_str(&q);
            }
            if let Some(f) = fragment {
                uri.push('#');
                uri.push_str(&f);
            }
            uri
        });
    prop_oneof![4 => shaped, 1 => ".{0,40}"]
}

/// Parameter names and values as a client or an error description may set them,
/// separators and escapes included.
fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let text = prop_oneof![".{0,16}", "[&=#?%+ a-z0-9]{0,16}"];
    proptest::collection::vec(
        (
            prop_oneof![
                Just("state".to_owned()),
                Just("code".to_owned()),
                Just("error".to_owned()),
                Just("iss".to_owned()),
                "[a-z_]{1,8}",
            ],
            text,
        ),
        0..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn redirects_carry_exactly_the_given_parameters(
        uri in redirect_uri(),
        params in params(),
        see_other in any::<bool>(),
    ) {
        let status = if see_other { StatusCode::SEE_OTHER } else { StatusCode::FOUND };
        let pairs: Vec<(&str, &str)> =
            params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let response = redirect_to_client(&uri, status, &pairs);
        let Ok(original) = url::Url::parse(&uri) else {
            prop_assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            prop_assert!(response.headers().get(header::LOCATION).is_none());
            return Ok(());
        };
        prop_assert_eq!(response.status(), status);
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(url::Url::parse);
        prop_assert!(
            matches!(location, Some(Ok(_))),
            "bad Location {:?} for {:?}", response.headers().get(header::LOCATION), uri
        );
        let Some(Ok(location)) = location else { return Ok(()) };
        // Same destination: only the query grew.
        prop_assert_eq!(location.scheme(), original.scheme());
        prop_assert_eq!(location.host_str(), original.host_str());
        prop_assert_eq!(location.port(), original.port());
        prop_assert_eq!(location.path(), original.path());
        prop_assert_eq!(location.fragment(), original.fragment());
        // The query: the registered pairs, then ours, each decoded back to what was set.
        let mut expected: Vec<(String, String)> = original.query_pairs().into_owned().collect();
        expected.extend(params.iter().cloned());
        let got: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(
            response.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
    }
}
