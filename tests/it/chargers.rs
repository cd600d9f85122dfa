//! Chargers end to end (EVM seed, OCPP vocabulary): admins register them over the partner API,
//! the charger simulator reports their connector statuses over the real NATS (JetStream), and
//! the mobile app finds them in a box with the seed's four states, or `Offline`.

use std::time::Duration;

use bus::nats::NatsConnection;
use schemas::TenantId;
use schemas::charging::ConnectorStatus;
use serde_json::{Value, json};
use uuid::Uuid;
use voltbus::charger_simulator::SimulatedCharger;

use crate::partner::{Platform, error_code};
use crate::private_nats::PrivateNats;
use crate::support::request;

async fn register(platform: &Platform, admin: &str, number: &str, location: [f64; 2]) -> Uuid {
    let body =
        json!({ "device_number": number, "location": location, "price": 450, "waiting_price": 50, "currency": "MNT" });
    let (status, created, _) = platform.call(admin, "POST", "/chargers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["state"], "Offline", "never heard from: {created}");
    created["data"]["id"].as_str().unwrap().parse().unwrap()
}

/// A signed-in app of `tenant`'s: its bearer token.
async fn app_token(platform: &Platform, tenant: &str, phone: &str) -> String {
    let post = |path: &'static str, body: Value| {
        let body = body.to_string();
        async move { request(platform.addr(), "POST", path, &[("x-tenant", tenant)], Some(&body)).await }
    };
    post("/api/v1/user/otp-request", json!({ "phone": phone })).await;
    let (status, signed_in, _) = post("/api/v1/user/otp-check", json!({ "phone": phone, "code": "0000" })).await;
    assert_eq!(status, 200, "{signed_in}");
    signed_in["token"].as_str().unwrap().to_owned()
}

pub(crate) async fn by_location(
    platform: &Platform,
    token: &str,
    [west, south, east, north]: [f64; 4],
) -> (u16, Value) {
    let path = format!(
        "/api/v1/devices/by-location?bottom-left-longitude={west}&bottom-left-latitude={south}\
         &upper-right-longitude={east}&upper-right-latitude={north}"
    );
    let bearer = format!("Bearer {token}");
    let (status, body, _) = request(platform.addr(), "GET", &path, &[("authorization", &bearer)], None).await;
    (status, body)
}

/// Waits until the app sees `expected` states by device number in `area`.
async fn states_become(platform: &Platform, token: &str, area: [f64; 4], expected: &[(&str, &str)]) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, found) = by_location(platform, token, area).await;
        assert_eq!(status, 200, "{found}");
        let seen: Vec<(String, String)> = found
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["deviceNumber"].as_str().unwrap().to_owned(), c["state"].as_str().unwrap().to_owned()))
            .collect();
        if seen.iter().map(|(n, s)| (n.as_str(), s.as_str())).eq(expected.iter().copied()) {
            return found;
        }
        last = found;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {expected:?}, the app sees {last}");
}

