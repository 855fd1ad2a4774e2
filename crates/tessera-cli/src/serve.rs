use std::future::Future;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use anyhow::{Context, bail};
use chrono::Utc;
use tessera_store::Store;
use tokio::task::JoinHandle;

use crate::args::Common;
use crate::{admin, demo, keys};

fn authz_settings(
    common: &Common,
    issuer: Option<String>,
    feed_reader_secret: Option<tessera_authz::FeedReaderSecret>,
) -> anyhow::Result<tessera_authz::Settings> {
    let master_key = keys::master_key(common)?;
    Ok(tessera_authz::Settings {
        addr: common.authz_addr.clone(),
        issuer,
        audience: common.audience.clone(),
        access_token_ttl: Duration::from_secs(common.access_token_ttl),
        refresh_token_ttl: Duration::from_secs(common.refresh_token_ttl),
        keys: common.key_schedule(),
        master_key,
        rate_limits: common.rate_limit == "on",
        trusted_proxies: common.trusted_proxies(),
        cors_origins: common.cors_origins.clone(),
        request_timeout: common.request_timeout,
        feed_reader_secret,
        audit_retention: common.audit_retention.0,
        durable_token_audit: common.audit_durability == "durable",
        metrics_addr: common
            .single_metrics_addr(common.authz_metrics_addr.as_ref(), "--authz-metrics-addr")?,
        ..tessera_authz::Settings::default()
    })
}

async fn build_authz(
    common: &Common,
    store: std::sync::Arc<dyn Store>,
    issuer: Option<String>,
    feed_reader_secret: Option<tessera_authz::FeedReaderSecret>,
) -> anyhow::Result<tessera_authz::Application> {
    let settings = authz_settings(common, issuer, feed_reader_secret)?;
    let sealed = settings.master_key.is_some();
    let app = tessera_authz::Application::build(settings, store).await?;
    if let Some(metrics) = app.metrics_addr() {
        println!("authorization server metrics listening on http://{metrics} (/metrics, /healthz)");
    }
    if !sealed {
        tracing::warn!(
            "TESSERA_MASTER_KEY is not set: private signing keys are stored unencrypted; \
             create a master key with `tessera keys master-key` (see docs/keys.md)"
        );
    }
    println!(
        "authorization server listening on http://{} (issuer {}, signing key {})",
        app.addr(),
        app.issuer(),
        app.signing_kid()
    );
    Ok(app)
}

/// Builds the resource server; `jwks_url` overrides discovery through the issuer's
/// metadata, `allow_http` permits plain http to a non-loopback key source.
async fn build_resource(
    common: &Common,
    store: std::sync::Arc<dyn Store>,
    issuer: &str,
    jwks_url: Option<String>,
    introspection_url: Option<String>,
    revocation: Option<tessera_resource::RevocationFeed>,
    allow_http: bool,
) -> anyhow::Result<tessera_resource::Application> {
    let mut settings = tessera_resource::Settings::new(issuer);
    settings.revocation = revocation;
    settings.opaque = opaque_validation(common, introspection_url)?;
    settings.addr = common.resource_addr.clone();
    settings.audience = common.audience.clone();
    settings.jwks_url = jwks_url;
    settings.jwks_allow_http = allow_http;
    settings.cors_origins = common.cors_origins.clone();
    settings.trusted_proxies = common.trusted_proxies();
    settings.request_timeout = common.request_timeout;
    settings.token_cache = common.token_cache_size;
    settings.introspection_cache =
        Some(common.introspection_cache_ttl).filter(|ttl| !ttl.is_zero());
    settings.open_listing = common.benchmark_open_listing;
    settings.metrics_addr = common.single_metrics_addr(
        common.resource_metrics_addr.as_ref(),
        "--resource-metrics-addr",
    )?;
    settings.jwks_max_stale = common.jwks_max_stale;
    settings.rate_limits = common.rate_limit == "on";
    let app = tessera_resource::Application::build(settings, store).await?;
    if let Some(metrics) = app.metrics_addr() {
        println!("resource server metrics listening on http://{metrics} (/metrics, /healthz)");
    }
    if app.revocations().is_none() {
        println!(
            "JWT revocations are NOT enforced: a revoked JWT works here until it expires. \
             Give --client-id and --client-secret (a confidential client) to follow the \
             issuer's revocation feed."
        );
        tracing::warn!("JWT revocations are not enforced: no client credentials for the feed");
    }
    println!(
        "resource server listening on http://{} (issuer {issuer})",
        app.addr()
    );
    Ok(app)
}

