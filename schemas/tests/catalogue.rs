//! The catalogue as partners see it: every type round-trips, golden samples keep the seeds' field
//! names, bad input fails with the error that names the fault, and the committed JSON Schemas are
//! current. `VOLTBUS_BLESS=1 cargo test -p voltbus-schemas` rewrites `schemas/json/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemas::{AnyMessage, DecodeError, Envelope, Kind, Message, TenantId, decode_any, decode_any_binary, descriptors};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds a sample value from a JSON Schema: every property present, first variant of every
/// choice. Deriving samples from the schema checks the schema and the serde shape agree.
fn sample(root: &Value, schema: &Value) -> Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return sample(root, &root["$defs"][name]);
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values[0].clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let option = options.iter().find(|o| o.get("type") != Some(&json!("null"))).unwrap_or(&options[0]);
            let mut value = sample(root, option);
            // A flattened or internally tagged enum puts its variants next to the struct's own properties.
            if let (Some(own), Value::Object(v)) = (schema.get("properties"), &mut value) {
                let own = sample(root, &json!({"type": "object", "properties": own}));
                v.extend(own.as_object().cloned().unwrap_or_default());
            }
            return value;
        }
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned().unwrap_or(Value::Null),
        Some(t) => t.clone(),
        None => Value::Null,
    };
    match ty.as_str() {
        Some("object") => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), sample(root, v));
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                out.insert("key".into(), sample(root, extra));
            }
            Value::Object(out)
        }
        Some("array") => match (schema.get("prefixItems"), schema.get("items")) {
            (Some(Value::Array(items)), _) => Value::Array(items.iter().map(|i| sample(root, i)).collect()),
            (_, Some(item)) => {
                let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1).max(1);
                Value::Array((0..n).map(|_| sample(root, item)).collect())
            }
            _ => json!([]),
        },
        Some("string") => {
            match (schema.get("format").and_then(Value::as_str), schema.get("pattern").and_then(Value::as_str)) {
                (Some("uuid"), _) => json!("0192f1a4-7b3c-7d2e-8f00-0000000000a1"),
                (Some("date-time"), _) => json!("2025-01-15T10:30:00Z"),
                (_, Some("^[A-Z]{3}$")) => json!("EUR"),
                (_, Some(p)) if p.starts_with("^[a-z0-9]") => json!("acme"),
                (_, Some(p)) if p.starts_with("^[0-9]") => json!("1.0"),
                // `dataversion` of a type at major version N: `^N\.…`.
                (_, Some(p))
                    if p.strip_prefix('^').is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())) =>
                {
                    let major: String = p[1..].chars().take_while(char::is_ascii_digit).collect();
                    json!(format!("{major}.0"))
                }
                _ => json!("text"),
            }
        }
        Some("integer") => json!(7),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => json!({"any": "json"}),
    }
}

#[test]
fn every_type_round_trips_structured_and_binary() {
    for d in descriptors() {
        let schema = d.json_schema().to_value();
        let value = sample(&schema, &schema);
        let bytes = serde_json::to_vec(&value).unwrap();
        let decoded = decode_any(&bytes).unwrap_or_else(|e| panic!("{}: {e}\n{value:#}", d.type_name));
        assert_eq!(decoded.data.descriptor().type_name, d.type_name);
        let reencoded: Value = serde_json::from_slice(&decoded.encode()).unwrap();
        assert_eq!(reencoded, value, "{} does not round-trip", d.type_name);

        let binary = decoded.to_binary();
        let lookup = |name: &str| binary.attributes.iter().find(|a| a.name == name).map(|a| a.value.clone());
        let again = decode_any_binary(lookup, &binary.body).unwrap_or_else(|e| panic!("{} binary: {e}", d.type_name));
        assert_eq!(again, decoded, "{} does not round-trip in binary mode", d.type_name);
    }
}

