//! The transactional outbox: a handler writes the messages it emits into `outbox` in the same
//! transaction as its state change, and the relay publishes committed rows to the broker.
//!
//! A row is unsent while `outbox_pending` holds its `seq` (a trigger adds it with the row). The
//! relay takes a batch of pending rows in `seq` (commit) order, publishes them all at once (AMQP
//! confirms pipelined on one channel, JetStream acks awaited together), then deletes the confirmed
//! ones' pending rows in the same transaction; the `outbox` row itself is never written again, so
//! a message costs the WAL its insert, not a second copy of itself for a mark. A crash between
//! publish and mark publishes those rows again: delivery is at least once, and consumers' inboxes
//! drop the repeat by message id.
//!
//! An idle relay waits for [`committed`] (a transaction of this process that may have written
//! rows committed) and, for rows others committed, polls every `idle`: polling every 10 ms was a
//! third of all statements the platform sent PostgreSQL at low load (`benches/pg_per_message.rs`).
//!
//! Several relays may run at once. On PostgreSQL each locks its batch with `FOR UPDATE SKIP
//! LOCKED`, so they do not take the same rows, and a row is only eligible while it is the first
//! unsent row of its aggregate, so one aggregate's messages leave strictly in order however many
//! relays run (the price: one row per aggregate per batch).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use schemas::{Envelope, Message, routing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, Statement, TransactionTrait,
};
use serde::Serialize;

use crate::PublishError;
use crate::amqp::{AmqpConnection, properties_of};
use crate::embedded::EmbeddedBus;
use crate::nats::NatsConnection;

/// Where the relay publishes a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A RabbitMQ exchange and routing key.
    Amqp {
        /// Exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
    /// A NATS JetStream subject.
    Nats {
        /// Subject.
        subject: String,
    },
    /// A core NATS subject, in binary mode (the body is the message's data alone): realtime
    /// messages to mobile apps, at most once to whoever subscribes at that moment.
    Realtime {
        /// Subject.
        subject: String,
    },
}

impl Destination {
    /// The events exchange, under the routing key of event `message` of `tenant`.
    pub fn event<M: Message>(tenant: &schemas::TenantId, message: &M) -> Self {
        let routing_key = routing::event_key_of(tenant, message);
        Destination::Amqp { exchange: routing::EVENTS_EXCHANGE.into(), routing_key }
    }
}

/// Writes event `data`, caused by `cause`, into the outbox for the events exchange: how a handler
/// tells the world what its transaction changed.
pub async fn enqueue_event<M: Message, C>(
    db: &impl ConnectionTrait,
    cause: &Envelope<C>,
    source: &str,
    data: M,
) -> Result<(), DbErr> {
    enqueue_encoded(db, &[event(cause, source, data)]).await
}

/// Event `data`, caused by `cause`, encoded for the events exchange: for a handler that writes
/// several events of different types in one statement ([`enqueue_encoded`]).
pub fn event<M: Message, C>(cause: &Envelope<C>, source: &str, data: M) -> Outgoing {
    let destination = Destination::event(&cause.tenant, &data);
    Outgoing::new(&Envelope::new(cause.tenant.clone(), source, data).caused_by(cause), destination)
}

/// Writes `envelope` into the outbox inside the caller's transaction.
pub async fn enqueue<T: Serialize>(
    db: &impl ConnectionTrait,
    envelope: &Envelope<T>,
    destination: &Destination,
) -> Result<(), DbErr> {
    enqueue_all(db, [(envelope, destination)]).await
}

/// Writes many envelopes into the outbox in one statement, in order (their `seq` follows it).
/// An envelope whose id the outbox holds already is skipped: it is the same message, written
/// again by a handler that derives its events' ids from their cause.
pub async fn enqueue_all<'a, T: Serialize + 'a>(
    db: &impl ConnectionTrait,
    messages: impl IntoIterator<Item = (&'a Envelope<T>, &'a Destination)>,
) -> Result<(), DbErr> {
    let encoded: Vec<Outgoing> =
        messages.into_iter().map(|(envelope, destination)| Outgoing::new(envelope, destination.clone())).collect();
    enqueue_encoded(db, &encoded).await
}

/// Writes messages already encoded into the outbox, as [`enqueue_all`] does.
pub async fn enqueue_encoded(db: &impl ConnectionTrait, messages: &[Outgoing]) -> Result<(), DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    match db.get_database_backend() {
        DatabaseBackend::Postgres => db.execute_raw(insert_from_arrays(messages)).await?,
        _ => db.execute(&insert_from_values(messages)).await?,
    };
    Ok(())
}

