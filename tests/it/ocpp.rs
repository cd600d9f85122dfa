//! Chargers over OCPP 1.6J: a charge point of the `ocpp` package (PyPI, `scripts/peers.sh`)
//! connects to the edge's `/ocpp/{chargerId}` with its own password and drives the EVM seed's
//! journey through the real bus: boot, Available, the app starts, RemoteStartTransaction reaches
//! it, it starts a transaction and reports its meter, the app hears CHARGING, finishes,
//! RemoteStopTransaction reaches it, it stops, and the purchase is priced from its readings.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use uuid::Uuid;

use crate::charging::{App, next};
use crate::mobile::with_mobile_nats;
use crate::partner::Platform;

/// What differs between the OCPP versions' journeys.
#[derive(Clone, Copy)]
pub(crate) struct Version {
    subprotocol: &'static str,
    script: &'static str,
    configured: &'static str,
    remote_start: &'static str,
    started: &'static str,
    remote_stop: &'static str,
    hard_reset: &'static str,
}

pub(crate) const V16: Version = Version {
    subprotocol: "ocpp1.6",
    script: "ocpp16_charger.py",
    configured: "ChangeConfiguration",
    remote_start: "RemoteStartTransaction",
    started: "StartTransaction",
    remote_stop: "RemoteStopTransaction",
    hard_reset: "Hard",
};

const V201: Version = Version {
    subprotocol: "ocpp2.0.1",
    script: "ocpp201_charger.py",
    configured: "SetVariables",
    remote_start: "RequestStartTransaction",
    started: "TransactionEvent",
    remote_stop: "RequestStopTransaction",
    hard_reset: "Immediate",
};

/// A Python charge point of the test's, its events one JSON line each.
pub(crate) struct ChargePoint {
    child: Child,
    events: Lines<BufReader<ChildStdout>>,
    /// Events read past while waiting for another (two sides' messages cross).
    skipped: Vec<Value>,
}

impl ChargePoint {
    pub(crate) fn start(edge: &Platform, version: Version, charger: Uuid, password: &str, mode: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let url = format!("ws://{}/ocpp", edge.addr());
        let mut child = Command::new(root.join("scripts/peers.sh"))
            .args([version.script, &url, &charger.to_string(), password, mode])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("scripts/peers.sh runs");
        let events = BufReader::new(child.stdout.take().expect("piped")).lines();
        Self { child, events, skipped: Vec::new() }
    }

    /// The next event, within `within` (the first may wait for the peers' install).
    async fn next_within(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.events.next_line())
            .await
            .expect("the charge point said something in time")
            .expect("its stdout is readable")
            .expect("the charge point is still running");
        eprintln!("charge point: {line}");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not an event: {line}"))
    }

    async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(20)).await
    }

    /// The first event `name`, among those read past before or the next ones.
    pub(crate) async fn until(&mut self, name: &str) -> Value {
        if let Some(at) = self.skipped.iter().position(|event| event["event"] == name) {
            return self.skipped.remove(at);
        }
        loop {
            let event = self.next().await;
            if event["event"] == name {
                return event;
            }
            self.skipped.push(event);
        }
    }
}

