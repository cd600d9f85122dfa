//! A broker restart, on a RabbitMQ node of the test's own (see `private_rabbit`), so the shared
//! broker and the tests running beside this one are not disturbed.

use std::sync::Arc;
use std::time::Duration;

use bus::amqp::{AmqpConnection, AmqpConsumer, ConsumerOptions, GroupTopology};
use bus::outbox::{Destination, Outgoing, Publisher};
use futures_util::StreamExt;
use schemas::routing;
use uuid::Uuid;

use crate::private_rabbit::PrivateRabbit;
use crate::support::{Scripted, eventually, init_logs, pause_ride, tenant, unique};

#[tokio::test]
async fn a_broker_restart_loses_no_confirmed_message() {
    init_logs();
    let rabbit = PrivateRabbit::start();
    let url = rabbit.url();
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let topology = GroupTopology {
        group: unique("restart"),
        bindings: vec![(routing::COMMANDS_EXCHANGE, "test.restart".into())],
        retry_delays: vec![Duration::from_millis(100)],
        quorum_size: None,
    };
    let publisher = Arc::new(AmqpConnection::connect(&url, "voltbus-test-publisher").await.unwrap());
    let requester = bus::amqp::Requester::new(publisher.clone()).await.unwrap();
    publisher.declare_exchanges().await.unwrap();
    topology.declare(&publisher).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = AmqpConsumer::new(
        url.clone(),
        topology.clone(),
        ConsumerOptions { prefetch: 20, lanes: 2 },
        handler.clone(),
        None,
    );
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));

    let tenant = tenant();
    let mut confirmed: Vec<Uuid> = Vec::new();
    let publish = async |confirmed: &mut Vec<Uuid>| {
        let envelope = pause_ride(Uuid::now_v7(), &tenant);
        let outcome = publisher.publish(routing::COMMANDS_EXCHANGE, "test.restart", &envelope).await;
        if outcome.is_ok() {
            confirmed.push(envelope.id);
        }
        outcome
    };
    for _ in 0..100 {
        publish(&mut confirmed).await.unwrap();
    }

    rabbit.stop();
    // While the broker is down, a publish is an error, never a false confirmation.
    assert!(publish(&mut confirmed).await.is_err());
    rabbit.boot();

    // The publisher reopens its connection by itself; the first publishes may still fail while
    // the broker finishes starting.
    let mut after = 0;
    for _ in 0..600 {
        if publish(&mut confirmed).await.is_ok() {
            after += 1;
            if after == 100 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(after, 100, "publishing resumed after the restart");
    // The requester's channel died with the broker; it reopens and gets answers again. A request
    // sent while its reply channel was still dying gets no answer (its caller sees a timeout and
    // retries, as the edge's callers do with their Idempotency-Key): allow that one retry.
    let mut answered = Err(bus::RequestError::Disconnected);
    for _ in 0..3 {
        answered = requester
            .request_to(
                routing::COMMANDS_EXCHANGE,
                "test.restart",
                &pause_ride(Uuid::now_v7(), &tenant),
                Duration::from_secs(15),
            )
            .await;
        if answered.is_ok() {
            break;
        }
    }
    assert_eq!(answered.unwrap(), serde_json::Value::Null, "request/reply works after the restart");
    assert!(
        eventually(Duration::from_secs(60), || {
            let calls = handler.calls.lock().unwrap();
            confirmed.iter().all(|id| calls.iter().any(|c| c.0 == *id))
        })
        .await,
        "every confirmed message was handled: the consumer reconnected and the durable queue kept them"
    );
    let _ = stop.send(());
    task.await.unwrap();
}

/// Echoes every message it is handed to the events exchange, published after commit: the
/// telemetry ingest's way (no inbox, the runtime publishes what the handler hands back).
struct Echo;

impl bus::Handler for Echo {
    fn handle<'a>(
        &'a self,
        _context: bus::Context<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bus::Reply, bus::HandlerError>> + Send + 'a>> {
        Box::pin(async { Ok(None) })
    }

    fn handle_publishing<'a>(
        &'a self,
        _transaction: &'a sea_orm::DatabaseTransaction,
        messages: &'a [(&'a schemas::Envelope<schemas::AnyMessage>, u32)],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bus::Handled, bus::HandlerError>> + Send + 'a>> {
        let destination =
            Destination::Amqp { exchange: routing::EVENTS_EXCHANGE.into(), routing_key: "test.echoed".into() };
        let echoes = messages.iter().map(|(message, _)| Outgoing::new(message, destination.clone())).collect();
        Box::pin(async move { Ok(bus::Handled::publishing(echoes)) })
    }
}