/// Where a message goes, as the outbox's `transport`, `destination` and `routing_key` hold it.
fn columns_of(destination: &Destination) -> (&'static str, &str, Option<&str>) {
    match destination {
        Destination::Amqp { exchange, routing_key } => ("amqp", exchange, Some(routing_key)),
        Destination::Nats { subject } => ("nats", subject, None),
        Destination::Realtime { subject } => ("realtime", subject, None),
    }
}

/// On PostgreSQL the messages go in as one array per column, unnested in their order: one
/// statement text however many a handler writes (a `VALUES` list was a new text for each count,
/// parsed again, and the telemetry ingest's varying counts of derived events pushed other
/// statements out of the connection's cache). Arrays bound here hold no NULL elements: an absent
/// aggregate or routing key travels as "", which neither ever is (and the relay reads a missing
/// routing key as "").
fn insert_from_arrays(messages: &[Outgoing]) -> Statement {
    use sea_orm::Value;
    use sea_orm::sea_query::ArrayType;
    const SQL: &str = "INSERT INTO outbox (message_id, tenant, aggregate, type_name, transport, destination, routing_key, payload) \
         SELECT message_id, tenant, NULLIF(aggregate, ''), type_name, transport, destination, NULLIF(routing_key, ''), payload \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
         WITH ORDINALITY AS r(message_id, tenant, aggregate, type_name, transport, destination, routing_key, payload, n) \
         ORDER BY n ON CONFLICT (message_id) DO NOTHING";
    let column = |kind: ArrayType, value: fn(&Outgoing) -> Value| -> Value {
        Value::Array(kind, Some(Box::new(messages.iter().map(value).collect())))
    };
    let text = |value: fn(&Outgoing) -> Value| column(ArrayType::String, value);
    let values = [
        column(ArrayType::Uuid, |m| m.id.into()),
        text(|m| m.tenant.as_str().into()),
        text(|m| m.aggregate.as_deref().unwrap_or_default().into()),
        text(|m| m.type_name.as_str().into()),
        text(|m| columns_of(&m.destination).0.into()),
        text(|m| columns_of(&m.destination).1.into()),
        text(|m| columns_of(&m.destination).2.unwrap_or_default().into()),
        text(|m| m.payload.as_str().into()),
    ];
    Statement::from_sql_and_values(DatabaseBackend::Postgres, SQL, values)
}

/// Elsewhere (SQLite) one multi-row insert.
fn insert_from_values(messages: &[Outgoing]) -> sea_orm::sea_query::InsertStatement {
    let mut insert = Query::insert()
        .into_table("outbox")
        .columns([
            "message_id",
            "tenant",
            "aggregate",
            "type_name",
            "transport",
            "destination",
            "routing_key",
            "payload",
        ])
        .on_conflict(OnConflict::column("message_id").do_nothing().to_owned())
        .to_owned();
    for message in messages {
        let (transport, target, routing_key) = columns_of(&message.destination);
        insert.values_panic([
            message.id.into(),
            message.tenant.as_str().into(),
            message.aggregate.as_deref().into(),
            message.type_name.as_str().into(),
            transport.into(),
            target.into(),
            routing_key.into(),
            message.payload.as_str().into(),
        ]);
    }
    insert
}

/// Why a relay pass failed as a whole (a single row's publish failure is recorded on the row).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error("outbox database: {0}")]
    Database(#[from] DbErr),
}

/// Where encoded messages go: the brokers that are configured, and the embedded transport in
/// place of those that are not. Used by the relay for committed outbox rows, and by consumer
/// groups that publish right after their commit (`Processor::publishing_through`).
#[derive(Clone, Default)]
pub struct Publisher {
    /// RabbitMQ.
    pub amqp: Option<Arc<AmqpConnection>>,
    /// NATS.
    pub nats: Option<NatsConnection>,
    /// Stands in for a broker that is not configured (the embedded default).
    pub embedded: Option<EmbeddedBus>,
}

/// A message encoded for publishing, with its destination and what the outbox files it under.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The envelope's id.
    pub id: uuid::Uuid,
    /// Its tenant.
    pub tenant: String,
    /// Its aggregate (subject), which orders it.
    pub aggregate: Option<String>,
    /// Its type.
    pub type_name: String,
    /// Where it goes.
    pub destination: Destination,
    /// The envelope, encoded (structured mode JSON).
    pub payload: String,
    /// Its AMQP properties, made once from the envelope rather than parsed back from the payload.
    properties: lapin::BasicProperties,
    /// The trace it was created in (`traceparent`, `tracestate`), which its publish joins.
    trace: (Option<String>, Option<String>),
}

