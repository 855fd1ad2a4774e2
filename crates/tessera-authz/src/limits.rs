//! Rate limits and brute-force protection.
//!
//! Guessing is slowed where a guess is checked: passwords per account and per address,
//! client secrets per client and address, and per address across clients. A limit that
//! is reached answers 429 with `Retry-After` before any work is done; only failures
//! count, so a legitimate user who signs in is never charged, and every limit lifts by
//! itself: there is no permanent lockout. Request floods are bounded per address and per
//! client on the token, introspection and revocation endpoints; introspection, which a
//! resource server calls once per API request, has an allowance of its own, ten times
//! the token endpoint's. A public client authenticates with its id alone, so anyone can
//! spend its allowance: it is not limited per client but per client and address, and
//! only its failed grants count.
//!
//! The per-account password limit is far lower than the per-address one, so an address
//! that keeps failing one account's password still signs in to another account normally
//! (a shared office address stays usable).
//!
//! Where the limits live: on a store that [shares them](Store::shares_rate_limits)
//! (PostgreSQL, which any number of servers use at once), the brute-force limits are kept
//! in the database, so N servers allow what one does. Passwords are exact there: a slot is
//! taken in the database before any hashing and given back after a right password.
//! Client authentications read the limits' state with the client (no extra round trip
//! on the way to a success) and write only on a failure, so failures racing each other
//! on different servers may exceed the quota by how many are in flight at once; each
//! server also keeps the limits in memory, so one server alone stays exact. The flood
//! limits (requests per address and per client, a public client's failed grants) stay in
//! each process's memory: they protect that process. On SQLite (one machine) everything
//! is in memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tessera_store::{
    AuditKind, Client, LimitRule, NewAuditEvent, RateLimitSlot, Store, StoreError,
};
use tessera_web::metrics::{Counter, Registry};
use tessera_web::net::limit_key;
use tessera_web::ratelimit::{Limited, Quota, RateLimiter};

/// Wrong passwords per account: 10, then one more every 30 s. Shared on PostgreSQL.
pub const PASSWORD_PER_ACCOUNT: Quota = Quota::new(10, Duration::from_secs(30));
/// Wrong passwords per address, whatever the account: 30, then one every 10 s. Shared on
/// PostgreSQL.
pub const PASSWORD_PER_ADDRESS: Quota = Quota::new(30, Duration::from_secs(10));
/// Failed client authentications per client and address: 10, then one every 6 s. Shared
/// on PostgreSQL.
pub const CLIENT_FAILURES_PER_CLIENT: Quota = Quota::new(10, Duration::from_secs(6));
/// Failed client authentications per address, whatever the client: 30, then one every
/// 2 s. Shared on PostgreSQL.
pub const CLIENT_FAILURES_PER_ADDRESS: Quota = Quota::new(30, Duration::from_secs(2));
/// Requests per authenticated confidential client at the token and revocation endpoints
/// and the revocation feed: 2,000 at once, then 1,000 a second.
pub const REQUESTS_PER_CLIENT: Quota = Quota::new(2_000, Duration::from_millis(1));
/// Requests per address at those endpoints: 2,000 at once, then 1,000 a second.
pub const REQUESTS_PER_ADDRESS: Quota = Quota::new(2_000, Duration::from_millis(1));
/// Introspection requests per client: 20,000 at once, then 10,000 a second. A resource
/// server that validates opaque tokens by introspection sends one per API request.
pub const INTROSPECTIONS_PER_CLIENT: Quota = Quota::new(20_000, Duration::from_micros(100));
/// Introspection requests per address: 20,000 at once, then 10,000 a second.
pub const INTROSPECTIONS_PER_ADDRESS: Quota = Quota::new(20_000, Duration::from_micros(100));
/// Failed grants of a public client per address (a refresh token, code or grant the
/// server refused): 30, then one every 2 s.
pub const PUBLIC_GRANT_FAILURES: Quota = Quota::new(30, Duration::from_secs(2));

