//! The fleet: vehicles with filters and a map of their latest positions and charge; a vehicle's
//! master data, custom fields, status, latest state, recent reports and commands; and sending a
//! command, whose result the command's page shows as it arrives.

use std::fmt::Write;

use http::Method;
use serde_json::{Value, json};

use super::html::{self, Row, esc, time, value};
use super::{View, Visit};
use crate::edge::envelope::ApiError;
use crate::edge::envelope::db_error;
use crate::edge::partner::auth::Caller;

/// The filters of the vehicle list, passed on to `GET /vehicles` as they are.
const FILTERS: [&str; 5] = ["status", "vehicle_type", "search", "battery_below", "custom_field"];

/// `GET /admin/orgs/{org}/vehicles`.
pub(super) async fn vehicles(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    list(visit, org, &visit.caller(org)?).await
}

/// `GET /admin/orgs/{org}/vehicles/{id}`.
pub(super) async fn show(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    vehicle(visit, org, &visit.caller(org)?, visit.param("id")).await
}

/// `POST /admin/orgs/{org}/vehicles/{id}/commands`: sends one, then follows it.
pub(super) async fn send_command(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let command = visit.field("command").unwrap_or_default();
    let path = format!("/vehicles/{id}/commands/{command}");
    let sent = visit.call(&visit.caller(org)?, Method::POST, &path, None, json!({ "wait": false })).await?;
    let command_id = sent["data"]["id"].as_str().unwrap_or_default();
    Ok(View::Redirect(format!("/admin/orgs/{org}/vehicle-commands/{command_id}")))
}

/// `GET /admin/orgs/{org}/vehicle-commands/{id}`.
pub(super) async fn command(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let status = visit.get(&visit.caller(org)?, &format!("/vehicle-commands/{id}"), None).await?;
    let vehicle = status["vehicle_id"].as_str().unwrap_or_default();
    let body = format!(
        "<section class=\"live\" data-live=\"/admin/orgs/{org}/vehicle-commands/{id}/live\">\
         <p>Command <strong>{}</strong> to <a href=\"/admin/orgs/{org}/vehicles/{vehicle}\">vehicle {vehicle}</a></p>\
         <p>Status: <strong id=\"command-status\" data-key=\"status\">{}</strong></p>\
         <p>Reason: <span data-key=\"reason\">{}</span></p><p>Completed: <span data-key=\"completed_at\">{}</span></p>\
         <p class=\"hint\">This page follows the command until the vehicle answers, it times out, or (queued \
         for a vehicle away) it expires.</p></section>",
        value(&status["command"]),
        value(&status["status"]),
        value(&status["reason"]),
        time(&status["completed_at"]),
        org = esc(org),
        id = esc(id),
        vehicle = esc(vehicle),
    );
    Ok(View::Page { title: "Vehicle command".into(), organisation: Some(org.into()), body })
}

/// `GET /admin/orgs/{org}/vehicle-commands/{id}/live`: where the command stands, for its page.
pub(super) async fn command_live(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let status = visit.get(&visit.caller(org)?, &format!("/vehicle-commands/{id}"), None).await?;
    let ended = status["completed_at"].is_string();
    Ok(View::Json(json!({
        "status": status["status"],
        "reason": status["reason"].as_str().unwrap_or("–"),
        "completed_at": html::time_text(&status["completed_at"]),
        "final": ended,
    })))
}

