//! NATS: core round trip in binary mode (seed body + `ce-` headers) and JetStream durable publish.

use std::time::Duration;

use bus::nats::NatsConnection;
use futures_util::StreamExt;
use schemas::charging::ChargingProgress;
use schemas::subjects::{self, Channel};
use schemas::{AnyMessage, Currency, Envelope};

use crate::support::{nats_url, tenant};

#[tokio::test]
async fn realtime_round_trip_carries_the_seed_body() {
    let nats = NatsConnection::connect(&nats_url(), "voltbus-test").await.unwrap();
    let tenant = tenant();
    let user = uuid::Uuid::now_v7();
    let subject = subjects::user_channel(&tenant, user, Channel::Charging);
    let mut subscriber = nats.subscribe(subject.clone()).await.unwrap();

    let progress =
        ChargingProgress { energy: 3.5, waiting_time: 12, amount: 2100, currency: Currency::MNT, purchase_id: None };
    let envelope = Envelope::new(tenant.clone(), "voltbus/test", progress).with_subject(user.to_string());
    nats.publish_realtime(subject, &envelope).await.unwrap();

    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await.unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(body["energy"], 3.5);
    assert_eq!(body["waitingTime"], 12);
    assert_eq!(body["amount"], 2100);
    let decoded = bus::nats::decode(&message).unwrap();
    assert_eq!(decoded.id, envelope.id);
    assert_eq!(decoded.tenant, tenant);
    assert!(matches!(decoded.data, AnyMessage::ChargingProgress(_)));
    nats.close().await;
}

#[tokio::test]
async fn durable_publish_is_stored_once_per_message_id() {
    let nats = NatsConnection::connect(&nats_url(), "voltbus-test").await.unwrap();
    nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
    let tenant = tenant();
    let descriptor = schemas::descriptor_of("ride.started").unwrap();
    let subject = subjects::event(&tenant, descriptor);
    let ride = schemas::rides::RideStarted {
        ride_id: uuid::Uuid::now_v7(),
        customer_id: uuid::Uuid::now_v7(),
        customer_number: None,
        vehicle_id: uuid::Uuid::now_v7(),
        vehicle_number: None,
        start_time: chrono::Utc::now(),
        subaccount_id: uuid::Uuid::now_v7(),
    };
    let envelope = Envelope::new(tenant.clone(), "voltbus/test", ride);
    nats.publish_durable(subject.clone(), &envelope).await.unwrap();
    // The same envelope again (a retried publish) is acknowledged as a duplicate, not stored twice.
    nats.publish_durable(subject.clone(), &envelope).await.unwrap();

    let mut stream = nats.jetstream().get_stream(subjects::EVENTS_STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    assert!(info.config.subjects.iter().any(|s| s == "voltbus.*.events.>"));
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: subject.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.unwrap();
    let mut count = 0;
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        assert_eq!(bus::nats::decode(&message).unwrap().id, envelope.id);
        message.ack().await.unwrap();
        count += 1;
    }
    assert_eq!(count, 1, "a duplicate publish must not be stored twice");
    nats.close().await;
}

#[tokio::test]
async fn a_tenants_subject_tree_never_carries_another_tenants_messages() {
    let nats = NatsConnection::connect(&nats_url(), "voltbus-test").await.unwrap();
    let (acme, rival) = (tenant(), tenant());
    let mut acme_everything = nats.subscribe(subjects::tenant_wildcard(&acme)).await.unwrap();
    let user = uuid::Uuid::now_v7();
    let progress =
        ChargingProgress { energy: 1.0, waiting_time: 0, amount: 10, currency: Currency::MNT, purchase_id: None };
    // The same user id under the rival tenant: a different subject tree.
    let rival_message = Envelope::new(rival.clone(), "voltbus/test", progress.clone());
    nats.publish_realtime(subjects::user_channel(&rival, user, Channel::Charging), &rival_message).await.unwrap();
    let acme_message = Envelope::new(acme.clone(), "voltbus/test", progress);
    nats.publish_realtime(subjects::user_channel(&acme, user, Channel::Charging), &acme_message).await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), acme_everything.next()).await.unwrap().unwrap();
    assert_eq!(bus::nats::decode(&message).unwrap().tenant, acme, "the first message on acme's tree is acme's");
    assert!(tokio::time::timeout(Duration::from_millis(300), acme_everything.next()).await.is_err());
    nats.close().await;
}
