//! Charging sessions end to end (EVM seed) through real HTTP, RabbitMQ, PostgreSQL and a
//! nats-server of the test's own in operator mode: the app starts a session on an idle
//! charger, follows `CHARGING` on its own channel while the charger's meter values price it,
//! and finishes it into a purchase; a charger that stops by itself ends the session too.

use std::time::Duration;

use async_nats::ConnectOptions;
use bus::nats::NatsConnection;
use bus::nats::accounts::{Accounts, Credentials, Permissions};
use chrono::Utc;
use futures_util::StreamExt;
use schemas::TenantId;
use schemas::charging::ConnectorStatus;
use serde_json::{Value, json};
use uuid::Uuid;
use voltbus::charger_simulator::SimulatedCharger;

use crate::mobile::with_mobile_nats;
use crate::partner::{Platform, error_code};
use crate::private_nats::PrivateNats;
use crate::support::request;

/// A signed-in app: its token and the sign-in's `nats`.
pub(crate) struct App<'a> {
    platform: &'a Platform,
    tenant: String,
    token: String,
    pub(crate) nats: Value,
}

impl<'a> App<'a> {
    pub(crate) async fn sign_in(platform: &'a Platform, tenant: &str, phone: &str) -> Self {
        let headers = [("x-tenant", tenant)];
        let body = json!({ "phone": phone }).to_string();
        request(platform.addr(), "POST", "/api/v1/user/otp-request", &headers, Some(&body)).await;
        let body = json!({ "phone": phone, "code": "0000" }).to_string();
        let (status, signed_in, _) =
            request(platform.addr(), "POST", "/api/v1/user/otp-check", &headers, Some(&body)).await;
        assert_eq!(status, 200, "{signed_in}");
        let token = signed_in["token"].as_str().unwrap().to_owned();
        Self { platform, tenant: tenant.to_owned(), token, nats: signed_in["nats"].clone() }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) async fn post(&self, path: &str) -> (u16, Value) {
        self.call("POST", path, Some(json!({}))).await
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let bearer = format!("Bearer {}", self.token);
        let headers = [("authorization", bearer.as_str()), ("x-tenant", self.tenant.as_str())];
        let body = body.map(|b| b.to_string());
        let path = format!("/api/v1{path}");
        let (status, body, _) = request(self.platform.addr(), method, &path, &headers, body.as_deref()).await;
        (status, body)
    }

    /// Its channel `name` (`CHARGING`, `PAYMENT`), with its own credentials.
    pub(crate) async fn channel(&self, server: &PrivateNats, name: &str) -> async_nats::Subscriber {
        let credentials = Credentials {
            jwt: self.nats["user"].as_str().unwrap().to_owned(),
            seed: self.nats["pass"].as_str().unwrap().to_owned(),
        };
        let client =
            ConnectOptions::with_credentials(&credentials.creds_file()).unwrap().connect(server.url()).await.unwrap();
        let subscriber = client.subscribe(format!("{}.{name}", self.nats["topic"].as_str().unwrap())).await.unwrap();
        client.flush().await.unwrap();
        subscriber
    }

    /// Its `CHARGING` channel.
    pub(crate) async fn charging(&self, server: &PrivateNats) -> async_nats::Subscriber {
        self.channel(server, "CHARGING").await
    }
}

pub(crate) async fn next(channel: &mut async_nats::Subscriber) -> Value {
    let message =
        tokio::time::timeout(Duration::from_secs(10), channel.next()).await.expect("a CHARGING message").unwrap();
    serde_json::from_slice(&message.payload).unwrap()
}

