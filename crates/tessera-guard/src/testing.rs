//! A test issuer: a real HTTP server on loopback that publishes a JWKS and RFC 8414
//! metadata, mints `at+jwt` tokens and serves a revocation feed, for testing APIs that
//! use the guard.
//!
//! Enabled by the `test-issuer` feature. Keys come from the caller (load fixtures: do not
//! generate RSA keys in every test of a debug build).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tessera_core::{AccessTokenClaims, JwkSet, SigningAlgorithm, SigningKey};

/// The client id the revocation feed accepts.
pub const FEED_CLIENT_ID: &str = "resource server";
/// The secret the revocation feed accepts: it needs form-urlencoding (RFC 6749 §2.3.1).
pub const FEED_CLIENT_SECRET: &str = "s3cret:with&odd=chars";

struct State {
    issuer: String,
    /// Published keys; the last one signs.
    keys: RwLock<Vec<Arc<SigningKey>>>,
    jwks_fetches: AtomicU64,
    feed: Mutex<Feed>,
    /// Bumped on every change of the feed, for requests held open.
    feed_changed: tokio::sync::watch::Sender<u64>,
    feed_requests: AtomicU64,
}

/// The revocation feed's content.
#[derive(Default)]
struct Feed {
    /// Bumped by a reset: cursors of an older epoch get the whole list.
    epoch: u64,
    /// Entries with their sequence number, oldest first.
    entries: Vec<(u64, Value)>,
    next: u64,
    fault: FeedFault,
}

impl Feed {
    fn cursor(&self) -> String {
        format!("{}.{}", self.epoch, self.next)
    }

    /// The answer to `after` (a parsed cursor, or none) at `now`; `None` when there is
    /// nothing new. A cursor of another epoch (the feed was reset since) gets the whole
    /// list.
    fn answer(&self, after: Option<(u64, u64)>, now: i64) -> Option<Value> {
        let after = after.filter(|(epoch, _)| *epoch == self.epoch);
        let (reset, revoked): (bool, Vec<&Value>) = match after {
            // The whole list in force.
            None => (
                true,
                self.entries
                    .iter()
                    .map(|(_, entry)| entry)
                    .filter(|entry| entry["until"].as_i64().is_none_or(|until| until > now))
                    .collect(),
            ),
            Some((_, seq)) => {
                let new: Vec<&Value> = self
                    .entries
                    .iter()
                    .filter(|(n, _)| *n >= seq)
                    .map(|(_, entry)| entry)
                    .collect();
                if new.is_empty() {
                    return None;
                }
                (false, new)
            }
        };
        Some(json!({"cursor": self.cursor(), "reset": reset, "revoked": revoked}))
    }
}

/// A fault of the revocation feed, to simulate a feed cut off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedFault {
    /// The feed works.
    #[default]
    None,
    /// Every request is answered with this status and no body.
    Status(u16),
    /// Every request is answered `200` with a body that is not JSON.
    Garbage,
    /// Every request is held open and never answered.
    Hang,
    /// Requests with a cursor are refused `400 invalid_request`, as when something between
    /// client and feed mangles the query; requests without one are answered.
    RefuseCursor,
}

/// `EPOCH.SEQ`, as [`Feed::cursor`] writes it.
fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = cursor.split_once('.')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
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

/// Whether `Authorization` is `Basic` with the feed's client id and secret, each
/// form-urlencoded before base64 (RFC 6749 §2.3.1).
fn feed_client_authenticated(req: &HttpRequest) -> bool {
    let decode = |s: &str| {
        url::form_urlencoded::parse(s.as_bytes())
            .next()
            .map(|(name, _)| name.into_owned())
            .unwrap_or_default()
    };
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            Some(decode(id) == FEED_CLIENT_ID && decode(secret) == FEED_CLIENT_SECRET)
        })
        .unwrap_or(false)
}

