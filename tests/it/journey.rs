//! The mobile app's whole journey (EVM seed), in one test through real HTTP, RabbitMQ, NATS and
//! PostgreSQL: a phone signs in, finds a charger in a box, charges on it (the charger simulator
//! speaking for the charger) while `CHARGING` arrives on its own subject, finishes, tops up
//! through QPay (`REPLENISHMENT`), pays one purchase from the wallet and another through QPay
//! (`PAYMENT`), and the balance is exact to the minor unit; a second user saw none of it.

use std::sync::Arc;
use std::time::Duration;

use bus::nats::NatsConnection;
use bus::nats::accounts::Permissions;
use futures_util::StreamExt;
use schemas::TenantId;
use serde_json::{Value, json};
use uuid::Uuid;
use voltbus::charger_simulator::Behaviour;

use crate::chargers::by_location;
use crate::charging::{App, next};
use crate::mobile::with_mobile_nats_and;
use crate::partner::Platform;
use crate::replenish::{Qpay, qpay, with_qpay};
use crate::support::request;

/// Ulaanbaatar, where the near charger stands.
const AROUND_ULAANBAATAR: [f64; 4] = [106.5, 47.5, 107.5, 48.5];

async fn register(platform: &Platform, admin: &str, number: &str, location: [f64; 2]) -> Uuid {
    let body =
        json!({ "device_number": number, "location": location, "price": 450, "waiting_price": 50, "currency": "MNT" });
    let (status, created, _) = platform.call(admin, "POST", "/chargers", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_str().unwrap().parse().unwrap()
}

/// The chargers the app finds around Ulaanbaatar once `number` is `state` there.
async fn found_when(app: &App<'_>, platform: &Platform, number: &str, state: &str) -> Value {
    let token = app.token();
    for _ in 0..100 {
        let (status, found) = by_location(platform, token, AROUND_ULAANBAATAR).await;
        assert_eq!(status, 200, "{found}");
        if found.as_array().unwrap().iter().any(|c| c["deviceNumber"] == number && c["state"] == state) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{number} never {state}");
}

/// Charges on `charger` until the app has heard at least three `CHARGING` messages with energy
/// flowing, then finishes: the purchase and its amount, as the session's last message says.
async fn charge(app: &App<'_>, channel: &mut async_nats::Subscriber, charger: Uuid) -> (String, i64) {
    let (status, body) = app.post(&format!("/devices/{charger}/start")).await;
    assert_eq!(status, 200, "{body}");
    let mut energies = Vec::new();
    while energies.len() < 3 || energies.last() == Some(&0.0) {
        let progress = next(channel).await;
        assert_eq!(progress["currency"], "MNT", "{progress}");
        energies.push(progress["energy"].as_f64().unwrap());
    }
    assert!(energies.windows(2).all(|w| w[0] <= w[1]), "the energy went back: {energies:?}");
    let (status, finished) = app.post(&format!("/devices/{charger}/finish")).await;
    assert_eq!(status, 200, "{finished}");
    let purchase = finished["id"].as_str().unwrap().to_owned();
    loop {
        let progress = next(channel).await;
        if progress["purchaseId"] == purchase.as_str() {
            let amount = progress["amount"].as_i64().unwrap();
            assert!(amount > 0, "{progress}");
            return (purchase, amount);
        }
    }
}

#[tokio::test]
async fn a_phone_signs_in_charges_tops_up_and_pays_by_wallet_and_by_qpay_and_nobody_else_hears_it() {
    let state = Arc::new(Qpay::default());
    let provider = qpay(Arc::clone(&state)).await;
    let (accounts, server, platform) = with_mobile_nats_and(with_qpay(provider)).await;
    let (tenant, admin) = platform.organisation().await;
    let near = register(&platform, &admin, "UB-101", [106.91, 47.92]).await;
    let far = register(&platform, &admin, "PAR-1", [2.35, 48.85]).await;
    // The chargers, played by the simulator with its own NATS credentials: 20 Wh every 300 ms.
    let device = accounts.user("chargers", &Permissions::All, None).unwrap();
    let nats = NatsConnection::connect_with(&server.url(), "simulator", Some(device.creds_file())).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let behaviour = Behaviour { every: Duration::from_millis(300), power: 240_000.0 };
    let simulator = tokio::spawn(voltbus::charger_simulator::run(
        nats,
        TenantId::new(&tenant).unwrap(),
        vec![near, far],
        behaviour,
        async move {
            let _ = stopped.await;
        },
    ));

    let alice = App::sign_in(&platform, &tenant, "+97686661488").await;
    let bob = App::sign_in(&platform, &tenant, "+97699112233").await;
    let mut charging = alice.charging(&server).await;
    let mut payments = alice.channel(&server, "PAYMENT").await;
    let mut replenishments = alice.channel(&server, "REPLENISHMENT").await;
    let mut bob_heard = bob.channel(&server, ">").await;

    // The box holds the near charger only, idle, with the seed's fields.
    let found = found_when(&alice, &platform, "UB-101", "Idle").await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["_id"], json!(near), "{found}");
    assert_eq!((&found[0]["price"], &found[0]["waitingPrice"]), (&json!(450), &json!(50)), "{found}");
    assert_eq!(found[0]["location"], json!([106.91, 47.92]), "{found}");

    // First session, then a top-up through QPay of 100 MNT (10,000 minor units).
    let (first, first_amount) = charge(&alice, &mut charging, near).await;
    let (status, body) =
        alice.call("POST", "/customer/replenish", Some(json!({ "amount": 10_000, "option": "QPAY" }))).await;
    assert_eq!(status, 200, "{body}");
    let top_up = body["invoiceId"].as_str().unwrap().to_owned();
    state.paid.lock().unwrap().insert("qp-1".into(), 100.0);
    let callback = format!("/api/v1/payments/qpay/callback?invoice={top_up}");
    assert_eq!(request(platform.addr(), "GET", &callback, &[], None).await.0, 200);
    assert_eq!(next(&mut replenishments).await, json!({ "status": "success", "amount": 10_000, "currency": "MNT" }));
    let (_, polled) = alice.call("POST", "/customer/replenishment", Some(json!({ "invoiceId": top_up }))).await;
    assert_eq!(polled, json!({ "status": "success", "amount": 10_000 }));

    // The first purchase from the wallet.
    let (status, paid) = alice.call("POST", &format!("/purchases/{first}/pay"), Some(json!({ "option": "EVM" }))).await;
    let balance = 10_000 - first_amount;
    assert_eq!((status, &paid["newBalance"]), (200, &json!(balance)), "{paid}");
    assert_eq!(next(&mut payments).await, json!({ "status": "success", "amount": first_amount, "currency": "MNT" }));

    // A second session, paid through QPay (whole MNT, rounded up), leaves the wallet alone.
    found_when(&alice, &platform, "UB-101", "Idle").await;
    let (second, second_amount) = charge(&alice, &mut charging, near).await;
    let (status, body) =
        alice.call("POST", &format!("/purchases/{second}/pay"), Some(json!({ "option": "QPAY" }))).await;
    assert_eq!((status, &body["url"]), (200, &json!("https://s.qpay.mn/qp-2")), "{body}");
    let whole = state.invoices.lock().unwrap()["qp-2"]["amount"].as_f64().unwrap();
    assert_eq!(whole, (second_amount as f64 / 100.0).ceil(), "QPay invoiced whole MNT");
    state.paid.lock().unwrap().insert("qp-2".into(), whole);
    let callback = format!("/api/v1/payments/qpay/callback?invoice={}", body["invoiceId"].as_str().unwrap());
    assert_eq!(request(platform.addr(), "GET", &callback, &[], None).await.0, 200);
    assert_eq!(next(&mut payments).await, json!({ "status": "success", "amount": second_amount, "currency": "MNT" }));

    // The balance is exact, in the profile and in the ledger; the history holds both, paid.
    let (_, me) = alice.post("/user/me").await;
    assert_eq!(me["profile"]["balance"], json!(balance), "{me}");
    let customer = alice.nats["topic"].as_str().unwrap().rsplit('.').next().unwrap().to_owned();
    let ledger = platform
        .sql(&format!(
            "SELECT balance_cents FROM wallet_entries WHERE customer_id = '{customer}' ORDER BY seq DESC LIMIT 1"
        ))
        .await;
    assert_eq!(ledger[0].try_get::<i64>("", "balance_cents").unwrap(), balance);
    let (_, history) = alice.call("GET", "/purchases?page=1&page-size=10", None).await;
    assert_eq!(history["total"], 2, "{history}");
    for (item, (id, amount)) in
        history["items"].as_array().unwrap().iter().zip([(&second, second_amount), (&first, first_amount)])
    {
        assert_eq!(
            (&item["_id"], &item["amount"], &item["status"]),
            (&json!(id), &json!(amount), &json!("success")),
            "{history}"
        );
    }

    // Bob heard nothing on his whole subject tree, owns nothing, and his balance is untouched.
    assert!(tokio::time::timeout(Duration::from_millis(500), bob_heard.next()).await.is_err(), "bob heard alice");
    let (_, theirs) = bob.call("GET", "/purchases", None).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let (_, me) = bob.post("/user/me").await;
    assert_eq!((&me["profile"]["balance"], &me["device"]), (&json!(0), &Value::Null), "{me}");

    let _ = stop.send(());
    simulator.await.unwrap().unwrap();
    platform.stop().await;
}
