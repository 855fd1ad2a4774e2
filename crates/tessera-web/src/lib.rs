#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod body;
mod cors;
mod headers;
mod http_metrics;
pub mod metrics;
pub mod net;
pub mod ratelimit;
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;

pub use body::{BodyError, read_limited};
pub use cors::{CorsOrigins, cors};
pub use headers::security_headers;
pub use http_metrics::{HttpMetrics, metrics_handler};
pub use server::{serve, serve_metrics, serve_with_metrics};

/// The largest request head (request line and headers) either server reads, as actix-http
/// bounds it: a larger one is answered 431 before any handler runs. A head may also hold
/// at most 96 headers.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// How long a client has to send a request's head by default; a slower one gets 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stopping server waits for its audit events to be written.
pub const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// `X-Forwarded-For`, believed only from a trusted proxy.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Where `req` comes from: its TCP peer, or the client a trusted proxy names.
pub fn client_address(req: &HttpRequest, proxies: &net::TrustedProxies) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if proxies.is_empty() {
        return net::canonical(peer);
    }
    // A line that is not visible ASCII becomes an entry that stops the walk, rather than
    // vanishing and letting what precedes it stand for the client.
    let forwarded = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .map(|v| v.to_str().unwrap_or("?"));
    proxies.client_address(peer, forwarded)
}
