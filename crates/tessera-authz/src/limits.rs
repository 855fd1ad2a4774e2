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

use tessera_core::metrics::{Counter, Registry};
use tessera_core::ratelimit::{Limited, Quota, RateLimiter};

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

    /// Whether limits apply.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn refused(&self, limit: Limit, limited: Limited) -> (Limit, Limited) {
        self.rejected.inc(&[limit.as_str()]);
        (limit, limited)
    }

    /// Before checking a password: may `account` be tried from `address`? The account's
    /// limit is asked first.
    pub fn before_password(
        &self,
        account: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        self.password_account
            .peek(&account_key(account), now_ms)
            .map_err(|l| self.refused(Limit::PasswordAccount, l))?;
        self.password_address
            .peek(&address, now_ms)
            .map_err(|l| self.refused(Limit::PasswordAddress, l))
    }

    /// A wrong password for `account` from `address`. Returns the limits this failure
    /// used up, for the audit log (each is reported once per exhaustion).
    pub fn password_failed(&self, account: &str, address: IpAddr, now_ms: i64) -> Vec<Limit> {
        let mut exhausted = Vec::new();
        if self.enabled {
            if self.password_account.record(&account_key(account), now_ms) {
                exhausted.push(Limit::PasswordAccount);
            }
            if self.password_address.record(&address, now_ms) {
                exhausted.push(Limit::PasswordAddress);
            }
        }
        exhausted
    }

    /// A request from `address` at an endpoint that authenticates clients.
    pub fn request_from(&self, address: IpAddr, now_ms: i64) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        self.address_requests
            .check(&address, now_ms)
            .map_err(|l| self.refused(Limit::AddressRequests, l))
    }

    /// Before checking a client's secret: may `client_id` be tried from `address`?
    pub fn before_client_secret(
        &self,
        client_id: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        self.client_failures
            .peek(&(client_id.to_owned(), address), now_ms)
            .map_err(|l| self.refused(Limit::ClientFailures, l))?;
        self.client_address_failures
            .peek(&address, now_ms)
            .map_err(|l| self.refused(Limit::ClientAddressFailures, l))
    }

    /// A failed client authentication. Returns the limits this failure used up.
    pub fn client_failed(&self, client_id: &str, address: IpAddr, now_ms: i64) -> Vec<Limit> {
        let mut exhausted = Vec::new();
        if self.enabled {
            if self
                .client_failures
                .record(&(client_id.to_owned(), address), now_ms)
            {
                exhausted.push(Limit::ClientFailures);
            }
            if self.client_address_failures.record(&address, now_ms) {
                exhausted.push(Limit::ClientAddressFailures);
            }
        }
        exhausted
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

    /// A request by an authenticated client.
    pub fn request_by(&self, client_id: &str, now_ms: i64) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        self.client_requests
            .check(&client_id.to_owned(), now_ms)
            .map_err(|l| self.refused(Limit::ClientRequests, l))
    }
}

/// Accounts are limited by the name as typed, bounded in length so that a flood of long
/// names cannot grow memory; case is folded, as usernames are lowercase.
fn account_key(account: &str) -> String {
    let end = account
        .char_indices()
        .nth(64)
        .map_or(account.len(), |(i, _)| i);
    account[..end].to_ascii_lowercase()
}

/// The audit event for a brute-force limit that was just used up: from now on attempts are
/// refused until the allowance grows back.
pub fn exhausted_event(
    state: &crate::state::AppState,
    limit: Limit,
    address: IpAddr,
) -> tessera_store::NewAuditEvent {
    let quota = state.limits.quota(limit);
    tessera_store::NewAuditEvent::new(tessera_store::AuditKind::RateLimited, state.now())
        .address(address.to_string())
        .detail(format!(
            "{}: {} failures; one more allowed every {} s",
            limit.as_str(),
            quota.burst,
            quota.period.as_secs()
        ))
}
