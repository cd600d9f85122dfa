//! What only RabbitMQ has: mandatory publishing of commands nobody is bound for.

use std::time::Duration;

use bus::RequestError;
use bus::amqp::{AmqpConnection, Requester};
use schemas::routing;
use uuid::Uuid;

use crate::support::{amqp_url, pause_ride, tenant};

#[tokio::test]
async fn a_command_no_queue_is_bound_for_is_refused_at_once() {
    let connection = std::sync::Arc::new(AmqpConnection::connect(&amqp_url(), "voltbus-test-requester").await.unwrap());
    connection.declare_exchanges().await.unwrap();
    let requester = Requester::new(connection.clone()).await.unwrap();
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    let unroutable = requester
        .request_to(routing::COMMANDS_EXCHANGE, "test.nobody-listens", &envelope, Duration::from_secs(10))
        .await;
    assert!(matches!(unroutable, Err(RequestError::Publish(bus::PublishError::Returned { .. }))), "{unroutable:?}");
}
