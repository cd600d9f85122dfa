//! What monitoring reads: `GET /health/ready` (and `/health`) with each engine's state, 200 when
//! all are up and 503 when one is down; `GET /health/live`, 200 while the process serves at all
//! (a restart will not fix a broker that is down, so liveness does not look at engines);
//! `GET /metrics` in Prometheus text (with the metrics token, when one is set); and
//! `GET /openapi.json`, the OpenAPI document of every front door.

use std::future::Future;
use std::pin::Pin;

use std::sync::LazyLock;

use bus::{EngineReport, EngineState};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use crate::edge::envelope::{self, ApiError};
use crate::edge::router::{Access, Door, Doors, Handler, OwnAction, Returns, Route, schema_of};

/// Something that can report the state of the engines the service runs on.
pub trait HealthCheck: Send + Sync + 'static {
    /// One report per engine: database, AMQP transport, NATS transport.
    fn check(&self) -> Pin<Box<dyn Future<Output = Vec<EngineReport>> + Send + '_>>;

    /// The process's metrics in Prometheus text, gauges read now; `None` without a recorder.
    fn metrics(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async { None })
    }
}

/// What operations reach.
pub(crate) fn routes() -> Vec<Route> {
    let route = |path: &str, operation, summary, access, returns, action: OwnAction| Route {
        door: Door::Operations,
        method: Method::GET,
        path: path.to_owned(),
        operation,
        summary,
        access,
        body: None,
        status: 200,
        returns,
        handler: Handler::Own(action),
    };
    let health = Returns::Bare(schema_of::<serde_json::Value>);
    vec![
        route(
            "/health",
            "getHealth",
            "Each engine's state; 503 when one is down.",
            Access::Public,
            health,
            |doors, _, _| Box::pin(ready(doors)),
        ),
        route("/health/ready", "getReadiness", "The same as /health.", Access::Public, health, |doors, _, _| {
            Box::pin(ready(doors))
        }),
        route("/health/live", "getLiveness", "200 while the process serves.", Access::Public, health, |doors, _, _| {
            Box::pin(async move {
                let (status, body) = live();
                envelope::json_response(status, body.to_string(), doors.request_id)
            })
        }),
        route(
            "/metrics",
            "getMetrics",
            "Prometheus text; `Authorization: Bearer` the metrics token, when one is set.",
            Access::Own,
            Returns::Text("text/plain; version=0.0.4"),
            |doors, request, _| Box::pin(metrics(doors, request)),
        ),
        route(
            "/openapi.json",
            "getEdgeOpenApi",
            "The OpenAPI document of every front door.",
            Access::Public,
            Returns::Document,
            |doors, _, _| Box::pin(async move { document(doors.request_id) }),
        ),
        route(
            "/asyncapi.json",
            "getAsyncApi",
            "The AsyncAPI 3.0 document of every message: RabbitMQ, NATS and webhooks.",
            Access::Public,
            Returns::Document,
            |doors, _, _| Box::pin(async move { asyncapi(doors.request_id) }),
        ),
    ]
}

/// `GET /health` and `/health/ready`.
async fn ready(doors: &Doors<'_>) -> Response<Full<Bytes>> {
    let (status, body) = answer(doors.health).await;
    envelope::json_response(status, body.to_string(), doors.request_id)
}

/// `GET /metrics`.
async fn metrics(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !bearer_is(&request, doors.metrics_token) {
        let error = ApiError::unauthorized("GET /metrics needs Authorization: Bearer with the metrics token");
        return envelope::error_response(error, doors.request_id);
    }
    match doors.health.metrics().await {
        Some(text) => {
            let mut answer = Response::new(Full::new(Bytes::from(text)));
            answer.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            answer
        }
        None => {
            envelope::error_response(ApiError::not_found("metrics are not recorded in this process"), doors.request_id)
        }
    }
}

/// `GET /openapi.json`: made once, from the one table.
fn document(request_id: &str) -> Response<Full<Bytes>> {
    static DOCUMENT: LazyLock<String> =
        LazyLock::new(|| crate::edge::openapi::edge_document(crate::edge::router::router().routes()).to_string());
    envelope::json_response(StatusCode::OK, DOCUMENT.clone(), request_id)
}

/// `GET /asyncapi.json`: made once, from the catalogue.
fn asyncapi(request_id: &str) -> Response<Full<Bytes>> {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| crate::edge::asyncapi::document().to_string());
    envelope::json_response(StatusCode::OK, DOCUMENT.clone(), request_id)
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

/// Liveness: the process accepts and answers requests.
pub(crate) fn live() -> (StatusCode, serde_json::Value) {
    (StatusCode::OK, json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: status code and body with each engine's state.
pub(crate) async fn answer(health: &dyn HealthCheck) -> (StatusCode, serde_json::Value) {
    let engines = health.check().await;
    let all_up = engines.iter().all(|e| e.state == EngineState::Up);
    let status = if all_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if all_up { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "engines": engines,
    });
    (status, body)
}
