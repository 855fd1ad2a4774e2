use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, TokenData, Validation};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tessera_authz::{Application, Settings};
use tessera_core::{GrantType, Role, ScopeSet, SigningKey, TokenFormat};
pub use tessera_store::on_each_backend;
pub use tessera_store::testing::{Backend, TestDatabase};
use tessera_store::{NewClient, NewCompany, NewKey, NewUser, Seed, Store};

pub const KEY_A: &str = include_str!("../../../../testdata/keys/rsa-2048-a.pem");

pub const PASSWORD: &str = "correct horse battery";
pub const APP_SECRET: &str = "app-secret-for-tests-only-0123456789";
/// Where `web` sends the browser back; nothing needs to listen there.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// A registered redirect URI that has a query of its own.
pub const REDIRECT_URI_WITH_QUERY: &str = "https://app.example.com/cb?tenant=acme";
/// A registered IPv6 loopback redirect URI.
pub const REDIRECT_URI_IPV6: &str = "http://[::1]:9/callback";
/// Where a logout may send the browser back to from `web` and `web-opaque`.
pub const LOGOUT_URI: &str = "http://127.0.0.1:9/signed-out";
/// alice's display name and email address.
pub const ALICE_NAME: &str = "Alice Liddell";
pub const ALICE_EMAIL: &str = "alice@acme.example";

/// The argon2 hash of [`PASSWORD`], computed once per test process.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| tessera_core::password::hash(PASSWORD).unwrap())
}

/// How a test client authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    IdOnly(&'a str),
    None,
}

pub struct TestApp {
    pub address: String,
    pub issuer: String,
    pub kid: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    /// The server's signing keys, to tick after moving a pinned clock.
    pub keys: Arc<tessera_authz::keys::KeyManager>,
    /// The server's audit log, to flush before reading events from the store.
    pub audit: tessera_store::AuditLog,
    handle: actix_web::dev::ServerHandle,
    db: Option<TestDatabase>,
}

impl TestApp {
    /// The database this app runs on.
    pub fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("spawn_app owns a database")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stopping is asynchronous; the server threads end with the test process anyway.
        drop(self.handle.stop(false));
    }
}

fn company(slug: &str) -> NewCompany {
    NewCompany {
        slug: slug.parse().unwrap(),
        name: slug.to_uppercase(),
    }
}

fn user(company: &str, username: &str, roles: &[Role]) -> NewUser {
    NewUser {
        company: company.parse().unwrap(),
        username: username.parse().unwrap(),
        password_hash: password_hash().to_owned(),
        roles: roles.to_vec(),
        name: None,
        email: None,
    }
}

fn client(id: &str, secret: Option<&str>, grants: &[GrantType], scopes: &str) -> NewClient {
    NewClient {
        client_id: id.parse().unwrap(),
        name: id.to_owned(),
        secret_hash: secret.map(tessera_core::secret::digest),
        grant_types: grants.to_vec(),
        scopes: scopes.parse::<ScopeSet>().unwrap(),
        redirect_uris: vec![],
        access_token_format: TokenFormat::Jwt,
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
        post_logout_redirect_uris: vec![],
    }
}

