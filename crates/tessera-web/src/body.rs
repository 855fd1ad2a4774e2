//! Request bodies read with a size limit and a required media type.
//!
//! Both servers read bodies themselves rather than through actix's `Form` and `Json`
//! extractors, which answer bad input with plain text: an OAuth client expects an RFC 6749
//! §5.2 JSON error, and the user API an RFC-shaped one. Each server maps [`BodyError`] to
//! its own error body.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{Bytes, Payload};
use tessera_core::{ErrorCode, OAuthError};

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The `Content-Type` is not the required media type (parameters such as `charset`
    /// are allowed; the comparison ignores ASCII case).
    WrongMediaType(&'static str),
    /// The body is larger than the limit, by its `Content-Length` or as it arrived.
    TooLarge(usize),
    /// The connection failed or the body ended early.
    Unreadable,
}

impl BodyError {
    /// The HTTP status to answer with: 413 when too large, 400 otherwise.
    pub fn http_status(self) -> u16 {
        match self {
            BodyError::TooLarge(_) => 413,
            BodyError::WrongMediaType(_) | BodyError::Unreadable => 400,
        }
    }

    /// The `invalid_request` body that says what was wrong (RFC 6749 §5.2's shape, which
    /// the user API shares).
    pub fn to_oauth(self) -> OAuthError {
        let description = match self {
            BodyError::WrongMediaType(media_type) => {
                format!("the request body must be {media_type}")
            }
            BodyError::TooLarge(limit) => format!("the request body exceeds {limit} bytes"),
            BodyError::Unreadable => "the request body could not be read".to_owned(),
        };
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }
}

/// Reads the whole body of `req`, which must be of `media_type` and at most `max_bytes`
/// long. A declared `Content-Length` over the limit is refused before anything is read.
pub async fn read_limited(
    req: &HttpRequest,
    payload: Payload,
    media_type: &'static str,
    max_bytes: usize,
) -> Result<Bytes, BodyError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(media_type) {
        return Err(BodyError::WrongMediaType(media_type));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(BodyError::TooLarge(max_bytes));
    }
    match payload.to_bytes_limited(max_bytes).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(BodyError::Unreadable),
        Err(_) => Err(BodyError::TooLarge(max_bytes)),
    }
}
