//! NATS through async-nats.
//!
//! Messages travel in CloudEvents binary content mode: attributes as `ce-…` headers, `data` alone
//! as the body, so a mobile app subscribed to `{topic}.CHARGING` reads the seed's exact object.
//! Core NATS carries realtime fan-out (fire and forget by design); JetStream carries what must be
//! durable, de-duplicated by `Nats-Msg-Id` = envelope id within the stream's duplicate window.
//!
//! Layout: this file (connection, streams, publishing), `consumer` (the JetStream consumer
//! runtime), `dead_letters` (the dead-letter stream: listing and replaying), `accounts`
//! (credentials the server checks: operator, account, users).

pub mod accounts;
mod consumer;
mod dead_letters;

pub use consumer::{Headless, JetStreamConsumer, JetStreamGroup};
pub use dead_letters::{dead_letter_count, group_depth, list_dead_letters, replay_dead_letters};

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use schemas::{AnyMessage, DecodeError, Envelope, decode_any_binary, subjects};
use serde::Serialize;

use crate::error::redact_url;
use crate::{BusError, EngineReport, EngineState, PublishError, ReplyBody, RequestError};

/// Header prefix of CloudEvents attributes in binary mode (CloudEvents NATS binding).
pub const HEADER_PREFIX: &str = "ce-";

/// A NATS connection and its JetStream context.
#[derive(Clone)]
pub struct NatsConnection {
    client: Client,
    jetstream: jetstream::Context,
    /// Where to open sibling connections (with credentials; never printed).
    connect_url: String,
    /// The `.creds` text of a server in operator mode (never printed).
    credentials: Option<String>,
    url: String,
}

/// How long a stream remembers a `Nats-Msg-Id`; a retention must be longer.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Default age limit of the telemetry, events and device command streams: a long weekend.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 3600);

impl NatsConnection {
    /// Connects. The first connection attempt retries in the background, so a service whose NATS
    /// is still starting boots anyway and reports NATS down until it is up.
    pub async fn connect(url: &str, service: &str) -> Result<Self, BusError> {
        Self::connect_with(url, service, None).await
    }

