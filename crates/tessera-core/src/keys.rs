use std::fmt;

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaEncoding, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
    RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Serialize;

use crate::{AccessTokenClaims, Error, ErrorKind};

/// The smallest RSA modulus Tessera accepts, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The only RSA public exponent Tessera accepts (65537), big-endian.
const RSA_EXPONENT: [u8; 3] = [1, 0, 1];
/// The label of a PKCS#8 private key in PEM (RFC 7468 §10).
const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";
/// The length of one P-256 coordinate, in bytes.
const P256_COORDINATE_LEN: usize = 32;

/// A JWS algorithm Tessera signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, the algorithm RFC 9068 §2.1 requires support for.
    RS256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (RFC 7518 §3.5), salt as long as the hash.
    PS256,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), the JWS signature being `r || s`.
    ES256,
    /// EdDSA on Ed25519 (RFC 8037).
    EdDSA,
}

impl SigningAlgorithm {
    /// Every algorithm Tessera signs with.
    pub const ALL: [SigningAlgorithm; 4] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::PS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ];

    /// The JWA name, e.g. `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::PS256 => "PS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// The type of key this algorithm needs, for error messages: "an RSA" (key).
    fn key_type(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => "an RSA",
            SigningAlgorithm::ES256 => "an EC P-256",
            SigningAlgorithm::EdDSA => "an Ed25519",
        }
    }

    fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
            SigningAlgorithm::PS256 => KeyAlgorithm::PS256,
            SigningAlgorithm::ES256 => KeyAlgorithm::ES256,
            SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
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

    /// Parses a JWA name exactly as spelled (case-sensitive): `RS256`, `PS256`, `ES256`,
    /// `EdDSA`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == s)
            .ok_or_else(|| {
                crate::ParseError::new(
                    "signing algorithm",
                    format!("{s:?} is not supported; use RS256, PS256, ES256 or EdDSA"),
                )
            })
    }
}

/// The JOSE header of an access token (RFC 9068 §2.1).
#[derive(Clone, Copy, Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// A parsed aws-lc private key, one variant per key type.
enum KeyPairKind {
    /// RS256 (PKCS#1 v1.5 padding) or PS256 (PSS padding).
    Rsa {
        key_pair: RsaKeyPair,
        padding: &'static dyn RsaEncoding,
    },
    /// ES256: P-256, SHA-256, fixed-length `r || s` signatures.
    Ecdsa(EcdsaKeyPair),
    /// EdDSA on Ed25519.
    Ed25519(Ed25519KeyPair),
}

impl KeyPairKind {
    /// The length of a signature, in bytes.
    fn signature_len(&self) -> usize {
        match self {
            KeyPairKind::Rsa { key_pair, .. } => key_pair.public_modulus_len(),
            KeyPairKind::Ecdsa(_) => 2 * P256_COORDINATE_LEN,
            KeyPairKind::Ed25519(_) => 64,
        }
    }
}

/// A private signing key, parsed once and held for its whole life.
///
/// Parsing a private key (an RSA one above all) costs more than the signature itself, so
/// the key is kept as an aws-lc key pair and the encoded JOSE header is computed once.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    key_pair: KeyPairKind,
    pkcs8_der: Vec<u8>,
    jwk: Jwk,
    encoded_header: String,
    /// The header of an ID token: `typ` `JWT` instead of `at+jwt`.
    encoded_id_header: String,
}

