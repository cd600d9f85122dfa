//! The `rides` table (Levy Fleets rides). Every statement names the tenant.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::pricing::PricingPlan;
use schemas::rides::{PaymentStatus, RidePricing};
use schemas::vehicles::Position;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, Named, name_of};
use crate::fleet::states::position;

/// Where a ride stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RideStatus {
    /// Riding.
    Active,
    /// Paused: the vehicle stays the customer's, at the paused rate.
    Paused,
    /// Over and priced.
    Ended,
}

/// The table.
pub const TABLE: &str = "rides";

/// The columns a [`Stored`] ride is read from.
pub const COLUMNS: [&str; 21] = [
    "ride_id",
    "subaccount_id",
    "customer_id",
    "vehicle_id",
    "status",
    "plan",
    "started_at",
    "paused_at",
    "paused_ms",
    "ended_at",
    "start_latitude",
    "start_longitude",
    "end_latitude",
    "end_longitude",
    "start_odometer",
    "distance_m",
    "pricing",
    "payment_status",
    "charge_entry_id",
    "updated_at",
    "tenant",
];

/// A ride as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ride {
    /// Ride id.
    pub id: Uuid,
    /// The fleet of the vehicle ridden.
    pub subaccount_id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Active, paused or ended.
    pub status: RideStatus,
    /// Started.
    pub start_time: DateTime<Utc>,
    /// Since when it is paused, while paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// Time paused before now, milliseconds (the current pause not included).
    pub paused_ms: i64,
    /// Ended.
    pub end_time: Option<DateTime<Utc>>,
    /// Where it started, if known.
    pub start_position: Option<Position>,
    /// Where it ended.
    pub end_position: Option<Position>,
    /// Distance ridden, metres, once ended.
    pub distance_m: Option<i64>,
    /// Price breakdown, once ended.
    pub pricing: Option<RidePricing>,
    /// Whether the price was charged to the wallet, once ended.
    pub payment_status: Option<PaymentStatus>,
    /// The wallet entry that charged it.
    pub charge_entry_id: Option<Uuid>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A ride with what only the consumers need: the plan it started under and the odometer then.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// As partners see it.
    pub ride: Ride,
    /// The plan it started under.
    pub plan: PricingPlan,
    /// The odometer at the start, metres.
    pub start_odometer: Option<i64>,
}

/// What the ride list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these subaccounts' rides; `None`: all.
    pub subaccounts: Option<Vec<Uuid>>,
    /// One status.
    pub status: Option<RideStatus>,
    /// One customer's.
    pub customer_id: Option<Uuid>,
    /// One vehicle's.
    pub vehicle_id: Option<Uuid>,
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    ride_id: Uuid,
    subaccount_id: Uuid,
    customer_id: Uuid,
    vehicle_id: Uuid,
    status: Named<RideStatus>,
    plan: Json<PricingPlan>,
    started_at: DateTime<Utc>,
    paused_at: Option<DateTime<Utc>>,
    paused_ms: i64,
    ended_at: Option<DateTime<Utc>>,
    start_latitude: Option<f64>,
    start_longitude: Option<f64>,
    end_latitude: Option<f64>,
    end_longitude: Option<f64>,
    start_odometer: Option<i64>,
    distance_m: Option<i64>,
    pricing: Option<Json<RidePricing>>,
    payment_status: Option<Named<PaymentStatus>>,
    charge_entry_id: Option<Uuid>,
    updated_at: DateTime<Utc>,
}

/// A ride from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<Stored, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(Stored {
        ride: Ride {
            id: row.ride_id,
            subaccount_id: row.subaccount_id,
            customer_id: row.customer_id,
            vehicle_id: row.vehicle_id,
            status: row.status.0,
            start_time: row.started_at,
            paused_at: row.paused_at,
            paused_ms: row.paused_ms,
            end_time: row.ended_at,
            start_position: position(row.start_latitude, row.start_longitude),
            end_position: position(row.end_latitude, row.end_longitude),
            distance_m: row.distance_m,
            pricing: row.pricing.map(|p| p.0),
            payment_status: row.payment_status.map(|p| p.0),
            charge_entry_id: row.charge_entry_id,
            updated_at: row.updated_at,
        },
        plan: row.plan.0,
        start_odometer: row.start_odometer,
    })
}

