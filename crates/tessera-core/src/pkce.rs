//! Proof Key for Code Exchange (RFC 7636), `S256` only.
//!
//! The `plain` method sends the verifier itself as the challenge, so anyone who sees the
//! authorization request can redeem the code; Tessera refuses it (RFC 9700 §2.1.1).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// The one transformation Tessera accepts.
pub const METHOD_S256: &str = "S256";

/// Whether `challenge` is an `S256` challenge: exactly 43 base64url characters, the
/// unpadded encoding of a 32-byte SHA-256 digest.
pub fn is_valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// Whether `verifier` has the shape RFC 7636 §4.1 requires: 43 to 128 characters from
/// `A-Z a-z 0-9 - . _ ~`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `S256` challenge of `verifier`: `BASE64URL(SHA256(verifier))`.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Whether `verifier` is well formed and hashes to `challenge`, compared in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier)
        && bool::from(
            challenge_of(verifier)
                .as_bytes()
                .ct_eq(challenge.as_bytes()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_matches() {
        assert_eq!(challenge_of(VERIFIER), CHALLENGE);
        assert!(is_valid_challenge(CHALLENGE));
        assert!(verifier_matches(VERIFIER, CHALLENGE));
    }

    #[test]
    fn another_verifier_or_a_plain_challenge_does_not_match() {
        let other = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(!verifier_matches(other, CHALLENGE));
        // `plain`: the verifier sent as its own challenge.
        assert!(!verifier_matches(VERIFIER, VERIFIER));
    }

    #[test]
    fn challenges_must_be_43_base64url_characters_of_32_bytes() {
        assert!(!is_valid_challenge(&CHALLENGE[..42]));
        assert!(!is_valid_challenge(&format!("{CHALLENGE}A")));
        assert!(!is_valid_challenge(&CHALLENGE.replace('-', "+")));
        assert!(!is_valid_challenge(&format!("{}=", &CHALLENGE[..42])));
        // Trailing bits set: not the canonical encoding of any 32 bytes.
        assert!(!is_valid_challenge(&format!("{}N", &CHALLENGE[..42])));
    }

    #[test]
    fn verifiers_are_43_to_128_unreserved_characters() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"~._-".repeat(32)));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(42))));
        assert!(!verifier_matches(
            &"a".repeat(129),
            &challenge_of(&"a".repeat(129))
        ));
    }
}
