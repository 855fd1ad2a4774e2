//! Issuer identifiers (RFC 8414 §2).

use crate::ParseError;

/// Parses an issuer identifier: an `http` or `https` URL with no query, fragment, user
/// information or path, normalised (lower-case scheme and host, no default port, no
/// trailing slash) so that the authorization server and the resource servers agree on the
/// exact `iss` string.
///
/// RFC 8414 §3.1 would place the metadata of an issuer with a path under
/// `/.well-known/oauth-authorization-server/<path>`; Tessera serves it at the root only,
/// so issuers are origins.
pub fn parse_issuer(raw: &str) -> Result<String, ParseError> {
    let bad = |why: &str| ParseError::new("issuer", why.to_owned());
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("an issuer has no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("an issuer has no user information"));
    }
    if url.path() != "/" {
        return Err(bad(
            "an issuer with a path is not supported; use the origin only",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
#[path = "tests/issuer.rs"]
mod tests;
