use serde::{Deserialize, Serialize};

use crate::{Role, ScopeSet};

/// The claims of a Tessera access token: RFC 9068 §2.2 plus the private claims an API
/// decides on.
///
/// For a user's token (`password`, `authorization_code`), `sub` is the user's id and
/// `company`, `roles` and `username` are present. For `client_credentials`, `sub` is the
/// client id and the three private claims are absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer: the authorization server's issuer URL.
    pub iss: String,
    /// Subject: the user id, or the client id for `client_credentials`.
    pub sub: String,
    /// Audience: the API identifier both servers are configured with.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: ScopeSet,
    /// The user's company slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// The user's roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    /// The user's login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The grant session (family) the token was issued from: what revoking that grant
    /// revokes. Absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The claims of an OpenID Connect ID token (Core §2, §5.1): who signed in, for which
/// client, when, and the standard claims of the `profile` and `email` scopes granted.
///
/// `sub` is the user's id, as in their access tokens; `aud` is the client id; `sid` is the
/// grant session, the same value as the access tokens' `sid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer: the authorization server's issuer URL.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// When the user last entered their password, seconds since the Unix epoch.
    pub auth_time: i64,
    /// The client's `nonce`, exactly as sent; absent when none was sent, and on a refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The left half of the access token's hash (Core §3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The grant session the tokens were issued from.
    pub sid: String,
    /// `profile`: the user's display name, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `profile`: the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `profile`: when the user's record last changed, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// `email`: the user's address, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `email`: always `false` when an address is given: Tessera does not verify
    /// addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}
