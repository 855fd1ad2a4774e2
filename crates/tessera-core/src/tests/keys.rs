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
        sid: Some("5d0e1c4b-7a8f-4e2d-9b3c-1f6a8e7d2c40".into()),
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

// ---- Every algorithm: RS256, PS256, ES256, EdDSA. ----

/// RFC 8037 Appendix A.1: an Ed25519 private key (seed) and its public key.
const RFC8037_SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
/// RFC 8037 Appendix A.3: the RFC 7638 SHA-256 thumbprint of that public key.
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

fn rsa_der(pem: &str) -> Vec<u8> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
    key.to_pkcs8_der().unwrap().as_bytes().to_vec()
}

/// One key per algorithm; RSA keys come from the fixtures, since RSA generation is slow.
fn one_key_per_algorithm() -> Vec<SigningKey> {
    let keys = vec![
        SigningKey::from_pkcs8_pem(KEY_A).unwrap(),
        SigningKey::from_pkcs8(SigningAlgorithm::PS256, &rsa_der(KEY_B)).unwrap(),
        SigningKey::generate(SigningAlgorithm::ES256).unwrap(),
        SigningKey::generate(SigningAlgorithm::EdDSA).unwrap(),
    ];
    let algorithms: Vec<_> = keys.iter().map(SigningKey::algorithm).collect();
    assert_eq!(algorithms, SigningAlgorithm::ALL);
    keys
}

fn jwt_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    algorithm.as_str().parse().unwrap()
}

fn validation(algorithm: SigningAlgorithm) -> Validation {
    let mut validation = Validation::new(jwt_algorithm(algorithm));
    validation.set_audience(&["tessera-api"]);
    validation.set_issuer(&["http://127.0.0.1:8080"]);
    validation
}

fn verifies(token: &str, key: &SigningKey, algorithm: SigningAlgorithm) -> bool {
    let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
    decode::<AccessTokenClaims>(token, &decoding, &validation(algorithm)).is_ok()
}

fn signature_len(token: &str) -> usize {
    let signature = token.rsplit('.').next().unwrap();
    URL_SAFE_NO_PAD.decode(signature).unwrap().len()
}

fn members(jwk: &Jwk) -> (serde_json::Value, Vec<String>) {
    let json = serde_json::to_value(jwk).unwrap();
    let mut members: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    members.sort();
    (json, members)
}

fn sha256_b64(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[test]
fn algorithms_parse_exactly_their_jwa_names() {
    let names: Vec<_> = SigningAlgorithm::ALL
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(names, ["RS256", "PS256", "ES256", "EdDSA"]);
    for algorithm in SigningAlgorithm::ALL {
        assert_eq!(
            algorithm.as_str().parse::<SigningAlgorithm>(),
            Ok(algorithm)
        );
        assert_eq!(
            serde_json::to_value(jwt_algorithm(algorithm)).unwrap(),
            algorithm.as_str()
        );
    }
    for refused in [
        "rs256", "Rs256", "eddsa", "EDDSA", "ES384", "RS512", "HS256", "none", "", " RS256",
    ] {
        let err = refused.parse::<SigningAlgorithm>().unwrap_err();
        assert_eq!(err.what(), "signing algorithm");
        assert!(
            err.message()
                .ends_with("is not supported; use RS256, PS256, ES256 or EdDSA"),
            "{err}"
        );
    }
}

#[test]
fn every_algorithm_signs_tokens_that_jsonwebtoken_verifies() {
    for key in one_key_per_algorithm() {
        let algorithm = key.algorithm();
        let token = key.sign_access_token(&claims()).unwrap();

        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, jwt_algorithm(algorithm));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let raw_header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let expected = format!(
            r#"{{"alg":"{algorithm}","typ":"at+jwt","kid":"{}"}}"#,
            key.kid()
        );
        assert_eq!(String::from_utf8(raw_header).unwrap(), expected);

        let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
        let data = decode::<AccessTokenClaims>(&token, &decoding, &validation(algorithm))
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(data.claims, claims());

        let expected_len = match algorithm {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => 256,
            // ES256 is the fixed-length r || s of RFC 7518 §3.4, not DER.
            SigningAlgorithm::ES256 | SigningAlgorithm::EdDSA => 64,
        };
        assert_eq!(signature_len(&token), expected_len, "{algorithm}");
    }
}

#[test]
fn generated_keys_of_every_algorithm_sign_verifiable_tokens() {
    // RS256 generation is covered by `generated_keys_are_2048_bit_rsa_with_exponent_65537`.
    for algorithm in [
        SigningAlgorithm::PS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ] {
        let key = SigningKey::generate(algorithm).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        let token = key.sign_access_token(&claims()).unwrap();
        assert!(verifies(&token, &key, algorithm), "{algorithm}");
        let again = SigningKey::generate(algorithm).unwrap();
        assert_ne!(key.kid(), again.kid());
    }
}