/// `tenant`'s rides.
pub fn select(tenant: &str) -> SelectStatement {
    Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned()
}

/// Ride `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Ride>, DbErr> {
    let query = select(tenant).and_where(Expr::col("ride_id").eq(id)).to_owned();
    Ok(db.query_one(&query).await?.as_ref().map(from_row).transpose()?.map(|s| s.ride))
}

/// Ride `id`, locked until the transaction ends (PostgreSQL).
pub async fn find_locked(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Stored>, DbErr> {
    let mut query = select(tenant).and_where(Expr::col("ride_id").eq(id)).to_owned();
    crate::columns::for_update(db, &mut query);
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// A ride in progress, written out rather than bound: a prepared statement's generic plan can
/// then use the partial indexes of rides in progress (`rides_vehicle_busy`, `rides_customer_busy`).
fn not_ended() -> Expr {
    Expr::cust("status <> 'ended'")
}

/// The ride in progress whose `column` (`customer_id`, `vehicle_id`) is `id`, if any.
pub async fn in_progress(
    db: &impl ConnectionTrait,
    tenant: &str,
    column: &'static str,
    id: Uuid,
) -> Result<Option<Uuid>, DbErr> {
    let query = Query::select()
        .column("ride_id")
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col(column).eq(id))
        .and_where(not_ended())
        .to_owned();
    db.query_one(&query).await?.map(|row| row.try_get("", "ride_id")).transpose()
}

/// The rides in progress of `vehicle_id` and of `customer_id`, in one statement.
pub async fn in_progress_of(
    db: &impl ConnectionTrait,
    tenant: &str,
    vehicle_id: Uuid,
    customer_id: Uuid,
) -> Result<(Option<Uuid>, Option<Uuid>), DbErr> {
    let query = Query::select()
        .columns(["ride_id", "vehicle_id", "customer_id"])
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("vehicle_id").eq(vehicle_id).or(Expr::col("customer_id").eq(customer_id)))
        .and_where(not_ended())
        .to_owned();
    let (mut of_vehicle, mut of_customer) = (None, None);
    for row in db.query_all(&query).await? {
        let ride: Uuid = row.try_get("", "ride_id")?;
        if row.try_get::<Uuid>("", "vehicle_id")? == vehicle_id {
            of_vehicle = Some(ride);
        }
        if row.try_get::<Uuid>("", "customer_id")? == customer_id {
            of_customer = Some(ride);
        }
    }
    Ok((of_vehicle, of_customer))
}

/// An ended ride of `customer_id` that its wallet could not pay, locked, if any.
pub async fn unpaid(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid) -> Result<Option<Stored>, DbErr> {
    let mut query = select(tenant)
        .and_where(Expr::col("customer_id").eq(customer_id))
        .and_where(Expr::col("payment_status").eq(name_of(&PaymentStatus::Failed)))
        .order_by("started_at", Order::Asc)
        .limit(1)
        .to_owned();
    crate::columns::for_update(db, &mut query);
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// One page of `tenant`'s rides that pass `filter`, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Ride>, u64), DbErr> {
    let mut query = select(tenant);
    if let Some(subaccounts) = &filter.subaccounts {
        query.and_where(Expr::col("subaccount_id").is_in(subaccounts.iter().copied()));
    }
    if let Some(status) = filter.status {
        query.and_where(Expr::col("status").eq(name_of(&status)));
    }
    if let Some(customer) = filter.customer_id {
        query.and_where(Expr::col("customer_id").eq(customer));
    }
    if let Some(vehicle) = filter.vehicle_id {
        query.and_where(Expr::col("vehicle_id").eq(vehicle));
    }
    query.order_by("started_at", Order::Desc).order_by("ride_id", Order::Desc);
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(|r| from_row(r).map(|s| s.ride)).collect::<Result<_, _>>()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_out_status_of_rides_in_progress_is_the_stored_name_of_ended() {
        assert_eq!(name_of(&RideStatus::Ended), "ended");
    }
}
