//! The zone routes: listed and read with `zones:read` (the seed's only zone permission), which
//! zones hold a point, and zones created, replaced and deleted by an organisation admin, each a
//! command answered by the `zones` consumers.

use http::StatusCode;
use readside::Deleted;
use readside::zones::{self, StoredZone};
use schemars::JsonSchema;
use schemas::vehicles::Position;
use schemas::zones::{DeleteZone, UpsertZone, Zone, ZoneType};
use serde::Deserialize;
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::routes::Call;
use crate::edge::partner::vehicles::position_of;
use crate::edge::query::page_and_filters;
use crate::edge::router::QueryFilter;

/// Most points in a zone's polygon.
const MAX_POINTS: usize = 1_000;

/// Filters of the zone list.
pub(crate) const FILTERS: &[QueryFilter] = &[QueryFilter {
    name: "type",
    values: &["parking", "no_ride", "no_parking", "slow", "operating"],
    description: "Only zones of this type.",
}];

/// The place asked about.
pub(crate) const POINT: &[QueryFilter] = &[
    QueryFilter { name: "lat", values: &[], description: "Latitude, degrees (required)." },
    QueryFilter { name: "lng", values: &[], description: "Longitude, degrees (required)." },
];

/// `POST /zones`, `PUT /zones/{id}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZoneBody {
    /// The subaccount; defaults to the one the request acts on.
    subaccount_id: Option<Uuid>,
    /// Display name (1 to 100 characters).
    #[schemars(length(min = 1, max = 100))]
    name: String,
    /// `parking`, `no_parking`, `no_ride`, `slow` or `operating`.
    #[serde(rename = "type")]
    zone_type: ZoneType,
    /// Ring of `[longitude, latitude]` points (4 to 1,000; closed if the last is not the first).
    #[schemars(length(min = 3, max = 1000))]
    polygon: Vec<[f64; 2]>,
    /// Speed limit inside, km/h (1 to 200).
    #[schemars(range(min = 1, max = 200))]
    speed_limit_kmh: Option<u16>,
}

fn zone_of(call: &Call, body: ZoneBody) -> Result<(Uuid, Zone), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "name must be 1 to 100 characters"));
    }
    let mut polygon = body.polygon;
    if polygon.len() > 1 && polygon.first() == polygon.last() {
        polygon.pop();
    }
    if polygon.len() < 3 || polygon.len() >= MAX_POINTS {
        return Err(ApiError::invalid("polygon", format!("a polygon has 3 to {} distinct corners", MAX_POINTS - 1)));
    }
    for [longitude, latitude] in &polygon {
        let fine = longitude.is_finite()
            && latitude.is_finite()
            && (-180.0..=180.0).contains(longitude)
            && (-90.0..=90.0).contains(latitude);
        if !fine {
            return Err(ApiError::invalid("polygon", "points are [longitude -180..180, latitude -90..90]"));
        }
    }
    if body.speed_limit_kmh.is_some_and(|s| !(1..=200).contains(&s)) {
        return Err(ApiError::invalid("speed_limit_kmh", "speed_limit_kmh must be 1 to 200"));
    }
    let subaccount_id = body.subaccount_id.or(call.caller.subaccount).ok_or_else(|| {
        ApiError::invalid("subaccount_id", "name the zone's subaccount: subaccount_id, or X-Subaccount-Id")
    })?;
    if call.caller.fleets().is_some_and(|fleets| !fleets.contains(&subaccount_id)) {
        return Err(ApiError::forbidden("this key may not act on that subaccount"));
    }
    Ok((
        subaccount_id,
        Zone { name: name.to_owned(), zone_type: body.zone_type, polygon, speed_limit_kmh: body.speed_limit_kmh },
    ))
}

async fn find(api: &PartnerApi, call: &Call) -> Result<StoredZone, ApiError> {
    let id = call.id("id")?;
    let zone = zones::find(&api.database, call.caller.tenant.as_str(), id).await.map_err(db_error)?;
    let seen = |z: &StoredZone| call.caller.fleets().is_none_or(|fleets| fleets.contains(&z.subaccount_id));
    zone.filter(seen).ok_or_else(|| ApiError::not_found(format!("no zone {id}")))
}

/// `GET /zones`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), FILTERS)?;
    let zone_type = values
        .iter()
        .find(|(n, _)| *n == "type")
        .and_then(|(_, v)| serde_json::from_value::<ZoneType>(serde_json::Value::String(v.clone())).ok());
    let fleets = call.caller.fleets();
    let tenant = call.caller.tenant.as_str();
    let (items, total) = zones::list(&api.database, tenant, fleets.as_deref(), zone_type, page.offset(), page.limit)
        .await
        .map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `GET /zones/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(find(api, &call).await?))
}

/// `GET /zones/containing?lat=…&lng=…`.
pub(crate) async fn containing(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), POINT)?;
    let point: Position = position_of(&values)?;
    let fleets = call.caller.fleets();
    let tenant = call.caller.tenant.as_str();
    let found = zones::containing(&api.database, tenant, fleets.as_deref(), point).await.map_err(db_error)?;
    Ok(Answer::page_of(found, page))
}

/// `POST /zones`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (subaccount_id, zone) = zone_of(&call, parse_body(&call.body)?)?;
    let upsert = UpsertZone { zone_id: Uuid::now_v7(), subaccount_id, zone };
    let stored: StoredZone = api.bus.request(&command(&call, upsert), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, stored))
}

/// `PUT /zones/{id}`.
pub(crate) async fn replace(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let current = find(api, &call).await?;
    let (subaccount_id, zone) = zone_of(&call, parse_body(&call.body)?)?;
    let upsert = UpsertZone { zone_id: current.id, subaccount_id, zone };
    let stored: StoredZone = api.bus.request(&command(&call, upsert), api.settings.command_timeout).await?;
    Ok(Answer::ok(stored))
}

/// `DELETE /zones/{id}`.
pub(crate) async fn delete(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let current = find(api, &call).await?;
    let deleted: Deleted =
        api.bus.request(&command(&call, DeleteZone { zone_id: current.id }), api.settings.command_timeout).await?;
    Ok(Answer::ok(deleted))
}
