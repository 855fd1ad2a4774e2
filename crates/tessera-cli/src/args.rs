//! The command line. Every common flag has a `TESSERA_*` environment twin; the flag wins.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tessera_core::{
    ClientId, CompanySlug, GrantType, Role, Scope, SigningAlgorithm, TokenFormat, Username,
};

/// Tessera: an OAuth 2.0 authorization server issuing scoped JWT access tokens.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after the subcommand.
#[derive(Debug, Args)]
pub struct Common {
    /// Database URL: `sqlite://PATH` (the file is created when missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (the database must exist; it may be
    /// empty). The password is never printed.
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATABASE_URL",
        default_value = "sqlite://tessera.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// A file holding the database URL (one trailing newline is ignored), instead of
    /// `--database-url`: keeps a password out of process lists.
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATABASE_URL_FILE",
        value_name = "PATH"
    )]
    pub database_url_file: Option<std::path::PathBuf>,

    /// The most database connections each server keeps open [default: 8 for SQLite, 10
    /// for PostgreSQL]. With PostgreSQL, the servers on one database need the sum of
    /// theirs below its `max_connections`.
    #[arg(
        long,
        global = true,
        env = "TESSERA_DATABASE_POOL_SIZE",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_pool_size: Option<u32>,

    /// Address the authorization server listens on (port 0 picks a free port).
    #[arg(long, global = true, env = "TESSERA_AUTHZ_ADDR", default_value = tessera_authz::DEFAULT_ADDR)]
    pub authz_addr: String,

    /// Address the resource server listens on (port 0 picks a free port).
    #[arg(long, global = true, env = "TESSERA_RESOURCE_ADDR", default_value = tessera_resource::DEFAULT_ADDR)]
    pub resource_addr: String,

    /// Issuer URL put in tokens and metadata [default: http://<authz-addr>]; the resource
    /// server accepts tokens of this issuer and finds its keys through its metadata.
    #[arg(long, global = true, env = "TESSERA_ISSUER")]
    pub issuer: Option<String>,

    /// API identifier put in the `aud` claim; resource servers must use the same.
    #[arg(long, global = true, env = "TESSERA_AUDIENCE", default_value = tessera_authz::DEFAULT_AUDIENCE)]
    pub audience: String,

    /// Access-token lifetime in seconds (1 to 86400).
    #[arg(long, global = true, env = "TESSERA_ACCESS_TOKEN_TTL", default_value_t = tessera_authz::DEFAULT_ACCESS_TOKEN_TTL_SECS, value_parser = seconds(1, tessera_authz::MAX_ACCESS_TOKEN_TTL_SECS))]
    pub access_token_ttl: u64,

    /// Absolute lifetime of a refresh-token family in seconds (60 to 31536000): rotation
    /// never extends it.
    #[arg(long, global = true, env = "TESSERA_REFRESH_TOKEN_TTL", default_value_t = tessera_authz::DEFAULT_REFRESH_TOKEN_TTL_SECS, value_parser = seconds(60, tessera_authz::MAX_REFRESH_TOKEN_TTL_SECS))]
    pub refresh_token_ttl: u64,

    /// How the resource server validates opaque tokens: `store` (look them up in the
    /// shared token store), `introspection` (ask the issuer, RFC 7662) or `off`.
    #[arg(long, global = true, env = "TESSERA_OPAQUE_VALIDATION", default_value = "store", value_parser = ["store", "introspection", "off"])]
    pub opaque_validation: String,

    /// The resource server's client id at the issuer (a confidential client): it reads
    /// the revocation feed, and introspects with `--opaque-validation introspection`.
    /// Also `--introspection-client-id` and `TESSERA_INTROSPECTION_CLIENT_ID`.
    #[arg(
        long = "client-id",
        global = true,
        env = "TESSERA_CLIENT_ID",
        alias = "introspection-client-id"
    )]
    pub resource_client_id: Option<String>,

    /// That client's secret. Also `--introspection-client-secret` and
    /// `TESSERA_INTROSPECTION_CLIENT_SECRET`.
    #[arg(
        long = "client-secret",
        global = true,
        env = "TESSERA_CLIENT_SECRET",
        hide_env_values = true,
        alias = "introspection-client-secret",
        // A generated secret may begin with `-`.
        allow_hyphen_values = true
    )]
    pub resource_client_secret: Option<String>,

    /// A file holding that client's secret (one trailing newline is ignored), instead of
    /// `--client-secret`, which shows in process lists. Also
    /// `TESSERA_INTROSPECTION_CLIENT_SECRET_FILE`.
    #[arg(
        long = "client-secret-file",
        global = true,
        env = "TESSERA_CLIENT_SECRET_FILE",
        alias = "introspection-client-secret-file",
        value_name = "PATH"
    )]
    pub resource_client_secret_file: Option<std::path::PathBuf>,

    #[arg(
        long,
        global = true,
        env = "TESSERA_INTROSPECTION_CLIENT_ID",
        hide = true
    )]
    pub legacy_client_id: Option<String>,

    #[arg(
        long,
        global = true,
        env = "TESSERA_INTROSPECTION_CLIENT_SECRET",
        hide = true,
        hide_env_values = true
    )]
    pub legacy_client_secret: Option<String>,

    #[arg(
        long,
        global = true,
        env = "TESSERA_INTROSPECTION_CLIENT_SECRET_FILE",
        hide = true
    )]
    pub legacy_client_secret_file: Option<std::path::PathBuf>,

    /// The revocation feed the resource server follows [default:
    /// <issuer>/oauth/revocations]. Needs `--client-id` and `--client-secret`.
    #[arg(long, global = true, env = "TESSERA_REVOCATION_FEED_URL")]
    pub revocation_feed_url: Option<String>,

    /// How long the resource server's long-polls ask the revocation feed to wait for news,
    /// e.g. `25s` (1 to 30 s).
    #[arg(long, global = true, env = "TESSERA_REVOCATION_WAIT", default_value = "25s", value_parser = parse_duration)]
    pub revocation_wait: Duration,

    /// How long the resource server's revocation list may go without an answer from the
    /// feed before it is stale, e.g. `60s` (more than the wait plus 10 s).
    #[arg(long, global = true, env = "TESSERA_REVOCATION_MAX_STALE", default_value = "60s", value_parser = parse_duration)]
    pub revocation_max_stale: Duration,

    /// What a stale revocation list does to JWTs: `closed` refuses them (503 with
    /// Retry-After) until the feed answers again; `open` keeps accepting them, with a
    /// warning in the log.
    #[arg(long, global = true, env = "TESSERA_REVOCATION_ON_STALE", default_value = "closed", value_parser = ["closed", "open"])]
    pub revocation_on_stale: String,

    /// Do not seed demo data into an empty database (`serve` only). The environment twin
    /// takes `1`/`true`/`yes`; `0`, `false`, `no`, `off` or empty mean off.
    #[arg(
        long,
        global = true,
        env = "TESSERA_NO_DEMO",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_demo: bool,

    /// Algorithm of signing keys created from now on: RS256, PS256, ES256 or EdDSA.
    /// Existing keys keep theirs; the switch happens at the next rotation.
    #[arg(
        long,
        global = true,
        env = "TESSERA_KEY_ALGORITHM",
        default_value = "RS256"
    )]
    pub key_algorithm: SigningAlgorithm,

    /// Time between two signing-key activations, e.g. `30d`, `12h`, `90m`, `600s`.
    #[arg(long, global = true, env = "TESSERA_KEY_ROTATION_PERIOD", default_value = "30d", value_parser = parse_duration)]
    pub key_rotation_period: Duration,

    /// Time a new key is published in the JWKS before it signs.
    #[arg(long, global = true, env = "TESSERA_KEY_PUBLISH_AHEAD", default_value = "1d", value_parser = parse_duration)]
    pub key_publish_ahead: Duration,

    /// Time a retired key stays in the JWKS after it stopped signing.
    #[arg(long, global = true, env = "TESSERA_KEY_RETIRE_AFTER", default_value = "25h", value_parser = parse_duration)]
    pub key_retire_after: Duration,

    /// A file holding the master key that seals private signing keys at rest (one
    /// trailing newline is ignored), instead of `TESSERA_MASTER_KEY`. The master key
    /// itself is never a flag.
    #[arg(
        long,
        global = true,
        env = "TESSERA_MASTER_KEY_FILE",
        value_name = "PATH"
    )]
    pub master_key_file: Option<std::path::PathBuf>,

    /// Let `authz` and `serve` store private signing keys unencrypted (no master key)
    /// while listening on an address other than loopback, which they otherwise refuse.
    #[arg(
        long,
        global = true,
        env = "TESSERA_ALLOW_PLAINTEXT_KEYS",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub allow_plaintext_keys: bool,

    /// Rate limits and brute-force protection: `on`, or `off` only to measure raw
    /// throughput (docs/security.md lists the limits).
    #[arg(long, global = true, env = "TESSERA_RATE_LIMIT", default_value = "on", value_parser = ["on", "off"])]
    pub rate_limit: String,

    /// An origin whose pages may call the servers' APIs from a browser (CORS), e.g.
    /// `https://app.example.com`; repeat for several. None by default.
    #[arg(
        long = "cors-origin",
        global = true,
        env = "TESSERA_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,

    /// A proxy (address or CIDR network) whose `X-Forwarded-For` names the client, for
    /// rate limits and the audit log; repeat for several. None by default: the TCP peer is
    /// the client.
    #[arg(
        long = "trusted-proxy",
        global = true,
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "ADDR[/PREFIX]"
    )]
    pub trusted_proxies: Vec<tessera_web::net::ProxyNetwork>,

    /// Time a client has to send a request's head before it gets 408, e.g. `5s`.
    #[arg(long, global = true, env = "TESSERA_REQUEST_TIMEOUT", default_value = "5s", value_parser = parse_request_timeout)]
    pub request_timeout: Duration,

    /// Verified JWTs the resource server remembers (by SHA-256 digest, until they expire,
    /// never past the removal of their key), so a token seen again skips its signature
    /// check; 0 verifies every request.
    #[arg(
        long,
        global = true,
        env = "TESSERA_TOKEN_CACHE_SIZE",
        default_value_t = tessera_resource::DEFAULT_TOKEN_CACHE_CAPACITY,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000)
    )]
    pub token_cache_size: usize,

    /// With `--opaque-validation introspection`: keep each active answer this long, e.g.
    /// `5s` (never past the token's expiry). Off (`0s`) by default: a token revoked at the
    /// issuer keeps working on this resource server until its answer ages out.
    #[arg(long, global = true, env = "TESSERA_INTROSPECTION_CACHE_TTL", default_value = "0s", value_parser = parse_introspection_cache_ttl)]
    pub introspection_cache_ttl: Duration,

    /// The resource server's hard limit on the age of its key set: when the issuer's JWKS
    /// cannot be fetched for this long (since it last answered), JWTs are refused with
    /// `503` until a fetch succeeds, e.g. `24h`. At least 60s.
    #[arg(long, global = true, env = "TESSERA_JWKS_MAX_STALE", default_value = "1h", value_parser = parse_jwks_max_stale)]
    pub jwks_max_stale: Duration,

    /// Benchmarks only: also serve `GET /open/companies/{company}/users`, the same listing
    /// with NO authorization, as the ceiling the authorized route is measured against.
    /// Never on a server anyone else can reach.
    #[arg(long, global = true, env = "TESSERA_BENCHMARK_OPEN_LISTING", value_parser = clap::builder::FalseyValueParser::new())]
    pub benchmark_open_listing: bool,

    /// How long the authorization server keeps audit events, e.g. `90d` or `2160h` (at
    /// least `1h`); `off` keeps them forever. Older events are deleted at start-up and then
    /// hourly.
    #[arg(long, global = true, env = "TESSERA_AUDIT_RETENTION", default_value = "90d", value_name = "DURATION|off", value_parser = parse_audit_retention)]
    pub audit_retention: AuditRetention,

    /// When the authorization server delivers a token: `buffered` at once, its audit
    /// record written within about 20 ms (a process killed meanwhile loses the records
    /// not written yet); `durable` only once the record is stored, so no token given out
    /// goes unrecorded, at the price of a database commit in every token response
    /// (group-committed; docs/security.md has the measured cost).
    #[arg(long, global = true, env = "TESSERA_AUDIT_DURABILITY", default_value = "buffered", value_parser = ["buffered", "durable"])]
    pub audit_durability: String,

    /// Serve `/metrics` and a copy of `/healthz` of the one server `tessera authz` or
    /// `tessera resource` runs on this address of their own (port 0 picks a free port);
    /// its main address then answers `/metrics` with 404. `tessera serve` runs two
    /// servers: give it `--authz-metrics-addr` and `--resource-metrics-addr` instead.
    #[arg(long, global = true, env = "TESSERA_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Serve the authorization server's `/metrics` and a copy of its `/healthz` on this
    /// address of their own (port 0 picks a free port); its main address then answers
    /// `/metrics` with 404. By default `/metrics` is on the main address.
    #[arg(
        long,
        global = true,
        env = "TESSERA_AUTHZ_METRICS_ADDR",
        value_name = "ADDR"
    )]
    pub authz_metrics_addr: Option<String>,

    /// The same for the resource server: its `/metrics` and a copy of its `/healthz` on
    /// this address, and no `/metrics` on its main address.
    #[arg(
        long,
        global = true,
        env = "TESSERA_RESOURCE_METRICS_ADDR",
        value_name = "ADDR"
    )]
    pub resource_metrics_addr: Option<String>,
}

