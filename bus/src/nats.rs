//! NATS through async-nats.
//!
//! Messages travel in CloudEvents binary content mode: attributes as `ce-…` headers, `data` alone
//! as the body, so a mobile app subscribed to `{topic}.CHARGING` reads the seed's exact object.
//! Core NATS carries realtime fan-out (fire and forget by design); JetStream carries what must be
//! durable, de-duplicated by `Nats-Msg-Id` = envelope id within the stream's duplicate window.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use schemas::{AnyMessage, DecodeError, Envelope, decode_any_binary, subjects};
use serde::Serialize;

use crate::error::redact_url;
use crate::{BusError, EngineReport, EngineState, PublishError};

/// Header prefix of CloudEvents attributes in binary mode (CloudEvents NATS binding).
pub const HEADER_PREFIX: &str = "ce-";

/// A NATS connection and its JetStream context.
#[derive(Clone)]
pub struct NatsConnection {
    client: Client,
    jetstream: jetstream::Context,
    url: String,
}

impl NatsConnection {
    /// Connects. The first connection attempt retries in the background, so a service whose NATS
    /// is still starting boots anyway and reports NATS down until it is up.
    pub async fn connect(url: &str, service: &str) -> Result<Self, BusError> {
        let client = ConnectOptions::new()
            .name(service)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::Connect { engine: "nats", url: redact_url(url), reason: e.to_string() })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self { client, jetstream, url: redact_url(url) })
    }

    /// Creates the JetStream streams voltbus stores durable subjects in, if they do not exist.
    pub async fn ensure_streams(&self) -> Result<(), BusError> {
        for (name, subjects) in [
            (subjects::TELEMETRY_STREAM, subjects::telemetry_stream_subjects()),
            (subjects::EVENTS_STREAM, subjects::events_stream_subjects()),
        ] {
            let config = stream::Config {
                name: name.to_owned(),
                subjects,
                // File storage: survives a server restart.
                storage: stream::StorageType::File,
                // De-duplication window for `Nats-Msg-Id`; consumers' inbox covers what falls outside it.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            self.jetstream
                .get_or_create_stream(config)
                .await
                .map_err(|e| BusError::Topology { what: format!("stream {name}"), reason: e.to_string() })?;
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
        self.client
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(|e| PublishError::Disconnected(e.to_string()))
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
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(|e| PublishError::Disconnected(e.to_string()))?;
        ack.await.map_err(|e| PublishError::NotStored(e.to_string()))?;
        Ok(())
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
    let headers = message.headers.as_ref();
    let attribute = |name: &str| {
        headers.and_then(|h| h.get(format!("{HEADER_PREFIX}{name}").as_str())).map(|v| v.as_str().to_owned())
    };
    decode_any_binary(attribute, &message.payload)
}

fn binary<T: Serialize>(envelope: &Envelope<T>) -> (HeaderMap, Vec<u8>) {
    let message = envelope.to_binary();
    let mut headers = HeaderMap::new();
    for attribute in &message.attributes {
        headers.insert(format!("{HEADER_PREFIX}{}", attribute.name).as_str(), attribute.value.as_str());
    }
    headers.insert("content-type", "application/json");
    (headers, message.body)
}
