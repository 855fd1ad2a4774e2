use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use tessera_core::{ErrorCode, OAuthError};

/// Why a token was refused, for logs and metrics. Never sent to the client: every
/// `InvalidToken` looks the same from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// Longer than the limit.
    TooLong,
    /// Not three base64url segments.
    Malformed,
    /// The header is not a JSON object of the expected shape.
    BadHeader,
    /// `alg` is not an accepted asymmetric algorithm, or not the key's algorithm.
    Algorithm,
    /// `typ` is not `at+jwt`.
    Type,
    /// A `crit` header is present.
    Critical,
    /// No `kid`, or no key with that `kid`.
    UnknownKey,
    /// The claims are not a JSON object of the expected types.
    BadClaims,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` does not contain the configured audience.
    Audience,
    /// The signature does not verify.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// An opaque token where opaque validation is off.
    Opaque,
    /// An opaque token that is unknown, expired, revoked, or whose user is gone.
    Inactive,
    /// A JWT named by the revocation list (its `jti`, `sid`, or its `sub` or `client_id`
    /// issued at or before a cutoff).
    Revoked,
}

/// A refused request, answered per RFC 6750 §3.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardError {
    /// No bearer credentials at all: 401 with a bare challenge (RFC 6750 §3.1).
    MissingCredentials,
    /// The request is malformed (two `Authorization` headers, a token in two places): 400.
    InvalidRequest(&'static str),
    /// The token is missing, malformed, expired, badly signed…: 401 `invalid_token`.
    InvalidToken(Rejection),
    /// The token lacks a scope: 403 `insufficient_scope` naming it.
    InsufficientScope(&'static str),
    /// The token is valid and scoped but not for this resource (e.g. another company):
    /// 403 `insufficient_scope`, saying nothing about the resource.
    Forbidden,
    /// The token cannot be checked now: keys could not be obtained and none are cached,
    /// or the revocation list is stale under [`StalePolicy::FailClosed`](crate::StalePolicy):
    /// 503 with `Retry-After`.
    Unavailable,
}

impl Rejection {
    /// A short name for logs and metrics, e.g. `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::TooLong => "too_long",
            Rejection::Malformed => "malformed",
            Rejection::BadHeader => "bad_header",
            Rejection::Algorithm => "algorithm",
            Rejection::Type => "type",
            Rejection::Critical => "critical",
            Rejection::UnknownKey => "unknown_key",
            Rejection::BadClaims => "bad_claims",
            Rejection::Issuer => "issuer",
            Rejection::Audience => "audience",
            Rejection::Signature => "signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Opaque => "opaque_refused",
            Rejection::Inactive => "inactive",
            Rejection::Revoked => "revoked",
        }
    }
}

impl GuardError {
    /// The outcome this error stands for in [`Guard::outcomes`](crate::Guard::outcomes):
    /// `missing`, `invalid_request`, a [`Rejection`] name, `insufficient_scope`,
    /// `forbidden` or `unavailable`. These are metric labels, spelled by the metrics
    /// contract rather than taken from the error codes, though two of them read alike.
    pub fn outcome(&self) -> &'static str {
        match self {
            GuardError::MissingCredentials => "missing",
            GuardError::InvalidRequest(_) => "invalid_request",
            GuardError::InvalidToken(why) => why.as_str(),
            GuardError::InsufficientScope(_) => "insufficient_scope",
            GuardError::Forbidden => "forbidden",
            GuardError::Unavailable => "unavailable",
        }
    }

    /// The error code this refusal answers with (RFC 6750 §3.1); none for a request that
    /// carried no credentials, which gets a bare challenge and no body.
    fn code(&self) -> Option<ErrorCode> {
        match self {
            GuardError::MissingCredentials => None,
            GuardError::InvalidRequest(_) => Some(ErrorCode::InvalidRequest),
            GuardError::InvalidToken(_) => Some(ErrorCode::InvalidToken),
            GuardError::InsufficientScope(_) | GuardError::Forbidden => {
                Some(ErrorCode::InsufficientScope)
            }
            GuardError::Unavailable => Some(ErrorCode::TemporarilyUnavailable),
        }
    }

    fn challenge(&self, realm: &str) -> String {
        let realm = format!("Bearer realm=\"{realm}\"");
        match (self, self.code()) {
            // RFC 6750 §3.1 defines no challenge code for a server that cannot check the
            // token now; the body and `Retry-After` say it.
            (GuardError::Unavailable, _) | (_, None) => realm,
            (GuardError::InsufficientScope(scope), Some(code)) => {
                format!("{realm}, error=\"{code}\", scope=\"{scope}\"")
            }
            (_, Some(code)) => format!("{realm}, error=\"{code}\""),
        }
    }

    fn body(&self) -> Option<OAuthError> {
        let description = match self {
            GuardError::MissingCredentials => return None,
            GuardError::InvalidRequest(why) => *why,
            GuardError::InvalidToken(_) => "the access token is invalid",
            GuardError::InsufficientScope(_) => "the access token lacks a required scope",
            GuardError::Forbidden => "the access token does not grant access to this resource",
            GuardError::Unavailable => "the token cannot be checked now; retry later",
        };
        Some(OAuthError::new(self.code()?, description))
    }

    /// The response for this error, with the challenge for `realm`.
    pub fn response(&self, realm: &str) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Ok(challenge) = HeaderValue::from_str(&self.challenge(realm)) {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if matches!(self, GuardError::Unavailable) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        match self.body() {
            Some(body) => response.json(body),
            None => response.finish(),
        }
    }
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::MissingCredentials => f.write_str("no bearer token"),
            GuardError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            GuardError::InvalidToken(why) => write!(f, "invalid token: {why:?}"),
            GuardError::InsufficientScope(scope) => write!(f, "missing scope {scope}"),
            GuardError::Forbidden => f.write_str("token not valid for this resource"),
            GuardError::Unavailable => f.write_str(
                "the token cannot be checked now (no signing keys, or a stale revocation list)",
            ),
        }
    }
}

impl std::error::Error for GuardError {}

impl ResponseError for GuardError {
    fn status_code(&self) -> StatusCode {
        match self {
            GuardError::MissingCredentials | GuardError::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            GuardError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            GuardError::InsufficientScope(_) | GuardError::Forbidden => StatusCode::FORBIDDEN,
            GuardError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response(crate::extract::DEFAULT_REALM)
    }
}

#[cfg(test)]
#[path = "tests/error.rs"]
mod tests;
