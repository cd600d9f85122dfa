//! Follows `api_key.changed` events on RabbitMQ, so that a key disabled, regenerated, changed or
//! deleted through one edge is dropped from every edge's key cache within milliseconds, not when
//! the cache entry expires; and `integration.revoked` / `integration.active_changed`, so that an
//! integration's open machine tokens die on every edge as soon (the database is also re-read
//! every few seconds, for an event missed). Each edge has its own exclusive queue bound to the event of every
//! organisation; when the subscription breaks, the whole cache is dropped (events may have been
//! missed) and the subscription is made again.

use std::sync::Arc;
use std::time::Duration;

use bus::amqp::AmqpConnection;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
use schemas::integrations::{ApiKeyChange, ApiKeyChanged, IntegrationActiveChanged, IntegrationRevoked};
use schemas::{AnyMessage, Message, routing};
use tokio::sync::oneshot;

use crate::edge::partner::auth::KeyCache;
use crate::edge::portal::machine_tokens::Cutoffs;

/// Bindings for the events of every tenant: `*.integrations.api_key.changed`, …
fn bindings() -> Vec<String> {
    [ApiKeyChanged::TYPE, IntegrationRevoked::TYPE, IntegrationActiveChanged::TYPE]
        .into_iter()
        .filter_map(|name| schemas::descriptor_of(name).map(routing::every_tenant_event_binding))
        .collect()
}

/// Evicts keys as their change events arrive, until the task is aborted; `ready` hears when the
/// first subscription is in place.
pub(crate) async fn follow(
    amqp: Arc<AmqpConnection>,
    keys: Arc<KeyCache>,
    cutoffs: Arc<Cutoffs>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        if let Err(error) = subscribe(&amqp, &keys, &cutoffs, &mut ready).await {
            tracing::warn!(%error, "key change events interrupted; resubscribing");
        }
        keys.clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn subscribe(
    amqp: &AmqpConnection,
    keys: &KeyCache,
    cutoffs: &Cutoffs,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<(), String> {
    let channel = amqp.channel().await.map_err(|e| e.to_string())?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            Default::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    for binding in bindings() {
        channel
            .queue_bind(
                queue.name().clone(),
                routing::EVENTS_EXCHANGE.into(),
                binding.into(),
                QueueBindOptions::default(),
                Default::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    // Anything cached before the subscription began may have changed unseen.
    keys.clear();
    let (_channel, mut deliveries) =
        amqp.consume(queue.name().as_str(), "edge-key-events", 100).await.map_err(|e| e.to_string())?;
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery.map_err(|e| e.to_string())?;
        match schemas::decode_any(&delivery.data).map(|event| (event.time, event.data)) {
            // A key just created cannot be in any cache yet.
            Ok((_, AnyMessage::ApiKeyChanged(event))) if event.change == ApiKeyChange::Created => {}
            Ok((_, AnyMessage::ApiKeyChanged(event))) => keys.evict(event.key_id),
            Ok((_, AnyMessage::IntegrationRevoked(event))) => cutoffs.cut(event.integration_id, event.revoked_at),
            Ok((at, AnyMessage::IntegrationActiveChanged(event))) if !event.active => {
                cutoffs.cut(event.integration_id, at);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "unreadable key change event; dropping every cached key");
                keys.clear();
            }
        }
        if delivery.ack(BasicAckOptions::default()).await.is_err() {
            return Err("ack failed".into());
        }
    }
    Err("the subscription ended".into())
}
