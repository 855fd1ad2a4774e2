//! A JWKS cache that refreshes on a schedule and on unknown key ids, single-flight, with a
//! cooldown, keeping the last good key set when the issuer fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tessera_core::Clock;

/// How soon a cache holding no usable key may fetch again.
const EMPTY_RETRY: Duration = Duration::from_secs(1);

/// How long after the issuer last confirmed a key set it may still verify tokens, by
/// default: one hour, twelve times the 5-minute `max-age` of Tessera's JWKS, so a resource
/// server rides out an hour of issuer outage and no more.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(3600);

/// Where the keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// A JWKS URL.
    Url(String),
    /// An issuer URL: the JWKS URL is the `jwks_uri` of its RFC 8414 metadata
    /// (`{issuer}/.well-known/oauth-authorization-server`), looked up on the first fetch.
    Issuer(String),
}

/// How the cache behaves. Every field has a default chosen for safety.
#[derive(Clone, Debug)]
pub struct JwksConfig {
    /// Where the keys come from.
    pub source: JwksSource,
    /// The shortest time a key set is kept, whatever `max-age` says. Default 60 s; lower
    /// values let a misconfigured issuer make every request fetch.
    pub min_age: Duration,
    /// The longest time a key set is kept. Default 24 h.
    pub max_age: Duration,
    /// The hard limit on a key set's age: how long after the issuer last confirmed it (a
    /// fetch or a `304`) a key set may still verify tokens while refreshes fail. Past it
    /// the keys are not used and JWTs are refused as unverifiable
    /// ([`GuardError::Unavailable`](crate::GuardError::Unavailable), `503`) until a
    /// refresh succeeds, so that a key withdrawn at the issuer during an outage is not
    /// trusted forever; those requests are refused at once, not after a fetch, and start
    /// a background refresh (at most once a second). Once half of it has passed, the next
    /// lookup refreshes the set in the background, so a healthy issuer keeps the set
    /// below the limit even when its `max-age` is longer. Default [`DEFAULT_MAX_STALE`]
    /// (1 h); at least `min_age`.
    pub max_stale: Duration,
    /// How long to keep a key set that came without `max-age`. Default 5 minutes.
    pub default_age: Duration,
    /// The least time between two fetches. An unknown `kid` triggers a fetch only when
    /// this has passed, so a flood of random key ids costs one fetch per cooldown.
    /// Default 30 s. While the cache holds no key at all, retries come at most once a
    /// second instead.
    pub cooldown: Duration,
    /// A fetch gives up after this long. Default 5 s.
    pub timeout: Duration,
    /// The largest JWKS or metadata document accepted. Default 64 KiB.
    pub max_bytes: usize,
    /// Whether plain `http` URLs are allowed for hosts other than loopback. Default
    /// `false`: over a network, whoever can alter plain HTTP can inject keys. Enable it
    /// only inside a private network you trust (e.g. between containers).
    pub allow_http: bool,
    /// The time, for key-set ages and the cooldown (and, through the guard, for token
    /// expiry). Default the system clock; tests pin it.
    pub clock: Clock,
}

impl JwksConfig {
    /// The defaults, for `source`.
    pub fn new(source: JwksSource) -> Self {
        JwksConfig {
            source,
            min_age: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
            max_stale: DEFAULT_MAX_STALE,
            default_age: Duration::from_secs(300),
            cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            allow_http: false,
            clock: Clock::system(),
        }
    }
}

/// A verification key: one key, one algorithm. Parsed once per fetched key set and shared
/// by reference: a request never copies key material.
pub(crate) struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// What a key lookup found.
pub(crate) struct Lookup {
    pub key: Option<Arc<VerifyingKey>>,
    /// HTTP requests the lookup made (0 on a warm hit).
    pub round_trips: u32,
    /// Whether any key is known at all; without, the issuer is unreachable.
    pub have_keys: bool,
}

/// A fetched key set, when it goes stale (Unix milliseconds on the configured clock) and
/// its entity tag, for revalidating with `If-None-Match`.
struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    expires: i64,
    /// When the issuer last confirmed the set (a fetch or a `304`), Unix milliseconds.
    confirmed: i64,
    etag: Option<String>,
}

/// Counters, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JwksStats {
    /// Fetch attempts (successful or not).
    pub fetches: u64,
    /// Failed fetch attempts.
    pub failures: u64,
    /// Fetches answered `304 Not Modified`: the keys were kept and only their age renewed.
    pub not_modified: u64,
    /// Fetches a token with an unknown `kid` forced while keys were cached (the first
    /// fetch of a cold cache is not counted). With an issuer that publishes keys before it
    /// signs with them, these happen only after an emergency rotation.
    pub unknown_kid: u64,
}

