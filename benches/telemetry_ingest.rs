//! Sustained telemetry ingest on this machine's PostgreSQL and RabbitMQ and a nats-server of the
//! bench's own, everything (load generator included) on the same 2 cores:
//!
//! - 10,000 vehicles (`BENCH_VEHICLES`) each report in turn, `BENCH_STATES` states in all
//!   (default 200,000), published to JetStream as fast as the stream acknowledges them;
//! - measured: from the first publish until the last `VehicleStateReceived` reached a subscriber's
//!   RabbitMQ queue (so each state was in the latest state and the history, committed, and its
//!   event confirmed by the broker);
//! - in the same run, a bare async-nats pull consumer on the same stream that only counts (and
//!   acks) the same messages, and the ratio of the two;
//! - the CPU seconds each party used during the run (this process holds voltbus, the load
//!   generator, the bare consumer and the subscriber);
//! - before the run, the broker alone: as many `VehicleStateReceived`, encoded beforehand,
//!   published the way the ingest publishes them to a queue of their own until the last arrived,
//!   which bounds what the ingest can reach on this machine.
//!
//! - then, in the same run, `BENCH_MQTT_STATES` (default 50,000) plain states published by MQTT
//!   units (rumqttc, QoS 1, 4 connections of 100 in flight) through NATS's own MQTT listener,
//!   measured from the first publish until the history holds them all: the MQTT ingest rate beside
//!   the NATS one.
//!
//! - then the same NATS ingest again with the subscription deleted: no `VehicleStateReceived` is
//!   published (issue 28), measured until the history holds the states, with the CPU split.
//!
//! `cargo bench --bench telemetry_ingest`; `BENCH_BATCH` sets the ingest's batch. Figures go to
//! stdout and to `target/bench-telemetry.txt`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use bus::outbox::{Destination, Outgoing, Publisher};
use chrono::{TimeDelta, Utc};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use schemas::vehicles::{IgnitionState, Position, Reading, VehicleState, VehicleStateReceived, VehicleStateReported};
use schemas::{Envelope, TenantId, routing, subjects};
use sea_orm::{ConnectionTrait, Database, Statement};
use uuid::Uuid;

mod support;

use support::{BenchPlatform, cpu_seconds, number};

// The allocator `voltbus serve` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "bench";

/// Adds `count` vehicles straight into the database (setting up, not measured) and returns their ids.
async fn vehicles(database_url: &str, count: u64) -> Vec<Uuid> {
    let db = Database::connect(database_url).await.expect("PostgreSQL");
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let subaccount = Uuid::now_v7();
    for chunk in ids.chunks(1_000) {
        let rows = |f: &dyn Fn(&Uuid, usize) -> String| {
            chunk.iter().enumerate().map(|(i, id)| f(id, i)).collect::<Vec<_>>().join(",")
        };
        let vehicles = rows(&|id, i| {
            format!(
                "('{id}', '{TENANT}', '{subaccount}', 'VIN{}', 'V{i}', 'scooter', '{{}}', '[]', 'available', now(), now())",
                id.simple()
            )
        });
        let states = rows(&|id, _| format!("('{id}', '{TENANT}')"));
        for sql in [
            format!(
                "INSERT INTO vehicles (vehicle_id, tenant, subaccount_id, vin, vehicle_number, vehicle_type, \
                 custom_fields, capabilities, status, created_at, updated_at) VALUES {vehicles}"
            ),
            format!("INSERT INTO vehicle_states (vehicle_id, tenant) VALUES {states}"),
        ] {
            db.execute_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("vehicles added");
        }
    }
    db.close().await.expect("closed");
    ids
}

fn report(tenant: &TenantId, vehicle: Uuid, n: u64) -> Envelope<VehicleStateReported> {
    let time = Utc::now() - TimeDelta::seconds(1);
    let wobble = (n % 100) as f64 * 1e-4;
    let state = VehicleState {
        charge_level: Some(Reading { value: 100 - (n % 90) as u8, time }),
        position: Some(Reading { value: Position { latitude: 52.5 + wobble, longitude: 13.4 + wobble }, time }),
        odometer: Some(Reading { value: 1_000 + n, time }),
        remaining_range: Some(Reading { value: 30_000, time }),
        speed: Some(Reading { value: 18.5, time }),
        central_lock: None,
        ignition: Some(Reading { value: IgnitionState::On, time }),
    };
    Envelope::new(
        tenant.clone(),
        "bench/device",
        VehicleStateReported { vehicle_id: vehicle, telematics_unit_id: None, state },
    )
}

