//! The ride routes (`rides:read`, `rides:write`): rides listed and read, started, paused, resumed
//! and ended, each a command answered by the `rides` consumers. A request sees the rides of the
//! fleets it acts on.

use http::StatusCode;
use readside::fleet::vehicles;
use readside::rides::{self as store, Filter, Ride, RideStatus};
use schemars::JsonSchema;
use schemas::Message;
use schemas::rides::{EndRide, PauseRide, ResumeRide, StartRide};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::customers;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_and_filters;
use crate::edge::router::QueryFilter;

/// Filters of the ride list.
pub(crate) const FILTERS: &[QueryFilter] = &[
    QueryFilter { name: "status", values: &["active", "paused", "ended"], description: "Only rides in this status." },
    QueryFilter { name: "customer_id", values: &[], description: "Only this customer's rides." },
    QueryFilter { name: "vehicle_id", values: &[], description: "Only rides of this vehicle." },
];

/// `POST /rides`: the seed's `{customer_id, vehicle_id}`, and where the ride starts if the app
/// knows better than the vehicle's last report.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRide {
    /// Customer.
    customer_id: Uuid,
    /// Vehicle.
    vehicle_id: Uuid,
    /// Start latitude, degrees (with `start_longitude`).
    start_latitude: Option<f64>,
    /// Start longitude, degrees.
    start_longitude: Option<f64>,
}

/// `POST /rides/{id}/end`: the seed's `{end_latitude, end_longitude}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RideEnd {
    /// End latitude, degrees.
    end_latitude: f64,
    /// End longitude, degrees.
    end_longitude: f64,
}

fn check_position(latitude: f64, longitude: f64, field: &str) -> Result<(), ApiError> {
    if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "latitude is -90 to 90, longitude -180 to 180"))
    }
}

/// Ride `{id}`, if the request may see it.
async fn find(api: &PartnerApi, call: &Call) -> Result<Ride, ApiError> {
    let id = call.id("id")?;
    let ride = store::find(&api.database, call.caller.tenant.as_str(), id).await.map_err(db_error)?;
    ride.filter(|r| call.caller.fleets().is_none_or(|fleets| fleets.contains(&r.subaccount_id)))
        .ok_or_else(|| ApiError::not_found(format!("no ride {id}")).details(json!({ "ride_id": id })))
}

/// `GET /rides`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), FILTERS)?;
    let mut filter = Filter { subaccounts: call.caller.fleets(), ..Filter::default() };
    for (name, value) in values {
        let id = || Uuid::parse_str(&value).map_err(|_| ApiError::invalid(name, format!("{name} must be a UUID")));
        match name {
            "status" => filter.status = serde_json::from_value::<RideStatus>(Value::String(value.clone())).ok(),
            "customer_id" => filter.customer_id = Some(id()?),
            "vehicle_id" => filter.vehicle_id = Some(id()?),
            _ => {}
        }
    }
    let tenant = call.caller.tenant.as_str();
    let (items, total) =
        store::list(&api.database, tenant, &filter, page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `GET /rides/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(find(api, &call).await?))
}

/// `POST /rides`.
pub(crate) async fn start(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewRide = parse_body(&call.body)?;
    match (request.start_latitude, request.start_longitude) {
        (Some(latitude), Some(longitude)) => check_position(latitude, longitude, "start_latitude")?,
        (None, None) => {}
        _ => {
            return Err(ApiError::invalid(
                "start_latitude",
                "give both start_latitude and start_longitude, or neither",
            ));
        }
    }
    // Both must be the request's to see: another fleet's vehicle or customer is as unknown as
    // another organisation's.
    let tenant = call.caller.tenant.as_str();
    let vehicle = vehicles::find(&api.database, tenant, request.vehicle_id).await.map_err(db_error)?;
    if !vehicle.is_some_and(|v| call.caller.fleets().is_none_or(|f| f.contains(&v.subaccount_id))) {
        return Err(ApiError::not_found(format!("no vehicle {}", request.vehicle_id))
            .details(json!({ "vehicle_id": request.vehicle_id })));
    }
    let customer_call = Call { params: vec![("id".into(), request.customer_id.to_string())], ..call };
    customers::find(api, &customer_call).await?;
    let start = StartRide {
        ride_id: Uuid::now_v7(),
        customer_id: request.customer_id,
        vehicle_id: request.vehicle_id,
        start_latitude: request.start_latitude,
        start_longitude: request.start_longitude,
    };
    let ride: Ride = api.bus.request(&command(&customer_call, start), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, ride))
}

/// `POST /rides/{id}/pause`.
pub(crate) async fn pause(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    step(api, call, |ride_id| PauseRide { ride_id }).await
}

/// `POST /rides/{id}/resume`.
pub(crate) async fn resume(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    step(api, call, |ride_id| ResumeRide { ride_id }).await
}

/// Sends the command `step` makes of ride `{id}`, if the request may see it.
async fn step<M: Message>(api: &PartnerApi, call: Call, step: impl FnOnce(Uuid) -> M) -> Result<Answer, ApiError> {
    let ride = find(api, &call).await?;
    let moved: Ride = api.bus.request(&command(&call, step(ride.id)), api.settings.command_timeout).await?;
    Ok(Answer::ok(moved))
}

/// `POST /rides/{id}/end`.
pub(crate) async fn end(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: RideEnd = parse_body(&call.body)?;
    check_position(request.end_latitude, request.end_longitude, "end_latitude")?;
    let (end_latitude, end_longitude) = (request.end_latitude, request.end_longitude);
    step(api, call, |ride_id| EndRide { ride_id, end_latitude, end_longitude }).await
}
