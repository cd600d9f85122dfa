//! Accept loop and graceful shutdown of the HTTP edge.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
}

impl Edge {
    /// Binds the listening socket (port 0 picks a free port, as tests do).
    pub async fn bind(
        addr: SocketAddr,
        health: Arc<dyn HealthCheck>,
        api: Arc<PartnerApi>,
        mobile: Arc<MobileApi>,
    ) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr).await?, health, api, mobile })
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
            let service = service_fn(move |request| {
                let (health, api, mobile) = (Arc::clone(&health), Arc::clone(&api), Arc::clone(&mobile));
                async move { Ok::<_, Infallible>(handle(request, peer.ip(), health.as_ref(), &api, &mobile).await) }
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

async fn handle(
    request: Request<Incoming>,
    peer: std::net::IpAddr,
    health: &dyn HealthCheck,
    api: &PartnerApi,
    mobile: &MobileApi,
) -> Response<Full<Bytes>> {
    let request_id = response::new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
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
        } else {
            let error = match (request.method(), path) {
                (&Method::GET, "/health") => {
                    let (status, body) = health::answer(health).await;
                    return response::json_response(status, body.to_string(), &request_id);
                }
                (_, "/health") => ApiError::method_not_allowed("GET"),
                _ => ApiError::not_found("no such route"),
            };
            let mut answer = response::json_response(error.status, error.body(&request_id).to_string(), &request_id);
            answer.headers_mut().extend(error.headers);
            answer
        };
        tracing::debug!(status = answer.status().as_u16(), "answered");
        answer
    }
    .instrument(span)
    .await
}
