//! The platform on clusters (issue 29, part 4): three RabbitMQ nodes and three NATS servers of
//! the test's own (quorum queues, streams of three replicas), an `all`, an `api` and a `worker`
//! voltbus process, a PostgreSQL primary with a synchronous standby behind HAProxy. The load:
//! partner commands (new customers) with idempotency keys through both edges, a webhook receiver
//! subscribed to `customer.created`, a vehicle reporting its state over NATS. In turn, each back
//! before the next: a RabbitMQ follower stops, the node every connection is on stops, a NATS
//! server that leads neither the events nor the telemetry stream dies, the one leading the events
//! stream dies, and the PostgreSQL primary crashes and its standby is promoted. Counts, as the
//! single-node fault suite does (`faults::settle_and_count`), that every acknowledged command is
//! stored once, every event delivered or its delivery logged as failed, every state JetStream
//! acknowledged in the history; prints for each fault how long until commands succeed again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::{TenantId, subjects};
use serde_json::json;
use uuid::Uuid;
use voltbus::{Role, Running, Settings};

use crate::faults::{Receiver, settle_and_count, sql, vehicle};
use crate::private_nats::PrivateNatsCluster;
use crate::private_postgres::PrivatePostgres;
use crate::private_rabbit::PrivateRabbitCluster;
use crate::support::{embedded_settings, request, unique};

const PARTNER: &str = "/api/partner/v1";

/// Partner commands sent, and those acknowledged.
struct Load {
    admin: String,
    edges: Vec<SocketAddr>,
    sent: usize,
    /// Acknowledged customers: email → customer id.
    acknowledged: HashMap<String, String>,
}

