//! The embedded default: no services configured, everything in process.

use crate::support::{embedded_settings, engine, get_json};

#[tokio::test]
async fn health_reports_embedded_engines() {
    let running = voltbus::start(embedded_settings()).await.unwrap();
    let (status, body, headers) = get_json(running.addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(engine(&body, "database")["kind"], "sqlite");
    assert_eq!(engine(&body, "amqp")["kind"], "embedded");
    assert_eq!(engine(&body, "nats")["kind"], "embedded");
    for role in ["database", "amqp", "nats"] {
        assert_eq!(engine(&body, role)["state"], "up");
    }
    assert!(headers.get("x-request-id").unwrap().to_str().unwrap().starts_with("req_"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_get_the_error_envelope() {
    let running = voltbus::start(embedded_settings()).await.unwrap();
    let (status, body, headers) = get_json(running.addr, "/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["meta"]["request_id"].as_str().unwrap(), headers.get("x-request-id").unwrap().to_str().unwrap());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn embedded_database_survives_a_restart() {
    let settings = embedded_settings();
    let first = voltbus::start(settings.clone()).await.unwrap();
    first.stop().await.unwrap();
    assert!(settings.data_dir.join("voltbus.db").exists());
    // Migrations already applied: a second start on the same file must simply work.
    let second = voltbus::start(settings).await.unwrap();
    let (status, _, _) = get_json(second.addr, "/health").await;
    assert_eq!(status, 200);
    second.stop().await.unwrap();
}
