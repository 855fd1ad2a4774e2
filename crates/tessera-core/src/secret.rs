//! Random secrets, their digests and constant-time comparison.
//!
//! Every secret Tessera hands out (client secrets, and later opaque tokens, refresh tokens
//! and authorization codes) is 256 bits from the operating system's CSPRNG, encoded as
//! base64url without padding, and stored only as its SHA-256 digest.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::{Error, ErrorKind};

/// Bytes of entropy in every generated secret.
pub const SECRET_BYTES: usize = 32;

/// A new 256-bit secret from the OS CSPRNG, base64url without padding (43 characters).
pub fn generate() -> Result<String, Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|_| ErrorKind::Randomness)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 digest of `secret`, as lower-case hex: the form in which secrets are stored.
pub fn digest(secret: &str) -> String {
    let hash = digest::digest(&digest::SHA256, secret.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash.as_ref() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The prefix of every opaque access token the authorization server issues: `tsr_`
/// followed by a [`generate`]d secret.
pub const OPAQUE_ACCESS_TOKEN_PREFIX: &str = "tsr_";

/// Characters in a [`generate`]d secret: 32 bytes in base64url without padding.
pub const SECRET_CHARS: usize = 43;

/// Whether `token` is `prefix` followed by a [`generate`]d secret: exactly
/// [`SECRET_CHARS`] base64url characters. Anything else was never issued, so it can be
/// refused without a lookup.
pub fn has_secret_shape(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|secret| {
        secret.len() == SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Whether `presented` hashes to `stored_digest`, compared in constant time.
///
/// Both sides are fixed-length digests, so the time taken says nothing about how much of
/// the secret was right.
pub fn matches_digest(presented: &str, stored_digest: &str) -> bool {
    digest(presented)
        .as_bytes()
        .ct_eq(stored_digest.as_bytes())
        .into()
}

#[cfg(test)]
#[path = "tests/secret.rs"]
mod tests;
