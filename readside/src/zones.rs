//! The `zones` table (Levy Fleets zones): a subaccount's parking, no-parking, no-ride, slow and
//! operating areas. Which zones hold a point is answered from the table: its box columns narrow
//! the rows in SQL, then the exact test runs on the sphere (`geometry`), right across the
//! antimeridian and around the poles. Every statement names the tenant.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::vehicles::Position;
use schemas::zones::{Zone, ZoneType};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, Named, name_of};
use crate::geometry;

/// The table.
pub const TABLE: &str = "zones";

/// The columns a [`StoredZone`] is read from.
pub const COLUMNS: [&str; 13] = [
    "zone_id",
    "tenant",
    "subaccount_id",
    "name",
    "zone_type",
    "polygon",
    "speed_limit_kmh",
    "south",
    "north",
    "west",
    "east",
    "created_at",
    "updated_at",
];

/// A zone as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredZone {
    /// Zone id.
    pub id: Uuid,
    /// Subaccount it belongs to.
    pub subaccount_id: Uuid,
    /// Name, type, polygon, speed limit.
    #[serde(flatten)]
    pub zone: Zone,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last replaced.
    pub updated_at: DateTime<Utc>,
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    zone_id: Uuid,
    subaccount_id: Uuid,
    name: String,
    zone_type: Named<ZoneType>,
    polygon: Json<Vec<[f64; 2]>>,
    speed_limit_kmh: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A zone from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<StoredZone, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(StoredZone {
        id: row.zone_id,
        subaccount_id: row.subaccount_id,
        zone: Zone {
            name: row.name,
            zone_type: row.zone_type.0,
            polygon: row.polygon.0,
            speed_limit_kmh: row.speed_limit_kmh.and_then(|s| u16::try_from(s).ok()),
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// `tenant`'s zones (in `subaccounts`, if given).
pub fn select(tenant: &str, subaccounts: Option<&[Uuid]>) -> SelectStatement {
    let mut query = Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned();
    if let Some(subaccounts) = subaccounts {
        query.and_where(Expr::col("subaccount_id").is_in(subaccounts.iter().copied()));
    }
    query
}

/// Zone `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredZone>, DbErr> {
    let query = select(tenant, None).and_where(Expr::col("zone_id").eq(id)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// One page of the zones of `tenant` (in `subaccounts`, if given), of one type if given.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    subaccounts: Option<&[Uuid]>,
    zone_type: Option<ZoneType>,
    offset: u64,
    limit: u64,
) -> Result<(Vec<StoredZone>, u64), DbErr> {
    let mut query = select(tenant, subaccounts);
    if let Some(zone_type) = zone_type {
        query.and_where(Expr::col("zone_type").eq(name_of(&zone_type)));
    }
    query.order_by("created_at", Order::Asc).order_by("zone_id", Order::Asc);
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
}

/// The zones of `tenant` (in `subaccounts`, if given) that hold `point`.
pub async fn containing(
    db: &impl ConnectionTrait,
    tenant: &str,
    subaccounts: Option<&[Uuid]>,
    point: Position,
) -> Result<Vec<StoredZone>, DbErr> {
    let (lat, lng) = (point.latitude, point.longitude);
    let longitude = Expr::col("west")
        .is_null()
        .or(Expr::col("west").lte(Expr::col("east")).and(Expr::col("west").lte(lng)).and(Expr::col("east").gte(lng)))
        .or(Expr::col("west").gt(Expr::col("east")).and(Expr::col("west").lte(lng).or(Expr::col("east").gte(lng))));
    let query = select(tenant, subaccounts)
        .and_where(Expr::col("south").lte(lat))
        .and_where(Expr::col("north").gte(lat))
        .and_where(longitude)
        .order_by("created_at", Order::Asc)
        .to_owned();
    let rows = db.query_all(&query).await?;
    let zones = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(zones.into_iter().filter(|z| geometry::contains(&z.zone.polygon, point)).collect())
}