/// CPU seconds of each party, read at one moment.
#[derive(Clone, Copy)]
struct Cpu {
    this: f64,
    postgres: f64,
    rabbitmq: f64,
    nats: f64,
}

impl Cpu {
    fn read(nats: u32) -> Self {
        let me = std::process::id();
        Self {
            this: cpu_seconds(|pid, _| pid == me),
            postgres: cpu_seconds(|_, name| name == "postgres"),
            rabbitmq: cpu_seconds(|_, name| name == "beam.smp"),
            nats: cpu_seconds(|pid, _| pid == nats),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            this: self.this - before.this,
            postgres: self.postgres - before.postgres,
            rabbitmq: self.rabbitmq - before.rabbitmq,
            nats: self.nats - before.nats,
        }
    }

    /// States per second the machine's cores could carry if this process (voltbus and the load
    /// generator) took none of them: what the brokers and the database alone allow.
    fn ceiling(self, states: u64) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        cores * states as f64 / (self.postgres + self.rabbitmq + self.nats)
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "voltbus + load generator {:.1} s, PostgreSQL {:.1} s, RabbitMQ {:.1} s, NATS {:.1} s",
            self.this, self.postgres, self.rabbitmq, self.nats
        )
    }
}

/// The broker alone: `count` `VehicleStateReceived`, encoded beforehand, published as the ingest
/// publishes them (batches of `batch` awaiting their confirms, four lanes at once) to a queue of
/// their own until the last arrived; its rate and RabbitMQ's CPU seconds.
async fn broker_alone(
    amqp: &bus::amqp::AmqpConnection,
    url: &str,
    tenant: &TenantId,
    ids: &[Uuid],
    count: u64,
    batch: usize,
) -> (f64, f64) {
    let events: Vec<Outgoing> = (0..count)
        .map(|n| {
            let report = report(tenant, ids[(n % ids.len() as u64) as usize], n);
            let received = VehicleStateReceived {
                vehicle_id: report.data.vehicle_id,
                subaccount_id: Uuid::now_v7(),
                state: report.data.state.clone(),
            };
            let destination = Destination::event(tenant, &received);
            Outgoing::new(&Envelope::new(tenant.clone(), "bench/broker", received).caused_by(&report), destination)
        })
        .collect();
    let (channel, mut deliveries, queue) = subscriber(amqp, tenant, "bench-broker").await;
    let publisher = Publisher {
        amqp: Some(Arc::new(bus::amqp::AmqpConnection::connect(url, "bench-broker").await.expect("RabbitMQ"))),
        ..Default::default()
    };
    let before = cpu_seconds(|_, name| name == "beam.smp");
    let start = Instant::now();
    let arrived = tokio::spawn(async move {
        for _ in 0..count {
            deliveries.next().await.expect("delivery").expect("delivered");
        }
        Instant::now()
    });
    futures_util::stream::iter(events.chunks(batch))
        .map(|chunk| publisher.publish_all(chunk))
        .buffer_unordered(4)
        .for_each(|outcome| async move { outcome.expect("confirmed") })
        .await;
    let rate = count as f64 / (arrived.await.expect("arrived") - start).as_secs_f64();
    let used = cpu_seconds(|_, name| name == "beam.smp") - before;
    // Exclusive queues live as long as their connection, which the ingest's subscriber goes on using.
    channel.queue_delete(queue.as_str().into(), Default::default()).await.expect("queue deleted");
    (rate, used)
}

