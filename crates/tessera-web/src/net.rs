//! Where a request comes from: the peer's address, or the client's address as reported
//! by a proxy that is trusted to report it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use tessera_core::ParseError;

/// One trusted proxy: an address, or a network in CIDR notation (`10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyNetwork {
    network: IpAddr,
    prefix: u8,
}

impl ProxyNetwork {
    /// Whether `addr` is in this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyNetwork {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ParseError::new(
                "trusted proxy",
                format!("{s:?} is not an IP address or a network such as 10.0.0.0/8"),
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(ProxyNetwork { network, prefix })
    }
}

impl fmt::Display for ProxyNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty by default: the address of a
/// request is then its TCP peer's, and a forwarded header, which anyone can send,
/// changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<ProxyNetwork>,
}

impl TrustedProxies {
    /// Trusts these networks.
    pub fn new(networks: Vec<ProxyNetwork>) -> Self {
        TrustedProxies { networks }
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `addr` is a trusted proxy.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(addr))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case
    /// the `X-Forwarded-For` values (every header line, in order) are read from the right,
    /// skipping trusted proxies, and the first other address is the client. An entry that
    /// is not an address stops the walk there: what lies left of it was written by
    /// someone untrusted. With no usable entry, the peer's address stands.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(addr) = parse_forwarded(entry) else {
                break;
            };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:5678`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as the IPv4 address they are, so that a
/// dual-stack listener does not give one client two identities.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client address is rate-limited by: the address itself for IPv4, its /64 for
/// IPv6 (one subscriber usually holds all of it, and would otherwise get a fresh allowance
/// from every one of its 2^64 addresses).
pub fn limit_key(addr: IpAddr) -> IpAddr {
    match canonical(addr) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !u128::from(u64::MAX),
        )),
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "tests/net.rs"]
mod tests;