/// A charger `number` of `tenant` (450 MNT a kWh, 50 a waiting minute), made by `admin`, speaking
/// to `server` with the chargers' credentials of `accounts`, reported available and read idle.
async fn idle_charger(
    platform: &Platform,
    admin: &str,
    tenant: &str,
    (accounts, server): (&Accounts, &PrivateNats),
    number: &str,
) -> (Uuid, SimulatedCharger) {
    let body = json!({ "device_number": number, "location": [106.9, 47.9], "price": 450, "waiting_price": 50, "currency": "MNT" });
    let (status, created, _) = platform.call(admin, "POST", "/chargers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let charger_id: Uuid = created["data"]["id"].as_str().unwrap().parse().unwrap();
    let device = accounts.user("chargers", &Permissions::All, None).unwrap();
    let nats = NatsConnection::connect_with(&server.url(), "test-chargers", Some(device.creds_file())).await.unwrap();
    let charger = SimulatedCharger::new(nats, TenantId::new(tenant).unwrap(), charger_id);
    charger.report(ConnectorStatus::Available).await.unwrap();
    state_becomes(platform, admin, charger_id, "Idle").await;
    (charger_id, charger)
}

/// Waits until the charger's state (as the partner API reads it) is `state`.
async fn state_becomes(platform: &Platform, admin: &str, charger: Uuid, state: &str) {
    for _ in 0..100 {
        let (_, found, _) = platform.call(admin, "GET", &format!("/chargers/{charger}"), None).await;
        if found["data"]["state"] == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("charger {charger} never became {state}");
}

#[tokio::test]
async fn a_session_is_priced_from_the_chargers_meter_and_ends_in_a_purchase() {
    // Paced once a minute: every message below is a reading's own.
    let (accounts, server, platform) =
        crate::mobile::with_mobile_nats_and(|s| s.ocpp.meter_interval_seconds = 60).await;
    let (tenant, admin) = platform.organisation().await;
    let mut ids = Vec::new();
    for number in ["UB-001", "UB-002"] {
        let body = json!({ "device_number": number, "location": [106.9, 47.9], "price": 450, "waiting_price": 50, "currency": "MNT" });
        let (status, created, _) = platform.call(&admin, "POST", "/chargers", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["data"]["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let (charger_id, busy_id) = (ids[0], ids[1]);
    let device = accounts.user("chargers", &Permissions::All, None).unwrap();
    let nats = NatsConnection::connect_with(&server.url(), "test-chargers", Some(device.creds_file())).await.unwrap();
    let tenant_id = TenantId::new(&tenant).unwrap();
    let charger = SimulatedCharger::new(nats.clone(), tenant_id.clone(), charger_id);
    let busy = SimulatedCharger::new(nats.clone(), tenant_id, busy_id);
    charger.report(ConnectorStatus::Available).await.unwrap();
    busy.report(ConnectorStatus::Charging).await.unwrap();
    state_becomes(&platform, &admin, charger_id, "Idle").await;
    state_becomes(&platform, &admin, busy_id, "Busy").await;

    let alice = App::sign_in(&platform, &tenant, "+97686661488").await;
    let bob = App::sign_in(&platform, &tenant, "+97699112233").await;
    let mut alice_channel = alice.charging(&server).await;
    let mut bob_channel = bob.charging(&server).await;

    // Only an idle charger, one session at a time.
    let (status, body) = alice.post(&format!("/devices/{busy_id}/start")).await;
    assert_eq!((status, error_code(&body)), (409, "CHARGER_UNAVAILABLE"), "{body}");
    let (status, body) = alice.post(&format!("/devices/{charger_id}/start")).await;
    assert_eq!((status, &body), (200, &json!({})), "{body}");
    let (status, body) = bob.post(&format!("/devices/{charger_id}/start")).await;
    assert_eq!((status, error_code(&body)), (409, "CHARGER_UNAVAILABLE"), "{body}");
    let (status, me) = alice.post("/user/me").await;
    assert_eq!((status, &me["device"]["_id"]), (200, &json!(charger_id)), "{me}");
    assert_eq!(me["device"]["price"], 450);

    // The charger's register: 10 kWh at start, 11 after 2 s, no flow for 2 s, then 12.5 (in kWh).
    let t0 = Utc::now() + chrono::Duration::seconds(1);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    charger.meter(10_000.0, "Wh", at(0)).await.unwrap();
    charger.meter(11_000.0, "Wh", at(2)).await.unwrap();
    charger.meter(11_000.0, "Wh", at(4)).await.unwrap();
    charger.meter(12.5, "kWh", at(6)).await.unwrap();
    // The same reading again changes nothing.
    charger.meter(12.5, "kWh", at(6)).await.unwrap();
    let mut last = Value::Null;
    let mut messages = 0;
    while last["energy"] != 2.5 {
        last = next(&mut alice_channel).await;
        messages += 1;
    }
    assert!(messages >= 3, "only {messages} CHARGING messages");
    // 2.5 kWh at 450 = 1125; 2 s without flow = 1 started minute at 50.
    assert_eq!(last, json!({ "energy": 2.5, "waitingTime": 2, "amount": 1175, "currency": "MNT" }));

    // Bob cannot finish alice's session; alice finishes it into a purchase.
    let (status, body) = bob.post(&format!("/devices/{charger_id}/finish")).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
    let (status, finished) = alice.post(&format!("/devices/{charger_id}/finish")).await;
    assert_eq!(status, 200, "{finished}");
    let purchase = finished["id"].as_str().unwrap().to_owned();
    let rows = platform
        .sql(&format!("SELECT amount, status, energy_kwh FROM purchases WHERE purchase_id = '{purchase}'"))
        .await;
    assert_eq!(rows[0].try_get::<i64>("", "amount").unwrap(), 1175);
    assert_eq!(rows[0].try_get::<String>("", "status").unwrap(), "pending");
    // The reading sent twice made no second message: the next one is the last, with the purchase.
    let last = next(&mut alice_channel).await;
    assert_eq!((last["purchaseId"].as_str(), last["amount"].as_i64()), (Some(purchase.as_str()), Some(1175)), "{last}");
    let (_, me) = alice.post("/user/me").await;
    assert_eq!(me["device"], Value::Null, "{me}");
    // Paying from the balance: refused while it is empty (the app hears `fail`), paid once it
    // is topped up (the app hears `success`), never twice.
    let mut alice_payments = alice.channel(&server, "PAYMENT").await;
    let (status, options) = alice.call("GET", "/payment-options", None).await;
    assert_eq!((status, &options[0]["option"], &options[0]["disabled"]), (200, &json!("EVM"), &json!(false)));
    let pay = |option: &str| json!({ "option": option });
    let (status, body) = alice.call("POST", &format!("/purchases/{purchase}/pay"), Some(pay("EVM"))).await;
    assert_eq!((status, error_code(&body)), (402, "INSUFFICIENT_FUNDS"), "{body}");
    assert_eq!(next(&mut alice_payments).await, json!({ "status": "fail", "amount": 1175, "currency": "MNT" }));
    let customer = alice.nats["topic"].as_str().unwrap().rsplit('.').next().unwrap().to_owned();
    let credit = json!({ "action": "credit", "amount_cents": 2000, "description": "top-up", "currency": "MNT" });
    let (status, body, _) = platform.call(&admin, "POST", &format!("/customers/{customer}/wallet"), Some(credit)).await;
    assert_eq!(status, 201, "{body}");
    let (status, paid) = alice.call("POST", &format!("/purchases/{purchase}/pay"), Some(pay("EVM"))).await;
    assert_eq!((status, &paid), (200, &json!({ "option": "EVM", "invoiceId": purchase, "newBalance": 825 })), "{paid}");
    assert_eq!(next(&mut alice_payments).await, json!({ "status": "success", "amount": 1175, "currency": "MNT" }));
    let (status, again) = alice.call("POST", &format!("/purchases/{purchase}/pay"), Some(pay("EVM"))).await;
    assert_eq!((status, error_code(&again)), (409, "CONFLICT"), "{again}");
    let polled = json!({ "invoiceId": purchase });
    let (status, polled) = alice.call("POST", &format!("/purchases/{purchase}/status"), Some(polled)).await;
    assert_eq!((status, &polled), (200, &json!({ "status": "success", "amount": 1175 })));
    let feedback = json!({ "feedback": { "score": 5, "description": "fast" } });
    assert_eq!(alice.call("POST", &format!("/purchases/{purchase}/feedback"), Some(feedback)).await.0, 200);
    let bad = json!({ "feedback": { "score": 9, "description": "" } });
    assert_eq!(alice.call("POST", &format!("/purchases/{purchase}/feedback"), Some(bad)).await.0, 422);
    let (status, history) = alice.call("GET", "/purchases?page=1&page-size=10", None).await;
    assert_eq!((status, history["total"].as_u64()), (200, Some(1)), "{history}");
    assert_eq!((&history["items"][0]["status"], &history["items"][0]["feedback"]), (&json!("success"), &json!(5)));
    // Bob sees none of alice's purchases.
    let (_, theirs) = bob.call("GET", "/purchases", None).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let polled = json!({ "invoiceId": purchase });
    let (status, _) = bob.call("POST", &format!("/purchases/{purchase}/status"), Some(polled)).await;
    assert_eq!(status, 404);

    let commands = platform.sql("SELECT count(*) AS n FROM outbox WHERE type_name = 'charger.remote_command'").await;
    assert_eq!(commands[0].try_get::<i64>("", "n").unwrap(), 2, "RemoteStart and RemoteStop");

    // The charger stops by itself (a fault): the session ends, and the app is told.
    let (status, body) = bob.post(&format!("/devices/{charger_id}/start")).await;
    assert_eq!(status, 200, "{body}");
    charger.meter(12_500.0, "Wh", at(10)).await.unwrap();
    charger.meter(13_500.0, "Wh", at(12)).await.unwrap();
    // The charger restarts and its register starts over: what was delivered stays billed.
    charger.meter(0.0, "Wh", at(13)).await.unwrap();
    charger.meter(500.0, "Wh", at(14)).await.unwrap();
    let mut progress = next(&mut bob_channel).await;
    while progress["energy"] != 1.5 {
        progress = next(&mut bob_channel).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    charger.report(ConnectorStatus::Faulted).await.unwrap();
    let last = next(&mut bob_channel).await;
    assert_eq!(last["amount"], 675, "1.5 kWh at 450: {last}");
    assert!(last["purchaseId"].is_string(), "{last}");
    // Bob's purchase is unpaid: no next session until it is.
    charger.report(ConnectorStatus::Available).await.unwrap();
    state_becomes(&platform, &admin, charger_id, "Idle").await;
    let (status, body) = bob.post(&format!("/devices/{charger_id}/start")).await;
    assert_eq!((status, error_code(&body)), (402, "INSUFFICIENT_FUNDS"), "{body}");
    let sessions = platform.sql("SELECT count(*) AS n FROM charging_sessions WHERE status = 'active'").await;
    assert_eq!(sessions[0].try_get::<i64>("", "n").unwrap(), 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), alice_channel.next()).await.is_err(),
        "alice heard bob's session"
    );
    platform.stop().await;
}

#[tokio::test]
async fn the_charger_simulator_charges_on_remote_start_and_stops_on_remote_stop() {
    let (accounts, server, platform) = with_mobile_nats().await;
    let (tenant, admin) = platform.organisation().await;
    let body = json!({ "device_number": "SIM-1", "location": [106.9, 47.9], "price": 300, "waiting_price": 0, "currency": "MNT" });
    let (status, created, _) = platform.call(&admin, "POST", "/chargers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let charger_id: Uuid = created["data"]["id"].as_str().unwrap().parse().unwrap();

    // `voltbus simulate-chargers`: a meter value every 300 ms at 36 kW (3 Wh each).
    let device = accounts.user("chargers", &Permissions::All, None).unwrap();
    let nats = NatsConnection::connect_with(&server.url(), "simulator", Some(device.creds_file())).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let behaviour = voltbus::charger_simulator::Behaviour { every: Duration::from_millis(300), power: 36_000.0 };
    let simulator = tokio::spawn(voltbus::charger_simulator::run(
        nats,
        TenantId::new(&tenant).unwrap(),
        vec![charger_id],
        behaviour,
        async move {
            let _ = stopped.await;
        },
    ));
    state_becomes(&platform, &admin, charger_id, "Idle").await;

    let app = App::sign_in(&platform, &tenant, "+97686661488").await;
    let mut charging = app.charging(&server).await;
    assert_eq!(app.post(&format!("/devices/{charger_id}/start")).await.0, 200);
    // The charger took the remote start: it charges, and the app hears it at least three times.
    let mut energies = Vec::new();
    while energies.len() < 4 {
        energies.push(next(&mut charging).await["energy"].as_f64().unwrap());
    }
    assert!(energies.windows(2).all(|w| w[0] <= w[1]) && energies[3] > 0.0, "{energies:?}");
    state_becomes(&platform, &admin, charger_id, "Busy").await;
    let (status, finished) = app.post(&format!("/devices/{charger_id}/finish")).await;
    assert_eq!(status, 200, "{finished}");
    // The charger took the remote stop and is free again.
    state_becomes(&platform, &admin, charger_id, "Idle").await;
    let _ = stop.send(());
    simulator.await.unwrap().unwrap();
    platform.stop().await;
}

/// A charger that reports less often than the seed's cadence: the app still hears `CHARGING`
/// every `ocpp.meter_interval_seconds` (here 1 s), from the latest reading.
#[tokio::test]
async fn the_app_hears_charging_on_the_seeds_cadence_when_the_charger_reports_less_often() {
    let (accounts, server, platform) = crate::mobile::with_mobile_nats_and(|s| s.ocpp.meter_interval_seconds = 1).await;
    let (tenant, admin) = platform.organisation().await;
    let (charger_id, charger) = idle_charger(&platform, &admin, &tenant, (&accounts, &server), "SLOW-1").await;
    let alice = App::sign_in(&platform, &tenant, "+97686669999").await;
    let mut channel = alice.charging(&server).await;
    let (status, body) = alice.post(&format!("/devices/{charger_id}/start")).await;
    assert_eq!(status, 200, "{body}");
    charger.meter(10_000.0, "Wh", Utc::now()).await.unwrap();
    charger.meter(11_000.0, "Wh", Utc::now() + chrono::Duration::milliseconds(10)).await.unwrap();
    while next(&mut channel).await["energy"] != 1.0 {}
    // Then nothing from the charger for 4 s: the app hears from the latest reading every second.
    let started = std::time::Instant::now();
    let mut heard = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let message = next(&mut channel).await;
        assert_eq!(message["energy"], 1.0, "{message}");
        heard += 1;
    }
    assert!(heard >= 3, "{heard} CHARGING messages in 4 s");
}

/// A charger that says again that it is available (chargers repeat their status, the simulator
/// every minute) after a session started and before it took `RemoteStartTransaction` has not
/// stopped anything: the session stays, and the app finishes it.
#[tokio::test]
async fn a_repeated_available_before_the_charger_starts_does_not_end_the_session() {
    let (accounts, server, platform) = crate::mobile::with_mobile_nats_and(|_| {}).await;
    let (tenant, admin) = platform.organisation().await;
    let (charger_id, charger) = idle_charger(&platform, &admin, &tenant, (&accounts, &server), "RACE-1").await;
    let alice = App::sign_in(&platform, &tenant, "+97686660001").await;
    let (status, body) = alice.post(&format!("/devices/{charger_id}/start")).await;
    assert_eq!(status, 200, "{body}");

    let again = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    charger.report_at(ConnectorStatus::Available, "NoError", again).await.unwrap();
    let seen = format!(
        "SELECT count(*) AS n FROM chargers WHERE charger_id = '{charger_id}' AND status_at >= '{}'",
        again.to_rfc3339()
    );
    for _ in 0..100 {
        if platform.sql(&seen).await[0].try_get::<i64>("", "n").unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(platform.sql(&seen).await[0].try_get::<i64>("", "n").unwrap(), 1, "the repeat was taken");
    let active = platform.sql("SELECT count(*) AS n FROM charging_sessions WHERE status = 'active'").await;
    assert_eq!(active[0].try_get::<i64>("", "n").unwrap(), 1, "the session stays");
    let (status, body) = alice.post(&format!("/devices/{charger_id}/finish")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].is_string(), "{body}");
    platform.stop().await;
}
