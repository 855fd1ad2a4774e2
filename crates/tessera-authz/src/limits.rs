//! Rate limits and brute-force protection.
//!
//! Guessing is slowed where a guess is checked: passwords per account and per address,
//! client secrets per client and address, and per address across clients. A limit that
//! is reached answers 429 with `Retry-After` before any work is done; only failures
//! count, so a legitimate user who signs in is never charged, and every limit lifts by
//! itself: there is no permanent lockout. Request floods are bounded per address and per
//! client on the token, introspection and revocation endpoints.
//!
//! The per-account password limit is far lower than the per-address one, so an address
//! that keeps failing one account's password still signs in to another account normally
//! (a shared office address stays usable). Limits live in each process's memory: several
//! servers each apply them, which multiplies what an attacker spread over all of them gets.

use std::net::IpAddr;
use std::time::Duration;

use tessera_store::{AuditKind, NewAuditEvent};
use tessera_web::metrics::{Counter, Registry};
use tessera_web::ratelimit::{Limited, Quota, RateLimiter};

/// Wrong passwords per account: 10, then one more every 30 s.
pub const PASSWORD_PER_ACCOUNT: Quota = Quota::new(10, Duration::from_secs(30));
/// Wrong passwords per address, whatever the account: 30, then one every 10 s.
pub const PASSWORD_PER_ADDRESS: Quota = Quota::new(30, Duration::from_secs(10));
/// Failed client authentications per client and address: 10, then one every 6 s.
pub const CLIENT_FAILURES_PER_CLIENT: Quota = Quota::new(10, Duration::from_secs(6));
/// Failed client authentications per address, whatever the client: 30, then one every 2 s.
pub const CLIENT_FAILURES_PER_ADDRESS: Quota = Quota::new(30, Duration::from_secs(2));
/// Requests per authenticated client at the token, introspection and revocation
/// endpoints: 2,000 at once, then 1,000 a second.
pub const REQUESTS_PER_CLIENT: Quota = Quota::new(2_000, Duration::from_millis(1));
/// Requests per address at those endpoints: 2,000 at once, then 1,000 a second.
pub const REQUESTS_PER_ADDRESS: Quota = Quota::new(2_000, Duration::from_millis(1));

/// Which limit refused a request: the `limit` label of `tessera_rate_limited_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`PASSWORD_PER_ACCOUNT`].
    PasswordAccount,
    /// [`PASSWORD_PER_ADDRESS`].
    PasswordAddress,
    /// [`CLIENT_FAILURES_PER_CLIENT`].
    ClientFailures,
    /// [`CLIENT_FAILURES_PER_ADDRESS`].
    ClientAddressFailures,
    /// [`REQUESTS_PER_CLIENT`].
    ClientRequests,
    /// [`REQUESTS_PER_ADDRESS`].
    AddressRequests,
}

impl Limit {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PasswordAccount => "password_account",
            Limit::PasswordAddress => "password_address",
            Limit::ClientFailures => "client_failures",
            Limit::ClientAddressFailures => "client_address_failures",
            Limit::ClientRequests => "client_requests",
            Limit::AddressRequests => "address_requests",
        }
    }
}

/// Every limit of one server. With `enabled` false (benchmarks) nothing is counted or
/// refused.
#[derive(Debug)]
pub struct RateLimits {
    enabled: bool,
    password_account: RateLimiter<String>,
    password_address: RateLimiter<IpAddr>,
    client_failures: RateLimiter<(String, IpAddr)>,
    client_address_failures: RateLimiter<IpAddr>,
    client_requests: RateLimiter<String>,
    address_requests: RateLimiter<IpAddr>,
    rejected: Counter,
}

impl RateLimits {
    /// The limits, counting refusals in `registry`.
    pub fn new(enabled: bool, registry: &Registry) -> Self {
        RateLimits {
            enabled,
            password_account: RateLimiter::new(PASSWORD_PER_ACCOUNT),
            password_address: RateLimiter::new(PASSWORD_PER_ADDRESS),
            client_failures: RateLimiter::new(CLIENT_FAILURES_PER_CLIENT),
            client_address_failures: RateLimiter::new(CLIENT_FAILURES_PER_ADDRESS),
            client_requests: RateLimiter::new(REQUESTS_PER_CLIENT),
            address_requests: RateLimiter::new(REQUESTS_PER_ADDRESS),
            rejected: registry.counter(
                "tessera_rate_limited_total",
                "Requests refused with 429 by a rate limit, by limit.",
                &["limit"],
            ),
        }
    }

    fn refused(&self, limit: Limit, limited: Limited) -> (Limit, Limited) {
        self.rejected.inc(&[limit.as_str()]);
        (limit, limited)
    }

    /// Takes a slot from the first limiter, then from the second, and returns the limits
    /// this used up; when the second refuses, the first slot is given back, so a refused
    /// attempt holds none. With the limits disabled nothing is taken (`None`).
    fn acquire_both<A, B>(
        &self,
        first: (&RateLimiter<A>, &A, Limit),
        second: (&RateLimiter<B>, &B, Limit),
        now_ms: i64,
    ) -> Result<Option<Vec<Limit>>, (Limit, Limited)>
    where
        A: std::hash::Hash + Eq + Clone,
        B: std::hash::Hash + Eq + Clone,
    {
        if !self.enabled {
            return Ok(None);
        }
        let (first_limiter, first_key, first_limit) = first;
        let (second_limiter, second_key, second_limit) = second;
        let mut exhausted = Vec::new();
        match first_limiter.acquire(first_key, now_ms) {
            Ok(true) => exhausted.push(first_limit),
            Ok(false) => {}
            Err(limited) => return Err(self.refused(first_limit, limited)),
        }
        match second_limiter.acquire(second_key, now_ms) {
            Ok(true) => exhausted.push(second_limit),
            Ok(false) => {}
            Err(limited) => {
                first_limiter.refund(first_key, now_ms);
                return Err(self.refused(second_limit, limited));
            }
        }
        Ok(Some(exhausted))
    }

