//! Fault injection under steady load, on services of the test's own (a private PostgreSQL,
//! RabbitMQ node and nats-server, so restarting them disturbs no other test) and two `voltbus`
//! processes sharing them (competing consumers, one outbox, one idempotency store).
//!
//! While partner clients create customers through both edges (retrying a failed call on the
//! other edge with the same `Idempotency-Key`, as the API asks them to) and a vehicle reports its
//! state over NATS, the test in turn: (a) force-closes every RabbitMQ connection, (b) restarts
//! PostgreSQL, (c) kills one voltbus with SIGKILL and starts it again, (e) restarts NATS, (d)
//! takes the webhook receiver down for a minute. Then it counts:
//! - every customer acknowledged (201) to a client is in the database exactly once;
//! - the outbox has nothing left unsent;
//! - every `customer.created` event reached the receiver (or its delivery is logged as failed),
//!   and repeats carry the event id of the first, so a receiver can drop them;
//! - every vehicle state JetStream acknowledged is in the state history once.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::nats::NatsConnection;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use schemas::vehicles::{Reading, VehicleState, VehicleStateReported};
use schemas::{Envelope, TenantId, subjects};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::private_nats::PrivateNats;
use crate::private_postgres::PrivatePostgres;
use crate::private_rabbit::PrivateRabbit;
use crate::support::{request, scratch_dir, unique};

