use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

/// The origins allowed to call the wrapped routes from a browser, and what they may send.
/// Empty by default: no cross-origin access at all.
#[derive(Clone, Debug)]
pub struct CorsOrigins {
    origins: Arc<[String]>,
    methods: &'static str,
    expose: &'static str,
}

impl CorsOrigins {
    /// Parses the configured origins. Each must be an origin exactly as a browser sends it
    /// (`https://app.example.com`, `http://localhost:3000`): a scheme, a host, an optional
    /// port, no path, no trailing slash. `*` is refused: every origin is named.
    ///
    /// `methods` is the `Access-Control-Allow-Methods` of a preflight; `expose` the
    /// response headers a page may read (may be empty).
    pub fn parse(
        origins: &[String],
        methods: &'static str,
        expose: &'static str,
    ) -> Result<Self, String> {
        let mut parsed: Vec<String> = Vec::with_capacity(origins.len());
        for raw in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            if raw == "*" {
                return Err(
                    "CORS origin \"*\" is not supported: name each origin allowed".to_owned(),
                );
            }
            let valid = raw
                .split_once("://")
                .filter(|(scheme, rest)| {
                    matches!(*scheme, "http" | "https")
                        && !rest.is_empty()
                        && !rest.contains(['/', '?', '#', '@', ' '])
                })
                .is_some();
            if !valid || raw.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(format!(
                    "CORS origin {raw:?} is not an origin: write it as a browser sends it, \
                     e.g. https://app.example.com (lowercase, no path, no trailing slash)"
                ));
            }
            if !parsed.iter().any(|o| o == raw) {
                parsed.push(raw.to_owned());
            }
        }
        Ok(CorsOrigins {
            origins: parsed.into(),
            methods,
            expose,
        })
    }

    /// Whether `origin` is one of the configured origins (compared exactly).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The CORS middleware, for `.wrap(actix_web::middleware::from_fn(tessera_web::cors))`
/// on the routes meant for browsers on other origins; it reads [`CorsOrigins`] from the
/// app data (none registered: no origin allowed).
///
/// An allowed origin gets `Access-Control-Allow-Origin: <that origin>` and never
/// `Access-Control-Allow-Credentials`: cookies never travel cross-origin, and no origin
/// is reflected unless configured. A preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) is answered here, 204 for an allowed origin and 403
/// otherwise. Every response says `Vary: Origin`, so a shared cache never hands one
/// origin's answer to another.
pub async fn cors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let config = req.app_data::<web::Data<CorsOrigins>>().cloned();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let allowed = match (&config, &origin) {
        (Some(config), Some(origin)) => config.allows(origin),
        _ => false,
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = if allowed {
            HttpResponse::NoContent()
        } else {
            HttpResponse::build(StatusCode::FORBIDDEN)
        };
        response.insert_header((header::VARY, "Origin"));
        if let (true, Some(config), Some(origin)) = (allowed, &config, &origin) {
            response
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.as_str()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, config.methods))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Authorization, Content-Type, If-None-Match",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE));
        }
        return Ok(req.into_response(response.finish()).map_into_right_body());
    }
    let mut response = next.call(req).await?.map_into_left_body();
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let (true, Some(config), Some(origin)) = (allowed, &config, &origin) {
        if let Ok(value) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        if !config.expose.is_empty() {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(config.expose),
            );
        }
    }
    Ok(response)
}
