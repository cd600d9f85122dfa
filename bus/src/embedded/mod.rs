//! The embedded transport: what `voltbus serve` runs on when no broker is configured, with the
//! same contract as RabbitMQ, kept in the embedded database.
//!
//! - Exchanges and bindings work as RabbitMQ topic exchanges: a consumer group's bindings are
//!   registered when it is declared, and a publish inserts one row per bound queue into
//!   `bus_queue`, in one transaction. The commit is the publisher confirm; a publish nothing is
//!   bound for is returned as unroutable, as a `mandatory` publish on RabbitMQ is.
//! - Consumers claim rows with a lease, in `seq` order; the same [`crate::Processor`] decides,
//!   and the row is deleted (ack), made available again later (retry), or moved to the group's
//!   dead-letter queue with the reason. A consumer that dies lets its lease run out and the rows
//!   come back.
//! - Request/reply is in process: a requester waits on the row it inserted.
//! - Core realtime fan-out (NATS' role) is an in-memory broadcast: it is at most once anyway.
//!
//! Layout: this file (the bus: bindings, publishing, replies, realtime), `consumer` (the consumer
//! runtime), `dead_letters` (listing and replaying).

mod consumer;
mod dead_letters;

pub use consumer::EmbeddedConsumer;
pub use dead_letters::{list_dead_letters, queue_depth, replay_dead_letters};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use schemas::{Envelope, Message, routing};
use sea_orm::sea_query::Query;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, broadcast, oneshot};

use crate::amqp::GroupTopology;
use crate::handler::{ReplyBody, RequestError};
use crate::{EngineReport, EngineState, PublishError};

/// One realtime message (core NATS' role on the embedded transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Subject it was published under.
    pub destination: String,
    /// Structured-mode envelope.
    pub body: Vec<u8>,
}

/// How many realtime messages a subscriber may fall behind before it sees a gap.
const REALTIME_CAPACITY: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Binding {
    exchange: String,
    pattern: String,
    queue: String,
}

struct Inner {
    database: DatabaseConnection,
    bindings: RwLock<Vec<Binding>>,
    /// Wakes consumers when rows arrive, so they need not poll fast.
    arrivals: Notify,
    /// Requesters waiting, by the id of the message they sent (a repeated command's requesters
    /// all get the one answer the inbox gives).
    replies: Mutex<HashMap<uuid::Uuid, Vec<oneshot::Sender<ReplyBody>>>>,
    realtime: broadcast::Sender<Delivery>,
}

