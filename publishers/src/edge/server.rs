//! Accept loop and graceful shutdown of the HTTP edge; each request dispatched through the one
//! router to its door's pipeline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::edge::console::Console;
use crate::edge::envelope::{self, ApiError};
use crate::edge::mobile::MobileApi;
use crate::edge::ocpp::Ocpp;
use crate::edge::operations::HealthCheck;
use crate::edge::partner::PartnerApi;
use crate::edge::router::{Door, Doors, Handler, Lookup, router};

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP edge, bound and ready to serve.
pub struct Edge {
    listener: TcpListener,
    health: Arc<dyn HealthCheck>,
    api: Arc<PartnerApi>,
    mobile: Arc<MobileApi>,
    metrics_token: Option<Arc<str>>,
    console: Option<Arc<Console>>,
    ocpp: Option<Arc<Ocpp>>,
    front_doors: bool,
}

impl Edge {
    /// Binds the listening socket (port 0 picks a free port, as tests do).
    pub async fn bind(
        addr: SocketAddr,
        health: Arc<dyn HealthCheck>,
        api: Arc<PartnerApi>,
        mobile: Arc<MobileApi>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            health,
            api,
            mobile,
            metrics_token: None,
            console: None,
            ocpp: None,
            front_doors: true,
        })
    }

    /// Makes `GET /metrics` need `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.map(Arc::from);
        self
    }

    /// With `false`, answers health, metrics and the documents only: every partner, app, console
    /// and charger route is 404 (a worker process, `serve --role worker`).
    pub fn with_front_doors(mut self, open: bool) -> Self {
        self.front_doors = open;
        self
    }

    /// Serves the operator console at `/admin`.
    pub fn with_console(mut self, console: Arc<Console>) -> Self {
        self.console = Some(console);
        self
    }

    /// Takes chargers' OCPP WebSockets at `/ocpp/{chargerId}`.
    pub fn with_ocpp(mut self, ocpp: Arc<Ocpp>) -> Self {
        self.ocpp = Some(ocpp);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, waits up to `grace` for the
    /// requests in flight to finish, and closes chargers' sockets.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        // Each connection holds a receiver; once told to stop, it finishes its request in flight
        // and drops it, and the sender sees every receiver gone. (hyper-util's GracefulShutdown
        // does not take connections that may upgrade to a WebSocket.)
        let (stopping, watching) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Answers are small and written whole: send them at once rather than wait for the
            // client's delayed ACK (Nagle).
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
            }
            let (health, api, mobile) = (Arc::clone(&self.health), Arc::clone(&self.api), Arc::clone(&self.mobile));
            let (token, console, ocpp) = (self.metrics_token.clone(), self.console.clone(), self.ocpp.clone());
            let front_doors = self.front_doors;
            let service = service_fn(move |request| {
                let (health, api, mobile) = (Arc::clone(&health), Arc::clone(&api), Arc::clone(&mobile));
                let (token, console, ocpp) = (token.clone(), console.clone(), ocpp.clone());
                async move {
                    let parts = Parts {
                        health: health.as_ref(),
                        api: &api,
                        mobile: &mobile,
                        metrics_token: token.as_deref(),
                        console: console.as_deref(),
                        ocpp: ocpp.as_ref(),
                        front_doors,
                    };
                    Ok::<_, Infallible>(handle(request, peer.ip(), parts).await)
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut stop = watching.clone();
            tokio::spawn(async move {
                tokio::pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        tracing::info!("edge stopped accepting; finishing requests in flight");
        drop(watching);
        stopping.send_replace(true);
        if tokio::time::timeout(grace, stopping.closed()).await.is_err() {
            tracing::warn!(?grace, "requests still in flight after the grace period were cut");
        }
        if let Some(ocpp) = &self.ocpp {
            ocpp.close(grace).await;
        }
    }
}

/// What a request may be answered by.
struct Parts<'a> {
    health: &'a dyn HealthCheck,
    api: &'a PartnerApi,
    mobile: &'a MobileApi,
    metrics_token: Option<&'a str>,
    console: Option<&'a Console>,
    ocpp: Option<&'a Arc<Ocpp>>,
    front_doors: bool,
}

async fn handle(request: Request<Incoming>, peer: std::net::IpAddr, parts: Parts<'_>) -> Response<Full<Bytes>> {
    let request_id = envelope::new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %crate::edge::marketplace::loggable(request.uri().path()));
    let started = Instant::now();
    let method = request.method().clone();
    let hop = server_hop(&request);
    hop.wrap(
        async {
            tracing::trace!("received");
            let Parts { health, api, mobile, metrics_token, console, ocpp, front_doors } = parts;
            let request_id = &request_id;
            let doors = Doors { api, mobile, health, metrics_token, console, ocpp, front_doors, peer, request_id };
            let (answer, route) = dispatch(request, &doors).await;
            let status = answer.status().as_u16();
            tracing::debug!(status, "answered");
            if bus::traces::enabled() {
                hop.rename(format!("{method} {route}"));
                hop.set(bus::traces::attribute::HTTP_ROUTE, route.clone());
                hop.set(bus::traces::attribute::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
                if status >= 500 {
                    hop.fail(answer.status().as_str(), "server error");
                }
            }
            bus::metrics::http_request(route, method.as_str(), status, started.elapsed());
            answer
        }
        .instrument(span),
    )
    .await
}

/// The request's server span, under the caller's W3C `traceparent` when it sent one.
fn server_hop(request: &Request<Incoming>) -> bus::traces::Hop {
    if !bus::traces::enabled() {
        return bus::traces::Hop::default();
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let path = crate::edge::marketplace::loggable(request.uri().path());
    bus::traces::server(request.method().as_str(), &path, header("traceparent"), header("tracestate"))
}

/// Answers a request through the route the router finds, and says which (for metrics: a raw path
/// would carry ids); a path no route has, through the door it is under.
async fn dispatch(request: Request<Incoming>, doors: &Doors<'_>) -> (Response<Full<Bytes>>, String) {
    let path = request.uri().path();
    let door = Door::of_path(path);
    let router = router();
    let mut lookup = router.find(request.method(), path);
    // The app's API took paths with a trailing slash.
    if matches!(lookup, Lookup::NotFound) && door == Door::Mobile && path.len() > 1 && path.ends_with('/') {
        lookup = router.find(request.method(), path.trim_end_matches('/'));
    }
    // A worker answers operations' routes alone, and says so for any other.
    let closed = !doors.front_doors
        && (door != Door::Operations || matches!(&lookup, Lookup::Found(f) if f.route.door != Door::Operations));
    if closed {
        let error = ApiError::not_found("this process serves health and metrics only (serve --role worker)");
        return (envelope::error_response(error, doors.request_id), "closed/*".into());
    }
    let found = match lookup {
        Lookup::Found(found) => found,
        Lookup::MethodNotAllowed(allowed) => {
            let error = ApiError::method_not_allowed(&allowed.join(", "));
            return (refused(request, doors, door, error).await, format!("{}/*", door.name()));
        }
        Lookup::NotFound => {
            let error = ApiError::not_found("no such route");
            return (
                refused(request, doors, door, error).await,
                if door == Door::Operations { "unmatched".into() } else { format!("{}/*", door.name()) },
            );
        }
    };
    let route = found.route.path.clone();
    let answer = match (found.route.handler, doors.console) {
        (Handler::Partner(_), _) => doors.api.handle(request, doors.peer, doors.request_id, Ok(found)).await,
        (Handler::Mobile(_), _) => doors.mobile.handle(request, found, doors.request_id).await,
        (Handler::Console(_), Some(console)) => console.handle(request, found, doors.request_id).await,
        (Handler::Console(_), None) => envelope::error_response(ApiError::not_found("no such route"), doors.request_id),
        (Handler::Own(action), _) => action(doors, request, found).await,
    };
    (answer, route)
}

/// `error` (no route, or not this method), as the door the path is under answers it: the partner
/// API logs it in the request log, the console shows it as a page.
async fn refused(request: Request<Incoming>, doors: &Doors<'_>, door: Door, error: ApiError) -> Response<Full<Bytes>> {
    match (door, doors.console) {
        (Door::Partner, _) => doors.api.handle(request, doors.peer, doors.request_id, Err(error)).await,
        (Door::Console, Some(_)) => crate::edge::console::error_page(error),
        _ => envelope::error_response(error, doors.request_id),
    }
}
