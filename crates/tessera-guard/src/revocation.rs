//! Revoked access tokens: a list held in memory, kept current by following the issuer's
//! revocation feed (`GET /oauth/revocations`) with long polls, and checked on every
//! request with hash lookups only.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use tokio::sync::{oneshot, watch};
use url::Url;

use crate::{Claims, GuardError, Rejection};

/// The longest hold the feed grants (its `wait` parameter goes up to 30 s).
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The first pause after a failed request; it doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause between two failed requests.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest `Retry-After` of the feed honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The least time between two answers that brought nothing, should a server answer at
/// once instead of holding the request.
const MIN_QUIET_INTERVAL: Duration = Duration::from_secs(1);
/// How often a stale list accepted under [`StalePolicy::FailOpen`] says so in the log.
const STALE_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Answers up to this size are parsed on the follower's task; larger ones on a
/// blocking thread.
const PARSE_INLINE_BYTES: usize = 256 * 1024;
/// The least time between two sweeps of expired entries, in seconds.
const SWEEP_INTERVAL_SECS: i64 = 1;

/// What the guard does with a token while the revocation list is stale: no answer from
/// the feed for longer than [`RevocationConfig::max_stale`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StalePolicy {
    /// Refuse every token with `503 temporarily_unavailable` (and `Retry-After`) until the
    /// feed answers again. The default: the feed's bound (a revoked token stops working
    /// within `max_stale`) is what the product promises, and past it the guard can no
    /// longer honour it.
    #[default]
    FailClosed,
    /// Accept tokens on the last list known, logging a warning once a minute. For
    /// deployments that prefer availability to the revocation bound.
    FailOpen,
}

impl StalePolicy {
    /// `closed` or `open`, as [`FromStr`] reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            StalePolicy::FailClosed => "closed",
            StalePolicy::FailOpen => "open",
        }
    }
}

impl fmt::Display for StalePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StalePolicy {
    type Err = RevocationError;

    /// `closed` or `open`, exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "closed" => Ok(StalePolicy::FailClosed),
            "open" => Ok(StalePolicy::FailOpen),
            _ => Err(RevocationError(format!(
                "{s:?} is not a stale policy; use \"closed\" or \"open\""
            ))),
        }
    }
}

/// A revocation feed configuration that cannot be used, or a policy name that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationError(String);

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RevocationError {}

/// How to follow a revocation feed. [`RevocationConfig::new`] sets safe defaults;
/// [`RevocationList::follow`] checks the whole (see [`RevocationConfig::validate`]).
#[derive(Clone)]
pub struct RevocationConfig {
    /// The feed, e.g. `https://auth.example.com/oauth/revocations`: https, or plain http
    /// on loopback unless [`allow_http`](Self::allow_http) is set (the client secret
    /// travels with every request). No credentials in the URL.
    pub feed_url: Url,
    /// The confidential client the guard authenticates as (HTTP Basic, RFC 6749 §2.3.1).
    pub client_id: String,
    /// Its secret. Never logged.
    pub client_secret: String,
    /// How long the feed may hold a request open waiting for news (its `wait`
    /// parameter): whole seconds, 1 to 30. Default 25 s.
    pub wait: Duration,
    /// How long the list may go without an answer from the feed before it is stale,
    /// and from its creation until the first answer. Longer than `wait` plus
    /// `timeout`, or an idle but healthy feed would look stale. Default 60 s: a revoked
    /// token stops working at most this long (plus about a second) after the issuer
    /// revoked it.
    pub max_stale: Duration,
    /// What a stale list does to tokens. Default [`StalePolicy::FailClosed`].
    pub on_stale: StalePolicy,
    /// How long a request may take beyond `wait` before it is abandoned. Default 10 s.
    pub timeout: Duration,
    /// The largest answer accepted. Default 64 MiB (100,000 entries take about 10 MB).
    pub max_bytes: usize,
    /// Whether plain `http` is allowed for hosts other than loopback. Default `false`.
    pub allow_http: bool,
}

