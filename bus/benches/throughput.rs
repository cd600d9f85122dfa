//! Throughput of the bus against bare clients, side by side on the same brokers in one run.
//!
//! `cargo bench -p voltbus-bus --bench throughput` prints msgs/s for each pair and the ratio, and
//! writes them to `target/bench-bus.txt`. Needs RabbitMQ, NATS (JetStream) and PostgreSQL, as
//! `scripts/test.sh` starts them. `BENCH_MESSAGES` sets the message count (default 20,000),
//! `BENCH_LANES` the runtimes' lanes (default 16).

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bus::amqp::{AmqpConnection, AmqpConsumer, ConsumerOptions, GroupTopology, properties_of};
use bus::nats::NatsConnection;
use bus::outbox::{Destination, Publisher, Relay, enqueue};
use bus::{Context, Handler, HandlerError, Reply};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use migrations::{Migrator, MigratorTrait};
use schemas::rides::RidePaused;
use schemas::{Envelope, TenantId, routing, subjects};
use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
use uuid::Uuid;

/// Publishes (or acks) kept in flight at once, the same for bare clients and the bus.
const WINDOW: usize = 1000;
const PREFETCH: u16 = 500;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn event(tenant: &TenantId) -> Envelope<RidePaused> {
    Envelope::new(
        tenant.clone(),
        "voltbus/bench",
        RidePaused {
            ride_id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            vehicle_id: Uuid::now_v7(),
            paused_at: chrono::Utc::now(),
            subaccount_id: Uuid::now_v7(),
        },
    )
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Runs `make(i)` for i in 0..n with at most `WINDOW` futures in flight.
async fn windowed<F, Fut, E>(n: usize, make: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Debug,
{
    let start = Instant::now();
    let mut in_flight: FuturesUnordered<Fut> = FuturesUnordered::new();
    for i in 0..n {
        if in_flight.len() >= WINDOW {
            in_flight.next().await.unwrap().expect("publish failed");
        }
        in_flight.push(make(i));
    }
    while let Some(result) = in_flight.next().await {
        result.expect("publish failed");
    }
    start.elapsed()
}

/// Starts a consumer runtime, returns how long it took to handle `n` messages, then stops it.
async fn until_handled<Fut>(
    handled: &AtomicUsize,
    n: usize,
    run: impl FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
) -> Duration
where
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let task = tokio::spawn(run(Box::pin(async move {
        let _ = stopped.await;
    })));
    while handled.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    let _ = stop.send(());
    task.await.unwrap();
    elapsed
}

struct Noop(Arc<AtomicUsize>);

impl Handler for Noop {
    fn handle<'a>(&'a self, _: Context<'a>) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(None) })
    }
}

struct Report(String);

impl Report {
    fn pair(&mut self, what: &str, bare: f64, ours: f64) {
        let line = format!("{what:<44} bare {bare:>9.0} msg/s   bus {ours:>9.0} msg/s   ratio {:.2}", ours / bare);
        println!("{line}");
        writeln!(self.0, "{line}").unwrap();
    }