/// How often a server deletes the limits in the database that hold nothing any more.
const PURGE_EVERY_MS: i64 = 10 * 60 * 1000;

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
    /// [`INTROSPECTIONS_PER_CLIENT`].
    ClientIntrospections,
    /// [`INTROSPECTIONS_PER_ADDRESS`].
    AddressIntrospections,
    /// [`PUBLIC_GRANT_FAILURES`].
    PublicGrantFailures,
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
            Limit::ClientIntrospections => "client_introspections",
            Limit::AddressIntrospections => "address_introspections",
            Limit::PublicGrantFailures => "public_grant_failures",
        }
    }

    /// The limit's quota.
    pub fn quota(self) -> Quota {
        match self {
            Limit::PasswordAccount => PASSWORD_PER_ACCOUNT,
            Limit::PasswordAddress => PASSWORD_PER_ADDRESS,
            Limit::ClientFailures => CLIENT_FAILURES_PER_CLIENT,
            Limit::ClientAddressFailures => CLIENT_FAILURES_PER_ADDRESS,
            Limit::ClientRequests => REQUESTS_PER_CLIENT,
            Limit::AddressRequests => REQUESTS_PER_ADDRESS,
            Limit::ClientIntrospections => INTROSPECTIONS_PER_CLIENT,
            Limit::AddressIntrospections => INTROSPECTIONS_PER_ADDRESS,
            Limit::PublicGrantFailures => PUBLIC_GRANT_FAILURES,
        }
    }

    /// The limit as the database keeps it.
    fn rule(self) -> LimitRule {
        let quota = self.quota();
        LimitRule {
            period_ms: quota.period_ms(),
            tolerance_ms: quota.tolerance_ms(),
        }
    }
}

/// Which allowance a request at an endpoint that authenticates clients is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/oauth/introspect`: [`INTROSPECTIONS_PER_CLIENT`] and [`INTROSPECTIONS_PER_ADDRESS`].
    Introspection,
    /// The token and revocation endpoints and the revocation feed:
    /// [`REQUESTS_PER_CLIENT`] and [`REQUESTS_PER_ADDRESS`].
    Other,
}

impl Endpoint {
    /// The endpoint of a request to `path`.
    pub fn of(path: &str) -> Self {
        if path == "/oauth/introspect" {
            Endpoint::Introspection
        } else {
            Endpoint::Other
        }
    }
}

/// Why a request or an attempt may not go ahead.
#[derive(Debug)]
pub enum Refused {
    /// A limit is reached: 429 with `Retry-After`.
    Limit(Limit, Limited),
    /// The database that keeps the shared limits failed; answered as any store failure
    /// (503 when it is away).
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(err: StoreError) -> Self {
        Refused::Store(err)
    }
}

/// Every limit of one server. With `enabled` false (benchmarks) nothing is counted or
/// refused.
#[derive(Debug)]
pub struct RateLimits {
    enabled: bool,
    /// The store that keeps the brute-force limits, when it shares them.
    shared: Option<Arc<dyn Store>>,
    /// When this server last purged the shared limits (Unix ms).
    purged_at: AtomicI64,
    password_account: RateLimiter<String>,
    password_address: RateLimiter<IpAddr>,
    client_failures: RateLimiter<(String, IpAddr)>,
    client_address_failures: RateLimiter<IpAddr>,
    client_requests: RateLimiter<String>,
    address_requests: RateLimiter<IpAddr>,
    client_introspections: RateLimiter<String>,
    address_introspections: RateLimiter<IpAddr>,
    public_grant_failures: RateLimiter<(String, IpAddr)>,
    rejected: Counter,
}

impl RateLimits {
    /// The limits, in this process's memory, counting refusals in `registry`.
    pub fn new(enabled: bool, registry: &Registry) -> Self {
        RateLimits {
            enabled,
            shared: None,
            purged_at: AtomicI64::new(0),
            password_account: RateLimiter::new(PASSWORD_PER_ACCOUNT),
            password_address: RateLimiter::new(PASSWORD_PER_ADDRESS),
            client_failures: RateLimiter::new(CLIENT_FAILURES_PER_CLIENT),
            client_address_failures: RateLimiter::new(CLIENT_FAILURES_PER_ADDRESS),
            client_requests: RateLimiter::new(REQUESTS_PER_CLIENT),
            address_requests: RateLimiter::new(REQUESTS_PER_ADDRESS),
            client_introspections: RateLimiter::new(INTROSPECTIONS_PER_CLIENT),
            address_introspections: RateLimiter::new(INTROSPECTIONS_PER_ADDRESS),
            public_grant_failures: RateLimiter::new(PUBLIC_GRANT_FAILURES),
            rejected: registry.counter(
                "tessera_rate_limited_total",
                "Requests refused with 429 by a rate limit, by limit.",
                &["limit"],
            ),
        }
    }

