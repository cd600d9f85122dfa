//! The RabbitMQ consumer runtime: the conformance cases of the bus issue, on the real broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::HandlerError;
use bus::amqp::{AmqpConnection, ConsumerOptions, RequestError, Requester, list_dead_letters, replay_dead_letters};
use schemas::routing;
use serde_json::json;
use uuid::Uuid;

use crate::support::{Group, Scripted, amqp_url, eventually, fresh_database, pause_ride, tenant};

const WAIT: Duration = Duration::from_secs(15);

fn quick() -> ConsumerOptions {
    ConsumerOptions { prefetch: 50, lanes: 4 }
}

#[tokio::test]
async fn handles_and_acks_then_the_queue_is_empty() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let group = Group::start(handler.clone(), vec![], quick(), None).await;
    let tenant = tenant();
    for _ in 0..20 {
        group.send(&pause_ride(Uuid::now_v7(), &tenant)).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 20).await);
    let channel = group.publisher.channel().await.unwrap();
    assert!(
        eventually(WAIT, || true).await && wait_depth(&channel, &group.topology.work_queue(), 0).await,
        "everything handled is acked"
    );
    group.finish().await;
}

async fn depth(channel: &lapin::Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
            Default::default(),
        )
        .await
        .unwrap()
        .message_count()
}

async fn wait_depth(channel: &lapin::Channel, queue: &str, expected: u32) -> bool {
    for _ in 0..200 {
        if depth(channel, queue).await == expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn retries_with_backoff_then_succeeds() {
    let handler = Arc::new(Scripted::new(|_, attempt| {
        if attempt < 3 { Err(HandlerError::Retryable(format!("flaky #{attempt}"))) } else { Ok(None) }
    }));
    let group =
        Group::start(handler.clone(), vec![Duration::from_millis(200), Duration::from_millis(400)], quick(), None)
            .await;
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    let sent = tokio::time::Instant::now();
    group.send(&envelope).await;
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 3).await);
    let calls = handler.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), vec![1, 2, 3], "attempt numbers travel in a header");
    assert!(calls.iter().all(|c| c.0 == envelope.id));
    assert!(sent.elapsed() >= Duration::from_millis(600), "both delays were waited");
    let dead = list_dead_letters(&group.publisher, &group.topology.dead_letter_queue(), 10).await.unwrap();
    assert!(dead.is_empty());
    group.finish().await;
}

#[tokio::test]
async fn dead_letters_after_the_last_attempt_with_the_reason() {
    let handler = Arc::new(Scripted::new(|_, _| Err(HandlerError::Retryable("charger offline".into()))));
    let group = Group::start(handler.clone(), vec![Duration::from_millis(100)], quick(), None).await;
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    group.send(&envelope).await;
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 2).await);
    let channel = group.publisher.channel().await.unwrap();
    assert!(wait_depth(&channel, &group.topology.dead_letter_queue(), 1).await);
    let dead = list_dead_letters(&group.publisher, &group.topology.dead_letter_queue(), 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?} depth {}", depth(&channel, &group.topology.dead_letter_queue()).await);
    let letter = &dead[0];
    assert_eq!(letter.message_id.as_deref(), Some(envelope.id.to_string().as_str()));
    assert_eq!(letter.error_kind.as_deref(), Some("retries_exhausted"));
    assert!(letter.reason.as_deref().unwrap().contains("charger offline"));
    assert_eq!(letter.source_queue.as_deref(), Some(group.topology.work_queue().as_str()));
    assert_eq!(letter.attempts, Some(2));
    assert_eq!(letter.type_name.as_deref(), Some("ride.pause"));
    // Listing does not consume.
    assert_eq!(list_dead_letters(&group.publisher, &group.topology.dead_letter_queue(), 10).await.unwrap().len(), 1);
    group.finish().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_without_blocking_the_rest() {
    let handler = Arc::new(Scripted::new(|m, _| match m.subject.as_deref() {
        Some(s) if s.ends_with("000000000bad") => panic!("poison"),
        _ => Ok(None),
    }));
    let group = Group::start(
        handler.clone(),
        vec![Duration::from_millis(100)],
        ConsumerOptions { prefetch: 10, lanes: 1 },
        None,
    )
    .await;
    let tenant = tenant();
    // Not JSON at all, a future major version, a handler that panics, then good messages.
    group
        .publisher
        .publish_raw(routing::COMMANDS_EXCHANGE, &group.key(), b"\x00garbage", Default::default(), true)
        .await
        .unwrap();
    let mut future = serde_json::to_value(pause_ride(Uuid::now_v7(), &tenant)).unwrap();
    future["dataversion"] = json!("2.0");
    group
        .publisher
        .publish_raw(routing::COMMANDS_EXCHANGE, &group.key(), future.to_string().as_bytes(), Default::default(), true)
        .await
        .unwrap();
    group.send(&pause_ride(Uuid::from_u128(0xbad), &tenant)).await;
    for _ in 0..5 {
        group.send(&pause_ride(Uuid::now_v7(), &tenant)).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 6).await, "good messages pass the poison");
    let channel = group.publisher.channel().await.unwrap();
    let ok = wait_depth(&channel, &group.topology.dead_letter_queue(), 3).await;
    assert!(ok, "dlq: {:?}", list_dead_letters(&group.publisher, &group.topology.dead_letter_queue(), 10).await);
    let kinds: Vec<_> = list_dead_letters(&group.publisher, &group.topology.dead_letter_queue(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.error_kind.unwrap_or_default())
        .collect();
    assert_eq!(kinds, vec!["malformed", "unsupported_version", "permanent"]);
    group.finish().await;
}

