//! The `rides` table. Every statement names the tenant.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::pricing::PricingPlan;
use schemas::rides::{PaymentStatus, RidePricing};
use schemas::vehicles::Position;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::machine::RideStatus;
use crate::columns::{from_name, json_column, name_of, to_json};

const TABLE: &str = "rides";
const COLUMNS: [&str; 21] = [
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
pub(crate) struct Stored {
    pub ride: Ride,
    pub plan: PricingPlan,
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

fn position(row: &QueryResult, latitude: &str, longitude: &str) -> Result<Option<Position>, DbErr> {
    let (lat, lng): (Option<f64>, Option<f64>) = (row.try_get("", latitude)?, row.try_get("", longitude)?);
    Ok(lat.zip(lng).map(|(latitude, longitude)| Position { latitude, longitude }))
}

fn from_row(row: &QueryResult) -> Result<Stored, DbErr> {
    let status: String = row.try_get("", "status")?;
    let payment: Option<String> = row.try_get("", "payment_status")?;
    let pricing: Option<String> = row.try_get("", "pricing")?;
    let pricing = match pricing {
        Some(_) => Some(json_column(row, TABLE, "pricing")?),
        None => None,
    };
    Ok(Stored {
        ride: Ride {
            id: row.try_get("", "ride_id")?,
            subaccount_id: row.try_get("", "subaccount_id")?,
            customer_id: row.try_get("", "customer_id")?,
            vehicle_id: row.try_get("", "vehicle_id")?,
            status: from_name(&status, TABLE, "status")?,
            start_time: row.try_get("", "started_at")?,
            paused_at: row.try_get("", "paused_at")?,
            paused_ms: row.try_get("", "paused_ms")?,
            end_time: row.try_get("", "ended_at")?,
            start_position: position(row, "start_latitude", "start_longitude")?,
            end_position: position(row, "end_latitude", "end_longitude")?,
            distance_m: row.try_get("", "distance_m")?,
            pricing,
            payment_status: payment.map(|p| from_name(&p, TABLE, "payment_status")).transpose()?,
            charge_entry_id: row.try_get("", "charge_entry_id")?,
            updated_at: row.try_get("", "updated_at")?,
        },
        plan: json_column(row, TABLE, "plan")?,
        start_odometer: row.try_get("", "start_odometer")?,
    })
}

fn select(tenant: &str) -> SelectStatement {
    Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned()
}

/// Ride `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Ride>, DbErr> {
    let query = select(tenant).and_where(Expr::col("ride_id").eq(id)).to_owned();
    Ok(db.query_one(&query).await?.as_ref().map(from_row).transpose()?.map(|s| s.ride))
}

/// Ride `id`, locked until the transaction ends (PostgreSQL).
pub(crate) async fn find_locked(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Stored>, DbErr> {
    let mut query = select(tenant).and_where(Expr::col("ride_id").eq(id)).to_owned();
    crate::database::for_update(db, &mut query);
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// The ride in progress whose `column` (`customer_id`, `vehicle_id`) is `id`, if any.
pub(crate) async fn in_progress(
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
        .and_where(Expr::col("status").ne(name_of(&RideStatus::Ended)))
        .to_owned();
    db.query_one(&query).await?.map(|row| row.try_get("", "ride_id")).transpose()
}

/// An ended ride of `customer_id` that its wallet could not pay, locked, if any.
pub(crate) async fn unpaid(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Option<Stored>, DbErr> {
    let mut query = select(tenant)
        .and_where(Expr::col("customer_id").eq(customer_id))
        .and_where(Expr::col("payment_status").eq(name_of(&PaymentStatus::Failed)))
        .order_by("started_at", Order::Asc)
        .limit(1)
        .to_owned();
    crate::database::for_update(db, &mut query);
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

/// Stores a new ride; false if its id is taken.
pub(crate) async fn insert(db: &impl ConnectionTrait, tenant: &str, stored: &Stored) -> Result<bool, DbErr> {
    let ride = &stored.ride;
    let start = ride.start_position;
    let insert = Query::insert()
        .into_table(TABLE)
        .columns(COLUMNS)
        .values_panic([
            ride.id.into(),
            ride.subaccount_id.into(),
            ride.customer_id.into(),
            ride.vehicle_id.into(),
            name_of(&ride.status).into(),
            to_json(&stored.plan).into(),
            ride.start_time.into(),
            ride.paused_at.into(),
            ride.paused_ms.into(),
            ride.end_time.into(),
            start.map(|p| p.latitude).into(),
            start.map(|p| p.longitude).into(),
            None::<f64>.into(),
            None::<f64>.into(),
            stored.start_odometer.into(),
            None::<i64>.into(),
            None::<String>.into(),
            None::<String>.into(),
            None::<Uuid>.into(),
            ride.updated_at.into(),
            tenant.into(),
        ])
        .on_conflict(sea_orm::sea_query::OnConflict::column("ride_id").do_nothing().to_owned())
        .to_owned();
    Ok(db.execute(&insert).await?.rows_affected() == 1)
}

/// Writes what a step changed: status, pause, end, price and payment.
pub(crate) async fn update(db: &impl ConnectionTrait, tenant: &str, ride: &Ride) -> Result<(), DbErr> {
    let end = ride.end_position;
    let update = Query::update()
        .table(TABLE)
        .value("status", name_of(&ride.status))
        .value("paused_at", ride.paused_at)
        .value("paused_ms", ride.paused_ms)
        .value("ended_at", ride.end_time)
        .value("end_latitude", end.map(|p| p.latitude))
        .value("end_longitude", end.map(|p| p.longitude))
        .value("distance_m", ride.distance_m)
        .value("pricing", ride.pricing.as_ref().map(to_json))
        .value("payment_status", ride.payment_status.as_ref().map(name_of))
        .value("charge_entry_id", ride.charge_entry_id)
        .value("updated_at", ride.updated_at)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("ride_id").eq(ride.id))
        .to_owned();
    db.execute(&update).await.map(|_| ())
}
