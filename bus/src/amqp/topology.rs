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
//! that closes the channel.

use std::time::Duration;

use lapin::Channel;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use schemas::{Recipient, routing};

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
        Self { group: group.into(), bindings, retry_delays }
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

    /// Declares the work queue, its bindings, the delay queues and the dead-letter queue.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BusError> {
        let dead_letter = self.dead_letter_queue();
        declare_queue(channel, &dead_letter, quorum()).await?;

        let work = self.work_queue();
        let mut args = quorum();
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        dead_letter_to(&mut args, &dead_letter);
        declare_queue(channel, &work, args).await?;
        for (exchange, key) in &self.bindings {
            channel
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
            declare_queue(channel, &routing::retry_queue(&self.group, delay_ms(delay)), args).await?;
        }
        Ok(())
    }
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
