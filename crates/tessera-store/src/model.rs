use chrono::{DateTime, Utc};
use tessera_core::{
    ClientId, CompanySlug, GrantType, Jwk, Role, ScopeSet, SigningAlgorithm, SigningKey,
    TokenFormat, Username,
};
use uuid::Uuid;

/// A company: the unit users belong to and admins manage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Company {
    /// Stable id.
    pub id: Uuid,
    /// Unique slug, used in URLs and in the `company` claim.
    pub slug: CompanySlug,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A company to create.
#[derive(Clone, Debug)]
pub struct NewCompany {
    /// Unique slug.
    pub slug: CompanySlug,
    /// Display name.
    pub name: String,
}

/// A user, without their password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Stable id: the `sub` of their tokens.
    pub id: Uuid,
    /// The company they belong to.
    pub company: CompanySlug,
    /// Unique login name.
    pub username: Username,
    /// Roles within their company.
    pub roles: Vec<Role>,
    /// A disabled user cannot obtain tokens.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user was last changed.
    pub updated_at: DateTime<Utc>,
    /// When everything issued to the user was last revoked (a password, role or status
    /// change, or "sign out everywhere"); tokens issued at or before it are refused.
    pub tokens_revoked_at: Option<DateTime<Utc>>,
    /// Display name (the OpenID Connect `name` claim), when set.
    pub name: Option<String>,
    /// Email address (the `email` claim), when set. Not verified.
    pub email: Option<String>,
}

impl User {
    /// Whether the user has the admin role, without which the `admin` scope is never granted.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// A user with their argon2id password hash, for authentication only.
#[derive(Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// A user to create. The password is already hashed.
#[derive(Clone)]
pub struct NewUser {
    /// Slug of an existing company.
    pub company: CompanySlug,
    /// Unique login name.
    pub username: Username,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Roles within the company.
    pub roles: Vec<Role>,
    /// Display name, when set.
    pub name: Option<String>,
    /// Email address, when set.
    pub email: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("company", &self.company)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Changes to a user; `None` leaves a field as it is. The password is already hashed.
#[derive(Clone, Default)]
pub struct UserPatch {
    /// New roles.
    pub roles: Option<Vec<Role>>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New argon2id PHC string.
    pub password_hash: Option<String>,
    /// A new display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// A new email address (`Some(None)` clears it).
    pub email: Option<Option<String>>,
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .field("password", &self.password_hash.as_ref().map(|_| "[new]"))
            .field("name", &self.name.as_ref().map(|_| "[new]"))
            .field("email", &self.email.as_ref().map(|_| "[new]"))
            .finish()
    }
}

/// A registered OAuth client: what was registered ([`NewClient`], whose fields it reads
/// through `Deref`, so `client.scopes` is the registered scopes) and when.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// What was registered.
    pub registration: NewClient,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When everything issued to it was last revoked (a secret rotation that asked for
    /// it); tokens issued at or before it are refused.
    pub tokens_revoked_at: Option<DateTime<Utc>>,
}

impl std::ops::Deref for Client {
    type Target = NewClient;

    fn deref(&self) -> &NewClient {
        &self.registration
    }
}

impl Client {
    /// Whether the client has no secret (RFC 6749 §2.1 public client).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("public", &self.is_public())
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field("access_token_format", &self.access_token_format)
            .finish_non_exhaustive()
    }
}

/// A client to register. The secret is already hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    /// Unique client id.
    pub client_id: ClientId,
    /// Display name, shown on consent pages.
    pub name: String,
    /// SHA-256 hex digest of the client secret; `None` for a public client.
    pub secret_hash: Option<String>,
    /// Grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may be granted.
    pub scopes: ScopeSet,
    /// Registered redirect URIs, compared by exact string match.
    pub redirect_uris: Vec<String>,
    /// Where a logout may send the browser back to (OpenID Connect RP-Initiated Logout),
    /// compared by exact string match.
    pub post_logout_redirect_uris: Vec<String>,
    /// The format of the access tokens it receives.
    pub access_token_format: TokenFormat,
    /// Access-token lifetime in seconds; `None` uses the server's default.
    pub access_token_ttl_secs: Option<i64>,
    /// Refresh-token lifetime in seconds; `None` uses the server's default.
    pub refresh_token_ttl_secs: Option<i64>,
}

/// Where a signing key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published in the JWKS, not signing yet.
    Next,
    /// Signing.
    Active,
    /// Published, no longer signing, until every token it signed has expired.
    Retired,
}

