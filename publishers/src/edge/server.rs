//! Accept loop and graceful shutdown of the HTTP edge.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::health::{self, HealthCheck};
use super::response;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP edge, bound and ready to serve.
pub struct Edge {
    listener: TcpListener,
    health: Arc<dyn HealthCheck>,
}

impl Edge {
    /// Binds the listening socket (port 0 picks a free port, as tests do).
    pub async fn bind(addr: SocketAddr, health: Arc<dyn HealthCheck>) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr).await?, health })
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
            let health = Arc::clone(&self.health);
            let service = service_fn(move |request| {
                let health = Arc::clone(&health);
                async move { Ok::<_, Infallible>(handle(request, health.as_ref()).await) }
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

async fn handle(request: Request<Incoming>, health: &dyn HealthCheck) -> Response<Full<Bytes>> {
    let request_id = response::new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
    async move {
        let answer = match (request.method(), request.uri().path()) {
            (&Method::GET, "/health") => {
                let (status, body) = health::answer(health).await;
                response::json_response(status, &body, &request_id)
            }
            (_, "/health") => {
                response::error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "use GET", &request_id)
            }
            _ => response::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route", &request_id),
        };
        tracing::debug!(status = answer.status().as_u16(), "answered");
        answer
    }
    .instrument(span)
    .await
}
