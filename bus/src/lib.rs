//! The transports every voltbus part publishes and consumes through: RabbitMQ (the backbone for
//! commands and domain events), NATS (realtime edge and telemetry, JetStream where durable), and
//! the embedded in-process transport the default `serve` runs on.
//!
//! Layout:
//! - `amqp`: RabbitMQ connection, exchange declaration, publishing with publisher confirms, consuming.
//! - `nats`: NATS connection, core and JetStream publishing (binary content mode), streams, subscribing.
//! - `embedded`: in-process publish/subscribe with the same message shapes, no broker needed.
//! - `devices`: [`devices::DeviceLink`], how devices (and the simulators) reach voltbus on NATS or in process.
//! - `dead_letter`: what an operator sees of a group's queues on any transport: depth, dead letters.
//! - `error`: [`PublishError`] and [`BusError`], typed by kind so callers choose retry or dead-letter.
//! - `health`: [`EngineReport`], what `/health` says about each engine.
//! - `handler`: the [`Handler`] a consumer group implements, its [`Context`] and [`HandlerError`].
//! - `inbox`: idempotency records that make a redelivered message harmless.
//! - `runtime`: the [`Processor`] every transport's consumer shares (handler, inbox, verdict).
//! - `metrics`: every metric's name and labels, recorded through the `metrics` facade.
//! - `outbox`: messages written with a handler's transaction, and the relay that publishes them.
//! - `retention`: how long the inbox and the outbox keep their rows.

pub mod amqp;
mod dead_letter;
pub mod devices;
pub mod embedded;
mod error;
mod handler;
mod health;
pub mod inbox;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod retention;
mod runtime;
pub mod traces;

pub use dead_letter::{DeadLetter, QueueDepth};
pub use error::{BusError, PublishError, redact_url};
pub use handler::{Context, Handled, Handler, HandlerError, Reply, ReplyBody, RequestError, handle_each};
pub use health::{EngineReport, EngineState};
pub use runtime::{Processor, Verdict};

/// The nodes a broker URL setting names: one URL, or a cluster's nodes' URLs separated by commas.
pub fn nodes(url: &str) -> impl Iterator<Item = &str> {
    url.split(',').map(str::trim).filter(|node| !node.is_empty())
}