    /// Connects as the user of `credentials` (`.creds` text), for a server in operator mode.
    pub async fn connect_with(url: &str, service: &str, credentials: Option<String>) -> Result<Self, BusError> {
        let client = open(url, service, credentials.as_deref()).await?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self { client, jetstream, connect_url: url.to_owned(), credentials, url: redact_url(url) })
    }

    /// Creates the JetStream streams voltbus stores durable subjects in, if they do not exist,
    /// and gives telemetry, events and device commands a `retention` (a stream made before one
    /// had none is updated): every consumer acknowledges within seconds, so the age limit only
    /// bounds the disk, and a consumer down for longer than `retention` misses what it did not
    /// take. Dead letters and advisories wait for an operator or a watcher, whatever their age.
    /// A `retention` shorter than the duplicate window is taken as that window. A stream made
    /// here has one replica; one that exists keeps the replicas it has.
    pub async fn ensure_streams(&self, retention: Duration) -> Result<(), BusError> {
        self.ensure_replicated_streams(retention, None).await
    }

    /// [`NatsConnection::ensure_streams`], with `replicas` copies of every stream on a cluster
    /// (`nats.replicas`), made so or changed to it when it has another number.
    pub async fn ensure_replicated_streams(
        &self,
        retention: Duration,
        replicas: Option<usize>,
    ) -> Result<(), BusError> {
        let retention = retention.max(DUPLICATE_WINDOW);
        let streams = [
            (subjects::TELEMETRY_STREAM, subjects::telemetry_stream_subjects(), retention),
            (subjects::EVENTS_STREAM, subjects::events_stream_subjects(), retention),
            (subjects::VEHICLE_COMMANDS_STREAM, subjects::vehicle_commands_stream_subjects(), retention),
            (subjects::DEAD_LETTER_STREAM, subjects::dead_letter_stream_subjects(), Duration::ZERO),
            (subjects::ADVISORY_STREAM, subjects::advisory_stream_subjects(), Duration::ZERO),
        ];
        for (name, subjects, max_age) in streams {
            let topology = |reason: String| BusError::Topology { what: format!("stream {name}"), reason };
            let config = stream::Config {
                name: name.to_owned(),
                subjects,
                // File storage: survives a server restart.
                storage: stream::StorageType::File,
                // De-duplication window for `Nats-Msg-Id`; consumers' inbox covers what falls outside it.
                duplicate_window: DUPLICATE_WINDOW,
                // Zero: no age limit.
                max_age,
                num_replicas: replicas.unwrap_or(1),
                ..Default::default()
            };
            let existing = self.jetstream.get_or_create_stream(config).await.map_err(|e| topology(e.to_string()))?;
            let held = &existing.cached_info().config;
            let replicas = replicas.unwrap_or(held.num_replicas);
            if held.max_age != max_age || held.num_replicas != replicas {
                // Only the age limit and the replicas change: limits and placement an operator
                // gave the stream stay as they are.
                let mut changed = held.clone();
                changed.max_age = max_age;
                changed.num_replicas = replicas;
                if max_age > Duration::ZERO {
                    changed.duplicate_window = changed.duplicate_window.min(max_age);
                }
                self.jetstream.update_stream(changed).await.map_err(|e| topology(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Publishes on core NATS (realtime fan-out: at most once, no broker storage).
    pub async fn publish_realtime<T: Serialize>(
        &self,
        subject: String,
        envelope: &Envelope<T>,
    ) -> Result<(), PublishError> {
        let (headers, body) = binary(envelope);
        let pattern = crate::metrics::subject_pattern(&subject);
        let outcome = self
            .client
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(|e| PublishError::Disconnected(e.to_string()));
        crate::metrics::published("nats", pattern, outcome.as_ref().map(|_| ()));
        outcome
    }

    /// Publishes to JetStream and returns once the stream stored it. The first await sends, the
    /// second waits for the stream's ack; a `duplicate` ack means an earlier publish of the same
    /// envelope was stored, which is success.
    pub async fn publish_durable<T: Serialize>(
        &self,
        subject: String,
        envelope: &Envelope<T>,
    ) -> Result<(), PublishError> {
        let (mut headers, body) = binary(envelope);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, envelope.id.to_string().as_str());
        self.publish_stored(subject, headers, body.into()).await
    }

    /// Publishes prepared headers and body to JetStream and waits for the stream's ack.
    pub(crate) async fn publish_stored(
        &self,
        subject: String,
        headers: HeaderMap,
        body: bytes::Bytes,
    ) -> Result<(), PublishError> {
        let pattern = crate::metrics::subject_pattern(&subject);
        let outcome = async {
            let ack = self
                .jetstream
                .publish_with_headers(subject, headers, body)
                .await
                .map_err(|e| PublishError::Disconnected(e.to_string()))?;
            ack.await.map_err(|e| PublishError::NotStored(e.to_string())).map(|_| ())
        }
        .await;
        crate::metrics::published("jetstream", pattern, outcome.as_ref().map(|_| ()));
        outcome
    }

    /// Publishes command `envelope` to JetStream subject `subject` and waits up to `timeout` for the
    /// consumer group's reply on a private inbox (the `voltbus-reply-to` header).
    pub async fn request<T: Serialize>(
        &self,
        subject: String,
        envelope: &Envelope<T>,
        timeout: Duration,
    ) -> Result<serde_json::Value, RequestError> {
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| RequestError::Publish(PublishError::Disconnected(e.to_string())))?;
        let (mut headers, body) = binary(envelope);
        // Each request is its own publish: a repeated command must reach the group, whose inbox
        // answers it with the first reply. Stream de-duplication would swallow it unanswered.
        headers.insert(async_nats::header::NATS_MESSAGE_ID, uuid::Uuid::now_v7().to_string().as_str());
        headers.insert(consumer::headers::REPLY_TO, inbox.as_str());
        self.publish_stored(subject, headers, body.into()).await?;
        let reply =
            async { futures_util::StreamExt::next(&mut replies).await.map(|m| ReplyBody::from_bytes(&m.payload)) };
        crate::handler::await_reply(reply, timeout).await
    }

    /// A second connection to the same server, for traffic that must not queue behind this
    /// connection's inbound flood (acks of a busy consumer).
    pub(crate) async fn sibling(&self, service: &str) -> Result<Client, BusError> {
        open(&self.connect_url, service, self.credentials.as_deref()).await
    }

    /// The core client, for replies and advisories.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Subscribes on core NATS.
    pub async fn subscribe(&self, subject: String) -> Result<async_nats::Subscriber, BusError> {
        self.client
            .subscribe(subject.clone())
            .await
            .map_err(|e| BusError::Consume { source_name: subject, reason: e.to_string() })
    }

    /// The JetStream context, for consumers.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// This connection's line in `/health`.
    pub fn report(&self) -> EngineReport {
        let up = self.client.connection_state() == async_nats::connection::State::Connected;
        EngineReport {
            engine: "nats",
            kind: "nats",
            state: if up { EngineState::Up } else { EngineState::Down },
            detail: self.url.clone(),
        }
    }

    /// Flushes what is buffered, then drains the connection.
    pub async fn close(&self) {
        // Nothing useful can be done with a failed flush or drain at shutdown.
        let _ = self.client.flush().await;
        let _ = self.client.drain().await;
    }
}

/// Decodes a binary-mode NATS message as a message of any catalogue type.
pub fn decode(message: &async_nats::Message) -> Result<Envelope<AnyMessage>, DecodeError> {
    decode_parts(message.headers.as_ref(), &message.payload)
}

/// Decodes binary-mode headers and body.
pub(crate) fn decode_parts(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Envelope<AnyMessage>, DecodeError> {
    let attribute = |name: &str| {
        let header = header_name(name).map_or_else(|| format!("{HEADER_PREFIX}{name}"), str::to_owned);
        headers.and_then(|h| h.get(header.as_str())).map(|v| v.as_str().to_owned())
    };
    decode_any_binary(attribute, payload)
}

/// The header carrying an attribute, spelled out so publishing allocates no header names.
fn header_name(attribute: &str) -> Option<&'static str> {
    Some(match attribute {
        "specversion" => "ce-specversion",
        "id" => "ce-id",
        "source" => "ce-source",
        "type" => "ce-type",
        "dataversion" => "ce-dataversion",
        "time" => "ce-time",
        "datacontenttype" => "ce-datacontenttype",
        "tenant" => "ce-tenant",
        "correlationid" => "ce-correlationid",
        "subject" => "ce-subject",
        "causationid" => "ce-causationid",
        "traceparent" => "ce-traceparent",
        "tracestate" => "ce-tracestate",
        _ => return None,
    })
}

pub(crate) fn binary<T: Serialize>(envelope: &Envelope<T>) -> (HeaderMap, Vec<u8>) {
    let message = envelope.to_binary();
    let mut headers = HeaderMap::new();
    for attribute in message.attributes {
        match header_name(attribute.name) {
            Some(name) => headers.insert(name, attribute.value),
            None => headers.insert(format!("{HEADER_PREFIX}{}", attribute.name).as_str(), attribute.value),
        }
    }
    // W3C trace context under its own header names too, as tracing tools read NATS headers.
    if let Some(traceparent) = &envelope.traceparent {
        headers.insert("traceparent", traceparent.as_str());
    }
    if let Some(tracestate) = &envelope.tracestate {
        headers.insert("tracestate", tracestate.as_str());
    }
    headers.insert("content-type", "application/json");
    (headers, message.body)
}

/// A connection as `service`, with `credentials` when the server checks them. The first attempt
/// retries in the background, so a service whose NATS is still starting boots anyway.
async fn open(url: &str, service: &str, credentials: Option<&str>) -> Result<Client, BusError> {
    let failed = |reason: String| BusError::Connect { engine: "nats", url: redact_url(url), reason };
    let options = match credentials {
        Some(creds) => ConnectOptions::with_credentials(creds).map_err(|e| failed(format!("credentials: {e}")))?,
        None => ConnectOptions::new(),
    };
    // A cluster's servers, separated by commas; the client also follows the servers the cluster
    // announces (INFO `connect_urls`), so one of them is enough to find the rest.
    let servers = crate::nodes(url)
        .map(|server| server.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(format!("not a server URL: {e}")))?;
    options
        .name(service)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(servers)
        .await
        .map_err(|e| failed(e.to_string()))
}
