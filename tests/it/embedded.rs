//! The embedded default: no services configured, everything in process.

use crate::support::{embedded_settings, engine, get_json};

#[tokio::test]
async fn health_reports_embedded_engines() {
    let running = voltbus::start(embedded_settings()).await.unwrap();
    let (status, body, headers) = get_json(running.addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(engine(&body, "database")["kind"], "sqlite");
    assert_eq!(engine(&body, "amqp")["kind"], "embedded");
    assert_eq!(engine(&body, "nats")["kind"], "embedded");
    for role in ["database", "amqp", "nats"] {
        assert_eq!(engine(&body, role)["state"], "up");
    }
    assert!(headers.get("x-request-id").unwrap().to_str().unwrap().starts_with("req_"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_get_the_error_envelope() {
    let running = voltbus::start(embedded_settings()).await.unwrap();
    let (status, body, headers) = get_json(running.addr, "/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["meta"]["request_id"].as_str().unwrap(), headers.get("x-request-id").unwrap().to_str().unwrap());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn embedded_database_survives_a_restart() {
    let settings = embedded_settings();
    let first = voltbus::start(settings.clone()).await.unwrap();
    first.stop().await.unwrap();
    assert!(settings.data_dir.join("voltbus.db").exists());
    // Migrations already applied: a second start on the same file must simply work.
    let second = voltbus::start(settings).await.unwrap();
    let (status, _, _) = get_json(second.addr, "/health").await;
    assert_eq!(status, 200);
    second.stop().await.unwrap();
}

/// The partner API on the embedded default: keys through the in-process bus, stored in SQLite.
#[tokio::test]
async fn partner_keys_work_on_the_embedded_default() {
    use crate::support::request;
    use serde_json::json;

    let settings = embedded_settings();
    let (admin, _) = voltbus::create_admin_key(&settings, "acme", "admin").await.unwrap();
    let running = voltbus::start(settings).await.unwrap();
    let addr = running.addr;
    let body = json!({ "name": "reader", "bundle": "CLIENT_ACCESS" }).to_string();
    let (status, created, _) = request(
        addr,
        "POST",
        "/api/partner/v1/api-keys",
        &[("x-partner-api-key", &admin), ("idempotency-key", "k1")],
        Some(&body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, me, _) = request(addr, "GET", "/api/partner/v1/me", &[("x-partner-api-key", &key)], None).await;
    assert_eq!((status, me["data"]["organization_id"].clone()), (200, json!("acme")), "{me}");
    assert_eq!(me["data"]["key"]["permissions"].as_array().unwrap().len(), 6);
    let mut logged = serde_json::Value::Null;
    for _ in 0..100 {
        logged = request(
            addr,
            "GET",
            &format!("/api/partner/v1/api-keys/{id}/requests"),
            &[("x-partner-api-key", &admin)],
            None,
        )
        .await
        .1;
        if logged["pagination"]["total"] == 1 && logged["data"].as_array().is_some_and(|d| d.len() == 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(logged["data"][0]["route"], "/api/partner/v1/me", "{logged}");
    running.stop().await.unwrap();
}

/// The fleet on the embedded default: vehicles through the in-process bus into SQLite, and the
/// list's filters in SQLite's dialect.
#[tokio::test]
async fn vehicles_work_on_the_embedded_default() {
    use crate::support::request;
    use serde_json::json;

    let settings = embedded_settings();
    if std::env::var_os("RUST_LOG").is_some() {
        voltbus::telemetry::init(&settings.log);
    }
    let (admin, _) = voltbus::create_admin_key(&settings, "acme", "admin").await.unwrap();
    let database_url = settings.database_url();
    let running = voltbus::start(settings).await.unwrap();
    let addr = running.addr;
    let fleet = uuid::Uuid::now_v7();
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let admin = admin.clone();
        async move {
            let body = body.map(|b| b.to_string());
            request(addr, method, &format!("/api/partner/v1{path}"), &[("x-partner-api-key", &admin)], body.as_deref())
                .await
        }
    };
    for (vin, number, color) in [("VIN1", "V1", "red"), ("VIN2", "V2", "blue")] {
        let body = json!({ "vin": vin, "vehicle_number": number, "subaccount_id": fleet, "custom_fields": { "color": color } });
        let (status, created, _) = call("POST", "/vehicles".into(), Some(body)).await;
        assert_eq!(status, 201, "{created}");
    }
    let (status, taken, _) =
        call("POST", "/vehicles".into(), Some(json!({ "vin": "VIN1", "subaccount_id": fleet }))).await;
    assert_eq!(status, 409, "{taken}");
    let numbers = |body: serde_json::Value| {
        body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|v| v["vehicle_number"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(call("GET", "/vehicles?search=vin%32".into(), None).await.1), ["V2"]);
    assert_eq!(numbers(call("GET", "/vehicles?custom_field=color:red".into(), None).await.1), ["V1"]);
    let first = call("GET", "/vehicles?search=V1".into(), None).await.1["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, patched, _) =
        call("PATCH", format!("/vehicles/{first}"), Some(json!({ "status": "maintenance" }))).await;
    assert_eq!((status, patched["data"]["status"].clone()), (200, json!("maintenance")), "{patched}");
    assert_eq!(numbers(call("GET", "/vehicles?status=maintenance".into(), None).await.1), ["V1"]);
    // Every event leaves the outbox for the embedded transport at once (the relay once held
    // SQLite's only connection while publishing into it, and each event stalled until the pool
    // gave up, 5 s later).
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        if bus::outbox::backlog(&db).await.unwrap() == 0 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "events stuck in the outbox");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    running.stop().await.unwrap();
}

/// Rides and wallets on the embedded default: SQLite has no row locks, its one writer at a time
/// serialises the ledger instead; a ride without odometer readings is charged the straight line.
#[tokio::test]
async fn rides_and_wallets_work_on_the_embedded_default() {
    use crate::support::request;
    use serde_json::{Value, json};

    let settings = embedded_settings();
    let (admin, _) = voltbus::create_admin_key(&settings, "acme", "admin").await.unwrap();
    let running = voltbus::start(settings).await.unwrap();
    let addr = running.addr;
    let fleet = uuid::Uuid::now_v7().to_string();
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (admin, fleet) = (admin.clone(), fleet.clone());
        async move {
            let body = body.map(|b| b.to_string());
            let headers = [("x-partner-api-key", admin.as_str()), ("x-subaccount-id", fleet.as_str())];
            let (status, answer, _) =
                request(addr, method, &format!("/api/partner/v1{path}"), &headers, body.as_deref()).await;
            (status, answer)
        }
    };
    let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 20, "per_km_cents": 100 });
    assert_eq!(call("PUT", "/pricing".into(), Some(plan)).await.0, 200);
    let vehicle = call("POST", "/vehicles".into(), Some(json!({ "vin": "E1" }))).await.1["data"]["id"].clone();
    let customer = call("POST", "/customers".into(), Some(json!({ "email": "e@example.com" }))).await.1;
    let customer = customer["data"]["id"].as_str().unwrap_or_else(|| panic!("{customer}")).to_owned();
    let wallet = format!("/customers/{customer}/wallet");
    let credit = json!({ "action": "credit", "amount_cents": 1_000, "description": "top-up" });
    assert_eq!(call("POST", wallet.clone(), Some(credit)).await.0, 201);
    let debit = json!({ "action": "debit", "amount_cents": 100, "description": "fee" });
    let debits =
        futures_util::future::join_all((0..12).map(|_| call("POST", wallet.clone(), Some(debit.clone())))).await;
    let statuses: Vec<u16> = debits.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{debits:?}");
    let top_up = json!({ "action": "credit", "amount_cents": 600, "description": "top-up" });
    assert_eq!(call("POST", wallet.clone(), Some(top_up)).await.0, 201);

    // 0.01° of latitude is 1,111.95 m: 1.11 at 1.00 a km, with the unlock fee and a minute.
    let start =
        json!({ "customer_id": customer, "vehicle_id": vehicle, "start_latitude": 52.0, "start_longitude": 13.0 });
    let (status, ride) = call("POST", "/rides".into(), Some(start)).await;
    assert_eq!(status, 201, "{ride}");
    let ride = ride["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(call("POST", format!("/rides/{ride}/pause"), None).await.0, 200);
    assert_eq!(call("POST", format!("/rides/{ride}/resume"), None).await.0, 200);
    let end = json!({ "end_latitude": 52.01, "end_longitude": 13.0 });
    let (status, ended) = call("POST", format!("/rides/{ride}/end"), Some(end.clone())).await;
    assert_eq!((status, ended["data"]["distance_m"].clone()), (200, json!(1_112)), "{ended}");
    assert_eq!(ended["data"]["pricing"]["total_cents"], 100 + 20 + 111, "{ended}");
    assert_eq!(call("POST", format!("/rides/{ride}/end"), Some(end)).await.0, 409);
    let balance = call("GET", wallet, None).await.1["data"]["balance_cents"].clone();
    assert_eq!(balance, json!(600 - 231));
    running.stop().await.unwrap();
}

/// The newcomer's first minute (`serve --simulate` with nothing configured): the simulated
/// vehicles, chargers and devices run in process over the embedded transport, through the same
/// ingest, charging and command paths as over NATS, and the summary counts telemetry, vehicle
/// commands and charging sessions besides rides and webhooks.
#[tokio::test]
async fn the_simulated_fleet_runs_whole_on_the_embedded_default() {
    use std::time::Duration;

    let mut settings = embedded_settings();
    settings.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    settings.mobile.dev_code = Some("0000".into());
    let running = voltbus::start(settings.clone()).await.unwrap();
    settings.http.bind = running.addr;
    let plan = voltbus::simulation::Plan {
        vehicles: 10,
        chargers: 2,
        rides_per_minute: 60.0,
        report_every: Duration::from_secs(1),
        ride_length: Duration::from_millis(1500),
        commands_per_minute: 60.0,
        duration: Some(Duration::from_secs(8)),
        progress: false,
    };
    let summary =
        voltbus::simulate(&settings, "demo", None, Some(&running), plan, std::future::pending()).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    // Every vehicle reported and every kind of work happened, none failed; how many of each in
    // 8 s is the machine's speed, not the platform's correctness (a starved machine made 45 of 80
    // reports in one full run and 3 vehicle commands with a command p50 of 1.4 s in another), so
    // no count beyond "some" is asserted.
    assert!(summary.states_published >= 10 && summary.states_failed == 0, "{summary:?}");
    assert!(summary.vehicle_commands_succeeded >= 1 && summary.vehicle_commands_failed.is_empty(), "{summary:?}");
    assert!(summary.charging_started >= 1 && summary.charging_finished >= 1, "{summary:?}");
    assert!(summary.rides_started >= 1 && summary.commands_failed.is_empty(), "{summary:?}");
    for event in ["vehicle.location_updated", "ride.started"] {
        assert!(summary.webhook_events.get(event).is_some_and(|n| *n > 0), "no {event}: {summary:?}");
    }
    // Commands to devices go to subjects no stream keeps: unrouted, which is no failure.
    let (_, metrics, _) = crate::support::request_bytes(running.addr, "GET", "/metrics", &[], None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    let embedded = |outcome: &str| {
        metrics.lines().any(|l| {
            l.starts_with("voltbus_messages_published_total")
                && l.contains(r#"transport="embedded""#)
                && l.contains(&format!(r#"outcome="{outcome}""#))
        })
    };
    assert!(embedded("unrouted") && !embedded("failed"), "{metrics}");
    running.stop().await.unwrap();
    // The chargers' sessions became purchases, none with negative energy. Whether one has energy
    // at all is a race here: a session lasts 3 s and the simulated charger reports its meter every
    // 3 s, so on a starved machine every session ended before its first report (seen in a full
    // run: [0.0, 0.0]). Pricing by energy is `charging.rs`'s, against the OCPP peer.
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(settings.database_url()).await.unwrap();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT energy_kwh FROM purchases".to_owned(),
        ))
        .await
        .unwrap();
    let energy: Vec<f64> = rows.iter().map(|r| r.try_get::<f64>("", "energy_kwh").unwrap()).collect();
    assert!(!energy.is_empty() && energy.iter().all(|kwh| *kwh >= 0.0), "{energy:?}");
    db.close().await.unwrap();
}
