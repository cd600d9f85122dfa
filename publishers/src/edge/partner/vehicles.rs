//! The vehicle routes (`vehicles:read`, `vehicles:write`): the fleet listed and searched, one
//! vehicle with its latest state, and every change as a command answered by the `fleet`
//! consumers. A request sees only the subaccounts its key acts on: one named by
//! `X-Subaccount-Id` or the key's own, else those a global key lists (all when it lists none).

use std::collections::BTreeMap;

use http::StatusCode;
use readside::Deleted;
use readside::fleet::commands::{self, CommandState, CommandStatus};
use readside::fleet::{BulkResult, Filter, LatestState, Vehicle, vehicles};
use schemars::JsonSchema;
use schemas::integrations::Permission;
use schemas::vehicles::{
    AddVehicle, BulkEditCustomFields, BulkOperation, CustomFieldEdit, MasterData, OperationStatus, Position,
    RemoveVehicle, SendVehicleCommand, Transmission, UpdateVehicle, VehicleCommand,
};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::auth::Caller;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_and_filters;
use crate::edge::router::QueryFilter;

/// Longest text of a master data property.
const MAX_TEXT: usize = 64;
/// Most custom fields on one vehicle, and most vehicles in one bulk edit.
const MAX_FIELDS: usize = 50;
const MAX_BULK: usize = 1_000;

/// Filters of the vehicle list.
pub(crate) const FILTERS: &[QueryFilter] = &[
    QueryFilter {
        name: "status",
        values: &["available", "in_use", "reserved", "maintenance", "out_of_service"],
        description: "Only vehicles in this operation status.",
    },
    QueryFilter {
        name: "vehicle_type", values: &[], description: "Only vehicles of this type (`scooter`, `car`, …)."
    },
    QueryFilter {
        name: "search",
        values: &[],
        description: "Vehicles whose VIN, license plate or number starts with this, any case.",
    },
    QueryFilter { name: "battery_below", values: &[], description: "State of charge below this percentage (1-100)." },
    QueryFilter {
        name: "bbox",
        values: &[],
        description: "Inside `west,south,east,north` (degrees; west > east crosses the antimeridian).",
    },
    QueryFilter { name: "custom_field", values: &[], description: "`name:value`: a custom field with this value." },
];

/// Radius of `nearby` when none is given, and the largest one, metres.
const DEFAULT_RADIUS_M: f64 = 500.0;
const MAX_RADIUS_M: f64 = 50_000.0;

/// Parameters of `GET /vehicles/nearby`.
pub(crate) const NEARBY: &[QueryFilter] = &[
    QueryFilter { name: "lat", values: &[], description: "Latitude, degrees (required)." },
    QueryFilter { name: "lng", values: &[], description: "Longitude, degrees (required)." },
    QueryFilter { name: "radius", values: &[], description: "Metres, 1 to 50,000 (default 500)." },
];

/// `POST /vehicles`: a vehicle added to a fleet (INVERS Vehicle Lifecycle).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewVehicle {
    /// Vehicle identification number (letters, digits and `-`, up to 32).
    #[schemars(length(min = 1, max = 32))]
    vin: String,
    /// The fleet; defaults to the subaccount the request acts on.
    subaccount_id: Option<Uuid>,
    /// Fleet-visible number (`V001`).
    #[schemars(length(max = 64))]
    vehicle_number: Option<String>,
    /// License plate.
    #[schemars(length(max = 64))]
    license_plate: Option<String>,
    /// `car`, `scooter`, `bike`, `moped`, …
    #[schemars(length(max = 64))]
    vehicle_type: Option<String>,
    /// Manufacturer.
    #[schemars(length(max = 64))]
    brand: Option<String>,
    /// Model.
    #[schemars(length(max = 64))]
    model: Option<String>,
    /// Gearbox.
    transmission: Option<Transmission>,
    /// The telematics unit that reports this vehicle.
    #[schemars(length(max = 64))]
    telematics_unit_id: Option<String>,
    /// Operator-defined fields: text, numbers or booleans, at most 50.
    #[serde(default)]
    custom_fields: BTreeMap<String, Value>,
    /// Commands the vehicle can carry out; all by default.
    capabilities: Option<Vec<VehicleCommand>>,
}