impl KeyState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(KeyState::Next),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key as stored.
#[derive(Clone)]
pub struct StoredKey {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// The one algorithm it signs with.
    pub algorithm: SigningAlgorithm,
    /// The private key: PKCS#8 DER, or DER sealed under the master key
    /// (`tessera_core::seal`). A secret. Empty once the key is retired: a key that will
    /// never sign again keeps no private half.
    pub private_key: Vec<u8>,
    /// The public JWK.
    pub public_jwk: Jwk,
    /// Lifecycle state.
    pub state: KeyState,
    /// When it was created, and published.
    pub created_at: DateTime<Utc>,
    /// When a `next` key starts signing.
    pub activate_at: Option<DateTime<Utc>>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// When a retired key leaves the JWKS (and the store).
    pub remove_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A signing key to store.
#[derive(Clone)]
pub struct NewKey {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub algorithm: SigningAlgorithm,
    /// The private key: PKCS#8 DER, or sealed under the master key.
    pub private_key: Vec<u8>,
    /// Public JWK.
    pub public_jwk: Jwk,
}

impl From<&SigningKey> for NewKey {
    fn from(key: &SigningKey) -> Self {
        NewKey {
            kid: key.kid().to_owned(),
            algorithm: key.algorithm(),
            private_key: key.pkcs8_der().to_vec(),
            public_jwk: key.public_jwk().clone(),
        }
    }
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A stored private key to seal in place: the row of `kid` still holding `plaintext` gets
/// `sealed` (see [`crate::Store::seal_private_keys`]).
#[derive(Clone)]
pub struct KeySealing {
    /// The key's id.
    pub kid: String,
    /// The unsealed private key the row is expected to hold (PKCS#8 DER). A secret.
    pub plaintext: Vec<u8>,
    /// The same key sealed under the master key.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for KeySealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySealing")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Data to insert into an empty database in one transaction (the demo data).
#[derive(Clone, Debug, Default)]
pub struct Seed {
    /// Companies, inserted first.
    pub companies: Vec<NewCompany>,
    /// Users of those companies.
    pub users: Vec<NewUser>,
    /// Clients.
    pub clients: Vec<NewClient>,
}

/// An opaque access token to store: its digest, never the token.
#[derive(Clone, Debug)]
pub struct NewAccessToken {
    /// SHA-256 hex digest of the token.
    pub token_hash: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user it speaks for; `None` for `client_credentials`.
    pub user_id: Option<Uuid>,
    /// The `sub` it stands for: the user id, or the client id.
    pub subject: String,
    /// Granted scopes.
    pub scope: ScopeSet,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The grant family it was issued from (an authorization code's redemption), if any:
    /// revoking the family revokes it.
    pub family_id: Option<Uuid>,
}

/// An opaque access token as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAccessToken {
    /// SHA-256 hex digest of the token.
    pub token_hash: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user it speaks for; `None` for `client_credentials`.
    pub user_id: Option<Uuid>,
    /// The `sub` it stands for.
    pub subject: String,
    /// Granted scopes.
    pub scope: ScopeSet,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The grant family it was issued from, if any.
    pub family_id: Option<Uuid>,
}

impl StoredAccessToken {
    /// Whether the token may be used at `now`: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

impl NewCompany {
    /// The company this becomes when inserted with `id` at `now`.
    pub(crate) fn stored(&self, id: Uuid, now: DateTime<Utc>) -> Company {
        Company {
            id,
            slug: self.slug.clone(),
            name: self.name.clone(),
            created_at: now,
        }
    }
}

impl NewUser {
    /// The user this becomes when inserted with `id` at `now`.
    pub(crate) fn stored(&self, id: Uuid, now: DateTime<Utc>) -> User {
        User {
            id,
            company: self.company.clone(),
            username: self.username.clone(),
            roles: self.roles.clone(),
            disabled: false,
            created_at: now,
            updated_at: now,
            tokens_revoked_at: None,
            name: self.name.clone(),
            email: self.email.clone(),
        }
    }
}

impl NewClient {
    /// The client this becomes when inserted at `now`.
    pub(crate) fn stored(&self, now: DateTime<Utc>) -> Client {
        Client {
            registration: self.clone(),
            created_at: now,
            tokens_revoked_at: None,
        }
    }
}

/// What one entry of the revocation feed covers. Values are the claims' text: a user's id
/// as in `sub`, a grant family's id as in `sid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// One JWT, by its `jti`.
    Jti(String),
    /// Every token of one grant family, by its `sid`.
    Sid(String),
    /// Every token of a user (`sub`) issued at or before `issued_before` (whole seconds).
    Sub {
        /// The user's id.
        sub: String,
        /// The cutoff: tokens whose `iat` is at or before it are revoked.
        issued_before: DateTime<Utc>,
    },
    /// Every token issued to a client at or before `issued_before` (whole seconds).
    ClientId {
        /// The client's id.
        client_id: String,
        /// The cutoff: tokens whose `iat` is at or before it are revoked.
        issued_before: DateTime<Utc>,
    },
}

/// One entry of the revocation feed, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Its place in the feed: entries are numbered in the order they became visible.
    pub seq: i64,
    /// What it covers.
    pub revoked: Revoked,
    /// When it can be forgotten: no token it covers is valid by then.
    pub until: DateTime<Utc>,
}

/// What [`crate::Store::revocations`] read: the entries in force after a cursor, and the
/// feed's head, the cursor to ask from next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationPage {
    /// The highest `seq` written so far (0 when none): every entry up to it is visible.
    pub head: i64,
    /// The entries after the cursor, up to `head`, not past their `until`, in order.
    pub entries: Vec<Revocation>,
}

/// The claims of a JWT that decide whether a revocation covers it.
#[derive(Clone, Copy, Debug)]
pub struct TokenIdentity<'a> {
    /// `jti`.
    pub jti: &'a str,
    /// `sid`, when the token has one.
    pub sid: Option<&'a str>,
    /// `sub`.
    pub sub: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// `iat`, in seconds.
    pub iat: i64,
}

