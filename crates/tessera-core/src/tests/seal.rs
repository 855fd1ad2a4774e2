//! Unit tests of `seal`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

use super::*;

const KID: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
/// 32 bytes, 0x00..=0x1f.
const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn key_bytes() -> Vec<u8> {
    (0u8..32).collect()
}

fn master() -> MasterKey {
    MasterKey::parse(HEX).unwrap()
}

/// A plaintext PKCS#8 Ed25519 key (RFC 8410 §10.3).
const ED25519_PKCS8: [u8; 48] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1, 0xf7, 0x69, 0xf8, 0xad,
    0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97, 0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
];

fn assert_does_not_open(result: Result<Vec<u8>, Error>, kid: &str) {
    let err = result.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidKey(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(kid), "{message}");
    assert!(
        message.ends_with("wrong master key or damaged data"),
        "{message}"
    );
}

#[test]
fn sealed_keys_open_with_the_same_master_key_and_kid() {
    let master = master();
    let sealed = master.seal(KID, &ED25519_PKCS8).unwrap();
    assert!(sealed.starts_with(b"TSK1"));
    assert_eq!(sealed.len(), 4 + 12 + ED25519_PKCS8.len() + 16);
    assert!(!sealed.windows(16).any(|w| w == &ED25519_PKCS8[16..32]));
    assert_eq!(master.open(KID, &sealed).unwrap(), ED25519_PKCS8);
    // Another handle on the same key bytes opens it too.
    assert_eq!(
        MasterKey::parse(HEX).unwrap().open(KID, &sealed).unwrap(),
        ED25519_PKCS8
    );
    assert_eq!(master.clone().open(KID, &sealed).unwrap(), ED25519_PKCS8);
    // Empty plaintext round-trips as well.
    let empty = master.seal(KID, b"").unwrap();
    assert_eq!(master.open(KID, &empty).unwrap(), b"");
}

#[test]
fn two_seals_of_the_same_key_differ() {
    let master = master();
    let a = master.seal(KID, &ED25519_PKCS8).unwrap();
    let b = master.seal(KID, &ED25519_PKCS8).unwrap();
    assert_ne!(a[4..16], b[4..16], "the nonce must be fresh");
    assert_ne!(a, b);
}

#[test]
fn wrong_master_key_wrong_kid_and_damage_are_refused() {
    let master = master();
    let sealed = master.seal(KID, &ED25519_PKCS8).unwrap();

    let (other, _) = MasterKey::generate().unwrap();
    assert_does_not_open(other.open(KID, &sealed), KID);
    assert_does_not_open(master.open("another-kid", &sealed), "another-kid");

    for i in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[i] ^= 0x01;
        assert_does_not_open(master.open(KID, &flipped), KID);
    }
    for len in 0..sealed.len() {
        assert_does_not_open(master.open(KID, &sealed[..len]), KID);
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_does_not_open(master.open(KID, &longer), KID);
    assert_does_not_open(master.open(KID, &ED25519_PKCS8), KID);
}

#[test]
fn the_open_error_says_nothing_else() {
    let sealed = master().seal(KID, &ED25519_PKCS8).unwrap();
    let err = master().open("kid-2", &sealed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid signing key: the sealed private key of kid \"kid-2\" does not open: \
         wrong master key or damaged data"
    );
}

