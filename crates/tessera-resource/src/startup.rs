use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tessera_guard::{
    Guard, Introspection, JwksCache, JwksConfig, JwksSource, ValidationConfig, Validator,
};

use crate::opaque::{IntrospectedOpaque, StoreOpaque};
use tessera_store::Store;
use thiserror::Error;

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
}

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
            jwks_allow_http: false,
            opaque: OpaqueValidation::Store,
            workers: None,
            clock: tessera_core::Clock::system(),
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
    server: Server,
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
        jwks_config.allow_http = settings.jwks_allow_http;
        jwks_config.clock = settings.clock.clone();
        let jwks =
            Arc::new(JwksCache::new(jwks_config).map_err(|e| StartupError::Config(e.to_string()))?);
        let mut validation = ValidationConfig::new(issuer.clone(), settings.audience.clone());
        validation.leeway = settings.leeway;
        let mut guard = Guard::new(Validator::new(validation, jwks.clone()));
        let audience = settings.audience.clone();
        match &settings.opaque {
            OpaqueValidation::Store => {
                let opaque = StoreOpaque {
                    store: store.clone(),
                    issuer: issuer.clone(),
                    audience,
                };
                guard = guard.with_opaque(Arc::new(opaque));
            }
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
                let opaque = IntrospectedOpaque {
                    introspection,
                    store: store.clone(),
                    issuer: issuer.clone(),
                    audience,
                };
                guard = guard.with_opaque(Arc::new(opaque));
            }
            OpaqueValidation::Off => {}
        }
        let guard = web::Data::new(guard);
        let store: web::Data<dyn Store> = web::Data::from(store);

        let bind_error = |reason| StartupError::Bind {
            addr: settings.addr.clone(),
            reason,
        };
        let listener = TcpListener::bind(&settings.addr).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(guard.clone())
                .app_data(store.clone())
                .wrap(from_fn(headers::report))
                .service(web::resource("/healthz").get(routes::healthz))
                .service(web::resource("/me").get(routes::me))
                .service(
                    web::resource("/companies/{company}/users")
                        .get(routes::list)
                        .post(routes::create),
                )
                .service(
                    web::resource("/companies/{company}/users/{id}")
                        .get(routes::get)
                        .patch(routes::update)
                        .delete(routes::delete),
                )
        })
        .listen(listener)
        .map_err(bind_error)?
        .disable_signals();
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        Ok(Application {
            addr,
            jwks,
            server: server.run(),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
