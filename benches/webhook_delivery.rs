//! Webhook deliveries under load, on this machine's PostgreSQL and RabbitMQ, to a local receiver
//! (a hyper server answering 200 at once) on the same 2 cores:
//!
//! 1. latency: `ride.ended` events published on RabbitMQ at a fixed rate (default 500/s); for each,
//!    the time from its scheduled publish to the signed delivery's arrival at the receiver;
//! 2. throughput: a burst of events (default 20,000) published as fast as the broker confirms
//!    them; signed deliveries received per second, first publish to last delivery.
//!
//! `cargo bench --bench webhook_delivery`; `BENCH_SECONDS` (default 10), `BENCH_RATE` (500),
//! `BENCH_EVENTS` (20000), `BENCH_CONCURRENCY` (attempts to the endpoint at once; the deployment
//! default, 8). Figures go to stdout and to `target/bench-webhooks.txt`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use schemas::rides::RideEnded;
use schemas::{Envelope, TenantId, routing};

mod support;

use support::{BenchPlatform, connect, number, percentile, request, send};

/// What the receiver saw: arrivals by event id, and how many requests in all.
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    count: AtomicU64,
}

async fn receiver(arrivals: Arc<Arrivals>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let now = Instant::now();
                    if let Some(id) = request.headers().get("webhook-id").and_then(|v| v.to_str().ok()) {
                        arrivals.at.lock().expect("lock").insert(id.to_owned(), now);
                    }
                    arrivals.count.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok")))) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn ride_ended(tenant: &TenantId) -> Envelope<RideEnded> {
    let data = serde_json::json!({
        "ride_id": uuid::Uuid::now_v7(), "customer_id": uuid::Uuid::now_v7(), "customer_number": 12345,
        "vehicle_id": uuid::Uuid::now_v7(), "vehicle_number": "V001",
        "start_time": "2025-01-15T10:00:00Z", "end_time": "2025-01-15T10:30:00Z", "duration_minutes": 30,
        "distance_km": 5.2,
        "pricing": { "total_cents": 850, "unlock_cents": 100, "time_cents": 750, "distance_cents": 0,
                     "discount_cents": 0, "currency": "EUR" },
        "payment_status": "paid", "subaccount_id": uuid::Uuid::now_v7(),
    });
    Envelope::new(tenant.clone(), "bench/rides", serde_json::from_value(data).expect("ride.ended"))
}

fn event_id(envelope: &Envelope<RideEnded>) -> String {
    format!("evt_{}", envelope.id.simple())
}

async fn wait_for(arrivals: &Arrivals, count: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while arrivals.count.load(Ordering::Relaxed) < count {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let seconds = number("BENCH_SECONDS", 10);
    let rate = number("BENCH_RATE", 500);
    let events = number("BENCH_EVENTS", 20_000);
    let concurrency =
        number("BENCH_CONCURRENCY", voltbus::Settings::default().webhooks.concurrency_per_endpoint as u64);
    let platform = BenchPlatform::start(|s| {
        s.webhooks.allow_hosts = vec!["127.0.0.1".into()];
        s.webhooks.concurrency_per_endpoint = usize::try_from(concurrency).expect("BENCH_CONCURRENCY");
    })
    .await;
    let arrivals = Arc::new(Arrivals::default());
    let target = receiver(Arc::clone(&arrivals)).await;
    let (admin_key, _) = voltbus::create_admin_key(&platform.settings, "bench", "bench").await.expect("admin key");
    let endpoint = serde_json::json!({ "url": format!("http://{target}/hooks"), "events": ["ride.ended"] });
    let mut sender = connect(platform.running.addr).await;
    let create = request(
        "POST",
        platform.running.addr,
        "/api/partner/v1/webhooks",
        &[("x-partner-api-key", admin_key)],
        Some(endpoint.to_string()),
    );
    let (status, body) = send(&mut sender, create).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let url = platform.settings.amqp.url.clone().expect("amqp url");
    let amqp = Arc::new(bus::amqp::AmqpConnection::connect(&url, "bench-publisher").await.expect("RabbitMQ"));
    let tenant = TenantId::new("bench").expect("tenant");

    // 1. Latency at a fixed rate, from each event's scheduled publish time.
    let total = rate * seconds;
    let interval = Duration::from_secs(1) / u32::try_from(rate).expect("rate");
    let start = Instant::now() + Duration::from_millis(100);
    let scheduled: Vec<(String, Instant)> = futures_util::stream::iter(0..total)
        .map(|i| {
            let (amqp, tenant) = (Arc::clone(&amqp), tenant.clone());
            async move {
                let at = start + interval * u32::try_from(i).expect("count");
                tokio::time::sleep_until(at.into()).await;
                let event = ride_ended(&tenant);
                let key = routing::event_key_of(&tenant, &event.data);
                amqp.publish(routing::EVENTS_EXCHANGE, &key, &event).await.expect("published");
                (event_id(&event), at)
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    assert!(wait_for(&arrivals, total, Duration::from_secs(120)).await, "every paced event delivered");
    let mut latencies: Vec<Duration> = {
        let at = arrivals.at.lock().expect("lock");
        scheduled.iter().filter_map(|(id, sent)| at.get(id).map(|got| got.saturating_duration_since(*sent))).collect()
    };
    latencies.sort();

    // 2. Throughput: a burst, as fast as the broker confirms.
    let before = arrivals.count.load(Ordering::Relaxed);
    let burst = Instant::now();
    futures_util::stream::iter(0..events)
        .map(|_| {
            let (amqp, tenant) = (Arc::clone(&amqp), tenant.clone());
            async move {
                let event = ride_ended(&tenant);
                let key = routing::event_key_of(&tenant, &event.data);
                amqp.publish(routing::EVENTS_EXCHANGE, &key, &event).await.expect("published")
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    let published = burst.elapsed();
    assert!(wait_for(&arrivals, before + events, Duration::from_secs(600)).await, "every burst event delivered");
    let delivered = burst.elapsed();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "webhook deliveries to a local receiver, one endpoint ({concurrency} at once), load generator on the same 2 cores"
    );
    let _ = writeln!(
        report,
        "  published at {rate}/s: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (publish to receipt, {} events)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len(),
    );
    let _ = writeln!(
        report,
        "  burst of {events}: {:.0} signed deliveries/s (published in {:.1} s, all delivered after {:.1} s)",
        events as f64 / delivered.as_secs_f64(),
        published.as_secs_f64(),
        delivered.as_secs_f64(),
    );
    print!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-webhooks.txt"), &report);
    platform.stop().await;
}