/// The cache. Cheap to share (`Arc`); lookups take no lock: a fetch builds the new set
/// first and swaps a pointer, and readers load whichever set is current.
pub struct JwksCache {
    config: JwksConfig,
    client: reqwest::Client,
    current: ArcSwap<KeySet>,
    /// Serialises fetches; holds the time of the last attempt and the resolved JWKS URL.
    refresh: tokio::sync::Mutex<RefreshState>,
    /// Incremented by every fetch attempt, so waiters can tell one happened meanwhile.
    generation: AtomicU64,
    /// Whether a background refresh is running.
    background: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
    not_modified: AtomicU64,
    unknown_kid: AtomicU64,
}

#[derive(Default)]
struct RefreshState {
    /// Unix milliseconds of the last fetch attempt.
    last_attempt: Option<i64>,
    jwks_url: Option<String>,
}

/// Why a fetch failed, for the log only.
#[derive(Debug)]
struct FetchError(String);

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("source", &self.config.source)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache with no keys yet; the first lookup fetches.
    pub fn new(config: JwksConfig) -> Result<Self, JwksError> {
        let url = match &config.source {
            JwksSource::Url(url) | JwksSource::Issuer(url) => url,
        };
        check_transport(url, config.allow_http).map_err(|e| JwksError(e.0))?;
        if config.max_stale < config.min_age || config.max_stale.is_zero() {
            return Err(JwksError(format!(
                "the key set's hard maximum age ({}s) must be at least its minimum age ({}s)",
                config.max_stale.as_secs(),
                config.min_age.as_secs()
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwksError(format!("cannot build the HTTP client: {e}")))?;
        Ok(JwksCache {
            config,
            client,
            current: ArcSwap::from_pointee(KeySet {
                keys: HashMap::new(),
                expires: i64::MIN,
                confirmed: i64::MIN,
                etag: None,
            }),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            generation: AtomicU64::new(0),
            background: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            unknown_kid: AtomicU64::new(0),
        })
    }

    /// Fetch counters.
    pub fn stats(&self) -> JwksStats {
        JwksStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            unknown_kid: self.unknown_kid.load(Ordering::Relaxed),
        }
    }

    /// The clock this cache (and a guard using it) reads.
    pub fn clock(&self) -> &Clock {
        &self.config.clock
    }

    /// Fetches now unless a fetch happened within the cooldown; useful at start-up.
    /// Failures are logged and leave the cache as it was.
    pub async fn prefetch(&self) {
        let seen = self.generation.load(Ordering::Acquire);
        self.refresh(seen).await;
    }

    /// Whether the cache holds a fresh key with this `kid`, without fetching.
    pub fn is_warm(&self, kid: &str) -> bool {
        let set = self.snapshot();
        set.expires > self.config.clock.now_millis() && set.keys.contains_key(kid)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Whether the cache holds keys whose hard maximum age
    /// ([`JwksConfig::max_stale`]) has passed: they verify nothing until a refresh
    /// succeeds.
    pub fn is_too_old(&self) -> bool {
        self.too_old(&self.current.load(), self.config.clock.now_millis())
    }

    /// Time since the issuer last confirmed the key set; `None` before the first fetch.
    pub fn age(&self) -> Option<Duration> {
        let set = self.current.load();
        if set.keys.is_empty() {
            return None;
        }
        let millis = self.config.clock.now_millis().saturating_sub(set.confirmed);
        Some(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
    }

    /// Whether `set` holds keys past the hard maximum age at `now` (Unix ms).
    fn too_old(&self, set: &KeySet, now: i64) -> bool {
        let limit = i64::try_from(self.config.max_stale.as_millis()).unwrap_or(i64::MAX);
        !set.keys.is_empty() && now.saturating_sub(set.confirmed) > limit
    }

    /// Whether `set` should be refreshed at `now` (Unix ms): its `max-age` has run out, or
    /// half its hard maximum age has passed since the issuer last confirmed it, so that a
    /// healthy issuer renews the set long before [`JwksConfig::max_stale`] even when the
    /// `max-age` it sends is longer.
    fn due(&self, set: &KeySet, now: i64) -> bool {
        let half = i64::try_from(self.config.max_stale.as_millis() / 2).unwrap_or(i64::MAX);
        set.expires <= now || now.saturating_sub(set.confirmed) > half
    }

    /// The key for `kid`.
    ///
    /// A known key is returned at once, even from a stale set: staleness starts one
    /// background refresh (stale-while-revalidate), so no request waits on the network for
    /// a key it already has. An unknown `kid` waits for a refresh (single-flight, at most
    /// once per cooldown). A set past its hard maximum age yields no key at once and
    /// starts a background refresh (at most once a second): no request waits on an issuer
    /// that may be unreachable.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Lookup {
        let seen = self.generation.load(Ordering::Acquire);
        let set = self.current.load();
        let now = self.config.clock.now_millis();
        if self.too_old(&set, now) {
            drop(set);
            self.refresh_in_background(seen);
            return Lookup {
                key: None,
                round_trips: 0,
                have_keys: false,
            };
        }
        if let Some(key) = set.keys.get(kid) {
            if self.due(&set, now) {
                self.refresh_in_background(seen);
            }
            return Lookup {
                key: Some(Arc::clone(key)),
                round_trips: 0,
                have_keys: true,
            };
        }
        let was_empty = set.keys.is_empty();
        drop(set);
        let round_trips = self.refresh(seen).await;
        // A cold cache's first fetch is not a miss: nothing was known yet.
        if round_trips > 0 && !was_empty {
            self.unknown_kid.fetch_add(1, Ordering::Relaxed);
        }
        let set = self.snapshot();
        if self.too_old(&set, self.config.clock.now_millis()) {
            return Lookup {
                key: None,
                round_trips,
                have_keys: false,
            };
        }
        Lookup {
            key: set.keys.get(kid).cloned(),
            round_trips,
            have_keys: !set.keys.is_empty(),
        }
    }

    /// Whether `key` is still the key published under `kid`: false once the key set no
    /// longer holds it (removed, or replaced by a fetch that parsed it anew), or is past its
    /// hard maximum age. Like a lookup, it starts a background refresh of a set that is
    /// due, so that tokens answered from a verified-token cache still see a key leave the
    /// JWKS and keep the set from reaching its hard maximum age.
    pub(crate) fn still_current(self: &Arc<Self>, kid: &str, key: &Arc<VerifyingKey>) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let set = self.current.load();
        let now = self.config.clock.now_millis();
        if self.too_old(&set, now) {
            self.refresh_in_background(seen);
            return false;
        }
        if self.due(&set, now) {
            self.refresh_in_background(seen);
        }
        set.keys
            .get(kid)
            .is_some_and(|current| Arc::ptr_eq(current, key))
    }

    /// Starts one refresh on its own task unless one is running already.
    fn refresh_in_background(self: &Arc<Self>, seen: u64) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            cache.refresh(seen).await;
            cache.background.store(false, Ordering::Release);
        });
    }

    /// Fetches unless another caller fetched since `seen` or the cooldown has not passed.
    /// Returns the number of HTTP requests this call made.
    async fn refresh(&self, seen: u64) -> u32 {
        let mut state = self.refresh.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return 0;
        }
        let now = self.config.clock.now_millis();
        // With no key at all (the issuer was unreachable at start-up) every request fails,
        // so retry sooner than the cooldown, though still at most once a second.
        let snapshot = self.snapshot();
        let cooldown = if snapshot.keys.is_empty() || self.too_old(&snapshot, now) {
            self.config.cooldown.min(EMPTY_RETRY)
        } else {
            self.config.cooldown
        };
        let cooldown = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
        if state
            .last_attempt
            .is_some_and(|t| now.saturating_sub(t) < cooldown)
        {
            return 0;
        }
        state.last_attempt = Some(now);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut round_trips = 0;
        match self.fetch(&mut state, &mut round_trips).await {
            Ok(set) => {
                let count = set.keys.len();
                self.current.store(Arc::new(set));
                tracing::debug!(keys = count, "JWKS refreshed");
            }
            Err(err) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err.0, "JWKS fetch failed; keeping the last good keys");
            }
        }
        // After the swap, so that a waiter who sees the new generation also sees the keys.
        self.generation.fetch_add(1, Ordering::AcqRel);
        round_trips
    }

    async fn fetch(
        &self,
        state: &mut RefreshState,
        round_trips: &mut u32,
    ) -> Result<KeySet, FetchError> {
        let url = match (&state.jwks_url, &self.config.source) {
            (Some(url), _) => url.clone(),
            (None, JwksSource::Url(url)) => url.clone(),
            (None, JwksSource::Issuer(issuer)) => {
                let metadata_url = format!(
                    "{}/.well-known/oauth-authorization-server",
                    issuer.trim_end_matches('/')
                );
                check_transport(&metadata_url, self.config.allow_http)?;
                *round_trips += 1;
                let (body, _) = self.get(&metadata_url).await?;
                let metadata: Value = serde_json::from_slice(&body)
                    .map_err(|e| FetchError(format!("metadata is not JSON: {e}")))?;
                if metadata.get("issuer").and_then(Value::as_str)
                    != Some(issuer.trim_end_matches('/'))
                {
                    return Err(FetchError("metadata names another issuer".into()));
                }
                let url = metadata
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| FetchError("metadata has no jwks_uri".into()))?
                    .to_owned();
                state.jwks_url = Some(url.clone());
                url
            }
        };
        *round_trips += 1;
        check_transport(&url, self.config.allow_http)?;
        let current = self.snapshot();
        // Revalidate what we hold: an unchanged key set costs a 304 and no parsing.
        let etag = current.etag.as_deref().filter(|_| !current.keys.is_empty());
        let fetched = self.get_conditional(&url, etag).await?;
        let age = |max_age: Option<Duration>| {
            let age = max_age
                .unwrap_or(self.config.default_age)
                .clamp(self.config.min_age, self.config.max_age);
            self.config
                .clock
                .now_millis()
                .saturating_add(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
        };
        let Some(body) = fetched.body else {
            self.not_modified.fetch_add(1, Ordering::Relaxed);
            return Ok(KeySet {
                keys: current.keys.clone(),
                expires: age(fetched.max_age),
                confirmed: self.config.clock.now_millis(),
                etag: current.etag.clone(),
            });
        };
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            // An issuer always has a key; an empty set is a broken answer, not a revocation
            // of everything, and must not replace the last good set.
            return Err(FetchError("the JWKS holds no usable signing key".into()));
        }
        Ok(KeySet {
            keys,
            expires: age(fetched.max_age),
            confirmed: self.config.clock.now_millis(),
            etag: fetched.etag,
        })
    }

    /// GETs `url`, bounded in time (client timeout) and size; returns the body and the
    /// `max-age` of its `Cache-Control`.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let fetched = self.get_conditional(url, None).await?;
        let body = fetched
            .body
            .ok_or_else(|| FetchError(format!("GET {url}: unexpected 304")))?;
        Ok((body, fetched.max_age))
    }

    /// GETs `url` with `If-None-Match: etag` when given. A `304` (only possible then)
    /// comes back without a body.
    async fn get_conditional(&self, url: &str, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| FetchError(format!("GET {url}: {e}")))?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let new_etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(str::to_owned);
        if etag.is_some() && response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched {
                body: None,
                max_age,
                etag: new_etag,
            });
        }
        if !response.status().is_success() {
            return Err(FetchError(format!(
                "GET {url}: status {}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError(format!("GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > self.config.max_bytes {
                return Err(FetchError(format!(
                    "GET {url}: larger than {} bytes",
                    self.config.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body: Some(body),
            max_age,
            etag: new_etag,
        })
    }
}

/// One answer from the key source: the body (none for `304`), its `max-age` and `ETag`.
struct Fetched {
    body: Option<Vec<u8>>,
    max_age: Option<Duration>,
    etag: Option<String>,
}

/// A key source or introspection endpoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError(String);

impl JwksError {
    pub(crate) fn new(message: String) -> Self {
        JwksError(message)
    }
}

/// [`check_transport`] for configuration: https, or http on loopback unless allowed.
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<(), JwksError> {
    check_transport(url, allow_http).map_err(|e| JwksError(e.0))
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JwksError {}

/// Keys must come over https, or plain http on the loopback interface, unless plain http
/// is explicitly allowed.
fn check_transport(url: &str, allow_http: bool) -> Result<(), FetchError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| FetchError(format!("invalid URL {url:?}: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_http => Ok(()),
        _ => Err(FetchError(format!(
            "{url} must use https (plain http is allowed only on loopback, or when allow_http is set)"
        ))),
    }
}

/// `max-age=N` from a `Cache-Control` value; `no-store`/`no-cache` mean zero.
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            max_age = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// The public, asymmetric signing keys of a JWKS, by `kid`. Keys without a `kid` or an
/// `alg`, symmetric (`oct`) keys, keys with private members and keys not for signatures
/// are skipped: a JWKS is public material, and a symmetric key in it would let anyone
/// who reads it forge tokens.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, FetchError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| FetchError(format!("JWKS is not JSON: {e}")))?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| FetchError("JWKS has no keys array".into()))?;
    let mut keys = HashMap::new();
    for entry in entries {
        let Some(object) = entry.as_object() else {
            continue;
        };
        let private = ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| object.contains_key(*m));
        let kty = object.get("kty").and_then(Value::as_str);
        let usable_use = object
            .get("use")
            .and_then(Value::as_str)
            .is_none_or(|u| u == "sig");
        if private || !matches!(kty, Some("RSA" | "EC" | "OKP")) || !usable_use {
            continue;
        }
        let (Some(kid), Some(alg)) = (
            object.get("kid").and_then(Value::as_str),
            object.get("alg").and_then(Value::as_str),
        ) else {
            continue;
        };
        let algorithm = match alg {
            "RS256" => Algorithm::RS256,
            "PS256" => Algorithm::PS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            _ => continue,
        };
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(kid.to_owned(), Arc::new(VerifyingKey { algorithm, key }));
    }
    Ok(keys)
}