impl Load {
    /// Sends `n` commands, alternating edges, each with its own idempotency key, sent again with
    /// it until acknowledged; returns how long the first one took to be.
    async fn send(&mut self, n: usize) -> Duration {
        let mut first = None;
        for _ in 0..n {
            let started = Instant::now();
            let email = format!("c{}@cluster.example", self.sent);
            let idempotency = unique("idem");
            let edge = self.edges[self.sent % self.edges.len()];
            self.sent += 1;
            let body = json!({ "email": email, "name": "Cluster" }).to_string();
            let headers = [("x-partner-api-key", self.admin.as_str()), ("idempotency-key", idempotency.as_str())];
            let path = format!("{PARTNER}/customers");
            let id = loop {
                let (status, answer, _) = request(edge, "POST", &path, &headers, Some(&body)).await;
                match status {
                    201 => break answer["data"]["id"].as_str().unwrap().to_owned(),
                    // The broker or the consumer was away: the same key again.
                    500.. => {
                        assert!(started.elapsed() < Duration::from_secs(120), "never acknowledged: {answer}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    _ => panic!("refused: {status} {answer}"),
                }
            };
            assert!(self.acknowledged.insert(email, id).is_none(), "acknowledged twice");
            first.get_or_insert(started.elapsed());
        }
        first.unwrap_or_default()
    }
}

/// HAProxy in front of a PostgreSQL primary and its standby (a `backup` server: taken only while
/// the primary fails its checks), as the README tells operators to run it: sqlx connects to one
/// host, so the address voltbus is given must follow the primary.
struct Proxy {
    port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Proxy {
    fn start(primary: u16, standby: u16) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = crate::support::scratch_dir();
        let config = [
            "defaults".to_owned(),
            "  mode tcp".to_owned(),
            "  timeout connect 2s".to_owned(),
            "  timeout client 1h".to_owned(),
            "  timeout server 1h".to_owned(),
            "listen postgres".to_owned(),
            format!("  bind 127.0.0.1:{port}"),
            "  option pgsql-check user postgres".to_owned(),
            // Sessions to a server marked down are cut, so the pool reconnects to the next.
            "  default-server inter 300ms fall 2 rise 2 on-marked-down shutdown-sessions".to_owned(),
            format!("  server primary 127.0.0.1:{primary} check"),
            format!("  server standby 127.0.0.1:{standby} check backup"),
        ]
        .join("\n");
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config + "\n").unwrap();
        let binary = ["/usr/sbin/haproxy", "haproxy"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap();
        let child = std::process::Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
            .spawn()
            .expect("haproxy is installed (scripts/test.sh installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child, dir }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a process once JetStream answers (a new cluster elects its meta leader first).
async fn start(settings: &Settings, role: Role) -> Running {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match voltbus::start_as(settings.clone(), role).await {
            Ok(running) => return running,
            Err(error) => {
                assert!(Instant::now() < deadline, "{error:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The server leading `stream` in the cluster `nats` reaches.
async fn leader(nats: &bus::nats::NatsConnection, stream: &str) -> String {
    let info = nats.jetstream().get_stream(stream).await.unwrap().get_info().await.unwrap();
    info.cluster.and_then(|c| c.leader).unwrap_or_else(|| panic!("{stream} has a leader"))
}

/// `POST {PARTNER}{path}` with `body` as the key `admin`: the created object's id.
async fn create(edge: SocketAddr, admin: &str, path: &str, body: serde_json::Value) -> String {
    let headers = [("x-partner-api-key", admin)];
    let (status, created, _) =
        request(edge, "POST", &format!("{PARTNER}{path}"), &headers, Some(&body.to_string())).await;
    assert_eq!(status, 201, "{path}: {created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_clusters_nothing_acknowledged_is_lost_or_doubled_when_nodes_stop() {
    let suite = Instant::now();
    let rabbit = PrivateRabbitCluster::start(3);
    let mut nats = PrivateNatsCluster::start(3);
    // Commits wait for the standby (`synchronous_standby_names`): what was acknowledged before
    // the primary crashed is on the standby that takes its place.
    let primary = PrivatePostgres::start_with(&["synchronous_standby_names='*'"]);
    let standby = primary.standby();
    let proxy = Proxy::start(primary.port(), standby.port());
    let database_url = proxy.url();
    let replication = sql(&primary.url(), "SELECT sync_state FROM pg_stat_replication").await;
    assert_eq!(replication[0].try_get::<String>("", "sync_state").unwrap(), "sync");
    let receiver = Receiver::start().await;
    let mut settings = embedded_settings();
    settings.database.url = Some(database_url.clone().into());
    settings.amqp.url = Some(rabbit.url().into());
    settings.amqp.quorum_size = Some(3);
    settings.nats.url = Some(nats.url().into());
    settings.nats.replicas = 3;
    settings.partner.command_timeout = Duration::from_secs(3);
    settings.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    settings.webhooks.timeout_ms = 2000;
    settings.webhooks.scheduler_interval_ms = 100;
    settings.webhooks.retry_schedule_ms = vec![1000, 2000, 4000, 8000, 15000, 30000];
    let all = start(&settings, Role::All).await;
    let worker = start(&settings, Role::Worker).await;
    let api = start(&settings, Role::Api).await;
    let tenant = unique("org");
    let (admin, _) = voltbus::create_admin_key(&settings, &tenant, "admin").await.unwrap();
    create(api.addr, &admin, "/webhooks", json!({ "url": receiver.url(), "events": ["customer.created"] })).await;
    let vin = json!({ "vin": "CLUSTER1", "subaccount_id": Uuid::now_v7() });
    let vehicle_id: Uuid = create(all.addr, &admin, "/vehicles", vin).await.parse().unwrap();
    let mut load = Load { admin, edges: vec![all.addr, api.addr], sent: 0, acknowledged: HashMap::new() };
    load.send(20).await;

    // A vehicle reports its state every 100 ms through every fault.
    let (acked, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
    let device = bus::nats::NatsConnection::connect(&nats.url(), "cluster-vehicle").await.unwrap();
    let tenant = TenantId::new(&tenant).unwrap();
    let reporter = tokio::spawn(vehicle(device, tenant, vehicle_id, Arc::clone(&acked), Arc::clone(&stop)));
    println!("clusters up, three processes serving, 20 commands: {:?}", suite.elapsed());

    let mut report = Vec::new();
    rabbit.nodes[1].stop();
    report.push(("RabbitMQ follower stopped", load.send(20).await));
    rabbit.nodes[1].boot();
    load.send(10).await;

    // Every connection went to the first node of the list.
    rabbit.nodes[0].stop();
    report.push(("RabbitMQ node every connection was on stopped", load.send(20).await));
    rabbit.nodes[0].boot();
    load.send(10).await;

    let nats_client = bus::nats::NatsConnection::connect(&nats.url(), "voltbus-test").await.unwrap();
    let leaders =
        [leader(&nats_client, subjects::EVENTS_STREAM).await, leader(&nats_client, subjects::TELEMETRY_STREAM).await];
    let follower = (0..nats.nodes.len())
        .find(|&index| leaders.iter().all(|leader| nats.index_of(leader) != Some(index)))
        .expect("three servers, two leaders");
    nats.nodes[follower].kill();
    report.push(("NATS server leading neither the events nor the telemetry stream killed", load.send(20).await));
    nats.nodes[follower].boot();
    load.send(10).await;

    let killed = nats.index_of(&leader(&nats_client, subjects::EVENTS_STREAM).await).expect("a server of this cluster");
    nats.nodes[killed].kill();
    report.push(("NATS server leading the events stream killed", load.send(20).await));
    nats.nodes[killed].boot();
    load.send(10).await;

    primary.crash();
    standby.promote();
    report.push(("PostgreSQL primary crashed, standby promoted", load.send(20).await));
    load.send(10).await;

    stop.store(true, Ordering::SeqCst);
    reporter.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    println!("faults done, settling: {:?}", suite.elapsed());
    let counted = settle_and_count(&database_url, &load.acknowledged, &receiver, vehicle_id, &acked).await;
    for (fault, recovered) in &report {
        println!("{fault}: commands acknowledged again after {recovered:?}");
    }
    println!("counted: {counted}; suite {:?}", suite.elapsed());
    for running in [api, worker, all] {
        running.stop().await.unwrap();
    }
}
