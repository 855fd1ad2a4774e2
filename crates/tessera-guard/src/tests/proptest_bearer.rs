//! Property tests of `bearer`: whatever `Authorization` header a client sends, extraction
//! answers (never panics), and what it accepts is exactly `Bearer` + RFC 6750 `b64token`.

use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::test::TestRequest;
use proptest::prelude::*;

use super::*;

/// The bytes a header value may hold: visible ASCII, space, tab and obs-text.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![4 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff],
        0..96,
    )
}

/// `scheme SEP token`, with schemes and tokens near the boundaries.
fn header_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("Bearer".to_owned()),
        Just("bearer".to_owned()),
        Just("BEARER".to_owned()),
        Just("BeArEr".to_owned()),
        Just("Basic".to_owned()),
        Just("Bearer\t".to_owned()),
        Just("Bearerx".to_owned()),
        Just(String::new()),
        "[A-Za-z]{0,8}",
    ];
    let separator = prop_oneof![
        Just(" "),
        Just("  "),
        Just("   "),
        Just("\t"),
        Just(" \t"),
        Just("")
    ];
    let token = prop_oneof![
        "[A-Za-z0-9._~+/-]{1,40}=*",
        "[A-Za-z0-9._~+/=-]{0,40}",
        "[ -~]{0,40}",
        "[A-Za-z0-9]{1,10}\\.[A-Za-z0-9]{1,10}\\.[A-Za-z0-9]{1,10}",
    ];
    (scheme, separator, token).prop_map(|(s, sep, t)| format!("{s}{sep}{t}"))
}

fn request(value: HeaderValue, query: &str) -> HttpRequest {
    let uri = if query.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{query}")
    };
    TestRequest::default()
        .uri(&uri)
        .insert_header((AUTHORIZATION, value))
        .to_http_request()
}

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// What an accepted header must look like: `bearer` (any case), one space, optional
/// further spaces, then a `b64token` that is the rest of the value.
fn check_accepted(value: &[u8], token: &str) -> Result<(), TestCaseError> {
    prop_assert!(!token.is_empty());
    prop_assert!(
        !token.trim_end_matches('=').is_empty(),
        "all padding: {token:?}"
    );
    prop_assert!(token.bytes().all(is_b64token_char), "bad char in {token:?}");
    let padding_start = token.trim_end_matches('=').len();
    prop_assert!(
        !token[..padding_start].contains('='),
        "`=` inside {token:?}"
    );
    prop_assert!(value.ends_with(token.as_bytes()));
    let head = &value[..value.len() - token.len()];
    prop_assert!(head.len() >= 7, "no scheme and separator in {value:?}");
    prop_assert!(head[..6].eq_ignore_ascii_case(b"bearer"));
    prop_assert!(head[6..].iter().all(|b| *b == b' '));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_header_bytes_never_panic(bytes in header_bytes()) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            return Ok(());
        };
        let req = request(value, "");
        match bearer_token(&req) {
            Ok(token) => check_accepted(&bytes, token)?,
            Err(
                GuardError::MissingCredentials
                | GuardError::InvalidToken(crate::Rejection::Malformed),
            ) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?} for {bytes:?}"),
        }
    }

    #[test]
    fn scheme_and_token_split_as_rfc_6750_says(raw in header_like()) {
        let Ok(value) = HeaderValue::from_str(&raw) else {
            return Ok(());
        };
        let req = request(value, "");
        let result = bearer_token(&req);
        let (scheme, rest) = raw.split_once(' ').unwrap_or((&raw, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            prop_assert_eq!(result, Err(GuardError::MissingCredentials));
            return Ok(());
        }
        let token = rest.trim_start_matches(' ');
        let well_formed = !token.trim_end_matches('=').is_empty()
            && !token.trim_end_matches('=').contains('=')
            && token.bytes().all(is_b64token_char);
        if well_formed {
            prop_assert_eq!(result, Ok(token));
            check_accepted(raw.as_bytes(), token)?;
        } else {
            prop_assert_eq!(result, Err(GuardError::InvalidToken(crate::Rejection::Malformed)));
        }
    }

    #[test]
    fn a_query_token_next_to_the_header_is_an_invalid_request(
        token in "[A-Za-z0-9._~+/-]{1,40}",
        before in "[a-z_]{0,8}=[a-z]{0,4}",
        value in "[A-Za-z0-9]{0,8}",
    ) {
        let header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
            TestCaseError::fail(e.to_string())
        })?;
        let req = request(header, &format!("{before}&access_token={value}"));
        prop_assert!(matches!(bearer_token(&req), Err(GuardError::InvalidRequest(_))));
    }

    #[test]
    fn two_authorization_headers_are_an_invalid_request(
        a in "Bearer [A-Za-z0-9]{1,20}",
        b in "[ -~]{0,30}",
    ) {
        let (Ok(a), Ok(b)) = (HeaderValue::from_str(&a), HeaderValue::from_str(&b)) else {
            return Ok(());
        };
        let req = TestRequest::default()
            .append_header((AUTHORIZATION, a))
            .append_header((AUTHORIZATION, b))
            .to_http_request();
        prop_assert!(matches!(bearer_token(&req), Err(GuardError::InvalidRequest(_))));
    }
}