impl fmt::Debug for RevocationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationConfig")
            .field("feed_url", &self.feed_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("wait", &self.wait)
            .field("max_stale", &self.max_stale)
            .field("on_stale", &self.on_stale)
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl RevocationConfig {
    /// The defaults, for `feed_url` and the client `client_id` with `client_secret`.
    pub fn new(
        feed_url: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        RevocationConfig {
            feed_url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            wait: Duration::from_secs(25),
            max_stale: Duration::from_secs(60),
            on_stale: StalePolicy::FailClosed,
            timeout: Duration::from_secs(10),
            max_bytes: 64 * 1024 * 1024,
            allow_http: false,
        }
    }

    /// Checks the configuration: the URL's scheme and host, credentials present, `wait`
    /// in whole seconds from 1 to 30, a non-zero timeout and size limit, and `max_stale`
    /// longer than `wait` plus `timeout`.
    pub fn validate(&self) -> Result<(), RevocationError> {
        let err = |message: String| Err(RevocationError(message));
        let url = &self.feed_url;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback || self.allow_http => {}
            "http" => {
                return err(format!(
                    "the revocation feed {url} must use https (plain http is allowed only on \
                     loopback, or when allow_http is set)"
                ));
            }
            other => return err(format!("the revocation feed URL has scheme {other:?}")),
        }
        if url.host().is_none() {
            return err(format!("the revocation feed URL {url} has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return err(
                "the revocation feed URL must not hold credentials; set client_id and \
                 client_secret"
                    .into(),
            );
        }
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return err("the revocation feed needs a client id and secret".into());
        }
        if self.wait.subsec_nanos() != 0 || self.wait < Duration::from_secs(1) {
            return err(format!(
                "the revocation feed wait must be whole seconds, at least 1 (got {:?})",
                self.wait
            ));
        }
        if self.wait > MAX_WAIT {
            return err(format!(
                "the revocation feed wait must be at most 30 s (got {:?})",
                self.wait
            ));
        }
        if self.timeout.is_zero() {
            return err("the revocation feed timeout must not be zero".into());
        }
        if self.max_bytes == 0 {
            return err("the revocation feed size limit must not be zero".into());
        }
        if self.max_stale <= self.wait.saturating_add(self.timeout) {
            return err(format!(
                "max_stale ({:?}) must be longer than the feed wait ({:?}) plus the timeout \
                 ({:?}): an idle feed answers only once per wait",
                self.max_stale, self.wait, self.timeout
            ));
        }
        Ok(())
    }
}

/// One entry of the list: tokens it revokes, until when it must be remembered (`until`,
/// seconds since the epoch; after that every token it names has expired).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationEntry {
    /// The token whose `jti` is this.
    Jti {
        /// The token id.
        jti: String,
        /// When the entry may be forgotten.
        until: i64,
    },
    /// Every token whose `sid` (grant session) is this.
    Sid {
        /// The grant session id.
        sid: String,
        /// When the entry may be forgotten.
        until: i64,
    },
    /// Every token of subject `sub` issued at or before `issued_before` (or without
    /// `iat`).
    Sub {
        /// The subject.
        sub: String,
        /// The last `iat` revoked.
        issued_before: i64,
        /// When the entry may be forgotten.
        until: i64,
    },
    /// Every token whose `client_id` claim is this, issued at or before `issued_before`
    /// (or without `iat`).
    ClientId {
        /// The client.
        client_id: String,
        /// The last `iat` revoked.
        issued_before: i64,
        /// When the entry may be forgotten.
        until: i64,
    },
}

/// A subject's or client's entry: tokens issued at or before `issued_before` are revoked.
#[derive(Clone, Copy, Debug)]
struct Cutoff {
    issued_before: i64,
    until: i64,
}

impl Cutoff {
    /// Whether a token issued at `iat` is revoked at `now`. A token without `iat` cannot
    /// show it came after the cutoff: it is revoked.
    fn revokes(self, iat: Option<i64>, now: i64) -> bool {
        self.until > now && iat.is_none_or(|iat| iat <= self.issued_before)
    }

    /// Two entries for the same key: the later cutoff and the later `until`.
    fn merge(&mut self, other: Cutoff) {
        self.issued_before = self.issued_before.max(other.issued_before);
        self.until = self.until.max(other.until);
    }
}

/// The entries in force, one map per kind.
#[derive(Default)]
struct Entries {
    jti: HashMap<Box<str>, i64>,
    sid: HashMap<Box<str>, i64>,
    sub: HashMap<Box<str>, Cutoff>,
    client_id: HashMap<Box<str>, Cutoff>,
    /// The earliest `until` among the entries (`i64::MAX` when none): no sweep is needed
    /// before then.
    next_expiry: i64,
}

