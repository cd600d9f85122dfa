//! The conformance suite on NATS JetStream, each test on a nats-server of its own (its own port
//! and store), so a test can restart its server without disturbing anyone.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bus::amqp::ConsumerOptions;
use bus::nats::{JetStreamConsumer, JetStreamGroup, NatsConnection};
use bus::{DeadLetter, Handler, RequestError};
use schemas::Envelope;
use schemas::rides::PauseRide;
use schemas::subjects;
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::Harness;
use crate::private_nats::PrivateNats;
use crate::support::{init_logs, unique};

/// The subject every test message is published on; the events stream stores it.
const SUBJECT: &str = "voltbus.test.events.conformance.ride";

/// A JetStream consumer group on a private server.
pub struct Nats {
    server: PrivateNats,
    nats: NatsConnection,
    topology: JetStreamGroup,
    handler: Arc<dyn Handler>,
    options: ConsumerOptions,
    database: Option<DatabaseConnection>,
    running: super::Runner,
}

impl Nats {
    async fn spawn(&mut self) {
        let nats = NatsConnection::connect(&self.server.url(), "voltbus-test-consumer").await.unwrap();
        let consumer = JetStreamConsumer::new(
            nats,
            self.topology.clone(),
            self.options,
            self.handler.clone(),
            self.database.clone(),
        );
        self.running.start(|stopped| consumer.run(stopped));
    }

    async fn publish(&self, headers: HeaderMap, body: Vec<u8>) {
        let mut headers = headers;
        headers.insert(async_nats::header::NATS_MESSAGE_ID, uuid::Uuid::now_v7().to_string().as_str());
        let ack = self.nats.jetstream().publish_with_headers(SUBJECT, headers, body.into()).await.unwrap();
        ack.await.unwrap();
    }
}

fn binary_headers(envelope: &Envelope<PauseRide>) -> (HeaderMap, Vec<u8>) {
    let binary = envelope.to_binary();
    let mut headers = HeaderMap::new();
    for attribute in binary.attributes {
        headers.insert(format!("ce-{}", attribute.name).as_str(), attribute.value);
    }
    (headers, binary.body)
}

impl Harness for Nats {
    async fn start(
        handler: Arc<dyn Handler>,
        retry_delays: Vec<Duration>,
        options: ConsumerOptions,
        database: Option<DatabaseConnection>,
    ) -> Self {
        init_logs();
        let server = PrivateNats::start();
        let nats = NatsConnection::connect(&server.url(), "voltbus-test-publisher").await.unwrap();
        nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
        let mut topology = JetStreamGroup::new(unique("g"), subjects::EVENTS_STREAM, SUBJECT, retry_delays);
        // Short, so a killed consumer's message moves on within the test.
        topology.ack_wait = Duration::from_secs(2);
        topology.declare(&nats, 50).await.unwrap();
        let mut harness =
            Self { server, nats, topology, handler, options, database, running: super::Runner::default() };
        harness.spawn().await;
        harness
    }

    async fn send(&self, envelope: &Envelope<PauseRide>) {
        self.nats.publish_durable(SUBJECT.into(), envelope).await.unwrap();
    }

    async fn send_garbage(&self) {
        self.publish(HeaderMap::new(), b"\x00garbage".to_vec()).await;
    }

    async fn send_version(&self, envelope: &Envelope<PauseRide>, version: &str) {
        let (mut headers, body) = binary_headers(envelope);
        headers.insert("ce-dataversion", version);
        self.publish(headers, body).await;
    }

    async fn request(&self, envelope: &Envelope<PauseRide>, timeout: Duration) -> Result<Value, RequestError> {
        self.nats.request(SUBJECT.into(), envelope, timeout).await
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        bus::nats::list_dead_letters(&self.nats, &self.topology.group, 100).await.unwrap()
    }

    async fn replay(&self, message_id: Option<&str>) -> usize {
        bus::nats::replay_dead_letters(&self.nats, &self.topology.group, message_id).await.unwrap()
    }

    async fn pending(&self) -> u64 {
        let stream = self.nats.jetstream().get_stream(subjects::EVENTS_STREAM).await.unwrap();
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(&self.topology.group).await.unwrap();
        let info = consumer.info().await.unwrap();
        info.num_pending + info.num_ack_pending as u64
    }

    async fn force_disconnect(&mut self) {
        // Restarting the server cuts every connection; the stream and the consumer are on disk.
        self.server.kill();
        self.server.boot();
    }

    async fn kill_and_restart(&mut self) {
        self.running.kill();
        self.spawn().await;
    }

    async fn stop(&mut self) {
        self.running.stop().await;
    }

    async fn finish(mut self) {
        self.stop().await;
    }
}

super::conformance!(Nats);

