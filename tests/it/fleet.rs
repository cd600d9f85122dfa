//! The fleet end to end: vehicles added, listed, changed and removed through the partner API and
//! the `fleet` consumers on PostgreSQL and RabbitMQ; telemetry published by vehicles on a real
//! (private) NATS, taken in by the ingest, read back over REST and announced on RabbitMQ; and
//! what neither another organisation nor another subaccount can see or touch.

use std::time::Duration;

use bus::amqp::AmqpConnection;
use bus::nats::NatsConnection;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use schemas::vehicles::{IgnitionState, LockState, Position, Reading, VehicleState, VehicleStateReported};
use schemas::{AnyMessage, Envelope, TenantId, routing, subjects};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::partner::{Platform, error_code};
use crate::private_nats::PrivateNats;

/// A queue bound to every event of `tenant`, as a subscriber app would have.
struct Subscriber {
    _amqp: AmqpConnection,
    _channels: [lapin::Channel; 2],
    consumer: lapin::Consumer,
}

impl Subscriber {
    async fn of(platform: &Platform, tenant: &str) -> Self {
        let amqp =
            AmqpConnection::connect(platform.settings.amqp.url.as_deref().unwrap(), "test-subscriber").await.unwrap();
        amqp.declare_exchanges().await.unwrap();
        let channel = amqp.channel().await.unwrap();
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let queue = channel.queue_declare("".into(), options, FieldTable::default()).await.unwrap();
        let binding = routing::tenant_events_binding(&TenantId::new(tenant).unwrap());
        let (exchange, bind) = (routing::EVENTS_EXCHANGE.into(), QueueBindOptions::default());
        channel.queue_bind(queue.name().clone(), exchange, binding.into(), bind, FieldTable::default()).await.unwrap();
        let (consumer_channel, consumer) = amqp.consume(queue.name().as_str(), "test", 500).await.unwrap();
        Self { _amqp: amqp, _channels: [channel, consumer_channel], consumer }
    }

    /// Makes a partner's subscription to `VehicleStateReceived`: the ingest publishes the event only
    /// while some subscription can receive it.
    async fn hearing_states(self, platform: &Platform, admin: &str) -> Self {
        let wanted = json!({ "name": "states", "events": ["VehicleStateReceived"] });
        let (status, made, _) = platform.call(admin, "POST", "/subscriptions", Some(wanted)).await;
        assert_eq!(status, 201, "{made}");
        self
    }

    /// The events that arrive until `quiet` passes without one.
    async fn drain(&mut self, quiet: Duration) -> Vec<Envelope<AnyMessage>> {
        let mut events = Vec::new();
        while let Ok(Some(Ok(delivery))) = tokio::time::timeout(quiet, self.consumer.next()).await {
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            events.push(bus::amqp::decode(&delivery).unwrap());
        }
        events
    }

    /// Waits until `count` events of type `type_name` came (and returns every event seen).
    async fn until(&mut self, type_name: &str, count: usize) -> Vec<Envelope<AnyMessage>> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while events.iter().filter(|e: &&Envelope<AnyMessage>| e.type_name == type_name).count() < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(Some(Ok(delivery))) = tokio::time::timeout(left, self.consumer.next()).await else {
                panic!(
                    "{count} × {type_name} expected; got {:?}",
                    events.iter().map(|e| &e.type_name).collect::<Vec<_>>()
                )
            };
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            events.push(bus::amqp::decode(&delivery).unwrap());
        }
        events
    }
}

fn of_type<'a>(events: &'a [Envelope<AnyMessage>], type_name: &str) -> Vec<&'a Envelope<AnyMessage>> {
    events.iter().filter(|e| e.type_name == type_name).collect()
}

async fn fleet_key(platform: &Platform, admin: &str, body: Value) -> String {
    platform.create_key(admin, body).await.1
}