/// `GET /oauth/revocations?after=CURSOR&wait=SECONDS`, as the Tessera issuer serves it.
async fn revocations(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    state.feed_requests.fetch_add(1, Ordering::SeqCst);
    if !feed_client_authenticated(&req) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"tessera\""))
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"error": "invalid_client", "error_description": "client authentication failed"}));
    }
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let wait = match query.get("wait").map(|w| w.parse::<u64>()) {
        None => 0,
        Some(Ok(wait)) if wait <= 30 => wait,
        Some(_) => {
            return HttpResponse::BadRequest().json(
                json!({"error": "invalid_request", "error_description": "wait must be 0 to 30"}),
            );
        }
    };
    let after = query.get("after").map(String::as_str);
    let invalid_request = |description: &str| {
        HttpResponse::BadRequest()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"error": "invalid_request", "error_description": description}))
    };
    let parsed = match after.map(parse_cursor) {
        None => None,
        Some(Some(parsed)) => Some(parsed),
        Some(None) => return invalid_request("after is not a cursor of this feed"),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    // Subscribed before looking, so that a change in between is not missed.
    let mut changed = state.feed_changed.subscribe();
    loop {
        let (fault, answer) = {
            let feed = match state.feed.lock() {
                Ok(feed) => feed,
                Err(poisoned) => poisoned.into_inner(),
            };
            (feed.fault, feed.answer(parsed, unix_now()))
        };
        match fault {
            FeedFault::None => {}
            FeedFault::Status(status) => {
                let status = actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
                return HttpResponse::build(status).finish();
            }
            FeedFault::Garbage => return HttpResponse::Ok().body("<html>maintenance</html>"),
            FeedFault::Hang => std::future::pending().await,
            FeedFault::RefuseCursor if after.is_some() => {
                return invalid_request("after is not a cursor of this feed");
            }
            FeedFault::RefuseCursor => {}
        }
        if let Some(answer) = answer {
            return HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(answer);
        }
        // Nothing new: hold the request until something arrives or the wait is over.
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            let cursor = match state.feed.lock() {
                Ok(feed) => feed.cursor(),
                Err(poisoned) => poisoned.into_inner().cursor(),
            };
            // A cursor of another epoch was answered above with the whole list, so the
            // client's cursor is current: it stays valid.
            return HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({"cursor": after.unwrap_or(&cursor), "reset": false, "revoked": []}));
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
            feed: Mutex::new(Feed::default()),
            feed_changed: tokio::sync::watch::Sender::new(0),
            feed_requests: AtomicU64::new(0),
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
                .route("/oauth/revocations", web::get().to(revocations))
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

    /// Signs any JSON `claims` as an `at+jwt` with the current key: for claims an
    /// [`AccessTokenClaims`] cannot hold (a `sid`, no `iat`). Empty if signing fails.
    pub fn sign_value(&self, claims: &Value) -> String {
        let keys = self.state.keys();
        let Some(key) = keys.last() else {
            return String::new();
        };
        let header = json!({"alg": key.algorithm().as_str(), "typ": "at+jwt", "kid": key.kid()});
        let (Ok(header), Ok(claims)) = (serde_json::to_vec(&header), serde_json::to_vec(claims))
        else {
            return String::new();
        };
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        match raw_signature(key, message.as_bytes()) {
            Some(signature) => format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)),
            None => String::new(),
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
        let scope: tessera_core::ScopeSet = scope.parse().unwrap_or_default();
        // Built from JSON, so that members added to the claims later, optional by
        // nature, need no change here.
        let claims = json!({
            "iss": self.state.issuer,
            "sub": format!("user-{username}"),
            "aud": "tessera-api",
            "exp": now + 900,
            "iat": now,
            "jti": format!("jti-{username}-{now}"),
            "client_id": "test-client",
            "scope": scope,
            "company": company,
            "roles": roles,
            "username": username,
        });
        match serde_json::from_value(claims) {
            Ok(claims) => claims,
            Err(err) => panic!("the test issuer's claims no longer fit AccessTokenClaims: {err}"),
        }
    }

    /// The revocation feed's URL (`/oauth/revocations`). It authenticates
    /// [`FEED_CLIENT_ID`] with [`FEED_CLIENT_SECRET`] over HTTP Basic.
    pub fn feed_url(&self) -> String {
        format!("{}/oauth/revocations", self.state.issuer)
    }

    /// Publishes `entry` on the revocation feed (any JSON: the test decides whether it is
    /// well formed); requests held open answer at once.
    pub fn revoke(&self, entry: Value) {
        self.change_feed(|feed| {
            let seq = feed.next;
            feed.entries.push((seq, entry));
            feed.next += 1;
        });
    }

    /// Replaces the feed's entries with `entries`: every client gets the whole new list
    /// with `reset: true` on its next request, as when the issuer cannot answer from a
    /// cursor.
    pub fn reset_feed(&self, entries: Vec<Value>) {
        self.change_feed(|feed| {
            feed.epoch += 1;
            feed.entries = entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| (i as u64, entry))
                .collect();
            feed.next = feed.entries.len() as u64;
        });
    }

    /// Makes the feed fail as `fault` says from the next request on ([`FeedFault::None`]
    /// to heal it).
    pub fn set_feed_fault(&self, fault: FeedFault) {
        self.change_feed(|feed| feed.fault = fault);
    }

    /// How many requests the feed has received.
    pub fn feed_requests(&self) -> u64 {
        self.state.feed_requests.load(Ordering::SeqCst)
    }

    fn change_feed(&self, change: impl FnOnce(&mut Feed)) {
        match self.state.feed.lock() {
            Ok(mut feed) => change(&mut feed),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
        self.state.feed_changed.send_modify(|n| *n += 1);
    }
}

/// The JWS signature of `message` with `key`.
fn raw_signature(key: &SigningKey, message: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature;
    let der = key.pkcs8_der();
    let rng = SystemRandom::new();
    match key.algorithm() {
        SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => {
            let pair = signature::RsaKeyPair::from_pkcs8(der).ok()?;
            let padding: &'static dyn signature::RsaEncoding =
                if key.algorithm() == SigningAlgorithm::RS256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
            let mut out = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut out).ok()?;
            Some(out)
        }
        SigningAlgorithm::ES256 => {
            let pair = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )
            .ok()?;
            Some(pair.sign(&rng, message).ok()?.as_ref().to_vec())
        }
        SigningAlgorithm::EdDSA => {
            let pair = signature::Ed25519KeyPair::from_pkcs8(der).ok()?;
            Some(pair.sign(message).as_ref().to_vec())
        }
        _ => None,
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
