//! Errors of the transports, by kind.

/// A publish the broker did not take. None of these is ever a silent drop: the caller learns the
/// message is not on the broker and decides to retry or fail its own request.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker negatively acknowledged the message (could not store it).
    #[error("broker refused the message (nack)")]
    Nacked,
    /// The message matched no queue and came back (`mandatory`, reply 312 NO_ROUTE).
    #[error("message returned unroutable: {reply_code} {reply_text}")]
    Returned {
        /// AMQP reply code.
        reply_code: u16,
        /// AMQP reply text.
        reply_text: String,
    },
    /// The channel had no publisher confirms on, so nothing proves the broker has the message.
    #[error("publisher confirms are not enabled on this channel")]
    ConfirmsNotEnabled,
    /// The connection or channel failed before the broker confirmed.
    #[error("connection lost before the broker confirmed: {0}")]
    Disconnected(String),
    /// JetStream did not store the message.
    #[error("JetStream did not acknowledge the message: {0}")]
    NotStored(String),
    /// The message cannot be published as it is, here, whenever it is tried: it is not an
    /// envelope, or its transport is not configured.
    #[error("cannot be published: {0}")]
    Unpublishable(String),
}

impl PublishError {
    /// A short name of the failure, for a span's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Nacked => "nacked",
            Self::Returned { .. } => "returned",
            Self::ConfirmsNotEnabled => "confirms_not_enabled",
            Self::Disconnected(_) => "disconnected",
            Self::NotStored(_) => "not_stored",
            Self::Unpublishable(_) => "unpublishable",
        }
    }

    /// Whether the same publish may succeed later, once the broker is back: a lost connection,
    /// a nack or an unstored JetStream message; not a refusal that will come again.
    pub fn is_transient(&self) -> bool {
        matches!(self, PublishError::Disconnected(_) | PublishError::Nacked | PublishError::NotStored(_))
    }
}

/// Failures to connect or to declare topology.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not reach or log in to the broker.
    #[error("cannot connect to {engine} at {url}: {reason}")]
    Connect {
        /// `rabbitmq` or `nats`.
        engine: &'static str,
        /// URL without credentials.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The broker refused a declaration (exchange, queue, binding, stream).
    #[error("cannot declare {what}: {reason}")]
    Topology {
        /// What was declared.
        what: String,
        /// What the broker said.
        reason: String,
    },
    /// Consuming failed.
    #[error("cannot consume from {source_name}: {reason}")]
    Consume {
        /// Queue or subject.
        source_name: String,
        /// What the client said.
        reason: String,
    },
}

pub use schemas::redact_url;