/// `PATCH /vehicles/{id}`: what is given changes, all at once or not at all. The master data
/// fields are spelled out again, not flattened from one struct: serde cannot refuse unknown
/// fields through `flatten`, and a misspelt field must be a 422, not ignored.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VehicleChanges {
    /// New operation status (`available`, `maintenance`, …).
    status: Option<OperationStatus>,
    /// New VIN.
    #[schemars(length(min = 1, max = 32))]
    vin: Option<String>,
    /// New number.
    #[schemars(length(max = 64))]
    vehicle_number: Option<String>,
    /// New license plate.
    #[schemars(length(max = 64))]
    license_plate: Option<String>,
    /// New type.
    #[schemars(length(max = 64))]
    vehicle_type: Option<String>,
    /// New manufacturer.
    #[schemars(length(max = 64))]
    brand: Option<String>,
    /// New model.
    #[schemars(length(max = 64))]
    model: Option<String>,
    /// New gearbox.
    transmission: Option<Transmission>,
    /// New telematics unit.
    #[schemars(length(max = 64))]
    telematics_unit_id: Option<String>,
    /// Custom fields to set; a field given `null` is removed.
    #[serde(default)]
    custom_fields: BTreeMap<String, Value>,
}

/// `POST /vehicles/custom-fields`: custom fields added, changed or removed over many vehicles,
/// all or nothing (INVERS bulk operation): one field (`operation`, `field`, `value`) or several
/// (`edits`, each of a different field).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkEdit {
    /// The vehicles (1 to 1,000).
    #[schemars(length(min = 1, max = 1000))]
    vehicle_ids: Vec<Uuid>,
    /// One field: `add` (where missing), `change` (where present) or `remove`.
    operation: Option<BulkOperation>,
    /// One field: the field.
    #[schemars(length(min = 1, max = 64))]
    field: Option<String>,
    /// One field: its value, for `add` and `change`.
    #[serde(default)]
    value: Value,
    /// Several fields (1 to 50), in place of `operation`, `field` and `value`.
    #[schemars(length(min = 1, max = 50))]
    edits: Option<Vec<FieldEdit>>,
}

/// One field's edit of `POST /vehicles/custom-fields`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldEdit {
    /// `add` (where missing), `change` (where present) or `remove`.
    operation: BulkOperation,
    /// The field.
    #[schemars(length(min = 1, max = 64))]
    field: String,
    /// Its value, for `add` and `change`.
    #[serde(default)]
    value: Value,
}

impl BulkEdit {
    /// The edits asked for, checked: one form or the other, each field once, names and values
    /// as custom fields take them.
    fn edits(self) -> Result<(Vec<Uuid>, Vec<CustomFieldEdit>), ApiError> {
        let edits = match (self.edits, self.operation, self.field) {
            (Some(edits), None, None) if self.value.is_null() => edits,
            (None, Some(operation), Some(field)) => vec![FieldEdit { operation, field, value: self.value }],
            _ => {
                let why = "either `operation`, `field` and `value`, or `edits`";
                return Err(ApiError::invalid("edits", why));
            }
        };
        if edits.is_empty() || edits.len() > MAX_FIELDS {
            return Err(ApiError::invalid("edits", format!("1 to {MAX_FIELDS} edits")));
        }
        let mut checked: Vec<CustomFieldEdit> = Vec::with_capacity(edits.len());
        for edit in edits {
            check_field_name(&edit.field)
                .map_err(|_| ApiError::invalid("field", "names are 1 to 64 letters, digits, `_` or `-`"))?;
            if checked.iter().any(|c| c.field == edit.field) {
                return Err(ApiError::invalid("edits", format!("`{}` is edited twice", edit.field)));
            }
            let value = if edit.operation == BulkOperation::Remove {
                Value::Null
            } else {
                check_field_value(&edit.field, &edit.value).map_err(|e| ApiError::invalid("value", e.message))?;
                edit.value
            };
            checked.push(CustomFieldEdit { operation: edit.operation, field: edit.field, value });
        }
        Ok((self.vehicle_ids, checked))
    }
}

fn check_text(field: &str, text: Option<&str>) -> Result<(), ApiError> {
    match text {
        Some(text) if text.trim().is_empty() || text.chars().count() > MAX_TEXT => {
            Err(ApiError::invalid(field, format!("{field} must be 1 to {MAX_TEXT} characters")))
        }
        _ => Ok(()),
    }
}

fn check_vin(vin: &str) -> Result<(), ApiError> {
    let fine = (1..=32).contains(&vin.len()) && vin.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if fine { Ok(()) } else { Err(ApiError::invalid("vin", "vin must be 1 to 32 letters, digits or `-`")) }
}

fn check_field_name(name: &str) -> Result<(), ApiError> {
    let fine = (1..=MAX_TEXT).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fine {
        Ok(())
    } else {
        Err(ApiError::invalid("custom_fields", format!("`{name}`: names are 1 to 64 letters, digits, `_` or `-`")))
    }
}

