use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use tessera_guard::{
    Guard, Introspection, JwksCache, JwksConfig, JwksSource, OpaqueTokens, RevocationConfig,
    RevocationList, StalePolicy, ValidationConfig, Validator,
};

use tessera_store::{AuditLog, Store};
use tessera_web::metrics::{MetricKind, Registry};
use tessera_web::net::TrustedProxies;
use tessera_web::{CorsOrigins, HttpMetrics};
use thiserror::Error;

use crate::hashing::Hasher;
use crate::limits::Limits;
use crate::opaque::{Source, UserOpaque};

use crate::{headers, routes};

/// Where the resource server listens by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8081";

/// How the resource server runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to bind; port 0 picks a free port. Default [`DEFAULT_ADDR`].
    pub addr: String,
    /// The issuer whose tokens are accepted (exact `iss`). Required.
    pub issuer: String,
    /// The audience tokens must carry. Default `tessera-api`.
    pub audience: String,
    /// Where the keys are: this JWKS URL, or else the `jwks_uri` of the issuer's RFC 8414
    /// metadata.
    pub jwks_url: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`. Default 30 s.
    pub leeway: Duration,
    /// Least time between two JWKS fetches. Default 30 s.
    pub jwks_cooldown: Duration,
    /// How long after the issuer last confirmed the key set it may still verify JWTs
    /// while refreshes fail; past it JWTs are refused with `503` until a refresh succeeds.
    /// Default [`tessera_guard::DEFAULT_MAX_STALE`] (1 h); at least 60 s.
    pub jwks_max_stale: Duration,
    /// Whether keys may be fetched over plain http from a host other than loopback.
    /// Default `false`; enable only inside a private network you trust.
    pub jwks_allow_http: bool,
    /// How opaque tokens are validated. Default [`OpaqueValidation::Store`].
    pub opaque: OpaqueValidation,
    /// HTTP worker threads. Default: one per physical core.
    pub workers: Option<usize>,
    /// The time, for token expiry and JWKS cache ages. Default the system clock; tests
    /// pin it.
    pub clock: tessera_core::Clock,
    /// Origins whose pages may call the API (CORS). Default none.
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client in the audit log. Default none.
    pub trusted_proxies: TrustedProxies,
    /// How long a client has to send a request's head. Default
    /// [`tessera_web::DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// How many verified JWTs the guard remembers (by digest, until they expire, never past
    /// their key). Default [`tessera_guard::DEFAULT_TOKEN_CACHE_CAPACITY`]; 0 verifies the
    /// signature of every request.
    pub token_cache: usize,
    /// How long an active introspection answer is kept, in `introspection` mode. Default
    /// none: every request asks. A revoked token works here until its answer ages out.
    pub introspection_cache: Option<Duration>,
    /// Also serve `GET /open/companies/{company}/users`: the same listing with no
    /// authorization at all, as the ceiling a benchmark compares the authorized route
    /// with. Never enable it on a server anyone else can reach. Default `false`.
    pub open_listing: bool,
    /// Follow the issuer's revocation feed, so that a revoked JWT is refused within about
    /// a second, with no lookup per request. Default none: JWTs are valid until they
    /// expire, whatever the issuer revoked.
    pub revocation: Option<RevocationFeed>,
    /// Where to serve `/metrics` and a copy of `/healthz` on a listener of their own, so
    /// that they need not face the clients; the main listener then answers `/metrics`
    /// with 404. Default none: `/metrics` is served on the main listener.
    pub metrics_addr: Option<String>,
    /// Apply the rate limits (invalid tokens per address, taken usernames per admin).
    /// Default `true`; `false` only to measure raw throughput.
    pub rate_limits: bool,
    /// Threads hashing passwords for user creations and password changes. Default: one
    /// per core.
    pub hash_threads: Option<usize>,
    /// Hashes that may wait for a thread; one more is refused with `503`. Default
    /// [`DEFAULT_HASH_QUEUE`].
    pub hash_queue: usize,
}

pub use crate::hashing::DEFAULT_HASH_QUEUE;

/// How long an opaque token found inactive is remembered (refused with no lookup).
pub const INACTIVE_CACHE_TTL: Duration = Duration::from_secs(5);