async fn add(platform: &Platform, key: &str, body: Value) -> Value {
    let (status, created, _) = platform.call(key, "POST", "/vehicles", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["data"].clone()
}

#[tokio::test]
async fn vehicles_are_added_listed_changed_and_removed_with_their_events() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let fleet = Uuid::now_v7();
    let key = fleet_key(
        &platform,
        &admin,
        json!({ "name": "fleet", "permissions": ["vehicles:read", "vehicles:write"], "scope": "subaccount", "subaccount_id": fleet }),
    )
    .await;
    let mut subscriber = Subscriber::of(&platform, &tenant).await;

    // Added: the fleet is the key's subaccount; every command unless told otherwise.
    let first = add(
        &platform,
        &key,
        json!({ "vin": "WVWZZZ1JZXW000001", "vehicle_number": "V001", "license_plate": "B-VB 101",
                "vehicle_type": "scooter", "transmission": "AUTOMATIC", "telematics_unit_id": "unit-1",
                "custom_fields": { "color": "red", "seats": 1 } }),
    )
    .await;
    assert_eq!(first["subaccount_id"], json!(fleet));
    assert_eq!(first["status"], "available");
    assert_eq!(first["capabilities"].as_array().unwrap().len(), 5);
    let second = add(
        &platform,
        &key,
        json!({ "vin": "WVWZZZ1JZXW000002", "vehicle_number": "V002", "vehicle_type": "car",
                "capabilities": ["honk-and-flash"], "custom_fields": { "color": "blue" } }),
    )
    .await;
    let (first_id, second_id) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    let created = subscriber.until("VehicleChanged", 2).await;
    let event = of_type(&created, "VehicleChanged")
        .into_iter()
        .find_map(|e| match &e.data {
            AnyMessage::VehicleChanged(event) if event.vehicle_id.to_string() == first_id => Some(event),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        event.changed_properties,
        [
            "vin",
            "vehicle_number",
            "license_plate",
            "vehicle_type",
            "telematics_unit_id",
            "transmission",
            "custom_fields.color",
            "custom_fields.seats",
            "status"
        ]
    );

    // The same VIN, or the same telematics unit, is another vehicle's: 409, nothing added.
    for taken in [json!({ "vin": "WVWZZZ1JZXW000001" }), json!({ "vin": "OTHER1", "telematics_unit_id": "unit-1" })] {
        let (status, body, _) = platform.call(&key, "POST", "/vehicles", Some(taken)).await;
        assert_eq!((status, error_code(&body)), (409, "CONFLICT"), "{body}");
    }
    // Bad input names its field.
    for (body, field) in [
        (json!({ "vin": "not a vin!" }), "vin"),
        (json!({ "vin": "X1", "custom_fields": { "bad name": 1 } }), "custom_fields"),
        (json!({ "vin": "X1", "custom_fields": { "nested": { "a": 1 } } }), "custom_fields"),
        (json!({ "vin": "X1", "transmission": "CVT" }), "transmission"),
        (json!({ "vin": "X1", "colour": "red" }), ""),
    ] {
        let (status, answer, _) = platform.call(&key, "POST", "/vehicles", Some(body.clone())).await;
        assert_eq!((status, error_code(&answer)), (422, "VALIDATION_ERROR"), "{body} → {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
        }
    }

    // Listed, filtered and searched.
    let list = |query: &str| {
        let path = format!("/vehicles{query}");
        let platform = &platform;
        let key = key.clone();
        async move {
            let (status, body, _) = platform.call(&key, "GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["vehicle_number"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, ["V001", "V002"]);
    assert_eq!(list("?vehicle_type=car").await, ["V002"]);
    assert_eq!(list("?search=b-vb%201").await, ["V001"]);
    assert_eq!(list("?search=v00").await, ["V001", "V002"]);
    assert_eq!(list("?custom_field=color:blue").await, ["V002"]);
    assert_eq!(list("?custom_field=seats:1").await, ["V001"]);
    assert_eq!(list("?status=maintenance").await, Vec::<String>::new());
    let (status, body, _) = platform.call(&key, "GET", "/vehicles?status=broken", None).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"));

    // Changed at once: status, master data and custom fields; null removes a field.
    let (status, patched, _) = platform
        .call(
            &key,
            "PATCH",
            &format!("/vehicles/{first_id}"),
            Some(json!({ "status": "maintenance", "license_plate": "B-VB 102", "custom_fields": { "seats": null, "zone": "north" } })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["data"]["status"], "maintenance");
    assert_eq!(patched["data"]["custom_fields"], json!({ "color": "red", "zone": "north" }));
    let events = subscriber.until("vehicle.status_changed", 1).await;
    let AnyMessage::VehicleStatusChanged(status_changed) = &of_type(&events, "vehicle.status_changed")[0].data else {
        unreachable!()
    };
    assert_eq!(
        (status_changed.vehicle_number.as_deref(), status_changed.previous_status),
        (Some("V001"), schemas::vehicles::OperationStatus::Available)
    );
    let events = if of_type(&events, "VehicleChanged").is_empty() {
        subscriber.until("VehicleChanged", 1).await
    } else {
        events
    };
    let AnyMessage::VehicleChanged(update) = &of_type(&events, "VehicleChanged")[0].data else { unreachable!() };
    assert_eq!(update.changed_properties, ["license_plate", "custom_fields.zone", "custom_fields.seats", "status"]);
    assert_eq!(list("?status=maintenance").await, ["V001"]);
    // The same PATCH again changes nothing and announces nothing.
    let (status, _, _) =
        platform.call(&key, "PATCH", &format!("/vehicles/{first_id}"), Some(json!({ "status": "maintenance" }))).await;
    assert_eq!(status, 200);
    assert!(subscriber.drain(Duration::from_millis(500)).await.is_empty());

    // Bulk: one unknown vehicle and nothing changes; then all of them at once.
    let unknown = Uuid::now_v7();
    let bulk = |ids: Vec<Value>| json!({ "vehicle_ids": ids, "operation": "add", "field": "depot", "value": "Mitte" });
    let (status, body, _) =
        platform.call(&key, "POST", "/vehicles/custom-fields", Some(bulk(vec![json!(first_id), json!(unknown)]))).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
    assert_eq!(list("?custom_field=depot:Mitte").await, Vec::<String>::new());
    let (status, body, _) = platform
        .call(&key, "POST", "/vehicles/custom-fields", Some(bulk(vec![json!(first_id), json!(second_id)])))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["changed"].as_array().unwrap().len(), 2);
    assert_eq!(list("?custom_field=depot:Mitte").await, ["V001", "V002"]);
    let remove = json!({ "vehicle_ids": [first_id], "operation": "remove", "field": "depot" });
    let (status, body, _) = platform.call(&key, "POST", "/vehicles/custom-fields", Some(remove)).await;
    assert_eq!((status, body["data"]["unchanged"].clone()), (200, json!(0)), "{body}");
    assert_eq!(list("?custom_field=depot:Mitte").await, ["V002"]);
    // Two from the bulk add, one from the bulk remove.
    let events = subscriber.until("VehicleChanged", 3).await;
    assert_eq!(of_type(&events, "VehicleChanged").len(), 3);
    // Several fields at once (INVERS: "custom fields of multiple vehicles at once"), all or
    // nothing: each edit where it applies, one announcement per vehicle changed.
    let edits = json!({ "vehicle_ids": [first_id, second_id], "edits": [
        { "operation": "add", "field": "depot", "value": "Kreuzberg" },
        { "operation": "add", "field": "cleaned", "value": true },
        { "operation": "remove", "field": "zone" },
    ] });
    let (status, body, _) = platform.call(&key, "POST", "/vehicles/custom-fields", Some(edits)).await;
    assert_eq!((status, body["data"]["changed"].as_array().unwrap().len()), (200, 2), "{body}");
    assert_eq!(list("?custom_field=depot:Kreuzberg").await, ["V001"], "V002 kept its depot: add is where missing");
    assert_eq!(list("?custom_field=cleaned:true").await, ["V001", "V002"]);
    let (_, first, _) = platform.call(&key, "GET", &format!("/vehicles/{first_id}"), None).await;
    assert!(first["data"]["custom_fields"].get("zone").is_none(), "{first}");
    let changed = subscriber.until("VehicleChanged", 2).await;
    assert_eq!(of_type(&changed, "VehicleChanged").len(), 2);
    for bad in [
        json!({ "vehicle_ids": [first_id], "edits": [] }),
        json!({ "vehicle_ids": [first_id], "edits": [{ "operation": "remove", "field": "a" }, { "operation": "add", "field": "a", "value": 1 }] }),
        json!({ "vehicle_ids": [first_id], "operation": "remove", "field": "a", "edits": [{ "operation": "remove", "field": "b" }] }),
    ] {
        let (status, body, _) = platform.call(&key, "POST", "/vehicles/custom-fields", Some(bad)).await;
        assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "{body}");
    }

    // Another organisation, and another subaccount of this one, see and touch none of it.
    let (_, other_admin) = platform.organisation().await;
    let stranger =
        fleet_key(&platform, &other_admin, json!({ "name": "x", "permissions": ["vehicles:read", "vehicles:write"] }))
            .await;
    let neighbour = fleet_key(
        &platform,
        &admin,
        json!({ "name": "n", "permissions": ["vehicles:read", "vehicles:write"], "scope": "subaccount", "subaccount_id": Uuid::now_v7() }),
    )
    .await;
    for outsider in [&stranger, &neighbour] {
        let (_, listed, _) = platform.call(outsider, "GET", "/vehicles", None).await;
        assert_eq!(listed["data"], json!([]), "{listed}");
        for (method, path, body) in [
            ("GET", format!("/vehicles/{first_id}"), None),
            ("GET", format!("/vehicles/{first_id}/state"), None),
            ("PATCH", format!("/vehicles/{first_id}"), Some(json!({ "status": "available" }))),
            ("DELETE", format!("/vehicles/{first_id}"), None),
        ] {
            let (status, answer, _) = platform.call(outsider, method, &path, body).await;
            assert_eq!((status, error_code(&answer)), (404, "NOT_FOUND"), "{method} {path}: {answer}");
        }
        let (status, _, _) =
            platform.call(outsider, "POST", "/vehicles/custom-fields", Some(bulk(vec![json!(first_id)]))).await;
        assert_eq!(status, 404);
    }
    // A read-only key cannot write.
    let reader = fleet_key(&platform, &admin, json!({ "name": "r", "permissions": ["vehicles:read"] })).await;
    let (status, body, _) = platform.call(&reader, "DELETE", &format!("/vehicles/{first_id}"), None).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"));
    // The organisation's admin (a global key) sees every subaccount.
    let (_, all, _) = platform.call(&admin, "GET", "/vehicles", None).await;
    assert_eq!(all["pagination"]["total"], 2);

    // Removed: gone, announced, and its VIN free again.
    let (status, body, _) = platform.call(&key, "DELETE", &format!("/vehicles/{first_id}"), None).await;
    assert_eq!((status, body["data"]["deleted"].clone()), (200, json!(true)), "{body}");
    // The removal (the bulk edits' were counted above).
    let events = subscriber.until("VehicleChanged", 1).await;
    let last = of_type(&events, "VehicleChanged").pop().unwrap();
    let AnyMessage::VehicleChanged(deleted) = &last.data else { unreachable!() };
    assert_eq!(deleted.change_type, schemas::vehicles::VehicleChangeType::Deleted);
    assert_eq!(platform.call(&key, "GET", &format!("/vehicles/{first_id}"), None).await.0, 404);
    add(&platform, &key, json!({ "vin": "WVWZZZ1JZXW000001" })).await;
    platform.stop().await;
}

pub(crate) fn report(tenant: &TenantId, vehicle: Uuid, state: VehicleState) -> Envelope<VehicleStateReported> {
    Envelope::new(
        tenant.clone(),
        "device/test",
        VehicleStateReported { vehicle_id: vehicle, telematics_unit_id: None, state },
    )
}

fn charge(level: u8, time: DateTime<Utc>) -> VehicleState {
    VehicleState { charge_level: Some(Reading { value: level, time }), ..VehicleState::default() }
}

fn position(latitude: f64, longitude: f64, time: DateTime<Utc>) -> VehicleState {
    VehicleState {
        position: Some(Reading { value: Position { latitude, longitude }, time }),
        ..VehicleState::default()
    }
}

/// A platform on a NATS of the test's own (the ingest's durable consumer is the only one on its
/// stream), an organisation, its admin key and a key that reads and writes vehicles.
async fn telemetry_platform() -> (PrivateNats, Platform, String, String, String) {
    let nats_server = PrivateNats::start();
    let platform = Platform::start_with(|settings| settings.nats.url = Some(nats_server.url().into())).await;
    let (tenant_name, admin) = platform.organisation().await;
    let key =
        fleet_key(&platform, &admin, json!({ "name": "fleet", "permissions": ["vehicles:read", "vehicles:write"] }))
            .await;
    (nats_server, platform, tenant_name, admin, key)
}

#[tokio::test]
async fn telemetry_from_nats_becomes_the_latest_state_history_and_events() {
    let (nats_server, platform, tenant_name, admin, key) = telemetry_platform().await;
    let tenant = TenantId::new(&tenant_name).unwrap();
    let mut subscriber = Subscriber::of(&platform, &tenant_name).await.hearing_states(&platform, &admin).await;
    let fleet = Uuid::now_v7();
    let scooter =
        add(&platform, &key, json!({ "vin": "SCOOTER1", "vehicle_number": "S1", "subaccount_id": fleet })).await;
    let scooter: Uuid = scooter["id"].as_str().unwrap().parse().unwrap();
    subscriber.until("VehicleChanged", 1).await;
    let device = NatsConnection::connect(&nats_server.url(), "test-device").await.unwrap();
    let subject = subjects::vehicle_state(&tenant, scooter);
    let t0 = Utc::now() - TimeDelta::minutes(10);
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);

    // In order, then one from the past (arrives last, measured first), then a duplicate.
    let first = report(
        &tenant,
        scooter,
        VehicleState { position: position(52.52, 13.405, at(1)).position, ..charge(50, at(1)) },
    );
    let low = report(&tenant, scooter, charge(15, at(3)));
    let late =
        report(&tenant, scooter, VehicleState { position: position(48.0, 11.0, at(0)).position, ..charge(90, at(0)) });
    let moved = report(&tenant, scooter, position(52.525, 13.405, at(4)));
    for envelope in [&first, &low, &late, &moved, &low] {
        device.publish_durable(subject.clone(), envelope).await.unwrap();
    }
    let events = subscriber.until("VehicleStateReceived", 4).await;
    let events = [events, subscriber.drain(Duration::from_millis(700)).await].concat();
    assert_eq!(of_type(&events, "VehicleStateReceived").len(), 4, "one per report, the duplicate dropped");
    let AnyMessage::VehicleStateReceived(received) = &of_type(&events, "VehicleStateReceived")[0].data else {
        unreachable!()
    };
    assert_eq!((received.subaccount_id, &received.state), (fleet, &first.data.state), "the state as transmitted");
    let low_events = of_type(&events, "vehicle.battery_low");
    assert_eq!(low_events.len(), 1, "50 → 15 crosses 20 once; the late 90 changes nothing");
    let AnyMessage::VehicleBatteryLow(battery) = &low_events[0].data else { unreachable!() };
    assert_eq!((battery.battery_level, battery.threshold, battery.vehicle_number.as_deref()), (15, 20, Some("S1")));
    let moves: Vec<_> = of_type(&events, "vehicle.location_updated")
        .iter()
        .map(|e| match &e.data {
            AnyMessage::VehicleLocationUpdated(m) => (m.latitude, m.distance_m),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(moves, [(52.52, 0), (52.525, 556)], "the first fix, then a move of 556 m; the late fix is older");

    // The latest state keeps the newest reading of each property.
    let (status, state, _) = platform.call(&key, "GET", &format!("/vehicles/{scooter}/state"), None).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["data"]["charge_level"]["value"], 15);
    assert_eq!(state["data"]["position"]["value"]["latitude"], 52.525);
    let (_, low_list, _) = platform.call(&key, "GET", "/vehicles?battery_below=20", None).await;
    assert_eq!(low_list["pagination"]["total"], 1);
    let (_, boxed, _) = platform.call(&key, "GET", "/vehicles?bbox=13.3,52.4,13.5,52.6", None).await;
    assert_eq!(boxed["pagination"]["total"], 1);
    let (_, elsewhere, _) = platform.call(&key, "GET", "/vehicles?bbox=170,52.4,-170,52.6", None).await;
    assert_eq!(elsewhere["pagination"]["total"], 0);
    let history =
        platform.sql(&format!("SELECT count(*) AS n FROM vehicle_state_history WHERE vehicle_id = '{scooter}'")).await;
    assert_eq!(history[0].try_get::<i64>("", "n").unwrap(), 4);

    // A property never reported reads as absent; a report of the others keeps what it lacks.
    assert!(state["data"]["odometer"].is_null() && state["data"]["ignition"].is_null(), "{state}");
    let rest = VehicleState {
        odometer: Some(Reading { value: 12_345, time: at(6) }),
        remaining_range: Some(Reading { value: 40_000, time: at(6) }),
        speed: Some(Reading { value: 18.5, time: at(6) }),
        central_lock: Some(Reading { value: LockState::Locked, time: at(6) }),
        ignition: Some(Reading { value: IgnitionState::Off, time: at(6) }),
        ..VehicleState::default()
    };
    device.publish_durable(subject.clone(), &report(&tenant, scooter, rest)).await.unwrap();
    subscriber.until("VehicleStateReceived", 1).await;
    let (_, state, _) = platform.call(&key, "GET", &format!("/vehicles/{scooter}/state"), None).await;
    let values: Vec<&Value> = ["charge_level", "odometer", "remaining_range", "speed", "central_lock", "ignition"]
        .iter()
        .map(|property| &state["data"][property]["value"])
        .collect();
    assert_eq!(
        values,
        [&json!(15), &json!(12_345), &json!(40_000), &json!(18.5), &json!("LOCKED"), &json!("OFF")],
        "{state}"
    );
    assert_eq!(state["data"]["position"]["value"]["latitude"], 52.525, "{state}");

    // Malformed, not this tenant's vehicle, or published for another tenant: dead letters, each
    // with its reason, and nothing written.
    let stranger = platform.organisation().await.0;
    let forged = Envelope::new(
        TenantId::new(&stranger).unwrap(),
        "device/test",
        report(&tenant, scooter, charge(1, at(5))).data,
    );
    device.publish_durable(subject.clone(), &forged).await.unwrap();
    device.publish_durable(subject.clone(), &report(&tenant, Uuid::now_v7(), charge(1, at(5)))).await.unwrap();
    let raw = async_nats::connect(nats_server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(raw);
    jetstream.publish(subject.clone(), "{not json".into()).await.unwrap().await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..100 {
        let letters = bus::nats::list_dead_letters(&device, consumers::fleet::telemetry::GROUP, 10).await.unwrap();
        kinds = letters
            .iter()
            .map(|l| (l.error_kind.clone().unwrap_or_default(), l.reason.clone().unwrap_or_default()))
            .collect::<Vec<_>>();
        if kinds.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kinds.sort();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert_eq!(kinds[0].0, "malformed", "{kinds:?}");
    assert!(kinds[1].0 == "permanent" && kinds[1].1.contains("is not in the fleet"), "{kinds:?}");
    assert_eq!(kinds[2].0, "tenant_mismatch", "{kinds:?}");
    let (_, state, _) = platform.call(&key, "GET", &format!("/vehicles/{scooter}/state"), None).await;
    assert_eq!(state["data"]["charge_level"]["value"], 15, "nothing of the dead letters was written");

    // The other organisation sees nothing of the vehicle or its state.
    let (_, other_admin) = platform.organisation().await;
    let (status, _, _) = platform.call(&other_admin, "GET", &format!("/vehicles/{scooter}/state"), None).await;
    assert_eq!(status, 404);
    device.close().await;
    platform.stop().await;
}

#[tokio::test]
async fn commands_reach_the_vehicle_through_the_simulator_and_come_back() {
    let nats_server = PrivateNats::start();
    let platform = Platform::start_with(|settings| {
        settings.nats.url = Some(nats_server.url().into());
        settings.fleet.command_timeout_seconds = 2;
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let permissions = ["vehicles:read", "vehicles:write", "vehicles:commands"];
    let key = fleet_key(&platform, &admin, json!({ "name": "app", "permissions": permissions })).await;
    let mut subscriber = Subscriber::of(&platform, &tenant).await;
    let fleet = Uuid::now_v7();
    let mut ids = Vec::new();
    for vin in ["CAR1", "MUTE1", "STUBBORN1"] {
        let body = json!({ "vin": vin, "subaccount_id": fleet,
                           "capabilities": ["unlock-central-lock", "lock-central-lock", "honk-and-flash"] });
        ids.push(add(&platform, &key, body).await["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let (car, mute, stubborn) = (ids[0], ids[1], ids[2]);
    let devices = voltbus::simulator::Devices {
        refusing: [stubborn].into(),
        silent: [mute].into(),
        delay: Duration::from_millis(50),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let device_nats = NatsConnection::connect(&nats_server.url(), "test-devices").await.unwrap();
    let simulator = tokio::spawn(voltbus::simulator::run(device_nats, devices, async move {
        let _ = stopped.await;
    }));

    // Edits and commands are apart (INVERS's advice): a key that may edit vehicles may not command them.
    let editor =
        fleet_key(&platform, &admin, json!({ "name": "editor", "permissions": ["vehicles:read", "vehicles:write"] }))
            .await;
    let (status, _, _) =
        platform.call(&editor, "PATCH", &format!("/vehicles/{car}"), Some(json!({ "model": "e-Up" }))).await;
    assert_eq!(status, 200);
    let (status, refused, _) =
        platform.call(&editor, "POST", &format!("/vehicles/{car}/commands/unlock-central-lock"), None).await;
    assert_eq!(
        (status, refused["error"]["details"]["required_permission"].as_str()),
        (403, Some("vehicles:commands")),
        "{refused}"
    );

    // Sent, carried out, answered: the request waits for it.
    let (status, done, _) =
        platform.call(&key, "POST", &format!("/vehicles/{car}/commands/unlock-central-lock"), None).await;
    assert_eq!((status, done["data"]["status"].clone()), (200, json!("succeeded")), "{done}");
    // What the vehicle cannot do, and what no vehicle does.
    let (status, body, _) =
        platform.call(&key, "POST", &format!("/vehicles/{car}/commands/enable-immobilizer"), None).await;
    assert_eq!((status, error_code(&body)), (409, "CONFLICT"), "{body}");
    let (status, _, _) = platform.call(&key, "POST", &format!("/vehicles/{car}/commands/fly"), None).await;
    assert_eq!(status, 404);
    // Not waiting: 202 with the id, then polled.
    let (status, queued, _) = platform
        .call(&key, "POST", &format!("/vehicles/{car}/commands/honk-and-flash"), Some(json!({ "wait": false })))
        .await;
    assert_eq!((status, queued["data"]["status"].clone()), (202, json!("sent")), "{queued}");
    let id = queued["data"]["id"].as_str().unwrap().to_owned();
    let mut polled = Value::Null;
    for _ in 0..100 {
        polled = platform.call(&key, "GET", &format!("/vehicle-commands/{id}"), None).await.1;
        if polled["data"]["status"] != "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(polled["data"]["status"], "succeeded", "{polled}");
    // Refused by the vehicle; and no answer at all, which times out.
    let (_, refused, _) =
        platform.call(&key, "POST", &format!("/vehicles/{stubborn}/commands/lock-central-lock"), None).await;
    assert_eq!(refused["data"]["status"], "failed", "{refused}");
    assert!(refused["data"]["reason"].as_str().unwrap().contains("refused"));
    let (_, silent, _) =
        platform.call(&key, "POST", &format!("/vehicles/{mute}/commands/lock-central-lock"), None).await;
    let mut outcome = silent["data"]["status"].clone();
    let silent_id = silent["data"]["id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        if outcome != "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        outcome = platform.call(&key, "GET", &format!("/vehicle-commands/{silent_id}"), None).await.1["data"]["status"]
            .clone();
    }
    assert_eq!(outcome, "timed_out");

    // Each end announced.
    let events = subscriber.until("vehicle.command_completed", 4).await;
    let mut outcomes: Vec<String> = of_type(&events, "vehicle.command_completed")
        .iter()
        .map(|e| match &e.data {
            AnyMessage::VehicleCommandCompleted(c) => format!("{:?}", c.outcome),
            _ => unreachable!(),
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["Failed", "Succeeded", "Succeeded", "TimedOut"]);

    // Another organisation can neither send nor look.
    let (_, other_admin) = platform.organisation().await;
    let (status, _, _) =
        platform.call(&other_admin, "POST", &format!("/vehicles/{car}/commands/unlock-central-lock"), None).await;
    assert_eq!(status, 404);
    let (status, _, _) = platform.call(&other_admin, "GET", &format!("/vehicle-commands/{id}"), None).await;
    assert_eq!(status, 404);
    let _ = stop.send(());
    simulator.await.unwrap().unwrap();
    platform.stop().await;
}

/// Polls command `id` until it is no longer `from` (10 s at most); where it stands then.
async fn settled(platform: &Platform, key: &str, id: &str, from: &str) -> Value {
    for _ in 0..200 {
        let (status, polled, _) = platform.call(key, "GET", &format!("/vehicle-commands/{id}"), None).await;
        assert_eq!(status, 200, "{polled}");
        if polled["data"]["status"] != from {
            return polled["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("command {id} stayed {from}")
}

/// Durable commands: to a vehicle not heard from lately, a command with a time to live waits
/// (`queued`) and goes to the device when the vehicle reports again, once, with the caller's
/// Idempotency-Key; or it ends `expired`, never sent. Every state is announced. The interlocks
/// refuse with 409 and a reason: any command to a vehicle in maintenance without
/// `vehicles:maintenance`; unlocking a vehicle in another customer's ride.
#[tokio::test]
async fn commands_wait_for_an_offline_vehicle_or_expire_and_interlocks_refuse() {
    let nats_server = PrivateNats::start();
    let platform = Platform::start_with(|settings| {
        settings.nats.url = Some(nats_server.url().into());
        settings.fleet.command_timeout_seconds = 3;
    })
    .await;
    let (tenant_name, admin) = platform.organisation().await;
    let tenant = TenantId::new(&tenant_name).unwrap();
    // It polls its commands: more calls a minute than a key's default allows.
    let limits = json!({ "per_minute": 10_000, "per_hour": 100_000, "per_day": 1_000_000 });
    let permissions = ["vehicles:read", "vehicles:write", "vehicles:commands"];
    let body = json!({ "name": "app", "permissions": permissions, "rate_limits": limits });
    let key = fleet_key(&platform, &admin, body).await;
    let mut subscriber = Subscriber::of(&platform, &tenant_name).await;
    let fleet = Uuid::now_v7();
    let mut ids = Vec::new();
    for vin in ["AWAY1", "GONE1", "SHOP1", "RIDE1"] {
        ids.push(add(&platform, &key, json!({ "vin": vin, "subaccount_id": fleet })).await["id"].clone());
    }
    let [away, gone, shop, ridden] = [0, 1, 2, 3].map(|i| ids[i].as_str().unwrap().parse::<Uuid>().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let device_nats = NatsConnection::connect(&nats_server.url(), "test-devices").await.unwrap();
    let devices = voltbus::simulator::Devices::default();
    let simulator = tokio::spawn(voltbus::simulator::run(device_nats, devices, async move {
        let _ = stopped.await;
    }));
    let keyed = |idempotency_key: &'static str, path: String, body: Value| {
        let addr = platform.addr();
        let key = key.clone();
        async move {
            let headers = [("x-partner-api-key", key.as_str()), ("idempotency-key", idempotency_key)];
            let body = body.to_string();
            let (status, answer, _) =
                crate::support::request(addr, "POST", &format!("/api/partner/v1{path}"), &headers, Some(&body)).await;
            (status, answer)
        }
    };

    // Never heard from: the unlock waits, unsent, and the request does not.
    let unlock = format!("/vehicles/{away}/commands/unlock-central-lock");
    let (status, queued) = keyed("unlock-away-1", unlock.clone(), json!({ "ttl_seconds": 60 })).await;
    assert_eq!((status, queued["data"]["status"].clone()), (202, json!("queued")), "{queued}");
    assert!(queued["data"]["sent_at"].is_null(), "{queued}");
    let id = queued["data"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, still, _) = platform.call(&key, "GET", &format!("/vehicle-commands/{id}"), None).await;
    assert_eq!(still["data"]["status"], "queued", "{still}");
    let stream = NatsConnection::connect(&nats_server.url(), "test-reader").await.unwrap();
    let stream = stream.jetstream().get_stream(subjects::VEHICLE_COMMANDS_STREAM).await.unwrap();
    let command_subject = subjects::vehicle_commands(&tenant, away);
    assert!(stream.get_last_raw_message_by_subject(&command_subject).await.is_err(), "nothing sent yet");

    // It reports: the command goes and is carried out.
    let device = NatsConnection::connect(&nats_server.url(), "test-unit").await.unwrap();
    let state = report(&tenant, away, charge(70, Utc::now()));
    device.publish_durable(subjects::vehicle_state(&tenant, away), &state).await.unwrap();
    let done = settled(&platform, &key, &id, "queued").await;
    let done = if done["status"] == "sent" { settled(&platform, &key, &id, "sent").await } else { done };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["sent_at"].is_string(), "{done}");
    // The same call again is the same command, answered as the first time; nothing is sent again.
    let (status, replayed) = keyed("unlock-away-1", unlock, json!({ "ttl_seconds": 60 })).await;
    assert_eq!((status, replayed["data"]["id"].as_str()), (202, Some(id.as_str())), "{replayed}");
    let counts = stream.info_with_subjects(command_subject.clone()).await.unwrap();
    let counts: Vec<(String, usize)> = counts.map(Result::unwrap).collect().await;
    assert_eq!(counts, [(command_subject.clone(), 1)], "the device got the command once");
    let sent = stream.get_last_raw_message_by_subject(&command_subject).await.unwrap();
    let carried: Value = serde_json::from_slice(&sent.payload).unwrap();
    assert_eq!(
        (carried["command_id"].as_str(), carried["idempotency_key"].as_str()),
        (Some(id.as_str()), Some("unlock-away-1"))
    );

    // Never heard from before its time to live runs out: expired, never sent.
    let lock = format!("/vehicles/{gone}/commands/lock-central-lock");
    let (status, waiting) = keyed("lock-gone-1", lock, json!({ "ttl_seconds": 1, "wait": true })).await;
    assert_eq!((status, waiting["data"]["status"].clone()), (202, json!("queued")), "{waiting}");
    let gone_id = waiting["data"]["id"].as_str().unwrap().to_owned();
    let expired = settled(&platform, &key, &gone_id, "queued").await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert!(expired["reason"].as_str().unwrap().contains("time to live"), "{expired}");
    assert!(stream.get_last_raw_message_by_subject(&subjects::vehicle_commands(&tenant, gone)).await.is_err());

    // In maintenance: refused without vehicles:maintenance, carried out with it.
    let (status, body, _) =
        platform.call(&key, "PATCH", &format!("/vehicles/{shop}"), Some(json!({ "status": "maintenance" }))).await;
    assert_eq!(status, 200, "{body}");
    let honk = format!("/vehicles/{shop}/commands/honk-and-flash");
    let (status, refused, _) = platform.call(&key, "POST", &honk, None).await;
    assert_eq!((status, error_code(&refused)), (409, "CONFLICT"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("vehicles:maintenance"), "{refused}");
    let workshop =
        json!({ "name": "workshop", "permissions": ["vehicles:read", "vehicles:commands", "vehicles:maintenance"] });
    let workshop = fleet_key(&platform, &admin, workshop).await;
    let (status, honked, _) = platform.call(&workshop, "POST", &honk, None).await;
    assert_eq!((status, honked["data"]["status"].clone()), (200, json!("succeeded")), "{honked}");

    // In a customer's ride: unlocked for that customer only; honking is anyone's.
    let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 20, "per_km_cents": 100 });
    assert_eq!(platform.call_in(&admin, fleet, "PUT", "/pricing", Some(plan)).await.0, 200);
    let mut customers = Vec::new();
    for email in ["rider@example.com", "other@example.com"] {
        let (status, made, _) =
            platform.call_in(&admin, fleet, "POST", "/customers", Some(json!({ "email": email }))).await;
        assert_eq!(status, 201, "{made}");
        customers.push(made["data"]["id"].as_str().unwrap().to_owned());
    }
    let credit = json!({ "action": "credit", "amount_cents": 1_000, "description": "top-up" });
    let wallet = format!("/customers/{}/wallet", customers[0]);
    assert_eq!(platform.call_in(&admin, fleet, "POST", &wallet, Some(credit)).await.0, 201);
    let start =
        json!({ "customer_id": customers[0], "vehicle_id": ridden, "start_latitude": 52.0, "start_longitude": 13.0 });
    let (status, ride, _) = platform.call_in(&admin, fleet, "POST", "/rides", Some(start)).await;
    assert_eq!(status, 201, "{ride}");
    let unlock = format!("/vehicles/{ridden}/commands/unlock-central-lock");
    for body in [None, Some(json!({ "customer_id": customers[1] }))] {
        let (status, refused, _) = platform.call(&key, "POST", &unlock, body).await;
        assert_eq!((status, error_code(&refused)), (409, "CONFLICT"), "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains("another customer's ride"), "{refused}");
    }
    let immobiliser = format!("/vehicles/{ridden}/commands/disable-immobilizer");
    assert_eq!(platform.call(&key, "POST", &immobiliser, None).await.0, 409);
    let (status, unlocked, _) =
        platform.call(&key, "POST", &unlock, Some(json!({ "customer_id": customers[0] }))).await;
    assert_eq!((status, unlocked["data"]["status"].clone()), (200, json!("succeeded")), "{unlocked}");
    let (status, _, _) =
        platform.call(&key, "POST", &format!("/vehicles/{ridden}/commands/honk-and-flash"), None).await;
    assert_eq!(status, 200);

    // Bad times to live are the caller's error.
    for ttl in [0, 604_801] {
        let (status, bad, _) = platform
            .call(
                &key,
                "POST",
                &format!("/vehicles/{away}/commands/honk-and-flash"),
                Some(json!({ "ttl_seconds": ttl })),
            )
            .await;
        assert_eq!((status, error_code(&bad)), (422, "VALIDATION_ERROR"), "{bad}");
    }

    // Every state announced, in order, for partners too (the vehicle's subaccount on each).
    let events = subscriber.until("vehicle.command_state_changed", 4 + 3 + 3 + 3 + 3).await;
    let events = [events, subscriber.drain(Duration::from_millis(700)).await].concat();
    let states_of = |command: &str| -> Vec<String> {
        of_type(&events, "vehicle.command_state_changed")
            .iter()
            .filter_map(|e| match &e.data {
                AnyMessage::VehicleCommandStateChanged(c) if c.command_id.to_string() == command => {
                    assert_eq!(c.subaccount_id, fleet);
                    Some(serde_json::to_value(c.state).unwrap().as_str().unwrap().to_owned())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(states_of(&id), ["accepted", "queued", "sent", "succeeded"]);
    assert_eq!(states_of(&gone_id), ["accepted", "queued", "expired"]);
    let completed: Vec<String> = of_type(&events, "vehicle.command_completed")
        .iter()
        .map(|e| match &e.data {
            AnyMessage::VehicleCommandCompleted(c) => c.command_id.to_string(),
            _ => unreachable!(),
        })
        .collect();
    assert!(completed.contains(&id) && !completed.contains(&gone_id), "an expired command never completed");
    let _ = stop.send(());
    simulator.await.unwrap().unwrap();
    platform.stop().await;
}

/// A telematics unit on MQTT (paho-mqtt from PyPI, `scripts/peers.sh`) through NATS's own MQTT
/// listener, with per-vehicle credentials the server enforces (a bearer JWT as its password): its
/// plain state, published QoS 1 on its topic, arrives as `VehicleStateReceived` once though sent
/// twice; what it publishes on another vehicle's topic and its subscription to another's commands
/// are refused by the server; a command queued before it connected reaches it on its command topic
/// once it reports, and its plain answer on its command-results topic ends the command.
#[tokio::test]
async fn an_mqtt_unit_reports_its_state_and_takes_commands_on_its_own_topics_only() {
    use bus::nats::accounts::Accounts;
    use tokio::io::AsyncBufReadExt;
    let accounts = Accounts::generate();
    let mqtt_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "{}server_name: voltbus-test-mqtt\nmqtt {{ listen: 127.0.0.1:{mqtt_port} }}\n",
        accounts.server_config().unwrap()
    );
    let nats_server = PrivateNats::with_config(&config);
    let (operator, account) = accounts.seeds().unwrap();
    let platform = Platform::start_with(|settings| {
        settings.nats.url = Some(nats_server.url().into());
        settings.nats.operator_seed = Some(operator.into());
        settings.nats.account_seed = Some(account.into());
        settings.fleet.command_timeout_seconds = 2;
    })
    .await;
    let (tenant_name, admin) = platform.organisation().await;
    let tenant = TenantId::new(&tenant_name).unwrap();
    let permissions = ["vehicles:read", "vehicles:write", "vehicles:commands"];
    let key = fleet_key(&platform, &admin, json!({ "name": "fleet", "permissions": permissions })).await;
    let mut subscriber = Subscriber::of(&platform, &tenant_name).await.hearing_states(&platform, &admin).await;
    let fleet = Uuid::now_v7();
    let body = |vin: &str| json!({ "vin": vin, "subaccount_id": fleet, "capabilities": ["honk-and-flash"] });
    let unit: Uuid = add(&platform, &key, body("MQTT1")).await["id"].as_str().unwrap().parse().unwrap();
    let other: Uuid = add(&platform, &key, body("MQTT2")).await["id"].as_str().unwrap().parse().unwrap();
    subscriber.until("VehicleChanged", 2).await;
    let credentials =
        accounts.user(&format!("vehicle-{unit}"), &consumers::fleet::unit_permissions(&tenant, unit), None).unwrap();
    // Sent before the unit ever connected: it waits for it.
    let (status, queued, _) = platform
        .call(&key, "POST", &format!("/vehicles/{unit}/commands/honk-and-flash"), Some(json!({ "ttl_seconds": 300 })))
        .await;
    assert_eq!((status, queued["data"]["status"].clone()), (202, json!("queued")), "{queued}");
    let queued = queued["data"]["id"].as_str().unwrap().to_owned();

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new(root.join("scripts/peers.sh"))
        .arg("mqtt_vehicle.py")
        .args(["127.0.0.1", &mqtt_port.to_string(), &credentials.jwt, &tenant_name])
        .args([unit.to_string(), other.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("scripts/peers.sh runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events = Vec::new();
    while events.iter().filter(|e: &&Value| e["event"] == "published").count() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line()).await.unwrap().unwrap().unwrap();
        eprintln!("unit: {line}");
        events.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let granted: Vec<(String, bool)> = events
        .iter()
        .filter(|e| e["event"] == "subscribed")
        .map(|e| (e["topic"].as_str().unwrap().rsplit('/').nth(1).unwrap().to_owned(), e["granted"] == true))
        .collect();
    assert!(granted.contains(&(unit.to_string(), true)), "{granted:?}");
    assert!(granted.contains(&(other.to_string(), false)), "refused by the server: {granted:?}");

    // Its state arrives once; the forged one on the other vehicle's topic never does.
    let received = subscriber.until("VehicleStateReceived", 1).await;
    let received = [received, subscriber.drain(Duration::from_millis(1500)).await].concat();
    let states = of_type(&received, "VehicleStateReceived");
    // MQTT sets no message id for JetStream to drop the resend by: both reach the ingest, which
    // derives the same report and so the same event (the same id, as at-least-once delivery may
    // repeat any event) and stores the reading once.
    let ids: std::collections::HashSet<Uuid> = states.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 1, "sent twice, taken once; nothing for the other vehicle: {states:?}");
    let history =
        platform.sql(&format!("SELECT count(*) AS n FROM vehicle_state_history WHERE vehicle_id = '{unit}'")).await;
    assert_eq!(history[0].try_get::<i64>("", "n").unwrap(), 1);
    let AnyMessage::VehicleStateReceived(state) = &states[0].data else { unreachable!() };
    assert_eq!(state.vehicle_id, unit);
    let (_, read, _) = platform.call(&key, "GET", &format!("/vehicles/{unit}/state"), None).await;
    assert_eq!(read["data"]["charge_level"]["value"], 64, "{read}");
    let (_, untouched, _) = platform.call(&key, "GET", &format!("/vehicles/{other}/state"), None).await;
    assert!(untouched["data"]["charge_level"].is_null(), "{untouched}");

    // The queued command reached it once it reported, and its answer over MQTT ended it; a
    // command to it now reaches it at once, and the request waits for its answer.
    let mut command = async || loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
        eprintln!("unit: {line}");
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["event"] == "command" {
            return event;
        }
    };
    let first = command().await;
    assert_eq!(first["topic"], format!("voltbus/{tenant_name}/vehicles/{unit}/commands"), "{first}");
    assert_eq!(first["body"]["command_id"], queued.as_str(), "{first}");
    let done = settled(&platform, &key, &queued, "queued").await;
    let done = if done["status"] == "sent" { settled(&platform, &key, &queued, "sent").await } else { done };
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, sent, _) =
        platform.call(&key, "POST", &format!("/vehicles/{unit}/commands/honk-and-flash"), None).await;
    assert_eq!((status, sent["data"]["status"].clone()), (200, json!("succeeded")), "{sent}");
    assert!(command().await["body"].to_string().contains("honk"));
    drop(child.stdin.take());
    let _ = child.wait().await;
}

/// Telemetry at the broker's pace: `VehicleStateReceived` reaches RabbitMQ only while some
/// subscription can receive it; one made or deleted is followed within a second; the latest
/// state, the history and the derived events stay whoever listens.
#[tokio::test]
async fn vehicle_states_reach_the_broker_only_while_a_subscription_can_receive_them() {
    let (nats_server, platform, tenant_name, admin, key) = telemetry_platform().await;
    let tenant = TenantId::new(&tenant_name).unwrap();
    // A queue of the test's, bound to every event of the tenant: it sees what reaches the broker.
    let mut broker = Subscriber::of(&platform, &tenant_name).await;
    let fleet = Uuid::now_v7();
    let scooter = add(&platform, &key, json!({ "vin": "QUIET1", "subaccount_id": fleet })).await;
    let scooter: Uuid = scooter["id"].as_str().unwrap().parse().unwrap();
    broker.until("VehicleChanged", 1).await;
    let device = NatsConnection::connect(&nats_server.url(), "test-device").await.unwrap();
    let subject = subjects::vehicle_state(&tenant, scooter);
    let history = async |count: i64| {
        let query = format!("SELECT count(*) AS n FROM vehicle_state_history WHERE vehicle_id = '{scooter}'");
        for _ in 0..200 {
            if platform.sql(&query).await[0].try_get::<i64>("", "n").unwrap() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the history never held {count} reports");
    };
    let t0 = Utc::now() - TimeDelta::minutes(10);
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);

    // Nobody subscribed: the report is kept and its battery-low event goes out, its
    // VehicleStateReceived does not.
    device.publish_durable(subject.clone(), &report(&tenant, scooter, charge(15, at(1)))).await.unwrap();
    history(1).await;
    let seen = broker.drain(Duration::from_millis(1_500)).await;
    assert_eq!(of_type(&seen, "vehicle.battery_low").len(), 1, "{seen:?}");
    assert!(of_type(&seen, "VehicleStateReceived").is_empty(), "published with nobody to receive it");

    // A subscription: within a second, every report is published again.
    let wanted = json!({ "name": "states", "events": ["VehicleStateReceived"] });
    let (status, made, _) = platform.call(&admin, "POST", "/subscriptions", Some(wanted)).await;
    assert_eq!(status, 201, "{made}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    device.publish_durable(subject.clone(), &report(&tenant, scooter, charge(14, at(2)))).await.unwrap();
    let seen = broker.until("VehicleStateReceived", 1).await;
    assert_eq!(of_type(&seen, "VehicleStateReceived").len(), 1);

    // Deleted: within a second, none again.
    let id = made["data"]["id"].as_str().unwrap();
    let (status, _, _) = platform.call(&admin, "DELETE", &format!("/subscriptions/{id}"), None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    device.publish_durable(subject.clone(), &report(&tenant, scooter, charge(13, at(3)))).await.unwrap();
    history(3).await;
    let seen = broker.drain(Duration::from_millis(1_500)).await;
    assert!(of_type(&seen, "VehicleStateReceived").is_empty(), "published after its subscription was deleted");
    let (_, state, _) = platform.call(&key, "GET", &format!("/vehicles/{scooter}/state"), None).await;
    assert_eq!(state["data"]["charge_level"]["value"], 13, "{state}");
    platform.stop().await;
}
