//! RabbitMQ through lapin.
//!
//! Every publish is persistent, `mandatory`, and waits for its own publisher confirm: an ack says the
//! broker stored it, a nack or a returned (unroutable) message is an error to the caller. Confirms are
//! per publish, not `wait_for_confirms` (which only covers the last publish, lapin #369), so many
//! publishes can be in flight on one channel at once and each caller learns its own fate.
//! Messages travel in CloudEvents structured mode (`application/cloudevents+json`).
//!
//! Layout: this file (connection, publishing), `topology` (a consumer group's queues), `consumer`
//! (the consumer runtime), `requester` (request/reply over direct reply-to), `dead_letters`
//! (listing and replaying a dead-letter queue).

mod consumer;
mod dead_letters;
mod headers;
mod requester;
mod topology;

pub use crate::handler::RequestError;
pub use consumer::{AmqpConsumer, ConsumerOptions};
pub use dead_letters::{list_dead_letters, queue_depths, replay_dead_letters};
pub use requester::Requester;
pub use topology::GroupTopology;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use lapin::Confirmation;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use schemas::{AnyMessage, DecodeError, Envelope, decode_any, routing};
use serde::Serialize;

use crate::error::redact_url;
use crate::{BusError, EngineReport, EngineState, PublishError};

/// Content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// AMQP delivery mode that makes the broker write the message to disk.
const PERSISTENT: u8 = 2;

/// One live connection and its confirm-mode publishing channel.
struct Link {
    connection: Connection,
    /// Confirm mode is switched on once, when the link opens: without it lapin reports
    /// `NotRequested` at once, which looks like success (BUS-NOTES).
    publisher: Channel,
}

impl Link {
    async fn open(url: &str, service: &str) -> Result<Self, lapin::Error> {
        let properties = ConnectionProperties::default().with_connection_name(service.into());
        let connection = Connection::connect(url, properties).await?;
        let publisher = connection.create_channel().await?;
        publisher.confirm_select(ConfirmSelectOptions { nowait: false }).await?;
        Ok(Self { connection, publisher })
    }

