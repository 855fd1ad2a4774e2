use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tessera_core::{CompanySlug, Role, ScopeSet, SigningKey, Username};
use tessera_guard::testing::TestIssuer;
use tessera_resource::{Application, Settings};
pub use tessera_store::on_each_backend;
pub use tessera_store::testing::{Backend, TestDatabase};
use tessera_store::*;
use uuid::Uuid;

pub const KEY_A: &str = include_str!("../../../../testdata/keys/rsa-2048-a.pem");
pub const KEY_B: &str = include_str!("../../../../testdata/keys/rsa-2048-b.pem");

/// A store that counts every call, to prove what does and does not touch the database.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: AtomicU64,
}

impl CountingStore {
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    fn count(&self) -> &dyn Store {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_ref()
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn migrate(&self) -> Result<()> {
        self.count().migrate().await
    }
    fn pool_status(&self) -> tessera_store::PoolStatus {
        self.inner.pool_status()
    }
    async fn ping(&self) -> Result<()> {
        self.count().ping().await
    }
    async fn seed_if_empty(&self, seed: &Seed, now: DateTime<Utc>) -> Result<bool> {
        self.count().seed_if_empty(seed, now).await
    }
    async fn create_company(&self, new: &NewCompany, now: DateTime<Utc>) -> Result<Company> {
        self.count().create_company(new, now).await
    }
    async fn list_companies(&self) -> Result<Vec<Company>> {
        self.count().list_companies().await
    }
    async fn create_user(&self, new: &NewUser, now: DateTime<Utc>) -> Result<User> {
        self.count().create_user(new, now).await
    }
    async fn find_user_credentials(&self, username: &str) -> Result<Option<UserCredentials>> {
        self.count().find_user_credentials(username).await
    }
    async fn list_users(&self, company: Option<&CompanySlug>) -> Result<Vec<User>> {
        self.count().list_users(company).await
    }
    async fn set_user_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<User> {
        self.count()
            .set_user_disabled(username, disabled, now)
            .await
    }
    async fn delete_user(&self, username: &Username, now: DateTime<Utc>) -> Result<()> {
        self.count().delete_user(username, now).await
    }
    async fn find_user(&self, company: &CompanySlug, id: Uuid) -> Result<Option<User>> {
        self.count().find_user(company, id).await
    }
    async fn update_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<User>> {
        self.count().update_user(company, id, patch, now).await
    }
    async fn update_company_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        patch: &UserPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<User>> {
        self.count()
            .update_company_user(company, id, patch, now)
            .await
    }
    async fn delete_company_user(
        &self,
        company: &CompanySlug,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.count().delete_company_user(company, id, now).await
    }
    async fn delete_user_in(
        &self,
        company: &CompanySlug,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.count().delete_user_in(company, id, now).await
    }
    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        self.count().find_user_by_id(id).await
    }
    async fn insert_access_token(&self, token: &NewAccessToken, now: DateTime<Utc>) -> Result<()> {
        self.count().insert_access_token(token, now).await
    }
    async fn find_access_token(&self, token_hash: &str) -> Result<Option<StoredAccessToken>> {
        self.count().find_access_token(token_hash).await
    }
    async fn find_access_token_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(StoredAccessToken, Option<User>)>> {
        self.count().find_access_token_with_user(token_hash).await
    }
    async fn insert_access_tokens(&self, tokens: &[(NewAccessToken, DateTime<Utc>)]) -> Result<()> {
        self.count().insert_access_tokens(tokens).await
    }
    async fn revoke_access_token(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.count()
            .revoke_access_token(token_hash, client_id, now)
            .await
    }
    async fn insert_authorization_code(
        &self,
        code: &NewAuthorizationCode,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.count().insert_authorization_code(code, now).await
    }
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Redemption> {
        self.count()
            .redeem_authorization_code(code_hash, family_id, now)
            .await
    }
    async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
        jwt_until: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        self.count().revoke_family(family_id, now, jwt_until).await
    }
    async fn insert_refresh_token(
        &self,
        token: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.count().insert_refresh_token(token, now).await
    }
    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<StoredRefreshToken>> {
        self.count().find_refresh_token(token_hash).await
    }
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation> {
        self.count()
            .rotate_refresh_token(token_hash, successor_hash, now)
            .await
    }
    async fn insert_login_session(
        &self,
        session: &NewLoginSession,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.count().insert_login_session(session, now).await
    }
    async fn find_login_session(&self, session_hash: &str) -> Result<Option<LoginSession>> {
        self.count().find_login_session(session_hash).await
    }
    async fn delete_login_session(&self, session_hash: &str) -> Result<bool> {
        self.count().delete_login_session(session_hash).await
    }
    async fn find_consent(&self, user_id: Uuid, client_id: &str) -> Result<Option<ScopeSet>> {
        self.count().find_consent(user_id, client_id).await
    }
    async fn remember_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: ScopeSet,
        now: DateTime<Utc>,
    ) -> Result<ScopeSet> {
        self.count()
            .remember_consent(user_id, client_id, scope, now)
            .await
    }
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        self.count().purge_expired(now).await
    }
    async fn create_client(&self, new: &NewClient, now: DateTime<Utc>) -> Result<Client> {
        self.count().create_client(new, now).await
    }
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>> {
        self.count().find_client(client_id).await
    }
    async fn list_clients(&self) -> Result<Vec<Client>> {
        self.count().list_clients().await
    }
    async fn published_keys(&self) -> Result<Vec<StoredKey>> {
        self.count().published_keys().await
    }
    async fn active_key(&self) -> Result<Option<StoredKey>> {
        self.count().active_key().await
    }
    async fn insert_active_key_if_none(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<StoredKey> {
        self.count().insert_active_key_if_none(key, now).await
    }

    async fn insert_next_key_if_none(
        &self,
        key: &NewKey,
        activate_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<StoredKey> {
        self.count()
            .insert_next_key_if_none(key, activate_at, now)
            .await
    }
    async fn activate_due_key(
        &self,
        now: DateTime<Utc>,
        retire_after: chrono::Duration,
    ) -> Result<Option<String>> {
        self.count().activate_due_key(now, retire_after).await
    }
    async fn activate_key_now(
        &self,
        key: &NewKey,
        now: DateTime<Utc>,
        remove_at: DateTime<Utc>,
    ) -> Result<StoredKey> {
        self.count().activate_key_now(key, now, remove_at).await
    }
    async fn remove_expired_keys(&self, now: DateTime<Utc>) -> Result<u64> {
        self.count().remove_expired_keys(now).await
    }
    async fn remove_key(&self, kid: &str, activates_after: DateTime<Utc>) -> Result<bool> {
        self.count().remove_key(kid, activates_after).await
    }
    async fn seal_private_keys(&self, keys: &[tessera_store::KeySealing]) -> Result<u64> {
        self.count().seal_private_keys(keys).await
    }
    // The audit log is written in the background, never to authorize a request: not counted.
    async fn revoke_jwt(&self, jti: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        self.count().revoke_jwt(jti, until, now).await
    }
    async fn revoke_user(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<User>> {
        self.count().revoke_user(id, now).await
    }
    async fn delete_client(&self, client_id: &str, now: DateTime<Utc>) -> Result<bool> {
        self.count().delete_client(client_id, now).await
    }
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        revoke_tokens: bool,
        now: DateTime<Utc>,
    ) -> Result<Client> {
        self.count()
            .rotate_client_secret(client_id, secret_hash, revoke_tokens, now)
            .await
    }
    async fn revocations(
        &self,
        after: i64,
        now: DateTime<Utc>,
    ) -> Result<tessera_store::RevocationPage> {
        self.count().revocations(after, now).await
    }
    async fn revocation_head(&self) -> Result<i64> {
        self.count().revocation_head().await
    }
    async fn jwt_revoked(
        &self,
        token: tessera_store::TokenIdentity<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.count().jwt_revoked(token, now).await
    }
    async fn record_audit_events(&self, events: &[NewAuditEvent]) -> Result<()> {
        self.inner.record_audit_events(events).await
    }
    async fn list_audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        self.inner.list_audit_events(filter).await
    }
    async fn purge_audit_events(&self, before: DateTime<Utc>) -> Result<u64> {
        self.inner.purge_audit_events(before).await
    }
}

