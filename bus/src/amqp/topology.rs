//! The queues of a consumer group, declared idempotently at start-up.
//!
//! For group `g` bound to some routing keys:
//! - `voltbus.g`: the work queue. Quorum (replicated, and dead-letters at least once), bound to the
//!   group's keys. A message redelivered 20 times (a handler that crashes the process) is moved to
//!   the dead-letter queue by the broker itself (`x-delivery-limit`).
//! - `voltbus.g.retry.{d}ms`: one delay queue per retry delay. A message waits there for its TTL,
//!   then the broker dead-letters it back into the work queue. This is how delays work without the
//!   delayed-message plugin, which the Debian broker lacks.
//! - `voltbus.g.dlq`: the dead-letter queue an operator lists and replays from.
//!
//! Arguments are built here and nowhere else: redeclaring a queue with other arguments is a 406
//! that closes the channel. A queue the broker already has is therefore left as it was made (its
//! arguments and its members), and only a missing one is declared: so `amqp.quorum_size`, which
//! is an argument of the declare, may change without every existing queue refusing the next start.

use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ErrorKind};
use schemas::{Recipient, routing};

use super::AmqpConnection;
use crate::BusError;

/// Times the broker redelivers a message (crashes, lost channels) before dead-lettering it.
const DELIVERY_LIMIT: i64 = 20;

/// The queues and bindings of one consumer group.
#[derive(Clone, Debug)]
pub struct GroupTopology {
    /// Group name; names its queues.
    pub group: String,
    /// `(exchange, binding key)` pairs the work queue is bound with.
    pub bindings: Vec<(&'static str, String)>,
    /// Delay before each retry; one delay queue per distinct value.
    pub retry_delays: Vec<Duration>,
    /// Members of each queue the broker makes for the group (`amqp.quorum_size`); `None`: the
    /// broker's default.
    pub quorum_size: Option<u16>,
}

impl GroupTopology {
    /// The group of `recipient`: bound to every command the catalogue says it carries out.
    pub fn handling(recipient: Recipient, retry_delays: Vec<Duration>) -> Self {
        let keys = schemas::descriptors()
            .iter()
            .filter(|descriptor| descriptor.recipient == Some(recipient))
            .map(routing::command_key)
            .collect();
        Self::commands(recipient.name(), keys, retry_delays)
    }

    /// A group that handles the commands with these routing keys (`routing::command_key_of`).
    pub fn commands(group: impl Into<String>, keys: Vec<String>, retry_delays: Vec<Duration>) -> Self {
        let bindings = keys.into_iter().map(|key| (routing::COMMANDS_EXCHANGE, key)).collect();
        Self { group: group.into(), bindings, retry_delays, quorum_size: None }
    }

    /// The same group, its new queues made with `size` members.
    pub fn with_quorum_size(self, size: Option<u16>) -> Self {
        Self { quorum_size: size, ..self }
    }

    /// The work queue's name.
    pub fn work_queue(&self) -> String {
        routing::work_queue(&self.group)
    }

    /// The dead-letter queue's name.
    pub fn dead_letter_queue(&self) -> String {
        routing::dead_letter_queue(&self.group)
    }

    /// The delay queue a message waits in before retry number `retry` (1-based), if any.
    pub fn retry_queue(&self, retry: u32) -> Option<(String, Duration)> {
        let delay = *self.retry_delays.get(usize::try_from(retry).ok()?.checked_sub(1)?)?;
        Some((routing::retry_queue(&self.group, delay_ms(delay)), delay))
    }

    /// Declares the work queue, its bindings, the delay queues and the dead-letter queue, each
    /// queue only where the broker lacks it.
    pub async fn declare(&self, connection: &AmqpConnection) -> Result<(), BusError> {
        let mut declaring =
            Declaring { connection, channel: connection.channel().await?, quorum_size: self.quorum_size };
        let dead_letter = self.dead_letter_queue();
        declaring.queue(&dead_letter, quorum()).await?;

        let work = self.work_queue();
        let mut args = quorum();
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        dead_letter_to(&mut args, &dead_letter);
        declaring.queue(&work, args).await?;
        for (exchange, key) in &self.bindings {
            declaring
                .channel
                .queue_bind(
                    work.as_str().into(),
                    (*exchange).into(),
                    key.as_str().into(),
                    QueueBindOptions { nowait: false },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| BusError::Topology {
                    what: format!("binding {work} to {exchange} {key}"),
                    reason: e.to_string(),
                })?;
        }

        let mut delays = self.retry_delays.clone();
        delays.sort();
        delays.dedup();
        for delay in delays {
            let mut args = quorum();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(delay_ms(delay)).unwrap_or(i64::MAX)),
            );
            dead_letter_to(&mut args, &work);
            declaring.queue(&routing::retry_queue(&self.group, delay_ms(delay)), args).await?;
        }
        let _ = declaring.channel.close(200, "declared".into()).await;
        Ok(())
    }
}

/// A channel for declaring queues, opened again when the broker closed it to say a queue is missing.
struct Declaring<'a> {
    connection: &'a AmqpConnection,
    channel: Channel,
    quorum_size: Option<u16>,
}

impl Declaring<'_> {
    /// Declares `name` with `args` (and the quorum size) unless the broker has it already.
    async fn queue(&mut self, name: &str, mut args: FieldTable) -> Result<(), BusError> {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        match self.channel.queue_declare(name.into(), passive, FieldTable::default()).await {
            Ok(_) => return Ok(()),
            Err(error) if is_not_found(&error) => self.channel = self.connection.channel().await?,
            Err(error) => return Err(BusError::Topology { what: format!("queue {name}"), reason: error.to_string() }),
        }
        if let Some(size) = self.quorum_size {
            args.insert("x-quorum-initial-group-size".into(), AMQPValue::LongLongInt(i64::from(size)));
        }
        declare_queue(&self.channel, name, args).await
    }
}

/// Whether the broker answered that the queue (or exchange) does not exist.
fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

fn delay_ms(delay: Duration) -> u64 {
    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
}

/// Quorum queue arguments: replicated, durable, and they dead-letter at least once.
fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args
}

/// Dead-letters into `queue` through the default exchange, at least once: the broker keeps the
/// message until the target queue confirmed it, which requires refusing publishes when full
/// instead of dropping the oldest message.
fn dead_letter_to(args: &mut FieldTable, queue: &str) {
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(queue.into()));
    args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
    args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), BusError> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions {
                passive: false,
                // Survives a broker restart (quorum queues are always durable).
                durable: true,
                // Shared by every instance of the group, so not tied to one connection.
                exclusive: false,
                // Stays when the last consumer leaves: work must wait for the next one.
                auto_delete: false,
                nowait: false,
            },
            args,
        )
        .await
        .map(|_| ())
        .map_err(|e| BusError::Topology { what: format!("queue {name}"), reason: e.to_string() })
}
