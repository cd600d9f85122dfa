//! One conformance suite, written once, run against every transport: each case is a generic
//! function over a [`Harness`], and `conformance!` instantiates all of them for one transport.

pub mod amqp;
pub mod embedded;
pub mod nats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::amqp::ConsumerOptions;
use bus::{DeadLetter, Handler, HandlerError, RequestError};
use schemas::Envelope;
use schemas::rides::PauseRide;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Scripted, eventually, fresh_database, pause_ride, tenant};

pub const WAIT: Duration = Duration::from_secs(20);

/// A consumer runtime running in a task, stopped gracefully or killed.
#[derive(Default)]
pub struct Runner(Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>);

impl Runner {
    /// Starts `run`, which gets the future that resolves when the runner is stopped.
    pub fn start<Fut>(
        &mut self,
        run: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    ) where
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        self.0 = Some((stop, task));
    }

    /// Aborts the task, as a crash would.
    pub fn kill(&mut self) {
        if let Some((_, task)) = self.0.take() {
            task.abort();
        }
    }

    /// Asks the runtime to stop and waits until it has.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.0.take() {
            let _ = stop.send(());
            task.await.unwrap();
        }
    }
}

/// What the suite needs from a transport.
pub trait Harness: Sized {
    /// Starts a consumer group of its own with `handler`.
    async fn start(
        handler: Arc<dyn Handler>,
        retry_delays: Vec<Duration>,
        options: ConsumerOptions,
        database: Option<DatabaseConnection>,
    ) -> Self;
    /// Publishes a message to the group, confirmed by the broker.
    async fn send(&self, envelope: &Envelope<PauseRide>);
    /// Publishes bytes that are no envelope at all.
    async fn send_garbage(&self);
    /// Publishes a message claiming another major version.
    async fn send_version(&self, envelope: &Envelope<PauseRide>, version: &str);
    /// Sends a command and waits for its reply.
    async fn request(&self, envelope: &Envelope<PauseRide>, timeout: Duration) -> Result<Value, RequestError>;
    /// The group's dead letters.
    async fn dead_letters(&self) -> Vec<DeadLetter>;
    /// Replays dead letters back to the group.
    async fn replay(&self, message_id: Option<&str>) -> usize;
    /// Messages the broker still holds for the group (waiting or unacknowledged).
    async fn pending(&self) -> u64;
    /// Cuts the consumer's connection from the broker side.
    async fn force_disconnect(&mut self);
    /// Kills the consumer without letting it finish (as `kill -9` would), then starts a new one.
    async fn kill_and_restart(&mut self);
    /// Stops the consumer gracefully.
    async fn stop(&mut self);
    /// Stops and removes what the group left on the broker.
    async fn finish(self);
}

fn quick() -> ConsumerOptions {
    ConsumerOptions { prefetch: 50, lanes: 4 }
}

async fn wait_pending<H: Harness>(harness: &H, expected: u64) -> bool {
    for _ in 0..200 {
        if harness.pending().await == expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn wait_dead<H: Harness>(harness: &H, expected: usize) -> Vec<DeadLetter> {
    let mut letters = Vec::new();
    for _ in 0..200 {
        letters = harness.dead_letters().await;
        if letters.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    letters
}

async fn wait_dead_exactly<H: Harness>(harness: &H, expected: usize) -> Vec<DeadLetter> {
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = harness.dead_letters().await;
        if letters.len() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    letters
}

pub async fn publish_consume_ack<H: Harness>() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let harness = H::start(handler.clone(), vec![], quick(), None).await;
    let tenant = tenant();
    for _ in 0..20 {
        harness.send(&pause_ride(Uuid::now_v7(), &tenant)).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 20).await);
    assert!(wait_pending(&harness, 0).await, "everything handled is acknowledged");
    harness.finish().await;
}

pub async fn one_lane_keeps_publish_order<H: Harness>() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let harness = H::start(handler.clone(), vec![], ConsumerOptions { prefetch: 100, lanes: 1 }, None).await;
    let tenant = tenant();
    let mut sent = Vec::new();
    for _ in 0..100 {
        let envelope = pause_ride(Uuid::now_v7(), &tenant);
        sent.push(envelope.id);
        harness.send(&envelope).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 100).await);
    let seen: Vec<Uuid> = handler.calls.lock().unwrap().iter().map(|c| c.0).collect();
    assert_eq!(seen, sent);
    harness.finish().await;
}

