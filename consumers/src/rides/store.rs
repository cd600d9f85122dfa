//! The `rides` table. Every statement names the tenant.

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use readside::columns::{name_of, to_json};
pub(crate) use readside::rides::{COLUMNS, Ride, Stored, TABLE, find_locked, in_progress_of, unpaid};

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