/// A RabbitMQ restart while a group without inbox publishes after its commits: the committed
/// batches wait for the broker instead of spending their retries (here a single one, 100 ms
/// later, which a restart outlasts), so every message's echo arrives and none is dead-lettered.
// Two threads: the broker is stopped and started by blocking commands while the consumer runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_after_commit_waits_out_a_broker_restart() {
    use bus::nats::{JetStreamConsumer, JetStreamGroup, NatsConnection};
    use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;

    init_logs();
    let rabbit = Arc::new(PrivateRabbit::start());
    let nats_server = crate::private_nats::PrivateNats::start();
    let nats = NatsConnection::connect(&nats_server.url(), "voltbus-test").await.unwrap();
    nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
    let amqp = Arc::new(AmqpConnection::connect(&rabbit.url(), "voltbus-test-publisher").await.unwrap());
    amqp.declare_exchanges().await.unwrap();
    let echoes = unique("echoes");
    let channel = amqp.channel().await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(echoes.as_str().into(), durable, FieldTable::default()).await.unwrap();
    let bind = QueueBindOptions::default();
    channel
        .queue_bind(
            echoes.as_str().into(),
            routing::EVENTS_EXCHANGE.into(),
            "test.echoed".into(),
            bind,
            FieldTable::default(),
        )
        .await
        .unwrap();

    let subject = "voltbus.test.events.restart.ride";
    let topology =
        JetStreamGroup::new(unique("g"), schemas::subjects::EVENTS_STREAM, subject, vec![Duration::from_millis(100)]);
    let publisher = Publisher { amqp: Some(amqp.clone()), ..Default::default() };
    let consumer = JetStreamConsumer::new(
        nats.clone(),
        topology.clone(),
        ConsumerOptions { prefetch: 50, lanes: 2 },
        Arc::new(Echo),
        Some(crate::support::fresh_database().await),
    )
    .without_inbox(publisher)
    .in_batches(10);
    let running = tokio::spawn(consumer.run(std::future::pending()));

    let tenant = tenant();
    let mut sent = std::collections::HashSet::new();
    for round in 0..2 {
        for _ in 0..20 {
            let envelope = pause_ride(Uuid::now_v7(), &tenant);
            nats.publish_durable(subject.into(), &envelope).await.unwrap();
            sent.insert(envelope.id);
        }
        if round == 0 {
            // Some of the first twenty are handled, some wait in the lanes; the broker goes away.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let stopping = Arc::clone(&rabbit);
            tokio::task::spawn_blocking(move || stopping.stop()).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let booting = Arc::clone(&rabbit);
    tokio::task::spawn_blocking(move || booting.boot()).await.unwrap();

    // The durable queue kept what was confirmed before the restart; the rest arrives after it.
    let channel = loop {
        if let Ok(channel) = amqp.channel().await {
            break channel;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut deliveries = channel
        .basic_consume(echoes.as_str().into(), "test".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    let mut echoed = std::collections::HashSet::new();
    let arrived = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(delivery)) = deliveries.next().await {
            let envelope = schemas::Envelope::<serde_json::Value>::parse(&delivery.data).unwrap();
            echoed.insert(envelope.id);
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            if echoed.is_superset(&sent) {
                break;
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "{} of {} echoes arrived", echoed.intersection(&sent).count(), sent.len());
    let letters = bus::nats::list_dead_letters(&nats, &topology.group, 10).await.unwrap();
    assert!(letters.is_empty(), "nothing was dead-lettered: {letters:?}");
    running.abort();
}