/// How long audit events are kept: `None` is forever.
#[derive(Clone, Copy, Debug)]
pub struct AuditRetention(pub Option<Duration>);

/// `off` (or a zero duration): forever; otherwise a duration of at least an hour.
fn parse_audit_retention(raw: &str) -> Result<AuditRetention, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(AuditRetention(None));
    }
    let retention = parse_duration(raw)?;
    if retention.is_zero() {
        return Ok(AuditRetention(None));
    }
    if retention < tessera_authz::retention::MIN_AUDIT_RETENTION {
        return Err(format!(
            "{raw:?} is shorter than 1h; write off to keep audit events forever"
        ));
    }
    Ok(AuditRetention(Some(retention)))
}

/// An introspection cache time of at most 5 min (0 switches the cache off).
fn parse_introspection_cache_ttl(raw: &str) -> Result<Duration, String> {
    let ttl = parse_duration(raw)?;
    if ttl > Duration::from_secs(300) {
        return Err(format!("{raw:?} is longer than 300s"));
    }
    Ok(ttl)
}

/// A key-set age limit of at least 60 s (the least time a key set is kept).
fn parse_jwks_max_stale(raw: &str) -> Result<Duration, String> {
    let limit = parse_duration(raw)?;
    if limit < Duration::from_secs(60) {
        return Err(format!("{raw:?} is shorter than 60s"));
    }
    Ok(limit)
}