/// An authorization code to store (RFC 6749 §4.1, with the RFC 7636 challenge).
#[derive(Clone, Debug)]
pub struct NewAuthorizationCode {
    /// SHA-256 hex digest of the code; the code itself is never stored.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user who consented.
    pub user_id: Uuid,
    /// The redirect URI of the authorization request, which the token request must repeat.
    pub redirect_uri: String,
    /// The scopes consented to.
    pub scope: ScopeSet,
    /// The S256 code challenge.
    pub code_challenge: String,
    /// When it stops being redeemable.
    pub expires_at: DateTime<Utc>,
    /// The OpenID Connect `nonce` of the request, exactly as sent.
    pub nonce: Option<String>,
    /// When the user entered their password for the login session that consented.
    pub auth_time: Option<DateTime<Utc>>,
}

/// An authorization code, as its one successful redemption found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeemedCode {
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user who consented.
    pub user_id: Uuid,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The scopes consented to.
    pub scope: ScopeSet,
    /// The S256 code challenge.
    pub code_challenge: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stopped being redeemable: the caller checks this, the store does not.
    pub expires_at: DateTime<Utc>,
    /// The grant family this redemption starts; tag what it issues with it.
    pub family_id: Uuid,
    /// The OpenID Connect `nonce` of the request.
    pub nonce: Option<String>,
    /// When the user entered their password.
    pub auth_time: Option<DateTime<Utc>>,
}

/// What presenting an authorization code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The first redemption: the code is spent now.
    First(RedeemedCode),
    /// The code was redeemed before: a replay. Revoke `family_id`.
    Replay {
        /// The family the first redemption started.
        family_id: Uuid,
    },
    /// No such code.
    Unknown,
}

/// A refresh token to store: the first of a grant family.
#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    /// SHA-256 hex digest of the token; the token itself is never stored.
    pub token_hash: String,
    /// The grant family it starts or continues.
    pub family_id: Uuid,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user it speaks for.
    pub user_id: Uuid,
    /// The scopes the resource owner granted: the most any refresh may ask for.
    pub scope: ScopeSet,
    /// The family's absolute end.
    pub expires_at: DateTime<Utc>,
    /// When the user entered their password, for a family started by the code flow:
    /// every ID token of the family names it.
    pub auth_time: Option<DateTime<Utc>>,
}

/// A refresh token as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRefreshToken {
    /// SHA-256 hex digest of the token.
    pub token_hash: String,
    /// Its grant family.
    pub family_id: Uuid,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user it speaks for.
    pub user_id: Uuid,
    /// The scopes the resource owner granted.
    pub scope: ScopeSet,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// The family's absolute end: the caller checks this, the store does not.
    pub expires_at: DateTime<Utc>,
    /// When it was spent on a refresh, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// When its family was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the user entered their password, for a family started by the code flow.
    pub auth_time: Option<DateTime<Utc>>,
}

