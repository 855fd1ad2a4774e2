//! RFC 6750 §2.1 bearer-token extraction.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::GuardError;

/// The bearer token of a request, from the `Authorization` header only.
///
/// - No `Authorization` header, or another scheme: [`GuardError::MissingCredentials`]
///   (RFC 6750 §3.1: no error code when no bearer credentials were sent). A token in the
///   query string or form body is not honoured, so it counts as no credentials.
/// - Two `Authorization` headers, or a header plus an `access_token` query parameter:
///   [`GuardError::InvalidRequest`] (RFC 6750 §2: one method per request).
/// - `Bearer` with an empty or malformed token (RFC 6750 §2.1 `b64token`):
///   [`GuardError::InvalidToken`].
pub fn bearer_token(req: &HttpRequest) -> Result<&str, GuardError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(GuardError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(GuardError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let Ok(value) = value.to_str() else {
        return Err(GuardError::InvalidToken(crate::Rejection::Malformed));
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(GuardError::MissingCredentials);
    }
    if has_query_token(req.query_string()) {
        return Err(GuardError::InvalidRequest(
            "the access token was sent in more than one place",
        ));
    }
    let token = token.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(GuardError::InvalidToken(crate::Rejection::Malformed));
    }
    Ok(token)
}

fn has_query_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
#[path = "tests/proptest_bearer.rs"]
mod proptest_bearer;
