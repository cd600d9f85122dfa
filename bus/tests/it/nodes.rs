//! `amqp.url` naming several nodes: the connection goes to the first that answers, and after
//! losing it, to the next, with the exchanges declared again there. Two RabbitMQ nodes of the
//! test's own (`private_rabbit`), so the second starts with none of voltbus's topology. Then
//! `amqp.quorum_size` on a cluster of three, and NATS server lists and replicated streams.

use std::time::{Duration, Instant};

use bus::PublishError;
use bus::amqp::{AmqpConnection, GroupTopology};
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use schemas::routing;
use uuid::Uuid;

use crate::private_nats::{PrivateNats, PrivateNatsCluster};
use crate::private_rabbit::{PrivateRabbit, PrivateRabbitCluster};
use crate::support::{init_logs, pause_ride, tenant, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_left_for_the_next_one_where_the_exchanges_are_declared_again() {
    init_logs();
    let (first, second) = (PrivateRabbit::start(), PrivateRabbit::start());
    // Nothing listens on port 1: the list is tried in order, past a node that does not answer.
    let url = format!("amqp://guest:guest@127.0.0.1:1/%2f, {}, {}", first.url(), second.url());
    let amqp = AmqpConnection::connect(&url, "voltbus-test-nodes").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let tenant = tenant();
    let routing_key = "test.nodes";
    let event = || pause_ride(Uuid::now_v7(), &tenant);

    let landed_on = |name: &str| {
        let (amqp, queue) = (&amqp, name.to_owned());
        async move {
            let channel = amqp.channel().await.unwrap();
            channel
                .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
                .await
                .unwrap();
            let bind = QueueBindOptions::default();
            let (exchange, key) = (routing::EVENTS_EXCHANGE.into(), routing_key.into());
            channel.queue_bind(queue.as_str().into(), exchange, key, bind, FieldTable::default()).await.unwrap();
            amqp.publish(routing::EVENTS_EXCHANGE, routing_key, &event()).await.unwrap();
            let got = channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
            assert!(got.is_some(), "the event reached the queue on the node the connection is on");
        }
    };
    landed_on(&unique("on_first")).await;

    first.stop();
    // The publish caught in the break fails (never a false confirmation); the next ones reopen
    // the link on the second node, which had no exchange until the connection declared it again:
    // there the event is returned unroutable (no queue is bound yet), where a missing exchange
    // would have closed the channel.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match amqp.publish(routing::EVENTS_EXCHANGE, routing_key, &event()).await {
            Err(PublishError::Returned { .. }) => break,
            outcome => assert!(outcome.is_err(), "confirmed with no queue bound on any node"),
        }
        assert!(Instant::now() < deadline, "never reconnected to the second node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    landed_on(&unique("on_second")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_url_of_several_servers_reaches_the_one_that_answers() {
    init_logs();
    let server = PrivateNats::start();
    let url = format!("nats://127.0.0.1:1, {}", server.url());
    let nats = bus::nats::NatsConnection::connect(&url, "voltbus-test-nodes").await.unwrap();
    nats.ensure_streams(bus::nats::DEFAULT_RETENTION).await.unwrap();
    let subject = format!("voltbus.test.events.{}", unique("nodes"));
    nats.publish_durable(subject, &pause_ride(Uuid::now_v7(), &tenant())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_three_replicas_keeps_every_acknowledged_message_when_its_leader_dies() {
    init_logs();
    let mut cluster = PrivateNatsCluster::start(3);
    let nats = bus::nats::NatsConnection::connect(&cluster.url(), "voltbus-test-cluster").await.unwrap();
    // JetStream answers once the cluster has elected its meta leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(error) = nats.ensure_replicated_streams(bus::nats::DEFAULT_RETENTION, Some(3)).await {
        assert!(Instant::now() < deadline, "no JetStream cluster: {error}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stream = nats.jetstream().get_stream(schemas::subjects::EVENTS_STREAM).await.unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    let subject = format!("voltbus.test.events.{}", unique("replicated"));
    let tenant = tenant();
    let mut acknowledged = 0;
    // Each message is sent again as itself (same id) until acknowledged: the stream's
    // de-duplication keeps one copy of a publish whose first acknowledgement was lost.
    let publish = async |acknowledged: &mut usize| {
        let envelope = pause_ride(Uuid::now_v7(), &tenant);
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(error) = nats.publish_durable(subject.clone(), &envelope).await {
            assert!(Instant::now() < deadline, "never acknowledged again: {error}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        *acknowledged += 1;
    };
    for _ in 0..50 {
        publish(&mut acknowledged).await;
    }

    let leader = info.cluster.and_then(|c| c.leader).expect("the stream has a leader");
    let killed = cluster.index_of(&leader).expect("a node of this cluster");
    cluster.nodes[killed].kill();
    let started = Instant::now();
    publish(&mut acknowledged).await;
    let recovered = started.elapsed();
    for _ in 0..49 {
        publish(&mut acknowledged).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        assert!(Instant::now() < deadline, "the stream never answered with a new leader");
        match stream.get_info().await {
            Ok(info) if info.cluster.as_ref().and_then(|c| c.leader.as_ref()).is_some_and(|l| *l != leader) => {
                break info.state.messages;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    println!(
        "stream leader {leader} killed: acknowledged again after {recovered:?}; {acknowledged} acknowledged, {stored} stored"
    );
    assert_eq!(stored, u64::try_from(acknowledged).unwrap(), "every acknowledged message stored once");
    cluster.nodes[killed].boot();
}

/// The members of each of `queues` (by name), as the first node of `cluster` lists them.
fn members(cluster: &PrivateRabbitCluster, queues: &[String]) -> Vec<usize> {
    let listed =
        cluster.nodes[0].ctl().args(["list_queues", "name", "members", "--formatter", "json"]).output().unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    queues
        .iter()
        .map(|queue| {
            let row = listed.iter().find(|row| row["name"] == queue.as_str()).expect("the queue is listed");
            row["members"].as_array().map_or(0, Vec::len)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_s_queues_are_made_with_the_quorum_size_and_keep_it_when_the_setting_changes() {
    init_logs();
    let cluster = PrivateRabbitCluster::start(3);
    let amqp = AmqpConnection::connect(&cluster.url(), "voltbus-test-quorum").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let delays = vec![Duration::from_secs(1)];
    let group = |name: &str| GroupTopology::commands(unique(name), vec!["test.quorum".into()], delays.clone());
    let queues = |topology: &GroupTopology| {
        vec![topology.work_queue(), topology.dead_letter_queue(), topology.retry_queue(1).unwrap().0]
    };

    let sized = group("sized").with_quorum_size(Some(2));
    sized.declare(&amqp).await.unwrap();
    assert_eq!(members(&cluster, &queues(&sized)), [2, 2, 2], "made with two members of three nodes");
    // Declared again with another size, or none: the broker would refuse a declare with other
    // arguments (406); the queues stay as they were made.
    for size in [Some(3), None] {
        let again = sized.clone().with_quorum_size(size);
        again.declare(&amqp).await.unwrap_or_else(|e| panic!("declared again with {size:?}: {e}"));
        assert_eq!(members(&cluster, &queues(&again)), [2, 2, 2]);
    }
    let default = group("default");
    default.declare(&amqp).await.unwrap();
    assert_eq!(members(&cluster, &queues(&default)), [3, 3, 3], "RabbitMQ's default, 3");
}