    fn is_up(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

/// A link to the first of `nodes`, starting at `first` and going round, that opens; and which it
/// is. Every node's failure, when none opens.
async fn open_any(nodes: &[String], first: usize, service: &str) -> Result<(Link, usize), String> {
    if nodes.is_empty() {
        return Err("no node in the URL".into());
    }
    let mut failures = Vec::new();
    for index in (0..nodes.len()).map(|i| (first + i) % nodes.len()) {
        match Link::open(&nodes[index], service).await {
            Ok(link) => {
                if nodes.len() > 1 {
                    tracing::info!(node = %redact_url(&nodes[index]), "connected to RabbitMQ node");
                }
                return Ok((link, index));
            }
            Err(error) => failures.push(format!("{}: {error}", redact_url(&nodes[index]))),
        }
    }
    Err(failures.join("; "))
}

/// A RabbitMQ connection that reopens itself, on the next node of a cluster when it has several.
///
/// lapin's own recovery is young and does not restore everything (BUS-NOTES), so this type keeps
/// the current link and, when it finds it broken, opens a new one (one caller reconnects, the others
/// wait for it) and re-declares the exchanges if they were declared before. A publish caught in the
/// break fails with [`PublishError::Disconnected`]; it is never reported as confirmed.
///
/// The nodes are tried in the order given, the first connection from the first; a reconnection
/// from the node after the one that was lost (it is likely still down), round to it last.
pub struct AmqpConnection {
    nodes: Vec<String>,
    /// The node of the current link.
    at: AtomicUsize,
    service: String,
    shown_url: String,
    current: RwLock<Arc<Link>>,
    /// Held by the one caller that is reopening the link.
    reconnecting: tokio::sync::Mutex<()>,
    /// Whether `declare_exchanges` ran, so a new link re-declares them.
    exchanges_declared: AtomicBool,
}

impl AmqpConnection {
    /// Connects, names the connection after `service` (visible in `rabbitmqctl list_connections`
    /// and the management UI), and opens the publishing channel in confirm mode.
    pub async fn connect(url: &str, service: &str) -> Result<Self, BusError> {
        let nodes: Vec<String> = crate::nodes(url).map(str::to_owned).collect();
        let (link, at) = open_any(&nodes, 0, service).await.map_err(|reason| BusError::Connect {
            engine: "rabbitmq",
            url: redact_url(url),
            reason,
        })?;
        Ok(Self {
            nodes,
            at: AtomicUsize::new(at),
            service: service.to_owned(),
            shown_url: redact_url(url),
            current: RwLock::new(Arc::new(link)),
            reconnecting: tokio::sync::Mutex::new(()),
            exchanges_declared: AtomicBool::new(false),
        })
    }

    fn snapshot(&self) -> Arc<Link> {
        match self.current.read() {
            Ok(link) => Arc::clone(&link),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The current link, reopened first if it is broken.
    async fn link(&self) -> Result<Arc<Link>, BusError> {
        let link = self.snapshot();
        if link.is_up() {
            return Ok(link);
        }
        let _only_one = self.reconnecting.lock().await;
        let link = self.snapshot();
        if link.is_up() {
            return Ok(link);
        }
        tracing::info!(url = %self.shown_url, "reopening the RabbitMQ connection");
        let after = self.at.load(Ordering::Acquire) + 1;
        let (fresh, at) = open_any(&self.nodes, after, &self.service).await.map_err(|reason| BusError::Connect {
            engine: "rabbitmq",
            url: self.shown_url.clone(),
            reason,
        })?;
        self.at.store(at, Ordering::Release);
        let fresh = Arc::new(fresh);
        if self.exchanges_declared.load(Ordering::Acquire) {
            declare_exchanges_on(&fresh.publisher).await?;
        }
        match self.current.write() {
            Ok(mut current) => *current = Arc::clone(&fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&fresh),
        }
        Ok(fresh)
    }

    /// Declares the exchanges every service relies on, now and again after every reconnect.
    /// Idempotent: same arguments every time, from one place, because redeclaring with other
    /// arguments is a 406 that closes the channel.
    pub async fn declare_exchanges(&self) -> Result<(), BusError> {
        declare_exchanges_on(&self.link().await?.publisher).await?;
        self.exchanges_declared.store(true, Ordering::Release);
        Ok(())
    }

    /// Publishes a message in structured mode and returns once the broker confirmed it.
    pub async fn publish<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<T>,
    ) -> Result<(), PublishError> {
        let to = crate::traces::Destination {
            system: crate::traces::RABBITMQ,
            name: exchange,
            routing_key: Some(routing_key),
        };
        let body = envelope.encode();
        let send = self.publish_raw(exchange, routing_key, &body, properties_of(envelope), true);
        crate::traces::published(to, envelope.into(), send).await
    }

    /// Publishes bytes with the given properties and returns once the broker confirmed them.
    /// `mandatory` turns an unroutable message into [`PublishError::Returned`].
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), PublishError> {
        let outcome = async {
            let link = self.link().await.map_err(|e| PublishError::Disconnected(e.to_string()))?;
            let confirm = link
                .publisher
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions { mandatory, immediate: false },
                    body,
                    properties,
                )
                .await
                .map_err(|e| PublishError::Disconnected(e.to_string()))?;
            settle_confirm(confirm.await.map_err(|e| PublishError::Disconnected(e.to_string()))?)
        }
        .await;
        crate::metrics::published("amqp", exchange.to_owned(), outcome.as_ref().map(|_| ()));
        outcome
    }

    /// Opens a channel with a prefetch limit and starts a manual-ack consumer on `queue`.
    /// The prefetch is always set: lapin's consumer buffer is unbounded otherwise.
    pub async fn consume(
        &self,
        queue: &str,
        consumer_tag: &str,
        prefetch: u16,
    ) -> Result<(Channel, Consumer), BusError> {
        let consume_error = |reason: String| BusError::Consume { source_name: queue.to_owned(), reason };
        let channel = self.channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await
            .map_err(|e| consume_error(e.to_string()))?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                consumer_tag.into(),
                BasicConsumeOptions {
                    no_local: false,
                    // Manual acks: a message is acked only after its handler's work committed.
                    no_ack: false,
                    exclusive: false,
                    nowait: false,
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| consume_error(e.to_string()))?;
        Ok((channel, consumer))
    }

    /// A fresh channel on the current link, for declarations and consumers.
    pub async fn channel(&self) -> Result<Channel, BusError> {
        self.link()
            .await?
            .connection
            .create_channel()
            .await
            .map_err(|e| BusError::Topology { what: "channel".into(), reason: e.to_string() })
    }

    /// This connection's line in `/health`.
    pub fn report(&self) -> EngineReport {
        EngineReport {
            engine: "amqp",
            kind: "rabbitmq",
            state: if self.snapshot().is_up() { EngineState::Up } else { EngineState::Down },
            detail: self.shown_url.clone(),
        }
    }

    /// Closes the connection; in-flight confirms resolve first.
    pub async fn close(&self) {
        // A close on an already closed connection is not an error worth reporting at shutdown.
        let _ = self.snapshot().connection.close(200, "voltbus shutting down".into()).await;
    }
}

async fn declare_exchanges_on(channel: &Channel) -> Result<(), BusError> {
    for name in [routing::COMMANDS_EXCHANGE, routing::EVENTS_EXCHANGE] {
        channel
            .exchange_declare(
                name.into(),
                // Topic: work queues bind a domain (`rides.#`), subscribers a tenant (`acme.#`).
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: false,
                    // Survives a broker restart, with its bindings.
                    durable: true,
                    // Stays when the last queue unbinds: other services' bindings depend on it.
                    auto_delete: false,
                    internal: false,
                    nowait: false,
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| BusError::Topology { what: format!("exchange {name}"), reason: e.to_string() })?;
    }
    Ok(())
}

/// What a publisher confirm says about one publish.
pub(crate) fn settle_confirm(confirmation: Confirmation) -> Result<(), PublishError> {
    match confirmation {
        // An unroutable mandatory message is still acked; the return is what tells.
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(PublishError::Returned { reply_code: returned.reply_code, reply_text: returned.reply_text.to_string() })
        }
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Nack(None) => Err(PublishError::Nacked),
        Confirmation::NotRequested => Err(PublishError::ConfirmsNotEnabled),
    }
}

