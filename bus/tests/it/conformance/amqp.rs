//! The conformance suite on RabbitMQ.

use std::sync::Arc;
use std::time::Duration;

use bus::amqp::{AmqpConnection, AmqpConsumer, ConsumerOptions, GroupTopology, Requester};
use bus::{DeadLetter, Handler, RequestError};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use schemas::Envelope;
use schemas::rides::PauseRide;
use schemas::routing;
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::Harness;
use crate::support::{amqp_url, init_logs, unique};

/// A consumer group on the shared RabbitMQ, with queues of its own.
pub struct Amqp {
    topology: GroupTopology,
    publisher: Arc<AmqpConnection>,
    requester: Requester,
    handler: Arc<dyn Handler>,
    options: ConsumerOptions,
    database: Option<DatabaseConnection>,
    running: super::Runner,
    /// Most messages per transaction (`AmqpConsumer::in_batches`); 1 unless a test sets it.
    pub batch: usize,
}

impl Amqp {
    fn key(&self) -> String {
        format!("test.{}", self.topology.group)
    }

    /// Starts the consumer (again, after `stop`).
    pub fn spawn(&mut self) {
        let consumer = AmqpConsumer::new(
            amqp_url(),
            self.topology.clone(),
            self.options,
            self.handler.clone(),
            self.database.clone(),
        )
        .in_batches(self.batch);
        self.running.start(|stopped| consumer.run(stopped));
    }

    /// Closes the consumer's connection from the broker side, found by its name.
    fn close_consumer_connection(&self) {
        let name = format!("voltbus-consumer-{}", self.topology.group);
        for _ in 0..50 {
            let listed = crate::private_rabbit::rabbitmqctl()
                .args(["list_connections", "pid", "client_properties", "-q"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&listed.stdout);
            if let Some(pid) = text.lines().find(|l| l.contains(&name)).and_then(|l| l.split_whitespace().next()) {
                let closed = crate::private_rabbit::rabbitmqctl()
                    .args(["close_connection", pid, "test: forced close"])
                    .output()
                    .unwrap();
                assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("consumer connection {name} not found");
    }
}

impl Harness for Amqp {
    async fn start(
        handler: Arc<dyn Handler>,
        retry_delays: Vec<Duration>,
        options: ConsumerOptions,
        database: Option<DatabaseConnection>,
    ) -> Self {
        init_logs();
        let group = unique("g");
        let topology = GroupTopology {
            group: group.clone(),
            bindings: vec![(routing::COMMANDS_EXCHANGE, format!("test.{group}"))],
            retry_delays,
            quorum_size: None,
        };
        let publisher = Arc::new(AmqpConnection::connect(&amqp_url(), "voltbus-test-publisher").await.unwrap());
        publisher.declare_exchanges().await.unwrap();
        // Declared before the consumer starts, so the first publish is routable.
        topology.declare(&publisher).await.unwrap();
        let requester = Requester::new(publisher.clone()).await.unwrap();
        let mut harness = Self {
            topology,
            publisher,
            requester,
            handler,
            options,
            database,
            running: super::Runner::default(),
            batch: 1,
        };
        harness.spawn();
        harness
    }

    async fn send(&self, envelope: &Envelope<PauseRide>) {
        self.publisher.publish(routing::COMMANDS_EXCHANGE, &self.key(), envelope).await.unwrap();
    }

    async fn send_garbage(&self) {
        self.publisher
            .publish_raw(routing::COMMANDS_EXCHANGE, &self.key(), b"\x00garbage", Default::default(), true)
            .await
            .unwrap();
    }

    async fn send_version(&self, envelope: &Envelope<PauseRide>, version: &str) {
        let mut json: Value = serde_json::from_slice(&envelope.encode()).unwrap();
        json["dataversion"] = Value::String(version.into());
        let body = json.to_string();
        self.publisher
            .publish_raw(routing::COMMANDS_EXCHANGE, &self.key(), body.as_bytes(), Default::default(), true)
            .await
            .unwrap();
    }

    async fn request(&self, envelope: &Envelope<PauseRide>, timeout: Duration) -> Result<Value, RequestError> {
        self.requester.request_to(routing::COMMANDS_EXCHANGE, &self.key(), envelope, timeout).await
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        bus::amqp::list_dead_letters(&self.publisher, &self.topology.dead_letter_queue(), 100).await.unwrap()
    }

    async fn replay(&self, message_id: Option<&str>) -> usize {
        bus::amqp::replay_dead_letters(&self.publisher, &self.topology.dead_letter_queue(), message_id).await.unwrap()
    }

    async fn pending(&self) -> u64 {
        // A quorum queue's message count includes unacknowledged messages.
        let channel = self.publisher.channel().await.unwrap();
        let queue = channel
            .queue_declare(
                self.topology.work_queue().as_str().into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        u64::from(queue.message_count())
    }

    async fn force_disconnect(&mut self) {
        self.close_consumer_connection();
    }

    async fn kill_and_restart(&mut self) {
        self.running.kill();
        // An aborted task leaves lapin's socket open: the broker only requeues once it is closed.
        self.close_consumer_connection();
        self.spawn();
    }

    async fn stop(&mut self) {
        self.running.stop().await;
    }

    async fn finish(mut self) {
        self.stop().await;
        let channel = self.publisher.channel().await.unwrap();
        let mut queues = vec![self.topology.work_queue(), self.topology.dead_letter_queue()];
        for retry in 1..=self.topology.retry_delays.len() as u32 {
            queues.push(self.topology.retry_queue(retry).unwrap().0);
        }
        for queue in queues {
            let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
        }
        self.publisher.close().await;
    }
}

super::conformance!(Amqp);
