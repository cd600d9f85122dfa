//! A broker restart, on a RabbitMQ node of the test's own (see `private_rabbit`), so the shared
//! broker and the tests running beside this one are not disturbed.

use std::sync::Arc;
use std::time::Duration;

use bus::amqp::{AmqpConnection, AmqpConsumer, ConsumerOptions, GroupTopology};
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
    };
    let publisher = Arc::new(AmqpConnection::connect(&url, "voltbus-test-publisher").await.unwrap());
    let requester = bus::amqp::Requester::new(publisher.clone()).await.unwrap();
    publisher.declare_exchanges().await.unwrap();
    topology.declare(&publisher.channel().await.unwrap()).await.unwrap();
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