impl Entries {
    fn empty() -> Self {
        Entries {
            next_expiry: i64::MAX,
            ..Entries::default()
        }
    }

    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.sub.len() + self.client_id.len()
    }

    /// Adds `entry` unless it has expired by `now`; an entry for a key already held
    /// keeps the later cutoff and `until` of the two.
    fn insert(&mut self, entry: RevocationEntry, now: i64) {
        let until = match &entry {
            RevocationEntry::Jti { until, .. }
            | RevocationEntry::Sid { until, .. }
            | RevocationEntry::Sub { until, .. }
            | RevocationEntry::ClientId { until, .. } => *until,
        };
        if until <= now {
            return;
        }
        self.next_expiry = self.next_expiry.min(until);
        match entry {
            RevocationEntry::Jti { jti: key, until } => {
                let held = self.jti.entry(key.into_boxed_str()).or_insert(until);
                *held = (*held).max(until);
            }
            RevocationEntry::Sid { sid: key, until } => {
                let held = self.sid.entry(key.into_boxed_str()).or_insert(until);
                *held = (*held).max(until);
            }
            RevocationEntry::Sub {
                sub,
                issued_before,
                until,
            } => merge_cutoff(&mut self.sub, sub, issued_before, until),
            RevocationEntry::ClientId {
                client_id,
                issued_before,
                until,
            } => merge_cutoff(&mut self.client_id, client_id, issued_before, until),
        }
    }

    /// Whether an entry in force at `now` revokes the token with `claims`.
    fn revokes(&self, claims: &Claims, now: i64) -> bool {
        let by_key = |map: &HashMap<Box<str>, i64>, key: Option<&str>| {
            !map.is_empty() && key.and_then(|k| map.get(k)).is_some_and(|u| *u > now)
        };
        let by_cutoff = |map: &HashMap<Box<str>, Cutoff>, key: Option<&str>| {
            !map.is_empty()
                && key
                    .and_then(|k| map.get(k))
                    .is_some_and(|c| c.revokes(claims.iat, now))
        };
        by_key(&self.jti, claims.jti.as_deref())
            || by_key(&self.sid, claims.sid.as_deref())
            || by_cutoff(&self.sub, Some(&claims.sub))
            || by_cutoff(&self.client_id, claims.client_id.as_deref())
    }
}

/// Adds a cutoff for `key`, or merges it into the one held.
fn merge_cutoff(map: &mut HashMap<Box<str>, Cutoff>, key: String, issued_before: i64, until: i64) {
    let cutoff = Cutoff {
        issued_before,
        until,
    };
    map.entry(key.into_boxed_str())
        .and_modify(|held| held.merge(cutoff))
        .or_insert(cutoff);
}

impl Entries {
    /// Sweeps out the entries that expired by `now` in two steps, so that requests are
    /// never held up by a scan: the keys are collected under a read lock (requests read
    /// alongside), then removed under a short write lock. Only the single writer calls
    /// this, so nothing changes between the two steps.
    fn sweep(lock: &RwLock<Entries>, now: i64) {
        let (expired, next_expiry) = {
            let entries = read(lock);
            if entries.next_expiry > now {
                return;
            }
            let mut next_expiry = i64::MAX;
            let mut keep = |until: i64| {
                let alive = until > now;
                if alive {
                    next_expiry = next_expiry.min(until);
                }
                alive
            };
            let mut expired: [Vec<Box<str>>; 4] = Default::default();
            for (key, until) in &entries.jti {
                if !keep(*until) {
                    expired[0].push(key.clone());
                }
            }
            for (key, until) in &entries.sid {
                if !keep(*until) {
                    expired[1].push(key.clone());
                }
            }
            for (key, cutoff) in &entries.sub {
                if !keep(cutoff.until) {
                    expired[2].push(key.clone());
                }
            }
            for (key, cutoff) in &entries.client_id {
                if !keep(cutoff.until) {
                    expired[3].push(key.clone());
                }
            }
            (expired, next_expiry)
        };
        let [jti, sid, sub, client_id] = expired;
        let mut entries = write(lock);
        for key in jti {
            entries.jti.remove(&key);
        }
        for key in sid {
            entries.sid.remove(&key);
        }
        for key in sub {
            entries.sub.remove(&key);
        }
        for key in client_id {
            entries.client_id.remove(&key);
        }
        entries.next_expiry = next_expiry;
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Whole seconds since the epoch on the system clock.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds as a `u64`, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A moment, in milliseconds since a list's creation plus one; 0 for never.
struct Moment(AtomicU64);

impl Moment {
    fn never() -> Self {
        Moment(AtomicU64::new(0))
    }

    fn set(&self, since_creation: Duration) {
        self.0
            .store(millis(since_creation).saturating_add(1), Ordering::Release);
    }

    /// Since creation, or `None` for never.
    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(Duration::from_millis(n - 1)),
        }
    }
}

