//! Unit tests of `form`.

use tessera_core::ErrorCode;

use super::*;

#[test]
fn forms_decode_plus_and_percent_and_treat_empty_as_absent() {
    let form =
        Form::parse(b"grant_type=password&username=al%69ce&password=a+b%2Bc&scope=").unwrap();
    assert_eq!(form.get("username"), Some("alice"));
    assert_eq!(form.get("password"), Some("a b+c"));
    assert_eq!(form.get("scope"), None);
    assert_eq!(
        form.require("scope").unwrap_err().code(),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn repeated_parameters_and_bad_utf8_are_invalid_requests() {
    assert_eq!(
        Form::parse(b"a=1&a=2").unwrap_err().code(),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        Form::parse(b"a=%ff").unwrap_err().code(),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        Form::parse(b"a=\xff").unwrap_err().code(),
        ErrorCode::InvalidRequest
    );
}

/// Property tests: `Form::parse` reads the raw body of a network request.
mod props {
    use std::collections::HashMap;

    use actix_web::ResponseError;
    use actix_web::http::StatusCode;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use proptest::prelude::*;

    use super::*;

    /// Bytes that look like a form body: separators, escapes (good and broken), `+`,
    /// non-ASCII and invalid UTF-8.
    fn formish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"&".to_vec()),
            Just(b"=".to_vec()),
            Just(b"+".to_vec()),
            Just(b"%".to_vec()),
            Just(b"%2".to_vec()),
            Just(b"%zz".to_vec()),
            Just(b"%ff".to_vec()),
            Just(b"%c3%a9".to_vec()),
            Just(b"%26".to_vec()),
            Just(b"%3D".to_vec()),
            Just("é".as_bytes().to_vec()),
            Just(vec![0xff]),
            Just(vec![0xc3]),
            "[a-z_]{1,6}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// A map of distinct names to values, any characters at all.
    fn params() -> impl Strategy<Value = HashMap<String, String>> {
        proptest::collection::hash_map(".{0,12}", ".{0,16}", 0..8)
    }

    fn encode_serializer(params: &HashMap<String, String>) -> Vec<u8> {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            s.append_pair(name, value);
        }
        s.finish().into_bytes()
    }

    /// Every byte but ASCII alphanumerics escaped (spaces as `%20`, not `+`).
    fn encode_everything(params: &HashMap<String, String>) -> Vec<u8> {
        params
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(name, NON_ALPHANUMERIC),
                    utf8_percent_encode(value, NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_body_parses_or_is_an_invalid_request(body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            formish(),
        ]) {
            match Form::parse(&body) {
                Ok(form) => {
                    // Every non-empty pair became a parameter: none dropped or merged.
                    let pairs = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
                    prop_assert_eq!(form.params.len(), pairs);
                }
                Err(e) => {
                    prop_assert_eq!(e.code(), ErrorCode::InvalidRequest);
                    prop_assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
                }
            }
        }

        #[test]
        fn encoded_params_parse_back(params in params()) {
            for body in [encode_serializer(&params), encode_everything(&params)] {
                let form = Form::parse(&body);
                prop_assert!(form.is_ok(), "{:?} refused", String::from_utf8_lossy(&body));
                let form = form.unwrap_or_default();
                prop_assert_eq!(&form.params, &params);
                for (name, value) in &params {
                    let expected = Some(value.as_str()).filter(|v| !v.is_empty());
                    prop_assert_eq!(form.get(name), expected);
                }
            }
        }

        #[test]
        fn a_name_repeated_in_any_spelling_is_refused(
            params in params(),
            name in "[a-z]{1,8}",
            first in ".{0,8}",
            second in ".{0,8}",
        ) {
            let escaped = utf8_percent_encode(&name, NON_ALPHANUMERIC).to_string();
            let all_escaped: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
            for spelling in [name.as_str(), escaped.as_str(), all_escaped.as_str()] {
                let mut body = encode_serializer(&params);
                body.extend_from_slice(b"&");
                body.extend_from_slice(spelling.as_bytes());
                body.extend_from_slice(b"=");
                body.extend_from_slice(
                    utf8_percent_encode(&first, NON_ALPHANUMERIC).to_string().as_bytes(),
                );
                body.extend_from_slice(b"&");
                body.extend_from_slice(name.as_bytes());
                body.extend_from_slice(b"=");
                body.extend_from_slice(
                    utf8_percent_encode(&second, NON_ALPHANUMERIC).to_string().as_bytes(),
                );
                let refused = Form::parse(&body).map(|_| ());
                prop_assert_eq!(
                    refused.map_err(|e| e.code()),
                    Err(ErrorCode::InvalidRequest)
                );
            }
        }
    }
}
