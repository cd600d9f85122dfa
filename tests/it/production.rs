//! `serve` pointed at PostgreSQL, RabbitMQ and NATS by configuration.

use crate::support::{amqp_url, embedded_settings, engine, fresh_postgres_database, get_json, nats_url};

#[tokio::test]
async fn health_reports_postgres_rabbitmq_and_nats() {
    let mut settings = embedded_settings();
    settings.database.url = Some(fresh_postgres_database().await);
    settings.amqp.url = Some(amqp_url());
    settings.nats.url = Some(nats_url());
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