/// What the list's writer alone keeps.
struct WriterState {
    /// When (seconds since the epoch) expired entries may next be swept.
    next_sweep: i64,
}

/// The staleness rule of a followed list.
#[derive(Clone, Copy, Debug)]
struct Staleness {
    max_stale: Duration,
    policy: StalePolicy,
}

/// Where a [`RevocationList`] stands, for metrics and health checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationStats {
    /// Entries held (expired ones are swept out within about a second of the next
    /// answer, and never enforced meanwhile).
    pub entries: usize,
    /// Time since the last successful answer from the feed (or [`RevocationList::apply`]);
    /// `None` before the first.
    pub age: Option<Duration>,
    /// Whether the list is stale now: no answer yet, or none for longer than `max_stale`.
    /// Never for a list that follows no feed.
    pub stale: bool,
    /// Successful answers applied, whether they brought news or not.
    pub updates: u64,
    /// Failed requests to the feed (refused, unreachable, timed out, malformed answer).
    pub failures: u64,
    /// Answers that replaced the whole list (the first one included).
    pub resets: u64,
    /// Time since the list last changed (an entry added, or a reset); `None` if it never
    /// did. Expired entries swept out do not count.
    pub last_change: Option<Duration>,
}

/// The revocation list a [`Validator`](crate::Validator) checks every JWT against (see
/// [`Validator::with_revocations`](crate::Validator::with_revocations)).
///
/// A check is a few hash lookups under a read lock that only the writer's brief updates
/// ever contend: no I/O, no `await`.
pub struct RevocationList {
    entries: RwLock<Entries>,
    /// Serialises writers: the follower, or callers of [`RevocationList::apply`].
    writer: Mutex<WriterState>,
    /// `None` for a list that follows no feed: never stale.
    staleness: Option<Staleness>,
    /// The feed followed, for `Debug` and logs (it holds no credentials).
    feed: Option<Url>,
    created: Instant,
    last_success: Moment,
    last_change: Moment,
    last_stale_warning: Moment,
    updates: AtomicU64,
    failures: AtomicU64,
    resets: AtomicU64,
    /// Becomes `true` with the first successful answer.
    synced: watch::Sender<bool>,
    /// Dropped with the list, which stops the follower.
    _stop: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("feed", &self.feed.as_ref().map(Url::as_str))
            .field("staleness", &self.staleness)
            .field("entries", &read(&self.entries).len())
            .finish_non_exhaustive()
    }
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationList {
    /// An empty list that follows no feed: it holds what [`apply`](Self::apply) gives it
    /// and is never stale. For tests, and for entries that come from elsewhere.
    pub fn new() -> Self {
        Self::build(None, None, None)
    }

    fn build(
        staleness: Option<Staleness>,
        feed: Option<Url>,
        stop: Option<oneshot::Sender<()>>,
    ) -> Self {
        RevocationList {
            entries: RwLock::new(Entries::empty()),
            writer: Mutex::new(WriterState {
                next_sweep: i64::MIN,
            }),
            staleness,
            feed,
            created: Instant::now(),
            last_success: Moment::never(),
            last_change: Moment::never(),
            last_stale_warning: Moment::never(),
            updates: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            synced: watch::Sender::new(false),
            _stop: stop,
        }
    }

    /// A list that follows the feed in `config` on a background Tokio task: it asks for
    /// the whole list, then long-polls for what is added (`?after=CURSOR&wait=N`) for as
    /// long as the list lives. A failed request (unreachable, refused, timed out, a
    /// malformed answer) keeps the list as it is and is retried after a pause growing
    /// from 0.5 s to 10 s; the list turns stale once no answer came for `max_stale`.
    ///
    /// The task stops when the last handle to the list is dropped. Call from within a
    /// Tokio runtime that outlives the users of the list (with actix-web: in `main`,
    /// before the server starts, not in a worker). Wait for the first answer with
    /// [`synced`](Self::synced).
    pub fn follow(config: RevocationConfig) -> Result<Arc<Self>, RevocationError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            RevocationError("following a revocation feed needs a Tokio runtime".into())
        })?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RevocationError(format!("cannot build the HTTP client: {e}")))?;
        let authorization = basic_authorization(&config.client_id, &config.client_secret)?;
        let (stop, stopped) = oneshot::channel();
        let list = Arc::new(Self::build(
            Some(Staleness {
                max_stale: config.max_stale,
                policy: config.on_stale,
            }),
            Some(config.feed_url.clone()),
            Some(stop),
        ));
        let follower = Follower {
            list: Arc::downgrade(&list),
            client,
            authorization,
            config,
        };
        runtime.spawn(follower.run(stopped));
        Ok(list)
    }

    /// What a stale list does to tokens; `None` for a list that follows no feed (never
    /// stale).
    pub fn on_stale(&self) -> Option<StalePolicy> {
        self.staleness.map(|staleness| staleness.policy)
    }

    /// Whether the token with `claims` may be used at `now` (seconds since the epoch):
    /// [`Rejection::Revoked`] when an entry in force revokes it; when the list is stale,
    /// [`GuardError::Unavailable`] under [`StalePolicy::FailClosed`], or `Ok` (with a
    /// warning in the log at most once a minute) under [`StalePolicy::FailOpen`].
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), GuardError> {
        if read(&self.entries).revokes(claims, now) {
            return Err(GuardError::InvalidToken(Rejection::Revoked));
        }
        let Some(staleness) = self.staleness else {
            return Ok(());
        };
        let elapsed = self.created.elapsed();
        let Some(age) = self.stale_age(staleness, elapsed) else {
            return Ok(());
        };
        match staleness.policy {
            StalePolicy::FailClosed => Err(GuardError::Unavailable),
            StalePolicy::FailOpen => {
                self.warn_stale(age, elapsed);
                Ok(())
            }
        }
    }

    /// The time without an answer when it exceeds `max_stale`, else `None`.
    fn stale_age(&self, staleness: Staleness, elapsed: Duration) -> Option<Duration> {
        // Before its first answer the list knows nothing of what was revoked: stale, so
        // that a server started while its feed is away fails closed (or warns) at once.
        let Some(since) = self.last_success.get() else {
            return Some(elapsed);
        };
        let age = elapsed.saturating_sub(since);
        (age > staleness.max_stale).then_some(age)
    }

    fn warn_stale(&self, age: Duration, elapsed: Duration) {
        let last = self.last_stale_warning.0.load(Ordering::Acquire);
        let due =
            last == 0 || millis(elapsed).saturating_sub(last - 1) >= millis(STALE_WARNING_INTERVAL);
        let now = millis(elapsed).saturating_add(1);
        if due
            && self
                .last_stale_warning
                .0
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::warn!(
                feed = self.feed.as_ref().map(Url::as_str),
                seconds_without_answer = age.as_secs(),
                "the revocation list is stale; accepting tokens on the last list (fail-open)"
            );
        }
    }

    /// Applies an answer of the feed at `now` (seconds since the epoch): with `reset`,
    /// `entries` replace the whole list; otherwise they are added to it. Entries whose
    /// `until` has passed are left out, and expired entries are swept from the list. It
    /// counts as a successful answer (for [`synced`](Self::synced), staleness and
    /// [`stats`](Self::stats)).
    ///
    /// The follower calls this for every answer; call it yourself only on a list that
    /// follows no feed.
    pub fn apply(&self, reset: bool, entries: Vec<RevocationEntry>, now: i64) {
        let mut writer = lock(&self.writer);
        let changed = if reset {
            let mut fresh = Entries::empty();
            for entry in entries {
                fresh.insert(entry, now);
            }
            let new_len = fresh.len();
            let old = std::mem::replace(&mut *write(&self.entries), fresh);
            self.resets.fetch_add(1, Ordering::Relaxed);
            let changed = old.len() > 0 || new_len > 0;
            // The old maps are freed here, outside the lock.
            drop(old);
            changed
        } else if entries.is_empty() {
            false
        } else {
            // Answers after the first bring a few entries: added in place, under a write
            // lock held for those inserts only.
            let mut held = write(&self.entries);
            for entry in entries {
                held.insert(entry, now);
            }
            true
        };
        if now >= writer.next_sweep {
            Entries::sweep(&self.entries, now);
            writer.next_sweep = now.saturating_add(SWEEP_INTERVAL_SECS);
        }
        drop(writer);
        let elapsed = self.created.elapsed();
        if changed {
            self.last_change.set(elapsed);
        }
        self.last_success.set(elapsed);
        self.updates.fetch_add(1, Ordering::Relaxed);
        self.synced
            .send_if_modified(|synced| !std::mem::replace(synced, true));
    }

    /// Waits up to `timeout` for the first successful answer from the feed; whether it
    /// came. Use it at start-up, as the JWKS prefetch: until then the list is empty.
    pub async fn synced(&self, timeout: Duration) -> bool {
        let mut synced = self.synced.subscribe();
        matches!(
            tokio::time::timeout(timeout, synced.wait_for(|synced| *synced)).await,
            Ok(Ok(_))
        )
    }

    /// Where the list stands now.
    pub fn stats(&self) -> RevocationStats {
        let elapsed = self.created.elapsed();
        let since = |moment: &Moment| moment.get().map(|at| elapsed.saturating_sub(at));
        RevocationStats {
            entries: read(&self.entries).len(),
            age: since(&self.last_success),
            stale: self
                .staleness
                .is_some_and(|staleness| self.stale_age(staleness, elapsed).is_some()),
            updates: self.updates.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            last_change: since(&self.last_change),
        }
    }
}

