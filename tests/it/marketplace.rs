//! The Etvas marketplace callback end to end: the seed's own request bodies posted to the partner
//! API, answered through the `marketplace` consumers on PostgreSQL and RabbitMQ with the id
//! mappings the seed shows; its refusals; and one organisation's mappings out of another's reach.

use serde_json::{Value, json};

use crate::partner::{Platform, error_code};

const USER: &str = "52f3d719-a192-4153-a05c-2b6bcc26c839";
const PRODUCT: &str = "ecc8f6f0-aef2-444d-9a6d-f49f6678c9c6";
/// The seed gives `user.create` and `product.purchase` this same event id.
const FIRST_EVENT: &str = "5fa30c48-7c7f-4440-bbc6-fdd927e7dc48";

/// The seed's User Created request.
fn user_create() -> Value {
    json!({
      "event": { "id": FIRST_EVENT, "type": "user.create", "timestamp": 19786584376u64 },
      "user": {
        "id": USER,
        "partnerId": null,
        "auth": { "token": "378aee42-49a8-41ef-acdb-52d1259814de", "expires": 2086584376 }
      },
      "data": {
        "user": {
          "salutation": "Mr.", "firstName": "john", "lastName": "Doe", "email": "john@doe.com",
          "phone": "+1303500600", "dateOfBirth": "1990-12-21", "address1": "2698 Sundown Lane",
          "address2": "Ap. 255", "city": "Berlin", "region/state": "Brandenburg", "country": "Germany",
          "postalCode": "10101"
        },
        "webIdentity": { "status": "verified", "verificationId": "450a936a-aa4a-4d3d-a3dd-333d73c8ba99" }
      }
    })
}

/// The seed's product request of `event_type`, naming our ids where we gave them.
fn product_event(event_type: &str, event_id: &str, user_partner_id: &str, product_partner_id: Option<&str>) -> Value {
    json!({
      "event": { "id": event_id, "type": event_type, "timestamp": 19786584376u64 },
      "user": {
        "id": USER,
        "partnerId": user_partner_id,
        "auth": { "token": "378aee42-49a8-41ef-acdb-52d1259814de", "expires": 2086584376 }
      },
      "data": {
        "product": {
          "id": PRODUCT, "partnerId": product_partner_id, "name": "SicurNET", "price": 123.45,
          "priceType": "SUBSCRIPTION", "priceInterval": "MONTHLY"
        }
      }
    })
}

async fn customers_key(platform: &Platform, admin: &str) -> String {
    platform.create_key(admin, json!({ "name": "etvas", "permissions": ["customers:write"] })).await.1
}

async fn purchase_status(platform: &Platform, tenant: &str) -> Vec<(String, i64, String)> {
    let rows = platform
        .sql(&format!(
            "SELECT status, price, currency FROM marketplace_purchases WHERE tenant = '{tenant}' ORDER BY number"
        ))
        .await;
    rows.iter()
        .map(|r| {
            (r.try_get("", "status").unwrap(), r.try_get("", "price").unwrap(), r.try_get("", "currency").unwrap())
        })
        .collect()
}

