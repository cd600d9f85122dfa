//! `GET /health`: each engine with its state; 200 when all are up, 503 when one is down.

use std::future::Future;
use std::pin::Pin;

use bus::{EngineReport, EngineState};
use http::StatusCode;
use serde_json::json;

/// Something that can report the state of the engines the service runs on.
pub trait HealthCheck: Send + Sync + 'static {
    /// One report per engine: database, AMQP transport, NATS transport.
    fn check(&self) -> Pin<Box<dyn Future<Output = Vec<EngineReport>> + Send + '_>>;
}

/// Status code and body of a health answer.
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
