//! The transports every voltbus part publishes and consumes through: RabbitMQ (the backbone for
//! commands and domain events), NATS (realtime edge and telemetry, JetStream where durable), and
//! the embedded in-process transport the default `serve` runs on.
//!
//! Layout:
//! - `amqp`: RabbitMQ connection, exchange declaration, publishing with publisher confirms, consuming.
//! - `nats`: NATS connection, core and JetStream publishing (binary content mode), streams, subscribing.
//! - `embedded`: in-process publish/subscribe with the same message shapes, no broker needed.
//! - `error`: [`PublishError`] and [`BusError`], typed by kind so callers choose retry or dead-letter.
//! - `health`: [`EngineReport`], what `/health` says about each engine.

pub mod amqp;
pub mod embedded;
mod error;
mod health;
pub mod nats;

pub use error::{BusError, PublishError, redact_url};
pub use health::{EngineReport, EngineState};
