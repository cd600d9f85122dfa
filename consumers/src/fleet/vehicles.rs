//! The `vehicles` table's writes: vehicles added, changed, removed. Reading them (with their
//! latest state) is `readside::fleet::vehicles`'.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

use super::states;
use readside::columns::{name_of, to_json};
pub use readside::fleet::vehicles::{
    COLUMNS, Filter, Nearby, TABLE, Vehicle, find, find_all, find_locked, from_row, list, nearby,
};

/// The values of `vehicle`'s own columns, in [`COLUMNS`] order.
fn values(tenant: &str, vehicle: &Vehicle) -> Vec<SimpleExpr> {
    let m = &vehicle.master_data;
    vec![
        vehicle.id.into(),
        tenant.into(),
        vehicle.subaccount_id.into(),
        vehicle.vin().into(),
        m.vehicle_number.clone().into(),
        m.license_plate.clone().into(),
        m.vehicle_type.clone().into(),
        m.brand.clone().into(),
        m.model.clone().into(),
        m.transmission.as_ref().map(name_of).into(),
        m.telematics_unit_id.clone().into(),
        to_json(&vehicle.custom_fields).into(),
        to_json(&vehicle.capabilities).into(),
        name_of(&vehicle.status).into(),
        vehicle.created_at.into(),
        vehicle.updated_at.into(),
    ]
}

/// Adds `vehicle` and its empty state; false (and nothing written) if its id, VIN or telematics
/// unit is taken in the organisation.
pub async fn insert(db: &impl ConnectionTrait, tenant: &str, vehicle: &Vehicle) -> Result<bool, DbErr> {
    let insert = Query::insert()
        .into_table(TABLE)
        .columns(COLUMNS)
        .values_panic(values(tenant, vehicle))
        // Any unique index: the id, the VIN or the unit.
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned();
    if db.execute(&insert).await?.rows_affected() == 0 {
        return Ok(false);
    }
    states::insert_empty(db, tenant, vehicle.id).await?;
    Ok(true)
}

/// Writes `vehicle`'s master data, custom fields, capabilities and status.
pub async fn update(db: &impl ConnectionTrait, tenant: &str, vehicle: &Vehicle) -> Result<(), DbErr> {
    let mut update = Query::update().table(TABLE).to_owned();
    for (column, value) in COLUMNS.iter().zip(values(tenant, vehicle)) {
        if !matches!(*column, "vehicle_id" | "tenant" | "created_at") {
            update.value(Alias::new(*column), value);
        }
    }
    update.and_where(Expr::col("tenant").eq(tenant)).and_where(Expr::col("vehicle_id").eq(vehicle.id));
    db.execute(&update).await?;
    Ok(())
}

/// Removes vehicle `id` and its latest state (its history stays until it ages out); false if
/// `tenant` has no such vehicle.
pub async fn delete(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<bool, DbErr> {
    let delete = Query::delete()
        .from_table(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("vehicle_id").eq(id))
        .to_owned();
    if db.execute(&delete).await?.rows_affected() == 0 {
        return Ok(false);
    }
    states::delete(db, tenant, id).await?;
    Ok(true)
}

/// Another vehicle of `tenant` than `id` with this VIN or telematics unit, and which of the two
/// it shares.
pub async fn taken_by(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    vin: &str,
    unit: Option<&str>,
) -> Result<Option<(Uuid, &'static str)>, DbErr> {
    let mut same = Expr::col("vin").eq(vin);
    if let Some(unit) = unit {
        same = same.or(Expr::col("telematics_unit_id").eq(unit));
    }
    let query = Query::select()
        .columns(["vehicle_id", "vin"])
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("vehicle_id").ne(id))
        .and_where(same)
        .limit(1)
        .to_owned();
    let Some(row) = db.query_one(&query).await? else { return Ok(None) };
    let other = Other::from_query_result(&row, "")?;
    Ok(Some((other.vehicle_id, if other.vin == vin { "vin" } else { "telematics_unit_id" })))
}

/// The vehicle [`taken_by`] found.
#[derive(FromQueryResult)]
struct Other {
    vehicle_id: Uuid,
    vin: String,
}
