//! Start-up: settings checks, wiring, routes, and the loops that run beside the server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::web::{self, Bytes};
use actix_web::{App, middleware};
use tessera_store::{AuditLog, Store, StoreError};
use tessera_web::metrics::Registry;
use tessera_web::{CorsOrigins, HttpMetrics};
use thiserror::Error;

use crate::feed_head::FeedHead;
use crate::grant::GrantEngine;
use crate::keys::{KEY_REFRESH_INTERVAL, KeyError, KeyManager};
use crate::limits::RateLimits;
use crate::passwords::{PasswordVerifier, Passwords};
use crate::retention;
use crate::settings::{MAX_ACCESS_TOKEN_TTL_SECS, MAX_REFRESH_TOKEN_TTL_SECS, Settings};
use crate::state::AppState;
use crate::{authorize, feed, introspect, logout, pages, token, userinfo, wellknown};

/// Why the server could not start. Each message is one line, fit for a terminal.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: std::io::Error,
    },
}

/// A bound, ready-to-run authorization server.
pub struct Application {
    store: Arc<dyn Store>,
    addr: SocketAddr,
    issuer: String,
    keys: Arc<KeyManager>,
    clock: tessera_core::Clock,
    audit: AuditLog,
    feed: Arc<FeedHead>,
    server: Server,
    /// How long audit events are kept, checked; `None` keeps them forever.
    audit_retention: Option<chrono::Duration>,
    /// The metrics listener's address and server, when `/metrics` has its own.
    metrics: Option<(SocketAddr, Server)>,
}

