//! Unit tests of `keys`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use super::*;
use crate::{Role, Scope, ScopeSet};

const KEY_A: &str = include_str!("../../../../testdata/keys/rsa-2048-a.pem");
const KEY_B: &str = include_str!("../../../../testdata/keys/rsa-2048-b.pem");
const WEAK: &str = include_str!("../../../../testdata/keys/rsa-1024-weak.pem");
const EXPONENT_3: &str = include_str!("../../../../testdata/keys/rsa-2048-e3.pem");

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "0b6f5e0e-4f4c-4a53-8c8e-1d2a6f1f9d10".into(),
        aud: "tessera-api".into(),
        iat: 4_000_000_000,
        exp: 4_000_000_900,
        jti: "jti-1".into(),
        client_id: "demo-jwt".into(),
        scope: ScopeSet::only(Scope::Admin),
        company: Some("acme".into()),
        roles: Some(vec![Role::Admin]),
        username: Some("alice".into()),
    }
}

#[test]
fn a_signed_token_verifies_with_jsonwebtoken_against_the_public_jwk() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let token = key.sign_access_token(&claims()).unwrap();

    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(key.kid()));

    let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["tessera-api"]);
    let data = decode::<AccessTokenClaims>(&token, &decoding, &validation).unwrap();
    assert_eq!(data.claims, claims());

    let other = SigningKey::from_pkcs8_pem(KEY_B).unwrap();
    let wrong = DecodingKey::from_jwk(other.public_jwk()).unwrap();
    assert!(decode::<AccessTokenClaims>(&token, &wrong, &validation).is_err());
}

#[test]
fn kid_is_the_rfc7638_thumbprint_of_n_and_e() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let AlgorithmParameters::RSA(rsa) = &key.public_jwk().algorithm else {
        panic!("not an RSA JWK");
    };
    assert_eq!(rsa.e, "AQAB");
    let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    assert_eq!(key.kid(), URL_SAFE_NO_PAD.encode(digest.as_ref()));
    // 2048-bit modulus: 256 bytes, 342 base64url characters, no leading zero byte.
    assert_eq!(rsa.n.len(), 342);
}

#[test]
fn the_public_jwk_carries_no_private_member() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let json = serde_json::to_value(key.public_jwk()).unwrap();
    let mut members: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    members.sort();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(json["use"], "sig");
    assert_eq!(json["alg"], "RS256");
}

#[test]
fn keys_round_trip_through_pkcs8_der_with_the_same_kid() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let again = SigningKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
    assert_eq!(key.kid(), again.kid());
}

#[test]
fn weak_and_garbage_keys_are_refused() {
    let err = SigningKey::from_pkcs8_pem(WEAK).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid signing key: an RSA key needs at least 2048 bits"
    );
    let err = SigningKey::from_pkcs8_pem(EXPONENT_3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid signing key: the public exponent must be 65537"
    );
    assert!(SigningKey::from_pkcs8_der(b"not a key").is_err());
    assert!(!format!("{:?}", SigningKey::from_pkcs8_pem(KEY_A).unwrap()).contains("MII"));
}

#[test]
fn generated_keys_are_2048_bit_rsa_with_exponent_65537() {
    let key = SigningKey::generate_rsa().unwrap();
    let AlgorithmParameters::RSA(rsa) = &key.public_jwk().algorithm else {
        panic!("not an RSA JWK");
    };
    assert_eq!(rsa.e, "AQAB");
    assert_eq!(rsa.n.len(), 342);
    let token = key.sign_access_token(&claims()).unwrap();
    let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["tessera-api"]);
    assert!(decode::<AccessTokenClaims>(&token, &decoding, &validation).is_ok());
}
