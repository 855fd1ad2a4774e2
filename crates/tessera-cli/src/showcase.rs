//! `tessera demo`: the seed's story, end to end, for JWT and opaque tokens side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use serde_json::Value;
use tessera_store::Store;

use crate::demo;

/// The servers of one demo run, each on a free loopback port.
struct Stack {
    authz: String,
    /// Resource server validating opaque tokens against the token store.
    store_api: String,
    /// Resource server validating opaque tokens by introspection.
    introspection_api: String,
    /// Resource server following the revocation feed (opaque tokens from the store).
    feed_api: String,
    handles: Vec<actix_web::dev::ServerHandle>,
}

async fn start(store: Arc<dyn Store>) -> anyhow::Result<Stack> {
    let authz_settings = tessera_authz::Settings {
        addr: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let authz = tessera_authz::Application::build(authz_settings, store.clone()).await?;
    let authz_url = format!("http://{}", authz.addr());
    let issuer = authz.issuer().to_owned();
    let mut handles = vec![authz.handle()];
    tokio::spawn(authz.run_until_stopped());

    let mut apis = Vec::new();
    let mut feed = tessera_resource::RevocationFeed::new(
        demo::RESOURCE_CLIENT_ID,
        demo::RESOURCE_CLIENT_SECRET,
    );
    feed.url = Some(format!("{authz_url}/oauth/revocations"));
    for (opaque, revocation) in [
        (tessera_resource::OpaqueValidation::Store, None),
        (
            tessera_resource::OpaqueValidation::Introspection {
                url: Some(format!("{authz_url}/oauth/introspect")),
                client_id: demo::RESOURCE_CLIENT_ID.into(),
                client_secret: demo::RESOURCE_CLIENT_SECRET.into(),
            },
            None,
        ),
        (tessera_resource::OpaqueValidation::Store, Some(feed)),
    ] {
        let mut settings = tessera_resource::Settings::new(&issuer);
        settings.addr = "127.0.0.1:0".into();
        settings.jwks_url = Some(format!("{authz_url}/.well-known/jwks.json"));
        settings.opaque = opaque;
        settings.revocation = revocation;
        let api = tessera_resource::Application::build(settings, store.clone()).await?;
        api.prefetch_keys().await;
        if !api.sync_revocations(Duration::from_secs(5)).await {
            bail!("the revocation feed did not answer");
        }
        apis.push(format!("http://{}", api.addr()));
        handles.push(api.handle());
        tokio::spawn(api.run_until_stopped());
    }
    let feed_api = apis.pop().context("no feed server")?;
    let introspection_api = apis.pop().context("no introspection server")?;
    let store_api = apis.pop().context("no store server")?;
    Ok(Stack {
        authz: authz_url,
        store_api,
        introspection_api,
        feed_api,
        handles,
    })
}

/// One column of the comparison table.
struct Column {
    title: &'static str,
    api: String,
    token: String,
    token_bytes: usize,
    lookups: String,
    median: Duration,
    p99: Duration,
    own: u16,
    foreign: u16,
    basic: u16,
    revoke: String,
    after_revoke: u16,
    /// How long the revocation took to reach this resource server.
    took_effect: String,
}

pub async fn run(requests: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let store = tessera_store::open(&url).await?;
    let seed = tokio::task::spawn_blocking(demo::seed).await??;
    store.seed_if_empty(&seed, Utc::now()).await?;
    let stack = start(store).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    println!(
        "Tessera demo: authorization server {} and two resource servers (opaque tokens checked \
         against the token store, or by introspection), on a throwaway database.\n",
        stack.authz
    );

    let token = |client: &'static str,
                 secret: &'static str,
                 username: &'static str,
                 scope: &'static str| {
        let http = http.clone();
        let url = format!("{}/oauth/token", stack.authz);
        async move {
            let body: Value = http
                .post(url)
                .basic_auth(client, Some(secret))
                .form(&[
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", demo::PASSWORD),
                    ("scope", scope),
                ])
                .send()
                .await?
                .json()
                .await?;
            body["access_token"]
                .as_str()
                .map(str::to_owned)
                .context("no access token in the answer")
        }
    };
    let jwt = token(
        demo::JWT_CLIENT_ID,
        demo::JWT_CLIENT_SECRET,
        "alice",
        "admin",
    )
    .await?;
    let opaque = token(
        demo::OPAQUE_CLIENT_ID,
        demo::OPAQUE_CLIENT_SECRET,
        "alice",
        "admin",
    )
    .await?;
    let bob_jwt = token(demo::JWT_CLIENT_ID, demo::JWT_CLIENT_SECRET, "bob", "basic").await?;
    let bob_opaque = token(
        demo::OPAQUE_CLIENT_ID,
        demo::OPAQUE_CLIENT_SECRET,
        "bob",
        "basic",
    )
    .await?;

    let mut columns = vec![
        column("JWT", &stack.store_api, &jwt),
        column(FEED, &stack.feed_api, &jwt),
        column("opaque (store)", &stack.store_api, &opaque),
        column("opaque (introspection)", &stack.introspection_api, &opaque),
    ];
    for c in &mut columns {
        let (own, lookups) = get(&http, &c.api, "/companies/acme/users", &c.token).await?;
        c.own = own;
        c.lookups = lookups;
        c.foreign = get(&http, &c.api, "/companies/globex/users", &c.token)
            .await?
            .0;
        let bob = if c.token == jwt {
            &bob_jwt
        } else {
            &bob_opaque
        };
        c.basic = get(&http, &c.api, "/companies/acme/users", bob).await?.0;
        let (median, p99) = latency(&http, &c.api, &c.token, requests).await?;
        (c.median, c.p99) = (median, p99);
    }
    // Revocation, once for the JWT and once for the opaque token: the JWT is refused only
    // where the resource server follows the revocation feed, once its list has the entry.
    let jwt_revoke = revoke(
        &http,
        &stack.authz,
        demo::JWT_CLIENT_ID,
        demo::JWT_CLIENT_SECRET,
        &jwt,
    )
    .await?;
    let revoked_at = Instant::now();
    let opaque_revoke = revoke(
        &http,
        &stack.authz,
        demo::OPAQUE_CLIENT_ID,
        demo::OPAQUE_CLIENT_SECRET,
        &opaque,
    )
    .await?;
    for c in &mut columns {
        c.revoke = if c.token == jwt {
            jwt_revoke.clone()
        } else {
            opaque_revoke.clone()
        };
        c.took_effect = match c.title {
            "JWT" => "never (lives to exp)".to_owned(),
            FEED => {
                let deadline = revoked_at + Duration::from_secs(5);
                loop {
                    let status = get(&http, &c.api, "/me", &c.token).await?.0;
                    if status == 401 {
                        break format!("{} ms", revoked_at.elapsed().as_millis());
                    }
                    if Instant::now() > deadline {
                        break "not within 5 s".to_owned();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            _ => "next request".to_owned(),
        };
        c.after_revoke = get(&http, &c.api, "/companies/acme/users", &c.token)
            .await?
            .0;
    }
    print_table(&columns, requests);
    for handle in stack.handles {
        handle.stop(true).await;
    }
    Ok(())
}

fn column(title: &'static str, api: &str, token: &str) -> Column {
    Column {
        title,
        api: api.to_owned(),
        token: token.to_owned(),
        token_bytes: token.len(),
        lookups: String::new(),
        median: Duration::ZERO,
        p99: Duration::ZERO,
        own: 0,
        foreign: 0,
        basic: 0,
        revoke: String::new(),
        after_revoke: 0,
        took_effect: String::new(),
    }
}

/// The title of the column whose resource server follows the revocation feed.
const FEED: &str = "JWT + revocation feed";

/// GETs `path` with `token`: the status and the `Tessera-Authz-Lookups` header.
async fn get(
    http: &reqwest::Client,
    api: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, String)> {
    let response = http
        .get(format!("{api}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    let lookups = response
        .headers()
        .get("tessera-authz-lookups")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    Ok((response.status().as_u16(), lookups))
}

/// Median and 99th percentile of `requests` sequential calls of the admin API.
async fn latency(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    requests: u32,
) -> anyhow::Result<(Duration, Duration)> {
    let url = format!("{api}/companies/acme/users");
    let mut samples = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let started = Instant::now();
        let response = http.get(&url).bearer_auth(token).send().await?;
        let status = response.status();
        response.bytes().await?;
        samples.push(started.elapsed());
        if !status.is_success() {
            bail!("the admin API answered {status} during the timing run");
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

/// Revokes `token` as `client`: the status, and the error code if any.
async fn revoke(
    http: &reqwest::Client,
    authz: &str,
    client: &str,
    secret: &str,
    token: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{authz}/oauth/revoke"))
        .basic_auth(client, Some(secret))
        .form(&[("token", token)])
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok(match body["error"].as_str() {
        Some(error) => format!("{status} {error}"),
        None => status.to_string(),
    })
}

fn print_table(columns: &[Column], requests: u32) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let rows: Vec<(String, Vec<String>)> = vec![
        (
            "token length (bytes)".into(),
            columns.iter().map(|c| c.token_bytes.to_string()).collect(),
        ),
        (
            "lookups per request".into(),
            columns.iter().map(|c| c.lookups.clone()).collect(),
        ),
        (
            format!("median latency ({requests} requests)"),
            columns.iter().map(|c| ms(c.median)).collect(),
        ),
        (
            format!("p99 latency ({requests} requests)"),
            columns.iter().map(|c| ms(c.p99)).collect(),
        ),
        (
            "alice (admin) lists acme".into(),
            columns.iter().map(|c| c.own.to_string()).collect(),
        ),
        (
            "alice (admin) lists globex".into(),
            columns.iter().map(|c| c.foreign.to_string()).collect(),
        ),
        (
            "bob (basic) lists acme".into(),
            columns.iter().map(|c| c.basic.to_string()).collect(),
        ),
        (
            "revoke alice's token".into(),
            columns.iter().map(|c| c.revoke.clone()).collect(),
        ),
        (
            "revocation took effect".into(),
            columns.iter().map(|c| c.took_effect.clone()).collect(),
        ),
        (
            "alice lists acme again".into(),
            columns.iter().map(|c| c.after_revoke.to_string()).collect(),
        ),
    ];
    let first = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|(_, cells)| cells[i].len())
                .max()
                .unwrap_or(0)
                .max(c.title.len())
        })
        .collect();
    let mut header = format!("{:first$}", "");
    for (c, w) in columns.iter().zip(&widths) {
        header.push_str(&format!("  {:>w$}", c.title));
    }
    println!("{header}");
    for (label, cells) in rows {
        let mut line = format!("{label:first$}");
        for (cell, w) in cells.iter().zip(&widths) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        println!("{line}");
    }
    println!(
        "\nA JWT carries its answer: no lookup per request. Alone it cannot be recalled and \
         lives until it expires; a resource server that follows the revocation feed refuses it \
         once the feed's update arrives (in the background, still with no lookup per \
         request). An opaque token is short and revocable at once, at the price of a lookup \
         per request. See docs/opaque-vs-jwt.md."
    );
}