pub struct TestApp {
    pub address: String,
    pub issuer: TestIssuer,
    pub store: Arc<CountingStore>,
    pub http: reqwest::Client,
    pub users: Vec<User>,
    /// The server's audit log, to flush before reading events.
    pub audit: tessera_store::AuditLog,
    handle: actix_web::dev::ServerHandle,
    _db: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// A resource server on a fresh database holding acme (`alice` admin, `bob` user) and
/// globex (`carol` admin, `dave` user), trusting a test issuer that signs with key A.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::new(backend);
    let inner = db.open().await;
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned();
    let mut users = Vec::new();
    for (slug, people) in [
        ("acme", [("alice", Role::Admin), ("bob", Role::User)]),
        ("globex", [("carol", Role::Admin), ("dave", Role::User)]),
    ] {
        inner
            .create_company(
                &NewCompany {
                    slug: slug.parse().unwrap(),
                    name: slug.into(),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        for (name, role) in people {
            let new = NewUser {
                company: slug.parse().unwrap(),
                username: name.parse().unwrap(),
                password_hash: hash.clone(),
                roles: vec![role],
                name: None,
                email: None,
            };
            users.push(inner.create_user(&new, Utc::now()).await.unwrap());
        }
    }
    // The client the test issuer's tokens name, so opaque tokens can be stored for it.
    let client = NewClient {
        client_id: "test-client".parse().unwrap(),
        name: "test".into(),
        secret_hash: None,
        grant_types: vec![],
        scopes: "basic admin".parse().unwrap(),
        redirect_uris: vec![],
        access_token_format: tessera_core::TokenFormat::Opaque,
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
        post_logout_redirect_uris: vec![],
    };
    inner.create_client(&client, Utc::now()).await.unwrap();
    let store = Arc::new(CountingStore {
        inner,
        calls: AtomicU64::new(0),
    });
    let issuer = TestIssuer::start(SigningKey::from_pkcs8_pem(KEY_A).unwrap()).unwrap();
    let mut settings = Settings::new(issuer.issuer());
    settings.addr = "127.0.0.1:0".into();
    settings.workers = Some(1);
    configure(&mut settings);
    let app = Application::build(settings, store.clone()).await.unwrap();
    let address = format!("http://{}", app.addr());
    let handle = app.handle();
    let audit = app.audit().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        issuer,
        store,
        audit,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        users,
        handle,
        _db: db,
    }
}

impl TestApp {
    pub fn user(&self, username: &str) -> &User {
        self.users
            .iter()
            .find(|u| u.username.as_str() == username)
            .unwrap()
    }

