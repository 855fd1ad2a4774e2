use std::sync::Arc;
use std::time::Instant;

use crate::metrics::{Counter, Histogram, LATENCY_BUCKETS, Registry};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

/// Request counts and latency by route and status, registered in a server's
/// [`Registry`]. Register it as app data and wrap the app in
/// `from_fn(HttpMetrics::middleware)`.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    registry: Arc<Registry>,
    requests: Counter,
    latency: Histogram,
}

impl HttpMetrics {
    /// Registers `tessera_http_requests_total` and
    /// `tessera_http_request_duration_seconds` (labels `route` and `status`) in
    /// `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        let requests = registry.counter(
            "tessera_http_requests_total",
            "HTTP requests answered, by route pattern and status.",
            &["route", "status"],
        );
        let latency = registry.histogram(
            "tessera_http_request_duration_seconds",
            "Time from the request's routing to its response head, by route pattern and status.",
            &["route", "status"],
            LATENCY_BUCKETS,
        );
        HttpMetrics {
            registry,
            requests,
            latency,
        }
    }

    /// Counts and times every request. The route is the matched pattern
    /// (`/companies/{company}/users`), never the raw path, so that the number of series
    /// stays bounded whatever paths clients invent; anything unmatched is `unmatched`.
    pub async fn middleware<B: MessageBody + 'static>(
        req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<B>, Error> {
        let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
        let route = req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let started = Instant::now();
        let response = next.call(req).await;
        if let Some(metrics) = metrics {
            let status = match &response {
                Ok(response) => response.status(),
                Err(err) => err.as_response_error().status_code(),
            };
            let labels = [route.as_str(), status.as_str()];
            metrics.requests.inc(&labels);
            metrics
                .latency
                .observe(&labels, started.elapsed().as_secs_f64());
        }
        response
    }
}

/// `GET /metrics`: every series of the server's registry in the Prometheus text format.
pub async fn metrics_handler(metrics: web::Data<HttpMetrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(metrics.registry.render())
}