/// The data every test starts with:
/// - acme: `alice` (admin), `bob` (user), `dora` (admin, disabled); globex: `carol` (admin);
///   every password is [`PASSWORD`];
/// - `app` (confidential, password + client_credentials, basic admin, secret [`APP_SECRET`]),
///   `basic-app` (confidential, password, basic only), `machine` (confidential,
///   client_credentials only), `spa` (public, password, basic), `short-lived` (confidential,
///   password, 60-second tokens), `opaque-app` (like `app`, opaque tokens), `resource-server`
///   (confidential, no grant: it only introspects);
/// - alice has the name [`ALICE_NAME`] and the address [`ALICE_EMAIL`];
/// - for the browser flow: `web` (public, authorization_code + refresh_token, basic admin
///   openid profile email, post-logout URI [`LOGOUT_URI`],
///   redirect URIs [`REDIRECT_URI`], [`REDIRECT_URI_WITH_QUERY`] and [`REDIRECT_URI_IPV6`]), `web-opaque` (the
///   same, confidential, opaque tokens, [`REDIRECT_URI`] only), `refresher` (confidential,
///   password + refresh_token, basic admin) and `refresher-opaque` (the same, opaque).
pub fn seed() -> Seed {
    use GrantType::*;
    let mut web = client(
        "web",
        None,
        &[AuthorizationCode, RefreshToken],
        "basic admin openid profile email",
    );
    web.name = "Acme Web".into();
    web.post_logout_redirect_uris = vec![LOGOUT_URI.into()];
    web.redirect_uris = vec![
        REDIRECT_URI.into(),
        REDIRECT_URI_WITH_QUERY.into(),
        REDIRECT_URI_IPV6.into(),
    ];
    let mut web_opaque = client(
        "web-opaque",
        Some(APP_SECRET),
        &[AuthorizationCode, RefreshToken],
        "basic admin openid profile email",
    );
    web_opaque.redirect_uris = vec![REDIRECT_URI.into()];
    web_opaque.post_logout_redirect_uris = vec![LOGOUT_URI.into()];
    web_opaque.access_token_format = TokenFormat::Opaque;
    let refresher = client(
        "refresher",
        Some(APP_SECRET),
        &[Password, RefreshToken],
        "basic admin",
    );
    let mut refresher_opaque = client(
        "refresher-opaque",
        Some(APP_SECRET),
        &[Password, RefreshToken],
        "basic admin",
    );
    refresher_opaque.access_token_format = TokenFormat::Opaque;
    let mut short = client("short-lived", Some(APP_SECRET), &[Password], "basic");
    short.access_token_ttl_secs = Some(60);
    let mut opaque = client(
        "opaque-app",
        Some(APP_SECRET),
        &[Password, ClientCredentials],
        "basic admin",
    );
    opaque.access_token_format = TokenFormat::Opaque;
    Seed {
        companies: vec![company("acme"), company("globex")],
        users: vec![
            NewUser {
                name: Some(ALICE_NAME.into()),
                email: Some(ALICE_EMAIL.into()),
                ..user("acme", "alice", &[Role::Admin, Role::User])
            },
            user("acme", "bob", &[Role::User]),
            user("acme", "dora", &[Role::Admin]),
            user("globex", "carol", &[Role::Admin]),
        ],
        clients: vec![
            client(
                "app",
                Some(APP_SECRET),
                &[Password, ClientCredentials],
                "basic admin",
            ),
            client("basic-app", Some(APP_SECRET), &[Password], "basic"),
            client(
                "machine",
                Some(APP_SECRET),
                &[ClientCredentials],
                "basic admin",
            ),
            client("spa", None, &[Password, ClientCredentials], "basic"),
            short,
            opaque,
            client("resource-server", Some(APP_SECRET), &[], "basic"),
            web,
            web_opaque,
            refresher,
            refresher_opaque,
        ],
    }
}

/// A server on a fresh database with [`seed`] and the fixture signing key.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (db, store) = seeded_store(backend).await;
    let mut app = start(store, configure).await;
    app.db = Some(db);
    app
}

/// A fresh database with [`seed`], `dora` disabled and the fixture signing key: what
/// [`spawn_app`] serves.
pub async fn seeded_store(backend: Backend) -> (TestDatabase, Arc<dyn Store>) {
    let db = TestDatabase::new(backend);
    let store = db.open().await;
    store.seed_if_empty(&seed(), Utc::now()).await.unwrap();
    store
        .set_user_disabled(&"dora".parse().unwrap(), true, Utc::now())
        .await
        .unwrap();
    let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
    store
        .insert_active_key_if_none(&NewKey::from(&key), Utc::now())
        .await
        .unwrap();
    (db, store)
}