#[tokio::test]
async fn chargers_report_their_state_over_nats_and_the_app_finds_them_in_a_box() {
    let nats_server = PrivateNats::start();
    let platform = Platform::start_with(|s| {
        s.nats.url = Some(nats_server.url().into());
        s.mobile.dev_code = Some("0000".into());
        s.charging.offline_after_seconds = 4;
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let (other_tenant, other_admin) = platform.organisation().await;
    let ulaanbaatar = register(&platform, &admin, "UB-001", [106.9176, 47.9184]).await;
    let fiji = register(&platform, &admin, "FJ-001", [179.9, -16.5]).await;
    let berlin = register(&platform, &admin, "BE-001", [13.4050, 52.5200]).await;
    let theirs = register(&platform, &other_admin, "UB-900", [106.92, 47.92]).await;

    // Bad input: a typed error naming the field, and one number per charger.
    let body = json!({ "device_number": "UB-001", "location": [106.0, 47.0], "price": 1, "waiting_price": 1, "currency": "MNT" });
    let (status, refused, _) = platform.call(&admin, "POST", "/chargers", Some(body)).await;
    assert_eq!((status, error_code(&refused)), (409, "CONFLICT"), "{refused}");
    let body =
        json!({ "device_number": "X", "location": [200.0, 47.0], "price": 1, "waiting_price": 1, "currency": "MNT" });
    let (status, refused, _) = platform.call(&admin, "POST", "/chargers", Some(body)).await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("location")), "{refused}");

    // The chargers speak over NATS.
    let nats = NatsConnection::connect(&nats_server.url(), "test-chargers").await.unwrap();
    let charger = |id| SimulatedCharger::new(nats.clone(), TenantId::new(&tenant).unwrap(), id);
    charger(ulaanbaatar).report(ConnectorStatus::Available).await.unwrap();
    charger(fiji).report(ConnectorStatus::SuspendedEV).await.unwrap();
    charger(berlin).report(ConnectorStatus::Faulted).await.unwrap();
    SimulatedCharger::new(nats.clone(), TenantId::new(&other_tenant).unwrap(), theirs)
        .report(ConnectorStatus::Charging)
        .await
        .unwrap();

    let token = app_token(&platform, &tenant, "+97686661488").await;
    let world = [-180.0, -90.0, 180.0, 90.0];
    let found =
        states_become(&platform, &token, world, &[("BE-001", "Error"), ("FJ-001", "Busy"), ("UB-001", "Idle")]).await;
    let ub = &found[2];
    assert_eq!(ub["_id"], ulaanbaatar.to_string());
    assert_eq!((ub["price"].as_i64(), ub["waitingPrice"].as_i64()), (Some(450), Some(50)));
    assert_eq!(ub["location"], json!([106.9176, 47.9184]));
    // A box around Ulaanbaatar holds this organisation's charger there, not the other's.
    let (_, around) = by_location(&platform, &token, [106.0, 47.0, 108.0, 49.0]).await;
    assert_eq!(around.as_array().unwrap().len(), 1, "{around}");
    // A box across the antimeridian (west above east).
    let (_, pacific) = by_location(&platform, &token, [170.0, -20.0, -170.0, -10.0]).await;
    assert_eq!(pacific.as_array().unwrap().iter().map(|c| &c["deviceNumber"]).collect::<Vec<_>>(), [&json!("FJ-001")]);

    // A late report (the charger's own time is older) never rolls the state back; a newer one wins.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    charger(ulaanbaatar).report_at(ConnectorStatus::Faulted, "GroundFailure", an_hour_ago).await.unwrap();
    charger(fiji).report(ConnectorStatus::Unavailable).await.unwrap();
    states_become(&platform, &token, world, &[("BE-001", "Error"), ("FJ-001", "Repair"), ("UB-001", "Idle")]).await;
    let changes = platform
        .sql(&format!(
            "SELECT count(*) AS n FROM outbox WHERE type_name = 'charger.state_changed' AND tenant = '{tenant}'"
        ))
        .await;
    // Idle→Error (Berlin), Idle→Busy→Repair (Fiji); Ulaanbaatar stayed Idle.
    assert_eq!(changes[0].try_get::<i64>("", "n").unwrap(), 3);

    // A charger nobody registered: a dead letter, with its reason.
    charger(Uuid::now_v7()).report(ConnectorStatus::Available).await.unwrap();
    let mut reasons = Vec::new();
    for _ in 0..100 {
        let letters = bus::nats::list_dead_letters(&nats, consumers::chargers::STATUS_GROUP, 10).await.unwrap();
        reasons = letters.iter().map(|l| l.reason.clone().unwrap_or_default()).collect();
        if !reasons.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reasons.iter().any(|r| r.contains("is not registered")), "{reasons:?}");

    // The app's own mistakes: a typed error naming the parameter; no token, no chargers.
    let path = "/api/v1/devices/by-location?bottom-left-longitude=1&bottom-left-latitude=x";
    let bearer = format!("Bearer {token}");
    let (status, body, _) = request(platform.addr(), "GET", path, &[("authorization", &bearer)], None).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("bottom-left-latitude")), "{body}");
    let (status, body) = by_location(&platform, &token, [0.0, 50.0, 10.0, 40.0]).await;
    assert_eq!(status, 422, "{body}");
    let (status, _, _) = request(platform.addr(), "GET", path, &[], None).await;
    assert_eq!(status, 401);

    // Silence: after the window without a report, every charger reads `Offline`.
    tokio::time::sleep(Duration::from_secs(4)).await;
    states_become(&platform, &token, world, &[("BE-001", "Offline"), ("FJ-001", "Offline"), ("UB-001", "Offline")])
        .await;
    platform.stop().await;
}
