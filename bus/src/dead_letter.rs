//! What an operator sees of a consumer group's queues, whichever transport holds them: their
//! depth, and each dead-lettered message.

use serde::Serialize;

/// One dead-lettered message, as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Envelope id.
    pub message_id: Option<String>,
    /// Message type.
    pub type_name: Option<String>,
    /// Tenant.
    pub tenant: Option<String>,
    /// Kind of failure (`permanent`, `retries_exhausted`, `malformed`, `delivery_limit`, `max_deliveries`, …).
    pub error_kind: Option<String>,
    /// What went wrong.
    pub reason: Option<String>,
    /// Where it came from (a work queue, or a stream subject).
    pub source_queue: Option<String>,
    /// Attempts made.
    pub attempts: Option<i64>,
    /// When it failed.
    pub failed_at: Option<String>,
    /// Start of the body.
    pub body_preview: String,
}

/// How full a queue is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Messages waiting (and, on JetStream, delivered but not yet acknowledged).
    pub messages: u64,
    /// Consumers attached, where the transport says.
    pub consumers: Option<u64>,
}
