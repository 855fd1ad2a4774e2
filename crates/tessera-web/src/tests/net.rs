use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn proxies(list: &[&str]) -> TrustedProxies {
    TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
}

#[test]
fn without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() {
    let none = TrustedProxies::default();
    assert_eq!(
        none.client_address(ip("203.0.113.9"), ["198.51.100.1"]),
        ip("203.0.113.9")
    );
    // A proxy trusted for another network does not make this peer trusted.
    assert_eq!(
        proxies(&["10.0.0.0/8"]).client_address(ip("203.0.113.9"), ["1.1.1.1, 2.2.2.2"]),
        ip("203.0.113.9")
    );
}

#[test]
fn a_trusted_proxy_names_the_client_and_a_spoofed_prefix_is_ignored() {
    let trusted = proxies(&["10.0.0.0/8", "192.168.1.1"]);
    // The client claimed to be 1.1.1.1; the edge proxy appended what it saw.
    assert_eq!(
        trusted.client_address(ip("10.1.2.3"), ["1.1.1.1, 203.0.113.7, 192.168.1.1"]),
        ip("203.0.113.7")
    );
    // Several header lines are one list, in order.
    assert_eq!(
        trusted.client_address(ip("10.1.2.3"), ["1.1.1.1", "203.0.113.8"]),
        ip("203.0.113.8")
    );
    // Ports and brackets are accepted.
    assert_eq!(
        trusted.client_address(ip("10.1.2.3"), ["[2001:db8::1]:443"]),
        ip("2001:db8::1")
    );
    assert_eq!(
        trusted.client_address(ip("10.1.2.3"), ["203.0.113.9:5555"]),
        ip("203.0.113.9")
    );
}

#[test]
fn garbage_stops_the_walk_and_no_header_leaves_the_peer() {
    let trusted = proxies(&["10.0.0.0/8"]);
    assert_eq!(
        trusted.client_address(ip("10.0.0.1"), ["1.1.1.1, unknown"]),
        ip("10.0.0.1")
    );
    assert_eq!(
        trusted.client_address(ip("10.0.0.1"), ["unknown, 203.0.113.1"]),
        ip("203.0.113.1")
    );
    assert_eq!(
        trusted.client_address(ip("10.0.0.1"), std::iter::empty()),
        ip("10.0.0.1")
    );
    // Only trusted proxies in the chain: the leftmost of them.
    assert_eq!(
        trusted.client_address(ip("10.0.0.1"), ["10.0.0.7, 10.0.0.8"]),
        ip("10.0.0.7")
    );
}

#[test]
fn mapped_ipv4_addresses_are_ipv4() {
    let trusted = proxies(&["127.0.0.1"]);
    assert!(trusted.trusts(ip("::ffff:127.0.0.1")));
    assert_eq!(canonical(ip("::ffff:203.0.113.5")), ip("203.0.113.5"));
}

#[test]
fn networks_parse_and_match_by_prefix() {
    let net: ProxyNetwork = "192.168.0.0/16".parse().unwrap();
    assert!(net.contains(ip("192.168.200.1")));
    assert!(!net.contains(ip("192.169.0.1")));
    assert!(!net.contains(ip("::1")));
    let all: ProxyNetwork = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("8.8.8.8")));
    let v6: ProxyNetwork = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains(ip("2001:db8:ffff::1")));
    assert!(!v6.contains(ip("2001:db9::1")));
    assert_eq!(v6.to_string(), "2001:db8::/32");
    for bad in [
        "",
        "10.0.0.0/33",
        "example.com",
        "10.0.0.0/",
        "::1/129",
        "1.2.3.4/x",
    ] {
        let err = bad.parse::<ProxyNetwork>().unwrap_err().to_string();
        assert!(err.contains("is not an IP address"), "{bad}: {err}");
    }
}

#[test]
fn ipv6_addresses_are_limited_by_their_64_and_ipv4_ones_by_the_address() {
    assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
    assert_eq!(limit_key(ip("203.0.113.7")), ip("203.0.113.7"));
    assert_eq!(limit_key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
}
