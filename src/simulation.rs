//! A fleet simulator (`voltbus simulate`): drives a running voltbus the way a real fleet does, to
//! see events flow and to load it for the end-to-end benchmark.
//!
//! - Set-up through the partner API with an organisation's admin key: a pricing plan, vehicles,
//!   customers with money in their wallets, chargers, and a webhook endpoint (all events) that
//!   points at the simulator's own receiver on 127.0.0.1.
//! - Vehicles report their state over NATS (JetStream), each every `report_every`, or on the
//!   embedded default over the embedded transport of the voltbus in the same process.
//! - Chargers report their status and, while charging, their meter (the charger simulator).
//! - Vehicle commands go through the partner API at `commands_per_minute` (each with a time to
//!   live), answered by the device simulator.
//! - Customers start and end rides through the REST edge at `rides_per_minute`; each call's
//!   latency is kept for the summary's percentiles. Drivers charge through the app's routes;
//!   those calls wait for the charger's own answer, so their latencies are kept apart.
//! - The receiver counts what arrives, and how much of it was a duplicate (by `webhook-id`).
//!
//! Driving a voltbus in another process that has no NATS, vehicles and chargers stay silent; rides
//! and webhooks run.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::devices::DeviceLink;
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use schemas::vehicles::{Position, Reading, VehicleState, VehicleStateReported};
use schemas::{Envelope, TenantId, subjects};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Vehicles reporting their state.
    pub vehicles: usize,
    /// Chargers reporting status and meter values.
    pub chargers: usize,
    /// Rides started per minute (each ended after `ride_length`).
    pub rides_per_minute: f64,
    /// How often each vehicle reports.
    pub report_every: Duration,
    /// How long a ride lasts.
    pub ride_length: Duration,
    /// Vehicle commands sent per minute (`honk-and-flash`, round the fleet).
    pub commands_per_minute: f64,
    /// Stop after this long (none: until told to stop).
    pub duration: Option<Duration>,
    /// Print a progress line every second.
    pub progress: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            vehicles: 20,
            chargers: 4,
            rides_per_minute: 30.0,
            report_every: Duration::from_secs(5),
            ride_length: Duration::from_secs(10),
            commands_per_minute: 0.0,
            duration: None,
            progress: true,
        }
    }
}

/// The voltbus being driven.
pub struct Target {
    /// Its HTTP edge.
    pub edge: SocketAddr,
    /// An admin key of `tenant`.
    pub admin_key: String,
    /// The organisation the fleet belongs to.
    pub tenant: TenantId,
    /// How its vehicles and chargers reach it (none: they stay silent).
    pub devices: Option<DeviceLink>,
    /// The mobile app's development sign-in code (`mobile.dev_code`): with it, drivers sign in
    /// and charge at the chargers through the app's REST routes.
    pub sign_in_code: Option<String>,
}

/// Why the simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The edge could not be reached.
    #[error("cannot reach voltbus at {addr}: {reason}")]
    Unreachable {
        /// Where.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A set-up call was refused.
    #[error("{what} was refused with {status}: {body}")]
    Refused {
        /// The call.
        what: String,
        /// Its status.
        status: u16,
        /// Its answer.
        body: String,
    },
    /// The webhook receiver could not listen.
    #[error("webhook receiver: {0}")]
    Receiver(std::io::Error),
}