impl Application {
    /// Binds `settings.addr`, loads the active signing key (creating and persisting one on
    /// first start), and builds the server. Nothing is served until
    /// [`run_until_stopped`](Self::run_until_stopped).
    pub async fn build(settings: Settings, store: Arc<dyn Store>) -> Result<Self, StartupError> {
        check_listen(&settings)?;
        let bind_error = |reason| StartupError::Bind {
            addr: settings.addr.clone(),
            reason,
        };
        let listener = TcpListener::bind(&settings.addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let issuer = issuer(&settings, addr)?;
        let cors = check_settings(&settings)?;
        let audit_retention = settings
            .audit_retention
            .map(retention::check)
            .transpose()
            .map_err(StartupError::Config)?;
        let (state, http_metrics) = wire(&settings, store.clone(), issuer.clone()).await?;
        let keys = state.grants.keys.clone();
        let audit = state.grants.audit.clone();
        let feed = state.grants.feed.clone();

        let hsts = issuer.starts_with("https://");
        let state = web::Data::new(state);
        let cors = web::Data::new(cors);
        let http_metrics = web::Data::new(http_metrics);
        let metrics = metrics_listener(&settings, &state, &http_metrics)?;
        let metrics_here = metrics.is_none();
        let server = tessera_web::serve(
            move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(cors.clone())
                    .app_data(http_metrics.clone())
                    .wrap(tessera_web::security_headers(hsts))
                    .wrap(middleware::from_fn(HttpMetrics::middleware))
                    .configure(configure)
                    .configure(|cfg| {
                        if metrics_here {
                            cfg.service(
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
            store,
            addr,
            issuer,
            keys,
            clock: settings.clock,
            audit,
            feed,
            server,
            audit_retention,
            metrics,
        })
    }

    /// The metrics listener's bound address, when `/metrics` is served on one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The bound address (with the real port when the settings asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The issuer URL in use.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The id of the key that signs now.
    pub fn signing_kid(&self) -> String {
        self.keys.signer().kid().to_owned()
    }

    /// The signing keys: for `tessera serve` to report, and for tests that move a pinned
    /// clock and then [`tick`](KeyManager::tick) instead of waiting for the schedule.
    pub fn keys(&self) -> &Arc<KeyManager> {
        &self.keys
    }

    /// A handle to stop the server gracefully. Call the closer of [`feed_closer`](Self::feed_closer)
    /// first, or the stop waits for the revocation feed's long-polls to end (up to 30 s).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// A closer for the revocation feed's long-polls: calling it makes every waiting
    /// request answer at once. For a graceful stop.
    pub fn feed_closer(&self) -> impl Fn() + Send + Sync + 'static {
        let feed = self.feed.clone();
        move || feed.close()
    }

    /// Serves until the server is stopped through its [`handle`](Self::handle) (which
    /// stops the metrics listener too), purging expired codes, sessions and tokens from
    /// the store every [`PURGE_INTERVAL`], audit events past the retention every
    /// [`retention::AUDIT_PURGE_INTERVAL`], and keeping the signing keys on schedule every
    /// [`KEY_REFRESH_INTERVAL`]. Once stopped, it waits (at most 10 s) for the audit events
    /// already recorded to be written.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let feed_store = self.store.clone();
        let retention = self.audit_retention.map(|retention| {
            retention::purge_periodically(
                self.store.clone(),
                self.audit.clone(),
                self.clock.clone(),
                retention,
            )
        });
        let serving = async {
            tokio::select! {
                served = tessera_web::serve_with_metrics(
                    self.server,
                    self.metrics.map(|(_, server)| server),
                ) => served,
                never = async {
                    match retention {
                        Some(purging) => purging.await,
                        None => std::future::pending().await,
                    }
                } => match never {},
                never = purge_periodically(self.store, self.clock) => match never {},
                never = rotate_periodically(self.keys) => match never {},
                never = self.feed.follow(feed_store) => match never {},
            }
        };
        self.audit
            .outlive(serving, tessera_web::SHUTDOWN_FLUSH_LIMIT)
            .await
    }

    /// The audit log: tests [`flush`](AuditLog::flush) it before reading the store.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("issuer", &self.issuer)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A default issuer of http://0.0.0.0:8080 would be a URL no client can match: listening
/// on an unspecified address needs an explicit issuer.
fn check_listen(settings: &Settings) -> Result<(), StartupError> {
    let unspecified = settings
        .addr
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified());
    if unspecified && settings.issuer.is_none() {
        return Err(StartupError::Config(format!(
            "listening on {} needs an explicit issuer (--issuer or TESSERA_ISSUER): \
             the public URL clients use to reach this server",
            settings.addr
        )));
    }
    Ok(())
}

/// The issuer: the configured one, checked, or this server's own address.
fn issuer(settings: &Settings, addr: SocketAddr) -> Result<String, StartupError> {
    match &settings.issuer {
        Some(issuer) => tessera_core::parse_issuer(issuer).map_err(|e| {
            StartupError::Config(format!("invalid issuer {issuer:?}: {}", e.message()))
        }),
        None => Ok(format!("http://{addr}")),
    }
}

/// Refuses unusable settings: an empty audience, lifetimes out of bounds, an unsafe key
/// schedule, malformed CORS origins (which it returns parsed).
fn check_settings(settings: &Settings) -> Result<CorsOrigins, StartupError> {
    if settings.audience.is_empty() {
        return Err(StartupError::Config("the audience may not be empty".into()));
    }
    // The same bounds as the command line's: expiry times stay well inside what both
    // databases store and compare.
    if !(1..=MAX_ACCESS_TOKEN_TTL_SECS).contains(&settings.access_token_ttl.as_secs()) {
        return Err(StartupError::Config(format!(
            "the access-token lifetime must be 1 to {MAX_ACCESS_TOKEN_TTL_SECS} seconds"
        )));
    }
    if !(1..=MAX_REFRESH_TOKEN_TTL_SECS).contains(&settings.refresh_token_ttl.as_secs()) {
        return Err(StartupError::Config(format!(
            "the refresh-token lifetime must be 1 to {MAX_REFRESH_TOKEN_TTL_SECS} seconds"
        )));
    }
    settings
        .keys
        .check(settings.access_token_ttl)
        .map_err(StartupError::Config)?;
    CorsOrigins::parse(
        &settings.cors_origins,
        "GET, POST",
        "WWW-Authenticate, Retry-After, ETag",
    )
    .map_err(StartupError::Config)
}

/// Builds what the handlers share from checked settings: the audit log, the signing keys
/// (started), the metrics, the limits, the password checks and the grant engine; and the
/// HTTP metrics, on the same registry.
async fn wire(
    settings: &Settings,
    store: Arc<dyn Store>,
    issuer: String,
) -> Result<(AppState, HttpMetrics), StartupError> {
    let audit = AuditLog::spawn(store.clone());
    let keys = Arc::new(
        KeyManager::start(
            store.clone(),
            settings.clock.clone(),
            settings.keys,
            settings.master_key.clone(),
            Some(audit.clone()),
        )
        .await?,
    );
    let registry = Arc::new(Registry::new());
    let http_metrics = HttpMetrics::new(registry.clone());
    let tokens_issued = registry.counter(
        "tessera_tokens_issued_total",
        "Access tokens issued, by grant and format.",
        &["grant", "format"],
    );
    let introspections = registry.counter(
        "tessera_introspections_total",
        "Introspection answers, by whether the token was active.",
        &["active"],
    );
    tessera_web::metrics::register_pool_metrics(&registry, &store);
    let limits = Arc::new(RateLimits::new(settings.rate_limits, &registry).kept_in(store.clone()));
    let metadata = serde_json::to_vec(&wellknown::metadata(&issuer))
        .map_err(|e| StartupError::Config(format!("cannot serialise the metadata: {e}")))?;
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let passwords = Passwords {
        verifier: PasswordVerifier::new(settings.password_concurrency.unwrap_or(cpus)),
        limits: limits.clone(),
        store: store.clone(),
        audit: audit.clone(),
        clock: settings.clock.clone(),
    };
    let state = AppState {
        secure_cookies: issuer.starts_with("https://"),
        durable_token_audit: settings.durable_token_audit,
        origin: url::Url::parse(&issuer)
            .map(|u| u.origin().ascii_serialization())
            .map_err(|e| StartupError::Config(format!("invalid issuer {issuer:?}: {e}")))?,
        grants: GrantEngine {
            store: store.clone(),
            keys,
            clock: settings.clock.clone(),
            issuer,
            audience: settings.audience.clone(),
            access_token_ttl: settings.access_token_ttl,
            refresh_token_ttl: settings.refresh_token_ttl,
            opaque_tokens: tessera_store::TokenBatcher::spawn(store),
            passwords,
            audit,
            feed: Arc::default(),
        },
        metadata: Bytes::from(metadata),
        limits,
        proxies: settings.trusted_proxies.clone(),
        tokens_issued,
        introspections,
        feed_reader: settings
            .feed_reader_secret
            .as_ref()
            .map(|secret| tessera_core::secret::digest(&secret.0)),
    };
    Ok((state, http_metrics))
}

/// The routes of the authorization server. Resources (not bare routes), so that a wrong
/// method is 405, not 404; the endpoints a page on a configured origin may call get CORS,
/// the HTML pages never do.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let cross_origin =
        |path: &str| web::resource(path.to_owned()).wrap(middleware::from_fn(tessera_web::cors));
    cfg.service(cross_origin("/oauth/token").post(token::token))
        .service(web::resource("/oauth/authorize").get(authorize::start))
        .service(web::resource("/oauth/authorize/login").post(authorize::login))
        .service(web::resource("/oauth/authorize/consent").post(authorize::consent))
        .service(cross_origin("/oauth/introspect").post(introspect::introspect))
        .service(cross_origin("/oauth/revoke").post(introspect::revoke))
        .service(web::resource("/oauth/revocations").get(feed::revocations))
        .service(
            cross_origin("/oauth/userinfo")
                .get(userinfo::userinfo)
                .post(userinfo::userinfo),
        )
        .service(
            web::resource("/oauth/logout")
                .get(logout::logout)
                .post(logout::logout_form),
        )
        .service(cross_origin("/.well-known/jwks.json").get(wellknown::get_jwks))
        .service(
            cross_origin("/.well-known/oauth-authorization-server").get(wellknown::get_metadata),
        )
        .service(
            cross_origin("/.well-known/openid-configuration")
                .get(wellknown::get_openid_configuration),
        )
        .service(web::resource("/healthz").get(wellknown::healthz))
        .service(web::resource("/").get(pages::index));
}

/// With [`Settings::metrics_addr`], binds it and builds the server of `/metrics` and a
/// copy of `/healthz` there; the main listener then has no `/metrics`.
fn metrics_listener(
    settings: &Settings,
    state: &web::Data<AppState>,
    http_metrics: &web::Data<HttpMetrics>,
) -> Result<Option<(SocketAddr, Server)>, StartupError> {
    let Some(metrics_addr) = &settings.metrics_addr else {
        return Ok(None);
    };
    let state = state.clone();
    tessera_web::serve_metrics(
        metrics_addr,
        http_metrics.clone(),
        move |cfg| {
            cfg.service(
                web::resource("/healthz")
                    .app_data(state.clone())
                    .get(wellknown::healthz),
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

/// How often a running server deletes expired rows. Every instance does it; the deletes
/// are idempotent.
pub const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired rows now and then every [`PURGE_INTERVAL`], for as long as it is polled.
async fn purge_periodically(
    store: Arc<dyn Store>,
    clock: tessera_core::Clock,
) -> std::convert::Infallible {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.purge_expired(clock.now_utc()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "deleted expired codes, sessions and tokens"),
            Err(err) => {
                tracing::warn!(error = %crate::error::ErrorChain(&err), "purging expired rows failed")
            }
        }
    }
}

/// Carries out key transitions and picks up key changes made elsewhere, every
/// [`KEY_REFRESH_INTERVAL`], for as long as it is polled. A failure keeps the keys in
/// use and is retried at the next tick.
async fn rotate_periodically(keys: Arc<KeyManager>) -> std::convert::Infallible {
    let mut ticks = tokio::time::interval(KEY_REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = keys.tick().await {
            tracing::warn!(error = %crate::error::ErrorChain(&err), "updating the signing keys failed");
        }
    }
}
