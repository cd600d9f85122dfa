//! The embedded transport: in-process publish/subscribe for `voltbus serve` with no broker.
//!
//! It carries the same encoded envelopes as the brokers, addressed by the same names (an AMQP
//! routing key or a NATS subject), so code above it does not know which transport it runs on.

use tokio::sync::broadcast;

use crate::{EngineReport, EngineState};

/// One message on the embedded transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Routing key or subject it was published under.
    pub destination: String,
    /// Structured-mode envelope.
    pub body: Vec<u8>,
}

/// In-process publish/subscribe.
#[derive(Clone)]
pub struct EmbeddedBus {
    sender: broadcast::Sender<Delivery>,
}

impl EmbeddedBus {
    /// A bus whose subscribers may fall `capacity` messages behind before they see a gap.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Publishes to every current subscriber; returns how many received it.
    pub fn publish(&self, destination: impl Into<String>, body: Vec<u8>) -> usize {
        // No subscriber is not an error for pub/sub: the message had nobody to reach.
        self.sender.send(Delivery { destination: destination.into(), body }).unwrap_or(0)
    }

    /// Subscribes to everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.sender.subscribe()
    }

    /// The embedded transport's line in `/health`: always up, it lives in this process.
    pub fn report(&self, engine: &'static str) -> EngineReport {
        EngineReport { engine, kind: "embedded", state: EngineState::Up, detail: "in-process".into() }
    }
}