/// Registers a charger; its id and OCPP password.
pub(crate) async fn register(platform: &Platform, admin: &str, number: &str) -> (Uuid, String) {
    let body = json!({ "device_number": number, "location": [106.9, 47.9], "price": 450, "waiting_price": 50, "currency": "MNT" });
    let (status, created, _) = platform.call(admin, "POST", "/chargers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let password = created["data"]["ocpp_password"].as_str().expect("the password, shown once").to_owned();
    (created["data"]["id"].as_str().unwrap().parse().unwrap(), password)
}

/// The status line of a WebSocket upgrade to `/ocpp/{charger}` with these credentials and
/// subprotocols.
async fn handshake(platform: &Platform, charger: &str, basic: Option<(&str, &str)>, protocols: &str) -> String {
    use base64::Engine;
    let mut stream = tokio::net::TcpStream::connect(platform.addr()).await.unwrap();
    let authorization = basic.map_or(String::new(), |(user, password)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Authorization: Basic {token}\r\n")
    });
    let request = format!(
        "GET /ocpp/{charger} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocols}\r\n{authorization}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer[..read]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_upgrade_takes_only_a_registered_charger_with_its_password_and_an_ocpp_subprotocol() {
    let (_accounts, _server, platform) = with_mobile_nats().await;
    let (_tenant, admin) = platform.organisation().await;
    let (charger, password) = register(&platform, &admin, "OCPP-AUTH").await;
    let id = charger.to_string();
    assert_eq!(password.len(), 40, "OCPP's limit on a Basic password");
    let stored = platform.sql(&format!("SELECT ocpp_password_hash FROM chargers WHERE charger_id = '{id}'")).await;
    let hash: String = stored[0].try_get("", "ocpp_password_hash").unwrap();
    assert!(!hash.contains(&password) && hash.len() == 64, "kept as its SHA-256 only");

    assert!(handshake(&platform, &id, Some((&id, &password)), "ocpp1.6").await.contains(" 101 "));
    assert!(handshake(&platform, &id, Some((&id, "wrong")), "ocpp1.6").await.contains(" 401 "));
    assert!(handshake(&platform, &id, None, "ocpp1.6").await.contains(" 401 "));
    // Another charger's id as the user name is not this charger.
    let other = Uuid::now_v7().to_string();
    assert!(handshake(&platform, &id, Some((&other, &password)), "ocpp1.6").await.contains(" 401 "));
    assert!(handshake(&platform, &other, Some((&other, &password)), "ocpp1.6").await.contains(" 401 "));
    assert!(handshake(&platform, &id, Some((&id, &password)), "ocpp1.5, mqtt").await.contains(" 400 "));

    // A new password: the old one is refused from then on.
    let (status, rotated, _) =
        platform.call(&admin, "POST", &format!("/chargers/{id}/ocpp-password"), Some(json!({}))).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["data"]["ocpp_password"].as_str().unwrap();
    assert_ne!(new, password);
    assert!(handshake(&platform, &id, Some((&id, &password)), "ocpp1.6").await.contains(" 401 "));
    assert!(handshake(&platform, &id, Some((&id, new)), "ocpp1.6").await.contains(" 101 "));
    // The password is shown nowhere else.
    let (_, read, _) = platform.call(&admin, "GET", &format!("/chargers/{id}"), None).await;
    assert!(!read.to_string().contains(new) && read["data"].get("ocpp_password").is_none(), "{read}");
}

#[tokio::test]
async fn a_16_charge_point_off_the_schema_gets_the_callerror_ocpp_names_and_stays_connected() {
    let (_accounts, _server, platform) = with_mobile_nats().await;
    let (_tenant, admin) = platform.organisation().await;
    let (charger, password) = register(&platform, &admin, "OCPP-BAD").await;
    let mut point = ChargePoint::start(&platform, V16, charger, &password, "violations");
    let expected = [
        ("missing", "OccurenceConstraintViolation"),
        ("type", "TypeConstraintViolation"),
        ("enum", "PropertyConstraintViolation"),
        ("unknown-field", "FormationViolation"),
        ("too-long", "PropertyConstraintViolation"),
        ("type", "TypeConstraintViolation"),
        ("enum", "PropertyConstraintViolation"),
        ("missing", "OccurenceConstraintViolation"),
    ];
    violations(&mut point, "ocpp1.6", &expected).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(point.next().await["answer"].clone());
    }
    assert_eq!(answers[0][2], "FormationViolation", "{answers:?}");
    assert_eq!(answers[1][2], "FormationViolation", "{answers:?}");
    assert_eq!((&answers[2][1], &answers[2][2]), (&json!("short"), &json!("FormationViolation")), "{answers:?}");
    still_served(&mut point).await;
}

