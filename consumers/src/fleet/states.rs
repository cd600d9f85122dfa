//! What vehicles reported: `vehicle_states`, the latest value of each property with the time the
//! vehicle measured it (a newer reading never gives way to an older one, whatever order reports
//! arrive in), and `vehicle_state_history`, every report as received.

use chrono::{DateTime, Utc};
use schemas::vehicles::{Position, Reading, VehicleState};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, FromQueryResult};
use uuid::Uuid;

use readside::columns::{name_of, to_json};
pub use readside::fleet::states::{HISTORY, LatestState, READ_COLUMNS, TABLE, from_row, position, recent};

/// A vehicle's latest state as the ingest reads and writes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tracked {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Its fleet.
    pub subaccount_id: Uuid,
    /// Its fleet-visible number.
    pub vehicle_number: Option<String>,
    /// The latest readings.
    pub latest: LatestState,
    /// Where the last `vehicle.location_updated` placed it.
    pub announced: Option<Position>,
}

/// Keeps in `latest` each reading of `report` that is newer than the one it holds; true if any was.
pub(crate) fn merge(latest: &mut VehicleState, report: &VehicleState) -> bool {
    fn newer<T: Clone>(held: &mut Option<Reading<T>>, new: &Option<Reading<T>>) -> bool {
        match (held.as_ref(), new) {
            (_, None) => false,
            (Some(held), Some(new)) if new.time <= held.time => false,
            (_, Some(new)) => {
                *held = Some(new.clone());
                true
            }
        }
    }
    // Every property is looked at: no short-circuit.
    [
        newer(&mut latest.charge_level, &report.charge_level),
        newer(&mut latest.position, &report.position),
        newer(&mut latest.odometer, &report.odometer),
        newer(&mut latest.remaining_range, &report.remaining_range),
        newer(&mut latest.speed, &report.speed),
        newer(&mut latest.central_lock, &report.central_lock),
        newer(&mut latest.ignition, &report.ignition),
    ]
    .contains(&true)
}

/// A vehicle's row with no readings yet.
pub(crate) async fn insert_empty(db: &impl ConnectionTrait, tenant: &str, vehicle_id: Uuid) -> Result<(), DbErr> {
    let insert = Query::insert()
        .into_table(TABLE)
        .columns(["vehicle_id", "tenant"])
        .values_panic([vehicle_id.into(), tenant.into()])
        .on_conflict(OnConflict::column("vehicle_id").do_nothing().to_owned())
        .to_owned();
    db.execute(&insert).await.map(|_| ())
}

/// Forgets a removed vehicle's latest state.
pub(crate) async fn delete(db: &impl ConnectionTrait, tenant: &str, vehicle_id: Uuid) -> Result<(), DbErr> {
    let delete = Query::delete()
        .from_table(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("vehicle_id").eq(vehicle_id))
        .to_owned();
    db.execute(&delete).await.map(|_| ())
}

/// The vehicles of `tenant` among `ids` with their latest state, locked until the transaction
/// ends (PostgreSQL), so concurrent ingests of one vehicle take turns; unknown ids are left out.
pub(crate) async fn track(db: &impl ConnectionTrait, tenant: &str, ids: &[Uuid]) -> Result<Vec<Tracked>, DbErr> {
    let (v, s) = (Alias::new("v"), Alias::new("s"));
    let mut query = Query::select()
        .column((s.clone(), Alias::new("vehicle_id")))
        .column((v.clone(), Alias::new("subaccount_id")))
        .column((v.clone(), Alias::new("vehicle_number")))
        .to_owned();
    for column in READ_COLUMNS {
        query.column((s.clone(), Alias::new(column)));
    }
    query
        .from_as(TABLE, s.clone())
        .join_as(
            sea_orm::sea_query::JoinType::InnerJoin,
            Alias::new("vehicles"),
            v.clone(),
            Expr::col((v.clone(), Alias::new("vehicle_id"))).equals((s.clone(), Alias::new("vehicle_id"))),
        )
        .and_where(Expr::col((v, Alias::new("tenant"))).eq(tenant))
        .and_where(Expr::col((s.clone(), Alias::new("vehicle_id"))).is_in(ids.iter().copied()));
    if db.get_database_backend() == DatabaseBackend::Postgres {
        query.lock_with_tables(sea_orm::sea_query::LockType::Update, [s]);
    }
    let rows = db.query_all(&query).await?;
    rows.iter()
        .map(|row| {
            let vehicle = TrackedRow::from_query_result(row, "")?;
            Ok(Tracked {
                vehicle_id: vehicle.vehicle_id,
                subaccount_id: vehicle.subaccount_id,
                vehicle_number: vehicle.vehicle_number,
                latest: from_row(row)?,
                announced: position(vehicle.announced_latitude, vehicle.announced_longitude),
            })
        })
        .collect()
}