/// `Basic base64(id:secret)`, each form-urlencoded first (RFC 6749 §2.3.1); marked
/// sensitive so that it is never printed.
fn basic_authorization(client_id: &str, secret: &str) -> Result<HeaderValue, RevocationError> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret));
    let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
        .map_err(|_| RevocationError("the client credentials cannot form a header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Why a request to the feed failed. Never holds the secret.
#[derive(Debug)]
struct FeedError {
    /// For the log.
    message: String,
    /// The server's `Retry-After`, when it sent one.
    retry_after: Option<Duration>,
    /// The server refused the cursor (`400`): start over without it.
    start_over: bool,
}

impl FeedError {
    fn new(message: impl Into<String>) -> Self {
        FeedError {
            message: message.into(),
            retry_after: None,
            start_over: false,
        }
    }
}

/// An answer of the feed.
#[derive(Deserialize)]
struct Answer {
    cursor: String,
    reset: bool,
    revoked: Vec<WireEntry>,
}

/// An entry as the feed spells it. Unknown members are ignored.
#[derive(Deserialize)]
struct WireEntry {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    issued_before: Option<i64>,
    #[serde(default)]
    until: Option<i64>,
}

impl WireEntry {
    /// The entries this names: none when it names no token (it is ignored), one per key
    /// otherwise. An entry naming a key without `until` (or a subject or client without
    /// `issued_before`) makes the whole answer malformed: it is neither enforced forever
    /// nor silently dropped.
    fn into_entries(self, out: &mut Vec<RevocationEntry>) -> Result<(), FeedError> {
        if self.jti.is_none()
            && self.sid.is_none()
            && self.sub.is_none()
            && self.client_id.is_none()
        {
            return Ok(());
        }
        let until = self
            .until
            .ok_or_else(|| FeedError::new("an entry has no until"))?;
        let issued_before = || {
            self.issued_before
                .ok_or_else(|| FeedError::new("a sub or client_id entry has no issued_before"))
        };
        if let Some(jti) = self.jti {
            out.push(RevocationEntry::Jti { jti, until });
        }
        if let Some(sid) = self.sid {
            out.push(RevocationEntry::Sid { sid, until });
        }
        if let Some(sub) = self.sub {
            out.push(RevocationEntry::Sub {
                sub,
                issued_before: issued_before()?,
                until,
            });
        }
        if let Some(client_id) = self.client_id {
            out.push(RevocationEntry::ClientId {
                client_id,
                issued_before: issued_before()?,
                until,
            });
        }
        Ok(())
    }
}

/// A parsed answer: the cursor to continue from, and what to apply.
struct Parsed {
    cursor: String,
    reset: bool,
    entries: Vec<RevocationEntry>,
}

fn parse_answer(body: &[u8]) -> Result<Parsed, FeedError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| FeedError::new(format!("the answer is not a revocation list: {e}")))?;
    let mut entries = Vec::with_capacity(answer.revoked.len());
    for entry in answer.revoked {
        entry.into_entries(&mut entries)?;
    }
    Ok(Parsed {
        cursor: answer.cursor,
        reset: answer.reset,
        entries,
    })
}

