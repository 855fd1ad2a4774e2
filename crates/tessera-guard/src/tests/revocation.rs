//! Unit tests of `revocation`: the matching rules, merging, expiry, and the feed's wire
//! format.

use super::*;
use crate::validate::Audience;

const NOW: i64 = 1_795_800_000;

fn claims(jti: &str, sid: Option<&str>, sub: &str, client_id: &str, iat: Option<i64>) -> Claims {
    Claims {
        iss: "https://issuer.example".into(),
        sub: sub.into(),
        aud: Audience::One("tessera-api".into()),
        exp: NOW + 900,
        nbf: None,
        iat,
        jti: Some(jti.into()),
        sid: sid.map(str::to_owned),
        client_id: Some(client_id.into()),
        scope: Some("basic".into()),
        company: None,
        roles: None,
        username: None,
    }
}

fn token() -> Claims {
    claims("jti-1", Some("sid-1"), "user-1", "app", Some(NOW - 10))
}

fn list(entries: Vec<RevocationEntry>) -> RevocationList {
    let list = RevocationList::new();
    list.apply(true, entries, NOW);
    list
}

const REVOKED: Result<(), GuardError> = Err(GuardError::InvalidToken(Rejection::Revoked));

#[test]
fn each_kind_of_entry_revokes_only_the_tokens_it_names() {
    let until = NOW + 60;
    let cases = [
        RevocationEntry::Jti {
            jti: "jti-1".into(),
            until,
        },
        RevocationEntry::Sid {
            sid: "sid-1".into(),
            until,
        },
        RevocationEntry::Sub {
            sub: "user-1".into(),
            issued_before: NOW,
            until,
        },
        RevocationEntry::ClientId {
            client_id: "app".into(),
            issued_before: NOW,
            until,
        },
    ];
    for entry in cases {
        let list = list(vec![entry.clone()]);
        assert_eq!(list.check(&token(), NOW), REVOKED, "{entry:?}");
        let other = claims(
            "jti-2",
            Some("sid-2"),
            "user-2",
            "other-app",
            Some(NOW - 10),
        );
        assert_eq!(list.check(&other, NOW), Ok(()), "{entry:?}");
    }
    // A token without `sid` or `client_id` is not matched by such entries.
    let list = list(vec![
        RevocationEntry::Sid {
            sid: "sid-1".into(),
            until,
        },
        RevocationEntry::ClientId {
            client_id: "app".into(),
            issued_before: NOW,
            until,
        },
    ]);
    let mut bare = token();
    bare.sid = None;
    bare.client_id = None;
    assert_eq!(list.check(&bare, NOW), Ok(()));
}

#[test]
fn a_cutoff_revokes_iat_up_to_and_including_it_and_a_token_without_iat() {
    for make in [
        |cutoff| RevocationEntry::Sub {
            sub: "user-1".into(),
            issued_before: cutoff,
            until: NOW + 60,
        },
        |cutoff| RevocationEntry::ClientId {
            client_id: "app".into(),
            issued_before: cutoff,
            until: NOW + 60,
        },
    ] {
        let list = list(vec![make(NOW - 5)]);
        let at = |iat| claims("j", None, "user-1", "app", iat);
        assert_eq!(list.check(&at(Some(NOW - 6)), NOW), REVOKED, "before");
        assert_eq!(list.check(&at(Some(NOW - 5)), NOW), REVOKED, "equal");
        assert_eq!(list.check(&at(Some(NOW - 4)), NOW), Ok(()), "after");
        assert_eq!(list.check(&at(None), NOW), REVOKED, "no iat");
    }
}

#[test]
fn the_same_key_twice_keeps_the_later_cutoff_and_until() {
    let list = list(vec![
        RevocationEntry::Sub {
            sub: "user-1".into(),
            issued_before: NOW - 5,
            until: NOW + 600,
        },
        RevocationEntry::Jti {
            jti: "jti-1".into(),
            until: NOW + 600,
        },
    ]);
    // Later entries with an earlier cutoff or `until` do not shorten anything.
    list.apply(
        false,
        vec![
            RevocationEntry::Sub {
                sub: "user-1".into(),
                issued_before: NOW - 100,
                until: NOW + 10,
            },
            RevocationEntry::Jti {
                jti: "jti-1".into(),
                until: NOW + 10,
            },
        ],
        NOW,
    );
    let at = |jti: &str, iat| claims(jti, None, "user-1", "app", Some(iat));
    assert_eq!(list.check(&at("j", NOW - 5), NOW + 300), REVOKED);
    assert_eq!(list.check(&at("jti-1", NOW + 1), NOW + 300), REVOKED);
    // A later cutoff extends it.
    list.apply(
        false,
        vec![RevocationEntry::Sub {
            sub: "user-1".into(),
            issued_before: NOW + 1,
            until: NOW + 10,
        }],
        NOW,
    );
    assert_eq!(list.check(&at("j", NOW + 1), NOW + 300), REVOKED);
    assert_eq!(list.check(&at("j", NOW + 2), NOW + 300), Ok(()));
    assert_eq!(list.stats().entries, 2);
}

#[test]
fn entries_stop_at_until_and_are_swept_out() {
    let list = list(vec![
        RevocationEntry::Jti {
            jti: "jti-1".into(),
            until: NOW + 10,
        },
        RevocationEntry::Jti {
            jti: "jti-2".into(),
            until: NOW + 100,
        },
        // Already expired: never held.
        RevocationEntry::Sid {
            sid: "sid-1".into(),
            until: NOW,
        },
    ]);
    assert_eq!(list.stats().entries, 2);
    assert_eq!(list.check(&token(), NOW + 9), REVOKED);
    assert_eq!(list.check(&token(), NOW + 10), Ok(()), "until is exclusive");
    // The next answer past `until` sweeps it out.
    list.apply(false, Vec::new(), NOW + 10);
    assert_eq!(list.stats().entries, 1);
    list.apply(false, Vec::new(), NOW + 100);
    assert_eq!(list.stats().entries, 0);
}