#[test]
fn parse_accepts_hex_and_both_base64_alphabets() {
    let bytes = key_bytes();
    let sealed = master().seal(KID, b"secret").unwrap();
    let upper = HEX.to_uppercase();
    let padded_std = STANDARD.encode(&bytes);
    let padded_url = URL_SAFE.encode(&bytes);
    let unpadded_url = URL_SAFE_NO_PAD.encode(&bytes);
    let unpadded_std = padded_std.trim_end_matches('=').to_owned();
    let surrounded = format!("  {HEX}\n");
    // 0xfb 0xff… exercises the characters where the alphabets differ (+/ versus -_).
    let distinct: Vec<u8> = std::iter::repeat_n([0xfb, 0xff], 16).flatten().collect();
    let distinct_std = STANDARD.encode(&distinct);
    let distinct_url = URL_SAFE_NO_PAD.encode(&distinct);
    assert!(distinct_std.contains('+') && distinct_std.contains('/'));
    assert!(distinct_url.contains('-') && distinct_url.contains('_'));

    for value in [
        HEX,
        &upper,
        &padded_std,
        &unpadded_std,
        &padded_url,
        &unpadded_url,
        &surrounded,
    ] {
        let parsed = MasterKey::parse(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(parsed.open(KID, &sealed).unwrap(), b"secret", "{value:?}");
    }
    let from_std = MasterKey::parse(&distinct_std).unwrap();
    let from_url = MasterKey::parse(&distinct_url).unwrap();
    let sealed = from_std.seal(KID, b"secret").unwrap();
    assert_eq!(from_url.open(KID, &sealed).unwrap(), b"secret");
}

#[test]
fn parse_refuses_wrong_lengths_and_garbage_without_echoing_them() {
    let bytes = key_bytes();
    let values = [
        STANDARD.encode(&bytes[..31]),
        STANDARD.encode([bytes.as_slice(), &[0x20]].concat()),
        HEX[..62].to_owned(),
        format!("{HEX}20"),
        format!("{}zz", &HEX[..62]),
        "correct horse battery staple, definitely secret".to_owned(),
        "!!!!".to_owned(),
        format!("{}+-", &STANDARD.encode(&bytes)[..41]),
    ];
    for value in &values {
        let err = MasterKey::parse(value).err().unwrap();
        let message = err.to_string();
        assert_eq!(
            message,
            "invalid master key: TESSERA_MASTER_KEY must be 32 bytes: 64 hex digits or base64",
            "{value:?}"
        );
        assert!(!message.contains(value.as_str()));
        assert!(!format!("{err:?}").contains(value.as_str()));
    }
    for empty in ["", "   \n\t"] {
        let err = MasterKey::parse(empty).err().unwrap();
        assert_eq!(
            err.to_string(),
            "invalid master key: TESSERA_MASTER_KEY is empty; \
             TESSERA_MASTER_KEY must be 32 bytes: 64 hex digits or base64"
        );
    }
}

#[test]
fn generated_keys_are_random_and_parse_back() {
    let (a, encoded_a) = MasterKey::generate().unwrap();
    let (_, encoded_b) = MasterKey::generate().unwrap();
    assert_ne!(encoded_a, encoded_b);
    assert_eq!(STANDARD.decode(&encoded_a).unwrap().len(), 32);
    let sealed = a.seal(KID, b"secret").unwrap();
    assert_eq!(
        MasterKey::parse(&encoded_a)
            .unwrap()
            .open(KID, &sealed)
            .unwrap(),
        b"secret"
    );
}

#[test]
fn debug_shows_nothing_of_the_key() {
    let (key, encoded) = MasterKey::generate().unwrap();
    let debug = format!("{key:?} {:?}", master());
    assert_eq!(debug, "MasterKey([redacted]) MasterKey([redacted])");
    assert!(!debug.contains(&encoded));
}

#[test]
fn is_sealed_tells_sealed_from_plaintext_pkcs8() {
    let sealed = master().seal(KID, &ED25519_PKCS8).unwrap();
    assert!(is_sealed(&sealed));
    assert!(!is_sealed(&ED25519_PKCS8));
    assert!(!is_sealed(b""));
    assert!(!is_sealed(b"TSK"));
    // Real generated keys of every type start with a DER SEQUENCE, never the magic.
    for algorithm in [
        crate::SigningAlgorithm::ES256,
        crate::SigningAlgorithm::EdDSA,
    ] {
        let key = crate::SigningKey::generate(algorithm).unwrap();
        assert_eq!(key.pkcs8_der()[0], 0x30);
        assert!(!is_sealed(key.pkcs8_der()));
    }
}

#[test]
fn master_keys_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<MasterKey>();
}
