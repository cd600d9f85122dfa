//! The consumer runtime for RabbitMQ.
//!
//! One runtime serves one consumer group. It keeps a connection of its own (publishers elsewhere
//! never share a connection with consumers, so broker flow control on publishers cannot stall
//! acks), declares the group's queues, and then, for every delivery:
//!
//! 1. decodes it (a decode error is dead-lettered at once, with the error's kind as reason);
//! 2. runs the handler, inside a database transaction with the inbox record when the group has a
//!    database, and commits;
//! 3. only then acks: success is acked; a retryable error is first published, confirmed, to the
//!    delay queue of the next attempt, and a permanent error or the last failed attempt to the
//!    dead-letter queue with headers saying why, from where and after how many attempts; if that
//!    publish fails the delivery is returned to the queue instead, so nothing is dropped.
//!
//! Deliveries go to `lanes` concurrent workers by a hash of the envelope's subject (the
//! aggregate), so one aggregate's messages are handled in order while others run in parallel. A
//! message that waits in a delay queue lets later messages of its aggregate pass; handlers must
//! therefore tolerate that (their state machines refuse what is not legal yet).
//!
//! A group may be consumed in batches (`in_batches`): a lane then takes whatever waits for it, up
//! to the batch size, and handles it in one transaction with one inbox statement
//! (`Handler::handle_batch`); a batch that fails is handled again one message at a time, so a
//! poison message is dead-lettered alone. Only for messages that get no reply.
//!
//! When the connection drops, the runtime reconnects with backoff (100 ms doubling to 5 s),
//! re-declares the topology and resumes; deliveries that were not acked come again, and the inbox
//! makes the repeat harmless. On shutdown it cancels the consumer, finishes what it was given, and
//! closes the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use super::{AmqpConnection, GroupTopology, headers};
use crate::handler::{Handler, ReplyBody};
use crate::runtime::{FIRST_BACKOFF, Lanes, Processor, SessionEnd, Sessions, Verdict, supervise};
use crate::{BusError, PublishError};

/// Pause before handing back a delivery that could not be forwarded, so a broker refusing
/// publishes does not turn into a hot loop.
const FORWARD_FAILURE_PAUSE: Duration = Duration::from_secs(1);

/// How much a consumer takes on at once.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerOptions {
    /// Unacked deliveries the broker may push (always set: lapin's buffer is otherwise unbounded).
    pub prefetch: u16,
    /// Messages handled concurrently; each aggregate always maps to the same lane.
    pub lanes: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        // 100+ prefetch is where RabbitMQ reaches its throughput (BUS-NOTES).
        Self { prefetch: 200, lanes: 16 }
    }
}

/// A consumer group's runtime on RabbitMQ.
pub struct AmqpConsumer {
    url: String,
    topology: GroupTopology,
    options: ConsumerOptions,
    processor: Processor,
    /// Most messages a lane handles in one transaction; 1: one at a time.
    batch: usize,
}

impl AmqpConsumer {
    /// A runtime for `topology`'s group, calling `handler` for each message; with a database,
    /// each message is handled in a transaction with its inbox record.
    pub fn new(
        url: impl Into<String>,
        topology: GroupTopology,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        database: Option<DatabaseConnection>,
    ) -> Self {
        let options = ConsumerOptions { prefetch: options.prefetch.max(1), lanes: options.lanes.max(1) };
        let processor = Processor::new(topology.group.clone(), handler, database, topology.retry_delays.clone());
        Self { url: url.into(), topology, options, processor, batch: 1 }
    }

    /// Handles up to `max` waiting messages of a lane in one transaction (one inbox statement,
    /// one commit), through [`Handler::handle_batch`]. For groups whose messages get no reply
    /// (events); a batch that fails is handled again one message at a time.
    pub fn in_batches(mut self, max: usize) -> Self {
        self.batch = max.max(1);
        self
    }

