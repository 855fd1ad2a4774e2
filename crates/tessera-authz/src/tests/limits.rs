use std::net::IpAddr;

use tessera_web::metrics::Registry;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The limit that refused.
fn refusing(refused: Refused) -> Limit {
    match refused {
        Refused::Limit(limit, _) => limit,
        Refused::Store(err) => panic!("a store error: {err}"),
    }
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64_and_ipv4_by_the_address() {
    // Thirty wrong passwords from one /64, each from another address, use up its allowance.
    let limits = RateLimits::new(true, &Registry::new());
    for i in 0..30 {
        let from = ip(&format!("2001:db8:1:2::{:x}", i + 1));
        let attempt = limits
            .begin_password(&format!("user{i}"), from, 0)
            .await
            .unwrap_or_else(|_| panic!("attempt {i} refused"));
        assert_eq!(attempt.exhausted().is_empty(), i < 29);
    }
    let refused = limits
        .begin_password("someone", ip("2001:db8:1:2:ffff::9"), 0)
        .await
        .unwrap_err();
    assert_eq!(refusing(refused), Limit::PasswordAddress);
    // The neighbouring /64 is another subscriber.
    limits
        .begin_password("someone", ip("2001:db8:1:3::1"), 0)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refunded_attempt_costs_nothing_and_a_refused_one_holds_no_slot() {
    let limits = RateLimits::new(true, &Registry::new());
    let from = ip("198.51.100.1");
    for _ in 0..100 {
        let attempt = limits.begin_password("alice", from, 0).await.unwrap();
        limits.refund(&attempt, 0).await;
    }
    for _ in 0..10 {
        limits.begin_password("alice", from, 0).await.unwrap();
    }
    let refused = limits.begin_password("alice", from, 0).await.unwrap_err();
    assert_eq!(refusing(refused), Limit::PasswordAccount);
    // The refusal by the account's limit took nothing from the address: 20 more guesses at
    // other accounts pass.
    for i in 0..20 {
        limits
            .begin_password(&format!("other{i}"), from, 0)
            .await
            .unwrap();
    }
    let refused = limits.begin_password("another", from, 0).await.unwrap_err();
    assert_eq!(refusing(refused), Limit::PasswordAddress);
}

#[tokio::test]
async fn huge_client_ids_are_cut_to_a_bounded_key_and_switched_off_limits_refuse_nothing() {
    let limits = RateLimits::new(true, &Registry::new());
    let from = ip("198.51.100.2");
    let long = "c".repeat(100_000);
    for _ in 0..10 {
        limits.begin_client_secret(&long, from, 0).unwrap();
    }
    // Another id with the same first 128 characters is the same key.
    let same_prefix = format!("{}x", "c".repeat(200));
    assert_eq!(
        limits
            .begin_client_secret(&same_prefix, from, 0)
            .unwrap_err()
            .0,
        Limit::ClientFailures
    );

    let off = RateLimits::new(false, &Registry::new());
    for _ in 0..1_000 {
        off.begin_password("alice", from, 0).await.unwrap();
        off.begin_client_secret("app", from, 0).unwrap();
        off.begin_public_grant("web", from, 0).unwrap();
        off.request_from(from, Endpoint::Other, 0).unwrap();
    }
}

#[test]
fn introspection_has_an_allowance_of_its_own_ten_times_the_token_endpoints() {
    let limits = RateLimits::new(true, &Registry::new());
    let from = ip("198.51.100.3");
    for _ in 0..2_000 {
        limits.request_from(from, Endpoint::Other, 0).unwrap();
    }
    let (limit, _) = limits.request_from(from, Endpoint::Other, 0).unwrap_err();
    assert_eq!(limit, Limit::AddressRequests);
    for _ in 0..20_000 {
        limits
            .request_from(from, Endpoint::Introspection, 0)
            .unwrap();
    }
    let (limit, _) = limits
        .request_from(from, Endpoint::Introspection, 0)
        .unwrap_err();
    assert_eq!(limit, Limit::AddressIntrospections);
    assert_eq!(Endpoint::of("/oauth/introspect"), Endpoint::Introspection);
    assert_eq!(Endpoint::of("/oauth/token"), Endpoint::Other);
    assert_eq!(Endpoint::of("/oauth/revoke"), Endpoint::Other);
}