impl Outgoing {
    /// `envelope`, bound for `destination`.
    pub fn new<T: Serialize>(envelope: &Envelope<T>, destination: Destination) -> Self {
        Self {
            id: envelope.id,
            tenant: envelope.tenant.to_string(),
            aggregate: envelope.subject.clone(),
            type_name: envelope.type_name.to_string(),
            destination,
            // An envelope of our own types always encodes to UTF-8 JSON.
            payload: String::from_utf8(envelope.encode()).unwrap_or_default(),
            properties: properties_of(envelope),
            trace: (envelope.traceparent.clone(), envelope.tracestate.clone()),
        }
    }

    /// What its publish span needs.
    fn traced(&self) -> crate::traces::MessageTrace<'_> {
        crate::traces::MessageTrace {
            id: self.id,
            // The conversation is in the payload, which the relay does not parse for it.
            correlation_id: None,
            traceparent: self.trace.0.as_deref(),
            tracestate: self.trace.1.as_deref(),
        }
    }

    /// An encoded envelope (an outbox row's) bound for `destination`.
    fn parse(destination: Destination, payload: String) -> Result<Self, String> {
        let envelope = Envelope::parse_raw(payload.as_bytes()).map_err(|e| format!("not an envelope: {e}"))?;
        let (id, tenant, properties) = (envelope.id, envelope.tenant.to_string(), properties_of(&envelope));
        let (aggregate, type_name, trace) =
            (envelope.subject, envelope.type_name, (envelope.traceparent, envelope.tracestate));
        Ok(Self { id, tenant, aggregate, type_name, properties, trace, destination, payload })
    }
}

impl Publisher {
    /// Publishes one message: with a broker's confirm, or into the embedded transport.
    pub async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        let to = self.traced_destination(&message.destination);
        crate::traces::published(to, message.traced(), self.publish_untraced(message)).await
    }

    /// Where `destination` is, as a span names it.
    fn traced_destination<'a>(&self, destination: &'a Destination) -> crate::traces::Destination<'a> {
        let system = |broker: bool| if broker { crate::traces::RABBITMQ } else { crate::traces::EMBEDDED };
        match destination {
            Destination::Amqp { exchange, routing_key } => crate::traces::Destination {
                system: system(self.amqp.is_some()),
                name: exchange,
                routing_key: Some(routing_key),
            },
            Destination::Nats { subject } | Destination::Realtime { subject } => crate::traces::Destination {
                system: if self.nats.is_some() { crate::traces::NATS } else { crate::traces::EMBEDDED },
                name: subject,
                routing_key: None,
            },
        }
    }

    async fn publish_untraced(&self, message: &Outgoing) -> Result<(), PublishError> {
        match &message.destination {
            Destination::Amqp { exchange, routing_key } => {
                // An event is offered to whoever subscribes; with no subscriber it is done, not
                // stuck. Anything else (a command) must reach a queue, or the publish fails.
                let must_route = exchange != routing::EVENTS_EXCHANGE;
                let body = message.payload.as_bytes();
                let outcome = match (&self.amqp, &self.embedded) {
                    (Some(amqp), _) => {
                        amqp.publish_raw(exchange, routing_key, body, message.properties.clone(), must_route).await
                    }
                    (None, Some(embedded)) => embedded
                        .publish_raw(exchange, routing_key, body, message.id, message.aggregate.clone())
                        .await
                        .map(|_| ()),
                    (None, None) => Err(PublishError::Unpublishable("no AMQP connection configured".into())),
                };
                match outcome {
                    Err(PublishError::Returned { .. }) if !must_route => Ok(()),
                    other => other,
                }
            }
            Destination::Nats { subject } => match (&self.nats, &self.embedded) {
                (Some(nats), _) => {
                    let envelope = Envelope::parse_raw(message.payload.as_bytes())
                        .map_err(|e| PublishError::Unpublishable(format!("not an envelope: {e}")))?;
                    nats.publish_durable(subject.clone(), &envelope).await
                }
                // Without NATS, the embedded transport keeps the subject's stream groups' queues
                // and its subscribers live in this process.
                (None, Some(embedded)) => {
                    let (body, aggregate) = (message.payload.as_bytes(), message.aggregate.clone());
                    embedded.publish_subject(subject, body, message.id, aggregate).await
                }
                (None, None) => Err(PublishError::Unpublishable("no NATS connection configured".into())),
            },
            Destination::Realtime { subject } => {
                let envelope = Envelope::parse_raw(message.payload.as_bytes())
                    .map_err(|e| PublishError::Unpublishable(format!("not an envelope: {e}")))?;
                match (&self.nats, &self.embedded) {
                    (Some(nats), _) => nats.publish_realtime(subject.clone(), &envelope).await,
                    (None, Some(embedded)) => {
                        embedded.publish_realtime(subject.clone(), message.payload.as_bytes().to_vec());
                        Ok(())
                    }
                    (None, None) => Err(PublishError::Unpublishable("no NATS connection configured".into())),
                }
            }
        }
    }

    /// Publishes `messages` all at once (confirms pipelined); the first failure, if any.
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        let outcomes = futures_util::future::join_all(messages.iter().map(|m| self.publish(m))).await;
        outcomes.into_iter().collect()
    }
}

