use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// The OAuth error vocabulary, and the few codes of Tessera's own that its user API adds:
/// each variant's `Display` is its wire code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749 §5.2: a parameter is missing, repeated, malformed or unsupported.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed (unknown client, no or wrong secret).
    InvalidClient,
    /// RFC 6749 §5.2: the grant (credentials, code, refresh token) is invalid or expired.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the server does not support this grant type.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1: the server does not support this `response_type`.
    UnsupportedResponseType,
    /// RFC 6749 §5.2: the scope is unknown, malformed, or more than may be granted.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: the resource owner or server denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the server cannot answer because of an internal error.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is temporarily unable to answer (e.g. database away).
    TemporarilyUnavailable,
    /// RFC 6750 §3.1: the access token is missing, malformed, expired or revoked.
    InvalidToken,
    /// RFC 6750 §3.1: the access token lacks a scope the request needs.
    InsufficientScope,
    /// RFC 7009 §2.2.1: the server cannot revoke this type of token.
    UnsupportedTokenType,
    /// OpenID Connect Core §3.1.2.6: `prompt=none`, and the user must sign in first.
    LoginRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none`, and the user must consent first.
    ConsentRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none`, and the user must act on a page.
    InteractionRequired,
    /// OpenID Connect Core §3.1.2.6: the `request` parameter (a request object) is not
    /// supported.
    RequestNotSupported,
    /// OpenID Connect Core §3.1.2.6: the `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// OpenID Connect Core §3.1.2.6: the `registration` parameter is not supported.
    RegistrationNotSupported,
    /// Tessera's own code, not an RFC one: the company user API has no such resource (or
    /// will not say whether it exists).
    NotFound,
    /// Tessera's own code, not an RFC one: the company user API's write would break a
    /// uniqueness rule (e.g. a username already taken).
    Conflict,
}

impl ErrorCode {
    /// The wire code, e.g. `invalid_grant`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
        }
    }

    /// The HTTP status the RFCs name for this error at the token endpoint (RFC 6749 §5.2)
    /// and at a resource server (RFC 6750 §3.1); for Tessera's own codes, the status of
    /// their name (404, 409).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope | ErrorCode::AccessDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::InvalidScope
            | ErrorCode::UnsupportedTokenType
            | ErrorCode::LoginRequired
            | ErrorCode::ConsentRequired
            | ErrorCode::InteractionRequired
            | ErrorCode::RequestNotSupported
            | ErrorCode::RequestUriNotSupported
            | ErrorCode::RegistrationNotSupported => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An OAuth error response body (RFC 6749 §5.2): `{"error": …, "error_description": …}`.
///
/// The description is for the developer of the client. It never carries internal text
/// (SQL, paths, key material) and, for authentication failures, never says which check
/// failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    /// The wire code.
    pub error: ErrorCode,
    /// A human-readable explanation (RFC 6749 §5.2 `error_description`).
    pub error_description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            error,
            error_description: description.into(),
        }
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        self.error.http_status()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.error_description)
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
#[path = "tests/oauth.rs"]
mod tests;
