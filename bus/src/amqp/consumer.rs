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
//! When the connection drops, the runtime reconnects with backoff (100 ms doubling to 5 s),
//! re-declares the topology and resumes; deliveries that were not acked come again, and the inbox
//! makes the repeat harmless. On shutdown it cancels the consumer, finishes what it was given, and
//! closes the connection.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use schemas::{AnyMessage, Envelope};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{AmqpConnection, GroupTopology, headers};
use crate::handler::{Context, Handler, HandlerError, Reply, ReplyBody};
use crate::inbox::{self, Claim};
use crate::{BusError, PublishError};

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
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
        Self {
            prefetch: 200,
            lanes: 16,
        }
    }
}

/// A consumer group's runtime on RabbitMQ.
pub struct AmqpConsumer {
    url: String,
    topology: GroupTopology,
    options: ConsumerOptions,
    handler: Arc<dyn Handler>,
    /// When set, each message is handled in a transaction with its inbox record.
    database: Option<DatabaseConnection>,
}

enum SessionEnd {
    Shutdown,
    Lost,
}

enum Disposition {
    Done,
    Retry { queue: String, reason: String },
    DeadLetter { kind: String, reason: String },
}

impl AmqpConsumer {
    /// A runtime for `topology`'s group, calling `handler` for each message.
    pub fn new(
        url: impl Into<String>,
        topology: GroupTopology,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        database: Option<DatabaseConnection>,
    ) -> Self {
        let options = ConsumerOptions {
            prefetch: options.prefetch.max(1),
            lanes: options.lanes.max(1),
        };
        Self {
            url: url.into(),
            topology,
            options,
            handler,
            database,
        }
    }

