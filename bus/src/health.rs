//! What each engine reports to `/health`.

use serde::Serialize;

/// Whether an engine can do its work right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineState {
    /// Connected and answering.
    Up,
    /// Reconnecting or not answering.
    Down,
}

/// One engine's line in `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EngineReport {
    /// Its role: `database`, `amqp` or `nats`.
    pub engine: &'static str,
    /// What runs it: `postgresql`, `sqlite`, `rabbitmq`, `nats` or `embedded`.
    pub kind: &'static str,
    /// Up or down.
    pub state: EngineState,
    /// Where it is (URL without credentials) or why it is down.
    pub detail: String,
}
