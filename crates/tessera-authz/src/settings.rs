use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Clock, MasterKey};
use tessera_web::net::TrustedProxies;

use crate::keys::KeySchedule;

/// Where the authorization server listens by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// The API identifier put in `aud` by default.
pub const DEFAULT_AUDIENCE: &str = "tessera-api";
/// The default access-token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 900;

/// The longest access-token lifetime accepted: one day.
pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = tessera_store::LONGEST_ACCESS_TOKEN
    .num_seconds()
    .unsigned_abs();
/// The longest refresh-token lifetime accepted: 365 days.
pub const MAX_REFRESH_TOKEN_TTL_SECS: u64 = 365 * 86_400;

/// The default refresh-token lifetime: 14 days, counted from the grant, not from the
/// last refresh.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 14 * 24 * 3600;

/// How the authorization server runs. Every field has a safe default.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to bind, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    /// Default [`DEFAULT_ADDR`]: loopback only, so nothing is exposed by accident.
    pub addr: String,
    /// The issuer URL (`iss`, and the base of every endpoint in the metadata). Default
    /// `http://<bound address>`. Behind a proxy or TLS terminator, set it to the public
    /// URL, or clients will reject the tokens.
    pub issuer: Option<String>,
    /// The `aud` of every access token. Default [`DEFAULT_AUDIENCE`]; the resource servers
    /// must be configured with the same value.
    pub audience: String,
    /// Access-token lifetime when the client sets none. Default 15 minutes; longer
    /// lifetimes widen the window in which a stolen JWT works where resource servers do
    /// not follow the revocation feed.
    pub access_token_ttl: Duration,
    /// Absolute lifetime of a refresh-token family when the client sets none: rotation
    /// never extends it, so a stolen family dies at this age whatever happens. Default
    /// [`DEFAULT_REFRESH_TOKEN_TTL_SECS`].
    pub refresh_token_ttl: Duration,
    /// HTTP worker threads. Default: one per physical core.
    pub workers: Option<usize>,
    /// Password hashes verified at once (each takes tens of milliseconds and 19 MiB).
    /// Default: the number of CPUs. Further logins wait their turn instead of starving
    /// the other endpoints.
    pub password_concurrency: Option<usize>,
    /// When signing keys rotate and what algorithm new keys use. Checked at start-up.
    pub keys: KeySchedule,
    /// The key that seals private signing keys at rest (AES-256-GCM). Default none: keys
    /// are stored in plaintext, and `tessera serve` warns about it.
    pub master_key: Option<Arc<MasterKey>>,
    /// The time. Default the system clock; tests pin it.
    pub clock: Clock,
    /// Rate limits and brute-force protection ([`crate::limits`]). Default on; switch
    /// them off only to measure raw throughput.
    pub rate_limits: bool,
    /// Proxies whose `X-Forwarded-For` names the client. Default none: the TCP peer is
    /// the client, and a forwarded header changes nothing. Trust only proxies that
    /// overwrite or append to the header, or anyone can choose their own address.
    pub trusted_proxies: TrustedProxies,
    /// Origins whose pages may call the token, introspection, revocation, JWKS and
    /// metadata endpoints (CORS). Default none.
    pub cors_origins: Vec<String>,
    /// How long a client has to send a request's head; a slower one gets 408 and is
    /// disconnected. Default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// A secret that lets the client id [`FEED_READER`] read the revocation feed, and
    /// nothing else: how `tessera serve` lets its own resource server follow the feed
    /// without a registered client. Kept in memory only. Default none.
    pub feed_reader_secret: Option<FeedReaderSecret>,
    /// How long audit events are kept: older ones are deleted at start-up and then every
    /// [`crate::retention::AUDIT_PURGE_INTERVAL`]. `None` keeps them forever. Default
    /// [`crate::retention::DEFAULT_AUDIT_RETENTION`] (90 days); at least one hour.
    pub audit_retention: Option<Duration>,
    /// Whether a token is delivered only once the audit log has stored its issuance
    /// (`--audit-durability durable`): no token given out goes unrecorded, even if the
    /// process is killed a moment later, at the price of a database commit in every token
    /// response (group-committed). Default `false` (buffered): records are written within
    /// about 20 ms, and a killed process loses those not written yet.
    pub durable_token_audit: bool,
    /// Where to serve `/metrics` and a copy of `/healthz` on a listener of their own, so
    /// that they need not face the clients; the main listener then answers `/metrics`
    /// with 404. Default none: `/metrics` is served on the main listener.
    pub metrics_addr: Option<String>,
}

/// The in-memory secret of [`FEED_READER`]; `Debug` does not show it.
#[derive(Clone)]
pub struct FeedReaderSecret(pub String);

impl std::fmt::Debug for FeedReaderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedReaderSecret([redacted])")
    }
}

/// The client id that [`Settings::feed_reader_secret`] authenticates. No registered client
/// can have it (`:` is not allowed in a client id).
pub const FEED_READER: &str = "tessera:feed-reader";

pub use tessera_web::DEFAULT_REQUEST_TIMEOUT;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: DEFAULT_ADDR.to_owned(),
            issuer: None,
            audience: DEFAULT_AUDIENCE.to_owned(),
            access_token_ttl: Duration::from_secs(DEFAULT_ACCESS_TOKEN_TTL_SECS),
            refresh_token_ttl: Duration::from_secs(DEFAULT_REFRESH_TOKEN_TTL_SECS),
            workers: None,
            password_concurrency: None,
            keys: KeySchedule::default(),
            master_key: None,
            clock: Clock::system(),
            rate_limits: true,
            trusted_proxies: TrustedProxies::default(),
            cors_origins: Vec::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            feed_reader_secret: None,
            audit_retention: Some(crate::retention::DEFAULT_AUDIT_RETENTION),
            durable_token_audit: false,
            metrics_addr: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_schedule_is_accepted_with_every_lifetime_a_client_may_have() {
        let schedule = KeySchedule::default();
        assert_eq!(schedule.check(Duration::from_secs(900)), Ok(()));
        assert!(
            schedule.longest_token_lifetime() >= Duration::from_secs(MAX_ACCESS_TOKEN_TTL_SECS)
        );
    }
}
