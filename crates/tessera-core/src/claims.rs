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