/// The embedded bus: durable queues in the embedded database, realtime in memory.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl EmbeddedBus {
    /// A bus over `database` (migrated: it needs the `bus_queue` table).
    pub fn new(database: DatabaseConnection) -> Self {
        let (realtime, _) = broadcast::channel(REALTIME_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                database,
                bindings: RwLock::default(),
                arrivals: Notify::new(),
                replies: Mutex::default(),
                realtime,
            }),
        }
    }

    /// The database the queues live in.
    pub fn database(&self) -> &DatabaseConnection {
        &self.inner.database
    }

    pub(crate) async fn arrivals(&self) {
        self.inner.arrivals.notified().await;
    }

    pub(crate) fn wake(&self) {
        self.inner.arrivals.notify_waiters();
    }

    /// Registers a consumer group's bindings (idempotent), as declaring its queues does on RabbitMQ.
    pub fn declare(&self, topology: &GroupTopology) {
        let queue = topology.work_queue();
        let mut bindings = match self.inner.bindings.write() {
            Ok(bindings) => bindings,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (exchange, pattern) in &topology.bindings {
            let binding = Binding { exchange: (*exchange).to_owned(), pattern: pattern.clone(), queue: queue.clone() };
            if !bindings.contains(&binding) {
                bindings.push(binding);
            }
        }
    }

    fn queues_for(&self, exchange: &str, routing_key: &str) -> Vec<String> {
        // The default exchange routes to the queue named by the key, as on RabbitMQ.
        if exchange.is_empty() {
            return vec![routing_key.to_owned()];
        }
        let bindings = match self.inner.bindings.read() {
            Ok(bindings) => bindings,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut queues: Vec<String> = bindings
            .iter()
            .filter(|b| b.exchange == exchange && topic_matches(&b.pattern, routing_key))
            .map(|b| b.queue.clone())
            .collect();
        queues.dedup();
        queues
    }

    /// Publishes a message; returns once it is committed to every bound queue.
    pub async fn publish<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<T>,
    ) -> Result<(), PublishError> {
        let to = crate::traces::Destination {
            system: crate::traces::EMBEDDED,
            name: exchange,
            routing_key: Some(routing_key),
        };
        let body = envelope.encode();
        let send = self.publish_raw(exchange, routing_key, &body, envelope.id, envelope.subject.clone());
        crate::traces::published(to, envelope.into(), send).await.map(|_| ())
    }

    /// Publishes bytes; returns the `seq` of each row inserted.
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        message_id: uuid::Uuid,
        aggregate: Option<String>,
    ) -> Result<Vec<i64>, PublishError> {
        let outcome = async {
            let queues = self.queues_for(exchange, routing_key);
            if queues.is_empty() {
                return Err(PublishError::Returned { reply_code: 312, reply_text: "NO_ROUTE".into() });
            }
            let payload = String::from_utf8_lossy(body).into_owned();
            let stored = |e: DbErr| PublishError::NotStored(e.to_string());
            let transaction = self.inner.database.begin().await.map_err(stored)?;
            let mut seqs = Vec::with_capacity(queues.len());
            for queue in queues {
                let insert = Query::insert()
                    .into_table("bus_queue")
                    .columns(["queue", "message_id", "aggregate", "payload", "attempt", "available_at_ms"])
                    .values_panic([
                        queue.into(),
                        message_id.into(),
                        aggregate.clone().into(),
                        payload.clone().into(),
                        1.into(),
                        now_ms().into(),
                    ])
                    .returning_col("seq")
                    .to_owned();
                let row = transaction.query_one(&insert).await.map_err(stored)?;
                let seq: i64 = row
                    .ok_or_else(|| PublishError::NotStored("no seq returned".into()))?
                    .try_get("", "seq")
                    .map_err(stored)?;
                seqs.push(seq);
            }
            transaction.commit().await.map_err(stored)?;
            self.wake();
            Ok(seqs)
        }
        .await;
        crate::metrics::published("embedded", exchange.to_owned(), outcome.as_ref().map(|_| ()));
        outcome
    }

    /// Publishes command `M` under its routing key and waits up to `timeout` for the reply.
    pub async fn request<M: Message>(&self, envelope: &Envelope<M>, timeout: Duration) -> Result<Value, RequestError> {
        self.request_to(routing::COMMANDS_EXCHANGE, &routing::command_key_of::<M>(), envelope, timeout).await
    }

    /// Like [`EmbeddedBus::request`], to an explicit exchange and routing key.
    pub async fn request_to<T: Serialize>(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<T>,
        timeout: Duration,
    ) -> Result<Value, RequestError> {
        let (sender, receiver) = oneshot::channel();
        // Listen before publishing, so a fast consumer cannot answer before anyone waits.
        if let Ok(mut replies) = self.inner.replies.lock() {
            replies.entry(envelope.id).or_default().push(sender);
        }
        if let Err(error) = self.publish(exchange, routing_key, envelope).await {
            self.forget_waiters(envelope.id);
            return Err(error.into());
        }
        let outcome = crate::handler::await_reply(async { receiver.await.ok() }, timeout).await;
        if matches!(outcome, Err(RequestError::Timeout(_))) {
            self.forget_waiters(envelope.id);
        }
        outcome
    }

    fn forget_waiters(&self, message_id: uuid::Uuid) {
        if let Ok(mut replies) = self.inner.replies.lock()
            && let Some(waiters) = replies.get_mut(&message_id)
        {
            waiters.retain(|w| !w.is_closed());
            if waiters.is_empty() {
                replies.remove(&message_id);
            }
        }
    }

    /// Answers every requester waiting for message `message_id`, if any.
    pub(crate) fn reply(&self, message_id: uuid::Uuid, body: &ReplyBody) {
        let waiters = self.inner.replies.lock().ok().and_then(|mut replies| replies.remove(&message_id));
        for waiter in waiters.unwrap_or_default() {
            // A requester that timed out meanwhile no longer needs the answer.
            let _ = waiter.send(body.clone());
        }
    }

    /// Publishes what a device or the platform sends on NATS subject `subject`, as JetStream and
    /// core NATS together would deliver it: stored in every queue bound to it on
    /// [`routing::STREAMS_EXCHANGE`] (none bound is not an error: no stream keeps that subject),
    /// and handed to realtime subscribers.
    pub async fn publish_subject(
        &self,
        subject: &str,
        body: &[u8],
        message_id: uuid::Uuid,
        aggregate: Option<String>,
    ) -> Result<(), PublishError> {
        match self.publish_raw(routing::STREAMS_EXCHANGE, subject, body, message_id, aggregate).await {
            Ok(_) | Err(PublishError::Returned { .. }) => {}
            Err(error) => return Err(error),
        }
        self.publish_realtime(subject, body.to_vec());
        Ok(())
    }

    /// Publishes to realtime subscribers (at most once); returns how many got it.
    pub fn publish_realtime(&self, destination: impl Into<String>, body: Vec<u8>) -> usize {
        // No subscriber is not an error for realtime fan-out: the message had nobody to reach.
        self.inner.realtime.send(Delivery { destination: destination.into(), body }).unwrap_or(0)
    }

    /// Subscribes to realtime messages published from now on.
    pub fn subscribe_realtime(&self) -> broadcast::Receiver<Delivery> {
        self.inner.realtime.subscribe()
    }

    /// The embedded transport's line in `/health`: up while its database answers.
    pub async fn report(&self, engine: &'static str) -> EngineReport {
        match self.inner.database.ping().await {
            Ok(()) => EngineReport {
                engine,
                kind: "embedded",
                state: EngineState::Up,
                detail: "in-process, durable in the database".into(),
            },
            Err(e) => EngineReport { engine, kind: "embedded", state: EngineState::Down, detail: e.to_string() },
        }
    }
}

/// RabbitMQ topic matching: words split by `.`, `*` matches one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.split_first(), key.split_first()) {
            (None, None) => true,
            (Some((&"#", rest)), _) => go(rest, key) || (!key.is_empty() && go(pattern, &key[1..])),
            (Some((&"*", rest)), Some((_, key_rest))) => go(rest, key_rest),
            (Some((word, rest)), Some((key_word, key_rest))) => word == key_word && go(rest, key_rest),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    go(&pattern, &key)
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_match_like_rabbitmq() {
        assert!(topic_matches("rides.#", "rides.ride.start"));
        assert!(topic_matches("rides.#", "rides"));
        assert!(topic_matches("acme.*.ride.started", "acme.rides.ride.started"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("acme.rides.ride.started", "acme.rides.ride.started"));
        assert!(!topic_matches("acme.#", "other.rides.ride.started"), "tenant prefixes never cross");
        assert!(!topic_matches("rides.*", "rides.ride.start"));
        assert!(!topic_matches("acme.rides", "acme.rides.ride"));
    }
}
