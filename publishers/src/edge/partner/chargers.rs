//! The charger routes: organisation admins register chargers (`POST /chargers`, a command the
//! `chargers` group answers); any key of the organisation lists and reads them, with the state
//! their own status notifications keep current.

use http::StatusCode;
use readside::chargers::{self, Charger};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::charging::{RegisterCharger, ResetCharger, ResetKind, SetChargerPassword};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_and_filters;

/// `POST /chargers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargerBody {
    /// Public number, unique in the organisation (1 to 50 characters).
    #[schemars(length(min = 1, max = 50))]
    device_number: String,
    /// `[longitude, latitude]`.
    location: [f64; 2],
    /// Price per kWh, minor units (0 to 10,000,000).
    #[schemars(range(min = 0, max = 10_000_000))]
    price: i64,
    /// Price per minute connected without charging, minor units (0 to 10,000,000).
    #[schemars(range(min = 0, max = 10_000_000))]
    waiting_price: i64,
    /// ISO-4217 currency of both prices.
    currency: Currency,
}

/// A charger with its new OCPP password, shown this once.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct WithPassword {
    #[serde(flatten)]
    charger: Charger,
    /// The charger's OCPP password (HTTP Basic, its id as the user name); only its hash is kept.
    ocpp_password: Option<String>,
}

/// A new OCPP password and its hash.
fn new_password(api: &PartnerApi) -> Result<(String, String), ApiError> {
    let password = crate::edge::ocpp::new_password(&api.random).ok_or_else(|| {
        tracing::error!("no randomness for a charger's password");
        ApiError::internal()
    })?;
    let hash = crate::edge::ocpp::password_hash(&password);
    Ok((password, hash))
}

fn showing(charger: Charger, password: String, status: StatusCode) -> Answer {
    let answer = WithPassword { charger, ocpp_password: Some(password) };
    Answer::with_status(status, answer).withholding("ocpp_password")
}

/// `POST /chargers/{id}/ocpp-password`: a new password, the old one refused from the next
/// connection on.
pub(crate) async fn rotate_password(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let charger_id = call.id("id")?;
    let (password, hash) = new_password(api)?;
    let set = SetChargerPassword { charger_id, ocpp_password_hash: hash };
    let stored: Charger = api.bus.request(&command(&call, set), api.settings.command_timeout).await?;
    Ok(showing(stored, password, StatusCode::OK))
}

/// `POST /chargers/{id}/reset`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    /// `Soft` (when idle; the default) or `Hard` (at once).
    #[serde(default = "soft", rename = "type")]
    kind: ResetKind,
}

fn soft() -> ResetKind {
    ResetKind::Soft
}

/// `POST /chargers/{id}/reset`: OCPP's Reset to the charger, through whichever process holds its
/// socket (a charger offline gets none).
pub(crate) async fn reset(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let charger_id = call.id("id")?;
    let body: ResetBody = if call.body.is_empty() { ResetBody { kind: soft() } } else { parse_body(&call.body)? };
    let reset = ResetCharger { charger_id, kind: body.kind };
    let charger: Charger = api.bus.request(&command(&call, reset), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::ACCEPTED, charger))
}

/// `POST /chargers`.
pub(crate) async fn register(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let body: ChargerBody = parse_body(&call.body)?;
    let number = body.device_number.trim();
    if number.is_empty() || number.chars().count() > 50 {
        return Err(ApiError::invalid("device_number", "device_number must be 1 to 50 characters"));
    }
    let [longitude, latitude] = body.location;
    let placed = longitude.is_finite()
        && latitude.is_finite()
        && (-180.0..=180.0).contains(&longitude)
        && (-90.0..=90.0).contains(&latitude);
    if !placed {
        return Err(ApiError::invalid("location", "location is [longitude -180..180, latitude -90..90]"));
    }
    for (field, price) in [("price", body.price), ("waiting_price", body.waiting_price)] {
        if !(0..=10_000_000).contains(&price) {
            return Err(ApiError::invalid(field, format!("{field} must be 0 to 10,000,000 minor units")));
        }
    }
    let (password, hash) = new_password(api)?;
    let register = RegisterCharger {
        charger_id: Uuid::now_v7(),
        device_number: number.to_owned(),
        location: body.location,
        price: body.price,
        waiting_price: body.waiting_price,
        currency: body.currency,
        ocpp_password_hash: Some(hash),
    };
    let stored: Charger = api.bus.request(&command(&call, register), api.settings.command_timeout).await?;
    Ok(showing(stored, password, StatusCode::CREATED))
}

/// `GET /chargers`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, _) = page_and_filters(call.query.as_deref(), &[])?;
    let tenant = call.caller.tenant.as_str();
    let offline_after = api.settings.charger_offline_after;
    let (mut items, total) =
        chargers::list(&api.database, tenant, offline_after, page.offset(), page.limit).await.map_err(db_error)?;
    with_sessions(api, tenant, &mut items).await?;
    Ok(Answer::list(items, page, total))
}

/// Puts on each of `found` its session in progress.
async fn with_sessions(api: &PartnerApi, tenant: &str, found: &mut [Charger]) -> Result<(), ApiError> {
    let ids: Vec<Uuid> = found.iter().map(|charger| charger.id).collect();
    let mut sessions = readside::charging::in_progress_on(&api.database, tenant, &ids).await.map_err(db_error)?;
    for charger in found {
        charger.session = sessions.remove(&charger.id);
    }
    Ok(())
}

/// `GET /chargers/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let id = call.id("id")?;
    let tenant = call.caller.tenant.as_str();
    let found =
        chargers::find(&api.database, tenant, id, api.settings.charger_offline_after).await.map_err(db_error)?;
    let mut found = [found.ok_or_else(|| ApiError::not_found(format!("no charger {id}")))?];
    with_sessions(api, tenant, &mut found).await?;
    let [found] = found;
    Ok(Answer::ok(found))
}