/// Outbox rows committed but not yet published (the rows of `outbox_pending`).
pub async fn backlog(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let statement = Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM outbox_pending");
    let rows: i64 = match db.query_one_raw(statement).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Publishes committed outbox rows.
pub struct Relay {
    database: DatabaseConnection,
    publisher: Publisher,
    batch: usize,
}

struct Row {
    seq: i64,
    /// The row's message, or why it cannot be published (kept on the row as its last error).
    message: Result<Outgoing, String>,
}

impl Relay {
    /// A relay over `database`, publishing through `publisher`.
    pub fn new(database: DatabaseConnection, publisher: Publisher, batch: usize) -> Self {
        Self { database, publisher, batch: batch.max(1) }
    }

    /// One pass: publishes up to a batch of rows and returns how many were sent (0: nothing to do).
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let started = std::time::Instant::now();
        let transaction = self.database.begin().await?;
        let rows = self.next_rows(&transaction).await?;
        if rows.is_empty() {
            transaction.commit().await?;
            return Ok(0);
        }
        let selected = started.elapsed();
        // On PostgreSQL the rows stay locked while they are published, so that no other relay
        // takes them. SQLite has one process and one connection, which the embedded transport's
        // publish needs too: there the choice is committed first and the marks written after.
        let held = if transaction.get_database_backend() == DatabaseBackend::Postgres {
            Some(transaction)
        } else {
            transaction.commit().await?;
            None
        };
        let outcomes = futures_util::future::join_all(rows.iter().map(|row| async {
            match &row.message {
                Ok(message) => self.publisher.publish(message).await,
                Err(error) => Err(PublishError::Unpublishable(error.clone())),
            }
        }))
        .await;
        let published = started.elapsed();
        let transaction = match held {
            Some(transaction) => transaction,
            None => self.database.begin().await?,
        };
        let mut sent = Vec::new();
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Ok(()) => sent.push(row.seq),
                Err(error) => {
                    tracing::warn!(seq = row.seq, %error, "outbox publish failed; will retry");
                    let record = Query::update()
                        .table("outbox_pending")
                        .value("last_error", error.to_string())
                        .value("attempts", Expr::col("attempts").add(1))
                        .and_where(Expr::col("seq").eq(row.seq))
                        .to_owned();
                    transaction.execute(&record).await?;
                }
            }
        }
        if !sent.is_empty() {
            let backend = transaction.get_database_backend();
            let (among, list) = seq_list(backend, &sent);
            let mark = format!("DELETE FROM outbox_pending WHERE seq {among}");
            transaction.execute_raw(Statement::from_sql_and_values(backend, mark, [list])).await?;
        }
        transaction.commit().await?;
        tracing::debug!(rows = rows.len(), sent = sent.len(), ?selected, ?published, done = ?started.elapsed(), "relay pass");
        Ok(sent.len())
    }

    /// The rows this pass publishes, locked: in `seq` order, and of each aggregate only its first
    /// unsent row, so one aggregate's messages leave in order however many relays run. Three
    /// statements that each have one sensible plan whatever the statistics say: a single
    /// anti-join, prepared while the outbox was nearly empty, once cost seconds per pass on a
    /// backlog of thousands of rows.
    async fn next_rows(&self, transaction: &DatabaseTransaction) -> Result<Vec<Row>, DbErr> {
        let backend = transaction.get_database_backend();
        // Candidates: the head of the unsent rows, a few batches deep, so that one busy aggregate
        // at the head (one row per pass) does not hold the others back.
        let head =
            format!("SELECT seq, aggregate FROM outbox_pending ORDER BY seq LIMIT {}", self.batch.saturating_mul(4));
        let candidates: Vec<(i64, Option<String>)> = transaction
            .query_all_raw(Statement::from_string(backend, head))
            .await?
            .iter()
            .map(|r| Ok((r.try_get("", "seq")?, r.try_get("", "aggregate")?)))
            .collect::<Result<_, DbErr>>()?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // The head holds every unsent row up to its last, in order: an aggregate's first row in
        // it is that aggregate's first unsent row, with no second look at the table (a GROUP BY
        // over the head's aggregates was half of a pass's time). A row another relay holds is
        // still unsent: it stays its aggregate's first, and the lock below skips it.
        let mut seen = HashSet::new();
        let chosen: Vec<i64> = candidates
            .iter()
            .filter(|(_, aggregate)| aggregate.as_deref().is_none_or(|a| seen.insert(a)))
            .take(self.batch)
            .map(|(seq, _)| *seq)
            .collect();
        if chosen.is_empty() {
            // Another relay sent every candidate meanwhile.
            return Ok(Vec::new());
        }
        // Another relay may have taken or sent some since: the lock skips what it holds, and the
        // join drops what it sent. Only the pending row is locked: the outbox row is never
        // written after its insert.
        let lock = if backend == DatabaseBackend::Postgres { "FOR UPDATE OF p SKIP LOCKED" } else { "" };
        let (among, list) = seq_list(backend, &chosen);
        let select = format!(
            "SELECT o.seq, o.transport, o.destination, o.routing_key, o.payload \
             FROM outbox_pending p JOIN outbox o ON o.seq = p.seq \
             WHERE p.seq {among} ORDER BY p.seq {lock}"
        );
        transaction
            .query_all_raw(Statement::from_sql_and_values(backend, select, [list]))
            .await?
            .iter()
            .map(|r| {
                let transport: String = r.try_get("", "transport")?;
                let target: String = r.try_get("", "destination")?;
                let destination = match transport.as_str() {
                    "nats" => Destination::Nats { subject: target },
                    "realtime" => Destination::Realtime { subject: target },
                    _ => Destination::Amqp {
                        exchange: target,
                        routing_key: r.try_get::<Option<String>>("", "routing_key")?.unwrap_or_default(),
                    },
                };
                let message = Outgoing::parse(destination, r.try_get("", "payload")?);
                Ok(Row { seq: r.try_get("", "seq")?, message })
            })
            .collect()
    }

    /// Relays until `shutdown` resolves: back to back while there is work; when there is none,
    /// as soon as this process commits more ([`committed`]) or after `idle` (rows another process
    /// or an earlier run left); backing off when the database fails.
    pub async fn run(self, idle: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (pause, wakes) = match self.relay_once().await {
                Ok(0) => (idle, true),
                // A full batch: more is waiting, go straight on.
                Ok(sent) if sent >= self.batch => (Duration::ZERO, false),
                // A partial one: let a few more rows gather, so a steady trickle costs a pass per
                // few milliseconds rather than a pass per row.
                Ok(_) => (GATHER, false),
                Err(error) => {
                    tracing::warn!(%error, "outbox relay pass failed");
                    (Duration::from_secs(1), false)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = COMMITTED.notified(), if wakes => {}
                () = shutdown.as_mut() => return,
            }
        }
    }
}