fn check_field_value(name: &str, value: &Value) -> Result<(), ApiError> {
    let fine = match value {
        Value::String(text) => text.chars().count() <= 500,
        Value::Number(_) | Value::Bool(_) => true,
        _ => false,
    };
    if fine {
        Ok(())
    } else {
        Err(ApiError::invalid("custom_fields", format!("`{name}`: a value is text (up to 500), a number or a boolean")))
    }
}

fn check_master_data(data: &MasterData) -> Result<(), ApiError> {
    if let Some(vin) = &data.vin {
        check_vin(vin)?;
    }
    check_text("vehicle_number", data.vehicle_number.as_deref())?;
    check_text("license_plate", data.license_plate.as_deref())?;
    check_text("vehicle_type", data.vehicle_type.as_deref())?;
    check_text("brand", data.brand.as_deref())?;
    check_text("model", data.model.as_deref())?;
    check_text("telematics_unit_id", data.telematics_unit_id.as_deref())
}

/// Vehicle `{id}`, if the request may see it.
async fn find(api: &PartnerApi, call: &Call) -> Result<Vehicle, ApiError> {
    let id = call.id("id")?;
    let vehicle = vehicles::find(&api.database, call.caller.tenant.as_str(), id).await.map_err(db_error)?;
    let seen = |v: &Vehicle| call.caller.fleets().is_none_or(|fleets| fleets.contains(&v.subaccount_id));
    vehicle
        .filter(seen)
        .ok_or_else(|| ApiError::not_found(format!("no vehicle {id}")).details(serde_json::json!({ "vehicle_id": id })))
}