/// An event offered to partners says the subaccount it is about, in its data (so a partner sees it)
/// and in its reach (so routing keys and webhooks hold to it): the two agree on every sample.
#[test]
fn events_offered_to_partners_carry_their_subaccount_and_reach_it() {
    let fleet = uuid_of(0x0192_b3c4_0000_7000_8000_0000_0000_0042);
    for d in descriptors().iter().filter(|d| d.read.is_some()) {
        assert_eq!(d.kind, Kind::Event, "{} is offered to partners but is no event", d.type_name);
        let schema = d.json_schema().to_value();
        let mut value = sample(&schema, &schema);
        let data = value["data"].as_object_mut().unwrap();
        assert!(data.contains_key("subaccount_id"), "{} is offered but names no subaccount_id", d.type_name);
        data.insert("subaccount_id".into(), json!(fleet));
        let decoded = decode_any(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(decoded.data.reach(), schemas::Reach::Subaccount(fleet), "{}", d.type_name);
    }
    for d in descriptors().iter().filter(|d| d.read.is_none() && d.kind == Kind::Event) {
        let schema = d.json_schema().to_value();
        let value = sample(&schema, &schema);
        let decoded = decode_any(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(decoded.data.reach(), schemas::Reach::Organisation, "{} is no partner's", d.type_name);
    }
}

#[test]
fn every_command_names_who_carries_it_out_and_no_event_does() {
    for descriptor in descriptors() {
        match descriptor.kind {
            Kind::Command => assert!(descriptor.recipient.is_some(), "{} names no handler", descriptor.type_name),
            Kind::Event => assert!(descriptor.recipient.is_none(), "event {} names a handler", descriptor.type_name),
        }
    }
}

#[test]
fn catalogue_names_are_unique_and_cover_every_domain() {
    let names: BTreeSet<_> = descriptors().iter().map(|d| d.type_name).collect();
    assert_eq!(names.len(), descriptors().len(), "duplicate type names");
    for domain in schemas::Domain::ALL {
        assert!(descriptors().iter().any(|d| d.domain == domain && d.kind == Kind::Event), "{domain} has no event");
    }
    for seed_name in [
        "VehicleChanged",
        "VehicleStateReceived",
        "CHARGING",
        "PAYMENT",
        "REPLENISHMENT",
        "ride.started",
        "ride.paused",
        "ride.resumed",
        "ride.ended",
        "customer.created",
        "customer.updated",
        "customer.blocked",
        "customer.unblocked",
        "vehicle.status_changed",
        "vehicle.battery_low",
        "vehicle.location_updated",
        "user.create",
        "user.update",
        "product.purchase",
        "product.cancel",
        "product.suspend",
        "product.resume",
    ] {
        assert!(names.contains(seed_name), "seed name {seed_name} missing from the catalogue");
    }
}

fn golden(type_name: &str) -> Value {
    let path = crate_dir().join("tests/golden").join(format!("{type_name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every key path of `seed` exists in `ours` (arrays: their first element).
fn assert_has_seed_keys(type_name: &str, seed: &Value, ours: &Value, path: &str) {
    match (seed, ours) {
        (Value::Object(s), Value::Object(o)) => {
            for (k, v) in s {
                let p = format!("{path}.{k}");
                let Some(ov) = o.get(k) else { panic!("{type_name}: seed field `{p}` is missing") };
                assert_has_seed_keys(type_name, v, ov, &p);
            }
        }
        (Value::Array(s), Value::Array(o)) if !s.is_empty() && !o.is_empty() => {
            assert_has_seed_keys(type_name, &s[0], &o[0], path)
        }
        _ => {}
    }
}

/// The seeds' own example payloads (values trimmed, field names verbatim).
fn seed_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("CHARGING", json!({"energy": 0, "waitingTime": 0, "amount": 0})),
        ("PAYMENT", json!({"status": "success", "amount": 0})),
        ("REPLENISHMENT", json!({"status": "success", "amount": 10069})),
        (
            "ride.ended",
            json!({
                "ride_id": "uuid", "customer_id": "uuid", "customer_number": 12345, "vehicle_id": "uuid",
                "vehicle_number": "V001", "start_time": "", "end_time": "", "duration_minutes": 30,
                "distance_km": 5.2,
                "pricing": {"total_cents": 850, "unlock_cents": 100, "time_cents": 750, "distance_cents": 0, "discount_cents": 0},
                "payment_status": "paid", "subaccount_id": "uuid"
            }),
        ),
        ("wallet.post_entry", json!({"action": "credit", "amount_cents": 1000, "description": ""})),
        ("vehicle.set_operation_status", json!({"status": "maintenance"})),
        ("ride.start", json!({"customer_id": "uuid", "vehicle_id": "uuid"})),
        ("ride.end", json!({"end_latitude": 40.7128, "end_longitude": -74.0060})),
        ("billing.initialize_payment", json!({"email": "", "amount": 1200, "currency": "GHS"})),
        (
            "integration.exchange_identity",
            json!({"integrationId": "", "externalSubject": "", "email": "", "roleHint": ""}),
        ),
        ("payment.settle", json!({"invoiceId": "", "status": "success", "amount": 0})),
        ("purchase.feedback", json!({"feedback": {"score": 5, "description": ""}})),
        (
            "user.create",
            json!({
                "event": {"id": "", "type": "user.create", "timestamp": 19786584376i64},
                "user": {"id": "", "partnerId": null, "auth": {"token": "", "expires": 2086584376}},
                "data": {
                    "user": {"salutation": "", "firstName": "", "lastName": "", "email": "", "phone": "",
                             "dateOfBirth": "", "address1": "", "address2": "", "city": "", "region/state": "",
                             "country": "", "postalCode": ""},
                    "webIdentity": {"status": "verified", "verificationId": ""}
                }
            }),
        ),
        (
            "product.purchase",
            json!({
                "event": {"id": "", "type": "product.purchase", "timestamp": 0},
                "user": {"id": "", "partnerId": "u-12345", "auth": {"token": "", "expires": 0}},
                "data": {"product": {"id": "", "name": "SicurNET", "price": 0, "priceType": "SUBSCRIPTION", "priceInterval": "MONTHLY"}}
            }),
        ),
        (
            "product.cancel",
            json!({
                "event": {"id": "", "type": "product.cancel", "timestamp": 0},
                "user": {"id": "", "partnerId": "u-111111", "auth": {"token": "", "expires": 0}},
                "data": {"product": {"id": "", "partnerId": "p-222222", "name": "", "price": 0, "priceType": "", "priceInterval": ""}}
            }),
        ),
    ]
}

#[test]
fn golden_samples_keep_the_seed_field_names_and_round_trip() {
    let dir = crate_dir().join("tests/golden");
    let mut seen = 0;
    for (type_name, seed) in seed_examples() {
        let golden = golden(type_name);
        assert_eq!(golden["type"], type_name);
        assert_has_seed_keys(type_name, &seed, &golden["data"], "data");
        let decoded = decode_any(golden.to_string().as_bytes()).unwrap_or_else(|e| panic!("{type_name}: {e}"));
        let reencoded: Value = serde_json::from_slice(&decoded.encode()).unwrap();
        assert_eq!(reencoded, golden, "{type_name} golden sample does not round-trip");
        seen += 1;
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, seen, "every golden sample in {} is checked against a seed example", dir.display());
}

#[test]
fn realtime_messages_carry_the_seed_body_alone_in_binary_mode() {
    let tenant = TenantId::new("acme").unwrap();
    let progress = schemas::charging::ChargingProgress {
        energy: 1.25,
        waiting_time: 30,
        amount: 1500,
        currency: schemas::Currency::MNT,
        purchase_id: None,
    };
    let envelope = Envelope::new(tenant, "voltbus/charging", progress.clone()).with_subject("user-1");
    let binary = envelope.to_binary();
    let body: Value = serde_json::from_slice(&binary.body).unwrap();
    assert_eq!(body, json!({"energy": 1.25, "waitingTime": 30, "amount": 1500, "currency": "MNT"}));
    let lookup = |name: &str| binary.attributes.iter().find(|a| a.name == name).map(|a| a.value.clone());
    let back = Envelope::<schemas::charging::ChargingProgress>::from_binary(lookup, &binary.body).unwrap();
    assert_eq!(back, envelope);
}

fn valid_envelope() -> Value {
    let tenant = TenantId::new("acme").unwrap();
    let msg = schemas::rides::PauseRide { ride_id: uuid_of(1) };
    serde_json::from_slice(&Envelope::new(tenant, "voltbus/edge", msg).encode()).unwrap()
}

fn uuid_of(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

#[test]
fn decoding_says_which_fault() {
    let ok = valid_envelope();
    assert!(decode_any(ok.to_string().as_bytes()).is_ok());

    assert!(matches!(decode_any(b"not json"), Err(DecodeError::Malformed(_))));
    let mut no_tenant = ok.clone();
    no_tenant.as_object_mut().unwrap().remove("tenant");
    assert!(matches!(decode_any(no_tenant.to_string().as_bytes()), Err(DecodeError::Malformed(_))));
    let mut bad_tenant = ok.clone();
    bad_tenant["tenant"] = json!("acme.>");
    assert!(matches!(decode_any(bad_tenant.to_string().as_bytes()), Err(DecodeError::Malformed(_))));

    let mut unknown = ok.clone();
    unknown["type"] = json!("ride.teleported");
    match decode_any(unknown.to_string().as_bytes()) {
        Err(DecodeError::UnknownType(t)) => assert_eq!(t, "ride.teleported"),
        other => panic!("expected UnknownType, got {other:?}"),
    }

    let mut v2 = ok.clone();
    v2["dataversion"] = json!("2.0");
    match decode_any(v2.to_string().as_bytes()) {
        Err(e @ DecodeError::UnsupportedVersion { .. }) => {
            assert_eq!(e.kind(), "unsupported_version");
            assert!(e.to_string().contains("2.0"), "{e}");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let mut minor = ok.clone();
    minor["dataversion"] = json!("1.7");
    assert!(decode_any(minor.to_string().as_bytes()).is_ok(), "a newer minor version is readable");

    let mut bad_data = ok.clone();
    bad_data["data"] = json!({"ride_id": "not-a-uuid"});
    assert!(matches!(decode_any(bad_data.to_string().as_bytes()), Err(DecodeError::InvalidData { .. })));

    match Envelope::<schemas::rides::EndRide>::decode(ok.to_string().as_bytes()) {
        Err(DecodeError::UnexpectedType { expected, found }) => {
            assert_eq!(expected, "ride.end");
            assert_eq!(found, "ride.pause");
        }
        other => panic!("expected UnexpectedType, got {other:?}"),
    }
}

#[test]
fn binary_decoding_says_which_fault() {
    let tenant = TenantId::new("acme").unwrap();
    let binary = Envelope::new(tenant, "voltbus/edge", schemas::rides::PauseRide { ride_id: uuid_of(2) }).to_binary();
    let with = |overrides: &'static [(&'static str, Option<&'static str>)]| {
        let attrs = binary.attributes.clone();
        move |name: &str| match overrides.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => v.map(str::to_owned),
            None => attrs.iter().find(|a| a.name == name).map(|a| a.value.clone()),
        }
    };
    assert!(decode_any_binary(with(&[]), &binary.body).is_ok());
    assert!(matches!(decode_any_binary(with(&[("id", None)]), &binary.body), Err(DecodeError::Malformed(_))));
    assert!(matches!(
        decode_any_binary(with(&[("time", Some("yesterday"))]), &binary.body),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(decode_any_binary(with(&[]), b"{oops"), Err(DecodeError::Malformed(_))));
    // JSON, but not the shape the type attribute names.
    assert!(matches!(
        decode_any_binary(with(&[]), br#"{"ride_id": 5}"#),
        Err(DecodeError::InvalidData { type_name, .. }) if type_name == "ride.pause"
    ));
    assert!(matches!(decode_any_binary(with(&[]), br#"{"ride_id": "#), Err(DecodeError::Malformed(_))));
    // The headers are read before the body: an unknown type is said even of a broken body.
    assert!(matches!(decode_any_binary(with(&[("type", Some("nope"))]), b"{oops"), Err(DecodeError::UnknownType(_))));
    // The typed decoder agrees with the catalogue's.
    let typed = Envelope::<schemas::rides::PauseRide>::from_binary(with(&[]), br#"{"ride_id": 5}"#);
    assert!(matches!(typed, Err(DecodeError::InvalidData { .. })), "{typed:?}");
    assert!(matches!(
        decode_any_binary(with(&[("type", Some("nope"))]), &binary.body),
        Err(DecodeError::UnknownType(_))
    ));
    assert!(matches!(
        decode_any_binary(with(&[("dataversion", Some("3.1"))]), &binary.body),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
}

#[test]
fn envelopes_use_uuid_v7_and_carry_causation() {
    let tenant = TenantId::new("acme").unwrap();
    let cmd = Envelope::new(tenant.clone(), "voltbus/edge", schemas::rides::PauseRide { ride_id: uuid_of(3) });
    assert_eq!(cmd.id.get_version_num(), 7);
    assert_eq!(cmd.correlationid, cmd.id);
    assert_eq!(cmd.subject.as_deref(), Some(uuid_of(3).to_string().as_str()));
    let evt = Envelope::new(
        tenant,
        "voltbus/consumers/rides",
        schemas::rides::RidePaused {
            ride_id: uuid_of(3),
            customer_id: uuid_of(4),
            vehicle_id: uuid_of(5),
            paused_at: cmd.time,
            subaccount_id: uuid_of(6),
        },
    )
    .caused_by(&cmd);
    assert_eq!(evt.correlationid, cmd.id);
    assert_eq!(evt.causationid, Some(cmd.id));
    assert!(evt.id > cmd.id, "v7 ids sort by creation");
    let json: Value = serde_json::from_slice(&evt.encode()).unwrap();
    assert!(json["time"].as_str().unwrap().ends_with('Z'), "times are RFC 3339 UTC");
    for attr in [
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "tenant",
        "correlationid",
        "causationid",
        "specversion",
        "dataversion",
    ] {
        assert!(json.get(attr).is_some(), "envelope attribute {attr} missing");
    }
    let _: &AnyMessage = &decode_any(&evt.encode()).unwrap().data;
    assert_eq!(<schemas::rides::RidePaused as Message>::KIND, Kind::Event);
}

fn expected_schema_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = descriptors()
        .iter()
        .map(|d| (schemas::schema_file_name(d), serde_json::to_string_pretty(&d.json_schema()).unwrap() + "\n"))
        .collect();
    let index: Vec<Value> = descriptors()
        .iter()
        .map(|d| {
            json!({
                "type": d.type_name,
                "version": d.version.to_string(),
                "kind": d.kind,
                "domain": d.domain,
                "schema": schemas::schema_file_name(d),
                "amqp_routing_key": match d.kind {
                    Kind::Command => schemas::routing::command_key(d),
                    Kind::Event => format!("{{tenant}}.{{subaccount}}.{}.{}", d.domain, d.type_name),
                },
                "partner_permission": d.read,
            })
        })
        .collect();
    files.push(("catalogue.json".into(), serde_json::to_string_pretty(&index).unwrap() + "\n"));
    files
}

#[test]
fn committed_json_schemas_are_current() {
    let dir: &Path = &crate_dir().join("json");
    let expected = expected_schema_files();
    if std::env::var_os("VOLTBUS_BLESS").is_some() {
        for entry in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, text) in &expected {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let wanted: BTreeSet<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(on_disk, wanted, "schemas/json/ is stale: run `VOLTBUS_BLESS=1 cargo test -p voltbus-schemas`");
    for (name, text) in expected {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert!(committed == text, "schemas/json/{name} is stale: run `VOLTBUS_BLESS=1 cargo test -p voltbus-schemas`");
    }
}