    /// These limits, with the brute-force ones kept in `store` when it
    /// [shares them](Store::shares_rate_limits) with other servers.
    pub fn kept_in(mut self, store: Arc<dyn Store>) -> Self {
        if store.shares_rate_limits() {
            self.shared = Some(store);
        }
        self
    }

    /// Whether the brute-force limits are kept in the database.
    pub fn shared(&self) -> bool {
        self.enabled && self.shared.is_some()
    }

    fn refused(&self, limit: Limit, limited: Limited) -> (Limit, Limited) {
        self.rejected.inc(&[limit.as_str()]);
        (limit, limited)
    }

    /// Takes a slot from the first limiter, then from the second, and returns the limits
    /// this used up; when the second refuses, the first slot is given back, so a refused
    /// attempt holds none.
    fn acquire_both<A, B>(
        &self,
        first: (&RateLimiter<A>, &A, Limit),
        second: (&RateLimiter<B>, &B, Limit),
        now_ms: i64,
    ) -> Result<Vec<Limit>, (Limit, Limited)>
    where
        A: std::hash::Hash + Eq + Clone,
        B: std::hash::Hash + Eq + Clone,
    {
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
        Ok(exhausted)
    }

    /// Takes a slot of each of `keys` in the database, in order, and returns the limits
    /// this used up; when one refuses or fails, the slots taken are given back.
    async fn acquire_shared(
        &self,
        store: &dyn Store,
        keys: &[(String, Limit)],
        now_ms: i64,
    ) -> Result<Vec<Limit>, Refused> {
        self.purge_now_and_then(now_ms);
        let mut exhausted = Vec::new();
        for (n, (key, limit)) in keys.iter().enumerate() {
            let outcome = store.acquire_rate_limit(key, limit.rule(), now_ms).await;
            let refusal = match outcome {
                Ok(RateLimitSlot::Taken { whole_at }) => {
                    if limit.quota().admits(whole_at, now_ms).is_err() {
                        exhausted.push(*limit);
                    }
                    continue;
                }
                Ok(RateLimitSlot::Refused { whole_at }) => {
                    let limited = refusal_at(*limit, whole_at, now_ms);
                    let (limit, limited) = self.refused(*limit, limited);
                    Refused::Limit(limit, limited)
                }
                Err(err) => Refused::Store(err),
            };
            refund_shared(store, &keys[..n], now_ms).await;
            return Err(refusal);
        }
        Ok(exhausted)
    }