#[test]
fn ps256_signatures_are_randomised_and_rs256_ones_are_not() {
    let der = rsa_der(KEY_A);
    let rs = SigningKey::from_pkcs8(SigningAlgorithm::RS256, &der).unwrap();
    let ps = SigningKey::from_pkcs8(SigningAlgorithm::PS256, &der).unwrap();
    assert_eq!(
        rs.sign_access_token(&claims()).unwrap(),
        rs.sign_access_token(&claims()).unwrap()
    );
    assert_ne!(
        ps.sign_access_token(&claims()).unwrap(),
        ps.sign_access_token(&claims()).unwrap()
    );
}

#[test]
fn keys_of_every_algorithm_round_trip_through_pkcs8_der() {
    for key in one_key_per_algorithm() {
        let again = SigningKey::from_pkcs8(key.algorithm(), key.pkcs8_der()).unwrap();
        assert_eq!(again.algorithm(), key.algorithm());
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_jwk(), key.public_jwk());
        assert_eq!(again.pkcs8_der(), key.pkcs8_der());
        // A token from the reloaded key verifies against the original JWK.
        let token = again.sign_access_token(&claims()).unwrap();
        assert!(verifies(&token, &key, key.algorithm()));
    }
}

#[test]
fn a_key_of_one_type_is_refused_for_another_algorithm() {
    let keys = one_key_per_algorithm();
    let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &SystemRandom::new(),
    )
    .unwrap();
    let cases = [
        (SigningAlgorithm::ES256, keys[0].pkcs8_der(), "an RSA key"),
        (SigningAlgorithm::EdDSA, keys[1].pkcs8_der(), "an RSA key"),
        (
            SigningAlgorithm::RS256,
            keys[2].pkcs8_der(),
            "an EC P-256 key",
        ),
        (
            SigningAlgorithm::PS256,
            keys[2].pkcs8_der(),
            "an EC P-256 key",
        ),
        (
            SigningAlgorithm::EdDSA,
            keys[2].pkcs8_der(),
            "an EC P-256 key",
        ),
        (
            SigningAlgorithm::RS256,
            keys[3].pkcs8_der(),
            "an Ed25519 key",
        ),
        (
            SigningAlgorithm::ES256,
            keys[3].pkcs8_der(),
            "an Ed25519 key",
        ),
        (SigningAlgorithm::ES256, p384.as_ref(), "an EC P-384 key"),
    ];
    for (algorithm, der, holds) in cases {
        let err = SigningKey::from_pkcs8(algorithm, der).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidKey(_)), "{err:?}");
        let needs = match algorithm {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => "an RSA key",
            SigningAlgorithm::ES256 => "an EC P-256 key",
            SigningAlgorithm::EdDSA => "an Ed25519 key",
        };
        assert_eq!(
            err.to_string(),
            format!(
                "invalid signing key: {algorithm} needs {needs}, \
                 but this PKCS#8 document holds {holds}"
            )
        );
    }
    // `from_pkcs8_der` is RS256: it refuses the others too.
    assert!(SigningKey::from_pkcs8_der(keys[3].pkcs8_der()).is_err());
}