/// `tessera serve`: both servers in one process, seeding the demo into an empty database.
pub async fn serve(common: &Common) -> anyhow::Result<()> {
    // Refuse a bad resource-server configuration before anything starts.
    opaque_validation(common, None)?;
    if common.metrics_addr.is_some() {
        bail!(
            "--metrics-addr (TESSERA_METRICS_ADDR) names the metrics address of the one server \
             `tessera authz` or `tessera resource` runs; `tessera serve` runs two: give \
             --authz-metrics-addr and --resource-metrics-addr"
        );
    }
    check_plaintext_keys(common, &[&common.authz_addr, &common.resource_addr]).await?;
    let issuer = common
        .issuer
        .clone()
        .or_else(|| default_serve_issuer(&common.authz_addr));
    let store = admin::open(common).await?;
    if !common.no_demo {
        let seed = tokio::task::spawn_blocking(demo::seed).await??;
        if store
            .seed_if_empty(&seed, Utc::now())
            .await
            .context("cannot seed the demo data")?
        {
            print!("{}", demo::describe());
        }
    }
    // The resource server follows the feed in this process with a secret that lives only
    // in memory.
    let feed_secret = tessera_core::secret::generate()?;
    let authz = build_authz(
        common,
        store.clone(),
        issuer,
        Some(tessera_authz::FeedReaderSecret(feed_secret.clone())),
    )
    .await?;
    // The resource server reaches the keys and the feed directly at the bound address (on
    // loopback when it listens on every interface), whatever public issuer URL the tokens
    // carry.
    let local = loopback(authz.addr());
    let jwks_url = format!("http://{local}/.well-known/jwks.json");
    let issuer = authz.issuer().to_owned();
    let introspection_url = format!("http://{local}/oauth/introspect");
    let mut feed = revocation_feed(common, tessera_authz::FEED_READER.into(), feed_secret)?;
    feed.url = Some(format!("http://{local}/oauth/revocations"));
    let resource = build_resource(
        common,
        store,
        &issuer,
        Some(jwks_url),
        Some(introspection_url),
        Some(feed),
        false,
    )
    .await?;
    let authz = Running::authz(authz);
    resource.prefetch_keys().await;
    sync_revocations(&resource).await;
    let resource = Running::spawn(
        "resource server",
        resource.handle(),
        resource.run_until_stopped(),
    );
    run_until_signal(vec![authz, resource]).await
}

/// `tessera authz`: the authorization server alone; never seeds.
pub async fn authz(common: &Common) -> anyhow::Result<()> {
    check_plaintext_keys(common, &[&common.authz_addr]).await?;
    let store = admin::open(common).await?;
    let app = build_authz(common, store, common.issuer.clone(), None).await?;
    run_until_signal(vec![Running::authz(app)]).await
}

/// `tessera resource`: the resource server alone, trusting `--issuer`.
pub async fn resource(
    common: &Common,
    jwks_url: Option<String>,
    allow_http: bool,
) -> anyhow::Result<()> {
    let Some(issuer) = common.issuer.clone() else {
        bail!(
            "tessera resource needs --issuer (or TESSERA_ISSUER): the authorization server whose tokens it accepts"
        );
    };
    let store = admin::open(common).await?;
    let revocation = match common.client_credentials() {
        (Some(id), Some(secret)) => {
            let mut feed = revocation_feed(common, id, secret)?;
            feed.url = common.revocation_feed_url.clone();
            Some(feed)
        }
        _ => None,
    };
    let app = build_resource(
        common, store, &issuer, jwks_url, None, revocation, allow_http,
    )
    .await?;
    sync_revocations(&app).await;
    let server = Running::spawn("resource server", app.handle(), app.run_until_stopped());
    run_until_signal(vec![server]).await
}

/// Refuses to run without a master key, which would keep private signing keys unencrypted
/// in the database, while listening on any of `addrs` that is not loopback (a server
/// others can reach), unless `--allow-plaintext-keys` says so.
async fn check_plaintext_keys(common: &Common, addrs: &[&str]) -> anyhow::Result<()> {
    if common.allow_plaintext_keys || keys::master_key(common)?.is_some() {
        return Ok(());
    }
    for addr in addrs {
        if !is_loopback(addr).await {
            bail!(
                "refusing to keep private signing keys unencrypted while listening on {addr}, \
                 which is not loopback: set TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE) to \
                 a master key made with `tessera keys master-key`, or pass \
                 --allow-plaintext-keys (TESSERA_ALLOW_PLAINTEXT_KEYS=true) to accept them \
                 unencrypted"
            );
        }
    }
    Ok(())
}