/// What presenting a refresh token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// It was live and is spent now; its successor is stored. Holds the spent token.
    Rotated(StoredRefreshToken),
    /// It was spent before: it leaked, or two refreshes raced. Revoke `family_id`.
    Reused {
        /// Its family.
        family_id: Uuid,
    },
    /// Its family was revoked.
    Revoked,
    /// No such token.
    Unknown,
}

impl Rotation {
    /// What a token that the rotation could not spend means: reuse when it was spent
    /// before, revocation when it or its family was revoked (a live, unspent token is
    /// left unspent only when its family is recorded as revoked), unknown when there is
    /// none.
    pub(crate) fn not_spent(found: Option<StoredRefreshToken>) -> Rotation {
        match found {
            None => Rotation::Unknown,
            Some(t) if t.revoked_at.is_some() || t.used_at.is_none() => Rotation::Revoked,
            Some(t) => Rotation::Reused {
                family_id: t.family_id,
            },
        }
    }
}

/// A signed-in browser's session at the authorization endpoint, to store.
#[derive(Clone, Debug)]
pub struct NewLoginSession {
    /// SHA-256 hex digest of the session cookie's secret.
    pub session_hash: String,
    /// Who signed in.
    pub user_id: Uuid,
    /// When the user must sign in again.
    pub expires_at: DateTime<Utc>,
}

/// A login session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSession {
    /// Who signed in.
    pub user_id: Uuid,
    /// When they signed in.
    pub created_at: DateTime<Utc>,
    /// When the session ends: the caller checks this, the store does not.
    pub expires_at: DateTime<Utc>,
}

/// What an audit event records. [`AuditKind::as_str`] is the name stored and printed;
/// `FromStr` parses it back (for `tessera audit list --kind`). New kinds may be added, so
/// a `match` on it needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditKind {
    /// A user signed in, at the login form or with the password grant.
    LoginSucceeded,
    /// A sign-in was refused: unknown user, wrong password, disabled user.
    LoginFailed,
    /// An access token was issued.
    TokenIssued,
    /// A spent refresh token came back, and its grant family was revoked.
    RefreshReuse,
    /// A token was revoked (RFC 7009).
    TokenRevoked,
    /// A client failed to authenticate.
    ClientAuthFailed,
    /// A request was refused for coming too often.
    RateLimited,
    /// A signing key was published ahead of signing.
    KeyPublished,
    /// A published key started signing on schedule.
    KeyActivated,
    /// A key was taken out of the JWKS.
    KeyRemoved,
    /// A key was rotated by hand (`tessera keys rotate`, with or without `--now`).
    KeyRotated,
    /// A user was created.
    UserCreated,
    /// A user was changed (roles, password, disabled or enabled).
    UserUpdated,
    /// A user was deleted.
    UserDeleted,
    /// Everything issued to a user was revoked ("sign out everywhere").
    UserSignedOut,
    /// A client was deleted, with everything issued to it.
    ClientDeleted,
    /// A client's secret was replaced.
    ClientSecretRotated,
    /// Audit events older than a cutoff were deleted: by the retention of a running
    /// authorization server, or by `tessera audit purge`. The detail says how many and
    /// before when.
    AuditPurged,
}

impl AuditKind {
    /// Every kind, in the order `--help` and error messages list them.
    pub const ALL: &'static [AuditKind] = &[
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::TokenIssued,
        AuditKind::RefreshReuse,
        AuditKind::TokenRevoked,
        AuditKind::ClientAuthFailed,
        AuditKind::RateLimited,
        AuditKind::KeyPublished,
        AuditKind::KeyActivated,
        AuditKind::KeyRemoved,
        AuditKind::KeyRotated,
        AuditKind::UserCreated,
        AuditKind::UserUpdated,
        AuditKind::UserDeleted,
        AuditKind::UserSignedOut,
        AuditKind::ClientDeleted,
        AuditKind::ClientSecretRotated,
        AuditKind::AuditPurged,
    ];

    /// The stored and printed name, e.g. `login.failed`. Stored rows keep it, so it never
    /// changes once released.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login.succeeded",
            AuditKind::LoginFailed => "login.failed",
            AuditKind::TokenIssued => "token.issued",
            AuditKind::RefreshReuse => "refresh.reuse_detected",
            AuditKind::TokenRevoked => "token.revoked",
            AuditKind::ClientAuthFailed => "client.auth_failed",
            AuditKind::RateLimited => "rate_limited",
            AuditKind::KeyPublished => "key.published",
            AuditKind::KeyActivated => "key.activated",
            AuditKind::KeyRemoved => "key.removed",
            AuditKind::KeyRotated => "key.rotated",
            AuditKind::UserCreated => "user.created",
            AuditKind::UserUpdated => "user.updated",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::UserSignedOut => "user.signed_out",
            AuditKind::ClientDeleted => "client.deleted",
            AuditKind::ClientSecretRotated => "client.secret_rotated",
            AuditKind::AuditPurged => "audit.purged",
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditKind {
    type Err = UnknownAuditKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownAuditKind(s.to_owned()))
    }
}