async fn list(visit: &Visit<'_>, org: &str, caller: &Caller) -> Result<View, ApiError> {
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", "100");
        for name in FILTERS {
            if let Some(value) = visit.field(name) {
                query.append_pair(name, value);
            }
        }
        query.finish()
    };
    let listed = visit.get(caller, "/vehicles", Some(query)).await?;
    let vehicles: Vec<&Value> = listed.as_array().into_iter().flatten().collect();
    let rows: Vec<Row> = vehicles
        .iter()
        .map(|v| {
            let id = v["id"].as_str().unwrap_or_default();
            vec![
                format!("<a href=\"/admin/orgs/{}/vehicles/{}\">{}</a>", esc(org), esc(id), esc(&name_of(v))),
                value(&v["vehicle_type"]),
                value(&v["status"]),
                charge(v).map_or("–".into(), |c| format!("<meter min=\"0\" max=\"100\" low=\"20\" high=\"50\" optimum=\"100\" value=\"{c}\"></meter> {c} %")),
                position(v).map_or("–".into(), |(lat, lng)| format!("{lat:.5}, {lng:.5}")),
                time(&v["state"]["received_at"]),
            ]
        })
        .collect();
    let statuses = [
        ("", "any"),
        ("available", "available"),
        ("in_use", "in use"),
        ("reserved", "reserved"),
        ("maintenance", "maintenance"),
        ("out_of_service", "out of service"),
    ];
    let filters = format!(
        "<form method=\"get\" class=\"filters\" id=\"filters\">{}{}{}{}{}<button type=\"submit\">Filter</button></form>",
        html::select("status", "Status", &statuses, visit.field("status").unwrap_or_default()),
        html::input("vehicle_type", "Type", "text", visit.field("vehicle_type").unwrap_or_default(), ""),
        html::input("search", "Search", "search", visit.field("search").unwrap_or_default(), ""),
        html::input(
            "battery_below",
            "Charge below %",
            "number",
            visit.field("battery_below").unwrap_or_default(),
            "min=\"1\" max=\"100\""
        ),
        html::input(
            "custom_field",
            "Custom field (name:value)",
            "text",
            visit.field("custom_field").unwrap_or_default(),
            ""
        ),
    );
    let table = html::table(
        "vehicles",
        &["Vehicle", "Type", "Status", "Charge", "Position", "Last report"],
        &rows,
        "No vehicle matches.",
    );
    Ok(View::Page {
        title: "Fleet".into(),
        organisation: Some(org.into()),
        body: format!(
            "{filters}<section><h2>Map</h2>{}</section><section><h2>Vehicles</h2>{table}</section>",
            map(org, &vehicles)
        ),
    })
}

/// The master data fields, as the vehicle's JSON has them (flattened into it).
const MASTER_DATA: [&str; 8] =
    ["vin", "vehicle_number", "license_plate", "vehicle_type", "brand", "model", "transmission", "telematics_unit_id"];

