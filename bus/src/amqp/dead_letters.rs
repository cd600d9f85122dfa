//! Operator tools for a consumer group's dead-letter queue: list what is there and why, and
//! replay one message or all of them back to the work queue they came from.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::{AmqpConnection, headers};
use crate::{BusError, DeadLetter, QueueDepth};

fn describe(delivery: &lapin::message::Delivery) -> DeadLetter {
    let p = &delivery.properties;
    // Messages the broker dead-lettered itself (delivery limit) carry its `x-first-death-*` headers.
    let broker_reason = headers::text(p, "x-first-death-reason");
    DeadLetter {
        message_id: p.message_id().as_ref().map(|s| s.to_string()),
        type_name: p.kind().as_ref().map(|s| s.to_string()),
        tenant: headers::text(p, "tenant"),
        error_kind: headers::text(p, headers::ERROR_KIND).or_else(|| broker_reason.clone()),
        reason: headers::text(p, headers::REASON).or(broker_reason),
        source_queue: headers::text(p, headers::SOURCE_QUEUE).or_else(|| headers::text(p, "x-first-death-queue")),
        attempts: headers::number(p, headers::ATTEMPT),
        failed_at: headers::text(p, headers::FAILED_AT),
        body_preview: String::from_utf8_lossy(&delivery.data[..delivery.data.len().min(200)]).into_owned(),
    }
}

/// How many messages wait in `queue`.
async fn depth(channel: &lapin::Channel, queue: &str) -> Result<u32, BusError> {
    declared(channel, queue).await.map(|q| q.message_count())
}

/// `queue` as the broker has it (a passive declare: a missing queue is an error, and closes the channel).
async fn declared(channel: &lapin::Channel, queue: &str) -> Result<lapin::Queue, BusError> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .map_err(|e| BusError::Topology { what: format!("queue {queue}"), reason: e.to_string() })
}

/// The depth and consumers of each of `queues`; `None` for a queue the broker does not have.
pub async fn queue_depths(connection: &AmqpConnection, queues: &[String]) -> Result<Vec<Option<QueueDepth>>, BusError> {
    let mut channel = connection.channel().await?;
    let mut depths = Vec::with_capacity(queues.len());
    for queue in queues {
        match declared(&channel, queue).await {
            Ok(q) => depths.push(Some(QueueDepth {
                messages: u64::from(q.message_count()),
                consumers: Some(u64::from(q.consumer_count())),
            })),
            Err(error) => {
                tracing::debug!(%error, queue, "no depth for a queue");
                depths.push(None);
                // The failed passive declare closed the channel.
                channel = connection.channel().await?;
            }
        }
    }
    let _ = channel.close(200, "counted".into()).await;
    Ok(depths)
}

/// Lists up to `limit` messages of a dead-letter queue without removing them.
pub async fn list_dead_letters(
    connection: &AmqpConnection,
    queue: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, BusError> {
    let channel = connection.channel().await?;
    let total = depth(&channel, queue).await?;
    let mut found = Vec::new();
    for _ in 0..total.min(u32::try_from(limit).unwrap_or(u32::MAX)) {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(|e| BusError::Consume { source_name: queue.into(), reason: e.to_string() })?;
        let Some(message) = got else { break };
        found.push(describe(&message.delivery));
    }
    // Everything fetched is still unacked: closing the channel puts it all back.
    let _ = channel.close(200, "listed".into()).await;
    wait_for_depth(connection, queue, total).await;
    Ok(found)
}

/// Moves dead letters back to the queue they came from: the one with `message_id`, or all of them.
/// Each is republished (confirmed) before it is removed, so a failure midway loses nothing.
/// Returns how many were replayed.
pub async fn replay_dead_letters(
    connection: &AmqpConnection,
    queue: &str,
    message_id: Option<&str>,
) -> Result<usize, BusError> {
    let channel = connection.channel().await?;
    let total = depth(&channel, queue).await?;
    let mut replayed = 0;
    // Bounded by the depth at the start, so messages put back are not visited twice.
    for _ in 0..total {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(|e| BusError::Consume { source_name: queue.into(), reason: e.to_string() })?;
        let Some(message) = got else { break };
        let delivery = message.delivery;
        let letter = describe(&delivery);
        if message_id.is_some_and(|id| letter.message_id.as_deref() != Some(id)) {
            continue;
        }
        let Some(target) = letter.source_queue.clone() else {
            tracing::warn!(?letter.message_id, "dead letter without a source queue; left in place");
            continue;
        };
        // A replayed message starts over: fresh attempts, no failure headers.
        let properties = headers::without(
            &delivery.properties,
            &[headers::ATTEMPT, headers::REASON, headers::ERROR_KIND, headers::SOURCE_QUEUE, headers::FAILED_AT],
        );
        match connection.publish_raw("", &target, &delivery.data, properties, true).await {
            Ok(()) => {
                delivery
                    .ack(BasicAckOptions { multiple: false })
                    .await
                    .map_err(|e| BusError::Consume { source_name: queue.into(), reason: e.to_string() })?;
                replayed += 1;
            }
            Err(error) => {
                let _ = delivery.nack(BasicNackOptions { multiple: false, requeue: true }).await;
                return Err(BusError::Consume {
                    source_name: queue.into(),
                    reason: format!("replay to {target} failed: {error}"),
                });
            }
        }
    }
    // Messages skipped (other ids) are still unacked: closing the channel puts them back.
    let _ = channel.close(200, "replayed".into()).await;
    wait_for_depth(connection, queue, total.saturating_sub(u32::try_from(replayed).unwrap_or(u32::MAX))).await;
    Ok(replayed)
}

/// Waits (up to 2 s) until the messages a closed channel held are back in `queue`: a quorum
/// queue requeues them asynchronously, and the next listing or replay must see them.
async fn wait_for_depth(connection: &AmqpConnection, queue: &str, expected: u32) {
    let Ok(channel) = connection.channel().await else { return };
    for _ in 0..100 {
        match depth(&channel, queue).await {
            Ok(now) if now < expected => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            _ => break,
        }
    }
    let _ = channel.close(200, "checked".into()).await;
}
