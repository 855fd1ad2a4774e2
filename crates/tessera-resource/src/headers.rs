//! Headers every response of the resource server carries.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tessera_guard::AuthzReport;

const AUTHZ_LOOKUPS: HeaderName = HeaderName::from_static("tessera-authz-lookups");

/// Adds `Server-Timing` and `Tessera-Authz-Lookups` (how the request was authorized, and
/// how many round trips that took), `Cache-Control: no-store` and
/// `X-Content-Type-Options: nosniff` to every response, errors included.
pub async fn report(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let report = res.request().extensions().get::<AuthzReport>().copied();
    let (method, lookups, millis) = match report {
        Some(r) => (r.method, r.lookups, r.duration.as_secs_f64() * 1000.0),
        None => ("none", 0, 0.0),
    };
    let headers = res.headers_mut();
    if let Ok(timing) = HeaderValue::from_str(&format!("authz;desc=\"{method}\";dur={millis:.3}")) {
        headers.insert(HeaderName::from_static("server-timing"), timing);
    }
    headers.insert(AUTHZ_LOOKUPS, HeaderValue::from(lookups));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}
