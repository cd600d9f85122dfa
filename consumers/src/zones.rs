//! Zones (Levy Fleets): a subaccount's parking, no-parking, no-ride, slow and operating areas.
//!
//! The `zones` group creates, replaces and deletes them (`zone.upsert`, `zone.delete`) and
//! announces each change (`zone.changed`). Which zones hold a point is answered from the
//! `zones` table: its box columns narrow the rows in SQL, then the exact test runs on the sphere
//! (`geometry`), right across the antimeridian and around the poles. Every statement names the
//! tenant.

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::vehicles::Position;
use schemas::zones::{DeleteZone, UpsertZone, Zone, ZoneChanged, ZoneType};
use schemas::{AnyMessage, Envelope, routing};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{from_name, json_column, name_of, to_json};
use crate::geometry::{self, Bounds};
use crate::outcome::{Deleted, Outcome, Refusal};

/// The group's name: its queues are `voltbus.zones…`.
pub const GROUP: &str = "zones";

const SOURCE: &str = "voltbus/zones";
const TABLE: &str = "zones";
const COLUMNS: [&str; 13] = [
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

/// The zone commands' queues.
pub fn topology() -> GroupTopology {
    let keys = vec![routing::command_key_of::<UpsertZone>(), routing::command_key_of::<DeleteZone>()];
    GroupTopology::commands(GROUP, keys, crate::RETRY_DELAYS.to_vec())
}

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

fn from_row(row: &QueryResult) -> Result<StoredZone, DbErr> {
    let zone_type: String = row.try_get("", "zone_type")?;
    let speed: Option<i32> = row.try_get("", "speed_limit_kmh")?;
    Ok(StoredZone {
        id: row.try_get("", "zone_id")?,
        subaccount_id: row.try_get("", "subaccount_id")?,
        zone: Zone {
            name: row.try_get("", "name")?,
            zone_type: from_name(&zone_type, TABLE, "zone_type")?,
            polygon: json_column(row, TABLE, "polygon")?,
            speed_limit_kmh: speed.and_then(|s| u16::try_from(s).ok()),
        },
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

fn select(tenant: &str, subaccounts: Option<&[Uuid]>) -> SelectStatement {
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

/// Handles the zone commands.
pub struct Zones;

impl Handler for Zones {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database("zones")?;
            let message = context.message;
            let reply = match &message.data {
                AnyMessage::UpsertZone(upsert) => upsert_zone(tx, message, upsert).await.map(|o| o.to_reply()),
                AnyMessage::DeleteZone(DeleteZone { zone_id }) => {
                    delete_zone(tx, message, *zone_id).await.map(|o| o.to_reply())
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            reply.map(Some).map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

/// The row's tenant, locked until the transaction ends (PostgreSQL).
async fn owner(tx: &DatabaseTransaction, id: Uuid) -> Result<Option<String>, DbErr> {
    let mut query = Query::select().column("tenant").from(TABLE).and_where(Expr::col("zone_id").eq(id)).to_owned();
    crate::database::for_update(tx, &mut query);
    tx.query_one(&query).await?.map(|row| row.try_get("", "tenant")).transpose()
}

async fn upsert_zone(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    upsert: &UpsertZone,
) -> Result<Outcome<StoredZone>, DbErr> {
    let tenant = message.tenant.as_str();
    let now = Utc::now();
    let Bounds { south, north, longitudes } = geometry::bounds_of(&upsert.zone.polygon);
    let (west, east) = (longitudes.map(|l| l.0), longitudes.map(|l| l.1));
    let speed = upsert.zone.speed_limit_kmh.map(i32::from);
    let stored = match owner(tx, upsert.zone_id).await? {
        // Another organisation's zone id names nothing here.
        Some(other) if other != tenant => {
            return Ok(Outcome::Refused(Refusal::not_found(format!("no zone {}", upsert.zone_id))));
        }
        Some(_) => {
            let update = Query::update()
                .table(TABLE)
                .value("subaccount_id", upsert.subaccount_id)
                .value("name", upsert.zone.name.as_str())
                .value("zone_type", name_of(&upsert.zone.zone_type))
                .value("polygon", to_json(&upsert.zone.polygon))
                .value("speed_limit_kmh", speed)
                .value("south", south)
                .value("north", north)
                .value("west", west)
                .value("east", east)
                .value("updated_at", now)
                .and_where(Expr::col("tenant").eq(tenant))
                .and_where(Expr::col("zone_id").eq(upsert.zone_id))
                .to_owned();
            tx.execute(&update).await?;
            find(tx, tenant, upsert.zone_id).await?
        }
        None => {
            let insert = Query::insert()
                .into_table(TABLE)
                .columns(COLUMNS)
                .values_panic([
                    upsert.zone_id.into(),
                    tenant.into(),
                    upsert.subaccount_id.into(),
                    upsert.zone.name.as_str().into(),
                    name_of(&upsert.zone.zone_type).into(),
                    to_json(&upsert.zone.polygon).into(),
                    speed.into(),
                    south.into(),
                    north.into(),
                    west.into(),
                    east.into(),
                    now.into(),
                    now.into(),
                ])
                .to_owned();
            tx.execute(&insert).await?;
            find(tx, tenant, upsert.zone_id).await?
        }
    };
    let stored = stored.ok_or_else(|| DbErr::Custom(format!("zone {} neither written nor found", upsert.zone_id)))?;
    let event =
        ZoneChanged { zone_id: stored.id, subaccount_id: stored.subaccount_id, zone: Some(stored.zone.clone()) };
    outbox::enqueue_event(tx, message, SOURCE, event).await?;
    Ok(Outcome::Done(stored))
}

async fn delete_zone(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    id: Uuid,
) -> Result<Outcome<Deleted>, DbErr> {
    let tenant = message.tenant.as_str();
    let Some(zone) = find(tx, tenant, id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no zone {id}"))));
    };
    let delete = Query::delete()
        .from_table(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("zone_id").eq(id))
        .to_owned();
    tx.execute(&delete).await?;
    let event = ZoneChanged { zone_id: id, subaccount_id: zone.subaccount_id, zone: None };
    outbox::enqueue_event(tx, message, SOURCE, event).await?;
    Ok(Outcome::Done(Deleted::of(id)))
}