#[test]
fn a_reset_replaces_the_list() {
    let list = list(vec![RevocationEntry::Jti {
        jti: "jti-1".into(),
        until: NOW + 60,
    }]);
    assert_eq!(list.check(&token(), NOW), REVOKED);
    list.apply(
        true,
        vec![RevocationEntry::Jti {
            jti: "jti-2".into(),
            until: NOW + 60,
        }],
        NOW,
    );
    assert_eq!(list.check(&token(), NOW), Ok(()));
    let stats = list.stats();
    assert_eq!((stats.entries, stats.resets, stats.updates), (1, 2, 2));
    assert!(!stats.stale, "a list without a feed is never stale");
}

#[test]
fn the_wire_format_ignores_unknown_members_and_entries_naming_no_token() {
    let parsed = parse_answer(
        br#"{"cursor": "c-9", "reset": false, "next": "ignored", "revoked": [
            {"jti": "a", "until": 1795800900, "reason": "logout"},
            {"sid": "s", "until": 1795800900},
            {"sub": "u", "issued_before": 1795800000, "until": 1795800930},
            {"client_id": "c", "issued_before": 1795800000, "until": 1795800930},
            {"kid": "k", "until": 1795800900},
            {}
        ]}"#,
    )
    .unwrap();
    assert_eq!(parsed.cursor, "c-9");
    assert!(!parsed.reset);
    assert_eq!(
        parsed.entries,
        vec![
            RevocationEntry::Jti {
                jti: "a".into(),
                until: 1_795_800_900
            },
            RevocationEntry::Sid {
                sid: "s".into(),
                until: 1_795_800_900
            },
            RevocationEntry::Sub {
                sub: "u".into(),
                issued_before: 1_795_800_000,
                until: 1_795_800_930
            },
            RevocationEntry::ClientId {
                client_id: "c".into(),
                issued_before: 1_795_800_000,
                until: 1_795_800_930
            },
        ]
    );
}

#[test]
fn a_malformed_answer_is_refused_whole() {
    for body in [
        &br#"not json"#[..],
        br#"[]"#,
        br#"{"reset": true, "revoked": []}"#,
        br#"{"cursor": "c", "reset": true}"#,
        br#"{"cursor": "c", "reset": "yes", "revoked": []}"#,
        br#"{"cursor": "c", "reset": true, "revoked": [{"jti": "a"}]}"#,
        br#"{"cursor": "c", "reset": true, "revoked": [{"jti": "a", "until": "soon"}]}"#,
        br#"{"cursor": "c", "reset": true, "revoked": [{"sub": "u", "until": 1}]}"#,
        br#"{"cursor": "c", "reset": true, "revoked": [{"jti": "a", "jti": "b", "until": 1}]}"#,
    ] {
        assert!(
            parse_answer(body).is_err(),
            "accepted {}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_configuration_is_checked() {
    let url = |s: &str| Url::parse(s).unwrap();
    let config = RevocationConfig::new(url("https://auth.example/oauth/revocations"), "rs", "s");
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.on_stale, StalePolicy::FailClosed);
    let refused = |change: fn(&mut RevocationConfig)| {
        let mut config = config.clone();
        change(&mut config);
        config.validate().unwrap_err().to_string()
    };
    assert!(
        refused(|c| c.feed_url = Url::parse("http://auth.example/r").unwrap()).contains("https")
    );
    assert!(
        refused(|c| c.feed_url = Url::parse("https://rs:s@auth.example/r").unwrap())
            .contains("credentials")
    );
    assert!(refused(|c| c.client_secret.clear()).contains("secret"));
    assert!(refused(|c| c.wait = Duration::from_millis(1500)).contains("whole seconds"));
    assert!(refused(|c| c.wait = Duration::ZERO).contains("at least 1"));
    assert!(refused(|c| c.wait = Duration::from_secs(31)).contains("at most 30"));
    // An idle feed answers once per wait: the bound must leave room for that and the
    // request timeout (25 s + 10 s by default).
    assert!(refused(|c| c.max_stale = Duration::from_secs(35)).contains("longer than"));
    let mut short = config.clone();
    short.max_stale = Duration::from_secs(36);
    assert_eq!(short.validate(), Ok(()));
    let mut loopback = config.clone();
    loopback.feed_url = url("http://127.0.0.1:8080/oauth/revocations");
    assert_eq!(loopback.validate(), Ok(()));
    // The secret never shows in `Debug`.
    let mut secret = config.clone();
    secret.client_secret = "hunter2-secret".into();
    assert!(!format!("{secret:?}").contains("hunter2"));
}

#[test]
fn the_stale_policy_reads_and_writes_closed_and_open() {
    for policy in [StalePolicy::FailClosed, StalePolicy::FailOpen] {
        assert_eq!(policy.to_string().parse::<StalePolicy>(), Ok(policy));
    }
    assert_eq!("closed".parse(), Ok(StalePolicy::FailClosed));
    assert_eq!("open".parse(), Ok(StalePolicy::FailOpen));
    assert!("Open".parse::<StalePolicy>().is_err());
    assert_eq!(StalePolicy::default(), StalePolicy::FailClosed);
}

#[test]
fn client_credentials_are_form_urlencoded_before_base64() {
    let header = basic_authorization("my client", "p@ss:word&+").unwrap();
    assert!(header.is_sensitive());
    let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    assert_eq!(decoded, "my+client:p%40ss%3Aword%26%2B");
}
