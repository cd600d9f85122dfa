//! Rides, customers, wallets and pricing end to end: through the partner API, the `rides`,
//! `customers`, `wallets` and `pricing` consumers on PostgreSQL and RabbitMQ, with the distance
//! from odometer readings a vehicle publishes on a real (private) NATS. A full ride with pauses is
//! priced to the cent against a breakdown computed here by hand; every illegal move is refused;
//! a blocked customer cannot start; money moves once however often a command is replayed; a
//! hundred debits racing on one wallet never overspend; and another organisation or subaccount
//! reaches none of it.

use std::time::Duration;

use bus::amqp::AmqpConnection;
use bus::nats::NatsConnection;
use chrono::{DateTime, Utc};
use schemas::vehicles::{Position, Reading, VehicleState};
use schemas::wallets::{EntrySource, PostWalletEntry, WalletAction};
use schemas::{Currency, Envelope, TenantId, routing, subjects};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::fleet::report;
use crate::partner::{Platform, error_code};
use crate::private_nats::PrivateNats;

/// An organisation's admin acting on one subaccount (fleet).
struct Operator<'a> {
    platform: &'a Platform,
    admin: String,
    fleet: Uuid,
}

impl Operator<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, body, _) = self.platform.call_in(&self.admin, self.fleet, method, path, body).await;
        (status, body)
    }

    /// `method path` answered with `status`; its `data`.
    async fn expect(&self, status: u16, method: &str, path: &str, body: Option<Value>) -> Value {
        let (got, answer) = self.call(method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer["data"].clone()
    }

    /// `method path` refused with `status` and `code`.
    async fn refused(&self, status: u16, code: &str, method: &str, path: &str, body: Option<Value>) {
        let (got, answer) = self.call(method, path, body).await;
        assert_eq!((got, error_code(&answer)), (status, code), "{method} {path}: {answer}");
    }

    async fn balance(&self, customer: &str) -> i64 {
        self.expect(200, "GET", &format!("/customers/{customer}/wallet"), None).await["balance_cents"].as_i64().unwrap()
    }
}

fn odometer(metres: u64, at: DateTime<Utc>) -> VehicleState {
    VehicleState {
        odometer: Some(Reading { value: metres, time: at }),
        position: Some(Reading { value: Position { latitude: 52.52, longitude: 13.405 }, time: at }),
        ..VehicleState::default()
    }
}

