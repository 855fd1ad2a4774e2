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
        "OpenID",
        "offline_access",
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

/// Property tests: the `scope` parameter of every request goes through `FromStr`.
#[test]
fn the_admin_scope_needs_the_admin_role_and_basic_needs_none() {
    let both: ScopeSet = "basic admin".parse().unwrap();
    assert_eq!(both.permitted_for(&[Role::Admin]), both);
    assert_eq!(
        both.permitted_for(&[Role::User, Role::Admin, Role::User]),
        both
    );
    assert_eq!(
        both.permitted_for(&[Role::User]),
        ScopeSet::only(Scope::Basic)
    );
    assert_eq!(both.permitted_for(&[]), ScopeSet::only(Scope::Basic));
    assert!(both.is_permitted_for(&[Role::Admin]));
    assert!(!both.is_permitted_for(&[Role::User]));
    assert!(ScopeSet::only(Scope::Basic).is_permitted_for(&[]));
    assert!(!ScopeSet::only(Scope::Admin).is_permitted_for(&[]));
    assert_eq!(Scope::Admin.required_role(), Some(Role::Admin));
    assert_eq!(Scope::Basic.required_role(), None);
    // The OpenID Connect scopes need no role.
    let oidc: ScopeSet = "openid profile email".parse().unwrap();
    assert_eq!(oidc.permitted_for(&[]), oidc);
    assert_eq!(oidc.to_string(), "openid profile email");
}

mod props {
    use proptest::prelude::*;

    use super::*;

    /// Lists of real, look-alike and empty tokens joined by assorted separators.
    fn scope_like() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            6 => Just("basic"),
            6 => Just("admin"),
            1 => Just("Admin"),
            1 => Just("аdmin"),
            2 => Just("openid"),
            1 => Just("profile"),
            1 => Just("email"),
            1 => Just("OpenID"),
            1 => Just("offline_access"),
            1 => Just(""),
            1 => Just("basic\u{200b}"),
        ];
        let separator =
            prop_oneof![8 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just(",")];
        proptest::collection::vec((token, separator), 0..24).prop_map(|parts| {
            let mut list = String::new();
            for (i, (token, separator)) in parts.into_iter().enumerate() {
                if i > 0 {
                    list.push_str(separator);
                }
                list.push_str(token);
            }
            list
        })
    }

    /// What any accepted list must be: non-empty, within the bound, known tokens
    /// separated by single spaces, and printing canonically to a list that parses to the
    /// same set.
    fn check_accepted(list: &str, set: ScopeSet) -> Result<(), TestCaseError> {
        prop_assert!(!list.is_empty());
        prop_assert!(list.len() <= MAX_SCOPE_LIST_BYTES);
        for token in list.split(' ') {
            let scope = token.parse::<Scope>();
            prop_assert!(scope.is_ok(), "unknown token {token:?} in {list:?}");
            if let Ok(scope) = scope {
                prop_assert!(set.contains(scope));
            }
        }
        let printed = set.to_string();
        prop_assert_eq!(printed.parse::<ScopeSet>().ok(), Some(set));
        let canonical: Vec<&str> = set.iter().map(Scope::as_str).collect();
        prop_assert_eq!(printed, canonical.join(" "));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_never_panic(list in ".{0,100}") {
            if let Ok(set) = list.parse::<ScopeSet>() {
                check_accepted(&list, set)?;
            }
        }

        #[test]
        fn scope_lists_parse_exactly_when_well_formed(list in scope_like()) {
            let tokens: Vec<&str> = list.split(' ').collect();
            let well_formed = !list.is_empty()
                && list.len() <= MAX_SCOPE_LIST_BYTES
                && tokens
                    .iter()
                    .all(|t| matches!(*t, "basic" | "admin" | "openid" | "profile" | "email"));
            match list.parse::<ScopeSet>() {
                Ok(set) => {
                    prop_assert!(well_formed, "{list:?} accepted");
                    check_accepted(&list, set)?;
                    let expected: ScopeSet =
                        tokens.iter().filter_map(|t| t.parse::<Scope>().ok()).collect();
                    prop_assert_eq!(set, expected);
                }
                Err(_) => prop_assert!(!well_formed, "{list:?} refused"),
            }
        }

        #[test]
        fn lists_over_the_bound_are_refused(repeats in 1usize..64, extra in "( (basic|admin)){0,8}") {
            // Valid tokens only: the length alone must refuse it.
            let mut list = "basic".to_owned();
            while list.len() <= MAX_SCOPE_LIST_BYTES {
                for _ in 0..repeats {
                    list.push_str(" admin");
                }
            }
            list.push_str(&extra);
            prop_assert!(list.parse::<ScopeSet>().is_err(), "{} bytes accepted", list.len());
        }

        #[test]
        fn every_set_round_trips_through_display(bits in 0u8..32) {
            let set: ScopeSet = Scope::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, s)| s)
                .collect();
            let printed = set.to_string();
            if set.is_empty() {
                prop_assert!(printed.parse::<ScopeSet>().is_err());
            } else {
                prop_assert_eq!(printed.parse::<ScopeSet>().ok(), Some(set));
            }
        }
    }
}
