//! The `vehicles` table as read: master data, custom fields, capabilities and operation status,
//! with the latest state (`vehicle_states`). Every statement names the tenant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::vehicles::{MasterData, OperationStatus, Position, Transmission, VehicleCommand};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::states::{self, LatestState};
use crate::columns::{Json, Named, name_of};

/// The table.
pub const TABLE: &str = "vehicles";

/// Columns of `vehicles` a reader gets.
pub const COLUMNS: [&str; 16] = [
    "vehicle_id",
    "tenant",
    "subaccount_id",
    "vin",
    "vehicle_number",
    "license_plate",
    "vehicle_type",
    "brand",
    "model",
    "transmission",
    "telematics_unit_id",
    "custom_fields",
    "capabilities",
    "status",
    "created_at",
    "updated_at",
];

/// A vehicle as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Vehicle {
    /// Vehicle id.
    pub id: Uuid,
    /// Subaccount (fleet) it belongs to.
    pub subaccount_id: Uuid,
    /// Master data.
    #[serde(flatten)]
    pub master_data: MasterData,
    /// Operator-defined fields.
    pub custom_fields: BTreeMap<String, Value>,
    /// Commands it can carry out.
    pub capabilities: Vec<VehicleCommand>,
    /// Operation status.
    pub status: OperationStatus,
    /// The latest value of each property it reported, each with its own time.
    pub state: LatestState,
    /// Added to the fleet.
    pub created_at: DateTime<Utc>,
    /// Master data, custom fields or status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Vehicle {
    /// The VIN (always set on a stored vehicle).
    pub fn vin(&self) -> &str {
        self.master_data.vin.as_deref().unwrap_or_default()
    }
}

/// Which vehicles a listing shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these subaccounts; `None`: all of the organisation's.
    pub subaccounts: Option<Vec<Uuid>>,
    /// Operation status.
    pub status: Option<OperationStatus>,
    /// Vehicle type.
    pub vehicle_type: Option<String>,
    /// Start of the VIN, license plate or vehicle number, any case.
    pub search: Option<String>,
    /// State of charge below this percentage.
    pub battery_below: Option<u8>,
    /// Inside this box (west, south, east, north); west > east crosses the antimeridian.
    pub bbox: Option<[f64; 4]>,
    /// A custom field with this value (compared as text).
    pub custom_field: Option<(String, String)>,
}

