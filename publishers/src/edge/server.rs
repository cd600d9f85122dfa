//! Accept loop and graceful shutdown of the HTTP edge, and which part answers which path.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::api::PartnerApi;
use super::console::{self, Console};
use super::health::{self, HealthCheck};
use super::mobile::{MOBILE_BASE, MobileApi};
use super::portal::{self, PORTAL_BASE};
use super::response::{self, ApiError};
use super::routes;

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
}

impl Edge {
    /// Binds the listening socket (port 0 picks a free port, as tests do).
    pub async fn bind(
        addr: SocketAddr,
        health: Arc<dyn HealthCheck>,
        api: Arc<PartnerApi>,
        mobile: Arc<MobileApi>,
    ) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr).await?, health, api, mobile, metrics_token: None, console: None })
    }

    /// Makes `GET /metrics` need `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.map(Arc::from);
        self
    }

    /// Serves the operator console at `/admin`.
    pub fn with_console(mut self, console: Arc<Console>) -> Self {
        self.console = Some(console);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits up to `grace` for the
    /// requests in flight to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let graceful = GracefulShutdown::new();
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
            let (token, console) = (self.metrics_token.clone(), self.console.clone());
            let service = service_fn(move |request| {
                let (health, api, mobile) = (Arc::clone(&health), Arc::clone(&api), Arc::clone(&mobile));
                let (token, console) = (token.clone(), console.clone());
                async move {
                    let parts = Parts {
                        health: health.as_ref(),
                        api: &api,
                        mobile: &mobile,
                        metrics_token: token.as_deref(),
                        console: console.as_deref(),
                    };
                    Ok::<_, Infallible>(handle(request, peer.ip(), parts).await)
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        tracing::info!("edge stopped accepting; finishing requests in flight");
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!(?grace, "requests still in flight after the grace period were cut");
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
}

async fn handle(request: Request<Incoming>, peer: std::net::IpAddr, parts: Parts<'_>) -> Response<Full<Bytes>> {
    let Parts { health, api, mobile, metrics_token, console } = parts;
    let request_id = response::new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let method = request.method().clone();
    let family = family_of(request.uri().path());
    async move {
        tracing::trace!("received");
        let path = request.uri().path();
        let answer = if path == routes::BASE || path.starts_with(&format!("{}/", routes::BASE)) {
            api.handle(request, peer, &request_id).await
        } else if portal::serves(path) {
            portal::handle(api, request, peer, &request_id).await
        } else if path.starts_with(&format!("{PORTAL_BASE}/")) || path == PORTAL_BASE {
            api.handle(request, peer, &request_id).await
        } else if path.starts_with(&format!("{MOBILE_BASE}/")) {
            mobile.handle(request, &request_id).await
        } else if let Some(console) = console.filter(|_| console::serves(path)) {
            console.handle(request, peer, &request_id).await
        } else {
            operations(&request, health, metrics_token, &request_id).await
        };
        let status = answer.status().as_u16();
        tracing::debug!(status, "answered");
        let route = answer.extensions().get::<RouteTemplate>().map_or_else(|| family.to_owned(), |r| r.0.clone());
        bus::metrics::http_request(route, method.as_str(), status, started.elapsed());
        answer
    }
    .instrument(span)
    .await
}

/// Whether the request carries `token` as its bearer (always, when no token is set); compared in
/// constant time.
fn bearer_is(request: &Request<Incoming>, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = token else { return true };
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// The template of the partner route that answered, for metrics (a raw path would carry ids).
#[derive(Clone)]
pub(crate) struct RouteTemplate(pub(crate) String);

/// The metrics label of a request no route table names: its area of the edge.
fn family_of(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/health/live" => "/health/live",
        "/health/ready" => "/health/ready",
        "/metrics" => "/metrics",
        _ if path.starts_with(&format!("{MOBILE_BASE}/")) => "/api/v1/*",
        _ if portal::serves(path) || path.starts_with(PORTAL_BASE) => "/v1/integrations/*",
        _ if path.starts_with(routes::BASE) => "/api/partner/v1/*",
        _ if console::serves(path) => "/admin/*",
        _ => "unmatched",
    }
}

/// What operators' monitoring calls: health, readiness, liveness, metrics.
async fn operations(
    request: &Request<Incoming>,
    health: &dyn HealthCheck,
    metrics_token: Option<&str>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let (method, path) = (request.method(), request.uri().path());
    let error = match (method, path) {
        (&Method::GET, "/metrics") if !bearer_is(request, metrics_token) => {
            ApiError::unauthorized("GET /metrics needs Authorization: Bearer with the metrics token")
        }
        (&Method::GET, "/health" | "/health/ready") => {
            let (status, body) = health::answer(health).await;
            return response::json_response(status, body.to_string(), request_id);
        }
        (&Method::GET, "/health/live") => {
            let (status, body) = health::live();
            return response::json_response(status, body.to_string(), request_id);
        }
        (&Method::GET, "/metrics") => match health.metrics().await {
            Some(text) => {
                let mut answer = Response::new(Full::new(Bytes::from(text)));
                answer.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return answer;
            }
            None => ApiError::not_found("metrics are not recorded in this process"),
        },
        (_, "/health" | "/health/ready" | "/health/live" | "/metrics") => ApiError::method_not_allowed("GET"),
        _ => ApiError::not_found("no such route"),
    };
    let mut answer = response::json_response(error.status, error.body(request_id).to_string(), request_id);
    answer.headers_mut().extend(error.headers);
    answer
}