/// What [`track`] reads besides the latest state.
#[derive(FromQueryResult)]
struct TrackedRow {
    vehicle_id: Uuid,
    subaccount_id: Uuid,
    vehicle_number: Option<String>,
    announced_latitude: Option<f64>,
    announced_longitude: Option<f64>,
}

fn value_and_time<T, V: Into<SimpleExpr>>(reading: &Option<Reading<T>>, value: impl Fn(&T) -> V) -> [SimpleExpr; 2] {
    match reading {
        Some(r) => [value(&r.value).into(), r.time.into()],
        None => [Expr::cust("NULL"), Expr::cust("NULL")],
    }
}

/// Writes the latest state of every vehicle in `tracked`, one statement for all.
pub(crate) async fn write(db: &impl ConnectionTrait, tenant: &str, tracked: &[&Tracked]) -> Result<(), DbErr> {
    if tracked.is_empty() {
        return Ok(());
    }
    let mut columns = vec!["vehicle_id", "tenant"];
    columns.extend(READ_COLUMNS);
    let mut insert = Query::insert().into_table(TABLE).columns(columns.iter().copied()).to_owned();
    for vehicle in tracked {
        let state = &vehicle.latest.state;
        let mut row: Vec<SimpleExpr> = vec![vehicle.vehicle_id.into(), tenant.into()];
        row.extend(value_and_time(&state.charge_level, |c| i16::from(*c)));
        match &state.position {
            Some(p) => row.extend([p.value.latitude.into(), p.value.longitude.into(), p.time.into()]),
            None => row.extend([Expr::cust("NULL"), Expr::cust("NULL"), Expr::cust("NULL")]),
        }
        row.extend(value_and_time(&state.odometer, |o| i64::try_from(*o).unwrap_or(i64::MAX)));
        row.extend(value_and_time(&state.remaining_range, |r| i64::from(*r)));
        row.extend(value_and_time(&state.speed, |s| f64::from(*s)));
        row.extend(value_and_time(&state.central_lock, name_of));
        row.extend(value_and_time(&state.ignition, name_of));
        row.push(vehicle.announced.map(|p| p.latitude).into());
        row.push(vehicle.announced.map(|p| p.longitude).into());
        row.push(vehicle.latest.received_at.into());
        insert.values_panic(row);
    }
    let update: Vec<Alias> = READ_COLUMNS.iter().map(|c| Alias::new(*c)).collect();
    insert.on_conflict(OnConflict::column("vehicle_id").update_columns(update).to_owned());
    db.execute(&insert).await.map(|_| ())
}

/// One report for the history.
pub(crate) struct Report<'a> {
    /// The report's message id.
    pub message_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// What it reported.
    pub state: &'a VehicleState,
}

/// Records `reports` in the history, one statement for all; a report recorded before is skipped.
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    tenant: &str,
    received_at: DateTime<Utc>,
    reports: &[Report<'_>],
) -> Result<(), DbErr> {
    if reports.is_empty() {
        return Ok(());
    }
    let mut insert = Query::insert()
        .into_table(HISTORY)
        .columns(["message_id", "tenant", "vehicle_id", "received_at", "state"])
        .on_conflict(OnConflict::column("message_id").do_nothing().to_owned())
        .to_owned();
    for report in reports {
        insert.values_panic([
            report.message_id.into(),
            tenant.into(),
            report.vehicle_id.into(),
            received_at.into(),
            to_json(report.state).into(),
        ]);
    }
    db.execute(&insert).await.map(|_| ())
}

/// Deletes history received more than `kept` ago; how many reports went.
pub async fn purge_history(db: &impl ConnectionTrait, kept: std::time::Duration) -> Result<u64, DbErr> {
    // A retention longer than the calendar goes back: nothing is old enough.
    let Some(before) = bus::retention::cutoff(kept) else { return Ok(0) };
    bus::retention::purge_before(db, HISTORY, "received_at", bus::retention::Stamped::ByApplication, before).await
}