/// How many inactive opaque tokens are remembered, at most.
pub const INACTIVE_CACHE_CAPACITY: usize = 10_000;

/// How the resource server follows the issuer's revocation feed.
#[derive(Clone)]
pub struct RevocationFeed {
    /// The feed; default `{issuer}/oauth/revocations`.
    pub url: Option<String>,
    /// This server's client id at the issuer (a confidential client).
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// How long a long-poll asks the feed to wait for news. Default 25 s.
    pub wait: Duration,
    /// How long the list may go without an answer from the feed before it is stale: more
    /// than `wait` plus 10 s. Default [`DEFAULT_REVOCATION_MAX_STALE`].
    pub max_stale: Duration,
    /// What a stale list does to JWTs. Default [`StalePolicy::FailClosed`]: `503`.
    pub on_stale: StalePolicy,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("wait", &self.wait)
            .field("max_stale", &self.max_stale)
            .field("on_stale", &self.on_stale)
            .finish()
    }
}

/// How long the revocation list may go without an answer from the feed, by default.
pub const DEFAULT_REVOCATION_MAX_STALE: Duration = Duration::from_secs(60);

impl RevocationFeed {
    /// The defaults, as the client `client_id` with `client_secret`.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        RevocationFeed {
            url: None,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            wait: Duration::from_secs(25),
            max_stale: DEFAULT_REVOCATION_MAX_STALE,
            on_stale: StalePolicy::FailClosed,
        }
    }
}

/// How many introspection answers are kept, at most, when that cache is on.
pub const INTROSPECTION_CACHE_CAPACITY: usize = 10_000;

/// How the resource server validates opaque (non-JWT) tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpaqueValidation {
    /// Look the token's digest up in the shared token store, then the user.
    Store,
    /// Ask the issuer's introspection endpoint as a registered client, then the user.
    Introspection {
        /// The endpoint; default `{issuer}/oauth/introspect`.
        url: Option<String>,
        /// This server's client id at the issuer.
        client_id: String,
        /// Its secret.
        client_secret: String,
    },
    /// Refuse opaque tokens (`invalid_token`).
    Off,
}

impl Settings {
    /// Defaults for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Settings {
            addr: DEFAULT_ADDR.to_owned(),
            issuer: issuer.into(),
            audience: "tessera-api".to_owned(),
            jwks_url: None,
            leeway: Duration::from_secs(30),
            jwks_cooldown: Duration::from_secs(30),
            jwks_max_stale: tessera_guard::DEFAULT_MAX_STALE,
            jwks_allow_http: false,
            opaque: OpaqueValidation::Store,
            workers: None,
            clock: tessera_core::Clock::system(),
            cors_origins: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            request_timeout: tessera_web::DEFAULT_REQUEST_TIMEOUT,
            token_cache: tessera_guard::DEFAULT_TOKEN_CACHE_CAPACITY,
            introspection_cache: None,
            open_listing: false,
            revocation: None,
            metrics_addr: None,
            rate_limits: true,
            hash_threads: None,
            hash_queue: DEFAULT_HASH_QUEUE,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: std::io::Error,
    },
}

