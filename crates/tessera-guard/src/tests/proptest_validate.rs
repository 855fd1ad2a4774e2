//! Property tests of `validate`: whatever string arrives as a bearer token, the validator
//! answers with an error (never a panic, never claims) unless it is a token the issuer
//! signed. Keys come from the crate's test issuer on loopback, loaded once: one key per
//! algorithm, so every verification path sees arbitrary signatures.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{Value, json};
use tessera_core::{AccessTokenClaims, Role, SigningAlgorithm, SigningKey};

use super::*;
use crate::testing::TestIssuer;
use crate::{JwksConfig, JwksSource};

const KEY_A: &str = include_str!("../../../../testdata/keys/rsa-2048-a.pem");
const KEY_B: &str = include_str!("../../../../testdata/keys/rsa-2048-b.pem");
const AUDIENCE: &str = "tessera-api";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    /// Serves the JWKS; kept alive for the whole run.
    _issuer: TestIssuer,
    issuer: String,
    validator: Validator,
    /// One key per algorithm, all published.
    kids: Vec<String>,
    /// The keys, by algorithm (RS256, PS256, ES256, EdDSA).
    keys: Vec<SigningKey>,
    /// The claims of the valid tokens.
    claims: AccessTokenClaims,
    /// A valid token from each key.
    tokens: Vec<String>,
    now: i64,
}

/// A second copy of `key`: the issuer owns the one it publishes.
fn copy(key: &SigningKey) -> SigningKey {
    SigningKey::from_pkcs8(key.algorithm(), key.pkcs8_der()).expect("copy of a loaded key")
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .expect("clock after 1970");
        let rs256 = SigningKey::from_pkcs8_pem(KEY_A).expect("fixture key A");
        let b = SigningKey::from_pkcs8_pem(KEY_B).expect("fixture key B");
        let ps256 = SigningKey::from_pkcs8(SigningAlgorithm::PS256, b.pkcs8_der()).expect("PS256");
        let es256 = SigningKey::generate(SigningAlgorithm::ES256).expect("P-256 key");
        let eddsa = SigningKey::generate(SigningAlgorithm::EdDSA).expect("Ed25519 key");
        let keys = [rs256, ps256, es256, eddsa];

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let issuer = {
            let _entered = runtime.enter();
            TestIssuer::start(copy(&keys[0])).expect("test issuer")
        };
        for key in &keys[1..] {
            issuer.rotate_to(copy(key));
        }
        let issuer_url = issuer.issuer().to_owned();
        let jwks = Arc::new(
            JwksCache::new(JwksConfig::new(JwksSource::Url(issuer.jwks_url()))).expect("cache"),
        );
        runtime.block_on(jwks.prefetch());
        let kids: Vec<String> = keys.iter().map(|k| k.kid().to_owned()).collect();
        for kid in &kids {
            assert!(jwks.is_warm(kid), "the JWKS has no key {kid}");
        }
        // From JSON, so that optional members added to the claims need no change here.
        let claims: AccessTokenClaims = serde_json::from_value(serde_json::json!({
            "iss": issuer_url,
            "sub": "user-1",
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "jti": "jti-1",
            "client_id": "app",
            "scope": "basic admin",
            "company": "acme",
            "roles": [Role::Admin],
            "username": "alice",
        }))
        .expect("claims");
        let tokens = keys
            .iter()
            .map(|k| k.sign_access_token(&claims).expect("signed"))
            .collect();
        let keys = Vec::from(keys);
        let validator = Validator::new(ValidationConfig::new(issuer_url.clone(), AUDIENCE), jwks);
        Fixture {
            runtime,
            _issuer: issuer,
            issuer: issuer_url,
            validator,
            kids,
            keys,
            claims,
            tokens,
            now,
        }
    })
}

fn validate(token: &str) -> Result<Claims, GuardError> {
    let f = fixture();
    f.runtime.block_on(f.validator.validate(token, f.now))
}