#[tokio::test]
async fn etvas_events_map_users_and_purchases_as_the_seed_shows() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let key = customers_key(&platform, &admin).await;

    // User Created: the seed's answer, with our number for the user.
    let (status, created, _) = platform.call(&key, "POST", "/etvas-events", Some(user_create())).await;
    assert_eq!(status, 200, "{created}");
    let expected = json!({
        "status": 200,
        "event": { "id": FIRST_EVENT },
        "data": { "user": { "id": USER, "partnerId": "u-000001" } }
    });
    assert_eq!(created, expected);
    // The same event again is the same answer and no second user.
    let (status, again, _) = platform.call(&key, "POST", "/etvas-events", Some(user_create())).await;
    assert_eq!((status, &again), (200, &expected));
    let users = platform.sql(&format!("SELECT number FROM marketplace_users WHERE tenant = '{tenant}'")).await;
    assert_eq!(users.len(), 1);

    // Product Purchased, with the same event id as the seed gives it: its own event all the same.
    let purchase = product_event("product.purchase", FIRST_EVENT, "u-000001", None);
    let (status, bought, _) = platform.call(&key, "POST", "/etvas-events", Some(purchase.clone())).await;
    assert_eq!(status, 200, "{bought}");
    let mapped = json!({
        "status": 200,
        "event": { "id": FIRST_EVENT },
        "user": { "id": USER, "partnerId": "u-000001" },
        "data": { "product": { "id": PRODUCT, "partnerId": "p-000001" } }
    });
    assert_eq!(bought, mapped);
    assert_eq!(purchase_status(&platform, &tenant).await, [("active".into(), 12345, "EUR".into())]);
    assert_eq!(platform.call(&key, "POST", "/etvas-events", Some(purchase)).await.1, mapped);

    // Payment Failed, Payment Resumed, Product Canceled: the standing follows, the answer maps.
    let steps = [
        ("product.suspend", "6fc09149-3102-4f8a-9cc0-77cddfb5d700", "suspended"),
        ("product.resume", "10276225-6741-4abc-9b06-fdcedace8005", "active"),
        ("product.cancel", "bd6016af-ffe8-422d-9419-7a71d890e002", "canceled"),
    ];
    for (event_type, event_id, standing) in steps {
        let body = product_event(event_type, event_id, "u-000001", Some("p-000001"));
        let (status, answer, _) = platform.call(&key, "POST", "/etvas-events", Some(body)).await;
        assert_eq!(status, 200, "{event_type}: {answer}");
        assert_eq!(answer["event"]["id"], event_id);
        assert_eq!((&answer["user"], &answer["data"]), (&mapped["user"], &mapped["data"]));
        assert_eq!(purchase_status(&platform, &tenant).await[0].0, standing, "after {event_type}");
    }
    // A canceled purchase does not resume; buying again starts it under the same number.
    let late = product_event("product.resume", "4e0b2d0c-0d4c-4f5e-8a36-0c7f1e9b2a11", "u-000001", Some("p-000001"));
    let (status, refused, _) = platform.call(&key, "POST", "/etvas-events", Some(late)).await;
    assert_eq!((status, error_code(&refused)), (409, "CONFLICT"), "{refused}");
    let rebuy = product_event("product.purchase", "a1d3f9e2-51c4-4c55-9d7e-3f1f0e6b7c21", "u-000001", None);
    assert_eq!(platform.call(&key, "POST", "/etvas-events", Some(rebuy)).await.1["data"], mapped["data"]);
    assert_eq!(purchase_status(&platform, &tenant).await[0].0, "active");

    // User Profile Updated replaces the profile and answers like User Created.
    let mut update = user_create();
    update["event"] = json!({ "id": "2a689b77-c2d5-4152-a417-650f717711b9", "type": "user.update", "timestamp": 1 });
    update["user"]["partnerId"] = json!("u-000001");
    update["data"]["user"]["firstName"] = json!("Johnny");
    let (status, updated, _) = platform.call(&key, "POST", "/etvas-events", Some(update)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"], expected["data"]);
    let profile = platform.sql(&format!("SELECT profile FROM marketplace_users WHERE tenant = '{tenant}'")).await;
    let profile: Value = serde_json::from_str(&profile[0].try_get::<String>("", "profile").unwrap()).unwrap();
    assert_eq!(
        (profile["firstName"].as_str(), profile["region/state"].as_str()),
        (Some("Johnny"), Some("Brandenburg"))
    );
    // The user is one of the organisation's customers, changed along, each change announced.
    let customers = platform
        .sql(&format!("SELECT name, external_ref, subaccount_id FROM customers WHERE tenant = '{tenant}'"))
        .await;
    assert_eq!(customers.len(), 1);
    let name: String = customers[0].try_get("", "name").unwrap();
    assert!(name.starts_with("Johnny "), "{name}");
    assert_eq!(customers[0].try_get::<String>("", "external_ref").unwrap(), format!("etvas:{USER}"));
    assert_eq!(customers[0].try_get::<Option<uuid::Uuid>>("", "subaccount_id").unwrap(), None);
    let announced = platform
        .sql(&format!(
            "SELECT type_name FROM outbox WHERE tenant = '{tenant}' AND transport = 'amqp' AND type_name LIKE 'customer.%' ORDER BY seq"
        ))
        .await;
    let announced: Vec<String> = announced.iter().map(|r| r.try_get("", "type_name").unwrap()).collect();
    assert_eq!(announced, ["customer.created", "customer.updated"]);

    // User Deleted erases the person here (as a marketplace user and as a customer, who is blocked)
    // and keeps the money history; the same event again changes nothing more.
    let customer: uuid::Uuid =
        platform.sql(&format!("SELECT customer_id FROM customers WHERE tenant = '{tenant}'")).await[0]
            .try_get("", "customer_id")
            .unwrap();
    let (_, admin_of_customers) = platform
        .create_key(&admin, json!({ "name": "wallets", "permissions": ["wallet:write", "customers:read"] }))
        .await;
    // Etvas collects its users' payments: our wallet is closed to them (the seed), so their money
    // history here is their purchases.
    let credit = json!({ "action": "credit", "amount_cents": 700, "currency": "EUR", "description": "top-up" });
    let (status, credited, _) =
        platform.call(&admin_of_customers, "POST", &format!("/customers/{customer}/wallet"), Some(credit)).await;
    assert_eq!((status, error_code(&credited)), (409, "CONFLICT"), "{credited}");
    let purchases = purchase_status(&platform, &tenant).await;
    let delete = json!({
        "event": { "id": "9d0c2f9e-7b1a-4c38-9a57-3f8e2b1d6c40", "type": "user.delete", "timestamp": 2 },
        "user": { "id": USER, "partnerId": "u-000001" }
    });
    for _ in 0..2 {
        let (status, deleted, _) = platform.call(&key, "POST", "/etvas-events", Some(delete.clone())).await;
        assert_eq!((status, &deleted["data"]["user"]["partnerId"]), (200, &json!("u-000001")), "{deleted}");
    }
    let (_, read, _) = platform.call(&admin_of_customers, "GET", &format!("/customers/{customer}"), None).await;
    let read = &read["data"];
    assert!(read["email"].is_null() && read["name"].is_null() && read["phone"].is_null(), "{read}");
    assert_eq!(read["blocked"], true, "{read}");
    let profile = platform.sql(&format!("SELECT profile FROM marketplace_users WHERE tenant = '{tenant}'")).await;
    let profile: Value = serde_json::from_str(&profile[0].try_get::<String>("", "profile").unwrap()).unwrap();
    assert!(profile.as_object().unwrap().values().all(Value::is_null), "{profile}");
    assert_eq!(purchase_status(&platform, &tenant).await, purchases, "the money history stays");
    let announced = platform
        .sql(&format!(
            "SELECT type_name FROM outbox WHERE tenant = '{tenant}' AND transport = 'amqp' AND type_name LIKE 'customer.%' ORDER BY seq"
        ))
        .await;
    let announced: Vec<String> = announced.iter().map(|r| r.try_get("", "type_name").unwrap()).collect();
    assert_eq!(announced, ["customer.created", "customer.updated", "customer.updated", "customer.blocked"]);

    // Every change was announced, once: created, updated and deleted; bought, suspended, resumed,
    // canceled, bought again.
    let announced = platform
        .sql(&format!(
            "SELECT type_name FROM outbox WHERE tenant = '{tenant}' AND type_name LIKE 'marketplace_%' ORDER BY seq"
        ))
        .await;
    let announced: Vec<String> = announced.iter().map(|r| r.try_get("", "type_name").unwrap()).collect();
    let (user, purchase) = ("marketplace_user.changed", "marketplace_purchase.changed");
    assert_eq!(announced, [user, purchase, purchase, purchase, purchase, purchase, user, user]);
    platform.stop().await;
}