/// A bound, ready-to-run resource server.
pub struct Application {
    addr: SocketAddr,
    jwks: Arc<JwksCache>,
    revocations: Option<Arc<RevocationList>>,
    audit: AuditLog,
    server: Server,
    /// The metrics listener's address and server, when `/metrics` has its own.
    metrics: Option<(SocketAddr, Server)>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds and builds the server. Keys are fetched on first use (and by
    /// [`prefetch_keys`](Self::prefetch_keys)), so the authorization server need not be up yet.
    pub async fn build(settings: Settings, store: Arc<dyn Store>) -> Result<Self, StartupError> {
        let checked = Checked::from(&settings, &store)?;
        let jwks = checked.jwks.clone();
        let revocations = checked.guard.validator().revocations().cloned();
        let (shared, audit) = wire(&settings, checked, store);

        let bind_error = |reason| StartupError::Bind {
            addr: settings.addr.clone(),
            reason,
        };
        let listener = TcpListener::bind(&settings.addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let open_listing = settings.open_listing;
        let metrics = metrics_listener(&settings, &shared)?;
        let metrics_here = metrics.is_none();
        let server = tessera_web::serve(
            move || {
                App::new()
                    .app_data(shared.guard.clone())
                    .app_data(shared.store.clone())
                    .app_data(shared.cors.clone())
                    .app_data(shared.http_metrics.clone())
                    .app_data(shared.audit.clone())
                    .app_data(shared.work.clone())
                    .app_data(shared.limits.clone())
                    .wrap(from_fn(headers::report))
                    .wrap(tessera_web::security_headers(false))
                    .wrap(from_fn(HttpMetrics::middleware))
                    .configure(|config| configure(config, open_listing))
                    .configure(|config| {
                        if metrics_here {
                            config.service(
                                web::resource("/metrics").get(tessera_web::metrics_handler),
                            );
                        }
                    })
            },
            listener,
            settings.request_timeout,
            settings.workers,
        )
        .map_err(bind_error)?;
        Ok(Application {
            addr,
            jwks,
            revocations,
            audit,
            server,
            metrics,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's bound address, when `/metrics` is served on one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The key cache, e.g. for its fetch counters.
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// Fetches the signing keys now, so the first request finds them warm. Failures are
    /// logged; requests will retry.
    pub async fn prefetch_keys(&self) {
        self.jwks.prefetch().await;
    }

    /// The revocation list followed from the issuer's feed, when there is one.
    pub fn revocations(&self) -> Option<&Arc<RevocationList>> {
        self.revocations.as_ref()
    }

    /// Waits (at most `timeout`) for the revocation feed's first answer, so that the
    /// first requests are checked against the list in force. Whether it came; `true`
    /// without a feed.
    pub async fn sync_revocations(&self, timeout: Duration) -> bool {
        match &self.revocations {
            Some(list) => list.synced(timeout).await,
            None => true,
        }
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (which stops the metrics listener too), then waits for the
    /// audit events already recorded to be written.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let serving =
            tessera_web::serve_with_metrics(self.server, self.metrics.map(|(_, server)| server));
        self.audit
            .outlive(serving, tessera_web::SHUTDOWN_FLUSH_LIMIT)
            .await
    }

    /// The audit log: tests [`flush`](AuditLog::flush) it before reading the store.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }
}

/// The settings, checked and turned into the parts they configure: everything that can
/// refuse a setting happens here, before anything is bound or spawned.
struct Checked {
    jwks: Arc<JwksCache>,
    guard: Guard,
    cors: CorsOrigins,
}

impl Checked {
    fn from(settings: &Settings, store: &Arc<dyn Store>) -> Result<Self, StartupError> {
        let issuer = tessera_core::parse_issuer(&settings.issuer).map_err(|e| {
            StartupError::Config(format!(
                "invalid issuer {:?}: {}",
                settings.issuer,
                e.message()
            ))
        })?;
        let source = match &settings.jwks_url {
            Some(url) => JwksSource::Url(url.clone()),
            None => JwksSource::Issuer(issuer.clone()),
        };
        let mut jwks_config = JwksConfig::new(source);
        jwks_config.cooldown = settings.jwks_cooldown;
        jwks_config.max_stale = settings.jwks_max_stale;
        jwks_config.allow_http = settings.jwks_allow_http;
        jwks_config.clock = settings.clock.clone();
        let jwks =
            Arc::new(JwksCache::new(jwks_config).map_err(|e| StartupError::Config(e.to_string()))?);
        let mut validation = ValidationConfig::new(issuer.clone(), settings.audience.clone());
        validation.leeway = settings.leeway;
        validation.cache_capacity = settings.token_cache;
        let mut validator = Validator::new(validation, jwks.clone());
        if let Some(feed) = &settings.revocation {
            validator = validator.with_revocations(follow(settings, &issuer, feed)?);
        }
        let mut guard = Guard::new(validator);
        if let Some(opaque) = opaque_tokens(settings, issuer, store)? {
            guard = guard
                .with_opaque(opaque)
                .with_inactive_cache(INACTIVE_CACHE_TTL, INACTIVE_CACHE_CAPACITY);
        }
        let cors = CorsOrigins::parse(
            &settings.cors_origins,
            "GET, POST, PATCH, DELETE",
            "WWW-Authenticate, Server-Timing, Tessera-Authz-Lookups, Location",
        )
        .map_err(StartupError::Config)?;
        if settings.open_listing {
            loopback_only(&settings.addr)?;
            tracing::warn!(
                "GET /open/companies/{{company}}/users lists users with NO authorization (benchmark ceiling); never expose this server"
            );
        }
        Ok(Checked { jwks, guard, cors })
    }
}

/// Refuses an address that is not loopback only: the open benchmark listing serves every
/// company's users with no authorization. `0.0.0.0` and `::` are every interface.
fn loopback_only(addr: &str) -> Result<(), StartupError> {
    use std::net::ToSocketAddrs;
    let refused = |why: String| {
        StartupError::Config(format!(
            "the open benchmark listing (--benchmark-open-listing) serves users with no \
             authorization, so it needs a loopback listen address (127.0.0.0/8 or ::1): {why}"
        ))
    };
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| refused(format!("cannot resolve {addr:?}: {e}")))?
        .collect();
    match resolved
        .iter()
        .find(|a| !tessera_web::net::canonical(a.ip()).is_loopback())
    {
        Some(open) if open.to_string() == addr => Err(refused(format!("{addr} is not"))),
        Some(open) => Err(refused(format!("{addr} ({open}) is not"))),
        None if resolved.is_empty() => Err(refused(format!("{addr:?} names no address"))),
        None => Ok(()),
    }
}

/// The revocation list, following the feed on a task of its own from now on.
fn follow(
    settings: &Settings,
    issuer: &str,
    feed: &RevocationFeed,
) -> Result<Arc<RevocationList>, StartupError> {
    let raw = feed
        .url
        .clone()
        .unwrap_or_else(|| format!("{issuer}/oauth/revocations"));
    let url = url::Url::parse(&raw)
        .map_err(|e| StartupError::Config(format!("invalid revocation feed URL {raw:?}: {e}")))?;
    let mut config = RevocationConfig::new(url, &feed.client_id, &feed.client_secret);
    config.wait = feed.wait;
    config.max_stale = feed.max_stale;
    config.on_stale = feed.on_stale;
    config.allow_http = settings.jwks_allow_http;
    RevocationList::follow(config).map_err(|e| StartupError::Config(e.to_string()))
}

/// How the guard validates opaque tokens, as `settings.opaque` says: `None` refuses them.
fn opaque_tokens(
    settings: &Settings,
    issuer: String,
    store: &Arc<dyn Store>,
) -> Result<Option<Arc<dyn OpaqueTokens>>, StartupError> {
    let source = match &settings.opaque {
        OpaqueValidation::Store => Source::Store,
        OpaqueValidation::Introspection {
            url,
            client_id,
            client_secret,
        } => {
            let url = url
                .clone()
                .unwrap_or_else(|| format!("{issuer}/oauth/introspect"));
            let introspection = Introspection::new(
                url,
                client_id,
                client_secret,
                Duration::from_secs(5),
                settings.jwks_allow_http,
            )
            .map_err(|e| StartupError::Config(e.to_string()))?;
            Source::Introspection(match settings.introspection_cache {
                Some(ttl) => introspection.with_cache(ttl, INTROSPECTION_CACHE_CAPACITY),
                None => introspection,
            })
        }
        OpaqueValidation::Off => return Ok(None),
    };
    Ok(Some(Arc::new(UserOpaque {
        source,
        store: store.clone(),
        issuer,
        audience: settings.audience.clone(),
    })))
}

/// What every worker's `App` shares, as app data: the extractors, middleware and handlers
/// find each part there by its type.
#[derive(Clone)]
struct Shared {
    guard: web::Data<Guard>,
    store: web::Data<dyn Store>,
    cors: web::Data<CorsOrigins>,
    http_metrics: web::Data<HttpMetrics>,
    audit: web::Data<routes::Audit>,
    work: web::Data<routes::Work>,
    limits: web::Data<Limits>,
}

/// Wires the checked parts together: the metrics registry and what it reads at scrape
/// time, and the audit log's writer task. Returns the app data and the audit log, which
/// the server flushes when it stops.
fn wire(settings: &Settings, checked: Checked, store: Arc<dyn Store>) -> (Shared, AuditLog) {
    let Checked { jwks, guard, cors } = checked;
    let registry = Arc::new(Registry::new());
    let http_metrics = HttpMetrics::new(registry.clone());
    let limits = Arc::new(Limits::new(
        settings.rate_limits,
        settings.trusted_proxies.clone(),
        settings.clock.clone(),
    ));
    let threads = settings
        .hash_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let work = web::Data::new(routes::Work {
        hasher: Hasher::new(threads, settings.hash_queue),
        limits: limits.clone(),
    });
    register_metrics(&registry, &guard, &jwks, &store);
    register_limit_metrics(&registry, &work);
    let audit = AuditLog::spawn(store.clone());
    let audit_data = web::Data::new(routes::Audit {
        log: audit.clone(),
        proxies: settings.trusted_proxies.clone(),
        clock: settings.clock.clone(),
    });
    let shared = Shared {
        guard: web::Data::new(guard),
        store: web::Data::from(store),
        cors: web::Data::new(cors),
        http_metrics: web::Data::new(http_metrics),
        audit: audit_data,
        work,
        limits: web::Data::from(limits),
    };
    (shared, audit)
}

/// With [`Settings::metrics_addr`], binds it and builds the server of `/metrics` and a
/// copy of `/healthz` there; the main listener then has no `/metrics`.
fn metrics_listener(
    settings: &Settings,
    shared: &Shared,
) -> Result<Option<(SocketAddr, Server)>, StartupError> {
    let Some(metrics_addr) = &settings.metrics_addr else {
        return Ok(None);
    };
    let (store, guard) = (shared.store.clone(), shared.guard.clone());
    tessera_web::serve_metrics(
        metrics_addr,
        shared.http_metrics.clone(),
        move |config| {
            config.service(
                web::resource("/healthz")
                    .app_data(store.clone())
                    .app_data(guard.clone())
                    .get(routes::healthz),
            );
        },
        settings.request_timeout,
    )
    .map(Some)
    .map_err(|reason| StartupError::Bind {
        addr: metrics_addr.clone(),
        reason,
    })
}

/// The routes. The API's resources answer CORS (the `/healthz` one does not, nor
/// `/metrics`, added beside them when it has no listener of its own); `open_listing` adds
/// the unauthorized benchmark listing.
fn configure(config: &mut web::ServiceConfig, open_listing: bool) {
    let api = |path: &str| {
        web::resource(path.to_owned())
            .wrap(from_fn(crate::limits::invalid_tokens))
            .wrap(from_fn(tessera_web::cors))
    };
    config
        .service(web::resource("/healthz").get(routes::healthz))
        .service(api("/me").get(routes::me))
        .service(
            api("/companies/{company}/users")
                .get(routes::list)
                .post(routes::create),
        )
        .service(
            api("/companies/{company}/users/{id}")
                .get(routes::get)
                .patch(routes::update)
                .delete(routes::delete),
        )
        .service(api("/companies/{company}/users/{id}/revoke").post(routes::revoke));
    if open_listing {
        config.service(web::resource("/open/companies/{company}/users").get(routes::list_open));
    }
}

/// The series of the rate limits, the password hashing pool and the inactive-token
/// cache.
fn register_limit_metrics(registry: &Registry, work: &web::Data<routes::Work>) {
    let limited = work.clone();
    registry.collect(
        "tessera_rate_limited_total",
        "Requests refused with 429 by a rate limit, by limit (invalid_token per address, failed_create per admin).",
        MetricKind::Counter,
        &["limit"],
        move || {
            limited
                .limits
                .refused()
                .into_iter()
                .map(|(name, n)| (vec![name.to_owned()], n as f64))
                .collect()
        },
    );
    let hashing = work.clone();
    registry.collect(
        "tessera_password_hashes_running",
        "Password hashes running now on the hashing threads.",
        MetricKind::Gauge,
        &[],
        move || vec![(Vec::new(), hashing.hasher.stats().running as f64)],
    );
    let peak = work.clone();
    registry.collect(
        "tessera_password_hashes_peak",
        "The most password hashes that ever ran at once: never more than the hashing threads.",
        MetricKind::Gauge,
        &[],
        move || vec![(Vec::new(), peak.hasher.stats().peak as f64)],
    );
    let refused = work.clone();
    registry.collect(
        "tessera_password_hashes_refused_total",
        "Password hashes refused with 503 because the hashing queue was full.",
        MetricKind::Counter,
        &[],
        move || vec![(Vec::new(), refused.hasher.stats().refused as f64)],
    );
}

/// The resource server's own series beside the HTTP ones: validation outcomes, JWKS
/// fetches and the database pool, all read when `/metrics` is scraped.
fn register_metrics(
    registry: &Registry,
    guard: &Guard,
    jwks: &Arc<JwksCache>,
    store: &Arc<dyn Store>,
) {
    let outcomes = guard.clone();
    registry.collect(
        "tessera_token_validations_total",
        "Bearer tokens checked, by outcome: valid, or why not (expired, signature, unknown_key, ...).",
        MetricKind::Counter,
        &["outcome"],
        move || {
            outcomes
                .outcomes()
                .into_iter()
                .map(|(name, n)| (vec![name.to_owned()], n as f64))
                .collect()
        },
    );
    let fetches = jwks.clone();
    registry.collect(
        "tessera_jwks_fetches_total",
        "JWKS fetch attempts, by result (updated, not_modified, failed).",
        MetricKind::Counter,
        &["result"],
        move || {
            let stats = fetches.stats();
            let updated = stats
                .fetches
                .saturating_sub(stats.failures)
                .saturating_sub(stats.not_modified);
            vec![
                (vec!["updated".to_owned()], updated as f64),
                (vec!["not_modified".to_owned()], stats.not_modified as f64),
                (vec!["failed".to_owned()], stats.failures as f64),
            ]
        },
    );
    let unknown = jwks.clone();
    registry.collect(
        "tessera_jwks_unknown_kid_refetches_total",
        "JWKS fetches forced by a token signed with a key not in the cache.",
        MetricKind::Counter,
        &[],
        move || vec![(Vec::new(), unknown.stats().unknown_kid as f64)],
    );
    let inactive = guard.clone();
    registry.collect(
        "tessera_opaque_inactive_cache_lookups_total",
        "Opaque-token lookups in the cache of tokens recently found inactive, by result: hit (refused with no lookup) or miss.",
        MetricKind::Counter,
        &["result"],
        move || match inactive.inactive_cache_stats() {
            Some(stats) => vec![
                (vec!["hit".to_owned()], stats.hits as f64),
                (vec!["miss".to_owned()], stats.misses as f64),
            ],
            None => Vec::new(),
        },
    );
    let cache = guard.clone();
    registry.collect(
        "tessera_token_cache_lookups_total",
        "Verified-token cache lookups, by result: hit (no signature verified) or miss.",
        MetricKind::Counter,
        &["result"],
        move || match cache.validator().cache_stats() {
            Some(stats) => vec![
                (vec!["hit".to_owned()], stats.hits as f64),
                (vec!["miss".to_owned()], stats.misses as f64),
            ],
            None => Vec::new(),
        },
    );
    if let Some(list) = guard.validator().revocations().cloned() {
        let size = list.clone();
        registry.collect(
            "tessera_revocation_entries",
            "Entries in force in the revocation list followed from the issuer's feed.",
            MetricKind::Gauge,
            &[],
            move || vec![(Vec::new(), size.stats().entries as f64)],
        );
        registry.collect(
            "tessera_revocation_feed_age_seconds",
            "Seconds since the revocation feed last answered (NaN before its first answer).",
            MetricKind::Gauge,
            &[],
            move || {
                let age = list.stats().age.map_or(f64::NAN, |age| age.as_secs_f64());
                vec![(Vec::new(), age)]
            },
        );
    }
    tessera_web::metrics::register_pool_metrics(registry, store);
}
