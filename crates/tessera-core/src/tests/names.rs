//! Unit tests of `names`.

use super::*;

#[test]
fn usernames_are_lower_case_ascii() {
    assert!("alice".parse::<Username>().is_ok());
    assert!("a.b-c_9".parse::<Username>().is_ok());
    for bad in ["", "Alice", "al ice", "-alice", "аlice", &"a".repeat(65)] {
        assert!(bad.parse::<Username>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn company_slugs_are_url_safe() {
    assert!("acme".parse::<CompanySlug>().is_ok());
    assert!("acme-2".parse::<CompanySlug>().is_ok());
    for bad in ["", "Acme", "acme-", "-acme", "ac--me", "ac me", "acme/x"] {
        assert!(bad.parse::<CompanySlug>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn wire_enums_round_trip_and_reject_other_spellings() {
    for g in [
        "password",
        "client_credentials",
        "authorization_code",
        "refresh_token",
    ] {
        assert_eq!(g.parse::<GrantType>().unwrap().as_str(), g);
    }
    assert!("Password".parse::<GrantType>().is_err());
    assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
    assert!("opaque".parse::<TokenFormat>().is_ok());
    let err = "root".parse::<Role>().unwrap_err().to_string();
    assert_eq!(err, "invalid role: \"root\" is not one of admin, user");
}