#[tokio::test]
async fn one_aggregate_in_order_many_aggregates_at_once() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let group = Group::start(handler.clone(), vec![], ConsumerOptions { prefetch: 100, lanes: 8 }, None).await;
    let tenant = tenant();
    let rides: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut sent: HashMap<String, Vec<Uuid>> = HashMap::new();
    for i in 0..100 {
        let ride = rides[i % rides.len()];
        let envelope = pause_ride(ride, &tenant);
        sent.entry(ride.to_string()).or_default().push(envelope.id);
        group.send(&envelope).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 100).await);
    let mut seen: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (id, _, subject) in handler.calls.lock().unwrap().iter() {
        seen.entry(subject.clone().unwrap()).or_default().push(*id);
    }
    for (k, v) in &sent {
        assert_eq!(seen.get(k), Some(v), "aggregate {k}: sent {} seen {:?}", v.len(), seen.get(k).map(Vec::len));
    }
    assert_eq!(seen, sent, "each aggregate's messages are handled in publish order");
    group.finish().await;
}

#[tokio::test]
async fn a_duplicate_has_no_second_effect_and_gets_the_same_reply() {
    let database = fresh_database().await;
    let counter = Arc::new(Mutex::new(0));
    let handler = Arc::new(Scripted::new({
        let counter = Arc::clone(&counter);
        move |_, _| {
            let mut n = counter.lock().unwrap();
            *n += 1;
            Ok(Some(json!({ "paused": true, "call": *n })))
        }
    }));
    let group = Group::start(handler.clone(), vec![], quick(), Some(database.clone())).await;
    let connection = AmqpConnection::connect(&amqp_url(), "voltbus-test-requester").await.unwrap();
    let requester = Requester::new(&connection).await.unwrap();
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    let first = requester.request_to(routing::COMMANDS_EXCHANGE, &group.key(), &envelope, WAIT).await.unwrap();
    // The same message again, as a redelivery or a client retry would bring it.
    let second = requester.request_to(routing::COMMANDS_EXCHANGE, &group.key(), &envelope, WAIT).await.unwrap();
    assert_eq!(first, json!({ "paused": true, "call": 1 }));
    assert_eq!(second, first, "a duplicate gets the first reply");
    assert_eq!(handler.calls.lock().unwrap().len(), 1, "the handler ran once");
    let rows = sea_orm::ConnectionTrait::query_one_raw(
        &database,
        sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT count(*) AS n FROM tenants WHERE name = 'effect'",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 1, "one effect in the database");
    group.finish().await;
}

#[tokio::test]
async fn a_failed_handler_leaves_no_half_written_state() {
    let database = fresh_database().await;
    let handler = Arc::new(Scripted::new(|_, _| Err(HandlerError::Permanent("ride already ended".into()))));
    let group = Group::start(handler.clone(), vec![], quick(), Some(database.clone())).await;
    let connection = AmqpConnection::connect(&amqp_url(), "voltbus-test-requester").await.unwrap();
    let requester = Requester::new(&connection).await.unwrap();
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    match requester.request_to(routing::COMMANDS_EXCHANGE, &group.key(), &envelope, WAIT).await {
        Err(RequestError::Failed { kind, message }) => {
            assert_eq!(kind, "permanent");
            assert!(message.contains("already ended"));
        }
        other => panic!("expected a failure reply, got {other:?}"),
    }
    let count = |sql: &'static str| {
        let database = database.clone();
        async move {
            sea_orm::ConnectionTrait::query_one_raw(
                &database,
                sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql),
            )
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) AS n FROM tenants").await, 0, "the handler's write was rolled back");
    assert_eq!(count("SELECT count(*) AS n FROM inbox").await, 0, "no inbox row for a failed message");
    group.finish().await;
}

#[tokio::test]
async fn request_reply_times_out_and_refuses_unroutable_commands() {
    let mut slow = Scripted::new(|_, _| Ok(Some(json!("late"))));
    slow.delay = Duration::from_millis(1500);
    let group = Group::start(Arc::new(slow), vec![], quick(), None).await;
    let connection = AmqpConnection::connect(&amqp_url(), "voltbus-test-requester").await.unwrap();
    let requester = Requester::new(&connection).await.unwrap();
    let tenant = tenant();
    let result = requester
        .request_to(
            routing::COMMANDS_EXCHANGE,
            &group.key(),
            &pause_ride(Uuid::now_v7(), &tenant),
            Duration::from_millis(300),
        )
        .await;
    assert!(matches!(result, Err(RequestError::Timeout(_))), "{result:?}");
    let unroutable = requester
        .request_to(routing::COMMANDS_EXCHANGE, "test.nobody-listens", &pause_ride(Uuid::now_v7(), &tenant), WAIT)
        .await;
    assert!(matches!(unroutable, Err(RequestError::Publish(bus::PublishError::Returned { .. }))), "{unroutable:?}");
    group.finish().await;
}

