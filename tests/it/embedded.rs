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

/// The partner API on the embedded default: keys through the in-process bus, stored in SQLite.
#[tokio::test]
async fn partner_keys_work_on_the_embedded_default() {
    use crate::support::request;
    use serde_json::json;

    let settings = embedded_settings();
    let (admin, _) = voltbus::create_admin_key(&settings, "acme", "admin").await.unwrap();
    let running = voltbus::start(settings).await.unwrap();
    let addr = running.addr;
    let body = json!({ "name": "reader", "bundle": "CLIENT_ACCESS" }).to_string();
    let (status, created, _) = request(
        addr,
        "POST",
        "/api/partner/v1/api-keys",
        &[("x-partner-api-key", &admin), ("idempotency-key", "k1")],
        Some(&body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, me, _) = request(addr, "GET", "/api/partner/v1/me", &[("x-partner-api-key", &key)], None).await;
    assert_eq!((status, me["data"]["organization_id"].clone()), (200, json!("acme")), "{me}");
    assert_eq!(me["data"]["key"]["permissions"].as_array().unwrap().len(), 6);
    let mut logged = serde_json::Value::Null;
    for _ in 0..100 {
        logged = request(
            addr,
            "GET",
            &format!("/api/partner/v1/api-keys/{id}/requests"),
            &[("x-partner-api-key", &admin)],
            None,
        )
        .await
        .1;
        if logged["pagination"]["total"] == 1 && logged["data"].as_array().is_some_and(|d| d.len() == 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(logged["data"][0]["route"], "/api/partner/v1/me", "{logged}");
    running.stop().await.unwrap();
}