pub async fn one_aggregate_in_order_many_at_once<H: Harness>() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let harness = H::start(handler.clone(), vec![], ConsumerOptions { prefetch: 100, lanes: 8 }, None).await;
    let tenant = tenant();
    let rides: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut sent: HashMap<String, Vec<Uuid>> = HashMap::new();
    for i in 0..100 {
        let envelope = pause_ride(rides[i % rides.len()], &tenant);
        sent.entry(rides[i % rides.len()].to_string()).or_default().push(envelope.id);
        harness.send(&envelope).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 100).await);
    let mut seen: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (id, _, subject) in handler.calls.lock().unwrap().iter() {
        seen.entry(subject.clone().unwrap()).or_default().push(*id);
    }
    assert_eq!(seen, sent, "each aggregate's messages are handled in publish order");
    harness.finish().await;
}

pub async fn retries_with_backoff_then_succeeds<H: Harness>() {
    let handler = Arc::new(Scripted::new(|_, attempt| {
        if attempt < 3 { Err(HandlerError::Retryable(format!("flaky #{attempt}"))) } else { Ok(None) }
    }));
    let harness =
        H::start(handler.clone(), vec![Duration::from_millis(200), Duration::from_millis(400)], quick(), None).await;
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    let sent = tokio::time::Instant::now();
    harness.send(&envelope).await;
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 3).await);
    let calls = handler.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the attempt number travels with the message"
    );
    assert!(sent.elapsed() >= Duration::from_millis(600), "both delays were waited");
    assert!(wait_pending(&harness, 0).await);
    assert!(harness.dead_letters().await.is_empty());
    harness.finish().await;
}

pub async fn dead_letters_after_the_last_attempt_with_the_reason<H: Harness>() {
    let handler = Arc::new(Scripted::new(|_, _| Err(HandlerError::Retryable("charger offline".into()))));
    let harness = H::start(handler.clone(), vec![Duration::from_millis(100)], quick(), None).await;
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    harness.send(&envelope).await;
    let dead = wait_dead(&harness, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert_eq!(letter.message_id.as_deref(), Some(envelope.id.to_string().as_str()));
    assert_eq!(letter.error_kind.as_deref(), Some("retries_exhausted"));
    assert!(letter.reason.as_deref().unwrap().contains("charger offline"));
    assert!(letter.source_queue.is_some(), "the dead letter says where it came from");
    assert_eq!(letter.attempts, Some(2));
    assert_eq!(letter.type_name.as_deref(), Some("ride.pause"));
    assert_eq!(handler.calls.lock().unwrap().len(), 2);
    assert!(wait_pending(&harness, 0).await);
    assert_eq!(harness.dead_letters().await.len(), 1, "listing does not consume");
    harness.finish().await;
}

pub async fn poison_messages_do_not_block<H: Harness>() {
    let handler = Arc::new(Scripted::new(|m, _| match m.subject.as_deref() {
        Some(s) if s.ends_with("000000000bad") => panic!("poison"),
        _ => Ok(None),
    }));
    let harness =
        H::start(handler.clone(), vec![Duration::from_millis(100)], ConsumerOptions { prefetch: 10, lanes: 1 }, None)
            .await;
    let tenant = tenant();
    harness.send_garbage().await;
    harness.send_version(&pause_ride(Uuid::now_v7(), &tenant), "2.0").await;
    harness.send(&pause_ride(Uuid::from_u128(0xbad), &tenant)).await;
    for _ in 0..5 {
        harness.send(&pause_ride(Uuid::now_v7(), &tenant)).await;
    }
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().len() == 6).await, "good messages pass the poison");
    let dead = wait_dead(&harness, 3).await;
    let kinds: Vec<_> = dead.into_iter().map(|d| d.error_kind.unwrap_or_default()).collect();
    assert_eq!(kinds, vec!["malformed", "unsupported_version", "permanent"]);
    harness.finish().await;
}

