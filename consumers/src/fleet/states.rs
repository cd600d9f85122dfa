//! What vehicles reported: `vehicle_states`, the latest value of each property with the time the
//! vehicle measured it (a newer reading never gives way to an older one, whatever order reports
//! arrive in), and `vehicle_state_history`, every report as received.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use schemas::vehicles::{Position, Reading, VehicleState};
use sea_orm::sea_query::{Alias, ArrayType, Expr, ExprTrait, InsertStatement, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, FromQueryResult, Statement, Value};
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
        .and_where(Expr::col((v, Alias::new("tenant"))).eq(tenant));
    if db.get_database_backend() == DatabaseBackend::Postgres {
        // One bound array, so the text is the same whatever the batch (see `update_from_arrays`).
        let ids = ids.iter().map(|&id| id.into()).collect();
        query.and_where(Expr::cust_with_values(r#""s"."vehicle_id" = ANY($1)"#, [array(ArrayType::Uuid, ids)]));
        query.lock_with_tables(sea_orm::sea_query::LockType::Update, [s]);
    } else {
        query.and_where(Expr::col((s, Alias::new("vehicle_id"))).is_in(ids.iter().copied()));
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

/// Writes the latest state of every vehicle in `tracked` (rows [`track`] read), one statement
/// for all.
pub(crate) async fn write(db: &impl ConnectionTrait, tenant: &str, tracked: &[&Tracked]) -> Result<(), DbErr> {
    if tracked.is_empty() {
        return Ok(());
    }
    match db.get_database_backend() {
        DatabaseBackend::Postgres => db.execute_raw(update_from_arrays(tenant, tracked)).await?,
        _ => db.execute(&upsert_from_values(tenant, tracked)).await?,
    };
    Ok(())
}

/// Each of [`READ_COLUMNS`] as [`update_from_arrays`] binds it: its array's SQL type, and the bit
/// of the row's `present` mask that says the row holds a value for it.
const WRITTEN: [(&str, &str, u8); 18] = [
    ("charge_level", "int2", 0),
    ("charge_level_at", "timestamptz", 0),
    ("latitude", "float8", 1),
    ("longitude", "float8", 1),
    ("position_at", "timestamptz", 1),
    ("odometer", "int8", 2),
    ("odometer_at", "timestamptz", 2),
    ("remaining_range", "int8", 3),
    ("remaining_range_at", "timestamptz", 3),
    ("speed", "float8", 4),
    ("speed_at", "timestamptz", 4),
    ("central_lock", "text", 5),
    ("central_lock_at", "timestamptz", 5),
    ("ignition", "text", 6),
    ("ignition_at", "timestamptz", 6),
    ("announced_latitude", "float8", 7),
    ("announced_longitude", "float8", 7),
    ("received_at", "timestamptz", 8),
];

/// On PostgreSQL the batch goes in as one array per column, unnested, as the request log's does:
/// one statement text whatever the batch (a `VALUES` list of 20 parameters a vehicle was a new
/// text for every batch size, parsed and planned again, and it pushed other statements out of the
/// connection's cache). Bound arrays hold no NULL elements, so an absent reading travels as its
/// type's zero with its bit of `present` clear, and is written NULL.
fn update_from_arrays(tenant: &str, tracked: &[&Tracked]) -> Statement {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let set: Vec<String> = WRITTEN
            .iter()
            .map(|(column, _, bit)| format!("{column} = CASE WHEN r.present & {} <> 0 THEN r.{column} END", 1 << bit))
            .collect();
        let arrays: Vec<String> =
            WRITTEN.iter().enumerate().map(|(n, (_, kind, _))| format!("${}::{kind}[]", n + 4)).collect();
        format!(
            "UPDATE {TABLE} AS s SET {} FROM UNNEST($2::uuid[], $3::int2[], {}) AS r(vehicle_id, present, {}) \
             WHERE s.vehicle_id = r.vehicle_id AND s.tenant = $1",
            set.join(", "),
            arrays.join(", "),
            READ_COLUMNS.join(", "),
        )
    });
    let mut ids = Vec::with_capacity(tracked.len());
    let mut present = Vec::with_capacity(tracked.len());
    let mut columns: [Vec<Value>; 18] = std::array::from_fn(|_| Vec::with_capacity(tracked.len()));
    for vehicle in tracked {
        let (mask, row) = written_row(vehicle);
        ids.push(vehicle.vehicle_id.into());
        present.push(mask.into());
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    let mut values = vec![tenant.into(), array(ArrayType::Uuid, ids), array(ArrayType::SmallInt, present)];
    values.extend(WRITTEN.iter().zip(columns).map(|((_, kind, _), column)| array(array_type(kind), column)));
    Statement::from_sql_and_values(DatabaseBackend::Postgres, SQL.as_str(), values)
}

/// A bound array of `values`, every one of them of `kind`.
fn array(kind: ArrayType, values: Vec<Value>) -> Value {
    Value::Array(kind, Some(Box::new(values)))
}

/// The array type of a column of [`WRITTEN`].
fn array_type(sql_type: &str) -> ArrayType {
    match sql_type {
        "int2" => ArrayType::SmallInt,
        "int8" => ArrayType::BigInt,
        "float8" => ArrayType::Double,
        "text" => ArrayType::String,
        _ => ArrayType::ChronoDateTimeUtc,
    }
}

/// A vehicle's values in [`WRITTEN`]'s order, and the mask of those it holds.
fn written_row(vehicle: &Tracked) -> (i16, [Value; 18]) {
    let state = &vehicle.latest.state;
    let held = [
        state.charge_level.is_some(),
        state.position.is_some(),
        state.odometer.is_some(),
        state.remaining_range.is_some(),
        state.speed.is_some(),
        state.central_lock.is_some(),
        state.ignition.is_some(),
        vehicle.announced.is_some(),
        vehicle.latest.received_at.is_some(),
    ];
    let present = held.iter().enumerate().fold(0i16, |mask, (bit, &held)| if held { mask | 1 << bit } else { mask });
    // An absent reading's time is the epoch under a clear bit.
    let time = |reading: Option<DateTime<Utc>>| Value::from(reading.unwrap_or_default());
    let position = state.position.as_ref().map(|p| p.value);
    let row = [
        state.charge_level.as_ref().map_or(0, |r| i16::from(r.value)).into(),
        time(state.charge_level.as_ref().map(|r| r.time)),
        position.map_or(0.0, |p| p.latitude).into(),
        position.map_or(0.0, |p| p.longitude).into(),
        time(state.position.as_ref().map(|r| r.time)),
        state.odometer.as_ref().map_or(0, |r| i64::try_from(r.value).unwrap_or(i64::MAX)).into(),
        time(state.odometer.as_ref().map(|r| r.time)),
        state.remaining_range.as_ref().map_or(0, |r| i64::from(r.value)).into(),
        time(state.remaining_range.as_ref().map(|r| r.time)),
        state.speed.as_ref().map_or(0.0, |r| f64::from(r.value)).into(),
        time(state.speed.as_ref().map(|r| r.time)),
        state.central_lock.as_ref().map(|r| name_of(&r.value)).unwrap_or_default().into(),
        time(state.central_lock.as_ref().map(|r| r.time)),
        state.ignition.as_ref().map(|r| name_of(&r.value)).unwrap_or_default().into(),
        time(state.ignition.as_ref().map(|r| r.time)),
        vehicle.announced.map_or(0.0, |p| p.latitude).into(),
        vehicle.announced.map_or(0.0, |p| p.longitude).into(),
        time(vehicle.latest.received_at),
    ];
    (present, row)
}

/// Elsewhere (SQLite) one multi-row insert that updates each row it finds.
fn upsert_from_values(tenant: &str, tracked: &[&Tracked]) -> InsertStatement {
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
    insert
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
    if db.get_database_backend() == DatabaseBackend::Postgres {
        // One array per column (see `update_from_arrays`); the batch shares its arrival time.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO {HISTORY} (message_id, tenant, vehicle_id, received_at, state) \
                 SELECT message_id, $1, vehicle_id, $2, state FROM UNNEST($3::uuid[], $4::uuid[], $5::text[]) \
                 AS r(message_id, vehicle_id, state) ON CONFLICT (message_id) DO NOTHING"
            )
        });
        let column = |value: fn(&Report<'_>) -> Value| reports.iter().map(value).collect();
        let values = [
            tenant.into(),
            received_at.into(),
            array(ArrayType::Uuid, column(|r| r.message_id.into())),
            array(ArrayType::Uuid, column(|r| r.vehicle_id.into())),
            array(ArrayType::String, column(|r| to_json(r.state).into())),
        ];
        return db
            .execute_raw(Statement::from_sql_and_values(DatabaseBackend::Postgres, SQL.as_str(), values))
            .await
            .map(|_| ());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arrays_are_bound_in_the_order_of_the_columns_read() {
        assert_eq!(WRITTEN.map(|(column, _, _)| column), READ_COLUMNS);
    }

    #[test]
    fn an_absent_reading_is_a_clear_bit_and_its_types_zero() {
        let time = Utc::now();
        let vehicle = Tracked {
            vehicle_id: Uuid::nil(),
            subaccount_id: Uuid::nil(),
            vehicle_number: None,
            latest: LatestState {
                state: VehicleState { odometer: Some(Reading { value: 7, time }), ..VehicleState::default() },
                received_at: Some(time),
            },
            announced: None,
        };
        let (present, row) = written_row(&vehicle);
        assert_eq!(present, 1 << 2 | 1 << 8);
        assert_eq!((&row[5], &row[6], &row[17]), (&Value::from(7i64), &Value::from(time), &Value::from(time)));
        assert_eq!((&row[0], &row[11]), (&Value::from(0i16), &Value::from("")));
    }
}