    /// Runs until `shutdown` resolves, reconnecting whenever the broker connection is lost.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        supervise(Arc::new(self), shutdown).await;
    }
    async fn process(&self, connection: &AmqpConnection, delivery: Delivery) {
        let attempt = attempt_of(&delivery);
        let decoded = super::decode(&delivery);
        let span = self.processor.span(&decoded, attempt);
        let hop = self.processor.hop(from(&delivery), &decoded);
        hop.wrap(
            async {
                let verdict = self.processor.process(decoded, attempt).await;
                if let Some(body) = verdict.reply_body() {
                    self.reply(connection, &delivery.properties, body).await;
                }
                self.settle(connection, delivery, verdict, attempt).await;
            }
            .instrument(span),
        )
        .await
    }

    /// Handles what a lane had waiting: in one transaction when the group is consumed in
    /// batches and none waits for a reply, else one by one. A lone message of a batched group
    /// is a batch of one, so it gets the same after-commit hand-offs (`Handled::then`).
    async fn process_all(&self, connection: &AmqpConnection, deliveries: Vec<Delivery>) {
        if self.batch < 2 || deliveries.iter().any(|d| d.properties.reply_to().is_some()) {
            for delivery in deliveries {
                self.process(connection, delivery).await;
            }
            return;
        }
        let decoded: Vec<_> = deliveries.iter().map(|d| (super::decode(d), attempt_of(d))).collect();
        let span = tracing::info_span!("batch", group = %self.topology.group, size = deliveries.len());
        let Some(first) = deliveries.first() else { return };
        let hop = self.processor.batch_hop(from(first), &decoded);
        match hop.wrap(self.processor.process_batch(&decoded)).instrument(span.clone()).await {
            Some(verdicts) => {
                for ((delivery, verdict), (_, attempt)) in deliveries.into_iter().zip(verdicts).zip(decoded) {
                    self.settle(connection, delivery, verdict, attempt).instrument(span.clone()).await;
                }
            }
            None => {
                for delivery in deliveries {
                    self.process(connection, delivery).await;
                }
            }
        }
    }

    /// Answers a request, if the delivery asked for an answer (`reply_to`).
    async fn reply(&self, connection: &AmqpConnection, request: &BasicProperties, body: ReplyBody) {
        let (Some(reply_to), Some(request_id)) = (request.reply_to(), request.message_id()) else { return };
        let properties = BasicProperties::default()
            .with_correlation_id(request_id.clone())
            .with_content_type("application/json".into());
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        // Not mandatory: a requester that gave up is gone, and that is not the handler's failure.
        if let Err(error) = connection.publish_raw("", reply_to.as_str(), &bytes, properties, false).await {
            tracing::warn!(%error, "reply could not be sent");
        }
    }

    /// Acks, after forwarding a retry to its delay queue or a failure to the dead-letter queue;
    /// if forwarding fails the delivery goes back to the queue instead.
    async fn settle(&self, connection: &AmqpConnection, delivery: Delivery, verdict: Verdict, attempt: u32) {
        let forwarded: Result<(), PublishError> = match verdict {
            Verdict::Done { .. } => Ok(()),
            Verdict::Retry { .. } => match self.topology.retry_queue(attempt) {
                Some((queue, _)) => {
                    let next = AMQPValue::LongLongInt(i64::from(attempt) + 1);
                    let properties = headers::with(&delivery.properties, vec![(headers::ATTEMPT, next)]);
                    connection.publish_raw("", &queue, &delivery.data, properties, true).await
                }
                None => Err(PublishError::Disconnected(format!("no delay queue for retry {attempt}"))),
            },
            Verdict::DeadLetter { kind, reason } => {
                let text = |s: &str| AMQPValue::LongString(s.into());
                let properties = headers::with(
                    &delivery.properties,
                    vec![
                        (headers::REASON, text(&reason)),
                        (headers::ERROR_KIND, text(&kind)),
                        (headers::SOURCE_QUEUE, text(&self.topology.work_queue())),
                        (headers::ATTEMPT, AMQPValue::LongLongInt(i64::from(attempt))),
                        (headers::FAILED_AT, text(&chrono::Utc::now().to_rfc3339())),
                    ],
                );
                connection.publish_raw("", &self.topology.dead_letter_queue(), &delivery.data, properties, true).await
            }
        };
        match forwarded {
            Ok(()) => match delivery.ack(BasicAckOptions { multiple: false }).await {
                Ok(true) => {}
                // After a channel reset lapin answers Ok(false) without acking (BUS-NOTES): the
                // message comes again and the inbox makes the repeat harmless.
                Ok(false) => tracing::warn!("ack not sent (channel was reset); the message will be redelivered"),
                Err(error) => tracing::warn!(%error, "ack failed; the message will be redelivered"),
            },
            Err(error) => {
                tracing::error!(%error, "could not forward the message; handing it back to the queue");
                tokio::time::sleep(FORWARD_FAILURE_PAUSE).await;
                let _ = delivery.nack(BasicNackOptions { multiple: false, requeue: true }).await;
            }
        }
    }
}