#[tokio::test]
async fn replay_sends_dead_letters_back_to_their_queue() {
    let healthy = Arc::new(Mutex::new(false));
    let handler = Arc::new(Scripted::new({
        let healthy = Arc::clone(&healthy);
        move |_, _| {
            if *healthy.lock().unwrap() { Ok(None) } else { Err(HandlerError::Permanent("downstream refused".into())) }
        }
    }));
    let group = Group::start(handler.clone(), vec![], quick(), None).await;
    let tenant = tenant();
    let (a, b) = (pause_ride(Uuid::now_v7(), &tenant), pause_ride(Uuid::now_v7(), &tenant));
    group.send(&a).await;
    group.send(&b).await;
    let channel = group.publisher.channel().await.unwrap();
    assert!(wait_depth(&channel, &group.topology.dead_letter_queue(), 2).await);
    *healthy.lock().unwrap() = true;
    let dlq = group.topology.dead_letter_queue();
    assert_eq!(replay_dead_letters(&group.publisher, &dlq, Some(&b.id.to_string())).await.unwrap(), 1);
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().iter().filter(|c| c.0 == b.id).count() == 2).await);
    assert!(wait_depth(&channel, &dlq, 1).await, "only the chosen message left the dead-letter queue");
    assert_eq!(replay_dead_letters(&group.publisher, &dlq, None).await.unwrap(), 1);
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().iter().filter(|c| c.0 == a.id).count() == 2).await);
    let replayed_attempt = handler.calls.lock().unwrap().iter().rfind(|c| c.0 == a.id).unwrap().1;
    assert_eq!(replayed_attempt, 1, "a replayed message starts its attempts over");
    group.finish().await;
}

#[tokio::test]
async fn shutdown_finishes_the_message_in_hand() {
    let mut slow = Scripted::new(|_, _| Ok(None));
    slow.delay = Duration::from_millis(800);
    let handler = Arc::new(slow);
    let mut group = Group::start(handler.clone(), vec![], ConsumerOptions { prefetch: 1, lanes: 1 }, None).await;
    group.send(&pause_ride(Uuid::now_v7(), &tenant())).await;
    // Let the handler start, then stop while it sleeps.
    tokio::time::sleep(Duration::from_millis(300)).await;
    group.stop().await;
    assert_eq!(handler.calls.lock().unwrap().len(), 1, "the message in hand was finished");
    let channel = group.publisher.channel().await.unwrap();
    assert_eq!(depth(&channel, &group.topology.work_queue()).await, 0, "and acked, not left for redelivery");
    group.finish().await;
}

#[tokio::test]
async fn a_forcibly_closed_connection_loses_nothing() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let mut slow = ConsumerOptions { prefetch: 5, lanes: 1 };
    slow.prefetch = 5;
    let group = Group::start(handler.clone(), vec![], slow, None).await;
    let tenant = tenant();
    let mut ids = Vec::new();
    for _ in 0..300 {
        let envelope = pause_ride(Uuid::now_v7(), &tenant);
        ids.push(envelope.id);
        group.send(&envelope).await;
    }
    // Close the consumer's own connection (found by its name), as `rabbitmqctl close_all_connections` would.
    assert!(eventually(WAIT, || !handler.calls.lock().unwrap().is_empty()).await);
    let name = format!("voltbus-consumer-{}", group.topology.group);
    let listed = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "-q"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    let pid = text
        .lines()
        .find(|l| l.contains(&name))
        .and_then(|l| l.split_whitespace().next())
        .expect("consumer connection listed")
        .to_owned();
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["close_connection", &pid, "test: forced close"])
        .output()
        .unwrap();
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));

    assert!(
        eventually(Duration::from_secs(30), || {
            let calls = handler.calls.lock().unwrap();
            ids.iter().all(|id| calls.iter().any(|c| c.0 == *id))
        })
        .await,
        "every message handled after the runtime reconnected"
    );
    group.finish().await;
}

#[tokio::test]
async fn one_lane_keeps_the_queue_order() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let group = Group::start(handler.clone(), vec![], ConsumerOptions { prefetch: 100, lanes: 1 }, None).await;
    let tenant = tenant();
    let mut sent = Vec::new();
    for _ in 0..100 {
        let envelope = pause_ride(Uuid::now_v7(), &tenant);
        sent.push(envelope.id);
        group.send(&envelope).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 100).await);
    let seen: Vec<Uuid> = handler.calls.lock().unwrap().iter().map(|c| c.0).collect();
    let first_diff = seen.iter().zip(&sent).position(|(a, b)| a != b);
    assert_eq!(first_diff, None);
    group.finish().await;
}
