//! Chargers: each with its state, OCPP version and connection (which process holds its socket,
//! last heard from), and its session in progress with the meter; an operator resets one or gives
//! it a new OCPP password (shown once).

use http::Method;
use serde_json::{Value, json};

use super::html::{self, Row, esc, time, value};
use super::{View, Visit};
use crate::edge::envelope::ApiError;

/// `GET /admin/orgs/{org}/chargers`.
pub(super) async fn chargers(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    let listed = visit.get(&visit.caller(org)?, "/chargers", Some("limit=100".into())).await?;
    let csrf = visit.csrf();
    let rows: Vec<Row> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|charger| {
            let id = charger["id"].as_str().unwrap_or_default();
            let base = format!("/admin/orgs/{}/chargers/{}", esc(org), esc(id));
            let ocpp = &charger["ocpp"];
            let connection = match ocpp["node"].as_str() {
                Some(node) => format!("connected to <code>{}</code> since {}", esc(node), time(&ocpp["since"])),
                None if ocpp.is_null() => "never connected".into(),
                None => format!("disconnected since {}", time(&ocpp["since"])),
            };
            vec![
                value(&charger["device_number"]),
                value(&charger["state"]),
                value(&charger["connector_status"]),
                if ocpp.is_null() { "–".into() } else { format!("OCPP {}", value(&ocpp["version"])) },
                connection,
                time(&charger["last_seen_at"]),
                session(&charger["session"]),
                format!(
                    "{}{}",
                    html::button(&format!("{base}/reset"), &csrf, "Reset"),
                    html::button(&format!("{base}/password"), &csrf, "New password")
                ),
            ]
        })
        .collect();
    let table = html::table(
        "chargers",
        &["Number", "State", "Connector", "Version", "Connection", "Last heard", "Session", ""],
        &rows,
        "No charger yet: register one with POST /chargers.",
    );
    Ok(View::Page { title: "Chargers".into(), organisation: Some(org.into()), body: table })
}

/// A session in progress: since when, the energy so far and the meter's last reading.
fn session(session: &Value) -> String {
    if session.is_null() {
        return "–".into();
    }
    let kwh = |wh: &Value| wh.as_f64().map_or_else(|| "–".to_owned(), |wh| format!("{:.2} kWh", wh / 1000.0));
    format!(
        "since {}: <strong class=\"energy\">{}</strong> (meter {} at {})",
        time(&session["started_at"]),
        kwh(&session["energy_wh"]),
        kwh(&session["meter_wh"]),
        time(&session["meter_at"])
    )
}

/// `POST /admin/orgs/{org}/chargers/{id}/reset`: a soft reset, through whichever process holds the
/// charger's socket.
pub(super) async fn reset(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let path = format!("/chargers/{id}/reset");
    visit.call(&visit.caller(org)?, Method::POST, &path, None, json!({ "type": "Soft" })).await?;
    Ok(View::Redirect(format!("/admin/orgs/{org}/chargers?notice=charger-reset")))
}

/// `POST /admin/orgs/{org}/chargers/{id}/password`: a new OCPP password, shown this once.
pub(super) async fn password(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let path = format!("/chargers/{id}/ocpp-password");
    let rotated = visit.call(&visit.caller(org)?, Method::POST, &path, None, Value::Null).await?;
    let data = &rotated["data"];
    Ok(View::Page {
        title: "New OCPP password".into(),
        organisation: Some(org.into()),
        body: format!(
            "{}<p>Set it in charger <strong>{}</strong> (HTTP Basic, its id <code>{}</code> as the user name); \
             the old password is refused from its next connection on.</p>\
             <p><a href=\"/admin/orgs/{}/chargers\" id=\"done\">I have stored it</a></p>",
            html::secret("OCPP password", data["ocpp_password"].as_str().unwrap_or_default()),
            value(&data["device_number"]),
            esc(id),
            esc(org)
        ),
    })
}
