//! RabbitMQ: publish with confirms, consume with manual ack, and the traps of BUS-NOTES.

use std::time::Duration;

use bus::PublishError;
use bus::amqp::AmqpConnection;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use schemas::rides::RideStarted;
use schemas::{AnyMessage, Envelope, routing};

use crate::support::{amqp_url, tenant};

fn ride_started() -> RideStarted {
    RideStarted {
        ride_id: uuid::Uuid::now_v7(),
        customer_id: uuid::Uuid::now_v7(),
        customer_number: Some(12345),
        vehicle_id: uuid::Uuid::now_v7(),
        vehicle_number: Some("V001".into()),
        start_time: chrono::Utc::now(),
        subaccount_id: uuid::Uuid::now_v7(),
    }
}

/// A private queue bound to one tenant's events only, and the channel that keeps it alive.
async fn tenant_queue(amqp: &AmqpConnection, tenant: &schemas::TenantId) -> (lapin::Channel, String) {
    let channel = amqp.channel().await.unwrap();
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare("".into(), options, FieldTable::default()).await.unwrap();
    let binding = routing::tenant_events_binding(tenant);
    channel
        .queue_bind(
            queue.name().clone(),
            routing::EVENTS_EXCHANGE.into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (channel, queue.name().to_string())
}

#[tokio::test]
async fn publish_confirm_consume_ack_round_trip() {
    let amqp = AmqpConnection::connect(&amqp_url(), "voltbus-test").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let tenant = tenant();

    let (_channel, queue) = tenant_queue(&amqp, &tenant).await;

    let envelope = Envelope::new(tenant.clone(), "voltbus/test", ride_started());
    amqp.publish(routing::EVENTS_EXCHANGE, &routing::event_key_of(&tenant, &envelope.data), &envelope).await.unwrap();

    let (_consumer_channel, mut consumer) = amqp.consume(&queue, "round-trip", 10).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(delivery.properties.message_id().as_ref().unwrap().as_str(), envelope.id.to_string());
    assert_eq!(delivery.properties.delivery_mode(), &Some(2), "messages are persistent");
    let decoded = bus::amqp::decode(&delivery).unwrap();
    assert_eq!(decoded.tenant, tenant);
    match decoded.data {
        AnyMessage::RideStarted(ride) => assert_eq!(ride, envelope.data),
        other => panic!("got {other:?}"),
    }
    assert!(delivery.ack(BasicAckOptions::default()).await.unwrap(), "ack must reach the broker");
    amqp.close().await;
}

#[tokio::test]
async fn an_unroutable_publish_is_an_error_not_a_silent_drop() {
    // A virtual host of its own: on the shared one, a platform started by another test binds
    // every tenant's webhook events (`*.rides.ride.started`).
    let vhost = crate::support::fresh_vhost();
    let amqp = AmqpConnection::connect(&vhost, "voltbus-test").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    // No queue is bound for this fresh tenant: with `mandatory` the broker returns the message,
    // and RabbitMQ still acks the publish (BUS-NOTES), so only the return tells.
    let tenant = tenant();
    let envelope = Envelope::new(tenant.clone(), "voltbus/test", ride_started());
    let result =
        amqp.publish(routing::EVENTS_EXCHANGE, &routing::event_key_of(&tenant, &envelope.data), &envelope).await;
    match result {
        Err(PublishError::Returned { reply_code, .. }) => assert_eq!(reply_code, 312),
        other => panic!("expected a returned message, got {other:?}"),
    }
    amqp.close().await;
    crate::support::drop_vhost(&vhost);
}

#[tokio::test]
async fn many_publishes_in_flight_each_get_their_own_confirm() {
    let amqp = AmqpConnection::connect(&amqp_url(), "voltbus-test").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let tenant = tenant();
    let (channel, queue) = tenant_queue(&amqp, &tenant).await;
    let envelopes: Vec<_> = (0..200).map(|_| Envelope::new(tenant.clone(), "voltbus/test", ride_started())).collect();
    let key = routing::event_key_of(&tenant, &envelopes[0].data);
    let results =
        futures_util::future::join_all(envelopes.iter().map(|e| amqp.publish(routing::EVENTS_EXCHANGE, &key, e))).await;
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    let declared = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(declared.message_count(), 200, "every confirmed message is in the queue");
    amqp.close().await;
}

#[tokio::test]
async fn a_tenants_subscription_never_sees_another_tenants_events() {
    let amqp = AmqpConnection::connect(&amqp_url(), "voltbus-test").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let (acme, rival) = (tenant(), tenant());
    let mut queues = Vec::new();
    let mut channels = Vec::new();
    for owner in [&acme, &rival] {
        let (channel, queue) = tenant_queue(&amqp, owner).await;
        queues.push(queue);
        // The exclusive queue lives as long as its channel.
        channels.push(channel);
    }
    for owner in [&acme, &rival, &rival] {
        let envelope = Envelope::new(owner.clone(), "voltbus/test", ride_started());
        amqp.publish(routing::EVENTS_EXCHANGE, &routing::event_key_of(owner, &envelope.data), &envelope).await.unwrap();
    }
    let (_channel, mut consumer) = amqp.consume(&queues[0], "isolation", 10).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(bus::amqp::decode(&delivery).unwrap().tenant, acme);
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), consumer.next()).await.is_err(),
        "the rival tenant's events never reach acme's queue"
    );
    amqp.close().await;
}
