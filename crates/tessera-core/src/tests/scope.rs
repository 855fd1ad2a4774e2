//! Unit tests of `scope`.

use super::*;

#[test]
fn known_scopes_parse_in_any_order_and_print_canonically() {
    let set: ScopeSet = "admin basic".parse().unwrap();
    assert_eq!(set.to_string(), "basic admin");
    assert_eq!(
        "basic basic".parse::<ScopeSet>().unwrap(),
        ScopeSet::only(Scope::Basic)
    );
}

#[test]
fn look_alikes_and_stray_whitespace_are_unknown_not_normalised() {
    for bad in [
        "Admin",
        "ADMIN",
        "admin\t",
        "\tadmin",
        "аdmin",
        "admin ",
        " admin",
        "basic  admin",
        "openid",
        "",
        "basic,admin",
        "admin\u{200b}",
    ] {
        assert!(bad.parse::<ScopeSet>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn subset_and_difference() {
    let basic = ScopeSet::only(Scope::Basic);
    let both: ScopeSet = "basic admin".parse().unwrap();
    assert!(basic.is_subset(both));
    assert!(!both.is_subset(basic));
    assert_eq!(both.difference(basic), ScopeSet::only(Scope::Admin));
}
