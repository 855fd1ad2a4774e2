//! Unit tests of `password`.

use super::*;

#[test]
fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
    let phc = hash("correct horse").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(verify("correct horse", &phc));
    assert!(!verify("correct hors", &phc));
    assert!(!verify("correct horse", "not a phc string"));
}

#[test]
fn policy_refuses_short_empty_long_and_username_passwords() {
    assert!(check_policy("long enough", "alice").is_ok());
    for bad in ["", "short", "        ", "alice123", &"x".repeat(129)] {
        let user = if bad == "alice123" {
            "alice123"
        } else {
            "alice"
        };
        assert!(check_policy(bad, user).is_err(), "{bad:?} accepted");
    }
    assert_eq!(
        check_policy("", "alice").unwrap_err().to_string(),
        "invalid password: must be at least 8 characters"
    );
}

#[test]
fn the_dummy_hash_has_the_parameters_of_new_hashes() {
    let fresh = hash("anything at all").unwrap();
    let params = |phc: &str| phc.rsplitn(3, '$').nth(2).unwrap().to_owned();
    assert_eq!(params(DUMMY_HASH), params(&fresh));
    assert!(PasswordHash::new(DUMMY_HASH).is_ok());
}

#[test]
fn over_long_passwords_never_match() {
    let phc = hash("correct horse").unwrap();
    assert!(!verify(&"x".repeat(MAX_BYTES + 1), &phc));
}

#[test]
fn verifying_in_reused_memory_answers_exactly_as_verify() {
    let hash = hash("correct horse battery").unwrap();
    let mut memory = Memory::new();
    for (candidate, phc) in [
        ("correct horse battery", hash.as_str()),
        ("correct horse batterY", hash.as_str()),
        ("", hash.as_str()),
        ("correct horse battery", DUMMY_HASH),
        ("correct horse battery", "not a hash"),
        (
            "correct horse battery",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
        ),
        // Another variant (argon2i) with other parameters: the same answer as `verify`.
        (
            "password",
            "$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$Y1ZnSCVq5p6rJaBWvUPwfA",
        ),
    ] {
        assert_eq!(
            verify_in(candidate, phc, &mut memory),
            verify(candidate, phc),
            "{candidate:?} against {phc}"
        );
    }
    assert!(verify_in("correct horse battery", &hash, &mut memory));
    assert!(!verify_in("wrong", &hash, &mut memory));
    // One buffer, sized once for these parameters (19 MiB of 1 KiB blocks).
    assert_eq!(memory.len(), 19 * 1024);
    assert!(!verify_in(&"x".repeat(MAX_BYTES + 1), &hash, &mut memory));
}
