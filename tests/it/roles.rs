//! `serve --role`: an `api` process and a `worker` process on one PostgreSQL and one RabbitMQ
//! virtual host, each doing only its part, and together the whole platform.

use std::time::Duration;

use serde_json::json;
use voltbus::Role;

use crate::partner::{Platform, error_code};
use crate::support::{embedded_settings, request, request_bytes, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_process_takes_partners_calls_and_a_worker_process_carries_them_out() {
    let api = within(60, "starting the api process", Platform::start_as(Role::Api, |_| {})).await;
    let (_, admin) = within(30, "creating an organisation", api.organisation()).await;

    // Alone, the api process has nobody to carry out a command: it consumes nothing itself.
    let early = api.call(&admin, "POST", "/api-keys", Some(json!({ "name": "too early" })));
    let (status, body, _) = within(30, "a command with no worker", early).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "UNAVAILABLE", "{body}");

    let worker = within(60, "starting the worker process", api.sibling_as(Role::Worker)).await;
    let carried = api.call(&admin, "POST", "/api-keys", Some(json!({ "name": "through two"})));
    let (status, created, _) = within(30, "a command with a worker", carried).await;
    assert_eq!(status, 201, "the worker's consumers carry out the api's command: {created}");
    let (status, me, _) = within(30, "GET /me on the api", api.call(&admin, "GET", "/me", None)).await;
    assert_eq!(status, 200, "{me}");

    // The worker answers no partner, app, console or charger; health and metrics on both.
    within(60, "the worker's closed doors, health and metrics", async {
        let (status, body, _) = worker.call(&admin, "GET", "/me", None).await;
        assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
        for path in ["/api/v1/user/me", "/admin", "/ocpp/CP-1"] {
            assert_eq!(request_bytes(worker.addr(), "GET", path, &[], None).await.0, 404, "{path}");
        }
        for process in [&api, &worker] {
            let (status, health, _) = request(process.addr(), "GET", "/health", &[], None).await;
            assert_eq!(status, 200, "{health}");
            let (status, metrics, _) = request_bytes(process.addr(), "GET", "/metrics", &[], None).await;
            assert_eq!(status, 200);
            assert!(String::from_utf8_lossy(&metrics).contains("voltbus_http_requests_total"));
        }
    })
    .await;

    // The api's request log reaches the database through the worker.
    within(30, "the api's request log reaching the database", async {
        loop {
            let logged = api.sql("SELECT COUNT(*) AS n FROM api_requests WHERE route = '/api/partner/v1/me'").await;
            if logged[0].try_get::<i64>("", "n").unwrap() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    within(60, "stopping the worker", worker.stop_process()).await;
    within(60, "stopping the api", api.stop()).await;
}

#[tokio::test]
async fn a_role_needs_the_shared_engines() {
    for role in [Role::Api, Role::Worker] {
        let refused = voltbus::start_as(embedded_settings(), role).await.err().expect("refused");
        assert!(refused.to_string().contains("needs amqp.url and a PostgreSQL database.url"), "{refused:#}");
    }
}
