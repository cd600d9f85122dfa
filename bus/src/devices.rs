//! How a device, or a simulator standing in for one, reaches voltbus: over NATS (JetStream keeps
//! what it publishes, core subscriptions bring what it is sent), or, when voltbus runs on its
//! embedded default and the device lives in the same process, over the embedded transport, which
//! plays both parts (stream groups' queues and realtime fan-out).

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use schemas::{AnyMessage, DecodeError, Envelope};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::embedded::{EmbeddedBus, topic_matches};
use crate::nats::NatsConnection;
use crate::{BusError, PublishError};

/// What is sent to a device, decoded (or why it could not be).
pub type Sent = Result<Envelope<AnyMessage>, DecodeError>;

/// The transport devices use.
#[derive(Clone)]
pub enum DeviceLink {
    /// NATS, as real devices use it (boxed: a connection is large beside the embedded bus).
    Nats(Box<NatsConnection>),
    /// The embedded transport of the voltbus in this process.
    Embedded(EmbeddedBus),
}

impl DeviceLink {
    /// Publishes `envelope` on `subject`, stored when this returns (JetStream's ack, the embedded
    /// transport's commit).
    pub async fn publish<T: Serialize>(&self, subject: String, envelope: &Envelope<T>) -> Result<(), PublishError> {
        match self {
            Self::Nats(nats) => nats.publish_durable(subject, envelope).await,
            Self::Embedded(bus) => {
                bus.publish_subject(&subject, &envelope.encode(), envelope.id, envelope.subject.clone()).await
            }
        }
    }

    /// Everything published from now on, on the subjects `pattern` matches (`*` is one token).
    pub async fn subscribe(&self, pattern: String) -> Result<BoxStream<'static, Sent>, BusError> {
        match self {
            Self::Nats(nats) => Ok(nats.subscribe(pattern).await?.map(|message| crate::nats::decode(&message)).boxed()),
            Self::Embedded(bus) => {
                let receiver = bus.subscribe_realtime();
                let next = move |mut receiver: tokio::sync::broadcast::Receiver<crate::embedded::Delivery>| {
                    let pattern = pattern.clone();
                    async move {
                        loop {
                            match receiver.recv().await {
                                Ok(delivery) if topic_matches(&pattern, &delivery.destination) => {
                                    return Some((schemas::decode_any(&delivery.body), receiver));
                                }
                                Ok(_) => {}
                                // Realtime is at most once, as core NATS is: a slow device misses some.
                                Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "a device fell behind"),
                                Err(RecvError::Closed) => return None,
                            }
                        }
                    }
                };
                Ok(futures_util::stream::unfold(receiver, next).boxed())
            }
        }
    }
}

impl From<NatsConnection> for DeviceLink {
    fn from(nats: NatsConnection) -> Self {
        Self::Nats(Box::new(nats))
    }
}

impl From<EmbeddedBus> for DeviceLink {
    fn from(bus: EmbeddedBus) -> Self {
        Self::Embedded(bus)
    }
}
