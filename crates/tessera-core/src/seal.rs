//! Private signing keys at rest: AES-256-GCM under a master key.
//!
//! A sealed key is `b"TSK1"` ‖ a fresh random 12-byte nonce ‖ ciphertext ‖ 16-byte tag.
//! The key id is the associated data, so a sealed key copied to another key's row does not
//! open. The master key comes from outside (`TESSERA_MASTER_KEY`), never from the database.
//!
//! ```
//! use tessera_core::MasterKey;
//!
//! # fn main() -> Result<(), tessera_core::Error> {
//! let (master, printable) = MasterKey::generate()?;
//! let sealed = master.seal("kid-1", b"private key")?;
//! assert!(tessera_core::seal::is_sealed(&sealed));
//! assert_eq!(master.open("kid-1", &sealed)?, b"private key");
//! assert!(master.open("kid-2", &sealed).is_err());
//! assert!(MasterKey::parse(&printable).is_ok());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::{Error, ErrorKind, ParseError};

/// The first bytes of every sealed key, version 1 of the format.
const MAGIC: &[u8; 4] = b"TSK1";
/// The length of a master key, in bytes.
const KEY_LEN: usize = 32;
/// The length of an AES-GCM tag, in bytes.
const TAG_LEN: usize = 16;
/// What a master key must look like, for error messages. Never includes the value.
const EXPECTED: &str = "TESSERA_MASTER_KEY must be 32 bytes: 64 hex digits or base64";

/// Base64 decoders that accept the value padded or not.
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A 256-bit AES-GCM key that seals private signing keys at rest.
///
/// The key bytes live only inside aws-lc (which wipes them when the key is dropped); cloning
/// shares them rather than copying. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct MasterKey {
    key: Arc<RandomizedNonceKey>,
}

impl MasterKey {
    /// Parses a master key: 64 hex digits, or base64 (standard or URL-safe alphabet, padded
    /// or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    ///
    /// The error says what is expected and never repeats the value.
    pub fn parse(value: &str) -> Result<MasterKey, ParseError> {
        let value = value.trim();
        let invalid = || ParseError::new("master key", EXPECTED);
        if value.is_empty() {
            return Err(ParseError::new(
                "master key",
                format!("TESSERA_MASTER_KEY is empty; {EXPECTED}"),
            ));
        }
        let bytes = match decode_hex(value) {
            Some(bytes) => bytes,
            None => BASE64_STANDARD
                .decode(value)
                .or_else(|_| BASE64_URL_SAFE.decode(value))
                .map_err(|_| invalid())?,
        };
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| invalid())?;
        Self::from_bytes(&bytes).map_err(|_| invalid())
    }

    /// Generates a random master key; returns it with its base64 encoding, which
    /// [`MasterKey::parse`] accepts.
    pub fn generate() -> Result<(MasterKey, String), Error> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::getrandom(&mut bytes).map_err(|_| ErrorKind::Randomness)?;
        let encoded = STANDARD.encode(bytes);
        Ok((Self::from_bytes(&bytes)?, encoded))
    }

    fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<MasterKey, Error> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| ErrorKind::KeyGeneration("the AES-256-GCM key was refused".into()))?;
        Ok(MasterKey { key: Arc::new(key) })
    }

    /// Seals `plaintext` (a PKCS#8 private key) for the key id `kid`.
    ///
    /// The output is `b"TSK1"` ‖ a fresh random 12-byte nonce ‖ ciphertext ‖ tag, with `kid`
    /// as associated data; two seals of the same plaintext differ.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| {
                ErrorKind::InvalidKey(format!(
                    "the private key of kid {kid:?} could not be sealed"
                ))
            })?;
        let mut sealed = Vec::with_capacity(MAGIC.len() + NONCE_LEN + in_out.len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`MasterKey::seal`] produced for the same `kid`.
    ///
    /// A wrong master key, a wrong kid, or truncated, altered or unsealed data all give the
    /// same [`ErrorKind::InvalidKey`] error, naming the kid.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let damaged = || -> Error {
            ErrorKind::InvalidKey(format!(
                "the sealed private key of kid {kid:?} does not open: \
                 wrong master key or damaged data"
            ))
            .into()
        };
        let rest = sealed.strip_prefix(MAGIC).ok_or_else(damaged)?;
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(damaged());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let mut in_out = ciphertext.to_vec();
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| damaged())?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Whether `bytes` is a sealed key (starts with the `TSK1` magic).
///
/// A plaintext PKCS#8 document starts with `0x30` (a DER SEQUENCE), so it never matches.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Decodes exactly 64 hex digits (either case); `None` for anything else.
fn decode_hex(value: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }

    if value.len() != 2 * KEY_LEN {
        return None;
    }
    value
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
#[path = "tests/seal.rs"]
mod tests;
