//! What only RabbitMQ has: mandatory publishing of commands nobody is bound for, and consumption
//! in batches.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::amqp::{AmqpConnection, ConsumerOptions, Requester};
use bus::{Context, Handler, HandlerError, Reply, RequestError};
use schemas::{AnyMessage, Envelope, routing};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};
use uuid::Uuid;

use crate::conformance::Harness;
use crate::conformance::amqp::Amqp;
use crate::support::{amqp_url, fresh_database, pause_ride, tenant};

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

/// Records the batches it is given; writes one effect row per message; refuses `poison` for good.
struct Batches {
    sizes: Mutex<Vec<usize>>,
    poison: Uuid,
}

impl Handler for Batches {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            if context.message.id == self.poison {
                return Err(HandlerError::Permanent("poison".into()));
            }
            let tx = context.transaction.expect("a database");
            let sql = format!("INSERT INTO tenants (id, name) VALUES ('fx{}', 'effect')", context.message.id.simple());
            tx.execute_raw(Statement::from_string(tx.get_database_backend(), sql))
                .await
                .map_err(|e| HandlerError::Retryable(e.to_string()))?;
            Ok(None)
        })
    }

    fn handle_batch<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        self.sizes.lock().unwrap().push(messages.len());
        bus::handle_each(self, transaction, messages)
    }
}

#[tokio::test]
async fn a_batch_commits_together_and_a_poison_message_is_dead_lettered_alone() {
    let database = fresh_database().await;
    let poison = pause_ride(Uuid::now_v7(), &tenant());
    let handler = Arc::new(Batches { sizes: Mutex::default(), poison: poison.id });
    let options = ConsumerOptions { prefetch: 100, lanes: 1 };
    let mut harness = Amqp::start(handler.clone(), vec![], options, Some(database.clone())).await;
    harness.stop().await;

    // Everything waits in the queue before the consumer starts, so it arrives in batches: 39
    // messages, one of them twice, and the poison in the middle.
    let tenant = tenant();
    let good: Vec<_> = (0..39).map(|_| pause_ride(Uuid::now_v7(), &tenant)).collect();
    for (n, envelope) in good.iter().enumerate() {
        harness.send(envelope).await;
        if n == 20 {
            harness.send(&poison).await;
            harness.send(&good[3]).await;
        }
    }
    harness.batch = 16;
    harness.spawn();

    let count = |sql: &str| {
        let (database, sql) = (database.clone(), sql.to_owned());
        async move {
            let row = database.query_one_raw(Statement::from_string(database.get_database_backend(), sql)).await;
            row.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
        }
    };
    let effects = "SELECT count(*) FROM tenants WHERE name = 'effect'";
    // The queue's count says nothing of messages handed to the consumer and not yet committed:
    // wait for the effects themselves.
    let mut letters = Vec::new();
    for _ in 0..400 {
        letters = harness.dead_letters().await;
        if !letters.is_empty() && count(effects).await >= 39 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters.len(), 1, "only the poison is dead-lettered");
    assert_eq!(letters[0].message_id.as_deref(), Some(poison.id.to_string().as_str()));
    assert!(letters[0].reason.as_deref().unwrap_or_default().contains("poison"), "{:?}", letters[0]);
    for _ in 0..200 {
        if harness.pending().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(harness.pending().await, 0);

    // Every good message took effect once, duplicate included; several shared a transaction.
    assert_eq!(count(effects).await, 39);
    assert_eq!(count("SELECT count(*) FROM inbox").await, 39);
    assert!(handler.sizes.lock().unwrap().iter().any(|&size| size > 1), "{:?}", handler.sizes.lock().unwrap());
    harness.finish().await;
}
