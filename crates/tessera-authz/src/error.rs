use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use tessera_core::{ErrorCode, OAuthError};
use tessera_store::StoreError;

/// The challenge sent with `invalid_client` when the client used HTTP Basic
/// (RFC 6749 §5.2).
const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\", charset=\"UTF-8\"";

/// An error answered as an RFC 6749 §5.2 JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: OAuthError,
    basic_challenge: bool,
    /// Seconds for `Retry-After`, on a 429.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the status its code names.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            body: OAuthError::new(code, description),
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// `invalid_request` (400).
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// The answer to a body that could not be read: 413 when too large, `invalid_request`
    /// otherwise.
    pub fn from_body(error: tessera_web::BodyError) -> Self {
        ApiError {
            status: StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            body: error.to_oauth(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// `invalid_client` (401). The description never says which check failed.
    pub fn invalid_client(basic_challenge: bool) -> Self {
        ApiError {
            basic_challenge,
            ..Self::new(ErrorCode::InvalidClient, "client authentication failed")
        }
    }

    /// 429: a rate limit refused the request (RFC 6585 §4). RFC 6749 names no code for
    /// it; `temporarily_unavailable` says what the client should do, and `Retry-After`
    /// when.
    pub fn rate_limited(limited: tessera_web::ratelimit::Limited) -> Self {
        let secs = limited.retry_after_secs();
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(secs),
            ..Self::new(
                ErrorCode::TemporarilyUnavailable,
                format!("too many requests or failed attempts; retry after {secs} seconds"),
            )
        }
    }

    /// A failure whose cause must not reach the client: logged here, answered as a bare
    /// `server_error` (500).
    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %ErrorChain(cause), "{context}");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }

    /// The OAuth error code.
    #[cfg(test)]
    pub fn code(&self) -> ErrorCode {
        self.body.error
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %ErrorChain(&err), "database unavailable");
                Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            other => Self::internal("store operation failed", &other),
        }
    }
}

impl From<crate::limits::Refused> for ApiError {
    fn from(refused: crate::limits::Refused) -> Self {
        match refused {
            crate::limits::Refused::Limit(_, limited) => Self::rate_limited(limited),
            crate::limits::Refused::Store(err) => err.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.body.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        no_store(&mut response);
        if self.basic_challenge {
            response.insert_header((header::WWW_AUTHENTICATE, BASIC_CHALLENGE));
        }
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.json(&self.body)
    }
}

/// Marks a response as never to be cached (RFC 6749 §5.1: token responses and errors).
pub fn no_store(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
}

/// Displays an error with its whole `source()` chain, for logs.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