#[test]
fn garbage_and_weak_keys_are_refused_for_every_algorithm() {
    for (algorithm, expected) in [
        (
            SigningAlgorithm::RS256,
            "not an RSA PKCS#8 key (InvalidEncoding)",
        ),
        (
            SigningAlgorithm::PS256,
            "not an RSA PKCS#8 key (InvalidEncoding)",
        ),
        (
            SigningAlgorithm::ES256,
            "not an EC P-256 PKCS#8 key (InvalidEncoding)",
        ),
        (
            SigningAlgorithm::EdDSA,
            "not an Ed25519 PKCS#8 key (InvalidEncoding)",
        ),
    ] {
        for garbage in [&b"not a key"[..], b"", &[0x30, 0x03, 0x02, 0x01, 0x00]] {
            let err = SigningKey::from_pkcs8(algorithm, garbage).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid signing key: {expected}"));
        }
    }
    // PS256 keeps the RSA rules.
    let err = SigningKey::from_pkcs8(SigningAlgorithm::PS256, &rsa_der(WEAK)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid signing key: an RSA key needs at least 2048 bits"
    );
    let err = SigningKey::from_pkcs8(SigningAlgorithm::PS256, &rsa_der(EXPONENT_3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid signing key: the public exponent must be 65537"
    );
    // A weak RSA key offered for ES256 is refused for its type, not its size.
    let err = SigningKey::from_pkcs8(SigningAlgorithm::ES256, &rsa_der(WEAK)).unwrap_err();
    assert!(err.to_string().ends_with("holds an RSA key"), "{err}");
}

#[test]
fn one_rsa_key_loads_for_rs256_and_ps256_with_the_same_kid() {
    let der = rsa_der(KEY_A);
    let rs = SigningKey::from_pkcs8(SigningAlgorithm::RS256, &der).unwrap();
    let ps = SigningKey::from_pkcs8(SigningAlgorithm::PS256, &der).unwrap();
    // RFC 7638 hashes the key, not the algorithm: the kid is the same, the alg is not.
    assert_eq!(rs.kid(), ps.kid());
    assert_eq!(
        rs.public_jwk().common.key_algorithm,
        Some(KeyAlgorithm::RS256)
    );
    assert_eq!(
        ps.public_jwk().common.key_algorithm,
        Some(KeyAlgorithm::PS256)
    );
    // Each token verifies only under its own algorithm, though the key is the same.
    let rs_token = rs.sign_access_token(&claims()).unwrap();
    let ps_token = ps.sign_access_token(&claims()).unwrap();
    assert!(verifies(&rs_token, &rs, SigningAlgorithm::RS256));
    assert!(!verifies(&rs_token, &ps, SigningAlgorithm::PS256));
    assert!(verifies(&ps_token, &ps, SigningAlgorithm::PS256));
    assert!(!verifies(&ps_token, &rs, SigningAlgorithm::RS256));
}

#[test]
fn a_token_verifies_under_no_other_key_or_algorithm() {
    let keys = one_key_per_algorithm();
    for signer in &keys {
        let token = signer.sign_access_token(&claims()).unwrap();
        for verifier in &keys {
            for algorithm in SigningAlgorithm::ALL {
                let expected = verifier.kid() == signer.kid() && algorithm == signer.algorithm();
                let decoding = DecodingKey::from_jwk(verifier.public_jwk()).unwrap();
                let result = decode::<AccessTokenClaims>(&token, &decoding, &validation(algorithm));
                assert_eq!(
                    result.is_ok(),
                    expected,
                    "signed {} checked with {} as {algorithm}",
                    signer.algorithm(),
                    verifier.algorithm()
                );
            }
        }
    }
    // A fresh key of the same type does not verify either.
    for algorithm in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
        let a = SigningKey::generate(algorithm).unwrap();
        let b = SigningKey::generate(algorithm).unwrap();
        let token = a.sign_access_token(&claims()).unwrap();
        assert!(!verifies(&token, &b, algorithm));
    }
}

#[test]
fn every_public_jwk_has_exactly_the_expected_members() {
    for key in one_key_per_algorithm() {
        let algorithm = key.algorithm();
        let (json, members) = members(key.public_jwk());
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], algorithm.as_str());
        assert_eq!(json["kid"], key.kid());
        let b64_len = |member: &str| {
            URL_SAFE_NO_PAD
                .decode(json[member].as_str().unwrap())
                .unwrap()
                .len()
        };
        match algorithm {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => {
                assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
                assert_eq!(json["kty"], "RSA");
                assert_eq!(json["e"], "AQAB");
                assert_eq!(b64_len("n"), 256);
            }
            SigningAlgorithm::ES256 => {
                assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
                assert_eq!(json["kty"], "EC");
                assert_eq!(json["crv"], "P-256");
                assert_eq!(b64_len("x"), 32);
                assert_eq!(b64_len("y"), 32);
            }
            SigningAlgorithm::EdDSA => {
                assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);
                assert_eq!(json["kty"], "OKP");
                assert_eq!(json["crv"], "Ed25519");
                assert_eq!(b64_len("x"), 32);
            }
        }
        // The JWK parses back into the same value (a JWKS consumer sees what we built).
        let back: Jwk = serde_json::from_value(json).unwrap();
        assert_eq!(&back, key.public_jwk());
    }
}

#[test]
fn the_ec_jwk_is_the_uncompressed_public_point() {
    let key = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        key.pkcs8_der(),
    )
    .unwrap();
    let point = pair.public_key().as_ref();
    let AlgorithmParameters::EllipticCurve(ec) = &key.public_jwk().algorithm else {
        panic!("not an EC JWK");
    };
    let mut rebuilt = vec![0x04];
    rebuilt.extend(URL_SAFE_NO_PAD.decode(&ec.x).unwrap());
    rebuilt.extend(URL_SAFE_NO_PAD.decode(&ec.y).unwrap());
    assert_eq!(rebuilt, point);
}

#[test]
fn every_kid_is_the_rfc7638_thumbprint_of_the_required_members() {
    for key in one_key_per_algorithm() {
        let canonical = match &key.public_jwk().algorithm {
            AlgorithmParameters::RSA(rsa) => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n)
            }
            AlgorithmParameters::EllipticCurve(ec) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                ec.x, ec.y
            ),
            AlgorithmParameters::OctetKeyPair(okp) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, okp.x)
            }
            other => panic!("unexpected JWK {other:?}"),
        };
        assert_eq!(key.kid(), sha256_b64(&canonical), "{}", key.algorithm());
        assert_eq!(
            key.kid(),
            key.public_jwk().thumbprint(ThumbprintHash::SHA256).unwrap()
        );
    }
}