impl SigningKey {
    /// Generates a new key for `algorithm`.
    ///
    /// RS256 and PS256: a 2048-bit RSA key with public exponent 65537; this takes a
    /// noticeable fraction of a second. ES256: a P-256 key. EdDSA: an Ed25519 key; both of
    /// these take microseconds. aws-lc generates every key, as it makes every signature.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let der = match algorithm {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => generate_rsa_pkcs8()?,
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| ErrorKind::KeyGeneration("P-256 key generation failed".into()))?
                    .as_ref()
                    .to_vec()
            }
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| ErrorKind::KeyGeneration("Ed25519 key generation failed".into()))?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(algorithm, &der)
    }

    /// Generates a new 2048-bit RSA key with public exponent 65537 for RS256.
    ///
    /// Shorthand for [`SigningKey::generate`] with [`SigningAlgorithm::RS256`].
    pub fn generate_rsa() -> Result<Self, Error> {
        Self::generate(SigningAlgorithm::RS256)
    }

    /// Loads an RSA private key from PKCS#8 DER, for RS256.
    ///
    /// Refuses keys under 2048 bits and exponents other than 65537.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_pkcs8(SigningAlgorithm::RS256, der)
    }

    /// Loads a private key for `algorithm` from PKCS#8 DER (v1, or v2 with the public key).
    ///
    /// RS256 and PS256 need an RSA key of at least 2048 bits with exponent 65537, ES256 a
    /// P-256 key, EdDSA an Ed25519 key. A key of another type is refused with
    /// [`ErrorKind::InvalidKey`], whose message names both types.
    pub fn from_pkcs8(algorithm: SigningAlgorithm, der: &[u8]) -> Result<Self, Error> {
        let (key_pair, key_parameters) = match algorithm {
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => {
                let key_pair =
                    RsaKeyPair::from_pkcs8(der).map_err(|e| rejected(algorithm, der, e))?;
                let parameters = rsa_parameters(&key_pair)?;
                let padding: &'static dyn RsaEncoding = if algorithm == SigningAlgorithm::RS256 {
                    &RSA_PKCS1_SHA256
                } else {
                    &RSA_PSS_SHA256
                };
                (KeyPairKind::Rsa { key_pair, padding }, parameters)
            }
            SigningAlgorithm::ES256 => {
                let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| rejected(algorithm, der, e))?;
                let parameters = p256_parameters(key_pair.public_key().as_ref())?;
                (KeyPairKind::Ecdsa(key_pair), parameters)
            }
            SigningAlgorithm::EdDSA => {
                let key_pair =
                    Ed25519KeyPair::from_pkcs8(der).map_err(|e| rejected(algorithm, der, e))?;
                let parameters = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: URL_SAFE_NO_PAD.encode(key_pair.public_key().as_ref()),
                });
                (KeyPairKind::Ed25519(key_pair), parameters)
            }
        };
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(algorithm.key_algorithm()),
                ..Default::default()
            },
            algorithm: key_parameters,
        };
        // RFC 7638: the kid is the SHA-256 thumbprint of the public key's required members
        // (RSA: e, kty, n; EC: crv, kty, x, y; OKP per RFC 8037 §2: crv, kty, x).
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
        let id_header = Header {
            typ: "JWT",
            ..header
        };
        let encoded_id_header = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&id_header).map_err(ErrorKind::Serialization)?);
        Ok(SigningKey {
            kid,
            algorithm,
            key_pair,
            pkcs8_der: der.to_vec(),
            jwk,
            encoded_header,
            encoded_id_header,
        })
    }

    /// Loads an RSA private key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`),
    /// for RS256.
    ///
    /// The document is decoded as RFC 7468 writes it; the key inside is checked as by
    /// [`SigningKey::from_pkcs8_der`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes())
            .map_err(|e| ErrorKind::InvalidKey(format!("not a PKCS#8 PEM RSA key ({e})")))?;
        if label != PKCS8_PEM_LABEL {
            return Err(ErrorKind::InvalidKey(format!(
                "not a PKCS#8 PEM RSA key (the PEM label is {label:?}, not {PKCS8_PEM_LABEL:?})"
            ))
            .into());
        }
        Self::from_pkcs8_der(&der)
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key, base64url.
    ///
    /// The thumbprint covers the key alone, not the algorithm: one RSA key loaded for RS256
    /// and for PS256 has the same kid.
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
    /// `{"alg":<algorithm>,"typ":"at+jwt","kid":…}`, compact serialisation.
    pub fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        self.sign(&self.encoded_header, claims)
    }

    /// Signs `claims` as an OpenID Connect ID token: header
    /// `{"alg":<algorithm>,"typ":"JWT","kid":…}`. The `typ` differs from an access
    /// token's, so neither can pass for the other where `typ` is checked.
    pub fn sign_id_token(&self, claims: &impl Serialize) -> Result<String, Error> {
        self.sign(&self.encoded_id_header, claims)
    }

    /// The OpenID Connect hash of `token` for `at_hash` (Core §3.1.3.6): the left half of
    /// its digest by the hash of this key's algorithm (SHA-256; SHA-512 for Ed25519),
    /// base64url.
    pub fn token_hash(&self, token: &str) -> String {
        use aws_lc_rs::digest::{SHA256, SHA512, digest};
        let algorithm = match self.algorithm {
            SigningAlgorithm::EdDSA => &SHA512,
            _ => &SHA256,
        };
        let hash = digest(algorithm, token.as_bytes());
        let bytes = hash.as_ref();
        URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
    }

    /// A compact JWS of `claims` under the encoded `header`.
    fn sign(&self, header: &str, claims: &impl Serialize) -> Result<String, Error> {
        let claims = serde_json::to_vec(claims).map_err(ErrorKind::Serialization)?;
        let mut token = String::with_capacity(
            header.len() + claims.len() * 4 / 3 + self.key_pair.signature_len() * 4 / 3 + 8,
        );
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signing_input = token.as_bytes();
        let signature = match &self.key_pair {
            KeyPairKind::Rsa { key_pair, padding } => {
                let mut signature = vec![0; key_pair.public_modulus_len()];
                key_pair
                    .sign(
                        *padding,
                        &SystemRandom::new(),
                        signing_input,
                        &mut signature,
                    )
                    .map_err(|_| ErrorKind::Signing)?;
                signature
            }
            KeyPairKind::Ecdsa(key_pair) => key_pair
                .sign(&SystemRandom::new(), signing_input)
                .map_err(|_| ErrorKind::Signing)?
                .as_ref()
                .to_vec(),
            KeyPairKind::Ed25519(key_pair) => key_pair
                .try_sign(signing_input)
                .map_err(|_| ErrorKind::Signing)?
                .as_ref()
                .to_vec(),
        };
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

/// Generates a 2048-bit RSA key with exponent 65537 (aws-lc's default) as PKCS#8 DER.
fn generate_rsa_pkcs8() -> Result<Vec<u8>, Error> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::KeySize;

    let failed = |_| ErrorKind::KeyGeneration("RSA key generation failed".into());
    let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
    let der: Pkcs8V1Der<'static> = key.as_der().map_err(failed)?;
    Ok(der.as_ref().to_vec())
}