/// Waits until the vehicle's latest odometer reads `metres`.
async fn until_odometer(operator: &Operator<'_>, vehicle: &str, metres: u64) {
    for _ in 0..200 {
        let state = operator.expect(200, "GET", &format!("/vehicles/{vehicle}/state"), None).await;
        if state["odometer"]["value"] == json!(metres) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the odometer never read {metres}");
}

fn whole_minutes_started(ms: i64) -> i64 {
    (ms + 59_999) / 60_000
}

/// The outbox's events of `tenant`, by type, as the AMQP relay publishes them.
async fn events(platform: &Platform, tenant: &str) -> Vec<(String, Value)> {
    let rows = platform
        .sql(&format!(
            "SELECT type_name, payload FROM outbox WHERE tenant = '{tenant}' AND transport = 'amqp' ORDER BY seq"
        ))
        .await;
    rows.iter()
        .map(|row| {
            let payload: String = row.try_get("", "payload").unwrap();
            (row.try_get("", "type_name").unwrap(), serde_json::from_str(&payload).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_ride_with_pauses_is_priced_to_the_cent_charged_once_and_kept_to_its_tenant() {
    let nats_server = PrivateNats::start();
    let platform = Platform::start_with(|settings| settings.nats.url = Some(nats_server.url().into())).await;
    let (tenant, admin) = platform.organisation().await;
    let operator = Operator { platform: &platform, admin, fleet: Uuid::now_v7() };

    // The plan: 1.50 to unlock, 0.39 a minute, 0.12 a paused minute, 0.45 a km, 20 % off, and
    // 2.00 in the wallet beyond the unlock fee to start.
    let plan = json!({
        "currency": "BRL", "unlock_cents": 150, "per_minute_cents": 39, "paused_per_minute_cents": 12,
        "per_km_cents": 45, "minimum_balance_cents": 200,
        "discounts": [{ "kind": "percentage", "basis_points": 2000, "label": "launch" }],
    });
    operator
        .refused(
            422,
            "VALIDATION_ERROR",
            "PUT",
            "/pricing",
            Some(json!({ "currency": "BRL", "unlock_cents": -1, "per_minute_cents": 1 })),
        )
        .await;
    operator.refused(404, "NOT_FOUND", "GET", "/pricing", None).await;
    operator.expect(200, "PUT", "/pricing", Some(plan)).await;
    let stored = operator.expect(200, "GET", "/pricing", None).await;
    assert_eq!((stored["unlock_cents"].clone(), stored["currency"].clone()), (json!(150), json!("BRL")), "{stored}");

    // A vehicle reporting its odometer over NATS, and a customer.
    let vehicle =
        operator.expect(201, "POST", "/vehicles", Some(json!({ "vin": "RIDE1", "vehicle_number": "V001" }))).await;
    let vehicle = vehicle["id"].as_str().unwrap().to_owned();
    let tenant_id = TenantId::new(&tenant).unwrap();
    let device = NatsConnection::connect(&nats_server.url(), "test-device").await.unwrap();
    let subject = subjects::vehicle_state(&tenant_id, vehicle.parse().unwrap());
    device
        .publish_durable(subject.clone(), &report(&tenant_id, vehicle.parse().unwrap(), odometer(120_000, Utc::now())))
        .await
        .unwrap();
    until_odometer(&operator, &vehicle, 120_000).await;
    operator.refused(422, "VALIDATION_ERROR", "POST", "/customers", Some(json!({ "email": "not an address" }))).await;
    let customer =
        operator.expect(201, "POST", "/customers", Some(json!({ "email": "Ana@Example.com", "name": "Ana" }))).await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    assert_eq!(customer["subaccount_id"], json!(operator.fleet));
    let found = operator.expect(200, "GET", "/customers?email=ana%40example.com", None).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "searched by e-mail, any case: {found}");
    let start = json!({ "customer_id": customer_id, "vehicle_id": vehicle });

    // Refused starts: an empty wallet, then one short of unlock + minimum balance (350).
    operator.refused(402, "INSUFFICIENT_FUNDS", "POST", "/rides", Some(start.clone())).await;
    let wallet = format!("/customers/{customer_id}/wallet");
    let credit = |amount: i64| json!({ "action": "credit", "amount_cents": amount, "description": "top-up" });
    let first = operator.expect(201, "POST", &wallet, Some(credit(349))).await;
    assert_eq!(
        (first["currency"].clone(), first["balance_cents"].clone()),
        (json!("BRL"), json!(349)),
        "the plan's currency"
    );
    operator.refused(402, "INSUFFICIENT_FUNDS", "POST", "/rides", Some(start.clone())).await;
    operator.expect(201, "POST", &wallet, Some(credit(651))).await;
    // Blocked, then in a no-ride zone.
    let block = format!("/customers/{customer_id}/block");
    operator.refused(422, "VALIDATION_ERROR", "POST", &block, Some(json!({ "reason": "" }))).await;
    let blocked = operator.expect(200, "POST", &block, Some(json!({ "reason": "unpaid fines" }))).await;
    assert_eq!((blocked["blocked"].clone(), blocked["block_reason"].clone()), (json!(true), json!("unpaid fines")));
    operator.refused(409, "CONFLICT", "POST", &block, Some(json!({ "reason": "again" }))).await;
    operator.refused(409, "CUSTOMER_BLOCKED", "POST", "/rides", Some(start.clone())).await;
    operator.expect(200, "POST", &format!("/customers/{customer_id}/unblock"), Some(json!({ "reason": "paid" }))).await;
    let zone = json!({ "name": "Park", "type": "no_ride", "subaccount_id": operator.fleet,
        "polygon": [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1]] });
    operator.expect(201, "POST", "/zones", Some(zone)).await;
    let in_park =
        json!({ "customer_id": customer_id, "vehicle_id": vehicle, "start_latitude": 52.05, "start_longitude": 13.05 });
    operator.refused(409, "NO_RIDE_ZONE", "POST", "/rides", Some(in_park)).await;

    // The ride: start, pause, resume, pause, end while paused.
    let ride = operator.expect(201, "POST", "/rides", Some(start.clone())).await;
    let ride_id = ride["id"].as_str().unwrap().to_owned();
    assert_eq!(ride["status"], "active");
    let status = operator.expect(200, "GET", &format!("/vehicles/{vehicle}"), None).await["status"].clone();
    assert_eq!(status, "in_use", "the vehicle follows the ride");
    let other = operator.expect(201, "POST", "/customers", Some(json!({ "email": "bo@example.com" }))).await;
    operator
        .expect(201, "POST", &format!("/customers/{}/wallet", other["id"].as_str().unwrap()), Some(credit(5_000)))
        .await;
    let taken = json!({ "customer_id": other["id"], "vehicle_id": vehicle });
    operator.refused(409, "VEHICLE_UNAVAILABLE", "POST", "/rides", Some(taken)).await;
    let spare = operator.expect(201, "POST", "/vehicles", Some(json!({ "vin": "RIDE2" }))).await;
    let second = json!({ "customer_id": customer_id, "vehicle_id": spare["id"] });
    operator.refused(409, "CONFLICT", "POST", "/rides", Some(second)).await;
    let path = |step: &str| format!("/rides/{ride_id}/{step}");
    operator.refused(409, "INVALID_TRANSITION", "POST", &path("resume"), None).await;
    assert_eq!(operator.expect(200, "POST", &path("pause"), None).await["status"], "paused");
    operator.refused(409, "INVALID_TRANSITION", "POST", &path("pause"), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(operator.expect(200, "POST", &path("resume"), None).await["status"], "active");
    assert_eq!(operator.expect(200, "POST", &path("pause"), None).await["status"], "paused");
    // The vehicle went 3,333 m meanwhile.
    device
        .publish_durable(subject, &report(&tenant_id, vehicle.parse().unwrap(), odometer(123_333, Utc::now())))
        .await
        .unwrap();
    until_odometer(&operator, &vehicle, 123_333).await;
    operator
        .refused(422, "VALIDATION_ERROR", "POST", &path("end"), Some(json!({ "end_latitude": 91, "end_longitude": 0 })))
        .await;
    let end = json!({ "end_latitude": 52.53, "end_longitude": 13.41 });
    let ended = operator.expect(200, "POST", &path("end"), Some(end.clone())).await;

    // By hand: the ride's own clock says how long it rode and paused; every started minute is
    // billed. Riding 39 a minute, paused 12; 3,333 m at 45 a km is 149.985, so 150; gross
    // 150 + time + 150; 20 % of it off, half a cent up.
    let started = DateTime::parse_from_rfc3339(ended["start_time"].as_str().unwrap()).unwrap();
    let finished = DateTime::parse_from_rfc3339(ended["end_time"].as_str().unwrap()).unwrap();
    let paused_ms = ended["paused_ms"].as_i64().unwrap();
    let riding_ms = (finished - started).num_milliseconds() - paused_ms;
    assert!(paused_ms >= 300 && riding_ms > 0, "paused {paused_ms} ms, rode {riding_ms} ms");
    let time = whole_minutes_started(riding_ms) * 39 + whole_minutes_started(paused_ms) * 12;
    let gross = 150 + time + 150;
    let discount = (gross * 2_000 + 5_000) / 10_000;
    let expected = json!({
        "total_cents": gross - discount, "unlock_cents": 150, "time_cents": time, "distance_cents": 150,
        "discount_cents": discount, "adjustment_cents": 0, "currency": "BRL",
    });
    assert_eq!(ended["pricing"], expected, "{ended}");
    if riding_ms < 60_000 && paused_ms < 60_000 {
        assert_eq!(ended["pricing"]["total_cents"], 281, "150 + 51 + 150 = 351, less 70");
    }
    assert_eq!(
        (ended["status"].clone(), ended["payment_status"].clone(), ended["distance_m"].clone()),
        (json!("ended"), json!("paid"), json!(3_333))
    );
    let total = gross - discount;
    assert_eq!(operator.balance(&customer_id).await, 1_000 - total);
    let status = operator.expect(200, "GET", &format!("/vehicles/{vehicle}"), None).await["status"].clone();
    assert_eq!(status, "available", "the vehicle is free again");

    // Nothing moves after the end: each step refused, the second end not charged.
    for step in ["pause", "resume", "end"] {
        let body = (step == "end").then(|| end.clone());
        operator.refused(409, "INVALID_TRANSITION", "POST", &path(step), body).await;
    }
    assert_eq!(operator.balance(&customer_id).await, 1_000 - total);
    let active = operator.expect(200, "GET", "/rides?status=active", None).await;
    assert_eq!(active, json!([]));
    let listed = operator.expect(200, "GET", &format!("/rides?customer_id={customer_id}"), None).await;
    assert_eq!(listed[0]["pricing"], expected);

    // A refund reverses the charge once.
    let charge = ended["charge_entry_id"].as_str().unwrap();
    let refund = format!("{wallet}/entries/{charge}/refund");
    let reversed = operator.expect(201, "POST", &refund, Some(json!({ "reason": "bumpy ride" }))).await;
    assert_eq!(
        (reversed["action"].clone(), reversed["source"].clone(), reversed["amount_cents"].clone()),
        (json!("credit"), json!("refund"), json!(total))
    );
    operator.refused(409, "CONFLICT", "POST", &refund, Some(json!({ "reason": "again" }))).await;
    assert_eq!(operator.balance(&customer_id).await, 1_000);

    // The events, with the seed's payload.
    let events = events(&platform, &tenant).await;
    let count = |name: &str| events.iter().filter(|(t, _)| t == name).count();
    let seen: Vec<usize> = [
        "ride.started",
        "ride.paused",
        "ride.resumed",
        "ride.ended",
        "customer.created",
        "customer.blocked",
        "customer.unblocked",
        "wallet.entry_posted",
    ]
    .iter()
    .map(|name| count(name))
    .collect();
    assert_eq!(seen, [1, 2, 1, 1, 2, 1, 1, 5], "{events:?}");
    let (_, ride_ended) = events.iter().find(|(t, _)| t == "ride.ended").unwrap();
    let data = &ride_ended["data"];
    assert_eq!(
        (data["pricing"].clone(), data["customer_number"].clone(), data["vehicle_number"].clone()),
        (expected.clone(), json!(1), json!("V001"))
    );
    assert_eq!(
        (data["payment_status"].clone(), data["distance_km"].clone(), ride_ended["dataversion"].clone()),
        (json!("paid"), json!(3.333), json!("1.2"))
    );
    let statuses: Vec<Value> = events
        .iter()
        .filter(|(t, _)| t == "vehicle.status_changed")
        .map(|(_, e)| e["data"]["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("in_use"), json!("available")]);

    // Another organisation, and another subaccount of this one, reach none of it.
    let (_, stranger) = platform.organisation().await;
    let elsewhere = platform
        .create_key(&operator.admin, json!({ "name": "other fleet", "bundle": "ALL_ACCESS", "scope": "subaccount", "subaccount_id": Uuid::now_v7() }))
        .await
        .1;
    for key in [&stranger, &elsewhere] {
        for (method, route, body) in [
            ("GET", format!("/customers/{customer_id}"), None),
            ("GET", wallet.clone(), None),
            ("POST", wallet.clone(), Some(credit(1))),
            ("POST", block.clone(), Some(json!({ "reason": "x" }))),
            ("GET", format!("/rides/{ride_id}"), None),
            ("POST", path("pause"), None),
            ("POST", "/rides".to_owned(), Some(start.clone())),
        ] {
            let (status, body, _) = platform.call(key, method, &route, body).await;
            assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{method} {route}: {body}");
        }
        for list in ["/customers", "/rides"] {
            assert_eq!(platform.call(key, "GET", list, None).await.1["data"], json!([]), "{list}");
        }
    }
    assert_eq!(operator.balance(&customer_id).await, 1_000);
    platform.stop().await;
}

#[tokio::test]
async fn a_hundred_debits_racing_on_one_wallet_never_overspend_and_replays_change_nothing() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let operator = Operator { platform: &platform, admin, fleet: Uuid::now_v7() };
    let customer = operator.expect(201, "POST", "/customers", Some(json!({ "name": "Racer" }))).await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    let wallet = format!("/customers/{customer_id}/wallet");
    // No plan names the currency here: the first entry must.
    let credit = json!({ "action": "credit", "amount_cents": 5_000, "description": "top-up" });
    operator.refused(422, "VALIDATION_ERROR", "POST", &wallet, Some(credit.clone())).await;
    let credit = json!({ "action": "credit", "amount_cents": 5_000, "description": "top-up", "currency": "EUR" });
    operator.expect(201, "POST", &wallet, Some(credit)).await;

    // 100 debits of 70 at once: 7,000 asked of 5,000, so exactly 71 fit (4,970).
    let debit = json!({ "action": "debit", "amount_cents": 70, "description": "coffee" });
    let calls = (0..100).map(|_| operator.call("POST", &wallet, Some(debit.clone())));
    let answers = futures_util::future::join_all(calls).await;
    let posted = answers.iter().filter(|(status, _)| *status == 201).count();
    let short =
        answers.iter().filter(|(status, body)| *status == 402 && error_code(body) == "INSUFFICIENT_FUNDS").count();
    assert_eq!((posted, short), (71, 29), "{:?}", answers.iter().find(|(s, _)| *s != 201 && *s != 402));
    assert_eq!(operator.balance(&customer_id).await, 30);

    // The ledger agrees with itself: a chain with no gap, each balance the sum before it, none
    // below zero.
    let rows = platform
        .sql(&format!(
            "SELECT seq, action, amount_cents, balance_cents FROM wallet_entries WHERE tenant = '{tenant}' ORDER BY seq"
        ))
        .await;
    let mut running = 0i64;
    for (i, row) in rows.iter().enumerate() {
        let (seq, action, amount, balance): (i64, String, i64, i64) = (
            row.try_get("", "seq").unwrap(),
            row.try_get("", "action").unwrap(),
            row.try_get("", "amount_cents").unwrap(),
            row.try_get("", "balance_cents").unwrap(),
        );
        running += if action == "credit" { amount } else { -amount };
        assert_eq!((seq, balance), (i as i64 + 1, running));
        assert!(balance >= 0);
    }
    assert_eq!(rows.len(), 72);

    // The same request again (same Idempotency-Key): the same entry, posted once.
    let headers = |key: &'static str| {
        [
            ("x-partner-api-key", operator.admin.clone()),
            ("x-subaccount-id", operator.fleet.to_string()),
            ("idempotency-key", key.to_owned()),
        ]
    };
    let credit = json!({ "action": "credit", "amount_cents": 1_000, "description": "refund of a fine" }).to_string();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let sent = headers("fine-42");
        let sent: Vec<(&str, &str)> = sent.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let path = format!("/api/partner/v1{wallet}");
        let (status, body, _) = crate::support::request(platform.addr(), "POST", &path, &sent, Some(&credit)).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["data"]["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(operator.balance(&customer_id).await, 1_030);

    // The same command twice on the bus (a redelivery, a publisher's retry): one entry.
    let amqp = AmqpConnection::connect(platform.settings.amqp.url.as_deref().unwrap(), "test-replay").await.unwrap();
    let post = PostWalletEntry {
        customer_id: customer_id.parse().unwrap(),
        action: WalletAction::Debit,
        amount_cents: 30,
        currency: Currency::EUR,
        description: "replayed".into(),
        source: EntrySource::Manual,
        idempotency_key: "bus-replay".into(),
    };
    let command = Envelope::new(TenantId::new(&tenant).unwrap(), "test/replay", post);
    let key = routing::command_key_of::<PostWalletEntry>();
    for _ in 0..2 {
        amqp.publish(routing::COMMANDS_EXCHANGE, &key, &command).await.unwrap();
    }
    for _ in 0..100 {
        if operator.balance(&customer_id).await == 1_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(operator.balance(&customer_id).await, 1_000);
    let replayed = platform
        .sql(&format!(
            "SELECT COUNT(*) AS n FROM wallet_entries WHERE tenant = '{tenant}' AND idempotency_key = 'bus-replay'"
        ))
        .await;
    assert_eq!(replayed[0].try_get::<i64>("", "n").unwrap(), 1);

    // An entry is never rewritten, whoever asks.
    let rewrite = format!("UPDATE wallet_entries SET amount_cents = 1 WHERE tenant = '{tenant}'");
    let db = sea_orm::Database::connect(platform.settings.database.url.as_deref().unwrap()).await.unwrap();
    let refused = sea_orm::ConnectionTrait::execute_unprepared(&db, &rewrite).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("append-only")));
    db.close().await.unwrap();
    platform.stop().await;
}

#[tokio::test]
async fn an_unpaid_ride_is_collected_before_the_next_and_the_organisations_customers_are_its_own() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let operator = Operator { platform: &platform, admin, fleet: Uuid::now_v7() };
    // A minute costs more than the wallet holds.
    let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 5_000 });
    operator.expect(200, "PUT", "/pricing", Some(plan)).await;
    let vehicle = operator.expect(201, "POST", "/vehicles", Some(json!({ "vin": "OWE1" }))).await["id"].clone();
    let customer = operator.expect(201, "POST", "/customers", Some(json!({ "name": "Owes" }))).await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    let wallet = format!("/customers/{customer_id}/wallet");
    let entry = |action: &str, amount: i64| json!({ "action": action, "amount_cents": amount, "description": "x" });

    // A refused first entry opens no wallet.
    operator.refused(402, "INSUFFICIENT_FUNDS", "POST", &wallet, Some(entry("debit", 10))).await;
    assert_eq!(operator.expect(200, "GET", &wallet, None).await["currency"], Value::Null);
    let overdraft = format!("{wallet}/overdraft");
    operator.refused(409, "CONFLICT", "PUT", &overdraft, Some(json!({ "overdraft_limit_cents": 100 }))).await;
    operator.expect(201, "POST", &wallet, Some(entry("credit", 150))).await;

    // The ride costs 5,100; the wallet has 150: it ends owed.
    let start = json!({ "customer_id": customer_id, "vehicle_id": vehicle });
    let ride = operator.expect(201, "POST", "/rides", Some(start.clone())).await;
    let ride_id = ride["id"].as_str().unwrap().to_owned();
    // The operator marks the vehicle available mid-ride: the ride still holds it.
    let other = operator.expect(201, "POST", "/customers", Some(json!({ "name": "Other" }))).await;
    operator
        .expect(
            201,
            "POST",
            &format!("/customers/{}/wallet", other["id"].as_str().unwrap()),
            Some(entry("credit", 500)),
        )
        .await;
    operator
        .expect(
            200,
            "PATCH",
            &format!("/vehicles/{}", vehicle.as_str().unwrap()),
            Some(json!({ "status": "available" })),
        )
        .await;
    let taken = json!({ "customer_id": other["id"], "vehicle_id": vehicle });
    operator.refused(409, "VEHICLE_UNAVAILABLE", "POST", "/rides", Some(taken)).await;
    let end = json!({ "end_latitude": 52.0, "end_longitude": 13.0 });
    let ended = operator.expect(200, "POST", &format!("/rides/{ride_id}/end"), Some(end)).await;
    assert_eq!(
        (ended["payment_status"].clone(), ended["pricing"]["total_cents"].clone()),
        (json!("failed"), json!(5_100))
    );
    assert_eq!(operator.balance(&customer_id).await, 150, "nothing posted for a charge the wallet cannot cover");

    // No second ride while the first is owed; topped up, the next start collects it first.
    operator.refused(402, "INSUFFICIENT_FUNDS", "POST", "/rides", Some(start.clone())).await;
    operator.expect(201, "POST", &wallet, Some(entry("credit", 5_200))).await;
    let second = operator.expect(201, "POST", "/rides", Some(start)).await;
    assert_eq!(second["status"], "active");
    let first = operator.expect(200, "GET", &format!("/rides/{ride_id}"), None).await;
    assert_eq!(first["payment_status"], "paid", "{first}");
    assert!(first["charge_entry_id"].is_string());
    assert_eq!(operator.balance(&customer_id).await, 150 + 5_200 - 5_100);

    // The organisation's own customers (no subaccount) are seen by a fleet's key but changed
    // only by organisation-wide ones.
    let (status, own, _) =
        platform.call(&operator.admin, "POST", "/customers", Some(json!({ "name": "Shared" }))).await;
    assert_eq!((status, own["data"]["subaccount_id"].clone()), (201, Value::Null), "{own}");
    let own_id = own["data"]["id"].as_str().unwrap().to_owned();
    let fleet_key = platform
        .create_key(
            &operator.admin,
            json!({ "name": "fleet", "bundle": "ALL_ACCESS", "scope": "subaccount", "subaccount_id": operator.fleet }),
        )
        .await
        .1;
    assert_eq!(platform.call(&fleet_key, "GET", &format!("/customers/{own_id}"), None).await.0, 200);
    for (method, path, body) in [
        ("POST", format!("/customers/{own_id}/block"), json!({ "reason": "x" })),
        ("PATCH", format!("/customers/{own_id}"), json!({ "name": "Mine" })),
        ("POST", format!("/customers/{own_id}/wallet"), entry("credit", 1)),
    ] {
        let (status, body, _) = platform.call(&fleet_key, method, &path, Some(body)).await;
        assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{method} {path}: {body}");
    }
    platform.stop().await;
}