/// The background task that keeps a list current.
struct Follower {
    list: Weak<RevocationList>,
    client: reqwest::Client,
    authorization: HeaderValue,
    config: RevocationConfig,
}

impl Follower {
    /// Follows the feed until `stopped` resolves (the list was dropped) or the list is
    /// gone.
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        let mut cursor: Option<String> = None;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let started = Instant::now();
            let request = self.request(cursor.as_deref());
            let result = tokio::select! {
                biased;
                _ = &mut stopped => return,
                result = request => result,
            };
            let Some(list) = self.list.upgrade() else {
                return;
            };
            let pause = match result {
                Ok(answer) => {
                    // The first answer is the whole list, whatever it says.
                    let reset = answer.reset || cursor.is_none();
                    let quiet = !reset && answer.entries.is_empty();
                    list.apply(reset, answer.entries, unix_now());
                    cursor = Some(answer.cursor);
                    backoff = INITIAL_BACKOFF;
                    if quiet {
                        MIN_QUIET_INTERVAL.saturating_sub(started.elapsed())
                    } else {
                        Duration::ZERO
                    }
                }
                Err(err) => {
                    list.failures.fetch_add(1, Ordering::Relaxed);
                    if err.start_over {
                        cursor = None;
                    }
                    let pause = err.retry_after.map_or(backoff, |asked| asked.max(backoff));
                    tracing::warn!(
                        feed = self.config.feed_url.as_str(),
                        error = %err.message,
                        retry_in_ms = millis(pause),
                        "revocation feed request failed; keeping the last list"
                    );
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    pause
                }
            };
            drop(list);
            if !pause.is_zero() {
                tokio::select! {
                    biased;
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// One request: the whole list without a cursor, else a long poll from it.
    async fn request(&self, cursor: Option<&str>) -> Result<Parsed, FeedError> {
        let mut url = self.config.feed_url.clone();
        if let Some(cursor) = cursor {
            url.query_pairs_mut()
                .append_pair("after", cursor)
                .append_pair("wait", &self.config.wait.as_secs().to_string());
        }
        let mut response = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(self.config.wait.saturating_add(self.config.timeout))
            .send()
            .await
            .map_err(|e| FeedError::new(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST && cursor.is_some() {
            // Only cursors the feed gave are sent: something between rewrote the query.
            return Err(FeedError {
                start_over: true,
                ..FeedError::new("status 400 Bad Request for the cursor; starting over")
            });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(FeedError::new(format!(
                "status {status}: the feed refused client {:?} (check its id and secret)",
                self.config.client_id
            )));
        }
        if status != reqwest::StatusCode::OK {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
            return Err(FeedError {
                retry_after,
                ..FeedError::new(format!("status {status}"))
            });
        }
        let max_bytes = self.config.max_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > max_bytes as u64)
        {
            return Err(FeedError::new(format!(
                "the answer is larger than {max_bytes} bytes"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            FeedError::new(format!("reading the answer failed: {}", e.without_url()))
        })? {
            if body.len() + chunk.len() > max_bytes {
                return Err(FeedError::new(format!(
                    "the answer is larger than {max_bytes} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if body.len() <= PARSE_INLINE_BYTES {
            return parse_answer(&body);
        }
        // A whole list of many entries takes tens of milliseconds to parse: not on a
        // thread that may also serve requests.
        tokio::task::spawn_blocking(move || parse_answer(&body))
            .await
            .map_err(|e| FeedError::new(format!("parsing the answer failed: {e}")))?
    }
}

#[cfg(test)]
#[path = "tests/revocation.rs"]
mod tests;
