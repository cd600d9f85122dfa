//! What an operator's monitoring reads: `GET /metrics` in Prometheus text after real traffic
//! (requests, a refused one, messages through RabbitMQ, a webhook that fails once and then
//! arrives), and liveness separate from readiness. Each nextest test is its own process, so the
//! counters seen here are this test's alone.

use std::time::Duration;

use serde_json::json;

use crate::partner::Platform;
use crate::private_rabbit::PrivateRabbit;
use crate::support::{blocking, request_bytes, within};
use crate::webhooks::{Answer, Receiver, create_endpoint, fast_retries};

/// The value of the series `series` (name and labels, exactly as rendered), if present.
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The metrics token the test platform is given.
const METRICS_TOKEN: &str = "metrics-scraper-token";

async fn scrape(platform: &Platform) -> String {
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let (status, body, headers) =
        request_bytes(platform.addr(), "GET", "/metrics", &[("authorization", bearer.as_str())], None).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_count_requests_messages_deliveries_and_refusals_without_naming_anyone() {
    let platform = Platform::start_with(|settings| {
        fast_retries(settings);
        settings.http.metrics_token = Some(METRICS_TOKEN.into());
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    // Without the token, or with another, no metrics.
    for presented in [None, Some("Bearer metrics-scraper-tokem")] {
        let headers: Vec<(&str, &str)> = presented.map(|p| ("authorization", p)).into_iter().collect();
        assert_eq!(request_bytes(platform.addr(), "GET", "/metrics", &headers, None).await.0, 401);
    }
    let receiver = Receiver::start(vec![Answer::Status(500)]).await;
    let endpoint = create_endpoint(&platform, &admin, json!({ "url": receiver.url(), "events": ["ride.ended"] })).await;
    let (status, sent, _) = platform.call(&admin, "POST", &format!("/webhooks/{endpoint}/test"), None).await;
    assert!(status < 300, "{sent}");
    receiver.wait_for(2, Duration::from_secs(15)).await;

    let (_, tight) = platform.create_key(&admin, json!({ "name": "tight", "rate_limits": { "per_minute": 1 } })).await;
    assert_eq!(platform.call(&tight, "GET", "/me", None).await.0, 200);
    assert_eq!(platform.call(&tight, "GET", "/me", None).await.0, 429);

    // The second attempt is settled just after the receiver answered it.
    let mut text = scrape(&platform).await;
    for _ in 0..50 {
        if value_of(&text, r#"voltbus_webhook_deliveries_total{outcome="succeeded"}"#).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape(&platform).await;
    }
    let at_least = |series: &str, floor: f64| {
        let value = value_of(&text, series).unwrap_or_else(|| panic!("no series {series} in\n{text}"));
        assert!(value >= floor, "{series} = {value}, expected at least {floor}");
    };
    at_least(r#"voltbus_webhook_deliveries_total{outcome="failed"}"#, 1.0);
    at_least(r#"voltbus_webhook_deliveries_total{outcome="succeeded"}"#, 1.0);
    at_least(r#"voltbus_webhook_delivery_duration_seconds_count{outcome="succeeded"}"#, 1.0);
    at_least(r#"voltbus_rate_limited_total{limit="caller",window="minute"}"#, 1.0);
    at_least(r#"voltbus_http_requests_total{route="/api/partner/v1/me",method="GET",status="429"}"#, 1.0);
    at_least(
        r#"voltbus_http_requests_total{route="/api/partner/v1/webhooks/{id}/test",method="POST",status="202"}"#,
        1.0,
    );
    at_least(
        r#"voltbus_messages_published_total{transport="amqp",destination="voltbus.commands",outcome="confirmed"}"#,
        1.0,
    );
    at_least(r#"voltbus_messages_consumed_total{queue="voltbus.webhooks"}"#, 1.0);
    at_least(r#"voltbus_messages_consumed_total{queue="voltbus.webhook-deliveries"}"#, 1.0);
    at_least(r#"voltbus_handler_duration_seconds_count{queue="voltbus.webhooks"}"#, 1.0);
    at_least(r#"voltbus_command_stage_duration_seconds_count{stage="confirm"}"#, 1.0);
    at_least(r#"voltbus_command_stage_duration_seconds_count{stage="reply"}"#, 1.0);
    at_least(r#"voltbus_messages_dead_lettered_total{queue="voltbus.webhooks"}"#, 0.0);
    at_least("voltbus_outbox_backlog", 0.0);
    assert!(text.contains("# HELP voltbus_messages_retried_total"), "help texts are rendered");
    // Templates, never ids: nothing in the text names the tenant or its endpoint.
    assert!(!text.contains(&tenant) && !text.contains(&endpoint), "{text}");

    let (live, _, _) = request_bytes(platform.addr(), "GET", "/health/live", &[], None).await;
    let (ready, body, _) = request_bytes(platform.addr(), "GET", "/health/ready", &[], None).await;
    assert_eq!((live, ready), (200, 200), "{}", String::from_utf8_lossy(&body));
    assert_eq!(request_bytes(platform.addr(), "POST", "/metrics", &[], None).await.0, 405);
    platform.stop().await;
}

#[tokio::test]
async fn a_process_with_an_engine_down_is_live_but_not_ready() {
    // A broker that is gone after start: the process still answers, so a supervisor leaves it
    // alone (restarting would not bring RabbitMQ back), but a load balancer stops sending work.
    // Each step bounded and named: one full run hung here until nextest cut it at 300 s (it
    // takes 15 s alone).
    let rabbit = std::sync::Arc::new(within(200, "starting a private RabbitMQ", blocking(PrivateRabbit::start)).await);
    let url = rabbit.url();
    let start = Platform::start_with(|settings| settings.amqp.url = Some(url.into()));
    let platform = within(60, "starting voltbus on it", start).await;
    let stopping = std::sync::Arc::clone(&rabbit);
    within(100, "stopping the private RabbitMQ", blocking(move || stopping.stop())).await;
    let ready = within(30, "readiness turning 503", async {
        let mut ready = 200;
        for _ in 0..100 {
            ready = request_bytes(platform.addr(), "GET", "/health/ready", &[], None).await.0;
            if ready == 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ready
    })
    .await;
    assert_eq!(ready, 503);
    let live = within(10, "liveness", request_bytes(platform.addr(), "GET", "/health/live", &[], None)).await;
    assert_eq!(live.0, 200);
    let booting = std::sync::Arc::clone(&rabbit);
    within(200, "booting the private RabbitMQ again", blocking(move || booting.boot())).await;
    within(60, "stopping voltbus", platform.stop()).await;
}

#[tokio::test]
async fn the_simulator_drives_a_fleet_over_nats_and_rest_and_counts_what_arrives() {
    let nats = crate::private_nats::PrivateNats::start();
    let platform = Platform::start_with(|settings| {
        settings.nats.url = Some(nats.url().into());
        settings.webhooks.allow_hosts = vec!["127.0.0.1".into()];
        settings.mobile.dev_code = Some("0000".into());
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let plan = voltbus::simulation::Plan {
        vehicles: 40,
        chargers: 2,
        rides_per_minute: 120.0,
        report_every: Duration::from_secs(1),
        ride_length: Duration::from_millis(1500),
        commands_per_minute: 60.0,
        duration: Some(Duration::from_secs(6)),
        progress: false,
    };
    let mut settings = platform.settings.clone();
    settings.http.bind = platform.addr();
    let summary = voltbus::simulate(&settings, &tenant, Some(admin), None, plan, std::future::pending()).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());

    assert!(summary.states_published >= 160 && summary.states_failed == 0, "{summary:?}");
    assert!(summary.rides_started >= 5 && summary.rides_ended >= 3, "{summary:?}");
    assert!(summary.charging_started >= 2 && summary.charging_finished >= 2, "{summary:?}");
    assert!(summary.vehicle_commands_succeeded >= 3 && summary.vehicle_commands_failed.is_empty(), "{summary:?}");
    assert!(summary.commands_failed.is_empty(), "{summary:?}");
    assert!(summary.command_p99_ms > 0.0);
    assert_eq!(summary.webhook_duplicates, 0);
    for event in ["ride.started", "ride.ended", "vehicle.status_changed"] {
        assert!(summary.webhook_events.get(event).is_some_and(|n| *n > 0), "no {event}: {summary:?}");
    }
    // What the vehicles reported is their latest state in the database.
    let mut stored = 0;
    for _ in 0..100 {
        let rows = platform.sql("SELECT COUNT(*) AS n FROM vehicle_states").await;
        stored = rows[0].try_get::<i64>("", "n").unwrap();
        if stored == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 40, "every simulated vehicle has a latest state");
    platform.stop().await;
}
