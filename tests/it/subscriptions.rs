//! Subscriptions end to end (INVERS Messaging API): an integration asks for its own queue of its
//! organisation's vehicle events, connects to RabbitMQ with the credentials it got, and receives
//! `VehicleChanged` as vehicles change; the credentials read that queue and nothing else, and
//! another organisation's events never reach it.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use schemas::AnyMessage;
use serde_json::json;
use uuid::Uuid;

use crate::partner::{Platform, error_code};

async fn connect(url: &str) -> Result<Connection, lapin::Error> {
    Connection::connect(url, ConnectionProperties::default()).await
}

#[tokio::test]
async fn an_integration_reads_its_own_queue_of_its_own_events_and_nothing_else() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let app = platform.create_key(&admin, json!({ "name": "sync", "permissions": ["vehicles:read"] })).await.1;

    // Only events its key may read.
    let (status, body, _) =
        platform.call(&app, "POST", "/subscriptions", Some(json!({ "name": "sync", "events": ["ride.ended"] }))).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");
    let (status, body, _) =
        platform.call(&app, "POST", "/subscriptions", Some(json!({ "name": "sync", "events": ["vehicle.add"] }))).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "a command is no event: {body}");

    let wanted = json!({ "name": "sync", "events": ["VehicleChanged", "VehicleStateReceived"] });
    let (status, created, _) = platform.call(&app, "POST", "/subscriptions", Some(wanted.clone())).await;
    assert_eq!(status, 201, "{created}");
    let url = created["data"]["amqp"]["url"].as_str().unwrap().to_owned();
    let queue = created["data"]["queue"].as_str().unwrap().to_owned();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, again, _) = platform.call(&app, "POST", "/subscriptions", Some(wanted)).await;
    assert_eq!((status, error_code(&again)), (409, "CONFLICT"), "one name, one subscription: {again}");

    // The integration's own connection: it consumes its queue.
    let connection = connect(&url).await.expect("the credentials connect");
    let channel = connection.create_channel().await.unwrap();
    let mut deliveries = channel
        .basic_consume(queue.as_str().into(), "sync".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("its own queue is readable");

    // Vehicles of this organisation, and of another, change.
    let (_, stranger_admin) = platform.organisation().await;
    for key in [&stranger_admin, &admin] {
        let body = json!({ "vin": format!("VIN{}", &Uuid::now_v7().simple().to_string()[24..]), "subaccount_id": Uuid::now_v7() });
        let (status, added, _) = platform.call(key, "POST", "/vehicles", Some(body)).await;
        assert_eq!(status, 201, "{added}");
    }
    let delivery = tokio::time::timeout(Duration::from_secs(15), deliveries.next()).await.unwrap().unwrap().unwrap();
    let event = bus::amqp::decode(&delivery).unwrap();
    assert!(matches!(event.data, AnyMessage::VehicleChanged(_)), "{}", event.type_name);
    assert_eq!(event.tenant.as_str(), tenant, "its own organisation's event");
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    let more = tokio::time::timeout(Duration::from_millis(1_500), deliveries.next()).await;
    assert!(more.is_err(), "the other organisation's vehicle never arrives");

    // Nothing else: not another queue, not publishing.
    let other = channel.clone();
    let refused = other
        .basic_consume("voltbus.fleet".into(), "peek".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await;
    assert!(refused.is_err(), "another queue is not readable");
    let publisher = connection.create_channel().await.unwrap();
    let published = publisher
        .basic_publish(
            schemas::routing::EVENTS_EXCHANGE.into(),
            "x".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await;
    let refused = match published {
        Err(_) => true,
        // The broker closes the channel after an unauthorised publish.
        Ok(_) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            !publisher.status().connected()
        }
    };
    assert!(refused, "publishing is refused");

    // Another organisation does not see it; deleting it ends the credentials.
    let (_, listed, _) = platform.call(&stranger_admin, "GET", "/subscriptions", None).await;
    assert_eq!(listed["data"], json!([]));
    let (status, _, _) = platform.call(&stranger_admin, "DELETE", &format!("/subscriptions/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, deleted, _) = platform.call(&app, "DELETE", &format!("/subscriptions/{id}"), None).await;
    assert_eq!(status, 200, "{deleted}");
    let _ = connection.close(200, "done".into()).await;
    assert!(connect(&url).await.is_err(), "a deleted subscription's user cannot connect");
    platform.stop().await;
}
