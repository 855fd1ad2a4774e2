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