/// Whether the listening address `addr` (`IP:PORT` or `HOST:PORT`) is loopback only: an
/// IP in 127.0.0.0/8 or `::1`, or a host name that resolves to such addresses only. An
/// unspecified address (`0.0.0.0`, `[::]`) is every interface, not loopback; a name that
/// does not resolve counts as not loopback.
async fn is_loopback(addr: &str) -> bool {
    let loopback = |ip: std::net::IpAddr| ip.to_canonical().is_loopback();
    if let Ok(addr) = addr.parse::<std::net::SocketAddr>() {
        return loopback(addr.ip());
    }
    match tokio::net::lookup_host(addr).await {
        Ok(resolved) => {
            let ips: Vec<_> = resolved.map(|a| a.ip()).collect();
            !ips.is_empty() && ips.into_iter().all(loopback)
        }
        Err(_) => false,
    }
}

/// The issuer of `tessera serve` listening on every interface (`0.0.0.0:PORT`, `[::]:PORT`)
/// without `--issuer`, as in a container: `http://localhost:PORT`, what a browser on the
/// host uses through a published port. `None` otherwise (and for port 0, whose port is
/// not known yet: the authorization server then asks for an explicit issuer).
fn default_serve_issuer(authz_addr: &str) -> Option<String> {
    let addr = authz_addr.parse::<std::net::SocketAddr>().ok()?;
    if !addr.ip().is_unspecified() || addr.port() == 0 {
        return None;
    }
    let issuer = format!("http://localhost:{}", addr.port());
    tracing::warn!(
        "listening on {addr} without --issuer: tokens carry the issuer {issuer}; set \
         --issuer (TESSERA_ISSUER) to the URL clients use"
    );
    Some(issuer)
}

/// `addr`, or the loopback address of its family when it is unspecified (every interface).
fn loopback(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            (std::net::Ipv4Addr::LOCALHOST, addr.port()).into()
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            (std::net::Ipv6Addr::LOCALHOST, addr.port()).into()
        }
        _ => addr,
    }
}

/// How the resource server follows the revocation feed, as client `client_id`.
fn revocation_feed(
    common: &Common,
    client_id: String,
    client_secret: String,
) -> anyhow::Result<tessera_resource::RevocationFeed> {
    let mut feed = tessera_resource::RevocationFeed::new(client_id, client_secret);
    feed.wait = common.revocation_wait;
    feed.max_stale = common.revocation_max_stale;
    feed.on_stale = common
        .revocation_on_stale
        .parse()
        .map_err(|e| anyhow::anyhow!("--revocation-on-stale: {e}"))?;
    Ok(feed)
}

/// Waits a few seconds for the revocation feed's first answer before serving.
async fn sync_revocations(app: &tessera_resource::Application) {
    if !app.sync_revocations(Duration::from_secs(5)).await {
        tracing::warn!(
            "the revocation feed has not answered yet; JWTs are checked against it once it does"
        );
    }
}

/// The opaque-token path chosen on the command line; `url` overrides the issuer-derived
/// introspection endpoint.
fn opaque_validation(
    common: &Common,
    url: Option<String>,
) -> anyhow::Result<tessera_resource::OpaqueValidation> {
    use tessera_resource::OpaqueValidation;
    Ok(match common.opaque_validation.as_str() {
        "introspection" => {
            let (Some(client_id), Some(client_secret)) = common.client_credentials() else {
                bail!(
                    "--opaque-validation introspection needs --client-id and --client-secret: \
                     a confidential client registered at the issuer"
                );
            };
            OpaqueValidation::Introspection {
                url,
                client_id,
                client_secret,
            }
        }
        "off" => OpaqueValidation::Off,
        _ => OpaqueValidation::Store,
    })
}

/// A server serving on its own task.
struct Running {
    name: &'static str,
    handle: ServerHandle,
    /// Called before the stop: ends what would hold it up (the feed's long-polls).
    closing: Option<Box<dyn Fn() + Send + Sync>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn spawn(
        name: &'static str,
        handle: ServerHandle,
        serve: impl Future<Output = std::io::Result<()>> + Send + 'static,
    ) -> Self {
        Running {
            name,
            handle,
            closing: None,
            task: tokio::spawn(serve),
        }
    }

    /// The authorization server, whose feed's long-polls end before it stops.
    fn authz(app: tessera_authz::Application) -> Self {
        let closing = Box::new(app.feed_closer());
        Running {
            closing: Some(closing),
            ..Running::spawn(
                "authorization server",
                app.handle(),
                app.run_until_stopped(),
            )
        }
    }
}

/// Waits for Ctrl-C or SIGTERM, then stops every server gracefully and reports the first
/// failure.
async fn run_until_signal(servers: Vec<Running>) -> anyhow::Result<()> {
    shutdown_signal().await;
    tracing::info!("shutting down");
    for closing in servers.iter().filter_map(|server| server.closing.as_ref()) {
        closing();
    }
    for server in &servers {
        server.handle.stop(true).await;
    }
    for server in servers {
        server
            .task
            .await
            .with_context(|| format!("the {} task failed", server.name))?
            .with_context(|| format!("the {} failed", server.name))?;
    }
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
