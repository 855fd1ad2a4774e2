//! Unit tests of `secret`.

use super::*;

#[test]
fn generated_secrets_are_43_base64url_characters_and_differ() {
    let a = generate().unwrap();
    let b = generate().unwrap();
    assert_eq!(a.len(), 43);
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_ne!(a, b);
}

#[test]
fn digest_is_sha256_hex_and_matching_is_exact() {
    assert_eq!(
        digest("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let stored = digest("s3cret");
    assert!(matches_digest("s3cret", &stored));
    assert!(!matches_digest("s3cre", &stored));
    assert!(!matches_digest("S3cret", &stored));
}

#[test]
fn only_a_prefix_and_a_generated_secret_have_the_secret_shape() {
    let token = format!("{OPAQUE_ACCESS_TOKEN_PREFIX}{}", generate().unwrap());
    assert!(has_secret_shape(&token, OPAQUE_ACCESS_TOKEN_PREFIX));
    let secret = &token[OPAQUE_ACCESS_TOKEN_PREFIX.len()..];
    for bad in [
        secret.to_owned(),
        format!("tsr_{}", &secret[1..]),
        format!("tsr_{secret}A"),
        format!("tsr_{}+", &secret[1..]),
        format!("tsr_{}=", &secret[1..]),
        format!("TSR_{secret}"),
        "tsr_".to_owned(),
        String::new(),
    ] {
        assert!(!has_secret_shape(&bad, OPAQUE_ACCESS_TOKEN_PREFIX), "{bad}");
    }
}