/// A request timeout between 1 s and 5 min.
fn parse_request_timeout(raw: &str) -> Result<Duration, String> {
    let timeout = parse_duration(raw)?;
    if !(1..=300).contains(&timeout.as_secs()) {
        return Err(format!("{raw:?} is not between 1s and 300s"));
    }
    Ok(timeout)
}

impl Common {
    /// The resource server's client credentials at the issuer, from the new flags or
    /// their older introspection names.
    pub fn client_credentials(&self) -> (Option<String>, Option<String>) {
        (
            self.resource_client_id
                .clone()
                .or_else(|| self.legacy_client_id.clone()),
            self.resource_client_secret
                .clone()
                .or_else(|| self.legacy_client_secret.clone()),
        )
    }

    /// The metrics address of the server a command runs alone: `--metrics-addr`, or the
    /// server's own flag (`specific`, named `flag`); both at once is an error.
    pub fn single_metrics_addr(
        &self,
        specific: Option<&String>,
        flag: &str,
    ) -> anyhow::Result<Option<String>> {
        match (&self.metrics_addr, specific) {
            (Some(_), Some(_)) => anyhow::bail!(
                "the metrics address is given twice: use either --metrics-addr \
                 (TESSERA_METRICS_ADDR) or {flag}, not both"
            ),
            (Some(addr), None) | (None, Some(addr)) => Ok(Some(addr.clone())),
            (None, None) => Ok(None),
        }
    }