#[tokio::test]
async fn a_201_charging_station_off_the_schema_gets_the_callerror_ocpp_names_and_stays_connected() {
    let (_accounts, _server, platform) = with_mobile_nats().await;
    let (_tenant, admin) = platform.organisation().await;
    let (charger, password) = register(&platform, &admin, "OCPP-BAD-2").await;
    let mut point = ChargePoint::start(&platform, V201, charger, &password, "violations");
    let expected = [
        ("missing", "OccurrenceConstraintViolation"),
        ("type", "TypeConstraintViolation"),
        ("enum", "PropertyConstraintViolation"),
        ("unknown-field", "FormatViolation"),
        ("too-long", "PropertyConstraintViolation"),
        ("type", "TypeConstraintViolation"),
        ("missing", "OccurrenceConstraintViolation"),
    ];
    violations(&mut point, "ocpp2.0.1", &expected).await;
    still_served(&mut point).await;
}

/// Each violation the charge point sent was refused by the official schema and answered with
/// its code.
async fn violations(point: &mut ChargePoint, subprotocol: &str, expected: &[(&str, &str)]) {
    let connected = point.next_within(Duration::from_secs(300)).await;
    assert_eq!(connected["subprotocol"], subprotocol, "{connected}");
    for (index, (what, code)) in expected.iter().enumerate() {
        let event = point.next().await;
        assert_eq!((event["what"].as_str(), event["schemaRefuses"].as_bool()), (Some(*what), Some(true)), "{event}");
        let answer = &event["answer"];
        let id = json!(format!("bad-{index}"));
        assert_eq!((&answer[0], &answer[1], &answer[2]), (&json!(4), &id, &json!(code)), "{event}");
    }
}

/// An unknown action is not implemented, and the socket still answers after everything before.
async fn still_served(point: &mut ChargePoint) {
    let unknown = point.next().await;
    assert_eq!((&unknown["answer"][1], &unknown["answer"][2]), (&json!("x"), &json!("NotImplemented")), "{unknown}");
    let alive = point.next().await;
    assert_eq!((&alive["answer"][0], &alive["answer"][1]), (&json!(3), &json!("alive")), "{alive}");
    assert!(alive["answer"][2]["currentTime"].is_string(), "{alive}");
    let _ = point.child.wait().await;
}

/// The charge point's socket is on a second `voltbus` process: the app's start and finish,
/// taken by the first, reach it there.
#[tokio::test]
async fn an_ocpp_16_charge_point_on_another_process_charges_the_app_through_the_whole_evm_journey() {
    journey(V16, true).await;
}

#[tokio::test]
async fn an_ocpp_201_charging_station_charges_the_app_through_the_whole_evm_journey() {
    journey(V201, false).await;
}

