//! A test issuer: a real HTTP server on loopback that publishes a JWKS and RFC 8414
//! metadata and mints RS256 `at+jwt` tokens, for testing APIs that use the guard.
//!
//! Enabled by the `test-issuer` feature. Keys come from the caller (load fixtures: do not
//! generate RSA keys in every test of a debug build).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use tessera_core::{AccessTokenClaims, JwkSet, SigningKey};

struct State {
    issuer: String,
    /// Published keys; the last one signs.
    keys: RwLock<Vec<Arc<SigningKey>>>,
    jwks_fetches: AtomicU64,
}

impl State {
    fn keys(&self) -> Vec<Arc<SigningKey>> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The test issuer. Stops when dropped.
pub struct TestIssuer {
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

async fn jwks(state: web::Data<State>) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let set = JwkSet {
        keys: state
            .keys()
            .iter()
            .map(|k| k.public_jwk().clone())
            .collect(),
    };
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(set)
}

async fn metadata(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", state.issuer),
    }))
}

impl TestIssuer {
    /// Starts on a free loopback port, publishing and signing with `key`. Call from
    /// within a Tokio runtime.
    pub fn start(key: SigningKey) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            issuer,
            keys: RwLock::new(vec![Arc::new(key)]),
            jwks_fetches: AtomicU64::new(0),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/.well-known/jwks.json", web::get().to(jwks))
                .route(
                    "/.well-known/oauth-authorization-server",
                    web::get().to(metadata),
                )
        })
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(TestIssuer { state, handle })
    }

    /// The issuer URL (`iss`), e.g. `http://127.0.0.1:40123`.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.state.issuer)
    }

    /// How many times the JWKS has been fetched.
    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Publishes `key` and signs with it from now on (the old keys stay published).
    pub fn rotate_to(&self, key: SigningKey) {
        match self.state.keys.write() {
            Ok(mut keys) => keys.push(Arc::new(key)),
            Err(poisoned) => poisoned.into_inner().push(Arc::new(key)),
        }
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &AccessTokenClaims) -> String {
        let keys = self.state.keys();
        match keys.last().map(|k| k.sign_access_token(claims)) {
            Some(Ok(token)) => token,
            _ => String::new(),
        }
    }

    /// Claims for a user of `company` with `roles` and `scope`, issued by this issuer for
    /// audience `tessera-api`, valid for 15 minutes from `now` (seconds since the epoch).
    pub fn user_claims(
        &self,
        username: &str,
        company: &str,
        roles: &[tessera_core::Role],
        scope: &str,
        now: i64,
    ) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: self.state.issuer.clone(),
            sub: format!("user-{username}"),
            aud: "tessera-api".into(),
            exp: now + 900,
            iat: now,
            jti: format!("jti-{username}-{now}"),
            client_id: "test-client".into(),
            scope: scope.parse().unwrap_or_default(),
            company: Some(company.into()),
            roles: Some(roles.to_vec()),
            username: Some(username.into()),
        }
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