    /// A token from the test issuer for a seeded user with `scope`.
    pub fn token(&self, username: &str, scope: &str) -> String {
        let user = self.user(username);
        let mut claims =
            self.issuer
                .user_claims(username, user.company.as_str(), &user.roles, scope, now());
        claims.sub = user.id.to_string();
        self.issuer.sign(&claims)
    }

    pub fn alice_admin(&self) -> String {
        self.token("alice", "admin")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// Asserts that alice's admin token still lists acme's users.
    pub async fn assert_valid_token_still_works(&self) {
        let response = self
            .get("/companies/acme/users", Some(&self.alice_admin()))
            .await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "a valid token must still work"
        );
    }
}

/// Asserts status and exact `WWW-Authenticate`, and returns the JSON body (if any).
pub async fn assert_rejected(response: reqwest::Response, status: u16, challenge: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .as_deref(),
        Some(challenge),
        "WWW-Authenticate"
    );
    let text = response.text().await.unwrap();
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

pub const INVALID_TOKEN: &str = r#"Bearer realm="tessera", error="invalid_token""#;
pub const NEEDS_ADMIN: &str =
    r#"Bearer realm="tessera", error="insufficient_scope", scope="admin""#;
pub const OTHER_COMPANY: &str = r#"Bearer realm="tessera", error="insufficient_scope""#;
pub const NO_CREDENTIALS: &str = r#"Bearer realm="tessera""#;

/// The two token formats, for tests that must decide the same with both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jwt,
    Opaque,
}

impl TestApp {
    /// A token for a seeded user in `format`, valid for 15 minutes, or already expired.
    pub async fn token_as(
        &self,
        format: Format,
        username: &str,
        scope: &str,
        expired: bool,
    ) -> String {
        let user = self.user(username).clone();
        let now = now();
        let (iat, exp) = if expired {
            (now - 3600, now - 600)
        } else {
            (now, now + 900)
        };
        match format {
            Format::Jwt => {
                let mut claims = self.issuer.user_claims(
                    username,
                    user.company.as_str(),
                    &user.roles,
                    scope,
                    iat,
                );
                claims.sub = user.id.to_string();
                claims.exp = exp;
                self.issuer.sign(&claims)
            }
            Format::Opaque => {
                // What the authorization server does for an opaque client: a random token,
                // stored only as its digest.
                let token = format!("tsr_{}", tessera_core::secret::generate().unwrap());
                let record = NewAccessToken {
                    token_hash: tessera_core::secret::digest(&token),
                    client_id: "test-client".parse().unwrap(),
                    user_id: Some(user.id),
                    subject: user.id.to_string(),
                    scope: scope.parse().unwrap(),
                    expires_at: chrono::DateTime::from_timestamp(exp, 0).unwrap(),
                    family_id: None,
                };
                let issued = chrono::DateTime::from_timestamp(iat, 0).unwrap();
                self.store
                    .insert_access_token(&record, issued)
                    .await
                    .unwrap();
                token
            }
        }
    }
}
