//! What monitoring reads: `GET /health/ready` (and `/health`) with each engine's state, 200 when
//! all are up and 503 when one is down; `GET /health/live`, 200 while the process serves at all
//! (a restart will not fix a broker that is down, so liveness does not look at engines);
//! `GET /metrics` in Prometheus text.

use std::future::Future;
use std::pin::Pin;

use bus::{EngineReport, EngineState};
use http::StatusCode;
use serde_json::json;

/// Something that can report the state of the engines the service runs on.
pub trait HealthCheck: Send + Sync + 'static {
    /// One report per engine: database, AMQP transport, NATS transport.
    fn check(&self) -> Pin<Box<dyn Future<Output = Vec<EngineReport>> + Send + '_>>;

    /// The process's metrics in Prometheus text, gauges read now; `None` without a recorder.
    fn metrics(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async { None })
    }
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