#[tokio::test]
async fn etvas_callback_refuses_what_it_cannot_take_and_keeps_organisations_apart() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let key = customers_key(&platform, &admin).await;
    let call = |body: Value| platform.call(&key, "POST", "/etvas-events", Some(body));

    // Authenticated, and only with customers:write.
    let (_, reader) = platform.create_key(&admin, json!({ "name": "reader", "permissions": ["customers:read"] })).await;
    let refused = platform.call(&reader, "POST", "/etvas-events", Some(user_create())).await;
    assert_eq!((refused.0, error_code(&refused.1)), (403, "FORBIDDEN"));
    let refused =
        platform.call("vb_pk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "POST", "/etvas-events", Some(user_create())).await;
    assert_eq!((refused.0, error_code(&refused.1)), (401, "UNAUTHORIZED"));

    // An event type the seed does not define, none at all, a body of the wrong shape.
    let mut unknown = user_create();
    unknown["event"]["type"] = json!("user.merge");
    let (status, body, _) = call(unknown).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "{body}");
    assert_eq!(body["error"]["details"]["field"], "event.type");
    assert!(body["error"]["message"].as_str().unwrap().contains("`user.merge`"), "{body}");
    assert!(body["error"]["details"]["known"].as_array().unwrap().contains(&json!("product.resume")));
    let (status, body, _) = call(json!({ "user": { "id": USER } })).await;
    assert_eq!((status, &body["error"]["details"]["field"]), (422, &json!("event.type")), "{body}");
    let mut bad_user = user_create();
    bad_user["user"]["id"] = json!("not-a-uuid");
    let (status, body, _) = call(bad_user).await;
    assert_eq!((status, &body["error"]["details"]["field"]), (422, &json!("user.id")), "{body}");
    let response = crate::support::request(
        platform.addr(),
        "POST",
        "/api/partner/v1/etvas-events",
        &[("x-partner-api-key", &key)],
        Some("{not json"),
    )
    .await;
    assert_eq!((response.0, error_code(&response.1)), (400, "VALIDATION_ERROR"));

    // Events about users and purchases never mapped, and ids that are not ours.
    let orphan = product_event("product.purchase", "0c5b9c2e-7f3a-4b8e-9d1c-2a6e5f4b3c21", "u-000001", None);
    let (status, body, _) = call(orphan).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
    assert_eq!(call(user_create()).await.0, 200);
    let cancel = product_event("product.cancel", "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "u-000001", None);
    assert_eq!(call(cancel).await.0, 404);
    let wrong_user = product_event("product.purchase", "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9", "u-999999", None);
    let (status, body, _) = call(wrong_user).await;
    assert_eq!((status, error_code(&body)), (409, "CONFLICT"), "{body}");
    let mut sub_cent = product_event("product.purchase", "2c3d4e5f-6071-4829-93a4-b5c6d7e8f901", "u-000001", None);
    sub_cent["data"]["product"]["price"] = json!(1.234);
    let (status, body, _) = call(sub_cent).await;
    assert_eq!((status, &body["error"]["details"]["field"]), (422, &json!("data.product.price")), "{body}");
    assert!(purchase_status(&platform, &tenant).await.is_empty(), "a refused event wrote a purchase");

    // Another organisation with the same marketplace user numbers its own, and cannot touch the
    // first one's purchase.
    let buy = product_event("product.purchase", "3d4e5f60-7182-4930-a4b5-c6d7e8f90a12", "u-000001", None);
    assert_eq!(call(buy).await.0, 200);
    let (other, other_admin) = platform.organisation().await;
    let other_key = customers_key(&platform, &other_admin).await;
    let cancel = product_event("product.cancel", "4e5f6071-8293-4a41-b5c6-d7e8f90a1b23", "u-000001", Some("p-000001"));
    let (status, body, _) = platform.call(&other_key, "POST", "/etvas-events", Some(cancel)).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
    let (status, theirs, _) = platform.call(&other_key, "POST", "/etvas-events", Some(user_create())).await;
    assert_eq!((status, &theirs["data"]["user"]["partnerId"]), (200, &json!("u-000001")));
    assert_eq!(purchase_status(&platform, &tenant).await, [("active".into(), 12345, "EUR".into())]);
    assert!(purchase_status(&platform, &other).await.is_empty());
    platform.stop().await;
}

