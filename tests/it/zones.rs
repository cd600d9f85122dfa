//! Zones and vehicles nearby end to end: zones created, listed, replaced and deleted through the
//! partner API and the `zones` consumers; which zones hold a point, and which vehicles are near
//! one, answered from PostgreSQL right across the antimeridian and at the poles; and none of it
//! within another organisation's reach.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::partner::{Platform, error_code};

fn names(body: &Value) -> Vec<String> {
    let items = body["data"].as_array().unwrap_or_else(|| panic!("{body}"));
    items.iter().map(|z| z["name"].as_str().or(z["vehicle_number"].as_str()).unwrap().to_owned()).collect()
}

#[tokio::test]
async fn zones_hold_points_across_the_antimeridian_and_around_a_pole() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let fleet = Uuid::now_v7();
    let zone = |name: &str, kind: &str, polygon: Value| json!({ "name": name, "type": kind, "polygon": polygon, "subaccount_id": fleet });
    let mut ids = Vec::new();
    for body in [
        zone("Mitte", "parking", json!([[13.3, 52.4], [13.5, 52.4], [13.5, 52.6], [13.3, 52.6], [13.3, 52.4]])),
        zone("Fiji", "operating", json!([[179.0, -17.0], [-179.0, -17.0], [-179.0, -16.0], [179.0, -16.0]])),
        zone("Arctic", "slow", (0..12).map(|i| json!([-180.0 + 30.0 * f64::from(i), 85.0])).collect()),
    ] {
        let (status, created, _) = platform.call(&admin, "POST", "/zones", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    // Bad polygons name the field.
    for polygon in [json!([[13.3, 52.4], [13.5, 52.4]]), json!([[200.0, 52.4], [13.5, 52.4], [13.5, 52.6]])] {
        let (status, body, _) = platform.call(&admin, "POST", "/zones", Some(zone("bad", "parking", polygon))).await;
        assert_eq!((status, body["error"]["details"]["field"].clone()), (422, json!("polygon")), "{body}");
    }

    let reader = platform.create_key(&admin, json!({ "name": "r", "permissions": ["zones:read"] })).await.1;
    let get = |path: &str| {
        let (platform, reader, path) = (&platform, reader.clone(), path.to_owned());
        async move {
            let (status, body, _) = platform.call(&reader, "GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            names(&body)
        }
    };
    assert_eq!(get("/zones").await, ["Mitte", "Fiji", "Arctic"]);
    assert_eq!(get("/zones?type=parking").await, ["Mitte"]);
    assert_eq!(get("/zones/containing?lat=52.52&lng=13.405").await, ["Mitte"]);
    assert_eq!(get("/zones/containing?lat=-16.5&lng=179.9").await, ["Fiji"]);
    assert_eq!(get("/zones/containing?lat=-16.5&lng=-179.9").await, ["Fiji"]);
    assert_eq!(get("/zones/containing?lat=-16.5&lng=0").await, Vec::<String>::new());
    assert_eq!(get("/zones/containing?lat=89.5&lng=100").await, ["Arctic"]);
    assert_eq!(get("/zones/containing?lat=90&lng=0").await, ["Arctic"]);
    assert_eq!(get("/zones/containing?lat=80&lng=100").await, Vec::<String>::new());
    let (status, body, _) = platform.call(&reader, "GET", "/zones/containing?lat=91&lng=0", None).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"));

    // Only admins change zones; a replaced zone holds its new area.
    let moved = zone("Mitte", "no_parking", json!([[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1]]));
    let (status, _, _) = platform.call(&reader, "PUT", &format!("/zones/{}", ids[0]), Some(moved.clone())).await;
    assert_eq!(status, 403);
    let (status, replaced, _) = platform.call(&admin, "PUT", &format!("/zones/{}", ids[0]), Some(moved)).await;
    assert_eq!((status, replaced["data"]["type"].clone()), (200, json!("no_parking")), "{replaced}");
    assert_eq!(get("/zones/containing?lat=52.52&lng=13.405").await, Vec::<String>::new());
    assert_eq!(get("/zones/containing?lat=52.05&lng=13.05").await, ["Mitte"]);

    // Another organisation: nothing to see, change or delete.
    let (_, stranger) = platform.organisation().await;
    assert_eq!(platform.call(&stranger, "GET", "/zones", None).await.1["data"], json!([]));
    let (_, inside, _) = platform.call(&stranger, "GET", "/zones/containing?lat=-16.5&lng=179.9", None).await;
    assert_eq!(inside["data"], json!([]));
    for (method, body) in
        [("GET", None), ("PUT", Some(zone("x", "slow", json!([[0, 0], [1, 0], [1, 1]])))), ("DELETE", None)]
    {
        let (status, answer, _) = platform.call(&stranger, method, &format!("/zones/{}", ids[1]), body).await;
        assert_eq!((status, error_code(&answer)), (404, "NOT_FOUND"), "{method}: {answer}");
    }

    let (status, deleted, _) = platform.call(&admin, "DELETE", &format!("/zones/{}", ids[1]), None).await;
    assert_eq!((status, deleted["data"]["deleted"].clone()), (200, json!(true)), "{deleted}");
    assert_eq!(get("/zones/containing?lat=-16.5&lng=179.9").await, Vec::<String>::new());
    platform.stop().await;
}

#[tokio::test]
async fn vehicles_nearby_across_the_antimeridian_and_at_a_pole() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let fleet = Uuid::now_v7();
    // Where each vehicle last reported (written as the ingest would; the ingest has its own test).
    let placed = [
        ("East", -16.5, 179.999),
        ("West", -16.5, -179.998),
        ("Far", -16.5, 178.0),
        ("Pole", 89.9995, 10.0),
        ("Other side", 89.9995, -170.0),
    ];
    for (number, latitude, longitude) in placed {
        let body = json!({ "vin": format!("VIN{}", number.replace(' ', "")), "vehicle_number": number, "subaccount_id": fleet });
        let (status, created, _) = platform.call(&admin, "POST", "/vehicles", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["data"]["id"].as_str().unwrap();
        platform
            .sql(&format!(
                "UPDATE vehicle_states SET latitude = {latitude}, longitude = {longitude}, position_at = now() \
                 WHERE vehicle_id = '{id}' AND tenant = '{tenant}'"
            ))
            .await;
    }
    let nearby = |query: &str| {
        let (platform, admin, path) = (&platform, admin.clone(), format!("/vehicles/nearby?{query}"));
        async move {
            let (status, body, _) = platform.call(&admin, "GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    // 500 m around a point on the antimeridian: both sides of it, nearest first.
    let across = nearby("lat=-16.5&lng=180&radius=500").await;
    assert_eq!(names(&across), ["East", "West"]);
    assert!(across["data"][0]["distance_m"].as_f64().unwrap() < across["data"][1]["distance_m"].as_f64().unwrap());
    // 200 m around the pole: both vehicles, though 180° of longitude apart.
    assert_eq!(names(&nearby("lat=90&lng=0&radius=200").await).len(), 2);
    assert_eq!(names(&nearby("lat=-16.5&lng=178&radius=100").await), ["Far"]);
    let (status, body, _) = platform.call(&admin, "GET", "/vehicles/nearby?lat=0&lng=0&radius=100000", None).await;
    assert_eq!((status, body["error"]["details"]["field"].clone()), (422, json!("radius")));
    let (_, stranger) = platform.organisation().await;
    let (_, none, _) = platform.call(&stranger, "GET", "/vehicles/nearby?lat=90&lng=0&radius=200", None).await;
    assert_eq!(none["data"], json!([]));
    platform.stop().await;
}