/// One `voltbus serve` process, which the test may kill and start again.
struct Voltbus {
    config: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl Voltbus {
    async fn start(name: &str, shared: &str) -> Self {
        let port = crate::support::steady_port();
        let dir = scratch_dir();
        let config = dir.join(format!("{name}.toml"));
        let body = format!("data_dir = {:?}\n{shared}\n[http]\nbind = \"127.0.0.1:{port}\"\n", dir.join("data"));
        std::fs::write(&config, body).unwrap();
        let mut voltbus =
            Self { config, addr: ([127, 0, 0, 1], port).into(), log: dir.join(format!("{name}.log")), child: None };
        voltbus.boot().await;
        voltbus
    }

    async fn boot(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_voltbus"))
            .args(["--config"])
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(self.addr)).await
            {
                drop(stream);
                if request(self.addr, "GET", "/health/ready", &[], None).await.0 == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "voltbus did not get ready: {}",
                std::fs::read_to_string(&self.log).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown, nothing in flight finished.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Voltbus {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A partner's webhook receiver that can be taken down (connections refused, and 503 on the
/// connections already open) and brought back on the same port.
pub(crate) struct Receiver {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    accept: Option<tokio::task::JoinHandle<()>>,
    /// Every delivery received: event id and body.
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", crate::support::steady_port())).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut receiver =
            Self { addr, up: Arc::new(AtomicBool::new(true)), accept: None, got: Arc::new(Mutex::new(Vec::new())) };
        receiver.listen(listener);
        receiver
    }

    fn listen(&mut self, listener: tokio::net::TcpListener) {
        let (up, got) = (Arc::clone(&self.up), Arc::clone(&self.got));
        self.accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (up, got) = (Arc::clone(&up), Arc::clone(&got));
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (up, got) = (Arc::clone(&up), Arc::clone(&got));
                    async move {
                        let id = request.headers().get("webhook-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let mut answer = http::Response::new(Full::new(Bytes::new()));
                        if up.load(Ordering::SeqCst) {
                            got.lock().unwrap().push((id.unwrap_or_default(), serde_json::from_slice(&body).unwrap()));
                        } else {
                            *answer.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, Infallible>(answer)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        }));
    }

    fn down(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.up.store(true, Ordering::SeqCst);
        self.listen(listener);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }
}

/// What the partner clients saw.
#[derive(Default)]
struct Ledger {
    /// Acknowledged customers: email → customer id.
    acknowledged: Mutex<HashMap<String, String>>,
    /// Calls that failed and were made again, by what went wrong.
    retried: Mutex<HashMap<String, u64>>,
}

/// A partner client: creates customers one after another, each with its own idempotency key,
/// through the edges in turn; a failed call is made again (same key) on the next edge.
async fn client(n: usize, edges: Vec<SocketAddr>, key: String, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let mut turn = n;
    let mut sent = 0;
    while !stop.load(Ordering::SeqCst) {
        let email = format!("c{n}-{sent}@faults.example");
        let body = json!({ "email": email, "name": "Fault" }).to_string();
        let idempotency = Uuid::now_v7().to_string();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let edge = edges[turn % edges.len()];
            let headers = [("x-partner-api-key", key.as_str()), ("idempotency-key", idempotency.as_str())];
            let call =
                tokio::time::timeout(Duration::from_secs(40), post(edge, "/api/partner/v1/customers", &headers, &body));
            let outcome = match call.await {
                Ok(Some((201, created))) => Ok(created["data"]["id"].as_str().unwrap().to_owned()),
                Ok(Some((status, answer))) => {
                    let code = answer["error"]["code"].as_str().unwrap_or("-").to_owned();
                    assert!(status >= 409, "refused for good: {status} {answer}");
                    Err(format!("{status} {code}"))
                }
                Ok(None) => Err("no answer (connection refused or cut)".to_owned()),
                Err(_) => Err("no answer within 40 s".to_owned()),
            };
            match outcome {
                Ok(id) => {
                    let previous = ledger.acknowledged.lock().unwrap().insert(email.clone(), id);
                    assert!(previous.is_none(), "{email} acknowledged twice");
                    break;
                }
                Err(why) => {
                    *ledger.retried.lock().unwrap().entry(why).or_default() += 1;
                    assert!(Instant::now() < deadline, "{email} never acknowledged");
                    turn += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        sent += 1;
        turn += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A POST that may meet a dead edge: `None` when no answer came.
async fn post(edge: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Option<(u16, Value)> {
    let stream = tokio::net::TcpStream::connect(edge).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    let mut request = http::Request::builder().method("POST").uri(path).header("host", edge.to_string());
    for (name, value) in headers.iter().chain(&[("content-type", "application/json")]) {
        request = request.header(*name, *value);
    }
    let response = sender.send_request(request.body(Full::new(Bytes::from(body.to_owned()))).ok()?).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// A vehicle reporting its state every 100 ms; keeps the message ids JetStream acknowledged.
pub(crate) async fn vehicle(
    nats: NatsConnection,
    tenant: TenantId,
    vehicle: Uuid,
    acked: Arc<Mutex<Vec<Uuid>>>,
    stop: Arc<AtomicBool>,
) {
    let mut metres = 1_000;
    while !stop.load(Ordering::SeqCst) {
        metres += 10;
        let now = chrono::Utc::now();
        let state = VehicleState { odometer: Some(Reading { value: metres, time: now }), ..VehicleState::default() };
        let report = VehicleStateReported { vehicle_id: vehicle, telematics_unit_id: None, state };
        let envelope = Envelope::new(tenant.clone(), "test/vehicle", report);
        let publish = nats.publish_durable(subjects::vehicle_state(&tenant, vehicle), &envelope);
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(5), publish).await {
            acked.lock().unwrap().push(envelope.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn sql(url: &str, query: &str) -> Vec<sea_orm::QueryResult> {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(url).await.unwrap();
    let rows = db.query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), query)).await.unwrap();
    db.close().await.unwrap();
    rows
}

pub(crate) async fn count(url: &str, query: &str) -> i64 {
    sql(url, query).await[0].try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_or_doubled_through_broker_database_process_receiver_and_nats_faults() {
    // The private PostgreSQL runs as the `postgres` user, which takes root to arrange.
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        eprintln!("skipped: the fault suite needs root to run a PostgreSQL of its own (as the postgres user)");
        return;
    }
    let postgres = PrivatePostgres::start();
    let rabbit = PrivateRabbit::start();
    let mut nats = PrivateNats::start();
    let mut receiver = Receiver::start().await;
    let shared = format!(
        "[database]\nurl = {:?}\n[amqp]\nurl = {:?}\n[nats]\nurl = {:?}\n\
         [webhooks]\nallow_hosts = [\"127.0.0.1\"]\ntimeout_ms = 2000\nscheduler_interval_ms = 100\n\
         retry_schedule_ms = [1000, 2000, 4000, 8000, 15000, 30000, 30000]\nencryption_key = {:?}\n\
         [integrations]\ntoken_key = {:?}\n",
        postgres.url(),
        rabbit.url(),
        nats.url(),
        "dm9sdGJ1cy1mYXVsdHMtc2VhbGluZy1rZXktMzJieXQ=",
        "dm9sdGJ1cy1mYXVsdHMtdG9rZW4ta2V5LTMyLWJ5dGU=",
    );
    let mut first = Voltbus::start("first", &shared).await;
    let second = Voltbus::start("second", &shared).await;

    let tenant = unique("faults");
    let mut settings = voltbus::Settings::load(Some(&first.config)).unwrap();
    settings.data_dir = scratch_dir();
    let (first_key, _) = voltbus::create_admin_key(&settings, &tenant, "faults").await.unwrap();
    // The clients' own key, with room for the load.
    let limits = json!({ "per_minute": 100000, "per_hour": 1000000, "per_day": 10000000 });
    let body = json!({ "name": "load", "admin": true, "bundle": "ALL_ACCESS", "rate_limits": limits }).to_string();
    let headers = [("x-partner-api-key", first_key.as_str())];
    let (status, created, _) = request(first.addr, "POST", "/api/partner/v1/api-keys", &headers, Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let admin = [("x-partner-api-key", key.as_str())];
    let hook = json!({ "url": receiver.url(), "events": ["customer.created"] }).to_string();
    let (status, created, _) = request(first.addr, "POST", "/api/partner/v1/webhooks", &admin, Some(&hook)).await;
    assert_eq!(status, 201, "{created}");
    let vin = json!({ "vin": "FAULTS1", "subaccount_id": Uuid::now_v7() }).to_string();
    let (status, created, _) = request(first.addr, "POST", "/api/partner/v1/vehicles", &admin, Some(&vin)).await;
    assert_eq!(status, 201, "{created}");
    let vehicle_id: Uuid = created["data"]["id"].as_str().unwrap().parse().unwrap();

    // Steady load: three partner clients over both edges, one vehicle over NATS.
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let edges = vec![first.addr, second.addr];
    let clients: Vec<_> = (0..3)
        .map(|n| tokio::spawn(client(n, edges.clone(), key.clone(), Arc::clone(&ledger), Arc::clone(&stop))))
        .collect();
    let device = NatsConnection::connect(&nats.url(), "faults-vehicle").await.unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tenant_id = TenantId::new(&tenant).unwrap();
    let reporter = tokio::spawn(vehicle(device, tenant_id, vehicle_id, Arc::clone(&acked), Arc::clone(&stop)));
    let progress = |phase: &str| {
        let acknowledged = ledger.acknowledged.lock().unwrap().len();
        let states = acked.lock().unwrap().len();
        println!("{phase}: {acknowledged} customers acknowledged, {states} states acknowledged so far");
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    progress("steady");

    // (a) Every RabbitMQ connection force-closed.
    // The faults are made off the runtime's thread, so the load goes on while they happen.
    let rabbit = Arc::new(rabbit);
    let closing = Arc::clone(&rabbit);
    tokio::task::spawn_blocking(move || closing.close_all_connections()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    progress("(a) RabbitMQ connections closed");

    // (b) PostgreSQL restarted.
    let postgres = Arc::new(postgres);
    let restarting = Arc::clone(&postgres);
    tokio::task::spawn_blocking(move || restarting.restart()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    progress("(b) PostgreSQL restarted");

    // (c) One voltbus killed with SIGKILL, then started again.
    first.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.boot().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    progress("(c) voltbus killed and started again");

    // (e) NATS restarted.
    let _nats = tokio::task::spawn_blocking(move || {
        nats.kill();
        std::thread::sleep(Duration::from_secs(1));
        nats.boot();
        nats
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    progress("(e) NATS restarted");

    // (d) The webhook receiver down for a minute.
    receiver.down();
    tokio::time::sleep(Duration::from_secs(60)).await;
    receiver.up().await;
    progress("(d) receiver back after a minute");

    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    reporter.await.unwrap();
    let acknowledged = ledger.acknowledged.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    let counted = settle_and_count(&postgres.url(), &acknowledged, &receiver, vehicle_id, &acked).await;
    let retried = ledger.retried.lock().unwrap().clone();
    println!("counted: {counted}; calls made again: {retried:?}");
    assert!(acknowledged.len() >= 100, "too little load to mean anything");
    drop(second);
}

/// What the settled platform holds against what its callers were told.
pub(crate) struct Counted {
    customers: usize,
    received: usize,
    distinct: usize,
    failed: usize,
    missing: usize,
    states: usize,
    history: usize,
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} customers acknowledged, each stored once; webhooks: {} received, {} distinct events, {} repeats, \
             {} logged as failed, {} missing; states: {} acknowledged by JetStream, all {} in the history; \
             outbox: 0 unsent",
            self.customers,
            self.received,
            self.distinct,
            self.received - self.distinct,
            self.failed,
            self.missing,
            self.states,
            self.history,
        )
    }
}

/// Waits until the database at `db` has settled (the outbox sent, every webhook delivery done or
/// given up, the customers and states stored), then checks what the callers were told: every
/// `acknowledged` customer (email → id) stored once, its `customer.created` received by
/// `receiver` under one event id or its delivery logged as failed, every state of `vehicle` that
/// JetStream acknowledged (`acked`) in the history.
pub(crate) async fn settle_and_count(
    db: &str,
    acknowledged: &HashMap<String, String>,
    receiver: &Receiver,
    vehicle_id: Uuid,
    acked: &[Uuid],
) -> Counted {
    // Settled: every acknowledged event sent, every delivery done (or given up and logged).
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let unsent = count(db, "SELECT COUNT(*) AS n FROM outbox_pending").await;
        let open =
            count(db, "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status NOT IN ('succeeded', 'failed')").await;
        let stored =
            count(db, &format!("SELECT COUNT(*) AS n FROM vehicle_state_history WHERE vehicle_id = '{vehicle_id}'"))
                .await;
        let customers = count(db, "SELECT COUNT(*) AS n FROM customers").await;
        if unsent == 0 && open == 0 && stored >= acked.len() as i64 && customers >= acknowledged.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {unsent} unsent, {open} deliveries open, {stored}/{} states, {customers}/{} customers",
            acked.len(),
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every acknowledged customer exactly once.
    let rows = sql(db, "SELECT customer_id::text AS id, email FROM customers").await;
    let mut stored: HashMap<String, Vec<String>> = HashMap::new();
    for row in &rows {
        stored.entry(row.try_get("", "email").unwrap()).or_default().push(row.try_get("", "id").unwrap());
    }
    for (email, id) in acknowledged {
        assert_eq!(stored.get(email), Some(&vec![id.clone()]), "{email}: acknowledged as {id}");
    }
    assert!(stored.values().all(|ids| ids.len() == 1), "a customer was created twice");

    // Every acknowledged customer's event reached the receiver, repeats under the same event id.
    let got = receiver.got.lock().unwrap().clone();
    let mut events_of: HashMap<String, HashSet<String>> = HashMap::new();
    for (event_id, body) in &got {
        let data = &body["data"];
        let customer = data.get("customer_id").or_else(|| data.get("customerId")).and_then(Value::as_str);
        let customer = customer.unwrap_or_default().to_owned();
        events_of.entry(customer).or_default().insert(event_id.clone());
    }
    // A customer whose event never arrived must have its own delivery logged as failed.
    let failed_query = "SELECT m.payload FROM webhook_deliveries d JOIN webhook_messages m \
                        ON m.tenant = d.tenant AND m.event_id = d.event_id WHERE d.status = 'failed'";
    let failed: Vec<String> =
        sql(db, failed_query).await.iter().map(|r| r.try_get::<String>("", "payload").unwrap()).collect();
    let missing: Vec<&String> = acknowledged.values().filter(|id| !events_of.contains_key(*id)).collect();
    let unaccounted: Vec<&&String> =
        missing.iter().filter(|id| !failed.iter().any(|p| p.contains(id.as_str()))).collect();
    assert!(
        unaccounted.is_empty(),
        "{} events neither delivered nor logged as failed, such as {:?}; one received: {:?}",
        unaccounted.len(),
        unaccounted.iter().take(3).collect::<Vec<_>>(),
        got.first()
    );
    let failed = failed.len();
    assert!(events_of.values().all(|ids| ids.len() == 1), "one customer announced under two event ids");
    let unique_events: HashSet<&String> = got.iter().map(|(id, _)| id).collect();

    // Every acknowledged state in the history once.
    let history =
        sql(db, &format!("SELECT message_id::text AS id FROM vehicle_state_history WHERE vehicle_id = '{vehicle_id}'"))
            .await;
    let history: HashSet<String> = history.iter().map(|r| r.try_get("", "id").unwrap()).collect();
    let lost: Vec<&Uuid> = acked.iter().filter(|id| !history.contains(&id.to_string())).collect();
    assert!(lost.is_empty(), "acknowledged states missing from the history: {lost:?}");

    Counted {
        customers: acknowledged.len(),
        received: got.len(),
        distinct: unique_events.len(),
        failed,
        missing: missing.len(),
        states: acked.len(),
        history: history.len(),
    }
}