/// A queue of this process's bound to `tenant`'s `VehicleStateReceived`, and its deliveries
/// (acknowledged on delivery: the subscriber is the load generator's, on the same 2 cores).
async fn subscriber(
    amqp: &bus::amqp::AmqpConnection,
    tenant: &TenantId,
    tag: &str,
) -> (lapin::Channel, lapin::Consumer, String) {
    let channel = amqp.channel().await.expect("channel");
    let queue = channel
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("queue");
    let key = routing::tenant_event_binding(
        tenant,
        schemas::descriptor_of(<VehicleStateReceived as schemas::Message>::TYPE).expect("catalogued"),
    );
    channel
        .queue_bind(
            queue.name().clone(),
            routing::EVENTS_EXCHANGE.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bound");
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let deliveries =
        channel.basic_consume(queue.name().clone(), tag.into(), no_ack, FieldTable::default()).await.expect("consume");
    (channel, deliveries, queue.name().to_string())
}

/// Publishes reports numbered `numbers` to JetStream, every vehicle in turn, as fast as the
/// stream acknowledges them (2,000 in flight).
async fn publish(nats: &bus::nats::NatsConnection, tenant: &TenantId, ids: &[Uuid], numbers: std::ops::Range<u64>) {
    futures_util::stream::iter(numbers)
        .map(|n| {
            let vehicle = ids[(n % ids.len() as u64) as usize];
            async move {
                let envelope = report(tenant, vehicle, n);
                nats.publish_durable(subjects::vehicle_state(tenant, vehicle), &envelope).await.expect("stored");
            }
        })
        .buffer_unordered(2_000)
        .collect::<Vec<()>>()
        .await;
}

/// Records a partner's subscription to `VehicleStateReceived` (the ingest publishes the event only
/// while one can receive it); the bench's own queue is what reads it.
async fn subscribe(database_url: &str) {
    let db = Database::connect(database_url).await.expect("PostgreSQL");
    let sql = format!(
        "INSERT INTO subscriptions (subscription_id, tenant, name, queue, username, events, created_at) \
         VALUES ('{}', '{TENANT}', 'bench', 'voltbus.subscriber.{TENANT}.bench', 'bench', '[\"VehicleStateReceived\"]', now())",
        Uuid::now_v7()
    );
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("subscription recorded");
    db.close().await.expect("closed");
}

/// Waits until the history holds `states` rows; the time since `start`.
async fn history_reaches(db: &sea_orm::DatabaseConnection, count: &Statement, states: u64, start: Instant) -> Duration {
    loop {
        let row = db.query_one_raw(count.clone()).await.expect("count").expect("row");
        if u64::try_from(row.try_get::<i64>("", "n").expect("n")).unwrap_or(0) >= states {
            return start.elapsed();
        }
        // Counting the history is a scan: at 50 ms it took PostgreSQL 7 of its 11 CPU seconds
        // from the ingest it measures.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Publishes `states` plain vehicle states (QoS 1) from 4 MQTT connections, every vehicle in
/// turn, until each was acknowledged.
async fn mqtt_publish(port: u16, tenant: &TenantId, ids: &[Uuid], states: u64) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    const CONNECTIONS: u64 = 4;
    let mut units = Vec::new();
    for connection in 0..CONNECTIONS {
        let mut options = MqttOptions::new(format!("bench-unit-{connection}"), "127.0.0.1", port);
        options.set_inflight(100).set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 100);
        let mine = states / CONNECTIONS + u64::from(connection < states % CONNECTIONS);
        let acked = tokio::spawn(async move {
            let mut acked = 0;
            while acked < mine {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(error) => panic!("MQTT connection {connection}: {error}"),
                }
            }
        });
        let (tenant, ids) = (tenant.clone(), ids.to_vec());
        let publishing = tokio::spawn(async move {
            for n in (connection..states).step_by(CONNECTIONS as usize) {
                let vehicle = ids[(n % ids.len() as u64) as usize];
                let topic = subjects::vehicle_state(&tenant, vehicle).replace('.', "/");
                let body = serde_json::to_vec(&report(&tenant, vehicle, n).data.state).expect("state");
                client.publish(topic, QoS::AtLeastOnce, false, body).await.expect("queued");
            }
            client
        });
        units.push((publishing, acked));
    }
    for (publishing, acked) in units {
        let client = publishing.await.expect("published");
        acked.await.expect("acknowledged");
        let _ = client.disconnect().await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let vehicle_count = number("BENCH_VEHICLES", 10_000);
    let states = number("BENCH_STATES", 200_000);
    let batch = number("BENCH_BATCH", voltbus::Settings::default().fleet.telemetry_batch as u64);
    let mqtt_states = number("BENCH_MQTT_STATES", 50_000);
    let mqtt_port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mqtt = format!("server_name: bench-mqtt\nmqtt {{ listen: 127.0.0.1:{mqtt_port} }}\n");
    let nats_server = support::private_nats::PrivateNats::with_config(&mqtt);
    let platform = BenchPlatform::start(|s| {
        s.nats.url = Some(nats_server.url().into());
        s.fleet.telemetry_batch = usize::try_from(batch).expect("BENCH_BATCH");
    })
    .await;
    let database_url = platform.settings.database.url.as_deref().expect("database");
    let ids = vehicles(database_url, vehicle_count).await;
    subscribe(database_url).await;
    let tenant = TenantId::new(TENANT).expect("tenant");

    let amqp_url = platform.settings.amqp.url.clone().expect("amqp");
    let amqp = bus::amqp::AmqpConnection::connect(&amqp_url, "bench-subscriber").await.expect("RabbitMQ");
    let batch_size = usize::try_from(batch).expect("BENCH_BATCH");
    let (broker_rate, broker_cpu) = broker_alone(&amqp, &amqp_url, &tenant, &ids, states, batch_size).await;

    // The subscriber: a queue bound to the tenant's `VehicleStateReceived`, counting arrivals.
    let (_channel, mut deliveries, _) = subscriber(&amqp, &tenant, "bench").await;
    let received = Arc::new(AtomicU64::new(0));
    let received_done = {
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            while let Some(Ok(_)) = deliveries.next().await {
                if received.fetch_add(1, Ordering::Relaxed) + 1 == states {
                    return Instant::now();
                }
            }
            Instant::now()
        })
    };

    // The bare consumer: same stream, same subjects, counts and acks.
    let nats = bus::nats::NatsConnection::connect(&nats_server.url(), "bench-device").await.expect("NATS");
    let stream = nats.jetstream().get_stream(subjects::TELEMETRY_STREAM).await.expect("stream");
    let bare = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench-bare".into()),
            filter_subject: subjects::every_vehicle_state(),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 4_000,
            ..Default::default()
        })
        .await
        .expect("bare consumer");
    let bare_done = tokio::spawn(async move {
        let mut messages = bare.messages().await.expect("messages");
        let mut count = 0;
        while let Some(Ok(message)) = messages.next().await {
            let _ = message.ack().await;
            count += 1;
            if count == states {
                break;
            }
        }
        Instant::now()
    });

    // Publish: every vehicle in turn, as fast as the stream acknowledges (2,000 in flight).
    let cpu_before = Cpu::read(nats_server.pid());
    let start = Instant::now();
    publish(&nats, &tenant, &ids, 0..states).await;
    let published = start.elapsed();
    // When the last state was committed (the history holds every report).
    let db = Database::connect(platform.settings.database.url.as_deref().expect("database")).await.expect("PostgreSQL");
    let count = Statement::from_string(db.get_database_backend(), "SELECT count(*) AS n FROM vehicle_state_history");
    let committed = history_reaches(&db, &count, states, start).await;
    let derived = Statement::from_string(
        db.get_database_backend(),
        "SELECT type_name, count(*) AS n FROM outbox GROUP BY type_name ORDER BY type_name",
    );
    let derived: Vec<String> = db
        .query_all_raw(derived)
        .await
        .expect("derived events")
        .iter()
        .map(|row| {
            let name: String = row.try_get("", "type_name").expect("type");
            format!("{} {name}", row.try_get::<i64>("", "n").expect("n"))
        })
        .collect();
    db.close().await.expect("closed");
    eprintln!("  (all {states} states committed after {:.1} s)", committed.as_secs_f64());
    let bare_at = tokio::time::timeout(Duration::from_secs(600), bare_done).await.expect("bare done").expect("bare");
    let ingested_at = tokio::time::timeout(Duration::from_secs(1_200), received_done)
        .await
        .expect("every state ingested")
        .expect("ingest");
    let cpu = Cpu::read(nats_server.pid()).since(cpu_before);
    let (bare, ingest) = (bare_at - start, ingested_at - start);

    // The same ingest, its states coming from MQTT units through NATS's MQTT listener.
    let mqtt_start = Instant::now();
    mqtt_publish(mqtt_port, &tenant, &ids, mqtt_states).await;
    let mqtt_published = mqtt_start.elapsed();
    let db = Database::connect(platform.settings.database.url.as_deref().expect("database")).await.expect("PostgreSQL");
    let mqtt_committed = history_reaches(&db, &count, states + mqtt_states, mqtt_start).await;

    // The same NATS ingest with nobody subscribed: the ingest publishes no VehicleStateReceived.
    let unsubscribe = Statement::from_string(db.get_database_backend(), "DELETE FROM subscriptions");
    db.execute_raw(unsubscribe).await.expect("subscription deleted");
    // Past the ingest's 500 ms view of who listens.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quiet_cpu_before = Cpu::read(nats_server.pid());
    let quiet_start = Instant::now();
    publish(&nats, &tenant, &ids, states + mqtt_states..2 * states + mqtt_states).await;
    let quiet = history_reaches(&db, &count, 2 * states + mqtt_states, quiet_start).await;
    let quiet_cpu = Cpu::read(nats_server.pid()).since(quiet_cpu_before);
    db.close().await.expect("closed");
    let rate = |d: Duration| states as f64 / d.as_secs_f64();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "telemetry ingest: {states} states of {vehicle_count} vehicles, batches of up to {batch}, load generator on the same 2 cores"
    );
    let _ = writeln!(report, "  published to JetStream in {:.1} s ({:.0}/s)", published.as_secs_f64(), rate(published));
    let _ = writeln!(
        report,
        "  ingest, NATS in → latest state + history committed: {:.0} states/s ({:.1} s)",
        rate(committed),
        committed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "  ingest, NATS in → latest state + history committed → VehicleStateReceived confirmed on RabbitMQ: {:.0} states/s ({:.1} s)",
        rate(ingest),
        ingest.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "  bare async-nats pull consumer counting the same messages: {:.0} msg/s ({:.1} s)",
        rate(bare),
        bare.as_secs_f64()
    );
    let _ = writeln!(report, "  ratio ingest / bare: {:.2}", rate(ingest) / rate(bare));
    let mqtt_rate = |d: Duration| mqtt_states as f64 / d.as_secs_f64();
    let _ = writeln!(
        report,
        "  MQTT units (QoS 1 through NATS's MQTT listener, plain state bodies): {mqtt_states} published in {:.1} s ({:.0}/s); \
         ingest, MQTT in → latest state + history committed: {:.0} states/s ({:.1} s); ratio MQTT / NATS ingest: {:.2}",
        mqtt_published.as_secs_f64(),
        mqtt_rate(mqtt_published),
        mqtt_rate(mqtt_committed),
        mqtt_committed.as_secs_f64(),
        mqtt_rate(mqtt_committed) / rate(committed),
    );
    let _ = writeln!(report, "  CPU during the run: {cpu}");
    let _ = writeln!(
        report,
        "  with no subscriber (no VehicleStateReceived published), NATS in → latest state + history committed: {:.0} states/s ({:.1} s); ratio to the run with one: {:.2}; CPU: {quiet_cpu}",
        rate(quiet),
        quiet.as_secs_f64(),
        rate(quiet) / rate(committed),
    );
    let _ = writeln!(
        report,
        "  ceiling on this machine's cores were voltbus and the load generator free (the brokers' and PostgreSQL's CPU per state): {:.0} states/s",
        cpu.ceiling(states)
    );
    let _ = writeln!(report, "  derived events through the outbox: {}", derived.join(", "));
    let _ = writeln!(
        report,
        "  RabbitMQ alone, the same number of VehicleStateReceived published as the ingest does and delivered: {broker_rate:.0}/s, RabbitMQ {broker_cpu:.1} CPU s"
    );
    print!("{report}");
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-telemetry.txt"), &report);
    nats.close().await;
    amqp.close().await;
    platform.stop().await;
}
