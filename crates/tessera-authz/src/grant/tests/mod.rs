//! Each grant decided by the engine alone: a real store, a pinned clock, no HTTP server.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_core::{
    AccessTokenClaims, Clock, ErrorCode, GrantType, Role, ScopeSet, SigningKey, TokenFormat, pkce,
    secret,
};
use tessera_store::testing::{Backend, TestDatabase};
use tessera_store::{
    AuditLog, Client, NewClient, NewCompany, NewKey, NewUser, Seed, Store, TokenBatcher,
};
use tessera_web::metrics::Registry;

use super::*;
use crate::form::Form;
use crate::keys::{KeyManager, KeySchedule};
use crate::limits::RateLimits;
use crate::passwords::{PasswordVerifier, Passwords};

mod authorization_code;
mod client_credentials;
mod password;
mod refresh_token;
mod request;

const KEY_A: &str = include_str!("../../../../../testdata/keys/rsa-2048-a.pem");
const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "engine-secret-for-tests-only-0123456789";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "tessera-api";
/// The default access-token lifetime of the engine under test.
const ACCESS_TTL_SECS: i64 = 900;

/// An engine on a fresh, seeded database, with the database kept alive beside it.
struct Fixture {
    engine: GrantEngine,
    clock: Clock,
    /// Where the pinned clock started, in Unix seconds.
    start_secs: i64,
    _db: TestDatabase,
}

fn address() -> IpAddr {
    IpAddr::from([203, 0, 113, 7])
}

fn new_client(id: &str, grants: &[GrantType], format: TokenFormat, public: bool) -> NewClient {
    NewClient {
        client_id: id.parse().unwrap(),
        name: id.to_owned(),
        secret_hash: (!public).then(|| secret::digest(SECRET)),
        grant_types: grants.to_vec(),
        scopes: "basic admin".parse().unwrap(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        access_token_format: format,
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
        post_logout_redirect_uris: vec![],
    }
}

fn new_user(username: &str, roles: &[Role], hash: &str) -> NewUser {
    NewUser {
        company: "acme".parse().unwrap(),
        username: username.parse().unwrap(),
        password_hash: hash.to_owned(),
        roles: roles.to_vec(),
        name: None,
        email: None,
    }
}

/// `alice` (admin) and `bob` (user) of acme; `machine` and `machine-opaque`
/// (client_credentials), `app` (password + refresh_token), `web` (public,
/// authorization_code + refresh_token).
fn seed() -> Seed {
    use GrantType::*;
    let hash = tessera_core::password::hash(PASSWORD).unwrap();
    Seed {
        companies: vec![NewCompany {
            slug: "acme".parse().unwrap(),
            name: "Acme".into(),
        }],
        users: vec![
            new_user("alice", &[Role::Admin, Role::User], &hash),
            new_user("bob", &[Role::User], &hash),
        ],
        clients: vec![
            new_client("machine", &[ClientCredentials], TokenFormat::Jwt, false),
            new_client(
                "machine-opaque",
                &[ClientCredentials],
                TokenFormat::Opaque,
                false,
            ),
            new_client("app", &[Password, RefreshToken], TokenFormat::Jwt, false),
            new_client(
                "web",
                &[AuthorizationCode, RefreshToken],
                TokenFormat::Jwt,
                true,
            ),
        ],
    }
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let db = TestDatabase::new(backend);
        let store = db.open().await;
        store.seed_if_empty(&seed(), Utc::now()).await.unwrap();
        let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
        store
            .insert_active_key_if_none(&NewKey::from(&key), Utc::now())
            .await
            .unwrap();
        // Pinned at a whole second near the key's creation, so that no key transition is
        // due and no key is generated.
        let clock = Clock::pinned(Utc::now().timestamp() * 1000);
        let start_secs = clock.now_secs();
        let keys = KeyManager::start(
            store.clone(),
            clock.clone(),
            KeySchedule::default(),
            None,
            None,
        )
        .await
        .unwrap();
        let audit = AuditLog::spawn(store.clone());
        let passwords = Passwords {
            verifier: PasswordVerifier::new(1),
            limits: Arc::new(RateLimits::new(true, &Registry::new())),
            store: store.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        };
        let engine = GrantEngine {
            store: store.clone(),
            keys: Arc::new(keys),
            clock: clock.clone(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            access_token_ttl: Duration::from_secs(ACCESS_TTL_SECS as u64),
            refresh_token_ttl: Duration::from_secs(86_400),
            opaque_tokens: TokenBatcher::spawn(store),
            passwords,
            audit,
            feed: Arc::default(),
        };
        Fixture {
            engine,
            clock,
            start_secs,
            _db: db,
        }
    }

    fn store(&self) -> &dyn Store {
        self.engine.store.as_ref()
    }

    async fn client(&self, id: &str) -> Client {
        self.store().find_client(id).await.unwrap().unwrap()
    }

    /// Parses `form` as the token request of `client_id` and has the engine decide it.
    async fn grant(&self, client_id: &str, form: &str) -> Result<Issued, GrantError> {
        let client = self.client(client_id).await;
        let form = Form::parse(form.as_bytes()).unwrap();
        let request = TokenRequest::parse(&form, &client)?;
        self.engine
            .grant(&client, request, self.clock.now_utc(), address())
            .await
    }

    /// The claims of a JWT the engine issued, verified with the fixture key.
    fn claims(&self, token: &str) -> AccessTokenClaims {
        let key = SigningKey::from_pkcs8_pem(KEY_A).unwrap();
        let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        // The pinned clock may differ from the system's; expiry is asserted by value.
        validation.validate_exp = false;
        jsonwebtoken::decode::<AccessTokenClaims>(token, &decoding, &validation)
            .unwrap()
            .claims
    }
}

/// The error's code and description, for asserting both.
fn refusal(result: Result<Issued, GrantError>) -> (ErrorCode, String) {
    match result {
        Err(GrantError::OAuth(error)) => (error.error, error.error_description.into_owned()),
        Err(other) => panic!("expected an OAuth error, got {other:?}"),
        Ok(issued) => panic!("expected a refusal, got a token for {:?}", issued.scope),
    }
}

fn scope(text: &str) -> ScopeSet {
    text.parse().unwrap()
}

/// An S256 verifier and its challenge.
fn pkce_pair() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
    let challenge = pkce::challenge_of(&verifier);
    (verifier, challenge)
}
