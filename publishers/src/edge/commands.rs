//! The edge's side of the bus: a command published and its reply awaited, on RabbitMQ or on the
//! embedded transport, whichever the platform runs on.

use std::sync::Arc;
use std::time::Duration;

use bus::amqp::{AmqpConnection, Requester};
use bus::embedded::EmbeddedBus;
use bus::{PublishError, RequestError};
use readside::{Outcome, Refusal};
use schemas::{Envelope, Message, routing};
use serde::de::DeserializeOwned;

use crate::edge::envelope::ApiError;
use crate::edge::partner::routes::Call;

/// Where commands go.
pub enum CommandBus {
    /// RabbitMQ: commands on the commands exchange, replies by direct reply-to.
    Amqp {
        /// Confirmed publishes (fire-and-forget commands).
        connection: Arc<AmqpConnection>,
        /// Request/reply.
        requester: Requester,
    },
    /// The embedded transport.
    Embedded(EmbeddedBus),
}

impl CommandBus {
    /// Commands over RabbitMQ.
    pub async fn amqp(connection: Arc<AmqpConnection>) -> Result<Self, bus::BusError> {
        let requester = Requester::new(Arc::clone(&connection)).await?;
        Ok(Self::Amqp { connection, requester })
    }

    /// The RabbitMQ connection, when commands go there.
    pub(crate) fn amqp_connection(&self) -> Option<&Arc<AmqpConnection>> {
        match self {
            Self::Amqp { connection, .. } => Some(connection),
            Self::Embedded(_) => None,
        }
    }

    /// Publishes `command` and waits up to `timeout` for its outcome.
    pub(crate) async fn request<M: Message, T: DeserializeOwned>(
        &self,
        command: &Envelope<M>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let reply = match self {
            Self::Amqp { requester, .. } => requester.request(command, timeout).await,
            Self::Embedded(bus) => bus.request(command, timeout).await,
        };
        let reply = reply.map_err(|error| match error {
            RequestError::Timeout(after) => ApiError::timeout(format!(
                "no answer within {} ms; the command may still take effect: retry with the same Idempotency-Key",
                after.as_millis()
            )),
            RequestError::Publish(error) => {
                tracing::warn!(%error, "command not published");
                ApiError::unavailable("the bus is not reachable; nothing was done")
            }
            RequestError::Disconnected => {
                ApiError::unavailable("the bus went away while waiting; retry with the same Idempotency-Key")
            }
            RequestError::Failed { kind, message } => {
                tracing::warn!(%kind, %message, "command failed");
                ApiError::internal()
            }
        })?;
        match serde_json::from_value::<Outcome<T>>(reply) {
            Ok(Outcome::Done(value)) => Ok(value),
            Ok(Outcome::Refused(Refusal { code, message })) => Err(ApiError::refused(&code, message)),
            Err(error) => {
                tracing::error!(%error, "reply of unexpected shape");
                Err(ApiError::internal())
            }
        }
    }

    /// Publishes `command` without waiting for a reply; returns once the broker (or the embedded
    /// queue) has it.
    pub(crate) async fn publish<M: Message>(&self, command: &Envelope<M>) -> Result<(), PublishError> {
        let key = routing::command_key_of::<M>();
        match self {
            Self::Amqp { connection, .. } => connection.publish(routing::COMMANDS_EXCHANGE, &key, command).await,
            Self::Embedded(bus) => bus.publish(routing::COMMANDS_EXCHANGE, &key, command).await,
        }
    }
}

/// The command `call` sends: its tenant's, with the call's command id (fixed by its
/// Idempotency-Key, so a retry is the same message).
pub(crate) fn command<M: schemas::Message>(call: &Call, data: M) -> Envelope<M> {
    let mut envelope = Envelope::new(call.caller.tenant.clone(), SOURCE, data);
    envelope.id = call.command_id;
    envelope
}

/// Where commands from the edge say they come from.
const SOURCE: &str = "voltbus/edge";
