//! Rides (Levy Fleets): start, pause, resume, end, and the `ride.*` events with the seed's payload.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Currency;
use crate::Reach;
use crate::message::message;

/// Start a ride (`POST /rides {customer_id, vehicle_id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartRide {
    /// New ride's id.
    pub ride_id: Uuid,
    /// Customer riding.
    pub customer_id: Uuid,
    /// Vehicle ridden.
    pub vehicle_id: Uuid,
    /// Where the ride starts, if the app knows (else the vehicle's last position).
    pub start_latitude: Option<f64>,
    /// Where the ride starts.
    pub start_longitude: Option<f64>,
}
message!(StartRide, "ride.start", (1, 0), Command(Rides), Rides, |m| Some(m.ride_id.to_string()));

/// Pause a ride.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PauseRide {
    /// Ride.
    pub ride_id: Uuid,
}
message!(PauseRide, "ride.pause", (1, 0), Command(Rides), Rides, |m| Some(m.ride_id.to_string()));

/// Resume a paused ride.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResumeRide {
    /// Ride.
    pub ride_id: Uuid,
}
message!(ResumeRide, "ride.resume", (1, 0), Command(Rides), Rides, |m| Some(m.ride_id.to_string()));

/// End a ride (`POST /rides/{id}/end {end_latitude, end_longitude}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EndRide {
    /// Ride.
    pub ride_id: Uuid,
    /// End position.
    pub end_latitude: f64,
    /// End position.
    pub end_longitude: f64,
}
message!(EndRide, "ride.end", (1, 0), Command(Rides), Rides, |m| Some(m.ride_id.to_string()));

/// Levy Fleets `ride.started`: a customer unlocked a vehicle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RideStarted {
    /// Ride.
    pub ride_id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Customer's number.
    pub customer_number: Option<u64>,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Vehicle's number.
    pub vehicle_number: Option<String>,
    /// Start time.
    pub start_time: DateTime<Utc>,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    RideStarted,
    "ride.started",
    (1, 0),
    Event,
    Rides,
    |m| Some(m.ride_id.to_string()),
    offered(RidesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// Levy Fleets `ride.paused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RidePaused {
    /// Ride.
    pub ride_id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// When.
    pub paused_at: DateTime<Utc>,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    RidePaused,
    "ride.paused",
    (1, 0),
    Event,
    Rides,
    |m| Some(m.ride_id.to_string()),
    offered(RidesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// Levy Fleets `ride.resumed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RideResumed {
    /// Ride.
    pub ride_id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// When.
    pub resumed_at: DateTime<Utc>,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    RideResumed,
    "ride.resumed",
    (1, 0),
    Event,
    Rides,
    |m| Some(m.ride_id.to_string()),
    offered(RidesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// The price breakdown of a ride, in minor units (the seed's `pricing` object plus its currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RidePricing {
    /// What the customer pays.
    pub total_cents: i64,
    /// Unlock fee.
    pub unlock_cents: i64,
    /// Riding and paused time.
    pub time_cents: i64,
    /// Distance.
    pub distance_cents: i64,
    /// Discounts applied (positive number, subtracted).
    pub discount_cents: i64,
    /// What the plan's minimum fare added (positive) or its cap took off (negative), so that
    /// `total = unlock + time + distance + adjustment - discount` always holds.
    #[serde(default)]
    pub adjustment_cents: i64,
    /// ISO-4217 currency of every amount above.
    pub currency: Currency,
}

/// Whether the ride has been paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Charged to the wallet.
    Paid,
    /// Not yet charged.
    Pending,
    /// Charge failed.
    Failed,
    /// Priced here, collected by the marketplace the customer came through (Etvas): never
    /// charged to a wallet of ours.
    CollectedByMarketplace,
}

/// Levy Fleets `ride.ended`, field for field as the seed's webhook payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RideEnded {
    /// Ride.
    pub ride_id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Customer's number.
    pub customer_number: Option<u64>,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Vehicle's number.
    pub vehicle_number: Option<String>,
    /// Start time.
    pub start_time: DateTime<Utc>,
    /// End time.
    pub end_time: DateTime<Utc>,
    /// Billed minutes.
    pub duration_minutes: u32,
    /// Distance from telemetry, km (a measurement, not money).
    pub distance_km: f64,
    /// Price breakdown.
    pub pricing: RidePricing,
    /// Payment state.
    pub payment_status: PaymentStatus,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    RideEnded,
    "ride.ended",
    (1, 2),
    Event,
    Rides,
    |m| Some(m.ride_id.to_string()),
    offered(RidesRead, |m| Reach::Subaccount(m.subaccount_id))
);
