//! `serve` pointed at PostgreSQL, RabbitMQ and NATS by configuration.

use crate::support::{amqp_url, embedded_settings, engine, fresh_postgres_database, get_json, nats_url};

#[tokio::test]
async fn health_reports_postgres_rabbitmq_and_nats() {
    let mut settings = embedded_settings();
    settings.database.url = Some(fresh_postgres_database().await.into());
    settings.amqp.url = Some(amqp_url().into());
    settings.nats.url = Some(nats_url().into());
    let running = voltbus::start(settings).await.unwrap();
    let (status, body, _) = get_json(running.addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(engine(&body, "database")["kind"], "postgresql");
    assert_eq!(engine(&body, "amqp")["kind"], "rabbitmq");
    assert_eq!(engine(&body, "nats")["kind"], "nats");
    let detail = engine(&body, "amqp")["detail"].as_str().unwrap();
    assert!(!detail.contains("guest:guest"), "credentials leaked into /health: {detail}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_broker_that_is_not_there_stops_start_up_with_a_clear_error() {
    let mut settings = embedded_settings();
    // Nothing listens on port 1.
    settings.amqp.url = Some("amqp://guest:guest@127.0.0.1:1/%2f".into());
    let error = voltbus::start(settings).await.err().expect("start must fail");
    let text = format!("{error:#}");
    assert!(text.contains("rabbitmq") && text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("guest:guest"), "credentials leaked: {text}");
}

#[tokio::test]
async fn serve_relays_the_outbox_to_rabbitmq() {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
    use schemas::rides::RidePaused;

    let database_url = fresh_postgres_database().await;
    let mut settings = embedded_settings();
    settings.database.url = Some(database_url.clone().into());
    settings.amqp.url = Some(amqp_url().into());
    let running = voltbus::start(settings).await.unwrap();

    let tenant = crate::support::tenant();
    let amqp = bus::amqp::AmqpConnection::connect(&amqp_url(), "voltbus-test").await.unwrap();
    let channel = amqp.channel().await.unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            schemas::routing::EVENTS_EXCHANGE.into(),
            schemas::routing::tenant_events_binding(&tenant).into(),
            QueueBindOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();

    // A handler's transaction commits an event into the outbox; the running service publishes it.
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let event = schemas::Envelope::new(
        tenant.clone(),
        "voltbus/test",
        RidePaused {
            ride_id: uuid::Uuid::now_v7(),
            customer_id: uuid::Uuid::now_v7(),
            vehicle_id: uuid::Uuid::now_v7(),
            paused_at: chrono::Utc::now(),
            subaccount_id: uuid::Uuid::now_v7(),
        },
    );
    bus::outbox::enqueue(&db, &event, &bus::outbox::Destination::event(&tenant, &event.data)).await.unwrap();

    let (_consumer_channel, mut consumer) = amqp.consume(queue.name().as_str(), "relay-test", 10).await.unwrap();
    let delivery =
        tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(schemas::Envelope::<RidePaused>::decode(&delivery.data).unwrap().id, event.id);
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    running.stop().await.unwrap();
}