    /// Deletes, in the background and at most every [`PURGE_EVERY_MS`], the shared limits
    /// that hold nothing any more. Every server does it; the delete is idempotent.
    fn purge_now_and_then(&self, now_ms: i64) {
        let last = self.purged_at.load(Ordering::Relaxed);
        if now_ms - last < PURGE_EVERY_MS
            || self
                .purged_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Some(store) = self.shared.clone() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(err) = store.purge_rate_limits(now_ms).await {
                tracing::warn!(error = ?err, "purging rate limits failed");
            }
        });
    }

    /// Takes a slot for one password attempt for `account` from `address`, before any
    /// lookup or hashing; the account's limit is asked first. Taking the slot up front
    /// means concurrent attempts cannot all pass before any of them is counted: in the
    /// database when the limits are shared, atomically across every server. Give it back
    /// with [`refund`](Self::refund) when the password was right (or nothing was checked);
    /// keep it when it was wrong.
    pub async fn begin_password(
        &self,
        account: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<Attempt, Refused> {
        if !self.enabled {
            return Ok(Attempt::default());
        }
        let account = account_key(account);
        let address = limit_key(address);
        if let Some(store) = &self.shared {
            let taken = vec![
                (
                    db_key(format!("pw-account:{account}")),
                    Limit::PasswordAccount,
                ),
                (format!("pw-address:{address}"), Limit::PasswordAddress),
            ];
            let exhausted = self.acquire_shared(store.as_ref(), &taken, now_ms).await?;
            return Ok(Attempt {
                exhausted,
                taken,
                ..Attempt::default()
            });
        }
        let exhausted = self
            .acquire_both(
                (&self.password_account, &account, Limit::PasswordAccount),
                (&self.password_address, &address, Limit::PasswordAddress),
                now_ms,
            )
            .map_err(|(limit, limited)| Refused::Limit(limit, limited))?;
        Ok(Attempt {
            account: Some(account),
            address: Some(address),
            exhausted,
            ..Attempt::default()
        })
    }

    /// A request from `address` at an endpoint that authenticates clients.
    pub fn request_from(
        &self,
        address: IpAddr,
        endpoint: Endpoint,
        now_ms: i64,
    ) -> Result<(), (Limit, Limited)> {
        if !self.enabled {
            return Ok(());
        }
        let (limiter, limit) = match endpoint {
            Endpoint::Introspection => (&self.address_introspections, Limit::AddressIntrospections),
            Endpoint::Other => (&self.address_requests, Limit::AddressRequests),
        };
        limiter
            .check(&limit_key(address), now_ms)
            .map_err(|l| self.refused(limit, l))
    }

    /// Takes a slot for one client authentication by `client_id` from `address`, before
    /// the client is looked up; see [`begin_password`](Self::begin_password). When the
    /// limits are shared, [`find_client`](Self::find_client) also asks the database, and
    /// [`failed`](Self::failed) records a failure there.
    pub fn begin_client_secret(
        &self,
        client_id: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<Attempt, (Limit, Limited)> {
        if !self.enabled {
            return Ok(Attempt::default());
        }
        let address = limit_key(address);
        let client = (bounded(client_id, MAX_CLIENT_KEY_CHARS), address);
        let first = (&self.client_failures, &client, Limit::ClientFailures);
        let second = (
            &self.client_address_failures,
            &address,
            Limit::ClientAddressFailures,
        );
        let exhausted = self.acquire_both(first, second, now_ms)?;
        let on_failure = if self.shared.is_some() {
            vec![
                (
                    db_key(format!("client:{address}/{}", client.0)),
                    Limit::ClientFailures,
                ),
                (
                    format!("client-address:{address}"),
                    Limit::ClientAddressFailures,
                ),
            ]
        } else {
            Vec::new()
        };
        Ok(Attempt {
            client: Some(client),
            address: Some(address),
            exhausted,
            on_failure,
            ..Attempt::default()
        })
    }

    /// The client `client_id` of an authentication begun as `attempt`, from `store`. When
    /// the limits are shared, the same read brings their state: if other servers have
    /// used up the client's or the address's failures, the attempt is refused (and gives
    /// its slots back) before any secret is compared.
    pub async fn find_client(
        &self,
        store: &dyn Store,
        attempt: &Attempt,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Option<Client>, Refused> {
        let [(first, first_limit), (second, second_limit)] = attempt.on_failure.as_slice() else {
            return Ok(store.find_client(client_id).await?);
        };
        let (client, states) = store
            .find_client_with_rate_limits(client_id, [first, second])
            .await?;
        for (limit, whole_at) in [(first_limit, states[0]), (second_limit, states[1])] {
            if let Some(whole_at) = whole_at
                && let Err(limited) = limit.quota().admits(whole_at, now_ms)
            {
                self.refund_memory(attempt, now_ms);
                let (limit, limited) = self.refused(*limit, limited);
                return Err(Refused::Limit(limit, limited));
            }
        }
        Ok(client)
    }

    /// Records that `attempt` failed where the limits are shared (the slots in memory are
    /// kept already), adding the limits it used up there to its
    /// [`exhausted`](Attempt::exhausted) ones. A database failure here is logged: the
    /// answer is decided.
    pub async fn failed(&self, attempt: &mut Attempt, now_ms: i64) {
        let Some(store) = &self.shared else {
            return;
        };
        self.purge_now_and_then(now_ms);
        for (key, limit) in &attempt.on_failure {
            match store.acquire_rate_limit(key, limit.rule(), now_ms).await {
                Ok(RateLimitSlot::Taken { whole_at }) => {
                    if limit.quota().admits(whole_at, now_ms).is_err()
                        && !attempt.exhausted.contains(limit)
                    {
                        attempt.exhausted.push(*limit);
                    }
                }
                // Used up already, by failures racing this one.
                Ok(RateLimitSlot::Refused { .. }) => {}
                Err(err) => tracing::warn!(
                    error = ?err,
                    "recording a failed client authentication in the database failed"
                ),
            }
        }
    }

    /// Gives back the slots of an attempt that was not a failure.
    pub async fn refund(&self, attempt: &Attempt, now_ms: i64) {
        self.refund_memory(attempt, now_ms);
        if let Some(store) = &self.shared {
            refund_shared(store.as_ref(), &attempt.taken, now_ms).await;
        }
    }

    fn refund_memory(&self, attempt: &Attempt, now_ms: i64) {
        if let Some(account) = &attempt.account {
            self.password_account.refund(account, now_ms);
        }
        if let Some(client) = &attempt.client {
            self.client_failures.refund(client, now_ms);
        }
        if let Some(client) = &attempt.public_grant {
            self.public_grant_failures.refund(client, now_ms);
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

    /// A request by an authenticated `client` at `endpoint`. Public clients are not
    /// counted here: anyone can send their id, and would spend every user's allowance;
    /// their failed grants are limited per address instead
    /// ([`begin_public_grant`](Self::begin_public_grant)).
    pub fn request_by(
        &self,
        client: &Client,
        endpoint: Endpoint,
        now_ms: i64,
    ) -> Result<(), (Limit, Limited)> {
        if !self.enabled || client.is_public() {
            return Ok(());
        }
        let (limiter, limit) = match endpoint {
            Endpoint::Introspection => (&self.client_introspections, Limit::ClientIntrospections),
            Endpoint::Other => (&self.client_requests, Limit::ClientRequests),
        };
        limiter
            .check(
                &bounded(client.client_id.as_str(), MAX_CLIENT_KEY_CHARS),
                now_ms,
            )
            .map_err(|l| self.refused(limit, l))
    }

    /// Takes a slot for one grant by the public client `client_id` from `address`, before
    /// the grant is decided. Give it back with [`refund`](Self::refund) when the grant
    /// succeeds (or nothing was decided); keep it when the grant was refused.
    pub fn begin_public_grant(
        &self,
        client_id: &str,
        address: IpAddr,
        now_ms: i64,
    ) -> Result<Attempt, (Limit, Limited)> {
        if !self.enabled {
            return Ok(Attempt::default());
        }
        let key = (bounded(client_id, MAX_CLIENT_KEY_CHARS), limit_key(address));
        let exhausted = match self.public_grant_failures.acquire(&key, now_ms) {
            Ok(true) => vec![Limit::PublicGrantFailures],
            Ok(false) => Vec::new(),
            Err(limited) => return Err(self.refused(Limit::PublicGrantFailures, limited)),
        };
        Ok(Attempt {
            public_grant: Some(key),
            exhausted,
            ..Attempt::default()
        })
    }

    /// The quota of a limit, for the audit log's description.
    pub fn quota(&self, limit: Limit) -> Quota {
        limit.quota()
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

/// The refusal of `limit` for a key whose allowance is whole at `whole_at`.
fn refusal_at(limit: Limit, whole_at: i64, now_ms: i64) -> Limited {
    limit
        .quota()
        .admits(whole_at, now_ms)
        .err()
        // Whole again already (the database's row moved on): a second will do.
        .unwrap_or(Limited {
            retry_after: Duration::from_secs(1),
        })
}

/// `key` as the database can store it: PostgreSQL text holds no NUL, which a username or
/// client id as typed may contain (`%00`). Such a name exists nowhere; sharing a key with
/// its look-alike costs nothing.
fn db_key(key: String) -> String {
    if key.contains('\0') {
        key.replace('\0', "\u{fffd}")
    } else {
        key
    }
}

/// Gives back one slot of each of `keys` in the database; a failure is logged (the slot
/// then grows back by itself).
async fn refund_shared(store: &dyn Store, keys: &[(String, Limit)], now_ms: i64) {
    for (key, limit) in keys {
        if let Err(err) = store.refund_rate_limit(key, limit.rule(), now_ms).await {
            tracing::warn!(
                error = ?err,
                "giving back a rate-limit slot in the database failed"
            );
        }
    }
}

/// The slots one password, client-secret or public-grant attempt holds, and the limits it
/// used up.
#[derive(Debug, Default)]
pub struct Attempt {
    account: Option<String>,
    client: Option<(String, IpAddr)>,
    public_grant: Option<(String, IpAddr)>,
    address: Option<IpAddr>,
    exhausted: Vec<Limit>,
    /// Slots taken in the database, given back on a refund.
    taken: Vec<(String, Limit)>,
    /// Keys charged in the database when the attempt fails.
    on_failure: Vec<(String, Limit)>,
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

#[cfg(test)]
#[path = "tests/limits.rs"]
mod tests;