/// What the simulation did and saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Seconds it ran (after set-up).
    pub seconds: f64,
    /// Vehicle states published (stored by JetStream).
    pub states_published: u64,
    /// Vehicle states whose publish failed.
    pub states_failed: u64,
    /// REST commands answered 2xx (ride starts and ends, charging starts and finishes).
    pub commands_ok: u64,
    /// REST commands refused or failed, by status (0: no answer).
    pub commands_failed: HashMap<u16, u64>,
    /// Median REST command latency, milliseconds.
    pub command_p50_ms: f64,
    /// 99th percentile REST command latency, milliseconds.
    pub command_p99_ms: f64,
    /// Median latency of the app's charging calls (start and finish, which wait for the
    /// charger's own answer), milliseconds; not in the command percentiles.
    pub charging_p50_ms: f64,
    /// 99th percentile of the same, milliseconds.
    pub charging_p99_ms: f64,
    /// Rides started.
    pub rides_started: u64,
    /// Rides ended.
    pub rides_ended: u64,
    /// Charging sessions started through the mobile app's routes.
    pub charging_started: u64,
    /// Charging sessions finished (each a purchase).
    pub charging_finished: u64,
    /// Vehicle commands the vehicle carried out.
    pub vehicle_commands_succeeded: u64,
    /// Vehicle commands that ended otherwise, by how they ended (their state, or the HTTP status
    /// of a refusal).
    pub vehicle_commands_failed: HashMap<String, u64>,
    /// Webhook deliveries received (every request).
    pub webhooks_received: u64,
    /// Of those, repeats of an event id already received.
    pub webhook_duplicates: u64,
    /// Received events by type.
    pub webhook_events: HashMap<String, u64>,
}

impl Summary {
    /// Vehicle states per second.
    pub fn states_per_second(&self) -> f64 {
        self.states_published as f64 / self.seconds.max(f64::EPSILON)
    }