fn filter_of(caller: &Caller, values: &[(&'static str, String)]) -> Result<Filter, ApiError> {
    let mut filter = Filter { subaccounts: caller.fleets(), ..Filter::default() };
    for (name, value) in values {
        match *name {
            "status" => filter.status = serde_json::from_value(Value::String(value.clone())).ok(),
            "vehicle_type" => filter.vehicle_type = Some(value.clone()),
            "search" => filter.search = Some(value.clone()),
            "battery_below" => {
                let level = value.parse::<u8>().ok().filter(|l| (1..=100).contains(l));
                filter.battery_below =
                    Some(level.ok_or_else(|| ApiError::invalid("battery_below", "battery_below must be 1 to 100"))?);
            }
            "bbox" => filter.bbox = Some(bbox_of(value)?),
            "custom_field" => {
                let (field, wanted) = value
                    .split_once(':')
                    .ok_or_else(|| ApiError::invalid("custom_field", "custom_field must be `name:value`"))?;
                check_field_name(field).map_err(|_| ApiError::invalid("custom_field", "not a custom field name"))?;
                filter.custom_field = Some((field.to_owned(), wanted.to_owned()));
            }
            _ => {}
        }
    }
    Ok(filter)
}

fn bbox_of(text: &str) -> Result<[f64; 4], ApiError> {
    let refused = || ApiError::invalid("bbox", "bbox must be `west,south,east,north` in degrees, south <= north");
    let numbers: Vec<f64> =
        text.split(',').map(|n| n.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|_| refused())?;
    let [west, south, east, north] = numbers[..] else { return Err(refused()) };
    let longitude = |l: f64| (-180.0..=180.0).contains(&l);
    let latitude = |l: f64| (-90.0..=90.0).contains(&l);
    if !(longitude(west) && longitude(east) && latitude(south) && latitude(north) && south <= north) {
        return Err(refused());
    }
    Ok([west, south, east, north])
}

/// The place of a `lat`/`lng` query.
pub(crate) fn position_of(values: &[(&'static str, String)]) -> Result<Position, ApiError> {
    let number = |name: &str, range: std::ops::RangeInclusive<f64>| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .filter(|v| range.contains(v))
            .ok_or_else(|| ApiError::invalid(name, format!("{name} is required, {} to {}", range.start(), range.end())))
    };
    Ok(Position { latitude: number("lat", -90.0..=90.0)?, longitude: number("lng", -180.0..=180.0)? })
}

/// `GET /vehicles/nearby?lat=…&lng=…&radius=…`.
pub(crate) async fn nearby(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), NEARBY)?;
    let centre = position_of(&values)?;
    let radius = match values.iter().find(|(n, _)| *n == "radius") {
        None => DEFAULT_RADIUS_M,
        Some((_, v)) => v
            .parse::<f64>()
            .ok()
            .filter(|r| (1.0..=MAX_RADIUS_M).contains(r))
            .ok_or_else(|| ApiError::invalid("radius", format!("radius is 1 to {MAX_RADIUS_M} metres")))?,
    };
    let tenant = call.caller.tenant.as_str();
    let found =
        vehicles::nearby(&api.database, tenant, call.caller.fleets(), centre, radius).await.map_err(db_error)?;
    Ok(Answer::page_of(found, page))
}

/// `GET /vehicles`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), FILTERS)?;
    let filter = filter_of(&call.caller, &values)?;
    let tenant = call.caller.tenant.as_str();
    let (items, total) =
        vehicles::list(&api.database, tenant, &filter, page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `GET /vehicles/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(find(api, &call).await?))
}

/// `GET /vehicles/{id}/state`.
pub(crate) async fn state(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let state: LatestState = find(api, &call).await?.state;
    Ok(Answer::ok(state))
}

/// `POST /vehicles`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewVehicle = parse_body(&call.body)?;
    let master_data = MasterData {
        vin: None,
        vehicle_number: request.vehicle_number,
        license_plate: request.license_plate,
        vehicle_type: request.vehicle_type,
        brand: request.brand,
        model: request.model,
        transmission: request.transmission,
        telematics_unit_id: request.telematics_unit_id,
    };
    check_vin(&request.vin)?;
    check_master_data(&master_data)?;
    if request.custom_fields.len() > MAX_FIELDS {
        return Err(ApiError::invalid("custom_fields", format!("at most {MAX_FIELDS} custom fields")));
    }
    for (name, value) in &request.custom_fields {
        check_field_name(name)?;
        check_field_value(name, value)?;
    }
    let subaccount_id = request.subaccount_id.or(call.caller.subaccount).ok_or_else(|| {
        ApiError::invalid("subaccount_id", "name the vehicle's fleet: subaccount_id, or X-Subaccount-Id")
    })?;
    if call.caller.fleets().is_some_and(|fleets| !fleets.contains(&subaccount_id)) {
        return Err(ApiError::forbidden("this key may not act on that subaccount")
            .details(serde_json::json!({ "subaccount_id": subaccount_id })));
    }
    let add = AddVehicle {
        vehicle_id: Uuid::now_v7(),
        subaccount_id,
        vin: request.vin,
        master_data,
        custom_fields: request.custom_fields,
        capabilities: request.capabilities,
    };
    let stored: Vehicle = api.bus.request(&command(&call, add), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, stored))
}

/// `PATCH /vehicles/{id}`.
pub(crate) async fn update(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let changes: VehicleChanges = parse_body(&call.body)?;
    let master_data = MasterData {
        vin: changes.vin,
        vehicle_number: changes.vehicle_number,
        license_plate: changes.license_plate,
        vehicle_type: changes.vehicle_type,
        brand: changes.brand,
        model: changes.model,
        transmission: changes.transmission,
        telematics_unit_id: changes.telematics_unit_id,
    };
    check_master_data(&master_data)?;
    let (mut set, mut remove) = (BTreeMap::new(), Vec::new());
    for (name, value) in changes.custom_fields {
        check_field_name(&name)?;
        if value.is_null() {
            remove.push(name);
        } else {
            check_field_value(&name, &value)?;
            set.insert(name, value);
        }
    }
    let vehicle = find(api, &call).await?;
    let kept = vehicle.custom_fields.keys().filter(|name| !remove.contains(name) && !set.contains_key(*name));
    if kept.count() + set.len() > MAX_FIELDS {
        return Err(ApiError::invalid("custom_fields", format!("at most {MAX_FIELDS} custom fields")));
    }
    let update = UpdateVehicle {
        vehicle_id: vehicle.id,
        master_data,
        set_custom_fields: set,
        remove_custom_fields: remove,
        status: changes.status,
    };
    let stored: Vehicle = api.bus.request(&command(&call, update), api.settings.command_timeout).await?;
    Ok(Answer::ok(stored))
}

/// `DELETE /vehicles/{id}`.
pub(crate) async fn delete(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let vehicle = find(api, &call).await?;
    let removed: Deleted = api
        .bus
        .request(&command(&call, RemoveVehicle { vehicle_id: vehicle.id }), api.settings.command_timeout)
        .await?;
    Ok(Answer::ok(removed))
}

/// `POST /vehicles/{id}/commands/{command}`: whether to wait, how long the command may wait for
/// an offline vehicle, and for whom it is sent.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandRequest {
    /// Wait for the answer (default true, up to the command's timeout); false: 202 at once with
    /// the command's id to poll at `GET /vehicle-commands/{id}`. A queued command answers 202 at once.
    wait: Option<bool>,
    /// Seconds the command may wait (`queued`) for a vehicle not heard from lately, to be sent when
    /// it reports again, before it ends `expired` (1 to 604800); absent: sent at once.
    ttl_seconds: Option<u32>,
    /// The customer it is sent for: a vehicle in a ride unlocks, or frees its engine, only for that
    /// ride's customer.
    customer_id: Option<Uuid>,
}

/// The longest a command may wait for its vehicle: a week.
const MAX_TTL_SECONDS: u32 = 7 * 24 * 3600;

/// How often a waiting request looks whether its command was answered.
const ANSWER_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// `POST /vehicles/{id}/commands/{command}`.
pub(crate) async fn send_command(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: CommandRequest =
        if call.body.is_empty() { CommandRequest::default() } else { parse_body(&call.body)? };
    if request.ttl_seconds.is_some_and(|ttl| ttl == 0 || ttl > MAX_TTL_SECONDS) {
        return Err(ApiError::invalid("ttl_seconds", format!("1 to {MAX_TTL_SECONDS} seconds")));
    }
    let name = call.params.iter().find(|(n, _)| n == "command").map(|(_, v)| v.clone()).unwrap_or_default();
    let asked: VehicleCommand = serde_json::from_value(Value::String(name.clone())).map_err(|_| {
        ApiError::not_found(format!("no vehicle command `{name}`"))
            .details(serde_json::json!({ "commands": readside::fleet::ALL_COMMANDS }))
    })?;
    let vehicle = find(api, &call).await?;
    let send = SendVehicleCommand {
        command_id: call.command_id,
        vehicle_id: vehicle.id,
        command: asked,
        ttl_seconds: request.ttl_seconds,
        customer_id: request.customer_id,
        maintenance_allowed: call.caller.may(Permission::VehiclesMaintenance),
        idempotency_key: call.idempotency_key.clone(),
    };
    let mut status: CommandStatus = api.bus.request(&command(&call, send), api.settings.command_timeout).await?;
    let tenant = call.caller.tenant.as_str();
    if request.wait.unwrap_or(true) {
        // The device answers through its own stream; the answer lands in the table.
        while status.status == CommandState::Sent && chrono::Utc::now() <= status.expires_at {
            tokio::time::sleep(ANSWER_POLL).await;
            status = commands::find(&api.database, tenant, status.id).await.map_err(db_error)?.unwrap_or(status);
        }
    }
    let code = if status.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok(Answer::with_status(code, status))
}

/// `GET /vehicle-commands/{id}`.
pub(crate) async fn command_status(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let id = call.id("id")?;
    let tenant = call.caller.tenant.as_str();
    let status = commands::find(&api.database, tenant, id).await.map_err(db_error)?;
    // A command of a vehicle outside the request's fleets is as unknown as another organisation's.
    let status = match status {
        Some(status) if call.caller.fleets().is_some() => {
            let vehicle = vehicles::find(&api.database, tenant, status.vehicle_id).await.map_err(db_error)?;
            let seen = vehicle.is_some_and(|v| call.caller.fleets().is_none_or(|f| f.contains(&v.subaccount_id)));
            seen.then_some(status)
        }
        other => other,
    };
    Ok(Answer::ok(status.ok_or_else(|| ApiError::not_found(format!("no vehicle command {id}")))?))
}

/// `POST /vehicles/custom-fields`.
pub(crate) async fn bulk(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (vehicle_ids, edits) = parse_body::<BulkEdit>(&call.body)?.edits()?;
    if vehicle_ids.is_empty() || vehicle_ids.len() > MAX_BULK {
        return Err(ApiError::invalid("vehicle_ids", format!("1 to {MAX_BULK} vehicles")));
    }
    // Vehicles outside the request's fleets are as unknown as those of another organisation.
    if let Some(fleets) = call.caller.fleets() {
        let tenant = call.caller.tenant.as_str();
        let found = vehicles::find_all(&api.database, tenant, &vehicle_ids).await.map_err(db_error)?;
        if let Some(hidden) = found.iter().find(|v| !fleets.contains(&v.subaccount_id)) {
            return Err(ApiError::not_found(format!("no vehicle {}; nothing was changed", hidden.id)));
        }
    }
    let bulk = BulkEditCustomFields { bulk_id: call.command_id, vehicle_ids, edits };
    let result: BulkResult = api.bus.request(&command(&call, bulk), api.settings.command_timeout).await?;
    Ok(Answer::ok(result))
}
