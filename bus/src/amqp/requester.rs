//! Request/reply over RabbitMQ's direct reply-to.
//!
//! The edge publishes a command with `reply_to = amq.rabbitmq.reply-to` on a channel that also
//! consumes that pseudo-queue, and waits for the reply whose `correlation_id` is the command's
//! message id. Direct reply-to needs no queue per request and no cleanup. A reply is only an
//! answer for a caller who is still waiting: the command itself is durable, so a timeout means
//! "not answered in time", never "not done".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use schemas::{Envelope, Message, routing};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{AmqpConnection, properties_of, settle_confirm};
use crate::handler::{ReplyBody, RequestError, await_reply};
use crate::{BusError, PublishError};

/// RabbitMQ's pseudo-queue for direct replies.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<ReplyBody>>>>;

/// Sends commands and awaits their replies.
pub struct Requester {
    connection: Arc<AmqpConnection>,
    pending: Pending,
    /// The channel requests go out and replies come in on; reopened when it breaks.
    current: tokio::sync::Mutex<Option<ReplyChannel>>,
}

/// A confirm-mode channel consuming direct replies, and the task routing them to waiters.
struct ReplyChannel {
    channel: Channel,
    listener: JoinHandle<()>,
}

impl Drop for ReplyChannel {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl ReplyChannel {
    async fn open(connection: &AmqpConnection, pending: &Pending) -> Result<Self, BusError> {
        let setup = |reason: String| BusError::Consume { source_name: DIRECT_REPLY_TO.into(), reason };
        let channel = connection.channel().await?;
        channel.confirm_select(ConfirmSelectOptions { nowait: false }).await.map_err(|e| setup(e.to_string()))?;
        let mut replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "voltbus-requester".into(),
                // Direct reply-to only works in no-ack mode: replies are not stored anyway.
                BasicConsumeOptions { no_local: false, no_ack: true, exclusive: false, nowait: false },
                FieldTable::default(),
            )
            .await
            .map_err(|e| setup(e.to_string()))?;
        let listener = tokio::spawn({
            let pending = Arc::clone(pending);
            async move {
                while let Some(delivery) = replies.next().await {
                    let Ok(delivery) = delivery else { break };
                    let Some(request_id) = delivery.properties.correlation_id() else {
                        continue;
                    };
                    let waiter = pending.lock().ok().and_then(|mut p| p.remove(request_id.as_str()));
                    if let Some(waiter) = waiter {
                        // The caller may have timed out meanwhile; then nobody needs the answer.
                        let _ = waiter.send(ReplyBody::from_bytes(&delivery.data));
                    }
                }
                // The channel broke: dropping the senders wakes every waiter with `Disconnected`.
                if let Ok(mut pending) = pending.lock() {
                    pending.clear();
                }
            }
        });
        Ok(Self { channel, listener })
    }
}

impl Requester {
    /// A requester on `connection`; its channel opens now and reopens after a broker outage.
    pub async fn new(connection: Arc<AmqpConnection>) -> Result<Self, BusError> {
        let pending: Pending = Arc::default();
        let channel = ReplyChannel::open(&connection, &pending).await?;
        Ok(Self { connection, pending, current: tokio::sync::Mutex::new(Some(channel)) })
    }

    /// The live request channel, reopened (one caller at a time) when the last one broke.
    async fn channel(&self) -> Result<Channel, RequestError> {
        let mut current = self.current.lock().await;
        if let Some(open) = current.as_ref().filter(|c| c.channel.status().connected()) {
            return Ok(open.channel.clone());
        }
        let fresh = ReplyChannel::open(&self.connection, &self.pending)
            .await
            .map_err(|e| RequestError::Publish(PublishError::Disconnected(e.to_string())))?;
        let channel = fresh.channel.clone();
        *current = Some(fresh);
        Ok(channel)
    }

    /// Publishes command `envelope` under its routing key and waits up to `timeout` for its reply.
    pub async fn request<T: Message>(&self, envelope: &Envelope<T>, timeout: Duration) -> Result<Value, RequestError> {
        self.request_to(routing::COMMANDS_EXCHANGE, &routing::command_key_of::<T>(), envelope, timeout).await
    }

    /// Like [`Requester::request`], to an explicit exchange and routing key.
    pub async fn request_to<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<T>,
        timeout: Duration,
    ) -> Result<Value, RequestError> {
        let request_id = envelope.id.to_string();
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(request_id.clone(), sender);
        }
        let outcome = self.send_and_wait(exchange, routing_key, envelope, receiver, timeout).await;
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&request_id);
        }
        outcome
    }

    async fn send_and_wait<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<T>,
        receiver: oneshot::Receiver<ReplyBody>,
        timeout: Duration,
    ) -> Result<Value, RequestError> {
        let properties = properties_of(envelope).with_reply_to(DIRECT_REPLY_TO.into());
        let channel = self.channel().await?;
        let started = std::time::Instant::now();
        let to = crate::traces::Destination {
            system: crate::traces::RABBITMQ,
            name: exchange,
            routing_key: Some(routing_key),
        };
        let confirmed = crate::traces::published(to, envelope.into(), async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    // Mandatory: a command no work queue is bound for is an error now, not a timeout later.
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &envelope.encode(),
                    properties,
                )
                .await
                .map_err(|e| PublishError::Disconnected(e.to_string()))?;
            tracing::trace!("command sent");
            settle_confirm(confirm.await.map_err(|e| PublishError::Disconnected(e.to_string()))?)
        })
        .await;
        crate::metrics::published("amqp", exchange.to_owned(), confirmed.as_ref().map(|_| ()));
        confirmed?;
        crate::metrics::command_stage("confirm", started.elapsed());
        tracing::trace!("command confirmed");
        let answered = std::time::Instant::now();
        let waiting = crate::traces::current_hop().child("await reply");
        let reply = await_reply(async { receiver.await.ok() }, timeout).await;
        if let Err(error) = &reply {
            waiting.fail("no_reply", error.to_string());
        }
        drop(waiting);
        crate::metrics::command_stage("reply", answered.elapsed());
        reply
    }
}