/// A server on an existing store, as configured.
pub async fn start(store: Arc<dyn Store>, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings {
        addr: "127.0.0.1:0".into(),
        workers: Some(1),
        password_concurrency: Some(2),
        ..Settings::default()
    };
    configure(&mut settings);
    let app = Application::build(settings, store.clone()).await.unwrap();
    let address = format!("http://{}", app.addr());
    let issuer = app.issuer().to_owned();
    let kid = app.signing_kid();
    let keys = app.keys().clone();
    let audit = app.audit().clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        issuer,
        kid,
        store,
        keys,
        audit,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        handle,
        db: None,
    }
}

impl TestApp {
    /// POSTs a form to the token endpoint.
    pub async fn token(&self, auth: Auth<'_>, params: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut request = self.http.post(format!("{}/oauth/token", self.address));
        match auth {
            Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
            Auth::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
            Auth::IdOnly(id) => form.push(("client_id", id)),
            Auth::None => {}
        }
        request.form(&form).send().await.unwrap()
    }

    /// A password grant by `app` over Basic authentication.
    pub async fn password_grant(
        &self,
        username: &str,
        password: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        self.password_grant_as(Auth::Basic("app", APP_SECRET), username, password, scope)
            .await
    }

    /// A password grant by the client that `auth` names.
    pub async fn password_grant_as(
        &self,
        auth: Auth<'_>,
        username: &str,
        password: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut params = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        self.token(auth, &params).await
    }

    /// POSTs raw bytes to the token endpoint with a content type.
    pub async fn raw_token(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/token", self.address))
            .basic_auth("app", Some(APP_SECRET))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub async fn jwks(&self) -> JwkSet {
        self.get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap()
    }

    /// Verifies `token` with jsonwebtoken (not Tessera's code) against the served JWKS.
    pub async fn verify(&self, token: &str) -> TokenData<Value> {
        verify_with(&self.jwks().await, token, &self.issuer)
    }
}

/// Independent verification: RS256 only, the key chosen by `kid` from `jwks`, issuer and
/// audience checked, `exp`, `iat`, `sub`, `jti` required.
pub fn verify_with(jwks: &JwkSet, token: &str, issuer: &str) -> TokenData<Value> {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("the token header has a kid");
    let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["tessera-api"]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "jti", "iss", "aud"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap()
}

/// Asserts an RFC 6749 §5.2 error: status, `error` code, JSON body with a description,
/// and the no-store headers. Returns the body.
pub async fn assert_oauth_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_no_store(response.headers());
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "body: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "body: {body}"
    );
    body
}

pub fn assert_no_store(headers: &HeaderMap) {
    assert_eq!(
        headers.get("cache-control"),
        Some(&HeaderValue::from_static("no-store"))
    );
    assert_eq!(
        headers.get("pragma"),
        Some(&HeaderValue::from_static("no-cache"))
    );
}

/// Asserts a successful token response and returns its JSON.
pub async fn assert_token(response: reqwest::Response) -> Value {
    assert_eq!(response.status().as_u16(), 200, "status");
    assert_no_store(response.headers());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "body: {body}");
    assert!(body["access_token"].as_str().is_some(), "body: {body}");
    body
}

impl TestApp {
    /// POSTs a form to `path` with Basic authentication as `client`.
    pub async fn post_form(
        &self,
        path: &str,
        auth: Auth<'_>,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut request = self.http.post(format!("{}{path}", self.address));
        match auth {
            Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
            Auth::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
            Auth::IdOnly(id) => form.push(("client_id", id)),
            Auth::None => {}
        }
        request.form(&form).send().await.unwrap()
    }

    /// Introspects `token` as the resource server and returns the JSON.
    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        let response = self
            .post_form(
                "/oauth/introspect",
                Auth::Basic("resource-server", APP_SECRET),
                &[("token", token)],
            )
            .await;
        assert_eq!(response.status().as_u16(), 200);
        assert_no_store(response.headers());
        response.json().await.unwrap()
    }
}