/// Decodes a delivery's body as a message of any catalogue type.
pub fn decode(delivery: &lapin::message::Delivery) -> Result<Envelope<AnyMessage>, DecodeError> {
    decode_any(&delivery.data)
}

/// AMQP properties mirroring the envelope, so the management UI and plain AMQP clients see the
/// id, type and correlation without parsing the body.
pub fn properties_of<T>(envelope: &Envelope<T>) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("tenant".into(), AMQPValue::LongString(envelope.tenant.as_str().into()));
    headers.insert("dataversion".into(), AMQPValue::LongString(envelope.dataversion.to_string().into()));
    if let Some(subject) = &envelope.subject {
        // Consumers pick a lane by it without decoding the body.
        headers.insert("subject".into(), AMQPValue::LongString(subject.as_str().into()));
    }
    // W3C trace context as the AMQP headers other tools read it, beside the envelope's copy.
    if let Some(traceparent) = &envelope.traceparent {
        headers.insert("traceparent".into(), AMQPValue::LongString(traceparent.as_str().into()));
    }
    if let Some(tracestate) = &envelope.tracestate {
        headers.insert("tracestate".into(), AMQPValue::LongString(tracestate.as_str().into()));
    }
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(envelope.id.to_string().into())
        .with_correlation_id(envelope.correlationid.to_string().into())
        .with_type(envelope.type_name.as_str().into())
        .with_timestamp(envelope.time.timestamp().max(0) as u64)
        .with_app_id(envelope.source.as_str().into())
        .with_headers(headers)
}