async fn count(database: &DatabaseConnection, sql: &str) -> i64 {
    database
        .query_one_raw(Statement::from_string(database.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

pub async fn a_duplicate_has_no_second_effect<H: Harness>() {
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
    let harness = H::start(handler.clone(), vec![], quick(), Some(database.clone())).await;
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    let first = harness.request(&envelope, WAIT).await.unwrap();
    // The same message again, as a redelivery or a client's retry brings it.
    let second = harness.request(&envelope, WAIT).await.unwrap();
    assert_eq!(first, json!({ "paused": true, "call": 1 }));
    assert_eq!(second, first, "a duplicate gets the first reply");
    assert_eq!(handler.calls.lock().unwrap().len(), 1, "the handler ran once");
    assert_eq!(count(&database, "SELECT count(*) AS n FROM tenants WHERE name = 'effect'").await, 1);
    harness.finish().await;
}

pub async fn a_failed_handler_leaves_no_half_written_state<H: Harness>() {
    let database = fresh_database().await;
    let handler = Arc::new(Scripted::new(|_, _| Err(HandlerError::Permanent("ride already ended".into()))));
    let harness = H::start(handler.clone(), vec![], quick(), Some(database.clone())).await;
    match harness.request(&pause_ride(Uuid::now_v7(), &tenant()), WAIT).await {
        Err(RequestError::Failed { kind, message }) => {
            assert_eq!(kind, "permanent");
            assert!(message.contains("already ended"));
        }
        other => panic!("expected a failure reply, got {other:?}"),
    }
    assert_eq!(count(&database, "SELECT count(*) AS n FROM tenants").await, 0, "the handler's write was rolled back");
    assert_eq!(count(&database, "SELECT count(*) AS n FROM inbox").await, 0, "no inbox row for a failed message");
    harness.finish().await;
}

pub async fn request_reply_times_out<H: Harness>() {
    let mut slow = Scripted::new(|_, _| Ok(Some(json!("late"))));
    slow.delay = Duration::from_millis(1500);
    let harness = H::start(Arc::new(slow), vec![], quick(), None).await;
    let tenant = tenant();
    let result = harness.request(&pause_ride(Uuid::now_v7(), &tenant), Duration::from_millis(300)).await;
    assert!(matches!(result, Err(RequestError::Timeout(_))), "{result:?}");
    let answered = harness.request(&pause_ride(Uuid::now_v7(), &tenant), WAIT).await.unwrap();
    assert_eq!(answered, json!("late"));
    harness.finish().await;
}

pub async fn replay_sends_dead_letters_back<H: Harness>() {
    let healthy = Arc::new(Mutex::new(false));
    let handler = Arc::new(Scripted::new({
        let healthy = Arc::clone(&healthy);
        move |_, _| {
            if *healthy.lock().unwrap() { Ok(None) } else { Err(HandlerError::Permanent("downstream refused".into())) }
        }
    }));
    let harness = H::start(handler.clone(), vec![], quick(), None).await;
    let tenant = tenant();
    let (a, b) = (pause_ride(Uuid::now_v7(), &tenant), pause_ride(Uuid::now_v7(), &tenant));
    harness.send(&a).await;
    harness.send(&b).await;
    assert_eq!(wait_dead(&harness, 2).await.len(), 2);
    *healthy.lock().unwrap() = true;
    assert_eq!(harness.replay(Some(&b.id.to_string())).await, 1);
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().iter().filter(|c| c.0 == b.id).count() == 2).await);
    // Messages a listing or replay looked at go back asynchronously on some brokers: poll.
    let left = wait_dead_exactly(&harness, 1).await;
    assert_eq!(left.len(), 1, "only the chosen message left the dead letters: {left:?}");
    assert_eq!(left[0].message_id.as_deref(), Some(a.id.to_string().as_str()));
    assert_eq!(harness.replay(None).await, 1);
    assert!(eventually(WAIT, || handler.calls.lock().unwrap().iter().filter(|c| c.0 == a.id).count() == 2).await);
    assert!(wait_dead_exactly(&harness, 0).await.is_empty());
    harness.finish().await;
}

pub async fn shutdown_finishes_the_message_in_hand<H: Harness>() {
    let mut slow = Scripted::new(|_, _| Ok(None));
    slow.delay = Duration::from_millis(800);
    let handler = Arc::new(slow);
    let mut harness = H::start(handler.clone(), vec![], ConsumerOptions { prefetch: 1, lanes: 1 }, None).await;
    harness.send(&pause_ride(Uuid::now_v7(), &tenant())).await;
    // Let the handler start, then stop while it works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.stop().await;
    assert_eq!(handler.calls.lock().unwrap().len(), 1, "the message in hand was finished");
    assert!(wait_pending(&harness, 0).await, "and acknowledged, not left for redelivery");
    harness.finish().await;
}

pub async fn a_killed_consumer_gets_its_message_again<H: Harness>() {
    let mut slow = Scripted::new(|_, _| Ok(None));
    slow.delay = Duration::from_millis(1000);
    let handler = Arc::new(slow);
    let mut harness = H::start(handler.clone(), vec![], ConsumerOptions { prefetch: 1, lanes: 1 }, None).await;
    let envelope = pause_ride(Uuid::now_v7(), &tenant());
    harness.send(&envelope).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.kill_and_restart().await;
    assert!(
        eventually(Duration::from_secs(30), || handler.calls.lock().unwrap().iter().any(|c| c.0 == envelope.id)).await,
        "the message the killed consumer held is handled by the next one"
    );
    assert!(wait_pending(&harness, 0).await);
    harness.finish().await;
}

pub async fn a_forcibly_closed_connection_loses_nothing<H: Harness>() {
    let handler = Arc::new(Scripted::new(|_, _| Ok(None)));
    let mut harness = H::start(handler.clone(), vec![], ConsumerOptions { prefetch: 5, lanes: 1 }, None).await;
    let tenant = tenant();
    let mut ids = Vec::new();
    for _ in 0..300 {
        let envelope = pause_ride(Uuid::now_v7(), &tenant);
        ids.push(envelope.id);
        harness.send(&envelope).await;
    }
    assert!(eventually(WAIT, || !handler.calls.lock().unwrap().is_empty()).await);
    harness.force_disconnect().await;
    assert!(
        eventually(Duration::from_secs(40), || {
            let calls = handler.calls.lock().unwrap();
            ids.iter().all(|id| calls.iter().any(|c| c.0 == *id))
        })
        .await,
        "every message handled after the consumer reconnected"
    );
    harness.finish().await;
}

/// Instantiates every conformance case for one harness.
macro_rules! conformance {
    ($harness:ty) => {
        #[tokio::test]
        async fn publish_consume_ack() {
            crate::conformance::publish_consume_ack::<$harness>().await
        }
        #[tokio::test]
        async fn one_lane_keeps_publish_order() {
            crate::conformance::one_lane_keeps_publish_order::<$harness>().await
        }
        #[tokio::test]
        async fn one_aggregate_in_order_many_at_once() {
            crate::conformance::one_aggregate_in_order_many_at_once::<$harness>().await
        }
        #[tokio::test]
        async fn retries_with_backoff_then_succeeds() {
            crate::conformance::retries_with_backoff_then_succeeds::<$harness>().await
        }
        #[tokio::test]
        async fn dead_letters_after_the_last_attempt_with_the_reason() {
            crate::conformance::dead_letters_after_the_last_attempt_with_the_reason::<$harness>().await
        }
        #[tokio::test]
        async fn poison_messages_do_not_block() {
            crate::conformance::poison_messages_do_not_block::<$harness>().await
        }
        #[tokio::test]
        async fn a_duplicate_has_no_second_effect() {
            crate::conformance::a_duplicate_has_no_second_effect::<$harness>().await
        }
        #[tokio::test]
        async fn a_failed_handler_leaves_no_half_written_state() {
            crate::conformance::a_failed_handler_leaves_no_half_written_state::<$harness>().await
        }
        #[tokio::test]
        async fn request_reply_times_out() {
            crate::conformance::request_reply_times_out::<$harness>().await
        }
        #[tokio::test]
        async fn replay_sends_dead_letters_back() {
            crate::conformance::replay_sends_dead_letters_back::<$harness>().await
        }
        #[tokio::test]
        async fn shutdown_finishes_the_message_in_hand() {
            crate::conformance::shutdown_finishes_the_message_in_hand::<$harness>().await
        }
        #[tokio::test]
        async fn a_killed_consumer_gets_its_message_again() {
            crate::conformance::a_killed_consumer_gets_its_message_again::<$harness>().await
        }
        #[tokio::test]
        async fn a_forcibly_closed_connection_loses_nothing() {
            crate::conformance::a_forcibly_closed_connection_loses_nothing::<$harness>().await
        }
    };
}
pub(crate) use conformance;
