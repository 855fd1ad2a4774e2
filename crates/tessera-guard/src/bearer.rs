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
    // Bytes, checked once: a Bearer token must be a b64token (RFC 6750 §2.1), which is
    // visible ASCII, so the header needs no separate text check on that path.
    let bytes = value.as_bytes();
    let (scheme, token) = match bytes.iter().position(|&b| b == b' ') {
        Some(space) => (&bytes[..space], &bytes[space + 1..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Not ours; still, a header that is not visible text is malformed.
        return match value.to_str() {
            Ok(_) => Err(GuardError::MissingCredentials),
            Err(_) => Err(GuardError::InvalidToken(crate::Rejection::Malformed)),
        };
    }
    let start = token.iter().position(|&b| b != b' ').unwrap_or(token.len());
    let token = &token[start..];
    let well_formed = is_b64token(token);
    // A header that is not visible text is malformed before anything else is said of it.
    if !well_formed && value.to_str().is_err() {
        return Err(GuardError::InvalidToken(crate::Rejection::Malformed));
    }
    if has_query_token(req.query_string()) {
        return Err(GuardError::InvalidRequest(
            "the access token was sent in more than one place",
        ));
    }
    if !well_formed {
        return Err(GuardError::InvalidToken(crate::Rejection::Malformed));
    }
    // A b64token is ASCII, hence UTF-8.
    std::str::from_utf8(token).map_err(|_| GuardError::InvalidToken(crate::Rejection::Malformed))
}

fn has_query_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// The bytes of RFC 6750's b64token other than its trailing `=`: ALPHA, DIGIT and
/// `-._~+/`, looked up in a table (a token is hundreds of bytes, checked on every request).
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty() && body.iter().all(|&b| B64TOKEN[usize::from(b)])
}

#[cfg(test)]
#[path = "tests/proptest_bearer.rs"]
mod proptest_bearer;