fn name_of(vehicle: &Value) -> String {
    [&vehicle["vehicle_number"], &vehicle["license_plate"], &vehicle["vin"], &vehicle["id"]]
        .into_iter()
        .find_map(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn charge(vehicle: &Value) -> Option<u64> {
    vehicle["state"]["charge_level"]["value"].as_u64()
}

fn position(vehicle: &Value) -> Option<(f64, f64)> {
    let at = &vehicle["state"]["position"]["value"];
    Some((at["latitude"].as_f64()?, at["longitude"].as_f64()?))
}

/// An SVG map of the vehicles' latest positions, coloured by charge, fitted to where they are
/// (plate carrée: no tiles to fetch, which a machine without internet could not).
fn map(org: &str, vehicles: &[&Value]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 360.0;
    let placed: Vec<(&Value, f64, f64)> =
        vehicles.iter().filter_map(|v| position(v).map(|(lat, lng)| (*v, lat, lng))).collect();
    if placed.is_empty() {
        return "<p class=\"empty\" id=\"map\">No vehicle has reported a position yet.</p>".into();
    }
    let (mut south, mut north, mut west, mut east) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, lat, lng) in &placed {
        (south, north, west, east) = (south.min(*lat), north.max(*lat), west.min(*lng), east.max(*lng));
    }
    // A margin, and a least span so one vehicle is not a division by zero.
    let span = ((north - south).max(east - west) * 1.2).max(0.002);
    let (centre_lat, centre_lng) = ((north + south) / 2.0, (east + west) / 2.0);
    let scale = (W / span).min(H / span);
    let mut svg = format!(
        "<svg id=\"map\" class=\"map\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Latest positions of {} vehicles\">\
         <rect width=\"{W}\" height=\"{H}\" class=\"ground\"/>",
        placed.len()
    );
    for step in 1..8 {
        let x = W * f64::from(step) / 8.0;
        let y = H * f64::from(step) / 8.0;
        let _ = write!(
            svg,
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{H}\" class=\"grid\"/><line x1=\"0\" y1=\"{y}\" x2=\"{W}\" y2=\"{y}\" class=\"grid\"/>"
        );
    }
    for (vehicle, lat, lng) in placed {
        let x = W / 2.0 + (lng - centre_lng) * scale;
        let y = H / 2.0 - (lat - centre_lat) * scale;
        let level = match charge(vehicle) {
            Some(c) if c < 20 => "low",
            Some(c) if c < 50 => "mid",
            Some(_) => "high",
            None => "unknown",
        };
        let id = vehicle["id"].as_str().unwrap_or_default();
        let label =
            format!("{} · {}", name_of(vehicle), charge(vehicle).map_or("charge unknown".into(), |c| format!("{c} %")));
        let _ = write!(
            svg,
            "<a href=\"/admin/orgs/{}/vehicles/{}\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"7\" class=\"vehicle {level}\"><title>{}</title></circle></a>",
            esc(org),
            esc(id),
            esc(&label)
        );
    }
    svg.push_str("</svg><p class=\"legend\"><span class=\"dot low\"></span>below 20 % <span class=\"dot mid\"></span>below 50 % <span class=\"dot high\"></span>50 % and more</p>");
    svg
}

async fn vehicle(visit: &Visit<'_>, org: &str, caller: &Caller, id: &str) -> Result<View, ApiError> {
    let vehicle = visit.get(caller, &format!("/vehicles/{id}"), None).await?;
    let vehicle_id = uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found("no such vehicle"))?;
    let database = &visit.console.api.database;
    let tenant = caller.tenant.as_str();
    let reports = readside::fleet::states::recent(database, tenant, vehicle_id, 20).await.map_err(db_error)?;
    let sent = readside::fleet::commands::recent(database, tenant, vehicle_id, 20).await.map_err(db_error)?;
    let master: Vec<Row> = MASTER_DATA
        .iter()
        .chain(&["subaccount_id", "status", "capabilities"])
        .map(|name| vec![esc(name), value(&vehicle[*name])])
        .collect();
    let custom: Vec<Row> =
        vehicle["custom_fields"].as_object().into_iter().flatten().map(|(name, v)| vec![esc(name), value(v)]).collect();
    let state: Vec<Row> = vehicle["state"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, reading)| reading.is_object())
        .map(|(name, reading)| vec![esc(name), value(&reading["value"]), time(&reading["time"])])
        .collect();
    let report_rows: Vec<Row> = reports
        .iter()
        .map(|(at, state)| {
            let read = |name: &str| state[name]["value"].clone();
            vec![
                esc(&at.format("%Y-%m-%d %H:%M:%S").to_string()),
                value(&read("charge_level")),
                value(&read("position")),
                value(&read("speed")),
            ]
        })
        .collect();
    let command_rows: Vec<Row> = sent
        .iter()
        .map(|c| {
            let c = serde_json::to_value(c).unwrap_or_default();
            vec![
                format!(
                    "<a href=\"/admin/orgs/{}/vehicle-commands/{}\">{}</a>",
                    esc(org),
                    value(&c["id"]),
                    value(&c["command"])
                ),
                value(&c["status"]),
                value(&c["reason"]),
                time(&c["created_at"]),
            ]
        })
        .collect();
    let capabilities: Vec<(String, String)> = vehicle["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| (c.to_owned(), c.replace('-', " ")))
        .collect();
    let options: Vec<(&str, &str)> = capabilities.iter().map(|(v, t)| (v.as_str(), t.as_str())).collect();
    let command = if options.is_empty() {
        "<p class=\"empty\">This vehicle takes no command.</p>".to_owned()
    } else {
        html::form(
            &format!("/admin/orgs/{org}/vehicles/{id}/commands"),
            &visit.csrf(),
            &html::select("command", "Command", &options, ""),
            "Send command",
            "inline",
        )
    };
    Ok(View::Page {
        title: format!("Vehicle {}", name_of(&vehicle)),
        organisation: Some(org.into()),
        body: format!(
            "<section><h2>Master data</h2>{}</section><section><h2>Custom fields</h2>{}</section>\
             <section><h2>Latest state</h2>{}</section><section><h2>Send a command</h2>{command}</section>\
             <section><h2>Recent commands</h2>{}</section><section><h2>Recent reports</h2>{}</section>",
            html::table("master-data", &["Field", "Value"], &master, ""),
            html::table("custom-fields", &["Field", "Value"], &custom, "No custom field."),
            html::table("latest-state", &["Property", "Value", "Reported"], &state, "No report yet."),
            html::table("recent-commands", &["Command", "Status", "Reason", "Sent"], &command_rows, "No command yet."),
            html::table("recent-reports", &["Received", "Charge", "Position", "Speed"], &report_rows, "No report yet."),
        ),
    })
}