    /// The trusted proxies these flags name.
    pub fn trusted_proxies(&self) -> tessera_web::net::TrustedProxies {
        tessera_web::net::TrustedProxies::new(self.trusted_proxies.clone())
    }

    /// The key schedule these flags describe.
    pub fn key_schedule(&self) -> tessera_authz::keys::KeySchedule {
        tessera_authz::keys::KeySchedule {
            algorithm: self.key_algorithm,
            rotation_period: self.key_rotation_period,
            publish_ahead: self.key_publish_ahead,
            retire_after: self.key_retire_after,
        }
    }
}

/// `30d`, `25h`, `90m`, `600s` or a number of seconds; units may be combined (`1d12h`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let invalid = || format!("{raw:?} is not a duration: write e.g. 30d, 25h, 90m or 600s");
    if text.is_empty() {
        return Err(invalid());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        let n: u64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= 10 * 365 * 86_400)
            .ok_or_else(|| format!("{raw:?} is longer than ten years"))?;
    }
    if !number.is_empty() {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Tessera on one machine: migrate, seed demo data into an empty database, serve.
    Serve,
    /// Run the authorization server alone (never seeds demo data).
    Authz,
    /// Run the resource server alone, trusting the tokens of `--issuer`.
    Resource {
        /// The issuer's JWKS URL [default: the jwks_uri of the issuer's metadata].
        #[arg(long, env = "TESSERA_JWKS_URL")]
        jwks_url: Option<String>,
        /// Allow fetching keys over plain http from a host other than loopback (only inside
        /// a private network you trust: whoever can alter the traffic can inject keys).
        #[arg(long, env = "TESSERA_JWKS_ALLOW_HTTP", value_parser = clap::builder::FalseyValueParser::new())]
        jwks_allow_http: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Run the whole story on free ports with a throwaway database, for JWT and opaque
    /// tokens side by side, and print the comparison.
    Demo {
        /// Requests timed per flow.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
        requests: u32,
    },
    /// Manage companies.
    #[command(subcommand)]
    Company(CompanyCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Inspect and rotate signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log: sign-ins, tokens, key and user changes.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum CompanyCommand {
    /// Create a company.
    Add {
        /// URL slug, e.g. `acme` (a-z, 0-9, '-').
        slug: CompanySlug,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List companies.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from standard input (one line).
    Add {
        /// Login name (a-z, 0-9, '.', '_', '-').
        username: Username,
        /// Slug of the user's company.
        #[arg(long)]
        company: CompanySlug,
        /// Role within the company; give it twice for both.
        #[arg(long = "role", required = true, value_name = "admin|user")]
        roles: Vec<Role>,
        /// Display name, released by the OpenID Connect `profile` scope.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Email address, released by the OpenID Connect `email` scope (never verified).
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
    },
    /// List users.
    List {
        /// Only this company's users.
        #[arg(long)]
        company: Option<CompanySlug>,
    },
    /// Disable a user: they can no longer obtain tokens, and every token and session
    /// issued to them is revoked.
    Disable { username: Username },
    /// Enable a disabled user.
    Enable { username: Username },
    /// Delete a user, with every token and session issued to them.
    Delete { username: Username },
    /// Set a user's password, read from standard input (one line); every token and
    /// session issued to them is revoked.
    SetPassword { username: Username },
    /// Sign a user out everywhere: revoke every refresh token, opaque token, login
    /// session and JWT issued to them so far. They can sign in again.
    Revoke { username: Username },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its secret (shown only this once).
    Add(ClientAdd),
    /// List clients.
    List,
    /// Delete a client and revoke everything issued to it.
    Delete {
        /// The client's id.
        client_id: ClientId,
    },
    /// Give a confidential client a new secret, printed only this once; the old one stops
    /// working at once.
    RotateSecret {
        /// The client's id.
        client_id: ClientId,
        /// Also revoke every token issued to the client so far.
        #[arg(long)]
        revoke_tokens: bool,
    },
}

// What `tessera client add` is given (the help text is the variant's).
#[derive(Debug, Args)]
pub struct ClientAdd {
    /// Client id (letters, digits, '.', '_', '-').
    pub client_id: ClientId,
    /// Grant type the client may use; repeat for several. A client with none can only
    /// introspect and revoke (e.g. a resource server).
    #[arg(long = "grant", value_name = "GRANT")]
    pub grants: Vec<GrantType>,
    /// Scope the client may be granted; repeat for several.
    #[arg(
        long = "scope",
        required = true,
        value_name = "basic|admin|openid|profile|email"
    )]
    pub scopes: Vec<Scope>,
    /// Access token format.
    #[arg(long, default_value = "jwt", value_name = "jwt|opaque")]
    pub token_format: TokenFormat,
    /// Redirect URI for the authorization code flow; repeat for several.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Where an OpenID Connect logout may send the browser back to (RP-Initiated Logout,
    /// `post_logout_redirect_uri`), compared exactly; repeat for several.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret), e.g. a single-page or mobile app.
    #[arg(long)]
    pub public: bool,
    /// Display name [default: the client id].
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state and times.
    List,
    /// Start a rotation now: publish a new key (`--key-algorithm`) that starts signing
    /// after the publish-ahead time, so no cached JWKS misses it.
    Rotate {
        /// Emergency only: the new key signs at once and the active key is retired at once.
        /// Resource servers whose cached JWKS lacks the new key refuse its tokens until
        /// they fetch again; see docs/keys.md.
        #[arg(long)]
        now: bool,
    },
    /// Take a next or retired key out of the JWKS at once (a compromised key, after
    /// `rotate --now`). Every token it signed is refused from then on.
    Remove {
        /// The key id (it may start with `-`: kids are base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Print a new random master key for TESSERA_MASTER_KEY (base64, 32 bytes).
    MasterKey,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List {
        #[arg(long, value_name = "KIND", help = audit_kind_help())]
        kind: Option<tessera_store::AuditKind>,
        /// Only events of this actor (a username, a client id, `cli`), matched exactly.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Only events newer than this, e.g. `1h`, `30m`, `7d`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// At most this many events (1 to 10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(tessera_store::AuditFilter::MAX_LIMIT)))]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete the audit events recorded before a time and print how many went (a running
    /// authorization server also deletes those older than `--audit-retention`).
    Purge {
        /// How long ago (`30d`, `12h`) or when (RFC 3339, e.g. `2026-01-01T00:00:00Z`):
        /// the events before it are deleted, those at it or after stay. It must be in the
        /// past.
        #[arg(long, value_name = "DURATION|TIME", value_parser = parse_cutoff)]
        before: Cutoff,
    },
}

/// The time before which `tessera audit purge` deletes events.
#[derive(Clone, Copy, Debug)]
pub enum Cutoff {
    /// That long before now.
    Ago(Duration),
    /// That time.
    At(chrono::DateTime<chrono::Utc>),
}

impl Cutoff {
    /// The time, counted from `now`.
    pub fn resolve(
        self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        match self {
            Cutoff::At(at) => Ok(at),
            Cutoff::Ago(ago) => chrono::Duration::from_std(ago)
                .ok()
                .and_then(|ago| now.checked_sub_signed(ago))
                .ok_or_else(|| anyhow::anyhow!("--before is too long ago")),
        }
    }
}

/// A duration ago (more than none) or an RFC 3339 time in the past.
fn parse_cutoff(raw: &str) -> Result<Cutoff, String> {
    if let Ok(ago) = parse_duration(raw) {
        if ago.is_zero() {
            return Err(format!(
                "{raw:?} is no time ago: name a duration such as 90d, or a time in the past"
            ));
        }
        return Ok(Cutoff::Ago(ago));
    }
    let at = chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| {
            format!(
                "{raw:?} is neither a duration ago (e.g. 90d, 12h) nor an RFC 3339 time \
                 (e.g. 2026-01-01T00:00:00Z)"
            )
        })?
        .with_timezone(&chrono::Utc);
    if at > chrono::Utc::now() {
        return Err(format!(
            "{raw:?} is in the future: --before takes a time in the past"
        ));
    }
    Ok(Cutoff::At(at))
}

/// The help of `--kind`, naming every kind: the list lives in one place, `AuditKind`.
fn audit_kind_help() -> String {
    let kinds: Vec<&str> = tessera_store::AuditKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    format!("Only events of this kind: {}", kinds.join(", "))
}

/// A lifetime flag's parser: whole seconds from `min` to `max`.
fn seconds(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(min..=max)
}