#[test]
fn the_ed25519_kid_matches_the_rfc8037_test_vector() {
    // PKCS#8 v1 around the RFC 8037 A.1 seed (RFC 8410 §7 layout).
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend(URL_SAFE_NO_PAD.decode(RFC8037_SEED).unwrap());
    let key = SigningKey::from_pkcs8(SigningAlgorithm::EdDSA, &der).unwrap();
    let AlgorithmParameters::OctetKeyPair(okp) = &key.public_jwk().algorithm else {
        panic!("not an OKP JWK");
    };
    assert_eq!(okp.x, RFC8037_X);
    assert_eq!(key.kid(), RFC8037_THUMBPRINT);
    let token = key.sign_access_token(&claims()).unwrap();
    assert!(verifies(&token, &key, SigningAlgorithm::EdDSA));
}

#[test]
fn debug_is_redacted_for_every_algorithm() {
    for key in one_key_per_algorithm() {
        let debug = format!("{key:?}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(debug.contains(key.kid()));
        assert!(!debug.contains(&URL_SAFE_NO_PAD.encode(key.pkcs8_der())[..16]));
        assert!(
            !debug
                .contains(&base64::engine::general_purpose::STANDARD.encode(key.pkcs8_der())[..16])
        );
    }
}

#[test]
fn signing_keys_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SigningKey>();
}

#[test]
fn a_pem_key_holds_the_same_der_as_a_second_parser_reads() {
    for pem in [KEY_A, KEY_B] {
        let key = SigningKey::from_pkcs8_pem(pem).unwrap();
        assert_eq!(key.pkcs8_der(), rsa_der(pem).as_slice());
    }
}

#[test]
fn a_pem_document_that_is_not_pkcs8_is_refused() {
    let pkcs1 = KEY_A.replace("PRIVATE KEY", "RSA PRIVATE KEY");
    let err = SigningKey::from_pkcs8_pem(&pkcs1).unwrap_err();
    assert!(
        err.to_string().contains("not a PKCS#8 PEM RSA key"),
        "{err}"
    );
    let err = SigningKey::from_pkcs8_pem("not a PEM document").unwrap_err();
    assert!(
        err.to_string().contains("not a PKCS#8 PEM RSA key"),
        "{err}"
    );
}

#[test]
fn at_hash_is_the_left_half_of_the_algorithms_digest() {
    // Values computed by Python's hashlib for the same token.
    let token = "jHkWEdUXMU1BwAsC4vtUsZwnNlpA9wX_5Ko5MsXpkaS";
    let rsa = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let es256 = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
    let eddsa = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
    assert_eq!(rsa.token_hash(token), "RxJDa-bs9A--CM9ikOKslA");
    assert_eq!(es256.token_hash(token), "RxJDa-bs9A--CM9ikOKslA");
    // Ed25519 hashes with SHA-512, as the openidconnect crate and others do.
    assert_eq!(
        eddsa.token_hash(token),
        "He-OU044EZEIhm9fGNyTnr6x5BaZDIKO-Fz1u8LASQM"
    );
}

#[test]
fn an_id_token_is_typed_jwt_and_verifies_with_the_same_key() {
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    let claims = crate::IdTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "0b6f5e0e-4f4c-4a53-8c8e-1d2a6f1f9d10".into(),
        aud: "wiki".into(),
        exp: 4_000_000_900,
        iat: 4_000_000_000,
        auth_time: 3_999_999_000,
        nonce: Some("n-0S6".into()),
        at_hash: Some(key.token_hash("access")),
        sid: "5d0e1c4b-7a8f-4e2d-9b3c-1f6a8e7d2c40".into(),
        name: None,
        preferred_username: Some("alice".into()),
        updated_at: Some(3_999_000_000),
        email: None,
        email_verified: None,
    };
    let token = key.sign_id_token(&claims).unwrap();
    let header = decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["wiki"]);
    let data = decode::<crate::IdTokenClaims>(&token, &decoding, &validation).unwrap();
    assert_eq!(data.claims, claims);
    // Members without a value are left out, not sent as null.
    let payload = token.split('.').nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(
        json.get("name").is_none() && json.get("email").is_none(),
        "{json}"
    );
    // The access token of the same key keeps its own type.
    let access = key.sign_access_token(&self::claims()).unwrap();
    assert_eq!(
        decode_header(&access).unwrap().typ.as_deref(),
        Some("at+jwt")
    );
}