/// Refused the way a bad token must be: `invalid_token`, never "unavailable" (the keys
/// are cached), never claims.
fn assert_refused(token: &str) -> Result<(), TestCaseError> {
    match validate(token) {
        Err(GuardError::InvalidToken(_)) => Ok(()),
        other => Err(TestCaseError::fail(format!("{other:?} for {token:?}"))),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `Some(value)` (mostly one of `usual`) or the member left out.
fn member(usual: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    let pick = proptest::sample::select(usual);
    proptest::option::weighted(0.9, prop_oneof![9 => pick, 1 => json_value()])
}

fn object(members: Vec<(&'static str, Option<Value>)>, extra: BTreeMap<String, Value>) -> Vec<u8> {
    let mut object: serde_json::Map<String, Value> = extra.into_iter().collect();
    for (name, value) in members {
        if let Some(value) = value {
            object.insert(name.to_owned(), value);
        }
    }
    serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
}

fn extra_members() -> impl Strategy<Value = BTreeMap<String, Value>> {
    proptest::collection::btree_map("[a-z]{1,5}", json_value(), 0..3)
}

/// JOSE headers near the accepted ones: real algorithms and key ids, wrong types, `crit`.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let f = fixture();
    let algs = [
        "RS256", "PS256", "ES256", "EdDSA", "none", "HS256", "rs256", "",
    ]
    .map(Value::from)
    .to_vec();
    let typs = ["at+jwt", "AT+JWT", "application/at+jwt", "JWT", "at+jwt "]
        .map(Value::from)
        .to_vec();
    let mut kids: Vec<Value> = f.kids.iter().map(|k| Value::from(k.as_str())).collect();
    kids.push(Value::from("unknown"));
    let structured = (
        member(algs),
        member(typs),
        member(kids),
        proptest::option::weighted(0.1, json_value()),
        extra_members(),
    )
        .prop_map(|(alg, typ, kid, crit, extra)| {
            object(
                vec![("alg", alg), ("typ", typ), ("kid", kid), ("crit", crit)],
                extra,
            )
        });
    // The header of a real key, with extra members and maybe one member replaced.
    let keys: Vec<(&'static str, String)> = ["RS256", "PS256", "ES256", "EdDSA"]
        .into_iter()
        .zip(f.kids.iter().cloned())
        .collect();
    let near = (
        proptest::sample::select(keys),
        extra_members(),
        proptest::option::weighted(
            0.3,
            (
                proptest::sample::select(vec!["alg", "typ", "kid", "crit"]),
                json_value(),
            ),
        ),
    )
        .prop_map(|((alg, kid), extra, replaced)| {
            let mut members = vec![
                ("alg", Some(Value::from(alg))),
                ("typ", Some(Value::from("at+jwt"))),
                ("kid", Some(Value::from(kid))),
            ];
            if let Some((name, value)) = replaced {
                members.push((name, Some(value)));
            }
            object(members, extra)
        });
    prop_oneof![
        6 => near,
        3 => structured,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        1 => proptest::collection::vec(any::<u8>(), 0..48),
        1 => proptest::sample::select(f.kids.clone()).prop_map(|kid| {
            format!(r#"{{"alg":"RS256","alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#)
                .into_bytes()
        }),
        1 => proptest::sample::select(f.kids.clone()).prop_map(|kid| {
            format!(r#" [ "RS256", "at+jwt", "{kid}" ] "#).into_bytes()
        }),
    ]
}

/// Claims sets near the accepted ones: the real issuer and audience, times around now,
/// values of the wrong type.
fn claims() -> impl Strategy<Value = Vec<u8>> {
    let f = fixture();
    let now = f.now;
    let iss = vec![
        Value::from(f.issuer.as_str()),
        Value::from(format!("{}/", f.issuer)),
    ];
    let aud = vec![
        Value::from(AUDIENCE),
        json!([AUDIENCE, "other"]),
        json!([]),
        Value::from("other"),
    ];
    let times = vec![
        Value::from(now + 900),
        Value::from(now - 900),
        Value::from(i64::MAX),
        Value::from(i64::MIN),
        Value::from(u64::MAX),
        Value::from(now as f64 + 0.5),
        Value::from((now + 900).to_string()),
        Value::Null,
    ];
    let strings = vec![Value::from("x"), Value::from(""), Value::Null];
    let structured = (
        (
            member(iss),
            member(strings.clone()),
            member(aud),
            member(times.clone()),
        ),
        (
            member(times.clone()),
            member(times),
            member(vec![Value::from("basic admin"), Value::from("")]),
            member(vec![json!(["admin"]), json!([]), json!("admin")]),
            member(strings),
        ),
        extra_members(),
    )
        .prop_map(
            |((iss, sub, aud, exp), (nbf, iat, scope, roles, jti), extra)| {
                object(
                    vec![
                        ("iss", iss),
                        ("sub", sub),
                        ("aud", aud),
                        ("exp", exp),
                        ("nbf", nbf),
                        ("iat", iat),
                        ("scope", scope),
                        ("roles", roles),
                        ("jti", jti),
                    ],
                    extra,
                )
            },
        );
    // Valid claims, with extra members and maybe one member replaced.
    let issuer = f.issuer.clone();
    let near = (
        extra_members(),
        proptest::option::weighted(
            0.3,
            (
                proptest::sample::select(vec!["iss", "sub", "aud", "exp", "nbf", "scope", "roles"]),
                json_value(),
            ),
        ),
    )
        .prop_map(move |(extra, replaced)| {
            let mut members = vec![
                ("iss", Some(Value::from(issuer.as_str()))),
                ("sub", Some(Value::from("user-1"))),
                ("aud", Some(Value::from(AUDIENCE))),
                ("exp", Some(Value::from(now + 900))),
                ("scope", Some(Value::from("basic"))),
            ];
            if let Some((name, value)) = replaced {
                members.push((name, Some(value)));
            }
            object(members, extra)
        });
    prop_oneof![
        6 => near,
        3 => structured,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        1 => proptest::collection::vec(any::<u8>(), 0..48),
    ]
}

/// Signatures: random bytes of plausible lengths, random base64url, non-base64 text.
fn signature() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(vec![0usize, 1, 63, 64, 65, 255, 256, 257])
            .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n))
            .prop_map(|bytes| b64(&bytes)),
        1 => "[A-Za-z0-9_-]{0,400}",
        1 => ".{0,20}",
    ]
}

#[test]
fn the_fixture_tokens_are_valid() {
    // Otherwise the edit property below would pass for the wrong reason.
    for token in &fixture().tokens {
        let claims = validate(token).expect("a token the issuer signed");
        assert_eq!(claims.aud, Audience::One(AUDIENCE.into()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_are_refused(token in ".{0,300}") {
        assert_refused(&token)?;
    }

    #[test]
    fn dotted_base64url_noise_is_refused(token in "[A-Za-z0-9_=+/.-]{0,300}") {
        assert_refused(&token)?;
    }

    #[test]
    fn three_segments_of_arbitrary_json_are_refused(
        header in header(),
        claims in claims(),
        signature in signature(),
    ) {
        assert_refused(&format!("{}.{}.{signature}", b64(&header), b64(&claims)))?;
    }

    /// A real token with one edit: the untouched token passes, any change is refused.
    #[test]
    fn any_edit_of_a_signed_token_is_refused(
        which in 0usize..4,
        position in any::<proptest::sample::Index>(),
        edit in 0u8..4,
        c in prop_oneof![
            proptest::char::range('A', 'Z'),
            proptest::char::range('a', 'z'),
            proptest::char::range('0', '9'),
            Just('-'), Just('_'), Just('.'), Just('='), Just('+'), Just(' '), Just('é'),
        ],
    ) {
        let original = &fixture().tokens[which];
        let i = position.index(original.len());
        let mut token = original.clone();
        match edit {
            0 => token.replace_range(i..=i, &c.to_string()),
            1 => token.insert(i, c),
            2 => token.truncate(i),
            _ => {
                token.remove(i);
            }
        }
        if token == *original {
            prop_assert!(validate(&token).is_ok(), "the fixture token is refused");
        } else {
            assert_refused(&token)?;
        }
    }

    /// The JSON step alone: anything that is not one JSON object without repeated members
    /// is refused, whatever its bytes.
    #[test]
    fn parse_object_refuses_all_but_objects(json in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        header(),
        claims(),
    ]) {
        let header = parse_object::<Header>(&json, Rejection::BadHeader);
        let claims = parse_object::<Claims>(&json, Rejection::BadClaims);
        for accepted in [header.is_ok(), claims.is_ok()] {
            if accepted {
                let first = json.iter().find(|b| !b.is_ascii_whitespace());
                prop_assert_eq!(first, Some(&b'{'));
                prop_assert!(serde_json::from_slice::<Value>(&json)
                    .is_ok_and(|v| v.is_object()));
            }
        }
        if let Err(e) = header {
            prop_assert_eq!(e, GuardError::InvalidToken(Rejection::BadHeader));
        }
        if let Err(e) = claims {
            prop_assert_eq!(e, GuardError::InvalidToken(Rejection::BadClaims));
        }
    }

    #[test]
    fn a_repeated_header_member_is_refused(name in prop_oneof![
        Just("alg"), Just("typ"), Just("kid"),
    ]) {
        let json = format!(
            r#"{{"alg":"RS256","typ":"at+jwt","kid":"k","{name}":"RS256"}}"#
        );
        prop_assert!(parse_object::<Header>(json.as_bytes(), Rejection::BadHeader).is_err());
    }

    /// Size is checked before anything else: a token the issuer really signed is refused
    /// once it is longer than the limit, and accepted up to it.
    #[test]
    fn signed_tokens_over_the_size_limit_are_refused(which in 0usize..4, delta in 0usize..24) {
        let f = fixture();
        let key = &f.keys[which];
        let base = f.tokens[which].len();
        // Each byte of `jti` adds 4/3 characters: land within a few bytes of the limit.
        let room = (MAX_TOKEN_BYTES - base) * 3 / 4;
        let mut claims = f.claims.clone();
        claims.jti = "j".repeat(room + delta - 12);
        let token = key.sign_access_token(&claims).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let result = validate(&token);
        if token.len() > MAX_TOKEN_BYTES {
            prop_assert_eq!(result, Err(GuardError::InvalidToken(Rejection::TooLong)));
        } else {
            prop_assert!(result.is_ok(), "{} bytes refused: {:?}", token.len(), result);
        }
    }

    #[test]
    fn decode_segment_never_panics(segment in ".{0,64}") {
        if let Ok(bytes) = decode_segment(&segment) {
            prop_assert_eq!(b64(&bytes), segment);
        }
    }
}
