//! The transactional outbox and its relay, on PostgreSQL and RabbitMQ.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bus::amqp::AmqpConnection;
use bus::outbox::{Destination, Publisher, Relay, enqueue};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use schemas::rides::RidePaused;
use schemas::{Envelope, routing};
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use crate::support::{amqp_url, fresh_database, tenant};

fn paused(ride: Uuid, tenant: &schemas::TenantId) -> Envelope<RidePaused> {
    Envelope::new(
        tenant.clone(),
        "voltbus/test",
        RidePaused {
            ride_id: ride,
            customer_id: Uuid::nil(),
            vehicle_id: Uuid::nil(),
            paused_at: chrono::Utc::now(),
            subaccount_id: Uuid::nil(),
        },
    )
}

async fn unsent(db: &DatabaseConnection) -> u64 {
    bus::outbox::backlog(db).await.unwrap()
}

/// Fifty events over five rides, committed; plus five in a transaction that rolls back.
async fn fill(db: &DatabaseConnection, tenant: &schemas::TenantId) -> HashMap<Uuid, Vec<Uuid>> {
    let rides: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut expected: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let tx = db.begin().await.unwrap();
    for i in 0..50 {
        let envelope = paused(rides[i % 5], tenant);
        expected.entry(rides[i % 5]).or_default().push(envelope.id);
        enqueue(&tx, &envelope, &Destination::event(tenant, &envelope.data)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let rolled_back = db.begin().await.unwrap();
    for _ in 0..5 {
        let envelope = paused(Uuid::now_v7(), tenant);
        enqueue(&rolled_back, &envelope, &Destination::event(tenant, &envelope.data)).await.unwrap();
    }
    rolled_back.rollback().await.unwrap();
    expected
}

async fn bound_queue(amqp: &AmqpConnection, tenant: &schemas::TenantId) -> String {
    let channel = amqp.channel().await.unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            routing::EVENTS_EXCHANGE.into(),
            routing::tenant_events_binding(tenant).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Keep the channel (and so the exclusive queue) alive for the test.
    std::mem::forget(channel);
    queue.name().to_string()
}

async fn receive(amqp: &AmqpConnection, queue: &str, count: usize) -> Vec<(Uuid, Uuid)> {
    let (_channel, mut consumer) = amqp.consume(queue, "outbox-test", 100).await.unwrap();
    let mut got = Vec::new();
    while got.len() < count {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("all relayed events arrive")
            .unwrap()
            .unwrap();
        let envelope = Envelope::<RidePaused>::decode(&delivery.data).unwrap();
        got.push((envelope.data.ride_id, envelope.id));
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    // Nothing more than expected.
    assert!(tokio::time::timeout(Duration::from_millis(300), consumer.next()).await.is_err(), "no event relayed twice");
    got
}

fn by_ride(received: &[(Uuid, Uuid)]) -> HashMap<Uuid, Vec<Uuid>> {
    let mut map: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (ride, id) in received {
        map.entry(*ride).or_default().push(*id);
    }
    map
}

#[tokio::test]
async fn relays_committed_rows_once_in_aggregate_order() {
    let db = fresh_database().await;
    let amqp = Arc::new(AmqpConnection::connect(&amqp_url(), "voltbus-test-relay").await.unwrap());
    amqp.declare_exchanges().await.unwrap();
    let tenant = tenant();
    let queue = bound_queue(&amqp, &tenant).await;
    let expected = fill(&db, &tenant).await;
    assert_eq!(unsent(&db).await, 50, "rolled-back rows never reach the outbox");

    let relay = Relay::new(db.clone(), Publisher { amqp: Some(amqp.clone()), ..Publisher::default() }, 500);
    let mut total = 0;
    loop {
        let sent = relay.relay_once().await.unwrap();
        if sent == 0 {
            break;
        }
        total += sent;
    }
    assert_eq!(total, 50);
    assert_eq!(unsent(&db).await, 0);
    assert_eq!(by_ride(&receive(&amqp, &queue, 50).await), expected);
}

#[tokio::test]
async fn concurrent_relays_do_not_double_send_or_reorder() {
    let db = fresh_database().await;
    let amqp = Arc::new(AmqpConnection::connect(&amqp_url(), "voltbus-test-relay").await.unwrap());
    amqp.declare_exchanges().await.unwrap();
    let tenant = tenant();
    let queue = bound_queue(&amqp, &tenant).await;
    let expected = fill(&db, &tenant).await;

    let relays: Vec<_> = (0..3)
        .map(|_| Relay::new(db.clone(), Publisher { amqp: Some(amqp.clone()), ..Publisher::default() }, 7))
        .collect();
    let mut handles = Vec::new();
    for relay in relays {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let mut sent = 0;
            for _ in 0..500 {
                sent += relay.relay_once().await.unwrap();
                if unsent(&db).await == 0 {
                    break;
                }
            }
            sent
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    assert_eq!(total, 50, "every row sent by exactly one relay");
    assert_eq!(by_ride(&receive(&amqp, &queue, 50).await), expected);
}

/// An event nobody subscribes to is done once the broker has it: it must not block the outbox.
#[tokio::test]
async fn an_event_without_subscribers_is_relayed_not_retried() {
    let db = fresh_database().await;
    let tenant = tenant();
    let amqp = Arc::new(AmqpConnection::connect(&amqp_url(), "voltbus-test").await.unwrap());
    amqp.declare_exchanges().await.unwrap();
    let tx = db.begin().await.unwrap();
    let envelope = paused(Uuid::now_v7(), &tenant);
    enqueue(&tx, &envelope, &Destination::event(&tenant, &envelope.data)).await.unwrap();
    tx.commit().await.unwrap();
    let relay = Relay::new(db.clone(), Publisher { amqp: Some(amqp.clone()), ..Publisher::default() }, 10);
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(unsent(&db).await, 0);

    // The embedded transport, with no binding for the event, the same.
    let embedded = bus::embedded::EmbeddedBus::new(db.clone());
    let tx = db.begin().await.unwrap();
    let envelope = paused(Uuid::now_v7(), &tenant);
    enqueue(&tx, &envelope, &Destination::event(&tenant, &envelope.data)).await.unwrap();
    tx.commit().await.unwrap();
    let relay = Relay::new(db.clone(), Publisher { embedded: Some(embedded), ..Publisher::default() }, 10);
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(unsent(&db).await, 0);
}