    /// Runs until `shutdown` resolves, reconnecting whenever the broker connection is lost.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let this = Arc::new(self);
        tokio::pin!(shutdown);
        let mut backoff = FIRST_BACKOFF;
        loop {
            match this.session(shutdown.as_mut(), &mut backoff).await {
                Ok(SessionEnd::Shutdown) => return,
                Ok(SessionEnd::Lost) => {
                    tracing::warn!(group = %this.topology.group, "broker connection lost; reconnecting")
                }
                Err(error) => {
                    tracing::warn!(group = %this.topology.group, %error, ?backoff, "cannot consume; retrying")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.as_mut() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(
        self: &Arc<Self>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
        backoff: &mut Duration,
    ) -> Result<SessionEnd, BusError> {
        let group = &self.topology.group;
        let connection = Arc::new(
            AmqpConnection::connect(&self.url, &format!("voltbus-consumer-{group}")).await?,
        );
        connection.declare_exchanges().await?;
        self.topology.declare(&connection.channel().await?).await?;
        let (channel, mut deliveries) = connection
            .consume(
                &self.topology.work_queue(),
                &format!("{group}-{}", uuid::Uuid::now_v7()),
                self.options.prefetch,
            )
            .await?;
        *backoff = FIRST_BACKOFF;
        tracing::info!(%group, queue = %self.topology.work_queue(), prefetch = self.options.prefetch, lanes = self.options.lanes, "consuming");

        let mut lanes = Vec::with_capacity(self.options.lanes);
        let mut workers = JoinSet::new();
        for _ in 0..self.options.lanes {
            let (sender, mut receiver) =
                mpsc::channel::<Delivery>(usize::from(self.options.prefetch));
            lanes.push(sender);
            let this = Arc::clone(self);
            let connection = Arc::clone(&connection);
            workers.spawn(async move {
                while let Some(delivery) = receiver.recv().await {
                    this.process(&connection, delivery).await;
                }
            });
        }

        let end = loop {
            tokio::select! {
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let lane = lane_of(&delivery.properties, delivery.delivery_tag, lanes.len());
                        if lanes[lane].send(delivery).await.is_err() {
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
        drop(lanes);
        while workers.join_next().await.is_some() {}
        connection.close().await;
        Ok(end)
    }

    async fn process(&self, connection: &AmqpConnection, delivery: Delivery) {
        let attempt = headers::number(&delivery.properties, headers::ATTEMPT)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        let decoded = super::decode(&delivery);
        let span = match &decoded {
            Ok(envelope) => tracing::info_span!(
                "message",
                group = %self.topology.group,
                message_id = %envelope.id,
                correlation_id = %envelope.correlationid,
                tenant = %envelope.tenant,
                r#type = %envelope.type_name,
                attempt,
            ),
            Err(_) => {
                tracing::info_span!("message", group = %self.topology.group, delivery_tag = delivery.delivery_tag, attempt)
            }
        };
        async {
            let disposition = match decoded {
                Err(error) => {
                    self.reply(
                        connection,
                        &delivery.properties,
                        ReplyBody::Error {
                            kind: error.kind().into(),
                            message: error.to_string(),
                        },
                    )
                    .await;
                    Disposition::DeadLetter {
                        kind: error.kind().into(),
                        reason: error.to_string(),
                    }
                }
                Ok(envelope) => match self.invoke(&envelope, attempt).await {
                    Ok(reply) => {
                        self.reply(
                            connection,
                            &delivery.properties,
                            ReplyBody::Ok {
                                data: reply.unwrap_or(Value::Null),
                            },
                        )
                        .await;
                        Disposition::Done
                    }
                    Err(HandlerError::Retryable(reason)) => {
                        match self.topology.retry_queue(attempt) {
                            Some((queue, _)) => Disposition::Retry { queue, reason },
                            None => {
                                let message = format!("gave up after {attempt} attempts: {reason}");
                                self.reply(
                                    connection,
                                    &delivery.properties,
                                    ReplyBody::Error {
                                        kind: "retries_exhausted".into(),
                                        message: message.clone(),
                                    },
                                )
                                .await;
                                Disposition::DeadLetter {
                                    kind: "retries_exhausted".into(),
                                    reason: message,
                                }
                            }
                        }
                    }
                    Err(HandlerError::Permanent(reason)) => {
                        self.reply(
                            connection,
                            &delivery.properties,
                            ReplyBody::Error {
                                kind: "permanent".into(),
                                message: reason.clone(),
                            },
                        )
                        .await;
                        Disposition::DeadLetter {
                            kind: "permanent".into(),
                            reason,
                        }
                    }
                },
            };
            self.settle(connection, delivery, disposition, attempt)
                .await;
        }
        .instrument(span)
        .await
    }

    /// Runs the handler; with a database, inside a transaction that also records the inbox row.
    async fn invoke(
        &self,
        envelope: &Envelope<AnyMessage>,
        attempt: u32,
    ) -> Result<Reply, HandlerError> {
        let Some(database) = &self.database else {
            return self
                .call(Context {
                    message: envelope,
                    attempt,
                    transaction: None,
                })
                .await;
        };
        let retryable = |e: DbErr| HandlerError::Retryable(format!("database: {e}"));
        let transaction = database.begin().await.map_err(retryable)?;
        if let Claim::Duplicate(reply) = inbox::claim(&transaction, &self.topology.group, envelope)
            .await
            .map_err(retryable)?
        {
            // Rolling back a read-only transaction cannot lose anything.
            let _ = transaction.rollback().await;
            tracing::debug!("already handled; skipping the duplicate");
            return Ok(reply);
        }
        let reply = match self
            .call(Context {
                message: envelope,
                attempt,
                transaction: Some(&transaction),
            })
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                let _ = transaction.rollback().await;
                return Err(error);
            }
        };
        if let Some(reply) = &reply {
            inbox::record_reply(&transaction, &self.topology.group, envelope, reply)
                .await
                .map_err(retryable)?;
        }
        transaction.commit().await.map_err(retryable)?;
        Ok(reply)
    }

    /// Calls the handler; a panic becomes a permanent error, so a poison message cannot take its lane down.
    async fn call(&self, context: Context<'_>) -> Result<Reply, HandlerError> {
        match AssertUnwindSafe(self.handler.handle(context))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(HandlerError::Permanent(format!("handler panicked: {text}")))
            }
        }
    }

    /// Answers a request, if the delivery asked for an answer (`reply_to`).
    async fn reply(&self, connection: &AmqpConnection, request: &BasicProperties, body: ReplyBody) {
        let (Some(reply_to), Some(request_id)) = (request.reply_to(), request.message_id()) else {
            return;
        };
        let properties = BasicProperties::default()
            .with_correlation_id(request_id.clone())
            .with_content_type("application/json".into());
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        // Not mandatory: a requester that gave up is gone, and that is not the handler's failure.
        if let Err(error) = connection
            .publish_raw("", reply_to.as_str(), &bytes, properties, false)
            .await
        {
            tracing::warn!(%error, "reply could not be sent");
        }
    }

    async fn settle(
        &self,
        connection: &AmqpConnection,
        delivery: Delivery,
        disposition: Disposition,
        attempt: u32,
    ) {
        let forwarded: Result<(), PublishError> = match disposition {
            Disposition::Done => Ok(()),
            Disposition::Retry { queue, reason } => {
                tracing::info!(%reason, %queue, "retrying later");
                let properties = headers::with(
                    &delivery.properties,
                    vec![(
                        headers::ATTEMPT,
                        AMQPValue::LongLongInt(i64::from(attempt) + 1),
                    )],
                );
                connection
                    .publish_raw("", &queue, &delivery.data, properties, true)
                    .await
            }
            Disposition::DeadLetter { kind, reason } => {
                tracing::warn!(%kind, %reason, "dead-lettered");
                let properties = headers::with(
                    &delivery.properties,
                    vec![
                        (
                            headers::REASON,
                            AMQPValue::LongString(reason.as_str().into()),
                        ),
                        (
                            headers::ERROR_KIND,
                            AMQPValue::LongString(kind.as_str().into()),
                        ),
                        (
                            headers::SOURCE_QUEUE,
                            AMQPValue::LongString(self.topology.work_queue().as_str().into()),
                        ),
                        (headers::ATTEMPT, AMQPValue::LongLongInt(i64::from(attempt))),
                        (
                            headers::FAILED_AT,
                            AMQPValue::LongString(chrono::Utc::now().to_rfc3339().as_str().into()),
                        ),
                    ],
                );
                connection
                    .publish_raw(
                        "",
                        &self.topology.dead_letter_queue(),
                        &delivery.data,
                        properties,
                        true,
                    )
                    .await
            }
        };
        match forwarded {
            Ok(()) => match delivery.ack(BasicAckOptions { multiple: false }).await {
                Ok(true) => {}
                // After a channel reset lapin answers Ok(false) without acking (BUS-NOTES): the
                // message comes again and the inbox makes the repeat harmless.
                Ok(false) => tracing::warn!(
                    "ack not sent (channel was reset); the message will be redelivered"
                ),
                Err(error) => tracing::warn!(%error, "ack failed; the message will be redelivered"),
            },
            Err(error) => {
                tracing::error!(%error, "could not forward the message; handing it back to the queue");
                tokio::time::sleep(FORWARD_FAILURE_PAUSE).await;
                let _ = delivery
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await;
            }
        }
    }
}

/// The lane of a delivery: by the envelope's subject (its aggregate) when it has one.
fn lane_of(properties: &BasicProperties, delivery_tag: u64, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    match headers::text(properties, "subject") {
        Some(subject) => subject.hash(&mut hasher),
        None => delivery_tag.hash(&mut hasher),
    }
    usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_aggregate_always_gets_the_same_lane() {
        let tenant = schemas::TenantId::new("acme").unwrap();
        let ride = uuid::Uuid::now_v7();
        let lanes: Vec<usize> = (0..20u64)
            .map(|tag| {
                let envelope = Envelope::new(
                    tenant.clone(),
                    "test",
                    schemas::rides::PauseRide { ride_id: ride },
                );
                lane_of(&super::super::properties_of(&envelope), tag, 8)
            })
            .collect();
        assert!(lanes.iter().all(|l| *l == lanes[0]), "{lanes:?}");
    }
}