    /// Takes a slot for one password attempt for `account` from `address`, before any
    /// lookup or hashing; the account's limit is asked first. Taking the slot up front
    /// means concurrent attempts cannot all pass before any of them is counted. Give it
    /// back with [`refund`](Self::refund) when the password was right (or nothing was
    /// checked); keep it when it was wrong.
    pub fn begin_password(
        &self,
        account: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<Attempt, (Limit, Limited)> {
        let account = account_key(account);
        let address = address_key(address);
        let taken = self.acquire_both(
            (&self.password_account, &account, Limit::PasswordAccount),
            (&self.password_address, &address, Limit::PasswordAddress),
            now_ms,
        )?;
        Ok(taken.map_or_else(Attempt::default, |exhausted| Attempt {
            account: Some(account),
            client: None,
            address: Some(address),
            exhausted,
        }))
    }

    /// A request from `address` at an endpoint that authenticates clients.
    pub fn request_from(&self, address: IpAddr, now_ms: i64) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        self.address_requests
            .check(&address_key(address), now_ms)
            .map_err(|l| self.refused(Limit::AddressRequests, l))
    }

    /// Takes a slot for one client authentication by `client_id` from `address`, before
    /// the client is looked up; see [`begin_password`](Self::begin_password).
    pub fn begin_client_secret(
        &self,
        client_id: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<Attempt, (Limit, Limited)> {
        let address = address_key(address);
        let client = (bounded(client_id, MAX_CLIENT_KEY_CHARS), address);
        let first = (&self.client_failures, &client, Limit::ClientFailures);
        let second = (
            &self.client_address_failures,
            &address,
            Limit::ClientAddressFailures,
        );
        Ok(match self.acquire_both(first, second, now_ms)? {
            None => Attempt::default(),
            Some(exhausted) => Attempt {
                account: None,
                client: Some(client),
                address: Some(address),
                exhausted,
            },
        })
    }

    /// Gives back the slots of an attempt that was not a failure.
    pub fn refund(&self, attempt: &Attempt, now_ms: i64) {
        if let Some(account) = &attempt.account {
            self.password_account.refund(account, now_ms);
        }
        if let Some(client) = &attempt.client {
            self.client_failures.refund(client, now_ms);
        }
        if let Some(address) = &attempt.address {
            if attempt.account.is_some() {
                self.password_address.refund(address, now_ms);
            }
            if attempt.client.is_some() {
                self.client_address_failures.refund(address, now_ms);
            }
        }
    }

    /// A request by an authenticated client.
    pub fn request_by(&self, client_id: &str, now_ms: i64) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        self.client_requests
            .check(&bounded(client_id, MAX_CLIENT_KEY_CHARS), now_ms)
            .map_err(|l| self.refused(Limit::ClientRequests, l))
    }

    /// The quota of a brute-force limit, for the audit log's description.
    pub fn quota(&self, limit: Limit) -> Quota {
        match limit {
            Limit::PasswordAccount => self.password_account.quota(),
            Limit::PasswordAddress => self.password_address.quota(),
            Limit::ClientFailures => self.client_failures.quota(),
            Limit::ClientAddressFailures => self.client_address_failures.quota(),
            Limit::ClientRequests => self.client_requests.quota(),
            Limit::AddressRequests => self.address_requests.quota(),
        }
    }

    /// The audit event for a brute-force limit that was just used up at `now`: from now
    /// on attempts from `address` are refused until the allowance grows back.
    pub fn exhausted_event(
        &self,
        limit: Limit,
        address: IpAddr,
        now: chrono::DateTime<chrono::Utc>,
    ) -> NewAuditEvent {
        let quota = self.quota(limit);
        NewAuditEvent::new(AuditKind::RateLimited, now)
            .address(address.to_string())
            .detail(format!(
                "{}: {} failures; one more allowed every {} s",
                limit.as_str(),
                quota.burst,
                quota.period.as_secs()
            ))
    }
}

/// The slots one password or client-secret attempt holds, and the limits it used up.
#[derive(Debug, Default)]
pub struct Attempt {
    account: Option<String>,
    client: Option<(String, IpAddr)>,
    address: Option<IpAddr>,
    exhausted: Vec<Limit>,
}

impl Attempt {
    /// The limits this attempt used up: if it fails, the next ones are refused. Each
    /// exhaustion is reported once, for the audit log.
    pub fn exhausted(&self) -> &[Limit] {
        &self.exhausted
    }
}

/// The longest client id kept as a key; longer ones are cut (no registered id is longer),
/// so that a flood of huge ids cannot grow memory beyond the limiter's key bound.
const MAX_CLIENT_KEY_CHARS: usize = 128;

/// Accounts are limited by the name as typed, bounded in length so that a flood of long
/// names cannot grow memory; case is folded, as usernames are lowercase.
fn account_key(account: &str) -> String {
    bounded(account, 64).to_ascii_lowercase()
}

fn bounded(text: &str, chars: usize) -> String {
    let end = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    text[..end].to_owned()
}

/// IPv6 clients are limited by their /64: one subscriber usually holds all of it, and
/// would otherwise get a fresh allowance from every one of its 2^64 addresses.
pub fn address_key(address: IpAddr) -> IpAddr {
    match tessera_web::net::canonical(address) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !u128::from(u64::MAX),
        )),
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "tests/limits.rs"]
mod tests;
