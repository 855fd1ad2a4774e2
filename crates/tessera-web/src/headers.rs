use actix_web::middleware::DefaultHeaders;

/// The headers every response carries unless it sets its own (the HTML pages set a
/// stricter-for-them policy of their own; the JWKS sets its own caching):
///
/// - `X-Content-Type-Options: nosniff`: a JSON error is never run as a script;
/// - `X-Frame-Options: DENY` and `frame-ancestors 'none'`: nothing is framed
///   (clickjacking);
/// - `Content-Security-Policy: default-src 'none'`: a response rendered by a browser
///   loads nothing;
/// - `Referrer-Policy: no-referrer`: URLs carrying codes or state never leak onwards;
/// - `Cross-Origin-Opener-Policy: same-origin`;
/// - with `hsts` (the server is reached over https), `Strict-Transport-Security` for a
///   year.
///
/// Being middleware, it also covers actix's own answers (404 for an unknown path, 405 for
/// a wrong method, 413 from an extractor), but not those actix-http sends before any
/// routing (400 for an unparsable request, 408 for a request that never completed, 431
/// for an oversized head).
pub fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"));
    if hsts {
        headers.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        headers
    }
}
