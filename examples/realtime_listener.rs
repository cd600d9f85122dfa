//! A mobile app's view of voltbus: subscribe to one user's realtime topic on NATS and print each
//! message (`CHARGING`, `PAYMENT`, `REPLENISHMENT`) as the app receives it — the seed's body, with
//! the envelope in `ce-…` headers.
//!
//! ```sh
//! cargo run --example realtime_listener -- nats://127.0.0.1:4222 acme 0192f1a4-7b3c-7d2e-8f00-000000000051
//! ```

use bus::nats::NatsConnection;
use futures_util::StreamExt;
use schemas::{TenantId, subjects};

/// Listens on a user's topic; returns after `limit` messages (`None`: forever).
async fn listen(
    nats: &NatsConnection,
    tenant: &TenantId,
    user: uuid::Uuid,
    limit: Option<usize>,
) -> anyhow::Result<Vec<String>> {
    let topic = subjects::user_topic(tenant, user);
    let mut subscriber = nats.subscribe(format!("{topic}.>")).await?;
    let mut seen = Vec::new();
    while let Some(message) = subscriber.next().await {
        let body = String::from_utf8_lossy(&message.payload).into_owned();
        match bus::nats::decode(&message) {
            Ok(envelope) => println!("{} {} {body}", message.subject, envelope.type_name),
            Err(error) => println!("{} undecodable ({}): {body}", message.subject, error.kind()),
        }
        seen.push(body);
        if limit.is_some_and(|n| seen.len() >= n) {
            break;
        }
    }
    Ok(seen)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let tenant = TenantId::new(args.next().unwrap_or_else(|| "acme".into()))?;
    let user: uuid::Uuid = args.next().unwrap_or_else(|| uuid::Uuid::nil().to_string()).parse()?;
    let nats = NatsConnection::connect(&url, "realtime-listener").await?;
    println!("listening on {}.>", subjects::user_topic(&tenant, user));
    listen(&nats, &tenant, user, None).await?;
    Ok(())
}

#[tokio::test]
async fn receives_a_charging_message_once() {
    use schemas::{Currency, Envelope, charging::ChargingProgress, subjects::Channel};
    let url = std::env::var("VOLTBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = NatsConnection::connect(&url, "realtime-listener-test").await.unwrap();
    let tenant = TenantId::new("example").unwrap();
    let user = uuid::Uuid::now_v7();
    let listener = {
        let nats = nats.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { listen(&nats, &tenant, user, Some(1)).await })
    };
    let progress = ChargingProgress { energy: 1.0, waiting_time: 0, amount: 100, currency: Currency::MNT };
    let envelope = Envelope::new(tenant.clone(), "example", progress).with_subject(user.to_string());
    // The subscription may not be registered yet: publish until the listener has its message.
    for _ in 0..50 {
        nats.publish_realtime(subjects::user_channel(&tenant, user, Channel::Charging), &envelope).await.unwrap();
        if listener.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = listener.await.unwrap().unwrap();
    assert!(seen[0].contains("\"waitingTime\":0"), "{seen:?}");
}
