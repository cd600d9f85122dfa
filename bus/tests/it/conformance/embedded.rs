//! The conformance suite on the embedded transport, each test on an SQLite file of its own, as
//! `voltbus serve` runs with no broker configured.

use std::sync::Arc;
use std::time::Duration;

use bus::amqp::{ConsumerOptions, GroupTopology};
use bus::embedded::{EmbeddedBus, EmbeddedConsumer};
use bus::{DeadLetter, Handler, RequestError};
use migrations::{Migrator, MigratorTrait};
use schemas::Envelope;
use schemas::rides::PauseRide;
use schemas::routing;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::Value;

use super::Harness;
use crate::support::{init_logs, unique};

/// Opens (creating) the embedded database file at `path`, migrated.
pub async fn open_embedded(path: &std::path::Path) -> DatabaseConnection {
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    // One writer at a time is all SQLite allows.
    options.max_connections(1).sqlx_logging(false);
    let database = Database::connect(options).await.unwrap();
    Migrator::up(&database, None).await.unwrap();
    database
}

/// A consumer group on an embedded bus of its own.
pub struct Embedded {
    bus: EmbeddedBus,
    topology: GroupTopology,
    handler: Arc<dyn Handler>,
    options: ConsumerOptions,
    database: Option<DatabaseConnection>,
    running: super::Runner,
}

impl Embedded {
    fn key(&self) -> String {
        format!("test.{}", self.topology.group)
    }

    fn spawn(&mut self) {
        let mut consumer = EmbeddedConsumer::new(
            self.bus.clone(),
            self.topology.clone(),
            self.options,
            self.handler.clone(),
            self.database.clone(),
        );
        // Short, so a killed consumer's messages come back within the test.
        consumer.lease = Duration::from_secs(2);
        self.running.start(|stopped| consumer.run(stopped));
    }
}

impl Harness for Embedded {
    async fn start(
        handler: Arc<dyn Handler>,
        retry_delays: Vec<Duration>,
        options: ConsumerOptions,
        database: Option<DatabaseConnection>,
    ) -> Self {
        init_logs();
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("embedded"));
        std::fs::create_dir_all(&dir).unwrap();
        let bus = EmbeddedBus::new(open_embedded(&dir.join("voltbus.db")).await);
        let group = unique("g");
        let topology = GroupTopology {
            group: group.clone(),
            bindings: vec![(routing::COMMANDS_EXCHANGE, format!("test.{group}"))],
            retry_delays,
            quorum_size: None,
        };
        bus.declare(&topology);
        let mut harness = Self { bus, topology, handler, options, database, running: super::Runner::default() };
        harness.spawn();
        harness
    }

    async fn send(&self, envelope: &Envelope<PauseRide>) {
        self.bus.publish(routing::COMMANDS_EXCHANGE, &self.key(), envelope).await.unwrap();
    }

    async fn send_garbage(&self) {
        self.bus
            .publish_raw(routing::COMMANDS_EXCHANGE, &self.key(), b"\x00garbage", uuid::Uuid::now_v7(), None)
            .await
            .unwrap();
    }

    async fn send_version(&self, envelope: &Envelope<PauseRide>, version: &str) {
        let mut json: Value = serde_json::from_slice(&envelope.encode()).unwrap();
        json["dataversion"] = Value::String(version.into());
        let body = json.to_string();
        self.bus
            .publish_raw(
                routing::COMMANDS_EXCHANGE,
                &self.key(),
                body.as_bytes(),
                envelope.id,
                envelope.subject.clone(),
            )
            .await
            .unwrap();
    }

    async fn request(&self, envelope: &Envelope<PauseRide>, timeout: Duration) -> Result<Value, RequestError> {
        self.bus.request_to(routing::COMMANDS_EXCHANGE, &self.key(), envelope, timeout).await
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        bus::embedded::list_dead_letters(&self.bus, &self.topology.dead_letter_queue(), 100).await.unwrap()
    }

    async fn replay(&self, message_id: Option<&str>) -> usize {
        bus::embedded::replay_dead_letters(&self.bus, &self.topology.dead_letter_queue(), message_id).await.unwrap()
    }

    async fn pending(&self) -> u64 {
        let sql = format!("SELECT count(*) AS n FROM bus_queue WHERE queue = '{}'", self.topology.work_queue());
        let database = self.bus_database();
        let row = database
            .query_one_raw(Statement::from_string(database.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        u64::try_from(row.try_get::<i64>("", "n").unwrap()).unwrap()
    }

    async fn force_disconnect(&mut self) {
        // No connection to cut in process: the nearest fault is the consumer vanishing mid-stream.
        self.kill_and_restart().await;
    }

    async fn kill_and_restart(&mut self) {
        self.running.kill();
        self.spawn();
    }

    async fn stop(&mut self) {
        self.running.stop().await;
    }

    async fn finish(mut self) {
        self.stop().await;
    }
}

impl Embedded {
    fn bus_database(&self) -> DatabaseConnection {
        self.bus.database().clone()
    }
}

super::conformance!(Embedded);

/// What a publish confirmed is in the database file: it survives the process.
#[tokio::test]
async fn confirmed_messages_survive_a_restart() {
    use crate::support::{Scripted, eventually, pause_ride, tenant};

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("embedded"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("voltbus.db");
    let group = unique("g");
    let topology = GroupTopology {
        group: group.clone(),
        bindings: vec![(routing::COMMANDS_EXCHANGE, "test.restart".into())],
        retry_delays: vec![],
        quorum_size: None,
    };
    let tenant = tenant();
    let mut sent = Vec::new();
    {
        let bus = EmbeddedBus::new(open_embedded(&path).await);
        bus.declare(&topology);
        for _ in 0..50 {
            let envelope = pause_ride(uuid::Uuid::now_v7(), &tenant);
            sent.push(envelope.id);
            bus.publish(routing::COMMANDS_EXCHANGE, "test.restart", &envelope).await.unwrap();
        }
        bus.database().clone().close().await.unwrap();
    }
    // A new process: the same file, a consumer, and everything confirmed before is there.
    let bus = EmbeddedBus::new(open_embedded(&path).await);
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let consumer = EmbeddedConsumer::new(bus.clone(), topology, ConsumerOptions::default(), handler.clone(), None);
    let mut running = super::Runner::default();
    running.start(|stopped| consumer.run(stopped));
    assert!(eventually(Duration::from_secs(10), || handler.calls.lock().unwrap().len() == 50).await);
    let mut handled: Vec<_> = handler.calls.lock().unwrap().iter().map(|c| c.0).collect();
    handled.sort();
    assert_eq!(handled, sent, "every confirmed message, once (different rides run in parallel lanes)");
    running.stop().await;
}
