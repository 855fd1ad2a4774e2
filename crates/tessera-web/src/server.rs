//! The HTTP server both Tessera servers run: one place for how a bound listener is served.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, HttpServer};

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
