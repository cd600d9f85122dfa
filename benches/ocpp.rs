//! Thousands of OCPP 1.6J charge points on one `voltbus serve` process (the release binary, its
//! own process on this machine's PostgreSQL and RabbitMQ and a nats-server of the bench's own).
//!
//! - `BENCH_CHARGERS` (default 10,000) chargers are registered (straight into the database, one
//!   password for all), then connected from this process, `BENCH_CONNECTING` (200) at a time;
//! - each boots, reports `Available`, then sends MeterValues every 10 s and a Heartbeat every 30 s
//!   (the interval voltbus gives at boot), at a random offset, and answers voltbus's CALLs;
//! - after a warm-up of 10 s, for `BENCH_SECONDS` (60): connections held, voltbus's RSS per
//!   connection (its RSS connected minus its RSS before, over the connections), CALLs answered a
//!   second, and p50/p99 from a charge point's CALL to voltbus's CALLRESULT (which voltbus sends
//!   once JetStream stored what the CALL reported).
//!
//! `cargo bench --bench ocpp`; figures go to stdout and to `target/bench-ocpp.txt`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

mod support;

use support::{Served, number, percentile};

const PASSWORD: &str = "bench-password-of-every-charger-0000000";

/// Resident memory of `pid` now, in KiB.
fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// What the charge points share: latencies of the window, counts.
#[derive(Default)]
struct Tally {
    measuring: AtomicBool,
    latencies: Mutex<Vec<Duration>>,
    answered: AtomicU64,
    connected: AtomicUsize,
    failed: AtomicUsize,
    errors: AtomicU64,
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let chargers = number("BENCH_CHARGERS", 10_000) as usize;
    let seconds = number("BENCH_SECONDS", 60);
    let connecting = number("BENCH_CONNECTING", 200) as usize;
    let served = Served::spawn("vb_ocpp", "[ocpp]\nheartbeat_interval_seconds = 30\n").await;
    let (tenant, _) = ("bench", voltbus::create_admin_key(&served.settings, "bench", "ocpp bench").await.expect("key"));
    let ids: Vec<Uuid> = (0..chargers).map(|_| Uuid::now_v7()).collect();
    for (batch, chunk) in ids.chunks(1000).enumerate() {
        let rows: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                format!(
                    "('{id}', '{tenant}', 'B-{batch}-{i}', 106.9, 47.9, 450, 50, 'MNT', 'Idle', now(), now(), \
                     encode(sha256(convert_to('{PASSWORD}', 'UTF8')), 'hex'))"
                )
            })
            .collect();
        served
            .sql(&format!(
                "INSERT INTO chargers (charger_id, tenant, device_number, longitude, latitude, price, waiting_price, \
                 currency, state, created_at, updated_at, ocpp_password_hash) VALUES {}",
                rows.join(",")
            ))
            .await;
    }
    let pid = served.server.id();
    let edge = served.settings.http.bind;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(pid);

    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(connecting));
    let started = Instant::now();
    for id in &ids {
        let (tally, gate, id) = (Arc::clone(&tally), Arc::clone(&gate), *id);
        tokio::spawn(async move { charge_point(edge, id, tally, gate).await });
    }
    while tally.connected.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < chargers {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let connected_rss = rss_kib(pid);
    let held = tally.connected.load(Ordering::Relaxed);

    tally.latencies.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let answered_before = tally.answered.load(Ordering::Relaxed);
    tally.measuring.store(true, Ordering::Relaxed);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let elapsed = window.elapsed().as_secs_f64();
    let answered = tally.answered.load(Ordering::Relaxed) - answered_before;
    let mut latencies = std::mem::take(&mut *tally.latencies.lock().unwrap_or_else(PoisonError::into_inner));
    latencies.sort();
    let ms = |p: f64| if latencies.is_empty() { f64::NAN } else { percentile(&latencies, p).as_secs_f64() * 1000.0 };
    let report = format!(
        "ocpp: {chargers} charge points (1.6J), MeterValues every 10 s, Heartbeat every 30 s, on {} cores\n\
         connections held {held} (failed {}), connected in {connect_seconds:.1} s\n\
         voltbus RSS {:.0} MiB before, {:.0} MiB connected: {:.1} KiB per connection\n\
         {:.0} CALLs answered/s over {elapsed:.0} s; CALL to CALLRESULT p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         CALLERRORs {}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        tally.failed.load(Ordering::Relaxed),
        before / 1024.0,
        connected_rss / 1024.0,
        (connected_rss - before) / held.max(1) as f64,
        answered as f64 / elapsed,
        ms(0.50),
        ms(0.99),
        ms(1.0),
        tally.errors.load(Ordering::Relaxed),
    );
    print!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-ocpp.txt"), &report);
    served.stop().await;
}

/// One charge point: connects (within the gate), boots, reports, then meters and beats forever.
async fn charge_point(edge: std::net::SocketAddr, id: Uuid, tally: Arc<Tally>, gate: Arc<Semaphore>) {
    let permit = gate.acquire_owned().await;
    let mut request = format!("ws://{edge}/ocpp/{id}").into_client_request().expect("request");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{PASSWORD}"));
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "ocpp1.6".parse().expect("header"));
    headers.insert("authorization", format!("Basic {token}").parse().expect("header"));
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let Ok(stream) = tokio::net::TcpStream::connect(edge).await else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut socket, _)) = tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut sequence = 0u64;
    let mut wh = 0u64;
    let mut call =
        async |socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, action: &str, payload: Value| {
            sequence += 1;
            let message_id = sequence.to_string();
            let sent = Instant::now();
            if socket.send(Message::text(json!([2, message_id, action, payload]).to_string())).await.is_err() {
                return false;
            }
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                match frame.first().and_then(Value::as_u64) {
                    // voltbus's own CALL (ChangeConfiguration): accepted.
                    Some(2) => {
                        let answer = json!([3, frame[1], { "status": "Accepted" }]).to_string();
                        if socket.send(Message::text(answer)).await.is_err() {
                            return false;
                        }
                    }
                    Some(3 | 4) if frame.get(1).and_then(Value::as_str) == Some(message_id.as_str()) => {
                        if frame[0] == 4 {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.answered.fetch_add(1, Ordering::Relaxed);
                        if tally.measuring.load(Ordering::Relaxed) {
                            tally.latencies.lock().unwrap_or_else(PoisonError::into_inner).push(sent.elapsed());
                        }
                        return true;
                    }
                    _ => {}
                }
            }
            false
        };
    let now = || chrono::Utc::now().to_rfc3339();
    let boot = json!({ "chargePointVendor": "voltbus", "chargePointModel": "bench" });
    let status = json!({ "connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": now() });
    if !(call(&mut socket, "BootNotification", boot).await && call(&mut socket, "StatusNotification", status).await) {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    tally.connected.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    // Spread over the period, as chargers booted at different times would be.
    let offset = Duration::from_millis(u64::from(id.as_u128() as u16) % 10_000);
    tokio::time::sleep(offset).await;
    let mut meter = tokio::time::interval(Duration::from_secs(10));
    let mut beat =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(15), Duration::from_secs(30));
    loop {
        let alive = tokio::select! {
            _ = meter.tick() => {
                wh += 500;
                let sample = json!({ "timestamp": now(), "sampledValue": [{ "value": wh.to_string() }] });
                call(&mut socket, "MeterValues", json!({ "connectorId": 1, "meterValue": [sample] })).await
            }
            _ = beat.tick() => call(&mut socket, "Heartbeat", json!({})).await,
        };
        if !alive {
            tally.connected.fetch_sub(1, Ordering::Relaxed);
            tally.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}
