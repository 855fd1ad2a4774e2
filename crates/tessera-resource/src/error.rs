use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tessera_core::{ErrorCode, OAuthError};
use tessera_store::StoreError;

/// An API error: an RFC 6749 §5.2-shaped body (`{"error": …, "error_description": …}`)
/// with its status. A 500 says nothing of its cause to the client; the cause goes to the
/// log.
#[derive(Debug, thiserror::Error)]
#[error("{body}")]
pub struct ApiError {
    status: StatusCode,
    body: OAuthError,
    /// Seconds for `Retry-After`, on a 429.
    retry_after: Option<u64>,
}

impl ApiError {
    /// `code` with the status it names.
    fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: OAuthError::new(code, description),
            retry_after: None,
        }
    }

    /// 429: a rate limit refused the request (RFC 6585 §4), with `Retry-After`. RFC 6749
    /// names no code for it; `temporarily_unavailable` says what the client should do.
    pub fn rate_limited(limited: tessera_web::ratelimit::Limited, what: &str) -> Self {
        let secs = limited.retry_after_secs();
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(secs),
            body: OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("{what}; retry after {secs} seconds"),
            ),
        }
    }

    /// 503 `temporarily_unavailable` (with `Retry-After`): the server is too busy now.
    pub fn busy(description: &'static str) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, description)
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such user")
    }

    /// The answer to a body that could not be read: 413 when too large, `invalid_request`
    /// otherwise.
    pub fn from_body(error: tessera_web::BodyError) -> Self {
        ApiError {
            status: StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            body: error.to_oauth(),
            retry_after: None,
        }
    }

    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "{context}");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            StoreError::NotFound(_) => ApiError::not_found(),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "database unavailable");
                Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            other => ApiError::internal("store operation failed", &other),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The body, with `Retry-After` on a 503 so that clients wait for the database.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "5"));
        }
        response.json(&self.body)
    }
}

#[cfg(test)]
#[path = "tests/error.rs"]
mod tests;