async fn journey(version: Version, on_another_process: bool) {
    let (_accounts, server, platform) = with_mobile_nats().await;
    let (tenant, admin) = platform.organisation().await;
    let (charger, password) = register(&platform, &admin, "OCPP-001").await;
    let sibling = if on_another_process { Some(platform.sibling().await) } else { None };
    let mut point = ChargePoint::start(sibling.as_ref().unwrap_or(&platform), version, charger, &password, "journey");
    let connected = point.next_within(Duration::from_secs(300)).await;
    assert_eq!(connected["subprotocol"], version.subprotocol, "{connected}");
    let booted = point.until("BootNotification").await;
    assert_eq!((&booted["status"], &booted["interval"]), (&json!("Accepted"), &json!(60)), "{booted}");
    // The meter is paced at boot: every 3 s.
    let configured = point.until(version.configured).await;
    assert_eq!(configured["value"], "3", "{configured}");
    point.until("Available").await;
    // Which process holds its socket, and its version, as the partner API reads them.
    let edge = sibling.as_ref().unwrap_or(&platform).addr().to_string();
    let mut ocpp = Value::Null;
    for _ in 0..100 {
        let (_, found, _) = platform.call(&admin, "GET", &format!("/chargers/{charger}"), None).await;
        ocpp = found["data"]["ocpp"].clone();
        if ocpp["node"].as_str().is_some_and(|node| node.ends_with(&edge)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ocpp["version"], version.subprotocol.trim_start_matches("ocpp"), "{ocpp}");
    assert!(ocpp["node"].as_str().is_some_and(|node| node.ends_with(&edge)), "{ocpp}");
    // An operator's reset reaches it, wherever its socket is held.
    let (status, reset, _) =
        platform.call(&admin, "POST", &format!("/chargers/{charger}/reset"), Some(json!({ "type": "Hard" }))).await;
    assert_eq!(status, 202, "{reset}");
    let reset = point.until("Reset").await;
    assert_eq!(reset["type"], version.hard_reset, "{reset}");
    let mut state = Value::Null;
    for _ in 0..100 {
        let (_, found, _) = platform.call(&admin, "GET", &format!("/chargers/{charger}"), None).await;
        state = found["data"]["state"].clone();
        if state == "Idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "Idle");

    // The app finds the charger in its box and starts: the charge point is told to start.
    let alice = App::sign_in(&platform, &tenant, "+97686660001").await;
    let mut channel = alice.charging(&server).await;
    let (status, near) = alice.call(
            "GET",
            "/devices/by-location?bottom-left-longitude=106&bottom-left-latitude=47&upper-right-longitude=107&upper-right-latitude=48",
            None,
        ).await;
    assert_eq!(status, 200, "{near}");
    assert!(near.to_string().contains(&charger.to_string()), "{near}");
    let (status, body) = alice.post(&format!("/devices/{charger}/start")).await;
    assert_eq!(status, 200, "{body}");
    point.until(version.remote_start).await;
    assert_eq!(point.until("Authorize").await["status"], "Accepted");
    let started = point.until(version.started).await;
    assert_eq!(started["status"], "Accepted", "{started}");

    // Its readings (1 kWh a second) reach the app as CHARGING.
    let mut progress = Value::Null;
    for _ in 0..3 {
        progress = next(&mut channel).await;
    }
    assert!(progress["energy"].as_f64().unwrap() >= 1.0, "{progress}");
    assert_eq!(progress["currency"], "MNT");
    // The operator sees the session in progress on the charger, with its meter, and not who charges.
    let (_, found, _) = platform.call(&admin, "GET", &format!("/chargers/{charger}"), None).await;
    let session = &found["data"]["session"];
    assert!(session["energy_wh"].as_f64().unwrap() >= 1000.0, "{found}");
    assert!(session["meter_wh"].as_f64().unwrap() >= 11_000.0 && session["meter_at"].is_string(), "{found}");
    assert!(session.get("customer_id").is_none(), "{found}");

    // Finishing tells the charge point to stop; the purchase is priced from its readings.
    let (status, finished) = alice.post(&format!("/devices/{charger}/finish")).await;
    assert_eq!(status, 200, "{finished}");
    let stop = point.until(version.remote_stop).await;
    assert_eq!(stop["transactionId"], started["transactionId"], "{stop}");
    let reported = point.until("done").await;
    let purchase = finished["id"].as_str().unwrap();
    let rows =
        platform.sql(&format!("SELECT amount, energy_kwh FROM purchases WHERE purchase_id = '{purchase}'")).await;
    let (amount, energy): (i64, f64) =
        (rows[0].try_get("", "amount").unwrap(), rows[0].try_get("", "energy_kwh").unwrap());
    assert!(amount >= 450, "at least 1 kWh at 450: {amount}");
    // Nothing counted twice (2.0.1's station sends one update twice): no more than it delivered.
    let delivered = (reported["meterStop"].as_f64().unwrap() - 10_000.0) / 1000.0;
    assert!(energy >= 1.0 && energy <= delivered, "billed {energy} kWh of {delivered} delivered");
    let mut last = progress;
    while last["purchaseId"].is_null() {
        last = next(&mut channel).await;
    }
    assert_eq!(last["purchaseId"], purchase, "{last}");
    let _ = point.child.wait().await;
    let (_, found, _) = platform.call(&admin, "GET", &format!("/chargers/{charger}"), None).await;
    assert!(found["data"]["session"].is_null(), "finished: {found}");
    // Gone: no process holds its socket.
    let mut ocpp = Value::Null;
    for _ in 0..100 {
        let (_, found, _) = platform.call(&admin, "GET", &format!("/chargers/{charger}"), None).await;
        ocpp = found["data"]["ocpp"].clone();
        if ocpp["node"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ocpp["node"].is_null() && ocpp["since"].is_string(), "{ocpp}");
}