/// The delivery's attempt number (1-based), from the header retries carry.
fn attempt_of(delivery: &Delivery) -> u32 {
    headers::number(&delivery.properties, headers::ATTEMPT).and_then(|n| u32::try_from(n).ok()).unwrap_or(1).max(1)
}

impl Sessions for AmqpConsumer {
    fn group(&self) -> &str {
        &self.topology.group
    }

    async fn session<F: Future<Output = ()> + Send>(
        self: &Arc<Self>,
        mut shutdown: Pin<&mut F>,
        backoff: &mut Duration,
    ) -> Result<SessionEnd, BusError> {
        let group = &self.topology.group;
        let connection = Arc::new(AmqpConnection::connect(&self.url, &format!("voltbus-consumer-{group}")).await?);
        connection.declare_exchanges().await?;
        self.topology.declare(&connection).await?;
        let tag = format!("{group}-{}", uuid::Uuid::now_v7());
        let (channel, mut deliveries) =
            connection.consume(&self.topology.work_queue(), &tag, self.options.prefetch).await?;
        *backoff = FIRST_BACKOFF;
        tracing::info!(%group, queue = %self.topology.work_queue(), prefetch = self.options.prefetch, lanes = self.options.lanes, "consuming");

        let lanes = Lanes::start_batched(self.options.lanes, usize::from(self.options.prefetch), self.batch, {
            let (this, connection) = (Arc::clone(self), Arc::clone(&connection));
            move |deliveries: Vec<Delivery>| {
                let (this, connection) = (Arc::clone(&this), Arc::clone(&connection));
                async move { this.process_all(&connection, deliveries).await }
            }
        });

        let end = loop {
            tokio::select! {
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let aggregate = headers::text(&delivery.properties, "subject");
                        if !lanes.dispatch(aggregate.as_deref(), delivery.delivery_tag, delivery).await {
                            break SessionEnd::Lost;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%group, %error, "delivery stream failed");
                        break SessionEnd::Lost;
                    }
                    None => break SessionEnd::Lost,
                },
                () = shutdown.as_mut() => {
                    // No new deliveries; those already handed out are finished below, and any the
                    // broker pushed but we never read are requeued when the connection closes.
                    let _ = channel.basic_cancel(deliveries.tag(), BasicCancelOptions { nowait: false }).await;
                    break SessionEnd::Shutdown;
                }
            }
        };
        lanes.finish().await;
        connection.close().await;
        Ok(end)
    }
}

/// Where a delivery came from, as its span names it: the exchange it was published to.
fn from(delivery: &Delivery) -> crate::traces::Destination<'_> {
    crate::traces::Destination {
        system: crate::traces::RABBITMQ,
        name: delivery.exchange.as_str(),
        routing_key: Some(delivery.routing_key.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Envelope;

    #[test]
    fn the_aggregate_travels_in_a_header_so_lanes_need_no_decoding() {
        let tenant = schemas::TenantId::new("acme").unwrap();
        let ride = uuid::Uuid::now_v7();
        let envelope = Envelope::new(tenant, "test", schemas::rides::PauseRide { ride_id: ride });
        let properties = super::super::properties_of(&envelope);
        assert_eq!(headers::text(&properties, "subject"), Some(ride.to_string()));
    }
}