/// The seed: Etvas is given a URL and sends no header of ours, so an integration's own URL takes
/// its events (its client secret in the URL, or as HTTP Basic); and the users Etvas brings pay
/// Etvas, so their rides are priced here and never charged to a wallet of ours.
#[tokio::test]
async fn etvas_calls_an_integration_url_without_a_key_and_its_users_pay_etvas_not_our_wallet() {
    use base64::Engine as _;
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let (_, client_id, secret) = crate::integrations::create(&platform, &admin, "ORGANIZATION_ACCESS", json!([])).await;
    let post = |path: String, headers: Vec<(&'static str, String)>, body: Value| {
        let addr = platform.addr();
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            crate::support::request(addr, "POST", &path, &headers, Some(&body.to_string())).await
        }
    };
    let basic = |id: &str, secret: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
    };

    // The secret URL, as the product's URL Etvas is given: the seed's answer.
    let secret_url = format!("/marketplace/{client_id}/{secret}/etvas-events");
    let (status, created, _) = post(secret_url.clone(), vec![], user_create()).await;
    assert_eq!((status, created["data"]["user"]["partnerId"].clone()), (200, json!("u-000001")), "{created}");
    // HTTP Basic at the integration's URL: the same event again, the same answer.
    let basic_url = format!("/marketplace/{client_id}/etvas-events");
    let (status, again, _) =
        post(basic_url.clone(), vec![("authorization", basic(&client_id, &secret))], user_create()).await;
    assert_eq!((status, &again), (200, &created));

    // Refused: no credentials, a wrong secret either way, another client's name in Basic, and an
    // integration whose bundle may not change customers.
    let (status, refused, headers) = post(basic_url.clone(), vec![], user_create()).await;
    assert_eq!((status, error_code(&refused)), (401, "UNAUTHORIZED"), "{refused}");
    assert_eq!(headers["www-authenticate"], "Basic realm=\"etvas-events\"");
    // Its last character changed (to `x`, or to `y` when it was an `x`: CI once drew a secret
    // ending in `x`, and the "wrong" one was the right one).
    let swap = if secret.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{swap}", &secret[..secret.len() - 1]);
    let (status, _, _) = post(format!("/marketplace/{client_id}/{wrong}/etvas-events"), vec![], user_create()).await;
    assert_eq!(status, 401);
    let (status, _, _) =
        post(basic_url.clone(), vec![("authorization", basic(&client_id, &wrong))], user_create()).await;
    assert_eq!(status, 401);
    let (_, other_id, other_secret) = crate::integrations::create(&platform, &admin, "CLIENT_ACCESS", json!([])).await;
    let (status, _, _) =
        post(basic_url.clone(), vec![("authorization", basic(&other_id, &other_secret))], user_create()).await;
    assert_eq!(status, 401, "Basic must name the URL's client");
    let (status, refused, _) =
        post(format!("/marketplace/{other_id}/{other_secret}/etvas-events"), vec![], user_create()).await;
    assert_eq!((status, error_code(&refused)), (403, "FORBIDDEN"), "{refused}");

    // The user is a customer whose payments Etvas collects.
    let (_, customers, _) = platform.call(&admin, "GET", "/customers", None).await;
    let customer = customers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_ref"] == json!(format!("etvas:{USER}")))
        .unwrap_or_else(|| panic!("{customers}"))
        .clone();
    assert_eq!(customer["payments_collected_by"], "etvas", "{customer}");
    let customer_id = customer["id"].as_str().unwrap();

    // A ride with no wallet at all starts, ends priced, and is Etvas's to collect.
    let fleet = uuid::Uuid::now_v7();
    let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 30, "minimum_balance_cents": 500 });
    let (status, body, _) = platform.call_in(&admin, fleet, "PUT", "/pricing", Some(plan)).await;
    assert_eq!(status, 200, "{body}");
    let (_, vehicle, _) = platform.call_in(&admin, fleet, "POST", "/vehicles", Some(json!({ "vin": "ETVAS1" }))).await;
    let start = json!({ "customer_id": customer_id, "vehicle_id": vehicle["data"]["id"] });
    let (status, ride, _) = platform.call_in(&admin, fleet, "POST", "/rides", Some(start)).await;
    assert_eq!(status, 201, "{ride}");
    let ride_id = ride["data"]["id"].as_str().unwrap();
    let end = json!({ "end_latitude": 52.0, "end_longitude": 13.0 });
    let (status, ended, _) = platform.call_in(&admin, fleet, "POST", &format!("/rides/{ride_id}/end"), Some(end)).await;
    assert_eq!(status, 200, "{ended}");
    let ended = &ended["data"];
    assert_eq!(ended["payment_status"], "collected_by_marketplace", "{ended}");
    assert_eq!(ended["pricing"]["total_cents"], 130, "{ended}");
    assert_eq!(ended["charge_entry_id"], Value::Null);

    // Every payment function of ours is off for them: no wallet entry, no wallet.
    let wallet = format!("/customers/{customer_id}/wallet");
    let credit = json!({ "action": "credit", "amount_cents": 1_000, "currency": "EUR", "description": "top-up" });
    let (status, refused, _) = platform.call(&admin, "POST", &wallet, Some(credit)).await;
    assert_eq!((status, error_code(&refused)), (409, "CONFLICT"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("collected by etvas"), "{refused}");
    let (_, wallet, _) = platform.call_in(&admin, fleet, "GET", &wallet, None).await;
    assert_eq!(wallet["data"]["currency"], Value::Null, "{wallet}");
    // The ride.ended event says who collects.
    let rows = platform
        .sql(&format!("SELECT payload FROM outbox WHERE type_name = 'ride.ended' AND payload LIKE '%{ride_id}%'"))
        .await;
    let payload: String = rows[0].try_get("", "payload").unwrap();
    assert!(payload.contains("\"payment_status\":\"collected_by_marketplace\""), "{payload}");
}