/// A row of [`COLUMNS`] (the latest state is read from the same row by [`states::from_row`]).
#[derive(FromQueryResult)]
struct Row {
    vehicle_id: Uuid,
    subaccount_id: Uuid,
    vin: String,
    vehicle_number: Option<String>,
    license_plate: Option<String>,
    vehicle_type: Option<String>,
    brand: Option<String>,
    model: Option<String>,
    transmission: Option<Named<Transmission>>,
    telematics_unit_id: Option<String>,
    custom_fields: Json<BTreeMap<String, Value>>,
    capabilities: Json<Vec<VehicleCommand>>,
    status: Named<OperationStatus>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A vehicle from a row of [`COLUMNS`] and the state's [`states::READ_COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<Vehicle, DbErr> {
    let state = states::from_row(row)?;
    let row = Row::from_query_result(row, "")?;
    Ok(Vehicle {
        id: row.vehicle_id,
        subaccount_id: row.subaccount_id,
        master_data: MasterData {
            vin: Some(row.vin),
            vehicle_number: row.vehicle_number,
            license_plate: row.license_plate,
            vehicle_type: row.vehicle_type,
            brand: row.brand,
            model: row.model,
            transmission: row.transmission.map(|t| t.0),
            telematics_unit_id: row.telematics_unit_id,
        },
        custom_fields: row.custom_fields.0,
        capabilities: row.capabilities.0,
        status: row.status.0,
        state,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Vehicles of `tenant` joined with their latest state.
fn select(tenant: &str) -> SelectStatement {
    let v = Alias::new("v");
    let s = Alias::new("s");
    let mut query = Query::select();
    for column in COLUMNS {
        query.column((v.clone(), Alias::new(column)));
    }
    for column in states::READ_COLUMNS {
        query.column((s.clone(), Alias::new(column)));
    }
    query
        .from_as(TABLE, v.clone())
        .join_as(
            sea_orm::sea_query::JoinType::LeftJoin,
            Alias::new(states::TABLE),
            s.clone(),
            Expr::col((s.clone(), Alias::new("vehicle_id"))).equals((v.clone(), Alias::new("vehicle_id"))),
        )
        .and_where(Expr::col((v, Alias::new("tenant"))).eq(tenant))
        .to_owned()
}

fn vehicle_column(column: &str) -> Expr {
    Expr::col((Alias::new("v"), Alias::new(column)))
}

fn state_column(column: &str) -> Expr {
    Expr::col((Alias::new("s"), Alias::new(column)))
}

/// Vehicle `id` of `tenant`, with its latest state.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Vehicle>, DbErr> {
    let query = select(tenant).and_where(vehicle_column("vehicle_id").eq(id)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Vehicles `ids` of `tenant`, in the order of `ids`; the ids not found are left out.
pub async fn find_all(db: &impl ConnectionTrait, tenant: &str, ids: &[Uuid]) -> Result<Vec<Vehicle>, DbErr> {
    find_many(db, tenant, ids, false).await
}

/// Like [`find_all`], the rows locked until the transaction ends (PostgreSQL).
pub async fn find_locked(db: &impl ConnectionTrait, tenant: &str, ids: &[Uuid]) -> Result<Vec<Vehicle>, DbErr> {
    find_many(db, tenant, ids, true).await
}

async fn find_many(db: &impl ConnectionTrait, tenant: &str, ids: &[Uuid], lock: bool) -> Result<Vec<Vehicle>, DbErr> {
    let mut query = select(tenant).and_where(vehicle_column("vehicle_id").is_in(ids.iter().copied())).to_owned();
    if lock && db.get_database_backend() == DatabaseBackend::Postgres {
        query.lock_with_tables(sea_orm::sea_query::LockType::Update, [Alias::new("v")]);
    }
    let mut found = db.query_all(&query).await?.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    found.sort_by_key(|vehicle| ids.iter().position(|id| *id == vehicle.id));
    Ok(found)
}

/// Text `pattern` for `LIKE … ESCAPE '\'` that matches what starts with `prefix`.
fn starts_with(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn conditions(filter: &Filter, backend: DatabaseBackend) -> Vec<SimpleExpr> {
    // sea-query numbers a custom expression's own parameters `$1…` on PostgreSQL, `?` elsewhere.
    let parameter = if backend == DatabaseBackend::Postgres { "$1" } else { "?" };
    let mut all = Vec::new();
    if let Some(subaccounts) = &filter.subaccounts {
        all.push(vehicle_column("subaccount_id").is_in(subaccounts.iter().copied()));
    }
    if let Some(status) = filter.status {
        all.push(vehicle_column("status").eq(name_of(&status)));
    }
    if let Some(vehicle_type) = &filter.vehicle_type {
        all.push(vehicle_column("vehicle_type").eq(vehicle_type.as_str()));
    }
    if let Some(search) = &filter.search {
        let pattern = starts_with(search);
        let like = |column: &str| {
            Expr::cust_with_values(format!("LOWER(v.{column}) LIKE {parameter} ESCAPE '\\'"), [pattern.clone()])
        };
        all.push(like("vin").or(like("license_plate")).or(like("vehicle_number")));
    }
    if let Some(level) = filter.battery_below {
        all.push(state_column("charge_level").lt(i16::from(level)));
    }
    if let Some([west, south, east, north]) = filter.bbox {
        all.push(state_column("latitude").between(south, north));
        let longitude = if west <= east {
            state_column("longitude").between(west, east)
        } else {
            // The box crosses the antimeridian: east of `west` or west of `east`.
            state_column("longitude").gte(west).or(state_column("longitude").lte(east))
        };
        all.push(longitude);
    }
    if let Some((name, value)) = &filter.custom_field {
        let field = match backend {
            DatabaseBackend::Postgres => Expr::cust_with_values("(v.custom_fields::jsonb ->> $1)", [name.clone()]),
            _ => Expr::cust_with_values(
                "CAST(json_extract(v.custom_fields, '$.\"' || ? || '\"') AS TEXT)",
                [name.clone()],
            ),
        };
        all.push(field.eq(value.as_str()));
    }
    all
}

/// One page of `tenant`'s vehicles that pass `filter`, oldest first, and how many pass.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Vehicle>, u64), DbErr> {
    let mut query = select(tenant);
    for condition in conditions(filter, db.get_database_backend()) {
        query.and_where(condition);
    }
    query.order_by((Alias::new("v"), Alias::new("created_at")), Order::Asc);
    query.order_by((Alias::new("v"), Alias::new("vehicle_id")), Order::Asc);
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
}

/// A vehicle near a place, and how near.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Nearby {
    /// The vehicle.
    #[serde(flatten)]
    pub vehicle: Vehicle,
    /// Metres from the place asked about (great-circle distance).
    pub distance_m: f64,
}

/// The vehicles of `tenant` (in `subaccounts`, if given) whose latest position is within
/// `radius_m` of `centre`, nearest first. The database narrows them to the box around the
/// circle (which wraps at the antimeridian and opens to every longitude over a pole); the exact
/// distance decides.
pub async fn nearby(
    db: &impl ConnectionTrait,
    tenant: &str,
    subaccounts: Option<Vec<Uuid>>,
    centre: Position,
    radius_m: f64,
) -> Result<Vec<Nearby>, DbErr> {
    let bounds = crate::geometry::bounds_around(centre, radius_m);
    let filter = Filter { subaccounts, ..Filter::default() };
    let mut query = select(tenant);
    for condition in conditions(&filter, db.get_database_backend()) {
        query.and_where(condition);
    }
    query.and_where(state_column("latitude").between(bounds.south, bounds.north));
    match bounds.longitudes {
        Some((west, east)) if west <= east => {
            query.and_where(state_column("longitude").between(west, east));
        }
        Some((west, east)) => {
            query.and_where(state_column("longitude").gte(west).or(state_column("longitude").lte(east)));
        }
        None => {
            query.and_where(state_column("longitude").is_not_null());
        }
    }
    let mut found = Vec::new();
    for row in db.query_all(&query).await? {
        let vehicle = from_row(&row)?;
        let Some(position) = vehicle.state.state.position.as_ref().map(|p| p.value) else { continue };
        let distance_m = crate::geometry::metres_between(centre, position);
        if distance_m <= radius_m {
            found.push(Nearby { vehicle, distance_m });
        }
    }
    found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));
    Ok(found)
}