/// A name that is no [`AuditKind`]. Its message lists the valid names, so that a command
/// line refusing it tells the user what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAuditKind(String);

impl std::fmt::Display for UnknownAuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        write!(f, "{:?} is not one of {}", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownAuditKind {}

/// An event to append to the audit log. Every field but `kind` and `at` is optional.
///
/// Never put a secret, a token, a password or a password hash in any field: the log is
/// read by operators and kept for months (the retention). Name things instead (a username, a client id, a
/// kid). The store keeps `at` to the microsecond, replaces NUL characters (which
/// PostgreSQL text cannot hold) and cuts each text field to
/// [`NewAuditEvent::MAX_FIELD_CHARS`] characters, so that a request cannot make a row
/// fail or grow without bound.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: AuditKind,
    /// Who acted: a username, a client id, a token's `sub`, or `cli`.
    pub actor: Option<String>,
    /// The OAuth client involved.
    pub client_id: Option<String>,
    /// The company concerned (its slug).
    pub company: Option<String>,
    /// What was acted on: a username, a user id, a kid.
    pub target: Option<String>,
    /// From where: the client's IP address.
    pub address: Option<String>,
    /// A short description, e.g. `grant=password format=jwt scope=basic`.
    pub detail: Option<String>,
}

/// Builder methods that set optional text fields, one per field.
macro_rules! text_setters {
    ($( $(#[$doc:meta])* $field:ident, )*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: impl Into<String>) -> Self {
                self.$field = Some(value.into());
                self
            }
        )*
    };
}

impl NewAuditEvent {
    /// The longest text the store keeps in one field, in characters; the rest is cut.
    pub const MAX_FIELD_CHARS: usize = 512;

    /// An event of `kind` at `at`, every optional field empty; set them with the builder
    /// methods ([`actor`](Self::actor) and the others).
    pub fn new(kind: AuditKind, at: DateTime<Utc>) -> Self {
        NewAuditEvent {
            at,
            kind,
            actor: None,
            client_id: None,
            company: None,
            target: None,
            address: None,
            detail: None,
        }
    }

    text_setters! {
        /// Sets who acted.
        actor,
        /// Sets the OAuth client involved.
        client_id,
        /// Sets the company concerned.
        company,
        /// Sets what was acted on.
        target,
        /// Sets the address the request came from.
        address,
        /// Sets the short description.
        detail,
    }
}

/// `value` as the store keeps it: NUL replaced with U+FFFD, at most
/// [`NewAuditEvent::MAX_FIELD_CHARS`] characters. Both adapters store this, so both read
/// back the same thing.
pub(crate) fn audit_text(value: Option<&str>) -> Option<String> {
    value.map(|v| {
        v.chars()
            .take(NewAuditEvent::MAX_FIELD_CHARS)
            .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
            .collect()
    })
}

/// An event as stored: the event and the id the log gave it.
///
/// Ids grow with every append, but only the time orders events: PostgreSQL hands out ids
/// before commit, so two concurrent appends may commit in the other order.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// The row's id, unique in this database.
    pub id: i64,
    /// What was recorded, as stored (see [`NewAuditEvent`]).
    pub event: NewAuditEvent,
}

/// Which audit events to list. The default lists the newest [`AuditFilter::DEFAULT_LIMIT`]
/// events of every kind.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events whose actor is exactly this.
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many events; 0 means [`AuditFilter::DEFAULT_LIMIT`], and more than
    /// [`AuditFilter::MAX_LIMIT`] means that many, so that one call cannot load a
    /// large log into memory.
    pub limit: u32,
}

impl AuditFilter {
    /// How many events a filter with `limit: 0` lists.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The most events one call lists.
    pub const MAX_LIMIT: u32 = 10_000;

    /// The number of events this filter lists at most, after the default and the cap.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}
