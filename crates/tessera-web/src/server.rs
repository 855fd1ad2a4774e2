//! The HTTP server both Tessera servers run: one place for how a bound listener is served,
//! and for the metrics listener a server may run beside it.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, HttpServer, web};

use crate::http_metrics::{HttpMetrics, metrics_handler};

/// How long a client that stops reading gets before its connection is dropped after the
/// response is written.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the apps `app` makes on `listener`: a client has `request_timeout` to send a
/// request's head (408 after that), `workers` request workers (at least one; actix's
/// default, one per physical core, when `None`), and signals are left to the caller, which
/// stops the server through its handle.
pub fn serve<F, T, B>(
    app: F,
    listener: TcpListener,
    request_timeout: Duration,
    workers: Option<usize>,
) -> std::io::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let mut server = HttpServer::new(app)
        .client_request_timeout(request_timeout)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .listen(listener)?
        .disable_signals();
    if let Some(workers) = workers {
        server = server.workers(workers.max(1));
    }
    Ok(server.run())
}

/// Binds `addr` and serves there `GET /metrics` (the registry of `metrics`) and whatever
/// `health` adds (the server's `/healthz`, with the app data its handler needs set on its
/// resource), with one worker; every other path is 404. Its requests are not counted in
/// the HTTP metrics: a scrape does not change what it reads. Returns the bound address
/// (port 0 picks one) and the server; run it beside the main server with
/// [`serve_with_metrics`].
pub fn serve_metrics<F>(
    addr: &str,
    metrics: web::Data<HttpMetrics>,
    health: F,
    request_timeout: Duration,
) -> std::io::Result<(SocketAddr, Server)>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let server = serve(
        move || {
            App::new()
                .app_data(metrics.clone())
                .wrap(crate::security_headers(false))
                .service(web::resource("/metrics").get(metrics_handler))
                .configure(health.clone())
        },
        listener,
        request_timeout,
        Some(1),
    )?;
    Ok((bound, server))
}

/// Drives `main` to its end and, when there is one, the `metrics` server beside it, which
/// is stopped (gracefully) once `main` has stopped: stopping a server through its handle
/// stops its metrics listener too. Returns `main`'s result, or else the metrics server's.
pub async fn serve_with_metrics(main: Server, metrics: Option<Server>) -> std::io::Result<()> {
    let Some(metrics) = metrics else {
        return main.await;
    };
    let metrics_handle = metrics.handle();
    let main = async {
        let served = main.await;
        metrics_handle.stop(true).await;
        served
    };
    let (served, metrics_served) = tokio::join!(main, metrics);
    served.and(metrics_served)
}