/// The group's dead letters once there are any (at most 20 s), or none.
async fn first_dead_letters(nats: &NatsConnection, group: &str) -> Vec<DeadLetter> {
    for _ in 0..100 {
        let letters = bus::nats::list_dead_letters(nats, group, 10).await.unwrap();
        if !letters.is_empty() {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Vec::new()
}

/// A message whose consumer died while holding it runs out of deliveries; the server's advisory
/// is kept in a stream, and the next runtime moves the message to the dead letters even though
/// the instance that held it is gone.
#[tokio::test]
async fn exhausted_deliveries_reach_the_dead_letters_through_the_advisory() {
    use crate::support::{Scripted, pause_ride, tenant};

    init_logs();
    let server = PrivateNats::start();
    let nats = NatsConnection::connect(&server.url(), "voltbus-test").await.unwrap();
    nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
    let mut topology = JetStreamGroup::new(unique("g"), subjects::EVENTS_STREAM, SUBJECT, vec![]);
    topology.ack_wait = Duration::from_secs(1);
    topology.crash_redeliveries = 0;
    topology.declare(&nats, 50).await.unwrap();

    let mut hanging = Scripted::new(|_, _| Ok(None));
    hanging.delay = Duration::from_secs(60);
    let handler: Arc<dyn Handler> = Arc::new(hanging);
    let run = || {
        let consumer = JetStreamConsumer::new(
            nats.clone(),
            topology.clone(),
            ConsumerOptions { prefetch: 1, lanes: 1 },
            handler.clone(),
            None,
        );
        tokio::spawn(consumer.run(std::future::pending()))
    };
    let first = run();
    let envelope = pause_ride(uuid::Uuid::now_v7(), &tenant());
    nats.publish_durable(SUBJECT.into(), &envelope).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The instance holding the message dies without an answer; another one starts.
    first.abort();
    let second = run();
    let letters = first_dead_letters(&nats, &topology.group).await;
    assert_eq!(letters.len(), 1, "the exhausted message reached the dead letters");
    assert_eq!(letters[0].message_id.as_deref(), Some(envelope.id.to_string().as_str()));
    assert_eq!(letters[0].error_kind.as_deref(), Some("max_deliveries"));
    second.abort();
}

/// A dead letter names the tenant of the subject its message came on, not the one its sender
/// wrote in `ce-tenant`: a device of one tenant cannot put a letter in another's view (the
/// operator console shows an organisation only its own).
#[tokio::test]
async fn a_dead_letter_names_the_tenant_of_its_subject_not_of_its_header() {
    use crate::support::{Scripted, pause_ride, tenant};

    init_logs();
    let server = PrivateNats::start();
    let nats = NatsConnection::connect(&server.url(), "voltbus-test").await.unwrap();
    nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
    let topology = JetStreamGroup::new(unique("g"), subjects::EVENTS_STREAM, SUBJECT, vec![]);
    topology.declare(&nats, 50).await.unwrap();
    let handler: Arc<dyn Handler> =
        Arc::new(Scripted::new(|_, _| Err(bus::HandlerError::Retryable("charger offline".into()))));
    let consumer = JetStreamConsumer::new(
        nats.clone(),
        topology.clone(),
        ConsumerOptions { prefetch: 1, lanes: 1 },
        handler,
        None,
    );
    let running = tokio::spawn(consumer.run(std::future::pending()));
    // Another tenant's name in the header; the subject is tenant `test`'s.
    let envelope = pause_ride(uuid::Uuid::now_v7(), &tenant());
    nats.publish_durable(SUBJECT.into(), &envelope).await.unwrap();
    let letters = first_dead_letters(&nats, &topology.group).await;
    assert_eq!(letters.len(), 1);
    assert_ne!(envelope.tenant.as_str(), "test");
    assert_eq!(letters[0].tenant.as_deref(), Some("test"), "the subject's tenant: {:?}", letters[0]);
    running.abort();
}

/// Telemetry, events and device commands get the age limit they are given, a stream made
/// before it had one included (made here as an older voltbus made it, with a limit of an
/// operator's, which stays), and a changed limit is applied; dead letters and advisories keep
/// everything, whatever its age.
#[tokio::test]
async fn streams_keep_what_they_store_for_the_retention_they_are_given() {
    use async_nats::jetstream::stream;

    init_logs();
    let server = PrivateNats::start();
    let nats = NatsConnection::connect(&server.url(), "voltbus-test").await.unwrap();
    nats.jetstream()
        .create_stream(stream::Config {
            name: subjects::TELEMETRY_STREAM.into(),
            subjects: subjects::telemetry_stream_subjects(),
            storage: stream::StorageType::File,
            // An operator's limit, which the update must keep.
            max_messages: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let age = |name: &'static str| {
        let jetstream = nats.jetstream().clone();
        async move { jetstream.get_stream(name).await.unwrap().info().await.unwrap().config.max_age }
    };
    for retention in [Duration::from_secs(3 * 3600), Duration::from_secs(3600)] {
        nats.ensure_streams(retention).await.unwrap();
        for name in [subjects::TELEMETRY_STREAM, subjects::EVENTS_STREAM, subjects::VEHICLE_COMMANDS_STREAM] {
            assert_eq!(age(name).await, retention, "{name}");
        }
        for name in [subjects::DEAD_LETTER_STREAM, subjects::ADVISORY_STREAM] {
            assert_eq!(age(name).await, Duration::ZERO, "{name} keeps everything");
        }
    }
    let mut telemetry = nats.jetstream().get_stream(subjects::TELEMETRY_STREAM).await.unwrap();
    assert_eq!(telemetry.info().await.unwrap().config.max_messages, 1_000_000, "only the age limit changed");
}