/// How long a relay lets rows gather after a partial batch.
const GATHER: Duration = Duration::from_millis(2);

/// Wakes this process's idle relay; the permit waits for it if it is busy, so a commit during a
/// pass is seen by the next one.
static COMMITTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Says that a transaction that may have written outbox rows has committed: the idle relay
/// looks at once rather than at its next poll. Cheap (an atomic), so callers need not know
/// whether they wrote any.
pub fn committed() {
    COMMITTED.notify_one();
}

/// `seqs` as one bound parameter and the condition that takes it: one statement text whatever
/// the batch, so the driver's per-connection cache of prepared statements keeps it (a list
/// written into the text was a new statement per pass, parsed each time, and pushed the consumer
/// groups' statements out of the cache of every pooled connection the relay used).
fn seq_list(backend: DatabaseBackend, seqs: &[i64]) -> (&'static str, sea_orm::Value) {
    match backend {
        DatabaseBackend::Postgres => {
            let values = seqs.iter().map(|&seq| seq.into()).collect();
            ("= ANY($1)", sea_orm::Value::Array(sea_orm::sea_query::ArrayType::BigInt, Some(Box::new(values))))
        }
        // SQLite has no arrays: the list travels as a JSON array.
        _ => ("IN (SELECT value FROM json_each(?))", serde_json::to_string(seqs).unwrap_or_default().into()),
    }
}
