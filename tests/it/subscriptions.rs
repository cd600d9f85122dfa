//! Subscriptions end to end (INVERS Messaging API): an integration asks for its own queue of its
//! organisation's vehicle events, connects to RabbitMQ with the credentials it got, and receives
//! `VehicleChanged` as vehicles change; the credentials read that queue and nothing else, and
//! another organisation's events never reach it.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use schemas::{AnyMessage, routing};
use serde_json::{Value, json};
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

/// An integration's AMQP subscription, through `key`; its queue and the AMQP URL to read it.
async fn subscribe(platform: &Platform, key: &str, name: &str, events: Value) -> (String, String) {
    let (status, created, _) =
        platform.call(key, "POST", "/subscriptions", Some(json!({ "name": name, "events": events }))).await;
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    (data["queue"].as_str().unwrap().to_owned(), data["amqp"]["url"].as_str().unwrap().to_owned())
}

/// The next message on `queue`, read with the subscription's own credentials.
async fn first_on(url: &str, queue: &str) -> schemas::Envelope<AnyMessage> {
    let connection = connect(url).await.expect("the credentials connect");
    let channel = connection.create_channel().await.unwrap();
    let mut deliveries = channel
        .basic_consume(queue.into(), "peek".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(15), deliveries.next()).await.unwrap().unwrap().unwrap();
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    let _ = connection.close(200, "read".into()).await;
    bus::amqp::decode(&delivery).unwrap()
}

/// The Levy Fleets seed's key scopes on the AMQP way out (issue 24), enforced by the broker: the
/// queue of a key of subaccount A is bound to A's and the organisation's routing keys only, so
/// B's `VehicleChanged` never enters it while the organisation's queue takes it; a key narrowed
/// later has its queues rebound; a queue bound the old way is rebound at start-up.
#[tokio::test]
async fn a_subaccount_keys_queue_never_holds_another_subaccounts_events() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let (fleet_a, fleet_b) = (Uuid::now_v7(), Uuid::now_v7());
    let reader =
        json!({ "name": "sync", "scope": "subaccount", "subaccount_id": fleet_a, "permissions": ["vehicles:read"] });
    let (_, key_a) = platform.create_key(&admin, reader).await;
    let (queue_a, url_a) = subscribe(&platform, &key_a, "fleet-a", json!(["VehicleChanged"])).await;
    let (queue_all, url_all) = subscribe(&platform, &admin, "everything", json!(["VehicleChanged"])).await;
    let amqp_url = platform.settings.amqp.url.clone().unwrap();
    assert_eq!(
        crate::support::event_bindings(&amqp_url, &queue_a).await,
        [format!("{tenant}.{fleet_a}.vehicles.VehicleChanged"), format!("{tenant}.org.vehicles.VehicleChanged")],
        "bound to A and to the organisation's own, never under a wildcard"
    );
    assert_eq!(
        crate::support::event_bindings(&amqp_url, &queue_all).await,
        [format!("{tenant}.*.vehicles.VehicleChanged")]
    );

    // A vehicle of B changes: the organisation's queue takes it.
    let add = |fleet: Uuid| json!({ "vin": format!("VIN{}", &Uuid::now_v7().simple().to_string()[24..]), "subaccount_id": fleet });
    let (_, vehicle_b, _) = platform.call(&admin, "POST", "/vehicles", Some(add(fleet_b))).await;
    let vehicle_b = vehicle_b["data"]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = platform
        .call(&admin, "PATCH", &format!("/vehicles/{vehicle_b}"), Some(json!({ "status": "maintenance" })))
        .await;
    assert_eq!(status, 200);
    let heard = first_on(&url_all, &queue_all).await;
    assert!(matches!(&heard.data, AnyMessage::VehicleChanged(c) if c.vehicle_id.to_string() == vehicle_b), "{heard:?}");
    // Then one of A: the first (and only) thing on A's queue, published after B's.
    let (_, vehicle_a, _) = platform.call(&admin, "POST", "/vehicles", Some(add(fleet_a))).await;
    let heard = first_on(&url_a, &queue_a).await;
    match &heard.data {
        AnyMessage::VehicleChanged(changed) => {
            assert_eq!(changed.vehicle_id.to_string(), vehicle_a["data"]["id"].as_str().unwrap());
            assert_eq!(changed.subaccount_id, fleet_a);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(platform.call(&key_a, "GET", &format!("/vehicles/{vehicle_b}"), None).await.0, 404);
    let (_, listed, _) = platform.call(&key_a, "GET", "/subscriptions", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "its own only: {listed}");

    // A key of both fleets, narrowed to A: its queue loses B's binding.
    let both =
        json!({ "name": "both", "allowed_subaccount_ids": [fleet_a, fleet_b], "permissions": ["vehicles:read"] });
    let (both_id, key_both) = platform.create_key(&admin, both).await;
    let (queue_both, _) = subscribe(&platform, &key_both, "both", json!(["VehicleChanged"])).await;
    assert_eq!(crate::support::event_bindings(&amqp_url, &queue_both).await.len(), 3);
    let (status, _, _) = platform
        .call(&admin, "PATCH", &format!("/api-keys/{both_id}"), Some(json!({ "allowed_subaccount_ids": [fleet_a] })))
        .await;
    assert_eq!(status, 200);
    let mut bound = Vec::new();
    for _ in 0..100 {
        bound = crate::support::event_bindings(&amqp_url, &queue_both).await;
        if bound.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bound, crate::support::event_bindings(&amqp_url, &queue_a).await, "narrowed to A");

    // A queue bound the old way (`{tenant}.{domain}.{type}`) is rebound when voltbus starts.
    let connection = connect(&amqp_url).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let old = format!("{tenant}.vehicles.VehicleChanged");
    channel
        .queue_bind(
            queue_a.as_str().into(),
            routing::EVENTS_EXCHANGE.into(),
            old.as_str().into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for key in crate::support::event_bindings(&amqp_url, &queue_a).await.into_iter().filter(|k| *k != old) {
        channel
            .queue_unbind(
                queue_a.as_str().into(),
                routing::EVENTS_EXCHANGE.into(),
                key.as_str().into(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
    assert_eq!(crate::support::event_bindings(&amqp_url, &queue_a).await, [old]);
    let platform = platform.restart().await;
    assert_eq!(
        crate::support::event_bindings(&amqp_url, &queue_a).await,
        [format!("{tenant}.{fleet_a}.vehicles.VehicleChanged"), format!("{tenant}.org.vehicles.VehicleChanged")],
    );
    platform.stop().await;
}