    /// REST commands per second.
    pub fn commands_per_second(&self) -> f64 {
        self.commands_ok as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Webhook deliveries per second.
    pub fn webhooks_per_second(&self) -> f64 {
        self.webhooks_received as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// Counters shared by the simulation's tasks.
#[derive(Default)]
struct Counters {
    states: AtomicU64,
    states_failed: AtomicU64,
    commands_ok: AtomicU64,
    commands_failed: Mutex<HashMap<u16, u64>>,
    /// Partner API commands' latencies.
    latencies: Mutex<Vec<Duration>>,
    /// The app's charging calls' latencies.
    charging_latencies: Mutex<Vec<Duration>>,
    rides_started: AtomicU64,
    rides_ended: AtomicU64,
    charging_started: AtomicU64,
    charging_finished: AtomicU64,
    vehicle_commands_succeeded: AtomicU64,
    vehicle_commands_failed: Mutex<HashMap<String, u64>>,
    webhooks: AtomicU64,
    duplicates: AtomicU64,
    seen: Mutex<HashSet<String>>,
    events: Mutex<HashMap<String, u64>>,
}

impl Counters {
    /// Back to zero, for the next drive (repeats are told apart within a drive only).
    fn reset(&self) {
        for counter in [
            &self.states,
            &self.states_failed,
            &self.commands_ok,
            &self.rides_started,
            &self.rides_ended,
            &self.charging_started,
            &self.charging_finished,
            &self.vehicle_commands_succeeded,
            &self.webhooks,
            &self.duplicates,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        if let Ok(mut failed) = self.commands_failed.lock() {
            failed.clear();
        }
        if let Ok(mut failed) = self.vehicle_commands_failed.lock() {
            failed.clear();
        }
        for latencies in [&self.latencies, &self.charging_latencies] {
            if let Ok(mut latencies) = latencies.lock() {
                latencies.clear();
            }
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
        }
        if let Ok(mut events) = self.events.lock() {
            events.clear();
        }
    }

    /// One call answered: a partner API command, or (`charging`) an app's charging call.
    fn command(&self, status: u16, took: Duration, charging: bool) {
        if (200..300).contains(&status) {
            self.commands_ok.fetch_add(1, Ordering::Relaxed);
            let latencies = if charging { &self.charging_latencies } else { &self.latencies };
            if let Ok(mut latencies) = latencies.lock() {
                latencies.push(took);
            }
        } else if let Ok(mut failed) = self.commands_failed.lock() {
            *failed.entry(status).or_default() += 1;
        }
    }

    fn summary(&self, seconds: f64) -> Summary {
        let percentiles = |latencies: &Mutex<Vec<Duration>>| {
            let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
            latencies.sort_unstable();
            let at = |p: f64| {
                if latencies.is_empty() {
                    return 0.0;
                }
                let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
                latencies[index].as_secs_f64() * 1000.0
            };
            (at(0.50), at(0.99))
        };
        let (command_p50_ms, command_p99_ms) = percentiles(&self.latencies);
        let (charging_p50_ms, charging_p99_ms) = percentiles(&self.charging_latencies);
        Summary {
            seconds,
            states_published: self.states.load(Ordering::Relaxed),
            states_failed: self.states_failed.load(Ordering::Relaxed),
            commands_ok: self.commands_ok.load(Ordering::Relaxed),
            commands_failed: self.commands_failed.lock().map(|f| f.clone()).unwrap_or_default(),
            command_p50_ms,
            command_p99_ms,
            charging_p50_ms,
            charging_p99_ms,
            rides_started: self.rides_started.load(Ordering::Relaxed),
            rides_ended: self.rides_ended.load(Ordering::Relaxed),
            charging_started: self.charging_started.load(Ordering::Relaxed),
            charging_finished: self.charging_finished.load(Ordering::Relaxed),
            vehicle_commands_succeeded: self.vehicle_commands_succeeded.load(Ordering::Relaxed),
            vehicle_commands_failed: self.vehicle_commands_failed.lock().map(|f| f.clone()).unwrap_or_default(),
            webhooks_received: self.webhooks.load(Ordering::Relaxed),
            webhook_duplicates: self.duplicates.load(Ordering::Relaxed),
            webhook_events: self.events.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

/// Longest the simulator waits for one call's answer (0 in the summary past it).
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// The partner API as the simulator calls it, over the platform's HTTP client (its connections
/// kept alive and reused).
struct Edge {
    addr: SocketAddr,
    admin_key: String,
    /// The fleet (subaccount) every call is made in: pricing and rides are per fleet.
    fleet: Uuid,
    http: outbound::Client,
}

impl Edge {
    /// One partner API call: status (0 when no answer came) and JSON body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let headers = [("x-partner-api-key", self.admin_key.clone()), ("x-subaccount-id", self.fleet.to_string())];
        self.request(method, &format!("/api/partner/v1{path}"), &headers, body).await
    }

    /// One request to the edge, JSON in and out.
    async fn request(&self, method: &str, path: &str, headers: &[(&str, String)], body: Option<Value>) -> (u16, Value) {
        let Ok(method) = outbound::Method::from_bytes(method.as_bytes()) else { return (0, Value::Null) };
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.addr))
            .timeout(CALL_LIMIT)
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        // No answer in time, or a broken one: 0.
        let Ok(response) = request.send().await else { return (0, Value::Null) };
        let status = response.status().as_u16();
        let Ok(body) = response.bytes().await else { return (0, Value::Null) };
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A set-up call that must succeed; its `data`.
    async fn must(&self, method: &str, path: &str, body: Value) -> Result<Value, SimulationError> {
        let (status, answer) = self.call(method, path, Some(body)).await;
        if !(200..300).contains(&status) {
            return Err(SimulationError::Refused {
                what: format!("{method} {path}"),
                status,
                body: answer.to_string(),
            });
        }
        Ok(answer.get("data").cloned().unwrap_or(answer))
    }
}

/// Listens on 127.0.0.1 and counts every delivery, until the returned task is aborted.
async fn receive_webhooks(
    counters: Arc<Counters>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), SimulationError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(SimulationError::Receiver)?;
    let addr = listener.local_addr().map_err(SimulationError::Receiver)?;
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counters = Arc::clone(&counters);
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let counters = Arc::clone(&counters);
                async move {
                    let id = request.headers().get("webhook-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    counters.webhooks.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = id
                        && counters.seen.lock().is_ok_and(|mut seen| !seen.insert(id))
                    {
                        counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    let event = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|b| b.get("event").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| "unknown".into());
                    if let Ok(mut events) = counters.events.lock() {
                        *events.entry(event).or_default() += 1;
                    }
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok((addr, accept))
}

/// Sets the fleet up, drives it until `stop` resolves (or the plan's duration passed) and says
/// what happened.
pub async fn run(target: Target, plan: Plan, stop: impl Future<Output = ()>) -> Result<Summary, SimulationError> {
    let fleet = Fleet::set_up(target, &plan).await?;
    let summary = fleet.drive(&plan, stop).await;
    fleet.tear_down().await;
    Ok(summary)
}

/// A fleet set up on a running voltbus, ready to be driven (again and again, at other rates).
pub struct Fleet {
    target: Target,
    edge: Arc<Edge>,
    counters: Arc<Counters>,
    vehicles: Vec<Uuid>,
    customers: Vec<String>,
    chargers: Vec<Uuid>,
    /// Drivers signed in so far: each charging session is a new one.
    drivers: Arc<AtomicU64>,
    /// The key given to the simulator, which made `own_key`.
    given: Arc<Edge>,
    /// The simulator's own key (its id), when it could make one.
    own_key: Option<String>,
    /// The webhook endpoint to the receiver (its id), when the edge allowed it.
    endpoint: Option<String>,
    receiver: tokio::task::JoinHandle<()>,
}

impl Fleet {
    /// Makes the plan's vehicles, customers (as many as rides can run at once), chargers, a
    /// pricing plan and a webhook endpoint to the simulator's own receiver.
    pub async fn set_up(target: Target, plan: &Plan) -> Result<Self, SimulationError> {
        let counters = Arc::new(Counters::default());
        let agent = concat!("voltbus-simulate/", env!("CARGO_PKG_VERSION"));
        let http = outbound::trusted(agent, CALL_LIMIT)
            .map_err(|e| SimulationError::Unreachable { addr: target.edge, reason: e.to_string() })?;
        let edge =
            Arc::new(Edge { addr: target.edge, admin_key: target.admin_key.clone(), fleet: Uuid::now_v7(), http });
        let (receiver, receiving) = receive_webhooks(Arc::clone(&counters)).await?;
        // A key of its own with room for the load (deleted at tear-down); without one, the
        // given key's limits hold.
        let limits = json!({ "per_minute": 1_000_000, "per_hour": 10_000_000, "per_day": 100_000_000 });
        let key = json!({ "name": "voltbus simulate", "admin": true, "bundle": "ALL_ACCESS", "rate_limits": limits });
        let given = edge;
        let (edge, own_key) = match given.must("POST", "/api-keys", key).await {
            Ok(created) => match (created["key"].as_str(), created["id"].as_str()) {
                (Some(key), Some(id)) => {
                    let own = Edge {
                        addr: given.addr,
                        admin_key: key.to_owned(),
                        fleet: given.fleet,
                        http: given.http.clone(),
                    };
                    (Arc::new(own), Some(id.to_owned()))
                }
                _ => (Arc::clone(&given), None),
            },
            Err(error) => {
                tracing::warn!(%error, "no key of the simulator's own: the given key's rate limits apply");
                (Arc::clone(&given), None)
            }
        };
        let run_id = Uuid::now_v7().simple().to_string();
        let tag = &run_id[run_id.len() - 8..];

        let plan_body = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 25, "per_km_cents": 10 });
        edge.must("PUT", "/pricing", plan_body).await?;
        let hook =
            json!({ "url": format!("http://{receiver}/hooks"), "events": ["*"], "description": "voltbus simulate" });
        let endpoint = match edge.must("POST", "/webhooks", hook).await {
            Ok(created) => created["id"].as_str().map(str::to_owned),
            Err(error) => {
                // The usual cause: the edge refuses private addresses unless `webhooks.allow_hosts` has 127.0.0.1.
                tracing::warn!(%error, "no webhook endpoint: deliveries are not counted (allow 127.0.0.1 in webhooks.allow_hosts)");
                None
            }
        };
        let mut vehicles = Vec::with_capacity(plan.vehicles);
        for n in 0..plan.vehicles {
            let body = json!({ "vin": format!("SIM{tag}{n:06}"), "vehicle_number": format!("S{n}") });
            let created = edge.must("POST", "/vehicles", body).await?;
            vehicles.push(created["id"].as_str().and_then(|id| id.parse::<Uuid>().ok()).unwrap_or_default());
        }
        let at_once = plan.rides_per_minute / 60.0 * plan.ride_length.as_secs_f64();
        let riders = ((at_once * 1.5).ceil() as usize + 1).clamp(1, vehicles.len().max(1));
        let mut customers = Vec::with_capacity(riders);
        for n in 0..riders {
            let created =
                edge.must("POST", "/customers", json!({ "email": format!("rider{n}.{tag}@sim.example") })).await?;
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            let credit = json!({ "action": "credit", "amount_cents": 10_000_000, "description": "simulated top-up" });
            edge.must("POST", &format!("/customers/{id}/wallet"), credit).await?;
            customers.push(id);
        }
        let mut chargers = Vec::with_capacity(plan.chargers);
        for n in 0..plan.chargers {
            let body = json!({ "device_number": format!("SIM-{tag}-{n}"), "location": [13.40 + n as f64 * 0.001, 52.52],
                               "price": 450, "waiting_price": 50, "currency": "EUR" });
            let created = edge.must("POST", "/chargers", body).await?;
            chargers.push(created["id"].as_str().and_then(|id| id.parse::<Uuid>().ok()).unwrap_or_default());
        }
        tracing::info!(vehicles = vehicles.len(), customers = customers.len(), chargers = chargers.len(), %receiver, "fleet set up");
        Ok(Self {
            target,
            edge,
            counters,
            vehicles,
            customers,
            chargers,
            drivers: Arc::new(AtomicU64::new(0)),
            given,
            own_key,
            endpoint,
            receiver: receiving,
        })
    }

    /// Deletes the webhook endpoint (its receiver is going away) and the simulator's own key,
    /// and stops the receiver. The fleet's vehicles, customers and chargers stay.
    pub async fn tear_down(self) {
        if let Some(endpoint) = &self.endpoint {
            let (status, _) = self.edge.call("DELETE", &format!("/webhooks/{endpoint}"), None).await;
            if !(200..300).contains(&status) {
                tracing::warn!(status, %endpoint, "the simulator's webhook endpoint could not be deleted");
            }
        }
        if let Some(key) = &self.own_key {
            let (status, _) = self.given.call("DELETE", &format!("/api-keys/{key}"), None).await;
            if !(200..300).contains(&status) {
                tracing::warn!(status, %key, "the simulator's own key could not be deleted");
            }
        }
        self.receiver.abort();
    }

    /// Drives the fleet at `plan`'s rates until `stop` resolves or the plan's duration passed;
    /// what happened meanwhile (counters start from zero at each drive).
    pub async fn drive(&self, plan: &Plan, stop: impl Future<Output = ()>) -> Summary {
        let counters = Arc::clone(&self.counters);
        counters.reset();
        let started = Instant::now();
        let (halt, halted) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(link) = self.target.devices.clone() {
            let (tenant, vehicles) = (self.target.tenant.clone(), self.vehicles.clone());
            tasks.spawn(report_states(
                link.clone(),
                tenant,
                vehicles,
                plan.report_every,
                Arc::clone(&counters),
                halted.clone(),
            ));
            let mut charger_halt = halted.clone();
            let behaviour = crate::charger_simulator::Behaviour::default();
            let (tenant, simulated) = (self.target.tenant.clone(), self.chargers.clone());
            tasks.spawn(async move {
                let stop = async move {
                    let _ = charger_halt.wait_for(|h| *h).await;
                };
                if let Err(error) = crate::charger_simulator::run(link, tenant, simulated, behaviour, stop).await {
                    tracing::warn!(%error, "simulated chargers stopped");
                }
            });
            if plan.commands_per_minute > 0.0 {
                let (link, mut device_halt) = (self.target.devices.clone(), halted.clone());
                tasks.spawn(async move {
                    let stop = async move {
                        let _ = device_halt.wait_for(|h| *h).await;
                    };
                    let devices = crate::simulator::Devices::default();
                    if let Some(link) = link
                        && let Err(error) = crate::simulator::run(link, devices, stop).await
                    {
                        tracing::warn!(%error, "simulated devices stopped");
                    }
                });
                let (edge, vehicles) = (Arc::clone(&self.edge), self.vehicles.clone());
                tasks.spawn(command(edge, vehicles, plan.commands_per_minute, Arc::clone(&counters), halted.clone()));
            }
            if let Some(code) = &self.target.sign_in_code {
                let app = Arc::new(App {
                    edge: Arc::clone(&self.edge),
                    tenant: self.target.tenant.to_string(),
                    code: code.clone(),
                    drivers: Arc::clone(&self.drivers),
                });
                for charger in self.chargers.iter().copied() {
                    tasks.spawn(charge(
                        Arc::clone(&app),
                        charger,
                        plan.ride_length,
                        Arc::clone(&counters),
                        halted.clone(),
                    ));
                }
            }
        } else {
            tracing::warn!(
                "no way to the devices (nats.url): vehicles and chargers stay silent; rides and webhooks run"
            );
        }
        let (edge, vehicles, customers) = (Arc::clone(&self.edge), self.vehicles.clone(), self.customers.clone());
        tasks.spawn(ride(edge, vehicles, customers, plan.clone(), Arc::clone(&counters), halted.clone()));
        if plan.progress {
            tasks.spawn(progress(Arc::clone(&counters), started, halted.clone()));
        }

        let limit = async {
            match plan.duration {
                Some(duration) => tokio::time::sleep(duration).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop => {}
            () = limit => {}
        }
        let seconds = started.elapsed().as_secs_f64();
        let _ = halt.send(true);
        while tasks.join_next().await.is_some() {}
        // Deliveries of the last events are still on their way: a moment for them.
        tokio::time::sleep(Duration::from_secs(1)).await;
        counters.summary(seconds)
    }
}

/// Sends `honk-and-flash` to the fleet's vehicles in turn, `per_minute`, each with a minute to
/// live, follows each to its end and counts how it ended; one still under way when the drive
/// stops (its device stopped too) is not counted.
async fn command(
    edge: Arc<Edge>,
    vehicles: Vec<Uuid>,
    per_minute: f64,
    counters: Arc<Counters>,
    mut halted: tokio::sync::watch::Receiver<bool>,
) {
    if vehicles.is_empty() || !(1.0 / 1440.0..=600_000.0).contains(&per_minute) {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(60.0 / per_minute));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = tokio::task::JoinSet::new();
    for vehicle in vehicles.iter().cycle() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = halted.wait_for(|h| *h) => break,
        }
        let (edge, counters, vehicle) = (Arc::clone(&edge), Arc::clone(&counters), *vehicle);
        let mut halted = halted.clone();
        sent.spawn(async move {
            let path = format!("/vehicles/{vehicle}/commands/honk-and-flash");
            let body = json!({ "ttl_seconds": 60, "wait": false });
            let (status, mut answer) = edge.call("POST", &path, Some(body)).await;
            let id = answer["data"]["id"].as_str().unwrap_or_default().to_owned();
            while matches!(answer["data"]["status"].as_str(), Some("queued" | "sent")) {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = halted.wait_for(|h| *h) => return,
                }
                answer = edge.call("GET", &format!("/vehicle-commands/{id}"), None).await.1;
            }
            match answer["data"]["status"].as_str() {
                Some("succeeded") => {
                    counters.vehicle_commands_succeeded.fetch_add(1, Ordering::Relaxed);
                }
                ended => {
                    let how = ended.map_or_else(|| status.to_string(), str::to_owned);
                    if let Ok(mut failed) = counters.vehicle_commands_failed.lock() {
                        *failed.entry(how).or_default() += 1;
                    }
                }
            }
        });
    }
    while sent.join_next().await.is_some() {}
}

/// Each vehicle reports every `every`, the fleet spread over the interval.
async fn report_states(
    link: DeviceLink,
    tenant: TenantId,
    vehicles: Vec<Uuid>,
    every: Duration,
    counters: Arc<Counters>,
    mut halted: tokio::sync::watch::Receiver<bool>,
) {
    const SLICES: u32 = 10;
    let mut tick = tokio::time::interval((every / SLICES).max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    let slice = vehicles.len().div_ceil(SLICES as usize).max(1);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = halted.wait_for(|h| *h) => return,
        }
        let part = (round % u64::from(SLICES)) as usize;
        round += 1;
        let now = Utc::now();
        let due: Vec<(usize, Uuid)> = vehicles.iter().copied().enumerate().skip(part * slice).take(slice).collect();
        let publishes = due.into_iter().map(|(n, vehicle)| {
            let (link, tenant, counters) = (link.clone(), tenant.clone(), Arc::clone(&counters));
            async move {
                let state = state_of(n, round, now);
                let report =
                    VehicleStateReported { vehicle_id: vehicle, telematics_unit_id: Some(format!("tcu-{n}")), state };
                let envelope = Envelope::new(tenant.clone(), "voltbus/simulate", report);
                match link.publish(subjects::vehicle_state(&tenant, vehicle), &envelope).await {
                    Ok(()) => counters.states.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counters.states_failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        futures_util::stream::iter(publishes).buffer_unordered(256).collect::<Vec<()>>().await;
    }
}

/// A plausible state: moving slowly around Berlin, the battery draining and recharging.
fn state_of(n: usize, round: u64, at: chrono::DateTime<Utc>) -> VehicleState {
    let drift = (round as f64) * 0.0001;
    let position =
        Position { latitude: 52.50 + (n % 100) as f64 * 0.001 + drift, longitude: 13.40 + (n / 100) as f64 * 0.001 };
    let charge = 100 - ((round + n as u64) % 90) as u8;
    VehicleState {
        charge_level: Some(Reading { value: charge, time: at }),
        position: Some(Reading { value: position, time: at }),
        odometer: Some(Reading { value: 10_000 + round * 15, time: at }),
        remaining_range: Some(Reading { value: u32::from(charge) * 400, time: at }),
        ..VehicleState::default()
    }
}

/// Starts rides at the plan's rate, each on a free vehicle with a free customer, and ends it
/// after the ride's length.
async fn ride(
    edge: Arc<Edge>,
    vehicles: Vec<Uuid>,
    customers: Vec<String>,
    plan: Plan,
    counters: Arc<Counters>,
    mut halted: tokio::sync::watch::Receiver<bool>,
) {
    // NaN, infinite or below one a day: no rides.
    if vehicles.is_empty() || customers.is_empty() || !(1.0 / 1440.0..=600_000.0).contains(&plan.rides_per_minute) {
        return;
    }
    let (free, mut take) = tokio::sync::mpsc::unbounded_channel::<(Uuid, String)>();
    for (vehicle, customer) in vehicles.iter().zip(customers.iter().cycle()).take(customers.len()) {
        let _ = free.send((*vehicle, customer.clone()));
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(60.0 / plan.rides_per_minute));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rides = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = halted.wait_for(|h| *h) => break,
        }
        let Ok((vehicle, customer)) = take.try_recv() else { continue };
        let (edge, counters, free, length) = (Arc::clone(&edge), Arc::clone(&counters), free.clone(), plan.ride_length);
        let mut halted = halted.clone();
        rides.spawn(async move {
            let at = Instant::now();
            let (status, started) =
                edge.call("POST", "/rides", Some(json!({ "customer_id": customer, "vehicle_id": vehicle }))).await;
            counters.command(status, at.elapsed(), false);
            if let (201, Some(id)) = (status, started["data"]["id"].as_str()) {
                counters.rides_started.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(length) => {}
                    _ = halted.wait_for(|h| *h) => {}
                }
                let at = Instant::now();
                let end = json!({ "end_latitude": 52.52, "end_longitude": 13.405 });
                let (status, _) = edge.call("POST", &format!("/rides/{id}/end"), Some(end)).await;
                counters.command(status, at.elapsed(), false);
                if status == 200 {
                    counters.rides_ended.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = free.send((vehicle, customer));
        });
    }
    while rides.join_next().await.is_some() {}
}

/// The mobile app's routes, as drivers call them.
struct App {
    edge: Arc<Edge>,
    tenant: String,
    code: String,
    drivers: Arc<AtomicU64>,
}

impl App {
    async fn call(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut headers = vec![("x-tenant", self.tenant.clone())];
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        self.edge.request("POST", &format!("/api/v1{path}"), &headers, Some(body)).await
    }

    /// Signs the driver with `phone` in; the session's token.
    async fn sign_in(&self, phone: &str) -> Option<String> {
        self.call("/user/otp-request", None, json!({ "phone": phone })).await;
        let (status, body) = self.call("/user/otp-check", None, json!({ "phone": phone, "code": self.code })).await;
        let token = body["token"].as_str().map(str::to_owned);
        if token.is_none() {
            tracing::warn!(status, "a simulated driver could not sign in");
        }
        token
    }
}

/// Drivers charging at `charger` one after another, each a new driver (an unpaid purchase
/// would hold its driver back): sign in, start through the app, charge for twice a ride's
/// length (the charger reports its meter meanwhile), finish.
async fn charge(
    app: Arc<App>,
    charger: Uuid,
    length: Duration,
    counters: Arc<Counters>,
    mut halted: tokio::sync::watch::Receiver<bool>,
) {
    // The charger must have reported itself available (the seed's `Idle`) first, up to 10 s.
    for _ in 0..100 {
        let (_, shown) = app.edge.call("GET", &format!("/chargers/{charger}"), None).await;
        if shown["data"]["state"] == "Idle" || *halted.borrow() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while !*halted.borrow() {
        let driver = app.drivers.fetch_add(1, Ordering::Relaxed);
        let Some(token) = app.sign_in(&format!("+4915{driver:08}")).await else { return };
        let at = Instant::now();
        let (status, _) = app.call(&format!("/devices/{charger}/start"), Some(&token), json!({})).await;
        counters.command(status, at.elapsed(), true);
        if status == 200 {
            counters.charging_started.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(length * 2) => {}
                _ = halted.wait_for(|h| *h) => {}
            }
            let at = Instant::now();
            let (status, _) = app.call(&format!("/devices/{charger}/finish"), Some(&token), json!({})).await;
            counters.command(status, at.elapsed(), true);
            if status == 200 {
                counters.charging_finished.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = halted.wait_for(|h| *h) => {}
        }
    }
}

/// A progress line on stderr every second.
async fn progress(counters: Arc<Counters>, started: Instant, mut halted: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = halted.wait_for(|h| *h) => {
                eprintln!();
                return;
            }
        }
        let now = counters.summary(started.elapsed().as_secs_f64());
        eprint!(
            "\r{:>5.0}s  states {} ({:.0}/s)  rides {} started {} ended  charging {}  commands p50 {:.1} ms p99 {:.1} ms  webhooks {} ({} dup)   ",
            now.seconds,
            now.states_published,
            now.states_per_second(),
            now.rides_started,
            now.rides_ended,
            now.charging_started,
            now.command_p50_ms,
            now.command_p99_ms,
            now.webhooks_received,
            now.webhook_duplicates,
        );
    }
}