    fn single(&mut self, what: &str, value: f64) {
        let line = format!("{what:<44} {value:>9.0} msg/s");
        println!("{line}");
        writeln!(self.0, "{line}").unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: usize = env("BENCH_MESSAGES", "20000").parse().unwrap();
    let amqp_url = env("VOLTBUS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let nats_url = env("VOLTBUS_TEST_NATS", "nats://127.0.0.1:4222");
    let postgres_url = env("VOLTBUS_TEST_POSTGRES", "postgres://postgres:postgres@127.0.0.1:5432/test");
    // A tenant of its own per run: the streams keep earlier runs' messages, and consumers that
    // start at the beginning of a subject must see only this run's.
    let tenant = TenantId::new(format!("bench-{}", &Uuid::now_v7().simple().to_string()[20..])).unwrap();
    let envelopes: Vec<_> = (0..n).map(|_| event(&tenant)).collect();
    let mut report = Report(format!("messages: {n}, window: {WINDOW}, prefetch: {PREFETCH}\n"));
    println!("{}", report.0.trim());

    // ---- RabbitMQ publish: persistent, confirmed, pipelined -------------------------------
    let amqp = AmqpConnection::connect(&amqp_url, "voltbus-bench").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let group = format!("bench-{}", &Uuid::now_v7().simple().to_string()[24..]);
    let topology = GroupTopology {
        group: group.clone(),
        bindings: vec![(routing::EVENTS_EXCHANGE, routing::tenant_events_binding(&tenant))],
        retry_delays: vec![],
        quorum_size: None,
    };
    topology.declare(&amqp).await.unwrap();
    let admin = amqp.channel().await.unwrap();
    let key = routing::event_key_of(&tenant, &event(&tenant).data);

    let bare = amqp.channel().await.unwrap();
    bare.confirm_select(ConfirmSelectOptions { nowait: false }).await.unwrap();
    // Both sides serialize the same envelopes inside the timed loop, as an application must.
    let bare_publish = windowed(n, |i| {
        let (bare, key, body, props) = (&bare, &key, envelopes[i].encode(), properties_of(&envelopes[i]));
        async move {
            let confirm = bare
                .basic_publish(
                    routing::EVENTS_EXCHANGE.into(),
                    key.as_str().into(),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &body,
                    props,
                )
                .await?;
            let confirmation = confirm.await?;
            assert!(confirmation.is_ack() && confirmation.take_message().is_none());
            Ok::<(), lapin::Error>(())
        }
    })
    .await;
    admin.queue_purge(topology.work_queue().as_str().into(), QueuePurgeOptions { nowait: false }).await.unwrap();
    let bus_publish = windowed(n, |i| amqp.publish(routing::EVENTS_EXCHANGE, &key, &envelopes[i])).await;
    report.pair("RabbitMQ publish (persistent, confirmed)", rate(n, bare_publish), rate(n, bus_publish));

    // ---- RabbitMQ consume -> no-op -> ack -------------------------------------------------
    // The queue now holds the bus's n messages: the bare loop consumes them, then they are
    // published again for the runtime.
    let channel = amqp.channel().await.unwrap();
    channel.basic_qos(PREFETCH, BasicQosOptions { global: false }).await.unwrap();
    let mut consumer = channel
        .basic_consume(
            topology.work_queue().as_str().into(),
            "bench-bare".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let delivery = consumer.next().await.unwrap().unwrap();
        delivery.ack(BasicAckOptions { multiple: false }).await.unwrap();
    }
    let bare_consume = start.elapsed();
    channel.close(200, "done".into()).await.unwrap();
    windowed(n, |i| amqp.publish(routing::EVENTS_EXCHANGE, &key, &envelopes[i])).await;

    let handled = Arc::new(AtomicUsize::new(0));
    let runtime = AmqpConsumer::new(
        amqp_url.clone(),
        topology.clone(),
        ConsumerOptions { prefetch: PREFETCH, lanes: env("BENCH_LANES", "16").parse().unwrap() },
        Arc::new(Noop(handled.clone())),
        None,
    );
    let bus_consume = until_handled(&handled, n, |stopped| runtime.run(stopped)).await;
    report.pair("RabbitMQ consume -> no-op -> ack", rate(n, bare_consume), rate(n, bus_consume));
    for queue in [topology.work_queue(), topology.dead_letter_queue()] {
        let _ = admin.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    }

    // ---- NATS JetStream publish: stored, acked, de-duplicated by Nats-Msg-Id ---------------
    let nats = NatsConnection::connect(&nats_url, "voltbus-bench").await.unwrap();
    nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
    let client = async_nats::connect(&nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let subject = subjects::event(&tenant, schemas::descriptor_of("ride.paused").unwrap());
    // The bare side sends the same message: CloudEvents attributes as headers, data as body.
    let bare_js = windowed(n, |i| {
        let (js, subject, binary) = (&js, subject.clone(), envelopes[i].to_binary());
        async move {
            let mut headers = async_nats::HeaderMap::new();
            for attribute in binary.attributes {
                headers.insert(format!("ce-{}", attribute.name).as_str(), attribute.value);
            }
            headers.insert("content-type", "application/json");
            headers.insert(async_nats::header::NATS_MESSAGE_ID, Uuid::now_v7().to_string().as_str());
            js.publish_with_headers(subject, headers, binary.body.into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        }
    })
    .await;
    let fresh: Vec<_> = (0..n).map(|_| event(&tenant)).collect();
    let bus_js = windowed(n, |i| nats.publish_durable(subject.clone(), &fresh[i])).await;
    report.pair("NATS JetStream publish (acked)", rate(n, bare_js), rate(n, bus_js));

    // ---- NATS JetStream consume -> no-op -> ack -----------------------------------------------
    // Durable consumers read the same stored messages: bare loops, then the runtime. The runtime
    // acks with `ack` (not waiting for the server), as the first bare loop does; a bare loop that
    // waits for each ack (`double_ack`) is printed for reference.
    let stream = nats.jetstream().get_stream(subjects::EVENTS_STREAM).await.unwrap();
    let bare_consume_js = |name: String, double: bool| {
        let (stream, subject) = (stream.clone(), subject.clone());
        async move {
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some(name),
                    filter_subject: subject,
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    max_ack_pending: i64::from(PREFETCH),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut messages =
                consumer.stream().max_messages_per_batch(usize::from(PREFETCH)).messages().await.unwrap();
            let start = Instant::now();
            let mut seen = 0;
            while seen < n {
                match messages.next().await {
                    Some(Ok(message)) => {
                        if double {
                            message.double_ack().await.unwrap()
                        } else {
                            message.ack().await.unwrap()
                        }
                        seen += 1;
                    }
                    Some(Err(_)) => continue,
                    None => break,
                }
            }
            start.elapsed()
        }
    };
    let group = format!("bench_{}", &Uuid::now_v7().simple().to_string()[24..]);
    let bare_double = bare_consume_js(format!("{group}_bare"), true).await;
    let bare_single = bare_consume_js(format!("{group}_bare_ack"), false).await;
    let handled = Arc::new(AtomicUsize::new(0));
    let js_topology =
        bus::nats::JetStreamGroup::new(format!("{group}_bus"), subjects::EVENTS_STREAM, subject.clone(), vec![]);
    let runtime = bus::nats::JetStreamConsumer::new(
        nats.clone(),
        js_topology,
        ConsumerOptions { prefetch: PREFETCH, lanes: env("BENCH_LANES", "16").parse().unwrap() },
        Arc::new(Noop(handled.clone())),
        None,
    );
    let bus_consume_js = until_handled(&handled, n, |stopped| runtime.run(stopped)).await;
    report.pair("NATS JetStream consume -> no-op -> ack", rate(n, bare_single), rate(n, bus_consume_js));
    report.single("  (bare loop waiting for each ack: double_ack)", rate(n, bare_double));
    for name in [format!("{group}_bare"), format!("{group}_bare_ack"), format!("{group}_bus")] {
        let _ = stream.delete_consumer(&name).await;
    }
    let _ = stream.purge().filter(subject.clone()).await;

    // ---- Outbox relay: committed rows -> broker-confirmed ---------------------------------
    let admin_db = Database::connect(&postgres_url).await.unwrap();
    let name = format!("vb_bench_{}", &Uuid::now_v7().simple().to_string()[24..]);
    admin_db
        .execute_raw(Statement::from_string(admin_db.get_database_backend(), format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let db = Database::connect(format!("{}/{name}", postgres_url.rsplit_once('/').unwrap().0)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let relay_topology = GroupTopology {
        group: format!("{group}-relay"),
        bindings: vec![(routing::EVENTS_EXCHANGE, routing::tenant_events_binding(&tenant))],
        retry_delays: vec![],
        quorum_size: None,
    };
    relay_topology.declare(&amqp).await.unwrap();
    let rows: Vec<_> = (0..n).map(|_| event(&tenant)).collect();
    for chunk in rows.chunks(1000) {
        let tx = db.begin().await.unwrap();
        for envelope in chunk {
            enqueue(&tx, envelope, &Destination::event(&tenant, &envelope.data)).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let relay = Relay::new(db.clone(), Publisher { amqp: Some(Arc::new(amqp)), ..Publisher::default() }, 1000);
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        sent += relay.relay_once().await.unwrap();
    }
    report.single("Outbox relay (committed row -> confirmed)", rate(n, start.elapsed()));
    for queue in [relay_topology.work_queue(), relay_topology.dead_letter_queue()] {
        let _ = admin.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    }
    db.close().await.unwrap();
    admin_db
        .execute_raw(Statement::from_string(admin_db.get_database_backend(), format!("DROP DATABASE {name}")))
        .await
        .unwrap();

    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-bus.txt");
    std::fs::write(&out, &report.0).unwrap();
    println!("written to {}", out.display());
}
