use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, KeyAlgorithm, PublicKeyUse, RSAKeyParameters,
    RSAKeyType, ThumbprintHash,
};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Serialize;

use crate::{AccessTokenClaims, Error, ErrorKind};

/// The smallest RSA modulus Tessera accepts, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The only RSA public exponent Tessera accepts (65537), big-endian.
const RSA_EXPONENT: [u8; 3] = [1, 0, 1];

/// A JWS algorithm Tessera signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, the algorithm RFC 9068 §2.1 requires support for.
    RS256,
}

impl SigningAlgorithm {
    /// The JWA name, e.g. `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SigningAlgorithm {
    type Err = crate::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(SigningAlgorithm::RS256),
            _ => Err(crate::ParseError::new(
                "signing algorithm",
                format!("{s:?} is not supported"),
            )),
        }
    }
}

/// The JOSE header of an access token (RFC 9068 §2.1).
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// A private signing key, parsed once and held for its whole life.
///
/// Parsing an RSA private key costs more than the signature itself, so the key is kept as
/// an aws-lc `RsaKeyPair` and the encoded JOSE header is computed once.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    key_pair: RsaKeyPair,
    pkcs8_der: Vec<u8>,
    jwk: Jwk,
    encoded_header: String,
}

impl SigningKey {
    /// Generates a new 2048-bit RSA key with public exponent 65537 for RS256.
    ///
    /// The `rsa` crate generates the key; it is never used to sign. This takes a noticeable
    /// fraction of a second in an optimised build and much longer without optimisation.
    pub fn generate_rsa() -> Result<Self, Error> {
        use rsa::pkcs8::EncodePrivateKey;

        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, MIN_RSA_BITS)
            .map_err(|e| ErrorKind::KeyGeneration(e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| ErrorKind::KeyGeneration(e.to_string()))?;
        Self::from_pkcs8_der(der.as_bytes())
    }

    /// Loads an RSA private key from PKCS#8 DER, for RS256.
    ///
    /// Refuses keys under 2048 bits and exponents other than 65537.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let key_pair = RsaKeyPair::from_pkcs8(der).map_err(|e| {
            ErrorKind::InvalidKey(match e.description_() {
                "TooSmall" => format!("an RSA key needs at least {MIN_RSA_BITS} bits"),
                other => format!("not an RSA PKCS#8 key ({other})"),
            })
        })?;
        // aws-lc refuses small keys itself today; this keeps the rule if the backend changes.
        let bits = key_pair.public_modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            let why = format!("an RSA key needs at least {MIN_RSA_BITS} bits, not {bits}");
            return Err(ErrorKind::InvalidKey(why).into());
        }
        let components = RsaPublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
        let e = strip_leading_zeros(&components.e);
        if e != RSA_EXPONENT {
            return Err(ErrorKind::InvalidKey("the public exponent must be 65537".into()).into());
        }
        let algorithm = SigningAlgorithm::RS256;
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::RS256),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(strip_leading_zeros(&components.n)),
                e: URL_SAFE_NO_PAD.encode(e),
            }),
        };
        // RFC 7638: the kid is the SHA-256 thumbprint of the public key's required members.
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| ErrorKind::InvalidKey(format!("thumbprint failed ({e})")))?;
        jwk.common.key_id = Some(kid.clone());
        let header = Header {
            alg: algorithm.as_str(),
            typ: "at+jwt",
            kid: &kid,
        };
        let encoded_header =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(ErrorKind::Serialization)?);
        Ok(SigningKey {
            kid,
            algorithm,
            key_pair,
            pkcs8_der: der.to_vec(),
            jwk,
            encoded_header,
        })
    }

    /// Loads an RSA private key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        use rsa::pkcs8::DecodePrivateKey;

        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| ErrorKind::InvalidKey(format!("not a PKCS#8 PEM RSA key ({e})")))?;
        let der = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
            .map_err(|e| ErrorKind::InvalidKey(e.to_string()))?;
        Self::from_pkcs8_der(der.as_bytes())
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with. One key, one algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The private key as PKCS#8 DER, for storage. Treat it as a secret.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    /// The public key as a JWK with `kid`, `use: sig` and `alg`.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` as an RFC 9068 access token: header
    /// `{"alg":"RS256","typ":"at+jwt","kid":…}`, compact serialisation.
    pub fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        let claims = serde_json::to_vec(claims).map_err(ErrorKind::Serialization)?;
        let mut token = String::with_capacity(
            self.encoded_header.len()
                + claims.len() * 4 / 3
                + self.key_pair.public_modulus_len() * 4 / 3
                + 8,
        );
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| ErrorKind::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
#[path = "tests/keys.rs"]
mod tests;
