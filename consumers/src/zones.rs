//! Zones (Levy Fleets): a subaccount's parking, no-parking, no-ride, slow and operating areas.
//!
//! The `zones` group creates, replaces and deletes them (`zone.upsert`, `zone.delete`) and
//! announces each change (`zone.changed`). Which zones hold a point is answered from the
//! `zones` table: its box columns narrow the rows in SQL, then the exact test runs on the sphere
//! (`geometry`), right across the antimeridian and around the poles. Every statement names the
//! tenant.

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::Recipient;
use schemas::zones::{DeleteZone, UpsertZone, ZoneChanged};
use schemas::{AnyMessage, Envelope};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use uuid::Uuid;

use readside::columns::{name_of, to_json};
use readside::geometry::{self, Bounds};
pub(crate) use readside::zones::{COLUMNS, StoredZone, TABLE, containing, find};
use readside::{Deleted, Outcome, Refusal};

/// The group's name: its queues are `voltbus.zones…`.
pub const GROUP: &str = Recipient::Zones.name();

const SOURCE: &str = "voltbus/zones";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Zones, Arc::new(Zones))]
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
    readside::columns::for_update(tx, &mut query);
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