/// Checks the RSA rules (at least 2048 bits, exponent 65537) and builds the JWK members.
fn rsa_parameters(key_pair: &RsaKeyPair) -> Result<AlgorithmParameters, Error> {
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
    Ok(AlgorithmParameters::RSA(RSAKeyParameters {
        key_type: RSAKeyType::RSA,
        n: URL_SAFE_NO_PAD.encode(strip_leading_zeros(&components.n)),
        e: URL_SAFE_NO_PAD.encode(e),
    }))
}

/// The JWK members of a P-256 public key given as an uncompressed point `04 || x || y`.
fn p256_parameters(point: &[u8]) -> Result<AlgorithmParameters, Error> {
    let coordinates = match point.split_first() {
        Some((0x04, coordinates)) if coordinates.len() == 2 * P256_COORDINATE_LEN => coordinates,
        _ => {
            let why = "the P-256 public key is not an uncompressed point".to_owned();
            return Err(ErrorKind::InvalidKey(why).into());
        }
    };
    let (x, y) = coordinates.split_at(P256_COORDINATE_LEN);
    Ok(AlgorithmParameters::EllipticCurve(
        EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        },
    ))
}

/// Explains why aws-lc refused `der` as a key for `algorithm`.
fn rejected(algorithm: SigningAlgorithm, der: &[u8], e: KeyRejected) -> Error {
    let expected = algorithm.key_type();
    let why = match e.description_() {
        "WrongAlgorithm" => format!(
            "{algorithm} needs {expected} key, but this PKCS#8 document holds {} key",
            key_type_of(der).unwrap_or("another type of")
        ),
        "TooSmall" if matches!(algorithm, SigningAlgorithm::RS256 | SigningAlgorithm::PS256) => {
            format!("an RSA key needs at least {MIN_RSA_BITS} bits")
        }
        other => format!("not {expected} PKCS#8 key ({other})"),
    };
    ErrorKind::InvalidKey(why).into()
}

/// The type of the private key in a PKCS#8 document aws-lc can parse, for error messages.
///
/// Only called once a parser has refused the document, so the cost does not matter.
fn key_type_of(der: &[u8]) -> Option<&'static str> {
    /// Whether a parser recognised the key type (it may still have refused the key).
    fn recognised<T>(parsed: Result<T, KeyRejected>) -> bool {
        match parsed {
            Ok(_) => true,
            Err(e) => !matches!(e.description_(), "WrongAlgorithm" | "InvalidEncoding"),
        }
    }

    if recognised(RsaKeyPair::from_pkcs8(der)) {
        Some("an RSA")
    } else if recognised(Ed25519KeyPair::from_pkcs8(der)) {
        Some("an Ed25519")
    } else if recognised(EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der,
    )) {
        Some("an EC P-256")
    } else if recognised(EcdsaKeyPair::from_pkcs8(
        &ECDSA_P384_SHA384_FIXED_SIGNING,
        der,
    )) {
        Some("an EC P-384")
    } else if recognised(EcdsaKeyPair::from_pkcs8(
        &ECDSA_P521_SHA512_FIXED_SIGNING,
        der,
    )) {
        Some("an EC P-521")
    } else {
        None
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
#[path = "tests/keys.rs"]
mod tests;
