//! Outbound webhooks end to end: a real receiver (a small hyper server on 127.0.0.1) that fails,
//! hangs past the timeout, then recovers; events published on RabbitMQ; the partner API's
//! delivery log, replay and test event; signatures checked with the project's own verifier.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use schemas::rides::RideEnded;
use schemas::{Envelope, TenantId, routing};
use serde_json::{Value, json};

use crate::partner::{Platform, error_code};

/// What the receiver does with request number n (0-based): answer this status, or hang.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Status(u16),
    /// 200 after this long.
    Late(Duration),
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    at: Instant,
    pub(crate) headers: http::HeaderMap,
    body: Bytes,
}

/// A webhook receiver following a script; after the script, it answers 200.
pub(crate) struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) async fn start(script: Vec<Answer>) -> Self {
        Self::closing_idle_after(script, None).await
    }

    /// A receiver that closes a connection idle for `idle` (as Node.js servers do after 5 s).
    async fn closing_idle_after(script: Vec<Answer>, idle: Option<Duration>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let (log, accepted) = (Arc::clone(&got), Arc::clone(&connections));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (log, script) = (Arc::clone(&log), script.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let (log, script) = (Arc::clone(&log), script.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let index = {
                                let mut log = log.lock().unwrap();
                                log.push(Received { at: Instant::now(), headers: parts.headers, body });
                                log.len() - 1
                            };
                            let status = match script.get(index).copied().unwrap_or(Answer::Status(200)) {
                                Answer::Status(status) => status,
                                Answer::Late(after) => {
                                    tokio::time::sleep(after).await;
                                    200
                                }
                                Answer::Hang => {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    200
                                }
                            };
                            let response = http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(format!("answer {index}"))))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let mut builder = http1::Builder::new();
                    if let Some(idle) = idle {
                        // Waiting for the next request's head is the idle time of a kept connection.
                        builder.timer(TokioTimer::new()).header_read_timeout(idle);
                    }
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, got, connections }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.addr.port())
    }

    /// The bodies received so far, as JSON.
    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null)).collect()
    }

    /// Waits until the bodies received satisfy `enough`; all of them.
    pub(crate) async fn wait_for_all(&self, what: &str, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let bodies = self.bodies();
            if enough(&bodies) {
                return bodies;
            }
            assert!(Instant::now() < deadline, "never received {what}; got {bodies:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a delivered body satisfies `found`; every body received by then.
    pub(crate) async fn wait_until(&self, what: &str, found: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_for_all(what, |bodies| bodies.iter().any(&found)).await
    }

    pub(crate) async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= count || Instant::now() > deadline {
                assert!(got.len() >= count, "expected {count} requests, got {}", got.len());
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) fn fast_retries(settings: &mut voltbus::Settings) {
    settings.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    settings.webhooks.timeout_ms = 1000;
    settings.webhooks.retry_schedule_ms = vec![300, 600, 1200, 2400];
    settings.webhooks.scheduler_interval_ms = 50;
}

fn ride_ended() -> RideEnded {
    serde_json::from_value(json!({
        "ride_id": "0192f0c4-5b1e-7c3a-9d2e-1a2b3c4d5e6f",
        "customer_id": "0192f0c4-5b1e-7c3a-9d2e-1a2b3c4d5e70",
        "customer_number": 12345,
        "vehicle_id": "0192f0c4-5b1e-7c3a-9d2e-1a2b3c4d5e71",
        "vehicle_number": "V001",
        "start_time": "2025-01-15T10:00:00Z",
        "end_time": "2025-01-15T10:30:00Z",
        "duration_minutes": 30,
        "distance_km": 5.0,
        "pricing": { "total_cents": 850, "unlock_cents": 100, "time_cents": 750, "distance_cents": 0,
                     "discount_cents": 0, "currency": "EUR" },
        "payment_status": "paid",
        "subaccount_id": "0192f0c4-5b1e-7c3a-9d2e-1a2b3c4d5e72"
    }))
    .unwrap()
}

async fn publish_ride_ended(platform: &Platform, tenant: &str) -> Envelope<RideEnded> {
    let url = platform.settings.amqp.url.clone().unwrap();
    let amqp = bus::amqp::AmqpConnection::connect(&url, "webhook-test").await.unwrap();
    let tenant = TenantId::new(tenant).unwrap();
    let event = Envelope::new(tenant.clone(), "test/rides", ride_ended());
    amqp.publish(routing::EVENTS_EXCHANGE, &routing::event_key_of(&tenant, &event.data), &event).await.unwrap();
    event
}

fn verified(received: &Received, secret: &signatures::Secret) -> Value {
    let now = chrono::Utc::now().timestamp();
    let header = |name: &str| received.headers[name].to_str().unwrap().to_owned();
    signatures::verify(secret, &header("x-voltbus-signature"), &received.body, now, 300).expect("voltbus signature");
    signatures::verify_standard(
        secret,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &header("webhook-signature"),
        &received.body,
        now,
        300,
    )
    .expect("Standard Webhooks signature");
    serde_json::from_slice(&received.body).unwrap()
}

async fn attempts_of(platform: &Platform, key: &str, endpoint: &str, want: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, log, _) = platform.call(key, "GET", &format!("/webhooks/{endpoint}/attempts"), None).await;
        assert_eq!(status, 200, "{log}");
        if log["data"].as_array().unwrap().len() >= want || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deliveries_are_signed_retried_on_schedule_logged_and_replayable() {
    let platform = Platform::start_with(fast_retries).await;
    let (tenant, admin) = platform.organisation().await;
    // 500, then no answer within the 1 s timeout, then 200.
    let receiver = Receiver::start(vec![Answer::Status(500), Answer::Hang]).await;
    let (status, created, _) = platform
        .call(
            &admin,
            "POST",
            "/webhooks",
            Some(json!({ "url": receiver.url(), "events": ["ride.ended"], "headers": { "X-Partner": "p1" },
                         "description": "ops" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let endpoint = created["data"]["id"].as_str().unwrap().to_owned();
    let secret = signatures::Secret::parse(created["data"]["secret"].as_str().unwrap()).unwrap();
    let (_, shown, _) = platform.call(&admin, "GET", &format!("/webhooks/{endpoint}"), None).await;
    assert!(shown["data"].get("secret").is_none(), "the secret is shown at creation only");
    let stored = platform.sql("SELECT secrets FROM webhook_endpoints").await;
    let sealed: String = stored[0].try_get("", "secrets").unwrap();
    assert!(!sealed.contains(secret.expose()), "only the sealed secret is stored");

    let event = publish_ride_ended(&platform, &tenant).await;
    let got = receiver.wait_for(3, Duration::from_secs(15)).await;
    let bodies: Vec<Value> = got.iter().map(|r| verified(r, &secret)).collect();
    let event_id = format!("evt_{}", event.id.simple());
    for (body, received) in bodies.iter().zip(&got) {
        assert_eq!(body["event"], "ride.ended");
        assert_eq!(body["event_id"], event_id.as_str(), "stable across retries");
        assert_eq!(received.headers["webhook-id"], event_id.as_str());
        assert_eq!(received.headers["x-partner"], "p1");
        assert!(received.headers.get("traceparent").is_none(), "no trace context while traces are off");
        assert_eq!(body["data"]["pricing"]["total_cents"], 850);
    }
    // The seed's shape, and JSON.stringify's numbers (5, not 5.0) so its verifier matches.
    assert!(std::str::from_utf8(&got[0].body).unwrap().starts_with(r#"{"event":"ride.ended","event_id":"#));
    assert!(std::str::from_utf8(&got[0].body).unwrap().contains(r#""distance_km":5,"#));
    // The schedule: ~0.3 s after the 500; ~0.6 s after the 1 s timeout (jitter adds up to 20 %).
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(300) && gap1 < Duration::from_secs(3), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(1500) && gap2 < Duration::from_secs(5), "{gap2:?}");

    let log = attempts_of(&platform, &admin, &endpoint, 3).await;
    let attempts = log["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{log}");
    // Newest first.
    assert_eq!((attempts[2]["attempt"].as_u64(), attempts[2]["status_code"].as_u64()), (Some(1), Some(500)));
    assert_eq!(attempts[2]["outcome"], "failed");
    assert_eq!(attempts[2]["response"], "answer 0");
    assert_eq!(attempts[1]["status_code"], Value::Null);
    assert!(attempts[1]["error"].as_str().unwrap().contains("no answer within"), "{}", attempts[1]);
    assert_eq!((attempts[0]["outcome"].as_str(), attempts[0]["status_code"].as_u64()), (Some("succeeded"), Some(200)));
    let (_, failed_only, _) =
        platform.call(&admin, "GET", &format!("/webhooks/{endpoint}/attempts?status=failed"), None).await;
    assert_eq!(failed_only["pagination"]["total"], 2, "{failed_only}");
    let (_, deliveries, _) = platform.call(&admin, "GET", &format!("/webhooks/{endpoint}/deliveries"), None).await;
    let delivery = &deliveries["data"][0];
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_u64()),
        (Some("succeeded"), Some(3)),
        "{deliveries}"
    );
    let (_, by_event, _) =
        platform.call(&admin, "GET", &format!("/webhook-deliveries?event_id={event_id}"), None).await;
    assert_eq!(by_event["pagination"]["total"], 1, "{by_event}");

    // Replay: the same event again, as a new delivery.
    let delivery_id = delivery["id"].as_str().unwrap();
    let (status, replayed, _) =
        platform.call(&admin, "POST", &format!("/webhooks/{endpoint}/deliveries/{delivery_id}/replay"), None).await;
    assert_eq!(status, 202, "{replayed}");
    let got = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(verified(&got[3], &secret)["event_id"], event_id.as_str());

    // The test event.
    let (status, sent, _) = platform.call(&admin, "POST", &format!("/webhooks/{endpoint}/test"), None).await;
    assert_eq!(status, 202, "{sent}");
    let got = receiver.wait_for(5, Duration::from_secs(10)).await;
    let test = verified(&got[4], &secret);
    assert_eq!(
        (test["event"].as_str(), test["event_id"].as_str()),
        (Some("webhook.test"), sent["data"]["event_id"].as_str())
    );

    // Rotation: both secrets sign during the grace period, the new one first.
    let (status, rotated, _) =
        platform.call(&admin, "POST", &format!("/webhooks/{endpoint}/rotate-secret"), Some(json!({}))).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = signatures::Secret::parse(rotated["data"]["secret"].as_str().unwrap()).unwrap();
    platform.call(&admin, "POST", &format!("/webhooks/{endpoint}/test"), None).await;
    let got = receiver.wait_for(6, Duration::from_secs(10)).await;
    verified(&got[5], &new_secret);
    verified(&got[5], &secret);
    platform.stop().await;
}

#[tokio::test]
async fn endpoints_are_guarded_and_private_to_their_tenant() {
    let platform = Platform::start_with(|s| s.webhooks.allow_hosts = vec!["127.0.0.1".into()]).await;
    let (_, admin) = platform.organisation().await;
    let (_, other) = platform.organisation().await;
    for (url, why) in [
        ("http://example.com/x", "https"),
        ("https://10.1.2.3/x", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://[::1]/x", "not a public address"),
        ("https://user:pw@example.com/x", "password"),
    ] {
        let (status, body, _) =
            platform.call(&admin, "POST", "/webhooks", Some(json!({ "url": url, "events": ["ride.ended"] }))).await;
        assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{url}: {body}");
    }
    let bad = [
        json!({ "url": "http://127.0.0.1:9/x", "events": ["ride.exploded"] }),
        json!({ "url": "http://127.0.0.1:9/x", "events": [] }),
        json!({ "url": "http://127.0.0.1:9/x", "events": ["ride.ended"], "headers": { "X-Voltbus-Signature": "x" } }),
        json!({ "url": "http://127.0.0.1:9/x", "events": ["ride.ended"], "rate_limit_per_second": 0 }),
        json!({ "url": "http://127.0.0.1:9/x", "events": ["ride.ended"], "colour": "red" }),
    ];
    for body in bad {
        let (status, answer, _) = platform.call(&admin, "POST", "/webhooks", Some(body.clone())).await;
        assert!(status == 422 || status == 400, "{body}: {answer}");
    }
    let (status, created, _) = platform
        .call(&admin, "POST", "/webhooks", Some(json!({ "url": "http://127.0.0.1:9/x", "events": ["*"] })))
        .await;
    assert_eq!(status, 201, "{created}");
    let endpoint = created["data"]["id"].as_str().unwrap();
    // Another organisation sees nothing of it, and cannot change, test or delete it.
    assert_eq!(platform.call(&other, "GET", &format!("/webhooks/{endpoint}"), None).await.0, 404);
    assert_eq!(platform.call(&other, "GET", "/webhooks", None).await.1["pagination"]["total"], 0);
    assert_eq!(platform.call(&other, "GET", &format!("/webhooks/{endpoint}/attempts"), None).await.0, 404);
    assert_eq!(platform.call(&other, "POST", &format!("/webhooks/{endpoint}/test"), None).await.0, 404);
    assert_eq!(platform.call(&other, "DELETE", &format!("/webhooks/{endpoint}"), None).await.0, 404);
    assert_eq!(platform.call(&admin, "DELETE", &format!("/webhooks/{endpoint}"), None).await.0, 200);
    platform.stop().await;
}

pub(crate) async fn create_endpoint(platform: &Platform, key: &str, body: Value) -> String {
    let (status, created, _) = platform.call(key, "POST", "/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

fn event_ids(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_dead_endpoint_never_delays_another_and_a_rate_limit_uses_no_attempts() {
    // The default 30 s timeout: the dead endpoint's attempts stay in flight for the whole test.
    let platform = Platform::start_with(|s| {
        s.webhooks.allow_hosts = vec!["127.0.0.1".into()];
        s.webhooks.scheduler_interval_ms = 50;
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let dead = Receiver::start(vec![Answer::Hang; 100]).await;
    let healthy = Receiver::start(Vec::new()).await;
    let limited = Receiver::start(Vec::new()).await;
    create_endpoint(&platform, &admin, json!({ "url": dead.url(), "events": ["ride.ended"] })).await;
    create_endpoint(&platform, &admin, json!({ "url": healthy.url(), "events": ["ride.ended"] })).await;
    let slow = json!({ "url": limited.url(), "events": ["ride.ended"], "rate_limit_per_second": 5 });
    let limited_id = create_endpoint(&platform, &admin, slow).await;

    for _ in 0..20 {
        publish_ride_ended(&platform, &tenant).await;
    }
    healthy.wait_for(20, Duration::from_secs(20)).await;
    // Every healthy delivery arrived while the dead endpoint still held its first attempts:
    // it got no more than its concurrency allows, and answered none.
    let held = dead.got.lock().unwrap().len();
    assert!((1..=8).contains(&held), "the dead endpoint holds {held} attempts");
    // Connections are kept: 20 deliveries came over no more connections than attempts at once.
    let connections = healthy.connections.load(Ordering::SeqCst);
    assert!(connections <= 8, "20 deliveries opened {connections} connections");

    // The limited endpoint gets all 20, paced at 5 per second, each on its first attempt.
    let got = limited.wait_for(20, Duration::from_secs(30)).await;
    let spread = got[19].at - got[0].at;
    assert!(spread >= Duration::from_millis(3500), "20 deliveries at 5/s took only {spread:?}");
    let (_, deliveries, _) =
        platform.call(&admin, "GET", &format!("/webhooks/{limited_id}/deliveries?limit=100"), None).await;
    let deliveries = deliveries["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 20);
    for delivery in deliveries {
        assert_eq!(
            (delivery["status"].as_str(), delivery["attempts"].as_u64()),
            (Some("succeeded"), Some(1)),
            "{delivery}"
        );
    }
    platform.stop().await;
}

#[tokio::test]
async fn a_receiver_closing_idle_connections_still_gets_every_delivery_on_its_first_attempt() {
    let platform = Platform::start_with(|s| s.webhooks.allow_hosts = vec!["127.0.0.1".into()]).await;
    let (tenant, admin) = platform.organisation().await;
    let receiver = Receiver::closing_idle_after(Vec::new(), Some(Duration::from_millis(150))).await;
    let endpoint = create_endpoint(&platform, &admin, json!({ "url": receiver.url(), "events": ["ride.ended"] })).await;
    // Each event finds the connection the one before it left, closed by the receiver meanwhile
    // (or about to be): the attempt goes out on a new one, not counted as a failure.
    for sent in 1..=6 {
        publish_ride_ended(&platform, &tenant).await;
        receiver.wait_for(sent, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(if sent % 2 == 0 { 300 } else { 150 })).await;
    }
    let log = attempts_of(&platform, &admin, &endpoint, 6).await;
    let outcomes: Vec<&str> = log["data"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["succeeded"; 6], "{log}");
    assert_eq!(receiver.got.lock().unwrap().len(), 6, "no delivery twice");
    platform.stop().await;
}

#[tokio::test]
async fn an_ordered_endpoint_gets_each_event_after_the_previous_one_finished() {
    let platform = Platform::start_with(fast_retries).await;
    let (tenant, admin) = platform.organisation().await;
    // The first attempt fails: the later events must wait for its retry.
    let receiver = Receiver::start(vec![Answer::Status(500)]).await;
    let body = json!({ "url": receiver.url(), "events": ["ride.ended"], "ordered": true });
    create_endpoint(&platform, &admin, body).await;
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(format!("evt_{}", publish_ride_ended(&platform, &tenant).await.id.simple()));
    }
    let got = receiver.wait_for(4, Duration::from_secs(15)).await;
    assert_eq!(event_ids(&got), vec![sent[0].clone(), sent[0].clone(), sent[1].clone(), sent[2].clone()]);
    platform.stop().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_disabled_over_time_and_its_owner_is_told() {
    let platform = Platform::start_with(|s| {
        fast_retries(s);
        s.webhooks.retry_schedule_ms = vec![200, 400];
        s.webhooks.disable_after_seconds = 3;
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let failing = Receiver::start(vec![Answer::Status(503); 100]).await;
    let flaky = Receiver::start(vec![Answer::Status(500)]).await;
    let owner = Receiver::start(Vec::new()).await;
    let failing_id =
        create_endpoint(&platform, &admin, json!({ "url": failing.url(), "events": ["ride.ended"] })).await;
    let flaky_id = create_endpoint(&platform, &admin, json!({ "url": flaky.url(), "events": ["ride.ended"] })).await;
    let events = ["endpoint.disabled", "message.attempt.exhausted", "message.attempt.recovered"];
    create_endpoint(&platform, &admin, json!({ "url": owner.url(), "events": events })).await;

    // First event: the failing endpoint uses its 3 attempts (exhausted, but not yet failing for
    // 3 s); the flaky one fails once, then recovers.
    let started = Instant::now();
    publish_ride_ended(&platform, &tenant).await;
    let notices = owner.wait_for(2, Duration::from_secs(10)).await;
    let mut kinds: Vec<(String, String)> = notices
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (body["event"].as_str().unwrap().to_owned(), body["data"]["endpoint_id"].as_str().unwrap().to_owned())
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("message.attempt.exhausted".to_owned(), failing_id.clone()),
            ("message.attempt.recovered".to_owned(), flaky_id.clone())
        ]
    );
    assert_eq!(failing.got.lock().unwrap().len(), 3);

    // Judged over time: once it has failed for longer than 3 s, its next failure disables it.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(500)).await;
    publish_ride_ended(&platform, &tenant).await;
    let notices = owner.wait_for(3, Duration::from_secs(10)).await;
    let disabled: Value = serde_json::from_slice(&notices[2].body).unwrap();
    assert_eq!(
        (disabled["event"].as_str(), disabled["data"]["endpoint_id"].as_str()),
        (Some("endpoint.disabled"), Some(failing_id.as_str()))
    );
    let (_, endpoint, _) = platform.call(&admin, "GET", &format!("/webhooks/{failing_id}"), None).await;
    assert_eq!(endpoint["data"]["active"], false, "{endpoint}");
    assert!(endpoint["data"]["disabled_reason"].as_str().unwrap().contains("failing"), "{endpoint}");
    platform.stop().await;
}

#[tokio::test]
async fn attempts_waiting_at_a_restart_are_given_back_and_made_at_once_as_first_attempts() {
    // One attempt at a time to a receiver that takes 300 ms: a burst waits in memory.
    let platform = Platform::start_with(|s| {
        s.webhooks.allow_hosts = vec!["127.0.0.1".into()];
        s.webhooks.concurrency_per_endpoint = 1;
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let receiver = Receiver::start(vec![Answer::Late(Duration::from_millis(300)); 10]).await;
    let endpoint = create_endpoint(&platform, &admin, json!({ "url": receiver.url(), "events": ["ride.ended"] })).await;
    for _ in 0..10 {
        publish_ride_ended(&platform, &tenant).await;
    }
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let restarted = Instant::now();
    let platform = platform.restart().await;
    // Given back at the stop, they are due at once: none waits for its lease (a minute), and
    // none lost the attempt its hand-over had claimed.
    receiver.wait_for(10, Duration::from_secs(20)).await;
    assert!(restarted.elapsed() < Duration::from_secs(30), "the rest came after {:?}", restarted.elapsed());
    // The last answers take 300 ms, then their results are written.
    let deadline = Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let (_, page, _) =
            platform.call(&admin, "GET", &format!("/webhooks/{endpoint}/deliveries?limit=100"), None).await;
        let deliveries = page["data"].as_array().unwrap().clone();
        if deliveries.iter().all(|d| d["status"] != "pending") || Instant::now() > deadline {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(deliveries.len(), 10);
    for delivery in &deliveries {
        let state = (delivery["status"].as_str(), delivery["attempts"].as_u64());
        assert_eq!(state, (Some("succeeded"), Some(1)), "{delivery}");
    }
    assert_eq!(receiver.got.lock().unwrap().len(), 10, "each event once");
    platform.stop().await;
}

#[tokio::test]
async fn deliveries_survive_a_restart_of_voltbus_and_of_the_broker() {
    let rabbit = crate::private_rabbit::PrivateRabbit::start();
    let platform = Platform::start_with(|s| {
        fast_retries(s);
        s.amqp.url = Some(rabbit.url().into());
        s.webhooks.retry_schedule_ms = vec![1000, 1000, 1000, 1000, 1000];
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let receiver = Receiver::start(vec![Answer::Status(500), Answer::Status(500), Answer::Status(500)]).await;
    let endpoint = create_endpoint(&platform, &admin, json!({ "url": receiver.url(), "events": ["ride.ended"] })).await;
    let event = publish_ride_ended(&platform, &tenant).await;

    // Voltbus stops with a retry scheduled and starts again: the retry still comes.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let platform = platform.restart().await;
    receiver.wait_for(2, Duration::from_secs(15)).await;
    // The broker goes away with the next retry due, and comes back.
    rabbit.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbit.boot();
    let got = receiver.wait_for(4, Duration::from_secs(60)).await;
    let id = format!("evt_{}", event.id.simple());
    assert!(event_ids(&got).iter().all(|e| *e == id), "one event, retried");

    let log = attempts_of(&platform, &admin, &endpoint, 4).await;
    let outcomes: Vec<&str> = log["data"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.first(), Some(&"succeeded"), "{log}");
    assert_eq!(outcomes.iter().filter(|o| **o == "failed").count(), 3, "{log}");
    platform.stop().await;
}

/// The Levy Fleets seed's key scopes on the webhook way out (issue 24): an endpoint made by a key
/// of subaccount A receives nothing of subaccount B, whose own endpoint and the organisation's
/// receive all of it; its maker's delivery log, replay and the per-event log show none of it;
/// and a key narrowed later narrows what its endpoint receives.
#[tokio::test]
async fn an_endpoint_made_by_a_subaccount_key_hears_nothing_of_another_subaccount() {
    let platform = Platform::start_with(fast_retries).await;
    let (_, admin) = platform.organisation().await;
    let (fleet_a, fleet_b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let scoped =
        |fleet| json!({ "name": "fleet", "scope": "subaccount", "subaccount_id": fleet, "bundle": "ALL_ACCESS" });
    let (key_a_id, key_a) = platform.create_key(&admin, scoped(fleet_a)).await;
    let (_, key_b) = platform.create_key(&admin, scoped(fleet_b)).await;
    let (to_a, to_b, to_all) =
        (Receiver::start(vec![]).await, Receiver::start(vec![]).await, Receiver::start(vec![]).await);
    let seed_events = json!(consumers::webhooks::EVENT_TYPES);
    let mut endpoints = Vec::new();
    for (key, receiver) in [(&key_a, &to_a), (&key_b, &to_b), (&admin, &to_all)] {
        let body = json!({ "url": receiver.url(), "events": seed_events });
        let (status, created, _) = platform.call(key, "POST", "/webhooks", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        endpoints.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        platform.call(&key_a, "GET", &format!("/webhooks/{}", endpoints[0]), None).await.1["data"]["subaccount_ids"],
        json!([fleet_a])
    );

    // B's partner signs a customer up and runs a ride: five events of B.
    let (_, ride_b) = crate::isolation::ride_in(&platform, &admin, &key_b, fleet_b).await;
    let ended = |b: &Value| b["event"] == "ride.ended" && b["data"]["ride_id"] == ride_b.as_str();
    // Deliveries go out side by side: wait for all five (customer.created, ride.started,
    // vehicle.status_changed twice, ride.ended), not for the last made.
    let all_of_b =
        |bodies: &[Value]| bodies.iter().filter(|b| b["data"]["subaccount_id"] == json!(fleet_b)).count() == 5;
    to_b.wait_for_all("B's five events at B's endpoint", all_of_b).await;
    let everything = to_all.wait_for_all("B's five events at the organisation's endpoint", all_of_b).await;
    // Then A's own: when it has arrived, B's would have too (one fan-out transaction an event).
    let (status, customer, _) = platform.call(&key_a, "POST", "/customers", Some(json!({ "name": "Ana" }))).await;
    assert_eq!(status, 201, "{customer}");
    let customer_a = customer["data"]["id"].clone();
    let heard = to_a.wait_until("A's customer.created", |b| b["data"]["customer_id"] == customer_a).await;
    assert!(heard.iter().all(|b| b["data"]["subaccount_id"] == json!(fleet_a)), "A's endpoint heard B: {heard:#?}");
    let rows = platform
        .sql(&format!("SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{}'", endpoints[0]))
        .await;
    assert_eq!(rows[0].try_get::<i64>("", "n").unwrap(), 1, "one delivery to A's endpoint: its own");

    // What A's key reads: its endpoint and its own deliveries, nothing of B's.
    assert_eq!(platform.call(&key_a, "GET", &format!("/rides/{ride_b}"), None).await.0, 404);
    let (_, listed, _) = platform.call(&key_a, "GET", "/webhooks", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    for (method, path) in [
        ("GET", format!("/webhooks/{}", endpoints[1])),
        ("GET", format!("/webhooks/{}/deliveries", endpoints[1])),
        ("GET", format!("/webhooks/{}/attempts", endpoints[1])),
        ("POST", format!("/webhooks/{}/test", endpoints[1])),
        ("DELETE", format!("/webhooks/{}", endpoints[2])),
    ] {
        let (status, body, _) = platform.call(&key_a, method, &path, None).await;
        assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{method} {path}");
    }
    let since = json!({ "since": "2020-01-01T00:00:00Z" });
    let (status, _, _) =
        platform.call(&key_a, "POST", &format!("/webhooks/{}/replay", endpoints[2]), Some(since)).await;
    assert_eq!(status, 404, "the organisation's endpoint is beyond A's key");
    let ride_event = everything.iter().find(|b| ended(b)).unwrap()["event_id"].as_str().unwrap().to_owned();
    let (_, per_event, _) =
        platform.call(&key_a, "GET", &format!("/webhook-deliveries?event_id={ride_event}"), None).await;
    assert_eq!(per_event["data"], json!([]), "{per_event}");
    let (_, per_event, _) =
        platform.call(&admin, "GET", &format!("/webhook-deliveries?event_id={ride_event}"), None).await;
    assert_eq!(per_event["data"].as_array().unwrap().len(), 2, "to B's endpoint and the organisation's: {per_event}");

    // A's key loses customers:read: its endpoint stops hearing customers at once.
    let narrowed = json!({ "permissions": ["rides:read", "vehicles:read", "webhooks:read", "webhooks:write"] });
    let (status, _, _) = platform.call(&admin, "PATCH", &format!("/api-keys/{key_a_id}"), Some(narrowed)).await;
    assert_eq!(status, 200);
    let signed_up = json!({ "name": "Bea", "subaccount_id": fleet_a });
    let (_, customer, _) = platform.call(&admin, "POST", "/customers", Some(signed_up)).await;
    let later = customer["data"]["id"].clone();
    to_all
        .wait_until("A's second customer.created at the organisation's endpoint", |b| b["data"]["customer_id"] == later)
        .await;
    let rows = platform
        .sql(&format!("SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{}'", endpoints[0]))
        .await;
    assert_eq!(rows[0].try_get::<i64>("", "n").unwrap(), 1, "nothing more to the narrowed key's endpoint");
    platform.stop().await;
}

/// Two ways an endpoint could outgrow what its callers read (issue 24's review): a key that may
/// change an endpoint but reads less than its maker points it at itself with `events: ["*"]`, and
/// receives no more than that key reads; and an event fanned out before its endpoint's maker was
/// narrowed is not sent on its later attempts.
#[tokio::test]
async fn an_endpoint_receives_no_more_than_who_changed_it_reads_nor_retries_what_its_maker_no_longer_reads() {
    let platform = Platform::start_with(|s| {
        fast_retries(s);
        // Time to narrow the key between the first attempt and the second.
        s.webhooks.retry_schedule_ms = vec![2_000, 2_000, 2_000, 2_000];
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let everything = Receiver::start(vec![]).await;
    let body = json!({ "url": everything.url(), "events": ["*"] });
    let (_, control, _) = platform.call(&admin, "POST", "/webhooks", Some(body)).await;
    assert!(control["data"]["id"].is_string(), "{control}");

    // The admin's endpoint for rides; a key reading rides only re-points it, for everything.
    let first = Receiver::start(vec![]).await;
    let (_, made, _) =
        platform.call(&admin, "POST", "/webhooks", Some(json!({ "url": first.url(), "events": ["ride.ended"] }))).await;
    let endpoint = made["data"]["id"].as_str().unwrap().to_owned();
    let rides_only = json!({ "name": "rides", "permissions": ["rides:read", "webhooks:read", "webhooks:write"] });
    let (_, rider) = platform.create_key(&admin, rides_only).await;
    let moved = Receiver::start(vec![]).await;
    let change = json!({ "url": moved.url(), "events": ["*"] });
    let (status, changed, _) = platform.call(&rider, "PATCH", &format!("/webhooks/{endpoint}"), Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    let (_, customer, _) = platform.call(&admin, "POST", "/customers", Some(json!({ "name": "Ana" }))).await;
    let customer = customer["data"]["id"].clone();
    everything.wait_until("the customer.created", |b| b["data"]["customer_id"] == customer).await;
    let ride = publish_ride_ended(&platform, &tenant).await;
    let heard =
        moved.wait_until("the ride.ended", |b| b["event_id"] == consumers::webhooks::messages::event_id(ride.id)).await;
    assert!(
        heard.iter().all(|b| b["event"] == "ride.ended"),
        "the re-pointed endpoint heard more than rides: {heard:#?}"
    );

    // A key of every subaccount makes an endpoint that fails; the key loses the ride's
    // subaccount after the first attempt: the retries are not sent.
    let failing = Receiver::start(vec![Answer::Status(500); 100]).await;
    let (key_id, key) = platform.create_key(&admin, json!({ "name": "fleets", "bundle": "ALL_ACCESS" })).await;
    let (_, made, _) =
        platform.call(&key, "POST", "/webhooks", Some(json!({ "url": failing.url(), "events": ["ride.ended"] }))).await;
    let failing_endpoint = made["data"]["id"].as_str().unwrap().to_owned();
    publish_ride_ended(&platform, &tenant).await;
    failing.wait_for(1, Duration::from_secs(10)).await;
    let elsewhere = json!({ "allowed_subaccount_ids": [uuid::Uuid::now_v7()] });
    let (status, _, _) = platform.call(&admin, "PATCH", &format!("/api-keys/{key_id}"), Some(elsewhere)).await;
    assert_eq!(status, 200);
    let path = format!("/webhooks/{failing_endpoint}/attempts");
    let attempts = loop {
        let (_, attempts, _) = platform.call(&admin, "GET", &path, None).await;
        let list = attempts["data"].as_array().unwrap().clone();
        if list.iter().any(|a| a["outcome"] == "gave_up") {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0]["error"], "the endpoint's maker no longer reads this event", "{attempts:#?}");
    assert_eq!(failing.got.lock().unwrap().len(), 1, "the second attempt was not sent");
    platform.stop().await;
}
