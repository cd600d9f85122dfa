//! Operator tools for a JetStream consumer group's dead letters: list them with their reasons,
//! and replay one or all to the subject they were first published on.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::StreamExt;
use schemas::subjects;

use super::NatsConnection;
use super::consumer::headers;
use crate::{BusError, DeadLetter, QueueDepth};

/// A dead letter and where it sits in the dead-letter stream.
struct Stored {
    sequence: u64,
    letter: DeadLetter,
    headers: HeaderMap,
    payload: bytes::Bytes,
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.as_str().to_owned())
}

async fn read(nats: &NatsConnection, group: &str, limit: usize) -> Result<Vec<Stored>, BusError> {
    let error = |reason: String| BusError::Consume { source_name: subjects::dead_letter_subject(group), reason };
    let stream = nats.jetstream().get_stream(subjects::DEAD_LETTER_STREAM).await.map_err(|e| error(e.to_string()))?;
    // An ephemeral reader that acks nothing: listing leaves the stream as it is.
    let reader = stream
        .create_consumer(pull::Config {
            filter_subject: subjects::dead_letter_subject(group),
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| error(e.to_string()))?;
    let mut batch = reader
        .fetch()
        .max_messages(limit)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .map_err(|e| error(e.to_string()))?;
    let mut found = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| error(e.to_string()))?;
        let sequence = message.info().map(|i| i.stream_sequence).map_err(|e| error(e.to_string()))?;
        let headers = message.headers.clone().unwrap_or_default();
        let letter = DeadLetter {
            message_id: text(&headers, "ce-id"),
            type_name: text(&headers, "ce-type"),
            // The subject the message came on names its tenant (`voltbus.{tenant}.…`), which
            // the sender's own `ce-tenant` header might not.
            tenant: text(&headers, headers::SOURCE_SUBJECT)
                .and_then(|subject| subject.split('.').nth(1).map(str::to_owned))
                .or_else(|| text(&headers, "ce-tenant")),
            error_kind: text(&headers, headers::ERROR_KIND),
            reason: text(&headers, headers::REASON),
            source_queue: text(&headers, headers::SOURCE_SUBJECT),
            attempts: text(&headers, headers::ATTEMPTS).and_then(|a| a.parse().ok()),
            failed_at: text(&headers, headers::FAILED_AT),
            body_preview: String::from_utf8_lossy(&message.payload[..message.payload.len().min(200)]).into_owned(),
        };
        found.push(Stored { sequence, letter, headers, payload: message.payload.clone() });
    }
    Ok(found)
}

/// Lists up to `limit` dead letters of a group without removing them.
pub async fn list_dead_letters(nats: &NatsConnection, group: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
    Ok(read(nats, group, limit).await?.into_iter().map(|s| s.letter).collect())
}

/// Publishes dead letters again on their original subject (one by message id, or all) and removes
/// each from the dead-letter stream once the source stream stored it. Returns how many.
pub async fn replay_dead_letters(
    nats: &NatsConnection,
    group: &str,
    message_id: Option<&str>,
) -> Result<usize, BusError> {
    let error = |reason: String| BusError::Consume { source_name: subjects::dead_letter_subject(group), reason };
    let stream = nats.jetstream().get_stream(subjects::DEAD_LETTER_STREAM).await.map_err(|e| error(e.to_string()))?;
    let mut replayed = 0;
    for stored in read(nats, group, 10_000).await? {
        if message_id.is_some_and(|id| stored.letter.message_id.as_deref() != Some(id)) {
            continue;
        }
        let Some(target) = stored.letter.source_queue.clone() else { continue };
        let mut headers = HeaderMap::new();
        for (name, values) in stored.headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("voltbus-") || name == "Nats-Msg-Id" {
                continue;
            }
            for value in values {
                headers.append(name, value.as_str());
            }
        }
        // A fresh Nats-Msg-Id: the original is still inside the duplicate window of a recent failure.
        headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("replay-{}", uuid::Uuid::now_v7()));
        nats.publish_stored(target, headers, stored.payload).await.map_err(|e| error(e.to_string()))?;
        stream.delete_message(stored.sequence).await.map_err(|e| error(e.to_string()))?;
        replayed += 1;
    }
    Ok(replayed)
}

/// A JetStream group's backlog: messages its durable consumer has yet to be delivered, plus those
/// delivered and not yet acknowledged; `consumers` is the pull requests waiting (idle instances).
pub async fn group_depth(nats: &NatsConnection, stream: &str, group: &str) -> Result<QueueDepth, BusError> {
    let error = |reason: String| BusError::Consume { source_name: group.to_owned(), reason };
    let stream = nats.jetstream().get_stream(stream).await.map_err(|e| error(e.to_string()))?;
    let info = stream.consumer_info(group).await.map_err(|e| error(e.to_string()))?;
    Ok(QueueDepth {
        messages: info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or(0),
        consumers: Some(u64::try_from(info.num_waiting).unwrap_or(0)),
    })
}

/// How many dead letters a JetStream group has.
pub async fn dead_letter_count(nats: &NatsConnection, group: &str) -> Result<u64, BusError> {
    let subject = subjects::dead_letter_subject(group);
    let error = |reason: String| BusError::Consume { source_name: subject.clone(), reason };
    let stream = nats.jetstream().get_stream(subjects::DEAD_LETTER_STREAM).await.map_err(|e| error(e.to_string()))?;
    let mut counts = stream.info_with_subjects(&subject).await.map_err(|e| error(e.to_string()))?;
    let mut total = 0u64;
    while let Some(entry) = counts.next().await {
        let (_, count) = entry.map_err(|e| error(e.to_string()))?;
        total += u64::try_from(count).unwrap_or(0);
    }
    Ok(total)
}
