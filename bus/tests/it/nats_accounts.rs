//! Credentials that nats-server itself checks: a nats-server of the test's own in operator mode,
//! trusting voltbus's operator; users signed by voltbus's account. A mobile user reads its own
//! subjects and nothing else, publishes nothing, and keys voltbus did not sign get nowhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use bus::nats::accounts::{Accounts, Credentials, Permissions};
use futures_util::StreamExt;

use crate::private_nats::PrivateNats;

/// A connection as `credentials`, and the server's complaints to it.
async fn connect(
    server: &PrivateNats,
    credentials: &Credentials,
) -> Result<(async_nats::Client, Arc<Mutex<Vec<String>>>), async_nats::ConnectError> {
    let complaints: Arc<Mutex<Vec<String>>> = Arc::default();
    let heard = Arc::clone(&complaints);
    let client = ConnectOptions::with_credentials(&credentials.creds_file())
        .expect("creds parse")
        .event_callback(move |event| {
            let heard = Arc::clone(&heard);
            async move {
                if let Event::ServerError(error) = event {
                    heard.lock().unwrap().push(error.to_string());
                }
            }
        })
        .connect(server.url())
        .await?;
    Ok((client, complaints))
}

async fn next_within(subscriber: &mut async_nats::Subscriber, limit: Duration) -> Option<async_nats::Message> {
    tokio::time::timeout(limit, subscriber.next()).await.ok().flatten()
}

#[tokio::test]
async fn a_user_reads_its_own_subjects_only_and_publishes_nothing() {
    let accounts = Accounts::generate();
    let server = PrivateNats::with_config(&accounts.server_config().unwrap());
    let service = accounts.user("voltbus", &Permissions::All, None).unwrap();
    let own = |user: &str| Permissions::SubscribeOnly(vec![format!("voltbus.acme.users.{user}.>")]);
    let expires = Some(chrono::Utc::now().timestamp() + 600);
    let (service, _) = connect(&server, &service).await.expect("voltbus connects");
    let (alice, alice_heard) =
        connect(&server, &accounts.user("alice", &own("alice"), expires).unwrap()).await.unwrap();
    let (bob, _) = connect(&server, &accounts.user("bob", &own("bob"), expires).unwrap()).await.unwrap();

    let mut alice_own = alice.subscribe("voltbus.acme.users.alice.>").await.unwrap();
    let mut alice_snooping = alice.subscribe("voltbus.acme.users.bob.>").await.unwrap();
    let mut alice_everything = alice.subscribe(">").await.unwrap();
    let mut bob_own = bob.subscribe("voltbus.acme.users.bob.>").await.unwrap();
    alice.flush().await.unwrap();
    bob.flush().await.unwrap();
    // Let the server answer the refused subscriptions before anything is published.
    tokio::time::sleep(Duration::from_millis(200)).await;

    service.publish("voltbus.acme.users.alice.CHARGING", "for alice".into()).await.unwrap();
    service.publish("voltbus.acme.users.bob.CHARGING", "for bob".into()).await.unwrap();
    service.flush().await.unwrap();
    let got = next_within(&mut alice_own, Duration::from_secs(5)).await.expect("alice gets her own message");
    assert_eq!(&got.payload[..], b"for alice");
    assert_eq!(&next_within(&mut bob_own, Duration::from_secs(5)).await.expect("bob's").payload[..], b"for bob");
    assert!(next_within(&mut alice_snooping, Duration::from_millis(500)).await.is_none(), "alice read bob's");
    assert!(next_within(&mut alice_everything, Duration::from_millis(200)).await.is_none(), "alice read `>`");

    // Publishing is refused: bob never gets what alice sends on his subject.
    alice.publish("voltbus.acme.users.bob.PAYMENT", "forged".into()).await.unwrap();
    alice.flush().await.unwrap();
    assert!(next_within(&mut bob_own, Duration::from_millis(500)).await.is_none(), "alice published to bob");
    let heard = alice_heard.lock().unwrap().join("\n");
    assert!(heard.contains("Permissions Violation for Subscription to \"voltbus.acme.users.bob.>\""), "{heard}");
    assert!(heard.contains("Permissions Violation for Publish to \"voltbus.acme.users.bob.PAYMENT\""), "{heard}");
}

#[tokio::test]
async fn keys_voltbus_did_not_sign_and_expired_users_cannot_connect() {
    let accounts = Accounts::generate();
    let server = PrivateNats::with_config(&accounts.server_config().unwrap());
    let everything = Permissions::All;
    // Another operator's account signs a user: the server does not know that account.
    let stranger = Accounts::generate().user("mallory", &everything, None).unwrap();
    assert!(connect(&server, &stranger).await.is_err(), "a user of an unknown account connected");
    // A user whose JWT has expired.
    let past = Some(chrono::Utc::now().timestamp() - 60);
    let expired = accounts.user("late", &everything, past).unwrap();
    assert!(connect(&server, &expired).await.is_err(), "an expired user connected");
    // A real JWT with a seed that is not its key: the nonce signature does not match.
    let mut borrowed = accounts.user("alice", &everything, None).unwrap();
    borrowed.seed = accounts.user("other", &everything, None).unwrap().seed;
    assert!(connect(&server, &borrowed).await.is_err(), "a JWT connected without its own key");
}
