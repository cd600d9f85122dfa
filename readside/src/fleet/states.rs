//! What vehicles reported, as read: `vehicle_states`, the latest value of each property with the
//! time the vehicle measured it, and `vehicle_state_history`, every report as received.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::vehicles::{IgnitionState, LockState, Position, Reading, VehicleState};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, Named};

/// The latest state's table.
pub const TABLE: &str = "vehicle_states";
/// Every report as received.
pub const HISTORY: &str = "vehicle_state_history";

/// Columns of `vehicle_states` besides its key and tenant.
pub const READ_COLUMNS: [&str; 18] = [
    "charge_level",
    "charge_level_at",
    "latitude",
    "longitude",
    "position_at",
    "odometer",
    "odometer_at",
    "remaining_range",
    "remaining_range_at",
    "speed",
    "speed_at",
    "central_lock",
    "central_lock_at",
    "ignition",
    "ignition_at",
    "announced_latitude",
    "announced_longitude",
    "received_at",
];

/// The latest reading of every property a vehicle reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatestState {
    /// Each property's latest reading.
    #[serde(flatten)]
    pub state: VehicleState,
    /// When the last report arrived.
    pub received_at: Option<DateTime<Utc>>,
}

/// A row of [`READ_COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    charge_level: Option<i16>,
    charge_level_at: Option<DateTime<Utc>>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    position_at: Option<DateTime<Utc>>,
    odometer: Option<i64>,
    odometer_at: Option<DateTime<Utc>>,
    remaining_range: Option<i64>,
    remaining_range_at: Option<DateTime<Utc>>,
    speed: Option<f64>,
    speed_at: Option<DateTime<Utc>>,
    central_lock: Option<Named<LockState>>,
    central_lock_at: Option<DateTime<Utc>>,
    ignition: Option<Named<IgnitionState>>,
    ignition_at: Option<DateTime<Utc>>,
    received_at: Option<DateTime<Utc>>,
}

fn reading<T>(value: Option<T>, time: Option<DateTime<Utc>>) -> Option<Reading<T>> {
    Some(Reading { value: value?, time: time? })
}

/// A position from its two columns, when both are set.
pub fn position(latitude: Option<f64>, longitude: Option<f64>) -> Option<Position> {
    latitude.zip(longitude).map(|(latitude, longitude)| Position { latitude, longitude })
}

/// The latest state in a row holding [`READ_COLUMNS`] (all null for a vehicle that never reported).
pub fn from_row(row: &QueryResult) -> Result<LatestState, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(LatestState {
        state: VehicleState {
            charge_level: reading(row.charge_level.and_then(|c| u8::try_from(c).ok()), row.charge_level_at),
            position: reading(position(row.latitude, row.longitude), row.position_at),
            odometer: reading(row.odometer.and_then(|o| u64::try_from(o).ok()), row.odometer_at),
            remaining_range: reading(row.remaining_range.and_then(|r| u32::try_from(r).ok()), row.remaining_range_at),
            // Stored as a double; the reading was an f32 to begin with.
            #[allow(clippy::cast_possible_truncation)]
            speed: reading(row.speed.map(|s| s as f32), row.speed_at),
            central_lock: reading(row.central_lock.map(|n| n.0), row.central_lock_at),
            ignition: reading(row.ignition.map(|n| n.0), row.ignition_at),
        },
        received_at: row.received_at,
    })
}

/// A report of the history.
#[derive(FromQueryResult)]
struct Report {
    received_at: DateTime<Utc>,
    state: Json<serde_json::Value>,
}

/// The last `limit` state reports of `vehicle` in `tenant`, newest first, as received.
pub async fn recent(
    db: &impl ConnectionTrait,
    tenant: &str,
    vehicle: Uuid,
    limit: u64,
) -> Result<Vec<(DateTime<Utc>, serde_json::Value)>, DbErr> {
    let query = Query::select()
        .columns(["received_at", "state"])
        .from(HISTORY)
        .and_where(Expr::col("vehicle_id").eq(vehicle))
        .and_where(Expr::col("tenant").eq(tenant))
        .order_by("received_at", sea_orm::Order::Desc)
        .limit(limit)
        .to_owned();
    let rows = db.query_all(&query).await?;
    rows.iter().map(|row| Report::from_query_result(row, "").map(|r| (r.received_at, r.state.0))).collect()
}
