//! The partner edge under load, in one run on this machine's PostgreSQL and RabbitMQ:
//!
//! 1. a bare hyper "hello world" server: requests per second (the ceiling of this machine, with
//!    the load generator sharing its two cores);
//! 2. authenticated `GET /api/partner/v1/me` (key check, three rate-limit windows, request log):
//!    requests per second, and its ratio to (1);
//! 3. authenticated `POST /api/partner/v1/api-keys` with an Idempotency-Key at a fixed rate
//!    (default 300/s): each a command through RabbitMQ to the integrations consumers, committed
//!    in PostgreSQL, replied to; latency percentiles measured from each request's scheduled time,
//!    so a slow answer cannot hide the requests queued behind it.
//!
//! `cargo bench --bench partner_edge`; `BENCH_SECONDS` (default 10), `BENCH_CONNECTIONS` (default
//! 32), `BENCH_RATE` (default 300). Figures go to stdout and to `target/bench-partner-edge.txt`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

mod support;

use support::{BenchPlatform, connect, number, percentile, request, send};

/// Closed-loop load: `connections` clients sending back to back for `seconds`; answers per second.
async fn saturate(
    addr: SocketAddr,
    connections: u64,
    seconds: u64,
    make: Arc<dyn Fn() -> http::Request<Full<Bytes>> + Send + Sync>,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let warm = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, failed, stop, warm, make) = (done.clone(), failed.clone(), stop.clone(), warm.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = send(&mut sender, make()).await;
                if warm.load(Ordering::Relaxed) {
                    if status == 200 { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    warm.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let counted = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} requests were not answered 200");
    counted as f64 / elapsed.as_secs_f64()
}

async fn hello_world() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let service = service_fn(|_request| async {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hello world"))))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

/// Open-loop load at `rate` per second for `seconds`: latency of each request from its scheduled start.
async fn paced(addr: SocketAddr, rate: u64, seconds: u64, key: &str) -> Vec<Duration> {
    let total = rate * seconds;
    let (ticks, receiver) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let receiver = Arc::new(Mutex::new(receiver));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(usize::try_from(total).unwrap_or(0))));
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (receiver, latencies, key) = (receiver.clone(), latencies.clone(), key.to_owned());
        workers.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            loop {
                let Some((n, scheduled)) = receiver.lock().await.recv().await else { break };
                let body = format!("{{\"name\": \"bench {n}\"}}");
                let headers = [
                    ("x-partner-api-key", key.clone()),
                    ("idempotency-key", format!("bench-{n}-{}", uuid::Uuid::now_v7())),
                ];
                let (status, answer) =
                    send(&mut sender, request("POST", addr, "/api/partner/v1/api-keys", &headers, Some(body))).await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
                latencies.lock().expect("latencies").push(scheduled.elapsed());
            }
        }));
    }
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for n in 0..total {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        ticks.send((n, scheduled)).expect("workers alive");
    }
    drop(ticks);
    for worker in workers {
        worker.await.expect("worker");
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    latencies.sort();
    latencies
}

/// Requests per second of a bare hello world, then of authenticated `GET /me`, in one run.
async fn throughput(addr: SocketAddr, key: &str, connections: u64, seconds: u64) -> (f64, f64) {
    let hello = hello_world().await;
    let hello_rps =
        saturate(hello, connections, seconds, Arc::new(move || request("GET", hello, "/", &[], None))).await;
    let key = key.to_owned();
    let get_rps = saturate(
        addr,
        connections,
        seconds,
        Arc::new(move || request("GET", addr, "/api/partner/v1/me", &[("x-partner-api-key", key.clone())], None)),
    )
    .await;
    (hello_rps, get_rps)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let seconds = number("BENCH_SECONDS", 10);
    let connections = number("BENCH_CONNECTIONS", 32);
    let rate = number("BENCH_RATE", 300);
    let platform = BenchPlatform::start(|_| {}).await;
    let (running, settings) = (&platform.running, &platform.settings);
    let addr = running.addr;
    let (admin_key, _) = voltbus::create_admin_key(settings, "bench", "bench admin").await.expect("admin key");
    let create = serde_json::json!({
        "name": "bench", "admin": true, "bundle": "ALL_ACCESS",
        "rate_limits": { "per_minute": 100_000_000, "per_hour": 100_000_000, "per_day": 100_000_000 },
    });
    let mut sender = connect(addr).await;
    let (status, created) = send(
        &mut sender,
        request(
            "POST",
            addr,
            "/api/partner/v1/api-keys",
            &[("x-partner-api-key", admin_key)],
            Some(create.to_string()),
        ),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
    let created: serde_json::Value = serde_json::from_slice(&created).expect("json");
    let key = created["data"]["key"].as_str().expect("key").to_owned();

    // Commands first, on a quiet system: the GET phase leaves a request log of hundreds of
    // thousands of rows for the consumers to write afterwards.
    let latencies = paced(addr, rate, seconds, &key).await;
    // BENCH_COMMANDS_ONLY skips the throughput phases (for quick runs of the latency figures).
    let (hello_rps, get_rps) = match std::env::var_os("BENCH_COMMANDS_ONLY") {
        Some(_) => (f64::NAN, f64::NAN),
        None => throughput(addr, &key, connections, seconds).await,
    };

    let mut report = String::new();
    let _ = writeln!(
        report,
        "partner edge, {connections} connections, {seconds} s per phase, load generator on the same 2 cores"
    );
    let _ = writeln!(report, "  bare hyper hello world:         {hello_rps:>9.0} req/s");
    let _ = writeln!(
        report,
        "  authenticated GET /me:          {get_rps:>9.0} req/s   ({:.2} of hello world)",
        get_rps / hello_rps
    );
    let _ = writeln!(
        report,
        "  command POST /api-keys at {rate}/s: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} requests)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len(),
    );
    print!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-partner-edge.txt"), &report);
    platform.stop().await;
}
